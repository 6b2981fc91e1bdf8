"""The Definition-3 long-memory probe: exact response coefficients and the decay verdict."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.errors import ConfigError, InputError
from rnnmem.fractional import frac_weights
from rnnmem.probes.long_memory import (
    FractionalFilter,
    LinearRecurrence,
    definition3_test,
    fit_exp_mixture,
    hac_slope,
    long_memory_probe,
)


@pytest.fixture(autouse=True, scope="module")
def _one_torch_thread():
    """The probes here are tiny; on a shared 2-core machine two intra-op threads per process
    thrash (100x slower). Restored afterwards."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def _noise(T, seed=0):
    return np.random.default_rng(seed).standard_normal(T)


# ----------------------------------------------------------------------------- the three references
def test_linear_rnn_is_short_memory():
    frame, v = long_memory_probe(LinearRecurrence(0.9), _noise(400), max_lag=300, n_samples=16)
    np.testing.assert_allclose(frame["A"], 0.9 ** np.arange(301), rtol=1e-9)
    assert v["verdict"] == "short"
    assert v["alpha_ci"][0] > 1 and v["summable"]
    assert v["aic_exp"] < v["aic_power"]          # the earlier comparison, kept as description
    assert v["rate"] == pytest.approx(-math.log(0.9), rel=1e-6)
    assert v["half_life"] == pytest.approx(math.log(2) / -math.log(0.9), rel=1e-6)


def test_fractional_filter_is_long_memory():
    d, K = 0.3, 1000
    frame, v = long_memory_probe(FractionalFilter(d, K), _noise(1100), max_lag=K, n_samples=8)
    psi = frac_weights(torch.tensor(-d, dtype=torch.float64), K, include_zero=True).numpy()
    np.testing.assert_allclose(frame["A"], psi, rtol=1e-8, atol=1e-12)
    assert v["verdict"] == "long", v["reason"]
    lo, hi = v["alpha_ci"]
    assert lo <= 1 - d <= hi  # psi_k ~ k^{d-1} / Gamma(d)
    assert v["summable"] is False and v["extrapolation"] == "power"
    assert "within the model's filter (K = 1000)" in v["reason"]


def test_lstm_at_init_is_short_memory():
    unit = cells.build("lstm", 1, 16, seed=0)
    frame, v = long_memory_probe(unit, _noise(300), max_lag=150, n_samples=24)
    assert v["verdict"] == "short", v["reason"]
    assert v["rate"] > 0.05 and v["n_fit"] >= 20
    assert frame["abs_A"].iloc[100] < 1e-10 * frame["abs_A"].iloc[1]


# ----------------------------------------------------------------------------- exactness of A_k
def _full_jacobian_mean(unit, x, K, times):
    """mean_t dy_t/dx_{t-k} from the dense Jacobian (torch.autograd.functional.jacobian)."""
    xt = torch.as_tensor(x, dtype=torch.float64)[:, None, None]
    J = torch.autograd.functional.jacobian(lambda z: unit(z)[0], xt)[:, 0, :, :, 0, 0]  # [T, O, T]
    per = torch.stack([torch.stack([J[t, :, t - k] for k in range(K + 1)]) for t in times])  # [S, K+1, O]
    return per.mean(0).norm(dim=-1).numpy(), per.norm(dim=-1).mean(0).numpy()


@pytest.mark.parametrize("method", ["copies", "vmap"])
def test_probe_equals_dense_jacobian(method):
    unit = cells.build("lstm", 1, 4, seed=3, dtype="float64")
    x, K = _noise(25, 1), 10
    # n_samples >= the 15 admissible output times -> every one is used; batch_size 8 -> chunks of
    # 2 output times x 4 outputs, exercising the running-moment merge
    frame, v = long_memory_probe(unit, x, max_lag=K, n_samples=50, method=method, batch_size=8)
    times = v["config"]["sampled_times"]
    assert times == list(range(10, 25))
    abs_A, mean_abs = _full_jacobian_mean(unit, x, K, times)
    np.testing.assert_allclose(frame["abs_A"], abs_A, rtol=1e-10, atol=1e-14)
    np.testing.assert_allclose(frame["mean_abs"], mean_abs, rtol=1e-10, atol=1e-14)


