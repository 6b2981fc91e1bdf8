"""ARFIMA simulation, the estimators of d (GPH, local Whittle), the sample ACF and its plot."""

from __future__ import annotations

from math import gamma

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.signal import lfilter

from rnnmem.errors import ConfigError, InputError
from rnnmem.fractional import frac_weights, fractional_filter
from rnnmem.tasks.arfima import (
    _circulant_sqrt_eigs,
    arfima_acf,
    arfima_autocovariance,
    arfima_frame,
    arfima_variance,
    default_burn_in,
    estimate_d,
    fractional_noise,
    gph,
    local_whittle,
    periodogram,
    sample_acf,
    simulate_arfima,
)


# ----------------------------------------------------------------------------- simulation
def test_fft_filter_equals_direct_convolution():
    rng = np.random.default_rng(1)
    x = rng.standard_normal(300)
    for d in (-0.4, -0.3, 0.2, 0.45):
        w = frac_weights(torch.tensor(d, dtype=torch.float64), 299, include_zero=True).numpy()
        direct = np.array([np.dot(w[: t + 1], x[t::-1]) for t in range(300)])
        np.testing.assert_allclose(fractional_filter(x, d), direct, rtol=1e-10, atol=1e-12)


def test_truncated_simulation_is_the_documented_construction():
    """method="truncated": ARMA by lfilter on the seeded innovations, then (1-B)^{-d} truncated at n + burn_in."""
    n, burn, d, ar, ma, sigma = 200, 50, 0.3, [0.5, -0.2], [0.4], 1.5
    x = simulate_arfima(n, d, ar=ar, ma=ma, sigma=sigma, burn_in=burn, seed=7, method="truncated")
    eps = sigma * np.random.default_rng(7).standard_normal(n + burn)
    u = lfilter([1.0, 0.4], [1.0, -0.5, 0.2], eps)
    psi = frac_weights(torch.tensor(-d, dtype=torch.float64), n + burn - 1, include_zero=True).numpy()
    full = np.array([np.dot(psi[: t + 1], u[t::-1]) for t in range(n + burn)])
    np.testing.assert_allclose(x, full[burn:], rtol=1e-10, atol=1e-10)


def test_exact_simulation_is_the_documented_construction():
    """method="exact" (default): exact fractional noise of length n + burn_in, then the ARMA filter by lfilter."""
    n, burn, d, ar, ma, sigma = 300, 40, 0.3, [0.5, -0.2], [0.4], 1.5
    x = simulate_arfima(n, d, ar=ar, ma=ma, sigma=sigma, burn_in=burn, seed=7)
    y = fractional_noise(n + burn, d, sigma=sigma, seed=7)
    np.testing.assert_allclose(x, lfilter([1.0, 0.4], [1.0, -0.5, 0.2], y)[burn:], rtol=1e-12, atol=1e-12)
    # ARFIMA(0, d, 0) needs no burn-in; a pure MA(q) needs q; an AR part until its impulse response is negligible
    np.testing.assert_array_equal(simulate_arfima(n, d, seed=3), fractional_noise(n, d, seed=3))
    assert default_burn_in(n) == 0 and default_burn_in(n, ma=[0.4, 0.1]) == 2
    b = default_burn_in(n, ar=[0.9])
    assert b == int(np.ceil(np.log(1e-15) / np.log(0.9)))  # sum_{j>=b} 0.9^j / sum_j 0.9^j = 0.9^b <= 1e-15


