"""Memory-augmented recurrent units of Zhao et al. (ICML 2020) and the recurrent weighted average.

J. Zhao, F. Huang, J. Lv, Y. Duan, Z. Qin, G. Li, G. Tian, "Do RNN and LSTM have Long Memory?",
ICML 2020 (Section 4 and their code release, BSD-3-Clause). Filter weights (``rnnmem.fractional``)::

    w_j(d) = prod_{i=0}^{j-1} (i - d) / (i + 1),   j = 1..K      (w_1 = -d; the coefficients of (1-B)^d)

computed with a cumulative product, differentiable in d. ``K`` (default 100) is the filter length.
All matrices use the ``x @ W`` layout; every parameter carries a leading ensemble dimension when
the unit is built with ``seeds=[...]`` (member e computes exactly what ``seed=s_e`` computes).

``mrnnf`` (memory-augmented RNN, fixed d; one d per input dimension)::

    d   = 0.5 sigmoid(b_d)                                   (b_d = 0 at init: d = 0.25)
    F_t = sum_{j=1..K} w_j(d) x_{t-j+1}                      (current input included, weight -d)
    m_t = tanh(m_{t-1} W_m + F_t W_f + b_m)
    h_t = tanh(h_{t-1} W_h + x_t W_x + b)
    z_t = tanh(h_t W_zh + m_t W_zm + b_z)                    (the unit's output y_t)

``mrnn`` (dynamic d_t in (0, 0.5) per input dimension, linear output)::

    d_t = 0.5 sigmoid(d_{t-1} W_dd + h_{t-1} W_hd + m_{t-1} W_md + x_t W_xd + b_d)
    F_t = sum_{j=1..K} w_j(d_t) x_{t-j+1};  m_t, h_t as in mrnnf
    z_t = h_t W_zh + m_t W_zm + b_z

``rnn2`` (dual-track RNN): the mrnnf structure with K free filter weights v_{i,j} per input
dimension, ``F_t = sum_j v_j x_{t-j+1}`` (rnnmem initialises v = w(0.25), the mrnnf start).
Zhao et al. name RNN2 among their baselines (Table 2) without equations or code; this is rnnmem's
interpretation (docs/long_memory.md, "RNN2 and RWA"), tested against a naive transcription of the
equations above (tests/test_rnn2_rwa_equations.py).

``mlstmf`` (memory-augmented LSTM, fixed d per hidden unit, no forget gate; gate order i, o, g)::

    [i, o, g] = [sigmoid, sigmoid, tanh](x_t W_x + h_{t-1} W_h + b)
    c_t = -sum_{j=1..K} w_j(d) c_{t-j} + i * g,    d = 0.5 sigmoid(b_d)
    h_t = o * tanh(c_t)

``mlstm`` (dynamic d; gate order i, o, p, g)::

    [i, o, p, g] = [sigmoid, sigmoid, sigmoid, tanh](x_t W_x + h_{t-1} W_h + b);  p += d_{t-1} W_d
    d_t = 0.5 p;   c_t = -sum_{j=1..K} w_j(d_t) c_{t-j} + i * g;   h_t = o * tanh(c_t)

``rwa`` (recurrent weighted average, Ostmeyer & Cowell 2017, "Machine learning on sequential data
using a recurrent weighted average", arXiv:1703.01253, the model as the paper defines it; not in
Zhao et al.'s code; tested against a naive transcription of these equations)::

    u_t = x_t W_u + b_u,  g_t = x_t W_g + h_{t-1} U_g + b_g,  a_t = x_t W_a + h_{t-1} U_a
    n_t = n_{t-1} + u_t tanh(g_t) e^{a_t},  d_t = d_{t-1} + e^{a_t},  h_t = tanh(n_t / d_t),  h_0 = tanh(s)

rnnmem carries the exact equivalent state (h, r = n/d, l = log d), updated as
``l_t = logaddexp(l_{t-1}, a_t)``, ``alpha_t = exp(a_t - l_t)``, ``r_t = r_{t-1} + alpha_t (z_t - r_{t-1})``
with ``z_t = u_t tanh(g_t)``, starting from ``r_0 = 0, l_0 = -1e30`` (d_0 = 0): the same outputs as
the paper's running-maximum form, with no overflow.

States: besides [layers, (E), B, H] components, the filters keep a window of the past: ``x_window``
[layers, (E), B, K-1, W] (the last K-1 inputs, oldest first; W is the widest layer input, narrower
layers use the first columns) and, for mlstm(f), ``c`` [layers, (E), B, H, K] (c_{t}, c_{t-1}, ...,
c_{t-K+1}: the newest cell state first). Validation and test runs continue from these windows.

Initialisation. Convention ``torch`` (default) is the paper's: every block is a PyTorch
``nn.Linear``, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for its weight and bias, with the paper's bias
placement (mrnn(f): b, b_m, b_z, b_d; mlstm(f): one bias per gate, fan_in = I + H, and I + 2H for
mlstm's p gate); b_d = 0 for fixed d. Conventions ``keras``/``tf1``: glorot-uniform input
kernels, orthogonal recurrent kernels, zero biases. ``rwa`` follows its authors' code under every
convention: glorot-uniform kernels over the concatenated fan-in, zero biases, s ~ N(0, 1).

The step loop here is the reference implementation (autograd, forward-mode AD, any layers); when
no gradient is needed, on CPU, the compiled loops of ``_native.py`` run the same steps (mrnn,
mlstm(f) and rwa their own, mrnnf and rnn2 the Elman loop; ``last_path`` says which ran);
``rnnmem.train.fastseq`` computes the same sequences with hand-written backward passes for training.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from ..errors import ConfigError
from ..fractional import frac_weights
from . import init as winit
from .base import RecurrentUnit, State

K_DEFAULT = 100
LOG_ZERO = -1e30  # l_0 = log d_0 with d_0 = 0: exp(LOG_ZERO - a) == 0 in float32 and float64


def fir_filter(xext: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """``F_t = sum_{j=1..K} w_j x_{t-j+1}`` over a stored window, as one FFT convolution.

    ``xext``: [K-1+T, *lead, I] (the K-1 stored inputs, then the T new ones; ``lead`` is (B,) or
    (E, B)); ``w``: lag-ascending weights broadcastable to [*lead, I, K] (``w[..., 0]`` multiplies
    x_t). Returns [T, *lead, I]. The product of the real FFTs (length >= K-1+T, so the circular
    wrap-around only touches the K-1 discarded outputs) costs O((T+K) log(T+K)) per channel;
    gradients flow to ``w`` and ``xext``. With ``w = w(d)`` this is the fractional filter of
    Zhao et al. (ICML 2020, Section 4), ``F_t = sum_j w_j(d) x_{t-j+1}``.

    Parameters
    ----------
    xext : Tensor
        ``[K-1+T, *lead, I]``: the stored window, then the new inputs (oldest first).
    w : Tensor
        ``[..., I, K]``, lag-ascending filter weights broadcastable to ``[*lead, I, K]``.

    Returns
    -------
    Tensor
        ``[T, *lead, I]``, ``F_t`` for the T new steps (``[0, *lead, I]`` when ``xext`` has fewer than K
        rows).
    """
    K = w.shape[-1]
    L = xext.shape[0]
    T = L - K + 1
    if T < 1:
        return xext.new_zeros((0,) + tuple(xext.shape[1:]))
    n = 1 << max(0, (L - 1).bit_length())
    X = torch.fft.rfft(xext, n=n, dim=0)                         # [n/2+1, *lead, I]
    Wf = torch.fft.rfft(w, n=n, dim=-1).movedim(-1, 0)           # [n/2+1, ..., I]
    Wf = Wf.reshape(Wf.shape[:1] + (1,) * (X.dim() - Wf.dim()) + Wf.shape[1:])
    Y = torch.fft.irfft(X * Wf, n=n, dim=0)
    return Y[K - 1:L]


def _check_int(name: str, value, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


class MemoryUnit(RecurrentUnit):
    """Shared machinery of the units above: filter length K, window states, the step loop."""

    kind = "memory"
    has_output_size = False
    #: state component -> how its trailing shape is formed ("h": [H], "xw": [K-1, I_l],
    #: "xd": [I_l], "cw": [H, K])
    state_layout: dict[str, str] = {}

    def __init__(self, input_size, hidden_size, layers=1, convention=None, dtype=torch.float32, seed=None,
                 seeds=None, device=None, K: int = K_DEFAULT, output_size: int | None = None):
        self.K = _check_int("filter length K", K)
        if output_size is not None and not self.has_output_size:
            raise ConfigError(f"option output_size does not apply to cell {self.kind!r} (its output is h)")
        self.output_size = _check_int("output_size", output_size) if output_size is not None else hidden_size
        super().__init__(input_size, hidden_size, layers=layers, convention=convention, dtype=dtype,
                         seed=seed, seeds=seeds, device=device)

    # ----------------------------------------------------------------- sizes and states
    @property
    def out_features(self) -> int:
        """Width of the unit's output y_t (the next layer's input).

        Returns
        -------
        int
            ``output_size`` (default ``hidden_size``) for mrnnf, mrnn and rnn2; ``hidden_size`` for
            mlstm(f) and rwa.
        """
        return self.output_size

    def layer_input_size(self, layer: int) -> int:
        """See ``RecurrentUnit.layer_input_size``; layers above the first read ``out_features``.

        Parameters
        ----------
        layer : int
            Layer index, 0 for the first layer.

        Returns
        -------
        int
            ``input_size`` for layer 0, ``out_features`` above.
        """
        return self.input_size if layer == 0 else self.out_features

    def _trailing(self, name: str, layer: int) -> tuple[int, ...]:
        kind = self.state_layout[name]
        I, H = self.layer_input_size(layer), self.hidden_size
        if kind == "h":
            return (H,)
        if kind == "xw":
            return (self.K - 1, I)
        if kind == "xd":
            return (I,)
        if kind == "cw":
            return (H, self.K)
        raise AssertionError(kind)

    def _padded(self, name: str) -> tuple[int, ...]:
        shapes = [self._trailing(name, layer) for layer in range(self.num_layers)]
        return shapes[0][:-1] + (max(s[-1] for s in shapes),)

    def state_shape(self, name: str, batch: int) -> tuple[int, ...]:
        """Shape of state component ``name`` for ``batch`` sequences.

        Window components are padded to the widest layer (layers read the first columns), so every
        layer's component has the same shape.

        Parameters
        ----------
        name : str
            A state component, one of ``state_names``.
        batch : int
            B, the number of sequences.

        Returns
        -------
        tuple of int
            ``(layers, (E,) B, *trailing)``: trailing ``(H,)`` for h, m, r, l and mlstm's d,
            ``(W,)`` for mrnn's d, ``(K-1, W)`` for ``x_window`` (W the widest layer input) and
            ``(H, K)`` for mlstm(f)'s c.
        """
        ens = (self.ensemble,) if self.ensemble else ()
        return (self.num_layers,) + ens + (batch,) + self._padded(name)

    def _unpad(self, s: torch.Tensor, name: str, layer: int) -> torch.Tensor:
        width = self._trailing(name, layer)[-1]
        return s if s.shape[-1] == width else s[..., :width]

    def _pad(self, s: torch.Tensor, name: str) -> torch.Tensor:
        width = self._padded(name)[-1]
        return s if s.shape[-1] == width else F.pad(s, (0, width - s.shape[-1]))

    def _extra_describe(self) -> dict:
        out = {"K": self.K}
        if self.has_output_size:
            out["output_size"] = self.output_size
        return out

    # ----------------------------------------------------------------- helpers
    def _seq_mm(self, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """``x @ W`` for a whole sequence [T, (E), B, n] (one batched product per member)."""
        if self.ensemble:
            return torch.einsum("tebi,eih->tebh", x, W)
        return torch.matmul(x, W)

    @staticmethod
    def _time_major(window: torch.Tensor) -> torch.Tensor:
        """[(E), B, K-1, I] -> [K-1, (E), B, I]."""
        return window.movedim(-2, 0)

    def _window_after(self, xext: torch.Tensor) -> torch.Tensor:
        """Last K-1 inputs of ``xext`` [L, (E), B, I] as a window [(E), B, K-1, I]."""
        keep = self.K - 1
        return xext[xext.shape[0] - keep:].movedim(0, -2)

    def _windows_per_step(self, xext: torch.Tensor, T: int) -> torch.Tensor:
        """The input window after every step, [T, (E), B, K-1, I] (for return_all_states)."""
        keep = self.K - 1
        if keep == 0:
            return xext.new_zeros((T,) + tuple(xext.shape[1:-1]) + (0, xext.shape[-1]))
        # window after step t = xext[t+1 : t+1+keep]: one strided view, copied once (a Python loop
        # of T stacks cost more per step than the compiled step itself)
        return xext.unfold(0, keep, 1)[1:T + 1].movedim(-1, -2).contiguous()

    def filter_weights(self, layer: int = 0) -> torch.Tensor:
        """Lag-ascending filter weights of layer ``layer`` ([(E, 1,) I or H, K]), for fixed filters.

        Parameters
        ----------
        layer : int
            Layer index (default 0).

        Returns
        -------
        Tensor
            ``[(E, 1,) I or H, K]``; ``[..., 0]`` multiplies the newest term.

        Raises
        ------
        ConfigError
            Here and in units whose filter changes every step (mrnn, mlstm) or that have none (rwa).
        """
        raise ConfigError(f"cell {self.kind!r} has no fixed filter")

    def d_values(self, layer: int = 0) -> torch.Tensor:
        """The memory parameter d = 0.5 sigmoid(b_d) of layer ``layer`` (fixed-d units).

        Parameters
        ----------
        layer : int
            Layer index (default 0).

        Returns
        -------
        Tensor
            ``[(E, 1,) I]`` (mrnnf: one d per input dimension) or ``[(E, 1,) H]`` (mlstmf: per unit),
            values in (0, 0.5).

        Raises
        ------
        ConfigError
            Here and in units without a fixed d (mrnn, mlstm: d_t is in the state; rnn2; rwa).
        """
        raise ConfigError(f"cell {self.kind!r} has no fixed memory parameter d")

    # ----------------------------------------------------------------- compute
    def _forward_loop(self, x, state, return_all_states):
        inputs = x
        names = self.state_names
        finals = [[] for _ in names]
        per_layer = [[] for _ in names] if return_all_states else None
        # the compiled loop (``_native.py``) under the gates of ``RecurrentUnit._native_ok`` (no
        # gradient needed, CPU, float32/64), unless ``_run_layer`` is patched on the instance
        native = "_run_layer" not in self.__dict__ and self._native_ok(x, state)
        paths = set()
        for layer in range(self.num_layers):
            st = tuple(self._unpad(s[layer], n, layer) for s, n in zip(state, names))
            block = self._native_layer(layer, inputs, st, return_all_states) if native else None
            paths.add("compiled" if block is not None else "python")
            inputs, st, per = block if block is not None else self._run_layer(layer, inputs, st, return_all_states)
            for k, n in enumerate(names):
                finals[k].append(self._pad(st[k], n))
                if per_layer is not None:
                    per_layer[k].append(self._pad(per[k], n))
        # which arithmetic ran (as RecurrentUnit._forward_loop records it): compiled | python
        self.last_path = paths.pop() if len(paths) == 1 else "+".join(sorted(paths))
        final = tuple(torch.stack(f) for f in finals)
        if per_layer is not None:
            return inputs, final, tuple(torch.stack(p, dim=1) for p in per_layer)
        return inputs, final

    def _run_layer(self, layer, x, st, keep_all):
        """Run layer ``layer`` over x [T, (E), B, I_l] from ``st``; returns (y, final state, states
        at every step or None)."""
        raise NotImplementedError


# --------------------------------------------------------------------------------------------
# initialisation helpers
# --------------------------------------------------------------------------------------------
def _linear(fan_in: int, shape, gen, dtype) -> torch.Tensor:
    """PyTorch nn.Linear default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
    return winit.uniform(shape, 1.0 / math.sqrt(fan_in), gen, dtype)


