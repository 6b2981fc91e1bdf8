"""Declarative sweeps: a YAML file naming a study, a grid of options, fixed options, seeds and a
results database, expanded into runner tasks (docs/sweeps.md shows the format).

Everything is validated before anything runs: unknown top-level keys, unknown study, unknown or
duplicated options, empty grids, bad ranges, and every expanded config through the study's
pydantic model (so a bad combination is reported with its option values, not after hours).

Ranges (per grid option, instead of a list):

* ``{start: a, stop: b, step: s}``: a, a+s, a+2s, ... up to and including b (b is included when
  it lands on the grid, within 1e-9 relative for floats); s > 0 and b >= a.
* ``{log2: [i, j]}``: 2**i, ..., 2**j for integers i <= j (``{log2: [0, 7]}`` = 1, 2, ..., 128).
* ``{log10: [i, j]}``: 10**i, ..., 10**j for integers i <= j (floats when i < 0).
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..errors import ConfigError, InputError, config_error_from
from .db import canonical_json
from .executors import EXECUTORS, Task

MAX_VALUES = 1_000_000  # per range: a typo such as step 1e-9 should not hang the validator


class SweepFile(BaseModel):
    """The YAML file's top level."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    study: str
    grid: dict[str, Any] = Field(default_factory=dict)
    fixed: dict[str, Any] = Field(default_factory=dict)
    seeds: int | list[int] | dict[str, int] = 1
    seeds_per_task: int | None = Field(default=None, ge=1)
    db: str | None = None
    import_: list[str] | str = Field(default_factory=list, alias="import")
    executor: str = "local"
    workers: int | None = Field(default=None, ge=0)
    address: str | None = None
    retries: int = Field(default=2, ge=0)
    description: str = ""


def expand_range(name: str, spec) -> list:
    """The values of one grid option: a list as given, or a range mapping (module docstring).

    Parameters
    ----------
    name : str
        The option's name (for error messages).
    spec : list, dict or scalar
        A non-empty list of values; a range ``{start, stop[, step]}`` (step 1 by default),
        ``{log2: [i, j]}`` or ``{log10: [i, j]}``; any other single value is a grid of one.

    Returns
    -------
    list
        The values in order: ints for an all-integer ``start/stop/step`` range and non-negative
        powers, floats otherwise (range values rounded to 12 decimals).

    Raises
    ------
    ConfigError
        For an empty list, a range with other keys, non-numeric ends, step <= 0, stop < start,
        non-integer or reversed exponents, or more than ``MAX_VALUES`` (1,000,000) values.
    """
    where = f"grid option {name!r}"
    if isinstance(spec, list):
        if not spec:
            raise ConfigError(f"{where} has no values; give at least one (or remove it)")
        return list(spec)
    if not isinstance(spec, dict):
        return [spec]  # a single value: a grid of one
    keys = set(spec)
    if keys in ({"log2"}, {"log10"}):
        (kind,) = keys
        ends = spec[kind]
        if (not isinstance(ends, list) or len(ends) != 2
                or not all(isinstance(e, int) and not isinstance(e, bool) for e in ends)):
            raise ConfigError(f"{where}: {kind} needs two integer exponents [first, last], got {ends!r}")
        lo, hi = ends
        if hi < lo:
            raise ConfigError(f"{where}: {kind} range [{lo}, {hi}] is empty (last < first)")
        if hi - lo >= MAX_VALUES:
            raise ConfigError(f"{where}: {kind} range [{lo}, {hi}] has too many values")
        base = 2 if kind == "log2" else 10
        return [base ** e if e >= 0 else float(base) ** e for e in range(lo, hi + 1)]
    if keys in ({"start", "stop"}, {"start", "stop", "step"}):
        start, stop, step = spec["start"], spec["stop"], spec.get("step", 1)
        for k, v in (("start", start), ("stop", stop), ("step", step)):
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                raise ConfigError(f"{where}: range {k} must be a number, got {v!r}")
        if not step > 0:
            raise ConfigError(f"{where}: range step must be > 0, got {step}")
        if stop < start:
            raise ConfigError(f"{where}: range from {start} to {stop} is empty (stop < start)")
        count = math.floor((stop - start) / step * (1 + 1e-9) + 1e-9) + 1
        if count > MAX_VALUES:
            raise ConfigError(f"{where}: range from {start} to {stop} by {step} has {count} values (max {MAX_VALUES})")
        if all(isinstance(v, int) for v in (start, stop, step)):
            return list(range(start, stop + 1, step))
        return [round(start + i * step, 12) for i in range(count)]
    raise ConfigError(f"{where}: a range is {{start, stop, step}}, {{log2: [first, last]}} or "
                      f"{{log10: [first, last]}}; got keys {', '.join(sorted(map(str, keys)))}")