@pytest.mark.parametrize("d", [-0.45, -0.2, 0.0, 0.1, 0.3, 0.45, 0.499])
def test_davies_harte_covariance_is_exactly_toeplitz(d):
    """The linear map z -> Re FFT(sqrt(lambda/M) (z1 + i z2))[:n] has covariance exactly Toeplitz(gamma):
    every circulant eigenvalue is nonnegative (verified here on d in (-0.5, 0.5), several n) and the
    construction reproduces gamma(0..n-1) to rounding."""
    from scipy.linalg import toeplitz

    for n in (2, 7, 64, 129):
        root, M = _circulant_sqrt_eigs(d, n, 1.3)
        F = np.fft.fft(np.eye(M), axis=0)[:n] * root      # rows t < n of F diag(root)
        A = np.hstack([F.real, -F.imag])                   # Re(F diag(root) (z1 + i z2)) = A [z1; z2]
        np.testing.assert_allclose(A @ A.T, toeplitz(arfima_autocovariance(d, n - 1, 1.3)), rtol=1e-10, atol=1e-12)
    for n in (1000, 4097, 65537):
        root, _ = _circulant_sqrt_eigs(d, n, 1.0)
        assert np.all(np.isfinite(root))


def test_negative_embedding_eigenvalue_is_refused(monkeypatch):
    import rnnmem.tasks.arfima as mod

    monkeypatch.setattr(mod, "arfima_autocovariance", lambda d, m, s=1.0: np.r_[1.0, 0.99, -0.99, np.zeros(m - 2)])
    with pytest.raises(ConfigError, match="negative eigenvalue.*method='truncated'"):
        simulate_arfima(100, 0.3, seed=0)


def _acov_known_mean(X, L):
    """Unbiased autocovariances c_k = sum_t x_t x_{t+k} / (n - k) (mean known = 0), per row, by FFT."""
    n = X.shape[-1]
    size = 1 << int(np.ceil(np.log2(2 * n - 1)))
    f = np.fft.rfft(X, size, axis=-1)
    return np.fft.irfft(f * np.conj(f), size, axis=-1)[..., : L + 1] / (n - np.arange(L + 1))


@pytest.mark.parametrize("d", [0.1, 0.3, 0.45])
def test_exact_simulation_matches_theoretical_autocovariances(d):
    """600 series of n = 2000 (one vectorised call): the mean over series of the unbiased sample
    autocovariance at lags 0..50 is within 5 standard errors (across series, computed here) of
    Hosking's gamma(k). Observed max |z| over the 51 lags, seeds 1-3: 2.2-2.9 / 1.1-1.2 / 0.1-0.4 for
    d = 0.1 / 0.3 / 0.45; mean sample variance / theory 0.99-1.004."""
    X = fractional_noise(2000, d, size=600, seed=1)
    C = _acov_known_mean(X, 50)
    se = C.std(0, ddof=1) / np.sqrt(C.shape[0])
    z = (C.mean(0) - arfima_autocovariance(d, 50)) / se
    assert np.abs(z).max() < 5.0, z
    # and simulate_arfima (the default method) draws the same law: its seeded series is a row of this kind
    np.testing.assert_array_equal(simulate_arfima(2000, d, seed=5), fractional_noise(2000, d, seed=5))


def test_truncated_method_is_biased_near_half():
    """Why the default changed: the truncated MA(infinity) with zero pre-sample innovations loses
    variance at d = 0.45: over 300 series of n = 2000 with its default burn-in the mean sample variance
    is 68% of theory and the lag-50 autocovariance 42% (z = -27 and -28), far outside the sampling error."""
    d = 0.45
    X = np.stack([simulate_arfima(2000, d, seed=s, method="truncated") for s in range(300)])
    C = _acov_known_mean(X, 50)
    se = C.std(0, ddof=1) / np.sqrt(C.shape[0])
    z = (C.mean(0) - arfima_autocovariance(d, 50)) / se
    assert z[0] < -10 and z[50] < -10, z[[0, 50]]
    assert C.mean(0)[0] / arfima_variance(d) < 0.8


def test_seed_reproducible_and_dtype():
    a = simulate_arfima(500, 0.2, ar=[0.3], seed=3)
    b = simulate_arfima(500, 0.2, ar=[0.3], seed=3)
    c = simulate_arfima(500, 0.2, ar=[0.3], seed=4)
    assert a.dtype == np.float64 and a.shape == (500,)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)
    f = simulate_arfima(500, 0.2, ar=[0.3], seed=3, dtype="float32")
    assert f.dtype == np.float32
    np.testing.assert_allclose(f, a, rtol=1e-6, atol=1e-6)


