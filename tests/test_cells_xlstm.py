"""xLSTM cells ``xlstm_s`` (sLSTM) and ``xlstm_m`` (mLSTM): shapes, ensembles, the stabiliser, the
parallel (chunkwise) sequence form against the step recurrence, and the official ``xlstm`` package's
reference functions on the same weights (skipped when the package is absent)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from rnnmem import cells
from rnnmem.errors import ConfigError, InputError

NAMES = ("xlstm_s", "xlstm_m")


def _randomize(unit, seed: int = 0, scale: float = 0.5) -> None:
    """Add noise to every parameter, so gates depend on the input and R is non-zero (the official
    init has zero gate / recurrent weights, which would leave most of the equations untested)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in unit.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g, dtype=torch.float64).to(p.dtype))


def _x(T, B, I, dtype=torch.float64, seed=1, lead=()):
    g = torch.Generator().manual_seed(seed)
    return torch.randn((T,) + tuple(lead) + (B, I), generator=g, dtype=torch.float64).to(dtype)


# ------------------------------------------------------------------------------------ basics
@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("heads", [1, 4])
def test_shapes_and_registry(name, heads):
    u = cells.build(name, 5, 16, layers=2, seed=0, heads=heads)
    assert name in cells.list_units() and "Beck" in cells.list_units()[name]
    y, st = u(_x(7, 3, 5, torch.float32))
    assert y.shape == (7, 3, 16) and y.dtype == torch.float32
    d = 16 // heads
    want = {"xlstm_s": {"h": 16, "c": 16, "n": 16, "m": 16},
            "xlstm_m": {"C": heads * d * d, "n": heads * d, "m": heads}}[name]
    assert u.state_names == tuple(want)
    for s, (k, F_k) in zip(st, want.items()):
        assert s.shape == (2, 3, F_k), k
    assert [s.shape for s in u.init_state(3)] == [s.shape for s in st]
    y2, st2, alls = u(_x(7, 3, 5, torch.float32), return_all_states=True)
    for a, s in zip(alls, st2):
        assert a.shape == (7,) + tuple(s.shape)
        torch.testing.assert_close(a[-1], s)
    assert u.describe()["heads"] == heads and u.describe()["cell"] == name
    z = u.state_vector(st)
    assert z.shape == (3, u.state_size())
    for a, b in zip(u.state_from_vector(z), st):
        assert torch.equal(a, b)


def test_docs_say_which_mlstm_is_which():
    docs = cells.list_units()
    assert "not Zhao" in docs["xlstm_m"] and "matrix memory" in docs["xlstm_m"]
    assert "Zhao" in docs["mlstm"]


