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
    n = tanh(x W_n + b_n + (r * h) U_n + b_hn)      reset before (Keras 2.2.4, TF1 GRUCell)
    h' = z * h + (1 - z) * n   (computed as n + z * (h - n), as PyTorch does)

Two paths compute these equations: torch's fused kernel (``_VF.rnn_tanh/rnn_relu/lstm/gru``, used
when the configuration is exactly what it computes, see ``fusable()``) and a step loop. The loop
folds every bias that is not multiplied by a gate (``b_h``, TF1's forget shift, and under reset
before also ``b_hn``) into the input projection, so each step is one fused multiply-add
(``addmm``) plus the gate arithmetic; both paths agree to float rounding (tests/test_cells.py).
"""

from __future__ import annotations

import torch
from torch import _VF

from ..errors import ConfigError
from . import _native
from . import init as winit
from .base import RecurrentUnit


def _mm(bias: torch.Tensor | None, h: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
    """``bias + h @ W`` in one kernel (``addmm``; ``baddbmm`` for ensembles ``h[E, B, H]``)."""
    if bias is None:
        return torch.matmul(h, W)
    if h.dim() == 2:
        return torch.addmm(bias, h, W)
    return torch.baddbmm(bias, h, W)


def _add(a: torch.Tensor, b: torch.Tensor | None) -> torch.Tensor:
    return a if b is None else a + b


def _native_run(name: str, project, inputs: torch.Tensor, W_h: torch.Tensor, st, H: int, keep_c: bool,
                *flags, bhn: torch.Tensor | None = None, chunk: int = 1024):
    """Run the compiled ``name`` loop (``lstm``, ``gru``, ``rnn``; see ``_native.py``) over all
    steps of ``inputs[T, (E,) B, I]``, whose input projection ``project(inputs[t0:t1])`` (``[.., G*H]``)
    is computed ``chunk`` steps at a time (it stays in cache; a 100,000-step projection would not).
    Returns ``(hs[T, (E,) B, H], final state, per-step states)``; the per-step states are
    ``(hs, cs)`` for the LSTM (``cs`` only with ``keep_c``), else ``(hs,)``."""
    lib = _native.library()
    fn = getattr(lib, f"{name}_{'f32' if inputs.dtype == torch.float32 else 'f64'}")
    W_h = W_h.contiguous()
    T, B = inputs.shape[0], inputs.shape[-2]
    E = inputs.shape[1] if inputs.dim() == 4 else 1
    state = [s.clone(memory_format=torch.contiguous_format) for s in st]
    hs = inputs.new_empty(inputs.shape[:-1] + (H,))
    cs = hs.new_empty(hs.shape) if name == "lstm" and keep_c else None
    if bhn is not None:
        bhn = bhn.contiguous()
    stride = H if bhn is not None and bhn.dim() > 1 else 0  # GRU ensembles: one b_hn row per member
    for t0 in range(0, T, chunk):
        t1 = min(T, t0 + chunk)
        xp = project(inputs[t0:t1]).contiguous()
        if name == "lstm":
            rc = fn(t1 - t0, E, B, H, xp.data_ptr(), W_h.data_ptr(), state[0].data_ptr(), state[1].data_ptr(),
                    hs[t0].data_ptr(), 0 if cs is None else cs[t0].data_ptr(), *flags)
        elif name == "gru":
            rc = fn(t1 - t0, E, B, H, xp.data_ptr(), W_h.data_ptr(), 0 if bhn is None else bhn.data_ptr(),
                    stride, state[0].data_ptr(), hs[t0].data_ptr(), *flags)
        else:
            rc = fn(t1 - t0, E, B, H, xp.data_ptr(), W_h.data_ptr(), state[0].data_ptr(), hs[t0].data_ptr(),
                    *flags)
        if rc != 0:
            raise MemoryError(f"the compiled {name} loop could not allocate its scratch buffer")
    return hs, tuple(state), ((hs, cs) if name == "lstm" else (hs,))


class _FusedMixin:
    """Runs torch's own fused RNN kernel with weights mapped from rnnmem's layout."""

    _vf_name = ""

    def _flat_weights(self):
        """torch's layout ``[w_ih, w_hh, b_ih, b_hh] * layers`` (``w[G*H, fan_in]``).

        The RNN and GRU kernels multiply by transposed views of rnnmem's weights directly. The
        LSTM kernel on CPU (oneDNN) is several times slower per call when its weights are
        non-contiguous or freshly allocated (measured 17 ms vs 2 ms for one step at I = 128,
        H = 512), so without autograd the LSTM's weights are copied
        into persistent contiguous buffers, refreshed at every call (never stale, whatever
        changed the parameters); with autograd enabled they are fresh contiguous copies, because a
        recorded graph keeps the weights it used (even frozen ones, when only the inputs need
        gradients) and a refreshed buffer would invalidate it."""
        shift = self._fused_bias_shift()
        fresh = []
        for p in self.layer_params:
            b_h = p.b_h if "b_h" in p._parameters else torch.zeros_like(p.b)
            fresh += [p.W_x.T, p.W_h.T, _add(p.b, shift), b_h]
        if self._vf_name != "lstm":
            return fresh
        if torch.is_grad_enabled():  # a graph may save the weights (inputs may need grads): never reuse
            return [w.contiguous() for w in fresh]
        bufs = self.__dict__.get("_fused_buffers")
        if bufs is None or any(
            b.shape != w.shape or b.dtype != w.dtype or b.device != w.device for b, w in zip(bufs, fresh)
        ):
            bufs = [torch.empty(w.shape, dtype=w.dtype, device=w.device) for w in fresh]
            self.__dict__["_fused_buffers"] = bufs
        with torch.no_grad():
            for b, w in zip(bufs, fresh):
                b.copy_(w)
        return bufs

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

    def _gate_fn(self):
        """The gate activation as one out-of-place call over all gate blocks it is given."""
        if self.convention.gate_activation != "hard_sigmoid":
            return torch.sigmoid
        ref = self.layer_params[0].W_x
        slope, offset = ref.new_tensor(0.2), ref.new_tensor(0.5)

        def gate(x):  # == hard_sigmoid(x) bit for bit; tensor constants skip scalar wrapping
            return torch.clamp(torch.add(torch.mul(x, slope), offset), 0.0, 1.0)

        return gate

    @staticmethod
    def _b_h(p) -> torch.Tensor | None:
        return p.b_h if "b_h" in p._parameters else None


# ---------------------------------------------------------------------------- RNN
def _rnn_step(pre_x: torch.Tensor, h: torch.Tensor, W_h: torch.Tensor, act) -> torch.Tensor:
    """``h' = act(pre_x + h W_h)`` where ``pre_x = x W_x + b + b_h``."""
    return act(_mm(pre_x, h, W_h))


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
        """See ``RecurrentUnit.fusable``: torch's ``rnn_tanh`` / ``rnn_relu`` kernel.

        Returns
        -------
        bool
            True unless the unit is an ensemble (every convention's RNN maths is the kernel's).
        """
        return self.ensemble is None

    def _act(self):
        return torch.tanh if self.nonlinearity == "tanh" else torch.relu

    def _cell_step(self, layer, xp_t, st):
        p = self.layer_params[layer]
        h = _rnn_step(_add(xp_t, self._b_h(p)), st[0], p.W_h, self._act())
        return h, (h,)

    def _layer_stepper(self, layer, inputs):
        if type(self)._cell_step is not RNN._cell_step:
            return super()._layer_stepper(layer, inputs)
        p = self.layer_params[layer]
        W_h, act = p.W_h, self._act()
        xp = self._project(inputs, p.W_x, _add(p.b, self._b_h(p)))

        def step(xp_t, st):
            h = act(_mm(xp_t, st[0], W_h))
            return h, (h,)

        return xp.unbind(0), step

    def _native_layer(self, layer, inputs, st, keep_all):
        if type(self)._cell_step is not RNN._cell_step or type(self)._layer_stepper is not RNN._layer_stepper:
            return None
        p = self.layer_params[layer]
        bias = _add(p.b, self._b_h(p))
        return _native_run("rnn", lambda x: self._project(x, p.W_x, bias), inputs, p.W_h, st, self.hidden_size,
                           False, int(self.nonlinearity == "relu"))


