"""Validating a study's configuration dict into its pydantic model, with one clear error."""

from __future__ import annotations

from typing import TypeVar

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError

M = TypeVar("M", bound=BaseModel)


def validate_model(model: type[M], config: dict, what: str) -> M:
    """``model(**config)``, or ``ConfigError("<what> config: <field>: <reason>")`` naming the first
    field pydantic rejected (the CLI prints that one line)."""
    try:
        return model(**config)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"]) or "config"
        raise ConfigError(f"{what} config: {where}: {err['msg']}") from None