def _kernel(conv_init: str, fan_in: int, shape, gen, dtype, recurrent: bool = False) -> torch.Tensor:
    if conv_init == "torch":
        return _linear(fan_in, shape, gen, dtype)
    if recurrent:
        return winit.orthogonal(shape, gen, dtype)
    return winit.glorot_uniform(shape, gen, dtype)


def _bias(conv_init: str, fan_in: int, n: int, gen, dtype) -> torch.Tensor:
    if conv_init == "torch":
        return _linear(fan_in, (n,), gen, dtype)
    return torch.zeros(n, dtype=dtype)


class _FixedD:
    """Units with a learned but time-constant memory parameter per layer: d = 0.5 sigmoid(b_d)
    and the fractional filter w_j(d) it defines (mrnnf, mlstmf)."""

    def d_values(self, layer: int = 0) -> torch.Tensor:
        """See ``MemoryUnit.d_values``: ``d = 0.5 sigmoid(b_d)``.

        Parameters
        ----------
        layer : int
            Layer index (default 0).

        Returns
        -------
        Tensor
            ``[(E, 1,) I]`` (mrnnf) or ``[(E, 1,) H]`` (mlstmf), values in (0, 0.5).
        """
        return 0.5 * torch.sigmoid(self.layer_params[layer].b_d)

    def filter_weights(self, layer: int = 0) -> torch.Tensor:
        """See ``MemoryUnit.filter_weights``: ``w_j(d) = prod_{i<j} (i - d) / (i + 1)``, j = 1..K.

        Parameters
        ----------
        layer : int
            Layer index (default 0).

        Returns
        -------
        Tensor
            ``[(E, 1,) I or H, K]``, ``w_1 .. w_K`` of :meth:`d_values` (differentiable in ``b_d``).
        """
        return frac_weights(self.d_values(layer), self.K)


