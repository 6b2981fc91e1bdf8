"""The compiled step loops of the memory-augmented units (cells/_native.py ``mrnn_*``, ``mlstm_*``,
``rwa_*``; mrnnf and rnn2 through ``rnn_*``) against their Python step loop (cells/memory.py)."""

from __future__ import annotations

import pytest
import torch

from rnnmem import cells
from rnnmem.cells import _native

needs_native = pytest.mark.skipif(_native.library() is None, reason="no C compiler: compiled loops unavailable")
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
COMPILED = ["mrnnf", "rnn2", "mrnn", "mlstmf", "mlstm", "rwa"]


def _k(cell, K):
    """The filter-length option (rwa has none: its average runs over the whole past)."""
    return {} if cell == "rwa" else {"K": K}


def _run_both(unit, x, st0):
    """(compiled result, its path, Python-loop result, its path), every state at every step kept."""
    with torch.inference_mode():
        fast = unit(x, st0, return_all_states=True)
        fast_path = unit.last_path
        unit.use_native = False
        slow = unit(x, st0, return_all_states=True)
        slow_path = unit.last_path
        unit.use_native = True
    return fast, fast_path, slow, slow_path


def _assert_same(fast, slow, tol, rtol=0.0):
    for a, b in zip((fast[0],) + fast[1] + fast[2], (slow[0],) + slow[1] + slow[2]):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=tol, rtol=rtol)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("conv,seeds", [("torch", None), ("keras", None), ("torch", [4, 5])])
@pytest.mark.parametrize("cell", COMPILED)
def test_native_memory_matches_python_loop(cell, conv, seeds, dtype):
    """Outputs, final state and every per-step state (windows included) agree, two layers of
    different widths, a random starting state (filled windows), 1,100 steps (two projection
    chunks of 1,024: d, h, m and the ring of past cells must carry across the boundary)."""
    opts = {"output_size": 6} if cell in ("mrnnf", "rnn2", "mrnn") else {}
    unit = cells.build(cell, 3, 7, layers=2, convention=conv, dtype=dtype, seed=None if seeds else 2,
                       seeds=seeds, **opts, **_k(cell, 9))
    lead = (len(seeds),) if seeds else ()
    x = torch.randn((1100,) + lead + (4, 3), generator=torch.Generator().manual_seed(0), dtype=dtype)
    gen = torch.Generator().manual_seed(1)
    st0 = tuple(0.3 * torch.randn(s.shape, generator=gen, dtype=dtype) for s in unit.init_state(4))
    fast, fast_path, slow, slow_path = _run_both(unit, x, st0)
    assert (fast_path, slow_path) == ("compiled", "python")
    _assert_same(fast, slow, TOL[dtype])


