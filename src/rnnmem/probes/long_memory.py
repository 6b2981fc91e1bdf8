"""Long-memory probe of any sequence model: Definition 3 of Zhao et al. (ICML 2020).

The paper's part. Zhao et al. (ICML 2020, Definition 3) call a network with input x_t and output
y_t a *long memory* network when its response coefficients are not absolutely summable,

    A_k = E_t[ dy_t / dx_{t-k} ],   k = 0, 1, ...,      long memory  <=>  sum_k |A_k| = infinity,

and prove that RNN and LSTM (under their stationarity conditions) have exponentially decaying,
hence summable, responses (short memory). With a power-law tail |A_k| ~ c k^{-alpha} the sum
diverges iff alpha <= 1; any exponential decay, or a finite mixture of them, is summable.

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
- *Which lags are measurable.* From k_min (``fit_range``, default 1..max_lag) up to the first lag
  where |A_k| <= max(rel_floor * eps, floor) * max|A_k| (eps the machine epsilon of the dtype the
  probe ran in, rel_floor = 1e3: smaller values are rounding noise, e.g. the ~1e-18 an FFT leaves
  past the end of a K-tap filter) or, for ``reduce="mean"``, |A_k| <= significance (2) standard
  errors. This last measurable lag is k_end.
- *Finite filters.* If |A_k| stays below the numerical floor at every lag from k_end + 1 to
  k_max, the response is finite: verdict ``short``, reason "short beyond K=k_end". For units with
  a filter of known length K (mrnnf, mrnn, mlstmf, mlstm, rnn2, ``FractionalFilter``;
  ``filter_length="auto"``) whose measured response extends past K, the tail test uses only the
  lags > K (the asymptotic regime Definition 3 is about); the exponent over 1..K is reported as
  ``alpha_within_filter`` with its CI. If all measured lags lie within K the reason says so.
- *The tail exponent with a confidence interval.* Tail = lags [max(start, tail_start * k_end),
  k_end] (tail_start = 0.1: the last decade), up to 80 lags spaced evenly in log k. OLS of
  log|A_k| = a - alpha log k. Its standard error combines (i) the Newey-West (1987) HAC error of
  the slope (Bartlett kernel, Andrews 1991 AR(1) bandwidth), for the autocorrelated residuals
  along k, and (ii) the bootstrap error over the sampled output times (``n_boot`` resamplings
  with replacement of the times whose J_k(t) average to A_k, the whole curve refitted per
  replicate): se = sqrt(se_HAC^2 + se_boot^2). A curve whose local exponent drifts along the tail
  is not a clean power law: with alpha_L, alpha_U the exponents of the lower and upper half (in
  log k) and reach = alpha_U + (alpha_U - alpha_L) (the drift continued by one more half), the CI
  is [min(alpha, reach) - z se, max(alpha, reach) + z se] (z for ``level``, 0.95). This covers
  the O(1/k) correction of exact fractional filters and widens towards large alpha for
  exponential decays, whose local exponent grows without bound.
- *The short-memory alternative, with the tail exposed.* Both a power law and the best mixture of
  at most 4 decaying exponentials sum_j c_j e^{-s_j k} (c_j >= 0, s_j >= 1 / (20 k_end);
  ``fit_exp_mixture``: NNLS on a grid of 160 rates, then least squares on log values) are fitted
  on the first half (in log k) of the tail and extrapolated to the exposed second half. The
  model whose log-RMSE there is at least 3x smaller (``min_ratio``) wins, provided the bootstrap
  CI of the log ratio excludes 0; otherwise neither does.
- *Verdict.* ``short`` when the response ends (above), or the CI of alpha lies above 1 (summable),
  or the exponential mixture wins the extrapolation (an exponential cut-off). ``long`` when the CI
  of alpha lies at or below 1 and the power law wins. Otherwise ``inconclusive``, as also when
  fewer than ``min_fit_lags`` lags are measurable. For ``reduce="mean"`` an inconclusive |A_k| is
  retested through its bound |A_k| = ||mean_t J_k(t)|| <= mean_t ||J_k(t)||: if the bound is
  short, so is |A_k| (``via_bound``). Every verdict carries its ``reason``.
- *Limits.* On a finite range nothing can tell a power law from a mixture of exponentials whose
  slowest time scale exceeds the range; such mixtures come out ``inconclusive`` (tested with the
  slowest time scale 1x to 30x the range), and the verdict is only ever about the lags measured.
- *Descriptive only.* The earlier comparison (OLS of log|A_k| on k and on log k over the
  measurable lags, AIC = n log(RSS/n) + 2*3) is still reported: aic_exp, aic_power, delta_aic,
  rate, half_life, exponent_full. It is not a test: a mixture of 10 exponentials gets
  delta_aic > 1000 in favour of the power law.
"""

from __future__ import annotations

import copy
import math
import time
from typing import Callable

import numpy as np
import pandas as pd
import torch
from scipy import optimize, stats
from scipy.optimize import nnls
from scipy.special import logsumexp
from torch import nn

from ..errors import ConfigError, InputError
from ..devices import resolve_device
from ..fractional import frac_weights
from .common import check_finite

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
        """Run ``h_t = a h_{t-1} + x_t`` over the sequence.

        Parameters
        ----------
        x : torch.Tensor
            Inputs ``[T, B, I]`` (any trailing shape; the recurrence is elementwise).
        state : torch.Tensor, optional
            Initial ``h_0`` shaped like ``x[0]`` (default zeros).

        Returns
        -------
        (torch.Tensor, torch.Tensor)
            ``y = h`` at every step, ``[T, B, I]``, and the final state ``[B, I]``.
        """
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
        """Apply the filter ``y_t = sum_{j=0}^{min(K, t)} psi_j x_{t-j}`` along dim 0 (zero input before t = 0).

        Parameters
        ----------
        x : torch.Tensor
            Inputs ``[T, ...]`` (time first, e.g. ``[T, B, I]``).

        Returns
        -------
        torch.Tensor
            ``y`` of the same shape and dtype as ``x`` (FFT convolution; exact up to rounding).
        """
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
    check_finite(None, t, names=["the trajectory"])
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
    device = resolve_device(device) if device is not None else (ref.device if ref is not None else torch.device("cpu"))
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


