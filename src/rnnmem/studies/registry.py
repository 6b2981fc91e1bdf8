"""Moved to :mod:`rnnmem.store.registry` (the store must not import studies); this module re-exports
its public names so that ``from rnnmem.studies.registry import StudySpec, register_study`` keeps
working."""

from __future__ import annotations

from ..store.registry import (StudySpec, canonical_config, get_study, import_studies, list_studies,  # noqa: F401
                              register_study, register_study_modules)

__all__ = ["StudySpec", "canonical_config", "get_study", "import_studies", "list_studies", "register_study",
           "register_study_modules"]
