"""Exact batched reverse sweeps through stacked gated units (input-gradient adjoints).

For a recurrent core of L stacked layers (state ``s_t``) read out linearly at every step, the
gradient of the scalar ``w_{t~} . h^L_{t~}`` (``h^L``: the top layer's output) with respect to the
input ``x_t`` of every step ``t <= t~`` follows from the adjoint recursion (reverse-mode AD written
out by hand)::

    lambda_{t~, t~} = w_{t~}                 (adjoint of the top layer's h at the output step)
    lambda_{t~, t-1} = lambda_{t~, t} J_t    (J_t = d s_t / d s_{t-1}, applied in factored form)
    d (w_{t~} . h^L_{t~}) / d x_t = delta^1_{t~, t} W_x^1 T     (delta: the first layer's gate gradients)

All output steps ``t~ >= t`` are carried together, as the rows of one matrix, through each step:
step t costs one batched vector-Jacobian product with ``T - t`` rows, the whole sweep about
``T^2 / 2`` row-steps (against ``T^2`` for back-propagating every output step through the whole
sequence). Compared with running autograd batched over the output steps (``is_grads_batched``),
the sweep here (1) never forms the gradient with respect to a wide input that is projected
afterwards: ``project`` (e.g. the embedding matrix of a character model) is folded into the first
layer's input kernel, ``Q = (P W_x^1)^T``; (2) precomputes every per-step coefficient of the
linearisation (gate values and derivatives) in one vectorised pass over the stored trajectory;
(3) keeps the adjoints of each layer in one ``[T, H]`` buffer whose rows ``t..T-1`` are the active
output steps, so each step is a few matrix products on contiguous row blocks and elementwise
products with ``[H]`` coefficient rows, with no autograd graph.

Units (the equations of ``gated.py``; ``torch.nn`` modules use PyTorch's): Elman RNN (tanh,
relu), LSTM (sigmoid or hard-sigmoid gates, TF1's forget shift), GRU (reset before or after,
sigmoid or hard-sigmoid gates), any number of layers, rnnmem units (not ensembles, not subclasses
that change the step) and ``torch.nn.RNN/LSTM/GRU`` (time-major, unidirectional, no projection).
Per layer, with ``d`` the gate activation's derivative (``s (1 - s)`` for the sigmoid, ``0.2`` on
``0 <= 0.2 a + 0.5 <= 1`` for the hard sigmoid, as torch's ``clamp`` back-propagates)::

    RNN:  delta = lambda * act'(a);           lambda' = delta W_h^T
    GRU:  delta_n = lambda (1 - z)(1 - n^2);  delta_z = lambda (h_prev - n) d(a_z)
          reset after:  delta_r = delta_n q d(a_r)  (q = h_prev W_n + b_hn)
                        lambda' = lambda z + [delta_r, delta_z, delta_n r] W_h^T
          reset before: v = delta_n W_n^T;  delta_r = v h_prev d(a_r)
                        lambda' = lambda z + v r + [delta_r, delta_z] [W_r, W_z]^T
    LSTM: lambda_c <- lambda_c + lambda_h o (1 - tanh(c)^2);  delta_o = lambda_h tanh(c) d(a_o)
          delta_i = lambda_c g d(a_i);  delta_f = lambda_c c_prev d(a_f);  delta_g = lambda_c i (1 - g^2)
          lambda_c' = lambda_c f;  lambda_h' = [delta_i, delta_f, delta_g, delta_o] W_h^T

and the adjoint passed to the layer below at the same step is ``delta W_x^T``. The connectivity
probe (``rnnmem.probes.connectivity``, ``method="adjoint"``) checks the trajectory against the
model's own readout input before using it; the tests compare this sweep with autograd and with
the textbook loop in float64.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import torch
from torch import nn

from .base import RecurrentUnit
from .gated import GRU, LSTM, RNN, _add

KINDS = ("rnn_tanh", "rnn_relu", "lstm", "gru")


@dataclass
class LayerSpec:
    """One layer's arithmetic in ``x @ W`` layout (gate order of ``gated.py``: i, f, g, o / r, z, n).

    Parameters
    ----------
    kind: ``rnn_tanh``, ``rnn_relu``, ``lstm`` or ``gru``.
    W_x, W_h: input and recurrent kernels ``[I, G*H]`` and ``[H, G*H]``.
    b: everything added to the pre-activation that no gate multiplies ``[G*H]`` (biases, the
        LSTM's forget shift; under GRU reset before also ``b_hn``).
    b_hn: GRU reset after: the bias inside the reset-gated recurrent product (None: zero).
    reset_after: GRU convention.
    hard: hard-sigmoid gates (``clamp(0.2 a + 0.5, 0, 1)``) instead of the sigmoid.
    """

    kind: str
    W_x: torch.Tensor
    W_h: torch.Tensor
    b: torch.Tensor
    b_hn: torch.Tensor | None = None
    reset_after: bool = False
    hard: bool = False

    @property
    def hidden(self) -> int:
        """The layer's width.

        Returns
        -------
        H, the number of hidden units (rows of ``W_h``).
        """
        return self.W_h.shape[0]


def _specs_rnnmem(unit) -> list[LayerSpec] | None:
    cls = type(unit)
    if getattr(unit, "ensemble", None) or cls not in (RNN, LSTM, GRU):
        return None  # subclasses may change the step: only the exact built-in classes
    if "_layer_stepper" in unit.__dict__ or "_cell_step" in unit.__dict__:
        return None  # patched on the instance
    hard = unit.convention.gate_activation == "hard_sigmoid"
    specs = []
    for p in unit.layer_params:
        if cls is RNN:
            b = _add(p.b, unit._b_h(p))
            specs.append(LayerSpec(f"rnn_{unit.nonlinearity}", p.W_x, p.W_h, b))
        elif cls is LSTM:
            b = _add(p.b, unit._constant_bias(p))
            specs.append(LayerSpec("lstm", p.W_x, p.W_h, b, hard=hard))
        else:
            _, _, _, fold, b_hn = unit._split_params(p)
            after = unit.convention.gru_reset == "after"
            specs.append(LayerSpec("gru", p.W_x, p.W_h, _add(p.b, fold), b_hn, after, hard))
    return specs


def _specs_torch(core: nn.RNNBase) -> list[LayerSpec] | None:
    if core.batch_first or core.bidirectional or getattr(core, "proj_size", 0):
        return None
    kind = {"RNN_TANH": "rnn_tanh", "RNN_RELU": "rnn_relu", "LSTM": "lstm", "GRU": "gru"}.get(core.mode)
    if kind is None:
        return None
    H = core.hidden_size
    specs = []
    for layer in range(core.num_layers):
        w_ih, w_hh = getattr(core, f"weight_ih_l{layer}"), getattr(core, f"weight_hh_l{layer}")
        G = w_ih.shape[0]
        b_ih = getattr(core, f"bias_ih_l{layer}", None) if core.bias else None
        b_hh = getattr(core, f"bias_hh_l{layer}", None) if core.bias else None
        b_ih = w_ih.new_zeros(G) if b_ih is None else b_ih
        b_hh = w_ih.new_zeros(G) if b_hh is None else b_hh
        if kind == "gru":  # PyTorch's GRU is reset after, b_hn inside the gated product
            b = b_ih + torch.cat([b_hh[: 2 * H], b_hh.new_zeros(H)])
            specs.append(LayerSpec("gru", w_ih.T, w_hh.T, b, b_hh[2 * H :], True, False))
        else:
            specs.append(LayerSpec(kind, w_ih.T, w_hh.T, b_ih + b_hh))
    return specs


def layer_specs(core: nn.Module) -> list[LayerSpec] | None:
    """The per-layer arithmetic of ``core``, or None when this module has no hand-derived sweep.

    Parameters
    ----------
    core: a rnnmem ``RNN``/``LSTM``/``GRU`` unit (exact class, no ensemble) or a
        ``torch.nn.RNN/LSTM/GRU`` (time-major, unidirectional, no projection).

    Returns
    -------
    One :class:`LayerSpec` per layer, bottom first, or None.
    """
    if isinstance(core, RecurrentUnit):
        return _specs_rnnmem(core)
    if isinstance(core, nn.RNNBase):
        return _specs_torch(core)
    return None


def _gate(spec: LayerSpec, a: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Gate values and their derivatives with respect to the pre-activation ``a``."""
    if spec.hard:
        u = a * 0.2 + 0.5
        return u.clamp(0.0, 1.0), ((u >= 0) & (u <= 1)).to(a.dtype) * 0.2
    s = torch.sigmoid(a)
    return s, s * (1 - s)


def _run_layer(spec: LayerSpec, u: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The layer's outputs ``h[T, H]`` (and cells ``c[T, H]`` for the LSTM) from a zero state."""
    T, H = u.shape[0], spec.hidden
    xp = torch.addmm(spec.b, u, spec.W_x)
    h = u.new_zeros(H)
    c = u.new_zeros(H) if spec.kind == "lstm" else None
    hs, cs = [], []
    for t in range(T):
        if spec.kind.startswith("rnn"):
            a = xp[t] + h @ spec.W_h
            h = torch.tanh(a) if spec.kind == "rnn_tanh" else torch.relu(a)
        elif spec.kind == "lstm":
            a = xp[t] + h @ spec.W_h
            g_all, _ = _gate(spec, a)
            i, f, o = g_all[:H], g_all[H : 2 * H], g_all[3 * H :]
            c = f * c + i * torch.tanh(a[2 * H : 3 * H])
            h = o * torch.tanh(c)
            cs.append(c)
        else:
            rz, _ = _gate(spec, xp[t, : 2 * H] + h @ spec.W_h[:, : 2 * H])
            r, z = rz[:H], rz[H:]
            if spec.reset_after:
                n = torch.tanh(xp[t, 2 * H :] + r * _add(h @ spec.W_h[:, 2 * H :], spec.b_hn))
            else:
                n = torch.tanh(xp[t, 2 * H :] + (r * h) @ spec.W_h[:, 2 * H :])
            h = n + z * (h - n)
        hs.append(h)
    return torch.stack(hs), (torch.stack(cs) if cs else None)


@torch.no_grad()
def trajectory(core: nn.Module, specs: list[LayerSpec], x: torch.Tensor):
    """Every layer's outputs (and LSTM cells) along ``x[T, I]`` from a zero state.

    rnnmem units report their own per-step states (``return_all_states``); torch.nn modules are
    run layer by layer with the equations of :class:`LayerSpec`.

    Parameters
    ----------
    core: the recurrent core (see :func:`layer_specs`).
    specs: ``layer_specs(core)``.
    x: the input ``[T, I]`` (one sequence).

    Returns
    -------
    ``(hs, cs)``: lists (bottom layer first) of ``[T, H]`` tensors; ``cs`` entries are None except
    for LSTM layers.
    """
    if isinstance(core, RecurrentUnit):
        _, _, states = core(x[:, None], return_all_states=True)
        hs = [states[0][:, layer, 0] for layer in range(len(specs))]
        cs = [states[1][:, layer, 0] if spec.kind == "lstm" else None for layer, spec in enumerate(specs)]
        return hs, cs
    hs, cs, u = [], [], x
    for spec in specs:
        h, c = _run_layer(spec, u)
        hs.append(h)
        cs.append(c)
        u = h
    return hs, cs


@torch.no_grad()
def consistent(specs: list[LayerSpec], x: torch.Tensor, hs: list[torch.Tensor], steps: int = 8) -> bool:
    """Whether the equations of ``specs`` reproduce the first ``steps`` outputs ``hs`` of every layer
    along ``x[T, I]`` (float rounding allowed): the guard that the hand-derived sweep describes the
    unit that produced the trajectory.

    Parameters
    ----------
    specs: the layers' equations (:func:`layer_specs`).
    x: the input ``[T, I]``.
    hs: every layer's outputs ``[T, H]`` as the unit computed them (:func:`trajectory`).
    steps: how many leading steps are recomputed.

    Returns
    -------
    True when every layer's recomputed outputs are allclose (``rtol=1e-4``) to the given ones.
    """
    u = x[:steps]
    for spec, h in zip(specs, hs):
        mine, _ = _run_layer(spec, u)
        scale = float(h[:steps].abs().max()) if h.numel() else 0.0
        if not torch.allclose(mine, h[:steps], rtol=1e-4, atol=1e-5 * max(scale, 1e-30)):
            return False
        u = h[:steps]
    return True


def _coefficients(spec: LayerSpec, u: torch.Tensor, h: torch.Tensor, c: torch.Tensor | None) -> dict:
    """Per-step coefficients ``[T, H]`` of the layer's linearisation along its trajectory."""
    H = spec.hidden
    h_prev = torch.cat([h.new_zeros(1, H), h[:-1]])
    a = torch.addmm(spec.b, u, spec.W_x)
    if spec.kind.startswith("rnn"):
        a = a + h_prev @ spec.W_h
        d = 1 - h * h if spec.kind == "rnn_tanh" else (a > 0).to(a.dtype)
        return {"d": d}
    if spec.kind == "lstm":
        a = a + h_prev @ spec.W_h
        s, ds = _gate(spec, a)
        c_prev = torch.cat([c.new_zeros(1, H), c[:-1]])
        i, f, o = s[:, :H], s[:, H : 2 * H], s[:, 3 * H :]
        g = torch.tanh(a[:, 2 * H : 3 * H])
        tc = torch.tanh(c)
        return {"co": o * (1 - tc * tc), "cgo": tc * ds[:, 3 * H :], "ci": g * ds[:, :H],
                "cf": c_prev * ds[:, H : 2 * H], "cg": i * (1 - g * g), "f": f}
    s, ds = _gate(spec, a[:, : 2 * H] + h_prev @ spec.W_h[:, : 2 * H])
    r, z = s[:, :H], s[:, H:]
    if spec.reset_after:
        q = _add(h_prev @ spec.W_h[:, 2 * H :], spec.b_hn)
        n = torch.tanh(a[:, 2 * H :] + r * q)
    else:
        q = h_prev
        n = torch.tanh(a[:, 2 * H :] + (r * h_prev) @ spec.W_h[:, 2 * H :])
    return {"z": z, "r": r, "cn": (1 - z) * (1 - n * n), "cz": (h_prev - n) * ds[:, H:],
            "cr": q * ds[:, :H]}


class _LayerSweep:
    """Adjoint buffers and the batched reverse step of one layer (module docstring).

    ``W_in`` maps the gate gradients to what the step hands on: ``W_x^T`` (the adjoint of the
    layer's input, for the layer below) or, for the bottom layer, ``Q`` (the projected input
    gradient). Each step is one or two matrix products whose right-hand matrices are the recurrent
    kernel's and ``W_in``'s blocks side by side, so one product gives both the adjoint's
    recurrent part and what is handed on."""

    def __init__(self, spec: LayerSpec, coef: dict, T: int, W_in: torch.Tensor, ref: torch.Tensor):
        self.spec, self.coef = spec, coef
        H = spec.hidden
        G = spec.W_h.shape[1] // H
        W_hT = spec.W_h.T                                    # [G*H, H]
        n_in = W_in.shape[1]
        self.lam = ref.new_zeros(T, H)                       # adjoint of h (rows: output steps)
        self.lamc = ref.new_zeros(T, H) if spec.kind == "lstm" else None
        self.delta = ref.new_zeros(T, G * H)                 # gate (pre-activation) gradients
        if spec.kind == "gru":
            self.out = ref.new_zeros(T, n_in)                # handed on: input adjoint | projected gradient
            # [r, z] block: one product for the recurrent part and the input part
            self.R_rz = torch.cat([W_hT[: 2 * H], W_in[: 2 * H]], dim=1).contiguous()
            self.P_rz = ref.new_zeros(T, H + n_in)
            if spec.reset_after:  # delta_n feeds W_h as delta_n * r but W_in as delta_n
                self.W_nT, self.W_in_n = W_hT[2 * H :].contiguous(), W_in[2 * H :].contiguous()
                self.v = ref.new_zeros(T, H)
            else:                 # delta_n feeds both as it is
                self.R_n = torch.cat([W_hT[2 * H :], W_in[2 * H :]], dim=1).contiguous()
                self.P_n = ref.new_zeros(T, H + n_in)
        else:
            self.R = torch.cat([W_hT, W_in], dim=1).contiguous()
            self.P = ref.new_zeros(T, H + n_in)

    def step(self, t: int) -> torch.Tensor:
        """One reverse step over the active rows ``t..T-1``: returns what is handed on
        (``[T - t, I]`` input adjoints or ``[T - t, C]`` projected gradients, a view of a reused
        buffer) and moves the adjoints to step ``t - 1`` in place."""
        spec, k, H = self.spec, self.coef, self.spec.hidden
        lam, D = self.lam[t:], self.delta[t:]
        if spec.kind.startswith("rnn") or spec.kind == "lstm":
            if spec.kind == "lstm":
                lamc = self.lamc[t:]
                lamc.addcmul_(lam, k["co"][t])
                torch.mul(lamc, k["ci"][t], out=D[:, :H])
                torch.mul(lamc, k["cf"][t], out=D[:, H : 2 * H])
                torch.mul(lamc, k["cg"][t], out=D[:, 2 * H : 3 * H])
                torch.mul(lam, k["cgo"][t], out=D[:, 3 * H :])
                lamc.mul_(k["f"][t])
            else:
                torch.mul(lam, k["d"][t], out=D)
            P = self.P[t:]
            torch.mm(D, self.R, out=P)
            lam.copy_(P[:, :H])
            return P[:, H:]
        out = self.out[t:]
        cn, cz, cr, z, r = k["cn"][t], k["cz"][t], k["cr"][t], k["z"][t], k["r"][t]
        Dn, Drz = D[:, 2 * H :], D[:, : 2 * H]
        torch.mul(lam, cn, out=Dn)
        torch.mul(lam, cz, out=D[:, H : 2 * H])
        P_rz = self.P_rz[t:]
        if spec.reset_after:
            torch.mul(Dn, cr, out=D[:, :H])
            torch.mm(Drz, self.R_rz, out=P_rz)
            v = self.v[t:]
            torch.mul(Dn, r, out=v)
            lam.mul_(z).add_(P_rz[:, :H]).addmm_(v, self.W_nT)
            torch.addmm(P_rz[:, H:], Dn, self.W_in_n, out=out)
            return out
        P_n = self.P_n[t:]
        torch.mm(Dn, self.R_n, out=P_n)
        v = P_n[:, :H]
        torch.mul(v, cr, out=D[:, :H])
        torch.mm(Drz, self.R_rz, out=P_rz)
        lam.mul_(z).addcmul_(v, r).add_(P_rz[:, :H])
        torch.add(P_n[:, H:], P_rz[:, H:], out=out)
        return out


def input_adjoints(core: nn.Module, x: torch.Tensor, w_out: torch.Tensor, project: torch.Tensor | None = None,
                   specs: list[LayerSpec] | None = None, states=None) -> Iterator[tuple[int, torch.Tensor]]:
    """Input gradients of every linear readout ``w_out[t~] . h^L_{t~}`` at every step ``t <= t~``.

    Parameters
    ----------
    core: the recurrent core (see :func:`layer_specs`); it runs on ``x`` from a zero state.
    x: the input ``[T, I]``.
    w_out: ``[T, H]``, the readout row of each output step (the cotangent of the top layer's
        output at ``t~``).
    project: optional ``[C, I]``: the gradients are returned projected, ``g @ project.T`` (e.g.
        the embedding matrix: gradients with respect to a one-hot input).
    specs, states: :func:`layer_specs` and :func:`trajectory` results when already computed.

    Returns
    -------
    An iterator over ``t = T-1, ..., 0`` of ``(t, G)`` with ``G[j] = d (w_out[t + j] . h^L_{t + j})
    / d x_t`` (projected), shape ``[T - t, I]`` (``[T - t, C]`` with ``project``). ``G`` is a view
    into a reused buffer: consume it before advancing the iterator.
    """
    specs = layer_specs(core) if specs is None else specs
    if specs is None:
        raise ValueError(f"no hand-derived adjoint sweep for {type(core).__name__}")
    with torch.no_grad():
        hs, cs = trajectory(core, specs, x) if states is None else states
        T = x.shape[0]
        inputs = [x] + hs[:-1]
        W_x0T = specs[0].W_x.T
        Q = W_x0T if project is None else W_x0T @ project.T  # [G*H, I | C]: the bottom layer hands on this
        layers = [_LayerSweep(s, _coefficients(s, u, h, c), T, Q if n == 0 else s.W_x.T, x)
                  for n, (s, u, h, c) in enumerate(zip(specs, inputs, hs, cs))]
        top = layers[-1]
        for t in range(T - 1, -1, -1):
            top.lam[t] = w_out[t]
            handed = None
            for layer in reversed(layers):
                if handed is not None:
                    layer.lam[t:] += handed
                handed = layer.step(t)
            yield t, handed
