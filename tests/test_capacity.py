"""Jaeger's short-term memory capacity: closed-form cases, bias correction, every unit kind."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.errors import ConfigError, InputError
from rnnmem.probes.capacity import memory_capacity


class ShiftRegister(nn.Module):
    """Linear delay line: h_t = S h_{t-1} + e_1 u_t (S shifts every unit one place down)."""

    def __init__(self, n: int):
        super().__init__()
        S = torch.zeros(n, n, dtype=torch.float64)
        S[1:, :-1] = torch.eye(n - 1, dtype=torch.float64)
        self.register_buffer("S", S)
        e1 = torch.zeros(1, n, dtype=torch.float64)
        e1[0, 0] = 1.0
        self.register_buffer("e1", e1)

    def forward(self, x, h):
        out = []
        for t in range(x.shape[0]):
            h = h @ self.S.T + x[t] @ self.e1
            out.append(h)
        return torch.stack(out), h


class NoiseState(nn.Module):
    """A 'network' whose state is fresh N(0, 1) noise, independent of the input."""

    def __init__(self, n: int, seed: int):
        super().__init__()
        self.n, self.gen = n, torch.Generator().manual_seed(seed)

    def forward(self, x, h):
        y = torch.randn(x.shape[0], x.shape[1], self.n, generator=self.gen, dtype=torch.float64)
        return y, y[-1]


def _unit(module, n):
    return cells.CallableUnit(module, 1, n, init_state=lambda b: torch.zeros(b, n, dtype=torch.float64))


def test_delay_line_has_capacity_n():
    N = 20
    res = memory_capacity(_unit(ShiftRegister(N), N), steps=4000, washout=50)
    assert res.state_dim == N
    assert res.config["max_lag"] == 2 * N  # default: lags 0 .. 2D
    assert abs(res.mc - N) < 0.02 * N
    curve = res.curve.set_index("lag")
    assert (curve.loc[: N - 1, "r2"] > 0.999).all()  # remembered exactly
    assert (curve.loc[N:, "r2"] < 0.01).all()  # gone
    # Jaeger's sum from k = 1 drops the current input
    res1 = memory_capacity(_unit(ShiftRegister(N), N), steps=4000, washout=50, min_lag=1)
    assert abs(res1.mc - (N - 1)) < 0.02 * N


def test_noise_state_has_no_capacity_and_the_raw_bias_is_as_documented():
    N = 20
    res = memory_capacity(_unit(NoiseState(N, seed=3), N), steps=4000, washout=50, seed=1)
    K = len(res.curve)
    assert res.null_bias == pytest.approx(K / (res.n_test - 1))
    # raw out-of-sample r^2 is biased up by about K / (n_test - 1); the corrected sum is not
    assert abs(res.mc_raw - res.null_bias) < 5 * res.null_sd
    assert res.mc_raw > 0.5 * res.null_bias
    assert abs(res.mc) < 5 * res.null_sd
    assert abs(res.mc) < 0.05


def test_builtin_units_components_and_determinism():
    lstm = cells.build("lstm", 1, 8, seed=0)
    full = memory_capacity(lstm, steps=1500, washout=100, seed=4)
    assert full.state_dim == 16 and full.config["components"] == ["h", "c"]
    assert list(full.curve.columns) == ["lag", "r2", "r2_adj"]
    assert len(full.curve) == 2 * 16 + 1
    assert 0.5 < full.mc <= full.state_dim
    h_only = memory_capacity(lstm, steps=1500, washout=100, seed=4, components=("h",))
    assert h_only.state_dim == 8 and h_only.config["components"] == ["h"]
    again = memory_capacity(lstm, steps=1500, washout=100, seed=4)
    assert again.mc == full.mc
    assert np.array_equal(again.curve.r2.to_numpy(), full.curve.r2.to_numpy())
    # the caller's unit is not moved or cast
    assert lstm.layer_params[0].W_x.dtype == torch.float32


def test_torch_module_and_given_input():
    torch.manual_seed(0)
    gru = nn.GRU(1, 6)
    u = np.random.default_rng(9).uniform(-1, 1, size=1100)
    a = memory_capacity(gru, steps=1000, washout=100, inputs=u)
    b = memory_capacity(gru, steps=1000, washout=100, seed=9)  # the same U[-1, 1] draw
    assert a.config["input"] == "given" and b.config["input"] == "iid U[-1,1]"
    assert a.mc == pytest.approx(b.mc, abs=1e-12)
    with pytest.raises(InputError, match="washout \\+ steps"):
        memory_capacity(gru, steps=1000, washout=100, inputs=u[:-1])


def test_wide_input_needs_explicit_projection():
    unit = cells.build("rnn", 3, 6, seed=0)
    with pytest.raises(ConfigError, match="input_projection='random'"):
        memory_capacity(unit, steps=500)
    res = memory_capacity(unit, steps=1000, washout=50, input_projection="random")
    v = np.array(res.notes["input_direction"])
    assert v.shape == (3,) and np.linalg.norm(v) == pytest.approx(1.0)
    assert res.mc > 0.5


def test_bad_options():
    unit = cells.build("lstm", 1, 4, seed=0)
    with pytest.raises(ConfigError, match="unknown state component"):
        memory_capacity(unit, steps=200, components=("q",))
    with pytest.raises(ConfigError, match="single network"):
        memory_capacity(cells.build("lstm", 1, 4, seeds=[0, 1]), steps=200)
    with pytest.raises(ConfigError, match="train_frac"):
        memory_capacity(unit, steps=200, train_frac=1.5)
    with pytest.raises(ConfigError, match="raise steps"):
        memory_capacity(unit, steps=20, washout=0)
