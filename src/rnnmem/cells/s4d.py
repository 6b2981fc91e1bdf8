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
step form (``use_scan = False``): a Python loop in real arithmetic. They agree to rounding.
"""

from __future__ import annotations

import math

import torch

from ..errors import ConfigError
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
        super().__init__(input_size, hidden_size, layers=layers, convention=None, dtype=dtype, seed=seed,
                         seeds=seeds, device=device)

    def state_width(self) -> int:
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
        """(Abar, Bbar) of layer ``layer`` as complex tensors [(E,) H, M] (zero-order hold)."""
        p = self.layer_params[layer]
        A = torch.complex(-torch.exp(p.log_A_real), p.A_imag)
        dtA = A * torch.exp(p.log_dt).unsqueeze(-1)
        Abar = torch.exp(dtA)
        return Abar, (Abar - 1) / A * torch.complex(p.B_re, p.B_im)

    def _run_layer(self, layer, x, h0):
        p = self.layer_params[layer]
        H, M = self.hidden_size, self.M
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
        v = self._mm(x, p.W_x) + p.b                               # [T, (E,) B, H]
        lead = v.shape[:-1]
        Bb = self._vec(torch.stack([bb_re, bb_im], -3))             # [(E, 1,) 2, H, M]
        u = (v.unsqueeze(-2).unsqueeze(-1) * Bb).reshape(lead + (2 * H * M,))   # [T, (E,) B, 2HM]
        S = self._recur(self._flat(ab_re), self._flat(ab_im), u, h0, self.use_scan)
        Cst = self._vec(torch.stack([p.C_re, -p.C_im], -3))         # 2 Re(C s) = 2 (Re s C_re - Im s C_im)
        Sv = S.reshape(S.shape[:-1] + (2, H, M))
        y = 2.0 * (Sv * Cst).sum((-3, -1)) + self._vec(p.D) * v
        return y, S

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
