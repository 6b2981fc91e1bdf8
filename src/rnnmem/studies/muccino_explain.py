"""Protocol search for the memory-stability table (``rnnmem reproduce muccino --explain``).

Muccino (2019) never said what "identical outputs" meant, which framework kernel ran, or how the
recurrent kernel was initialised. This module runs the grid under a documented set of protocol
variants and ranks them by their fit to the published table.

A protocol variant is a *model variant* (what computes the outputs; each needs its own runs) times
a *read-out* (how the stored trajectory is turned into a count; computed afterwards from the same
runs, no re-running):

Model variants (``MODEL_VARIANTS``):

- ``keras``: Keras 2.2.4 ``LSTM``/``GRU`` defaults (hard-sigmoid gates, one bias, GRU
  reset-before, glorot_uniform kernel, orthogonal recurrent kernel, unit forget bias).
- ``cudnn``: Keras 2.2's ``CuDNNLSTM``/``CuDNNGRU`` (TF 1.12), what the post's previous study ran:
  sigmoid gates, two biases (input and recurrent; unit forget bias on the recurrent one, which adds
  to the same pre-activation), GRU reset-after (``n = tanh(x W_n + b_n + r * (h U_n + b_hn))``),
  glorot_uniform kernel, orthogonal recurrent kernel. rnnmem's ``keras2`` convention with
  ``two_biases=True``. The ``torch`` convention computes the same equations but is *not* this
  variant: it initialises every weight U(-1/sqrt(H), 1/sqrt(H)) with a zero forget bias.
- ``-glorot``: the recurrent kernel glorot_uniform instead of orthogonal (cell option
  ``init="glorot"``).
- ``f16`` / ``f32`` / ``f64``: arithmetic precision. float16 is *emulated* on the CPU: weights and
  inputs are rounded to float16 values once, and the recurrent state (h, and c for the LSTM) is
  rounded to float16 after every step; each step's arithmetic runs in float32 (as cuDNN's fp16 mode
  with fp32 accumulation). The rounding floor is detected at float16's machine epsilon.

Read-outs (``CRITERIA`` x first/stay x offset x runs), all from one trajectory per run:

- criterion: element-wise absolute tolerance 1e-2 ... 1e-6 and exact equality; relative tolerance
  ``|a - b| <= rtol |b|`` (1e-3, 1e-4, 1e-5); ``np.isclose`` defaults (rtol 1e-5, atol 1e-8); the
  outputs rounded to 2, 4, 6 or 8 decimals (8: numpy's default print precision) and compared.
- ``stay``: steps until the outputs are close and stay so (the study's reading); ``first``: steps
  until they are close for the first time.
- offset ``P``: the count starts at the first shared step (a run already close there counts 0);
  ``P+1``: one step later (count - 1, floored at 0).
- runs: the first 5 runs per cell (every published mean is a multiple of 0.2) or all of them.

Fit (``fit_table``): mean |log2((ours + 0.1) / (published + 0.1))| over all grid cells both tables
have (64 per cell type on the full grid), and separately over units >= 2 and units = 1; the ratio of
sums of the 1-unit column; the four trend verdicts (``muccino_verdicts``). A censored run (its value
not measurable by T) enters with the steps it was followed for, a lower bound, so a variant whose
runs do not settle is never flattered. Variants are ranked by the all-cell fit.

A variant *explains* the published table when (a) its all-cell fit is within twice the noise floor
(the fit between two independent 5-run tables of the same protocol, estimated from our runs),
(b) its four trend verdicts agree with the published ones, and (c) its 1-unit ratio of sums lies in
[0.5, 2]. If none does, the report says so.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError
from ..probes.forgetting import OutputCriterion, forgetting

STUDY = "forgetting-explain"
MODEL_VARIANTS = {
    "keras-f32": dict(convention="keras", options={}, dtype="float32", f16=False),
    "keras-f64": dict(convention="keras", options={}, dtype="float64", f16=False),
    "keras-f16": dict(convention="keras", options={}, dtype="float32", f16=True),
    "keras-glorot-f32": dict(convention="keras", options={"init": "glorot"}, dtype="float32", f16=False),
    "cudnn-f32": dict(convention="keras2", options={"two_biases": True}, dtype="float32", f16=False),
    "cudnn-f64": dict(convention="keras2", options={"two_biases": True}, dtype="float64", f16=False),
    "cudnn-f16": dict(convention="keras2", options={"two_biases": True}, dtype="float32", f16=True),
    "cudnn-glorot-f32": dict(convention="keras2", options={"two_biases": True, "init": "glorot"}, dtype="float32",
                             f16=False),
}
CRITERIA = (
    OutputCriterion("abs1e-2", atol=1e-2), OutputCriterion("abs1e-3", atol=1e-3),
    OutputCriterion("abs1e-4", atol=1e-4), OutputCriterion("abs1e-5", atol=1e-5),
    OutputCriterion("abs1e-6", atol=1e-6), OutputCriterion("exact"),
    OutputCriterion("rel1e-3", rtol=1e-3), OutputCriterion("rel1e-4", rtol=1e-4),
    OutputCriterion("rel1e-5", rtol=1e-5), OutputCriterion("isclose", atol=1e-8, rtol=1e-5),
    OutputCriterion("round2", decimals=2), OutputCriterion("round4", decimals=4),
    OutputCriterion("round6", decimals=6), OutputCriterion("round8", decimals=8),
)
DEFAULT = ("keras-f32", "abs1e-4", "stay", "P")  # the main report's protocol
DEFAULT_T = 20_000


def emulate_float16(unit) -> None:
    """Make a float32 rnnmem unit compute as float16 storage with float32 arithmetic: weights
    rounded to float16 values now; inputs rounded per layer; the state rounded after each step.
    Sets ``unit.rounding_dtype = torch.float16`` (the forgetting probe detects the floor there).

    Parameters
    ----------
    unit : rnnmem unit
        A float32 unit with a ``_layer_stepper`` (a built rnnmem LSTM or GRU); modified in place.

    Returns
    -------
    None
    """
    with torch.no_grad():
        for p in unit.parameters():
            p.copy_(p.to(torch.float16).to(p.dtype))
    orig = unit._layer_stepper

    def stepper(layer, inputs):
        steps, step = orig(layer, inputs.to(torch.float16).to(inputs.dtype))

        def step16(xp_t, st):
            _, st = step(xp_t, st)
            st = tuple(v.to(torch.float16).to(v.dtype) for v in st)
            return st[0], st

        return steps, step16

    unit._layer_stepper = stepper
    unit.rounding_dtype = torch.float16


def run_cell(config: dict, seeds: list[int]):
    """One grid cell of one model variant: every criterion read from one trajectory per run.

    ``config``: cell, input_size, units, variant (a ``MODEL_VARIANTS`` key), T, P.
    Returns one RunRecord per seed (``stay_<criterion>``, ``first_<criterion>``, their censoring
    flags, status, event step).

    Parameters
    ----------
    config : dict
        ``cell``, ``input_size``, ``units``, ``variant``, ``T``, ``P`` (stored as given).
    seeds : list of int
        One network (and input pair) per seed, batched as one ensemble.

    Returns
    -------
    list of RunRecord
        Study ``"forgetting-explain"``, one per seed, with ``status``, ``event_step``,
        ``steps_computed``, ``stay_*``, ``first_*``, ``censored_stay_*``, ``censored_first_*`` for every
        criterion of :data:`CRITERIA`.

    Raises
    ------
    ConfigError
        If ``variant`` is not a :data:`MODEL_VARIANTS` key (or the unit or probe settings are invalid).
    """
    from ..cells import build
    from ..store import seed_records

    if config.get("variant") not in MODEL_VARIANTS:
        raise ConfigError(f"unknown model variant {config.get('variant')!r}; choose from {', '.join(MODEL_VARIANTS)}")
    mv = MODEL_VARIANTS[config["variant"]]
    unit = build(config["cell"], int(config["input_size"]), int(config["units"]), convention=mv["convention"],
                 dtype=mv["dtype"], seeds=list(seeds), **mv["options"])
    if mv["f16"]:
        emulate_float16(unit)
    res = forgetting(unit, T=int(config["T"]), P=int(config["P"]), tolerances=(1e-4,), criteria=CRITERIA)
    keep = ["seed", "status", "event_step", "steps_computed"] + [c for c in res.table.columns
                                                                  if c.startswith(("stay_", "first_", "censored_stay_",
                                                                                   "censored_first_"))]
    return seed_records(STUDY, dict(config), res.table[keep], [{}] * len(res.table), res.wall_s,
                        {"batch_size": len(seeds)})


def grid_tasks(sizes, runs: int, T: int, P: int, seed: int = 0, variants=None, cells=("lstm", "gru")):
    """One Task per (model variant, cell, input size, units), largest first.

    Parameters
    ----------
    sizes : iterable of int
        The input sizes and unit counts (the same list for both axes).
    runs : int
        Seeds per grid cell: ``seed .. seed + runs - 1``.
    T, P : int
        Stream length and differing prefix (steps).
    seed : int, default 0
        The first seed.
    variants : iterable of str or None
        :data:`MODEL_VARIANTS` keys (default: all).
    cells : tuple of str, default ("lstm", "gru")

    Returns
    -------
    list of Task
        Study ``"forgetting-explain"``, sorted by ``units * (units + input_size)`` descending.

    Raises
    ------
    ConfigError
        If ``runs < 1``, ``P >= T`` or a variant is unknown.
    """
    from ..store import Task

    if runs < 1:
        raise ConfigError(f"runs must be >= 1, got {runs}")
    if P >= T:
        raise ConfigError(f"the differing prefix P={P} must be shorter than the sequence T={T}")
    tasks = []
    for v in variants or MODEL_VARIANTS:
        if v not in MODEL_VARIANTS:
            raise ConfigError(f"unknown model variant {v!r}; choose from {', '.join(MODEL_VARIANTS)}")
        for cell in cells:
            for i in sizes:
                for h in sizes:
                    cfg = {"cell": cell, "input_size": int(i), "units": int(h), "variant": v, "T": int(T), "P": int(P)}
                    tasks.append(Task(STUDY, cfg, list(range(seed, seed + runs))))
    tasks.sort(key=lambda t: -(t.config["units"] * (t.config["units"] + t.config["input_size"])))
    return tasks


def runs_table(df: pd.DataFrame) -> pd.DataFrame:
    """The store's table with plain column names (config and metrics prefixes stripped).

    Parameters
    ----------
    df : pandas.DataFrame
        The results store's table of ``forgetting-explain`` runs.

    Returns
    -------
    pandas.DataFrame
        One row per run: ``variant``, ``cell``, ``input_size``, ``units``, ``T``, ``P``, ``seed``,
        ``status``, ``event_step``, ``steps_computed`` and every ``stay_``/``first_``/``censored_*``
        column.
    """
    from ..store.db import config_column

    out = pd.DataFrame({k: df[config_column(df, k)].values for k in ("variant", "cell", "input_size", "units", "T", "P")})
    for c in df.columns:
        base = c.split(".", 1)[-1]
        if c in ("seed", "status") or base.startswith(("stay_", "first_", "censored_stay_", "censored_first_")) or \
                base in ("event_step", "steps_computed"):
            out[base] = df[c].values
    return out


def readouts(runs: pd.DataFrame) -> list[tuple[str, str, str, int]]:
    """Every (criterion, mode, offset, runs) read-out the stored runs allow.

    Parameters
    ----------
    runs : pandas.DataFrame
        :func:`runs_table`'s output.

    Returns
    -------
    list of (str, str, str, int)
        Per criterion of :data:`CRITERIA`, mode ``stay``/``first`` and offset ``P``/``P+1``: one
        read-out with ``min(5, n)`` runs and one with ``n`` (n = the fewest runs of any grid cell; one
        read-out when they coincide).
    """
    n = int(runs.groupby(["variant", "cell", "input_size", "units"]).size().min())
    counts = sorted({min(5, n), n})
    return [(c.name, mode, off, k) for c in CRITERIA for mode in ("stay", "first") for off in ("P", "P+1")
            for k in counts]


def readout_values(runs: pd.DataFrame, criterion: str, mode: str, offset: str) -> tuple[np.ndarray, np.ndarray]:
    """Per run: the count under a read-out, censored runs at their lower bound; and the censoring flags.

    A censored run's value is the steps it was followed for after P (``event_step + 1 - P`` for a
    ``floor`` run, else ``steps_computed - P``); offset ``P+1`` subtracts 1, floored at 0.

    Parameters
    ----------
    runs : pandas.DataFrame
        Runs (:func:`runs_table`) with the read-out's columns.
    criterion : str
        A :data:`CRITERIA` name, e.g. ``"abs1e-4"``.
    mode : str
        ``"stay"`` or ``"first"``.
    offset : str
        ``"P"`` or ``"P+1"``.

    Returns
    -------
    tuple of (numpy.ndarray, numpy.ndarray)
        The counts (float, one per run) and the boolean censoring flags.
    """
    v = runs[f"{mode}_{criterion}"].astype(float).to_numpy()
    cens = runs[f"censored_{mode}_{criterion}"].astype(bool).to_numpy()
    end = np.where(runs["status"] == "floor", runs["event_step"].astype(float) + 1,
                   runs["steps_computed"].astype(float)) - runs["P"].astype(float)
    v = np.where(cens, end, v)
    if offset == "P+1":
        v = np.maximum(0.0, v - 1)
    return v, cens


TRENDS = (("lstm", "units", 1, "LSTM units rho"), ("gru", "units", 1, "GRU units rho"),
          ("lstm", "input_size", -1, "LSTM input rho"), ("gru", "input_size", 0, "GRU input rho"))


def fit_stats(means: pd.DataFrame, published: pd.DataFrame, reference: dict | None = None) -> dict:
    """Fit of a table of cell means (``cell, input_size, units, mean``) to the published table:
    mean |log2 ratio| over all cells, units >= 2 and units = 1; the 1-unit ratio of sums; the
    Spearman rho of each trend (units >= 2) and how many trend verdicts agree with the published
    table's own (``reference``: the published verdicts, computed when not given).

    The fit is ``mean |log2((ours + 0.1) / (published + 0.1))|`` (``muccino_verdicts.log2_ratio``);
    published figures from Muccino (2019).

    Parameters
    ----------
    means : pandas.DataFrame
        Our cell means: ``cell``, ``input_size``, ``units``, ``mean``.
    published : pandas.DataFrame
        ``cell``, ``input_size``, ``units``, ``mean_steps`` (only the cells both have are used).
    reference : dict or None, default None
        :func:`published_verdicts`'s output.

    Returns
    -------
    dict
        ``cells``, ``fit all``, ``fit units>=2``, ``fit units=1``, ``1-unit ratio``, the rho of each
        trend (``LSTM units rho``, ``GRU units rho``, ``LSTM input rho``, ``GRU input rho``) and
        ``trends agreeing`` (0..4).
    """
    from .muccino_verdicts import log2_ratio, trend_verdict

    m = means.merge(published, on=["cell", "input_size", "units"], how="inner")
    err = np.abs(log2_ratio(m["mean"], m["mean_steps"]))
    one, big = (m["units"] == 1).to_numpy(), (m["units"] >= 2).to_numpy()
    out = {"cells": len(m), "fit all": float(err.mean()), "fit units>=2": float(err[big].mean()) if big.any() else math.nan,
           "fit units=1": float(err[one].mean()) if one.any() else math.nan,
           "1-unit ratio": float(m.loc[one, "mean"].sum() / m.loc[one, "mean_steps"].sum()) if one.any() else math.nan}
    agree = 0
    for cell, var, sign, key in TRENDS:
        g = m[(m["cell"] == cell).to_numpy() & big]
        v = trend_verdict(g, var, sign, "")
        ref = (reference or {}).get(key) or trend_verdict(g.assign(mean=g["mean_steps"]), var, sign, "")["verdict"]
        out[key] = v["ours"]
        agree += int(v["verdict"] == ref)
    out["trends agreeing"] = agree
    return out


def published_verdicts(published: pd.DataFrame) -> dict:
    """The published table's own trend verdicts (units >= 2), keyed as in ``TRENDS``.

    Parameters
    ----------
    published : pandas.DataFrame
        ``cell``, ``input_size``, ``units``, ``mean_steps``.

    Returns
    -------
    dict
        ``{"LSTM units rho": verdict, "GRU units rho": ..., "LSTM input rho": ..., "GRU input rho": ...}``
        (``muccino_verdicts.trend_verdict`` on the published means).
    """
    from .muccino_verdicts import trend_verdict

    out = {}
    for cell, var, sign, key in TRENDS:
        g = published[(published["cell"] == cell) & (published["units"] >= 2)]
        out[key] = trend_verdict(g.assign(mean=g["mean_steps"]), var, sign, "")["verdict"]
    return out


def fit_table(runs: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Every protocol variant (model variant x read-out) with its fit, ranked by the all-cell fit.

    The cell means of a read-out are one ``np.bincount`` over the stored runs; nothing is re-run.

    Parameters
    ----------
    runs : pandas.DataFrame
        :func:`runs_table`'s output.
    published : pandas.DataFrame
        The published table (``cell``, ``input_size``, ``units``, ``mean_steps``); the reference
        verdicts use only the cells the runs cover.

    Returns
    -------
    pandas.DataFrame
        One row per (model, criterion, mode, offset, runs) with ``rank``, ``censored runs`` and the
        :func:`fit_stats` columns, sorted by ``fit all`` (ascending), then ``trends agreeing``
        (descending).
    """
    keys = ["cell", "input_size", "units"]
    rows = []
    runs = runs.sort_values(["variant"] + keys + ["seed"]).reset_index(drop=True)
    runs["rank_in_cell"] = runs.groupby(["variant"] + keys).cumcount()
    # only the cells the published table has, so the reference verdicts use the same cells
    have = runs[keys].drop_duplicates()
    pub = published.merge(have, on=keys, how="inner")
    reference = published_verdicts(pub)
    for variant, g in runs.groupby("variant", sort=False):
        cells, code = np.unique(g[keys].astype(str).agg("|".join, axis=1), return_inverse=True)
        first = g.groupby(code)[keys].first().reset_index(drop=True)
        rank = g["rank_in_cell"].to_numpy()
        for crit, mode, off, k in readouts(runs):
            v, cens = readout_values(g, crit, mode, off)
            use = rank < k
            n = np.bincount(code[use], minlength=len(cells))
            mean = np.bincount(code[use], weights=v[use], minlength=len(cells)) / n
            row = {"model": variant, "criterion": crit, "mode": mode, "offset": off, "runs": k,
                   "censored runs": int(cens[use].sum()), **fit_stats(first.assign(mean=mean), pub, reference)}
            rows.append(row)
    df = pd.DataFrame(rows).sort_values(["fit all", "trends agreeing"], ascending=[True, False]).reset_index(drop=True)
    df.insert(0, "rank", np.arange(1, len(df) + 1))
    return df