# ---------------------------------------------------------------------------- LSTM
def _lstm_step(pre_x, h, c, W_h, H: int, gate):
    """One LSTM step; ``pre_x = x W_x + b + b_h`` with the forget shift already added to f.

    ``gate`` is applied to all four blocks in one call (the g block's value is unused)."""
    pre = _mm(pre_x, h, W_h)
    i, f, _, o = gate(pre).split(H, dim=-1)
    g = torch.tanh(pre.narrow(-1, 2 * H, H))
    c = torch.addcmul(f * c, i, g)
    h = o * torch.tanh(c)
    return h, c


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
            if conv.two_biases:
                b_h[: 2 * H] = 0.0
        elif conv.forget_bias:
            p["b"][H : 2 * H] = conv.forget_bias
            if conv.two_biases:
                b_h[H : 2 * H] = 0.0

    def fusable(self):
        """See ``RecurrentUnit.fusable``: torch's ``lstm`` kernel (a forget shift is folded into b).

        Returns
        -------
        bool
            True for a single network (no ensemble) with sigmoid gates.
        """
        return self.ensemble is None and self.convention.gate_activation == "sigmoid"

    def _fused_bias_shift(self):
        shift = self.convention.forget_shift
        if not shift:
            return None
        H = self.hidden_size
        v = torch.zeros(4 * H, dtype=self.dtype, device=self.layer_params[0].b.device)
        v[H : 2 * H] = shift
        return v

    def _constant_bias(self, p) -> torch.Tensor | None:
        """Everything added to the pre-activation besides ``x W_x + b``: ``b_h`` and the shift."""
        shift = self._fused_bias_shift()
        b_h = self._b_h(p)
        if b_h is None:
            return shift
        return _add(b_h, shift)

    def _cell_step(self, layer, xp_t, st):
        p = self.layer_params[layer]
        h, c = _lstm_step(_add(xp_t, self._constant_bias(p)), st[0], st[1], p.W_h,
                          self.hidden_size, self._gate_fn())
        return h, (h, c)

    def _layer_stepper(self, layer, inputs):
        if type(self)._cell_step is not LSTM._cell_step:
            return super()._layer_stepper(layer, inputs)
        p = self.layer_params[layer]
        W_h, H, gate = p.W_h, self.hidden_size, self._gate_fn()
        xp = self._project(inputs, p.W_x, _add(p.b, self._constant_bias(p)))

        def step(xp_t, st):
            h, c = _lstm_step(xp_t, st[0], st[1], W_h, H, gate)
            return h, (h, c)

        return xp.unbind(0), step

    def _native_layer(self, layer, inputs, st, keep_all):
        if type(self)._cell_step is not LSTM._cell_step or type(self)._layer_stepper is not LSTM._layer_stepper:
            return None
        p = self.layer_params[layer]
        bias = _add(p.b, self._constant_bias(p))
        hard = int(self.convention.gate_activation == "hard_sigmoid")
        return _native_run("lstm", lambda x: self._project(x, p.W_x, bias), inputs, p.W_h, st, self.hidden_size,
                           keep_all, hard)