def _seeds(spec) -> list[int]:
    if isinstance(spec, bool):
        raise ConfigError(f"seeds must be a count, a list of integers or {{start, count}}, got {spec!r}")
    if isinstance(spec, int):
        if spec < 1:
            raise ConfigError(f"seeds must be >= 1 (a count), got {spec}")
        return list(range(spec))
    if isinstance(spec, dict):
        if set(spec) != {"start", "count"} or spec["count"] < 1:
            raise ConfigError(f"seeds as a mapping is {{start: first_seed, count: n >= 1}}, got {spec}")
        return list(range(spec["start"], spec["start"] + spec["count"]))
    if not spec:
        raise ConfigError("seeds is an empty list; give a count or at least one seed")
    if len(set(spec)) != len(spec):
        raise ConfigError(f"seeds lists a seed twice: {spec}")
    return list(spec)


@dataclass
class SweepPlan:
    """A validated sweep: the study, every expanded config (full, validated), seeds, database."""

    study: str
    run: str
    configs: list[dict]
    seeds: list[int]
    seeds_per_task: int
    db: Path
    grid: dict[str, list]
    fixed: dict
    executor: str = "local"
    workers: int | None = None
    address: str | None = None
    retries: int = 2
    description: str = ""
    source: str = ""
    requested: list[dict] = field(default_factory=list)

    @property
    def runs(self) -> int:
        """Runs in the sweep: expanded configs x seeds.

        Returns
        -------
        int
            ``len(configs) * len(seeds)``.
        """
        return len(self.configs) * len(self.seeds)

    def tasks(self) -> list[Task]:
        """One task per (config, chunk of ``seeds_per_task`` seeds), in grid order.

        Returns
        -------
        list of Task
            ``len(configs) * ceil(len(seeds) / seeds_per_task)`` tasks; for each config its seed
            chunks in seed order (the last chunk may be shorter).
        """
        k = self.seeds_per_task
        chunks = [self.seeds[i:i + k] for i in range(0, len(self.seeds), k)]
        return [Task(self.study, cfg, list(chunk)) for cfg in self.configs for chunk in chunks]


