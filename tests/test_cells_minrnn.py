"""minGRU and minLSTM (Feng et al. 2024): shapes, ensembles, dtypes, stacked layers, the scans
against the step loop over 1,000 steps, one step by hand, bad options, negative initial states."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rnnmem import cells
from rnnmem.cells.base import python_loop
from rnnmem.cells.minrnn import g, log_g, scan_blocked, scan_log
from rnnmem.errors import ConfigError, InputError

UNITS = ("mingru", "minlstm")
SCANS = ("blocked", "log")


def _x(T, *lead, I=5, seed=1, dtype=torch.float32, scale=1.0):
    return torch.randn((T, *lead, I), generator=torch.Generator().manual_seed(seed), dtype=dtype) * scale


def _np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _np_g(x):
    return np.where(x >= 0, x + 0.5, _np_sigmoid(x))


def _step_by_hand(name, p, x_t, h):
    """One step from the paper's equations in NumPy float64; ``p`` holds W_x [I, G*H], b [G*H]."""
    W, b = p["W_x"], p["b"]
    H = h.shape[-1]
    pre = x_t @ W + b
    if name == "mingru":
        z = _np_sigmoid(pre[..., :H])
        return (1 - z) * h + z * _np_g(pre[..., H:])
    f = _np_sigmoid(pre[..., :H])
    i = _np_sigmoid(pre[..., H:2 * H])
    return f / (f + i) * h + i / (f + i) * _np_g(pre[..., 2 * H:])


@pytest.mark.parametrize("name", UNITS)
def test_registered_and_listed(name):
    assert name in cells.list_units()
    assert "Feng et al. 2024" in cells.list_units()[name]
    unit = cells.build(name, 3, 4, seed=0)
    d = unit.describe()
    json.dumps(d)
    assert d["cell"] == name and d["scan"] == "blocked"
    assert "scan" in unit.capabilities()
    gates = 2 if name == "mingru" else 3
    # nn.Linear(I, H) per block: weight and bias in U(-1/sqrt(I), 1/sqrt(I)), no recurrent weights
    p = {k: v.detach() for k, v in unit.layer_params[0].named_parameters()}
    assert set(p) == {"W_x", "b"}
    assert p["W_x"].shape == (3, gates * 4) and p["b"].shape == (gates * 4,)
    assert float(p["W_x"].abs().max()) <= 3 ** -0.5 and float(p["b"].abs().max()) <= 3 ** -0.5
    assert float(p["W_x"].abs().max()) > 0.5 * 3 ** -0.5


@pytest.mark.parametrize("name", UNITS)
def test_shapes_single_and_ensemble(name):
    unit = cells.build(name, 5, 7, layers=2, seed=0)
    y, (h,) = unit(_x(11, 3))
    assert y.shape == (11, 3, 7) and h.shape == (2, 3, 7)
    y2, st2, (allh,) = unit(_x(11, 3), return_all_states=True)
    assert allh.shape == (11, 2, 3, 7)
    torch.testing.assert_close(allh[-1], st2[0])
    torch.testing.assert_close(allh[:, -1], y2)
    y_t, (h_t,) = unit.step(_x(1, 3)[0], unit.init_state(3))
    assert y_t.shape == (3, 7) and h_t.shape == (2, 3, 7)
    ens = cells.build(name, 5, 7, layers=2, seeds=[0, 1, 2])
    y, (h,) = ens(_x(11, 3, 4))
    assert y.shape == (11, 3, 4, 7) and h.shape == (2, 3, 4, 7)
    with pytest.raises(InputError):
        ens(_x(11, 4))