@needs_native
@pytest.mark.parametrize("cell", ["mrnn", "mlstm", "mlstmf"])
@pytest.mark.parametrize("K", [1, 100])
def test_native_memory_filter_lengths(cell, K):
    """K = 1 (a one-slot window) and the default K = 100 (the ring wraps many times in 300 steps)."""
    unit = cells.build(cell, 2, 5, K=K, dtype=torch.float64, seed=0)
    x = torch.randn(300, 3, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    gen = torch.Generator().manual_seed(4)
    st0 = tuple(0.3 * torch.randn(s.shape, generator=gen, dtype=torch.float64) for s in unit.init_state(3))
    fast, fast_path, slow, _ = _run_both(unit, x, st0)
    assert fast_path == "compiled"
    _assert_same(fast, slow, TOL[torch.float64])


@needs_native
@pytest.mark.parametrize("cell", ["mrnn", "mlstm", "rwa"])
def test_native_memory_state_continues(cell):
    """Two calls carrying the state compute what one call over both halves computes."""
    unit = cells.build(cell, 2, 5, seed=0, **_k(cell, 20))
    x = torch.randn(90, 2, 2, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        y, st = unit(x)
        y1, st1 = unit(x[:37])
        y2, st2 = unit(x[37:], st1)
    torch.testing.assert_close(torch.cat([y1, y2]), y, atol=1e-6, rtol=0)
    for a, b in zip(st2, st):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["mrnn", "mlstm", "mrnnf", "rwa"])
def test_memory_python_loop_when_gradients_are_needed(cell, monkeypatch):
    """With autograd recording and parameters requiring grad the Python loop runs (gradients flow)."""
    unit = cells.build(cell, 2, 4, seed=0, **_k(cell, 5))
    monkeypatch.setattr(type(unit), "_native_layer", lambda *a, **k: pytest.fail("compiled loop used under autograd"))
    y, _ = unit(torch.randn(12, 2, 2))
    assert unit.last_path == "python"
    y.sum().backward()
    assert unit.layer_params[0].W_h.grad is not None


@needs_native
def test_memory_patched_run_layer_keeps_python_loop():
    """A ``_run_layer`` patched on the instance runs (the compiled loop does not bypass it)."""
    unit = cells.build("mlstm", 2, 4, K=5, seed=0)
    seen = []
    orig = unit._run_layer

    def run_layer(layer, *a):
        seen.append(layer)
        return orig(layer, *a)

    unit._run_layer = run_layer
    with torch.inference_mode():
        unit(torch.randn(10, 2, 2))
    assert seen == [0] and unit.last_path == "python"


@needs_native
def test_forgetting_on_memory_units_records_the_compiled_loop():
    """The forgetting probe runs mlstm / mrnn / rwa on the compiled loop and says so; the crossing
    steps equal the Python loop's."""
    from rnnmem.probes.forgetting import forgetting

    for cell in ("mlstm", "mrnn", "rwa"):
        unit = cells.build(cell, 3, 6, seeds=[0, 1], **_k(cell, 10))
        fast = forgetting(unit, T=600, P=50)
        assert fast.notes["kernel"] == "compiled"
        unit.use_native = False
        slow = forgetting(unit, T=600, P=50)
        assert slow.notes["kernel"] == "python"
        cols = ["steps_0.0001", "steps_0.01"]  # exact / 1e-6 crossings depend on the rounding
        assert fast.table[cols].equals(slow.table[cols]), (cell, fast.table[cols], slow.table[cols])


def _rwa_running_max(unit, x, layer=0):
    """Layer ``layer`` of rwa in the paper's running-maximum form (Ostmeyer & Cowell 2017, their
    numerically stable update), float64, from the unit's initial state: n, d rescaled by
    exp(a_max - a_new) at every step, h_t = tanh(n_t / d_t). x: [T, B, I_l]; returns [T, B, H]."""
    p = unit.layer_params[layer]
    H = unit.hidden_size
    W_x, W_h, b = (v.detach().double() for v in (p.W_x, p.W_h, p.b))
    h = torch.tanh(p.s.detach().double()).expand(x.shape[1], H)
    n = torch.zeros(x.shape[1], H, dtype=torch.float64)
    d = torch.zeros_like(n)
    a_max = torch.full_like(n, -1e300)
    out = []
    for t in range(x.shape[0]):
        u = x[t] @ W_x[:, :H] + b[:H]
        g = x[t] @ W_x[:, H:2 * H] + h @ W_h[:, :H] + b[H:]
        a = x[t] @ W_x[:, 2 * H:] + h @ W_h[:, H:]
        a_new = torch.maximum(a_max, a)
        n = n * torch.exp(a_max - a_new) + u * torch.tanh(g) * torch.exp(a - a_new)
        d = d * torch.exp(a_max - a_new) + torch.exp(a - a_new)
        a_max = a_new
        h = torch.tanh(n / d)
        out.append(h)
    return torch.stack(out)


def _flat(res):
    return (res[0],) + res[1] + res[2]


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("scale", [1.0, 40.0])
def test_native_rwa_from_its_initial_state_matches_running_maximum_form(dtype, scale):
    """From rwa's own initial state (h_0 = tanh(s), r_0 = 0, l_0 = -1e30, i.e. d_0 = 0), three
    layers, 600 steps, compiled loop against the Python loop.

    ``scale`` 40 drives the attention logits a_t to |a| of order 100, where e^a overflows float32
    (e^88.7) and the naive n / d would be inf / inf; there r (an average of u tanh(g), |u| ~ 100)
    and l = log d reach ~100 as well, and float32's own rounding (ulp 7.6e-6 at 100, inside
    exp(a - l), times |z - r| ~ 100) moves the states by ~1e-4 on either loop. So at that scale the
    test asks that the compiled loop be no farther from the exact result (the Python loop in
    float64 with the same weights) than 4x the Python float32 loop's own distance (+ 1e-5); at
    scale 1, and in float64, the loops agree within TOL. Layer 0's float64 outputs equal the
    paper's running-maximum form."""
    unit = cells.build("rwa", 3, 6, layers=3, dtype=dtype, seed=7)
    x = scale * torch.randn(600, 2, 3, generator=torch.Generator().manual_seed(8), dtype=dtype)
    with torch.no_grad():
        a0 = x.double() @ unit.layer_params[0].W_x.double()[:, 12:]
    fast, fast_path, slow, slow_path = _run_both(unit, x, unit.init_state(2))
    assert (fast_path, slow_path) == ("compiled", "python")
    assert all(torch.isfinite(s).all() for s in _flat(fast))
    if scale > 1:
        assert a0.abs().max() > 89.0 and fast[2][2].abs().max() > 80.0  # the regime announced
    if scale == 1 or dtype == torch.float64:
        _assert_same(fast, slow, TOL[dtype], rtol=TOL[dtype])
    else:
        exact_unit = cells.build("rwa", 3, 6, layers=3, dtype=torch.float64, seed=7)
        with torch.no_grad():
            for q, v in zip(exact_unit.parameters(), unit.parameters()):
                q.copy_(v.double())
        exact_unit.use_native = False
        with torch.inference_mode():
            exact = exact_unit(x.double(), tuple(s.double() for s in unit.init_state(2)), return_all_states=True)
        assert exact_unit.last_path == "python"
        for f, sl, ex in zip(_flat(fast), _flat(slow), _flat(exact)):
            err_fast = (f.double() - ex).abs().max().item()
            err_slow = (sl.double() - ex).abs().max().item()
            assert err_fast <= 4 * err_slow + TOL[dtype], (err_fast, err_slow)
    if dtype == torch.float64:
        ref = _rwa_running_max(unit, x)   # states [T, layers, B, H]: layer 0's h at every step
        torch.testing.assert_close(fast[2][0][:, 0], ref, atol=1e-12, rtol=0)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_native_rwa_log_zero_and_minus_infinity_start_alike(dtype):
    """l_0 = -inf (d_0 = 0 exactly; torch's logaddexp(-inf, a) = a) gives what l_0 = -1e30 gives,
    on the compiled loop and on the Python loop."""
    unit = cells.build("rwa", 2, 5, dtype=dtype, seeds=[3, 4])
    x = torch.randn(50, 2, 3, 2, generator=torch.Generator().manual_seed(9), dtype=dtype)
    h0, r0, l0 = unit.init_state(3)
    fast, _, slow, _ = _run_both(unit, x, (h0, r0, torch.full_like(l0, float("-inf"))))
    ref, _, _, _ = _run_both(unit, x, (h0, r0, l0))
    _assert_same(fast, slow, TOL[dtype])
    _assert_same(fast, ref, TOL[dtype])
