"""The memory card: every memory measure of one model, side by side, as one JSON-able summary.

Measures (each computed by its probe; settings recorded in ``card["settings"]``):

- forgetting (``probes/forgetting.py``, Muccino 2019): steps to identical outputs per tolerance
  over several input pairs (in the model's own dtype; censored runs counted, never averaged: see
  ``forgetting_summary``), and the contraction rate of the state
  distance (fitted on a float64 copy of the model, after a 30-step transient);
- Lyapunov spectrum (``probes/lyapunov.py``): the maximal exponent with its confidence interval;
- memory capacity (``probes/capacity.py``, Jaeger 2002): MC and its per-lag r^2 curve;
- connectivity decay (``probes/connectivity.py``, Madsen 2019): the mean gradient norm of the
  output at t~ with respect to the input at t~ - k, against the lag k, and its fitted half-life
  ln 2 / rate (least squares on log values). A bare unit has no classes, so its "logit" is a
  fixed, seeded random unit-norm readout of the output vector;
- long memory (``probes/long_memory.py``, Zhao et al. 2020, Definition 3: long memory iff
  sum_k |A_k| diverges, A_k = E_t[dy_t/dx_{t-k}]): the probe's test, a verdict long / short /
  inconclusive with its reason, the tail exponent alpha of |A_k| ~ k^-alpha with its confidence
  interval (long memory needs alpha <= 1 and a power law that extrapolates the tail better than a
  mixture of exponentials), the exponent within a finite filter where the unit has one, and the
  earlier AIC comparison of an exponential and a power-law fit as description only (not a test);
- optionally the copy and adding tasks (``train/sequence_tasks.py``): the largest T solved
  (loss under 10% of the memoryless baseline).

Fitted numbers carry a validity check (``fit_checks``, rules in ``FIT_RULES``) that the page
shows beside them ("fit not valid: reason").
"""

from __future__ import annotations

import copy
import datetime as _dt
import json
import math
import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from .. import __version__
from ..errors import InputError
from ..probes.common import as_unit, check_finite

CARD_SETTINGS = {
    "forgetting": {"T": 20_000, "P": 1_000, "input_pairs": 5, "tolerances": [0.0, 1e-6, 1e-4, 1e-2], "fit_skip": 30},
    "lyapunov": {"steps": 2_000, "washout": 500, "k": 16, "dtype": "float64"},
    "capacity": {"steps": 10_000, "washout": 500},
    "connectivity": {"T": 150, "sequences": 2, "norm": "l2"},
    "long_memory": {"T": 1_000, "max_lag": 300, "n_samples": 12, "output": "sum"},
    "tasks": {"copy": [10, 20], "adding": [10, 20, 50], "steps": 600},
}


def _clean(value):
    """JSON-safe: numpy scalars to Python, NaN/inf to None (JSON has no NaN)."""
    if isinstance(value, dict):
        return {str(k): _clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, np.ndarray)):
        return [_clean(v) for v in (value.tolist() if isinstance(value, np.ndarray) else value)]
    if isinstance(value, (np.floating, float)):
        v = float(value)
        return v if math.isfinite(v) else None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    return value


class _RandomReadout(nn.Module):
    """Scalar "logit" of a bare unit: z_t = v . y_t with a fixed seeded unit vector v."""

    def __init__(self, unit, seed: int):
        super().__init__()
        self.unit = unit
        g = torch.Generator().manual_seed(seed)
        v = torch.randn(unit.hidden_size, generator=g, dtype=torch.float64)
        self.register_buffer("v", v / v.norm())

    def forward(self, x):
        y = self.unit(x)[0]
        return (y @ self.v.to(y.dtype)).unsqueeze(-1)


def _forgetting(unit, s, seed, device):
    from ..probes.forgetting import derive_input_seed, forgetting, tol_name

    res = forgetting(unit, T=s["T"], P=s["P"], tolerances=s["tolerances"], fit_skip=s["fit_skip"],
                     input_seeds=[derive_input_seed(seed + k) for k in range(s["input_pairs"])], device=device)
    t = res.table
    out = {"runs": len(t), "dtype": str(t["dtype"][0]), "steps_computed": res.steps_computed,
           "bound": s["T"] - s["P"], "tolerances": {}}
    for tol in s["tolerances"]:
        name = tol_name(tol)
        cens = t[f"censored_{name}"].astype(bool)
        at_floor = int((cens & (t["status"] == "floor")).sum())
        out["tolerances"][name] = forgetting_summary(t.loc[~cens, f"steps_{name}"].astype(float).to_numpy(),
                                                     runs=len(t), at_floor=at_floor)
    # The contraction rate is fitted on a float64 copy: in float32 the distance reaches the rounding
    # floor after a few dozen steps, too few to fit past the transient (``fit_skip``).
    u64 = copy.deepcopy(unit).double()
    if hasattr(u64, "dtype"):
        u64.dtype = torch.float64
    res64 = forgetting(u64, T=s["P"] + 3_000, P=s["P"], tolerances=s["tolerances"], fit_skip=s["fit_skip"],
                       input_seeds=[derive_input_seed(seed + k) for k in range(s["input_pairs"])], device=device)
    rates = res64.table["rate"].astype(float)
    out["rate"] = {"mean": rates.mean(), "std": rates.std(ddof=1) if len(rates) > 1 else None, "dtype": "float64"}
    out["statuses"] = t["status"].value_counts().to_dict()
    curve = res.curves[0]
    out["curve"] = {"bin_edges": curve["bin_edges"], "out_maxabs": curve["out_maxabs"], "state_l2": curve["state_l2"]}
    return out


