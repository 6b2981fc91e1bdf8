"""Registry of studies that ``rnnmem sweep`` and the runner know by name.

A study is a pydantic model validating one expanded config (everything but the seed), a function
``"module:function"`` with signature ``fn(config: dict, seeds: list[int]) -> list[RunRecord]``,
and how many seeds one task batches. The store never imports a study: studies come in by
registration.

* A module registers its studies at import time with :func:`register_study`.
* A package that holds several study modules declares them with :func:`register_study_modules`;
  they are imported only when a name is looked up that is not registered yet. ``rnnmem.studies``
  does that for the built-in studies when it is imported (the command layer imports it; so does
  importing any one study module, whose package runs first).
* ``run_tasks(tasks, "module:function", ...)`` imports the function's module before it
  canonicalises the tasks, so a study is registered before its run keys are computed.
* Third-party studies register from their own module, named in the sweep YAML as ``import:``.

The toy study of :mod:`rnnmem.store.testing` is the store's own and is always known.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from pydantic import BaseModel, ValidationError

from ..errors import ConfigError, config_error_from

#: study modules of the store itself (imported lazily on the first lookup that needs them)
_OWN_MODULES = ("rnnmem.store.testing",)
_study_modules: list[str] = list(_OWN_MODULES)
_STUDIES: dict[str, "StudySpec"] = {}
_imported: set[str] = set()

#: where a sweep file takes a missing option
_SWEEP_HINT = " (in a sweep file: under grid or fixed)"


@dataclass
class StudySpec:
    """A study runnable by name.

    Parameters
    ----------
    name : str
        The name sweeps and results use.
    config_model : type[pydantic.BaseModel]
        Validates one config (everything but the seed).
    run : str
        ``"module:function"``; ``fn(config, seeds) -> list[RunRecord]``.
    seeds_per_task : int
        Seeds one task computes together.
    description : str
        One line.
    check : callable, optional
        Extra cross-option checks on the validated model; raises ``ConfigError``.
    """

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
        """Option name -> pydantic field info of the config model.

        Returns
        -------
        dict of str to pydantic.fields.FieldInfo
            A copy of ``config_model.model_fields``, in declaration order.
        """
        return dict(self.config_model.model_fields)

    def validate(self, config: dict, where: str = "config") -> dict:
        """Validate one config with the study's model.

        Parameters
        ----------
        config : dict
            Option name -> value.
        where : str
            Prefix of the error message.

        Returns
        -------
        dict
            The full config (defaults filled in) as plain JSON types.

        Raises
        ------
        ConfigError
            One error naming every rejected option and the problem.
        """
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
            raise config_error_from(exc, where, missing_hint=_SWEEP_HINT, suffix=f" (study {self.name!r})") from None
        except ConfigError as exc:
            raise config_error_from(exc, where) from None
        except ValueError as exc:
            raise config_error_from(exc, where, suffix=f" (study {self.name!r})") from None
        if self.check is not None:
            try:
                self.check(model)
            except ConfigError as exc:
                raise config_error_from(exc, where) from None
        return model.model_dump(mode="json")


def register_study(spec: StudySpec) -> StudySpec:
    """Make ``spec`` runnable by name (re-registering the same name replaces it).

    Parameters
    ----------
    spec : StudySpec
        The study to register under ``spec.name``.

    Returns
    -------
    StudySpec
        ``spec``.

    Raises
    ------
    ConfigError
        When ``spec`` is not a StudySpec.
    """
    if not isinstance(spec, StudySpec):
        raise ConfigError(f"register_study expects a StudySpec, got {type(spec).__name__}")
    _STUDIES[spec.name] = spec
    return spec


def register_study_modules(*modules: str) -> None:
    """Declare modules that register studies when imported; they are imported on the first lookup
    of a name not yet registered (so declaring costs nothing).

    Parameters
    ----------
    *modules : str
        Importable module names, e.g. ``"mypackage.studies.mine"`` (a name already declared is
        kept once, in its first place).

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        When a name is not a non-empty string.
    """
    for module in modules:
        if not isinstance(module, str) or not module:
            raise ConfigError(f"register_study_modules expects module names, got {module!r}")
        if module not in _study_modules:
            _study_modules.append(module)


def _load_declared(until: str | None = None) -> None:
    """Import the declared study modules in order, stopping once ``until`` is registered."""
    for module in list(_study_modules):
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
    """Import a module that registers studies (a sweep YAML's ``import:``).

    Parameters
    ----------
    module : str
        Importable module name.

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        When the module (or something it imports) cannot be imported.
    """
    try:
        importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"cannot import study module {module!r} ({exc}); install it or fix the name") from None


def get_study(name: str) -> StudySpec:
    """The registered study called ``name``.

    Parameters
    ----------
    name : str

    Returns
    -------
    StudySpec

    Raises
    ------
    ConfigError
        Listing the registered studies when ``name`` is not one of them.
    """
    if name not in _STUDIES:
        _load_declared(until=name)
    if name not in _STUDIES:
        known = ", ".join(sorted(_STUDIES)) or "none"
        hint = ("" if _study_modules[len(_OWN_MODULES):] else  # no package declared its studies yet
                "; rnnmem's own studies register when rnnmem.studies is imported (import it first)")
        raise ConfigError(f"unknown study {name!r}; registered studies: {known}{hint}")
    return _STUDIES[name]


def list_studies() -> dict[str, StudySpec]:
    """All registered studies by name (the declared study modules imported first).

    Returns
    -------
    dict
        Name -> StudySpec, sorted by name.
    """
    _load_declared()
    return dict(sorted(_STUDIES.items()))


def canonical_config(study: str, config: dict) -> dict:
    """The config a registered study would run (validated, defaults filled in).

    Used so one request always maps to one set of run keys.

    Parameters
    ----------
    study : str
        Study name.
    config : dict
        The request.

    Returns
    -------
    dict
        The validated full config; for a study that is not registered, a copy of ``config``.

    Raises
    ------
    ConfigError
        When ``config`` is not a dict, or (registered study) fails :meth:`StudySpec.validate`.
    """
    if study not in _STUDIES:
        _load_declared(until=study)
    spec = _STUDIES.get(study)
    if spec is None:
        if not isinstance(config, dict):
            raise ConfigError(f"config must be a dict, got {type(config).__name__}")
        return dict(config)
    return spec.validate(config, where=f"study {study!r} config")
