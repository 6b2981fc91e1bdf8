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
from rnnmem.probes.long_memory import FractionalFilter, LinearRecurrence, fit_decay, long_memory_probe


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
    assert v["verdict"] == "short memory"
    assert v["aic_exp"] < v["aic_power"]
    assert v["rate"] == pytest.approx(-math.log(0.9), rel=1e-6)
    assert v["half_life"] == pytest.approx(math.log(2) / -math.log(0.9), rel=1e-6)


def test_fractional_filter_is_long_memory():
    d, K = 0.3, 1000
    frame, v = long_memory_probe(FractionalFilter(d, K), _noise(1100), max_lag=K, n_samples=8)
    psi = frac_weights(torch.tensor(-d, dtype=torch.float64), K, include_zero=True).numpy()
    np.testing.assert_allclose(frame["A"], psi, rtol=1e-8, atol=1e-12)
    assert v["verdict"] == "long memory"
    assert v["aic_power"] < v["aic_exp"] - 100
    assert v["exponent"] == pytest.approx(1 - d, abs=0.02)  # psi_k ~ k^{d-1} / Gamma(d)
    assert not v["summable"]


def test_lstm_at_init_is_short_memory():
    unit = cells.build("lstm", 1, 16, seed=0)
    frame, v = long_memory_probe(unit, _noise(300), max_lag=150, n_samples=24)
    assert v["verdict"] == "short memory"
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
    assert v["k_min"] == 2 and v["k_max"] <= 40
    np.testing.assert_array_equal(f["fitted"], f["mean_abs"])


# ----------------------------------------------------------------------------- the fit itself
def test_fit_decay_on_exact_curves():
    k = np.arange(0, 501)
    exp = fit_decay(k, 3.0 * np.exp(-0.05 * k))
    assert exp["verdict"] == "short memory" and exp["rate"] == pytest.approx(0.05)
    power = fit_decay(k, np.r_[1.0, 2.0 * k[1:] ** -0.6])
    assert power["verdict"] == "long memory" and power["exponent"] == pytest.approx(0.6)
    assert not power["summable"]
    fast = fit_decay(k, np.r_[1.0, 0.5, 0.1, 0.01, np.zeros(497)])
    assert fast["verdict"] == "short memory" and fast["n_fit"] == 3 and "fewer than" in fast["reason"]
    noisy = fit_decay(k, np.exp(-0.05 * k), se=np.full(501, 1e-6))
    assert noisy["k_max"] == int(np.floor(np.log(2e-6) / -0.05))  # stops where |A| <= 2 se
    with pytest.raises(ConfigError, match="k_min"):
        fit_decay(k, np.exp(-k), k_min=0)


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