def plan_sweep(data: dict, base: Path | None = None, source: str = "sweep") -> SweepPlan:
    """Validate a parsed sweep file and expand its grid (``base``: folder for relative db paths).

    Modules listed under ``import`` are imported before the study is looked up (they register
    their studies); the grid is the Cartesian product of the options' values, each config
    validated with ``fixed`` merged in.

    Parameters
    ----------
    data : dict
        The parsed YAML (keys of :class:`SweepFile`: study, grid, fixed, seeds, seeds_per_task, db,
        import, executor, workers, address, retries, description).
    base : Path or None, default None
        Folder that a relative ``db`` path is relative to (``None``: the current directory).
    source : str, default "sweep"
        Names the file in error messages; its stem names the default database ``<stem>.sqlite``.

    Returns
    -------
    SweepPlan
        The study, every expanded config (full, validated, in grid order), the requested configs,
        seeds, seeds per task (file, else the study's), database path and run options.

    Raises
    ------
    ConfigError
        For an unknown key, study, executor or option, an empty grid, an option both in grid and
        fixed, a bad range or seeds spec, a config its study rejects, or a duplicated config.
    """
    from .registry import get_study, import_studies

    if not isinstance(data, dict):
        raise ConfigError(f"{source}: a sweep file is a mapping with at least 'study' and 'grid'")
    try:
        sf = SweepFile.model_validate(data)
    except ValidationError as exc:
        raise config_error_from(exc, source, what="key",
                                allowed=[f.alias or n for n, f in SweepFile.model_fields.items()]) from None
    for module in [sf.import_] if isinstance(sf.import_, str) else sf.import_:
        import_studies(module)
    spec = get_study(sf.study)
    if sf.executor not in EXECUTORS:
        raise ConfigError(f"{source}: unknown executor {sf.executor!r}; choose one of {', '.join(EXECUTORS)}")
    if not sf.grid:
        raise ConfigError(f"{source}: the grid is empty; list at least one option with its values under 'grid' "
                          "(single values go under 'fixed')")
    known = spec.options()
    for section, opts in (("grid", sf.grid), ("fixed", sf.fixed)):
        unknown = [k for k in opts if k not in known]
        if unknown:
            raise ConfigError(f"{source}: unknown option {unknown[0]!r} in {section} for study {sf.study!r}; "
                              f"its options are: {', '.join(known)}")
    both = sorted(set(sf.grid) & set(sf.fixed))
    if both:
        raise ConfigError(f"{source}: option {both[0]!r} is both in grid and fixed; keep it in one")
    grid = {name: expand_range(name, values) for name, values in sf.grid.items()}
    seeds = _seeds(sf.seeds)
    configs, requested, seen = [], [], set()
    for combo in itertools.product(*grid.values()):
        raw = {**sf.fixed, **dict(zip(grid, combo))}
        label = ", ".join(f"{k}={v}" for k, v in zip(grid, combo))
        full = spec.validate(raw, where=f"{source}: config ({label})")
        text = canonical_json(full)
        if text in seen:
            raise ConfigError(f"{source}: config ({label}) appears twice in the grid (duplicate values?)")
        seen.add(text)
        configs.append(full)
        requested.append(raw)
    db = Path(sf.db).expanduser() if sf.db else Path(f"{Path(source).stem or 'sweep'}.sqlite")
    if base is not None and not db.is_absolute():
        db = base / db
    return SweepPlan(study=sf.study, run=spec.run, configs=configs, seeds=seeds,
                     seeds_per_task=sf.seeds_per_task or spec.seeds_per_task, db=db, grid=grid, fixed=sf.fixed,
                     executor=sf.executor, workers=sf.workers, address=sf.address, retries=sf.retries,
                     description=sf.description, source=source, requested=requested)