# --------------------------------------------------------------------------------------------
# mRNN family
# --------------------------------------------------------------------------------------------
class MRNNF(_FixedD, MemoryUnit):
    """Memory-augmented RNN with a fixed fractional filter (Zhao et al. 2020, "mRNN_fixD")."""

    kind = "mrnnf"
    gates = 1
    has_output_size = True
    state_names = ("h", "m", "x_window")
    state_layout = {"h": "h", "m": "h", "x_window": "xw"}
    output_tanh = True

    def _init_layer(self, layer, gen):
        I, H, O, dt = self.layer_input_size(layer), self.hidden_size, self.output_size, self.dtype
        ci = self.convention.init if self.convention else "torch"
        p = {
            "W_x": _kernel(ci, I, (I, H), gen, dt),                   # x -> h   (paper: x_h, no bias)
            "W_h": _kernel(ci, H, (H, H), gen, dt, recurrent=True),   # h -> h   (paper: h_h)
            "b": _bias(ci, H, H, gen, dt),
            "W_f": _kernel(ci, I, (I, H), gen, dt),                   # F -> m   (paper: f_m, no bias)
            "W_m": _kernel(ci, H, (H, H), gen, dt, recurrent=True),   # m -> m   (paper: m_m)
            "b_m": _bias(ci, H, H, gen, dt),
            "W_zh": _kernel(ci, H, (H, O), gen, dt),                  # h -> z   (paper: h_z)
            "b_z": _bias(ci, H, O, gen, dt),
            "W_zm": _kernel(ci, H, (H, O), gen, dt),                  # m -> z   (paper: m_z, no bias)
        }
        p.update(self._filter_params(I, gen))
        return {k: v.contiguous() for k, v in p.items()}

    def _filter_params(self, I, gen) -> dict:
        return {"b_d": torch.zeros(I, dtype=self.dtype)}

    def _run_layer(self, layer, x, st, keep_all):
        p = self.layer_params[layer]
        h, m, xw = st
        xext = torch.cat([self._time_major(xw), x], 0)
        Fx = fir_filter(xext, self.filter_weights(layer))
        xh = self._seq_mm(x, p.W_x) + p.b
        xm = self._seq_mm(Fx, p.W_f) + p.b_m
        hs, ms = [], []
        for t in range(x.shape[0]):
            h = torch.tanh(xh[t] + torch.matmul(h, p.W_h))
            m = torch.tanh(xm[t] + torch.matmul(m, p.W_m))
            hs.append(h)
            ms.append(m)
        Hs, Ms = torch.stack(hs), torch.stack(ms)
        z = self._seq_mm(Hs, p.W_zh) + self._seq_mm(Ms, p.W_zm) + p.b_z
        if self.output_tanh:
            z = torch.tanh(z)
        final = (h, m, self._window_after(xext))
        per = (Hs, Ms, self._windows_per_step(xext, x.shape[0])) if keep_all else None
        return z, final, per

    def _native_layer(self, layer, x, st, keep_all):
        """All steps of ``_run_layer`` compiled (``_native.py``): h and m are two independent tanh
        recurrences, run by the Elman loop (``rnn_*``) on ``x W_x + b`` and ``F W_f + b_m`` (F the
        same FFT filter); None when a subclass changed ``_run_layer``."""
        if type(self)._run_layer is not MRNNF._run_layer:
            return None
        from .gated import _native_run

        p = self.layer_params[layer]
        h, m, xw = st
        H = self.hidden_size
        xext = torch.cat([self._time_major(xw), x], 0)
        Fx = fir_filter(xext, self.filter_weights(layer))
        Hs, (h,), _ = _native_run("rnn", lambda u: self._seq_mm(u, p.W_x) + p.b, x, p.W_h, (h,), H, False, 0)
        Ms, (m,), _ = _native_run("rnn", lambda u: self._seq_mm(u, p.W_f) + p.b_m, Fx, p.W_m, (m,), H, False, 0)
        z = self._seq_mm(Hs, p.W_zh) + self._seq_mm(Ms, p.W_zm) + p.b_z
        if self.output_tanh:
            z = torch.tanh(z)
        final = (h, m, self._window_after(xext))
        per = (Hs, Ms, self._windows_per_step(xext, x.shape[0])) if keep_all else None
        return z, final, per


