"""Registry of studies that ``rnnmem sweep`` can run by name.

A study is a pydantic model validating one expanded config (everything but the seed), a function
``"module:function"`` with signature ``fn(config: dict, seeds: list[int]) -> list[RunRecord]``,
and how many seeds one task batches. Studies register themselves at import time with
``register_study``; ``get_study``/``list_studies`` import the built-in study modules lazily
(``rnnmem.studies`` and the toy study in ``rnnmem.store.testing``) so registration has happened.
Third-party studies register from their own module (named in the sweep YAML as ``import:``).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError

BUILTIN_MODULES = ("rnnmem.studies", "rnnmem.store.testing", "rnnmem.studies.muccino")

_STUDIES: dict[str, "StudySpec"] = {}
_imported: set[str] = set()


def describe_errors(exc: ValidationError) -> str:
    """Every problem pydantic found in a config, one clause each, naming the option and its value.

    Parameters
    ----------
    exc : pydantic.ValidationError
        The error raised by a study's config model.

    Returns
    -------
    str
        ``"option units = 0: Input should be greater than or equal to 1; option input_size is
        required: give it a value (in a sweep file: under grid or fixed)"``. A missing option is
        named as missing (pydantic's ``input`` for it is the whole config, which says nothing).
    """
    parts = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err["loc"]) or "config"
        if not err["loc"]:  # a check across options: its message names them
            parts.append(err["msg"])
        elif err["type"] == "missing":
            parts.append(f"option {loc} is required: give it a value (in a sweep file: under grid or fixed)")
        else:
            parts.append(f"option {loc} = {err.get('input')!r}: {err['msg']}")
    return "; ".join(parts)


@dataclass
class StudySpec:
    """A study runnable by name: config model, run function, seeds per task, one-line description."""

    name: str
    config_model: type[BaseModel]
    run: str
    seeds_per_task: int = 1
    description: str = ""
    check: Callable[[BaseModel], object] | None = None  # extra cross-option checks; raise ConfigError

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name:
            raise ConfigError(f"study name must be a non-empty string, got {self.name!r}")
        if not (isinstance(self.config_model, type) and issubclass(self.config_model, BaseModel)):
            raise ConfigError(f"study {self.name!r}: config_model must be a pydantic BaseModel class")
        if not isinstance(self.run, str) or self.run.count(":") != 1:
            raise ConfigError(f"study {self.name!r}: run must be 'module:function', got {self.run!r}")
        if int(self.seeds_per_task) < 1:
            raise ConfigError(f"study {self.name!r}: seeds_per_task must be >= 1, got {self.seeds_per_task}")
        self.seeds_per_task = int(self.seeds_per_task)

    def options(self) -> dict:
        """Option name -> pydantic field info of the config model."""
        return dict(self.config_model.model_fields)

    def validate(self, config: dict, where: str = "config") -> dict:
        """Validate one config with the study's model; returns the full config (defaults filled in)
        as plain JSON types. Raises one ConfigError naming the option and the problem."""
        if not isinstance(config, dict):
            raise ConfigError(f"{where}: a study config must be a mapping of option: value")
        unknown = sorted(set(config) - set(self.config_model.model_fields))
        extra_allowed = self.config_model.model_config.get("extra") == "allow"
        if unknown and not extra_allowed:
            known = ", ".join(self.config_model.model_fields)
            raise ConfigError(f"{where}: unknown option{'s' if len(unknown) > 1 else ''} {', '.join(unknown)} "
                              f"for study {self.name!r}; its options are: {known}")
        try:
            model = self.config_model(**config)
        except ValidationError as exc:
            raise ConfigError(f"{where}: {describe_errors(exc)} (study {self.name!r})") from None
        except ConfigError as exc:
            raise ConfigError(f"{where}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{where}: {exc} (study {self.name!r})") from None
        if self.check is not None:
            try:
                self.check(model)
            except ConfigError as exc:
                raise ConfigError(f"{where}: {exc}") from None
        return model.model_dump(mode="json")


def register_study(spec: StudySpec) -> StudySpec:
    """Make ``spec`` runnable by name (re-registering the same name replaces it)."""
    if not isinstance(spec, StudySpec):
        raise ConfigError(f"register_study expects a StudySpec, got {type(spec).__name__}")
    _STUDIES[spec.name] = spec
    return spec


def _load_builtins(until: str | None = None) -> None:
    """Import the built-in study modules in order, stopping once ``until`` is registered."""
    for module in BUILTIN_MODULES:
        if until is not None and until in _STUDIES:
            return
        if module in _imported:
            continue
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a real missing dependency inside the module: say so
                raise
        _imported.add(module)


def import_studies(module: str) -> None:
    """Import a module that registers studies (a sweep YAML's ``import:``)."""
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"cannot import study module {module!r} ({exc}); install it or fix the name") from None


def get_study(name: str) -> StudySpec:
    """The registered study called ``name`` (ConfigError listing the known ones otherwise)."""
    if name not in _STUDIES:
        _load_builtins(until=name)
    if name not in _STUDIES:
        known = ", ".join(sorted(_STUDIES)) or "none"
        raise ConfigError(f"unknown study {name!r}; registered studies: {known}")
    return _STUDIES[name]


def list_studies() -> dict[str, StudySpec]:
    """All registered studies by name (built-ins imported first)."""
    _load_builtins()
    return dict(sorted(_STUDIES.items()))


def canonical_config(study: str, config: dict) -> dict:
    """The config a registered study would run (validated, defaults filled in); for studies that are
    not registered, the config itself. Used so one request always maps to one set of run keys."""
    if study not in _STUDIES:
        _load_builtins(until=study)
    spec = _STUDIES.get(study)
    if spec is None:
        if not isinstance(config, dict):
            raise ConfigError(f"config must be a dict, got {type(config).__name__}")
        return dict(config)
    return spec.validate(config, where=f"study {study!r} config")
