"""Diagonal state-space layer S4D (Gu, Gupta, Goel & Re, "On the Parameterization and
Initialization of Diagonal State Space Models", NeurIPS 2022; the minimal ``S4DKernel`` of the
authors' state-spaces repository).

S4D is a per-channel single-input single-output LTI system. rnnmem first projects the input x_t
(width I) to the H channels, ``v_t = x_t W_x + b``, then runs H independent SSMs of state size N,
each with M = N/2 complex modes (A is conjugate-symmetric, so the conjugate half is implied and
the real output is twice the real part)::

    A_{h,m}   = -exp(log_A_real_{h,m}) + i A_imag_{h,m},      dt_h = exp(log_dt_h)
    Abar      = exp(dt A),    Bbar = (exp(dt A) - 1) / A * B         (zero-order hold)
    s_t       = Abar s_{t-1} + Bbar v_t                           (per channel h, mode m)
    y_{t,h}   = 2 Re(sum_m C_{h,m} s_{t,h,m}) + D_h v_{t,h}

Output y_t has width H (the next layer's input). No nonlinearity: the S4D block's GELU and output
GLU sit outside the recurrence and are not part of this unit.

Initialisation (the paper's): Re A = -1/2; ``a_init="lin"`` (S4D-Lin) Im A_m = pi m,
``a_init="inv"`` (S4D-Inv) Im A_m = (N / pi) (N / (2m + 1) - 1), m = 0..M-1; B = 1;
C ~ complex N(0, 1) (each part N(0, 1/2), ``torch.randn(cfloat)``); D ~ N(0, 1);
log dt ~ U[log dt_min, log dt_max] with dt_min = 1e-3, dt_max = 1e-1. The input projection is
``nn.Linear``'s default, U(-1/sqrt(I), 1/sqrt(I)) for W_x and b (rnnmem's, not the paper's: S4D's
layer takes H channels directly). Draws in float64, then cast.

Parameters (per layer): ``W_x`` [I, H], ``b`` [H], ``log_dt`` [H], ``log_A_real``, ``A_imag``,
``B_re``, ``B_im``, ``C_re``, ``C_im`` [H, M], ``D`` [H]; an ensemble adds a leading E dimension.

State: one component ``h`` [layers, (E,) B, 2 H M] = [Re s | Im s], each half laid out (h, m).

Sequence form: the exact blocked parallel scan of :mod:`rnnmem.cells.scan` (``use_scan = True``);
step form (``use_scan = False``): a Python loop in real arithmetic. They agree to rounding. A
sequence of at least ``fft_min_steps`` steps whose per-step states are not asked for runs, the
system being LTI, as a causal convolution with the kernel ``K_k = 2 Re(C Abar^k Bbar)`` by FFT,
plus the initial state's free response and the final state in closed form
(:meth:`S4D._run_layer_fft`; ``last_path == "fft"``, off with ``use_fft = False``): the step
form's numbers to rounding, without the scan's [T, B, H, N] states.
"""

from __future__ import annotations

import math

import scipy.fft
import torch

from ..errors import ConfigError
from . import base as _base
from .lru import DiagonalLinearUnit, check_no_convention, int_option, real_option

A_INITS = ("lin", "inv")


