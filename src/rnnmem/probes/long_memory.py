"""Long-memory probe of any sequence model: Definition 3 of Zhao et al. (ICML 2020).

The paper's part. Zhao et al. (Definition 3) call a network with input x_t and output y_t a *long
memory* network when its response to past inputs decays at a polynomial rate, and prove that RNN
and LSTM (under their stationarity conditions) have exponentially decaying responses (short
memory). rnnmem measures the response coefficients, as issue 4 of the project states them,

    A_k = E_t[ dy_t / dx_{t-k} ],        k = 0, 1, ..., max_lag,

along a trajectory (an input series), and asks whether |A_k| decays like k^{-exponent}
(polynomial: long memory) or like e^{-rate k} (exponential: short memory).

rnnmem's part (choices the paper does not prescribe):

- *Estimation of A_k.* ``n_samples`` output times t are drawn (seeded, without replacement) from
  [max_lag + warmup, T-1]. For one output time one backward pass gives dy_t/dx_s for every s <= t, hence
  every lag at once; output times are batched so no pass is ever spent on a single lag:
  ``method="copies"`` runs independent batch copies of the same trajectory (copy b is
  differentiated at its own t_b; copies do not interact, so the gradient of the sum over copies
  splits exactly), ``method="vmap"`` runs the forward pass once and vectorises the backward pass
  over the output times (``torch.autograd.grad(..., is_grads_batched=True)``, i.e. vmap over vjp).
  Both are exact and agree to rounding (tested against the dense Jacobian). "copies" is the
  default: it needs nothing but ordinary autograd, and it was faster on CPU for the recurrent
  units (benchmarks/bench_long_memory_probe.py); vmap needs a batching rule for every backward op
  (fused GPU RNN kernels may lack one).
- *Multi-dimensional outputs/inputs.* dy_t/dx_{t-k} is an O x I matrix J_k(t). ``output="norm"``
  (default) differentiates every output component and summarises a matrix by its Frobenius norm;
  ``output="sum"`` differentiates sum_o y_{t,o}; an integer picks one output component.
- *Averaging.* ``reduce="mean"`` (default, the paper's A_k) fits |A_k| = ||mean_t J_k(t)||;
  ``reduce="mean_abs"`` fits mean_t ||J_k(t)||, which cannot cancel across t.
- *Precision.* By default the probe runs a float64 copy of the model (``dtype="float64"``) so
  exponential decays stay measurable over hundreds of lags; the user's model is never modified.
- *Decay fits and verdict.* On the lags k_min..k_max (``fit_range``, default 1..max_lag) up to the
  first lag where the response stops being measurable (an exact zero or underflow, an optional
  relative ``floor`` times its peak, or, for ``reduce="mean"``, a mean within ``significance``
  standard errors of zero) we fit by least squares  log|A_k| = a - rate k  (exponential)  and
  log|A_k| = a - exponent log k  (power law), and compare AIC = n log(RSS/n) + 2 p, with p = 3
  (intercept, slope, noise variance) for both. The verdict is "long memory" when the power law has the lower AIC, else "short
  memory". ``exponent <= 1`` (non-summable response) is reported as ``summable=False``.
  A response that stops being measurable before ``min_fit_lags`` lags is short memory without a
  fit (the verdict's "reason" says so). The fit range matters: a model whose memory is a
  fractional filter of finite length K followed by a contraction is polynomial up to K and
  exponential beyond; pass ``fit_range=(1, K)`` to test the filter part.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError, InputError
from ..fractional import frac_weights

METHODS = ("copies", "vmap")
REDUCTIONS = ("mean", "mean_abs")


# ----------------------------------------------------------------------------- reference models
class LinearRecurrence(nn.Module):
    """Linear RNN h_t = a h_{t-1} + x_t, y_t = h_t (elementwise, |a| < 1): A_k = a^k exactly, the
    textbook short-memory network. A real step loop, so the probe sees a recurrence."""

    def __init__(self, a: float = 0.9):
        super().__init__()
        if not -1.0 < float(a) < 1.0:
            raise ConfigError(f"a must satisfy |a| < 1 for a stable linear recurrence, got {a}")
        self.a = float(a)

    def forward(self, x: torch.Tensor, state: torch.Tensor | None = None):
        h = torch.zeros_like(x[0]) if state is None else state
        out = []
        for t in range(x.shape[0]):
            h = self.a * h + x[t]
            out.append(h)
        return torch.stack(out), h


class FractionalFilter(nn.Module):
    """Exact fractional integration filter y_t = sum_{j=0}^{K} psi_j x_{t-j}, psi_j = pi_j(-d) the
    coefficients of (1 - B)^{-d} (Hosking 1981), psi_k ~ k^{d-1} / Gamma(d): for 0 < d < 1/2 the
    textbook long-memory filter. A causal convolution along time, computed by FFT; returns y only."""

    def __init__(self, d: float = 0.3, K: int = 2000):
        super().__init__()
        self.d, self.K = float(d), int(K)
        self.register_buffer("psi", frac_weights(torch.tensor(-self.d, dtype=torch.float64), self.K,
                                                 include_zero=True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        T = x.shape[0]
        psi = self.psi[:T].to(x.dtype)
        size = 1 << math.ceil(math.log2(T + psi.shape[0] - 1))
        fx = torch.fft.rfft(x, n=size, dim=0)
        fw = torch.fft.rfft(psi, n=size).reshape((-1,) + (1,) * (x.dim() - 1))
        return torch.fft.irfft(fx * fw, n=size, dim=0)[:T]


# ----------------------------------------------------------------------------- helpers
def _as_trajectory(x, input_size: int | None, seed: int) -> torch.Tensor:
    """Trajectory as a float64 tensor [T, 1, I]; an int T means N(0, 1) white noise (seeded)."""
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        I = input_size or 1
        gen = torch.Generator().manual_seed(int(seed) + 7919)
        return torch.randn(int(x), 1, I, generator=gen, dtype=torch.float64)
    if isinstance(x, (pd.Series, pd.DataFrame)):
        x = x.to_numpy()
    t = x.detach().to("cpu", torch.float64) if torch.is_tensor(x) else torch.as_tensor(np.asarray(x, dtype=np.float64))
    if t.dim() == 1:
        t = t[:, None, None]
    elif t.dim() == 2:
        t = t[:, None, :]
    elif t.dim() != 3 or t.shape[1] != 1:
        raise InputError(f"the trajectory must be [T], [T, I] or [T, 1, I] (one trajectory), got {tuple(t.shape)}")
    if not torch.isfinite(t).all():
        raise InputError("the trajectory contains NaN or infinite values")
    if input_size is not None and t.shape[-1] != input_size:
        raise InputError(f"the trajectory has {t.shape[-1]} input dims but the model expects {input_size}")
    return t


def _model_output(model, xb: torch.Tensor) -> torch.Tensor:
    out = model(xb)
    y = out[0] if isinstance(out, (tuple, list)) else out
    if not torch.is_tensor(y):
        raise InputError(f"the model returned {type(y).__name__}; it must return y[T, B, O] or (y, state)")
    if y.dim() == 2:
        y = y.unsqueeze(-1)
    if y.dim() != 3 or y.shape[0] != xb.shape[0] or y.shape[1] != xb.shape[1]:
        raise InputError(f"the model must map x[T, B, I] {tuple(xb.shape)} to y[T, B, O], got {tuple(y.shape)}")
    return y


def _prepare_model(model, device, dtype):
    if not isinstance(model, nn.Module) and not callable(model):
        raise ConfigError(f"cannot probe a {type(model).__name__}: pass an nn.Module mapping x[T, B, I] to y")
    if getattr(model, "ensemble", None):
        raise ConfigError("the probe takes one model, not an ensemble; build the member with seed=s")
    params = list(model.parameters()) + list(model.buffers()) if isinstance(model, nn.Module) else []
    ref = params[0] if params else None
    device = torch.device(device) if device is not None else (ref.device if ref is not None else torch.device("cpu"))
    if dtype == "model":
        dt = next((p.dtype for p in params if p.is_floating_point()), torch.float32)
    elif dtype in ("float64", torch.float64):
        dt = torch.float64
    elif dtype in ("float32", torch.float32):
        dt = torch.float32
    else:
        raise ConfigError(f"dtype must be float64, float32 or 'model', got {dtype!r}")
    if isinstance(model, nn.Module):
        model = copy.deepcopy(model)
        for p in model.parameters():
            p.requires_grad_(False)
        model = model.to(device=device, dtype=dt).eval()
        if isinstance(getattr(model, "dtype", None), torch.dtype):
            model.dtype = dt
    return model, device, dt


def _directions(output, n_out: int) -> list:
    if output == "norm":
        return list(range(n_out))
    if output == "sum":
        return ["sum"]
    if isinstance(output, (int, np.integer)) and not isinstance(output, bool):
        if not 0 <= int(output) < n_out:
            raise ConfigError(f"output index {output} out of range for {n_out} outputs")
        return [int(output)]
    raise ConfigError(f"output must be 'norm', 'sum' or an output index, got {output!r}")


def _cotangents(times, dirs, T: int, n_out: int, device, dtype) -> torch.Tensor:
    """Cotangents [C, T, O] for each (output time, direction) pair, sample-major."""
    v = torch.zeros(len(times) * len(dirs), T, n_out, device=device, dtype=dtype)
    c = 0
    for t in times:
        for o in dirs:
            if o == "sum":
                v[c, t, :] = 1.0
            else:
                v[c, t, o] = 1.0
            c += 1
    return v


def _jacobians_copies(model, traj, times, dirs):
    """J[s, k, D, I] via independent batch copies of the trajectory, one per (time, direction)."""
    T = int(max(times)) + 1
    C = len(times) * len(dirs)
    xb = traj[:T].expand(T, C, traj.shape[-1]).clone().requires_grad_(True)
    with torch.enable_grad():
        y = _model_output(model, xb)                              # [T, C, O]
        v = _cotangents(times, dirs, T, y.shape[-1], traj.device, traj.dtype).transpose(0, 1)
        (g,) = torch.autograd.grad(y, xb, grad_outputs=v)        # [T, C, I]
    return g.transpose(0, 1)                                      # [C, T, I]


def _jacobians_vmap(model, traj, times, dirs):
    """The same Jacobian rows from one forward pass and a backward pass vectorised over cotangents."""
    T = int(max(times)) + 1
    xb = traj[:T].clone().requires_grad_(True)
    with torch.enable_grad():
        y = _model_output(model, xb)                              # [T, 1, O]
        v = _cotangents(times, dirs, T, y.shape[-1], traj.device, traj.dtype).unsqueeze(2)  # [C, T, 1, O]
        (g,) = torch.autograd.grad(y, xb, grad_outputs=v, is_grads_batched=True)  # [C, T, 1, I]
    return g[:, :, 0, :]


class _Moments:
    """Running mean and sample variance over the leading dim of batches (Chan et al. 1979 merge),
    free of the cancellation of sum-of-squares formulas."""

    def __init__(self):
        self.n, self.mean, self.m2 = 0, None, None

    def add(self, batch: torch.Tensor) -> None:
        nb = batch.shape[0]
        mb = batch.mean(0)
        m2b = ((batch - mb) ** 2).sum(0)
        if self.n == 0:
            self.n, self.mean, self.m2 = nb, mb, m2b
            return
        n = self.n + nb
        delta = mb - self.mean
        self.mean = self.mean + delta * (nb / n)
        self.m2 = self.m2 + m2b + delta**2 * (self.n * nb / n)
        self.n = n

    def result(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.mean, self.m2 / max(self.n - 1, 1)


# ----------------------------------------------------------------------------- fits
def _ols(X: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and residual sum of squares of y on [1, X]."""
    Xc = X - X.mean()
    slope = float(Xc @ (y - y.mean()) / (Xc @ Xc))
    intercept = float(y.mean() - slope * X.mean())
    r = y - intercept - slope * X
    return slope, intercept, float(r @ r)