class RNN2(MRNNF):
    """Dual-track RNN: the mrnnf structure with K free, learnable filter weights per input dim."""

    kind = "rnn2"

    def _filter_params(self, I, gen) -> dict:
        w = frac_weights(torch.full((I,), 0.25, dtype=torch.float64), self.K).to(self.dtype)
        return {"v": w}

    def filter_weights(self, layer: int = 0) -> torch.Tensor:
        """See ``MemoryUnit.filter_weights``: the free weights ``v``.

        Parameters
        ----------
        layer : int
            Layer index (default 0).

        Returns
        -------
        Tensor
            ``[(E, 1,) I, K]``, the parameter ``v`` (a broadcast view for an ensemble); gradients flow to it.
        """
        v = self.layer_params[layer].v
        return v.unsqueeze(-3) if self.ensemble else v   # [E, 1, I, K] broadcasts over the batch

    def d_values(self, layer: int = 0) -> torch.Tensor:
        """See ``MemoryUnit.d_values``; rnn2 has none.

        Parameters
        ----------
        layer : int
            Layer index (unused).

        Returns
        -------
        Tensor
            Never returns.

        Raises
        ------
        ConfigError
            Always: rnn2's filter weights are free, not a function of d.
        """
        raise ConfigError("rnn2 has free filter weights, not a memory parameter d; see filter_weights()")


