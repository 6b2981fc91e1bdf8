"""Elman RNN, LSTM and GRU with selectable conventions (see ``conventions.py``).

Equations (PyTorch gate order, ``x @ W`` layout; ``sigma`` is the convention's gate activation):

RNN (Elman 1990)::

    h' = act(x W_x + b + h W_h + b_h),  act = tanh | relu

LSTM (Hochreiter & Schmidhuber 1997, with forget gate, Gers et al. 2000)::

    [i, f, g, o] = x W_x + b + h W_h + b_h
    c' = sigma(f + forget_shift) * c + sigma(i) * tanh(g)
    h' = sigma(o) * tanh(c')

GRU (Cho et al. 2014)::

    [r, z] = sigma(x W_x + b + h W_h + b_h)[:2H]
    n = tanh(x W_n + b_n + r * (h U_n + b_hn))      reset after  (PyTorch, cuDNN, Keras reset_after)
    n = tanh(x W_n + b_n + (r * h) U_n)             reset before (Keras 2.2.4, TF1 GRUCell)
    h' = z * h + (1 - z) * n
"""

from __future__ import annotations

import torch
from torch import _VF

from ..errors import ConfigError
from . import init as winit
from .base import RecurrentUnit


class _FusedMixin:
    """Runs torch's own fused RNN kernel with weights mapped from rnnmem's layout."""

    _vf_name = ""

    def _flat_weights(self):
        weights = []
        for layer, p in enumerate(self.layer_params):
            b = p.b
            shift = self._fused_bias_shift()
            if shift is not None:
                b = b + shift
            b_h = p.b_h if hasattr(p, "b_h") else torch.zeros_like(p.b)
            weights += [p.W_x.T, p.W_h.T, b, b_h]
        return weights

    def _fused_bias_shift(self):
        return None

    def _forward_fused(self, x, state):
        fn = getattr(_VF, self._vf_name)
        w = self._flat_weights()
        if len(state) == 2:
            y, h, c = fn(x, state, w, True, self.num_layers, 0.0, self.training, False, False)
            return y, (h, c)
        y, h = fn(x, state[0], w, True, self.num_layers, 0.0, self.training, False, False)
        return y, (h,)


class RNN(_FusedMixin, RecurrentUnit):
    """Elman RNN with tanh or relu activation."""

    kind = "rnn"
    gates = 1
    state_names = ("h",)

    def __init__(self, *args, nonlinearity: str = "tanh", **kwargs):
        if nonlinearity not in ("tanh", "relu"):
            raise ConfigError(f"nonlinearity must be 'tanh' or 'relu', got {nonlinearity!r}")
        self.nonlinearity = nonlinearity
        super().__init__(*args, **kwargs)
        self._vf_name = "rnn_tanh" if nonlinearity == "tanh" else "rnn_relu"

    def _extra_describe(self):
        return {"nonlinearity": self.nonlinearity}

    def fusable(self):
        return self.ensemble is None

    def _cell_step(self, layer, xp_t, st):
        p = self.layer_params[layer]
        pre = xp_t + torch.matmul(st[0], p.W_h)
        if hasattr(p, "b_h"):
            pre = pre + p.b_h
        h = torch.tanh(pre) if self.nonlinearity == "tanh" else torch.relu(pre)
        return h, (h,)


class LSTM(_FusedMixin, RecurrentUnit):
    """LSTM with forget gate; ``forget_shift`` is TF1's runtime forget bias."""

    kind = "lstm"
    gates = 4
    state_names = ("h", "c")
    _vf_name = "lstm"

    def _adjust_biases(self, p, b_h, gen):
        H, conv = self.hidden_size, self.convention
        if conv.init == "chrono":
            bf = winit.chrono_bias(H, conv.chrono_tmax, gen, self.dtype)
            p["b"][H : 2 * H] = bf
            p["b"][:H] = -bf
        elif conv.forget_bias:
            p["b"][H : 2 * H] = conv.forget_bias
            if conv.two_biases:
                b_h[H : 2 * H] = 0.0

    def fusable(self):
        return self.ensemble is None and self.convention.gate_activation == "sigmoid"

    def _fused_bias_shift(self):
        shift = self.convention.forget_shift
        if not shift:
            return None
        H = self.hidden_size
        v = torch.zeros(4 * H, dtype=self.dtype, device=self.layer_params[0].b.device)
        v[H : 2 * H] = shift
        return v

    def _cell_step(self, layer, xp_t, st):
        p = self.layer_params[layer]
        h, c = st
        H = self.hidden_size
        pre = xp_t + torch.matmul(h, p.W_h)
        if hasattr(p, "b_h"):
            pre = pre + p.b_h
        i, f, g, o = pre.split(H, dim=-1)
        shift = self.convention.forget_shift
        if shift:
            f = f + shift
        gate = self._gate
        c = gate(f) * c + gate(i) * torch.tanh(g)
        h = gate(o) * torch.tanh(c)
        return h, (h, c)


class GRU(_FusedMixin, RecurrentUnit):
    """GRU with reset gate applied before or after the recurrent product."""

    kind = "gru"
    gates = 3
    state_names = ("h",)
    _vf_name = "gru"

    def _has_second_bias(self):
        conv = self.convention
        two = conv.two_biases if conv.gru_two_biases is None else conv.gru_two_biases
        return two

    def _adjust_biases(self, p, b_h, gen):
        H, conv = self.hidden_size, self.convention
        if conv.init == "tf1":
            p["b"][: 2 * H] = 1.0  # TF1 GRUCell: gate bias initialised to 1
        elif conv.init == "chrono":
            # z plays the role of the forget gate: h' = z h + (1 - z) n
            p["b"][H : 2 * H] = winit.chrono_bias(H, conv.chrono_tmax, gen, self.dtype)

    def fusable(self):
        conv = self.convention
        return self.ensemble is None and conv.gate_activation == "sigmoid" and conv.gru_reset == "after"

    def _cell_step(self, layer, xp_t, st):
        p = self.layer_params[layer]
        (h,) = st
        H = self.hidden_size
        W_h = p.W_h
        b_h = p.b_h if hasattr(p, "b_h") else None
        rec_rz = torch.matmul(h, W_h[..., : 2 * H])
        if b_h is not None:
            rec_rz = rec_rz + b_h[..., : 2 * H]
        rz = self._gate(xp_t[..., : 2 * H] + rec_rz)
        r, z = rz.split(H, dim=-1)
        x_n = xp_t[..., 2 * H :]
        if self.convention.gru_reset == "after":
            rec_n = torch.matmul(h, W_h[..., 2 * H :])
            if b_h is not None:
                rec_n = rec_n + b_h[..., 2 * H :]
            n = torch.tanh(x_n + r * rec_n)
        else:
            rec_n = torch.matmul(r * h, W_h[..., 2 * H :])
            if b_h is not None:
                rec_n = rec_n + b_h[..., 2 * H :]
            n = torch.tanh(x_n + rec_n)
        h = z * h + (1 - z) * n
        return h, (h,)