def fit_decay(lags, values, se=None, k_min: int = 1, k_max: int | None = None, floor: float = 0.0,
              significance: float = 2.0, min_fit_lags: int = 10, tiny: float = 1e-300) -> dict:
    """Fit exponential and power-law decay to |values| at ``lags`` and compare them by AIC.

    Range: lags in [k_min, k_max] (k_min >= 1), ending before the first lag where the response is
    no longer measurable: |value| <= max(floor * peak, tiny) (an exact zero, underflow, or an
    optional relative floor), or, when standard errors ``se`` are given, |value| <= significance
    * se (a mean not distinguishable from zero). Exponential: log|A_k| = a - rate k. Power law:
    log|A_k| = a - exponent log k. Both OLS on log values; AIC = n log(RSS / n) + 2 * 3.
    Returns the verdict dict of ``long_memory_probe``.
    """
    lags = np.asarray(lags)
    vals = np.abs(np.asarray(values, dtype=np.float64))
    if k_min < 1:
        raise ConfigError(f"k_min must be >= 1 (log k is needed for the power law), got {k_min}")
    k_max = int(lags.max()) if k_max is None else int(k_max)
    if k_max <= k_min:
        raise ConfigError(f"the fit range needs k_max > k_min, got k_min={k_min}, k_max={k_max}")
    sel = (lags >= k_min) & (lags <= k_max)
    lk, v = lags[sel].astype(np.float64), vals[sel]
    peak = float(np.nanmax(v)) if v.size else 0.0
    ok = v > max(floor * peak, tiny)
    stop_reason = "end of the requested range"
    if se is not None:
        s_sel = np.asarray(se, dtype=np.float64)[sel]
        ok_sig = v > significance * s_sel
    else:
        ok_sig = np.ones_like(ok)
    bad = np.flatnonzero(~(ok & ok_sig))
    stop = int(bad[0]) if bad.size else v.size
    if bad.size:
        stop_reason = (f"lag {int(lk[stop])}: " + ("below the floor (zero, underflow or floor x peak)"
                       if not ok[stop] else f"mean within {significance:g} standard errors of zero"))
    lk, v = lk[:stop], v[:stop]
    out = {"k_min": int(k_min), "k_max_requested": k_max, "floor": floor, "significance": significance,
           "k_max": int(lk[-1]) if lk.size else None, "n_fit": int(lk.size), "stop": stop_reason}
    if lk.size < min_fit_lags:
        out.update(verdict="short memory", aic_exp=math.nan, aic_power=math.nan, delta_aic=math.nan,
                   rate=math.nan, half_life=math.nan, exponent=math.nan, summable=True,
                   r2_exp=math.nan, r2_power=math.nan,
                   reason=(f"the response stopped being measurable after {lk.size} lag(s) from k={k_min} "
                           f"({stop_reason}), fewer than min_fit_lags={min_fit_lags}: faster than any "
                           "decay that can be fitted"))
        return out
    y = np.log(v)
    n = y.size
    tss = float(((y - y.mean()) ** 2).sum())
    tiny = np.finfo(np.float64).tiny
    s_exp, a_exp, rss_exp = _ols(lk, y)
    s_pow, a_pow, rss_pow = _ols(np.log(lk), y)
    aic_exp = n * math.log(max(rss_exp, tiny) / n) + 6.0
    aic_pow = n * math.log(max(rss_pow, tiny) / n) + 6.0
    rate, exponent = -s_exp, -s_pow
    long = aic_pow < aic_exp
    out.update(
        verdict="long memory" if long else "short memory",
        aic_exp=aic_exp, aic_power=aic_pow, delta_aic=aic_exp - aic_pow,
        rate=rate, half_life=math.log(2.0) / rate if rate > 0 else math.inf,
        exponent=exponent, summable=bool(exponent > 1.0),
        intercept_exp=a_exp, intercept_power=a_pow,
        r2_exp=1 - rss_exp / tss if tss > 0 else math.nan,
        r2_power=1 - rss_pow / tss if tss > 0 else math.nan,
        reason=("power law fits better (lower AIC)" if long else "exponential decay fits better (lower AIC)"),
    )
    return out