# ----------------------------------------------------------------------------- the Definition-3 test
VERDICTS = ("long", "short", "inconclusive")


def _ols(X: np.ndarray, y: np.ndarray) -> tuple[float, float, float]:
    """Slope, intercept and residual sum of squares of y on [1, X]."""
    Xc = X - X.mean()
    slope = float(Xc @ (y - y.mean()) / (Xc @ Xc))
    intercept = float(y.mean() - slope * X.mean())
    r = y - intercept - slope * X
    return slope, intercept, float(r @ r)


def _andrews_bandwidth(u: np.ndarray) -> int:
    """Bartlett-kernel bandwidth of Andrews (1991, eq. 6.4 with the AR(1) plug-in):
    L = floor(1.1447 (a n)^{1/3}), a = 4 rho^2 / ((1 - rho)^2 (1 + rho)^2), rho the lag-1
    autocorrelation of ``u`` clipped to [-0.97, 0.97]; at most n - 1."""
    n = u.size
    if n < 3 or not np.any(u):
        return 0
    rho = float(np.clip((u[1:] @ u[:-1]) / max(float(u[:-1] @ u[:-1]), 1e-300), -0.97, 0.97))
    a = 4 * rho**2 / ((1 - rho) ** 2 * (1 + rho) ** 2)
    return int(min(n - 1, math.floor(1.1447 * (a * n) ** (1 / 3))))


def _long_run_variance(u: np.ndarray, L: int) -> float:
    """Newey & West (1987): sum_{|l| <= L} (1 - |l| / (L + 1)) gamma_u(l), u of mean zero."""
    n = u.size
    v = float(u @ u) / n
    for lag in range(1, L + 1):
        v += 2.0 * (1.0 - lag / (L + 1)) * float(u[lag:] @ u[:-lag]) / n
    return max(v, 0.0)