def test_methods_agree_and_output_choices():
    unit = cells.build("gru", 2, 5, seed=1)
    x = np.random.default_rng(2).standard_normal((120, 2))
    a, _ = long_memory_probe(unit, x, max_lag=60, n_samples=12, method="copies")
    b, _ = long_memory_probe(unit, x, max_lag=60, n_samples=12, method="vmap")
    np.testing.assert_allclose(a["abs_A"], b["abs_A"], rtol=1e-9, atol=1e-300)
    s, vs = long_memory_probe(unit, x, max_lag=60, n_samples=12, output="sum")
    one, _ = long_memory_probe(unit, x, max_lag=60, n_samples=12, output=2)
    assert vs["config"]["output"] == "sum"
    assert not np.allclose(s["abs_A"], one["abs_A"])
    assert s["A"].isna().all()  # 2 inputs: A_k is a vector, only its norm is reported


def test_same_seed_same_numbers_and_model_untouched():
    unit = cells.build("rnn", 1, 8, seed=0)
    before = [p.detach().clone() for p in unit.parameters()]
    a, va = long_memory_probe(unit, 200, max_lag=80, n_samples=10, seed=4)
    b, vb = long_memory_probe(unit, 200, max_lag=80, n_samples=10, seed=4)
    c, vc = long_memory_probe(unit, 200, max_lag=80, n_samples=10, seed=5)
    np.testing.assert_array_equal(a["abs_A"], b["abs_A"])
    assert va["config"]["sampled_times"] != vc["config"]["sampled_times"]
    assert all(p.dtype == torch.float32 for p in unit.parameters())
    assert all(torch.equal(p, q) for p, q in zip(before, unit.parameters()))
    assert va["config"]["dtype"] == "float64" and va["config"]["trajectory"] == "white noise N(0,1)"


def test_reduce_mean_abs_and_fit_range():
    unit = cells.build("rnn", 1, 8, seed=0)
    f, v = long_memory_probe(unit, 200, max_lag=80, n_samples=10, reduce="mean_abs", fit_range=(2, 40))
    assert v["k_min"] == 2 and v["k_end"] <= 40
    np.testing.assert_array_equal(f["fitted"], f["mean_abs"])


# ----------------------------------------------------------------------------- the Definition-3 test
K1000 = np.arange(0, 1001)


def _psi(d, K=1000):
    return frac_weights(torch.tensor(-d, dtype=torch.float64), K, include_zero=True).numpy()


def _mixture(slowest, n=10, k=K1000, power=0.5):
    """n exponentials with rates spread over decades from 1 down to ``slowest``, weights rate^power:
    a power law k^-power between 1 and 1/slowest, short memory by construction."""
    s = np.geomspace(1.0, slowest, n)
    return (s[None, :] ** power * np.exp(-np.outer(k, s))).sum(1)


@pytest.mark.parametrize("d", [0.1, 0.3, 0.45])
@pytest.mark.parametrize("ranges", [dict(k_max=1000), dict(k_max=1000, tail_start=0.2), dict(k_min=5, k_max=500)])
def test_exact_fractional_filters_are_long_with_alpha_1_minus_d(d, ranges):
    v = definition3_test(K1000, _psi(d), **ranges)
    assert v["verdict"] == "long", v["reason"]
    lo, hi = v["alpha_ci"]
    assert lo <= 1 - d <= hi, (lo, hi)
    assert hi - lo < 0.01                      # and the interval is informative
    assert v["extrapolation"] == "power" and v["summable"] is False


