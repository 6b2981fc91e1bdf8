"""ARFIMA(p, d, q) simulation and the statistics of long memory: estimators of d and the sample ACF.

Model (Granger & Joyeux 1980; Hosking 1981), with B the backshift operator:

    phi(B) (1 - B)^d X_t = theta(B) eps_t,      eps_t ~ N(0, sigma^2) i.i.d.,   -1/2 < d < 1/2,
    phi(B)   = 1 - phi_1 B - ... - phi_p B^p      (``ar=(phi_1, ..., phi_p)``),
    theta(B) = 1 + theta_1 B + ... + theta_q B^q  (``ma=(theta_1, ..., theta_q)``).

The MA sign convention is R's ``arima.sim`` / statsmodels' (``theta`` added); R's
``fracdiff.sim`` uses the opposite (Box-Jenkins) sign for ``ma``.

Simulation: ARMA filtering of the innovations with ``scipy.signal.lfilter``, then fractional
integration X = (1 - B)^{-d} U with the MA(infinity) weights psi_j = pi_j(-d) of
``rnnmem.fractional.frac_weights`` truncated at n + burn_in, applied by FFT convolution
(O(n log n)); the first ``burn_in`` values are discarded. The two operators commute, so the order
does not change the process.

Estimators of d (both semiparametric, on the Fourier frequencies lambda_j = 2 pi j / n,
j = 1..m, m = floor(n^alpha), periodogram I(lambda) = |sum_t (x_t - xbar) e^{-i t lambda}|^2 / (2 pi n)):

- GPH (Geweke & Porter-Hudak 1983): OLS of log I(lambda_j) on X_j = -log(4 sin^2(lambda_j / 2))
  (= -2 log(2 sin(lambda_j / 2))); the slope is d. This is the convention of R's
  ``fracdiff::fdGPH(x, bandw.exp = 0.5)`` (m = trunc(n^0.5), regressor 2 log(2 sin(w/2)), d = -slope).
  Standard error: the asymptotic one, sqrt((pi^2 / 6) / sum_j (X_j - Xbar)^2) (fdGPH's ``sd.as``);
  the OLS residual-based one is reported as ``se_reg``.
- Local Whittle (Robinson 1995, eq. 3.1-3.3): d minimises
  R(d) = log( (1/m) sum_j lambda_j^{2d} I(lambda_j) ) - 2 d (1/m) sum_j log lambda_j
  over (-1/2, 1); standard error 1 / (2 sqrt(m)) (Robinson 1995, Theorem 2).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from math import exp, lgamma

import numpy as np
import pandas as pd
from scipy import optimize, signal, stats

from ..errors import ConfigError, InputError
from ..fractional import fractional_filter

_DTYPES = {"float64": np.float64, "float32": np.float32}


# ----------------------------------------------------------------------------- simulation
def _check_d(d: float) -> float:
    try:
        d = float(d)
    except (TypeError, ValueError):
        raise ConfigError(f"d must be a number in (-0.5, 0.5), got {d!r}") from None
    if not -0.5 < d < 0.5:
        raise ConfigError(
            f"d = {d} is outside (-0.5, 0.5): ARFIMA is stationary and invertible only there; "
            "for 0.5 <= d < 1.5 simulate with d - 1 and take cumulative sums"
        )
    return d


def _check_coeffs(name: str, coeffs) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(coeffs, dtype=np.float64))
    except (TypeError, ValueError):
        raise ConfigError(f"{name} must be a sequence of numbers, got {coeffs!r}") from None
    if arr.ndim != 1 or not np.all(np.isfinite(arr)):
        raise ConfigError(f"{name} must be a flat sequence of finite numbers, got {coeffs!r}")
    return arr


def _ar_is_stationary(ar: np.ndarray) -> bool:
    """All roots of phi(z) = 1 - phi_1 z - ... - phi_p z^p outside the unit circle."""
    if ar.size == 0:
        return True
    roots = np.roots(np.r_[-ar[::-1], 1.0])  # highest power first
    return bool(np.all(np.abs(roots) > 1.0 + 1e-10))


def simulate_arfima(
    n: int,
    d: float,
    ar=(),
    ma=(),
    sigma: float = 1.0,
    burn_in: int | None = None,
    seed: int | None = None,
    dtype: str = "float64",
) -> np.ndarray:
    """Simulate n values of the Gaussian ARFIMA(p, d, q) process of the module docstring.

    ``burn_in`` (default max(1000, n)) values are simulated first and discarded: the MA(infinity)
    filter is truncated at n + burn_in, i.e. innovations before the burn-in are zero. ``seed``
    seeds ``numpy.random.default_rng``; the same seed gives the same series. Computed in float64,
    returned as ``dtype`` (float64 or float32).
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    d = _check_d(d)
    ar = _check_coeffs("ar", ar)
    ma = _check_coeffs("ma", ma)
    if not _ar_is_stationary(ar):
        raise ConfigError(
            f"ar = {tuple(ar)} is not stationary (a root of 1 - phi_1 z - ... lies on or inside the "
            "unit circle); choose AR coefficients with all roots outside it"
        )
    if not np.isfinite(sigma) or sigma <= 0:
        raise ConfigError(f"sigma must be a positive number, got {sigma!r}")
    if burn_in is None:
        burn_in = max(1000, int(n))
    if not isinstance(burn_in, (int, np.integer)) or isinstance(burn_in, bool) or burn_in < 0:
        raise ConfigError(f"burn_in must be a non-negative integer, got {burn_in!r}")
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    total = int(n) + int(burn_in)
    rng = np.random.default_rng(seed)
    eps = sigma * rng.standard_normal(total)
    u = signal.lfilter(np.r_[1.0, ma], np.r_[1.0, -ar], eps)  # theta(B) / phi(B) eps
    x = fractional_filter(u, -d) if d != 0.0 else u               # (1 - B)^{-d} u, by FFT
    return x[burn_in:].astype(_DTYPES[dtype])


