"""The compiled step loops (cells/_native.py) against the Python step loop, and their fallbacks."""

from __future__ import annotations

import pytest
import torch

from rnnmem import cells
from rnnmem.cells import _native

needs_native = pytest.mark.skipif(_native.library() is None, reason="no C compiler: compiled loops unavailable")

CASES = [
    ("lstm", "keras", {}),
    ("lstm", "tf1", {}),
    ("lstm", "keras2", {}),
    ("gru", "keras", {}),
    ("gru", "tf1", {}),
    ("gru", "keras2", {}),
    ("gru", "torch", {}),
    ("rnn", "torch", {}),
    ("rnn", "torch", {"nonlinearity": "relu"}),
]
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}


def _pair(cell, conv, opts, dtype, **kw):
    unit = cells.build(cell, 5, 12, convention=conv, dtype=dtype, seed=3, **opts, **kw)
    unit.use_fused = False  # the loop, native or Python
    return unit


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("cell,conv,opts", CASES)
def test_native_matches_python_loop(cell, conv, opts, dtype):
    """Same outputs, final state and per-step states (two layers, a given state, 300 steps in
    chunks of 64)."""
    unit = _pair(cell, conv, opts, dtype, layers=2)
    x = torch.randn(300, 3, 5, generator=torch.Generator().manual_seed(0), dtype=dtype)
    st0 = tuple(0.3 * torch.randn(s.shape, generator=torch.Generator().manual_seed(1), dtype=dtype)
                for s in unit.init_state(3))
    calls = []
    orig = cells.gated._native_run

    def spy(*a, **k):  # small chunks: the state must carry across chunk boundaries (300 = 4 * 64 + 44)
        calls.append(a[0])
        return orig(*a, **{**k, "chunk": 64})

    with torch.inference_mode():
        cells.gated._native_run = spy
        try:
            fast = unit(x, st0, return_all_states=True)
        finally:
            cells.gated._native_run = orig
        unit.use_native = False
        slow = unit(x, st0, return_all_states=True)
    assert calls == [cell, cell]  # both layers ran compiled
    assert fast[0].shape == slow[0].shape
    torch.testing.assert_close(fast[0], slow[0], atol=TOL[dtype], rtol=0)
    for a, b in zip(fast[1] + fast[2], slow[1] + slow[2]):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=TOL[dtype], rtol=0)


@needs_native
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_native_ensemble_matches_members(cell):
    """An ensemble on the compiled loop computes what each member computes alone (Python loop)."""
    conv = "keras" if cell != "rnn" else "torch"
    ens = cells.build(cell, 4, 8, convention=conv, seeds=[5, 6, 7])
    x = torch.randn(100, 3, 2, 4, generator=torch.Generator().manual_seed(2))
    with torch.inference_mode():
        y, st = ens(x)
        for e, s in enumerate([5, 6, 7]):
            one = cells.build(cell, 4, 8, convention=conv, seed=s)
            one.use_fused = one.use_native = False
            y1, st1 = one(x[:, e])
            torch.testing.assert_close(y[:, e], y1, atol=1e-5, rtol=0)
            for a, b in zip(st, st1):
                torch.testing.assert_close(a[:, e], b, atol=1e-5, rtol=0)


def test_python_loop_when_gradients_are_needed(monkeypatch):
    """With autograd recording and parameters requiring grad the Python loop runs (gradients flow)."""
    unit = cells.build("lstm", 3, 6, convention="keras", seed=0)
    monkeypatch.setattr(cells.gated, "_native_run", lambda *a, **k: pytest.fail("compiled loop used under autograd"))
    y, _ = unit(torch.randn(20, 2, 3))
    y.sum().backward()
    assert unit.layer_params[0].W_h.grad is not None


def test_instance_patched_stepper_keeps_python_loop(monkeypatch):
    """A stepper patched on the instance (muccino_explain.emulate_float16) must run, not be bypassed."""
    unit = cells.build("gru", 3, 6, convention="keras", seed=0)
    seen = []
    orig = unit._layer_stepper

    def stepper(layer, inputs):
        seen.append(layer)
        return orig(layer, inputs)

    unit._layer_stepper = stepper
    with torch.inference_mode():
        unit(torch.randn(10, 2, 3))
    assert seen == [0]


