"""RNN2 (dual-track RNN) and RWA have no official code: each unit is checked here against an
independent, naive float64 transcription of the equations documented in rnnmem.cells.memory and
docs/cells.md (issue 14, item 7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnmem import cells


def _np(t):
    return t.detach().double().numpy()


def _rnn2_naive(x, p, K):
    """RNN2, lag by lag: F_t = sum_{j=1..K} v_{., j} x_{t-j+1} (pre-sample inputs 0);
    h_t = tanh(h_{t-1} W_h + x_t W_x + b); m_t = tanh(m_{t-1} W_m + F_t W_f + b_m);
    z_t = tanh(h_t W_zh + m_t W_zm + b_z)."""
    T, I = x.shape
    H = p["W_h"].shape[0]
    h, m, out = np.zeros(H), np.zeros(H), []
    for t in range(T):
        F = np.zeros(I)
        for j in range(1, K + 1):
            if t - j + 1 >= 0:
                F += p["v"][:, j - 1] * x[t - j + 1]
        h = np.tanh(h @ p["W_h"] + x[t] @ p["W_x"] + p["b"])
        m = np.tanh(m @ p["W_m"] + F @ p["W_f"] + p["b_m"])
        out.append(np.tanh(h @ p["W_zh"] + m @ p["W_zm"] + p["b_z"]))
    return np.array(out)


def _rwa_naive(x, p, H):
    """RWA in its published form (Ostmeyer & Cowell 2017, the recurrent weighted average):
    u_t = x_t W_u + b_u, g_t = x_t W_g + h_{t-1} U_g + b_g, a_t = x_t W_a + h_{t-1} U_a,
    n_t = n_{t-1} + u_t tanh(g_t) e^{a_t}, d_t = d_{t-1} + e^{a_t}, h_t = tanh(n_t / d_t),
    n_0 = d_0 = 0, h_0 = tanh(s). No rescaling (inputs small enough not to overflow)."""
    W_u, W_g, W_a = p["W_x"][:, :H], p["W_x"][:, H:2 * H], p["W_x"][:, 2 * H:]
    U_g, U_a = p["W_h"][:, :H], p["W_h"][:, H:]
    b_u, b_g = p["b"][:H], p["b"][H:]
    h, n, d, out = np.tanh(p["s"]), np.zeros(H), np.zeros(H), []
    for t in range(x.shape[0]):
        u = x[t] @ W_u + b_u
        g = x[t] @ W_g + h @ U_g + b_g
        a = x[t] @ W_a + h @ U_a
        n = n + u * np.tanh(g) * np.exp(a)
        d = d + np.exp(a)
        h = np.tanh(n / d)
        out.append(h)
    return np.array(out)


@pytest.mark.parametrize("seed", [0, 1])
def test_rnn2_equals_its_equations_with_free_weights(seed):
    I, H, K, T = 2, 3, 7, 25
    u = cells.build("rnn2", I, H, K=K, output_size=2, seed=seed, dtype="float64")
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():                      # free weights: move them away from the w(0.25) start
        u.layer_params[0].v.copy_(torch.randn(I, K, generator=g, dtype=torch.float64))
    p = {k: _np(v) for k, v in u.layer_params[0].named_parameters()}
    x = torch.randn(T, 1, I, generator=g, dtype=torch.float64)
    y, _ = u(x)
    np.testing.assert_allclose(_np(y[:, 0]), _rnn2_naive(_np(x[:, 0]), p, K), rtol=0, atol=1e-10)
    # split into two blocks, the second continuing from the first's final state: the same outputs
    y1, st = u(x[:10])
    y2, _ = u(x[10:], st)
    np.testing.assert_allclose(_np(torch.cat([y1, y2])), _np(y), rtol=0, atol=1e-12)


@pytest.mark.parametrize("seed", [0, 3])
def test_rwa_equals_the_published_weighted_average(seed):
    I, H, T = 2, 4, 30
    u = cells.build("rwa", I, H, seed=seed, dtype="float64")
    p = {k: _np(v) for k, v in u.layer_params[0].named_parameters()}
    x = torch.randn(T, 1, I, generator=torch.Generator().manual_seed(seed + 10), dtype=torch.float64)
    y, _ = u(x)
    np.testing.assert_allclose(_np(y[:, 0]), _rwa_naive(_np(x[:, 0]), p, H), rtol=0, atol=1e-10)
