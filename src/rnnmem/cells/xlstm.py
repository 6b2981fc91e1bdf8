"""xLSTM's two memory cells: sLSTM (``xlstm_s``) and mLSTM (``xlstm_m``).

M. Beck, K. Pöppel, M. Spanring, A. Auer, O. Prudnikova, M. Kopp, G. Klambauer, J. Brandstetter,
S. Hochreiter, "xLSTM: Extended Long Short-Term Memory", NeurIPS 2024 (arXiv:2405.04517), sections
2.2-2.3 and the appendix, and the authors' code (github.com/NX-AI/xlstm, package ``xlstm`` 2.0.6,
Apache-2.0): ``blocks/slstm/src/vanilla/slstm.py``, ``blocks/mlstm/backends.py``, the ``cell.py``
and ``layer.py`` initialisations. Not to be confused with ``mlstm``, Zhao et al.'s
memory-augmented LSTM (``rnnmem.cells.memory``): the "m" of ``xlstm_m`` stands for *matrix*.

These are the *cells* (the recurrences the paper's equations define), mapping an input of width I
to an output of width H; the residual blocks around them in the paper (up/down projections, causal
convolution, group norm, skip connections) are not part of the unit. ``layers`` stacks cells (layer
l + 1 reads layer l's h). Every parameter carries a leading ensemble dimension when the unit is
built with ``seeds=[...]``; member e computes exactly what ``seed=s_e`` computes. The convention
(``torch``, ``keras``...) does not apply: the official xlstm initialisation is used under every
convention.

``xlstm_s`` (sLSTM, scalar memory, eqs. 8-17 with the stabiliser of eqs. 15-17), per layer with
``heads`` NH (default 1) and gate order i, f, z, o as in the official code::

    [i~, f~, z~, o~] = x_t W_x + h_{t-1} R + b              (R block-diagonal: one [d, 4d] block per
                                                            head, d = H / NH; NH = 1: a full matrix)
    log f_t = log sigmoid(f~)   (forget="sigmoid", the official default)   or   f~   (forget="exp")
    m_t  = max(log f_t + m_{t-1}, i~)                       (the stabiliser; log i_t = i~)
    i'_t = exp(i~ - m_t),   f'_t = exp(log f_t + m_{t-1} - m_t)
    c_t  = f'_t c_{t-1} + i'_t tanh(z~)
    n_t  = f'_t n_{t-1} + i'_t
    h_t  = sigmoid(o~) * c_t / n_t

This is the unstabilised recurrence c_t = f_t c_{t-1} + i_t z_t, n_t = f_t n_{t-1} + i_t with
i_t = exp(i~) scaled by exp(-m_t): h_t is the same, no exp() argument is ever positive. An empty
memory (n = 0, the zero state) has no stabiliser yet: there m_t = i~ (the official code's rule, which
it applies when the whole n is zero; here per entry), so i'_t = 1 and f'_t = 0. From then on
n_t >= 1 (one of i'_t, f'_t is 1 at every step), so h_t = o_t c_t / n_t never divides by zero.

Initialisation (the official ``sLSTMLayer``/``sLSTMCell`` defaults): W_x ~ N(0, 2 / (5 I)) ("small
init", Nguyen & Salazar 2019, ``small_init_init_``; the official layer's head-wise input projections
are full here, since I may differ from H); R = 0 (``recurrent_weight_init="zeros"``; option
``recurrent_init="standard"``: U(-1/sqrt(H), 1/sqrt(H))); biases zero except the forget gate's
"powerlaw_blockdependent" init, per head b_f[j] = 5 - 12 (j / (d - 1))^(0.3 + 1.3 r), j = 0..d-1,
r = l / (layers - 1) for layer l (0 for one layer; b_f = 5 when d = 1). Option ``bias_init``:
``powerlaw`` (default), ``linspace`` (b_f = linspace(3, 6) per head, the official "small_init"),
``standard`` (all biases U(-1/sqrt(H), 1/sqrt(H))) or ``zeros``. With ``forget="exp"`` (which the
official code does not offer) the forget bias b is replaced by log sigmoid(b), so the initial forget
gates are the same (exp of the official biases, up to 6, would be gates of up to 400 per step).

State: ``("h", "c", "n", "m")``, each [layers, (E,) B, H]. Sequence mode runs a step loop (sLSTM is
not a linear recurrence: its gates read h_{t-1}).

``xlstm_m`` (mLSTM, matrix memory, eqs. 19-27), per layer with ``heads`` NH (default 1) of size
d = H / NH; all gates read x_t only::

    q_t = x_t W_q + b_q,  k_t = (x_t W_k + b_k) / sqrt(d),  v_t = x_t W_v + b_v      (per head, [d])
    i~_t = x_t w_i + b_i,  f~_t = x_t w_f + b_f                                     (one per head)
    o_t  = sigmoid(x_t W_o + b_o)                                                   ([H])
    log f_t as for sLSTM (forget = sigmoid | exp);  m_t = max(log f_t + m_{t-1}, i~_t)
    i'_t = exp(i~_t - m_t),  f'_t = exp(log f_t + m_{t-1} - m_t)
    C_t = f'_t C_{t-1} + i'_t v_t k_t^T             ([d, d] per head: rows index v, columns k)
    n_t = f'_t n_{t-1} + i'_t k_t
    h~_t = C_t q_t / max(|n_t^T q_t|, exp(-m_t)),   h_t = o_t * h~_t   (heads concatenated)

the stabilised form of C_t q_t / max(|n_t^T q_t|, 1) (the exp(-m_t) floor is the paper's 1 scaled
by the stabiliser; no epsilon is added, unlike the official kernels' 1e-6; the denominator is only
clamped at the dtype's smallest normal number, so that where exp(-m_t) underflows and q_t = 0 the
output is 0, not 0/0). Any m_0 gives the same h in exact arithmetic. ``init_state`` starts from an
empty memory C_0 = 0, n_0 = 0 with m_0 = -1e30 (a stand-in for -inf: m_1 = i~_1, f'_1 = 0),
so that m_t is the log of the largest term of the memory, as in the official parallel form: the
official recurrent step starts from m_0 = 0 instead, which, with forget="exp" and f~ above ~88,
inflates m beyond the memory's content until i'_t underflows to 0 in float32 (the same h otherwise;
an explicit all-zero state behaves so here too).

Because every gate depends on x_t only, the sequence form is parallel (the paper's stabilised
parallel formulation of its appendix, computed chunkwise as the official ``chunkwise_simple``): within
a chunk of L steps (option ``chunk``, default 64), with F_t = sum_{s<=t} log f_s inside the chunk
and the state (C_0, n_0, m_0) carried in from the previous chunk::

    log D_tj = F_t - F_j + i~_j  (j <= t),   m_t = max(F_t + m_0, max_{j<=t} log D_tj)
    W_tj = exp(log D_tj - m_t),   w_t = exp(F_t + m_0 - m_t)
    C_t q_t = w_t C_0 q_t + sum_j W_tj (k_j . q_t) v_j,   n_t . q_t = w_t n_0 . q_t + sum_j W_tj (k_j . q_t)

m_t here is exactly the recurrent stabiliser unrolled, so the chunkwise and step forms agree step by
step (states included) to rounding: tested to 1e-5 (float32) / 1e-10 (float64) over 1,000 steps.
A single step (``step``, T = 1, or ``unit.use_parallel = False``) runs the recurrence above.

Initialisation (the official ``mLSTMLayer``/``mLSTMCell`` defaults): W_q, W_k, W_v, W_o ~ N(0,
2 / (5 I)) (small init), their biases 0; gate weights w_i = w_f = 0; b_f = linspace(3, 6) over the
heads (``bias_linspace_init_``; log sigmoid of it with ``forget="exp"``, as for sLSTM),
b_i ~ N(0, 0.1^2). The official block's o gate is a SiLU branch of
the block and its gates read [q, k, v]; here they follow the paper's cell equations (o sigmoid,
gates from x_t).

State: ``("C", "n", "m")`` shaped [layers, (E,) B, NH d d], [layers, (E,) B, NH d] = [.., H] and
[layers, (E,) B, NH]; C is flattened head-major, then row (v index), then column (k index).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from ..errors import ConfigError
from .base import RecurrentUnit, State

FORGET_GATES = ("sigmoid", "exp")
SLSTM_RECURRENT_INITS = ("zeros", "standard")
SLSTM_BIAS_INITS = ("powerlaw", "linspace", "standard", "zeros")
CHUNK_DEFAULT = 64
EMPTY_M = -1e30  # mLSTM's stabiliser of an empty memory: exp(EMPTY_M - x) == 0 in float32 and float64


def _small_init(shape, fan_in: int, gen: torch.Generator, dtype) -> torch.Tensor:
    """N(0, 2 / (5 fan_in)): the official ``small_init_init_`` (Nguyen & Salazar 2019)."""
    return torch.randn(shape, generator=gen, dtype=dtype) * math.sqrt(2.0 / (5.0 * fan_in))


def _uniform(shape, bound: float, gen: torch.Generator, dtype) -> torch.Tensor:
    return (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * bound


def powerlaw_forget_bias(head_dim: int, layer: int, layers: int, dtype=torch.float64) -> torch.Tensor:
    """The official sLSTM "powerlaw_blockdependent" forget-gate bias of one head:
    ``5 - 12 (j / (d - 1))^(0.3 + 1.3 r)``, j = 0..d-1, r = layer / (layers - 1) (0 for one layer);
    5 for every unit when d = 1 (where the official formula divides by zero).

    Source: the official xlstm code (Beck et al. 2024; ``bias_init="powerlaw_blockdependent"``).

    Parameters
    ----------
    head_dim : int
        d, the units per head.
    layer : int
        The layer l the bias is for (0-based).
    layers : int
        The number of layers of the stack.
    dtype : torch.dtype
        dtype of the result (computed in float64; default float64).

    Returns
    -------
    Tensor
        ``[d]``, decreasing from 5 (j = 0) to -7 (j = d - 1); ``[5]`` when d = 1.
    """
    ratio = layer / (layers - 1) if layers > 1 else 0.0
    j = torch.arange(head_dim, dtype=torch.float64) / max(head_dim - 1, 1)
    return (5.0 - 12.0 * j ** (0.3 + 1.3 * ratio)).to(dtype)


class _XLSTMUnit(RecurrentUnit):
    """Shared machinery: options, per-component state widths, validation."""

    kind = "xlstm"
    use_native = False  # no compiled step loop for these cells

    def __init__(self, input_size, hidden_size, layers=1, convention=None, dtype=torch.float32, seed=None,
                 seeds=None, device=None, heads: int = 1, forget: str = "sigmoid"):
        if not isinstance(heads, int) or isinstance(heads, bool) or heads < 1:
            raise ConfigError(f"heads must be a positive integer, got {heads!r}")
        if isinstance(hidden_size, int) and not isinstance(hidden_size, bool) and hidden_size >= 1 \
                and hidden_size % heads:
            raise ConfigError(
                f"hidden_size {hidden_size} is not divisible by heads {heads}; choose heads dividing the hidden size"
            )
        if forget not in FORGET_GATES:
            raise ConfigError(f"forget must be one of {', '.join(FORGET_GATES)}; got {forget!r}")
        self.heads = heads
        self.forget = forget
        self.head_dim = hidden_size // heads if isinstance(hidden_size, int) else 0
        super().__init__(input_size, hidden_size, layers=layers, convention=convention, dtype=dtype,
                         seed=seed, seeds=seeds, device=device)

    # ----------------------------------------------------------------- states
    def state_width(self, name: str) -> int:
        """Trailing width of state component ``name``.

        Parameters
        ----------
        name : str
            One of ``state_names``.

        Returns
        -------
        int
            H for every component (sLSTM's h, c, n and m are all per unit).
        """
        return self.hidden_size

    def _extra_describe(self) -> dict:
        return {"heads": self.heads, "forget": self.forget}

    def _log_forget(self, f_pre: torch.Tensor) -> torch.Tensor:
        return F.logsigmoid(f_pre) if self.forget == "sigmoid" else f_pre


# --------------------------------------------------------------------------------------------
# sLSTM
# --------------------------------------------------------------------------------------------
class XLSTMScalar(_XLSTMUnit):
    """xLSTM's sLSTM cell (Beck et al. 2024): scalar memory, exponential gating, stabiliser state,
    head-wise recurrent connections. See the module docstring for equations and initialisation.

    Parameters
    ----------
    input_size, hidden_size, layers, dtype, seed, seeds, device : as every unit (``cells.build``).
    convention : accepted and ignored (the official xlstm initialisation is used).
    heads : number of heads NH (divides hidden_size); R is block-diagonal with NH blocks.
    forget : ``"sigmoid"`` (default, official) or ``"exp"`` forget gate.
    recurrent_init : ``"zeros"`` (default, official) or ``"standard"``.
    bias_init : ``"powerlaw"`` (default, official), ``"linspace"``, ``"standard"`` or ``"zeros"``.

    Layer parameters: ``W_x [I, 4H]``, ``R [NH, d, 4d]``, ``b [4H]`` (gate-major columns i, f, z, o;
    within a gate, heads then units; ``R[h, :, g d:(g+1) d]`` maps head h's h_{t-1} to gate g of head h).
    """

    kind = "xlstm_s"
    gates = 4
    state_names = ("h", "c", "n", "m")

    def __init__(self, input_size, hidden_size, layers=1, convention=None, dtype=torch.float32, seed=None,
                 seeds=None, device=None, heads: int = 1, forget: str = "sigmoid",
                 recurrent_init: str = "zeros", bias_init: str = "powerlaw"):
        if recurrent_init not in SLSTM_RECURRENT_INITS:
            raise ConfigError(f"recurrent_init must be one of {', '.join(SLSTM_RECURRENT_INITS)}; "
                              f"got {recurrent_init!r}")
        if bias_init not in SLSTM_BIAS_INITS:
            raise ConfigError(f"bias_init must be one of {', '.join(SLSTM_BIAS_INITS)}; got {bias_init!r}")
        self.recurrent_init = recurrent_init
        self.bias_init = bias_init
        super().__init__(input_size, hidden_size, layers=layers, convention=convention, dtype=dtype, seed=seed,
                         seeds=seeds, device=device, heads=heads, forget=forget)

    def _extra_describe(self) -> dict:
        return {**super()._extra_describe(), "recurrent_init": self.recurrent_init, "bias_init": self.bias_init}

    def _init_layer(self, layer, gen):
        I, H, NH, d, dt = self.layer_input_size(layer), self.hidden_size, self.heads, self.head_dim, self.dtype
        W_x = _small_init((I, 4 * H), I, gen, dt)
        if self.recurrent_init == "zeros":
            R = torch.zeros((NH, d, 4 * d), dtype=dt)
        else:
            R = _uniform((NH, d, 4 * d), 1.0 / math.sqrt(H), gen, dt)
        if self.bias_init == "standard":
            b = _uniform((4 * H,), 1.0 / math.sqrt(H), gen, dt)
        else:
            b = torch.zeros(4 * H, dtype=dt)
            if self.bias_init == "powerlaw":
                b[H:2 * H] = powerlaw_forget_bias(d, layer, self.num_layers, dt).repeat(NH)
            elif self.bias_init == "linspace":
                b[H:2 * H] = torch.linspace(3.0, 6.0, d, dtype=torch.float64).to(dt).repeat(NH)
        if self.forget == "exp":   # the same initial forget gates: exp(b') = sigmoid(b)
            b[H:2 * H] = F.logsigmoid(b[H:2 * H])
        return {"W_x": W_x.contiguous(), "R": R.contiguous(), "b": b}

    def recurrent_matrix(self, layer: int = 0) -> torch.Tensor:
        """The dense recurrent matrix of layer ``layer``, ``[(E,) H, 4H]`` (block-diagonal by heads;
        gradients flow to the blocks ``R``).

        Parameters
        ----------
        layer : int
            Layer index (default 0).

        Returns
        -------
        Tensor
            ``[H, 4H]``, or ``[E, H, 4H]`` for an ensemble: ``h_{t-1} @ R`` gives the recurrent part of
            the pre-activations i~, f~, z~, o~ (gate-major columns, heads then units).
        """
        R = self.layer_params[layer].R                  # [(E,) NH, d, 4d]
        NH, d, H = self.heads, self.head_dim, self.hidden_size
        if NH == 1:
            return R[..., 0, :, :]
        R4 = R.reshape(*R.shape[:-1], 4, d)              # [(E,) NH, d, 4, d]
        eye = torch.eye(NH, dtype=R.dtype, device=R.device)
        dense = torch.einsum("...hagb,hk->...hagkb", R4, eye)   # [(E,) NH, d, 4, NH, d]
        return dense.reshape(*R.shape[:-3], H, 4 * H)

    def _make_step(self, Wr: torch.Tensor):
        """The step function ``(xp_t, (h, c, n, m)) -> (h, state)``. The empty-memory rule runs at
        its first call only: from a state with n >= 0, every later n is > 0 (n_t >= min(n_{t-1}, 1)
        once n_{t-1} > 0, and n_1 >= 1 from n_0 = 0), so the rule would change nothing there."""
        H, log_forget = self.hidden_size, self._log_forget
        first = [True]

        def step(xp_t, st):
            h, c, n, m = st
            pre = xp_t + torch.matmul(h, Wr)
            i_pre, f_pre, z_pre, o_pre = pre.split(H, dim=-1)
            if first[0]:  # an empty memory (n = 0) has no stabiliser yet: m_{t-1} = -inf, so m_t = i~, f' = 0
                first[0] = False
                m = torch.where(n == 0, float("-inf"), m)
            lfm = log_forget(f_pre) + m
            m_new = torch.maximum(lfm, i_pre)
            i_s = torch.exp(i_pre - m_new)
            f_s = torch.exp(lfm - m_new)
            c = f_s * c + i_s * torch.tanh(z_pre)
            n = f_s * n + i_s
            h = torch.sigmoid(o_pre) * (c / n)
            return h, (h, c, n, m_new)

        return step

    def _layer_stepper(self, layer, inputs):
        p = self.layer_params[layer]
        return self._project(inputs, p.W_x, p.b).unbind(0), self._make_step(self.recurrent_matrix(layer))

    def _cell_step(self, layer, xp_t, st):
        """One step of layer ``layer`` from ``xp_t = x_t W_x + b`` and ``st = (h, c, n, m)``."""
        return self._make_step(self.recurrent_matrix(layer))(xp_t, st)


# --------------------------------------------------------------------------------------------
# mLSTM
# --------------------------------------------------------------------------------------------
class XLSTMMatrix(_XLSTMUnit):
    """xLSTM's mLSTM cell (Beck et al. 2024): matrix memory C_t = f C + i v k^T, normaliser n_t,
    exponential input gate with stabiliser; parallel (chunkwise) sequence form, recurrent step.
    See the module docstring for equations and initialisation.

    Parameters
    ----------
    input_size, hidden_size, layers, dtype, seed, seeds, device : as every unit (``cells.build``).
    convention : accepted and ignored (the official xlstm initialisation is used).
    heads : number of heads NH (divides hidden_size), head size d = H / NH.
    forget : ``"sigmoid"`` (default, official) or ``"exp"`` forget gate.
    chunk : chunk length of the parallel sequence form (default 64): quadratic within a chunk,
        recurrent across chunks; memory O(B NH chunk^2) per chunk.

    Layer parameters: ``W_x [I, 4H + 2NH]`` and ``b [4H + 2NH]``, columns q, k, v, o (H each, heads
    then units), then i~ (NH), then f~ (NH).
    """

    kind = "xlstm_m"
    state_names = ("C", "n", "m")
    has_scan = True
    use_parallel = True

    def __init__(self, input_size, hidden_size, layers=1, convention=None, dtype=torch.float32, seed=None,
                 seeds=None, device=None, heads: int = 1, forget: str = "sigmoid", chunk: int = CHUNK_DEFAULT):
        if not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1:
            raise ConfigError(f"chunk must be a positive integer, got {chunk!r}")
        self.chunk = chunk
        super().__init__(input_size, hidden_size, layers=layers, convention=convention, dtype=dtype, seed=seed,
                         seeds=seeds, device=device, heads=heads, forget=forget)

    def _extra_describe(self) -> dict:
        return {**super()._extra_describe(), "chunk": self.chunk}

    def state_width(self, name: str) -> int:
        """See ``RecurrentUnit.state_width``.

        Parameters
        ----------
        name : str
            ``"C"``, ``"n"`` or ``"m"``.

        Returns
        -------
        int
            ``H d`` (= NH d d) for C, H (= NH d) for n, NH for m.
        """
        return {"C": self.hidden_size * self.head_dim, "n": self.hidden_size, "m": self.heads}[name]

    def init_state(self, batch: int, device=None, dtype=None) -> State:
        """An empty memory: C = 0, n = 0 and m = -1e30 (no stabiliser yet; see the module docstring).

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
            ``(C, n, m)``: ``[layers, (E,) B, NH d d]``, ``[layers, (E,) B, H]``, ``[layers, (E,) B, NH]``.

        Raises
        ------
        ConfigError
            When ``batch`` is not a positive integer.
        """
        C, n, m = super().init_state(batch, device, dtype)
        return C, n, m.fill_(EMPTY_M)

    def _init_layer(self, layer, gen):
        I, H, NH, dt = self.layer_input_size(layer), self.hidden_size, self.heads, self.dtype
        W_x = torch.cat([_small_init((I, 4 * H), I, gen, dt), torch.zeros((I, 2 * NH), dtype=dt)], 1)
        b_i = torch.randn(NH, generator=gen, dtype=dt) * 0.1
        b_f = torch.linspace(3.0, 6.0, NH, dtype=torch.float64)
        b_f = (F.logsigmoid(b_f) if self.forget == "exp" else b_f).to(dt)   # exp: the same initial gates
        b = torch.cat([torch.zeros(4 * H, dtype=dt), b_i, b_f])
        return {"W_x": W_x.contiguous(), "b": b.contiguous()}

    # ----------------------------------------------------------------- projections
    def _inputs(self, layer: int, x: torch.Tensor):
        """q, k, v ``[T, *lead, NH, d]``, o ``[T, *lead, H]``, i~ and log f ``[T, *lead, NH]``."""
        p = self.layer_params[layer]
        H, NH, d = self.hidden_size, self.heads, self.head_dim
        xp = self._project(x, p.W_x, p.b)
        lead = xp.shape[:-1]
        q = xp[..., :H].reshape(*lead, NH, d)
        k = xp[..., H:2 * H].reshape(*lead, NH, d) / math.sqrt(d)
        v = xp[..., 2 * H:3 * H].reshape(*lead, NH, d)
        o = torch.sigmoid(xp[..., 3 * H:4 * H])
        i_pre = xp[..., 4 * H:4 * H + NH]
        log_f = self._log_forget(xp[..., 4 * H + NH:])
        return q, k, v, o, i_pre, log_f

    def _unflat(self, st):
        """State components [*lead, F] -> C [*lead, NH, d, d], n [*lead, NH, d], m [*lead, NH]."""
        C, n, m = st
        NH, d = self.heads, self.head_dim
        lead = C.shape[:-1]
        return C.reshape(*lead, NH, d, d), n.reshape(*lead, NH, d), m

    @staticmethod
    def _flat(C, n, m):
        return C.flatten(-3), n.flatten(-2), m

    # ----------------------------------------------------------------- recurrent form
    def _run_steps(self, q, k, v, i_pre, log_f, st, keep_all):
        """The recurrence, one step at a time. Returns h~ [T, *lead, NH, d], final (C, n, m), and
        every step's flattened state components when ``keep_all``."""
        C, n, m = st
        tiny = torch.finfo(q.dtype).tiny
        hs, per = [], ([], [], []) if keep_all else None
        for t in range(q.shape[0]):
            m_new = torch.maximum(log_f[t] + m, i_pre[t])
            f_s = torch.exp(log_f[t] + m - m_new)
            i_s = torch.exp(i_pre[t] - m_new)
            C = f_s[..., None, None] * C + i_s[..., None, None] * (v[t].unsqueeze(-1) * k[t].unsqueeze(-2))
            n = f_s[..., None] * n + i_s[..., None] * k[t]
            m = m_new
            num = torch.matmul(C, q[t].unsqueeze(-1)).squeeze(-1)
            den = torch.maximum((n * q[t]).sum(-1).abs(), torch.exp(-m)).clamp_min(tiny)
            hs.append(num / den.unsqueeze(-1))
            if keep_all:
                for lst, s in zip(per, self._flat(C, n, m)):
                    lst.append(s)
        per = tuple(torch.stack(s) for s in per) if keep_all else None
        return torch.stack(hs), (C, n, m), per

    # ----------------------------------------------------------------- parallel (chunkwise) form
    def _run_chunk(self, q, k, v, i_pre, log_f, st, keep_all):
        """One chunk in the stabilised parallel form. Inputs head-first: q, k, v [*lead, NH, L, d],
        i~ and log f [*lead, NH, L]; st = (C0 [*lead, NH, d, d], n0 [*lead, NH, d], m0 [*lead, NH]).
        Returns h~ [*lead, NH, L, d], the final state, and every step's state when ``keep_all``
        (C [*lead, NH, L, d, d], n [*lead, NH, L, d], m [*lead, NH, L])."""
        C0, n0, m0 = st
        L = q.shape[-2]
        Fc = torch.cumsum(log_f, dim=-1)                                    # F_t, [*, L]
        logD = Fc.unsqueeze(-1) - Fc.unsqueeze(-2) + i_pre.unsqueeze(-2)    # [*, t, j]
        causal = torch.ones(L, L, dtype=torch.bool, device=q.device).tril()
        logD = logD.masked_fill(~causal, float("-inf"))
        carry = Fc + m0.unsqueeze(-1)                                       # F_t + m_0
        m = torch.maximum(carry, logD.amax(dim=-1))                         # [*, L]
        W = torch.exp(logD - m.unsqueeze(-1))                               # [*, L, L]
        w0 = torch.exp(carry - m)                                           # [*, L]
        S = torch.matmul(q, k.transpose(-1, -2)) * W                        # W_tj (q_t . k_j)
        num = torch.matmul(S, v) + w0.unsqueeze(-1) * torch.matmul(q, C0.transpose(-1, -2))
        qn = S.sum(-1) + w0 * (q * n0.unsqueeze(-2)).sum(-1)
        den = torch.maximum(qn.abs(), torch.exp(-m)).clamp_min(torch.finfo(qn.dtype).tiny)
        h = num / den.unsqueeze(-1)
        if keep_all:
            C_all = torch.einsum("...tj,...ja,...jb->...tab", W, v, k) + w0[..., None, None] * C0.unsqueeze(-3)
            n_all = torch.matmul(W, k) + w0.unsqueeze(-1) * n0.unsqueeze(-2)
            return h, (C_all[..., -1, :, :], n_all[..., -1, :], m[..., -1]), (C_all, n_all, m)
        WL, wL = W[..., -1, :], w0[..., -1]                                 # the last row: t = L
        C_L = torch.einsum("...j,...ja,...jb->...ab", WL, v, k) + wL[..., None, None] * C0
        n_L = torch.matmul(WL.unsqueeze(-2), k).squeeze(-2) + wL.unsqueeze(-1) * n0
        return h, (C_L, n_L, m[..., -1]), None

    def _run_parallel(self, q, k, v, i_pre, log_f, st, keep_all):
        """All chunks of one layer; same returns as :meth:`_run_steps`."""
        to_heads = (lambda a: a.movedim(0, -2))      # [T, *lead, NH, d] -> [*lead, NH, T, d]
        q, k, v = to_heads(q), to_heads(k), to_heads(v)
        i_pre, log_f = i_pre.movedim(0, -1), log_f.movedim(0, -1)       # [*lead, NH, T]
        T, Lc = q.shape[-2], self.chunk
        hs, per = [], ([], [], []) if keep_all else None
        for s in range(0, T, Lc):
            sl = slice(s, min(s + Lc, T))
            h, st, seq = self._run_chunk(q[..., sl, :], k[..., sl, :], v[..., sl, :], i_pre[..., sl],
                                         log_f[..., sl], st, keep_all)
            hs.append(h)
            if keep_all:
                C_all, n_all, m_all = seq
                per[0].append(C_all.movedim(-3, 0).flatten(-3))
                per[1].append(n_all.movedim(-2, 0).flatten(-2))
                per[2].append(m_all.movedim(-1, 0))
        h = torch.cat(hs, dim=-2).movedim(-2, 0)     # [T, *lead, NH, d]
        per = tuple(torch.cat(p) for p in per) if keep_all else None
        return h, st, per

    def _forward_loop(self, x, state, return_all_states):
        parallel = self.use_parallel and x.shape[0] > 1
        run = self._run_parallel if parallel else self._run_steps
        inputs = x
        finals = [[] for _ in self.state_names]
        per_layer = [[] for _ in self.state_names] if return_all_states else None
        for layer in range(self.num_layers):
            q, k, v, o, i_pre, log_f = self._inputs(layer, inputs)
            st = self._unflat(tuple(s[layer] for s in state))
            h, st, per = run(q, k, v, i_pre, log_f, st, return_all_states)
            inputs = o * h.flatten(-2)
            for j, s in enumerate(self._flat(*st)):
                finals[j].append(s)
                if per_layer is not None:
                    per_layer[j].append(per[j])
        self.last_path = "parallel" if parallel else "python"
        final = tuple(torch.stack(f) for f in finals)
        if per_layer is not None:
            return inputs, final, tuple(torch.stack(p, dim=1) for p in per_layer)
        return inputs, final


UNIT_CLASSES = {"xlstm_s": XLSTMScalar, "xlstm_m": XLSTMMatrix}

UNIT_DOCS = {
    "xlstm_s": "xLSTM sLSTM (Beck et al. 2024): scalar memory, exponential input gate with stabiliser, "
               "head-wise recurrence; options heads, forget = sigmoid | exp, recurrent_init = zeros | standard, "
               "bias_init = powerlaw | linspace | standard | zeros",
    "xlstm_m": "xLSTM mLSTM (Beck et al. 2024): matrix memory C = f C + i v k^T, gates from x_t only, parallel "
               "(chunkwise) sequence form; not Zhao's mlstm; options heads, forget = sigmoid | exp, chunk",
}

UNIT_OPTIONS = {"xlstm_s": {"heads", "forget", "recurrent_init", "bias_init"},
                "xlstm_m": {"heads", "forget", "chunk"}}


def _register() -> None:
    from . import register

    for name, cls in UNIT_CLASSES.items():
        register(name, cls, UNIT_DOCS[name], UNIT_OPTIONS[name])


_register()

__all__ = ["XLSTMScalar", "XLSTMMatrix", "powerlaw_forget_bias", "UNIT_CLASSES"]
