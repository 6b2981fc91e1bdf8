"""minGRU and minLSTM (Feng et al. 2024): gates that read x_t only, a parallel scan for sequences.

L. Feng, F. Tung, M. O. Ahmed, Y. Bengio, H. Hajimirsadeghi, "Were RNNs All We Needed?",
arXiv:2410.01201 (2024), Section 3 (the equations) and the appendix's PyTorch listings (sequential
and log-space versions, the activation g and ``log_g``, ``parallel_scan_log``).

``mingru`` (gate and candidate from x_t alone)::

    z_t  = sigmoid(x_t W_z + b_z)
    h~_t = g(x_t W_h + b_h)
    h_t  = (1 - z_t) * h_{t-1} + z_t * h~_t

``minlstm`` (forget and input gates normalised to sum to one, the paper's "length independence")::

    f_t  = sigmoid(x_t W_f + b_f),   i_t = sigmoid(x_t W_i + b_i),   h~_t = g(x_t W_h + b_h)
    f'_t = f_t / (f_t + i_t),        i'_t = i_t / (f_t + i_t)
    h_t  = f'_t * h_{t-1} + i'_t * h~_t

with the paper's ``g(x) = x + 0.5`` for x >= 0 and ``sigmoid(x)`` otherwise (continuous, > 0, so
the candidate is positive and its logarithm exists: ``log g(x) = log(x + 0.5)`` for x >= 0,
``-softplus(-x)`` otherwise). Stacked layers read the layer below's h; the unit's output y_t is
the top layer's h_t. State: ``("h",)``, each ``[layers, (E,) B, H]``.

Initialisation: every block is a PyTorch ``nn.Linear(fan_in, H)`` with its default init, weight and
bias U(-1/sqrt(fan_in), 1/sqrt(fan_in)), as in the paper's listings (``self.linear_z``,
``self.linear_h``; minLSTM ``self.linear_f``, ``self.linear_i``, ``self.linear_h``), drawn in that
order, weight before bias. The unit has no recurrent weights. Conventions do not apply: the paper's
maths and init are used under every convention (like ``rwa``), so ``rnnmem forgetting`` and the
card can run these units with their default ``--convention``.

The same recurrence ``h_t = a_t h_{t-1} + b_t`` (minGRU: ``a = 1 - z``, ``b = z h~``; minLSTM:
``a = f'``, ``b = i' h~``) is computed three ways, chosen by the option ``scan``:

* step mode (``unit.step``, every one-step call, ``scan="step"`` or ``use_scan = False``): the
  paper's sequential listing, one step at a time.
* ``scan="blocked"`` (default for sequences of T > 1 steps): a two-level parallel scan in the real
  domain (:func:`scan_blocked`): the recurrence runs inside all chunks of ``ceil(sqrt(T))`` steps at
  once, then the chunks' starting states are carried in order; about ``2 sqrt(T)`` vector operations
  instead of T, only products and sums, so it agrees with the step loop to its own rounding (4e-7
  in float32 at T = 1000) for any initial state.
* ``scan="log"``: the paper's log-space parallel scan (its appendix's ``parallel_scan_log``,
  :func:`scan_log`): ``log a_t`` (``-softplus(k)`` for minGRU; ``-softplus(d)``,
  ``d = softplus(-k_f) - softplus(-k_i)``, for minLSTM), ``log b_t = log z_t + log g(.)``
  (minLSTM: ``-softplus(-d) + log g(.)``), ``a*_t = sum_{s<=t} log a_s`` and
  ``h_t = exp(a*_t + logcumsumexp_{s<=t}(log b_s - a*_s))`` (rnnmem writes the listing's
  ``-softplus(x)`` as ``logsigmoid(-x)``: the same function without softplus's cut-off at 20,
  which errs by 2e-9). Its
  rounding error grows with |a*_t|, i.e. with the length scanned (measured at T = 1000, float32,
  H = 64, standard normal inputs: 1.2e-4 over one unchunked scan, 4e-6 with chunks of 32, 2e-6
  with 16; inputs of scale 5: 2-4e-5 with 8-16), so rnnmem runs it per chunk of ``scan_chunk``
  steps (default 16) from a zero start and carries the chunks' starting states in the real domain as
  above. ``logcumsumexp(v)`` is evaluated as ``log cumsum exp(v)`` (the same number) in chunks where
  ``exp(v)`` and ``exp(a*)`` stay normal numbers (|v|, |a*| <= 80 in float32, 700 in float64),
  with ``torch.logcumsumexp`` in the others. It is kept as the paper's reference; it is slower
  (transcendental functions on every element; torch's CPU ``logcumsumexp`` alone costs ~30 ns per
  element) and less precise than ``blocked``.

Initial state: in both scans h_0 enters only through real-domain products (``P_t h_0``,
``exp(a*_t) h_0``), so every initial state, negative included, is exact; only ``b_t`` is taken to
log space, and ``b_t > 0`` by construction (``z, i' > 0`` and ``g > 0``). The paper's log-space
listing instead takes ``log g(h_0)``, i.e. treats h_0 as a pre-activation; here h_0 is the state
itself, as in the paper's sequential listing, so step and sequence modes agree from every state
(1e-5 in float32, 1e-10 in float64 over 1,000 steps: tests/test_cells_minrnn.py). Inside
``cells.base.python_loop()`` (torch.func transforms) the step loop runs.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from ..errors import ConfigError
from . import base as _base
from . import init as winit
from .base import RecurrentUnit, State

SCAN_CHUNK = 16  # steps per chunk of the log-space scan (scan="log")
SCANS = ("blocked", "log", "step")
# exp() of values within +-LIM is a normal number with full precision (float32 min normal e^-87.3)
_SAFE_EXP = {torch.float32: 80.0, torch.float64: 700.0}


def g(x: torch.Tensor) -> torch.Tensor:
    """The paper's candidate activation: ``x + 0.5`` for x >= 0, ``sigmoid(x)`` otherwise (> 0).

    Feng et al. (2024), appendix listings (``g``).

    Parameters
    ----------
    x : Tensor
        Pre-activations, any shape.

    Returns
    -------
    Tensor
        Same shape and dtype, every entry > 0 (continuous at 0, where both branches give 0.5).
    """
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


def log_g(x: torch.Tensor) -> torch.Tensor:
    """``log g(x)``: ``log(x + 0.5)`` for x >= 0, ``-softplus(-x)`` otherwise (the paper's
    ``log_g``, with ``logsigmoid(x)`` for its ``-softplus(-x)``: the same function, without
    softplus's linear cut-off above 20, which errs by 2e-9 there; ``relu`` keeps the unused branch
    finite for the gradient).

    Parameters
    ----------
    x : Tensor
        Pre-activations, any shape.

    Returns
    -------
    Tensor
        Same shape and dtype: ``log g(x)``, finite for finite x.
    """
    return torch.where(x >= 0, torch.log(F.relu(x) + 0.5), F.logsigmoid(x))


def _g_(x: torch.Tensor) -> torch.Tensor:
    """:func:`g` in place (no autograd): ``max(x, 0) + sigmoid(min(x, 0))``, the same numbers."""
    s = x.clamp(max=0).sigmoid_()
    return x.clamp_(min=0).add_(s)


def _python_only() -> bool:
    """True inside ``cells.base.python_loop()`` (torch.func transforms trace the step loop)."""
    return bool(getattr(getattr(_base, "_LOCAL", None), "python_only", False))


def scan_blocked(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, chunk: int | None = None,
                 inplace: bool = False) -> torch.Tensor:
    """All states of ``h_t = a_t h_{t-1} + b_t`` (t = 1..T) by a two-level (blocked) scan in the
    real domain: exact to the step loop's rounding, any signs.

    The T steps are cut into ``n = ceil(T / chunk)`` chunks (``chunk = ceil(sqrt(T))`` by default).
    Level 1 runs the recurrence from a zero start inside every chunk at once (``chunk`` vector
    steps over all chunks), keeping the running product ``P_t`` of the coefficients; level 2 carries
    the chunks' starting states in order (``n`` vector steps): ``h_start(c+1) = P_end(c) h_start(c)
    + local_end(c)``; then ``h_t = local_t + P_t h_start(c)``. Only products and sums of the inputs,
    never a division, an exp or a log, so nothing over- or underflows beyond a term too small to
    matter (a product P_t underflowing to 0 multiplies a finite state).

    Parameters
    ----------
    a, b : Tensor ``[T, *rest]``, the coefficients.
    h0 : Tensor ``[*rest]``, the initial state.
    chunk : steps per chunk; None: ``ceil(sqrt(T))`` (about 2 sqrt(T) vector operations in all).
    inplace : overwrite ``a`` and ``b`` (contiguous, owned by the caller) instead of allocating;
        for inference only (no autograd through it).

    Returns
    -------
    Tensor ``[T, *rest]``: h_1 .. h_T. Differentiable (autograd) in all three inputs.
    """
    T = a.shape[0]
    rest = tuple(a.shape[1:])
    if chunk is None:
        chunk = max(1, math.isqrt(T - 1) + 1) if T > 1 else 1
    n = -(-T // chunk)
    pad = n * chunk - T
    if pad:  # steps after the last one: they change nothing before them and are dropped
        a = torch.cat([a, a.new_ones((pad,) + rest)])
        b = torch.cat([b, b.new_zeros((pad,) + rest)])
    if inplace:  # no autograd: level 1 overwrites b with the local states and a with the products
        A, B = a.reshape((n, chunk) + rest), b.reshape((n, chunk) + rest)
        for j in range(1, chunk):
            B[:, j].addcmul_(A[:, j], B[:, j - 1])
            A[:, j].mul_(A[:, j - 1])
        starts = torch.empty((n,) + rest, dtype=b.dtype, device=b.device)
        starts[0] = h0
        for c in range(n - 1):
            torch.addcmul(B[c, -1], A[c, -1], starts[c], out=starts[c + 1])
        out = B.addcmul_(A, starts.unsqueeze(1))
        return out.reshape((n * chunk,) + rest)[:T]
    A = a.reshape((n, chunk) + rest).unbind(1)
    B = b.reshape((n, chunk) + rest).unbind(1)
    local, prod = [B[0]], [A[0]]
    for j in range(1, chunk):  # level 1: every chunk from a zero start, all chunks at once
        local.append(torch.addcmul(B[j], A[j], local[-1]))
        prod.append(A[j] * prod[-1])
    end_local, end_prod = local[-1], prod[-1]
    starts = []
    h = h0
    for c in range(n):  # level 2: the chunks' starting states, in order
        starts.append(h)
        h = torch.addcmul(end_local[c], end_prod[c], h)
    out = torch.addcmul(torch.stack(local, 1), torch.stack(prod, 1), torch.stack(starts).unsqueeze(1))
    return out.reshape((n * chunk,) + rest)[:T]


def scan_log(log_a: torch.Tensor, log_b: torch.Tensor, h0: torch.Tensor, chunk: int = SCAN_CHUNK) -> torch.Tensor:
    """All states of ``h_t = a_t h_{t-1} + b_t`` (t = 1..T) from log coefficients, exactly.

    Parameters
    ----------
    log_a : Tensor ``[T, *rest]``, ``log a_t <= 0`` (a in (0, 1]).
    log_b : Tensor ``[T, *rest]``, ``log b_t`` (b > 0; finite).
    h0 : Tensor ``[*rest]``, the initial state (any sign: it enters in the real domain).
    chunk : steps per chunk (see the module docstring).

    Returns
    -------
    Tensor ``[T, *rest]``: h_1 .. h_T. Differentiable (autograd) in all three inputs.
    """
    T = log_a.shape[0]
    rest = tuple(log_a.shape[1:])
    n = -(-T // chunk)
    pad = n * chunk - T
    if pad:  # steps after the last one: they change nothing before them and are dropped
        z = log_a.new_zeros((pad,) + rest)
        log_a, log_b = torch.cat([log_a, z]), torch.cat([log_b, z])
    la = log_a.reshape((n, chunk) + rest)
    lb = log_b.reshape((n, chunk) + rest)
    a_star = torch.cumsum(la, 1)                    # log prod_{s<=t} a_s within the chunk (paper: a_star)
    v = lb - a_star
    lim = _SAFE_EXP[a_star.dtype] if a_star.dtype in _SAFE_EXP else 80.0
    decay = torch.exp(a_star)
    cum = torch.cumsum(torch.exp(v), 1)             # exp(logcumsumexp(v)); checked below
    flat = (n, -1)
    bad = (~torch.isfinite(cum[:, -1]).reshape(flat).all(1)) | (a_star[:, -1].reshape(flat).amin(1) < -lim)
    if bool(bad.any()):
        # these chunks leave exp's normal range: the paper's logcumsumexp there, the cumsum elsewhere
        # (computed apart, so no inf/0 from the other branch reaches the gradient)
        good = ~bad
        local = torch.empty_like(a_star)
        local = local.index_put((bad,), torch.exp(a_star[bad] + torch.logcumsumexp(v[bad], 1)))
        if bool(good.any()):
            local = local.index_put((good,), decay[good] * torch.cumsum(torch.exp(v[good]), 1))
    else:
        local = decay * cum                          # h from a zero start within each chunk
    # the chunks' starting states, in order (exact: a mul-add per chunk in the real domain)
    end_decay, end_local = decay[:, -1], local[:, -1]
    starts = []
    h = h0
    for c in range(n):
        starts.append(h)
        h = torch.addcmul(end_local[c], end_decay[c], h)
    out = torch.addcmul(local, decay, torch.stack(starts).unsqueeze(1))
    return out.reshape((n * chunk,) + rest)[:T]


class _MinRNN(RecurrentUnit):
    """Shared machinery: nn.Linear blocks on x_t, the two scans and the step loop."""

    kind = "minrnn"
    state_names = ("h",)
    has_scan = True
    #: the gate blocks' names in order (each an nn.Linear(fan_in, H)); the candidate h~ comes last
    blocks: tuple[str, ...] = ()

    def __init__(self, input_size, hidden_size, layers=1, convention=None, dtype=torch.float32, seed=None,
                 seeds=None, device=None, scan: str = "blocked", scan_chunk: int | None = None):
        if scan not in SCANS:
            raise ConfigError(f"scan must be one of {', '.join(SCANS)} (how a sequence is computed), "
                              f"got {scan!r}")
        if scan_chunk is not None and (not isinstance(scan_chunk, int) or isinstance(scan_chunk, bool)
                                       or scan_chunk < 1):
            raise ConfigError(f"scan_chunk must be a positive integer (steps per scan chunk) or None, "
                              f"got {scan_chunk!r}")
        self.scan = scan
        self.scan_chunk = scan_chunk
        #: False: every forward runs the sequential step loop (as ``scan="step"``)
        self.use_scan = scan != "step"
        super().__init__(input_size, hidden_size, layers=layers, convention=convention, dtype=dtype,
                         seed=seed, seeds=seeds, device=device)

    @property
    def gates(self) -> int:  # blocks of width H in W_x and b
        """The number of blocks of width H in ``W_x`` and ``b`` (minGRU 2, minLSTM 3).

        Returns
        -------
        int
            ``len(blocks)``.
        """
        return len(self.blocks)

    def _init_layer(self, layer, gen):
        fan_in, H, dt = self.layer_input_size(layer), self.hidden_size, self.dtype
        bound = 1.0 / math.sqrt(fan_in)
        Ws, bs = [], []
        for _ in self.blocks:  # nn.Linear(fan_in, H): weight [H, fan_in], then bias [H]
            Ws.append(winit.uniform((H, fan_in), bound, gen, dt).T)
            bs.append(winit.uniform((H,), bound, gen, dt))
        return {"W_x": torch.cat(Ws, 1).contiguous(), "b": torch.cat(bs).contiguous()}

    def _extra_describe(self) -> dict:
        return {"scan": self.scan, "scan_chunk": self.scan_chunk, "init": "nn.Linear default (Feng et al. 2024)"}

    def _project(self, x: torch.Tensor, W: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """``x W + b`` for a whole sequence; one fused ``addmm`` without an ensemble dimension."""
        if self.ensemble:
            return super()._project(x, W, b)
        return torch.addmm(b, x.reshape(-1, x.shape[-1]), W).reshape(x.shape[:-1] + (W.shape[-1],))

    # ----------------------------------------------------------------- maths
    def _coefficients(self, xp: torch.Tensor, inplace: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """``(a_t, b_t)`` of ``h_t = a_t h_{t-1} + b_t`` from ``xp = x W_x + b`` (as the step
        computes them); ``inplace``: overwrite ``xp`` (inference only)."""
        raise NotImplementedError

    def _log_coefficients(self, xp: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(log a_t, log b_t)`` of ``h_t = a_t h_{t-1} + b_t`` from ``xp = x W_x + b`` (the paper's)."""
        raise NotImplementedError

    def _cell_step(self, layer: int, xp_t: torch.Tensor, st: State) -> tuple[torch.Tensor, State]:
        """One step of layer ``layer`` (the paper's sequential listing); ``xp_t = x_t W_x + b``."""
        raise NotImplementedError

    # ----------------------------------------------------------------- compute
    def _forward_loop(self, x, state, return_all_states):
        scan = self.use_scan and x.shape[0] > 1 and not _python_only()
        # no gradient needed: the blocked scan works in place (a third of the memory traffic)
        inplace = not (torch.is_grad_enabled() and (x.requires_grad or state[0].requires_grad
                                                    or any(p.requires_grad for p in self.parameters())))
        inputs = x
        h0 = state[0]
        finals, per = [], []
        for layer in range(self.num_layers):
            p = self.layer_params[layer]
            xp = self._project(inputs, p.W_x, p.b)
            if scan and self.scan == "log":
                log_a, log_b = self._log_coefficients(xp)
                hs = scan_log(log_a, log_b, h0[layer], self.scan_chunk or SCAN_CHUNK)
            elif scan:
                a, b = self._coefficients(xp, inplace)
                hs = scan_blocked(a, b, h0[layer], self.scan_chunk, inplace)
            else:
                st = (h0[layer],)
                outs = []
                for xp_t in xp.unbind(0):
                    h, st = self._cell_step(layer, xp_t, st)
                    outs.append(h)
                hs = torch.stack(outs)
            finals.append(hs[-1])
            if return_all_states:
                per.append(hs)
            inputs = hs
        self.last_path = (f"scan-{self.scan}" if scan else "python")
        final = (torch.stack(finals),)
        if return_all_states:
            return inputs, final, (torch.stack(per, dim=1),)
        return inputs, final


