"""Mamba: the selective state-space block (S6) as a recurrent unit.

A. Gu and T. Dao, "Mamba: Linear-Time Sequence Modeling with Selective State Spaces", 2023
(arXiv:2312.00752), Algorithm 2 and Section 3; the reference implementation
``mamba_ssm/modules/mamba_simple.py`` (its ``forward`` and ``step``) and the pure-PyTorch port
``mambapy`` (``mambapy/mamba.py``, ``MambaBlock``), which this unit is tested against with
the same weights (tests/test_cells_mamba.py).

One layer maps ``x_t`` (width ``I`` for the first layer, ``H`` above) to ``o_t`` (width ``H``,
the model width ``d_model``). With ``d_inner = expand * H``, ``R = dt_rank`` (``"auto"``:
``ceil(H / 16)``), ``N = state_size`` and ``K = d_conv``::

    [x'_t | z_t] = x_t W_x                                 in-projection, W_x [I, 2 d_inner], no bias
    u_t  = SiLU(sum_{k=0}^{K-1} w_k * x'_{t-K+1+k} + b_conv)   causal depthwise conv1d (x'_{<1} = 0)
    [r_t | B_t | C_t] = u_t W_xp                           x_proj, widths R, N, N, no bias
    Delta_t = softplus(r_t W_dt + b_dt)                    [d_inner], input-dependent step
    A = -exp(A_log)                                        [d_inner, N], real, negative
    Abar_t = exp(Delta_t (x) A)                            zero-order hold for A
    Bbar_t = Delta_t (x) B_t                               simplified B (see below)
    h_t  = Abar_t * h_{t-1} + Bbar_t * u_t                 [d_inner, N], elementwise per channel
    y_t  = h_t C_t + D * u_t                               [d_inner]
    o_t  = (y_t * SiLU(z_t)) W_out                         out-projection, W_out [d_inner, H], no bias

``(x)`` is the outer product over (channel, state). Exact zero-order hold would give
``Bbar = (Delta A)^-1 (exp(Delta A) - I) Delta B``; the paper (Section 3.5.2, footnote on the
discretisation) and the reference code use the first-order ``Delta B`` instead, and so does this
unit: the same numbers as every trained Mamba checkpoint.

Initialisation (the reference ``Mamba.__init__``): ``A_log[d, n] = log(n)`` for n = 1..N (S4D-real,
``A = -(1, 2, ..., N)`` per channel), ``D = 1``; ``dt`` log-uniform in [dt_min, dt_max] = [1e-3, 1e-1]
(floored at 1e-4) stored through the inverse softplus, ``b_dt = dt + log(-expm1(-dt))``, so that
``softplus(b_dt) = dt``; ``W_dt ~ U(-R^-0.5, R^-0.5)`` (dt_init "random", dt_scale 1); the
in-projection, conv1d (weight and bias) and the x / out projections keep PyTorch's default
``nn.Linear`` / ``nn.Conv1d`` init, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) (conv fan_in = K). No
in/out-projection bias, a conv bias (the reference's ``bias=False``, ``conv_bias=True``). The
reference model's optional re-initialisations done by its LM wrapper (``_init_weights``: out_proj
rescaled by 1/sqrt(n_layer) under ``rescale_prenorm_residual``) are not applied: they belong to
the language model, not the block.

Layers: ``layers >= 2`` is a pure stack, ``o_t`` of one layer the input of the next; the
reference's ``Block`` (RMSNorm, then the mixer, plus a residual connection) is not added, so
every layer is exactly the block above and the state is the blocks' own (an LM wraps blocks in
residual and norm layers around them; ``cells.from_mambapy`` / ``cells.from_hf`` probe such a
whole model).

State: two components, each ``[layers, (E,) B, F]`` with one trailing feature dim:

- ``conv``: the last ``K - 1`` pre-convolution inputs ``x'`` of every channel, laid out
  ``[d_inner, K - 1]`` (channel-major, oldest first) and flattened, F = d_inner (K - 1);
- ``ssm``: ``h_t`` laid out ``[d_inner, N]`` and flattened, F = d_inner N.

The zero state is the reference's empty cache (zero conv window, h = 0). Sequence form: the
projections and the convolution run on all steps at once and the recurrence as an exact chunked
scan (:func:`chunk_scan`, products and fused multiply-adds only, no division by cumulative
products); ``step`` (and ``forward`` with ``use_scan = False``) runs the recurrence one step at a
time. Both agree to float rounding (tests: 1e-5 float32, 1e-10 float64 over 1,000 steps).
Without a gradient to compute (CPU, float32/64, ``use_native``, the library of
:mod:`rnnmem.cells._native` built) the sequence form runs instead through compiled loops
(:meth:`Mamba._layer_compiled`, ``last_path == "compiled"``): the convolution and SiLU, and the
selective recurrence with ``C h + D u`` and the gate, each in one pass over the steps; the same
operations as ``step``, the same numbers to rounding.

Ensembles (``seeds=[...]``): every parameter carries a leading E dimension; member e computes what
the unit built with ``seed=s_e`` computes.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F  # noqa: N812

from ..errors import ConfigError, InputError
from . import base as _base
from . import init as winit
from .base import RecurrentUnit, State
from .conventions import CONVENTIONS

DT_MIN = 1e-3
DT_MAX = 1e-1
DT_INIT_FLOOR = 1e-4


def _check_int(name: str, value, low: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise ConfigError(f"{name} must be an integer >= {low}, got {value!r}")
    return value


def chunk_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, out: torch.Tensor | None = None) -> torch.Tensor:
    """All states of the linear recurrence ``h_t = a_t * h_{t-1} + b_t`` (elementwise) from ``h0``.

    Exact two-level scan over time (dim 0): the ``c`` steps are cut into ``nb`` blocks of ``r``
    consecutive steps (``r ~ sqrt(c)``). (1) Every block's local scan from zero and its total decay
    (the product of its ``a``), one step at a time but all blocks at once; (2) the state entering
    each block, one block at a time: ``H_j = decay_j * H_{j-1} + local_j``; (3) every block's
    states from its entering state, again all blocks at once. Only products and multiply-adds: a
    product that underflows to 0 is the correct value (never divided by), so the result is as
    stable as the step loop, in about ``3 sqrt(c)`` kernel launches instead of ``c``.

    Parameters
    ----------
    a, b : Tensor ``[c, *S]`` (the decay and the input term of every step).
    h0 : Tensor ``[*S]`` (the state before step 0).
    out : Tensor ``[c, *S]``, optional
        Where to write the states when no gradient is needed (it may be ``b`` itself: each
        ``b_t`` is read before its slot is overwritten).

    Returns
    -------
    Tensor ``[c, *S]``: the states after each step.
    """
    c = a.shape[0]
    grad = torch.is_grad_enabled() and (a.requires_grad or b.requires_grad or h0.requires_grad)
    r = math.isqrt(c)
    nb = c // r
    m = nb * r
    if grad:
        out = None
    if r < 4:
        return _step_scan(a, b, h0, grad, out)
    a2 = a[:m].reshape((nb, r) + a.shape[1:])
    b2 = b[:m].reshape((nb, r) + b.shape[1:])
    local = b2[:, 0]
    for i in range(1, r):                            # (1) local scans, blocks in parallel
        local = torch.addcmul(b2[:, i], a2[:, i], local)
    decay = a2.prod(dim=1)                           #     and each block's total decay
    carry, H = [], h0
    for j in range(nb):                              # (2) the state entering each block
        carry.append(H)
        H = torch.addcmul(local[j], decay[j], H)
    h = torch.stack(carry)                           # [nb, *S]
    if grad:
        states = []
        for i in range(r):                           # (3) the states, blocks in parallel
            h = torch.addcmul(b2[:, i], a2[:, i], h)
            states.append(h)
        out = torch.stack(states, 1)
    else:
        full = a.new_empty(a.shape) if out is None else out
        o2 = full[:m].view((nb, r) + a.shape[1:])
        for i in range(r):
            h = torch.addcmul(b2[:, i], a2[:, i], h, out=o2[:, i])
        if m < c:                                    # the last c - m (< r) steps
            _step_scan(a[m:], b[m:], H, grad, full[m:])
        return full
    out = out.reshape((m,) + out.shape[2:])
    if m < c:
        out = torch.cat([out, _step_scan(a[m:], b[m:], H, grad)])
    return out


def _step_scan(a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor, grad: bool,
               out: torch.Tensor | None = None) -> torch.Tensor:
    """``chunk_scan`` one step at a time (short sequences)."""
    h = h0
    if grad:
        out = []
        for t in range(a.shape[0]):
            h = torch.addcmul(b[t], a[t], h)
            out.append(h)
        return torch.stack(out)
    out = a.new_empty(a.shape) if out is None else out
    for t in range(a.shape[0]):
        h = torch.addcmul(b[t], a[t], h, out=out[t])
    return out


class Mamba(RecurrentUnit):
    """The selective SSM block of Gu & Dao (2023); see the module docstring for the equations."""

    kind = "mamba"
    state_names = ("conv", "ssm")
    has_scan = True
    #: state elements (time steps x rows x d_inner x N) per scan chunk: the chunk's tensors stay
    #: small enough for the cache while a chunk spans many steps
    scan_chunk_elements = 2**20
    #: rows x steps x d_inner per block of the compiled path (about 1 MB of float32 per tensor)
    compiled_block_elements = 2**18

    def __init__(self, input_size, hidden_size, layers=1, convention=None, dtype=torch.float32, seed=None,
                 seeds=None, device=None, state_size: int = 16, expand: int = 2, d_conv: int = 4,
                 dt_rank="auto"):
        self.d_state = _check_int("state_size", state_size, 1)
        self.expand = _check_int("expand", expand, 1)
        self.d_conv = _check_int("d_conv (the causal convolution's width, the reference uses 4)", d_conv, 2)
        if dt_rank == "auto":
            if not isinstance(hidden_size, int) or isinstance(hidden_size, bool) or hidden_size < 1:
                raise ConfigError(f"hidden_size must be a positive integer, got {hidden_size!r}")
            self.dt_rank = math.ceil(hidden_size / 16)
        else:
            self.dt_rank = _check_int("dt_rank (or 'auto')", dt_rank, 1)
        self.dt_rank_option = dt_rank
        if convention is not None and convention != CONVENTIONS["torch"]:
            raise ConfigError(
                "cell 'mamba' has one initialisation, the reference's (Gu & Dao 2023); the convention "
                f"{convention.name!r} and convention options (gate_activation, init, ...) do not apply: "
                "build it with convention='torch' and no convention options")
        self.use_scan = True
        super().__init__(input_size, hidden_size, layers=layers, convention=convention, dtype=dtype,
                         seed=seed, seeds=seeds, device=device)
        self.d_inner = self.expand * hidden_size

    # ----------------------------------------------------------------- construction
    def _init_layer(self, layer: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        I, H, dt = self.layer_input_size(layer), self.hidden_size, self.dtype
        di, N, R, K = self.expand * H, self.d_state, self.dt_rank, self.d_conv
        # the reference's order: in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj
        p = {"W_x": winit.uniform((2 * di, I), 1.0 / math.sqrt(I), gen, dt).T}
        p["W_conv"] = winit.uniform((di, K), 1.0 / math.sqrt(K), gen, dt)
        p["b_conv"] = winit.uniform((di,), 1.0 / math.sqrt(K), gen, dt)
        p["W_xp"] = winit.uniform((R + 2 * N, di), 1.0 / math.sqrt(di), gen, dt).T
        p["W_dt"] = winit.uniform((di, R), R ** -0.5, gen, dt).T
        u = torch.rand(di, generator=gen, dtype=torch.float64)
        dt_init = torch.exp(u * (math.log(DT_MAX) - math.log(DT_MIN)) + math.log(DT_MIN)).clamp(min=DT_INIT_FLOOR)
        p["b_dt"] = (dt_init + torch.log(-torch.expm1(-dt_init))).to(dt)       # inverse softplus
        p["A_log"] = torch.log(torch.arange(1, N + 1, dtype=torch.float64)).repeat(di, 1).to(dt)
        p["D"] = torch.ones(di, dtype=dt)
        p["W_out"] = winit.uniform((H, di), 1.0 / math.sqrt(di), gen, dt).T
        return {k: v.contiguous() for k, v in p.items()}

    def _extra_describe(self) -> dict:
        return {"state_size": self.d_state, "expand": self.expand, "d_conv": self.d_conv,
                "dt_rank": self.dt_rank, "d_inner": self.expand * self.hidden_size,
                "dt_init_range": [DT_MIN, DT_MAX], "discretisation": "zoh A, first-order B (reference)",
                "stack": "pure (no residual, no norm)"}

    # ----------------------------------------------------------------- state
    def state_widths(self) -> dict[str, int]:
        """Trailing width F of each state component: conv d_inner (K-1), ssm d_inner N.

        Returns
        -------
        dict of str to int
            ``{"conv": d_inner (K - 1), "ssm": d_inner N}``.
        """
        di = self.expand * self.hidden_size
        return {"conv": di * (self.d_conv - 1), "ssm": di * self.d_state}

    def state_width(self, name: str) -> int:
        """See ``RecurrentUnit.state_width``.

        Parameters
        ----------
        name : str
            ``"conv"`` or ``"ssm"``.

        Returns
        -------
        int
            ``state_widths()[name]``.
        """
        return self.state_widths()[name]

    # ----------------------------------------------------------------- helpers
    def _mm(self, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """``x @ W`` for x ``[(T,) (E,) B, n]`` (ensembles: one product per member)."""
        if self.ensemble and x.dim() == 4:
            return torch.einsum("tebi,eig->tebg", x, W)
        return torch.matmul(x, W)

    def _chan(self, v: torch.Tensor) -> torch.Tensor:
        """A per-channel parameter ``[(E,) d_inner, ...]`` made to broadcast over the batch."""
        return v.unsqueeze(1) if self.ensemble else v

    # ----------------------------------------------------------------- compute
    def _forward_loop(self, x, state, return_all_states):
        conv, ssm = state
        finals = ([], [])
        per = ([], []) if return_all_states else None
        run = self._layer_scan if self.use_scan else self._layer_loop
        compiled = self.use_scan and self._compiled_ok(x, state)
        inputs = x
        for layer in range(self.num_layers):
            step = self._layer_compiled if compiled else run
            inputs, (c, s), seq = step(layer, inputs, conv[layer], ssm[layer], return_all_states)
            finals[0].append(c)
            finals[1].append(s)
            if per is not None:
                per[0].append(seq[0])
                per[1].append(seq[1])
        self.last_path = "compiled" if compiled else ("scan" if self.use_scan else "python")
        final = (torch.stack(finals[0]), torch.stack(finals[1]))
        if per is not None:
            return inputs, final, (torch.stack(per[0], dim=1), torch.stack(per[1], dim=1))
        return inputs, final

    def _compiled_ok(self, x: torch.Tensor, state: State) -> bool:
        """Whether the sequence form may run in the compiled loops (:meth:`_layer_compiled`;
        ``_native.py``'s ``dconv`` and ``selscan``): ``use_native``, not inside ``cells.base.python_loop()``, CPU,
        float32/64, no gradient needed (grad mode off, or neither parameters, inputs nor state
        require one), and the library built (``RNNMEM_NATIVE=0`` disables it)."""
        if not getattr(self, "use_native", True) or x.device.type != "cpu":
            return False
        if getattr(_base._LOCAL, "python_only", False) or x.dtype not in (torch.float32, torch.float64):
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(s.requires_grad for s in state)
                                        or any(p.requires_grad for p in self.parameters())):
            return False
        from . import _native

        return _native.library() is not None

    def step(self, x_t: torch.Tensor, state: State | None = None) -> tuple[torch.Tensor, State]:
        """One time step, ``x_t[(E,) B, I] -> (o_t[(E,) B, H], state)`` (the recurrent form).

        Runs the recurrence directly (not ``forward`` on one step); the same numbers as the
        sequence form to float rounding.

        Parameters
        ----------
        x_t : Tensor
            Input of one step, ``[B, I]``, or ``[E, B, I]`` for an ensemble.
        state : State, optional
            ``(conv, ssm)`` before the step, ``[layers, (E,) B, d_inner (K - 1)]`` and
            ``[layers, (E,) B, d_inner N]``; None: the zero state.

        Returns
        -------
        o_t : Tensor
            Output of the top layer, ``[(E,) B, H]``.
        state : State
            ``(conv, ssm)`` after the step.

        Raises
        ------
        InputError
            As ``RecurrentUnit.forward`` (input and state checks).
        """
        if not isinstance(x_t, torch.Tensor):
            raise InputError(f"input must be a torch.Tensor, got {type(x_t).__name__}")
        self._check_input(x_t.unsqueeze(0), state)
        ref = self.layer_params[0].W_x
        x_t = x_t.to(device=ref.device, dtype=ref.dtype)
        if state is None:
            state = self.init_state(x_t.shape[-2])
        else:
            state = tuple(s.to(device=ref.device, dtype=ref.dtype) for s in state)
        conv, ssm = state
        new_c, new_s = [], []
        h = x_t
        for layer in range(self.num_layers):
            h, c, s = self._step_layer(layer, h, conv[layer], ssm[layer])
            new_c.append(c)
            new_s.append(s)
        return h, (torch.stack(new_c), torch.stack(new_s))

    def _step_layer(self, layer, x_t, conv, ssm):
        """One step of layer ``layer``: ``(o_t, conv', ssm')`` from ``x_t[(E,) B, I_l]``."""
        p = self.layer_params[layer]
        di, N, R, K = self.expand * self.hidden_size, self.d_state, self.dt_rank, self.d_conv
        lead = x_t.shape[:-1]
        xz = self._mm(x_t, p.W_x)
        xi, z = xz[..., :di], xz[..., di:]
        full = torch.cat([conv.reshape(lead + (di, K - 1)), xi.unsqueeze(-1)], -1)   # [.., di, K]
        u = F.silu((full * self._chan(p.W_conv)).sum(-1) + p.b_conv)
        dbc = self._mm(u, p.W_xp)
        r, Bm, Cm = dbc[..., :R], dbc[..., R:R + N], dbc[..., R + N:]
        delta = F.softplus(self._mm(r, p.W_dt) + p.b_dt)
        A = -torch.exp(self._chan(p.A_log))
        h = ssm.reshape(lead + (di, N))
        h = torch.addcmul((delta * u).unsqueeze(-1) * Bm.unsqueeze(-2), torch.exp(delta.unsqueeze(-1) * A), h)
        y = torch.matmul(h, Cm.unsqueeze(-1)).squeeze(-1) + self._chan(p.D) * u
        out = self._mm(y * F.silu(z), p.W_out)
        return out, full[..., 1:].reshape(lead + (di * (K - 1),)), h.reshape(lead + (di * N,))

    def _layer_loop(self, layer, x, conv, ssm, keep_all):
        """The recurrent form over a sequence (the reference for the scan)."""
        outs, cs, ss = [], [], []
        for t in range(x.shape[0]):
            o, conv, ssm = self._step_layer(layer, x[t], conv, ssm)
            outs.append(o)
            if keep_all:
                cs.append(conv)
                ss.append(ssm)
        seq = (torch.stack(cs), torch.stack(ss)) if keep_all else None
        return torch.stack(outs), (conv, ssm), seq

    def _layer_compiled(self, layer, x, conv, ssm, keep_all):
        """The sequence form without autograd: the four matrix products (in-, x-, dt- and
        out-projection) and the softplus by torch, the rest (convolution and SiLU, the selective
        recurrence, ``C h + D u``, the gate) in the compiled loops of ``_native.py`` (``dconv``,
        ``selscan``), one pass each, in blocks of ``compiled_block_elements / (rows d_inner)``
        steps so that each block's tensors stay in the cache. The same operations as
        :meth:`_step_layer`, so the same numbers to float rounding."""
        from . import _native

        lib = _native.library()
        f32 = x.dtype == torch.float32
        dconv, selscan = (lib.dconv_f32, lib.selscan_f32) if f32 else (lib.dconv_f64, lib.selscan_f64)
        p = self.layer_params[layer]
        di, N, R, K = self.expand * self.hidden_size, self.d_state, self.dt_rank, self.d_conv
        T, lead = x.shape[0], x.shape[1:-1]
        E = self.ensemble or 1
        B = lead[-1]
        rows = E * B
        Wt = p.W_conv.reshape(E, di, K).transpose(1, 2).contiguous()      # [E, K, d_inner]
        At = (-torch.exp(p.A_log)).reshape(E, di, N).transpose(1, 2).contiguous()   # [E, N, d_inner]
        bias, Dv = p.b_conv.contiguous(), p.D.contiguous()
        window = conv.reshape(lead + (di, K - 1)).movedim(-1, 0).contiguous()   # [K-1, .., di], oldest first
        h = ssm.reshape(lead + (di, N)).transpose(-1, -2).clone(memory_format=torch.contiguous_format)  # [.., N, di]
        out = x.new_empty((T,) + lead + (self.hidden_size,))
        xi_all = x.new_empty((T,) + lead + (di,)) if keep_all else None
        hs_all = x.new_empty((T,) + lead + (di * N,)) if keep_all else None
        block = max(1, self.compiled_block_elements // (rows * di))
        for t0 in range(0, T, block):
            t1 = min(T, t0 + block)
            n = t1 - t0
            xz = self._mm(x[t0:t1], p.W_x).contiguous()                    # [n, .., 2 d_inner]: [x' | z]
            u = x.new_empty((n,) + lead + (di,))
            dconv(n, E, B, di, K, xz.data_ptr(), 2 * di, window.data_ptr(), Wt.data_ptr(), bias.data_ptr(),
                  u.data_ptr())
            dbc = self._mm(u, p.W_xp).contiguous()                         # [n, .., R + 2N]: [r | B | C]
            delta = F.softplus(self._mm(dbc[..., :R], p.W_dt) + p.b_dt).contiguous()
            y = x.new_empty((n,) + lead + (di,))
            hs = hs_all[t0:t1] if keep_all else None
            selscan(n, E, B, di, N, delta.data_ptr(), u.data_ptr(), dbc[..., R:].data_ptr(), R + 2 * N,
                    At.data_ptr(), Dv.data_ptr(), xz[..., di:].data_ptr(), 2 * di, h.data_ptr(), y.data_ptr(),
                    hs.data_ptr() if keep_all else None)
            out[t0:t1] = self._mm(y, p.W_out)
            xi = xz[..., :di]
            window = torch.cat([window, xi], 0)[-(K - 1):].contiguous() if n < K - 1 else xi[n - K + 1:].contiguous()
            if keep_all:
                xi_all[t0:t1] = xi
        conv_final = window.movedim(0, -1).reshape(lead + (di * (K - 1),))
        seq = None
        if keep_all:
            xext = torch.cat([conv.reshape(lead + (di, K - 1)).movedim(-1, 0), xi_all], 0)
            windows = xext.unfold(0, K - 1, 1)[1:]                        # [T, .., di, K-1]
            seq = (windows.reshape((T,) + lead + (di * (K - 1),)), hs_all)
        return out, (conv_final, h.transpose(-1, -2).reshape(lead + (di * N,))), seq

    def _layer_scan(self, layer, x, conv, ssm, keep_all):
        """The sequence form: projections and convolution on all steps, the recurrence by
        :func:`chunk_scan`, ``scan_chunk_elements`` state elements per chunk of steps."""
        p = self.layer_params[layer]
        di, N, R, K = self.expand * self.hidden_size, self.d_state, self.dt_rank, self.d_conv
        T, lead = x.shape[0], x.shape[1:-1]
        xz = self._mm(x, p.W_x)
        xi, z = xz[..., :di], xz[..., di:]
        window = conv.reshape(lead + (di, K - 1)).movedim(-1, 0)          # [K-1, .., di], oldest first
        xext = torch.cat([window, xi], 0)                                 # [K-1+T, .., di]
        Wc = self._chan(p.W_conv)
        acc = xext[0:T] * Wc[..., 0]
        for k in range(1, K):
            acc = torch.addcmul(acc, xext[k:k + T], Wc[..., k])
        u = F.silu(acc + p.b_conv)
        dbc = self._mm(u, p.W_xp)
        r, Bm, Cm = dbc[..., :R], dbc[..., R:R + N], dbc[..., R + N:]
        delta = F.softplus(self._mm(r, p.W_dt) + p.b_dt)
        du = delta * u
        A = -torch.exp(self._chan(p.A_log))
        h = ssm.reshape(lead + (di, N))
        rows = math.prod(lead) * di * N
        side = max(2, math.isqrt(self.scan_chunk_elements // max(1, rows)))
        chunk = side * side                                               # r x r blocks: no remainder
        ys, hs_all = [], []
        reuse = not keep_all and not (torch.is_grad_enabled() and any(
            t.requires_grad for t in (delta, du, Bm, Cm, A, h)))
        if reuse:  # no gradient: every chunk's tensors go into the same two buffers (no page faults)
            shape = (min(chunk, T),) + lead + (di, N)
            abuf, bbuf = u.new_empty(shape), u.new_empty(shape)
        for t0 in range(0, T, chunk):
            t1 = min(T, t0 + chunk)
            if reuse:
                a = torch.mul(delta[t0:t1].unsqueeze(-1), A, out=abuf[:t1 - t0]).exp_()
                b = torch.mul(du[t0:t1].unsqueeze(-1), Bm[t0:t1].unsqueeze(-2), out=bbuf[:t1 - t0])
                hs = chunk_scan(a, b, h, out=b)                           # the states overwrite b
                h = hs[-1].clone()
            else:
                a = torch.exp(delta[t0:t1].unsqueeze(-1) * A)
                b = du[t0:t1].unsqueeze(-1) * Bm[t0:t1].unsqueeze(-2)
                hs = chunk_scan(a, b, h)                                  # [c, .., di, N]
                h = hs[-1]
            ys.append(torch.matmul(hs, Cm[t0:t1].unsqueeze(-1)).squeeze(-1))
            if keep_all:
                hs_all.append(hs.reshape(hs.shape[:-2] + (di * N,)))
        y = torch.cat(ys) + self._chan(p.D) * u
        out = self._mm(y * F.silu(z), p.W_out)
        conv_final = xext[T:].movedim(0, -1).reshape(lead + (di * (K - 1),))
        seq = None
        if keep_all:
            windows = xext.unfold(0, K - 1, 1)[1:]                        # [T, .., di, K-1]
            seq = (windows.reshape((T,) + lead + (di * (K - 1),)), torch.cat(hs_all))
        return out, (conv_final, h.reshape(lead + (di * N,))), seq


UNIT_DOC = ("Mamba selective SSM block (Gu & Dao 2023): conv1d, input-dependent Delta/B/C, ZOH; "
            "options state_size (N, 16), expand (2), d_conv (4), dt_rank (auto)")
UNIT_OPTIONS = {"state_size", "expand", "d_conv", "dt_rank"}


def _register() -> None:
    from . import register

    register("mamba", Mamba, UNIT_DOC, UNIT_OPTIONS)


_register()

__all__ = ["Mamba", "chunk_scan", "DT_MIN", "DT_MAX", "DT_INIT_FLOOR"]
