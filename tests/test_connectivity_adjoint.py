"""The hand-derived adjoint sweep (rnnmem.cells.adjoint, connectivity method="adjoint") against the
textbook loop (one autograd backward pass per output step) and the autograd sweep."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.cells import adjoint
from rnnmem.errors import ConfigError
from rnnmem.probes.connectivity import connectivity_matrix, connectivity_naive
from rnnmem.train.autocomplete import AutocompleteModel

TEXT = " the cat sat on a mat and the dog"
WORDS = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "a", "mat", "dog", "and"]
ADJOINT = "hand-derived batched adjoint sweep"


def rel_err(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


def char_model(cell, convention, layers=2, dtype="float64", seed=4, hidden=7):
    return AutocompleteModel(cell=cell, hidden=hidden, layers=layers, embedding=5, convention=convention,
                             words=WORDS, dtype=dtype, seed=seed)


@pytest.mark.parametrize("cell,convention,layers", [
    ("gru", "tf1", 2), ("gru", "keras", 2), ("gru", "torch", 3), ("gru", "keras2", 1),
    ("lstm", "tf1", 2), ("lstm", "keras", 2), ("lstm", "torch", 1), ("rnn", "torch", 2),
])
def test_matches_the_textbook_loop(cell, convention, layers):
    model = char_model(cell, convention, layers)
    res = connectivity_matrix(model, TEXT, normalize=False)
    assert res.config["method"].startswith(ADJOINT)
    ref = connectivity_naive(model, TEXT, normalize=False)
    assert rel_err(res.raw, ref.raw) < 1e-10
    np.testing.assert_array_equal(res.targets, ref.targets)
    assert np.all(np.tril(res.raw, -1) == 0)  # t > t~: exactly zero, never computed


def test_saturated_hard_sigmoid_gates():
    # keras convention: hard-sigmoid gates; scaled weights push many gates onto the clamp, where
    # the derivative is 0 - the sweep must agree with autograd there too
    model = char_model("gru", "keras", seed=7)
    with torch.no_grad():
        for p in model.rnn.parameters():
            p.mul_(6.0)
    a = np.asarray(model.rnn.layer_params[0].W_x.detach())
    assert np.abs(a).max() > 1.0
    res = connectivity_matrix(model, TEXT, normalize=False)
    assert res.config["method"].startswith(ADJOINT)
    ref = connectivity_naive(model, TEXT, normalize=False)
    assert rel_err(res.raw, ref.raw) < 1e-10


@pytest.mark.parametrize("at,norm", [("embedding", "sq_l2"), ("onehot", "l2"), ("embedding", "l2")])
def test_embedding_level_and_l2(at, norm):
    model = char_model("lstm", "tf1")
    res = connectivity_matrix(model, TEXT, normalize=False, at=at, norm=norm)
    assert res.config["method"].startswith(ADJOINT)
    ref = connectivity_naive(model, TEXT, normalize=False, at=at, norm=norm)
    assert rel_err(res.raw, ref.raw) < 1e-10


class _Seq(nn.Module):
    """A plain sequence model: torch.nn core (or any module as ``rnn``) + linear readout."""

    def __init__(self, core, H, V=4, squash=False):
        super().__init__()
        self.rnn, self.squash = core, squash
        self.out = nn.Linear(H, V, dtype=torch.float64)

    def forward(self, x):
        h = self.rnn(x)[0]
        return self.out(torch.tanh(h) if self.squash else h)


def _x(T=15, I=3):
    return torch.randn(T, I, dtype=torch.float64, generator=torch.Generator().manual_seed(2))


@pytest.mark.parametrize("make", [
    lambda: nn.GRU(3, 6, num_layers=2, dtype=torch.float64),
    lambda: nn.LSTM(3, 6, num_layers=2, dtype=torch.float64),
    lambda: nn.RNN(3, 6, num_layers=2, nonlinearity="relu", dtype=torch.float64),
    lambda: nn.GRU(3, 6, bias=False, dtype=torch.float64),
    lambda: cells.build("rnn", 3, 6, layers=2, dtype="float64", seed=1, nonlinearity="relu"),
])
def test_torch_nn_cores_and_units_on_float_inputs(make):
    torch.manual_seed(0)
    model = _Seq(make(), 6)
    x = _x()
    res = connectivity_matrix(model, x, targets=1, normalize=False)
    assert res.config["method"].startswith(ADJOINT)
    ref = connectivity_naive(model, x, targets=1, normalize=False)
    assert rel_err(res.raw, ref.raw) < 1e-10


def test_falls_back_when_the_readout_does_not_read_the_core():
    torch.manual_seed(0)
    model = _Seq(nn.GRU(3, 6, dtype=torch.float64), 6, squash=True)  # tanh between core and readout
    x = _x()
    res = connectivity_matrix(model, x, targets=0, normalize=False)
    assert not res.config["method"].startswith(ADJOINT)
    ref = connectivity_naive(model, x, targets=0, normalize=False)
    assert rel_err(res.raw, ref.raw) < 1e-5
    with pytest.raises(ConfigError, match="method='adjoint' needs"):
        connectivity_matrix(model, x, targets=0, method="adjoint")


def test_units_without_a_derived_sweep_use_the_autograd_sweep():
    model = AutocompleteModel(cell="nlstm", hidden=6, layers=1, embedding=5, convention="tf1", words=WORDS,
                              dtype="float64", seed=1)
    assert adjoint.layer_specs(model.rnn) is None
    assert connectivity_matrix(model, TEXT).config["method"].startswith("batched adjoint sweep")
    with pytest.raises(ConfigError, match="method='adjoint' needs"):
        connectivity_matrix(model, TEXT, method="adjoint")


def test_a_subclass_that_changes_the_step_is_not_taken_for_the_built_in_unit():
    class Leaky(cells.gated.GRU):
        def _cell_step(self, layer, xp_t, st):
            h, _ = super()._cell_step(layer, xp_t, st)
            h = 0.5 * h + 0.5 * st[0]
            return h, (h,)

    unit = cells.build("gru", 3, 6, convention="keras", dtype="float64", seed=0)
    unit.__class__ = Leaky  # the built-in unit with its step changed by a subclass
    assert adjoint.layer_specs(unit) is None
    model = _Seq(unit, 6)
    x = _x()
    res = connectivity_matrix(model, x, targets=2, normalize=False)
    assert not res.config["method"].startswith(ADJOINT)
    ref = connectivity_naive(model, x, targets=2, normalize=False)
    assert rel_err(res.raw, ref.raw) < 1e-5


def test_consistency_guard_rejects_equations_that_do_not_match():
    unit = cells.build("gru", 3, 6, layers=2, convention="keras", dtype="float64", seed=3)
    x = _x()
    specs = adjoint.layer_specs(unit)
    hs, _ = adjoint.trajectory(unit, specs, x)
    assert adjoint.consistent(specs, x, hs)
    specs[1].reset_after = not specs[1].reset_after  # the wrong convention for the second layer
    assert not adjoint.consistent(specs, x, hs)


def test_input_adjoints_direct_api_matches_autograd_rows():
    unit = cells.build("lstm", 3, 5, layers=2, convention="tf1", dtype="float64", seed=2)
    x = _x(T=9)
    w = torch.randn(9, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    got = {}
    for t, g in adjoint.input_adjoints(unit, x, w):
        assert g.shape == (9 - t, 3)
        got[t] = g.clone()
    assert sorted(got) == list(range(9))
    xg = x.clone().requires_grad_(True)
    y, _ = unit(xg[:, None])
    for t_out in range(9):
        (g,) = torch.autograd.grad((y[t_out, 0] * w[t_out]).sum(), xg, retain_graph=True)
        for t in range(t_out + 1):
            torch.testing.assert_close(got[t][t_out - t], g[t], rtol=1e-10, atol=1e-13)


def test_float32_study_size_agrees_with_the_autograd_sweep():
    model = AutocompleteModel(cell="gru", hidden=64, layers=2, embedding=48, convention="tf1", n_words=300,
                              seed=0)
    text = "the quick brown fox jumps over the lazy dog " * 2
    a = connectivity_matrix(model, text, normalize=False)
    b = connectivity_matrix(model, text, normalize=False, method="sweep")
    assert a.config["method"].startswith(ADJOINT) and a.config["dtype"] == "float32"
    assert np.allclose(a.raw, b.raw, rtol=1e-3, atol=1e-6 * np.abs(b.raw).max())
