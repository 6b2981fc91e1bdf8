"""The maximal Lyapunov exponent and the forgetting probe's contraction rate measure the same
asymptotic decay of a perturbation: they must agree (issue 7: within 5% on random LSTM/GRU)."""

from __future__ import annotations

import numpy as np
import pytest

from rnnmem import cells
from rnnmem.probes.forgetting import forgetting
from rnnmem.probes.lyapunov import lyapunov_spectrum


@pytest.mark.parametrize("cell,convention", [("lstm", "keras"), ("gru", "torch"), ("lstm", "torch"), ("gru", "keras")])
def test_contraction_rate_matches_max_lyapunov_exponent(cell, convention):
    unit = cells.build(cell, 1, 16, convention=convention, dtype="float64", seed=3)
    lyap = lyapunov_spectrum(unit, steps=1500, washout=300, k=1, seed=0)
    res = forgetting(unit, T=4000, P=100, input_seeds=list(range(8)), fit_skip=30)
    rate = float(np.nanmean(res.table["rate"]))
    assert lyap.max_exponent < 0
    assert abs(rate - (-lyap.max_exponent)) <= 0.05 * abs(lyap.max_exponent), (rate, lyap.max_exponent)


def test_mamba_rate_matches_max_lyapunov_exponent_along_the_input_driven_trajectory():
    """Mamba's transition exp(Delta_t A) depends on the input, so both measures are taken along the
    actual input-driven trajectory (N(0, 1) inputs for both). Its leading exponents are nearly
    degenerate (the slowest channels' mean Delta_t * a_1 differ by ~4e-4 per step), so the QR vector
    needs thousands of steps to align: with the default 200-step frame washout this seed gave a 10%
    gap (Lyapunov 0.00327 vs rate 0.00293); with a 5,000-step frame washout they agree to 0.1%
    (0.0029286 vs 0.0029311; seed 3 agreed to 2% already at the default)."""
    unit = cells.build("mamba", 1, 4, dtype="float64", seed=4)
    lyap = lyapunov_spectrum(unit, steps=3000, washout=300, frame_washout=5000, k=1, seed=0)
    res = forgetting(unit, T=20000, P=100, input_seeds=list(range(4)), fit_skip=2000)
    rate = float(np.nanmean(res.table["rate"]))
    assert lyap.max_exponent < 0
    assert abs(rate - (-lyap.max_exponent)) <= 0.05 * abs(lyap.max_exponent), (rate, lyap.max_exponent)