@pytest.mark.parametrize("name", UNITS)
def test_ensemble_member_equals_single_seed(name):
    seeds = [4, 9, 2]
    ens = cells.build(name, 5, 6, layers=2, seeds=seeds, dtype="float64")
    x = _x(40, len(seeds), 3, dtype=torch.float64)
    h0 = torch.rand((2, len(seeds), 3, 6), generator=torch.Generator().manual_seed(3), dtype=torch.float64) - 0.5
    y, (h,) = ens(x, (h0,))
    for e, s in enumerate(seeds):
        single = cells.build(name, 5, 6, layers=2, seed=s, dtype="float64")
        for layer in range(2):
            for k, v in single.layer_params[layer].named_parameters():
                got = getattr(ens.layer_params[layer], k)[e]
                torch.testing.assert_close(got.reshape(v.shape), v, rtol=0, atol=0)
        ys, (hs,) = single(x[:, e], (h0[:, e],))
        torch.testing.assert_close(y[:, e], ys, rtol=0, atol=1e-13)
        torch.testing.assert_close(h[:, e], hs, rtol=0, atol=1e-13)


@pytest.mark.parametrize("name", UNITS)
def test_float64_and_dtype_follows_parameters(name):
    unit = cells.build(name, 5, 6, dtype="float64", seed=0)
    assert all(p.dtype == torch.float64 for p in unit.parameters())
    y, (h,) = unit(_x(9, 2))          # float32 input is cast to the unit's dtype
    assert y.dtype == torch.float64 and h.dtype == torch.float64


@pytest.mark.parametrize("name", UNITS)
def test_one_step_by_hand(name):
    unit = cells.build(name, 5, 6, dtype="float64", seed=7)
    p = {k: v.detach().numpy() for k, v in unit.layer_params[0].named_parameters()}
    x = _x(1, 3, dtype=torch.float64, scale=2.0)[0]
    h0 = torch.linspace(-2.0, 3.0, 18, dtype=torch.float64).reshape(1, 3, 6)
    y, (h,) = unit.step(x, (h0,))
    want = _step_by_hand(name, p, x.numpy(), h0[0].numpy())
    np.testing.assert_allclose(y.detach().numpy(), want, rtol=0, atol=1e-14)
    np.testing.assert_allclose(h[0].detach().numpy(), want, rtol=0, atol=1e-14)


@pytest.mark.parametrize("name", UNITS)
def test_two_layers_by_hand(name):
    """Layer 2 reads layer 1's h; both scans give the hand-written recursion over 30 steps."""
    unit = cells.build(name, 4, 5, layers=2, dtype="float64", seed=3)
    ps = [{k: v.detach().numpy() for k, v in unit.layer_params[layer].named_parameters()} for layer in range(2)]
    x = _x(30, 2, I=4, dtype=torch.float64)
    h0 = (torch.rand((2, 2, 5), generator=torch.Generator().manual_seed(5), dtype=torch.float64) - 0.5) * 4
    h = [h0[0].numpy(), h0[1].numpy()]
    want = []
    for t in range(30):
        h[0] = _step_by_hand(name, ps[0], x[t].numpy(), h[0])
        h[1] = _step_by_hand(name, ps[1], h[0], h[1])
        want.append(h[1])
    for scan in ("blocked", "log", "step"):
        unit.scan, unit.use_scan = scan, scan != "step"
        y, (hf,) = unit(x, (h0,))
        np.testing.assert_allclose(y.detach().numpy(), np.stack(want), rtol=0, atol=1e-12, err_msg=scan)
        np.testing.assert_allclose(hf[0].detach().numpy(), h[0], rtol=0, atol=1e-12, err_msg=scan)


