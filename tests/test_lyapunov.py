"""Lyapunov spectrum by QR of autograd Jacobians: closed form, independent cross-checks, API."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.errors import ConfigError
from rnnmem.probes.capacity import prepare_unit
from rnnmem.probes.lyapunov import StepMap, jacobians, lyapunov_spectrum


class LinearRNN(nn.Module):
    """h_t = W h_{t-1} + x_t."""

    def __init__(self, W):
        super().__init__()
        self.register_buffer("W", W)

    def forward(self, x, h):
        out = []
        for t in range(x.shape[0]):
            h = h @ self.W.T + x[t]
            out.append(h)
        return torch.stack(out), h


def test_linear_rnn_gives_log_moduli_of_eigenvalues():
    n = 5
    g = torch.Generator().manual_seed(0)
    # distinct real eigenvalues and one complex pair, conjugated by a random (non-orthogonal) basis
    A = torch.zeros(n, n, dtype=torch.float64)
    A[0, 0], A[1, 1], A[4, 4] = 0.95, -0.6, 0.2
    A[2:4, 2:4] = 0.8 * torch.tensor([[np.cos(1.0), -np.sin(1.0)], [np.sin(1.0), np.cos(1.0)]], dtype=torch.float64)
    P = torch.randn(n, n, generator=g, dtype=torch.float64) + 2 * torch.eye(n, dtype=torch.float64)
    W = P @ A @ torch.linalg.inv(P)
    expected = np.sort(np.log(np.abs(torch.linalg.eigvals(W).numpy())))[::-1]
    unit = cells.CallableUnit(LinearRNN(W), n, n, init_state=lambda b: torch.zeros(b, n, dtype=torch.float64))
    res = lyapunov_spectrum(unit, steps=6000, washout=50, frame_washout=300, seed=1)
    assert res.state_dim == n
    np.testing.assert_allclose(res.exponents, expected, atol=1e-3)
    assert res.max_exponent == pytest.approx(np.log(0.95), abs=1e-3)
    assert res.notes == {}  # the Jacobians were vectorised


@pytest.mark.parametrize("cell,conv,opts", [
    ("lstm", "keras", {}),  # hard_sigmoid gates, 2 layers below
    ("lstm", "tf1", {}),  # forget_shift at every step
    ("gru", "keras", {}),  # reset before
    ("nlstm", "torch", {"depth": 2}),  # h, c and an inner cell
    ("rnn", "torch", {"nonlinearity": "relu"}),
])
def test_step_map_reproduces_the_unit_and_its_jacobian(cell, conv, opts):
    unit = cells.build(cell, 3, 5, layers=2, convention=conv, dtype="float64", seed=2, **opts)
    fmap = StepMap(unit)
    assert fmap.dim == len(unit.state_names) * 2 * 5
    x = torch.randn(30, 4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    _, final = unit(x)
    z = fmap.init(4)
    for t in range(30):
        z = fmap(z, x[t])
    torch.testing.assert_close(z, fmap.flatten(final), rtol=1e-12, atol=1e-12)
    # Jacobian against central differences
    J = jacobians(fmap, z[:2], x[-1, :2])
    eps = 1e-6
    for b in range(2):
        fd = torch.stack([
            (fmap.single(z[b] + eps * e, x[-1, b]) - fmap.single(z[b] - eps * e, x[-1, b])) / (2 * eps)
            for e in torch.eye(fmap.dim, dtype=torch.float64)
        ], dim=1)
        torch.testing.assert_close(J[b].detach(), fd, rtol=1e-6, atol=1e-7)


def _two_trajectory_exponent(unit, steps, washout, frame, seed, delta=1e-8):
    """Benettin's two-trajectory estimate with the unit's own forward (fused kernel): an
    independent check of the Jacobian/QR machinery on the same input stream."""
    unit = unit.double()
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((washout + frame + steps, 1, unit.input_size), generator=gen, dtype=torch.float64)
    with torch.no_grad():
        _, st = unit(x[:washout])
        v = torch.randn(sum(s.numel() for s in st), generator=torch.Generator().manual_seed(5), dtype=torch.float64)
        v = v / v.norm()
        total = 0.0
        for t in range(washout, washout + frame + steps):
            flat = torch.cat([s.reshape(-1) for s in st])
            pert, off = [], 0
            for s in st:
                pert.append((flat + delta * v)[off : off + s.numel()].reshape(s.shape))
                off += s.numel()
            _, st = unit(x[t : t + 1], st)
            _, st2 = unit(x[t : t + 1], tuple(pert))
            d = torch.cat([(a - b).reshape(-1) for a, b in zip(st2, st)])
            if t >= washout + frame:  # the perturbation has aligned with the top Lyapunov vector
                total += float(torch.log(d.norm() / delta))
            v = d / d.norm()
        return total / steps


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_max_exponent_matches_two_trajectory_estimate(cell):
    unit = cells.build(cell, 2, 16, seed=3, convention="keras2")
    washout, frame, steps = 300, 200, 1500
    res = lyapunov_spectrum(unit, steps=steps, washout=washout, frame_washout=frame, seed=11)
    # the same inputs: lyapunov_spectrum draws N(0,1) for washout + frame + steps from `seed`
    ref = _two_trajectory_exponent(cells.build(cell, 2, 16, seed=3, convention="keras2"),
                                   steps, washout, frame, seed=11)
    assert res.state_dim == (32 if cell == "lstm" else 16)
    assert res.max_exponent < 0
    assert res.max_exponent == pytest.approx(ref, rel=1e-3)
    assert res.ci[0] < res.max_exponent < res.ci[1]
    assert res.ci[1] - res.ci[0] < 0.2 * abs(res.max_exponent)


def test_api_frame_k_determinism_and_torch_modules():
    torch.manual_seed(0)
    lstm = nn.LSTM(2, 6, num_layers=2)
    full = lyapunov_spectrum(lstm, steps=400, washout=100, frame_washout=100, seed=2, realisations=2, blocks=5)
    assert full.state_dim == 2 * 2 * 6  # h and c of both layers
    assert len(full.exponents) == 24 and np.all(np.diff(full.exponents) <= 0)
    assert full.per_realisation.shape == (2, 24)
    df = full.to_frame()
    assert list(df.columns) == ["index", "exponent", "se", "ci_low", "ci_high", "units"]
    assert df.iloc[0].exponent == full.max_exponent
    assert full.config["dtype"] == "float64" and full.config["units"] == "nats/step"
    assert full.summary()["contraction_rate"] == -full.max_exponent
    top = lyapunov_spectrum(lstm, steps=400, washout=100, frame_washout=100, seed=2, realisations=2, blocks=5, k=2)
    assert len(top.exponents) == 2
    assert top.max_exponent == pytest.approx(full.max_exponent, abs=2e-3)
    again = lyapunov_spectrum(lstm, steps=400, washout=100, frame_washout=100, seed=2, realisations=2, blocks=5)
    assert np.array_equal(again.exponents, full.exponents)
    assert lstm.weight_hh_l0.dtype == torch.float32  # the caller's module was not cast


def test_sum_of_exponents_is_mean_log_determinant():
    unit = cells.build("gru", 1, 6, seed=1, dtype="float64")
    res = lyapunov_spectrum(unit, steps=300, washout=50, frame_washout=0, seed=4, blocks=3)
    fmap = StepMap(prepare_unit(unit)[0])
    x = torch.randn((350, 1, 1), generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    z, zs = fmap.init(1), []
    with torch.no_grad():
        for t in range(350):
            zs.append(z)
            z = fmap(z, x[t])
    J = jacobians(fmap, torch.cat(zs[50:]), x[50:, 0]).detach()
    logdet = torch.linalg.slogdet(J)[1].mean().item()
    assert res.exponents.sum() == pytest.approx(logdet, abs=1e-9)


def test_bad_options():
    unit = cells.build("lstm", 1, 4, seed=0)
    with pytest.raises(ConfigError, match="only 8 dimensions"):
        lyapunov_spectrum(unit, steps=50, k=9)
    with pytest.raises(ConfigError, match="single network"):
        lyapunov_spectrum(cells.build("lstm", 1, 4, seeds=[0, 1]), steps=50)
    with pytest.raises(ConfigError, match="blocks"):
        lyapunov_spectrum(unit, steps=5, blocks=10)
    with pytest.raises(ConfigError, match="dtype"):
        lyapunov_spectrum(unit, steps=50, dtype=torch.float16)


@pytest.mark.parametrize("cell", ["lstm", "gru", "mrnn", "lru", "mamba", "mingru"])
def test_forward_mode_tangents_equal_full_jacobians(cell):
    """``method="jvp"`` (k forward-mode products J Q, never forming J) gives the exponents of the full
    reverse-mode Jacobians (``method="jacobian"``) to rounding, on gated, memory and modern units."""
    from rnnmem import cells

    unit = cells.build(cell, 1, 4, seed=0, dtype="float64")
    a = lyapunov_spectrum(unit, steps=30, washout=10, k=3, method="jacobian", seed=2)
    b = lyapunov_spectrum(unit, steps=30, washout=10, k=3, method="jvp", seed=2)
    np.testing.assert_allclose(b.exponents, a.exponents, rtol=1e-9, atol=1e-12)
    assert "forward-mode" in b.config["method"] and "autograd Jacobians" in a.config["method"]


def test_method_is_checked():
    from rnnmem import cells

    with pytest.raises(ConfigError, match="method"):
        lyapunov_spectrum(cells.build("gru", 1, 3, seed=0), steps=40, method="secant")