class MRNN(MRNNF):
    """Memory-augmented RNN with a dynamic memory parameter d_t (Zhao et al. 2020, "mRNN")."""

    kind = "mrnn"
    state_names = ("h", "m", "d", "x_window")
    state_layout = {"h": "h", "m": "h", "d": "xd", "x_window": "xw"}
    output_tanh = False

    def _filter_params(self, I, gen) -> dict:
        H, dt = self.hidden_size, self.dtype
        ci = self.convention.init if self.convention else "torch"
        return {
            "W_dd": _kernel(ci, I, (I, I), gen, dt, recurrent=True),  # d_{t-1} -> d  (paper: d_d)
            "b_d": _bias(ci, I, I, gen, dt),
            "W_hd": _kernel(ci, H, (H, I), gen, dt),                  # h_{t-1} -> d  (paper: h_d)
            "W_md": _kernel(ci, H, (H, I), gen, dt),                  # m_{t-1} -> d  (paper: m_d)
            "W_xd": _kernel(ci, I, (I, I), gen, dt),                  # x_t -> d      (paper: x_d)
        }

    def d_values(self, layer: int = 0) -> torch.Tensor:
        """See ``MemoryUnit.d_values``; mrnn's d_t is part of the state (component ``"d"``).

        Parameters
        ----------
        layer : int
            Layer index (unused).

        Returns
        -------
        Tensor
            Never returns.

        Raises
        ------
        ConfigError
            Always.
        """
        raise ConfigError("mrnn's memory parameter d_t changes every step; it is part of the state ('d')")

    def filter_weights(self, layer: int = 0) -> torch.Tensor:
        """See ``MemoryUnit.filter_weights``; mrnn's filter changes with d_t at every step.

        Parameters
        ----------
        layer : int
            Layer index (unused).

        Returns
        -------
        Tensor
            Never returns.

        Raises
        ------
        ConfigError
            Always.
        """
        raise ConfigError("mrnn's filter depends on d_t at every step")

    def _run_layer(self, layer, x, st, keep_all):
        p = self.layer_params[layer]
        h, m, d, xw = st
        K = self.K
        xext = torch.cat([self._time_major(xw), x], 0)
        windows = xext.unfold(0, K, 1).flip(-1)          # [T, (E), B, I, K], lag-ascending
        xh = self._seq_mm(x, p.W_x) + p.b
        xd = self._seq_mm(x, p.W_xd) + p.b_d
        hs, ms, ds = [], [], []
        for t in range(x.shape[0]):
            d = 0.5 * torch.sigmoid(xd[t] + torch.matmul(d, p.W_dd) + torch.matmul(h, p.W_hd)
                                    + torch.matmul(m, p.W_md))
            h = torch.tanh(xh[t] + torch.matmul(h, p.W_h))
            Fx = (frac_weights(d, K) * windows[t]).sum(-1)
            m = torch.tanh(torch.matmul(Fx, p.W_f) + p.b_m + torch.matmul(m, p.W_m))
            hs.append(h)
            ms.append(m)
            ds.append(d)
        Hs, Ms = torch.stack(hs), torch.stack(ms)
        z = self._seq_mm(Hs, p.W_zh) + self._seq_mm(Ms, p.W_zm) + p.b_z
        final = (h, m, d, self._window_after(xext))
        per = (Hs, Ms, torch.stack(ds), self._windows_per_step(xext, x.shape[0])) if keep_all else None
        return z, final, per

    def _native_layer(self, layer, x, st, keep_all, chunk: int = 1024):
        """All steps of ``_run_layer`` in the compiled loop (``_native.py``, ``mrnn_*``); the input
        projections are computed ``chunk`` steps at a time. None when a subclass changed
        ``_run_layer``."""
        if type(self)._run_layer is not MRNN._run_layer:
            return None
        from . import _native

        fn = getattr(_native.library(), f"mrnn_{'f32' if x.dtype == torch.float32 else 'f64'}")
        p = self.layer_params[layer]
        H, K, I, T, B = self.hidden_size, self.K, x.shape[-1], x.shape[0], x.shape[-2]
        E = x.shape[1] if x.dim() == 4 else 1
        h, m, d = (s.clone(memory_format=torch.contiguous_format) for s in st[:3])
        xext = torch.cat([self._time_major(st[3]), x], 0).contiguous()
        Ws = [w.contiguous() for w in (p.W_h, p.W_dd, p.W_hd, p.W_md, p.W_f, p.W_m, p.b_m.reshape(E, H))]
        Hs, Ms, Ds = x.new_empty(x.shape[:-1] + (H,)), x.new_empty(x.shape[:-1] + (H,)), x.new_empty(x.shape)
        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            xh = (self._seq_mm(x[t0:t1], p.W_x) + p.b).contiguous()
            xd = (self._seq_mm(x[t0:t1], p.W_xd) + p.b_d).contiguous()
            rc = fn(t1 - t0, E, B, I, H, K, xh.data_ptr(), xd.data_ptr(), xext[t0].data_ptr(),
                    *(w.data_ptr() for w in Ws), h.data_ptr(), m.data_ptr(), d.data_ptr(),
                    Hs[t0].data_ptr(), Ms[t0].data_ptr(), Ds[t0].data_ptr())
            if rc != 0:
                raise MemoryError("the compiled mrnn loop could not allocate its scratch buffer")
        z = self._seq_mm(Hs, p.W_zh) + self._seq_mm(Ms, p.W_zm) + p.b_z
        final = (h, m, d, self._window_after(xext))
        per = (Hs, Ms, Ds, self._windows_per_step(xext, T)) if keep_all else None
        return z, final, per