def noise_floor(runs: pd.DataFrame, variant: str, criterion: str, mode: str, offset: str) -> float:
    """Mean |log2 ratio| between the 5-run tables of the first and the last 5 runs of each cell
    (NaN with fewer than 10 runs): how well a protocol can fit a 5-run table it generated.

    Parameters
    ----------
    runs : pandas.DataFrame
        :func:`runs_table`'s output.
    variant : str
        The model variant.
    criterion, mode, offset : str
        The read-out (see :func:`readout_values`).

    Returns
    -------
    float
        ``mean over cells of |log2((a + 0.1) / (b + 0.1))|``, a and b the means of runs 1-5 and 6-10
        (by seed) of each cell; NaN when a cell has fewer than 10 runs.
    """
    from .muccino_verdicts import log2_ratio

    keys = ["cell", "input_size", "units"]
    g = runs[runs["variant"] == variant].sort_values(keys + ["seed"])
    v, _ = readout_values(g, criterion, mode, offset)
    g = g[keys].assign(v=v, r=g.groupby(keys).cumcount().to_numpy())
    if g.groupby(keys).size().min() < 10:
        return math.nan
    a = g[g["r"] < 5].groupby(keys)["v"].mean()
    b = g[(g["r"] >= 5) & (g["r"] < 10)].groupby(keys)["v"].mean()
    return float(np.abs(log2_ratio(a, b)).mean())


