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