# ---------------------------------------------------------------------------- GRU
def _gru_step(x_r, x_z, x_n, h, W_r, W_z, W_n, b_hn, reset_after: bool, gate):
    """One GRU step on pre-split blocks. ``x_k = x W_k + b_k (+ b_hk)`` for r and z; ``x_n``
    includes ``b_hn`` under reset before, while under reset after ``b_hn`` (``None`` for one
    bias) stays on the recurrent product that r gates."""
    r = gate(_mm(x_r, h, W_r))
    z = gate(_mm(x_z, h, W_z))
    if reset_after:
        n = torch.tanh(torch.addcmul(x_n, r, _mm(b_hn, h, W_n)))
    else:
        n = torch.tanh(_mm(x_n, r * h, W_n))
    return torch.lerp(n, h, z)  # n + z (h - n) = z h + (1 - z) n


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

    def _tf1_kernel_blocks(self):
        return (2, 1)  # TF1 GRUCell: gates kernel (r, u) and candidate kernel

    def _adjust_biases(self, p, b_h, gen):
        H, conv = self.hidden_size, self.convention
        if conv.init == "tf1":
            p["b"][: 2 * H] = 1.0  # TF1 GRUCell: gate bias initialised to 1
        elif conv.init == "chrono":
            # z plays the role of the forget gate: h' = z h + (1 - z) n
            p["b"][H : 2 * H] = winit.chrono_bias(H, conv.chrono_tmax, gen, self.dtype)
            if self._has_second_bias():
                b_h[H : 2 * H] = 0.0

    def fusable(self):
        """See ``RecurrentUnit.fusable``: torch's ``gru`` kernel (reset after, PyTorch's maths).

        Returns
        -------
        bool
            True for a single network (no ensemble) with sigmoid gates and ``gru_reset == "after"``.
        """
        conv = self.convention
        return self.ensemble is None and conv.gate_activation == "sigmoid" and conv.gru_reset == "after"

    def _split_params(self, p):
        """``(W_r, W_z, W_n, fold, b_hn)``: recurrent blocks, the bias folded into the input
        projection and the bias kept on the reset-gated product (reset after only)."""
        H = self.hidden_size
        W_r, W_z, W_n = (w.contiguous() for w in p.W_h.split(H, dim=-1))
        b_h = self._b_h(p)
        after = self.convention.gru_reset == "after"
        if b_h is None:
            return W_r, W_z, W_n, None, None
        if after:
            fold = torch.cat([b_h[..., : 2 * H], torch.zeros_like(b_h[..., 2 * H :])], dim=-1)
            return W_r, W_z, W_n, fold, b_h[..., 2 * H :]
        return W_r, W_z, W_n, b_h, None

    def _cell_step(self, layer, xp_t, st):
        p = self.layer_params[layer]
        W_r, W_z, W_n, fold, b_hn = self._split_params(p)
        x_r, x_z, x_n = _add(xp_t, fold).split(self.hidden_size, dim=-1)
        after = self.convention.gru_reset == "after"
        h = _gru_step(x_r, x_z, x_n, st[0], W_r, W_z, W_n, b_hn, after, self._gate_fn())
        return h, (h,)

    def _layer_stepper(self, layer, inputs):
        if type(self)._cell_step is not GRU._cell_step:
            return super()._layer_stepper(layer, inputs)
        p = self.layer_params[layer]
        W_r, W_z, W_n, fold, b_hn = self._split_params(p)
        after, gate = self.convention.gru_reset == "after", self._gate_fn()
        xp = self._project(inputs, p.W_x, _add(p.b, fold))
        x_r, x_z, x_n = (a.unbind(0) for a in xp.split(self.hidden_size, dim=-1))

        def step(xs, st):
            h = _gru_step(xs[0], xs[1], xs[2], st[0], W_r, W_z, W_n, b_hn, after, gate)
            return h, (h,)

        return zip(x_r, x_z, x_n), step

    def _native_layer(self, layer, inputs, st, keep_all):
        if type(self)._cell_step is not GRU._cell_step or type(self)._layer_stepper is not GRU._layer_stepper:
            return None
        p = self.layer_params[layer]
        _, _, _, fold, b_hn = self._split_params(p)
        after = self.convention.gru_reset == "after"
        hard = int(self.convention.gate_activation == "hard_sigmoid")
        bias = _add(p.b, fold)
        return _native_run("gru", lambda x: self._project(x, p.W_x, bias), inputs, p.W_h, st, self.hidden_size,
                           False, hard, int(after), bhn=b_hn)
