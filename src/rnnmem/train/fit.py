"""One training loop for every rnnmem trainer: :func:`fit_seeds`, :class:`EarlyStop`, :class:`TrainResult`.

``fit_seeds`` trains either an *ensemble* (one ``nn.Module`` whose every parameter carries a
leading seed dimension of length ``len(seeds)``, as ``rnnmem.cells.build(..., seeds=...)`` builds
it) or one network per seed (a *factory* ``seed -> nn.Module``, trained one seed after the other).

One step (``s`` counts from 0; ``step = s + 1`` is the number of steps done)::

    batch = data(s)                 or data[s % len(data)] for a sequence of batches (an epoch)
    zero the gradients
    loss = loss_fn(model, batch)    per-seed loss [S] (ensemble) or a scalar (one network)
    [metrics = evaluate(model)]     when an evaluation is due and eval_at == "before"
    backward of  sum_s where(include_s, loss_s, 0)      (a scalar: loss.backward())
    [clip the global gradient norm]
    per-seed bookkeeping (divergence, history, best parameters, patience)
    optimizer step for the seeds still training (the others keep their parameters)
    [metrics = evaluate(model)]     when an evaluation is due and eval_at == "after"
    on_step(StepInfo); progress(step, total)

Seeds are independent: the loss is the *sum* of the per-seed losses, so each seed's gradient is
exactly its own, and an elementwise optimiser (Adam, SGD) over the stacked parameters is S
independent optimisers. A seed that stops (early stopping, divergence) is frozen: its update is
masked out (its parameters are copied back after the optimizer step), so training seed s inside
an ensemble gives the numbers of training it alone. Global gradient-norm clipping would couple
the seeds and is therefore only available for one network at a time.

Non-finite losses (``nonfinite``):

- ``"skip"``: a seed whose loss is NaN/inf gets no gradient from it (weight 0 in the backward
  sum) and keeps training; one network with a non-finite loss skips the backward pass;
- ``"freeze"``: a seed whose loss or any metric measured at that step is NaN/inf is marked
  ``diverged``, frozen and given back its best parameters so far (its initial ones if none was
  kept); the loss of every seed still training at the start of the step enters that step's
  backward pass (the update of the diverged seed is then masked out);
- ``"raise"``: ``ConfigError`` naming the loss and the step;
- ``"propagate"``: the loss is back-propagated as it is.

Early stopping and best restoring per seed: see :class:`EarlyStop`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..errors import ConfigError
from .seed_batch import masked_copy as _seed_masked_copy

KEEPS = ("before", "after")
EVAL_AT = ("before", "after")
NONFINITE = ("skip", "freeze", "raise", "propagate")
#: per-seed outcomes: ran every step, stopped by :class:`EarlyStop`, or diverged (a non-finite loss
#: or metric under ``nonfinite="freeze"``, or a restore metric that was never finite)
STATUSES = ("completed", "early_stopped", "diverged")


@dataclass(frozen=True)
class EarlyStop:
    """Per-seed early stopping and best-parameter restoring for :func:`fit_seeds`.

    Parameters
    ----------
    monitor : str
        What patience and ``below`` watch: ``"loss"`` (the training loss of every step) or a
        metric name returned by ``evaluate`` (watched at every evaluation).
    patience : int or None
        Stop a seed after ``patience`` consecutive observations of ``monitor`` without an
        improvement, an improvement being ``best - value > min_delta`` (``best`` starts at
        +inf, so the first finite value improves). None: no patience rule.
    min_delta : float
        Smallest decrease that counts as an improvement (>= 0).
    below : float or None
        Stop a seed at the first observation with ``monitor < below`` (a target reached).
    restore : str or None
        A metric name returned by ``evaluate`` (or ``"loss"``): per seed, the parameters at the
        strictly lowest finite value seen are kept and put back at the end. None: the final
        parameters are kept.
    keep : {"before", "after"}
        Which parameters ``restore`` keeps: ``"before"``: the parameters whose ``restore``
        value was measured; ``"after"``: those one optimizer update later (the step at which it
        was measured; the published code of Zhao et al. 2020 copies the model after
        ``optimizer.step()``). ``"after"`` needs ``eval_at="before"`` and also lets a seed that
        stops take the update of its last step, as that published loop does.
    """

    monitor: str = "val_loss"
    patience: int | None = None
    min_delta: float = 0.0
    below: float | None = None
    restore: str | None = None
    keep: str = "before"

    def __post_init__(self):
        if self.patience is not None and (not isinstance(self.patience, (int, np.integer))
                                          or isinstance(self.patience, bool) or self.patience < 1):
            raise ConfigError(f"patience must be a positive integer or None, got {self.patience!r}")
        if not (isinstance(self.min_delta, (int, float)) and np.isfinite(self.min_delta) and self.min_delta >= 0):
            raise ConfigError(f"min_delta must be a finite number >= 0, got {self.min_delta!r}")
        if self.below is not None and not (isinstance(self.below, (int, float)) and np.isfinite(self.below)):
            raise ConfigError(f"below must be a finite number or None, got {self.below!r}")
        if self.keep not in KEEPS:
            raise ConfigError(f"keep must be one of {', '.join(KEEPS)}, got {self.keep!r}")
        for name in ("monitor", "restore"):
            v = getattr(self, name)
            if not (isinstance(v, str) and v) and not (name == "restore" and v is None):
                raise ConfigError(f"{name} must be a metric name (a non-empty string), got {v!r}")

    @property
    def stops(self) -> bool:
        """Whether a seed can stop early (``patience`` or ``below`` is set).

        Returns
        -------
        bool
        """
        return self.patience is not None or self.below is not None


@dataclass
class StepInfo:
    """What ``on_step`` receives after every step.

    ``step``: steps done (1-based); ``total``: the last step; ``loss``: float64 [S], this step's
    per-seed training loss; ``metrics``: ``{name: float64 [S]}`` when an evaluation ran at this
    step, else None; ``trained``: bool [S], the seeds that took part in this step (not stopped or
    diverged before it); ``active``: bool [S], the seeds still training after it; ``model``,
    ``optimizer``: the objects being trained; ``seeds``: the seeds of ``model``.
    """

    step: int
    total: int
    loss: np.ndarray
    metrics: dict[str, np.ndarray] | None
    trained: np.ndarray
    active: np.ndarray
    model: nn.Module
    optimizer: torch.optim.Optimizer
    seeds: list[int]


@dataclass(kw_only=True)
class TrainResult:
    """Outcome of :func:`fit_seeds` (the trainers' result classes extend it).

    Parameters
    ----------
    history : pandas.DataFrame
        One row per seed and step it took part in: ``seed``, ``step`` (1-based), ``loss`` and
        one column per metric (NaN at steps without an evaluation).
    table : pandas.DataFrame
        One row per seed: ``seed``, ``status`` (``STATUSES``), ``steps`` (steps taken),
        ``best_step`` (step of the kept parameters' measurement, 0 = never), ``best_<restore>``,
        ``patience_<monitor>`` (the monitored value at its last counted improvement, with a
        patience rule), ``final_loss`` and ``final_<metric>`` (last measured values). ``.frame``
        is this table.
    wall_s : float
        Seconds the training took.
    config : dict
        Everything that defines the run (steps, evaluation, early stopping, optimizer, seeds).
    model : nn.Module or dict
        The trained ensemble, or ``{seed: module}`` for a factory.
    """

    history: pd.DataFrame = field(default_factory=pd.DataFrame)
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    wall_s: float = 0.0
    config: dict = field(default_factory=dict)
    model: Any = field(default=None, repr=False)

    @property
    def frame(self) -> pd.DataFrame:
        """The per-seed table (one row per seed).

        Returns
        -------
        pandas.DataFrame
            ``self.table``.
        """
        return self.table

    @property
    def best_step(self) -> dict[int, int]:
        """``{seed: best_step}`` (0 = no parameters kept from a measurement).

        Returns
        -------
        dict of int to int
            Empty when the table has no ``seed`` or ``best_step`` column.
        """
        t = self.table
        if "best_step" not in t or "seed" not in t:
            return {}
        return {int(s): int(b) for s, b in zip(t["seed"], t["best_step"])}

    def summary(self) -> dict:
        """Headline numbers, JSON-serialisable.

        Returns
        -------
        dict
            ``seeds``, ``wall_s``, ``statuses`` (count per status, when the table has one) and,
            for every numeric column of the table other than ``seed``, its mean over the seeds
            with a finite value (``mean_<column>``).
        """
        t = self.frame
        out: dict = {"seeds": [int(s) for s in t["seed"]] if "seed" in t else [], "wall_s": float(self.wall_s)}
        if "status" in t:
            out["statuses"] = {str(k): int(v) for k, v in t["status"].value_counts().items()}
        for col in t.columns:
            if col == "seed" or not pd.api.types.is_numeric_dtype(t[col]) or pd.api.types.is_bool_dtype(t[col]):
                continue
            v = t[col].to_numpy(dtype=np.float64)
            v = v[np.isfinite(v)]
            out[f"mean_{col}"] = float(v.mean()) if v.size else None
        return out


# ============================================================================================
def masked_copy(dst: torch.Tensor, src: torch.Tensor, mask: torch.Tensor) -> None:
    """``dst[e] = src[e]`` where ``mask[e]``; with one seed the parameters need no seed dimension.

    Parameters
    ----------
    dst : torch.Tensor
        [S, ...] (or any shape when S = 1), updated in place.
    src : torch.Tensor
        Same shape as ``dst``.
    mask : torch.Tensor
        bool [S].

    Returns
    -------
    None
    """
    if mask.numel() == 1:
        if bool(mask.reshape(())):
            dst.copy_(src)
        return
    _seed_masked_copy(dst, src, mask)


def _check_int(name, v, minimum):
    if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _per_seed(value, S: int, what: str) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        value = value.detach().double().cpu().numpy()
    a = np.asarray(value, dtype=np.float64).reshape(-1)
    if a.size != S:
        raise ConfigError(f"{what} must hold one value per seed ({S}), got {a.size}")
    return a


@dataclass
class _SeedState:
    """Bookkeeping of one model's S seeds (see ``_train``)."""

    S: int
    best_val: np.ndarray = None
    best_step: np.ndarray = None
    mon_best: np.ndarray = None
    wait: np.ndarray = None
    steps: np.ndarray = None
    active: np.ndarray = None
    status: np.ndarray = None
    final: dict = None

    def __post_init__(self):
        S = self.S
        self.best_val = np.full(S, np.inf)
        self.best_step = np.zeros(S, dtype=int)
        self.mon_best = np.full(S, np.inf)
        self.wait = np.zeros(S, dtype=int)
        self.steps = np.zeros(S, dtype=int)
        self.active = np.ones(S, dtype=bool)
        self.status = np.array(["completed"] * S, dtype=object)
        self.final = {}


def _train(net: nn.Module, seeds: list[int], batch_at, loss_fn, optimizer, total: int, start: int, es: EarlyStop | None,
           evaluate, eval_every: int | None, eval_at: str, clip, nonfinite: str, on_step, progress, records: list):
    """Train one module (S = len(seeds) seeds; see the module docstring). Returns (state, optimizer)."""
    S = len(seeds)
    params = [p for p in net.parameters() if p.requires_grad]
    if not params:
        raise ConfigError("the model has no trainable parameters")
    if S > 1:
        for p in params:
            if p.dim() == 0 or p.shape[0] != S:
                raise ConfigError(f"an ensemble of {S} seeds needs a leading seed dimension of length {S} on every "
                                  f"parameter; one has shape {tuple(p.shape)} (build it with seeds=..., or pass a "
                                  "factory seed -> module)")
    opt = optimizer(params)
    if not isinstance(opt, torch.optim.Optimizer):
        raise ConfigError(f"optimizer must be a factory params -> torch.optim.Optimizer, it returned {type(opt).__name__}")
    device = params[0].device
    restore = es.restore if es is not None else None
    keep_after = es is not None and es.keep == "after"
    best = [p.detach().clone() for p in params] if (restore is not None or nonfinite == "freeze") else None
    st = _SeedState(S)

    def freeze(mask: np.ndarray):
        st.status[mask] = "diverged"
        st.active &= ~mask
        m = torch.as_tensor(mask, device=device)
        with torch.no_grad():
            for p, b in zip(params, best):
                masked_copy(p, b, m)

    def observe(values: dict[str, np.ndarray], step: int) -> tuple[np.ndarray, np.ndarray]:
        """Best tracking and stopping for the metrics ``values``; returns (better, stopped). With
        ``keep="after"`` the caller copies the better seeds' parameters after the update."""
        better = np.zeros(S, dtype=bool)
        stopped = np.zeros(S, dtype=bool)
        if restore is not None and restore in values:
            va = values[restore]
            better = st.active & np.isfinite(va) & (va < st.best_val)
            if better.any() and not keep_after:
                m = torch.as_tensor(better, device=device)
                with torch.no_grad():
                    for p, b in zip(params, best):
                        masked_copy(b, p.detach(), m)
            st.best_val[better] = va[better]
            st.best_step[better] = step
        if es is not None and es.stops and es.monitor in values:
            v = values[es.monitor]
            if es.patience is not None:
                improved = st.active & (st.mon_best - v > es.min_delta)
                st.mon_best[improved] = v[improved]
                st.wait[improved] = 0
                st.wait[st.active & ~improved] += 1
                stopped |= st.active & (st.wait >= es.patience)
            if es.below is not None:
                stopped |= st.active & (v < es.below)
            st.status[stopped] = "early_stopped"
        return better, stopped

    def measure(step) -> dict[str, np.ndarray]:
        got = evaluate(net)
        if not isinstance(got, dict):
            raise ConfigError(f"evaluate must return a dict of metric name -> per-seed values, got {type(got).__name__}")
        return {str(k): _per_seed(v, S, f"metric {k!r}") for k, v in got.items()}

    def check_names(values):
        for name in ([restore] if restore else []) + ([es.monitor] if es is not None and es.stops else []):
            if name != "loss" and name not in values:
                raise ConfigError(f"early stopping watches the metric {name!r} but evaluate returned "
                                  f"{', '.join(values) or 'nothing'}; return it from evaluate or change EarlyStop")

    for s in range(start, total):
        if not st.active.any():
            break
        step = s + 1
        batch = batch_at(s)
        opt.zero_grad(set_to_none=True)
        loss = loss_fn(net, batch)
        if not isinstance(loss, torch.Tensor) or loss.numel() != S or loss.dim() > 1 or (S > 1 and loss.dim() != 1):
            raise ConfigError(f"loss_fn must return a per-seed loss tensor of shape [{S}] (or a scalar for one "
                              f"network), got {type(loss).__name__} {tuple(getattr(loss, 'shape', ()))}")
        if nonfinite == "raise" and not bool(torch.isfinite(loss).all()):
            v = loss.item() if loss.numel() == 1 else loss.detach().cpu().tolist()
            raise ConfigError(f"training diverged (loss {v} at step {step}); lower lr or set clip")
        due = evaluate is not None and eval_every is not None and step % eval_every == 0
        metrics = measure(step) if due and eval_at == "before" else None
        if metrics is not None:
            check_names(metrics)
        if loss.dim() == 0:
            if nonfinite != "skip" or bool(torch.isfinite(loss)):
                loss.backward()
        else:
            act_t = torch.as_tensor(st.active, device=loss.device)
            include = act_t & torch.isfinite(loss) if nonfinite == "skip" else act_t
            torch.where(include, loss, torch.zeros_like(loss)).sum().backward()
        if clip is not None:
            nn.utils.clip_grad_norm_(params, clip)
        lo = loss.detach().double().cpu().numpy().reshape(S)
        # ------------------------------------------------- before the update
        if nonfinite == "freeze":
            ok = np.isfinite(lo)
            for v in (metrics or {}).values():
                ok &= np.isfinite(v)
            diverged = st.active & ~ok
            if diverged.any():
                freeze(diverged)
        trained = st.active.copy()
        st.steps[trained] += 1
        values = {"loss": lo, **(metrics or {})}
        better, stopped = observe(values, step)
        stepping = st.active.copy() if keep_after else st.active & ~stopped
        st.active &= ~stopped
        # ------------------------------------------------- the update
        if stepping.all():
            opt.step()
        elif stepping.any():                  # frozen seeds keep their parameters
            m = torch.as_tensor(stepping, device=device)
            with torch.no_grad():
                before = [p.detach().clone() for p in params]
            opt.step()
            with torch.no_grad():
                for p, b in zip(params, before):
                    masked_copy(b, p.detach(), m)   # b: updated where stepping, old elsewhere
                    p.copy_(b)
        if keep_after and better.any():       # the parameters one update after the measurement
            m = torch.as_tensor(better, device=device)
            with torch.no_grad():
                for p, b in zip(params, best):
                    masked_copy(b, p.detach(), m)
        # ------------------------------------------------- after the update
        if due and eval_at == "after":
            metrics = measure(step)
            check_names(metrics)
            if nonfinite == "freeze":
                ok = np.ones(S, dtype=bool)
                for v in metrics.values():
                    ok &= np.isfinite(v)
                diverged = st.active & ~ok
                if diverged.any():
                    freeze(diverged)
            _, stopped = observe(metrics, step)
            st.active &= ~stopped
        st.final["loss"] = np.where(trained, lo, st.final.get("loss", np.full(S, np.nan)))
        for k, v in (metrics or {}).items():
            st.final[k] = np.where(trained, v, st.final.get(k, np.full(S, np.nan)))
        records.append((step, trained, lo, metrics))
        if on_step is not None:
            on_step(StepInfo(step=step, total=total, loss=lo, metrics=metrics, trained=trained,
                             active=st.active.copy(), model=net, optimizer=opt, seeds=list(seeds)))
        if progress is not None:
            progress(step, total)
    if restore is not None:
        with torch.no_grad():
            for p, b in zip(params, best):
                p.copy_(b)
        st.status[(st.best_step == 0) & (st.status != "diverged")] = "diverged"
    return st, opt


def _history(seeds: list[int], records: list) -> pd.DataFrame:
    names: list[str] = []
    for _, _, _, m in records:
        for k in m or {}:
            if k not in names:
                names.append(k)
    cols: dict[str, list] = {"seed": [], "step": [], "loss": [], **{k: [] for k in names}}
    seeds_a = np.asarray(seeds, dtype=np.int64)
    for step, trained, lo, m in records:
        n = int(trained.sum())
        cols["seed"].append(seeds_a[trained])
        cols["step"].append(np.full(n, step, dtype=np.int64))
        cols["loss"].append(lo[trained])
        for k in names:
            cols[k].append(m[k][trained] if m and k in m else np.full(n, np.nan))
    if not records:
        return pd.DataFrame({k: pd.Series(dtype=np.float64 if k not in ("seed", "step") else np.int64) for k in cols})
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    rank = np.argsort(seeds_a, kind="stable")             # index in seeds of the r-th smallest seed
    order = np.lexsort((flat["step"], rank[np.searchsorted(seeds_a[rank], flat["seed"])]))   # seeds' order, then step
    return pd.DataFrame({k: v[order] for k, v in flat.items()})


def fit_seeds(model, data, loss_fn: Callable, *, optimizer: Callable, seeds, steps: int | None = None,
              epochs: int | None = None, early_stop: EarlyStop | None = None,
              evaluate: Callable[[nn.Module], dict] | None = None, eval_every: int | None = None,
              eval_at: str = "after", clip: float | None = None, nonfinite: str = "skip", start_step: int = 0,
              on_step: Callable[[StepInfo], None] | None = None, progress: Callable[[int, int], None] | None = None,
              config: dict | None = None) -> TrainResult:
    """Train ``model`` for every seed in ``seeds`` (see the module docstring for one step).

    Parameters
    ----------
    model : nn.Module or callable
        An ensemble whose parameters all carry a leading seed dimension of length
        ``len(seeds)`` (with one seed: any module), or a factory ``seed -> nn.Module`` (or
        ``seed -> (nn.Module, data)`` when each seed has its own data), trained one seed after
        the other.
    data : sequence of batches or callable
        A sequence is one epoch (step ``s`` uses ``data[s % len(data)]``); a callable
        ``data(s) -> batch`` gets the 0-based step (a stream; resumable by ``start_step``).
    loss_fn : callable
        ``loss_fn(model, batch) -> Tensor``: the per-seed loss ``[S]`` (ensemble), or a scalar for
        one network.
    optimizer : callable
        ``optimizer(params) -> torch.optim.Optimizer`` over the trainable parameters.
    seeds : iterable of int
        Distinct seeds (one entry per ensemble member, or the seeds the factory is called with).
    steps, epochs : int
        Exactly one: the number of steps, or of epochs over a sequence ``data``.
    early_stop : EarlyStop or None
        Per-seed early stopping and best restoring; None: every seed runs every step and keeps
        its final parameters.
    evaluate : callable or None
        ``evaluate(model) -> {name: per-seed values}`` (array-like [S], or a number for one
        network); it must switch the model to eval mode and back and disable gradients itself.
    eval_every : int or None
        Evaluate after every ``eval_every``-th step (default: once per epoch for a sequence
        ``data``, else every step).
    eval_at : {"after", "before"}
        Evaluate after the step's update (the parameters the next step starts from), or between
        the step's loss and its update (the parameters that produced the loss).
    clip : float or None
        Clip the global gradient norm to ``clip`` before each update (one network only).
    nonfinite : {"skip", "freeze", "raise", "propagate"}
        What a non-finite loss does (module docstring).
    start_step : int
        First step to run (0-based; for resuming: the caller restores the model, and the
        optimizer inside its factory).
    on_step : callable or None
        ``on_step(StepInfo)`` after every step (logging, checkpoints).
    progress : callable or None
        ``progress(done, total)`` after every step.
    config : dict or None
        Extra entries recorded in the result's ``config``.

    Returns
    -------
    TrainResult
        Per-seed history and table, wall time, configuration and the trained model(s).

    Raises
    ------
    ConfigError
        On bad arguments (empty or repeated seeds, unknown ``eval_at``/``nonfinite``, both or
        neither of ``steps``/``epochs``, ``clip`` with an ensemble, an ``early_stop`` that needs an
        ``evaluate`` callback, a model without a seed dimension or trainable parameters, an
        ``optimizer`` factory that returns no Optimizer, per-seed values of the wrong length), or,
        with ``nonfinite="raise"``, on a non-finite loss.
    """
    t0 = time.perf_counter()
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("seeds must not be empty")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct, got {seeds}")
    if eval_at not in EVAL_AT:
        raise ConfigError(f"eval_at must be one of {', '.join(EVAL_AT)}, got {eval_at!r}")
    if nonfinite not in NONFINITE:
        raise ConfigError(f"nonfinite must be one of {', '.join(NONFINITE)}, got {nonfinite!r}")
    if early_stop is not None and not isinstance(early_stop, EarlyStop):
        raise ConfigError(f"early_stop must be an EarlyStop or None, got {type(early_stop).__name__}")
    if early_stop is not None and early_stop.keep == "after" and eval_at != "before":
        raise ConfigError("EarlyStop(keep='after') keeps the parameters one update after the measurement; "
                          "it needs eval_at='before'")
    needs_eval = early_stop is not None and ({early_stop.restore} | ({early_stop.monitor} if early_stop.stops else set())) - {None, "loss"}
    if needs_eval and evaluate is None:
        raise ConfigError(f"early stopping watches {', '.join(sorted(needs_eval))} but no evaluate callback was given")
    if clip is not None and not (isinstance(clip, (int, float)) and clip > 0):
        raise ConfigError(f"clip must be a positive number or None, got {clip!r}")
    if (steps is None) == (epochs is None):
        raise ConfigError("give exactly one of steps and epochs")
    is_factory = not isinstance(model, nn.Module)
    if is_factory and not callable(model):
        raise ConfigError(f"model must be an nn.Module or a factory seed -> nn.Module, got {type(model).__name__}")
    if not is_factory and clip is not None and len(seeds) > 1:
        raise ConfigError("clip (global gradient-norm clipping) would couple the seeds of an ensemble; "
                          "train one network per seed (a factory) to clip")

    def plan(d):
        if isinstance(d, Sequence) and not isinstance(d, (str, bytes)):
            if len(d) == 0:
                raise ConfigError("data holds no batches")
            n = len(d)
            return (lambda s: d[s % n]), n
        if callable(d):
            return d, None
        raise ConfigError(f"data must be a sequence of batches (an epoch) or a callable step -> batch, "
                          f"got {type(d).__name__}")

    batch_at, per_epoch = plan(data)
    if epochs is not None:
        _check_int("epochs", epochs, 1)
        if per_epoch is None:
            raise ConfigError("epochs needs data as a sequence of batches (an epoch); give steps for a stream")
        total = epochs * per_epoch
    else:
        total = _check_int("steps", steps, 1)
    if eval_every is None:
        eval_every = per_epoch or 1
    _check_int("eval_every", eval_every, 1)
    _check_int("start_step", start_step, 0)

    records: list = []
    tables, histories, models, opt_name = [], [], {}, None
    groups = [[s] for s in seeds] if is_factory else [seeds]
    for group in groups:
        net, get = model, batch_at
        if is_factory:
            built = model(group[0])
            if isinstance(built, tuple):
                net, own = built
                get, _ = plan(own)
            else:
                net = built
            if not isinstance(net, nn.Module):
                raise ConfigError(f"the factory must return an nn.Module, got {type(net).__name__}")
            models[group[0]] = net
        records = []
        st, opt = _train(net, group, get, loss_fn, optimizer, total, start_step, early_stop, evaluate, eval_every,
                         eval_at, clip, nonfinite, on_step, progress, records)
        opt_name = type(opt).__name__
        histories.append(_history(group, records))
        rows = []
        for e, seed in enumerate(group):
            row = {"seed": seed, "status": str(st.status[e]), "steps": int(st.steps[e]), "best_step": int(st.best_step[e])}
            if early_stop is not None and early_stop.restore is not None:
                row[f"best_{early_stop.restore}"] = float(st.best_val[e])
            if early_stop is not None and early_stop.patience is not None:
                row[f"patience_{early_stop.monitor}"] = float(st.mon_best[e])
            for k, v in st.final.items():
                row[f"final_{k}"] = float(v[e])
            rows.append(row)
        tables.append(pd.DataFrame(rows))
    cfg = {"seeds": seeds, "steps": total, "start_step": int(start_step), "steps_per_epoch": per_epoch,
           "eval_every": eval_every if evaluate is not None else None, "eval_at": eval_at, "clip": clip,
           "nonfinite": nonfinite, "early_stop": asdict(early_stop) if early_stop is not None else None,
           "optimizer": opt_name, "models": "one per seed" if is_factory else "ensemble", **(config or {})}
    return TrainResult(history=pd.concat(histories, ignore_index=True), table=pd.concat(tables, ignore_index=True),
                       wall_s=time.perf_counter() - t0, config=cfg, model=models if is_factory else model)


__all__ = ["fit_seeds", "EarlyStop", "StepInfo", "TrainResult", "STATUSES", "KEEPS", "EVAL_AT", "NONFINITE"]
