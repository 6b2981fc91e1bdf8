"""Short-term memory capacity (Jaeger 2002, "Short term memory in echo state networks",
GMD Report 152).

Drive the network with a scalar i.i.d. input ``u_t ~ U[-1, 1]`` (or a given input), collect its
state ``x_t`` (every chosen state component of every layer, concatenated), and for each lag k
fit a linear readout ``y_k(t) = w_k . x_t + b_k`` that reconstructs ``u_{t-k}``. The memory
function and capacity are

    MC_k = r^2(u_{t-k}, y_k(t)),        MC = sum_{k = min_lag}^{max_lag} MC_k

with ``r`` the correlation coefficient. Conventions (ours, recorded in every result):

- Readouts are ridge regressions in closed form, ``w = (X'X + alpha n I)^-1 X'y`` on z-scored
  features (train mean/std) with an unpenalised intercept, all lags solved at once in float64.
- ``r^2`` is measured *out of sample*: the first ``train_frac`` of the usable steps (after the
  washout) train the readouts, the rest test them. An in-sample r^2 would credit every lag with
  about D/n of spurious fit.
- rnnmem units read u_t and emit x_t in the same step, so x_t already contains u_t; lag 0 is the
  first term of the sum (as in Ballarin et al. 2023). With this count a linear network of N units
  has MC <= N and a shift register attains it (Jaeger 2002). ``min_lag=1`` starts at k = 1.
- Finite-sample bias: for a lag the state does not remember, the test-set r^2 of two
  independent series is not 0 but has mean ``1/(n_test - 1)`` (Beta(1/2, (n-2)/2) for Gaussian
  data), so the raw sum over K lags is biased up by about ``K/(n_test - 1)``. We correct each lag
  with the one-predictor adjusted r^2 (Ezekiel 1930), ``r2_adj = 1 - (1 - r^2)(n - 1)/(n - 2)``,
  which is unbiased under no memory and equals 1 at r^2 = 1; it is *not* clipped at 0 (clipping
  would bring the bias back). ``MC`` is the sum of ``r2_adj``; ``mc_raw`` sums raw r^2; the
  result also records the null bias ``K/(n_test - 1)`` and the null standard deviation of the
  corrected sum, about ``sqrt(2K)/n_test``. Readout estimation error biases r^2 *down* for lags
  with memory (roughly ``(1 - r^2) D / n_train`` each), so MC is conservative; raise ``steps``.

Inputs wider than one channel: the protocol is defined for a scalar input. By default a unit with
``input_size > 1`` is an error; ``input_projection="random"`` feeds ``u_t v`` with v a fixed
random unit vector (Gaussian direction drawn from ``seed``) and records it.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch

from ..cells import CallableUnit
from ..errors import ConfigError, InputError
from ..devices import resolve_device
from .common import as_unit, check_finite, native_device_dtype


@dataclass
class CapacityResult:
    """Memory capacity, its per-lag curve and everything needed to reproduce it."""

    mc: float  # sum of bias-corrected r^2 (the headline number)
    mc_raw: float  # sum of raw out-of-sample r^2
    curve: pd.DataFrame  # one row per lag: lag, r2, r2_adj
    state_dim: int
    n_train: int
    n_test: int
    null_bias: float  # expected mc_raw of a memoryless state: K / (n_test - 1)
    null_sd: float  # approx. sd of mc under no memory: sqrt(2K) / n_test
    config: dict
    unit: dict
    wall_s: float
    notes: dict = field(default_factory=dict)

    def summary(self) -> dict:
        """Flat, JSON-able summary (for tables and the memory card).

        Returns
        -------
        dict
            ``mc``, ``mc_raw``, ``state_dim``, ``mc_per_dim`` (= mc / state_dim), ``lags`` (number of lags),
            ``n_train``, ``n_test``, ``null_bias``, ``null_sd``, ``wall_s`` and every key of ``config``.
        """
        return {
            "mc": self.mc, "mc_raw": self.mc_raw, "state_dim": self.state_dim,
            "mc_per_dim": self.mc / self.state_dim, "lags": len(self.curve),
            "n_train": self.n_train, "n_test": self.n_test, "null_bias": self.null_bias,
            "null_sd": self.null_sd, "wall_s": self.wall_s, **self.config,
        }

    def to_frame(self) -> pd.DataFrame:
        """The per-lag curve with the run's headline and cell repeated on each row.

        Returns
        -------
        pandas.DataFrame
            One row per lag: ``lag``, ``r2``, ``r2_adj``, ``mc`` (the capacity) and ``cell`` (the unit's cell name).
        """
        df = self.curve.copy()
        df["mc"] = self.mc
        df["cell"] = self.unit.get("cell")
        return df


def _check_int(name: str, value, minimum: int) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def prepare_unit(model, device=None, dtype=None):
    """A probe-ready unit on ``device``/``dtype``: the caller's model is copied, never moved.

    Ensembles are refused (probe each member's unit on its own).

    Parameters
    ----------
    model : rnnmem unit, CallableUnit, torch.nn.RNN/LSTM/GRU or nn.Module with the model protocol
        The network (see :func:`rnnmem.probes.common.as_unit`).
    device : str or torch.device, optional
        Where to compute; default the unit's own device.
    dtype : torch.dtype, optional
        Precision to compute in; default the unit's own dtype.

    Returns
    -------
    (unit, torch.device, torch.dtype)
        The unit (a deep copy moved/cast when device or dtype differ from its own; otherwise
        ``as_unit(model)`` itself, which is the caller's object for a built-in unit), its device and dtype.

    Raises
    ------
    ConfigError
        ``model`` is an ensemble unit.
    """
    unit = as_unit(model)
    if getattr(unit, "ensemble", None):
        raise ConfigError(
            "this probe takes a single network; build the unit with seed=... instead of seeds=[...] "
            "and probe each member"
        )
    have_dev, have_dt = native_device_dtype(unit)
    want_dev = resolve_device(device) if device is not None else have_dev
    want_dt = dtype if dtype is not None else have_dt
    if want_dev != have_dev or want_dt != have_dt:
        unit = copy.deepcopy(unit).to(device=want_dev, dtype=want_dt)
    return unit, want_dev, want_dt


def collect_states(unit, x: torch.Tensor, components) -> tuple[torch.Tensor, tuple[str, ...]]:
    """Run ``unit`` on ``x[T, 1, I]`` from its initial state and return the chosen state
    components of every layer at every step, concatenated: ``[T, D]``.

    Parameters
    ----------
    unit : RecurrentUnit or CallableUnit
        A single (non-ensemble) unit; it is run under ``torch.inference_mode`` with ``return_all_states=True``.
    x : torch.Tensor
        Inputs ``[T, 1, I]`` (batch of one).
    components : None, "all", str or sequence of str
        State component names (``unit.state_names``, e.g. ``("h",)`` or ``("h", "c")``); None or
        ``"all"`` takes every component.

    Returns
    -------
    states : torch.Tensor
        ``[T, D]``: per step, the chosen components (each ``[layers, 1, H]`` flattened) concatenated
        in the order chosen, so ``D = len(chosen) * layers * H`` for a built-in unit.
    chosen : tuple of str
        The component names used.

    Raises
    ------
    ConfigError
        An unknown component name, or an empty selection.
    """
    names = tuple(getattr(unit, "state_names", ("state",)))
    if components in (None, "all"):
        chosen = names
    else:
        chosen = (components,) if isinstance(components, str) else tuple(components)
        unknown = [c for c in chosen if c not in names]
        if unknown or not chosen:
            raise ConfigError(
                f"unknown state component(s) {unknown or chosen}; this unit has {', '.join(names)} "
                "(or use 'all')"
            )
    state = unit.init_state(1, device=x.device, dtype=x.dtype) if isinstance(unit, CallableUnit) else None
    with torch.inference_mode():
        out = unit(x, state, return_all_states=True)
    all_states = out[2]
    T = x.shape[0]
    parts = [all_states[names.index(c)].reshape(T, -1) for c in chosen]
    return torch.cat(parts, dim=1), chosen


def _lag_matrix(u: np.ndarray, idx: np.ndarray, lags: np.ndarray) -> np.ndarray:
    """``Y[i, j] = u[idx[i] - lags[j]]``."""
    return u[idx[:, None] - lags[None, :]]


def ridge_r2(X_train, Y_train, X_test, Y_test, alpha: float) -> np.ndarray:
    """Out-of-sample squared correlation of ridge readouts, one per column of ``Y``.

    Closed form on z-scored features with an unpenalised intercept:
    ``W = (Xs'Xs + alpha n I)^-1 Xs'(Y - mean)``, computed in the tensors' dtype (the probe passes
    float64) on their device. Features are z-scored with the training mean and standard deviation
    (a feature with sd ~ 0 is only centred). The score of column j is

        r_j^2 = corr(Xt_s W_j, Y_test[:, j])^2,  clipped at 1 (0 when either series is constant).

    Parameters
    ----------
    X_train : torch.Tensor
        Training features ``[n, D]``.
    Y_train : torch.Tensor
        Training targets ``[n, K]`` (one column per readout).
    X_test : torch.Tensor
        Test features ``[m, D]``.
    Y_test : torch.Tensor
        Test targets ``[m, K]``.
    alpha : float
        Ridge penalty per sample (the penalty is ``alpha * n``); 0 is ordinary least squares.

    Returns
    -------
    numpy.ndarray
        ``[K]`` out-of-sample squared correlations (not adjusted for finite-sample bias).
    """
    n, D = X_train.shape
    mu = X_train.mean(0)
    sd = X_train.std(0)
    sd = torch.where(sd > 1e-12 * max(float(sd.max()), 1e-300), sd, torch.ones_like(sd))
    Xs = (X_train - mu) / sd
    Xt = (X_test - mu) / sd
    y_mu = Y_train.mean(0)
    G = Xs.T @ Xs + alpha * n * torch.eye(D, dtype=Xs.dtype, device=Xs.device)
    W = torch.linalg.solve(G, Xs.T @ (Y_train - y_mu))
    pred = Xt @ W  # intercept does not change a correlation
    pc = pred - pred.mean(0)
    yc = Y_test - Y_test.mean(0)
    num = (pc * yc).sum(0)
    den = torch.sqrt((pc * pc).sum(0) * (yc * yc).sum(0))
    r = torch.where(den > 0, num / torch.where(den > 0, den, torch.ones_like(den)), torch.zeros_like(den))
    return (r * r).clamp(max=1.0).cpu().numpy()


def memory_capacity(
    model,
    steps: int = 20_000,
    washout: int = 1_000,
    max_lag: int | None = None,
    min_lag: int = 0,
    alpha: float = 1e-6,
    train_frac: float = 0.5,
    components="all",
    inputs=None,
    input_projection: str = "error",
    seed: int = 0,
    device=None,
) -> CapacityResult:
    """Jaeger's short-term memory capacity of ``model`` (see the module docstring).

    Source: H. Jaeger (2002), "Short term memory in echo state networks", GMD Report 152. Driving the
    network with ``u_t ~ U[-1, 1]`` and fitting one linear readout ``y_k(t)`` of the state ``x_t`` per lag k,

        MC_k = r^2(u_{t-k}, y_k(t)),   r2_adj_k = 1 - (1 - MC_k)(n_test - 1)/(n_test - 2)  (Ezekiel 1930),
        MC = sum_{k=min_lag}^{max_lag} r2_adj_k,

    with r^2 measured out of sample on the last ``1 - train_frac`` of the usable steps.

    ``model``: an rnnmem unit, a ``torch.nn.RNN/LSTM/GRU`` or a ``CallableUnit``.
    ``steps``: steps used for readouts (after ``washout``; split ``train_frac`` / rest in time).
    ``max_lag``: largest lag k (default ``2 * D``, D = state dimension). ``components``: "all" or
    state names, e.g. ``("h",)``. ``inputs``: a 1-d array of length ``washout + steps`` to use
    instead of U[-1, 1]. ``input_projection``: "error" | "random" for units with input_size > 1.

    Parameters
    ----------
    model : rnnmem unit, CallableUnit, torch.nn.RNN/LSTM/GRU or nn.Module with the model protocol
        A single network (ensembles are refused).
    steps : int
        Steps after the washout that feed the readouts (>= 10; default 20000). Usable samples start at
        ``max(washout, max_lag)`` so every target ``u_{t-k}`` exists.
    washout : int
        Initial steps discarded (>= 0; default 1000).
    max_lag : int, optional
        Largest lag k (>= ``min_lag``); default ``2 * D`` with D the state dimension.
    min_lag : int
        Smallest lag (default 0: ``x_t`` already contains ``u_t``).
    alpha : float
        Ridge penalty per sample (finite, >= 0; default 1e-6), see :func:`ridge_r2`.
    train_frac : float
        Fraction of the usable steps (the first ones) that train the readouts, in (0, 1); default 0.5.
    components : "all", str or sequence of str
        State components read out (see :func:`collect_states`).
    inputs : array-like, optional
        ``washout + steps`` scalar inputs used instead of i.i.d. U[-1, 1] draws.
    input_projection : {"error", "random"}
        For ``input_size > 1``: "error" refuses, "random" feeds ``u_t v`` along a fixed Gaussian unit vector v.
    seed : int
        Seed of the input draws and of the random projection direction.
    device : str or torch.device, optional
        Where to run the network; default the model's device (the model's dtype is kept).

    Returns
    -------
    CapacityResult
        ``mc`` (sum of adjusted r^2), ``mc_raw`` (sum of raw r^2), ``curve`` (lag, r2, r2_adj per lag),
        ``state_dim``, ``n_train``, ``n_test``, ``null_bias = K/(n_test - 1)``, ``null_sd = sqrt(2K)/n_test``
        (K lags), ``config``, ``unit`` (its describe()), ``wall_s`` (seconds) and ``notes``
        (``input_direction`` with a random projection).

    Raises
    ------
    ConfigError
        An out-of-range option, a unit with ``input_size > 1`` under ``input_projection="error"``, an
        ensemble, or too few samples (need ``n_train > D + 1`` and ``n_test >= 10``).
    InputError
        ``inputs`` of the wrong length, non-finite weights or inputs, or states that become non-finite.
    """
    start = time.perf_counter()
    steps = _check_int("steps", steps, 10)
    washout = _check_int("washout", washout, 0)
    min_lag = _check_int("min_lag", min_lag, 0)
    if not (0 < train_frac < 1):
        raise ConfigError(f"train_frac must be in (0, 1), got {train_frac}")
    if not (alpha >= 0) or math.isinf(alpha):
        raise ConfigError(f"alpha must be a finite number >= 0, got {alpha}")
    if input_projection not in ("error", "random"):
        raise ConfigError(f"input_projection must be 'error' or 'random', got {input_projection!r}")
    check_finite(model, inputs, names=["inputs"])
    unit, dev, dt = prepare_unit(model, device=device)
    I = int(unit.input_size)
    if I != 1 and input_projection == "error":
        raise ConfigError(
            f"memory capacity needs a scalar input but the unit has input_size={I}; pass "
            "input_projection='random' to feed u_t along a fixed random direction"
        )
    total = washout + steps
    if inputs is None:
        u = np.random.default_rng(seed).uniform(-1.0, 1.0, size=total)
        input_desc = "iid U[-1,1]"
    else:
        u = np.asarray(inputs, dtype=np.float64).reshape(-1)
        if u.shape[0] != total:
            raise InputError(f"inputs must have washout + steps = {total} values, got {u.shape[0]}")
        input_desc = "given"
    direction = None
    if I == 1:
        x = torch.as_tensor(u, dtype=dt, device=dev).reshape(total, 1, 1)
    else:
        g = np.random.default_rng([seed, 7919]).standard_normal(I)
        direction = g / np.linalg.norm(g)
        x = torch.as_tensor(u[:, None] * direction[None, :], dtype=dt, device=dev).reshape(total, 1, I)
    states, chosen = collect_states(unit, x, components)
    D = int(states.shape[1])
    if max_lag is None:
        max_lag = 2 * D
    max_lag = _check_int("max_lag", max_lag, min_lag)
    first = max(washout, max_lag)  # the target u_{t-k} must exist for every lag
    idx = np.arange(first, total)
    n = len(idx)
    n_train = int(round(train_frac * n))
    n_test = n - n_train
    if n_train <= D + 1 or n_test < 10:
        raise ConfigError(
            f"{n} usable steps give {n_train} training and {n_test} test samples for a {D}-dimensional "
            f"state; raise steps (need > {D + 1} training samples and >= 10 test samples)"
        )
    lags = np.arange(min_lag, max_lag + 1)
    Y = torch.as_tensor(_lag_matrix(u, idx, lags), dtype=torch.float64, device=dev)
    X = states[idx].to(torch.float64)
    if not torch.isfinite(X).all():
        raise InputError("the network's state became NaN or infinite under this input")
    r2 = ridge_r2(X[:n_train], Y[:n_train], X[n_train:], Y[n_train:], float(alpha))
    r2_adj = 1.0 - (1.0 - r2) * (n_test - 1) / (n_test - 2)
    K = len(lags)
    curve = pd.DataFrame({"lag": lags, "r2": r2, "r2_adj": r2_adj})
    config = {
        "steps": steps, "washout": washout, "min_lag": min_lag, "max_lag": int(max_lag),
        "alpha": float(alpha), "train_frac": float(train_frac), "components": list(chosen),
        "input": input_desc, "input_projection": input_projection if I > 1 else None,
        "seed": int(seed), "dtype": str(dt).replace("torch.", ""), "device": str(dev),
        "readout": "ridge, z-scored features, unpenalised intercept",
        "r2": "out-of-sample squared correlation; mc sums adjusted r2 = 1-(1-r2)(n-1)/(n-2)",
    }
    describe = unit.describe() if hasattr(unit, "describe") else {"cell": type(unit).__name__}
    notes = {}
    if direction is not None:
        notes["input_direction"] = direction.tolist()
    return CapacityResult(
        mc=float(r2_adj.sum()), mc_raw=float(r2.sum()), curve=curve, state_dim=D, n_train=n_train,
        n_test=n_test, null_bias=K / (n_test - 1), null_sd=math.sqrt(2 * K) / n_test, config=config,
        unit=describe, wall_s=time.perf_counter() - start, notes=notes,
    )


# --------------------------------------------------------------------------------------------
# The probe contract (``probes/contract.py``): PROBES["capacity"]
# --------------------------------------------------------------------------------------------
from typing import Literal  # noqa: E402

from pydantic import Field  # noqa: E402

from .contract import ProbeSettings, register_probe  # noqa: E402


class CapacityProbeSettings(ProbeSettings):
    """Settings of ``PROBES["capacity"]`` (defaults: the memory card's): ``steps`` readout steps after
    a ``washout``; ``input_projection`` for a unit with input_size > 1 ("auto": a fixed random
    projection of the scalar input, "error" refuses such a unit)."""

    steps: int = Field(10_000, ge=10)
    washout: int = Field(500, ge=0)
    input_projection: Literal["auto", "random", "error"] = "auto"


def _contract_run(unit, s: CapacityProbeSettings, *, seed, device, dtype, progress):
    """Jaeger's memory capacity MC = sum_k r^2_k (module docstring)."""
    projection = s.input_projection
    if projection == "auto":
        projection = "random" if unit.input_size > 1 else "error"
    res = memory_capacity(unit, steps=s.steps, washout=s.washout, seed=seed, input_projection=projection)
    if progress is not None:
        progress(s.steps + s.washout, s.steps + s.washout)
    head = {"mc": res.mc, "mc_raw": res.mc_raw, "state_dim": res.state_dim, "null_sd": res.null_sd,
            "input_projection": projection}
    return res.curve.copy(), head, {"lags": res.curve["lag"].to_numpy(), "r2": res.curve["r2_adj"].to_numpy()}, res


def _plot(result, ax):
    ax.plot(result.details["lags"], result.details["r2"], lw=1.2)
    ax.set_xlabel("lag k")
    ax.set_ylabel("adjusted r\u00b2 of u(t-k)")
    ax.set_title(f"memory capacity MC = {result.headline['mc']:.3g}")


register_probe("capacity", CapacityProbeSettings, _contract_run,
               "short-term memory capacity, sum of r^2 of linear readouts of past inputs (Jaeger 2002)",
               plotter=_plot)
