"""The ``mamba`` unit (Gu & Dao 2023): shapes, ensembles, step == scan, init, and mambapy's block."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F  # noqa: N812

from rnnmem import cells
from rnnmem.cells import _native
from rnnmem.cells.mamba import DT_INIT_FLOOR, DT_MAX, DT_MIN, chunk_scan
from rnnmem.errors import ConfigError, InputError


def _random_state(unit, batch, gen, scale=0.5):
    return tuple(scale * torch.randn(s.shape, generator=gen, dtype=s.dtype) for s in unit.init_state(batch))


def _step_loop(unit, x, state):
    ys = []
    for t in range(x.shape[0]):
        y, state = unit.step(x[t], state)
        ys.append(y)
    return torch.stack(ys), state


def test_registered_and_shapes():
    assert "mamba" in cells.list_units()
    unit = cells.build("mamba", 5, 12, seed=0, state_size=4, expand=3, d_conv=3)
    y, (conv, ssm) = unit(torch.randn(7, 2, 5))
    di = 3 * 12
    assert y.shape == (7, 2, 12)
    assert conv.shape == (1, 2, di * 2) and ssm.shape == (1, 2, di * 4)
    assert unit.dt_rank == math.ceil(12 / 16) == 1
    assert cells.build("mamba", 5, 40, seed=0).dt_rank == 3
    assert cells.build("mamba", 5, 40, seed=0, dt_rank=7).dt_rank == 7
    assert "scan" in unit.capabilities()
    assert unit.state_size() == di * 2 + di * 4            # the protocol's flat length (method kept)
    z = unit.state_vector((conv, ssm))
    back = unit.state_from_vector(z)
    assert all(torch.equal(a, b) for a, b in zip(back, (conv, ssm)))


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-10)])
@pytest.mark.parametrize("layers", [1, 2])
@pytest.mark.parametrize("native", [False, True])
def test_step_equals_scan_over_1000_steps(dtype, tol, layers, native):
    """Both sequence forms without gradient, the torch scan (``use_native = False``) and the
    compiled loops, equal the step loop; observed max differences: float32 about 1e-7 (outputs)
    and 1e-6 (states), float64 about 1e-15."""
    if native and _native.library() is None:
        pytest.skip("no C compiler: compiled loops unavailable")
    gen = torch.Generator().manual_seed(1)
    unit = cells.build("mamba", 3, 16, layers=layers, dtype=dtype, seed=2, state_size=8)
    unit.use_native = native
    unit.scan_chunk_elements = 2**15      # 64-step chunks of 8 x 8 blocks, the last one 40 steps (6 x 6 + 4)
    unit.compiled_block_elements = 7 * 2 * 32  # compiled path: blocks of 7 steps, the last one 6
    x = torch.randn(1000, 2, 3, generator=gen, dtype=unit.dtype)
    s0 = _random_state(unit, 2, gen)
    with torch.no_grad():
        y_scan, st_scan, seq = unit(x, s0, return_all_states=True)
        assert unit.last_path == ("compiled" if native else "scan")
        y_fast, st_fast = unit(x, s0)                       # the no-gradient buffers path
        y_step, st_step = _step_loop(unit, x, s0)
    assert y_scan.dtype == unit.dtype
    assert (y_scan - y_step).abs().max() < tol
    assert (y_fast - y_step).abs().max() < tol
    for a, b, c in zip(st_scan, st_step, st_fast):
        assert (a - b).abs().max() < tol and (c - b).abs().max() < tol
    # every step's state, as the step loop gives it
    unit.use_scan = False
    with torch.no_grad():
        y_loop, _, seq_loop = unit(x, s0, return_all_states=True)
    assert unit.last_path == "python"
    assert (y_loop - y_step).abs().max() < tol
    for a, b in zip(seq, seq_loop):
        assert a.shape == (1000, layers, 2, b.shape[-1]) and (a - b).abs().max() < tol


@pytest.mark.skipif(_native.library() is None, reason="no C compiler: compiled loops unavailable")
@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-10)])
@pytest.mark.parametrize("steps", [1, 2, 3, 5, 64])
def test_compiled_blocks_window_and_state(dtype, tol, steps):
    """The compiled path in blocks of any length (shorter than the conv window d_conv - 1 = 2 too),
    an ensemble, state_size 1 and a random initial state: the step loop's outputs, final and
    per-step states; the caller's state is left alone."""
    gen = torch.Generator().manual_seed(8)
    unit = cells.build("mamba", 3, 8, layers=2, dtype=dtype, seeds=[1, 4], state_size=1, d_conv=3)
    di = unit.d_inner
    unit.compiled_block_elements = steps * 2 * 3 * di          # rows = E B = 6
    x = torch.randn(41, 2, 3, 3, generator=gen, dtype=unit.dtype)
    s0 = _random_state(unit, 3, gen)
    keep = tuple(s.clone() for s in s0)
    with torch.no_grad():
        y, st, seq = unit(x, s0, return_all_states=True)
        assert unit.last_path == "compiled"
        y2, st2 = unit(x, s0)
        y_step, st_step = _step_loop(unit, x, s0)
        unit.use_scan = False
        _, _, seq_loop = unit(x, s0, return_all_states=True)
    assert all(torch.equal(a, b) for a, b in zip(s0, keep))
    assert (y - y_step).abs().max() < tol and torch.equal(y, y2)
    for a, b, c in zip(st, st2, st_step):
        assert torch.equal(a, b) and (a - c).abs().max() < tol
    for a, b in zip(seq, seq_loop):
        assert a.shape == b.shape and (a - b).abs().max() < tol


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-10)])
def test_torch_scan_runs_when_compiled_loops_may_not(dtype, tol, monkeypatch):
    """RNNMEM_NATIVE=0, ``use_native = False``, a gradient to compute, or ``python_loop()`` (torch.func
    transforms): the torch scan runs, with the step loop's numbers (T = 1,000)."""
    from rnnmem.cells.base import python_loop

    gen = torch.Generator().manual_seed(9)
    unit = cells.build("mamba", 3, 8, dtype=dtype, seed=3, state_size=4)
    x = torch.randn(1000, 2, 3, generator=gen, dtype=unit.dtype)
    s0 = _random_state(unit, 2, gen)
    with torch.no_grad():
        y_step, st_step = _step_loop(unit, x, s0)

    def check(y, st):
        assert unit.last_path == "scan"
        assert (y - y_step).abs().max() < tol
        assert all((a - b).abs().max() < tol for a, b in zip(st, st_step))

    y, st = unit(x, s0)                                   # parameters require a gradient
    assert y.requires_grad
    check(y.detach(), tuple(s.detach() for s in st))
    with torch.no_grad(), python_loop():
        check(*unit(x, s0))
    unit.use_native = False
    with torch.no_grad():
        check(*unit(x, s0))
    unit.use_native = True
    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setenv("RNNMEM_NATIVE", "0")
    with torch.no_grad():
        check(*unit(x, s0))