@pytest.mark.parametrize("slowest", [1e-2, 3e-3, 1e-3, 3e-4, 1e-4])
@pytest.mark.parametrize("k_max", [300, 1000])
def test_mixtures_of_exponentials_are_never_long(slowest, k_max):
    """Ten exponentials with rates over two to three decades (the case that fooled the AIC comparison:
    'long memory' on lags 1-300 and 1-1000). Short when the slowest time scale 1/s is inside the
    range, at worst inconclusive when it is beyond (up to 1/s = 10,000 on lags 1-300: a power law
    over the whole range, which no finite-range test can refute)."""
    v = definition3_test(K1000, _mixture(slowest), k_max=k_max)
    assert v["verdict"] != "long", v["reason"]
    if 1.0 / slowest <= k_max:
        assert v["verdict"] == "short", v["reason"]
    if slowest == 1e-3:                        # the earlier AIC comparison called these "long memory"
        assert v["delta_aic"] > 100


def test_cases_built_to_fool_the_test():
    # a summable power law: short even though the power law fits perfectly
    v = definition3_test(K1000, np.r_[1.0, K1000[1:] ** -1.2])
    assert v["verdict"] == "short" and v["alpha_ci"][0] > 1 and v["extrapolation"] == "power"
    # a power law with a visible exponential cut-off: the mixture extrapolates better
    v = definition3_test(K1000, np.r_[1.0, K1000[1:] ** -0.5 * np.exp(-K1000[1:] / 300)])
    assert v["verdict"] == "short" and v["extrapolation"] == "mixture"
    # a cut-off far beyond the range cannot be seen: never "long"... unless it really is a power law there
    v = definition3_test(K1000, np.r_[1.0, K1000[1:] ** -0.5 * np.exp(-K1000[1:] / 3000)])
    assert v["verdict"] != "long"
    # a pure power law with alpha < 1 and a short-memory head
    v = definition3_test(K1000, np.r_[1.0, K1000[1:] ** -0.6 + 5 * 0.5 ** K1000[1:]])
    assert v["verdict"] == "long" and v["alpha_ci"][0] <= 0.6 <= v["alpha_ci"][1]
    # a slowly decaying exponential: alpha grows along the tail
    v = definition3_test(K1000, 0.995 ** K1000)
    assert v["verdict"] == "short"


def test_noisy_power_law_is_long_or_inconclusive_never_short():
    """Sampling noise from the bootstrap widens the CI; a long-memory curve with 30% noise per lag
    is never called short."""
    rng = np.random.default_rng(0)
    true = np.r_[1.0, K1000[1:] ** -0.7]
    reps = true * np.exp(0.3 * rng.standard_normal((200, K1000.size)))
    v = definition3_test(K1000, true * np.exp(0.3 * rng.standard_normal(K1000.size)), boot=reps)
    assert v["verdict"] in ("long", "inconclusive"), v["reason"]
    assert v["alpha_se_boot"] > 0.01
    assert v["alpha_ci"][0] <= 0.7 <= v["alpha_ci"][1]


def test_truncated_filter_is_short_beyond_K():
    """A K = 100 filter read to lag 300: FFT rounding (~1e-18) past K is below the dtype-relative
    floor and never enters a fit; the verdict says short beyond K = 100."""
    frame, v = long_memory_probe(FractionalFilter(0.3, 100), _noise(400), max_lag=300, n_samples=4)
    assert 0 < frame["abs_A"].iloc[101:].max() < v["noise_floor"]      # rounding noise, not exact zeros
    assert v["verdict"] == "short" and "short beyond K=100" in v["reason"], v["reason"]
    assert v["k_end"] == 100 and v["tail"][1] == 100
    for fr in [(1, 300), (5, 200)]:                                      # stable under the fit range
        _, w = long_memory_probe(FractionalFilter(0.3, 100), _noise(400), max_lag=300, n_samples=4, fit_range=fr)
        assert w["verdict"] == "short" and "short beyond K=100" in w["reason"]


def test_memory_unit_tail_is_tested_past_its_filter():
    """mrnnf (K = 20): lags past K are the asymptotic tail; the filter part is described separately."""
    u = cells.build("mrnnf", 1, 1, K=20, seed=0, dtype="float64")
    _, v = long_memory_probe(u, 400, max_lag=150, n_samples=16, seed=0)
    assert v["filter_length"] == 20 and v["verdict"] == "short", v["reason"]
    assert v["tail"] is None or v["tail"][0] > 20 or "short beyond K=" in v["reason"]
    _, w = long_memory_probe(u, 400, max_lag=150, n_samples=16, seed=0, filter_length=None)
    assert w["filter_length"] is None