# --------------------------------------------------------------------------------------------
# mLSTM family
# --------------------------------------------------------------------------------------------
class MLSTMF(_FixedD, MemoryUnit):
    """Memory-augmented LSTM with fixed d per hidden unit (Zhao et al. 2020, "mLSTM_fixD")."""

    kind = "mlstmf"
    gates = 3
    state_names = ("h", "c")
    state_layout = {"h": "h", "c": "cw"}

    @property
    def out_features(self) -> int:
        """See ``MemoryUnit.out_features``.

        Returns
        -------
        int
            ``hidden_size`` (the output is h).
        """
        return self.hidden_size

    def _gate_blocks(self, I, H):
        """(name, fan_in) of each gate block in order."""
        return [("i", I + H), ("o", I + H), ("g", I + H)]

    def _init_layer(self, layer, gen):
        I, H, dt = self.layer_input_size(layer), self.hidden_size, self.dtype
        ci = self.convention.init if self.convention else "torch"
        Wx, Wh, b = [], [], []
        for _, fan_in in self._gate_blocks(I, H):
            if ci == "torch":  # one nn.Linear(fan_in, H) per gate on [x, h, (d)]
                Wx.append(_linear(fan_in, (I, H), gen, dt))
                Wh.append(_linear(fan_in, (H, H), gen, dt))
                b.append(_linear(fan_in, (H,), gen, dt))
            else:
                Wx.append(winit.glorot_uniform((I, H), gen, dt))
                Wh.append(winit.orthogonal((H, H), gen, dt))
                b.append(torch.zeros(H, dtype=dt))
        p = {"W_x": torch.cat(Wx, 1), "W_h": torch.cat(Wh, 1), "b": torch.cat(b)}
        p.update(self._d_params(I, H, gen))
        return {k: v.contiguous() for k, v in p.items()}

    def _d_params(self, I, H, gen) -> dict:
        return {"b_d": torch.zeros(H, dtype=self.dtype)}

    def _run_layer(self, layer, x, st, keep_all):
        p = self.layer_params[layer]
        h, cw = st
        H = self.hidden_size
        a = -self.filter_weights(layer)                # [(E, 1,) H, K]: c_t = sum_j a_j c_{t-j} + i g
        xp = self._seq_mm(x, p.W_x) + p.b
        gate = self._gate
        hs, cws = [], []
        for t in range(x.shape[0]):
            pre = xp[t] + torch.matmul(h, p.W_h)
            i, o, g = gate(pre[..., :H]), gate(pre[..., H:2 * H]), torch.tanh(pre[..., 2 * H:])
            c = (a * cw).sum(-1) + i * g
            h = o * torch.tanh(c)
            cw = torch.cat([c.unsqueeze(-1), cw[..., :-1]], -1)
            hs.append(h)
            if keep_all:
                cws.append(cw)
        Hs = torch.stack(hs)
        per = (Hs, torch.stack(cws)) if keep_all else None
        return Hs, (h, cw), per

    def _native_layer(self, layer, x, st, keep_all):
        """All steps of ``_run_layer`` in the compiled loop (``_native.py``, ``mlstm_*`` with the
        fixed filter weights); None when a subclass changed ``_run_layer``."""
        if type(self)._run_layer is not MLSTMF._run_layer:
            return None
        E = x.shape[1] if x.dim() == 4 else 1
        w = self.filter_weights(layer).reshape(E, self.hidden_size, self.K)
        return self._native_mlstm(layer, x, st, keep_all, w.transpose(1, 2).contiguous())

    def _native_mlstm(self, layer, x, st, keep_all, wfix, chunk: int = 1024):
        """The compiled mlstm (``wfix`` None: d_t from the state) or mlstmf loop (``wfix[E, K, H]``,
        the filter weights lag-major); the input projection ``chunk`` steps at a time."""
        from . import _native

        fn = getattr(_native.library(), f"mlstm_{'f32' if x.dtype == torch.float32 else 'f64'}")
        p = self.layer_params[layer]
        H, K, T, B = self.hidden_size, self.K, x.shape[0], x.shape[-2]
        E = x.shape[1] if x.dim() == 4 else 1
        dyn = wfix is None
        h, cw = (s.clone(memory_format=torch.contiguous_format) for s in st[:2])
        d = st[2].clone(memory_format=torch.contiguous_format) if dyn else None
        W, Wd = p.W_h.contiguous(), (p.W_d.contiguous() if dyn else None)
        Hs = x.new_empty(x.shape[:-1] + (H,))
        cws = x.new_empty(Hs.shape + (K,)) if keep_all else None
        ds = x.new_empty(Hs.shape) if keep_all and dyn else None
        hard = int(getattr(self.convention, "gate_activation", "sigmoid") == "hard_sigmoid")

        def ptr(t, i=None):
            return 0 if t is None else (t if i is None else t[i]).data_ptr()

        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            xp = (self._seq_mm(x[t0:t1], p.W_x) + p.b).contiguous()
            rc = fn(t1 - t0, E, B, H, K, xp.data_ptr(), W.data_ptr(), ptr(Wd), ptr(wfix), h.data_ptr(), ptr(d),
                    cw.data_ptr(), Hs[t0].data_ptr(), ptr(cws, t0), ptr(ds, t0), hard)
            if rc != 0:
                raise MemoryError("the compiled mlstm loop could not allocate its scratch buffer")
        final = (h, cw, d) if dyn else (h, cw)
        per = None if not keep_all else ((Hs, cws, ds) if dyn else (Hs, cws))
        return Hs, final, per


