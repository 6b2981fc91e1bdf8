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


# pydantic's location parts that name a union member's type rather than a field
# ("int", "list[int]", "function-after[...]"): left out of the option's name
_TYPE_TAGS = {"int", "float", "str", "bool", "list", "dict", "tuple", "set", "frozenset", "bytes", "none"}


def _location(loc) -> str:
    parts = [str(p) for p in loc
             if not (isinstance(p, str) and (p in _TYPE_TAGS or (p.endswith("]") and "[" in p)))]
    return ".".join(parts)


def _message(msg: str) -> str:
    for prefix in ("Value error, ", "Assertion failed, "):
        if msg.startswith(prefix):
            return msg[len(prefix):]
    return msg


def config_error_from(exc: BaseException, where: str, *, what: str = "option", missing_hint: str = "",
                      allowed=None, suffix: str = "") -> ConfigError:
    """The one translator from a validation error to a :class:`ConfigError` (the CLI prints it as one
    ``error: ...`` line; every schema check in rnnmem goes through here).

    Parameters
    ----------
    exc : BaseException
        What validating raised: a ``pydantic.ValidationError`` (recognised by its ``errors()``
        list, so this module needs no pydantic), a :class:`ConfigError` (kept, prefixed), or any
        other ``ValueError``/``TypeError`` (its text is kept).
    where : str
        What was being validated, the message's prefix (``"sweep.yaml: config (n=0)"``).
    what : str
        The word for a field: ``"option"`` (default) or ``"key"`` (of a file).
    missing_hint : str
        Appended to "give it a value" for a missing field (e.g. where to put it in a file).
    allowed : iterable of str, optional
        The valid field names, listed after an unknown one.
    suffix : str
        Appended to the whole message (e.g. ``" (study 'toy')"``).

    Returns
    -------
    ConfigError
        ``"<where>: <problem>; <problem>..."``, one clause per problem pydantic found: ``option units = 0:
        Input should be greater than or equal to 1``, ``option input_size is required: give it a value``,
        ``unknown key 'colour'; allowed keys: study, grid``, or a check across fields as its own message.
        A missing field is named as missing (pydantic's input for it is the whole config, which says
        nothing); pydantic's ``Value error, `` prefix is dropped. Raise it ``from None``.
    """
    errors = getattr(exc, "errors", None)
    if not callable(errors) or isinstance(exc, RnnmemError):
        return ConfigError(f"{where}: {exc}{suffix}")
    parts, value_errors = [], {}
    for err in errors():
        loc = _location(err.get("loc", ()))
        msg = _message(str(err.get("msg", "")))
        if not loc:  # a check across fields: its message names them
            parts.append(msg)
        elif err.get("type") == "missing":
            parts.append(f"{what} {loc} is required: give it a value{missing_hint}")
        elif err.get("type") == "extra_forbidden":
            names = ", ".join(allowed) if allowed is not None else ""
            parts.append(f"unknown {what} {loc!r}" + (f"; allowed {what}s: {names}" if names else ""))
        elif loc in value_errors:  # another member of a union rejected the same value
            parts[value_errors[loc]] += f", or {msg[0].lower()}{msg[1:]}" if msg else ""
        else:
            value_errors[loc] = len(parts)
            parts.append(f"{what} {loc} = {err.get('input')!r}: {msg}")
    return ConfigError(f"{where}: {'; '.join(parts) or exc}{suffix}")
