"""Linear Recurrent Unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De, "Resurrecting
Recurrent Neural Networks for Long Sequences", ICML 2023; equations of Section 3 and the code of
their Appendix A).

Per layer, with input x_t (width I), N complex states and output width H::

    lambda_n = exp(-exp(nu_n) + i exp(theta_n))                 (|lambda_n| < 1 for any finite nu)
    h_t      = diag(lambda) h_{t-1} + gamma * (B x_t),          gamma_n = exp(gamma_log_n)
    y_t      = Re(C h_t) + D x_t

B is N x I complex, C is H x N complex, D is I x H real. The paper's layer maps H -> N -> H with a
diagonal D (an elementwise skip); rnnmem's maps I -> N -> H, so D is a full I x H matrix (the
paper's case I = H has D diagonal; rnnmem does not force that). The next layer's input is y (width
H). No nonlinearity: the paper puts an MLP/GLU after the layer, outside the recurrence.

Initialisation (the paper's, Appendix A, ``init_lru_parameters``): lambda uniform on the ring
r_min <= |lambda| <= r_max with phase in [0, max_phase]:
``nu = log(-1/2 log(u1 (r_max^2 - r_min^2) + r_min^2))``, ``theta = log(max_phase u2)``,
u1, u2 ~ U[0, 1]; ``gamma_log = log(sqrt(1 - |lambda|^2))`` (a learnable parameter initialised to
the normalisation, as in the paper); Re B, Im B ~ N(0, 1/(2I)); Re C, Im C ~ N(0, 1/N); D: the
paper draws its diagonal N(0, 1); rnnmem draws every entry of the full I x H matrix N(0, 1/I), the
same output variance for unit-variance inputs. Defaults r_min = 0, r_max = 1, max_phase = 6.28
(the paper's code). Draws are made in float64 and cast, so float32 and float64 units agree.

Parameters (``x @ W`` layout, per layer): ``W_x`` [I, 2N] = [Re B^T | Im B^T], ``nu_log``,
``theta_log``, ``gamma_log`` [N], ``C_re``, ``C_im`` [N, H] (= Re C^T, Im C^T), ``D`` [I, H]. An
ensemble (``seeds=[...]``) adds a leading E dimension to each.

State: one component ``h`` [layers, (E,) B, 2N] = [Re h | Im h] (real, as every rnnmem state).

Sequence form: the recurrence is linear and diagonal, so all states come from the exact blocked
parallel scan of :mod:`rnnmem.cells.scan` (``unit.use_scan = True``, the default). Step form
(``unit.use_scan = False``): a Python loop over the steps in real arithmetic. The two agree to
rounding (tests/test_cells_lru_s4d.py: 1e-5 in float32, 1e-10 in float64 over 1,000 steps).
"""

from __future__ import annotations

import math
import numbers

import torch

from ..errors import ConfigError
from .base import RecurrentUnit
from .conventions import CONVENTIONS
from .scan import linear_scan_parts


def check_no_convention(kind: str, convention) -> None:
    """Units without gates take no convention options: refuse overrides instead of ignoring them.

    Parameters
    ----------
    kind : str
        The unit's name, for the message.
    convention : Convention or None
        What ``cells.build`` resolved; a named convention without overrides is accepted (and
        ignored by the unit).

    Returns
    -------
    None

    Raises
    ------
    ConfigError
        When ``convention`` differs from every named convention (an option was overridden).
    """
    if convention is None:
        return
    base = CONVENTIONS.get(getattr(convention, "name", None))
    if base is None or convention != base:
        raise ConfigError(
            f"cell {kind!r} has no gates: convention options (gate_activation, init, forget_bias, ...) do not "
            "apply to it; drop them (its own options are listed by `rnnmem cells`)"
        )