def load_sweep(path) -> SweepPlan:
    """Read and validate a sweep YAML file (relative ``db`` paths are relative to the file).

    Parameters
    ----------
    path : str or Path
        The sweep YAML file (format in docs/sweeps.md).

    Returns
    -------
    SweepPlan
        :func:`plan_sweep` of its contents; the default database is ``<file stem>.sqlite`` next to it.

    Raises
    ------
    InputError
        When the file does not exist, cannot be read, or is not valid YAML.
    ConfigError
        From :func:`plan_sweep`, for any invalid content.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"sweep file {path} not found")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise InputError(f"{path}: not valid YAML ({str(exc).splitlines()[0]})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read sweep file {path}: {exc}") from None
    return plan_sweep(data, base=path.resolve().parent, source=str(path))


@dataclass
class Calibration:
    """Timing of sample tasks run in-process, and the cost of the sweep extrapolated from it."""

    samples: list[dict]            # each: config, seeds, wall_s
    per_run_s: float               # mean wall seconds per run over the samples
    runs_to_do: int
    tasks_to_do: int
    workers: int
    cpu_s: float                   # per_run_s x runs_to_do
    wall_s: float                  # cpu_s / workers (ideal parallel speed-up)


def calibrate(plan: SweepPlan, samples: int = 1, workers: int | None = None, stored: set[str] | None = None
              ) -> Calibration:
    """Run ``samples`` tasks of the plan in this process (nothing is stored) and extrapolate.

    The sampled configs are the centres of ``samples`` equal slices of the expanded grid (the
    middle config for a single sample: a systematic sample); each sample task carries ``seeds_per_task`` seeds, as the sweep will. The estimate
    assumes every run costs the mean sampled per-run time: where cost grows with an option (units,
    T...) sample more (``samples``) and read it as an order of magnitude.

    Parameters
    ----------
    plan : SweepPlan
        The validated sweep.
    samples : int, default 1
        Sample tasks to time (at most one per config).
    workers : int or None, default None
        Parallel workers for the wall-time estimate (``None``: the plan's, else
        :func:`rnnmem.store.executors.default_workers`; at least 1).
    stored : set of str or None, default None
        Keys already stored: their runs are not counted as left to do.

    Returns
    -------
    Calibration
        The samples (config as requested, seeds, wall_s), ``per_run_s`` (mean seconds per run),
        runs and tasks left to do, ``workers``, ``cpu_s = per_run_s * runs_to_do`` and
        ``wall_s = cpu_s / workers`` (seconds).

    Raises
    ------
    ConfigError
        For ``samples < 1``, or from the sampled task (a bad config or return value).
    """
    from .db import run_key
    from .executors import default_workers
    from .runner import timed_task

    if samples < 1:
        raise ConfigError(f"calibration needs at least one sample task, got {samples}")
    stored = stored or set()
    todo = [(t, [s for s in t.seeds if run_key(t.study, t.config, s) not in stored]) for t in plan.tasks()]
    runs_to_do = sum(len(s) for _, s in todo)
    tasks_to_do = sum(1 for _, s in todo if s)
    n = len(plan.configs)
    k = min(samples, n)
    picks = sorted({int((i + 0.5) * n / k) for i in range(k)})  # centre of each of k equal strata of the grid
    seeds = plan.seeds[:plan.seeds_per_task]
    rows = []
    for i in picks:
        _, wall = timed_task(plan.run, Task(plan.study, plan.configs[i], list(seeds)))
        rows.append({"config": plan.requested[i] if plan.requested else plan.configs[i], "seeds": list(seeds),
                     "wall_s": wall})
    per_run = sum(r["wall_s"] for r in rows) / (len(rows) * len(seeds))
    w = workers if workers is not None else plan.workers
    w = max(1, default_workers() if w is None else w)
    cpu = per_run * runs_to_do
    return Calibration(rows, per_run, runs_to_do, tasks_to_do, w, cpu, cpu / w)


def run_sweep(plan: SweepPlan, executor: str | None = None, workers: int | None = None, address: str | None = None,
              progress: bool = True, db: Path | None = None) -> pd.DataFrame:
    """Run (or resume) the sweep into its database; returns the runs' table (runner.run_tasks).

    Parameters
    ----------
    plan : SweepPlan
        The validated sweep.
    executor : str or None, default None
        ``"local"`` or ``"ray"`` (``None``: the plan's).
    workers : int or None, default None
        Worker processes (``None``: the plan's, then min(2, CPUs)).
    address : str or None, default None
        Ray cluster address (``None``: the plan's).
    progress : bool, default True
        Show a progress bar.
    db : Path or None, default None
        Results database to use instead of the plan's.

    Returns
    -------
    pandas.DataFrame
        :func:`rnnmem.store.runner.run_tasks`'s table of every run of the sweep, in grid then seed order.

    Raises
    ------
    InputError
        When the database cannot be opened.
    ConfigError
        For an unknown executor or a bad task.
    TaskFailed
        When tasks still fail after the plan's ``retries``; the other runs are stored.
    """
    from .db import ResultStore
    from .runner import run_tasks

    with ResultStore(db or plan.db) as store:
        return run_tasks(plan.tasks(), plan.run, store, executor=executor or plan.executor,
                         workers=workers if workers is not None else plan.workers,
                         address=address or plan.address, retries=plan.retries, progress=progress,
                         description=plan.description or f"sweep {plan.study}")


def stored_keys(db: Path, study: str) -> set[str]:
    """Keys already in ``db`` for ``study`` (empty when the database does not exist yet; never creates it).

    Parameters
    ----------
    db : str or Path
        The results database.
    study : str
        The study name.

    Returns
    -------
    set of str
        The run keys of that study stored in ``db``.

    Raises
    ------
    InputError
        When ``db`` exists but is not a readable rnnmem results store.
    """
    from .db import ResultStore

    if not Path(db).exists():
        return set()
    with ResultStore(db) as store:
        return store.keys(study)


def format_seconds(s: float) -> str:
    """A duration in seconds as short text in the largest fitting unit, one decimal.

    Below 120 s in seconds, below 2 h in minutes, below 48 h in hours, else in days.

    Parameters
    ----------
    s : float
        Seconds.

    Returns
    -------
    str
        E.g. ``"42.0 s"``, ``"2.5 min"``, ``"3.0 h"``, ``"2.1 days"``.
    """
    if s < 120:
        return f"{s:.1f} s"
    if s < 7200:
        return f"{s / 60:.1f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"