def arfima_frame(n: int, d: float, ar=(), ma=(), sigma: float = 1.0, burn_in: int | None = None,
                 seed: int | None = None, dtype: str = "float64") -> pd.DataFrame:
    """``simulate_arfima`` as a DataFrame with columns ``t`` and ``x`` (the layout ``load_series``
    reads); the full configuration is recorded in ``frame.attrs["config"]``."""
    x = simulate_arfima(n, d, ar=ar, ma=ma, sigma=sigma, burn_in=burn_in, seed=seed, dtype=dtype)
    frame = pd.DataFrame({"t": np.arange(len(x)), "x": x})
    frame.attrs["config"] = {
        "process": "ARFIMA", "n": int(n), "d": float(d), "ar": list(map(float, np.atleast_1d(ar))),
        "ma": list(map(float, np.atleast_1d(ma))), "sigma": float(sigma),
        "burn_in": int(burn_in if burn_in is not None else max(1000, n)), "seed": seed, "dtype": dtype,
        "convention": "phi(B)(1-B)^d X = theta(B) eps, theta(B) = 1 + theta_1 B + ...",
    }
    return frame


def arfima_acf(d: float, nlags: int) -> np.ndarray:
    """Autocorrelations rho_0..rho_nlags of ARFIMA(0, d, 0) (Hosking 1981, Theorem 1(d)):
    rho_k = prod_{i=1}^{k} (i - 1 + d) / (i - d)  ~  Gamma(1-d)/Gamma(d) k^{2d-1}."""
    d = _check_d(d)
    i = np.arange(1, int(nlags) + 1, dtype=np.float64)
    return np.r_[1.0, np.cumprod((i - 1 + d) / (i - d))]


def arfima_variance(d: float, sigma: float = 1.0) -> float:
    """Variance of ARFIMA(0, d, 0): sigma^2 Gamma(1 - 2d) / Gamma(1 - d)^2 (Hosking 1981)."""
    d = _check_d(d)
    return float(sigma**2 * exp(lgamma(1 - 2 * d) - 2 * lgamma(1 - d)))


# ----------------------------------------------------------------------------- estimators of d
@dataclass(frozen=True)
class DEstimate:
    """One estimate of the memory parameter d with its standard error and conventions."""

    method: str
    d: float
    se: float
    m: int
    n: int
    alpha: float | None
    convention: str
    extra: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        out = asdict(self)
        out.update(out.pop("extra"))
        return out


