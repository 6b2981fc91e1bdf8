"""The compiled step loops of the memory-augmented units (cells/_native.py ``mrnn_*``, ``mlstm_*``;
mrnnf and rnn2 through ``rnn_*``) against their Python step loop (cells/memory.py)."""

from __future__ import annotations

import pytest
import torch

from rnnmem import cells
from rnnmem.cells import _native

needs_native = pytest.mark.skipif(_native.library() is None, reason="no C compiler: compiled loops unavailable")
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}
COMPILED = ["mrnnf", "rnn2", "mrnn", "mlstmf", "mlstm"]


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


def _assert_same(fast, slow, tol):
    for a, b in zip((fast[0],) + fast[1] + fast[2], (slow[0],) + slow[1] + slow[2]):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=tol, rtol=0)


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("conv,seeds", [("torch", None), ("keras", None), ("torch", [4, 5])])
@pytest.mark.parametrize("cell", COMPILED)
def test_native_memory_matches_python_loop(cell, conv, seeds, dtype):
    """Outputs, final state and every per-step state (windows included) agree, two layers of
    different widths, a random starting state (filled windows), 1,100 steps (two projection
    chunks of 1,024: d, h, m and the ring of past cells must carry across the boundary)."""
    opts = {"output_size": 6} if cell in ("mrnnf", "rnn2", "mrnn") else {}
    unit = cells.build(cell, 3, 7, layers=2, convention=conv, dtype=dtype, K=9, seed=None if seeds else 2,
                       seeds=seeds, **opts)
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
@pytest.mark.parametrize("cell", ["mrnn", "mlstm"])
def test_native_memory_state_continues(cell):
    """Two calls carrying the state compute what one call over both halves computes."""
    unit = cells.build(cell, 2, 5, K=20, seed=0)
    x = torch.randn(90, 2, 2, generator=torch.Generator().manual_seed(5))
    with torch.inference_mode():
        y, st = unit(x)
        y1, st1 = unit(x[:37])
        y2, st2 = unit(x[37:], st1)
    torch.testing.assert_close(torch.cat([y1, y2]), y, atol=1e-6, rtol=0)
    for a, b in zip(st2, st):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=0)


@pytest.mark.parametrize("cell", ["mrnn", "mlstm", "mrnnf"])
def test_memory_python_loop_when_gradients_are_needed(cell, monkeypatch):
    """With autograd recording and parameters requiring grad the Python loop runs (gradients flow)."""
    unit = cells.build(cell, 2, 4, K=5, seed=0)
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
    """The forgetting probe runs mlstm / mrnn on the compiled loop and says so; rwa (no compiled
    loop) says python; the crossing steps equal the Python loop's."""
    from rnnmem.probes.forgetting import forgetting

    for cell in ("mlstm", "mrnn"):
        unit = cells.build(cell, 3, 6, K=10, seeds=[0, 1])
        fast = forgetting(unit, T=600, P=50)
        assert fast.notes["kernel"] == "compiled"
        unit.use_native = False
        slow = forgetting(unit, T=600, P=50)
        assert slow.notes["kernel"] == "python"
        cols = ["steps_0.0001", "steps_0.01"]  # exact / 1e-6 crossings depend on the rounding
        assert fast.table[cols].equals(slow.table[cols]), (cell, fast.table[cols], slow.table[cols])
    rwa = cells.build("rwa", 3, 6, seeds=[0, 1])
    assert forgetting(rwa, T=300, P=50).notes["kernel"] == "python"
