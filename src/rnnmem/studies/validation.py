"""Moved to :mod:`rnnmem.store.validation`; re-exported here for code that imported it from studies."""

from __future__ import annotations

from ..store.validation import validate_model  # noqa: F401

__all__ = ["validate_model"]