def test_variance_and_acf_match_hosking():
    x = simulate_arfima(200_000, 0.3, seed=1, burn_in=20_000)
    # Hosking (1981): var = Gamma(1-2d)/Gamma(1-d)^2 = 1.3165; rho_1 = d/(1-d) = 0.4286
    assert arfima_variance(0.3) == pytest.approx(gamma(0.4) / gamma(0.7) ** 2, rel=1e-12)
    assert np.var(x) == pytest.approx(arfima_variance(0.3), rel=0.05)
    acf = sample_acf(x, nlags=5)["acf"].to_numpy()
    np.testing.assert_allclose(acf[1:3], arfima_acf(0.3, 2)[1:], atol=0.02)


def test_arfima_acf_gamma_formula():
    d, k = 0.35, np.arange(1, 30)
    closed = np.array([gamma(j + d) * gamma(1 - d) / (gamma(j - d + 1) * gamma(d)) for j in k])
    np.testing.assert_allclose(arfima_acf(d, 29)[1:], closed, rtol=1e-10)


def test_arma_sign_convention():
    """ma adds theta (R arima.sim): ARMA(1,1) phi=.5, theta=.4 has rho_1 = (1+phi th)(phi+th)/(1+2 phi th+th^2)."""
    x = simulate_arfima(100_000, 0.0, ar=[0.5], ma=[0.4], seed=2)
    rho1 = (1 + 0.2) * 0.9 / (1 + 0.4 + 0.16)
    assert sample_acf(x, nlags=1)["acf"].iloc[1] == pytest.approx(rho1, abs=0.01)


