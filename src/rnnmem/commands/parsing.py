"""Parsing of comma-separated CLI values, with one clear error naming the option."""

from __future__ import annotations

from ..errors import ConfigError


def names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def ints(text: str, what: str, nonempty: bool = False) -> list[int]:
    """Comma-separated integers of option ``what``; ``nonempty`` requires at least one."""
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated integers, got {text!r}") from None
    if nonempty and not vals:
        raise ConfigError(f"{what} must list at least one integer")
    return vals


def floats(text: str, what: str) -> list[float]:
    """Comma-separated numbers of option ``what``."""
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


def explicit(ctx, **values) -> dict:
    """The subset of ``values`` (parameter name -> value) the user gave on the command line or in
    the environment, as opposed to the option's default: ``ctx`` is the command's ``typer.Context``."""
    given = {}
    for name, value in values.items():
        source = ctx.get_parameter_source(name)  # by name: typer may vendor its own click
        if source is not None and getattr(source, "name", str(source)) not in ("DEFAULT", "DEFAULT_MAP"):
            given[name] = value
    return given


TRUST_HELP = ("Allow a model file that needs full unpickling (e.g. a pickled nn.LSTM). Unpickling runs any code "
              "the file names: only for files from a source you trust. Default: tensors only.")
