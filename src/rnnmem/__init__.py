"""rnnmem: measure, explain and visualise how long recurrent neural networks remember."""

__version__ = "0.1.0"

from .errors import ConfigError, InputError, RnnmemError  # noqa: E402

__all__ = ["__version__", "ConfigError", "InputError", "RnnmemError"]
