"""State forgetting: how many steps until a network forgets that two inputs ever differed.

Protocol (Muccino 2019, "An Investigation of RNN Memory Stability"): draw two input streams
a, b of length T with i.i.d. N(0, 1) entries that differ for the first P steps and are identical
afterwards (b_t = a_t for t >= P). Run the same network from the same (zero) state on both and
record the divergence of the outputs, ``d_t = max_i |y_t^a - y_t^b|``, and of the full state
(every component, every layer).

Per run and per tolerance ``eps`` (0 means bit-exact equality), the *forgetting steps* are

    n(eps) = max(0, t_last(eps) + 1 - P),   t_last(eps) = max{t : d_t > eps}

i.e. the number of shared steps after which the outputs are, and stay, within ``eps``.

Numerical honesty. Each run ends in one status, decided by the *first* event:

- ``exact``: the full states of the two streams are bitwise equal at some step; the map is
  deterministic, so they stay equal forever and nothing later can change n(eps).
- ``floor``: the state difference stopped shrinking at the rounding level of the dtype: over a
  window of ``floor_window`` steps it stays below ``floor_factor * eps_mach * scale`` (scale = the
  largest state magnitude in the window; every value in it finite) and its second half is not
  below half its first half. Then n(eps) is reported for tolerances ``>= floor_margin *
  floor_level`` (the window's largest difference) and is *censored* below that: the dtype cannot
  resolve them.
- ``censored``: no event by step T and some tolerance is still exceeded at T-1 (censored there).
  This includes neutral dynamics (a linear recurrence with eigenvalue modulus exactly 1, an
  identity recurrent weight): the difference neither shrinks nor grows, so it is never forgotten.
- ``diverging``: as censored (the outputs still differ by more than the largest tolerance at
  T-1), the difference is not contracting (the fitted decay over the run is less than one e-fold:
  rate * fitted steps < 1), *and it grew*: its ``growth`` exceeds ``growth_min`` plus the rounding
  allowance ``growth_rounding`` (see :func:`_growth`). A chaotic network, whose difference
  fluctuates at the attractor's size and grows again after every dip, ends here; a constant
  difference does not, in any dtype (its growth is rounding only, far below ``growth_min``).
- ``converged``: no event by step T and no tolerance is censored.
- ``overflow``: a state (of either stream, any component) or the state or output difference
  became non-finite (inf, or NaN from inf - inf) at ``event_step``, e.g. a growing state in
  float32 past 3.4e38. It is an event: nothing from that step on can be measured, so every
  tolerance is censored there (a NaN difference counts as exceeding every tolerance, never as
  agreeing), and ``rate`` and ``growth`` are computed on the steps before it. Non-finite values
  after a run's earlier event (exact, floor) are left out: they cannot change its answer.

Early stopping ends the computation once every run in the batch has an event (exact, floor or
overflow); nothing computed after that could change the answer (the test suite checks this
against full T-step runs). A non-finite run is never taken for ``exact`` or ``floor``.

Contraction rate. On the stretch after P where the state difference is above the rounding floor
of its own step (``> fit_floor_factor * eps_mach * scale_t``, scale_t = the largest state magnitude
at step t, so a difference that grows with its state stays above it) the log L2 state distance
(computed in float64 on scaled values: it cannot overflow while the state is finite) is fitted by
least squares, ``ln ||delta_t|| = a - rate * t``; ``rate`` (nats per step) comes with its OLS standard error
and implies the horizon ``ln(d0 / eps) / rate`` for each tolerance, d0 = d_P. ``fit_skip`` leaves
out the first steps of that stretch, where directions fading faster than the slowest one still
contribute; with it (about 30 steps) and float64 the rate agrees with minus the maximal Lyapunov
exponent (``probes/lyapunov.py``) to a few percent.
"""

from __future__ import annotations

import copy

import math
import time
from dataclasses import asdict, dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..cells import CallableUnit
from ..errors import ConfigError
from ..devices import resolve_device
from .common import as_unit, check_finite, unit_device, unit_dtype

DEFAULT_TOLERANCES = (0.0, 1e-6, 1e-4, 1e-2)
#: every status a run can end in (the module docstring defines each); studies count these
STATUSES = ("exact", "floor", "censored", "diverging", "converged", "overflow")


def tol_name(tol: float) -> str:
    """Column suffix of a tolerance: ``exact`` for 0, else ``%g`` (``1e-06``, ``0.0001``).

    Parameters
    ----------
    tol : float
        A tolerance on the outputs' max-abs difference (0 = bit-exact equality).

    Returns
    -------
    str
        ``"exact"`` for 0, else ``f"{tol:g}"`` (as in the columns ``steps_<name>``, ``censored_<name>``).
    """
    return "exact" if tol == 0 else f"{tol:g}"


def derive_input_seed(seed: int) -> int:
    """Seed of the input streams of the run whose network has seed ``seed`` (documented, stable).

    Computed as ``SeedSequence([seed mod 2^63, 20190]).generate_state(1, uint64)[0] mod 2^63`` (numpy), so
    the same network seed always gets the same input streams.

    Parameters
    ----------
    seed : int
        The network's seed (any integer; reduced mod 2^63).

    Returns
    -------
    int
        A seed in ``[0, 2^63)`` for ``torch.Generator().manual_seed``.
    """
    return int(np.random.SeedSequence([int(seed) % 2**63, 20190]).generate_state(1, dtype=np.uint64)[0] % 2**63)