def test_hac_slope_and_mixture_fit():
    rng = np.random.default_rng(1)
    x = np.linspace(0, 1, 400)
    e = np.zeros(400)
    for t in range(1, 400):                    # AR(1) errors, rho = 0.8
        e[t] = 0.8 * e[t - 1] + rng.standard_normal()
    f = hac_slope(x, 2.0 - 3.0 * x + 0.1 * e)
    xc = x - x.mean()
    naive = np.sqrt(np.sum((0.1 * e - (0.1 * e).mean()) ** 2) / 398 / (xc @ xc))
    assert f["se"] > 1.5 * naive               # autocorrelation inflates the standard error
    assert abs(f["slope"] + 3.0) < 4 * f["se"]
    k = np.arange(1, 300.0)
    m = fit_exp_mixture(k, 2.0 * np.exp(-0.3 * k) + 0.5 * np.exp(-0.01 * k), n_exp=4)
    assert m["rss"] < 1e-8
    big = np.argmax(m["logc"] - m["rates"] * 50)
    assert m["rates"][big] == pytest.approx(0.01, rel=1e-3)


def test_definition3_test_errors():
    k = np.arange(0, 50)
    with pytest.raises(ConfigError, match="k_min"):
        definition3_test(k, np.exp(-k), k_min=0)
    with pytest.raises(ConfigError, match="tail_start"):
        definition3_test(k, np.exp(-k), tail_start=1.5)
    with pytest.raises(InputError, match="boot"):
        definition3_test(k, np.exp(-k), boot=np.ones((3, 4)))
    with pytest.raises(ConfigError, match="filter_length"):
        long_memory_probe(LinearRecurrence(0.5), 100, max_lag=20, filter_length=0)
    fast = definition3_test(k, np.r_[1.0, 0.5, 0.1, 0.01, np.zeros(46)])
    assert fast["verdict"] == "short" and "short beyond K=3" in fast["reason"]
    noisy = definition3_test(k, np.exp(-0.05 * k), se=np.full(50, 0.5))   # measurable for k <= 6 only
    assert noisy["verdict"] == "inconclusive" and "too few" in noisy["reason"]


# ----------------------------------------------------------------------------- errors and plot
def test_probe_errors():
    unit = cells.build("rnn", 1, 4, seed=0)
    with pytest.raises(InputError, match="needs more than max_lag"):
        long_memory_probe(unit, _noise(50), max_lag=50)
    with pytest.raises(InputError, match="NaN"):
        long_memory_probe(unit, np.r_[_noise(50), np.nan], max_lag=10)
    with pytest.raises(InputError, match="input dims"):
        long_memory_probe(unit, np.zeros((60, 3)), max_lag=10)
    with pytest.raises(ConfigError, match="method"):
        long_memory_probe(unit, 60, max_lag=10, method="fd")
    with pytest.raises(ConfigError, match="ensemble"):
        long_memory_probe(cells.build("rnn", 1, 4, seeds=[0, 1]), 60, max_lag=10)
    with pytest.raises(ConfigError, match="output index"):
        long_memory_probe(unit, 60, max_lag=10, output=9)
    with pytest.raises(InputError, match=r"y\[T, B, O\]"):
        long_memory_probe(_Pooling(), 60, max_lag=10)


class _Pooling(nn.Module):
    """Not a sequence model: collapses time."""

    def forward(self, x):
        return x.mean(0)


def test_response_plot_writes_png(tmp_path):
    from rnnmem.report.acf_plot import plot_response

    frame, v = long_memory_probe(LinearRecurrence(0.8), _noise(150), max_lag=100, n_samples=4)
    out = plot_response(frame, v, tmp_path / "resp.png", title="linear RNN, a = 0.8")
    assert out.is_file() and out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