@pytest.mark.parametrize("kwargs, match", [
    (dict(d=0.5), "outside"), (dict(d=-0.5), "outside"), (dict(d=0.9), "outside"), (dict(d="x"), "number"),
    (dict(d=0.1, ar=[1.2]), "not stationary"), (dict(d=0.1, ar=[0.5, 0.6]), "not stationary"),
    (dict(d=0.1, sigma=0.0), "sigma"), (dict(d=0.1, burn_in=-1), "burn_in"), (dict(d=0.1, dtype="int8"), "dtype"),
    (dict(d=0.1, method="fft"), "method"),
])
def test_bad_options(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        simulate_arfima(100, **kwargs)
    with pytest.raises(ConfigError, match="positive integer"):
        simulate_arfima(0, 0.1)


def test_frame_records_config():
    f = arfima_frame(50, 0.25, ar=[0.1], seed=5)
    assert list(f.columns) == ["t", "x"] and len(f) == 50
    assert f.attrs["config"]["d"] == 0.25 and f.attrs["config"]["seed"] == 5
    np.testing.assert_array_equal(f["x"].to_numpy(), simulate_arfima(50, 0.25, ar=[0.1], seed=5))


# ----------------------------------------------------------------------------- estimators
@pytest.mark.parametrize("d", [0.0, 0.2, 0.4])
def test_estimators_unbiased_on_20_series(d):
    series = [simulate_arfima(4000, d, seed=100 + s) for s in range(20)]
    g = np.array([gph(x).d for x in series])
    w = np.array([local_whittle(x).d for x in series])
    assert abs(g.mean() - d) < 0.05, g.mean()
    assert abs(w.mean() - d) < 0.05, w.mean()
    # the reported standard errors describe the spread across series
    assert 0.5 < g.std(ddof=1) / gph(series[0]).se < 1.6
    assert 0.5 < w.std(ddof=1) / local_whittle(series[0]).se < 1.6


def test_gph_is_the_fdgph_regression():
    """d = -slope of log I on 2 log(2 sin(lambda/2)), m = trunc(n^0.5) (fracdiff::fdGPH)."""
    x = simulate_arfima(3000, 0.3, seed=11)
    est = gph(x)
    n = len(x)
    m = int(np.trunc(n**0.5))
    lam, I = periodogram(x, m)
    slope = np.polyfit(2 * np.log(2 * np.sin(lam / 2)), np.log(I), 1)[0]
    assert est.m == m and est.d == pytest.approx(-slope, rel=1e-12)
    xr = 2 * np.log(2 * np.sin(lam / 2))
    assert est.se == pytest.approx(np.sqrt(np.pi**2 / (6 * ((xr - xr.mean()) ** 2).sum())), rel=1e-12)
    assert est.se == pytest.approx(np.pi / np.sqrt(24 * m), rel=0.2)  # large-m approximation


def test_periodogram_matches_direct_dft():
    x = np.random.default_rng(0).standard_normal(64)
    lam, I = periodogram(x, 5)
    t = np.arange(64)
    xc = x - x.mean()
    direct = [abs(np.sum(xc * np.exp(-1j * t * l))) ** 2 / (2 * np.pi * 64) for l in lam]
    np.testing.assert_allclose(I, direct, rtol=1e-10)


def test_local_whittle_minimises_robinson_objective():
    x = simulate_arfima(2000, 0.25, seed=9)
    est = local_whittle(x, alpha=0.6)
    lam, I = periodogram(x, est.m)
    grid = np.linspace(-0.49, 0.99, 14801)
    R = [np.log(np.mean(lam ** (2 * d) * I)) - 2 * d * np.mean(np.log(lam)) for d in grid]
    assert est.d == pytest.approx(grid[int(np.argmin(R))], abs=2e-4)
    assert est.se == pytest.approx(1 / (2 * np.sqrt(est.m)))


def test_gph_on_published_arfima(shared_data):
    path = shared_data / "zhao2020" / "arfima.csv"
    if not path.is_file():
        pytest.skip("arfima.csv not in the shared data")
    x = pd.read_csv(path)["x"].to_numpy()
    est = gph(x)  # fdGPH(x, bandw.exp = 0.5) conventions: m = trunc(4001^0.5) = 63
    assert est.m == 63
    assert 0.38 <= est.d <= 0.39, est.d
    table = estimate_d(x)
    assert list(table["method"]) == ["gph", "local_whittle"]
    assert 0.3 < table.loc[1, "d"] < 0.5  # local Whittle agrees within its standard error


def test_estimator_errors():
    with pytest.raises(InputError, match="NaN"):
        gph(np.r_[np.ones(50), np.nan])
    with pytest.raises(InputError, match="at least"):
        local_whittle(np.arange(5.0))
    with pytest.raises(ConfigError, match="alpha"):
        gph(np.random.default_rng(0).standard_normal(100), alpha=1.5)
    with pytest.raises(ConfigError, match="unknown estimator"):
        estimate_d(np.random.default_rng(0).standard_normal(100), methods=("rs",))


# ----------------------------------------------------------------------------- ACF
def test_sample_acf_and_bands():
    x = np.random.default_rng(3).standard_normal(500).cumsum()[::5]
    n = len(x)
    acf = sample_acf(x, nlags=10)
    xc = x - x.mean()
    direct = np.array([np.sum(xc[: n - k] * xc[k:]) for k in range(11)]) / np.sum(xc**2)
    np.testing.assert_allclose(acf["acf"], direct, rtol=1e-10, atol=1e-12)
    z = 1.959963984540054
    np.testing.assert_allclose(acf["normal_band"].iloc[1:], z / np.sqrt(n))
    assert acf["bartlett_band"].iloc[1] == pytest.approx(z / np.sqrt(n))
    k = 4
    assert acf["bartlett_band"].iloc[k] == pytest.approx(z * np.sqrt((1 + 2 * np.sum(direct[1:k] ** 2)) / n))
    with pytest.raises(ConfigError, match="nlags"):
        sample_acf(x, nlags=n)
    with pytest.raises(InputError, match="constant"):
        sample_acf(np.ones(20), nlags=3)


def test_acf_plot_writes_png(tmp_path):
    from rnnmem.report.acf_plot import plot_acf

    x = simulate_arfima(1000, 0.3, seed=0)
    out = plot_acf(x, tmp_path / "acf.png", nlags=100)
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
