"""ARFIMA(p, d, q) simulation and the statistics of long memory: estimators of d and the sample ACF.

Model (Granger & Joyeux 1980; Hosking 1981), with B the backshift operator:

    phi(B) (1 - B)^d X_t = theta(B) eps_t,      eps_t ~ N(0, sigma^2) i.i.d.,   -1/2 < d < 1/2,
    phi(B)   = 1 - phi_1 B - ... - phi_p B^p      (``ar=(phi_1, ..., phi_p)``),
    theta(B) = 1 + theta_1 B + ... + theta_q B^q  (``ma=(theta_1, ..., theta_q)``).

The MA sign convention is R's ``arima.sim`` / statsmodels' (``theta`` added); R's
``fracdiff.sim`` uses the opposite (Box-Jenkins) sign for ``ma``.

Simulation (``method="exact"``, the default): the fractional noise Y = (1 - B)^{-d} eps is drawn
exactly from its Gaussian law by circulant embedding (Davies & Harte 1987; Craigmile 2003), using
the exact autocovariance of ARFIMA(0, d, 0) (Hosking 1981, Theorem 1)

    gamma(0) = sigma^2 Gamma(1 - 2d) / Gamma(1 - d)^2,
    gamma(k) = gamma(0) prod_{i=1}^{k} (i - 1 + d) / (i - d)
             = sigma^2 Gamma(1-2d) Gamma(k+d) / (Gamma(d) Gamma(1-d) Gamma(k+1-d)),

(the product form is the numerically stable recursion used). The autocovariance is embedded in a
circulant of size M = 2m (m the next power of two >= N - 1); its eigenvalues lambda = FFT(c) are
checked to be nonnegative (they are for every d in (-1/2, 1/2), verified on a grid, see the tests;
a negative one raises ``ConfigError``), and Re FFT(sqrt(lambda / M) (Z_1 + i Z_2))[:N] has exactly
the covariance gamma (O(N log N)). The ARMA part theta(B)/phi(B) is then applied with
``scipy.signal.lfilter`` to N = n + burn_in values of this stationary noise, and the first
``burn_in`` are dropped. What is exact: for ARFIMA(0, d, 0) the series has exactly the Gaussian
ARFIMA law (up to float64 rounding); for ARFIMA(0, d, q) too once burn_in >= q; with an AR part
the filter's zero start makes X_t differ from the stationary value by sum_{j > t} h_j Y_{t-j}
(h the ARMA impulse response), whose standard deviation is at most sd(Y) sum_{j > t} |h_j|; the
default burn-in is the smallest that makes this <= 1e-15 x sum_j |h_j| (so exact to float64 rounding).

``method="truncated"`` (the earlier method, kept as an option): ARMA filtering of the innovations,
then fractional integration with the MA(infinity) weights psi_j = pi_j(-d) of
``rnnmem.fractional.frac_weights`` truncated at n + burn_in (innovations before the burn-in are
zero), by FFT convolution; the first ``burn_in`` (default max(1000, n)) values are discarded. It is
biased towards short memory near d = 1/2: over 1000 series of n = 4000 at d = 0.45 the sample
variance is about 70% of theory and the lag-50 autocovariance about 45% (the truncated tail
sum_{j > n + burn_in} psi_j^2 decays only like j^{2d - 1}).

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

Output: ``simulate_arfima`` returns a numpy array [n] (float64, or float32 on request; computed in
float64), ``fractional_noise`` float64 [n] or [size, n], ``arfima_frame`` a DataFrame with columns
``t`` and ``x``. All randomness comes from ``numpy.random.default_rng(seed)``: the same seed gives
the same series.
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


METHODS = ("exact", "truncated")


def arfima_autocovariance(d: float, nlags: int, sigma: float = 1.0) -> np.ndarray:
    """Autocovariances gamma(0..nlags) of ARFIMA(0, d, 0) with innovation sd ``sigma`` (Hosking 1981).

    gamma(k) = sigma^2 Gamma(1-2d) Gamma(k+d) / (Gamma(d) Gamma(1-d) Gamma(k+1-d)), computed as
    ``arfima_variance(d, sigma) * arfima_acf(d, nlags)`` (no overflow of Gamma at large k).

    Parameters
    ----------
    d : float
        Memory parameter in (-0.5, 0.5).
    nlags : int
        Largest lag k.
    sigma : float, default 1.0
        Standard deviation of the innovations eps_t.

    Returns
    -------
    numpy.ndarray
        float64 array [nlags + 1]: gamma(0), ..., gamma(nlags).

    Raises
    ------
    ConfigError
        If ``d`` is not a number in (-0.5, 0.5).
    """
    return arfima_variance(d, sigma) * arfima_acf(d, nlags)


def _circulant_sqrt_eigs(d: float, N: int, sigma: float) -> tuple[np.ndarray, int]:
    """sqrt(lambda / M) for the circulant embedding (size M = 2m, m = next power of two >= N - 1)
    of the ARFIMA(0, d, 0) autocovariance. Raises ConfigError if an eigenvalue is negative beyond
    rounding (the embedding would not be a covariance)."""
    m = 1 << max(0, int(np.ceil(np.log2(max(N - 1, 1)))))
    g = arfima_autocovariance(d, m, sigma)
    c = np.r_[g, g[-2:0:-1]]                     # c_0..c_m, c_{m-1}..c_1: first row of the circulant
    lam = np.fft.fft(c).real
    tol = 1e-10 * float(np.abs(c).sum())
    if lam.min() < -tol:
        raise ConfigError(
            f"circulant embedding of ARFIMA(0, {d}, 0) autocovariances has a negative eigenvalue "
            f"({lam.min():.3g}); the exact method cannot simulate it, use method='truncated'")
    M = c.size
    return np.sqrt(np.maximum(lam, 0.0) / M), M


def fractional_noise(n: int, d: float, sigma: float = 1.0, size: int | None = None,
                     seed: int | None = None) -> np.ndarray:
    """Exact Gaussian ARFIMA(0, d, 0) series (fractional noise (1 - B)^{-d} eps, eps ~ N(0, sigma^2))
    by circulant embedding (Davies & Harte 1987), O(n log n) each.

    Parameters
    ----------
    n: length of each series. d: memory parameter in (-0.5, 0.5). sigma: innovation sd.
    size: number of independent series (None: one series). seed: ``numpy.random.default_rng`` seed.

    Returns
    -------
    float64 array [n] (``size=None``) or [size, n], each row exactly stationary with
    autocovariance ``arfima_autocovariance(d, ., sigma)``.

    Raises
    ------
    ConfigError
        If ``n`` or ``size`` is not a positive integer, ``d`` is outside (-0.5, 0.5), ``sigma`` is not
        positive, or the circulant embedding has a negative eigenvalue.
    """
    if not isinstance(n, (int, np.integer)) or isinstance(n, bool) or n < 1:
        raise ConfigError(f"n must be a positive integer, got {n!r}")
    d = _check_d(d)
    if not np.isfinite(sigma) or sigma <= 0:
        raise ConfigError(f"sigma must be a positive number, got {sigma!r}")
    if size is not None and (not isinstance(size, (int, np.integer)) or isinstance(size, bool) or size < 1):
        raise ConfigError(f"size must be a positive integer or None, got {size!r}")
    rng = np.random.default_rng(seed)
    S = 1 if size is None else int(size)
    root, M = _circulant_sqrt_eigs(d, int(n), float(sigma))
    z = rng.standard_normal((S, 2, M))
    y = np.fft.fft(root * (z[:, 0] + 1j * z[:, 1]), axis=-1).real[:, : int(n)]
    return y[0] if size is None else y


def _arma_burn_in(ar: np.ndarray, ma: np.ndarray, rel: float = 1e-15, cap: int = 1_000_000) -> int:
    """Smallest b with sum_{j >= b} |h_j| <= rel * sum_j |h_j|, h the impulse response of
    theta(B)/phi(B): the start-up error of lfilter on a stationary input after b steps (q for a pure
    MA, 0 for white noise)."""
    if ar.size == 0:
        return int(ma.size)
    L = 1024
    while True:
        imp = np.zeros(L)
        imp[0] = 1.0
        h = np.abs(signal.lfilter(np.r_[1.0, ma], np.r_[1.0, -ar], imp))
        tail = np.cumsum(h[::-1])[::-1]                # tail[b] = sum_{j >= b} |h_j|
        ok = np.flatnonzero(tail <= rel * tail[0])
        if ok.size:
            return int(ok[0])
        if L >= cap:
            raise ConfigError(f"the AR part {tuple(ar)} decays too slowly for an automatic burn-in; pass burn_in")
        L *= 4


def simulate_arfima(
    n: int,
    d: float,
    ar=(),
    ma=(),
    sigma: float = 1.0,
    burn_in: int | None = None,
    seed: int | None = None,
    dtype: str = "float64",
    method: str = "exact",
) -> np.ndarray:
    """Simulate n values of the Gaussian ARFIMA(p, d, q) process of the module docstring.

    Parameters
    ----------
    n: number of values. d: memory parameter in (-0.5, 0.5). ar, ma: phi_1..phi_p, theta_1..theta_q
    (theta added, R's arima.sim sign). sigma: innovation sd.
    burn_in: values simulated first and discarded. ``method="exact"``: the start-up of the ARMA
    filter only (default: the smallest making it negligible, see the module docstring; 0 for
    ARFIMA(0, d, 0)). ``method="truncated"``: default max(1000, n); the MA(infinity) filter is
    truncated at n + burn_in, i.e. innovations before the burn-in are zero (biased near d = 0.5).
    seed: ``numpy.random.default_rng`` seed; the same seed gives the same series.
    dtype: float64 or float32 (computed in float64, cast at the end).
    method: "exact" (circulant embedding of the fractional noise, then the ARMA filter) or
    "truncated".

    Returns
    -------
    numpy array [n] of ``dtype``.

    Raises
    ------
    ConfigError
        On a bad ``method``, ``n``, ``d``, ``ar``/``ma`` (not finite, or a non-stationary AR part),
        ``sigma``, ``burn_in`` or ``dtype``, or an AR part too slow for an automatic burn-in.
    """
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
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
    if burn_in is not None and (not isinstance(burn_in, (int, np.integer)) or isinstance(burn_in, bool)
                                or burn_in < 0):
        raise ConfigError(f"burn_in must be a non-negative integer, got {burn_in!r}")
    if dtype not in _DTYPES:
        raise ConfigError(f"dtype must be one of {', '.join(_DTYPES)}, got {dtype!r}")
    if method == "truncated":
        burn = max(1000, int(n)) if burn_in is None else int(burn_in)
        total = int(n) + burn
        rng = np.random.default_rng(seed)
        eps = sigma * rng.standard_normal(total)
        u = signal.lfilter(np.r_[1.0, ma], np.r_[1.0, -ar], eps)  # theta(B) / phi(B) eps
        x = fractional_filter(u, -d) if d != 0.0 else u               # (1 - B)^{-d} u, by FFT
        return x[burn:].astype(_DTYPES[dtype])
    burn = _arma_burn_in(ar, ma) if burn_in is None else int(burn_in)
    y = fractional_noise(int(n) + burn, d, sigma=sigma, seed=seed)    # exact (1 - B)^{-d} eps
    x = signal.lfilter(np.r_[1.0, ma], np.r_[1.0, -ar], y) if ar.size or ma.size else y
    return x[burn:].astype(_DTYPES[dtype])


def default_burn_in(n: int, ar=(), ma=(), method: str = "exact") -> int:
    """The burn-in ``simulate_arfima`` uses when ``burn_in=None`` (recorded by ``arfima_frame``).

    Parameters
    ----------
    n : int
        Series length (used by ``method="truncated"`` only).
    ar, ma : sequence of float, default ()
        AR coefficients phi_1..phi_p and MA coefficients theta_1..theta_q.
    method : str, default "exact"
        "exact" or "truncated".

    Returns
    -------
    int
        ``max(1000, n)`` for "truncated"; for "exact" the smallest b with
        sum_{j >= b} |h_j| <= 1e-15 sum_j |h_j| (h the ARMA impulse response; q for a pure MA).

    Raises
    ------
    ConfigError
        If ``ar``/``ma`` are not flat sequences of finite numbers, or the AR part decays too slowly.
    """
    if method == "truncated":
        return max(1000, int(n))
    return _arma_burn_in(_check_coeffs("ar", ar), _check_coeffs("ma", ma))


def arfima_frame(n: int, d: float, ar=(), ma=(), sigma: float = 1.0, burn_in: int | None = None,
                 seed: int | None = None, dtype: str = "float64", method: str = "exact") -> pd.DataFrame:
    """``simulate_arfima`` as a DataFrame with columns ``t`` and ``x`` (the layout ``load_series``
    reads); the full configuration is recorded in ``frame.attrs["config"]``.

    Parameters
    ----------
    n, d, ar, ma, sigma, burn_in, seed, dtype, method
        As in :func:`simulate_arfima`.

    Returns
    -------
    pandas.DataFrame
        n rows: ``t`` (0..n-1, int) and ``x`` (the series, ``dtype``); ``attrs["config"]`` holds the
        process, n, d, ar, ma, sigma, the burn-in actually used, seed, dtype, method and the sign
        convention.

    Raises
    ------
    ConfigError
        As :func:`simulate_arfima`.
    """
    x = simulate_arfima(n, d, ar=ar, ma=ma, sigma=sigma, burn_in=burn_in, seed=seed, dtype=dtype,
                        method=method)
    frame = pd.DataFrame({"t": np.arange(len(x)), "x": x})
    frame.attrs["config"] = {
        "process": "ARFIMA", "n": int(n), "d": float(d), "ar": list(map(float, np.atleast_1d(ar))),
        "ma": list(map(float, np.atleast_1d(ma))), "sigma": float(sigma),
        "burn_in": int(burn_in if burn_in is not None else default_burn_in(n, ar, ma, method)),
        "seed": seed, "dtype": dtype, "method": method,
        "convention": "phi(B)(1-B)^d X = theta(B) eps, theta(B) = 1 + theta_1 B + ...",
    }
    return frame


def arfima_acf(d: float, nlags: int) -> np.ndarray:
    """Autocorrelations rho_0..rho_nlags of ARFIMA(0, d, 0) (Hosking 1981, Theorem 1(d)).

    rho_k = prod_{i=1}^{k} (i - 1 + d) / (i - d)  ~  Gamma(1-d)/Gamma(d) k^{2d-1}.

    Parameters
    ----------
    d : float
        Memory parameter in (-0.5, 0.5).
    nlags : int
        Largest lag k.

    Returns
    -------
    numpy.ndarray
        float64 array [nlags + 1], rho_0 = 1.

    Raises
    ------
    ConfigError
        If ``d`` is not a number in (-0.5, 0.5).
    """
    d = _check_d(d)
    i = np.arange(1, int(nlags) + 1, dtype=np.float64)
    return np.r_[1.0, np.cumprod((i - 1 + d) / (i - d))]


def arfima_variance(d: float, sigma: float = 1.0) -> float:
    """Variance of ARFIMA(0, d, 0): sigma^2 Gamma(1 - 2d) / Gamma(1 - d)^2 (Hosking 1981).

    Parameters
    ----------
    d : float
        Memory parameter in (-0.5, 0.5).
    sigma : float, default 1.0
        Innovation standard deviation.

    Returns
    -------
    float
        gamma(0), computed with log-Gamma.

    Raises
    ------
    ConfigError
        If ``d`` is not a number in (-0.5, 0.5).
    """
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
        """The estimate as a flat dict (the ``extra`` entries merged in at the top level).

        Returns
        -------
        dict
            method, d, se, m, n, alpha, convention and the keys of ``extra``.
        """
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
    e^{-i t lambda_j}|^2 / (2 pi n) for j = 1..m (default all j < n/2). Returns (lambda, I).

    Parameters
    ----------
    x : array-like or pandas.Series
        The series, 1-D, finite, at least 2 values.
    m : int, optional
        Number of frequencies; default ``(n - 1) // 2``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(lambda, I)``, both float64 [m].

    Raises
    ------
    InputError
        If ``x`` is not a 1-D numeric finite series of at least 2 values.
    """
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

    Parameters
    ----------
    x : array-like or pandas.Series
        The series, 1-D, finite, at least 8 values.
    alpha : float, default 0.5
        Bandwidth exponent in (0, 1) (ignored when ``m`` is given).
    m : int, optional
        Number of frequencies, 3 <= m <= (n - 1) // 2.

    Returns
    -------
    DEstimate
        ``method="gph"``, ``d`` the slope, ``se`` the asymptotic standard error, ``m``, ``n``,
        ``alpha`` (None when ``m`` was given); ``extra`` holds ``se_reg`` and ``intercept``.

    Raises
    ------
    ConfigError
        On a bad ``alpha`` or ``m``.
    InputError
        On a bad series, or a zero periodogram ordinate (log undefined).
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

    Parameters
    ----------
    x : array-like or pandas.Series
        The series, 1-D, finite, at least 8 values.
    alpha : float, default 0.65
        Bandwidth exponent in (0, 1) (ignored when ``m`` is given).
    m : int, optional
        Number of frequencies, 3 <= m <= (n - 1) // 2.

    Returns
    -------
    DEstimate
        ``method="local_whittle"``, ``d`` the minimiser, ``se = 1 / (2 sqrt(m))``; ``extra`` holds the
        ``objective`` value at the minimum and ``at_bound`` (True when d is within 1e-5 of -0.5 or 1).

    Raises
    ------
    ConfigError
        On a bad ``alpha`` or ``m``.
    InputError
        On a bad series.
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
    local Whittle 0.65).

    Parameters
    ----------
    x : array-like or pandas.Series
        The series.
    methods : sequence of str, default ("gph", "local_whittle")
        Names from :data:`ESTIMATORS`.
    alpha : float or dict, optional
        Bandwidth exponent(s); None uses each estimator's default.

    Returns
    -------
    pandas.DataFrame
        One row per method: ``DEstimate.as_dict()`` of :func:`gph` / :func:`local_whittle`.

    Raises
    ------
    ConfigError
        On an unknown method name or a bad bandwidth.
    InputError
        On a bad series.
    """
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
    - ``bartlett_band`` = z sqrt((1 + 2 sum_{i<k} r_i^2) / n)  (Bartlett's (1946) formula for an MA(k-1)
      null, as in R's ``acf(ci.type = "ma")`` / statsmodels ``acf(bartlett_confint=True)``).

    Parameters
    ----------
    x : array-like or pandas.Series
        The series, 1-D, finite, at least 3 values.
    nlags : int, default 100
        Largest lag, 1 <= nlags < n.
    level : float, default 0.95
        Confidence level of the bands, in (0, 1); z is its two-sided normal quantile.

    Returns
    -------
    pandas.DataFrame
        nlags + 1 rows with columns ``lag``, ``acf``, ``normal_band``, ``bartlett_band`` (bands NaN at
        lag 0); ``attrs`` hold n, level and the convention.

    Raises
    ------
    ConfigError
        On a bad ``nlags`` or ``level``.
    InputError
        On a bad or constant series.
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
    "simulate_arfima", "arfima_frame", "arfima_acf", "arfima_variance", "arfima_autocovariance",
    "fractional_noise", "default_burn_in", "METHODS", "DEstimate", "periodogram",
    "gph", "local_whittle", "estimate_d", "ESTIMATORS", "sample_acf",
]