@pytest.mark.parametrize("dtype,tol", [("float32", 1e-5), ("float64", 1e-10)])
@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("name", UNITS)
def test_scan_equals_step_loop_over_1000_steps(name, scan, dtype, tol):
    """The issue's acceptance: sequence (parallel scan) and step modes agree over 1,000 steps.
    Initial states of both signs; every step's state compared. Measured worst differences
    (H = 64, B = 4, 2 layers): blocked 4e-7 (float32) / 1e-15 (float64), log 2e-6 / 4e-15."""
    unit = cells.build(name, 8, 64, layers=2, dtype=dtype, seed=0, scan=scan)
    x = _x(1000, 4, I=8)
    h0 = (torch.rand((2, 4, 64), generator=torch.Generator().manual_seed(2)) * 2 - 1).to(unit.dtype)
    with torch.no_grad():
        y, (h,), (allh,) = unit(x, (h0,), return_all_states=True)
        assert unit.last_path == f"scan-{scan}"
        st = (h0,)
        steps = []
        for t in range(1000):   # the protocol's step, one call per time step
            _, st = unit.step(x[t], st)
            steps.append(st[0])
        assert unit.last_path == "python"
    steps = torch.stack(steps)
    torch.testing.assert_close(allh, steps, rtol=0, atol=tol)
    torch.testing.assert_close(y, steps[:, -1], rtol=0, atol=tol)
    torch.testing.assert_close(h, st[0], rtol=0, atol=tol)


