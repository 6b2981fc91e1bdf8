"""The probes against closed forms on diagonal linear recurrences (issue 15, "Measures that must be
right"): LRU (and S4D) units whose eigenvalues lambda_i, input, readout and skip weights are set,
so every measure is known exactly.

For h_t = diag(lambda) h_{t-1} + b x_t, y_t = Re(c h_t) + d x_t:
- two runs whose inputs differ before P and agree from P on have h^a_t - h^b_t =
  lambda^(t-P+1) (h^a_{P-1} - h^b_{P-1}) for t >= P;
- the Jacobian of the step map on the real state [Re h | Im h] is block-diagonal with 2 x 2 blocks
  |lambda_i| x (a rotation): a normal matrix whose Lyapunov exponents are ln|lambda_i|, each twice;
- dy_t / dx_{t-k} = Re(c diag(lambda^k) b) + d [k = 0], the same at every t.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnmem import cells
from rnnmem.probes.capacity import memory_capacity
from rnnmem.probes.forgetting import ForgettingSettings, forgetting
from rnnmem.probes.long_memory import long_memory_probe
from rnnmem.probes.lyapunov import lyapunov_spectrum

F64 = torch.float64


def set_lru(mods, phases, *, seed=0, unit_readout=False, I=1, H=1, dtype="float64"):
    """An LRU with lambda_n = mods_n exp(i phases_n) (|lambda| = 1 through nu = -800, where
    exp(-exp(nu)) rounds to exactly 1); with ``unit_readout`` b = 1, gamma = 1, c = 1, d = 0."""
    N = len(mods)
    unit = cells.build("lru", I, H, seed=seed, dtype=dtype, state_size=N)
    mods = torch.tensor(mods, dtype=F64)
    with torch.no_grad():
        p = unit.layer_params[0]
        p.nu_log.copy_(torch.where(mods < 1, torch.log(-torch.log(mods.clamp(max=0.999))), torch.tensor(-800.0,
                                                                                                       dtype=F64)))
        p.theta_log.copy_(torch.log(torch.tensor(phases, dtype=F64)))
        if unit_readout:
            p.gamma_log.zero_()
            p.W_x.copy_(torch.cat([torch.ones(I, N), torch.zeros(I, N)], 1))
            p.C_re.fill_(1.0)
            p.C_im.zero_()
            p.D.zero_()
    lam = unit.eigenvalues().detach()
    torch.testing.assert_close(lam.abs(), mods.to(lam.real.dtype), rtol=1e-15, atol=0)
    return unit


# ----------------------------------------------------------------------------- (a) forgetting
@pytest.mark.parametrize("rho", [0.5, 0.9, 0.99])
def test_forgetting_steps_equal_the_closed_form(rho):
    """One real mode lambda = -rho (phase pi), y = Re h, no skip: the output distance after the
    differing prefix is d_t = d0 rho^(t-P) exactly, d0 = d_P (the table's ``d0``: the probe's
    criterion is max_i |y^a_t - y^b_t| and it counts n(eps) = t_last + 1 - P with t_last the last
    step where d_t > eps). So t_last - P = ceil(x) - 1 with x = ln(d0/eps) / -ln rho, and
    n(eps) = ceil(ln(d0 / eps) / -ln rho). Observed: equal at every tolerance and input seed."""
    unit = set_lru([rho], [math.pi], unit_readout=True)
    tols = (1e-2, 1e-4, 1e-6)
    res = forgetting(unit, T=3000, P=100, tolerances=tols, input_seeds=[1, 2, 3])
    t = res.table
    assert (t["d0"] > 1e-2).all()
    assert set(t["status"]) <= {"exact", "floor", "converged"}
    for tol in tols:
        want = np.ceil(np.log(t["d0"].to_numpy() / tol) / -math.log(rho))
        got = t[f"steps_{tol:g}"].to_numpy()
        assert not t[f"censored_{tol:g}"].any()
        assert np.all(np.abs(got - want) <= 1), (tol, got, want)
    # the fitted contraction rate is -ln rho (observed within 1.2e-6 relative: the fit's last points
    # sit near the rounding floor)
    np.testing.assert_allclose(t["rate"], -math.log(rho), rtol=1e-4)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("phase", [math.pi, 1e-300])
def test_unit_modulus_eigenvalue_is_censored_not_a_number(phase, dtype):
    """|lambda| = 1 (lambda = -1, and lambda = 1 up to a 1e-300 phase): the runs never forget, so every
    tolerance is censored (NaN steps), never a finite count."""
    unit = set_lru([1.0], [phase], unit_readout=True, dtype=dtype)
    res = forgetting(unit, T=2000, P=100, tolerances=(1e-2, 1e-4, 1e-6), input_seeds=[1, 2])
    t = res.table
    for tol in (1e-2, 1e-4, 1e-6):
        assert t[f"censored_{tol:g}"].all()
        assert t[f"steps_{tol:g}"].isna().all()
    # the run-level status: not "exact"/"floor"/"converged" (the difference never shrinks) and not
    # "diverging" (it never grows: |h^a_t - h^b_t| = |h^a_{P-1} - h^b_{P-1}| exactly, up to rounding)
    assert (t["status"] == "censored").all()
    assert (t["rate"].abs() < (1e-12 if dtype == "float64" else 1e-8)).all()
    assert (t["growth"] < ForgettingSettings().growth_min / 100).all()


# ----------------------------------------------------------------------------- (b) Lyapunov
def test_lyapunov_spectrum_equals_log_moduli():
    mods, phases = [0.9, 0.6, 0.3], [0.5, 1.5, 2.5]
    unit = set_lru(mods, phases, seed=1)
    res = lyapunov_spectrum(unit, steps=200, washout=10, frame_washout=60)
    want = np.sort(np.repeat(np.log(mods), 2))[::-1]
    np.testing.assert_allclose(res.exponents, want, rtol=1e-8, atol=1e-10)
    assert res.state_dim == 6


def test_lyapunov_spectrum_of_s4d_equals_log_moduli_of_abar():
    """S4D: |Abar_{h,m}| = exp(dt_h Re A_{h,m}) = exp(-dt_h / 2) at init, each mode twice (re, im)."""
    unit = cells.build("s4d", 1, 2, seed=4, dtype="float64", state_size=4, dt_min=0.05, dt_max=0.5)
    Abar, _ = unit.discretised()
    # the frame aligns at the rate of the gap between the channels' moduli (0.875 per step here)
    res = lyapunov_spectrum(unit, steps=100, washout=5, frame_washout=250)
    want = np.sort(np.repeat(np.log(Abar.detach().abs().numpy()).ravel(), 2))[::-1]
    np.testing.assert_allclose(res.exponents, want, rtol=1e-8, atol=1e-10)


# ----------------------------------------------------------------------------- (c) long memory
def test_response_coefficients_equal_c_lambda_k_b():
    """A_k = Re(C diag(lambda^k) gamma B) + D [k = 0], exactly (the system is linear, so the
    average over output times is the same number at every time)."""
    unit = cells.build("lru", 1, 1, seed=3, dtype="float64", state_size=3, r_min=0.5, r_max=0.95)
    frame, _ = long_memory_probe(unit, 200, max_lag=40, n_samples=8, n_boot=0)
    p = unit.layer_params[0]
    with torch.no_grad():
        lam = unit.eigenvalues()
        b = torch.complex(p.W_x[0, :3], p.W_x[0, 3:]) * torch.exp(p.gamma_log)
        c = torch.complex(p.C_re[:, 0], p.C_im[:, 0])
        k = torch.arange(41, dtype=F64)
        want = (c * lam ** k.unsqueeze(-1) * b).sum(-1).real
        want[0] += p.D[0, 0]
    np.testing.assert_allclose(frame["A"].to_numpy(), want.numpy(), rtol=1e-10, atol=1e-14)


def test_response_coefficients_of_s4d():
    """S4D: A_k = (2 Re(sum_m C_m Abar_m^k Bbar_m) + D [k = 0]) W_x for one channel."""
    unit = cells.build("s4d", 1, 1, seed=2, dtype="float64", state_size=6, dt_min=0.05, dt_max=0.2)
    frame, _ = long_memory_probe(unit, 150, max_lag=30, n_samples=6, n_boot=0)
    p = unit.layer_params[0]
    with torch.no_grad():
        Abar, Bbar = unit.discretised()
        C = torch.complex(p.C_re, p.C_im)
        k = torch.arange(31, dtype=F64)
        want = 2 * (C[0] * Abar[0] ** k.unsqueeze(-1) * Bbar[0]).sum(-1).real
        want[0] += p.D[0]
        want = want * p.W_x[0, 0]
    np.testing.assert_allclose(frame["A"].to_numpy(), want.numpy(), rtol=1e-10, atol=1e-14)


# ----------------------------------------------------------------------------- (d) capacity
def _capacity_closed_form(mods, phases, max_lag: int) -> tuple[float, float]:
    """Infinite-data memory capacity of the real state z_t = sum_k V_k x_{t-k} (V_k = [Re, Im] of
    lambda^k) for i.i.d. input: MC_k = V_k' S^-1 V_k with S = sum_k V_k V_k'; summed over all lags it
    is trace(S^-1 S) = dim z (Jaeger 2002). Returns (sum over lags 0..max_lag, sum over all lags).
    The input weights b do not enter: a per-mode complex scaling is an invertible linear map of the
    state, and r^2 of an optimal linear readout is invariant under it."""
    lam = np.asarray(mods) * np.exp(1j * np.asarray(phases))
    V = lam[None, :] ** np.arange(2000)[:, None]
    V = np.concatenate([V.real, V.imag], 1)
    mc = np.einsum("ki,ij,kj->k", V, np.linalg.inv(V.T @ V), V)
    return float(mc[: max_lag + 1].sum()), float(mc.sum())


def test_memory_capacity_of_a_linear_system_is_its_state_dimension():
    """4 complex modes = an 8-dimensional real state. Eigenvalues with moduli 0.5-0.65 and distinct
    phases make the system controllable (distinct, non-real lambda) and its memory short enough that
    the probe's default lags 0..2D = 16 hold all but 5e-5 of it (computed below), while the modes
    stay distinguishable enough for 10,000 training samples; so MC = 8 within 2% (observed 7.986)."""
    mods, phases = [0.5, 0.55, 0.6, 0.65], [0.4, 1.2, 2.0, 2.8]
    within, total = _capacity_closed_form(mods, phases, 16)
    assert abs(total - 8) < 1e-6 and within > 8 * 0.999
    unit = set_lru(mods, phases, seed=3)
    res = memory_capacity(unit, steps=20_000, seed=1)
    assert res.state_dim == 8
    assert abs(res.mc - 8) <= 0.02 * 8, res.mc
    assert res.mc <= within + 4 * res.null_sd  # cannot beat the closed form beyond sampling noise
