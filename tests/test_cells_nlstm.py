"""Nested LSTM (Moniz & Krueger 2018): state layout, equations against a hand-written recursive
NumPy step, gradients, depth 3, forget bias at every depth, and the Distill parameter counts."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnmem import cells


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def _weights(unit, layer):
    p = {k: v.detach().numpy() for k, v in unit.layer_params[layer].named_parameters()}
    return [(p[f"W_x{s}"], p[f"W_h{s}"], p[f"b{s}"]) for s in [""] + [str(d) for d in range(1, unit.depth)]]


def nested_level(d, x_in, h_in, cells_prev, w, gate, shift):
    """Level d of the nested memory, written recursively as in the paper: the outer LSTM's memory
    update c_t = m_t(f * c_{t-1}, i * g) is itself an LSTM that reads x~ = i * g as input and
    h~ = f * c_{t-1} as hidden state, and whose output h~_t becomes c_t. The outermost candidate
    g is linear (identity); inner candidates use tanh. Returns (level output, new cells d..D-1)."""
    W_x, W_h, b = w[d]
    n = W_h.shape[0]
    z = x_in @ W_x + h_in @ W_h + b
    i, f, g, o = z[:, :n], z[:, n : 2 * n], z[:, 2 * n : 3 * n], z[:, 3 * n :]
    x_tilde = gate(i) * (g if d == 0 else np.tanh(g))
    h_tilde = gate(f + shift) * cells_prev[d]
    if d == len(w) - 1:  # innermost: an ordinary LSTM memory update
        c_new, inner = h_tilde + x_tilde, []
    else:
        c_new, inner = nested_level(d + 1, x_tilde, h_tilde, cells_prev, w, gate, shift)
    return gate(o) * np.tanh(c_new), [c_new] + inner


def nlstm_reference(unit, x, gate, shift):
    layers, depth = unit.num_layers, unit.depth
    B, n = x.shape[1], unit.hidden_size
    h = [np.zeros((B, n)) for _ in range(layers)]
    c = [[np.zeros((B, n)) for _ in range(depth)] for _ in range(layers)]
    w = [_weights(unit, layer) for layer in range(layers)]
    ys, hist = [], []
    for x_t in x:
        inp = x_t
        for layer in range(layers):
            h[layer], c[layer] = nested_level(0, inp, h[layer], c[layer], w[layer], gate, shift)
            inp = h[layer]
        ys.append(inp)
        hist.append([np.stack(h)] + [np.stack([c[lay][d] for lay in range(layers)]) for d in range(depth)])
    return np.stack(ys), hist


@pytest.mark.parametrize(
    "conv,depth,gate,shift",
    [("torch", 2, _sigmoid, 0.0), ("keras", 2, _hard_sigmoid, 0.0), ("tf1", 2, _sigmoid, 1.0),
     ("tf1", 3, _sigmoid, 1.0), ("keras2", 3, _sigmoid, 0.0)],
)
def test_nlstm_matches_hand_written_step(conv, depth, gate, shift):
    T, B, I, H = 25, 3, 4, 5
    unit = cells.build("nlstm", I, H, layers=2, convention=conv, dtype="float64", seed=1, depth=depth)
    assert unit.state_names == ("h", "c") + tuple(f"c_inner{d}" for d in range(1, depth))
    x = np.random.default_rng(0).normal(0.0, 1.5, size=(T, B, I))
    with torch.no_grad():
        y, final, all_states = unit(torch.from_numpy(x), return_all_states=True)
    y_ref, hist = nlstm_reference(unit, x, gate, shift)
    assert np.abs(y.numpy() - y_ref).max() <= 1e-10
    assert len(final) == len(all_states) == depth + 1
    for k, comp in enumerate(all_states):
        assert comp.shape == (T, 2, B, H) and final[k].shape == (2, B, H)
        ref = np.stack([hist[t][k] for t in range(T)])
        assert np.abs(comp.numpy() - ref).max() <= 1e-10
    # the nesting matters: treating the outer level as a plain LSTM gives different outputs
    plain = cells.build("lstm", I, H, layers=2, convention=conv, dtype="float64")
    for layer in range(2):
        for name in ("W_x", "W_h", "b"):
            getattr(plain.layer_params[layer], name).data.copy_(getattr(unit.layer_params[layer], name))
        if "b_h" in plain.layer_params[layer]._parameters:
            plain.layer_params[layer].b_h.data.zero_()
    with torch.no_grad():
        assert (plain(torch.from_numpy(x))[0] - y).abs().max() > 1e-3


def test_nlstm_state_shapes_depth2():
    unit = cells.build("nlstm", 3, 7, layers=1, depth=2, seed=0)
    st = unit.init_state(4)
    assert unit.state_names == ("h", "c", "c_inner1")
    assert [tuple(s.shape) for s in st] == [(1, 4, 7)] * 3
    y, final = unit(torch.randn(9, 4, 3))
    assert y.shape == (9, 4, 7) and [tuple(s.shape) for s in final] == [(1, 4, 7)] * 3
    y2, final2 = unit(torch.randn(9, 4, 3), final)  # continue from a state
    assert y2.shape == (9, 4, 7)
    assert unit.describe()["depth"] == 2 and unit.describe()["cell"] == "nlstm"


@pytest.mark.parametrize("depth", [2, 3])
def test_nlstm_gradients_reach_every_parameter(depth):
    unit = cells.build("nlstm", 3, 4, layers=2, depth=depth, convention="keras2", seed=0)
    y, state = unit(torch.randn(12, 2, 3))
    (y.pow(2).sum() + sum(s.sum() for s in state)).backward()
    names = [n for n, _ in unit.named_parameters()]
    assert len(names) == 2 * 3 * depth  # W_x, W_h, b per level per layer
    for name, p in unit.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all() and p.grad.abs().sum() > 0, name


@pytest.mark.parametrize("conv", ["torch", "keras", "keras2"])
def test_nlstm_forget_bias_one_at_every_depth(conv):
    H = 6
    unit = cells.build("nlstm", 2, H, depth=3, convention=conv, seed=0)
    p = unit.layer_params[0]
    for b in (p.b, p.b1, p.b2):
        assert torch.equal(b[H : 2 * H], torch.ones(H))
    tf1 = cells.build("nlstm", 2, H, depth=3, convention="tf1", seed=0)
    assert tf1.convention.forget_shift == 1.0  # TF1: +1 added at run time, initial bias 0
    for b in (tf1.layer_params[0].b, tf1.layer_params[0].b1, tf1.layer_params[0].b2):
        assert torch.equal(b, torch.zeros(4 * H))


def _count(unit):
    return sum(p.numel() for p in unit.parameters())


def test_parameter_counts_match_distill_table():
    """Distill "Visualizing memorization in RNNs" (Madsen 2019): 600 units, input 600 (tf1)."""
    nlstm = cells.build("nlstm", 600, 600, layers=1, depth=2, convention="tf1", seed=0)
    gru = cells.build("gru", 600, 600, layers=2, convention="tf1", seed=0)
    lstm = cells.build("lstm", 600, 600, layers=2, convention="tf1", seed=0)
    assert _count(nlstm) == 5_764_800
    assert _count(gru) == 4_323_600
    assert _count(lstm) == 5_764_800
    # and the nlstm.py docstring's formula: (I + H) 4H + 4H + (D - 1)(2H 4H + 4H)
    for depth, I, H in [(2, 3, 5), (4, 7, 2)]:
        u = cells.build("nlstm", I, H, depth=depth, seed=0)
        assert _count(u) == (I + H) * 4 * H + 4 * H + (depth - 1) * (2 * H * 4 * H + 4 * H)