@dataclass
class ForgettingSettings:
    """Protocol and numerics of the forgetting probe (every field is recorded with each run).

    ``growth_min`` (nats, default 0.1, a growth by a factor e^0.1 = 1.105): how much the state
    difference must grow after the prefix, on top of its rounding allowance, for a run that never
    contracted to be ``diverging`` rather than ``censored`` (:func:`_growth`).
    """

    T: int = 100_000
    P: int = 1_000
    tolerances: tuple[float, ...] = DEFAULT_TOLERANCES
    block: int = 250
    early_stop: bool = True
    floor_factor: float = 1024.0
    floor_window: int = 500
    floor_margin: float = 10.0
    fit_floor_factor: float = 100.0
    fit_skip: int = 0
    curve_bins: int = 120
    growth_min: float = 0.1

    def __post_init__(self):
        self.tolerances = tuple(float(t) for t in self.tolerances)
        for name in ("T", "P", "block", "floor_window", "curve_bins"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.P >= self.T:
            raise ConfigError(f"the differing prefix P={self.P} must be shorter than the sequence T={self.T}")
        if not self.tolerances:
            raise ConfigError("give at least one tolerance")
        for t in self.tolerances:
            if not (t >= 0) or math.isinf(t):
                raise ConfigError(f"tolerances must be finite and >= 0 (0 = exact equality), got {t}")
        if len(set(self.tolerances)) != len(self.tolerances):
            raise ConfigError(f"tolerances must be distinct, got {self.tolerances}")
        if self.floor_window % 2:
            raise ConfigError("floor_window must be even")
        if not isinstance(self.fit_skip, int) or self.fit_skip < 0:
            raise ConfigError(f"fit_skip must be an integer >= 0, got {self.fit_skip!r}")
        if self.floor_factor <= 1 or self.floor_margin < 1 or self.fit_floor_factor <= 1:
            raise ConfigError("floor_factor and fit_floor_factor must be > 1, floor_margin >= 1")
        if not (self.growth_min > 0) or math.isinf(self.growth_min):
            raise ConfigError(f"growth_min (nats) must be finite and > 0, got {self.growth_min}")

    def as_dict(self) -> dict:
        """The settings as a plain dict (recorded with each run).

        Returns
        -------
        dict
            Every field by name, ``tolerances`` as a list of float.
        """
        d = asdict(self)
        d["tolerances"] = list(self.tolerances)
        return d


@dataclass
class ForgettingResult:
    """Per-run table, log-binned curves and the settings that produced them."""

    table: pd.DataFrame
    curves: list[dict[str, np.ndarray]]
    settings: ForgettingSettings
    unit: dict
    wall_s: float
    steps_computed: int
    notes: dict = field(default_factory=dict)


def _bin_edges(T: int, P: int, bins: int) -> np.ndarray:
    """Log-spaced bin edges over shared steps s = t - P + 1 = 1 .. T - P (right edge exclusive)."""
    return np.unique(np.round(np.geomspace(1, T - P + 1, bins + 1)).astype(np.int64))


class _Tracker:
    """Accumulates per-run statistics chunk by chunk (numpy, float64)."""

    def __init__(self, R: int, s: ForgettingSettings, eps: float):
        self.R, self.s, self.eps = R, s, eps
        ntol = len(s.tolerances)
        self.last_exceed = np.full((ntol, R), -1, dtype=np.int64)
        self.event = np.array([""] * R, dtype=object)
        self.event_step = np.full(R, -1, dtype=np.int64)
        self.floor_level = np.full(R, np.nan)
        self.d_state_max: list[np.ndarray] = []  # chunks [C, R]
        self.d_state_l2: list[np.ndarray] = []
        self.d_out_max: list[np.ndarray] = []
        self.scale: list[np.ndarray] = []
        self.edges = _bin_edges(s.T, s.P, s.curve_bins)
        nb = len(self.edges) - 1
        self.curves = {k: np.full((nb, R), np.nan) for k in ("out_maxabs", "out_l2", "state_maxabs", "state_l2")}
        self.comp_curves: dict[str, np.ndarray] = {}
        self.ignored = np.zeros((0, R), dtype=bool)  # the last chunk's non-finite steps after an event
        self.t = 0  # steps processed
        self.state_dim = 1  # real state components per run (all components, all layers)

    def update(self, out_max, out_l2, comp_max: dict, state_max, state_l2, scale, exact_step):
        s, C = self.s, out_max.shape[0]
        t0, P = self.t, s.P
        steps = np.arange(t0, t0 + C)
        # a non-finite state (either stream) or difference: the state overflowed (or became NaN,
        # e.g. inf - inf); nothing from that step on can be measured. NaN compares false with
        # every tolerance, so it is counted here explicitly as exceeding all of them.
        bad = ~(np.isfinite(out_max) & np.isfinite(state_max) & np.isfinite(scale))  # [C, R]
        first_bad = np.where(bad.any(axis=0), np.argmax(bad, axis=0), -1)
        # the run's event is the first of: exact equality of the full state (from step P on), overflow
        for r in np.nonzero((self.event == "") & ((exact_step >= 0) | (first_bad >= 0)))[0]:
            ex = int(exact_step[r]) if exact_step[r] >= 0 and t0 + exact_step[r] >= P else -1
            if first_bad[r] >= 0 and (ex < 0 or first_bad[r] < ex):
                self.event[r], self.event_step[r] = "overflow", t0 + first_bad[r]
            elif ex >= 0:
                self.event[r], self.event_step[r] = "exact", t0 + ex
        # non-finite values after a run's event (exact, floor or overflow) are left out: they
        # cannot change its answer (and an early-stopped run never computes them)
        live = (self.event == "")[None, :] | (steps[:, None] <= self.event_step[None, :])
        self.ignored = bad & ~live  # [C, R], read by _CriteriaTracker.update
        for k, tol in enumerate(s.tolerances):
            over = np.where(bad, live, out_max > tol)  # [C, R]
            any_over = over.any(axis=0)
            if any_over.any():
                last = C - 1 - np.argmax(over[::-1], axis=0)
                self.last_exceed[k] = np.where(any_over, t0 + last, self.last_exceed[k])
        self.d_state_max.append(state_max)
        self.d_state_l2.append(state_l2)
        self.d_out_max.append(out_max)
        self.scale.append(scale)
        # log-binned curves over shared steps
        mask = steps >= P
        if mask.any():
            b = np.searchsorted(self.edges, steps[mask] - P + 1, side="right") - 1
            for key, arr in (("out_maxabs", out_max), ("out_l2", out_l2), ("state_maxabs", state_max),
                             ("state_l2", state_l2)):
                np.fmax.at(self.curves[key], b, arr[mask])
            for name, arr in comp_max.items():
                cur = self.comp_curves.setdefault(name, np.full_like(self.curves["out_maxabs"], np.nan))
                np.fmax.at(cur, b, arr[mask])
        self.t += C
        self._check_floor()

    def _check_floor(self):
        s, W, t = self.s, self.s.floor_window, self.t
        if t - W < s.P:
            return
        dmax = np.concatenate(self.d_state_max[-(W // s.block + 2):])[-W:]  # [W, R]
        win_scale = np.concatenate(self.scale[-(W // s.block + 2):])[-W:]
        scale = win_scale.max(axis=0)
        gate = s.floor_factor * self.eps * np.maximum(scale, 1.0)
        first, second = dmax[: W // 2].max(axis=0), dmax[W // 2 :].max(axis=0)
        finite = np.isfinite(dmax).all(axis=0) & np.isfinite(win_scale).all(axis=0)  # inf <= inf is true
        is_floor = finite & (dmax.max(axis=0) <= gate) & (second >= 0.5 * first) & (dmax.max(axis=0) > 0)
        for r in np.nonzero(is_floor)[0]:
            if self.event[r] == "":
                self.event[r] = "floor"
                self.event_step[r] = t - 1
                self.floor_level[r] = dmax[:, r].max()

    def all_done(self) -> bool:
        return bool((self.event != "").all())


@dataclass(frozen=True)
class OutputCriterion:
    """A definition of "identical outputs" for two output vectors ``a`` (stream a) and ``b``.

    Close when every unit satisfies ``|a - b| <= atol + rtol * |b|`` (``np.isclose``'s rule:
    absolute tolerance with ``rtol = 0``, relative with ``atol = 0``, numpy's defaults
    ``rtol = 1e-5, atol = 1e-8``), or, with ``decimals``, when ``round(a, decimals) ==
    round(b, decimals)`` for every unit (outputs compared as printed with that many decimals).
    Evaluated in float64 on the outputs the network computed.
    """

    name: str
    atol: float = 0.0
    rtol: float = 0.0
    decimals: int | None = None

    def __post_init__(self):
        if not self.name or not isinstance(self.name, str):
            raise ConfigError(f"a criterion needs a name, got {self.name!r}")
        for key in ("atol", "rtol"):
            v = getattr(self, key)
            if not (v >= 0) or math.isinf(v):
                raise ConfigError(f"criterion {self.name!r}: {key} must be finite and >= 0, got {v}")
        if self.decimals is not None and (not isinstance(self.decimals, int) or self.decimals < 0):
            raise ConfigError(f"criterion {self.name!r}: decimals must be an integer >= 0, got {self.decimals!r}")

    def close(self, a: torch.Tensor, b: torch.Tensor, diff: torch.Tensor | None = None,
              babs: torch.Tensor | None = None) -> torch.Tensor:
        """``[..., H]`` outputs -> ``[...]`` bool: every unit close (``diff = |a - b|`` and
        ``babs = |b|`` may be passed in when several criteria share them).

        Parameters
        ----------
        a : torch.Tensor
            ``[..., H]`` outputs of stream a.
        b : torch.Tensor
            ``[..., H]`` outputs of stream b (the reference of ``rtol``), same shape as ``a``.
        diff : torch.Tensor, optional
            ``|a - b|`` precomputed (ignored with ``decimals``).
        babs : torch.Tensor, optional
            ``|b|`` precomputed (used only when ``rtol > 0``).

        Returns
        -------
        torch.Tensor
            ``[...]`` bool: True where all H units satisfy ``|a - b| <= atol + rtol * |b|`` (or, with
            ``decimals``, ``round(a, decimals) == round(b, decimals)``).
        """
        if self.decimals is not None:
            return (torch.round(a, decimals=self.decimals) == torch.round(b, decimals=self.decimals)).all(-1)
        diff = (a - b).abs() if diff is None else diff
        if self.rtol == 0:
            return (diff <= self.atol).all(-1)
        return (diff <= self.atol + self.rtol * (b.abs() if babs is None else babs)).all(-1)


class _CriteriaTracker:
    """Per criterion and run: the first step >= P at which the outputs are close and the last
    step at which they are not (one pass over the trajectory serves every criterion)."""

    def __init__(self, criteria: tuple[OutputCriterion, ...], R: int, P: int):
        self.criteria, self.P = criteria, P
        self.first_close = np.full((len(criteria), R), -1, dtype=np.int64)
        self.last_far = np.full((len(criteria), R), -1, dtype=np.int64)

    def update(self, y: torch.Tensor, t0: int, ignored: np.ndarray | None = None):
        """Outputs ``y`` ``[C, R, 2, H]`` of steps ``t0 .. t0 + C - 1``; ``ignored`` ``[C, R]``:
        steps left out (non-finite values after the run's event, ``_Tracker.ignored``)."""
        a, b = y[..., 0, :].double(), y[..., 1, :].double()  # [C, R, H]
        C = a.shape[0]
        diff, babs = (a - b).abs(), b.abs()
        for k, crit in enumerate(self.criteria):
            close = crit.close(a, b, diff, babs).cpu().numpy()  # [C, R]
            far = ~close
            if ignored is not None:
                close, far = close & ~ignored, far & ~ignored
            any_far = far.any(axis=0)
            if any_far.any():
                last = C - 1 - np.argmax(far[::-1], axis=0)
                self.last_far[k] = np.where(any_far, t0 + last, self.last_far[k])
            lo = max(0, self.P - t0)
            if lo < C:
                shared = close[lo:]
                hit = shared.any(axis=0) & (self.first_close[k] < 0)
                self.first_close[k] = np.where(hit, t0 + lo + np.argmax(shared, axis=0), self.first_close[k])

    def columns(self, tr: "_Tracker", s: "ForgettingSettings") -> dict[str, np.ndarray]:
        """``stay_<name>`` (steps until close and staying so, as ``steps_<tol>``), ``first_<name>``
        (steps until first close) and their ``censored_`` flags. Censoring of ``stay``: a run
        that ended ``exact`` never is; one that ended at the ``floor`` is unless the criterion held
        throughout the floor window (the floor is stationary, so it holds after); one that reached
        T is when the outputs were not close at its last step; one that ended in ``overflow``
        always is. ``first`` is censored when the outputs were never close, or, after an
        ``overflow``, not before the step the state became non-finite."""
        P, out = self.P, {}
        overflow = tr.event == "overflow"
        for k, crit in enumerate(self.criteria):
            last, first = self.last_far[k], self.first_close[k]
            cens_stay = np.zeros(len(last), dtype=bool)
            for r in range(len(last)):
                if tr.event[r] == "floor":
                    cens_stay[r] = last[r] > tr.event_step[r] - s.floor_window
                elif tr.event[r] == "overflow":
                    cens_stay[r] = True
                elif tr.event[r] != "exact":
                    cens_stay[r] = last[r] >= tr.t - 1
            cens_first = (first < 0) | (overflow & (first >= tr.event_step))
            out[f"stay_{crit.name}"] = np.where(cens_stay, np.nan, np.maximum(0, last + 1 - P)).astype(float)
            out[f"censored_stay_{crit.name}"] = cens_stay
            out[f"first_{crit.name}"] = np.where(cens_first, np.nan, first - P).astype(float)
            out[f"censored_first_{crit.name}"] = cens_first
        return out


def _diffs(y: torch.Tensor, states: tuple, names: tuple[str, ...]):
    """Per-step, per-run differences between stream a (index 0) and b (index 1).

    ``y``: [C, R, 2, H]; each state component: [C, ..., R, 2, H].
    """
    dy = y[..., 0, :] - y[..., 1, :]
    C, R = dy.shape[0], dy.shape[1]
    out_max = dy.abs().amax(-1)
    out_l2 = _l2([dy], out_max)
    comp_max, parts, mx, scale = {}, [], None, None
    exact = torch.ones(C, R, dtype=torch.bool, device=dy.device)
    for name, comp in zip(names, states):
        a, b = comp[..., 0, :], comp[..., 1, :]  # [C, ..., R, H]
        d = (a - b).movedim(-2, 1).reshape(C, R, -1)
        m = d.abs().amax(-1)
        comp_max[name] = m
        parts.append(d)
        mx = m if mx is None else torch.maximum(mx, m)
        exact &= m == 0
        mag = torch.maximum(a.abs(), b.abs()).movedim(-2, 1).reshape(C, R, -1).amax(-1)
        scale = mag if scale is None else torch.maximum(scale, mag)
    first_exact = torch.where(exact.any(0), exact.float().argmax(0), torch.full((R,), -1, device=dy.device))
    to_np = lambda v: v.detach().to("cpu", torch.float64).numpy()  # noqa: E731
    return (to_np(out_max), to_np(out_l2), {k: to_np(v) for k, v in comp_max.items()}, to_np(mx),
            to_np(_l2(parts, mx)), to_np(scale), first_exact.cpu().numpy())


def _l2(parts: list[torch.Tensor], mx: torch.Tensor) -> torch.Tensor:
    """The L2 norm over the last dimension of all ``parts`` together, computed in float64 on the
    values divided by their largest magnitude ``mx``, so that it cannot overflow while the values
    are finite (``torch.linalg.vector_norm`` of float32 values above 1.8e19 is inf).

    Parameters
    ----------
    parts : list of tensors ``[C, R, n_k]``, the differences of each state component (or the outputs).
    mx : tensor ``[C, R]``, the largest ``|value|`` over every part.

    Returns
    -------
    tensor ``[C, R]`` (float64): the norm; 0 where ``mx`` is 0, non-finite where a value is.
    """
    m = mx.double()
    safe = torch.where((m > 0) & torch.isfinite(m), m, torch.ones_like(m))
    sq = sum((p.double() / safe.unsqueeze(-1)).pow(2).sum(-1) for p in parts)
    return sq.sqrt() * safe


def _draw_block(gens: list[torch.Generator], C: int, I: int, t0: int, P: int, dtype) -> torch.Tensor:
    """Inputs for steps t0..t0+C-1 of every run: [C, R, 2, I]; b equals a from step P on.

    Each run draws a block [C, 2, I] from its own generator, so the streams do not depend on how
    many runs are batched together (they do depend on ``block``, which every run records).
    """
    blocks = []
    for g in gens:
        x = torch.randn((C, 2, I), generator=g, dtype=torch.float64)
        shared = torch.arange(t0, t0 + C) >= P
        x[shared, 1] = x[shared, 0]
        blocks.append(x)
    return torch.stack(blocks, dim=1).to(dtype)


def forgetting(model, settings: ForgettingSettings | None = None, input_seeds: list[int] | None = None,
               device=None, progress=None, criteria=(), **overrides) -> ForgettingResult:
    """Run the forgetting probe on ``model``.

    ``model``: an rnnmem unit (an ensemble unit batches its E networks: one run each), a
    ``torch.nn.RNN/LSTM/GRU`` or a ``CallableUnit``. ``input_seeds``: one per run (default derived
    from each network's seed; for a single network, one run per input seed, batched).
    ``overrides``: fields of :class:`ForgettingSettings` (``T=``, ``P=``, ``tolerances=``...).
    ``criteria``: extra definitions of "identical outputs" (:class:`OutputCriterion`), all
    evaluated on the same trajectory; each adds ``stay_<name>``, ``first_<name>`` and their
    ``censored_`` columns to the table (see ``_CriteriaTracker.columns``).

    A unit with a ``rounding_dtype`` attribute (e.g. float16 emulated by rounding the state each
    step) has its rounding floor detected at that dtype's machine epsilon.

    The measure (Muccino 2019, "An Investigation of RNN Memory Stability"): two i.i.d. N(0, 1) input
    streams differ for the first P steps and agree afterwards; with ``d_t = max_i |y_t^a - y_t^b|`` the
    forgetting steps per tolerance eps are

        n(eps) = max(0, t_last(eps) + 1 - P),   t_last(eps) = max{t : d_t > eps},

    and the contraction rate is the OLS slope of ``ln ||delta_t|| = a - rate * t`` (L2 distance of the full
    states, above the rounding floor), with horizon ``ln(d0 / eps) / rate``. Statuses and censoring: see
    the module docstring.

    Parameters
    ----------
    model : rnnmem unit, CallableUnit, torch.nn.RNN/LSTM/GRU or nn.Module with the model protocol
        The network(s); an ensemble unit runs its E networks as one batch (one run each).
    settings : ForgettingSettings, optional
        Protocol and numerics (default ``ForgettingSettings()``).
    input_seeds : list of int, optional
        One seed per run. Default: ``derive_input_seed(seed_e)`` per ensemble member, else one run
        with ``derive_input_seed(unit.seed or 0)``; several seeds on a single network are batched runs.
    device : str or torch.device, optional
        Where to compute; a moved copy is used when it differs from the model's device (dtype is the model's).
    progress : callable, optional
        ``progress(n)`` with the number of steps done in each block.
    criteria : sequence of OutputCriterion
        Extra definitions of identical outputs (distinct names).
    **overrides
        Fields of :class:`ForgettingSettings` replacing those of ``settings``.

    Returns
    -------
    ForgettingResult
        ``table`` (one row per run: ``dtype``, ``run``, ``seed``, ``input_seed``, ``event_step``, ``rate`` and
        ``rate_se`` (nats/step), ``fit_points``, ``growth``, ``growth_rounding``, ``d0``, ``floor_level``,
        ``steps_computed``, per tolerance ``steps_<name>`` (NaN when censored), ``censored_<name>`` and
        for eps > 0 ``horizon_<name>``, ``status``, plus the criteria's columns), ``curves`` (per run, the
        log-binned maxima over shared steps: ``bin_edges``, ``out_maxabs``, ``out_l2``, ``state_maxabs``,
        ``state_l2``, ``<component>_maxabs``), ``settings``, ``unit`` (its describe()), ``wall_s``,
        ``steps_computed`` and ``notes`` (``eps_mach``, ``custom``, ``kernel``).

    Raises
    ------
    ConfigError
        Duplicate criteria names, an invalid settings field, or a number of input seeds that does not
        match the ensemble.
    InputError
        Non-finite weights.
    """
    criteria = tuple(criteria or ())
    if len({c.name for c in criteria}) != len(criteria):
        raise ConfigError("criteria names must be distinct")
    s = settings or ForgettingSettings()
    if overrides:
        s = ForgettingSettings(**{**s.as_dict(), **overrides})
    unit = as_unit(model)
    check_finite(unit)
    if device is not None:
        dev = resolve_device(device)
        if unit_device(unit) != dev:  # a moved copy: the caller's model stays where it is
            unit = copy.deepcopy(unit).to(dev)
    dev, dtype = unit_device(unit), unit_dtype(unit)
    eps = float(torch.finfo(getattr(unit, "rounding_dtype", None) or dtype).eps)
    ens = getattr(unit, "ensemble", None)
    if ens:
        seeds = list(unit.seeds)
        input_seeds = input_seeds or [derive_input_seed(x) for x in seeds]
        if len(input_seeds) != ens:
            raise ConfigError(f"an ensemble of {ens} networks needs {ens} input seeds, got {len(input_seeds)}")
    else:
        net_seed = getattr(unit, "seed", None)
        seeds = None
        input_seeds = input_seeds or [derive_input_seed(net_seed if net_seed is not None else 0)]
    R = len(input_seeds)
    gens = [torch.Generator().manual_seed(int(x)) for x in input_seeds]
    tracker = _Tracker(R, s, eps)
    crit_tracker = _CriteriaTracker(criteria, R, s.P) if criteria else None
    names = tuple(getattr(unit, "state_names", ("state",)))
    if isinstance(unit, CallableUnit):
        bdims = [bd for bd, _ in unit._layout()]
    else:
        bdims = [unit._state_batch_dim()] * len(names)
    I = unit.input_size
    start = time.perf_counter()
    state = None
    with torch.inference_mode():
        t = 0
        while t < s.T:
            C = min(s.block, s.T - t)
            x = _draw_block(gens, C, I, t, s.P, dtype).to(dev)  # [C, R, 2, I]
            if ens:
                y, state, all_st = unit(x, state, return_all_states=True)  # y [C, E, 2, H]
                # components [C, L, E, 2, *features] -> [C, E, 2, L * features]
                all_st = tuple(c.movedim(2, 1).movedim(3, 2).reshape(C, R, 2, -1) for c in all_st)
            else:
                y, state, all_st = unit(x.reshape(C, 2 * R, I), state, return_all_states=True)
                y = y.reshape(C, R, 2, -1)
                # components [C, *shape with the batch 2R at bdims[k]] -> [C, R, 2, features]
                all_st = tuple(c.movedim(1 + bd, 1).reshape(C, R, 2, -1) for c, bd in zip(all_st, bdims))
            tracker.state_dim = sum(int(c.shape[-1]) for c in all_st)
            tracker.update(*_diffs(y, all_st, names))
            if crit_tracker is not None:
                crit_tracker.update(y, t, tracker.ignored)
            t += C
            if progress is not None:
                progress(C)
            if s.early_stop and tracker.all_done():
                break
    wall = time.perf_counter() - start
    table, curves = _summarise(tracker, s, eps, input_seeds, seeds)
    describe = unit.describe() if hasattr(unit, "describe") else {"cell": type(unit).__name__}
    table.insert(0, "dtype", str(dtype).replace("torch.", ""))
    if crit_tracker is not None:
        table = pd.concat([table, pd.DataFrame(crit_tracker.columns(tracker, s))], axis=1)
    return ForgettingResult(table, curves, s, describe, wall, tracker.t,
                            notes={"eps_mach": eps, "custom": isinstance(unit, CallableUnit),
                                   "kernel": getattr(unit, "last_path", "custom")})


def _above_floor(d: np.ndarray, scale: np.ndarray, eps: float, factor: float) -> np.ndarray:
    """Steps whose state distance ``d_t`` is finite and above that step's rounding floor,
    ``factor * eps * max(1, scale_t)`` (``scale_t``: the largest state magnitude at step t)."""
    return np.isfinite(d) & (d > factor * eps * np.maximum(scale, 1.0))


def _fit_rate(d: np.ndarray, scale: np.ndarray, P: int, stop: int, eps: float, factor: float, skip: int = 0):
    """OLS fit of ln ||delta_t|| = a - rate * t on the stretch above the rounding floor, leaving
    out its first ``skip`` steps (where faster-decaying directions still contribute).

    Parameters
    ----------
    d, scale : arrays [T'], the L2 state distance and the largest state magnitude per step.
    P, stop : the stretch starts at step ``P`` and ends at ``stop`` or before the first step that
        is not above its own rounding floor (:func:`_above_floor`: a per-step cutoff, so a
        difference that grows with a growing state is fitted all along).
    eps, factor : machine epsilon and ``fit_floor_factor``.
    skip : steps left out at the start of the stretch.

    Returns
    -------
    (rate, rate_se, points): nats per step, its OLS standard error, and the fitted steps (NaN,
    NaN, n with fewer than 5 points).
    """
    seg = d[P : stop + 1]
    below = np.nonzero(~_above_floor(seg, scale[P : stop + 1], eps, factor))[0]
    end = below[0] if len(below) else len(seg)
    seg = seg[skip:end]
    if len(seg) < 5:
        return math.nan, math.nan, len(seg)
    fit = stats.linregress(np.arange(len(seg), dtype=np.float64), np.log(seg))
    return -fit.slope, fit.stderr, len(seg)


def _growth(d: np.ndarray, scale: np.ndarray, P: int, stop: int, eps: float, factor: float,
            state_dim: int) -> tuple[float, float]:
    """How much the state difference grew after the prefix, and how much of that rounding can explain.

    Parameters
    ----------
    d : array [T'], the L2 distance of the full states per step.
    scale : array [T'], the largest state magnitude per step.
    P, stop : the measured steps are ``P .. stop``.
    eps : float, machine epsilon of the dtype the state is rounded to.
    factor : float, ``fit_floor_factor``: steps with ``d_t <= factor * eps * max(1, scale_t)``
        are at the rounding floor and left out (their ratios are rounding noise).
    state_dim : int, real state components per run.

    Returns
    -------
    (growth, rounding): ``growth = max over t1 <= t2 of ln(d_t2 / d_t1)`` over the measured steps
    above the floor (nats; 0 for a difference that never grows, such as a contracting or constant
    one, in exact arithmetic), and ``rounding = sum_t sqrt(state_dim) * eps * scale_t / d_t`` over
    the same steps (nats): the relative change of ``d`` if every step's rounding moved every state
    component by a full ``eps * scale_t``, all in the same direction (a pessimistic allowance: a
    constant float32 difference was measured to move by 1e-5 to 5e-4 nats over 2e4 to 1e5 steps,
    below both this allowance and ``growth_min``). A run counts as growing when
    ``growth > growth_min + rounding``. Both are 0.0 with fewer than two measured steps.
    """
    seg, sc = d[P : stop + 1], scale[P : stop + 1]
    keep = _above_floor(seg, sc, eps, factor)
    seg, sc = seg[keep], sc[keep]
    if len(seg) < 2:
        return 0.0, 0.0
    ln = np.log(seg)
    growth = float(np.max(ln - np.minimum.accumulate(ln)))
    rounding = float(math.sqrt(state_dim) * eps * np.sum(sc / seg))
    return growth, rounding


def _summarise(tr: _Tracker, s: ForgettingSettings, eps: float, input_seeds, seeds):
    P = s.P
    d_l2 = np.concatenate(tr.d_state_l2)
    scale = np.concatenate(tr.scale)
    d_out = np.concatenate(tr.d_out_max)
    rows, curves = [], []
    for r in range(tr.R):
        event, ev_step = tr.event[r], int(tr.event_step[r])
        # measured through the event step; an overflow run through the step before (its last finite one)
        stop = (ev_step - 1 if event == "overflow" else ev_step) if event else tr.t - 1
        rate, rate_se, npts = _fit_rate(d_l2[:, r], scale[:, r], P, stop, eps, s.fit_floor_factor, s.fit_skip)
        growth, growth_rounding = _growth(d_l2[:, r], scale[:, r], P, stop, eps, s.fit_floor_factor, tr.state_dim)
        d0 = float(d_out[P, r]) if d_out.shape[0] > P else math.nan
        row = {
            "run": r,
            "seed": seeds[r] if seeds is not None else None,
            "input_seed": int(input_seeds[r]),
            "event_step": ev_step if event else None,
            "rate": rate,
            "rate_se": rate_se,
            "fit_points": npts,
            "growth": growth,
            "growth_rounding": growth_rounding,
            "d0": d0,
            "floor_level": float(tr.floor_level[r]) if event == "floor" else math.nan,
            "steps_computed": tr.t,
        }
        any_censored = False
        for k, tol in enumerate(s.tolerances):
            name = tol_name(tol)
            last = int(tr.last_exceed[k, r])
            if event == "exact":
                censored = False
            elif event == "overflow":  # unmeasurable from the overflow on: whether it agrees later is unknown
                censored = True
            elif event == "floor":
                censored = not (tol > 0 and tol >= s.floor_margin * tr.floor_level[r])
            else:
                censored = last >= tr.t - 1
            any_censored |= censored
            row[f"steps_{name}"] = math.nan if censored else float(max(0, last + 1 - P))
            row[f"censored_{name}"] = bool(censored)
            if tol > 0:
                row[f"horizon_{name}"] = math.log(d0 / tol) / rate if rate > 0 and d0 > tol else math.nan
        if event:
            status = event
        elif (not (rate > 0 and rate * npts >= 1.0) and d_out[-1, r] > max(s.tolerances)
              and growth > s.growth_min + growth_rounding):
            status = "diverging"
        else:
            status = "censored" if any_censored else "converged"
        row["status"] = status
        rows.append(row)
        curve = {"bin_edges": tr.edges.astype(np.float64)}
        for key, arr in tr.curves.items():
            curve[key] = arr[:, r].copy()
        for key, arr in tr.comp_curves.items():
            curve[f"{key}_maxabs"] = arr[:, r].copy()
        if event == "exact":  # equal forever: the rest of the curve is known to be zero
            for key in curve:
                if key != "bin_edges":
                    curve[key][np.isnan(curve[key])] = 0.0
        curves.append(curve)
    return pd.DataFrame(rows), curves


# --------------------------------------------------------------------------------------------
# The probe contract (``probes/contract.py``): PROBES["forgetting"]
# --------------------------------------------------------------------------------------------
from pydantic import Field, field_validator  # noqa: E402

from .contract import ProbeSettings, register_probe  # noqa: E402


class ForgettingProbeSettings(ProbeSettings):
    """Settings of ``PROBES["forgetting"]`` (defaults: the memory card's).

    ``T`` steps, inputs differing for the first ``P``; ``input_pairs`` runs, run k with input seed
    ``derive_input_seed(seed + k)``; ``tolerances`` on the outputs' max-abs difference;
    ``fit_skip`` transient steps left out of the contraction-rate fit, which runs on a float64 copy
    over ``P + rate_steps`` steps (in float32 the distance reaches the rounding floor within a few
    dozen steps, too few to fit past the transient). Every other field of :class:`ForgettingSettings`
    keeps its default.
    """

    T: int = Field(20_000, ge=2)
    P: int = Field(1_000, ge=1)
    input_pairs: int = Field(5, ge=1)
    tolerances: tuple[float, ...] = (0.0, 1e-6, 1e-4, 1e-2)
    fit_skip: int = Field(30, ge=0)
    rate_steps: int = Field(3_000, ge=10)

    @field_validator("tolerances")
    @classmethod
    def _tolerances(cls, v):
        ForgettingSettings(T=2, P=1, tolerances=v)  # its checks: finite, >= 0, distinct, at least one
        return tuple(float(t) for t in v)

    def model_post_init(self, __context) -> None:
        """Check across fields after validation: the differing prefix must be shorter than the sequence.

        Parameters
        ----------
        __context : object
            pydantic's validation context (unused).

        Returns
        -------
        None

        Raises
        ------
        ValueError
            ``P >= T`` (pydantic turns it into a validation error, the contract into a ConfigError).
        """
        if self.P >= self.T:
            raise ValueError(f"the differing prefix P={self.P} must be shorter than the sequence T={self.T}")


def forgetting_summary(finished, runs: int, at_floor: int = 0) -> dict:
    """Headline statistics of the forgetting steps of ``runs`` runs of which ``finished`` (the
    steps of the runs that reached the tolerance) ended; the others are censored (the tolerance
    was not reached within T steps, or it lies below the dtype's rounding floor: ``at_floor``).

    A censored run took longer than every finished one, so the median over *all* runs is known
    exactly while fewer than half are censored (it is an order statistic of the finished runs);
    the mean over all runs is known only when none is. A mean over the finished runs alone would
    be biased low and is not reported.

    Parameters
    ----------
    finished : array of float, the steps of the finished runs.
    runs : int, all runs.
    at_floor : int, censored runs whose tolerance lies below the rounding floor.

    Returns
    -------
    dict with ``runs``, ``finished``, ``censored``, ``at_floor``, ``mean`` and ``std`` (all runs;
    None if any is censored), ``median`` (all runs, censored counted as longer; None when at least
    half are censored) and ``median_finished`` (the finished runs only; None if none finished).
    """
    v = np.sort(np.asarray(finished, dtype=float))
    n_cens = runs - v.size
    full = np.concatenate([v, np.full(n_cens, np.inf)])
    median = None
    if v.size and n_cens < runs / 2:  # censored runs sit at +inf: the middle order statistic(s) are finite
        median = float(np.median(full))
    return {"runs": int(runs), "finished": int(v.size), "censored": int(n_cens), "at_floor": int(at_floor),
            "mean": float(v.mean()) if v.size and not n_cens else None,
            "std": float(v.std(ddof=1)) if v.size > 1 and not n_cens else None,
            "median": median, "median_finished": float(np.median(v)) if v.size else None}


def _contract_run(unit, s: ForgettingProbeSettings, *, seed, device, dtype, progress):
    """Forgetting steps per tolerance over ``input_pairs`` runs (censored runs counted, never
    averaged: :func:`forgetting_summary`) and the float64 contraction rate of the state distance."""
    import copy

    seeds = [derive_input_seed(seed + k) for k in range(s.input_pairs)]
    total = s.T + s.P + s.rate_steps
    done = [0]

    def tick(n):
        done[0] += n
        if progress is not None:
            progress(done[0], total)

    res = forgetting(unit, T=s.T, P=s.P, tolerances=s.tolerances, fit_skip=s.fit_skip, input_seeds=seeds,
                     progress=tick)
    t = res.table
    out = {"runs": len(t), "dtype": str(t["dtype"][0]), "steps_computed": res.steps_computed,
           "bound": s.T - s.P, "kernel": res.notes.get("kernel"), "tolerances": {}}
    for tol in s.tolerances:
        name = tol_name(tol)
        cens = t[f"censored_{name}"].astype(bool)
        at_floor = int((cens & (t["status"] == "floor")).sum())
        out["tolerances"][name] = forgetting_summary(t.loc[~cens, f"steps_{name}"].astype(float).to_numpy(),
                                                     runs=len(t), at_floor=at_floor)
    done[0] = s.T  # the first run may stop early: count its budget as done
    u64 = copy.deepcopy(unit).double()
    if hasattr(u64, "dtype"):
        u64.dtype = torch.float64
    res64 = forgetting(u64, T=s.P + s.rate_steps, P=s.P, tolerances=s.tolerances, fit_skip=s.fit_skip,
                       input_seeds=seeds, progress=tick)
    rates = res64.table["rate"].astype(float)
    out["rate"] = {"mean": rates.mean(), "std": rates.std(ddof=1) if len(rates) > 1 else None, "dtype": "float64"}
    out["statuses"] = t["status"].value_counts().to_dict()
    curve = res.curves[0]
    details = {"curve": {"bin_edges": curve["bin_edges"], "out_maxabs": curve["out_maxabs"],
                         "state_l2": curve["state_l2"]}}
    frame = t.assign(rate_float64=rates.to_numpy())
    return frame, out, details, res


def _plot(result, ax):
    c = result.details["curve"]
    edges = np.asarray(c["bin_edges"], float)
    mid = np.sqrt(edges[:-1] * edges[1:]) if len(edges) > 1 else edges
    for key, label in (("out_maxabs", "max |y_a - y_b|"), ("state_l2", "||state_a - state_b||")):
        v = np.asarray(c[key], float)[: len(mid)]
        ok = np.isfinite(v) & (v > 0)
        ax.loglog(mid[ok], v[ok], label=label)
    ax.set_xlabel("shared steps after the differing prefix")
    ax.set_ylabel("distance (log)")
    ax.set_title("forgetting (run 0)")
    ax.legend(fontsize=8)


register_probe("forgetting", ForgettingProbeSettings, _contract_run,
               "steps until two runs that saw different inputs agree again (Muccino 2019)", plotter=_plot)
