"""The LRU and S4D units and the shared linear scan (cells/lru.py, cells/s4d.py, cells/scan.py)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from rnnmem import cells
from rnnmem.cells.scan import linear_scan, linear_scan_parts
from rnnmem.errors import ConfigError, InputError

UNITS = {"lru": {"state_size": 6}, "s4d": {"state_size": 8}}
TOL = {torch.float32: 1e-5, torch.float64: 1e-10}


def naive_scan(a, u, h0=None):
    """h_t = a_t h_{t-1} + u_t, one step at a time (a constant when it has fewer dims than u)."""
    varying = a.dim() == u.dim()
    h = torch.zeros_like(u[0]) if h0 is None else h0
    out = []
    for t in range(u.shape[0]):
        h = (a[t] if varying else a) * h + u[t]
        out.append(h)
    return torch.stack(out)


# ----------------------------------------------------------------------------- the scan
@pytest.mark.parametrize("T", [1, 7, 33, 100, 1037])
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
@pytest.mark.parametrize("varying", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_linear_scan_equals_step_loop(T, dtype, varying, with_h0):
    g = torch.Generator().manual_seed(T)
    shape = (T, 3, 5) if varying else (5,)
    a = torch.rand(shape, generator=g, dtype=torch.float64) * 0.999
    if dtype.is_complex:
        a = torch.polar(a, torch.rand(shape, generator=g, dtype=torch.float64) * 6.28)
    u = torch.randn((T, 3, 5), generator=g, dtype=torch.float64).to(dtype)
    h0 = torch.randn((3, 5), generator=g, dtype=torch.float64).to(dtype) if with_h0 else None
    want = naive_scan(a, u, h0)
    got = linear_scan(a, u, h0)
    assert got.dtype == want.dtype and got.shape == want.shape
    torch.testing.assert_close(got, want, rtol=1e-12, atol=1e-12)
    for block in (1, 2, 5):  # any block length: the same numbers
        torch.testing.assert_close(linear_scan(a, u, h0, block=block), want, rtol=1e-12, atol=1e-12)


def test_linear_scan_gradient_equals_step_loop_gradient():
    g = torch.Generator().manual_seed(0)
    a = torch.polar(torch.rand(4, generator=g, dtype=torch.float64) * 0.99,
                    torch.rand(4, generator=g, dtype=torch.float64) * 6)
    u = torch.randn((200, 2, 4), generator=g, dtype=torch.float64).to(torch.complex128)
    w = torch.randn((200, 2, 4), generator=g, dtype=torch.float64)
    grads = []
    for f in (linear_scan, naive_scan):
        a_ = a.clone().requires_grad_(True)
        u_ = u.clone().requires_grad_(True)
        loss = (f(a_, u_).real * w).sum()
        grads.append(torch.autograd.grad(loss, (a_, u_)))
    for x, y in zip(*grads):
        torch.testing.assert_close(x, y, rtol=1e-10, atol=1e-10)


def test_linear_scan_leaves_inputs_alone_unless_inplace():
    u = torch.randn(100, 2, 3)
    keep = u.clone()
    linear_scan(torch.full((3,), 0.5), u)
    assert torch.equal(u, keep)
    out = linear_scan_parts((torch.full((3,), 0.5),), (u,), inplace=True)
    assert out[0].data_ptr() == u.data_ptr() and not torch.equal(u, keep)


def test_linear_scan_is_stable_over_long_sequences():
    """|a| small and T large: no power of a is ever divided, so nothing under/overflows."""
    a = torch.tensor([1e-3, 0.5, 0.999999], dtype=torch.float64)
    u = torch.ones(100_000, 3, dtype=torch.float64)
    h = linear_scan(a, u)
    assert torch.isfinite(h).all()
    torch.testing.assert_close(h[-1], (1 - a ** 100_000) / (1 - a), rtol=1e-9, atol=0)


def test_linear_scan_bad_shapes():
    with pytest.raises(InputError, match="broadcast"):
        linear_scan(torch.ones(4), torch.ones(10, 3))
    with pytest.raises(InputError, match="time steps"):
        linear_scan(torch.ones(5, 3), torch.ones(10, 3))
    with pytest.raises(InputError, match="T >= 1"):
        linear_scan(torch.ones(3), torch.ones(0, 3))


# ----------------------------------------------------------------------------- the units
@pytest.mark.parametrize("name", list(UNITS))
@pytest.mark.parametrize("layers", [1, 2])
def test_build_shapes_and_describe(name, layers):
    unit = cells.build(name, 3, 5, layers=layers, seed=0, **UNITS[name])
    F = unit.state_width()
    assert F == (2 * 6 if name == "lru" else 2 * 5 * 4)
    x = torch.randn(11, 4, 3)
    y, st, per = unit(x, return_all_states=True)
    assert y.shape == (11, 4, 5)
    assert len(st) == 1 and st[0].shape == (layers, 4, F)
    assert per[0].shape == (11, layers, 4, F)
    torch.testing.assert_close(per[0][-1], st[0])
    assert unit.init_state(4)[0].shape == (layers, 4, F)
    d = json.loads(json.dumps(unit.describe()))
    assert d["cell"] == name and d["layers"] == layers and d["state_size"] == UNITS[name]["state_size"]
    assert "scan" in unit.capabilities()


@pytest.mark.parametrize("name", list(UNITS))
def test_state_carries_over_and_step_equals_forward(name):
    unit = cells.build(name, 3, 5, layers=2, seed=1, dtype="float64", **UNITS[name])
    x = torch.randn(40, 2, 3, dtype=torch.float64)
    y, st = unit(x)
    y1, s1 = unit(x[:25])
    y2, s2 = unit(x[25:], s1)
    torch.testing.assert_close(torch.cat([y1, y2]), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s2[0], st[0], rtol=1e-12, atol=1e-12)
    state, ys = None, []
    for t in range(40):
        yt, state = unit.step(x[t], state)
        ys.append(yt)
    torch.testing.assert_close(torch.stack(ys), y, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(UNITS))
def test_ensemble_member_equals_single_seed(name):
    seeds = [3, 11, 5]
    ens = cells.build(name, 3, 5, layers=2, seeds=seeds, dtype="float64", **UNITS[name])
    x = torch.randn(30, 3, 4, 3, dtype=torch.float64)
    y, st, per = ens(x, return_all_states=True)
    assert y.shape == (30, 3, 4, 5) and st[0].shape == (2, 3, 4, ens.state_width())
    for e, s in enumerate(seeds):
        one = cells.build(name, 3, 5, layers=2, seed=s, dtype="float64", **UNITS[name])
        ye, se, pe = one(x[:, e], return_all_states=True)
        torch.testing.assert_close(y[:, e], ye, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(st[0][:, e], se[0], rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(per[0][:, :, e], pe[0], rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", list(UNITS))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ensemble", [False, True])
def test_scan_equals_step_loop_over_1000_steps(name, dtype, ensemble):
    """The sequence form (parallel scan) and the step form agree to 1e-5 (float32) and 1e-10
    (float64) over 1,000 steps, outputs and every state, two layers; observed max differences:
    float32 about 3e-6 (lru) and 8e-6 (s4d, with |y| up to 6), float64 about 1e-14."""
    kw = {"seeds": [0, 1]} if ensemble else {"seed": 2}
    unit = cells.build(name, 3, 8, layers=2, dtype=str(dtype).replace("torch.", ""),
                       **{**UNITS[name], "state_size": 16}, **kw)
    lead = (2, 4) if ensemble else (4,)
    x = torch.randn((1000,) + lead + (3,), generator=torch.Generator().manual_seed(7), dtype=dtype)
    unit.use_scan = True
    y_s, st_s, per_s = unit(x, return_all_states=True)
    assert unit.last_path == "scan"
    y_n, _ = unit(x)
    unit.use_scan = False
    y_l, st_l, per_l = unit(x, return_all_states=True)
    assert unit.last_path == "python"
    tol = TOL[dtype]
    torch.testing.assert_close(y_s, y_l, rtol=tol, atol=tol)
    torch.testing.assert_close(y_n, y_l, rtol=tol, atol=tol)
    torch.testing.assert_close(per_s[0], per_l[0], rtol=tol, atol=tol)
    torch.testing.assert_close(st_s[0], st_l[0], rtol=tol, atol=tol)


@pytest.mark.parametrize("name", list(UNITS))
def test_gradients_of_scan_and_step_forms_agree(name):
    unit = cells.build(name, 2, 4, layers=2, seed=0, dtype="float64", **UNITS[name])
    x = torch.randn(120, 3, 2, dtype=torch.float64)
    grads = []
    for use_scan in (True, False):
        unit.use_scan = use_scan
        unit.zero_grad()
        xr = x.clone().requires_grad_(True)
        y, _ = unit(xr)
        (y ** 2).sum().backward()
        grads.append([xr.grad] + [p.grad.clone() for p in unit.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def _s4d_python(unit, x, state=None):
    """The step form over a sequence (``use_scan = False``), the FFT path's reference."""
    keep = unit.use_scan
    unit.use_scan = False
    try:
        with torch.no_grad():
            return unit(x, state)
    finally:
        unit.use_scan = keep


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("ensemble", [False, True])
@pytest.mark.parametrize("with_h0", [False, True])
def test_s4d_fft_equals_step_form_over_1000_steps(dtype, ensemble, with_h0):
    """Without per-step states, sequences of at least ``fft_min_steps`` run by FFT convolution
    (path "fft"): outputs and the final state equal the step form's, from the zero state and from
    a random one, two layers, in blocks of one channel too. Observed max differences: float32
    about 8e-6 (|y| up to 15), float64 about 1e-13."""
    kw = {"seeds": [0, 1]} if ensemble else {"seed": 2}
    unit = cells.build("s4d", 3, 8, layers=2, dtype=str(dtype).replace("torch.", ""), state_size=16, **kw)
    lead = (2, 4) if ensemble else (4,)
    g = torch.Generator().manual_seed(7)
    x = torch.randn((1000,) + lead + (3,), generator=g, dtype=dtype)
    h0 = (0.5 * torch.randn(unit.init_state(4)[0].shape if not ensemble else (2, 2, 4, unit.state_width()),
                            generator=g, dtype=dtype),) if with_h0 else None
    y_l, st_l = _s4d_python(unit, x, h0)
    tol = TOL[dtype]
    for block in (unit.fft_block_elements, 1):          # all channels in one block; one channel per block
        unit.fft_block_elements = block
        with torch.no_grad():
            y, st = unit(x, h0)
        assert unit.last_path == "fft"
        torch.testing.assert_close(y, y_l, rtol=tol, atol=tol)
        torch.testing.assert_close(st[0], st_l[0], rtol=tol, atol=tol)