class MinGRU(_MinRNN):
    """minGRU (Feng et al. 2024): ``h_t = (1 - z_t) h_{t-1} + z_t g(x_t W_h + b_h)``,
    ``z_t = sigmoid(x_t W_z + b_z)``; W_x = [W_z | W_h]. See the module docstring."""

    kind = "mingru"
    blocks = ("z", "h")

    def _coefficients(self, xp, inplace=False):
        H = self.hidden_size
        if inplace:
            z = xp[..., :H].sigmoid_()
            return torch.rsub(z, 1), _g_(xp[..., H:]).mul_(z)
        z = torch.sigmoid(xp[..., :H])
        return 1 - z, z * g(xp[..., H:])

    def _log_coefficients(self, xp):
        H = self.hidden_size
        k, u = xp[..., :H], xp[..., H:]
        return F.logsigmoid(-k), F.logsigmoid(k) + log_g(u)   # log(1 - z), log z + log h~

    def _cell_step(self, layer, xp_t, st):
        H = self.hidden_size
        z = torch.sigmoid(xp_t[..., :H])
        h = (1 - z) * st[0] + z * g(xp_t[..., H:])
        return h, (h,)


class MinLSTM(_MinRNN):
    """minLSTM (Feng et al. 2024): ``h_t = f'_t h_{t-1} + i'_t g(x_t W_h + b_h)`` with
    ``f' = f / (f + i)``, ``i' = i / (f + i)``; W_x = [W_f | W_i | W_h]. See the module docstring."""

    kind = "minlstm"
    blocks = ("f", "i", "h")

    def _coefficients(self, xp, inplace=False):
        H = self.hidden_size
        if inplace:
            f, i = xp[..., :H].sigmoid_(), xp[..., H:2 * H].sigmoid_()
            s = f + i
            return f.div_(s), _g_(xp[..., 2 * H:]).mul_(i.div_(s))
        f = torch.sigmoid(xp[..., :H])
        i = torch.sigmoid(xp[..., H:2 * H])
        s = f + i
        return f / s, (i / s) * g(xp[..., 2 * H:])

    def _log_coefficients(self, xp):
        H = self.hidden_size
        kf, ki, u = xp[..., :H], xp[..., H:2 * H], xp[..., 2 * H:]
        d = F.logsigmoid(ki) - F.logsigmoid(kf)                # log i - log f
        return F.logsigmoid(-d), F.logsigmoid(d) + log_g(u)    # log f', log i' + log h~

    def _cell_step(self, layer, xp_t, st):
        H = self.hidden_size
        f = torch.sigmoid(xp_t[..., :H])
        i = torch.sigmoid(xp_t[..., H:2 * H])
        s = f + i
        h = (f / s) * st[0] + (i / s) * g(xp_t[..., 2 * H:])
        return h, (h,)


UNIT_CLASSES = {"mingru": MinGRU, "minlstm": MinLSTM}

UNIT_DOCS = {
    "mingru": "minGRU (Feng et al. 2024, 'Were RNNs All We Needed?'): gate and candidate from x_t only; "
              "sequences by a parallel scan (scan = blocked: two-level, real domain, default | log: the "
              "paper's log-space scan | step), steps sequentially; paper init under every convention",
    "minlstm": "minLSTM (Feng et al. 2024): normalised forget/input gates from x_t only; sequences by a "
               "parallel scan (scan = blocked | log | step, as mingru), steps sequentially; paper init "
               "under every convention",
}

UNIT_OPTIONS = {"mingru": {"scan", "scan_chunk"}, "minlstm": {"scan", "scan_chunk"}}


def _register() -> None:
    from . import register

    for name, cls in UNIT_CLASSES.items():
        register(name, cls, UNIT_DOCS[name], UNIT_OPTIONS[name])


_register()

__all__ = ["MinGRU", "MinLSTM", "scan_blocked", "scan_log", "SCANS", "g", "log_g", "SCAN_CHUNK", "UNIT_CLASSES"]