def test_failed_build_falls_back_to_python_loop(monkeypatch, tmp_path):
    """A compiler that fails leaves library() None and the units compute with the Python loop."""
    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setenv("RNNMEM_CACHE", str(tmp_path))
    monkeypatch.setenv("CC", "false")  # /bin/false: exits 1
    assert _native.library() is None
    unit = cells.build("lstm", 3, 6, convention="keras", seed=0)
    ref = cells.build("lstm", 3, 6, convention="keras", seed=0)
    ref.use_native = False
    x = torch.randn(30, 2, 3)
    with torch.inference_mode():
        torch.testing.assert_close(unit(x)[0], ref(x)[0], atol=0, rtol=0)


def test_disabled_by_environment(monkeypatch):
    monkeypatch.setattr(_native, "_state", {})
    monkeypatch.setenv("RNNMEM_NATIVE", "0")
    assert _native.library() is None


@needs_native
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("conv,seeds", [("keras", None), ("tf1", None), ("torch", None), ("keras", [4, 5])])
def test_native_nlstm_matches_python_loop(conv, seeds, dtype, monkeypatch):
    """Nested LSTM (depth 3, two layers) compiled vs Python loop, ensembles included, 1,100 steps
    (two projection chunks of 1,024)."""
    unit = cells.build("nlstm", 5, 12, layers=2, convention=conv, dtype=dtype, depth=3,
                       seed=None if seeds else 3, seeds=seeds)
    ran = []
    orig = type(unit)._native_layer

    def counting(self, *a, **k):
        out = orig(self, *a, **k)
        ran.append(out is not None)
        return out

    monkeypatch.setattr(type(unit), "_native_layer", counting)
    shape = (1100,) + ((len(seeds),) if seeds else ()) + (3, 5)
    x = torch.randn(shape, generator=torch.Generator().manual_seed(0), dtype=dtype)
    with torch.inference_mode():
        fast = unit(x, return_all_states=True)
        unit.use_native = False
        slow = unit(x, return_all_states=True)
    assert ran == [True, True]
    for a, b in zip((fast[0],) + fast[1] + fast[2], (slow[0],) + slow[1] + slow[2]):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=TOL[dtype], rtol=0)


@needs_native
def test_forgetting_records_which_kernel_ran():
    """Results at exact tolerance depend on the arithmetic, so the probe says which path computed
    them: the compiled loop, the Python loop, or torch's fused kernel."""
    from rnnmem.probes.forgetting import forgetting

    unit = cells.build("lstm", 4, 8, convention="keras", seeds=[0, 1])
    assert forgetting(unit, T=400, P=50).notes["kernel"] == "compiled"
    unit.use_native = False
    assert forgetting(unit, T=400, P=50).notes["kernel"] == "python"
    fused = cells.build("lstm", 4, 8, convention="torch", seed=0)
    with torch.no_grad():
        fused(torch.randn(20, 2, 4))
    assert fused.last_path == "fused"  # a plain forward of an exact torch configuration


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_ensembles_of_pairs_run_compiled_beyond_the_single_unit_limit(cell):
    # 10 members x 2 rows x H = 128: above native_max_work in total, within the per-member limit for
    # ensembles with <= 2 rows per member; 8 rows per member keep the Python loop (BLAS is faster)
    if _native.library() is None:
        pytest.skip("no C compiler: the compiled loops are not built here")
    unit = cells.build(cell, 4, 128, convention="keras", seeds=list(range(10)))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(40, 10, 2, 4, generator=gen)
    with torch.inference_mode():
        fast, _ = unit(x)
        assert unit.last_path == "compiled"
        unit(torch.randn(5, 10, 8, 4, generator=gen))
        assert unit.last_path == "python"
        unit.use_native = False
        slow, _ = unit(x)
    torch.testing.assert_close(fast, slow, atol=1e-5, rtol=0)