def explains(row: pd.Series, floor: float) -> bool:
    """The rule of the module docstring: fit within twice the noise floor, every trend verdict as
    published, 1-unit ratio of sums in [0.5, 2].

    Parameters
    ----------
    row : pandas.Series
        A row of :func:`fit_table` (``fit all``, ``trends agreeing``, ``1-unit ratio``).
    floor : float
        :func:`noise_floor` of that variant (NaN: the rule cannot hold).

    Returns
    -------
    bool
    """
    ok_fit = np.isfinite(floor) and row["fit all"] <= 2 * floor
    return bool(ok_fit and row["trends agreeing"] == 4 and 0.5 <= row["1-unit ratio"] <= 2)


def explain(out, sizes, runs: int = 10, T: int = DEFAULT_T, P: int = 1_000, workers: int | None = None,
            reference=None, seed: int = 0, progress: bool = True, command: str = "", variants=None) -> dict:
    """Run (or resume) the protocol search and write ``explain.md`` / ``explain.html`` /
    ``explain_variants.csv`` into ``out``. Returns the paths, the best variant and the wall time.

    Parameters
    ----------
    out : str or Path
        The output folder (runs are stored in ``out/explain.sqlite`` and reused on a rerun).
    sizes : iterable of int
        Input sizes and units of the grid.
    runs : int, default 10
        Seeds per grid cell (10 or more for a noise floor).
    T : int, default DEFAULT_T (20_000)
        Stream length (steps).
    P : int, default 1_000
        The differing prefix (steps).
    workers : int or None
        Parallel workers (default: the store's default).
    reference : str or Path or None
        A CSV replacing the published table.
    seed : int, default 0
        The first seed.
    progress : bool, default True
    command : str, default ""
        The command line, recorded in the report.
    variants : iterable of str or None
        :data:`MODEL_VARIANTS` keys (default: all).

    Returns
    -------
    dict
        ``markdown``, ``html`` (paths), ``wall_s`` (grid), ``post_s`` (read-outs), ``best`` (the best
        row as a dict), ``noise_floor``, ``explains`` (bool), ``variants`` (number ranked) and ``runs``.

    Raises
    ------
    ConfigError
        From :func:`grid_tasks` (``runs < 1``, ``P >= T``, an unknown variant).
    InputError
        If the ``reference`` table is missing or malformed.
    """
    from ..report.document import Document
    from ..report.heatmap import heatmaps
    from ..store import ResultStore, run_tasks
    from ..store.executors import default_workers
    from .muccino_report import published_frame

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    pub = published_frame(reference)
    tasks = grid_tasks(sizes, runs, T, P, seed=seed, variants=variants)
    start = time.perf_counter()
    with ResultStore(out / "explain.sqlite") as store:
        table = run_tasks(tasks, "rnnmem.studies.muccino_explain:run_cell", store, workers=workers,
                          progress=progress, description="protocol search")
    wall = time.perf_counter() - start
    rt = runs_table(table)
    t0 = time.perf_counter()
    fits = fit_table(rt, pub)
    post_s = time.perf_counter() - t0
    fits.to_csv(out / "explain_variants.csv", index=False)
    best = fits.iloc[0]
    floor = noise_floor(rt, best["model"], best["criterion"], best["mode"], best["offset"])
    pub_fit = fit_stats(pub[["cell", "input_size", "units"]].assign(mean=pub["mean_steps"]), pub)  # its own trends
    ok = explains(best, floor)
    is_default = ((fits["model"] == DEFAULT[0]) & (fits["criterion"] == DEFAULT[1]) & (fits["mode"] == DEFAULT[2])
                  & (fits["offset"] == DEFAULT[3]))
    default = fits[is_default].sort_values("runs").iloc[-1] if is_default.any() else None
    name = f"{best['model']} / {best['criterion']} / {best['mode']} / from {best['offset']} / {best['runs']} runs"
    n_models = fits["model"].nunique()
    verdict = (f"**Best variant: {name}**: mean |log2 ratio| {best['fit all']:.3f} over all {best['cells']} cells "
               f"({best['fit units>=2']:.3f} for units >= 2, {best['fit units=1']:.3f} for the 1-unit column, "
               f"1-unit ratio of sums {best['1-unit ratio']:.2f}); {int(best['trends agreeing'])} of 4 trend verdicts "
               f"as published; noise floor {floor:.3f}. ")
    verdict += ("It explains the published table by the stated rule." if ok else
                "No variant explains the published table: the best one misses the rule (fit within twice the "
                "noise floor, all four trend verdicts as published, 1-unit ratio of sums in [0.5, 2]).")
    doc = Document("Protocol search: which reading of Muccino (2019) explains the published table?")
    doc.text(f"{len(fits)} protocol variants ({n_models} model variants x {len(fits) // max(n_models, 1)} read-outs) "
             f"on input sizes and units {', '.join(map(str, sizes))}; {runs} runs per cell; T = {T:,}, P = {P:,}. "
             f"Grid wall time {wall:.1f} s on {workers if workers is not None else default_workers()} worker "
             f"process(es) (runs already in `explain.sqlite` are reused, not recomputed); the {len(fits)} read-outs took {post_s:.1f} s from the stored runs. Command: `{command}`.")
    doc.text(verdict)
    doc.heading("How the variants are built")
    doc.bullets([
        "keras: Keras 2.2.4 LSTM/GRU defaults (hard-sigmoid gates, one bias, GRU reset-before, glorot kernel, "
        "orthogonal recurrent kernel, unit forget bias).",
        "cudnn: Keras 2.2 CuDNNLSTM/CuDNNGRU on TF 1.12 (sigmoid gates, two biases, GRU reset-after, same init); "
        "rnnmem's `torch` convention has these equations but PyTorch's uniform init and no forget bias, so it "
        "is not this variant.",
        "-glorot: recurrent kernel glorot_uniform instead of orthogonal.",
        "f16: emulated: weights and inputs rounded to float16 values, the state rounded to float16 after "
        "every step, arithmetic in float32; f64: float64 throughout.",
        "criterion: absN = max |a - b| <= N; exact = bitwise equal outputs; relN = |a - b| <= N |b|; "
        "isclose = numpy defaults (rtol 1e-5, atol 1e-8); roundN = outputs equal after rounding to N decimals.",
        "mode: stay = close and staying close (the study's reading), first = close for the first time; "
        "offset: counted from the first shared step P, or from P+1 (count - 1); runs: the first 5 or all.",
        "fit: mean |log2((ours + 0.1) / (published + 0.1))| over the cells; censored runs enter with the steps "
        "they were followed for (a lower bound). Every read-out comes from the same stored trajectory per run.",
    ])
    doc.heading("Ranking")
    fits = fits.assign(variant=fits["model"] + " / " + fits["criterion"] + " / " + fits["mode"] + " / "
                       + fits["offset"] + " / " + fits["runs"].astype(str))
    show = ["rank", "variant", "fit all", "fit units>=2", "fit units=1", "1-unit ratio", "LSTM units rho",
            "GRU units rho", "LSTM input rho", "GRU input rho", "trends agreeing", "censored runs"]
    doc.text("variant = model / criterion / mode / offset / runs. fit = mean |log2 ratio| (lower is better); "
             "rho: Spearman over units >= 2; trends agreeing: of the four trend verdicts, how many equal the "
             "published table's own.")
    doc.table(fits[show].head(15), "The 15 best protocol variants by mean |log2 ratio| over all cells.",
              floatfmt="{:.3g}")
    if default is not None:
        doc.table(fits.loc[[default.name], show], "The main report's protocol (keras float32, absolute 1e-4, stay, "
                  "from P) for reference.", floatfmt="{:.3g}")
    doc.table(fits.groupby("model", sort=False).head(1)[show], "The best read-out of each model variant.",
              floatfmt="{:.3g}")
    doc.table(fits.groupby("criterion", sort=False).head(1)[show], "The best variant of each criterion.",
              floatfmt="{:.3g}")
    doc.table(pd.DataFrame([{k: pub_fit[k] for k in ("LSTM units rho", "GRU units rho", "LSTM input rho",
                                                     "GRU input rho")}]),
              "The published table's own trend statistics (units >= 2).")
    # the best variant's table beside the published one
    keys = ["cell", "input_size", "units"]
    g = rt[rt["variant"] == best["model"]].sort_values(keys + ["seed"])
    v, _ = readout_values(g, best["criterion"], best["mode"], best["offset"])
    g = g[keys].assign(v=v, r=g.groupby(keys).cumcount().to_numpy())
    means = g[g["r"] < best["runs"]].groupby(keys, as_index=False)["v"].mean()
    panels = {}
    for cell in ("lstm", "gru"):
        panels[f"best variant {cell.upper()}"] = means[means["cell"] == cell].pivot(
            index="input_size", columns="units", values="v")
    for cell in ("lstm", "gru"):
        pc = pub[(pub["cell"] == cell) & pub["units"].isin(sizes) & pub["input_size"].isin(sizes)]
        panels[f"published {cell.upper()}"] = pc.pivot(index="input_size", columns="units", values="mean_steps")
    f = heatmaps(panels, out / "figures" / "explain_best.png", f"Best variant ({name}) beside the published table",
                 "mean steps", ncols=2, panel_size=(5.0, 4.2), dpi=100, fontsize=7.5)
    doc.figure(f, "The best protocol variant (top) and the published table (bottom).")
    doc.heading("Closing note")
    doc.text(verdict)
    md, html = doc.save(out, stem="explain")
    return {"markdown": md, "html": html, "wall_s": wall, "post_s": post_s, "best": best.to_dict(),
            "noise_floor": floor, "explains": ok, "variants": len(fits), "runs": len(rt)}
