"""Memory-augmented units of Zhao et al. (2020) and the RWA: equations, filters, states, ensembles."""

from __future__ import annotations

import pytest
import torch

from rnnmem import cells
from rnnmem.cells.memory import LOG_ZERO, fir_filter
from rnnmem.errors import ConfigError, InputError

MEMORY = ("mrnnf", "mrnn", "mlstmf", "mlstm", "rnn2", "rwa")
F64 = torch.float64


def _build(name, I=2, H=3, K=6, **kw):
    opts = {} if name == "rwa" else {"K": K}
    opts.update(kw)
    return cells.build(name, I, H, dtype="float64", **opts)


def paper_weights(d: float, K: int) -> list[float]:
    """The published get_ws loop: weights[K-1] = -d multiplies the newest value."""
    weights = [1.0] * (K + 1)
    for i in range(K):
        weights[K - i - 1] = weights[K - i] * (i - d) / (i + 1)
    return weights[:K]          # oldest ... newest


# ------------------------------------------------------------------------------------------ registry
def test_units_are_registered_and_documented():
    units = cells.list_units()
    for name in MEMORY:
        assert name in units and units[name]
        u = _build(name, seed=0)
        assert u.describe()["cell"] == name


@pytest.mark.parametrize("kwargs, match", [
    ({"K": 0}, "filter length K"),
    ({"K": 2.5}, "filter length K"),
    ({"output_size": 0}, "output_size"),
])
def test_bad_options_raise_config_error(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        cells.build("mrnnf", 1, 2, **kwargs)


def test_options_that_do_not_apply_are_rejected():
    with pytest.raises(ConfigError, match="does not apply"):
        cells.build("rwa", 1, 2, K=10)
    with pytest.raises(ConfigError, match="does not apply"):
        cells.build("mlstmf", 1, 2, output_size=1)


def test_wrong_state_shape_is_a_clear_input_error():
    u = _build("mrnnf", seed=0)
    st = u.init_state(4)
    bad = (st[0], st[1], st[2][..., :-1, :])
    with pytest.raises(InputError, match="x_window"):
        u(torch.zeros(5, 4, 2, dtype=F64), bad)


# ------------------------------------------------------------------------------------------ equations
def test_mrnnf_matches_a_transcription_of_the_published_cell():
    torch.manual_seed(0)
    K, T = 7, 12
    u = _build("mrnnf", I=2, H=3, K=K, seed=1)
    with torch.no_grad():
        u.layer_params[0].b_d.copy_(torch.tensor([0.3, -1.2], dtype=F64))   # d = 0.5 sigmoid(b_d)
    x = torch.randn(T, 1, 2, dtype=F64)
    y, _ = u(x)
    p = u.layer_params[0]
    d = 0.5 * torch.sigmoid(p.b_d)
    w = torch.stack([torch.tensor(paper_weights(float(di), K), dtype=F64) for di in d.detach()], 1)   # [K, I]
    xs = torch.zeros(K - 1, 1, 2, dtype=F64)
    h = torch.zeros(1, 3, dtype=F64)
    m = torch.zeros(1, 3, dtype=F64)
    for t in range(T):
        comb = torch.cat([xs, x[t:t + 1]], 0)                    # oldest ... newest
        F = (comb * w[:, None, :]).sum(0)
        m = torch.tanh(m @ p.W_m + p.b_m + F @ p.W_f)
        h = torch.tanh(h @ p.W_h + p.b + x[t] @ p.W_x)
        z = torch.tanh(h @ p.W_zh + p.b_z + m @ p.W_zm)
        xs = comb[1:]
        torch.testing.assert_close(y[t], z, rtol=0, atol=1e-12)


def test_mrnn_matches_a_transcription_of_the_published_cell():
    torch.manual_seed(1)
    K, T = 5, 10
    u = _build("mrnn", I=2, H=2, K=K, seed=2)
    x = torch.randn(T, 1, 2, dtype=F64)
    y, st = u(x)
    p = u.layer_params[0]
    xs = torch.zeros(K - 1, 1, 2, dtype=F64)
    h = torch.zeros(1, 2, dtype=F64)
    m = torch.zeros(1, 2, dtype=F64)
    d = torch.zeros(1, 2, dtype=F64)
    for t in range(T):
        d = 0.5 * torch.sigmoid(d @ p.W_dd + p.b_d + h @ p.W_hd + m @ p.W_md + x[t] @ p.W_xd)
        w = torch.stack([torch.tensor(paper_weights(float(di), K), dtype=F64) for di in d[0].detach()], 1)
        comb = torch.cat([xs, x[t:t + 1]], 0)
        F = (comb * w[:, None, :]).sum(0)
        m = torch.tanh(m @ p.W_m + p.b_m + F @ p.W_f)
        h = torch.tanh(h @ p.W_h + p.b + x[t] @ p.W_x)
        z = h @ p.W_zh + p.b_z + m @ p.W_zm                       # mrnn: linear output
        xs = comb[1:]
        torch.testing.assert_close(y[t], z, rtol=0, atol=1e-12)
    torch.testing.assert_close(st[2][0], d, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", ["mlstmf", "mlstm"])
def test_mlstm_matches_a_transcription_of_the_published_cell(name):
    torch.manual_seed(2)
    K, T, H = 6, 11, 2
    u = _build(name, I=1, H=H, K=K, seed=3)
    x = torch.randn(T, 1, 1, dtype=F64)
    y, _ = u(x)
    p = u.layer_params[0]
    h = torch.zeros(1, H, dtype=F64)
    cells_hist = torch.zeros(K, 1, H, dtype=F64)                # oldest ... newest, as the paper
    d = torch.zeros(1, H, dtype=F64)
    for t in range(T):
        pre = x[t] @ p.W_x + h @ p.W_h + p.b
        i, o = torch.sigmoid(pre[:, :H]), torch.sigmoid(pre[:, H:2 * H])
        if name == "mlstmf":
            d = (0.5 * torch.sigmoid(p.b_d)).expand(1, H)
            g = torch.tanh(pre[:, 2 * H:])
        else:
            d = 0.5 * torch.sigmoid(pre[:, 2 * H:3 * H] + d @ p.W_d)
            g = torch.tanh(pre[:, 3 * H:])
        w = torch.stack([torch.tensor(paper_weights(float(di), K), dtype=F64) for di in d[0].detach()], 1)  # [K, H]
        first = (-cells_hist * w[:, None, :]).sum(0)
        c = first + i * g
        h = o * torch.tanh(c)
        cells_hist = torch.cat([cells_hist[1:], c[None]], 0)
        torch.testing.assert_close(y[t], h, rtol=0, atol=1e-12)


def test_rwa_matches_the_running_maximum_form():
    torch.manual_seed(3)
    T, H = 40, 3
    u = _build("rwa", I=2, H=H, seed=4)
    x = 3 * torch.randn(T, 1, 2, dtype=F64)
    y, _ = u(x)
    p = u.layer_params[0]
    W_u, W_g, W_a = p.W_x[:, :H], p.W_x[:, H:2 * H], p.W_x[:, 2 * H:]
    U_g, U_a = p.W_h[:, :H], p.W_h[:, H:]
    h = torch.tanh(p.s)[None]
    n = torch.zeros(1, H, dtype=F64)
    dd = torch.zeros(1, H, dtype=F64)
    a_max = torch.full((1, H), -1e38, dtype=F64)
    for t in range(T):
        u_t = x[t] @ W_u + p.b[:H]
        g = x[t] @ W_g + h @ U_g + p.b[H:]
        a = x[t] @ W_a + h @ U_a
        z = u_t * torch.tanh(g)
        a_new = torch.maximum(a_max, a)
        n = n * torch.exp(a_max - a_new) + z * torch.exp(a - a_new)
        dd = dd * torch.exp(a_max - a_new) + torch.exp(a - a_new)
        a_max = a_new
        h = torch.tanh(n / dd)
        torch.testing.assert_close(y[t], h, rtol=0, atol=1e-12)


def test_rwa_initial_state_is_learned():
    u = _build("rwa", seed=5)
    h0, r0, l0 = u.init_state(2)
    torch.testing.assert_close(h0[0, 0], torch.tanh(u.layer_params[0].s))
    assert torch.all(r0 == 0) and torch.all(l0 == LOG_ZERO)
    y, _ = u(torch.randn(4, 2, 2, dtype=F64))
    y.sum().backward()
    assert u.layer_params[0].s.grad.abs().sum() > 0


def test_fir_filter_is_the_lag_sum():
    torch.manual_seed(4)
    K, T = 9, 15
    xext = torch.randn(K - 1 + T, 3, 2, dtype=F64)
    w = torch.randn(2, K, dtype=F64)
    F = fir_filter(xext, w)
    for t in range(T):
        want = sum(w[:, j - 1] * xext[K - 1 + t - (j - 1)] for j in range(1, K + 1))
        torch.testing.assert_close(F[t], want)


def test_rnn2_starts_at_the_fractional_filter_and_learns_free_weights():
    u = _build("rnn2", I=1, H=2, K=8, seed=0)
    v = u.layer_params[0].v
    torch.testing.assert_close(v[0], torch.tensor(paper_weights(0.25, 8)[::-1], dtype=F64))
    y, _ = u(torch.randn(20, 1, 1, dtype=F64))
    y.sum().backward()
    assert (v.grad != 0).sum() == 8            # every lag weight gets its own gradient


@pytest.mark.parametrize("name", ["mrnnf", "mlstmf"])
def test_fixed_d_starts_at_a_quarter_and_gets_gradients(name):
    u = _build(name, I=2, H=2, K=5, seed=0)
    torch.testing.assert_close(u.d_values(0), torch.full_like(u.d_values(0), 0.25))
    y, _ = u(torch.randn(12, 1, 2, dtype=F64))
    y.sum().backward()
    assert torch.all(u.layer_params[0].b_d.grad != 0)


# ------------------------------------------------------------------------------------------ states, ensembles
@pytest.mark.parametrize("name", MEMORY)
def test_running_in_two_parts_equals_running_at_once(name):
    torch.manual_seed(5)
    u = _build(name, I=2, H=3, K=6, layers=2, seed=6)
    x = torch.randn(17, 2, 2, dtype=F64)
    y, st = u(x)
    y1, s1 = u(x[:4])
    y2, s2 = u(x[4:], s1)
    torch.testing.assert_close(torch.cat([y1, y2]), y, rtol=0, atol=1e-12)
    for a, b in zip(s2, st):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", MEMORY)
def test_ensemble_member_equals_the_single_unit(name):
    torch.manual_seed(6)
    seeds = [11, 12, 13]
    ens = _build(name, I=2, H=2, K=5, seeds=seeds)
    x = torch.randn(9, 3, 2, 2, dtype=F64)
    y, st, allst = ens(x, return_all_states=True)
    for e, s in enumerate(seeds):
        one = _build(name, I=2, H=2, K=5, seed=s)
        y1, st1, all1 = one(x[:, e], return_all_states=True)
        torch.testing.assert_close(y[:, e], y1, rtol=0, atol=1e-12)
        for a, b in zip(st, st1):
            torch.testing.assert_close(a[:, e], b, rtol=0, atol=1e-12)
        for a, b in zip(allst, all1):
            torch.testing.assert_close(a[:, :, e], b, rtol=0, atol=1e-12)


def test_stacked_layers_with_different_widths_pad_the_window_state():
    u = cells.build("mrnnf", 3, 4, layers=2, K=4, output_size=2, seed=0, dtype="float64")
    st = u.init_state(1)
    assert st[2].shape == (2, 1, 3, 3)              # [layers, B, K-1, max(I=3, O=2)]
    y, st2 = u(torch.randn(6, 1, 3, dtype=F64))
    assert y.shape == (6, 1, 2)
    assert torch.all(st2[2][1, ..., 2] == 0)       # layer 1 reads 2 columns; the third is padding


def test_mrnnf_response_decays_like_its_filter_weights_k_to_the_minus_1_plus_d():
    """mrnnf's filter weights w_j(d) = pi_j(d), the coefficients of (1 - B)^d, decay like
    j^{-1-d} / |Gamma(-d)| (Hosking 1981): summable for d > 0. Within its filter (K = 1000, lags
    <= 400) the response follows them: tail exponent 1 + d, so by Definition 3 (sum_k |A_k| < inf)
    the unit at init is short memory; the earlier AIC comparison called it long (power law beats
    exponential), which is not what Definition 3 asks (issue 14)."""
    lm = pytest.importorskip("rnnmem.probes.long_memory")
    u = cells.build("mrnnf", 1, 1, K=1000, seed=0, dtype="float64")        # d = 0.25 at init
    assert u.d_values(0).item() == pytest.approx(0.25)
    frame, verdict = lm.long_memory_probe(u, 700, max_lag=400, n_samples=8, seed=0)
    lo, hi = verdict["alpha_ci"]
    assert lo <= 1.25 <= hi and lo > 1.0, verdict["alpha_ci"]
    assert verdict["verdict"] == "short" and verdict["summable"], verdict["reason"]
    assert verdict["extrapolation"] == "power"                               # a power law, but a summable one
    # its sibling with the filter cut to K = 1 decays exponentially: short as well
    short = cells.build("mrnnf", 1, 1, K=1, seed=0, dtype="float64")
    _, v2 = lm.long_memory_probe(short, 700, max_lag=400, n_samples=8, seed=0)
    assert v2["verdict"] == "short", v2["reason"]