class S4D(DiagonalLinearUnit):
    """S4D layer (Gu et al. 2022) after an input projection; see the module docstring.

    Parameters
    ----------
    input_size, hidden_size, layers, dtype, seed, seeds, device : as every unit (hidden_size = H,
        the number of channels and the output width).
    state_size : int
        N, the state size per channel (even; M = N/2 complex modes; default 64).
    a_init : str
        "lin" (S4D-Lin) or "inv" (S4D-Inv).
    dt_min, dt_max : float
        Range of the initial step dt (log-uniform; default 1e-3, 1e-1).
    """

    kind = "s4d"
    #: sequences at least this long (and no per-step states asked for) run by FFT convolution
    fft_min_steps = 64
    #: float64 elements (rows x transform length) per block of channels of the FFT path
    fft_block_elements = 2**22

    def __init__(self, input_size, hidden_size, layers=1, convention=None, dtype=torch.float32, seed=None,
                 seeds=None, device=None, state_size: int = 64, a_init: str = "lin", dt_min: float = 1e-3,
                 dt_max: float = 1e-1):
        check_no_convention(self.kind, convention)
        self.N = int_option(self.kind, "state_size", state_size, 2)
        if self.N % 2:
            raise ConfigError(f"cell 's4d': state_size must be even (N/2 complex conjugate pairs), got {self.N}")
        self.M = self.N // 2
        if a_init not in A_INITS:
            raise ConfigError(f"cell 's4d': a_init must be one of {', '.join(A_INITS)}, got {a_init!r}")
        self.a_init = a_init
        self.dt_min = real_option(self.kind, "dt_min", dt_min, 0.0, low_open=True)
        self.dt_max = real_option(self.kind, "dt_max", dt_max, 0.0, low_open=True)
        if not self.dt_min <= self.dt_max:
            raise ConfigError(f"cell 's4d': dt_min ({self.dt_min}) must not exceed dt_max ({self.dt_max})")
        self.use_scan = True
        self.use_fft = True
        super().__init__(input_size, hidden_size, layers=layers, convention=None, dtype=dtype, seed=seed,
                         seeds=seeds, device=device)

    def state_width(self, name: str = "h") -> int:
        """See ``DiagonalLinearUnit.state_width``.

        Parameters
        ----------
        name : str
            The state component, ``"h"``.

        Returns
        -------
        int
            2 H M: Re s and Im s of the M complex modes of each of the H channels.
        """
        return 2 * self.hidden_size * self.M

    def _init_layer(self, layer: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        I, H, M, N = self.layer_input_size(layer), self.hidden_size, self.M, self.N
        f64 = torch.float64
        bound = 1.0 / math.sqrt(I)
        W_x = (torch.rand((H, I), generator=gen, dtype=f64) * 2 - 1) * bound
        b = (torch.rand(H, generator=gen, dtype=f64) * 2 - 1) * bound
        lo, hi = math.log(self.dt_min), math.log(self.dt_max)
        log_dt = torch.rand(H, generator=gen, dtype=f64) * (hi - lo) + lo
        C_re = torch.randn((H, M), generator=gen, dtype=f64) / math.sqrt(2)
        C_im = torch.randn((H, M), generator=gen, dtype=f64) / math.sqrt(2)
        D = torch.randn(H, generator=gen, dtype=f64)
        m = torch.arange(M, dtype=f64)
        imag = math.pi * m if self.a_init == "lin" else (N / math.pi) * (N / (2 * m + 1) - 1)
        p = {"W_x": W_x.T, "b": b, "log_dt": log_dt,
             "log_A_real": torch.full((H, M), math.log(0.5), dtype=f64), "A_imag": imag.expand(H, M),
             "B_re": torch.ones((H, M), dtype=f64), "B_im": torch.zeros((H, M), dtype=f64),
             "C_re": C_re, "C_im": C_im, "D": D}
        return {k: v.to(self.dtype).contiguous() for k, v in p.items()}

    def discretised(self, layer: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(Abar, Bbar) of layer ``layer`` as complex tensors [(E,) H, M] (zero-order hold).

        ``Abar = exp(dt A)``, ``Bbar = (exp(dt A) - 1) / A * B`` with ``A = -exp(log_A_real) + i A_imag``
        and ``dt = exp(log_dt)`` (Gu et al. 2022), in complex arithmetic from the current parameters
        (the unit itself computes the same numbers in real arithmetic).

        Parameters
        ----------
        layer : int
            Layer index (default 0).

        Returns
        -------
        Abar : Tensor
            Complex ``[(E,) H, M]``, the per-step decay of every mode (``|Abar| < 1``).
        Bbar : Tensor
            Complex ``[(E,) H, M]``, the input gain of every mode.
        """
        p = self.layer_params[layer]
        A = torch.complex(-torch.exp(p.log_A_real), p.A_imag)
        dtA = A * torch.exp(p.log_dt).unsqueeze(-1)
        Abar = torch.exp(dtA)
        return Abar, (Abar - 1) / A * torch.complex(p.B_re, p.B_im)

    def _zoh(self, p) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """``(Re Abar, Im Abar, Re Bbar, Im Bbar)`` [(E,) H, M] of one layer's parameters ``p`` in
        real arithmetic and the unit's dtype (what the scan, the step and the FFT path all use)."""
        dt = torch.exp(p.log_dt).unsqueeze(-1)                     # [(E,) H, 1]
        a_re, a_im = -torch.exp(p.log_A_real), p.A_imag
        mod = torch.exp(dt * a_re)
        ab_re, ab_im = mod * torch.cos(dt * a_im), mod * torch.sin(dt * a_im)     # Abar = exp(dt A)
        # Bbar = (Abar - 1) / A * B, in real arithmetic
        den = a_re * a_re + a_im * a_im
        q_re = ((ab_re - 1) * a_re + ab_im * a_im) / den
        q_im = (ab_im * a_re - (ab_re - 1) * a_im) / den
        bb_re = q_re * p.B_re - q_im * p.B_im
        bb_im = q_re * p.B_im + q_im * p.B_re
        return ab_re, ab_im, bb_re, bb_im

    def _run_layer(self, layer, x, h0):
        p = self.layer_params[layer]
        H, M = self.hidden_size, self.M
        ab_re, ab_im, bb_re, bb_im = self._zoh(p)
        v = self._mm(x, p.W_x) + p.b                               # [T, (E,) B, H]
        lead = v.shape[:-1]
        Bb = self._vec(torch.stack([bb_re, bb_im], -3))             # [(E, 1,) 2, H, M]
        u = (v.unsqueeze(-2).unsqueeze(-1) * Bb).reshape(lead + (2 * H * M,))   # [T, (E,) B, 2HM]
        S = self._recur(self._flat(ab_re), self._flat(ab_im), u, h0, self.use_scan)
        Cst = self._vec(torch.stack([p.C_re, -p.C_im], -3))         # 2 Re(C s) = 2 (Re s C_re - Im s C_im)
        Sv = S.reshape(S.shape[:-1] + (2, H, M))
        y = 2.0 * (Sv * Cst).sum((-3, -1)) + self._vec(p.D) * v
        return y, S

    def _forward_loop(self, x, state, return_all_states):
        """Sequences of at least ``fft_min_steps`` steps whose per-step states are not asked for
        run by FFT convolution (:meth:`_run_layer_fft`); everything else by the scan or the step
        loop of :class:`DiagonalLinearUnit` (``unit.step`` included: one step is never an FFT)."""
        if (return_all_states or not self.use_scan or not self.use_fft or x.shape[0] < self.fft_min_steps
                or getattr(_base._LOCAL, "python_only", False)):
            return super()._forward_loop(x, state, return_all_states)
        inputs, finals = x, []
        for layer in range(self.num_layers):
            inputs, h_T = self._run_layer_fft(layer, inputs, state[0][layer])
            finals.append(h_T)
        self.last_path = "fft"
        return inputs, (torch.stack(finals),)

    def _run_layer_fft(self, layer: int, x: torch.Tensor, h0: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Layer ``layer`` over x [T, (E,) B, I_l] from h0 [(E,) B, 2HM] without the per-step states:
        ``(y [T, (E,) B, H], h_T [(E,) B, 2HM])``.

        With the kernel ``K_k = 2 Re(sum_m C_m Abar_m^k Bbar_m)`` (k = 0..T-1, per channel) the
        output is the causal convolution plus the initial state's free response and the skip::

            y_t = sum_{s<=t} K_{t-s} v_s + 2 Re(sum_m C_m Abar_m^(t+1) h0_m) + D v_t
            h_T = sum_{s<T} Abar^(T-1-s) Bbar v_s + Abar^T h0

        The convolution runs by FFT (``torch.fft.rfft``/``irfft``, zero-padded to a fast length
        >= 2T - 1), the other two sums as matrix products. Powers come in closed form,
        ``Abar^k = exp(k log Abar)`` with ``log Abar`` taken of the same rounded ``Abar`` the step
        form multiplies by, factored ``k = j L + i`` (``L ~ sqrt(T)``) so that only ``2 sqrt(T)``
        powers per mode are formed: ``Abar^k = Abar^(jL) Abar^i``. Everything after the input
        projection ``v`` is computed in float64 (float32 units too: the FFT's rounding, about
        eps * sum|K| |v|, would otherwise reach 1e-5 at long T), in blocks of channels of at most
        ``fft_block_elements`` (rows x transform length) each; no [T, B, H, N] tensor is formed.
        Differentiable (autograd through every step); the step form's numbers to float rounding
        (tests/test_cells_lru_s4d.py).
        """
        p = self.layer_params[layer]
        H, M = self.hidden_size, self.M
        ab_re, ab_im, bb_re, bb_im = self._zoh(p)
        C_re, C_im, D, W_x, b = p.C_re, p.C_im, p.D, p.W_x, p.b
        if not self.ensemble:                                       # one code path: a leading E = 1
            x = x.unsqueeze(1)
            h0 = h0.unsqueeze(0)
            ab_re, ab_im, bb_re, bb_im, C_re, C_im, D, W_x, b = (
                t.unsqueeze(0) for t in (ab_re, ab_im, bb_re, bb_im, C_re, C_im, D, W_x, b))
        T, E, B = x.shape[:3]
        # the input projection v = x W_x + b (as the step form), computed time-last: [E, B, H, T]
        v = torch.matmul(W_x.mT.unsqueeze(1), x.permute(1, 2, 3, 0)) + b.reshape(E, 1, H, 1)
        dtype, f64 = v.dtype, torch.float64
        ar, ai = ab_re.to(f64), ab_im.to(f64)
        # log Abar; a modulus that underflowed to 0 gives -800: exp(0 * -800) = 1, exp(k * -800) = 0
        log_a = torch.complex(torch.log(torch.hypot(ar, ai)).clamp(min=-800.0), torch.atan2(ai, ar))

        def powers(k: torch.Tensor) -> torch.Tensor:               # Abar^k, [E, H, len(k), M]
            return torch.exp(log_a.unsqueeze(-2) * k.to(f64).unsqueeze(-1))

        L = math.isqrt(T) + 1
        nJ = -(-(T + 1) // L)                                       # nJ L >= T + 1 (k = 0..T)
        P = nJ * L - T                                              # zeros ahead of v_0 (see h_T)
        Vi = powers(torch.arange(L, device=v.device))               # Abar^i
        Gj = powers(torch.arange(nJ, device=v.device) * L)         # Abar^(jL)
        Vri = torch.cat([Vi.real, Vi.imag], -1)                     # [E, H, L, 2M]
        Cc = torch.complex(C_re.to(f64), C_im.to(f64))              # [E, H, M]
        Bc = torch.complex(bb_re.to(f64), bb_im.to(f64))
        W = (Cc * Bc).unsqueeze(-2) * Gj                            # C Bbar Abar^(jL)
        K = 2 * (torch.cat([W.real, -W.imag], -1) @ Vri.mT)        # [E, H, nJ, L]: 2 Re(C Bbar Abar^k)
        # circular convolution of length n >= 2T - 1 wraps nothing onto the outputs [P, P + T)
        n = scipy.fft.next_fast_len(max(2 * T - 1, P + T), real=True)
        Kf = torch.fft.rfft(K.reshape(E, 1, H, nJ * L)[..., :T], n=n)  # [E, 1, H, n/2 + 1]
        # h_T = sum_s Abar^(T-1-s) Bbar v_s; with s + P = jL + i, T-1-s = (nJ-1-j) L + (L-1-i)
        VB = (Bc.unsqueeze(-2) * Vi).flip(-2)                       # Bbar Abar^(L-1-i)
        VBri = torch.cat([VB.real, VB.imag], -1).unsqueeze(1)       # [E, 1, H, L, 2M]
        Gr = Gj.flip(-2).unsqueeze(1)                               # Abar^((nJ-1-j) L), [E, 1, H, nJ, M]
        A_T = torch.exp(log_a * T).unsqueeze(1)                     # Abar^T, [E, 1, H, M]
        h0 = h0.to(f64)
        h0c = torch.complex(h0[..., :H * M], h0[..., H * M:]).reshape(E, B, H, M)
        grad = torch.is_grad_enabled() and (v.requires_grad or h0.requires_grad or log_a.requires_grad)
        with_h0 = (grad and h0.requires_grad) or bool(h0.ne(0).any())
        D64 = D.to(f64).unsqueeze(-1).unsqueeze(1)                  # [E, 1, H, 1]
        hc = max(1, min(H, self.fft_block_elements // (E * B * n)))
        out = None if grad else v.new_empty((T, E, B, H))
        ys, hs = [], []
        for lo in range(0, H, hc):
            sl = slice(lo, min(H, lo + hc))
            h = sl.stop - lo
            buf = v.new_empty((E, B, h, n), dtype=f64)              # [0 (P) | v_0 .. v_{T-1} | 0 ...]
            buf[..., :P] = 0
            buf[..., P + T:] = 0
            buf[..., P:P + T] = v[:, :, sl]
            if grad:
                z = torch.fft.irfft(torch.fft.rfft(buf) * Kf[..., sl, :], n=n)
                yb = z[..., P:P + T] + D64[..., sl, :] * buf[..., P:P + T]    # [E, B, h, T]
            else:  # the same operations in place
                z = torch.fft.irfft(torch.fft.rfft(buf).mul_(Kf[..., sl, :]), n=n)
                yb = z[..., P:P + T].addcmul_(buf[..., P:P + T], D64[..., sl, :])
            if with_h0:  # 2 Re(C Abar^(jL) h0 Abar^i) at k = jL + i = t + 1
                Wh = (Cc[:, sl].unsqueeze(-2) * Gj[:, sl]).unsqueeze(2) * h0c[:, :, sl].transpose(1, 2).unsqueeze(3)
                Wh = torch.cat([Wh.real, -Wh.imag], -1).reshape(E, h, B * nJ, 2 * M)   # [E, h, (B, nJ), 2M]
                free = (Wh @ Vri[:, sl].mT).reshape(E, h, B, nJ * L).transpose(1, 2)
                yb = yb + 2 * free[..., 1:T + 1]
            Z = buf[..., :nJ * L].unflatten(-1, (nJ, L)) @ VBri[:, :, sl]  # [E, B, h, nJ, 2M]
            hb = (torch.complex(Z[..., :M], Z[..., M:]) * Gr[:, :, sl]).sum(-2)   # [E, B, h, M]
            hs.append(hb + A_T[:, :, sl] * h0c[:, :, sl])
            if out is None:
                ys.append(yb.permute(3, 0, 1, 2).to(dtype))
            else:
                out[..., sl] = yb.permute(3, 0, 1, 2)              # [T, E, B, h]
        y = torch.cat(ys, -1) if out is None else out
        hT = torch.cat(hs, 2).reshape(E, B, H * M)
        hT = torch.cat([hT.real, hT.imag], -1).to(dtype)
        if not self.ensemble:
            y, hT = y.squeeze(1), hT.squeeze(0)
        return y, hT

    def _flat(self, t: torch.Tensor) -> torch.Tensor:
        """[(E,) H, M] -> [(E, 1,) H M], broadcastable to one half of the state."""
        return self._vec(t.reshape(t.shape[:-2] + (-1,)))

    def _extra_describe(self) -> dict:
        return {"state_size": self.N, "a_init": self.a_init, "dt_min": self.dt_min, "dt_max": self.dt_max}


UNIT_DOC = ("S4D diagonal LTI state-space layer (Gu et al. 2022) after a linear input projection to H channels; "
            "options state_size (N per channel, even, default 64), a_init = lin | inv, dt_min, dt_max")
UNIT_OPTIONS = {"state_size", "a_init", "dt_min", "dt_max"}


def _register() -> None:
    from . import register

    register("s4d", S4D, UNIT_DOC, UNIT_OPTIONS)


_register()

__all__ = ["S4D", "A_INITS"]