def hac_slope(x, y) -> dict:
    """OLS of y on [1, x] with the Newey-West (HAC) standard error of the slope.

    Var(slope) = n * LRV(xc_i e_i) / (sum_i xc_i^2)^2 with xc = x - mean(x), e the OLS residuals,
    LRV the Bartlett-kernel long-run variance (Newey & West 1987) at Andrews' (1991) bandwidth.

    Parameters
    ----------
    x : array-like of float
        ``[n]`` regressor (the probe passes log k).
    y : array-like of float
        ``[n]`` response (the probe passes log |A_k|).

    Returns
    -------
    dict with slope, intercept, se, bandwidth, rss.
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    slope, intercept, rss = _ols(x, y)
    xc = x - x.mean()
    u = xc * (y - intercept - slope * x)
    L = _andrews_bandwidth(u)
    se = math.sqrt(x.size * _long_run_variance(u, L)) / float(xc @ xc)
    return {"slope": slope, "intercept": intercept, "se": se, "bandwidth": L, "rss": rss}


def _mixture_log(k: np.ndarray, logc: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """log sum_j exp(logc_j - rate_j k), without underflow."""
    return logsumexp(logc[None, :] - np.outer(k, rates), axis=1)


def fit_exp_mixture(k, v, n_exp: int = 4, rate_min: float | None = None, rate_max: float = 20.0) -> dict:
    """Best fit of v_k > 0 by a mixture of at most ``n_exp`` decaying exponentials
    sum_j c_j e^{-s_j k} (c_j >= 0, rate_min <= s_j <= rate_max), in relative (log) error.

    Nonnegative least squares (``scipy.optimize.nnls``) of sum_j c_j e^{-s_j k} / v_k on 1 over a
    log grid of 160 rates gives a sparse start; the ``n_exp`` terms contributing most are kept and
    all (log c_j, log s_j) refined by ``scipy.optimize.least_squares`` on the log residuals
    log(sum_j c_j e^{-s_j k}) - log v_k. Default rate_min = 1 / (20 max k): slower terms are
    constant over the data.

    Source: rnnmem's short-memory alternative of the Definition-3 test (module docstring); the NNLS is
    Lawson & Hanson's (1974) through ``scipy.optimize.nnls``.

    Parameters
    ----------
    k : array-like of float
        ``[n]`` lags (> 0).
    v : array-like of float
        ``[n]`` positive values to fit (|A_k|).
    n_exp : int
        Most exponential terms kept (default 4).
    rate_min : float, optional
        Smallest rate (default ``1 / (20 max k)``).
    rate_max : float
        Largest rate (default 20).

    Returns
    -------
    dict with logc, rates (arrays of the kept terms), rss (sum of squared log residuals), n_exp.
    """
    k = np.asarray(k, dtype=np.float64)
    lv = np.log(np.asarray(v, dtype=np.float64))
    rate_min = 1.0 / (20.0 * float(k.max())) if rate_min is None else float(rate_min)
    grid = np.geomspace(rate_min, rate_max, 160)
    E = np.exp(-np.outer(k, grid) - lv[:, None])          # rows / v_k: relative error
    scale = E.max(0)
    use = scale > 1e-300
    coef, _ = nnls(E[:, use] / scale[use], np.ones(k.size), maxiter=50 * int(use.sum()))
    coef = coef / scale[use]
    rates = grid[use]
    nz = np.flatnonzero(coef > 0)
    if nz.size == 0:                                       # cannot happen for v > 0; keep one term
        nz = np.array([int(np.argmin(np.abs(rates - 1.0 / k.max())))])
        coef[nz] = math.exp(float(lv.mean()))
    contrib = coef[nz] * np.exp(-np.outer(k, rates[nz])).sum(0)
    top = nz[np.argsort(contrib)[::-1][:n_exp]]
    J = top.size
    lo = np.r_[np.full(J, -np.inf), np.full(J, math.log(rate_min))]
    hi = np.r_[np.full(J, np.inf), np.full(J, math.log(rate_max))]
    x0 = np.clip(np.r_[np.log(coef[top]), np.log(rates[top])], lo + 1e-9, hi - 1e-9)

    def resid(p):
        return _mixture_log(k, p[:J], np.exp(p[J:])) - lv

    def jac(p):
        terms = p[None, :J] - np.outer(k, np.exp(p[J:]))
        w = np.exp(terms - logsumexp(terms, axis=1, keepdims=True))      # d r_k / d log c_j
        return np.hstack([w, -w * np.outer(k, np.exp(p[J:]))])          # d r_k / d log s_j

    res = optimize.least_squares(resid, x0, jac=jac, bounds=(lo, hi), x_scale="jac", max_nfev=200)
    p = res.x if float(res.fun @ res.fun) <= float(resid(x0) @ resid(x0)) else x0
    r = resid(p)
    return {"logc": p[:J], "rates": np.exp(p[J:]), "rss": float(r @ r), "n_exp": int(J)}


def _log_points(k_a: int, k_b: int, n: int) -> np.ndarray:
    """At most n integer lags from k_a to k_b, evenly spaced in log k (each decade weighs the same)."""
    return np.unique(np.round(np.geomspace(k_a, k_b, n)).astype(int))


def _descriptive_aic(lk: np.ndarray, v: np.ndarray) -> dict:
    """The earlier exp-vs-power comparison, kept as description only (not a test): OLS of log|A_k|
    on k and on log k over the measurable lags, AIC = n log(RSS / n) + 2 * 3."""
    y = np.log(v)
    n = y.size
    tiny = np.finfo(np.float64).tiny
    tss = float(((y - y.mean()) ** 2).sum())
    s_exp, a_exp, rss_exp = _ols(lk, y)
    s_pow, a_pow, rss_pow = _ols(np.log(lk), y)
    aic_exp = n * math.log(max(rss_exp, tiny) / n) + 6.0
    aic_pow = n * math.log(max(rss_pow, tiny) / n) + 6.0
    rate = -s_exp
    return {"aic_exp": aic_exp, "aic_power": aic_pow, "delta_aic": aic_exp - aic_pow, "rate": rate,
            "half_life": math.log(2.0) / rate if rate > 0 else math.inf, "exponent_full": -s_pow,
            "intercept_exp": a_exp, "intercept_power": a_pow,
            "r2_exp": 1 - rss_exp / tss if tss > 0 else math.nan,
            "r2_power": 1 - rss_pow / tss if tss > 0 else math.nan}


def _mixture_weights(k: np.ndarray, v: np.ndarray, rates: np.ndarray) -> np.ndarray:
    """log c_j of sum_j c_j e^{-s_j k} with the rates fixed, c_j >= 0, by NNLS in relative error."""
    E = np.exp(-np.outer(k, rates)) / v[:, None]
    c, _ = nnls(E, np.ones(k.size))
    with np.errstate(divide="ignore"):
        return np.log(c)


def _tail_test(pos, v_all, boot, k_a: int, k_b: int, holdout: float, n_points: int, n_exp: int,
               zcrit: float, min_ratio: float, level: float) -> dict:
    """Tail exponent with its CI, and the extrapolation test against the exponential mixture, on
    the lags k_a..k_b (all measurable). See the module docstring."""
    pts = _log_points(k_a, k_b, n_points)
    idx = np.array([pos[int(k)] for k in pts])
    kf = pts.astype(np.float64)
    lk = np.log(kf)
    ly = np.log(v_all[idx])
    fit = hac_slope(lk, ly)
    alpha = -fit["slope"]
    half = lk <= 0.5 * (lk[0] + lk[-1])
    if min(half.sum(), (~half).sum()) >= 3:
        a_low, a_up = -_ols(lk[half], ly[half])[0], -_ols(lk[~half], ly[~half])[0]
    else:
        a_low = a_up = alpha
    reach = a_up + (a_up - a_low)          # the local exponent's trend continued one more half-tail
    bl = None
    se_boot = 0.0
    if boot is not None and boot.shape[0] > 1:
        bl = np.log(np.maximum(np.abs(boot[:, idx]), np.finfo(np.float64).tiny))
        lkc = lk - lk.mean()
        slopes = (bl - bl.mean(1, keepdims=True)) @ lkc / float(lkc @ lkc)
        se_boot = float(np.std(slopes, ddof=1))
    se = math.hypot(fit["se"], se_boot)
    out = {"tail": (int(k_a), int(k_b)), "n_tail": int(pts.size), "alpha": alpha, "alpha_se": se,
           "alpha_se_hac": fit["se"], "alpha_se_boot": se_boot, "alpha_lower_half": a_low, "alpha_upper_half": a_up,
           "alpha_ci": (min(alpha, reach) - zcrit * se, max(alpha, reach) + zcrit * se),
           "intercept_tail": fit["intercept"],
           "extrapolation": "not run", "log_rmse_ratio_ci": (math.nan, math.nan)}
    # extrapolation: fit both on the first part of the tail (log scale), predict the exposed rest
    k_h = k_a * (k_b / k_a) ** (1.0 - holdout)
    train, test = pts <= k_h, pts > k_h
    if train.sum() < 2 * n_exp + 2 or test.sum() < 4:
        out["extrapolation"] = (f"not run: {int(train.sum())} fitting and {int(test.sum())} exposed lags "
                                f"(needs {2 * n_exp + 2} and 4; widen the tail)")
        return out
    mix = fit_exp_mixture(kf[train], v_all[idx][train], n_exp=n_exp, rate_min=1.0 / (20.0 * k_b))

    def log_ratio(y: np.ndarray, logc: np.ndarray | None) -> tuple[float, float, float]:
        s_p, a_p, _ = _ols(lk[train], y[train])
        if logc is None:
            logc = _mixture_weights(kf[train], np.exp(y[train]), mix["rates"])
        ok = np.isfinite(logc)
        e_pow = y[test] - (a_p + s_p * lk[test])
        e_mix = y[test] - _mixture_log(kf[test], logc[ok], mix["rates"][ok])
        r_p, r_m = float(np.sqrt(np.mean(e_pow**2))), float(np.sqrt(np.mean(e_mix**2)))
        tiny = np.finfo(np.float64).tiny
        return math.log(max(r_m, tiny) / max(r_p, tiny)), r_p, r_m

    lr, r_p, r_m = log_ratio(ly, mix["logc"])
    lo_r = hi_r = lr
    if bl is not None:
        reps = np.array([log_ratio(b, None)[0] for b in bl])
        q = (1.0 - level) / 2.0
        lo_r, hi_r = float(np.quantile(reps, q)), float(np.quantile(reps, 1.0 - q))
        lo_r, hi_r = min(lo_r, lr), max(hi_r, lr)
    if lr > math.log(min_ratio) and lo_r > 0:
        winner = "power"
    elif lr < -math.log(min_ratio) and hi_r < 0:
        winner = "mixture"
    else:
        winner = "neither"
    out.update(extrapolation=winner, holdout_from=int(pts[test][0]), mixture_rates=sorted(map(float, mix["rates"])),
               rmse_power=r_p, rmse_mixture=r_m, log_rmse_ratio=lr, log_rmse_ratio_ci=(lo_r, hi_r))
    return out


def definition3_test(lags, values, *, boot=None, se=None, eps: float = float(np.finfo(np.float64).eps),
                     k_min: int = 1, k_max: int | None = None, filter_length: int | None = None,
                     floor: float = 0.0, rel_floor: float = 1e3, significance: float = 2.0,
                     min_fit_lags: int = 10, tail_start: float = 0.1, holdout: float = 0.5,
                     n_points: int = 80, n_exp: int = 4, min_ratio: float = 3.0, level: float = 0.95) -> dict:
    """Definition 3 of Zhao et al. (2020) as a test: is sum_k |A_k| finite (short) or not (long)?

    The full rules are in the module docstring. In short (Zhao et al., ICML 2020, Definition 3; the
    tail test is rnnmem's):

        long memory  <=>  sum_k |A_k| = infinity;   tail fit  log|A_k| = a - alpha log k  (OLS, HAC + bootstrap se),

    ``short`` when the response ends or the CI of alpha lies above 1 or a mixture of exponentials
    extrapolates the tail better; ``long`` when the CI lies at or below 1 and the power law extrapolates better.

    Parameters
    ----------
    lags, values: lags k and response coefficients A_k (signs are ignored).
    boot: optional [B, len(lags)] bootstrap replicates of the values (resampled output times).
    se: optional standard errors of the values (a lag whose |A_k| <= significance * se ends the
        measurable range).
    eps: machine epsilon of the dtype the response was computed in; the numerical floor is
        max(rel_floor * eps, floor) * max|A_k| (values below it are rounding noise).
    k_min, k_max: the lags considered (k_min >= 1).
    filter_length: a known finite filter length K of the model (mrnnf, ..., FractionalFilter); when
        the measured response extends past K the tail test uses only lags > K.
    tail_start: the tail is [max(start, tail_start * k_end), k_end], k_end the last measurable lag.
    holdout: fraction (in log k) of the tail exposed for the extrapolation test.
    n_points: log-spaced lags used in the tail; n_exp: terms of the exponential mixture; level: of the CI.
    floor: numerical floor relative to max|A_k| (default 0); rel_floor: floor in units of eps * max|A_k|
        (default 1e3); significance: standard errors a measurable |A_k| must exceed (default 2).
    min_fit_lags: fewest measurable tail lags for a test (default 10; fewer: inconclusive).
    min_ratio: how many times smaller the winner's log-RMSE on the exposed tail must be (default 3).

    Returns
    -------
    dict with verdict ("long" | "short" | "inconclusive"), reason, alpha, alpha_ci, alpha_se (HAC
    and bootstrap parts), summable (True / False / None: undecided), response_ends (True: |A_k|
    stays below the numerical floor from k_end + 1 to k_max, a finite response), dm_z (> 0: the power law
    extrapolates the exposed tail better than the best mixture of exponentials), mixture_rates,
    the ranges used (k_end, tail, holdout_from), noise_floor, and the earlier exp/power AIC numbers
    (aic_exp, aic_power, delta_aic, rate, half_life, exponent_full) as description only.

    Raises
    ------
    InputError
        ``lags`` and ``values`` not 1-D of one length, or ``boot`` not ``[B, len(lags)]``.
    ConfigError
        ``k_min < 1``, ``k_max <= k_min``, or ``tail_start``, ``holdout`` or ``level`` outside (0, 1).
    """
    lags = np.asarray(lags).astype(np.int64)
    v_all = np.abs(np.asarray(values, dtype=np.float64))
    if lags.ndim != 1 or lags.shape != v_all.shape:
        raise InputError(f"lags and values must be 1-D of the same length, got {lags.shape} and {v_all.shape}")
    if k_min < 1:
        raise ConfigError(f"k_min must be >= 1 (log k is needed for the power law), got {k_min}")
    k_max = int(lags.max()) if k_max is None else int(k_max)
    if k_max <= k_min:
        raise ConfigError(f"the fit range needs k_max > k_min, got k_min={k_min}, k_max={k_max}")
    if not 0.0 < tail_start < 1.0 or not 0.0 < holdout < 1.0 or not 0.0 < level < 1.0:
        raise ConfigError(f"tail_start, holdout and level must lie in (0, 1), got {tail_start}, {holdout}, {level}")
    if boot is not None:
        boot = np.asarray(boot, dtype=np.float64)
        if boot.ndim != 2 or boot.shape[1] != lags.size:
            raise InputError(f"boot must be [B, {lags.size}] (replicates x lags), got {boot.shape}")
    pos = {int(k): i for i, k in enumerate(lags)}
    sel = (lags >= k_min) & (lags <= k_max)
    lk, v = lags[sel], v_all[sel]
    peak = float(np.nanmax(v)) if v.size else 0.0
    noise = max(rel_floor * eps * peak, floor * peak, np.finfo(np.float64).tiny * 1e3)
    ok_floor = v > noise
    ok_sig = v > significance * np.asarray(se, dtype=np.float64)[sel] if se is not None else np.ones_like(ok_floor)
    bad = np.flatnonzero(~(ok_floor & ok_sig))
    stop = int(bad[0]) if bad.size else v.size
    k_end = int(lk[stop - 1]) if stop else None
    zero_beyond = bool(bad.size) and not bool(ok_floor[stop:].any())
    if bad.size:
        stop_reason = f"lag {int(lk[stop])}: " + ("below the numerical floor" if not ok_floor[stop]
                                                   else f"within {significance:g} standard errors of zero")
    else:
        stop_reason = "end of the requested range"
    zcrit = float(stats.norm.ppf(0.5 + level / 2.0))
    out = {"verdict": "inconclusive", "reason": "", "k_min": int(k_min), "k_max_requested": k_max,
           "k_max": k_end, "k_end": k_end, "n_fit": int(stop), "stop": stop_reason, "noise_floor": noise,
           "floor": floor, "rel_floor": rel_floor, "significance": significance, "filter_length": filter_length,
           "level": level, "alpha": math.nan, "exponent": math.nan, "alpha_ci": (math.nan, math.nan),
           "alpha_se": math.nan, "summable": None, "dm_z": math.nan, "tail": None,
           "response_ends": zero_beyond}
    out.update(_descriptive_aic(lk[:stop].astype(np.float64), v[:stop]) if stop >= 3 else
               {"aic_exp": math.nan, "aic_power": math.nan, "delta_aic": math.nan, "rate": math.nan,
                "half_life": math.nan, "exponent_full": math.nan})

    # lags past a finite filter: the tail test looks only beyond K; the filter part is described
    start = int(k_min)
    K = int(filter_length) if filter_length is not None else None
    past_filter = K is not None and k_end is not None and k_end > K
    if past_filter and K - k_min + 1 >= min_fit_lags:
        inner = _log_points(k_min, K, n_points)
        f = hac_slope(np.log(inner.astype(np.float64)), np.log(v_all[[pos[int(k)] for k in inner]]))
        out.update(alpha_within_filter=-f["slope"],
                   alpha_within_filter_ci=(-f["slope"] - zcrit * f["se"], -f["slope"] + zcrit * f["se"]))
    if past_filter:
        start = K + 1
    k_note = f" (the model's filter length K = {K})" if K is not None else ""

    n_tail_lags = 0 if k_end is None else k_end - start + 1
    if zero_beyond and n_tail_lags < min_fit_lags:
        last = k_end if k_end is not None else k_min - 1
        out.update(verdict="short", summable=True,
                   reason=(f"short beyond K={last}: |A_k| is below the numerical floor {noise:.3g} "
                           f"({rel_floor:g} eps max|A_k|) at every lag from {last + 1} to {k_max}{k_note}; "
                           "the response is finite, so sum_k |A_k| converges"))
        return out
    if n_tail_lags < min_fit_lags:
        out["reason"] = (f"only {max(n_tail_lags, 0)} measurable lag(s) from k={start} ({stop_reason}), "
                         f"fewer than min_fit_lags={min_fit_lags}: too few for a tail test; use more "
                         "output times (n_samples) or a longer range")
        return out
    k_a = max(start, int(math.ceil(tail_start * k_end)))
    if k_end - k_a + 1 < min_fit_lags:
        k_a = max(start, k_end - min_fit_lags + 1)
    t = _tail_test(pos, v_all, boot, k_a, k_end, holdout, n_points, n_exp, zcrit, min_ratio, level)
    out.update(t)
    out["exponent"] = t["alpha"]
    lo, hi = t["alpha_ci"]
    ext = t["extrapolation"]
    desc = f"tail k={k_a}..{k_end}: alpha = {t['alpha']:.3f} [{lo:.3f}, {hi:.3f}] ({level:.0%} CI)"
    if ext in ("power", "mixture", "neither"):
        rl, rh = t["log_rmse_ratio_ci"]
        desc += (f"; extrapolated to k={t['holdout_from']}..{k_end}, log-RMSE of the power law "
                 f"{t['rmse_power']:.3g} vs {len(t['mixture_rates'])} exponentials {t['rmse_mixture']:.3g} "
                 f"(log ratio {t['log_rmse_ratio']:.2f} [{rl:.2f}, {rh:.2f}])")
    else:
        desc += f"; extrapolation test {ext}"
    if zero_beyond:
        desc += f"; |A_k| is below the numerical floor from lag {k_end + 1} to {k_max} (short beyond K={k_end})"
    if K is not None and not past_filter:
        desc += (f"; all measured lags lie within the model's filter (K = {K}): Definition 3 concerns "
                 "k -> infinity, probe max_lag > K to see past it")
    out["summable"] = True if lo > 1.0 else (False if hi <= 1.0 else None)
    if zero_beyond:
        out.update(verdict="short", summable=True, reason="the response ends: " + desc)
    elif lo > 1.0:
        out.update(verdict="short", reason="alpha > 1, so sum_k |A_k| converges: " + desc)
    elif ext == "mixture":
        out.update(verdict="short", reason="a mixture of exponentials extrapolates the tail better than "
                                           "the power law (an exponential cut-off: sum_k |A_k| converges): " + desc)
    elif hi <= 1.0 and ext == "power":
        out.update(verdict="long", reason="alpha <= 1 and the power law extrapolates the tail better than "
                                          "the best mixture of exponentials, so sum_k |A_k| diverges: " + desc)
    else:
        why = ("the CI of alpha contains 1" if hi > 1.0 else
               "alpha <= 1 but the power law does not extrapolate the tail clearly better than a mixture of exponentials")
        out.update(verdict="inconclusive", reason=f"{why}: " + desc)
    return out


def _bootstrap(per_sample: np.ndarray, n_boot: int, seed: int) -> np.ndarray:
    """[n_boot, K+1] replicates of the fitted column with the S output times resampled with
    replacement: ||mean_b J_k|| (per_sample [S, K+1, D*I], reduce="mean") or mean_b ||J_k||
    (per_sample [S, K+1], "mean_abs"). Seeded by ``seed``."""
    S = per_sample.shape[0]
    rng = np.random.default_rng([int(seed), 0xB007])
    W = rng.multinomial(S, np.full(S, 1.0 / S), size=n_boot) / S        # [B, S] resampling weights
    flat = per_sample.reshape(S, -1)
    out = []
    for b0 in range(0, n_boot, 32):
        m = (W[b0:b0 + 32] @ flat).reshape((-1,) + per_sample.shape[1:])
        out.append(np.linalg.norm(m, axis=2) if m.ndim == 3 else m)
    return np.concatenate(out)


def _filter_length(model) -> int | None:
    """The finite filter length K of rnnmem's filter units (mrnnf, mrnn, mlstmf, mlstm, rnn2) and
    of ``FractionalFilter``; None for anything else (rwa has no filter)."""
    from ..cells.memory import RWA, MemoryUnit

    if isinstance(model, FractionalFilter) or (isinstance(model, MemoryUnit) and not isinstance(model, RWA)):
        return int(model.K)
    return None


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
    rel_floor: float = 1e3,
    significance: float | None = 2.0,
    min_fit_lags: int = 10,
    filter_length="auto",
    tail_start: float = 0.1,
    level: float = 0.95,
    n_boot: int = 200,
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
    ``verdict["config"]`` record the full configuration. ``verdict`` is ``definition3_test``'s
    dict: "verdict" ("long" | "short" | "inconclusive"), "reason", "alpha" (= "exponent") and
    "alpha_ci", "summable", "extrapolation", the lags used ("k_end", "tail"), "noise_floor",
    "via_bound", and the descriptive "aic_exp", "aic_power", "delta_aic", "rate", "half_life".

    Test options: ``fit_range`` (k_min, k_max), ``floor`` (relative to the peak) and
    ``rel_floor`` (times the dtype's eps), ``significance``, ``min_fit_lags``, ``filter_length``
    ("auto": the K of rnnmem's filter units and ``FractionalFilter``; an int; None),
    ``tail_start``, ``level`` and ``n_boot`` (bootstrap replicates over the output times; 0: none).

    The measure (Zhao et al., ICML 2020, Definition 3), estimated over the S sampled output times t:

        J_k(t) = dy_t / dx_{t-k}  (O x I),   |A_k| = || (1/S) sum_t J_k(t) ||_F   (reduce="mean"),
        or mean_abs_k = (1/S) sum_t ||J_k(t)||_F   (reduce="mean_abs");   long memory <=> sum_k |A_k| = infinity.

    Parameters
    ----------
    model : torch.nn.Module or callable
        Causal map ``x[T, B, I] -> y[T, B, O]`` (or ``(y, state)``; a 2-D ``y`` is read as O = 1); one
        network, not an ensemble. A copy is probed, cast to ``dtype``, with parameters frozen.
    x : int, array-like, torch.Tensor, pandas Series/DataFrame
        The trajectory ``[T]``, ``[T, I]`` or ``[T, 1, I]``, or an int T for seeded N(0, 1) white noise.
    max_lag : int
        Largest lag K (>= 1; default 1000); T must exceed ``max_lag + warmup``.
    n_samples : int
        Output times S drawn without replacement (>= 1; default 64; capped by the candidates).
    device : str or torch.device, optional
        Where to compute (default the model's device).
    output : "norm", "sum" or int
        Which output is differentiated: every component (Frobenius norm), their sum, or one index.
    reduce : {"mean", "mean_abs"}
        The fitted column: ``abs_A`` (the paper's A_k) or ``mean_abs``.
    method : {"copies", "vmap"}
        How output times are batched in the backward pass (both exact).
    batch_size : int
        Most (output time, output component) pairs per backward pass (default 256).
    dtype : "float64", "float32", torch dtype or "model"
        Precision of the probed copy (default float64; "model": the model's own).
    fit_range : (int, int), optional
        ``(k_min, k_max)`` of the test (default ``(1, max_lag)``; k_max <= max_lag).
    floor, rel_floor, significance, min_fit_lags, tail_start, level
        Options of :func:`definition3_test` (``significance=None``: no standard-error cut).
    filter_length : "auto", int or None
        The model's finite filter length K (see above).
    n_boot : int
        Bootstrap replicates over the output times (>= 0; default 200).
    warmup : int
        Steps before the first lag of any output time (>= 0; default 0).
    seed : int
        Seeds the white-noise trajectory, the output times and the bootstrap.
    input_size : int, optional
        Input width of a white-noise trajectory and check of a given one (default ``model.input_size``, else 1).
    progress : callable, optional
        ``progress(n)`` with the output times done in each chunk.

    Returns
    -------
    (pandas.DataFrame, dict)
        ``frame`` and ``verdict`` as described above.

    Raises
    ------
    ConfigError
        An unknown method, reduce, output or dtype, a non-positive count, a bad ``filter_length`` or
        ``warmup``, a ``fit_range`` past ``max_lag``, an ensemble, or the test's option errors.
    InputError
        Non-finite weights or trajectory, a trajectory of the wrong shape or too short, or a model output
        that is not ``[T, B, O]``.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if reduce not in REDUCTIONS:
        raise ConfigError(f"reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    for name, val in (("max_lag", max_lag), ("n_samples", n_samples), ("batch_size", batch_size)):
        if not isinstance(val, (int, np.integer)) or isinstance(val, bool) or val < 1:
            raise ConfigError(f"{name} must be a positive integer, got {val!r}")
    if not isinstance(n_boot, (int, np.integer)) or isinstance(n_boot, bool) or n_boot < 0:
        raise ConfigError(f"n_boot must be a non-negative integer (0: no bootstrap), got {n_boot!r}")
    if not (filter_length is None or (isinstance(filter_length, str) and filter_length == "auto")
            or (isinstance(filter_length, (int, np.integer)) and not isinstance(filter_length, bool)
                and filter_length >= 1)):
        raise ConfigError(f"filter_length must be 'auto', None or a positive integer, got {filter_length!r}")
    started = time.perf_counter()
    check_finite(model)
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
    keep = []                        # per-sample J (reduce="mean") or ||J|| ("mean_abs"), for the bootstrap
    for start in range(0, S, per_chunk):
        chunk = times[start : start + per_chunk]
        g = jac(model, traj, chunk, dirs)                                  # [c*D, T_chunk, I]
        g = g.reshape(len(chunk), D, g.shape[1], I)
        t_idx = torch.as_tensor(chunk, device=device)[:, None] - lag_idx[None, :]   # [c, K+1]
        J = g[torch.arange(len(chunk), device=device)[:, None], :, t_idx]          # [c, K+1, D, I]
        mom_J.add(J)
        mom_n.add(J.flatten(2).norm(dim=-1))                               # [c, K+1]
        if n_boot:
            keep.append((J.flatten(2) if reduce == "mean" else J.flatten(2).norm(dim=-1)).double().cpu().numpy())
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

    k_min, k_max = (1, K) if fit_range is None else (int(fit_range[0]), int(fit_range[1]))
    if k_max > K:
        raise ConfigError(f"fit_range ends at {k_max} but only lags up to max_lag = {K} are measured")
    se = frame["se_A"].to_numpy() if reduce == "mean" and significance is not None else None
    per_sample = np.concatenate(keep) if keep else None
    boot = _bootstrap(per_sample, n_boot, seed) if n_boot and S > 1 else None
    K_f = _filter_length(model) if isinstance(filter_length, str) and filter_length == "auto" else filter_length
    opts = dict(eps=float(torch.finfo(dt).eps), k_min=k_min, k_max=k_max, filter_length=K_f, floor=floor,
                rel_floor=rel_floor, min_fit_lags=min_fit_lags, tail_start=tail_start, level=level)
    verdict = definition3_test(frame["lag"].to_numpy(), frame[column].to_numpy(), boot=boot, se=se,
                               significance=significance or 0.0, **opts)
    verdict["via_bound"] = False
    if reduce == "mean" and verdict["verdict"] == "inconclusive":
        # |A_k| = ||mean_t J_k(t)|| <= mean_t ||J_k(t)||: if the bound is summable, so is |A_k|
        nboot = _bootstrap(np.linalg.norm(per_sample, axis=2), n_boot, seed) if boot is not None else None
        bound = definition3_test(frame["lag"].to_numpy(), frame["mean_abs"].to_numpy(), boot=nboot, **opts)
        if bound["verdict"] == "short":
            verdict.update(verdict="short", summable=True, via_bound=True, bound=bound,
                           reason=(f"|A_k| alone is inconclusive ({verdict['reason']}); but |A_k| <= "
                                   "mean_t ||dy_t/dx_{t-k}|| and that upper bound is short memory: "
                                   + bound["reason"]))
    describe = getattr(model, "describe", None)
    config = {
        "definition": "Zhao et al. 2020, Definition 3: long memory iff sum_k |A_k| diverges, A_k = E_t[dy_t/dx_{t-k}]",
        "model": describe() if callable(describe) else type(model).__name__,
        "max_lag": K, "n_samples": S, "sampled_times": times.tolist(), "trajectory_length": int(T),
        "input_size": int(I), "outputs": int(n_out),
        "output": int(output) if isinstance(output, (int, np.integer)) else output,
        "reduce": reduce, "fitted_column": column, "method": method, "batch_size": int(batch_size),
        "dtype": str(dt).replace("torch.", ""), "device": str(device), "seed": int(seed),
        "warmup": int(warmup),
        "trajectory": "white noise N(0,1)" if isinstance(x, (int, np.integer)) else "user series",
        "test": "tail exponent alpha of |A_k| ~ k^-alpha (HAC + bootstrap CI) and extrapolation against "
                "a mixture of exponentials; long iff alpha <= 1 and the power law wins",
        "aic": "descriptive only: n log(RSS/n) + 2*3 on log|A_k|", "floor": floor, "rel_floor": rel_floor,
        "significance": significance, "min_fit_lags": int(min_fit_lags), "n_boot": int(n_boot),
        "filter_length": K_f, "tail_start": tail_start, "level": level,
        "seconds": time.perf_counter() - started,
    }
    frame.attrs["config"] = config
    verdict["config"] = config
    return frame, verdict


__all__ = ["long_memory_probe", "definition3_test", "fit_exp_mixture", "hac_slope",
           "LinearRecurrence", "FractionalFilter", "METHODS", "REDUCTIONS", "VERDICTS"]


# --------------------------------------------------------------------------------------------
# The probe contract (``probes/contract.py``): PROBES["long_memory"]
# --------------------------------------------------------------------------------------------
from typing import Literal  # noqa: E402

from pydantic import Field  # noqa: E402

from .contract import ProbeSettings, register_probe  # noqa: E402

# What a summary keeps of the Definition-3 verdict (``definition3_test``): the test, then the descriptive AIC numbers
LONG_MEMORY_KEYS = ("verdict", "reason", "alpha", "alpha_se", "summable", "response_ends", "via_bound",
                    "extrapolation", "k_end", "k_max_requested", "n_tail", "noise_floor", "level", "filter_length",
                    "alpha_within_filter", "intercept_tail",
                    "aic_exp", "aic_power", "delta_aic", "rate", "half_life", "exponent_full", "r2_exp", "r2_power",
                    "n_fit")


def long_memory_fields(verdict: dict) -> dict:
    """The flat view of a Definition-3 verdict: ``LONG_MEMORY_KEYS`` plus the intervals and the
    tail range as scalars (``alpha_ci_low``/``_high``, ``alpha_within_filter_ci_low``/``_high``,
    ``tail_from``/``tail_to``), so every number has a JSON path; the upper bound's verdict, when the
    verdict came from it, under ``bound``.

    Parameters
    ----------
    verdict : dict
        :func:`definition3_test`'s (or :func:`long_memory_probe`'s) verdict.

    Returns
    -------
    dict
        Every key of ``LONG_MEMORY_KEYS`` (None when absent), ``alpha_ci_low``, ``alpha_ci_high``,
        ``alpha_within_filter_ci_low``, ``alpha_within_filter_ci_high``, ``tail_from``, ``tail_to`` and,
        with ``via_bound``, ``bound`` (the same view of the bound's verdict).
    """
    out = {k: verdict.get(k) for k in LONG_MEMORY_KEYS}
    for key in ("alpha_ci", "alpha_within_filter_ci"):
        ci = verdict.get(key)
        out[f"{key}_low"], out[f"{key}_high"] = (ci[0], ci[1]) if ci is not None else (None, None)
    tail = verdict.get("tail")
    out["tail_from"], out["tail_to"] = (tail[0], tail[1]) if tail is not None else (None, None)
    if verdict.get("via_bound") and isinstance(verdict.get("bound"), dict):
        out["bound"] = long_memory_fields(verdict["bound"])
    return out


class LongMemoryProbeSettings(ProbeSettings):
    """Settings of ``PROBES["long_memory"]`` (defaults: the memory card's): ``n_samples`` random
    trajectories of ``T`` steps, response coefficients A_k up to ``max_lag``, of the ``output``
    reduction ("sum" of the output vector, or its "norm"), tested by ``definition3_test``."""

    T: int = Field(1_000, ge=4)
    max_lag: int = Field(300, ge=2)
    n_samples: int = Field(12, ge=2)
    output: Literal["sum", "norm"] = "sum"

    def model_post_init(self, __context) -> None:
        """Check across fields after validation: ``max_lag`` must be below ``T``.

        Parameters
        ----------
        __context : object
            pydantic's validation context (unused).

        Returns
        -------
        None

        Raises
        ------
        ValueError
            ``max_lag >= T`` (a ConfigError through the contract).
        """
        if self.max_lag >= self.T:
            raise ValueError(f"max_lag={self.max_lag} must be below the trajectory length T={self.T}")


def _contract_run(unit, s: LongMemoryProbeSettings, *, seed, device, dtype, progress):
    """Definition 3 of Zhao et al. (2020): A_k = E_t[dy_t/dx_{t-k}], long memory iff sum |A_k| diverges;
    verdict long / short / inconclusive from the tail test (module docstring)."""
    done = [0]

    def tick(n):
        done[0] += n
        if progress is not None:
            progress(done[0], s.n_samples)

    frame, verdict = long_memory_probe(unit, s.T, max_lag=s.max_lag, n_samples=s.n_samples, output=s.output,
                                       seed=seed, progress=tick)
    return frame, long_memory_fields(verdict), {"lags": frame["lag"].to_numpy(),
                                                "abs_A": frame["fitted"].to_numpy()}, verdict


def _plot(result, ax):
    lags, v = np.asarray(result.details["lags"], float), np.asarray(result.details["abs_A"], float)
    ok = np.isfinite(v) & (v > 0) & (lags > 0)
    ax.loglog(lags[ok], v[ok])
    ax.set_xlabel("lag k")
    ax.set_ylabel("|A_k| (log)")
    ax.set_title(f"Definition 3: {result.headline.get('verdict')}")


register_probe("long_memory", LongMemoryProbeSettings, _contract_run,
               "response coefficients A_k and the Definition-3 long-memory verdict (Zhao et al. 2020)", plotter=_plot)