def _as_series(x, min_length: int = 8) -> np.ndarray:
    if isinstance(x, (pd.Series, pd.DataFrame)):
        x = x.to_numpy()
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise InputError("the series must be numeric (a 1-D array of numbers)") from None
    arr = np.squeeze(arr) if arr.ndim > 1 and max(arr.shape) == arr.size else arr
    if arr.ndim != 1:
        raise InputError(f"the series must be one-dimensional, got shape {np.shape(x)}")
    if not np.all(np.isfinite(arr)):
        bad = int(np.flatnonzero(~np.isfinite(arr))[0])
        raise InputError(f"the series contains NaN or infinite values (first at index {bad}); "
                         "clean or impute it first")
    if arr.size < min_length:
        raise InputError(f"the series has {arr.size} values; at least {min_length} are needed")
    return arr


def _bandwidth(n: int, alpha: float | None, m: int | None) -> tuple[int, float | None]:
    if m is None:
        if alpha is None or not 0.0 < float(alpha) < 1.0:
            raise ConfigError(f"bandwidth exponent alpha must be in (0, 1), got {alpha!r}")
        m = int(np.floor(n ** float(alpha)))
    elif not isinstance(m, (int, np.integer)) or isinstance(m, bool):
        raise ConfigError(f"bandwidth m must be an integer, got {m!r}")
    else:
        alpha = None
    if m < 3 or m > (n - 1) // 2:
        raise ConfigError(
            f"bandwidth m = {m} must be between 3 and (n - 1) / 2 = {(n - 1) // 2} for n = {n}; "
            "use a longer series or another alpha"
        )
    return int(m), alpha