class MLSTM(MLSTMF):
    """Memory-augmented LSTM with dynamic d_t per hidden unit (Zhao et al. 2020, "mLSTM")."""

    kind = "mlstm"
    gates = 4
    state_names = ("h", "c", "d")
    state_layout = {"h": "h", "c": "cw", "d": "h"}

    def _gate_blocks(self, I, H):
        return [("i", I + H), ("o", I + H), ("p", I + 2 * H), ("g", I + H)]

    def _d_params(self, I, H, gen) -> dict:
        ci = self.convention.init if self.convention else "torch"
        if ci == "torch":
            return {"W_d": _linear(I + 2 * H, (H, H), gen, self.dtype)}   # d_{t-1} -> p (paper: f_gate)
        return {"W_d": winit.orthogonal((H, H), gen, self.dtype)}

    def d_values(self, layer: int = 0) -> torch.Tensor:
        """See ``MemoryUnit.d_values``; mlstm's d_t is part of the state (component ``"d"``).

        Parameters
        ----------
        layer : int
            Layer index (unused).

        Returns
        -------
        Tensor
            Never returns.

        Raises
        ------
        ConfigError
            Always.
        """
        raise ConfigError("mlstm's memory parameter d_t changes every step; it is part of the state ('d')")

    def filter_weights(self, layer: int = 0) -> torch.Tensor:
        """See ``MemoryUnit.filter_weights``; mlstm's filter changes with d_t at every step.

        Parameters
        ----------
        layer : int
            Layer index (unused).

        Returns
        -------
        Tensor
            Never returns.

        Raises
        ------
        ConfigError
            Always.
        """
        raise ConfigError("mlstm's filter depends on d_t at every step")

    def _run_layer(self, layer, x, st, keep_all):
        p = self.layer_params[layer]
        h, cw, d = st
        H, K = self.hidden_size, self.K
        xp = self._seq_mm(x, p.W_x) + p.b
        gate = self._gate
        hs, cws, ds = [], [], []
        for t in range(x.shape[0]):
            pre = xp[t] + torch.matmul(h, p.W_h)
            i, o = gate(pre[..., :H]), gate(pre[..., H:2 * H])
            d = 0.5 * gate(pre[..., 2 * H:3 * H] + torch.matmul(d, p.W_d))
            g = torch.tanh(pre[..., 3 * H:])
            c = -(frac_weights(d, K) * cw).sum(-1) + i * g
            h = o * torch.tanh(c)
            cw = torch.cat([c.unsqueeze(-1), cw[..., :-1]], -1)
            hs.append(h)
            if keep_all:
                cws.append(cw)
                ds.append(d)
        Hs = torch.stack(hs)
        per = (Hs, torch.stack(cws), torch.stack(ds)) if keep_all else None
        return Hs, (h, cw, d), per

    def _native_layer(self, layer, x, st, keep_all):
        """All steps of ``_run_layer`` in the compiled loop (``_native.py``, ``mlstm_*``); None when a
        subclass changed ``_run_layer``."""
        if type(self)._run_layer is not MLSTM._run_layer:
            return None
        return self._native_mlstm(layer, x, st, keep_all, None)