# ----------------------------------------------------------------------------- the probe
def long_memory_probe(
    model,
    x,
    max_lag: int = 1000,
    n_samples: int = 64,
    device=None,
    *,
    output="norm",
    reduce: str = "mean",
    method: str = "copies",
    batch_size: int = 256,
    dtype="float64",
    fit_range: tuple[int, int] | None = None,
    floor: float = 0.0,
    significance: float | None = 2.0,
    min_fit_lags: int = 10,
    warmup: int = 0,
    seed: int = 0,
    input_size: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> tuple[pd.DataFrame, dict]:
    """Response coefficients A_k = E_t[dy_t/dx_{t-k}], k = 0..max_lag, of ``model`` along the
    trajectory ``x``, and the Definition-3 verdict (see the module docstring).

    ``model``: any nn.Module (an rnnmem unit, ``CallableUnit`` or plain module) mapping x[T, B, I]
    to y[T, B, O] or (y, state); it must be causal. ``x``: the input series, [T], [T, I] or
    [T, 1, I] (T > max_lag + warmup), or an int T for seeded N(0, 1) white noise. Output times are
    drawn from [max_lag + warmup, T - 1]. ``batch_size`` bounds the number of (output time, output
    component) pairs differentiated together (memory); the cost grows with n_samples x outputs
    (``output="norm"``) times the trajectory length.

    Returns ``(frame, verdict)``: ``frame`` has one row per lag with ``A`` (signed, scalar
    models), ``abs_A`` = ||mean_t J_k||, ``se_A``, ``mean_abs`` = mean_t ||J_k(t)||,
    ``se_mean_abs`` and ``fitted`` (the column the fits used); ``frame.attrs["config"]`` and
    ``verdict["config"]`` record the full configuration. ``verdict`` holds "verdict",
    "aic_exp", "aic_power", "delta_aic" (> 0 favours the power law), "rate", "half_life",
    "exponent", "summable", the fit range and goodness of fit.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if reduce not in REDUCTIONS:
        raise ConfigError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    for name, val in (("max_lag", max_lag), ("n_samples", n_samples), ("batch_size", batch_size)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
            raise ConfigError(f"{name} must be a positive integer, got {val!r}")
    started = time.perf_counter()
    model, device, dt = _prepare_model(model, device, dtype)
    in_size = input_size if input_size is not None else getattr(model, "input_size", None)
    traj = _as_trajectory(x, in_size, seed)
    T = traj.shape[0]
    if not isinstance(warmup, (int, np.integer)) or isinstance(warmup, bool) or warmup < 0:
        raise ConfigError(f"warmup must be a non-negative integer, got {warmup!r}")
    if T <= max_lag + warmup:
        raise InputError(f"the trajectory has {T} steps; it needs more than max_lag + warmup = "
                         f"{max_lag + warmup} (each sampled output time t needs t - max_lag >= warmup)")
    traj = traj.to(device=device, dtype=dt)
    candidates = np.arange(max_lag + warmup, T)
    rng = np.random.default_rng(seed)
    S = min(int(n_samples), candidates.size)
    times = np.sort(rng.choice(candidates, size=S, replace=False))

    with torch.no_grad():
        n_out = _model_output(model, traj[:2]).shape[-1]
    dirs = _directions(output, n_out)
    D, I, K = len(dirs), traj.shape[-1], int(max_lag)
    per_chunk = max(1, int(batch_size) // D)
    jac = _jacobians_copies if method == "copies" else _jacobians_vmap

    lag_idx = torch.arange(K + 1, device=device)
    mom_J, mom_n = _Moments(), _Moments()
    for start in range(0, S, per_chunk):
        chunk = times[start : start + per_chunk]
        g = jac(model, traj, chunk, dirs)                                  # [c*D, T_chunk, I]
        g = g.reshape(len(chunk), D, g.shape[1], I)
        t_idx = torch.as_tensor(chunk, device=device)[:, None] - lag_idx[None, :]   # [c, K+1]
        J = g[torch.arange(len(chunk), device=device)[:, None], :, t_idx]          # [c, K+1, D, I]
        mom_J.add(J)
        mom_n.add(J.flatten(2).norm(dim=-1))                               # [c, K+1]
        if progress is not None:
            progress(len(chunk))

    mean_J, var_J = (a.double().cpu().numpy() for a in mom_J.result())
    mean_n, var_n = (a.double().cpu().numpy() for a in mom_n.result())
    scalar = D * I == 1
    frame = pd.DataFrame({
        "lag": np.arange(K + 1),
        "A": mean_J.reshape(K + 1) if scalar else np.full(K + 1, np.nan),
        "abs_A": np.linalg.norm(mean_J.reshape(K + 1, -1), axis=1),
        "se_A": np.sqrt(var_J.reshape(K + 1, -1).sum(1) / S),
        "mean_abs": mean_n,
        "se_mean_abs": np.sqrt(var_n / S),
    })
    column = "abs_A" if reduce == "mean" else "mean_abs"
    frame["fitted"] = frame[column]

    tiny = float(torch.finfo(dt).tiny) * 1e3  # stay clear of denormals
    k_min, k_max = (1, K) if fit_range is None else (int(fit_range[0]), int(fit_range[1]))
    if k_max > K:
        raise ConfigError(f"fit_range ends at {k_max} but only lags up to max_lag = {K} are measured")
    se = frame["se_A"].to_numpy() if reduce == "mean" and significance is not None else None
    verdict = fit_decay(frame["lag"].to_numpy(), frame[column].to_numpy(), se=se, k_min=k_min,
                        k_max=k_max, floor=floor, significance=significance or 0.0,
                        min_fit_lags=min_fit_lags, tiny=tiny)
    describe = getattr(model, "describe", None)
    config = {
        "definition": "Zhao et al. 2020, Definition 3 (polynomial vs exponential decay of dy_t/dx_{t-k})",
        "model": describe() if callable(describe) else type(model).__name__,
        "max_lag": K, "n_samples": S, "sampled_times": times.tolist(), "trajectory_length": int(T),
        "input_size": int(I), "outputs": int(n_out),
        "output": int(output) if isinstance(output, (int, np.integer)) else output,
        "reduce": reduce, "fitted_column": column, "method": method, "batch_size": int(batch_size),
        "dtype": str(dt).replace("torch.", ""), "device": str(device), "seed": int(seed),
        "warmup": int(warmup),
        "trajectory": "white noise N(0,1)" if isinstance(x, (int, np.integer)) else "user series",
        "aic": "n log(RSS/n) + 2*3 on log|A_k|", "floor": floor, "significance": significance,
        "min_fit_lags": int(min_fit_lags),
        "seconds": time.perf_counter() - started,
    }
    frame.attrs["config"] = config
    verdict["config"] = config
    return frame, verdict


__all__ = ["long_memory_probe", "fit_decay", "LinearRecurrence", "FractionalFilter", "METHODS", "REDUCTIONS"]
