"""Non-finite weights or inputs are one clear error at the entry of every probe, before computing
(a NaN weight used to make the forgetting probe report `converged` after 0 steps)."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.errors import InputError
from rnnmem.probes.common import check_finite


def _poisoned(value=float("nan"), input_size=1):
    unit = cells.build("gru", input_size, 4, seed=0, dtype="float64")
    with torch.no_grad():
        next(iter(unit.parameters())).view(-1)[1] = value
    return unit


def test_check_finite_names_the_parameter_and_the_input():
    with pytest.raises(InputError, match=r"parameter 'weight_hh_l0' holds 1 NaN or infinite values \(of 36\)"):
        lstm = nn.LSTM(2, 3)
        with torch.no_grad():
            lstm.weight_hh_l0[0, 0] = float("inf")
        check_finite(lstm)
    with pytest.raises(InputError, match=r"the series contains NaN or infinite values \(2 of 3\)"):
        check_finite(None, [1.0, float("nan"), float("-inf")], names=["the series"])
    check_finite(nn.GRU(2, 3), torch.zeros(3), np.arange(4), None, "text")  # finite and non-float: fine


def test_forgetting_refuses_nan_weights():
    from rnnmem.probes.forgetting import forgetting

    with pytest.raises(InputError, match="NaN or infinite"):
        forgetting(_poisoned(), T=200, P=10)


def test_capacity_refuses_nan_weights_and_inputs():
    from rnnmem.probes.capacity import memory_capacity

    with pytest.raises(InputError, match="parameter"):
        memory_capacity(_poisoned(float("inf")), steps=100, washout=10)
    u = np.zeros(110)
    u[5] = np.nan
    with pytest.raises(InputError, match=r"inputs contains NaN or infinite values \(1 of 110\)"):
        memory_capacity(cells.build("gru", 1, 4, seed=0), steps=100, washout=10, inputs=u)


def test_lyapunov_refuses_nan_weights():
    from rnnmem.probes.lyapunov import lyapunov_spectrum

    with pytest.raises(InputError, match="NaN or infinite"):
        lyapunov_spectrum(_poisoned(), steps=20, washout=5, frame_washout=5, blocks=2)


def test_long_memory_refuses_nan_weights_and_inputs():
    from rnnmem.probes.long_memory import long_memory_probe

    with pytest.raises(InputError, match="parameter"):
        long_memory_probe(_poisoned(), 200, max_lag=20, n_samples=4)
    x = np.zeros(200)
    x[3] = np.inf
    with pytest.raises(InputError, match="the trajectory contains NaN or infinite values"):
        long_memory_probe(cells.build("gru", 1, 4, seed=0), x, max_lag=20, n_samples=4)


def test_connectivity_refuses_nan_weights():
    from rnnmem.probes.connectivity import connectivity_matrix, connectivity_naive
    from rnnmem.train.autocomplete import AutocompleteModel

    model = AutocompleteModel(cell="gru", hidden=7, layers=1, embedding=5, convention="tf1",
                              words=["<eos>", "<unknown>", "the", "cat"], dtype="float64", seed=0)
    with torch.no_grad():
        next(iter(model.rnn.parameters())).view(-1)[0] = float("nan")
    for probe in (connectivity_matrix, connectivity_naive):
        with pytest.raises(InputError, match="NaN or infinite"):
            probe(model, " the cat")


def test_semantic_refuses_non_finite_states():
    from rnnmem.probes.semantic import fit_ridge

    x = torch.randn(20, 3, dtype=torch.float64)
    y = torch.randn(20, 2, dtype=torch.float64)
    ridge = fit_ridge(x, y)
    x_bad = x.clone()
    x_bad[4, 1] = float("nan")
    with pytest.raises(InputError, match=r"x \(states\) contains NaN"):
        fit_ridge(x_bad, y)
    with pytest.raises(InputError, match="the states contains NaN"):
        ridge(x_bad)


def test_card_refuses_nan_weights_before_any_measure():
    from rnnmem.probes.card import compute_card

    done = []
    with pytest.raises(InputError, match="NaN or infinite"):
        compute_card(_poisoned(), progress=done.append)
    assert done == []  # failed before the first measure, not after all of them


def test_cli_forgetting_with_nan_state_dict_is_an_error(tmp_path):
    sd = nn.LSTM(2, 4).state_dict()
    sd["weight_hh_l0"][0, 0] = float("nan")
    torch.save(sd, tmp_path / "nan.pt")
    res = subprocess.run([sys.executable, "-m", "rnnmem.cli", "forgetting", "--state-dict", str(tmp_path / "nan.pt"),
                          "--T", "300", "--P", "10", "--runs", "1"], capture_output=True, text=True, timeout=300)
    assert res.returncode == 2, res.stdout
    assert res.stderr.strip().startswith("error:") and "converged" not in res.stdout
    assert "'weight_hh_l0' holds 1 NaN or infinite values" in res.stderr


def test_huge_finite_weights_pass_and_one_inf_among_them_is_counted():
    # the check sums each tensor first (a NaN or inf anywhere makes the sum non-finite); a sum that
    # overflows on finite values must fall back to the exact count, not raise
    lin = nn.Linear(4, 3)
    with torch.no_grad():
        lin.weight.fill_(3e38)  # float32: the sum overflows to inf, every value is finite
    check_finite(lin)
    with torch.no_grad():
        lin.weight[1, 2] = float("inf")
    with pytest.raises(InputError, match="holds 1 NaN or infinite values"):
        check_finite(lin)