# --------------------------------------------------------------------------------------------
# recurrent weighted average
# --------------------------------------------------------------------------------------------
class RWA(MemoryUnit):
    """Recurrent weighted average (Ostmeyer & Cowell 2017); ``K`` is not used (the average runs
    over the whole past)."""

    kind = "rwa"
    gates = 3
    state_names = ("h", "r", "l")
    state_layout = {"h": "h", "r": "h", "l": "h"}

    @property
    def out_features(self) -> int:
        """See ``MemoryUnit.out_features``.

        Returns
        -------
        int
            ``hidden_size`` (the output is h).
        """
        return self.hidden_size

    def _init_layer(self, layer, gen):
        I, H, dt = self.layer_input_size(layer), self.hidden_size, self.dtype
        lim_u = math.sqrt(6.0 / (I + H))
        lim_ga = math.sqrt(6.0 / (I + 2 * H))   # kernels over [x, h] -> H
        W_u = winit.uniform((I, H), lim_u, gen, dt)
        W_g = winit.uniform((I + H, H), lim_ga, gen, dt)
        W_a = winit.uniform((I + H, H), lim_ga, gen, dt)
        s = torch.randn(H, generator=gen, dtype=dt)
        return {
            "W_x": torch.cat([W_u, W_g[:I], W_a[:I]], 1).contiguous(),    # x -> [u, g, a]
            "W_h": torch.cat([W_g[I:], W_a[I:]], 1).contiguous(),         # h -> [g, a]
            "b": torch.zeros(2 * H, dtype=dt),                            # [b_u, b_g]; a needs none
            "s": s,
        }

    def _extra_describe(self) -> dict:
        return {}

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        """(h_0, r_0, l_0) = (tanh(s), 0, -1e30) per layer: the learned initial state.

        Parameters
        ----------
        batch : int
            B, the number of sequences (positive).
        device : torch.device or str, optional
            Default: the parameters' device.
        dtype : torch.dtype, optional
            Default: the parameters' dtype.

        Returns
        -------
        State
            ``(h, r, l)``, each ``[layers, (E,) B, H]``; h depends on the current ``s`` (differentiable).

        Raises
        ------
        ConfigError
            When ``batch`` is not a positive integer.
        """
        h0, r0, l0 = super().init_state(batch, device, dtype)
        s = torch.stack([p.s for p in self.layer_params])      # [L, (E,) H]
        h0 = h0 + torch.tanh(s).unsqueeze(-2).to(h0)
        return h0, r0, l0.fill_(LOG_ZERO)

    def _run_layer(self, layer, x, st, keep_all):
        p = self.layer_params[layer]
        h, r, lg = st
        H = self.hidden_size
        xp = self._seq_mm(x, p.W_x)
        xu = xp[..., :H] + p.b[..., :H]
        xga = torch.cat([xp[..., H:2 * H] + p.b[..., H:], xp[..., 2 * H:]], -1)
        hs, rs, ls = [], [], []
        for t in range(x.shape[0]):
            ga = xga[t] + torch.matmul(h, p.W_h)
            g, a = ga[..., :H], ga[..., H:]
            z = xu[t] * torch.tanh(g)
            lg = torch.logaddexp(lg, a)
            alpha = torch.exp(a - lg)
            r = r + alpha * (z - r)
            h = torch.tanh(r)
            hs.append(h)
            if keep_all:
                rs.append(r)
                ls.append(lg)
        Hs = torch.stack(hs)
        per = (Hs, torch.stack(rs), torch.stack(ls)) if keep_all else None
        return Hs, (h, r, lg), per

    def _native_layer(self, layer, x, st, keep_all, chunk: int = 1024):
        """All steps of ``_run_layer`` in the compiled loop (``_native.py``, ``rwa_*``: the same
        logaddexp form); the input projection ``chunk`` steps at a time. None when a subclass
        changed ``_run_layer``."""
        if type(self)._run_layer is not RWA._run_layer:
            return None
        from . import _native

        fn = getattr(_native.library(), f"rwa_{'f32' if x.dtype == torch.float32 else 'f64'}")
        p = self.layer_params[layer]
        H, T, B = self.hidden_size, x.shape[0], x.shape[-2]
        E = x.shape[1] if x.dim() == 4 else 1
        h, r, lg = (s.clone(memory_format=torch.contiguous_format) for s in st)
        W = p.W_h.contiguous()
        bias = F.pad(p.b, (0, H))                    # [b_u, b_g, 0]: a has no bias (adding 0 is exact)
        Hs = x.new_empty(x.shape[:-1] + (H,))
        Rs, Ls = (x.new_empty(Hs.shape), x.new_empty(Hs.shape)) if keep_all else (None, None)
        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            xq = (self._seq_mm(x[t0:t1], p.W_x) + bias).contiguous()
            rc = fn(t1 - t0, E, B, H, xq.data_ptr(), W.data_ptr(), h.data_ptr(), r.data_ptr(), lg.data_ptr(),
                    Hs[t0].data_ptr(), Rs[t0].data_ptr() if keep_all else 0, Ls[t0].data_ptr() if keep_all else 0)
            if rc != 0:
                raise MemoryError("the compiled rwa loop could not allocate its scratch buffer")
        per = (Hs, Rs, Ls) if keep_all else None
        return Hs, (h, r, lg), per


UNIT_CLASSES = {"mrnnf": MRNNF, "mrnn": MRNN, "mlstmf": MLSTMF, "mlstm": MLSTM, "rnn2": RNN2, "rwa": RWA}

UNIT_DOCS = {
    "mrnnf": "memory-augmented RNN, fixed fractional d per input (Zhao et al. 2020); options K, output_size",
    "mrnn": "memory-augmented RNN, dynamic d_t (Zhao et al. 2020); options K, output_size",
    "mlstmf": "memory-augmented LSTM, fixed d per unit, no forget gate (Zhao et al. 2020); option K",
    "mlstm": "memory-augmented LSTM, dynamic d_t (Zhao et al. 2020; not xLSTM's mLSTM, which is xlstm_m); option K",
    "rnn2": "dual-track RNN: mrnnf with K free filter weights (Zhao et al. 2020); options K, output_size",
    "rwa": "recurrent weighted average (Ostmeyer & Cowell 2017)",
}

UNIT_OPTIONS = {"mrnnf": {"K", "output_size"}, "mrnn": {"K", "output_size"}, "rnn2": {"K", "output_size"},
                "mlstmf": {"K"}, "mlstm": {"K"}, "rwa": set()}


def _register() -> None:
    from . import register

    for name, cls in UNIT_CLASSES.items():
        register(name, cls, UNIT_DOCS[name], UNIT_OPTIONS[name])


_register()

__all__ = ["MemoryUnit", "MRNNF", "MRNN", "RNN2", "MLSTMF", "MLSTM", "RWA", "fir_filter", "K_DEFAULT",
           "UNIT_CLASSES"]