def periodogram(x, m: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Fourier frequencies lambda_j = 2 pi j / n and I(lambda_j) = |sum_t (x_t - xbar)
    e^{-i t lambda_j}|^2 / (2 pi n) for j = 1..m (default all j < n/2). Returns (lambda, I)."""
    x = _as_series(x, min_length=2)
    n = x.size
    m = (n - 1) // 2 if m is None else int(m)
    f = np.fft.rfft(x - x.mean())
    j = np.arange(1, m + 1)
    return 2 * np.pi * j / n, np.abs(f[j]) ** 2 / (2 * np.pi * n)


def gph(x, alpha: float = 0.5, m: int | None = None) -> DEstimate:
    """GPH log-periodogram estimate of d (Geweke & Porter-Hudak 1983), fdGPH conventions.

    OLS of log I(lambda_j) on X_j = -log(4 sin^2(lambda_j/2)), j = 1..m, m = floor(n^alpha) unless
    ``m`` is given; d is the slope. ``se`` is the asymptotic sqrt(pi^2/6 / sum (X_j - Xbar)^2),
    ``se_reg`` the OLS one (residual variance with m - 2 degrees of freedom).
    """
    x = _as_series(x)
    n = x.size
    m, alpha = _bandwidth(n, alpha, m)
    lam, I = periodogram(x, m)
    if np.any(I <= 0):
        raise InputError("the periodogram is zero at a low frequency (a constant or periodic series?); "
                         "GPH needs log I(lambda_j)")
    X = -np.log(4.0 * np.sin(lam / 2.0) ** 2)
    y = np.log(I)
    Xc = X - X.mean()
    sxx = float(Xc @ Xc)
    slope = float(Xc @ (y - y.mean()) / sxx)
    intercept = float(y.mean() - slope * X.mean())
    resid = y - intercept - slope * X
    se = float(np.sqrt(np.pi**2 / 6.0 / sxx))
    se_reg = float(np.sqrt(resid @ resid / (m - 2) / sxx))
    return DEstimate(
        method="gph", d=slope, se=se, m=m, n=n, alpha=alpha,
        convention="OLS of log I(lambda_j) on -log(4 sin^2(lambda_j/2)), j=1..floor(n^alpha) "
                   "(fracdiff::fdGPH); se = sqrt(pi^2/6 / Sxx)",
        extra={"se_reg": se_reg, "intercept": intercept},
    )


def local_whittle(x, alpha: float = 0.65, m: int | None = None) -> DEstimate:
    """Local Whittle (Gaussian semiparametric) estimate of d (Robinson 1995).

    Minimises R(d) = log((1/m) sum lambda_j^{2d} I_j) - 2d mean(log lambda_j) over (-0.5, 1) with
    ``scipy.optimize.minimize_scalar`` (bounded); se = 1 / (2 sqrt(m)). Default m = floor(n^0.65).
    """
    x = _as_series(x)
    n = x.size
    m, alpha = _bandwidth(n, alpha, m)
    lam, I = periodogram(x, m)
    loglam = np.log(lam)
    mean_loglam = loglam.mean()

    def objective(d: float) -> float:
        # log-sum-exp form of log mean(lambda^{2d} I) for numerical safety
        z = 2.0 * d * loglam + np.log(np.maximum(I, np.finfo(float).tiny))
        zmax = z.max()
        return float(zmax + np.log(np.mean(np.exp(z - zmax))) - 2.0 * d * mean_loglam)

    res = optimize.minimize_scalar(objective, bounds=(-0.5, 1.0), method="bounded",
                                   options={"xatol": 1e-8})
    d_hat = float(res.x)
    at_bound = min(d_hat + 0.5, 1.0 - d_hat) < 1e-5
    return DEstimate(
        method="local_whittle", d=d_hat, se=float(1.0 / (2.0 * np.sqrt(m))), m=m, n=n, alpha=alpha,
        convention="Robinson (1995) R(d) minimised on (-0.5, 1); se = 1/(2 sqrt(m))",
        extra={"objective": float(res.fun), "at_bound": bool(at_bound)},
    )


ESTIMATORS = {"gph": gph, "local_whittle": local_whittle}


def estimate_d(x, methods=("gph", "local_whittle"), alpha: dict | float | None = None) -> pd.DataFrame:
    """Estimates of d by each method, one row each (columns method, d, se, m, n, alpha, convention,
    ...). ``alpha`` is one exponent for all methods or a dict method -> exponent (defaults: GPH 0.5,
    local Whittle 0.65)."""
    rows = []
    for name in methods:
        if name not in ESTIMATORS:
            raise ConfigError(f"unknown estimator {name!r}; choose from {', '.join(ESTIMATORS)}")
        kw = {}
        if isinstance(alpha, dict):
            if name in alpha:
                kw["alpha"] = alpha[name]
        elif alpha is not None:
            kw["alpha"] = alpha
        rows.append(ESTIMATORS[name](x, **kw).as_dict())
    return pd.DataFrame(rows)


# ----------------------------------------------------------------------------- sample ACF
def sample_acf(x, nlags: int = 100, level: float = 0.95) -> pd.DataFrame:
    """Sample autocorrelations r_k = c_k / c_0, c_k = (1/n) sum_{t} (x_t - xbar)(x_{t+k} - xbar),
    computed by FFT, k = 0..nlags, with two confidence bands around 0 (half-widths, at ``level``):

    - ``normal_band``   = z / sqrt(n)  (i.i.d. null),
    - ``bartlett_band`` = z sqrt((1 + 2 sum_{i<k} r_i^2) / n)  (Bartlett's formula for an MA(k-1)
      null, as in R's ``acf(ci.type = "ma")`` / statsmodels ``acf(bartlett_confint=True)``).
    """
    x = _as_series(x, min_length=3)
    n = x.size
    if not isinstance(nlags, (int, np.integer)) or isinstance(nlags, bool) or not 1 <= nlags < n:
        raise ConfigError(f"nlags must be an integer in [1, {n - 1}] for a series of {n} values, got {nlags!r}")
    if not 0.0 < level < 1.0:
        raise ConfigError(f"level must be in (0, 1), got {level!r}")
    xc = x - x.mean()
    size = 1 << int(np.ceil(np.log2(2 * n - 1)))
    f = np.fft.rfft(xc, size)
    c = np.fft.irfft(f * np.conj(f), size)[: nlags + 1] / n
    if c[0] <= 0:
        raise InputError("the series is constant; its autocorrelation is undefined")
    r = c / c[0]
    z = stats.norm.ppf(0.5 + level / 2.0)
    cum = np.r_[0.0, 0.0, np.cumsum(r[1:nlags] ** 2)]  # sum_{i=1}^{k-1} r_i^2 at k = 0..nlags
    bart = z * np.sqrt((1.0 + 2.0 * cum) / n)
    bart[0] = np.nan
    frame = pd.DataFrame({
        "lag": np.arange(nlags + 1), "acf": r,
        "normal_band": np.r_[np.nan, np.full(nlags, z / np.sqrt(n))],
        "bartlett_band": bart,
    })
    frame.attrs.update({"n": n, "level": level, "convention": "biased (1/n) autocovariances; bands centred on 0"})
    return frame


__all__ = [
    "simulate_arfima", "arfima_frame", "arfima_acf", "arfima_variance", "DEstimate", "periodogram",
    "gph", "local_whittle", "estimate_d", "ESTIMATORS", "sample_acf",
]