def forgetting_summary(finished, runs: int, at_floor: int = 0) -> dict:
    """Headline statistics of the forgetting steps of ``runs`` runs of which ``finished`` (the
    steps of the runs that reached the tolerance) ended; the others are censored (the tolerance
    was not reached within T steps, or it lies below the dtype's rounding floor: ``at_floor``).

    A censored run took longer than every finished one, so the median over *all* runs is known
    exactly while fewer than half are censored (it is an order statistic of the finished runs);
    the mean over all runs is known only when none is. A mean over the finished runs alone would
    be biased low and is not reported.

    Parameters
    ----------
    finished : array of float, the steps of the finished runs.
    runs : int, all runs.
    at_floor : int, censored runs whose tolerance lies below the rounding floor.

    Returns
    -------
    dict with ``runs``, ``finished``, ``censored``, ``at_floor``, ``mean`` and ``std`` (all runs;
    None if any is censored), ``median`` (all runs, censored counted as longer; None when at least
    half are censored) and ``median_finished`` (the finished runs only; None if none finished).
    """
    v = np.sort(np.asarray(finished, dtype=float))
    n_cens = runs - v.size
    full = np.concatenate([v, np.full(n_cens, np.inf)])
    median = None
    if v.size and n_cens < runs / 2:  # censored runs sit at +inf: the middle order statistic(s) are finite
        median = float(np.median(full))
    return {"runs": int(runs), "finished": int(v.size), "censored": int(n_cens), "at_floor": int(at_floor),
            "mean": float(v.mean()) if v.size and not n_cens else None,
            "std": float(v.std(ddof=1)) if v.size > 1 and not n_cens else None,
            "median": median, "median_finished": float(np.median(v)) if v.size else None}


# The tail exponent alpha of |A_k| ~ k^-alpha describes the model only with enough tail lags, a
# plausible value and a tail that is a power law: long memory needs alpha <= 1 (Zhao et al.: a
# non-summable response); exponents far above a few mean the tail is a steep cutoff, which a power law
# cannot describe (the test's CI still decides the verdict, see ``probes/long_memory.py``).
FIT_RULES = {"min_points": 10, "min_r2": 0.9, "exponent_range": (0.0, 5.0)}


def long_memory_source(lm: dict) -> tuple[str, dict]:
    """Where the card's long-memory test numbers are: ``("long_memory", lm)``, or, when |A_k| alone was
    inconclusive and the verdict came from its upper bound mean_t ||dy_t/dx_{t-k}|| (``via_bound``),
    ``("long_memory.bound", lm["bound"])``."""
    if lm.get("alpha") is None and lm.get("via_bound") and isinstance(lm.get("bound"), dict):
        return "long_memory.bound", lm["bound"]
    return "long_memory", lm