@pytest.mark.parametrize("scan", SCANS)
@pytest.mark.parametrize("name", UNITS)
def test_negative_initial_state_is_exact(name, scan):
    """h_0 < 0 (outside the log domain) enters the scans in the real domain: same as the step loop."""
    unit = cells.build(name, 5, 6, dtype="float64", seed=1, scan=scan)
    h0 = -3.0 - torch.rand((1, 2, 6), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = _x(200, 2, dtype=torch.float64)
    y, (h,) = unit(x, (h0,))
    unit.use_scan = False
    y_ref, (h_ref,) = unit(x, (h0,))
    assert float(y_ref[:5].detach().min()) < 0  # the states really are negative at the start
    torch.testing.assert_close(y, y_ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(h, h_ref, rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", UNITS)
def test_log_scan_outside_exp_range_uses_logcumsumexp(name):
    """Sharp gates (inputs of scale 100) drive a*_t below -700 within a chunk: the log scan switches
    those chunks to torch.logcumsumexp and still matches the step loop; gradients stay finite."""
    unit = cells.build(name, 5, 6, seed=2, scan="log", dtype="float64")
    x = _x(300, 3, scale=100.0, dtype=torch.float64)
    p = unit.layer_params[0]
    log_a, _ = unit._log_coefficients(x @ p.W_x + p.b)
    lowest = log_a.detach()[:288].reshape(18, 16, 18).sum(1).amin(1)   # per chunk: min over channels of a*_end
    assert bool((lowest < -700).any())         # the fallback branch really runs (float64 limit 700)
    assert bool((lowest > -700).any())         # ... and the cumsum branch too
    y, _ = unit(x)
    with torch.no_grad():
        unit.use_scan = False
        y_ref, _ = unit(x)
        unit.use_scan = True
    torch.testing.assert_close(y, y_ref, rtol=1e-10, atol=1e-10)
    y.sum().backward()
    assert all(torch.isfinite(q.grad).all() for q in unit.parameters())


@pytest.mark.parametrize("scan", SCANS)
def test_scans_have_the_step_loops_gradient(scan):
    unit = cells.build("minlstm", 4, 5, layers=2, dtype="float64", seed=0, scan=scan)
    x = _x(50, 2, I=4, dtype=torch.float64).requires_grad_(True)
    h0 = torch.rand((2, 2, 5), dtype=torch.float64, generator=torch.Generator().manual_seed(1)) - 0.5
    h0.requires_grad_(True)
    y, _ = unit(x, (h0,))
    grads = torch.autograd.grad(y.square().sum(), [x, h0, *unit.parameters()])
    unit.use_scan = False
    y2, _ = unit(x, (h0,))
    grads2 = torch.autograd.grad(y2.square().sum(), [x, h0, *unit.parameters()])
    for a, b in zip(grads, grads2):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_scan_functions_on_their_own():
    """scan_blocked / scan_log against a plain loop, lengths that do and do not fill the chunks."""
    gen = torch.Generator().manual_seed(0)
    for T in (1, 2, 15, 16, 17, 100, 257):
        a = torch.rand((T, 3), generator=gen, dtype=torch.float64) * 0.98 + 0.01
        b = torch.rand((T, 3), generator=gen, dtype=torch.float64) + 0.01
        h0 = torch.randn(3, generator=gen, dtype=torch.float64)
        want, h = [], h0
        for t in range(T):
            h = a[t] * h + b[t]
            want.append(h)
        want = torch.stack(want)
        for chunk in (None, 1, 4, 16, 1000):
            torch.testing.assert_close(scan_blocked(a, b, h0, chunk), want, rtol=1e-12, atol=1e-12)
        for chunk in (1, 4, 16, 1000):
            torch.testing.assert_close(scan_log(a.log(), b.log(), h0, chunk), want, rtol=1e-12, atol=1e-12)


def test_g_and_log_g():
    x = torch.linspace(-30, 30, 601, dtype=torch.float64)
    assert float(g(x).min()) > 0
    torch.testing.assert_close(log_g(x), torch.log(g(x)), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(g(torch.tensor([0.0])), torch.tensor([0.5]))    # continuous at 0
    torch.testing.assert_close(g(torch.tensor([-1e-9])), torch.tensor([0.5]))


@pytest.mark.parametrize("name", UNITS)
def test_python_loop_context_runs_the_step_loop(name):
    unit = cells.build(name, 3, 4, seed=0)
    x = _x(20, 2, I=3)
    y, _ = unit(x)
    with python_loop():
        y2, _ = unit(x)
    assert unit.last_path == "python"
    torch.testing.assert_close(y, y2, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kwargs,match", [
    ({"scan": "fast"}, "scan must be one of"),
    ({"scan_chunk": 0}, "scan_chunk must be a positive integer"),
    ({"scan_chunk": True}, "scan_chunk must be a positive integer"),
    ({"scan_chunk": 2.5}, "scan_chunk must be a positive integer"),
    ({"depth": 3}, "does not apply to cell"),
    ({"layers": 0}, "layers must be a positive integer"),
    ({"dtype": "float16"}, "dtype must be one of"),
    ({"hidden_size": 0}, "hidden_size must be a positive integer"),
])
@pytest.mark.parametrize("name", UNITS)
def test_bad_options_raise_config_error(name, kwargs, match):
    args = {"input_size": 3, "hidden_size": 4, "seed": 0, **kwargs}
    with pytest.raises(ConfigError, match=match):
        cells.build(name, **args)


def test_bad_state_shape_is_an_input_error():
    unit = cells.build("mingru", 3, 4, layers=2, seed=0)
    with pytest.raises(InputError, match="state component 'h'"):
        unit(_x(5, 2, I=3), (torch.zeros(1, 2, 4),))


@pytest.mark.parametrize("T", [49, 50])      # 49 = 7 x 7 chunks (no padding), 50 padded to 8 x 7
@pytest.mark.parametrize("name", UNITS)
def test_inference_in_place_path_equals_autograd_path(name, T):
    """Without autograd the blocked scan overwrites its own buffers; same numbers as with autograd."""
    for kwargs, lead in (({"seed": 0}, (3,)), ({"seeds": [0, 1]}, (2, 3))):
        unit = cells.build(name, 5, 6, layers=2, dtype="float64", **kwargs)
        x = _x(T, *lead, dtype=torch.float64)
        h0 = torch.rand((2, *lead, 6), generator=torch.Generator().manual_seed(4), dtype=torch.float64) - 0.5
        y_grad, (h_grad,) = unit(x, (h0,))
        assert y_grad.requires_grad
        x_before = x.clone()
        with torch.no_grad():
            y, (h,) = unit(x, (h0,))
        torch.testing.assert_close(x, x_before, rtol=0, atol=0)     # the caller's input is untouched
        torch.testing.assert_close(y, y_grad.detach(), rtol=0, atol=1e-14)
        torch.testing.assert_close(h, h_grad.detach(), rtol=0, atol=1e-14)