@pytest.mark.parametrize("name", NAMES)
def test_ensemble_member_equals_single_seed(name):
    seeds = [3, 11]
    opts = {"recurrent_init": "standard"} if name == "xlstm_s" else {"chunk": 16}   # R != 0; 3 chunks
    ens = cells.build(name, 4, 8, layers=2, seeds=seeds, dtype="float64", heads=2, **opts)
    x = _x(40, 2, 4, lead=(2,))
    y, st = ens(x)
    for e, s in enumerate(seeds):
        one = cells.build(name, 4, 8, layers=2, seed=s, dtype="float64", heads=2, **opts)
        for (k, p1), (_, pe) in zip(one.named_parameters(), ens.named_parameters()):
            assert torch.equal(p1, pe[e].reshape(p1.shape)), k
        y1, st1 = one(x[:, e])
        torch.testing.assert_close(y[:, e], y1, rtol=1e-12, atol=1e-12)
        for a, b in zip(st, st1):
            torch.testing.assert_close(a[:, e], b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", NAMES)
def test_float64_and_layers(name):
    u = cells.build(name, 3, 8, layers=2, seed=0, dtype="float64")
    y32, st = u(_x(20, 2, 3, torch.float32))      # inputs follow the parameters' dtype
    assert y32.dtype == torch.float64 and all(s.dtype == torch.float64 for s in st)
    y, _ = u(_x(20, 2, 3))
    # layer 2 reads layer 1's output: running the layers one unit at a time gives the same result
    one = cells.build(name, 3, 8, layers=1, seed=0, dtype="float64")
    with torch.no_grad():
        for p1, p2 in zip(one.layer_params[0].parameters(), u.layer_params[0].parameters()):
            p1.copy_(p2)
    y1, _ = one(_x(20, 2, 3))
    assert not torch.allclose(y1, y)
    two = cells.build(name, 8, 8, layers=1, seed=0, dtype="float64")
    with torch.no_grad():
        for p1, p2 in zip(two.layer_params[0].parameters(), u.layer_params[1].parameters()):
            p1.copy_(p2)
    y2, _ = two(y1)
    torch.testing.assert_close(y2, y, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", NAMES)
def test_seed_reproducible_and_default_init(name):
    a = cells.build(name, 4, 8, seed=5)
    b = cells.build(name, 4, 8, seed=5)
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.equal(p, q)
    W = a.layer_params[0].W_x
    std = math.sqrt(2 / (5 * 4))   # small init over the input width
    proj = W[:, : 4 * 8]
    assert abs(proj.std().item() - std) < 0.3 * std


def test_official_default_inits():
    s = cells.build("xlstm_s", 4, 8, layers=3, seed=0, heads=2, dtype="float64")
    assert torch.count_nonzero(s.layer_params[0].R) == 0          # recurrent_weight_init="zeros"
    b = s.layer_params[0].b
    H, d = 8, 4
    j = torch.arange(d, dtype=torch.float64) / (d - 1)
    torch.testing.assert_close(b[H:2 * H], (5 - 12 * j ** 0.3).repeat(2))             # layer 0: r = 0
    torch.testing.assert_close(s.layer_params[2].b[H:2 * H], (5 - 12 * j ** 1.6).repeat(2))  # r = 1
    assert torch.count_nonzero(b[:H]) == 0 and torch.count_nonzero(b[2 * H:]) == 0
    m = cells.build("xlstm_m", 4, 8, seed=0, heads=4, dtype="float64")
    bm = m.layer_params[0].b
    torch.testing.assert_close(bm[-4:], torch.linspace(3, 6, 4, dtype=torch.float64))
    assert torch.count_nonzero(m.layer_params[0].W_x[:, -8:]) == 0                  # gate weights 0
    assert torch.count_nonzero(bm[:32]) == 0 and 0 < bm[32:36].abs().max() < 0.5    # b_i ~ N(0, 0.1)
    st = cells.build("xlstm_s", 4, 8, seed=0, recurrent_init="standard", bias_init="linspace")
    assert 0 < st.layer_params[0].R.abs().max() <= 1 / math.sqrt(8)
    torch.testing.assert_close(st.layer_params[0].b[8:16], torch.linspace(3.0, 6.0, 8))


@pytest.mark.parametrize("bad, match", [
    (dict(heads=3), "divisible"), (dict(heads=0), "heads"), (dict(forget="tanh"), "forget"),
    (dict(recurrent_init="ortho"), "recurrent_init"), (dict(bias_init="ones"), "bias_init"),
    (dict(chunk=4), "option 'chunk' does not apply"),
])
def test_bad_options_slstm(bad, match):
    with pytest.raises(ConfigError, match=match):
        cells.build("xlstm_s", 4, 8, **bad)


@pytest.mark.parametrize("bad, match", [
    (dict(heads=3), "divisible"), (dict(heads=True), "heads"), (dict(forget=None), "forget"),
    (dict(chunk=0), "chunk"), (dict(chunk=2.5), "chunk"), (dict(bias_init="zeros"), "does not apply"),
])
def test_bad_options_mlstm(bad, match):
    with pytest.raises(ConfigError, match=match):
        cells.build("xlstm_m", 4, 8, **bad)


@pytest.mark.parametrize("name", NAMES)
def test_bad_state_shape(name):
    u = cells.build(name, 4, 8, seed=0, heads=2)
    st = list(u.init_state(3))
    st[-1] = torch.zeros(1, 3, 5)
    with pytest.raises(InputError, match="state component 'm'"):
        u(_x(2, 3, 4, torch.float32), tuple(st))


# ------------------------------------------------------------------------------------ sLSTM maths
def _dense_R(R: torch.Tensor, d: int) -> torch.Tensor:
    """Block-diagonal [H, 4H] (gate-major columns) from the head blocks R [NH, d, 4d]."""
    return torch.cat([torch.block_diag(*[R[h][:, g * d:(g + 1) * d] for h in range(R.shape[0])])
                      for g in range(4)], dim=1)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
def test_slstm_step_matches_hand_written(forget):
    H, NH, d = 6, 2, 3
    u = cells.build("xlstm_s", 4, H, seed=0, dtype="float64", heads=NH, forget=forget,
                    recurrent_init="standard", bias_init="standard")
    _randomize(u)
    g = torch.Generator().manual_seed(7)
    B = 5
    h0 = torch.randn(1, B, H, generator=g, dtype=torch.float64)
    c0 = torch.randn(1, B, H, generator=g, dtype=torch.float64)
    n0 = torch.rand(1, B, H, generator=g, dtype=torch.float64) + 0.5
    m0 = torch.randn(1, B, H, generator=g, dtype=torch.float64)
    x = torch.randn(B, 4, generator=g, dtype=torch.float64)
    y, (h1, c1, n1, m1) = u.step(x, (h0, c0, n0, m0))
    p = u.layer_params[0]
    pre = x @ p.W_x + h0[0] @ _dense_R(p.R, d) + p.b
    it, ft, zt, ot = pre[:, :H], pre[:, H:2 * H], pre[:, 2 * H:3 * H], pre[:, 3 * H:]
    logf = torch.log(torch.sigmoid(ft)) if forget == "sigmoid" else ft
    m = torch.maximum(logf + m0[0], it)
    i_s, f_s = torch.exp(it - m), torch.exp(logf + m0[0] - m)
    c = f_s * c0[0] + i_s * torch.tanh(zt)
    n = f_s * n0[0] + i_s
    h = torch.sigmoid(ot) * c / n
    for got, want in ((y, h), (h1[0], h), (c1[0], c), (n1[0], n), (m1[0], m)):
        torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
def test_slstm_stabilised_equals_unstabilised(forget):
    """Without overflow, the stabilised recurrence gives the h of the plain one (c = f c + exp(i~) z,
    n = f n + exp(i~)), and its c, n are the plain ones scaled by exp(-m)."""
    H, NH, d, T, B = 6, 3, 2, 60, 4
    u = cells.build("xlstm_s", 3, H, seed=2, dtype="float64", heads=NH, forget=forget,
                    recurrent_init="standard")
    _randomize(u, scale=0.3)
    x = _x(T, B, 3, seed=3)
    y, st, alls = u(x, return_all_states=True)
    p = u.layer_params[0]
    R = _dense_R(p.R, d)
    h = torch.zeros(B, H, dtype=torch.float64)
    c = torch.zeros_like(h)
    n = torch.zeros_like(h)
    for t in range(T):
        pre = x[t] @ p.W_x + h @ R + p.b
        it, ft, zt, ot = pre[:, :H], pre[:, H:2 * H], pre[:, 2 * H:3 * H], pre[:, 3 * H:]
        f = torch.sigmoid(ft) if forget == "sigmoid" else torch.exp(ft)
        c = f * c + torch.exp(it) * torch.tanh(zt)
        n = f * n + torch.exp(it)
        h = torch.sigmoid(ot) * c / n
        torch.testing.assert_close(y[t], h, rtol=1e-11, atol=1e-12)
        scale = torch.exp(-alls[3][t, 0])
        torch.testing.assert_close(alls[1][t, 0], c * scale, rtol=1e-11, atol=1e-12)
        torch.testing.assert_close(alls[2][t, 0], n * scale, rtol=1e-11, atol=1e-12)
    assert (alls[2] >= 1 - 1e-12).all()   # n_t >= 1 from the first step on (module docstring)


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("forget", ["sigmoid", "exp"])
def test_no_overflow_with_large_inputs(name, dtype, forget):
    """2,000 steps with inputs of size ~100: the stabiliser keeps every exp() argument <= 0, so the
    output and state stay finite, where the unstabilised input gate exp(i~) overflows."""
    u = cells.build(name, 4, 8, layers=2, seed=0, dtype=dtype, heads=2, forget=forget)
    _randomize(u, scale=1.0)
    x = 100 * _x(2000, 3, 4, u.dtype, seed=4)
    with torch.no_grad():
        p = u.layer_params[0]
        i_cols = slice(0, 8) if name == "xlstm_s" else slice(32, 34)
        i_pre = (x @ p.W_x + p.b)[..., i_cols]
        assert not torch.isfinite(torch.exp(i_pre)).all()          # the plain form would overflow
        y, st = u(x)
        assert torch.isfinite(y).all() and all(torch.isfinite(s).all() for s in st)
        if name == "xlstm_m":
            u.use_parallel = False
            y2, st2 = u(x)
            assert torch.isfinite(y2).all() and all(torch.isfinite(s).all() for s in st2)


def test_slstm_empty_memory_rule_per_entry():
    """From the zero state (n = 0) the first step sets m = i~ (official rule), even where i~ is so
    negative that exp(i~ - max(log f, i~)) would underflow to 0 and give c / n = 0 / 0."""
    u = cells.build("xlstm_s", 2, 4, seed=0, dtype="float32")
    with torch.no_grad():
        u.layer_params[0].b[:4] = -500.0                           # i~ = -500
    x = torch.zeros(1, 2, 2)
    y, (h, c, n, m) = u(x)
    assert torch.isfinite(y).all()
    torch.testing.assert_close(m[0], torch.full((2, 4), -500.0))
    torch.testing.assert_close(n[0], torch.ones(2, 4))


# ------------------------------------------------------------------------------------ mLSTM forms
def _gate_noise(unit, seed: int, scale: float) -> None:
    """Input-dependent gates on top of the official init (whose gate weights are 0): add
    N(0, scale^2) to the i~ and f~ columns of every layer's W_x, so the stabiliser switches."""
    g = torch.Generator().manual_seed(seed)
    H = unit.hidden_size
    with torch.no_grad():
        for p in unit.layer_params:
            gates = p.W_x[..., 4 * H:]
            gates.add_(scale * torch.randn(gates.shape, generator=g, dtype=torch.float64).to(gates.dtype))


def _parallel_and_step(u, x, state, tol):
    """Both forms, with and without every step's state; the parallel runs agree with each other."""
    u.use_parallel = True
    y_p, st_p, all_p = u(x, state, return_all_states=True)
    y_p2, st_p2 = u(x, state)
    assert u.last_path == "parallel"
    u.use_parallel = False
    y_s, st_s, all_s = u(x, state, return_all_states=True)
    assert u.last_path == "python"
    u.use_parallel = True
    _assert_close_scaled(y_p, y_p2, tol)   # the carried chunk states are summed in another order
    for a, b in zip(st_p, st_p2):
        _assert_close_scaled(a, b, tol)
    return (y_p, st_p, all_p), (y_s, st_s, all_s)


def _assert_close_scaled(a, b, tol):
    """max |a - b| <= tol * max(1, max |b|): agreement relative to the tensor's scale."""
    scale = max(1.0, b.abs().max().item())
    err = (a - b).abs().max().item()
    assert err <= tol * scale, f"max error {err:.3g} > {tol} * {scale:.3g}"


_AGREE = [("sigmoid", 1, 1), ("sigmoid", 2, 1), ("exp", 1, 1)]


@pytest.mark.parametrize("dtype, tol, forget, layers, heads",
                         [("float32", 1e-5) + c for c in _AGREE]
                         + [("float64", 1e-10) + c for c in _AGREE + [("sigmoid", 1, 4), ("exp", 1, 4)]])
def test_mlstm_parallel_equals_step_1000_steps(dtype, tol, forget, layers, heads):
    """The chunkwise parallel form against the step recurrence over 1,000 steps (16 chunks of 64,
    the last one partial), from a non-zero state: outputs, final and every step's state, each
    relative to its scale. Max errors measured over seeds 0-3 (of the unit, _gate_noise and x):
    float32, one head: 4.2e-7 (sigmoid), 1.9e-6 (2 layers), 1.3e-6 (exp); float64: <= 3.7e-15 with
    one head, <= 1.3e-12 with four. With four heads the official forget biases reach 6 (a ~400-step
    memory) and the float32 step recurrence's own rounding reaches 1.7e-5 (sigmoid) and 9.6e-4
    (exp, whose gates exceed 1 at times): float32 with four heads is checked against float64
    instead (test_mlstm_float32_long_memory_both_forms_near_float64)."""
    u = cells.build("xlstm_m", 5, 16, layers=layers, seed=0, dtype=dtype, forget=forget, heads=heads)
    _gate_noise(u, 0, 0.1)
    x = _x(1000, 3, 5, u.dtype, seed=10)
    _, warm = u(_x(30, 3, 5, u.dtype, seed=6))
    (y_p, st_p, all_p), (y_s, st_s, all_s) = _parallel_and_step(u, x, warm, tol)
    _assert_close_scaled(y_p, y_s, tol)
    for a, b in zip(all_p, all_s):
        _assert_close_scaled(a, b, tol)
    for a, b in zip(st_p, st_s):
        _assert_close_scaled(a, b, tol)


@pytest.mark.parametrize("chunk", [1, 7, 64, 1000])
def test_mlstm_chunk_sizes_float64(chunk):
    """Chunk sizes that do and do not divide T, down to 1 (the recurrence) and up to T (fully
    parallel), give the step form's outputs and states (float64, 4 heads, gates from the input)."""
    u = cells.build("xlstm_m", 4, 16, seed=1, dtype="float64", heads=4, chunk=chunk)
    _gate_noise(u, 1, 0.3)
    x = _x(1000, 2, 4, seed=8)
    (y_p, st_p, all_p), (y_s, st_s, all_s) = _parallel_and_step(u, x, None, 1e-10)
    _assert_close_scaled(y_p, y_s, 1e-10)
    for a, b in zip(all_p, all_s):
        _assert_close_scaled(a, b, 1e-10)


def test_mlstm_float32_long_memory_both_forms_near_float64():
    """With 4 heads the official forget biases reach 6 (f = 0.9975, a ~400-step memory). At init
    the gates are constant, and the float32 step recurrence multiplies by the same rounded f'
    every step: its relative error grows to about 400 * 2^-24. Both float32 forms stay within
    1e-4 of the float64 result (relative to the output scale) and the parallel form is the closer
    one. Measured over seeds 0-4: parallel 0.8e-6 to 4.4e-6, step 1.2e-5 to 2.7e-5 (seed 0: 1.0e-6,
    2.7e-5)."""
    u64 = cells.build("xlstm_m", 5, 16, seed=0, dtype="float64", heads=4)
    u32 = cells.build("xlstm_m", 5, 16, seed=0, dtype="float32", heads=4)
    u32.load_state_dict({k: v.float() for k, v in u64.state_dict().items()})
    x = torch.randn(1000, 3, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    with torch.no_grad():
        ref, _ = u64(x)
        y_p, _ = u32(x.float())
        u32.use_parallel = False
        y_s, _ = u32(x.float())
    scale = ref.abs().max().item()
    err_p = (y_p.double() - ref).abs().max().item() / scale
    err_s = (y_s.double() - ref).abs().max().item() / scale
    assert err_p < 1e-5 and err_s < 1e-4 and err_p < err_s


@pytest.mark.parametrize("name", NAMES)
def test_step_is_one_step_forward(name):
    u = cells.build(name, 3, 8, layers=2, seed=0, heads=2, dtype="float64")
    _randomize(u)
    x = _x(50, 2, 3)
    y, st = u(x)
    s = None
    for t in range(50):
        yt, s = u.step(x[t], s)
        torch.testing.assert_close(yt, y[t], rtol=1e-10, atol=1e-10)
    for a, b in zip(s, st):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


def test_mlstm_hand_written_step():
    """One step against the paper's equations written out (float64, 2 heads, non-zero state)."""
    H, NH, d, B, I = 6, 2, 3, 4, 5
    u = cells.build("xlstm_m", I, H, seed=0, dtype="float64", heads=NH)
    _randomize(u)
    g = torch.Generator().manual_seed(9)
    C0 = torch.randn(1, B, NH * d * d, generator=g, dtype=torch.float64)
    n0 = torch.randn(1, B, NH * d, generator=g, dtype=torch.float64)
    m0 = torch.randn(1, B, NH, generator=g, dtype=torch.float64)
    x = torch.randn(B, I, generator=g, dtype=torch.float64)
    y, (C1, n1, m1) = u.step(x, (C0, n0, m0))
    p = u.layer_params[0]
    xp = x @ p.W_x + p.b
    out = []
    for b in range(B):
        hb = []
        for h in range(NH):
            q = xp[b, h * d:(h + 1) * d]
            k = xp[b, H + h * d:H + (h + 1) * d] / math.sqrt(d)
            v = xp[b, 2 * H + h * d:2 * H + (h + 1) * d]
            it, ft = xp[b, 4 * H + h], xp[b, 4 * H + NH + h]
            logf = F.logsigmoid(ft)
            m = torch.maximum(logf + m0[0, b, h], it)
            i_s, f_s = torch.exp(it - m), torch.exp(logf + m0[0, b, h] - m)
            C = f_s * C0[0, b, h * d * d:(h + 1) * d * d].reshape(d, d) + i_s * torch.outer(v, k)
            n = f_s * n0[0, b, h * d:(h + 1) * d] + i_s * k
            hb.append(C @ q / torch.maximum((n @ q).abs(), torch.exp(-m)))
            torch.testing.assert_close(C1[0, b, h * d * d:(h + 1) * d * d], C.reshape(-1), rtol=1e-13, atol=1e-13)
            torch.testing.assert_close(n1[0, b, h * d:(h + 1) * d], n, rtol=1e-13, atol=1e-13)
            torch.testing.assert_close(m1[0, b, h], m, rtol=1e-13, atol=1e-13)
        out.append(torch.sigmoid(xp[b, 3 * H:4 * H]) * torch.cat(hb))
    torch.testing.assert_close(y, torch.stack(out), rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("name", NAMES)
def test_gradients_flow(name):
    u = cells.build(name, 3, 8, layers=2, seed=0, heads=2, recurrent_init="standard") if name == "xlstm_s" \
        else cells.build(name, 3, 8, layers=2, seed=0, heads=2, chunk=8)
    x = _x(30, 2, 3, torch.float32).requires_grad_(True)
    y, _ = u(x)
    y.square().sum().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for k, p in u.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), k


# ------------------------------------------------------------------------------------ official code
def test_mlstm_matches_official_xlstm_backends():
    backends = pytest.importorskip(
        "xlstm.blocks.mlstm.backends",
        reason="the official xlstm package is not installed (pip install xlstm --no-deps; only its "
               "pure-PyTorch backends are used)")
    H, NH, d, B, I, T = 8, 2, 4, 3, 5, 128
    u = cells.build("xlstm_m", I, H, seed=0, dtype="float64", heads=NH, chunk=32)
    _randomize(u, scale=0.3)
    x = _x(T, B, I, seed=10)
    y, (C, n, m), alls = u(x, return_all_states=True)
    p = u.layer_params[0]
    xp = x @ p.W_x + p.b                                               # [T, B, G]

    def heads(a):                                                      # [T, B, H] -> [B, NH, T, d]
        return a.reshape(T, B, NH, d).permute(1, 2, 0, 3)
    q, k, v = heads(xp[..., :H]), heads(xp[..., H:2 * H]), heads(xp[..., 2 * H:3 * H])
    o = torch.sigmoid(xp[..., 3 * H:4 * H])
    ig = xp[..., 4 * H:4 * H + NH].permute(1, 2, 0).unsqueeze(-1)      # [B, NH, T, 1]
    fg = xp[..., 4 * H + NH:].permute(1, 2, 0).unsqueeze(-1)
    h_par = backends.parallel_stabilized_simple(q, k, v, ig, fg, eps=0.0)        # k scaled inside
    y_ref = o * h_par.permute(2, 0, 1, 3).reshape(T, B, H)
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    # the official recurrent step from the same empty memory (m = -1e30): states C (k v^T layout),
    # n, m equal ours; from its own default m = 0 the outputs are the same
    c_st = torch.zeros(B, NH, d, d, dtype=torch.float64)
    n_st = torch.zeros(B, NH, d, 1, dtype=torch.float64)
    m_st = torch.full((B, NH, 1, 1), -1e30, dtype=torch.float64)
    st0 = (c_st.clone(), n_st.clone(), torch.zeros_like(m_st))
    for t in range(T):
        def args():   # fresh copies: the official step squeezes q, k, v in place
            return (q[:, :, t:t + 1].clone(), k[:, :, t:t + 1].clone(), v[:, :, t:t + 1].clone(),
                    ig[:, :, t:t + 1], fg[:, :, t:t + 1])
        h_t, (c_st, n_st, m_st) = backends.recurrent_step_stabilized_simple(c_st, n_st, m_st, *args(), eps=0.0)
        h0_t, st0 = backends.recurrent_step_stabilized_simple(*st0, *args(), eps=0.0)
        torch.testing.assert_close(y[t], o[t] * h_t.reshape(B, H), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(y[t], o[t] * h0_t.reshape(B, H), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(alls[0][t, 0].reshape(B, NH, d, d), c_st.transpose(-1, -2), rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(alls[1][t, 0].reshape(B, NH, d), n_st[..., 0], rtol=1e-10, atol=1e-10)
        torch.testing.assert_close(alls[2][t, 0], m_st[..., 0, 0], rtol=1e-10, atol=1e-10)
    # the official chunkwise form's final state (it scales q, not k, by 1/sqrt(d): its C and n
    # carry an extra factor sqrt(d))
    _, (C_o, n_o, m_o) = backends.chunkwise_simple(
        q, k, v, ig[..., 0], fg[..., 0], initial_C=torch.zeros(B, NH, d, d, dtype=torch.float64),
        initial_n=torch.zeros(B, NH, d, dtype=torch.float64), initial_m=torch.full((B, NH), -1e30, dtype=torch.float64),
        chunk_size=32, return_last_state=True, eps=0.0)
    torch.testing.assert_close(C[0].reshape(B, NH, d, d), C_o.transpose(-1, -2) / math.sqrt(d), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(n[0].reshape(B, NH, d), n_o / math.sqrt(d), rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(m[0], m_o.reshape(B, NH), rtol=1e-10, atol=1e-10)


def test_slstm_matches_official_xlstm_vanilla():
    vanilla = pytest.importorskip(
        "xlstm.blocks.slstm.src.vanilla",
        reason="the official xlstm package is not installed (pip install xlstm --no-deps; only its "
               "pure-PyTorch vanilla sLSTM is used)")
    H, NH, d, B, I, T = 8, 2, 4, 3, 5, 200
    u = cells.build("xlstm_s", I, H, seed=0, dtype="float64", heads=NH, recurrent_init="standard")
    _randomize(u, scale=0.5)
    x = _x(T, B, I, seed=11)
    y, st, alls = u(x, return_all_states=True)
    p = u.layer_params[0]
    Wx = x @ p.W_x                                                     # [T, B, 4H], gate-major
    R_int = p.R.transpose(1, 2).contiguous()                           # official vanilla: [NH, 4d, d]
    states0 = torch.zeros(4, B, H, dtype=torch.float64)
    states_all, last, _ = vanilla.slstm_forward(Wx, states0, R_int, p.b.detach(),
                                                vanilla.slstm_pointwise_function_registry["slstm"])
    torch.testing.assert_close(y, states_all[0, 1:], rtol=1e-12, atol=1e-12)
    for k in range(4):                                                  # h, c, n, m at every step
        torch.testing.assert_close(alls[k][:, 0], states_all[k, 1:], rtol=1e-12, atol=1e-12)