def fit_checks(card: dict) -> dict:
    """Whether each fitted headline of ``card`` is valid: ``{path: {"valid": bool, "reason": str}}``
    for ``long_memory.alpha`` (the tail exponent of the Definition-3 test; of its upper bound when the
    verdict came from there), ``long_memory.rate`` (descriptive exponential fit) and
    ``connectivity.half_life``.
    Rules (``FIT_RULES``): at least ``min_points`` fitted points, R^2 of the fit (on log values)
    >= ``min_r2`` where there is one, a tail exponent inside ``exponent_range``, and a tail that is a
    power law: not when the response ends (|A_k| below the numerical floor past some lag) or a mixture
    of exponentials extrapolates the tail better."""
    rules = FIT_RULES
    out = {}

    def check(points, r2, extra=(), need_r2=True):
        reasons = list(extra)
        if points is not None and points < rules["min_points"]:
            reasons.append(f"only {points} points fitted (< {rules['min_points']})")
        if r2 is None:
            if need_r2:
                reasons.append("no R\u00b2 (a flat or degenerate profile)")
        elif r2 < rules["min_r2"]:
            reasons.append(f"R\u00b2 = {r2:.3g} < {rules['min_r2']}")
        return {"valid": not reasons, "reason": "; ".join(reasons) if reasons else "ok"}

    lm = card.get("long_memory") or {}
    _, src = long_memory_source(lm)
    alpha = src.get("alpha")
    if alpha is not None:
        lo, hi = rules["exponent_range"]
        extra = []
        if not lo < alpha <= hi:
            extra.append(f"tail exponent {alpha:.4g} outside the plausible range ({lo:g}, {hi:g}]: "
                         + ("not a decay" if alpha <= lo else "a steep cut-off, not a power law"))
        if src.get("response_ends"):
            extra.append(f"the response ends after lag {src.get('k_end')}: a finite response has no power-law tail")
        elif src.get("extrapolation") == "mixture":
            extra.append("a mixture of exponentials extrapolates the tail better than the power law")
        out["long_memory.alpha"] = check(src.get("n_tail"), None, extra, need_r2=False)
    if lm.get("rate") is not None:
        extra = [] if lm["rate"] > 0 else [f"rate {lm['rate']:.4g} <= 0 (not a decay)"]
        out["long_memory.rate"] = check(lm.get("n_fit"), lm.get("r2_exp"), extra, need_r2=False)
    con = card.get("connectivity") or {}
    if "half_life" in con:
        extra = [] if con.get("half_life") is not None else ["no decay fitted"]
        out["connectivity.half_life"] = check(con.get("fit_lags"), con.get("r2"), extra)
    return out


def _lyapunov(unit, s, seed, device):
    from ..probes.lyapunov import lyapunov_spectrum

    D = unit.hidden_size * len(unit.state_names) * unit.num_layers
    res = lyapunov_spectrum(unit, steps=s["steps"], washout=s["washout"], k=min(s["k"], D), seed=seed,
                            dtype=getattr(torch, s["dtype"]), device=device)
    summ = res.summary()
    return {"max_exponent": summ["max_exponent"], "ci_low": summ["ci_low"], "ci_high": summ["ci_high"],
            "confidence": summ["confidence"], "contraction_rate": summ["contraction_rate"],
            "n_exponents": summ["n_exponents"], "state_dim": summ["state_dim"], "exponents": res.exponents}


def _capacity(unit, s, seed, device):
    from ..probes.capacity import memory_capacity

    projection = "random" if unit.input_size > 1 else "error"
    res = memory_capacity(unit, steps=s["steps"], washout=s["washout"], seed=seed, device=device,
                          input_projection=projection)
    return {"mc": res.mc, "mc_raw": res.mc_raw, "state_dim": res.state_dim, "null_sd": res.null_sd,
            "input_projection": projection, "lags": res.curve["lag"].to_numpy(), "r2": res.curve["r2_adj"].to_numpy()}


def fit_half_life(lags: np.ndarray, values: np.ndarray) -> dict:
    """Least-squares fit of ln v_k = a - rate * k over the lags where v_k > 1e-12 max(v);
    half-life = ln 2 / rate."""
    lags, values = np.asarray(lags, float), np.asarray(values, float)
    ok = np.isfinite(values) & (values > 1e-12 * np.nanmax(values))
    if ok.sum() < 3:
        return {"rate": None, "half_life": None, "r2": None, "fit_lags": int(ok.sum())}
    slope, intercept = np.polyfit(lags[ok], np.log(values[ok]), 1)
    pred = intercept + slope * lags[ok]
    ss_res = float(((np.log(values[ok]) - pred) ** 2).sum())
    ss_tot = float(((np.log(values[ok]) - np.log(values[ok]).mean()) ** 2).sum())
    rate = -slope
    return {"rate": rate, "half_life": math.log(2) / rate if rate > 0 else None,
            "r2": 1 - ss_res / ss_tot if ss_tot > 0 else None, "fit_lags": int(ok.sum())}


def _connectivity(unit, s, seed, device):
    from ..probes.connectivity import connectivity_matrix, decay_profile

    model = _RandomReadout(unit, seed)
    g = torch.Generator().manual_seed(seed)
    results = []
    for _ in range(s["sequences"]):
        x = torch.randn(s["T"], unit.input_size, generator=g, dtype=torch.float64)
        results.append(connectivity_matrix(model, x, targets=0, norm=s["norm"], normalize=False, device=device,
                                           dtype="float64"))
    prof = decay_profile(results)
    fit = fit_half_life(prof["lag"].to_numpy(), prof["mean"].to_numpy())
    return {"lags": prof["lag"].to_numpy(), "mean": prof["mean"].to_numpy(), **fit}


