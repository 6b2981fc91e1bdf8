"""Validating a study's configuration dict into its pydantic model, with one clear error."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import config_error_from

M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], config: dict, what: str) -> M:
    """Validate ``config`` with the pydantic model ``model``.

    Parameters
    ----------
    model : type[pydantic.BaseModel]
        The config's schema.
    config : dict
        Option name -> value.
    what : str
        The study's name, the error's prefix.

    Returns
    -------
    pydantic.BaseModel
        ``model(**config)``.

    Raises
    ------
    ConfigError
        ``"<what> config: option <name> = <value>: <reason>"`` for every option pydantic rejected
        (through :func:`rnnmem.errors.config_error_from`; the CLI prints that one line).
    """
    try:
        return model(**config)
    except ValidationError as exc:
        raise config_error_from(exc, f"{what} config") from None