def test_gradients_of_scan_equal_step_loop():
    gen = torch.Generator().manual_seed(3)
    unit = cells.build("mamba", 3, 8, layers=2, dtype="float64", seed=4, state_size=4)
    unit.scan_chunk_elements = 2**10
    x = torch.randn(200, 2, 3, generator=gen, dtype=torch.float64, requires_grad=True)
    s0 = tuple(s.requires_grad_() for s in _random_state(unit, 2, gen))
    grads = []
    for use_scan in (True, False):
        unit.use_scan = use_scan
        unit.zero_grad()
        y, st = unit(x, s0)
        (y.square().sum() + sum(s.sum() for s in st)).backward()
        grads.append([x.grad.clone(), *(s.grad.clone() for s in s0), *(p.grad.clone() for p in unit.parameters())])
        x.grad = None
        for s in s0:
            s.grad = None
    for a, b in zip(*grads):
        assert (a - b).abs().max() < 1e-10 * (1 + b.abs().max())


def test_chunk_scan_matches_loop_with_underflow():
    gen = torch.Generator().manual_seed(5)
    for c in (1, 3, 9, 50, 101):
        a = torch.rand(c, 3, 4, generator=gen, dtype=torch.float64)
        a[c // 2] = 0.0                              # a decay that underflowed: exact zero
        a[:, 0, 0] = 1e-200                          # products underflow to 0
        b = torch.randn(c, 3, 4, generator=gen, dtype=torch.float64)
        h0 = torch.randn(3, 4, generator=gen, dtype=torch.float64)
        want, h = [], h0
        for t in range(c):
            h = a[t] * h + b[t]
            want.append(h)
        want = torch.stack(want)
        got = chunk_scan(a, b, h0)
        assert torch.isfinite(got).all() and (got - want).abs().max() < 1e-12
        with torch.no_grad():                       # the states written over b itself
            bb = b.clone()
            got_inplace = chunk_scan(a, bb, h0, out=bb)
        assert got_inplace.data_ptr() == bb.data_ptr() and (got_inplace - want).abs().max() < 1e-12


def test_ensemble_member_equals_single_seed():
    gen = torch.Generator().manual_seed(6)
    ens = cells.build("mamba", 4, 8, layers=2, seeds=[3, 7], state_size=4)
    one = cells.build("mamba", 4, 8, layers=2, seed=7, state_size=4)
    x = torch.randn(30, 2, 3, 4, generator=gen)
    s0 = _random_state(ens, 3, gen)
    with torch.no_grad():
        y, st = ens(x, s0)
        y1, st1 = one(x[:, 1], tuple(s[:, 1] for s in s0))
        ys, sts = _step_loop(ens, x, s0)
    assert y.shape == (30, 2, 3, 8) and st[0].shape == (2, 2, 3, 16 * 3)
    assert (y[:, 1] - y1).abs().max() < 1e-6
    assert all((a[:, 1] - b).abs().max() < 1e-6 for a, b in zip(st, st1))
    assert (ys - y).abs().max() < 1e-5


def test_reference_initialisation():
    H, N, I = 64, 16, 5
    unit = cells.build("mamba", I, H, seed=0, state_size=N)
    p = unit.layer_params[0]
    di, R, K = 2 * H, math.ceil(H / 16), 4
    assert torch.equal(p.A_log, torch.log(torch.arange(1, N + 1, dtype=torch.float32)).repeat(di, 1))
    assert torch.equal(p.D, torch.ones(di))
    dt = F.softplus(p.b_dt.double())
    assert dt.min() >= max(DT_MIN, DT_INIT_FLOOR) * (1 - 1e-5) and dt.max() <= DT_MAX * (1 + 1e-5)
    # log-uniform over two decades: the 128 channels spread over both (not uniform on [1e-3, 1e-1],
    # whose median would be 0.05)
    assert dt.min() < 2e-3 and dt.max() > 5e-2 and 3e-3 < dt.median() < 3e-2
    assert p.W_dt.shape == (R, di) and p.W_dt.abs().max() <= R ** -0.5
    assert p.W_x.shape == (I, 2 * di) and p.W_x.abs().max() <= 1 / math.sqrt(I)
    assert p.W_conv.shape == (di, K) and p.W_conv.abs().max() <= 1 / math.sqrt(K)
    assert p.b_conv.abs().max() <= 1 / math.sqrt(K)
    assert p.W_xp.shape == (di, R + 2 * N) and p.W_xp.abs().max() <= 1 / math.sqrt(di)
    assert p.W_out.shape == (di, H) and p.W_out.abs().max() <= 1 / math.sqrt(di)
    # the same seed gives the same weights; another seed other ones
    again = cells.build("mamba", I, H, seed=0, state_size=N).layer_params[0]
    assert torch.equal(again.b_dt, p.b_dt) and torch.equal(again.W_x, p.W_x)
    assert not torch.equal(cells.build("mamba", I, H, seed=1).layer_params[0].W_x, p.W_x)


def test_float64_and_describe_json():
    unit = cells.build("mamba", 3, 8, layers=2, dtype="float64", seed=0)
    assert all(p.dtype == torch.float64 for p in unit.parameters())
    y, st = unit(torch.randn(5, 2, 3))
    assert y.dtype == torch.float64 and all(s.dtype == torch.float64 for s in st)
    d = json.loads(json.dumps(unit.describe()))
    assert d["cell"] == "mamba" and d["state_size"] == 16 and d["d_conv"] == 4 and d["expand"] == 2
    assert d["dt_rank"] == 1 and d["d_inner"] == 16 and d["layers"] == 2


def test_bad_options_and_inputs():
    for kw, word in [({"state_size": 0}, "state_size"), ({"d_conv": 1}, "d_conv"), ({"expand": 1.5}, "expand"),
                     ({"dt_rank": "big"}, "dt_rank"), ({"K": 3}, "K")]:
        with pytest.raises(ConfigError, match=word):
            cells.build("mamba", 3, 8, **kw)
    with pytest.raises(ConfigError, match="convention"):
        cells.build("mamba", 3, 8, convention="keras")
    with pytest.raises(ConfigError, match="convention"):
        cells.build("mamba", 3, 8, gate_activation="hard_sigmoid")
    unit = cells.build("mamba", 3, 8, seed=0)
    with pytest.raises(InputError, match="state component 'ssm'"):
        unit(torch.randn(4, 2, 3), (unit.init_state(2)[0], torch.zeros(1, 2, 8)))
    with pytest.raises(InputError, match="input width"):
        unit.step(torch.randn(2, 4), None)


def test_matches_mambapy_block_with_the_same_weights():
    mp = pytest.importorskip("mambapy.mamba", reason="mambapy is not installed (pip install 'rnnmem[mambapy]')")
    torch.manual_seed(0)
    H, N = 16, 8
    blk = mp.MambaBlock(mp.MambaConfig(d_model=H, n_layers=1, d_state=N, d_conv=4, expand_factor=2))
    unit = cells.build("mamba", H, H, seed=0, state_size=N)
    p = unit.layer_params[0]
    with torch.no_grad():
        p.W_x.copy_(blk.in_proj.weight.T)
        p.W_conv.copy_(blk.conv1d.weight[:, 0, :])
        p.b_conv.copy_(blk.conv1d.bias)
        p.W_xp.copy_(blk.x_proj.weight.T)
        p.W_dt.copy_(blk.dt_proj.weight.T)
        p.b_dt.copy_(blk.dt_proj.bias)
        p.A_log.copy_(blk.A_log)
        p.D.copy_(blk.D)
        p.W_out.copy_(blk.out_proj.weight.T)
        x = torch.randn(3, 300, H)
        ref = blk(x)                                         # mambapy's parallel scan
        y, (conv, ssm) = unit(x.transpose(0, 1))
        cache = (None, torch.zeros(3, 2 * H, 3))
        for t in range(300):
            _, cache = blk.step(x[:, t], cache)
    assert (y.transpose(0, 1) - ref).abs().max() < 1e-5
    # the same state layout: h [d_inner, N] and the conv window [d_inner, K-1], flattened
    assert (ssm[0] - cache[0].reshape(3, -1)).abs().max() < 1e-5
    assert (conv[0] - cache[1].reshape(3, -1)).abs().max() < 1e-6
