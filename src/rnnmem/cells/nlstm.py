"""Nested LSTM (Moniz & Krueger 2018, "Nested LSTMs", arXiv:1801.10308).

A Nested LSTM of depth D has cell states c_0 .. c_{D-1}. Level 0 reads ``[x, h]``; level d >= 1
reads the (x~, h~) its outer level hands in. At every level d::

    [i, f, g, o] = x_d W_x^d + h_d W_h^d + b^d
    x~_{d+1} = sigma(i) * act_d(g)        act_0 = identity, act_{d>=1} = tanh
    h~_{d+1} = sigma(f + shift) * c_d

The innermost level updates like a plain LSTM, ``c_{D-1}' = h~_D + x~_D``; every other level
takes the output of the level inside it as its new memory::

    c_d' = tanh(c_{d+1}') * sigma(o_{d+1})     (the inner level's output, "c = inner h")
    h'   = sigma(o_0) * tanh(c_0')

The forget bias is 1 at every depth: a runtime shift under the tf1 convention (as the
TensorFlow implementation hannw/nlstm adds ``forget_bias`` at every level), otherwise the initial
value of each level's forget-gate bias. The identity outer candidate follows the paper and the
project's specification; hannw/nlstm applies tanh there too (not what this unit computes). With
H units and input width I, a layer has (I + H) * 4H + 4H + (D - 1) * (2H * 4H + 4H) parameters.
"""

from __future__ import annotations

import torch

from ..errors import ConfigError
from . import init as winit
from .base import RecurrentUnit


class NestedLSTM(RecurrentUnit):
    kind = "nlstm"
    gates = 4

    def __init__(self, *args, depth: int = 2, **kwargs):
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 2:
            raise ConfigError(f"nlstm depth must be an integer >= 2, got {depth!r}")
        self.depth = depth
        self.state_names = ("h", "c") + tuple(f"c_inner{d}" for d in range(1, depth))
        super().__init__(*args, **kwargs)

    def _extra_describe(self):
        return {"depth": self.depth}

    def _forget_init(self) -> float:
        conv = self.convention
        if conv.forget_shift or conv.forget_bias:
            return conv.forget_bias
        return 1.0

    def _init_layer(self, layer, gen):
        conv = self.convention
        H, dt = self.hidden_size, self.dtype
        p = {}
        for d in range(self.depth):
            fan_in = self.layer_input_size(layer) if d == 0 else H
            suffix = "" if d == 0 else str(d)
            if conv.init == "torch":
                bound = 1.0 / H**0.5
                W_x = winit.uniform((4 * H, fan_in), bound, gen, dt).T
                W_h = winit.uniform((4 * H, H), bound, gen, dt).T
                b = winit.uniform((4 * H,), bound, gen, dt)
            elif conv.init == "tf1":
                kernel = winit.glorot_uniform((fan_in + H, 4 * H), gen, dt)
                W_x, W_h = kernel[:fan_in], kernel[fan_in:]
                b = torch.zeros(4 * H, dtype=dt)
            else:
                W_x = winit.glorot_uniform((fan_in, 4 * H), gen, dt)
                W_h = winit.orthogonal((H, 4 * H), gen, dt)
                b = torch.zeros(4 * H, dtype=dt)
            if conv.init == "chrono":
                bf = winit.chrono_bias(H, conv.chrono_tmax, gen, dt)
                b[H : 2 * H], b[:H] = bf, -bf
            else:
                b[H : 2 * H] = self._forget_init()
            p["W_x" + suffix], p["W_h" + suffix], p["b" + suffix] = W_x, W_h, b
        return {k: v.contiguous() for k, v in p.items()}

    def _cell_step(self, layer, xp_t, st):
        p = self.layer_params[layer]
        H = self.hidden_size
        shift = self.convention.forget_shift
        gate = self._gate
        h, cells = st[0], st[1:]
        pre = xp_t + torch.matmul(h, p.W_h)
        outs_o = []
        x_in = h_in = None
        for d in range(self.depth):
            if d > 0:
                pre = (
                    torch.matmul(x_in, getattr(p, f"W_x{d}"))
                    + torch.matmul(h_in, getattr(p, f"W_h{d}"))
                    + getattr(p, f"b{d}")
                )
            i, f, g, o = pre.split(H, dim=-1)
            x_in = gate(i) * (g if d == 0 else torch.tanh(g))
            h_in = gate(f + shift) * cells[d] if shift else gate(f) * cells[d]
            outs_o.append(o)
        new_cells = [None] * self.depth
        c = h_in + x_in  # innermost level: plain LSTM memory update
        new_cells[-1] = c
        for d in range(self.depth - 1, 0, -1):
            c = torch.tanh(c) * gate(outs_o[d])  # output of level d becomes memory of level d-1
            new_cells[d - 1] = c
        h = gate(outs_o[0]) * torch.tanh(new_cells[0])
        return h, (h, *new_cells)

    def _native_layer(self, layer, inputs, st, keep_all):
        """All steps in the compiled loop (``_native.py``, ``nlstm_*``): the same equations."""
        if type(self)._cell_step is not NestedLSTM._cell_step or (
            type(self)._layer_stepper is not RecurrentUnit._layer_stepper
        ):
            return None
        from . import _native

        lib = _native.library()
        p, H, D = self.layer_params[layer], self.hidden_size, self.depth
        fn = getattr(lib, f"nlstm_{'f32' if inputs.dtype == torch.float32 else 'f64'}")
        T, B = inputs.shape[0], inputs.shape[-2]
        E = inputs.shape[1] if inputs.dim() == 4 else 1
        W0 = p.W_h.contiguous()
        Wx = torch.stack([getattr(p, f"W_x{d}") for d in range(1, D)]).contiguous()
        Wh = torch.stack([getattr(p, f"W_h{d}") for d in range(1, D)]).contiguous()
        bi = torch.stack([getattr(p, f"b{d}").reshape(E, 4 * H) for d in range(1, D)]).contiguous()
        h = st[0].clone(memory_format=torch.contiguous_format)
        c = torch.stack(st[1:]).contiguous()  # [D, (E,) B, H]
        hs = inputs.new_empty(inputs.shape[:-1] + (H,))
        cs = inputs.new_empty((D,) + hs.shape) if keep_all else None
        hard = int(self.convention.gate_activation == "hard_sigmoid")
        chunk = 1024
        for t0 in range(0, T, chunk):  # the projection chunk by chunk (stays in cache)
            t1 = min(T, t0 + chunk)
            xp = self._project(inputs[t0:t1], p.W_x, p.b).contiguous()
            # cs is [D, T, ...]: a chunk writes its own slice of every level via a [D, t1 - t0] view
            cbuf = None if cs is None else inputs.new_empty((D, t1 - t0) + hs.shape[1:])
            rc = fn(t1 - t0, E, B, H, D, xp.data_ptr(), W0.data_ptr(), Wx.data_ptr(), Wh.data_ptr(),
                    bi.data_ptr(), h.data_ptr(), c.data_ptr(), hs[t0].data_ptr(),
                    0 if cbuf is None else cbuf.data_ptr(), hard, float(self.convention.forget_shift))
            if rc != 0:
                raise MemoryError("the compiled nlstm loop could not allocate its scratch buffer")
            if cs is not None:
                cs[:, t0:t1] = cbuf
        final = (h, *c.unbind(0))
        seq = (hs, *cs.unbind(0)) if cs is not None else None
        return hs, final, seq