def real_option(kind: str, name: str, value, low: float | None = None, high: float | None = None,
                low_open: bool = False) -> float:
    """A finite real option within [low, high] (``low_open``: strictly above low).

    Parameters
    ----------
    kind : str
        The unit's name, for the message.
    name : str
        The option's name, for the message.
    value : object
        The value given.
    low, high : float, optional
        Bounds (None: unbounded on that side); ``high`` is inclusive.
    low_open : bool
        Exclude ``low`` itself (default False).

    Returns
    -------
    float
        ``value`` as a float.

    Raises
    ------
    ConfigError
        For a bool, a non-number, a non-finite number or a value out of bounds.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
        raise ConfigError(f"cell {kind!r}: {name} must be a finite number, got {value!r}")
    value = float(value)
    if low is not None and (value < low or (low_open and value == low)):
        raise ConfigError(f"cell {kind!r}: {name} must be {'>' if low_open else '>='} {low}, got {value}")
    if high is not None and value > high:
        raise ConfigError(f"cell {kind!r}: {name} must be <= {high}, got {value}")
    return value


def int_option(kind: str, name: str, value, low: int = 1) -> int:
    """An integer option of at least ``low``.

    Parameters
    ----------
    kind : str
        The unit's name, for the message.
    name : str
        The option's name, for the message.
    value : object
        The value given (Python or NumPy integer; bools are refused).
    low : int
        The smallest value allowed (default 1).

    Returns
    -------
    int
        ``value`` as a Python int.

    Raises
    ------
    ConfigError
        For a bool, a non-integer or a value below ``low``.
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < low:
        raise ConfigError(f"cell {kind!r}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


class DiagonalLinearUnit(RecurrentUnit):
    """Shared machinery of units whose state is one real component ``h`` [layers, (E,) B, F]
    holding the [re | im] parts of a diagonal complex linear recurrence."""

    state_names = ("h",)
    has_scan = True

    def state_width(self, name: str = "h") -> int:
        """F, the width of the state component ``h`` per layer.

        Parameters
        ----------
        name : str
            The state component (the only one: ``"h"``).

        Returns
        -------
        int
            F, twice the number of complex states (the [re | im] halves); subclasses define it.
        """
        raise NotImplementedError

    def layer_input_size(self, layer: int) -> int:
        """See ``RecurrentUnit.layer_input_size``: ``input_size`` for layer 0, ``hidden_size`` above.

        Parameters
        ----------
        layer : int
            Layer index, 0 for the first layer.

        Returns
        -------
        int
            I_l, the width of the inputs layer ``layer`` reads.
        """
        return self.input_size if layer == 0 else self.hidden_size

    def _mm(self, x: torch.Tensor, W: torch.Tensor) -> torch.Tensor:
        """``x @ W`` over a sequence [T, (E,) B, n] (one batched product per ensemble member)."""
        if self.ensemble:
            return torch.einsum("tebi,eih->tebh", x, W)
        return torch.matmul(x, W)

    def _vec(self, v: torch.Tensor) -> torch.Tensor:
        """A per-member parameter [(E,) ...] made to broadcast over the batch: [(E, 1,) ...]."""
        return v.unsqueeze(1) if self.ensemble else v

    def _forward_loop(self, x, state, return_all_states):
        inputs = x
        finals, per_step = [], []
        for layer in range(self.num_layers):
            inputs, states = self._run_layer(layer, inputs, state[0][layer])
            finals.append(states[-1])
            if return_all_states:
                per_step.append(states)
        self.last_path = "scan" if self.use_scan else "python"
        final = (torch.stack(finals),)
        if return_all_states:
            return inputs, final, (torch.stack(per_step, dim=1),)
        return inputs, final

    def _run_layer(self, layer: int, x: torch.Tensor, h0: torch.Tensor):
        """Layer ``layer`` over x [T, (E,) B, I_l] from h0 [(E,) B, F]: (y [T, (E,) B, H], states [T, (E,) B, F])."""
        raise NotImplementedError

    @staticmethod
    def _recur(a_re, a_im, u: torch.Tensor, h0: torch.Tensor, use_scan: bool) -> torch.Tensor:
        """All states of ``h_t = a h_{t-1} + u_t`` on the [re | im] layout: ``u`` [T, ..., 2F'] (the
        halves are Re and Im; overwritten when no gradient is needed), ``h0`` [..., 2F'], ``a`` the
        parts broadcastable to one half. Returns [T, ..., 2F']."""
        F = u.shape[-1] // 2
        if use_scan:
            halves = (u[..., :F], u[..., F:])
            out = linear_scan_parts((a_re, a_im), halves, (h0[..., :F], h0[..., F:]), inplace=True)
            return u if out[0] is halves[0] else torch.cat(out, -1)  # in place: the states are in u
        hr, hi = h0[..., :F], h0[..., F:]
        outs = []
        for t in range(u.shape[0]):
            hr, hi = (a_re * hr - a_im * hi + u[t, ..., :F], a_re * hi + a_im * hr + u[t, ..., F:])
            outs.append(torch.cat([hr, hi], -1))
        return torch.stack(outs)


class LRU(DiagonalLinearUnit):
    """Linear Recurrent Unit (Orvieto et al. 2023); see the module docstring.

    Parameters
    ----------
    input_size, hidden_size, layers, dtype, seed, seeds, device : as every unit (hidden_size = H,
        the output width).
    state_size : int, optional
        N, the number of complex states per layer (default hidden_size).
    r_min, r_max : float
        The ring |lambda| is drawn on, 0 <= r_min < r_max <= 1 (default 0, 1).
    max_phase : float
        Phases are drawn in [0, max_phase] (default 6.28), max_phase > 0.
    """

    kind = "lru"

    def __init__(self, input_size, hidden_size, layers=1, convention=None, dtype=torch.float32, seed=None,
                 seeds=None, device=None, state_size: int | None = None, r_min: float = 0.0, r_max: float = 1.0,
                 max_phase: float = 6.28):
        check_no_convention(self.kind, convention)
        self.N = int_option(self.kind, "state_size", hidden_size if state_size is None else state_size)
        self.r_min = real_option(self.kind, "r_min", r_min, 0.0, 1.0)
        self.r_max = real_option(self.kind, "r_max", r_max, 0.0, 1.0)
        if not self.r_min < self.r_max:
            raise ConfigError(f"cell 'lru': r_min ({self.r_min}) must be smaller than r_max ({self.r_max})")
        self.max_phase = real_option(self.kind, "max_phase", max_phase, 0.0, low_open=True)
        self.use_scan = True
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
            2N: Re h and Im h of the N complex states.
        """
        return 2 * self.N

    def _init_layer(self, layer: int, gen: torch.Generator) -> dict[str, torch.Tensor]:
        I, N, H = self.layer_input_size(layer), self.N, self.hidden_size
        f64 = torch.float64
        u1 = torch.rand(N, generator=gen, dtype=f64)
        u2 = torch.rand(N, generator=gen, dtype=f64)
        nu_log = torch.log(-0.5 * torch.log(u1 * (self.r_max**2 - self.r_min**2) + self.r_min**2))
        theta_log = torch.log(self.max_phase * u2)
        B_re = torch.randn((N, I), generator=gen, dtype=f64) / math.sqrt(2 * I)
        B_im = torch.randn((N, I), generator=gen, dtype=f64) / math.sqrt(2 * I)
        C_re = torch.randn((H, N), generator=gen, dtype=f64) / math.sqrt(N)
        C_im = torch.randn((H, N), generator=gen, dtype=f64) / math.sqrt(N)
        D = torch.randn((I, H), generator=gen, dtype=f64) / math.sqrt(I)
        gamma_log = 0.5 * torch.log(-torch.expm1(-2.0 * torch.exp(nu_log)))    # log sqrt(1 - |lambda|^2)
        p = {"W_x": torch.cat([B_re.T, B_im.T], 1), "nu_log": nu_log, "theta_log": theta_log,
             "gamma_log": gamma_log, "C_re": C_re.T, "C_im": C_im.T, "D": D}
        return {k: v.to(self.dtype).contiguous() for k, v in p.items()}

    def eigenvalues(self, layer: int = 0) -> torch.Tensor:
        """lambda of layer ``layer`` as a complex tensor [(E,) N].

        ``lambda_n = exp(-exp(nu_n) + i exp(theta_n))`` (Orvieto et al. 2023, Section 3), computed
        from the current parameters (differentiable).

        Parameters
        ----------
        layer : int
            Layer index (default 0).

        Returns
        -------
        Tensor
            Complex ``[N]``, or ``[E, N]`` for an ensemble; ``|lambda_n| < 1``.
        """
        p = self.layer_params[layer]
        return torch.polar(torch.exp(-torch.exp(p.nu_log)), torch.exp(p.theta_log))

    def _run_layer(self, layer, x, h0):
        p = self.layer_params[layer]
        mod = torch.exp(-torch.exp(p.nu_log))
        phase = torch.exp(p.theta_log)
        a_re, a_im = self._vec(mod * torch.cos(phase)), self._vec(mod * torch.sin(phase))
        g = torch.exp(p.gamma_log)
        W = p.W_x * torch.cat([g, g], -1).unsqueeze(-2)        # gamma * B, as [Re | Im] columns
        u = self._mm(x, W)                                     # [T, (E,) B, 2N]
        S = self._recur(a_re, a_im, u, h0, self.use_scan)
        W_c = torch.cat([p.C_re, -p.C_im], -2)                 # Re(C h) = Re h C_re - Im h C_im
        y = self._mm(S, W_c) + self._mm(x, p.D)
        return y, S

    def _extra_describe(self) -> dict:
        return {"state_size": self.N, "r_min": self.r_min, "r_max": self.r_max, "max_phase": self.max_phase}


UNIT_DOC = ("Linear Recurrent Unit (Orvieto et al. 2023): diagonal complex recurrence, ring init; "
            "options state_size (N, default hidden_size), r_min, r_max, max_phase")
UNIT_OPTIONS = {"state_size", "r_min", "r_max", "max_phase"}


def _register() -> None:
    from . import register

    register("lru", LRU, UNIT_DOC, UNIT_OPTIONS)


_register()

__all__ = ["LRU", "DiagonalLinearUnit", "check_no_convention"]
