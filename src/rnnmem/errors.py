"""Exceptions with one clear message each; the CLI prints them as a single line."""


class RnnmemError(ValueError):
    """Base class: a problem with what the user asked for, with a hint on what to do."""


class ConfigError(RnnmemError):
    """An unknown name, an option out of range, or an inconsistent configuration."""


class InputError(RnnmemError):
    """Data with the wrong shape, NaN values, or a file that cannot be read."""


class RnnmemWarning(UserWarning):
    """Something the user should know that does not stop the command (the CLI prints it as one
    ``warning: ...`` line on stderr)."""
