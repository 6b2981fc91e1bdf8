"""Reproduction of Muccino (2019), "An Investigation of RNN Memory Stability".

One randomly initialised LSTM or GRU layer (Keras 2.2.4 defaults) is driven by two N(0, 1) input
streams that differ for P = 1,000 steps and then share a 99,000-step tail; the study reports the
average number of shared steps until the outputs are "identical", over a grid of input sizes x
units in {1, 2, ..., 128}. This module holds the study's configuration, the function that runs one
grid cell (all its seeds batched into one computation), the grid, and the aggregation; the report
lives in ``muccino_report.py``.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConfigError
from ..store.db import config_column
from ..store.validation import validate_model
from ..probes.forgetting import DEFAULT_TOLERANCES, STATUSES, ForgettingSettings, forgetting, tol_name

STUDY = "forgetting"
SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
QUICK_SIZES = (1, 8, 64)
VARIANTS = {  # name -> (convention, dtype); the first is the published setting
    "keras-float32": ("keras", "float32"),
    "keras-float64": ("keras", "float64"),
    "torch-float32": ("torch", "float32"),
}


class ForgettingConfig(BaseModel):
    """One configuration of the forgetting experiment (everything but the seed).

    Every setting that changes a run's result is a field, so it is part of the stored config and
    of the run key: ``growth_min`` (the ``diverging`` threshold) too, so runs stored before it was
    a setting (their configs lack it) are never taken for runs labelled by the growth rule.
    """

    model_config = ConfigDict(extra="forbid")

    cell: str = "lstm"
    input_size: int = Field(ge=1)
    units: int = Field(ge=1)
    layers: int = Field(default=1, ge=1)
    convention: str = "keras"
    dtype: Literal["float32", "float64"] = "float32"
    options: dict = Field(default_factory=dict)
    T: int = Field(default=100_000, ge=2)
    P: int = Field(default=1_000, ge=1)
    tolerances: list[float] = Field(default_factory=lambda: list(DEFAULT_TOLERANCES))
    block: int = Field(default=250, ge=1)
    floor_factor: float = 1024.0
    floor_window: int = 500
    floor_margin: float = 10.0
    fit_floor_factor: float = 100.0
    fit_skip: int = Field(default=0, ge=0)
    growth_min: float = ForgettingSettings.growth_min
    early_stop: bool = True
    device: str = "cpu"

    @field_validator("cell")
    @classmethod
    def _known_cell(cls, v):
        from ..cells import UNITS

        if v not in UNITS:
            raise ValueError(f"unknown cell {v!r}; choose one of {', '.join(UNITS)}")
        return v

    def settings(self) -> ForgettingSettings:
        """The probe settings of this configuration.

        Returns
        -------
        ForgettingSettings
            ``T``, ``P``, ``tolerances``, ``block``, ``early_stop``, the floor and fit options and
            ``growth_min``, as given here.

        Raises
        ------
        ConfigError
            From ``ForgettingSettings``'s checks (e.g. ``P >= T``, a negative tolerance).
        """
        return ForgettingSettings(
            T=self.T, P=self.P, tolerances=tuple(self.tolerances), block=self.block, early_stop=self.early_stop,
            floor_factor=self.floor_factor, floor_window=self.floor_window, floor_margin=self.floor_margin,
            fit_floor_factor=self.fit_floor_factor, fit_skip=self.fit_skip, growth_min=self.growth_min,
        )


def validate_config(config: dict) -> ForgettingConfig:
    """Validate a config dict, turning pydantic's report into one ConfigError line.

    Parameters
    ----------
    config : dict
        The fields of :class:`ForgettingConfig` (``input_size`` and ``units`` required; unknown
        fields are refused).

    Returns
    -------
    ForgettingConfig
        The validated configuration (its :meth:`ForgettingConfig.settings` checked too).

    Raises
    ------
    ConfigError
        For an invalid field (unknown cell, a value out of range, an unknown field) or invalid probe
        settings (``P >= T``, negative tolerances...).
    """
    cfg = validate_model(ForgettingConfig, config, "forgetting")
    cfg.settings()  # raises ConfigError for P >= T, negative tolerances...
    return cfg


def run_cell(config: dict, seeds: list[int]):
    """Run one grid cell for ``seeds`` (one network per seed, batched as one ensemble).

    Records store ``config`` exactly as given (so their keys match the task's); give the full
    config (``validate_config(c).model_dump()``) for a stable key.

    Returns one ``RunRecord`` per seed with the per-tolerance forgetting steps, status,
    contraction rate and the log-binned divergence curves.

    The forgetting steps at tolerance eps (Muccino 2019, "An Investigation of RNN Memory
    Stability") are ``n(eps) = max(0, t_last(eps) + 1 - P)``, ``t_last(eps) = max{t : d_t > eps}``,
    ``d_t = max_i |y_t^a - y_t^b|`` (``probes.forgetting``).

    Parameters
    ----------
    config : dict
        A :class:`ForgettingConfig` as a dict (validated here).
    seeds : list of int
        The seeds, one network each (the weights and the input streams follow the seed).

    Returns
    -------
    list of RunRecord
        One record per seed (study ``"forgetting"``), in the order of ``seeds``; the metrics carry
        ``batch_size`` and the batch's wall time.

    Raises
    ------
    ConfigError
        If ``config`` is invalid (:func:`validate_config`) or the unit cannot be built.
    """
    from ..cells import build
    from ..store import seed_records

    cfg = validate_config(config)
    unit = build(cfg.cell, cfg.input_size, cfg.units, layers=cfg.layers, convention=cfg.convention,
                 dtype=cfg.dtype, seeds=list(seeds), device=cfg.device, **cfg.options)
    result = forgetting(unit, cfg.settings())
    return seed_records(STUDY, dict(config), result.table, result.curves, result.wall_s,
                        {"batch_size": len(seeds)}, drop=("run", "dtype"))


def grid_tasks(cells=("lstm", "gru"), input_sizes=SIZES, units=SIZES, runs: int = 10, seed: int = 0,
               variants=("keras-float32",), **fixed):
    """One Task per (variant, cell, input size, units), each carrying ``runs`` seeds.

    Tasks are ordered largest first so parallel workers finish together.

    Parameters
    ----------
    cells : tuple of str, default ("lstm", "gru")
        The cell types.
    input_sizes, units : iterables of int, default SIZES (1, 2, ..., 128)
        The grid's input sizes and unit counts.
    runs : int, default 10
        Seeds per grid cell: ``seed .. seed + runs - 1``.
    seed : int, default 0
        The first seed.
    variants : tuple of str, default ("keras-float32",)
        Names in :data:`VARIANTS` (convention and dtype).
    **fixed
        Further :class:`ForgettingConfig` fields shared by every task (``T``, ``P``, ``tolerances``,
        ``device``...).

    Returns
    -------
    list of Task
        Study ``"forgetting"``, each config complete (every field explicit), sorted by
        ``units * (units + input_size)`` descending.

    Raises
    ------
    ConfigError
        If ``runs < 1``, a variant is unknown, or a config is invalid.
    """
    from ..store import Task

    if runs < 1:
        raise ConfigError(f"runs must be >= 1, got {runs}")
    tasks = []
    for variant in variants:
        if variant not in VARIANTS:
            raise ConfigError(f"unknown variant {variant!r}; choose from {', '.join(VARIANTS)}")
        convention, dtype = VARIANTS[variant]
        for cell in cells:
            for i in input_sizes:
                for h in units:
                    cfg = {"cell": cell, "input_size": int(i), "units": int(h), "convention": convention,
                           "dtype": dtype, **fixed}
                    full = validate_config(cfg).model_dump()  # the stored config: every field explicit
                    tasks.append(Task(STUDY, full, list(range(seed, seed + runs))))
    tasks.sort(key=lambda t: -(t.config["units"] * (t.config["units"] + t.config["input_size"])))
    return tasks


def variant_of(row) -> str:
    """The variant name of a run from its convention and dtype.

    Parameters
    ----------
    row : mapping
        A row with ``convention`` and ``dtype``.

    Returns
    -------
    str
        The :data:`VARIANTS` name (e.g. ``"keras-float32"``), else ``"<convention>-<dtype>"``.
    """
    for name, (conv, dt) in VARIANTS.items():
        if row["convention"] == conv and row["dtype"] == dt:
            return name
    return f"{row['convention']}-{row['dtype']}"


def runs_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The store's table reduced to the columns the report needs, with a ``variant`` column.

    Parameters
    ----------
    df : pandas.DataFrame
        The results store's table of forgetting runs (config columns, ``seed``, ``status`` and metrics).

    Returns
    -------
    pandas.DataFrame
        One row per run: ``cell``, ``input_size``, ``units``, ``convention``, ``dtype``, ``layers``,
        ``P``, ``variant``, ``seed``, ``status``, and the metrics ``steps_*``, ``censored_*``,
        ``horizon_*``, ``rate``, ``rate_se``, ``d0``, ``floor_level``, ``event_step``,
        ``steps_computed``, ``input_seed``, ``wall_s`` present in ``df``.
    """
    out = pd.DataFrame({k: df[config_column(df, k)] for k in ("cell", "input_size", "units", "convention", "dtype", "layers",
                                                              "P")})
    out["variant"] = out.apply(variant_of, axis=1)
    out["seed"] = df["seed"].values
    out["status"] = df["status"].values
    for c in df.columns:
        if c.startswith(("steps_", "censored_", "horizon_")) or c in (
                "rate", "rate_se", "d0", "floor_level", "event_step", "steps_computed", "input_seed", "wall_s"):
            out[c] = df[c].values
    return out


def censored_at(runs: pd.DataFrame) -> pd.Series:
    """Steps after the prefix each run was followed for: its value at a censored tolerance is
    larger than this (a right-censored observation). ``floor``: the step the floor was detected;
    ``overflow``: the steps before the state became non-finite; otherwise the last computed step.

    Parameters
    ----------
    runs : pandas.DataFrame
        Runs with ``status``, ``event_step``, ``steps_computed`` and ``P``.

    Returns
    -------
    pandas.Series
        Per run (same index): ``event_step + 1 - P`` for ``floor``, ``event_step - P`` for
        ``overflow``, else ``steps_computed - P``.
    """
    end = np.where(runs["status"] == "floor", runs["event_step"].astype(float) + 1,
                   np.where(runs["status"] == "overflow", runs["event_step"].astype(float),
                            runs["steps_computed"].astype(float)))
    return pd.Series(end - runs["P"].astype(float), index=runs.index)


def aggregate(runs: pd.DataFrame, tolerances=DEFAULT_TOLERANCES) -> pd.DataFrame:
    """Per (variant, cell, input size, units): runs, forgetting steps, the number of censored
    runs, mean contraction rate and run-status counts.

    A run is *censored* at a tolerance when its value there cannot be measured (still above the
    tolerance when the run ended at T, or the run ended at the rounding floor and the tolerance
    is below what the dtype resolves). Per tolerance: ``mean_<tol>`` is the mean over all runs and
    is NaN as soon as one run is censored (a censored run is never averaged, and a mean over the
    few measurable runs is not shown as the cell's mean); ``mean_uncensored_<tol>`` is that mean
    over the measurable runs only (labelled as such wherever shown); ``median_<tol>`` is the
    Kaplan-Meier median (NaN when more than half the runs are censored); ``censored_<tol>``
    counts the censored runs.

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run (:func:`runs_frame`), with ``steps_<tol>`` and ``censored_<tol>`` per
        tolerance, ``rate``, ``status`` and (for the medians) ``P``, ``event_step``, ``steps_computed``.
    tolerances : iterable of float, default DEFAULT_TOLERANCES (0, 1e-6, 1e-4, 1e-2)
        The tolerances summarised (column suffixes from ``tol_name``).

    Returns
    -------
    pandas.DataFrame
        One row per grid cell: the keys, ``runs``, per tolerance ``mean_``, ``mean_uncensored_``,
        ``median_``, ``std_`` (ddof 1, of the measurable runs) and ``censored_``, ``rate`` (mean,
        nats/step) and ``n_<status>`` per status.
    """
    from .muccino_verdicts import km_median

    keys = ["variant", "cell", "input_size", "units"]
    runs = runs.assign(_cens_at=censored_at(runs)) if "P" in runs.columns else runs.assign(_cens_at=np.nan)
    rows = []
    for key, g in runs.groupby(keys, sort=True):
        row = dict(zip(keys, key))
        row["runs"] = len(g)
        for tol in tolerances:
            name = tol_name(tol)
            cens = g[f"censored_{name}"].astype(bool)
            vals = g.loc[~cens, f"steps_{name}"].astype(float)
            row[f"mean_{name}"] = float(vals.mean()) if len(vals) and not cens.any() else float("nan")
            row[f"mean_uncensored_{name}"] = float(vals.mean()) if len(vals) else float("nan")
            row[f"median_{name}"] = km_median(vals.to_numpy(), g.loc[cens, "_cens_at"].to_numpy())
            row[f"std_{name}"] = float(vals.std(ddof=1)) if len(vals) > 1 else float("nan")
            row[f"censored_{name}"] = int(cens.sum())
        row["rate"] = float(g["rate"].astype(float).mean())
        for st in STATUSES:
            row[f"n_{st}"] = int((g["status"] == st).sum())
        rows.append(row)
    return pd.DataFrame(rows)


def reproduce(out, quick: bool = False, runs: int | None = None, T: int = 100_000, P: int = 1_000,
              variants=None, cells=("lstm", "gru"), sizes=None, tolerance: float = 1e-4, workers: int | None = None,
              db=None, reference=None, device: str = "cpu", seed: int = 0, progress: bool = True,
              command: str = "") -> dict:
    """Run (or resume) the grid, then write the report. Returns paths and timings.

    Full: 8 x 8 grid, 10 runs, three variants (keras float32 as published, keras float64, torch
    float32). ``quick``: input sizes and units in {1, 8, 64}, 3 runs; the same report.

    Parameters
    ----------
    out : str or Path
        The report folder (created); the results database defaults to ``out/results.sqlite``.
    quick : bool, default False
        The quick grid.
    runs : int or None
        Seeds per grid cell (default 3 quick, 10 full).
    T, P : int, default 100_000 and 1_000
        Stream length and differing prefix (steps).
    variants : iterable of str or None
        :data:`VARIANTS` names (default: all three).
    cells : tuple of str, default ("lstm", "gru")
    sizes : iterable of int or None
        Input sizes and units of the grid (default :data:`QUICK_SIZES` or :data:`SIZES`).
    tolerance : float, default 1e-4
        The tolerance of the main heat map and the verdicts (added to the default tolerances if new).
    workers : int or None
        Parallel workers (default: the store's default).
    db : str or Path or None
        The results database (finished runs are reused: reruns resume).
    reference : str or Path or None
        A CSV replacing the published table (cell, input_size, units, mean_steps).
    device : str, default "cpu"
    seed : int, default 0
        The first seed.
    progress : bool, default True
        Show progress.
    command : str, default ""
        The command line, recorded in the report.

    Returns
    -------
    dict
        ``markdown``, ``html`` (paths), ``runs`` (number of runs), ``wall_s`` (seconds of the grid)
        and ``db`` (the database path).

    Raises
    ------
    InputError
        If the ``reference`` table is missing or malformed (checked before the grid runs).
    ConfigError
        For an unknown variant, an invalid setting or device.
    """
    import time
    from pathlib import Path

    from ..devices import resolve_device
    from ..store import ResultStore, run_tasks
    from ..store.executors import default_workers
    from .muccino_report import published_frame, write_report

    # every input is checked before the grid runs
    device = str(resolve_device(device))
    published_frame(reference)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    sizes = tuple(sizes or (QUICK_SIZES if quick else SIZES))
    runs = runs or (3 if quick else 10)
    variants = tuple(variants or VARIANTS)
    tolerances = list(DEFAULT_TOLERANCES)
    if tolerance not in tolerances:
        tolerances.append(float(tolerance))
    tasks = grid_tasks(cells, sizes, sizes, runs=runs, seed=seed, variants=variants, T=T, P=P,
                       tolerances=tolerances, device=device)
    db_path = Path(db) if db else out / "results.sqlite"
    start = time.perf_counter()
    with ResultStore(db_path) as store:
        table = run_tasks(tasks, "rnnmem.studies.muccino:run_cell", store, workers=workers, progress=progress,
                          description="forgetting grid")
    wall = time.perf_counter() - start
    runs_df = runs_frame(table)
    agg = aggregate(runs_df, tolerances)
    meta = {"runs": runs, "T": T, "P": P, "tolerances": tolerances, "wall_s": wall,
            "workers": workers if workers is not None else default_workers(), "command": command or "rnnmem reproduce muccino",
            "db": db_path.name if db_path.parent == out else str(db_path)}
    md, html = write_report(runs_df, agg, out, meta, tolerance=tolerance, reference=reference)
    return {"markdown": md, "html": html, "runs": len(runs_df), "wall_s": wall, "db": db_path}


def _register() -> None:
    from ..store.registry import StudySpec, register_study

    register_study(StudySpec(STUDY, ForgettingConfig, "rnnmem.studies.muccino:run_cell", seeds_per_task=10,
                             description="state forgetting (Muccino 2019)", check=lambda cfg: cfg.settings()))


_register()
