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