def test_s4d_fft_float32_long_sequence():
    """T = 5,000 in float32 (the convolution runs in float64): within 1e-5 of the step form relative
    to the output's scale, and the final state likewise (observed 9e-7 and 1.1e-6 relative, seeds 0, 1, 3)."""
    unit = cells.build("s4d", 4, 16, seed=3, state_size=32, dt_min=1e-3, dt_max=1e-2)  # slow decay: long kernels
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5000, 3, 4, generator=g)
    h0 = (torch.randn(unit.init_state(3)[0].shape, generator=g),)
    y_l, st_l = _s4d_python(unit, x, h0)
    with torch.no_grad():
        y, st = unit(x, h0)
    assert unit.last_path == "fft"
    assert float((y - y_l).abs().max()) <= 1e-5 * float(y_l.abs().max())
    assert float((st[0] - st_l[0]).abs().max()) <= 1e-5 * float(st_l[0].abs().max())


def test_s4d_fft_state_carries_over_and_paths():
    """The FFT path's final state continues the sequence exactly; short sequences, per-step states,
    ``use_fft = False``, ``use_scan = False`` and ``python_loop()`` take the scan / the step form."""
    from rnnmem.cells.base import python_loop

    unit = cells.build("s4d", 3, 5, layers=2, seed=1, dtype="float64", state_size=8)
    x = torch.randn(300, 2, 3, dtype=torch.float64)
    y, st = unit(x)
    assert unit.last_path == "fft"
    y1, s1 = unit(x[:120])
    y2, s2 = unit(x[120:], s1)
    assert unit.last_path == "fft"
    torch.testing.assert_close(torch.cat([y1, y2]), y, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(s2[0], st[0], rtol=1e-12, atol=1e-12)
    unit(x[:unit.fft_min_steps - 1])
    assert unit.last_path == "scan"
    unit(x, return_all_states=True)
    assert unit.last_path == "scan"
    with python_loop():
        unit(x)
    assert unit.last_path == "scan"
    unit.use_fft = False
    y_scan, st_scan = unit(x)
    assert unit.last_path == "scan"
    torch.testing.assert_close(y_scan, y, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(st_scan[0], st[0], rtol=1e-10, atol=1e-10)


def test_s4d_fft_gradients_equal_step_form():
    """The FFT path is differentiable: gradients with respect to the input, the initial state and
    every parameter equal the step form's (float64, 1e-9)."""
    unit = cells.build("s4d", 2, 4, layers=2, seed=0, dtype="float64", state_size=6)
    g = torch.Generator().manual_seed(2)
    x = torch.randn(150, 3, 2, generator=g, dtype=torch.float64)
    h0 = torch.randn(unit.init_state(3)[0].shape, generator=g, dtype=torch.float64)
    grads = []
    for use_scan in (True, False):
        unit.use_scan = use_scan
        unit.zero_grad()
        xr, hr = x.clone().requires_grad_(True), h0.clone().requires_grad_(True)
        y, st = unit(xr, (hr,))
        assert unit.last_path == ("fft" if use_scan else "python")
        ((y ** 2).sum() + (st[0] ** 2).sum()).backward()
        grads.append([xr.grad, hr.grad] + [p.grad.clone() for p in unit.parameters()])
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


def test_float32_and_float64_units_share_their_initialisation():
    for name in UNITS:
        a = cells.build(name, 3, 5, seed=4, dtype="float32", **UNITS[name])
        b = cells.build(name, 3, 5, seed=4, dtype="float64", **UNITS[name])
        for p, q in zip(a.parameters(), b.parameters()):
            torch.testing.assert_close(p.double(), q, rtol=1e-6, atol=1e-7)


def test_lru_equals_the_papers_complex_forward():
    """Orvieto et al. 2023, Appendix A ``forward_LRU``: y = Re(C h) + D x with h_t = Lambda h_{t-1}
    + (B * gamma) x_t, written with complex tensors."""
    unit = cells.build("lru", 3, 4, seed=5, dtype="float64", state_size=6)
    p = unit.layer_params[0]
    lam = torch.exp(torch.complex(-torch.exp(p.nu_log), torch.exp(p.theta_log)))
    B = torch.complex(p.W_x[:, :6].T, p.W_x[:, 6:].T) * torch.exp(p.gamma_log).unsqueeze(-1)   # [N, I]
    C = torch.complex(p.C_re.T, p.C_im.T)                                                        # [H, N]
    x = torch.randn(50, 2, 3, dtype=torch.float64)
    h = torch.zeros(2, 6, dtype=torch.complex128)
    want = []
    for t in range(50):
        h = lam * h + x[t].to(torch.complex128) @ B.T
        want.append((h @ C.T).real + x[t] @ p.D)
    torch.testing.assert_close(unit(x)[0], torch.stack(want), rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(unit.eigenvalues(), lam)


def test_lru_ring_initialisation():
    unit = cells.build("lru", 2, 3, seed=0, dtype="float64", state_size=4000, r_min=0.4, r_max=0.9, max_phase=1.0)
    lam = unit.eigenvalues().detach()
    mod, phase = lam.abs(), lam.angle()
    assert mod.min() >= 0.4 - 1e-12 and mod.max() <= 0.9 + 1e-12
    assert phase.min() >= 0 and phase.max() <= 1.0 + 1e-12
    # uniform on the ring: |lambda|^2 uniform on [r_min^2, r_max^2]
    assert abs(float((mod ** 2).mean()) - (0.4 ** 2 + 0.9 ** 2) / 2) < 0.01
    gamma = torch.exp(unit.layer_params[0].gamma_log).detach()
    torch.testing.assert_close(gamma, torch.sqrt(1 - mod ** 2))


@pytest.mark.parametrize("a_init", ["lin", "inv"])
def test_s4d_equals_complex_zoh_reference(a_init):
    """S4D-Lin / S4D-Inv A, zero-order hold, y = 2 Re(C s) + D v: checked with complex tensors."""
    N, H = 8, 3
    unit = cells.build("s4d", 2, H, seed=1, dtype="float64", state_size=N, a_init=a_init)
    p = unit.layer_params[0]
    m = torch.arange(N // 2, dtype=torch.float64)
    imag = math.pi * m if a_init == "lin" else N / math.pi * (N / (2 * m + 1) - 1)
    A = torch.complex(torch.full((H, N // 2), -0.5, dtype=torch.float64), imag.expand(H, -1))
    torch.testing.assert_close(torch.complex(-torch.exp(p.log_A_real), p.A_imag), A)
    dt = torch.exp(p.log_dt)
    assert ((dt >= 1e-3) & (dt <= 1e-1)).all()
    Abar = torch.exp(dt.unsqueeze(-1) * A)
    Bbar = (Abar - 1) / A  # B = 1 at init
    x = torch.randn(60, 1, 2, dtype=torch.float64)
    v = x @ p.W_x + p.b
    s = torch.zeros(H, N // 2, dtype=torch.complex128)
    want = []
    for t in range(60):
        s = Abar * s + Bbar * v[t, 0].unsqueeze(-1)
        want.append(2 * (torch.complex(p.C_re, p.C_im) * s).sum(-1).real + p.D * v[t, 0])
    torch.testing.assert_close(unit(x)[0][:, 0], torch.stack(want), rtol=1e-12, atol=1e-12)


def test_units_are_listed_with_their_options():
    from rnnmem.commands.cells import _listing

    units = _listing()["units"]
    assert units["lru"]["options"] == ["max_phase", "r_max", "r_min", "state_size"]
    assert units["s4d"]["options"] == ["a_init", "dt_max", "dt_min", "state_size"]


@pytest.mark.parametrize("name, options, match", [
    ("lru", {"state_size": 0}, "state_size"),
    ("lru", {"r_min": 0.9, "r_max": 0.5}, "r_min"),
    ("lru", {"r_max": 1.5}, "r_max"),
    ("lru", {"r_min": -0.1}, "r_min"),
    ("lru", {"max_phase": 0}, "max_phase"),
    ("lru", {"max_phase": float("nan")}, "max_phase"),
    ("lru", {"gate_activation": "hard_sigmoid"}, "no gates"),
    ("s4d", {"state_size": 7}, "even"),
    ("s4d", {"a_init": "legs"}, "a_init"),
    ("s4d", {"dt_min": 0.2, "dt_max": 0.1}, "dt_min"),
    ("s4d", {"dt_min": 0.0}, "dt_min"),
    ("s4d", {"forget_bias": 1.0}, "no gates"),
    ("lstm", {"state_size": 4}, "lru"),
])
def test_bad_options(name, options, match):
    with pytest.raises(ConfigError, match=match):
        cells.build(name, 3, 5, seed=0, **options)


def test_convention_option_init_still_reaches_gated_units():
    """S4D's A initialisation is called ``a_init``: a unit option named ``init`` would shadow the
    convention option ``init`` of every other unit."""
    unit = cells.build("lstm", 3, 5, seed=0, init="glorot")
    assert unit.convention.init == "glorot"


@pytest.mark.parametrize("name", list(UNITS))
def test_bad_state_is_refused(name):
    unit = cells.build(name, 3, 5, seed=0, **UNITS[name])
    with pytest.raises(InputError, match="state component 'h'"):
        unit(torch.randn(4, 2, 3), (torch.zeros(1, 2, 5),))
    with pytest.raises(InputError, match="input width"):
        unit(torch.randn(4, 2, 4))
