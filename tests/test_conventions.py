"""keras, keras2 and tf1 conventions against independent NumPy implementations of the published
equations, with random weights in each framework's own layout; and each convention's init.

The references below are written from the frameworks' sources, not from rnnmem:
- Keras 2.2.4 ``keras/layers/recurrent.py`` (LSTMCell, GRUCell, SimpleRNNCell) and
  ``keras/backend/tensorflow_backend.py`` (hard_sigmoid = clip(0.2 x + 0.5, 0, 1));
  kernels (I, G*H), recurrent kernels (H, G*H); LSTM gates i, f, c, o; GRU gates z, r, h;
  Keras >= 2.3 / TF2 GRU ``reset_after=True`` with bias shape (2, 3H).
- TF1 ``tensorflow/python/ops/rnn_cell_impl.py``: BasicLSTMCell (kernel over [x, h], gates
  i, j, f, o, ``forget_bias`` added at run time), GRUCell (gates kernel r, u and candidate
  kernel, both over [x, h]), BasicRNNCell.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rnnmem import cells

T, B, I, H = 40, 3, 4, 5


# ------------------------------------------------------------------------------ NumPy references
def np_sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def np_hard_sigmoid(x):
    return np.clip(0.2 * x + 0.5, 0.0, 1.0)


def keras_lstm(x, kernel, rec, bias, act_gate):
    h = np.zeros((x.shape[1], rec.shape[0]))
    c = np.zeros_like(h)
    n = rec.shape[0]
    ys = []
    for x_t in x:
        z = x_t @ kernel + bias + h @ rec
        i = act_gate(z[:, :n])
        f = act_gate(z[:, n : 2 * n])
        c = f * c + i * np.tanh(z[:, 2 * n : 3 * n])
        o = act_gate(z[:, 3 * n :])
        h = o * np.tanh(c)
        ys.append(h)
    return np.stack(ys), h, c


def keras_gru(x, kernel, rec, bias, act_gate, reset_after):
    n = rec.shape[0]
    h = np.zeros((x.shape[1], n))
    if reset_after:
        b_in, b_rec = bias[0], bias[1]
    else:
        b_in, b_rec = bias, np.zeros_like(bias)
    ys = []
    for x_t in x:
        xz, xr, xh = (x_t @ kernel[:, k * n : (k + 1) * n] + b_in[k * n : (k + 1) * n] for k in range(3))
        if reset_after:
            rz, rr, rh = (h @ rec[:, k * n : (k + 1) * n] + b_rec[k * n : (k + 1) * n] for k in range(3))
            z = act_gate(xz + rz)
            r = act_gate(xr + rr)
            hh = np.tanh(xh + r * rh)
        else:
            z = act_gate(xz + h @ rec[:, :n])
            r = act_gate(xr + h @ rec[:, n : 2 * n])
            hh = np.tanh(xh + (r * h) @ rec[:, 2 * n :])
        h = z * h + (1 - z) * hh
        ys.append(h)
    return np.stack(ys), h


def keras_simple_rnn(x, kernel, rec, bias):
    h = np.zeros((x.shape[1], rec.shape[0]))
    ys = []
    for x_t in x:
        h = np.tanh(x_t @ kernel + bias + h @ rec)
        ys.append(h)
    return np.stack(ys), h


def tf1_basic_lstm(x, kernel, bias, forget_bias=1.0):
    n = kernel.shape[1] // 4
    h = np.zeros((x.shape[1], n))
    c = np.zeros_like(h)
    ys = []
    for x_t in x:
        gates = np.concatenate([x_t, h], axis=1) @ kernel + bias
        i, j, f, o = (gates[:, k * n : (k + 1) * n] for k in range(4))
        c = c * np_sigmoid(f + forget_bias) + np_sigmoid(i) * np.tanh(j)
        h = np.tanh(c) * np_sigmoid(o)
        ys.append(h)
    return np.stack(ys), h, c


def tf1_gru(x, gate_kernel, gate_bias, cand_kernel, cand_bias):
    n = cand_kernel.shape[1]
    h = np.zeros((x.shape[1], n))
    ys = []
    for x_t in x:
        value = np_sigmoid(np.concatenate([x_t, h], axis=1) @ gate_kernel + gate_bias)
        r, u = value[:, :n], value[:, n:]
        c = np.tanh(np.concatenate([x_t, r * h], axis=1) @ cand_kernel + cand_bias)
        h = u * h + (1 - u) * c
        ys.append(h)
    return np.stack(ys), h


def tf1_basic_rnn(x, kernel, bias):
    h = np.zeros((x.shape[1], kernel.shape[1]))
    ys = []
    for x_t in x:
        h = np.tanh(np.concatenate([x_t, h], axis=1) @ kernel + bias)
        ys.append(h)
    return np.stack(ys), h


# ------------------------------------------------------------------------------ helpers
def _rng(seed):
    return np.random.default_rng(seed)


def _w(rng, *shape, scale=0.6):
    return rng.uniform(-scale, scale, size=shape)


def _x(rng):
    return rng.normal(0.0, 2.0, size=(T, B, I))  # large enough to drive gates into hard_sigmoid's clip


def _run(unit, x, fused):
    unit.use_fused = fused
    with torch.no_grad():
        y, state = unit(torch.from_numpy(x))
    return y.numpy(), tuple(s.numpy() for s in state)


def _paths(unit):
    return (True, False) if unit.fusable() else (False,)


def _stack_keras(ref_fn, x, weights):
    """Two stacked layers: the reference runs layer by layer."""
    outs, finals = x, []
    for w in weights:
        res = ref_fn(outs, *w)
        outs, finals = res[0], finals + [res[1:]]
    return outs, finals


# ------------------------------------------------------------------------------ Keras
@pytest.mark.parametrize("conv", ["keras", "keras2"])
def test_keras_lstm_matches_numpy(conv):
    rng = _rng(0)
    act = np_hard_sigmoid if conv == "keras" else np_sigmoid
    weights = [(_w(rng, fan, 4 * H), _w(rng, H, 4 * H), _w(rng, 4 * H)) for fan in (I, H)]
    x = _x(rng)
    y_ref, finals = _stack_keras(lambda a, k, r, b: keras_lstm(a, k, r, b, act), x, weights)
    unit = cells.build("lstm", I, H, layers=2, convention=conv, dtype="float64", seed=0)
    for layer, w in enumerate(weights):
        cells.load_keras(unit, layer, *w)
    for fused in _paths(unit):
        y, (h, c) = _run(unit, x, fused)
        assert np.abs(y - y_ref).max() <= 1e-6
        for layer, (h_ref, c_ref) in enumerate(finals):
            assert np.abs(h[layer] - h_ref).max() <= 1e-6 and np.abs(c[layer] - c_ref).max() <= 1e-6
    # the test discriminates: the other gate activation gives a clearly different sequence
    other = np_sigmoid if conv == "keras" else np_hard_sigmoid
    y_other, _ = _stack_keras(lambda a, k, r, b: keras_lstm(a, k, r, b, other), x, weights)
    assert np.abs(y - y_other).max() > 1e-3


@pytest.mark.parametrize("conv", ["keras", "keras2"])
def test_keras_gru_matches_numpy(conv):
    rng = _rng(1)
    act, reset_after = (np_hard_sigmoid, False) if conv == "keras" else (np_sigmoid, True)
    bias_shape = (2, 3 * H) if reset_after else (3 * H,)
    weights = [(_w(rng, fan, 3 * H), _w(rng, H, 3 * H), _w(rng, *bias_shape)) for fan in (I, H)]
    x = _x(rng)
    y_ref, finals = _stack_keras(lambda a, k, r, b: keras_gru(a, k, r, b, act, reset_after), x, weights)
    unit = cells.build("gru", I, H, layers=2, convention=conv, dtype="float64", seed=0)
    for layer, w in enumerate(weights):
        cells.load_keras(unit, layer, *w)
    for fused in _paths(unit):
        y, (h,) = _run(unit, x, fused)
        assert np.abs(y - y_ref).max() <= 1e-6
        for layer, (h_ref,) in enumerate(finals):
            assert np.abs(h[layer] - h_ref).max() <= 1e-6
    # reset before vs after is distinguishable on these weights
    if not reset_after:
        y_after, _ = _stack_keras(
            lambda a, k, r, b: keras_gru(a, k, r, np.stack([b, np.zeros_like(b)]), act, True), x, weights
        )
        assert np.abs(y - y_after).max() > 1e-3


@pytest.mark.parametrize("conv", ["keras", "keras2"])
def test_keras_simple_rnn_matches_numpy(conv):
    rng = _rng(2)
    weights = [(_w(rng, fan, H), _w(rng, H, H), _w(rng, H)) for fan in (I, H)]
    x = _x(rng)
    y_ref, _ = _stack_keras(keras_simple_rnn, x, weights)
    unit = cells.build("rnn", I, H, layers=2, convention=conv, dtype="float64", seed=0)
    for layer, w in enumerate(weights):
        cells.load_keras(unit, layer, *w)
    for fused in _paths(unit):
        assert np.abs(_run(unit, x, fused)[0] - y_ref).max() <= 1e-6


# ------------------------------------------------------------------------------ TF1
def test_tf1_basic_lstm_matches_numpy():
    rng = _rng(3)
    weights = [(_w(rng, fan + H, 4 * H), _w(rng, 4 * H)) for fan in (I, H)]
    x = _x(rng)
    y_ref, finals = _stack_keras(tf1_basic_lstm, x, weights)
    unit = cells.build("lstm", I, H, layers=2, convention="tf1", dtype="float64", seed=0)
    for layer, (k, b) in enumerate(weights):
        cells.load_tf1(unit, layer, k, b)
    for fused in _paths(unit):
        y, (h, c) = _run(unit, x, fused)
        assert np.abs(y - y_ref).max() <= 1e-6
        for layer, (h_ref, c_ref) in enumerate(finals):
            assert np.abs(h[layer] - h_ref).max() <= 1e-6 and np.abs(c[layer] - c_ref).max() <= 1e-6
    y_no_shift, _ = _stack_keras(lambda a, k, b: tf1_basic_lstm(a, k, b, forget_bias=0.0), x, weights)
    assert np.abs(y - y_no_shift).max() > 1e-3  # the runtime forget bias matters and is applied


def test_tf1_gru_matches_numpy():
    rng = _rng(4)
    weights = [
        (_w(rng, fan + H, 2 * H), _w(rng, 2 * H), _w(rng, fan + H, H), _w(rng, H)) for fan in (I, H)
    ]
    x = _x(rng)
    y_ref, finals = _stack_keras(tf1_gru, x, weights)
    unit = cells.build("gru", I, H, layers=2, convention="tf1", dtype="float64", seed=0)
    for layer, (gk, gb, ck, cb) in enumerate(weights):
        cells.load_tf1(unit, layer, gates_kernel=gk, gates_bias=gb, candidate_kernel=ck, candidate_bias=cb)
    for fused in _paths(unit):
        y, (h,) = _run(unit, x, fused)
        assert np.abs(y - y_ref).max() <= 1e-6
        for layer, (h_ref,) in enumerate(finals):
            assert np.abs(h[layer] - h_ref).max() <= 1e-6


def test_tf1_basic_rnn_matches_numpy():
    rng = _rng(5)
    weights = [(_w(rng, fan + H, H), _w(rng, H)) for fan in (I, H)]
    x = _x(rng)
    y_ref, _ = _stack_keras(tf1_basic_rnn, x, weights)
    unit = cells.build("rnn", I, H, layers=2, convention="tf1", dtype="float64", seed=0)
    for layer, (k, b) in enumerate(weights):
        cells.load_tf1(unit, layer, k, b)
    for fused in _paths(unit):
        assert np.abs(_run(unit, x, fused)[0] - y_ref).max() <= 1e-6


def test_loaders_reject_mismatched_weights():
    unit = cells.build("gru", I, H, convention="keras", seed=0)
    with pytest.raises(cells.ConfigError, match="has no parameter 'b_h'.*keras2"):
        cells.load_keras(unit, 0, np.zeros((I, 3 * H)), np.zeros((H, 3 * H)), np.zeros((2, 3 * H)))
    with pytest.raises(cells.ConfigError, match=r"layer 0 W_x: expected shape \(4, 15\), got \(3, 15\)"):
        cells.load_keras(unit, 0, np.zeros((3, 3 * H)), np.zeros((H, 3 * H)), np.zeros(3 * H))
    with pytest.raises(cells.ConfigError, match=r"layer must be 0\.\.0"):
        cells.load_keras(unit, 1, np.zeros((I, 3 * H)), np.zeros((H, 3 * H)), np.zeros(3 * H))
    with pytest.raises(cells.ConfigError, match="TF1 kernel must have 9 rows"):
        cells.load_tf1(cells.build("lstm", I, H, convention="tf1"), 0, np.zeros((I, 4 * H)), np.zeros(4 * H))


# ------------------------------------------------------------------------------ init statistics
def _params(unit, layer=0):
    return {k: v.detach().double() for k, v in unit.layer_params[layer].named_parameters()}


def _assert_glorot(w, fan_in, fan_out):
    """Within the Glorot limit and filling it (a wrong fan would give a visibly smaller range)."""
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    assert w.abs().max() <= limit
    assert w.abs().max() >= 0.98 * limit
    assert abs(w.mean().item()) < 0.1 * limit


def _assert_orthogonal(w):
    eye = torch.eye(w.shape[0], dtype=w.dtype)
    assert (w @ w.T - eye).abs().max() <= 1e-5


@pytest.mark.parametrize("conv", ["keras", "keras2"])
@pytest.mark.parametrize("cell,gates", [("lstm", 4), ("gru", 3), ("rnn", 1)])
def test_keras_init(cell, gates, conv):
    I_, H_ = 16, 32
    unit = cells.build(cell, I_, H_, layers=2, convention=conv, seed=7)
    for layer, fan_in in enumerate((I_, H_)):
        p = _params(unit, layer)
        assert unit.layer_params[layer].W_h.dtype == torch.float32
        _assert_glorot(p["W_x"], fan_in, gates * H_)
        _assert_orthogonal(unit.layer_params[layer].W_h)  # float32, the whole (H, G*H) matrix
        b = p["b"]
        if cell == "lstm":  # unit_forget_bias: forget slice exactly 1, the rest 0
            assert torch.equal(b[H_ : 2 * H_], torch.ones(H_, dtype=b.dtype))
            assert torch.equal(torch.cat([b[:H_], b[2 * H_ :]]), torch.zeros(3 * H_, dtype=b.dtype))
        else:
            assert torch.equal(b, torch.zeros_like(b))
        has_bh = cell == "gru" and conv == "keras2"  # reset_after: bias (2, 3H)
        assert ("b_h" in p) == has_bh
        if has_bh:
            assert torch.equal(p["b_h"], torch.zeros_like(p["b_h"]))


def test_tf1_init():
    I_, H_ = 16, 32
    lstm = _params(cells.build("lstm", I_, H_, convention="tf1", seed=1))
    _assert_glorot(torch.cat([lstm["W_x"], lstm["W_h"]]), I_ + H_, 4 * H_)  # one kernel over [x, h]
    assert torch.equal(lstm["b"], torch.zeros_like(lstm["b"]))  # forget bias is a runtime shift
    assert cells.build("lstm", I_, H_, convention="tf1").convention.forget_shift == 1.0
    gru = _params(cells.build("gru", I_, H_, convention="tf1", seed=1))
    kernel = torch.cat([gru["W_x"], gru["W_h"]])
    _assert_glorot(kernel[:, : 2 * H_], I_ + H_, 2 * H_)  # gates kernel
    _assert_glorot(kernel[:, 2 * H_ :], I_ + H_, H_)  # candidate kernel
    assert torch.equal(gru["b"][: 2 * H_], torch.ones(2 * H_, dtype=torch.float64))  # gate bias 1
    assert torch.equal(gru["b"][2 * H_ :], torch.zeros(H_, dtype=torch.float64))
    assert "b_h" not in gru


def test_torch_init():
    H_ = 32
    unit = cells.build("gru", 8, H_, layers=2, convention="torch", seed=3)
    bound = 1.0 / math.sqrt(H_)
    for layer in range(2):
        for name, w in _params(unit, layer).items():
            assert w.abs().max() <= bound and w.abs().max() >= 0.9 * bound, name


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_chrono_init_range(cell):
    H_, tmax = 256, 50.0
    unit = cells.build(cell, 4, H_, convention="keras", init="chrono", chrono_tmax=tmax, seed=2)
    b = _params(unit)["b"]
    bf = b[H_ : 2 * H_]  # LSTM forget gate; GRU update gate z (h' = z h + (1 - z) n)
    lo, hi = 0.0, math.log(tmax - 1)  # b_f = log U[1, tmax - 1]
    assert bf.min() >= lo and bf.max() <= hi
    assert bf.max() >= math.log(0.9 * (tmax - 1)) and bf.min() <= math.log(1 + 0.1 * (tmax - 2))
    if cell == "lstm":
        assert torch.equal(b[:H_], -bf)  # input gate: b_i = -b_f
    other = cells.build(cell, 4, H_, convention="keras", init="chrono", chrono_tmax=tmax, seed=3)
    assert not torch.equal(_params(other)["b"], b)


def test_convention_option_overrides():
    unit = cells.build("lstm", 2, 3, convention="keras", gate_activation="sigmoid", forget_bias=2.0, seed=0)
    assert unit.convention.name == "keras" and unit.convention.gate_activation == "sigmoid"
    assert unit.fusable()  # keras with sigmoid gates maps into nn.LSTM
    assert torch.equal(unit.layer_params[0].b[3:6], torch.full((3,), 2.0))
    torch_fb = cells.build("lstm", 2, 3, convention="torch", forget_bias=1.0, seed=0).layer_params[0]
    assert torch.equal(torch_fb.b[3:6] + torch_fb.b_h[3:6], torch.ones(3))
