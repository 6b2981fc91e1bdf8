"""The memory card: every memory measure of one model, side by side, as one JSON-able summary.

Measures (each computed by its probe; settings recorded in ``card["settings"]``):

- forgetting (``probes/forgetting.py``, Muccino 2019): steps to identical outputs per tolerance
  over several input pairs (in the model's own dtype), and the contraction rate of the state
  distance (fitted on a float64 copy of the model, after a 30-step transient);
- Lyapunov spectrum (``probes/lyapunov.py``): the maximal exponent with its confidence interval;
- memory capacity (``probes/capacity.py``, Jaeger 2002): MC and its per-lag r^2 curve;
- connectivity decay (``probes/connectivity.py``, Madsen 2019): the mean gradient norm of the
  output at t~ with respect to the input at t~ - k, against the lag k, and its fitted half-life
  ln 2 / rate (least squares on log values). A bare unit has no classes, so its "logit" is a
  fixed, seeded random unit-norm readout of the output vector;
- long memory (``probes/long_memory.py``, Zhao et al. 2020, Definition 3): power law against
  exponential decay of the response coefficients, by AIC;
- optionally the copy and adding tasks (``train/sequence_tasks.py``): the largest T solved
  (loss under 10% of the memoryless baseline).
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
from ..probes.common import as_unit

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
    out = {"runs": len(t), "dtype": str(t["dtype"][0]), "steps_computed": res.steps_computed, "tolerances": {}}
    for tol in s["tolerances"]:
        name = tol_name(tol)
        cens = t[f"censored_{name}"].astype(bool)
        vals = t.loc[~cens, f"steps_{name}"].astype(float)
        out["tolerances"][name] = {"mean": vals.mean() if len(vals) else None,
                                   "std": vals.std(ddof=1) if len(vals) > 1 else None,
                                   "censored": int(cens.sum())}
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


def _long_memory(unit, s, seed, device):
    from ..probes.long_memory import long_memory_probe

    frame, verdict = long_memory_probe(unit, s["T"], max_lag=s["max_lag"], n_samples=s["n_samples"], device=device,
                                       output=s["output"], seed=seed)
    keep = ("verdict", "reason", "aic_exp", "aic_power", "delta_aic", "rate", "half_life", "exponent", "summable")
    return {**{k: verdict.get(k) for k in keep}, "lags": frame.index.to_numpy() if "lag" not in frame.columns
            else frame["lag"].to_numpy(), "abs_A": frame["fitted"].to_numpy()}


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
    unit = as_unit(model)
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
    return _clean(card)


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
