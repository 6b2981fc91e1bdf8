"""Parsing of comma-separated CLI values, with one clear error naming the option."""

from __future__ import annotations

from ..errors import ConfigError


def names(text: str) -> list[str]:
    """``"a, b,,c"`` -> ``["a", "b", "c"]``."""
    return [t.strip() for t in text.split(",") if t.strip()]


def ints(text: str, what: str, nonempty: bool = False, minimum: int | None = None) -> list[int]:
    """Comma-separated integers of option ``what``.

    Parameters
    ----------
    text : str
        The option's value, e.g. ``"10, 20,50"``.
    what : str
        The option's name for the error (``"--T"``).
    nonempty : bool
        Require at least one integer.
    minimum : int, optional
        Smallest value allowed.

    Returns
    -------
    list[int]

    Raises
    ------
    ConfigError
        Naming ``what`` and the value given.
    """
    try:
        vals = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be a comma-separated list of integers, got {text!r}") from None
    if nonempty and not vals:
        raise ConfigError(f"{what} must list at least one integer")
    if minimum is not None and any(v < minimum for v in vals):
        kind = "positive integers" if minimum == 1 else f"integers >= {minimum}"
        raise ConfigError(f"{what} must list {kind}, got {text!r}")
    return vals


def split3(text: str, what: str = "--split") -> tuple[int, int, int]:
    """``"TRAIN,VAL,TEST"`` -> three integers (ConfigError naming ``what`` otherwise)."""
    parts = ints(text, what)
    if len(parts) != 3:
        raise ConfigError(f"{what} must be TRAIN,VAL,TEST, got {text!r}")
    return tuple(parts)


def floats(text: str, what: str) -> list[float]:
    """Comma-separated numbers of option ``what``."""
    try:
        return [float(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ConfigError(f"{what} must be comma-separated numbers, got {text!r}") from None


def name_values(items: list[str], what: str, example: str = "name=0.5") -> dict[str, float]:
    """``["a=0.5", "b=1"]`` (a repeatable ``NAME=VALUE`` option) -> ``{"a": 0.5, "b": 1.0}``.

    Parameters
    ----------
    items : list of str
        The option's values.
    what : str
        The option's name for the error.
    example : str
        A valid value, shown in the error.

    Returns
    -------
    dict
        Name -> number (a later item replaces an earlier one of the same name).

    Raises
    ------
    ConfigError
        For an item that is not NAME=NUMBER.
    """
    out = {}
    for it in items:
        name, sep, val = it.partition("=")
        try:
            if not sep or not name.strip():
                raise ValueError
            out[name.strip()] = float(val)
        except ValueError:
            raise ConfigError(f"{what} must look like NAME=VALUE (e.g. {example}), got {it!r}") from None
    return out


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