# What the card keeps of the probe's verdict (``definition3_test``): the test, then the descriptive AIC numbers
LONG_MEMORY_KEYS = ("verdict", "reason", "alpha", "alpha_se", "summable", "response_ends", "via_bound",
                    "extrapolation", "k_end", "k_max_requested", "n_tail", "noise_floor", "level", "filter_length",
                    "alpha_within_filter", "intercept_tail",
                    "aic_exp", "aic_power", "delta_aic", "rate", "half_life", "exponent_full", "r2_exp", "r2_power",
                    "n_fit")


def long_memory_fields(verdict: dict) -> dict:
    """The card's flat view of a Definition-3 verdict: ``LONG_MEMORY_KEYS`` plus the intervals and the
    tail range as scalars (``alpha_ci_low``/``_high``, ``alpha_within_filter_ci_low``/``_high``,
    ``tail_from``/``tail_to``), so every number has a JSON path; the upper bound's verdict, when the
    verdict came from it, under ``bound``."""
    out = {k: verdict.get(k) for k in LONG_MEMORY_KEYS}
    for key in ("alpha_ci", "alpha_within_filter_ci"):
        ci = verdict.get(key)
        out[f"{key}_low"], out[f"{key}_high"] = (ci[0], ci[1]) if ci is not None else (None, None)
    tail = verdict.get("tail")
    out["tail_from"], out["tail_to"] = (tail[0], tail[1]) if tail is not None else (None, None)
    if verdict.get("via_bound") and isinstance(verdict.get("bound"), dict):
        out["bound"] = long_memory_fields(verdict["bound"])
    return out


def _long_memory(unit, s, seed, device):
    from ..probes.long_memory import long_memory_probe

    frame, verdict = long_memory_probe(unit, s["T"], max_lag=s["max_lag"], n_samples=s["n_samples"], device=device,
                                       output=s["output"], seed=seed)
    return {**long_memory_fields(verdict), "lags": frame["lag"].to_numpy(), "abs_A": frame["fitted"].to_numpy()}


def _tasks(unit, s, seed, device):
    from ..tasks.copy_adding import make_task
    from ..train.sequence_tasks import largest_solved, train_on_task

    out = {}
    for task in ("copy", "adding"):
        results = [train_on_task(unit, make_task(task, T), steps=s["steps"], seed=seed, device=device,
                                 eval_every=max(1, s["steps"] // 6), stop_when_solved=True) for T in s[task]]
        out[task] = {"largest_T_solved": largest_solved(results),
                     "runs": [{"T": r.task["T"], "loss": r.final_loss, "baseline": r.baseline, "solved": r.solved}
                              for r in results]}
    return out


MEASURES = {"forgetting": _forgetting, "lyapunov": _lyapunov, "capacity": _capacity,
            "connectivity": _connectivity, "long_memory": _long_memory}


def compute_card(model, name: str | None = None, tasks: bool = False, seed: int = 0, device=None,
                 settings: dict | None = None, progress=None) -> dict:
    """Every measure of ``model`` (an rnnmem unit, torch.nn.RNN/LSTM/GRU or CallableUnit)."""
    from ..devices import resolve_device

    if device is not None:
        resolve_device(device)  # one clear error before any measure runs
    unit = as_unit(model)
    check_finite(unit)  # before any measure: a NaN weight would otherwise surface only after minutes
    if getattr(unit, "ensemble", None):
        raise InputError("a memory card describes one network: build the unit with seed=, not seeds=")
    s = {k: dict(v) for k, v in CARD_SETTINGS.items()}
    for key, value in (settings or {}).items():
        s.setdefault(key, {}).update(value)
    describe = unit.describe() if hasattr(unit, "describe") else {"cell": type(unit).__name__}
    card = {"name": name or f"{describe.get('cell')}-{describe.get('hidden_size')}", "model": describe,
            "rnnmem_version": __version__, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seed": seed, "device": str(device or "cpu"), "settings": s, "wall_s": {}}
    measures = dict(MEASURES)
    if tasks:
        measures["tasks"] = _tasks
    for key, fn in measures.items():
        start = time.perf_counter()
        card[key] = fn(unit, s[key], seed, device)
        card["wall_s"][key] = time.perf_counter() - start
        if progress is not None:
            progress(key)
    card = _clean(card)
    card["fit_checks"] = fit_checks(card)
    return card


def save_card(card: dict, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=1))
    return path


def load_card(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise InputError(f"card file {path} not found")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not a memory card (invalid JSON: {exc.msg})") from None
    missing = {"name", "model", "forgetting", "lyapunov", "capacity"} - set(card)
    if missing:
        raise InputError(f"{path} is not a memory card (missing {', '.join(sorted(missing))})")
    return card
