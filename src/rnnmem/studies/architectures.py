"""Modern recurrent architectures side by side: LSTM, GRU, LRU, S4D, Mamba, minGRU, minLSTM, sLSTM and
mLSTM at matched parameter counts, through the same memory probes, at random initialisation and after
training on selective copying and MQAR; and the one published finding this can check.

Pipeline (``run_study``):

1. **Matched sizes** (:func:`match_hidden_size`): for every unit, the hidden size whose *trained
   model* (the unit plus the linear readout to the vocabulary, ``(H + 1) V`` parameters, exactly
   what ``train.sequence_tasks`` trains) has the parameter count closest to ``target_params``; a
   unit that cannot come within ``tolerance`` (default 10%) is one ``ConfigError``. State sizes are
   fixed per unit by ``unit_options`` (S4D and Mamba share the same N, so the two SSMs differ in
   selectivity, not in state per channel) and recorded; only the hidden size is searched.
2. **Training** (``train.sequence_tasks.train_on_task``, which runs ``train.fit.fit_seeds``): every
   unit on selective copying (Gu & Dao 2023, section 4.1.1) and on MQAR (Arora et al. 2023), one
   network per seed (unit initialisation, readout, data stream and held-out set all follow the
   seed), exact-match token accuracy on a held-out set beside each task's memoryless baseline.
3. **Memory cards** (``probes.card.compute_card``, every registered card probe) of the first
   ``card_seeds`` seeds of every unit: at random initialisation and the trained units (the readout
   is not part of the card). The capacity probe's ``steps`` are raised per model to ``4 D + 40`` for a
   state of dimension D when the setting is smaller (the ridge readout needs more samples than state
   dimensions; the steps used are recorded per card).
4. **Accuracy over seeds**: mean and Student-t interval per unit and task.
5. **The published finding** (:data:`PUBLISHED`): on selective copying the selective SSM (Mamba,
   S6) far outperforms an LTI SSM of the same size (Gu & Dao 2023, Table 1). :func:`gap_verdict`
   compares our Mamba and S4D accuracies over seeds with a one-sided Welch t test:
   ``reproduced`` when the lower one-sided ``level`` confidence bound of mean(mamba) - mean(s4d)
   exceeds ``margin``; ``not reproduced`` when the upper bound is at most ``margin`` (S4D at least as
   good, significantly); ``inconclusive`` otherwise. The published accuracies are cited constants; our
   scale (sequence length, tokens, layers, parameters, steps) is stated beside them.

Same config and seed -> the same numbers (every random draw is seeded; timings are kept apart in
``timings.csv``).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError

STUDY = "architectures"
UNITS = ("lstm", "gru", "lru", "s4d", "mamba", "mingru", "minlstm", "xlstm_s", "xlstm_m")
LABELS = {"lstm": "LSTM", "gru": "GRU", "lru": "LRU", "s4d": "S4D (LTI SSM)", "mamba": "Mamba (selective SSM)",
          "mingru": "minGRU", "minlstm": "minLSTM", "xlstm_s": "xLSTM sLSTM", "xlstm_m": "xLSTM mLSTM"}
TASKS = ("selective_copy", "mqar")
TASK_LABELS = {"selective_copy": "selective copying", "mqar": "MQAR"}
CONDITIONS = ("init",) + TASKS
CONDITION_LABELS = {"init": "random init", "selective_copy": "trained on selective copying",
                    "mqar": "trained on MQAR"}

#: The published numbers the study sets its results beside (cited constants, not computed here).
PUBLISHED = {
    "source": ("Gu & Dao 2023, \"Mamba: Linear-Time Sequence Modeling with Selective State Spaces\", "
               "arXiv:2312.00752, Table 1 (selective copying accuracy)"),
    "setup": ("2-layer models; sequence length 4096, 16 tokens to memorise, vocabulary of 16 tokens "
              "including the noise token (appendix E.1)"),
    "finding": "on selective copying the selective SSM (S6, Mamba) far outperforms an LTI SSM (S4) of the same size",
    "rows": [
        {"model": "S4", "architecture": "no gate", "layer": "S4", "accuracy": 0.183, "ours": "s4d"},
        {"model": "-", "architecture": "no gate", "layer": "S6", "accuracy": 0.970, "ours": None},
        {"model": "Mamba", "architecture": "Mamba", "layer": "S6", "accuracy": 0.998, "ours": "mamba"},
    ],
    "paper_sizes": {"T": 4096, "n_memorize": 16, "vocab_size": 16, "layers": 2},
}
#: The range of the S6 (selective) rows of Table 1: 97.0% (no gate) to 99.8% (Mamba block).
PUBLISHED_S6_RANGE = (0.970, 0.998)

#: The memory card's quick settings (small: every card of the quick run in seconds on a CPU).
QUICK_CARD = {
    "forgetting": {"T": 2000, "P": 100, "input_pairs": 3, "rate_steps": 300},
    "capacity": {"steps": 2000, "washout": 200},
    "lyapunov": {"steps": 200, "washout": 50, "k": 4},
    "connectivity": {"T": 60, "sequences": 2},
    "long_memory": {"T": 300, "max_lag": 100, "n_samples": 4},
    "semantic": {"sequences": 32, "fit_sequences": 128, "words": 3000, "vocab_size": 50, "space": "random",
                 "bootstrap": 100, "prefix_lengths": (5, 10)},
}


def registered_card_settings(settings: dict) -> dict:
    """``settings`` restricted to the probes the memory card computes now (the card is a loop over the
    probe registry, so a preset may name a probe that is not registered in this installation).

    Parameters
    ----------
    settings : dict
        ``{probe: {field: value}}`` card settings, e.g. :data:`QUICK_CARD`.

    Returns
    -------
    dict
        A copy of the sections of ``settings`` whose probe is a registered card probe
        (``probes.card.card_probes``); the other sections are dropped.
    """
    from ..probes.card import card_probes

    probes = card_probes()
    return {k: dict(v) for k, v in settings.items() if k in probes}

Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass
class ArchitecturesConfig:
    """Every setting of the study (recorded in config.json).

    Parameters
    ----------
    units : the units compared (registry names, see ``rnnmem cells``).
    target_params : the trained model's parameter count every unit is matched to (unit + readout).
    tolerance : largest relative distance from ``target_params`` accepted (0.1 = 10%).
    unit_options : per-unit build options held fixed while the hidden size is searched (state
        sizes, heads).
    layers, convention, dtype : how every unit is built.
    vocab_size : token ids of both tasks (one-hot input width and readout width; one value so the
        two tasks train the same architecture).
    selective_copy : ``T`` (noise tokens) and ``n_memorize`` of selective copying.
    mqar : ``T`` (sequence length), ``n_pairs`` and ``n_queries`` (None: all pairs) of MQAR.
    steps, batch, lr, clip, eval_size : training (Adam, fresh batches per step, held-out set).
    seed, seeds : seeds ``seed .. seed + seeds - 1``; each trains one network per unit and task.
    card_seeds : the first that many seeds get memory cards (at init and trained).
    card : ``{probe: {field: value}}`` overrides of the card's probe settings (None: card defaults).
    level : confidence level of the accuracy intervals and of each one-sided bound of the verdict.
    margin : how much mean(mamba) - mean(s4d) must exceed (accuracy, 0..1) to count as reproduced.
    """

    units: tuple[str, ...] = UNITS
    target_params: int = 50_000
    tolerance: float = 0.10
    unit_options: dict = field(default_factory=lambda: {"s4d": {"state_size": 16}, "mamba": {"state_size": 16},
                                                        "xlstm_m": {"heads": 4}})
    layers: int = 2
    convention: str = "torch"
    dtype: str = "float32"
    vocab_size: int = 16
    selective_copy: dict = field(default_factory=lambda: {"T": 256, "n_memorize": 16})
    mqar: dict = field(default_factory=lambda: {"T": 128, "n_pairs": 6, "n_queries": None})
    steps: int = 5_000
    batch: int = 64
    lr: float = 3e-3
    clip: float = 1.0
    eval_size: int = 1_000
    seed: int = 0
    seeds: int = 5
    card_seeds: int = 3
    card: dict | None = None
    level: float = 0.95
    margin: float = 0.0

    @property
    def seed_list(self) -> list[int]:
        """The seeds run: ``seed, seed + 1, ..., seed + seeds - 1``.

        Returns
        -------
        list of int
        """
        return [self.seed + i for i in range(self.seeds)]

    @property
    def card_seed_list(self) -> list[int]:
        """The seeds that get memory cards: the first ``card_seeds`` of :attr:`seed_list`.

        Returns
        -------
        list of int
        """
        return self.seed_list[: self.card_seeds]

    def validate(self) -> "ArchitecturesConfig":
        """Check every field once, before anything runs; returns self. Raises ``ConfigError``.

        Checks the unit names (known, distinct), ``unit_options``' unit names, the positive integers,
        ``card_seeds`` in 0..seeds, ``seed >= 0``, ``tolerance`` in (0, 1), ``level`` in (0.5, 1),
        ``margin`` in (-1, 1), ``lr > 0``, ``clip > 0`` or None, ``dtype``, the tasks' settings
        (:meth:`tasks`) and the card settings (``probes.card.card_settings``).

        Returns
        -------
        ArchitecturesConfig
            ``self``, unchanged.

        Raises
        ------
        ConfigError
            At the first invalid field, naming it and the value given.
        """
        from ..cells import UNITS as KNOWN, check_unit_names
        from ..cells.base import DTYPES
        from ..probes.card import card_settings

        check_unit_names(self.units)
        if len(set(self.units)) != len(self.units):
            raise ConfigError(f"units must be distinct, got {', '.join(self.units)}")
        unknown = set(self.unit_options) - set(KNOWN)
        if unknown:
            raise ConfigError(f"unit_options names unknown unit(s) {', '.join(sorted(unknown))}")
        for name in ("target_params", "layers", "vocab_size", "steps", "batch", "eval_size", "seeds"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(self.card_seeds, int) or isinstance(self.card_seeds, bool) or not 0 <= self.card_seeds <= self.seeds:
            raise ConfigError(f"card_seeds must be an integer in 0..seeds ({self.seeds}), got {self.card_seeds!r}")
        if not isinstance(self.seed, int) or isinstance(self.seed, bool) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer, got {self.seed!r}")
        if not 0 < self.tolerance < 1:
            raise ConfigError(f"tolerance must lie in (0, 1), got {self.tolerance}")
        if not 0.5 < self.level < 1:
            raise ConfigError(f"level must lie in (0.5, 1), got {self.level}")
        if not (-1 < self.margin < 1):
            raise ConfigError(f"margin is a difference of accuracies and must lie in (-1, 1), got {self.margin}")
        if not (self.lr > 0) or math.isinf(self.lr):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if self.clip is not None and not (self.clip > 0):
            raise ConfigError(f"clip must be positive or None, got {self.clip}")
        if self.dtype not in DTYPES:
            raise ConfigError(f"dtype must be one of {', '.join(DTYPES)}, got {self.dtype!r}")
        self.tasks()  # the tasks' own checks (sizes, vocabulary)
        card_settings(self.card, tasks=False)  # unknown probe or field: one error now
        return self

    def tasks(self) -> dict:
        """The two task objects, built from the config (their own checks apply).

        Returns
        -------
        dict
            ``{"selective_copy": SelectiveCopyTask, "mqar": MQARTask}``, both with ``vocab_size`` token ids.

        Raises
        ------
        ConfigError
            If ``selective_copy`` or ``mqar`` has a field the task does not take (the vocabulary is
            ``vocab_size``), or from the tasks' own checks (sizes, vocabulary).
        """
        from ..tasks.mqar import MQARTask
        from ..tasks.selective_copy import SelectiveCopyTask

        sc = dict(self.selective_copy)
        mq = dict(self.mqar)
        for name, d, allowed in (("selective_copy", sc, {"T", "n_memorize"}),
                                 ("mqar", mq, {"T", "n_pairs", "n_queries", "query_distance", "filler"})):
            bad = set(d) - allowed
            if bad:
                raise ConfigError(f"{name} settings: unknown field(s) {', '.join(sorted(bad))}; allowed: "
                                  f"{', '.join(sorted(allowed))} (the vocabulary is the study's vocab_size)")
        return {"selective_copy": SelectiveCopyTask(vocab_size=self.vocab_size, **sc),
                "mqar": MQARTask(vocab_size=self.vocab_size, **mq)}

    def as_dict(self) -> dict:
        """The configuration as a plain dict (what config.json records).

        Returns
        -------
        dict
            Every field (``dataclasses.asdict``) plus ``seed_list`` and ``card_seed_list``.
        """
        d = asdict(self)
        d["seed_list"] = self.seed_list
        d["card_seed_list"] = self.card_seed_list
        return d


def quick_config(**overrides) -> ArchitecturesConfig:
    """The CPU preset (``--quick``): ~2,000 parameters per model, one layer, selective copying with 16
    noise tokens and 4 to memorise, MQAR of length 32 with 4 pairs, 400 Adam steps, 3 seeds, cards of
    the first seed with small probe settings (:data:`QUICK_CARD`).

    Parameters
    ----------
    **overrides
        Fields of :class:`ArchitecturesConfig` replacing the preset's values.

    Returns
    -------
    ArchitecturesConfig
        The preset (not yet validated; ``run_study`` validates it).
    """
    base = ArchitecturesConfig(
        target_params=2_000, layers=1,
        unit_options={"s4d": {"state_size": 8}, "mamba": {"state_size": 8}, "xlstm_m": {"heads": 4}},
        selective_copy={"T": 16, "n_memorize": 4}, mqar={"T": 32, "n_pairs": 4, "n_queries": None},
        steps=400, batch=32, lr=1e-2, eval_size=500, seeds=3, card_seeds=1,
        card=registered_card_settings(QUICK_CARD))
    return replace(base, **overrides)


# ============================================================================================
# matched parameter counts
# ============================================================================================
def count_parameters(module) -> int:
    """Trainable parameters of ``module`` (``requires_grad``), as ``sum(p.numel())``.

    Parameters
    ----------
    module : torch.nn.Module
        Any module.

    Returns
    -------
    int
        The number of trainable scalars.
    """
    return int(sum(p.numel() for p in module.parameters() if p.requires_grad))


def model_parameters(name: str, hidden_size: int, *, input_size: int, output_size: int, layers: int = 1,
                     convention: str = "torch", options: dict | None = None) -> dict:
    """Parameter counts of unit ``name`` with ``hidden_size`` plus its linear readout.

    Parameters
    ----------
    name, hidden_size, input_size, layers, convention, options : as ``rnnmem.cells.build``.
    output_size : the readout's width (the task's number of classes); the readout has
        ``(hidden_size + 1) * output_size`` parameters (weights and bias).

    Returns
    -------
    dict with ``unit_params``, ``readout_params`` and ``total_params``.

    Raises
    ------
    ConfigError
        When the unit cannot be built with this hidden size (e.g. heads that do not divide it).
    """
    from .. import cells

    unit = cells.build(name, input_size, int(hidden_size), layers=layers, convention=convention, seed=0,
                       **dict(options or {}))
    u = count_parameters(unit)
    r = (int(unit.hidden_size) + 1) * int(output_size)
    return {"unit_params": u, "readout_params": r, "total_params": u + r}


def match_hidden_size(name: str, target: int, *, input_size: int, output_size: int, layers: int = 1,
                      convention: str = "torch", options: dict | None = None, tolerance: float = 0.10,
                      max_hidden: int = 1 << 16) -> dict:
    """The hidden size of unit ``name`` whose model (unit + readout) has the parameter count closest to
    ``target``.

    The count grows with the hidden size H, so the search doubles H until the count reaches ``target``
    and then bisects between the last H below and the first at or above it; hidden sizes the unit
    refuses (e.g. not a multiple of its heads) are skipped. Of the valid H on either side of the
    crossing, the one with the smaller ``|count - target|`` wins (the smaller H on a tie).

    Parameters
    ----------
    name : unit name; ``options`` its fixed build options (state size, heads).
    target : parameter count to match (>= 1).
    input_size, output_size, layers, convention : as :func:`model_parameters`.
    tolerance : largest accepted ``|count - target| / target``.
    max_hidden : largest H tried.

    Returns
    -------
    dict: ``unit``, ``hidden_size``, ``unit_params``, ``readout_params``, ``total_params``, ``target``,
    ``rel_diff`` = (total - target) / target, ``options``.

    Raises
    ------
    ConfigError
        No valid H within ``tolerance`` of ``target`` (naming the nearest one), or no valid H at all.
    """
    if not isinstance(target, int) or isinstance(target, bool) or target < 1:
        raise ConfigError(f"target parameter count must be a positive integer, got {target!r}")
    cache: dict[int, dict | None] = {}

    def count(H: int):
        if H not in cache:
            try:
                cache[H] = model_parameters(name, H, input_size=input_size, output_size=output_size, layers=layers,
                                            convention=convention, options=options)
            except ConfigError:
                cache[H] = None
        return cache[H]

    def valid_from(H: int, stop: int):
        """The smallest valid hidden size in [H, stop), or None."""
        for h in range(H, min(stop, max_hidden + 1)):
            if count(h) is not None:
                return h
        return None

    def valid_near(mid: int, lo: int, hi: int):
        """The valid hidden size strictly between lo and hi nearest to mid (the smaller on a tie), or None."""
        for off in range(0, hi - lo):
            for h in (mid - off, mid + off):
                if lo < h < hi and count(h) is not None:
                    return h
        return None

    lo, hi, H = None, None, 1
    while H <= max_hidden:  # double until the count reaches the target
        h = valid_from(H, 2 * H + 64)
        if h is None:
            break
        if count(h)["total_params"] >= target:
            hi = h
            break
        lo, H = h, 2 * h
    if lo is None and hi is None:
        raise ConfigError(f"unit {name!r} cannot be built with any hidden size up to {max_hidden} with options "
                          f"{options or {}}")
    while lo is not None and hi is not None and hi - lo > 1:  # bisect: count(lo) < target <= count(hi)
        m = valid_near((lo + hi) // 2, lo, hi)
        if m is None:
            break
        if count(m)["total_params"] >= target:
            hi = m
        else:
            lo = m
    cands = [h for h in (lo, hi) if h is not None]
    best = min(cands, key=lambda h: (abs(count(h)["total_params"] - target), h))
    c = count(best)
    rel = (c["total_params"] - target) / target
    if abs(rel) > tolerance:
        raise ConfigError(
            f"unit {name!r}: no hidden size gives a parameter count within {tolerance:.0%} of {target:,}; the "
            f"nearest, hidden_size={best}, gives {c['total_params']:,} ({rel:+.1%}) with options {options or {}}; "
            "change target_params, the tolerance or the unit's options")
    return {"unit": name, "hidden_size": int(best), **c, "target": int(target), "rel_diff": float(rel),
            "options": dict(options or {})}


def matched_sizes(cfg: ArchitecturesConfig) -> pd.DataFrame:
    """:func:`match_hidden_size` for every unit of ``cfg``, plus each unit's state dimension (the
    flattened state the probes see). One row per unit.

    Parameters
    ----------
    cfg : ArchitecturesConfig
        The units, ``target_params``, ``tolerance``, ``vocab_size`` (input and output width),
        ``layers``, ``convention`` and ``unit_options``.

    Returns
    -------
    pandas.DataFrame
        Columns ``unit``, ``hidden_size``, ``unit_params``, ``readout_params``, ``total_params``,
        ``target``, ``rel_diff``, ``options`` (JSON text) and ``state_dim``.

    Raises
    ------
    ConfigError
        From :func:`match_hidden_size`, for a unit with no hidden size within ``tolerance``.
    """
    from .. import cells

    rows = []
    for name in cfg.units:
        opts = dict(cfg.unit_options.get(name, {}))
        m = match_hidden_size(name, cfg.target_params, input_size=cfg.vocab_size, output_size=cfg.vocab_size,
                              layers=cfg.layers, convention=cfg.convention, options=opts, tolerance=cfg.tolerance)
        unit = cells.build(name, cfg.vocab_size, m["hidden_size"], layers=cfg.layers, convention=cfg.convention,
                           seed=0, **opts)
        m["state_dim"] = state_dim(unit)
        m["options"] = json.dumps(opts, sort_keys=True)
        rows.append(m)
    return pd.DataFrame(rows)


def state_dim(unit) -> int:
    """Length of the unit's flattened state (``state_vector`` of one sequence).

    Parameters
    ----------
    unit : rnnmem unit
        A built unit (``init_state`` and ``state_vector``).

    Returns
    -------
    int
        The state dimension D (e.g. 2 H per layer for an LSTM's (h, c)).
    """
    return int(unit.state_vector(unit.init_state(1)).shape[-1])


# ============================================================================================
# statistics and the verdict
# ============================================================================================
def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)``: the two-sided Student-t interval of the mean of ``values`` at ``level``;
    low and high are NaN with fewer than two values (NaNs are dropped).

    ``mean -+ t_{(1+level)/2, S-1} sd / sqrt(S)`` over the S values, ``sd`` with ddof = 1 (Student
    1908, "The probable error of a mean"); see :func:`rnnmem.studies.zhang_stats.t_interval`.

    Parameters
    ----------
    values : array-like of float
        One number per seed.
    level : float, default 0.95
        Coverage of the interval, in (0, 1).

    Returns
    -------
    tuple of (float, float, float)
        The mean (NaN with no value) and the interval's bounds.

    Raises
    ------
    ConfigError
        If ``level`` is not in (0, 1).
    """
    from .zhang_stats import t_interval as _t

    return _t(values, level)


def gap_verdict(a, b, *, level: float = 0.95, margin: float = 0.0) -> dict:
    """Is mean(a) larger than mean(b) by more than ``margin``, beyond the seed-to-seed uncertainty?

    One-sided Welch t statistics (unequal variances) on the per-seed values ``a`` (Mamba's accuracy)
    and ``b`` (S4D's)::

        d = mean(a) - mean(b),   se = sqrt(s_a^2 / n_a + s_b^2 / n_b),
        nu = se^4 / ((s_a^2/n_a)^2 / (n_a - 1) + (s_b^2/n_b)^2 / (n_b - 1))   (Welch-Satterthwaite)
        lower = d - t_{level, nu} se,   upper = d + t_{level, nu} se       (one-sided bounds)

    ``reproduced`` when ``lower > margin`` (a one-sided test of d <= margin rejected at 1 - level);
    ``not reproduced`` when ``upper <= margin`` (d > margin rejected: b at least as good, up to the
    margin); otherwise ``inconclusive``. With no spread in either group (se = 0) the bounds equal d
    (the seeds agree exactly). Fewer than two values in a group: ``inconclusive`` (no uncertainty).
    Sources: Welch (1947), Biometrika 34; Satterthwaite (1946), Biometrics Bulletin 2.

    Parameters
    ----------
    a, b : per-seed values (NaNs dropped).
    level : confidence of each one-sided bound, in (0.5, 1).
    margin : the difference that must be exceeded.

    Returns
    -------
    dict: ``verdict``, ``reason``, ``diff``, ``lower``, ``upper``, ``se``, ``df``, ``p_greater``
    (p-value of d <= margin), ``p_less`` (of d >= margin), ``n_a``, ``n_b``, ``mean_a``, ``mean_b``,
    ``level``, ``margin``, ``test``.

    Raises
    ------
    ConfigError
        If ``level`` is not in (0.5, 1).
    """
    if not 0.5 < level < 1:
        raise ConfigError(f"level must lie in (0.5, 1), got {level}")
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    x, y = x[np.isfinite(x)], y[np.isfinite(y)]
    out = {"n_a": int(len(x)), "n_b": int(len(y)), "level": float(level), "margin": float(margin),
           "test": "one-sided Welch t (unequal variances) on per-seed values",
           "mean_a": float(x.mean()) if len(x) else math.nan, "mean_b": float(y.mean()) if len(y) else math.nan}
    nan = {"diff": out["mean_a"] - out["mean_b"], "lower": math.nan, "upper": math.nan, "se": math.nan,
           "df": math.nan, "p_greater": math.nan, "p_less": math.nan}
    if len(x) < 2 or len(y) < 2:
        return {**out, **nan, "verdict": "inconclusive",
                "reason": f"needs at least two seeds per unit for a seed-to-seed uncertainty (have {len(x)} and {len(y)})"}
    d = float(x.mean() - y.mean())
    va, vb = float(x.var(ddof=1)) / len(x), float(y.var(ddof=1)) / len(y)
    se = math.sqrt(va + vb)
    if se == 0.0:
        lower = upper = d
        df = math.inf
        p_greater = 0.0 if d > margin else 1.0
        p_less = 0.0 if d < margin else 1.0
    else:
        df = (va + vb) ** 2 / (va ** 2 / (len(x) - 1) + vb ** 2 / (len(y) - 1))
        q = float(stats.t.ppf(level, df))
        lower, upper = d - q * se, d + q * se
        tstat = (d - margin) / se
        p_greater, p_less = float(stats.t.sf(tstat, df)), float(stats.t.cdf(tstat, df))
    pct = f"{100 * level:g}%"
    if lower > margin:
        verdict = "reproduced"
        reason = (f"mean difference {d:+.3f}, one-sided {pct} lower bound {lower:+.3f} > margin {margin:g}"
                  + (" (no seed-to-seed spread)" if se == 0 else f" (Welch p = {p_greater:.2g})"))
    elif upper <= margin:
        verdict = "not reproduced"
        reason = (f"mean difference {d:+.3f}, one-sided {pct} upper bound {upper:+.3f} <= margin {margin:g}: the "
                  "LTI SSM is at least as accurate" + ("" if se == 0 else f" (Welch p = {p_less:.2g})"))
    else:
        verdict = "inconclusive"
        reason = (f"mean difference {d:+.3f}, one-sided {pct} bounds [{lower:+.3f}, {upper:+.3f}] contain the "
                  f"margin {margin:g}: the seeds do not settle it")
    return {**out, "diff": d, "lower": float(lower), "upper": float(upper), "se": se, "df": float(df),
            "p_greater": float(p_greater), "p_less": float(p_less), "verdict": verdict, "reason": reason}


def published_checks(accuracy: pd.DataFrame) -> pd.DataFrame:
    """Each published selective-copying accuracy of :data:`PUBLISHED` beside ours.

    ``status``: ``reproduced`` when our two-sided interval over seeds (``accuracy``'s ``ci_low`` /
    ``ci_high``, computed at the study's ``level``) covers the published
    value (for Mamba: overlaps the S6 range :data:`PUBLISHED_S6_RANGE`), ``not reproduced (ours
    lower|higher)`` when it lies wholly on one side, ``no interval`` with one seed, ``not run`` when
    the unit was not part of the run, ``no counterpart`` for a row with no unit of ours.

    Parameters
    ----------
    accuracy : pandas.DataFrame
        :func:`accuracy_table`'s output (``unit``, ``task``, ``mean``, ``ci_low``, ``ci_high``, ``seeds``).

    Returns
    -------
    pandas.DataFrame
        One row per published row: ``published model``, ``architecture``, ``layer``,
        ``published accuracy``, ``our unit``, ``our mean``, ``our low``, ``our high``, ``seeds``, ``status``.
    """
    rows = []
    sc = accuracy[accuracy["task"] == "selective_copy"].set_index("unit") if len(accuracy) else None
    for r in PUBLISHED["rows"]:
        row = {"published model": r["model"], "architecture": r["architecture"], "layer": r["layer"],
               "published accuracy": r["accuracy"], "our unit": r["ours"] or "", "our mean": math.nan,
               "our low": math.nan, "our high": math.nan, "seeds": 0}
        ours = r["ours"]
        if ours is None:
            row["status"] = "no counterpart (a selective layer without a gate; our mamba is the gated block)"
        elif sc is None or ours not in sc.index:
            row["status"] = "not run"
        else:
            a = sc.loc[ours]
            row.update({"our mean": a["mean"], "our low": a["ci_low"], "our high": a["ci_high"], "seeds": int(a["seeds"])})
            lo, hi = (PUBLISHED_S6_RANGE if ours == "mamba" else (r["accuracy"], r["accuracy"]))
            if not np.isfinite(a["ci_low"]):
                row["status"] = "no interval (one seed)"
            elif a["ci_high"] < lo:
                row["status"] = "not reproduced (ours lower)"
            elif a["ci_low"] > hi:
                row["status"] = "not reproduced (ours higher)"
            else:
                row["status"] = "reproduced"
        rows.append(row)
    return pd.DataFrame(rows)


def accuracy_table(training: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Mean token accuracy per unit and task with its Student-t interval over seeds, the per-seed values
    and the memoryless baseline. One row per (unit, task).

    Parameters
    ----------
    training : pandas.DataFrame
        One row per (unit, task, seed) with ``token_accuracy``, ``sequence_accuracy`` and
        ``baseline_accuracy`` (the training rows of ``run_study``).
    level : float, default 0.95
        Coverage of the intervals (:func:`t_interval`).

    Returns
    -------
    pandas.DataFrame
        Columns ``unit``, ``task``, ``seeds``, ``mean``, ``ci_low``, ``ci_high`` (token accuracy),
        ``per_seed`` (text, 3 decimals), ``sequence_accuracy`` (mean) and ``baseline_accuracy``.
    """
    rows = []
    for (unit, task), g in training.groupby(["unit", "task"], sort=False):
        m, lo, hi = t_interval(g["token_accuracy"], level)
        ms, _, _ = t_interval(g["sequence_accuracy"], level)
        rows.append({"unit": unit, "task": task, "seeds": int(len(g)), "mean": m, "ci_low": lo, "ci_high": hi,
                     "per_seed": ", ".join(f"{v:.3f}" for v in g["token_accuracy"]),
                     "sequence_accuracy": ms, "baseline_accuracy": float(g["baseline_accuracy"].iloc[0])})
    return pd.DataFrame(rows)


# ============================================================================================
# cards
# ============================================================================================
def card_settings_for(unit, base: dict | None) -> tuple[dict, dict]:
    """The card settings for ``unit``: ``base`` with the capacity probe's steps raised to ``4 D + 40``
    (D = the state dimension) when smaller. Returns (settings, adjustments).

    Parameters
    ----------
    unit : rnnmem unit
        The unit to be carded (its :func:`state_dim` is used).
    base : dict or None
        ``{probe: {field: value}}`` overrides of the card's defaults (None: the defaults).

    Returns
    -------
    tuple of (dict, dict)
        The validated settings of every card probe (``probes.card.card_settings``, no tasks) and the
        adjustments made: ``{"capacity.steps": {"from", "to", "state_dim"}}`` or ``{}``.

    Raises
    ------
    ConfigError
        From ``card_settings``, for an unknown probe or field in ``base``.
    """
    from ..probes.card import card_settings

    s = card_settings(base, tasks=False)
    D = state_dim(unit)
    need = 4 * D + 40
    adjusted = {}
    if s["capacity"]["steps"] < need:
        adjusted["capacity.steps"] = {"from": s["capacity"]["steps"], "to": need, "state_dim": D}
        s["capacity"]["steps"] = need
    return s, adjusted


def card_row(card: dict) -> dict:
    """The card's headline numbers as one flat row (forgetting: per tolerance the runs, censored count and
    the mean over all runs only when none is censored, the median over all runs while fewer than half are,
    never a mean of the finished runs alone).

    Parameters
    ----------
    card : dict
        A memory card (``probes.card.compute_card``); missing sections give None values.

    Returns
    -------
    dict
        ``forget_<tol>_runs``, ``forget_<tol>_censored``, ``forget_<tol>_mean``, ``forget_<tol>_median``
        per tolerance, ``contraction_rate``, ``lyapunov_max``, ``lyapunov_ci_low``, ``lyapunov_ci_high``,
        ``memory_capacity``, ``state_dim``, ``half_life``, ``half_life_valid``, ``half_life_check``,
        ``long_memory``, ``long_memory_reason`` and, with a semantic section, ``semantic_hull_score`` and
        ``semantic_recall_score``.
    """
    row = {}
    f = card.get("forgetting") or {}
    for tol, t in (f.get("tolerances") or {}).items():
        row[f"forget_{tol}_runs"] = t.get("runs")
        row[f"forget_{tol}_censored"] = t.get("censored")
        row[f"forget_{tol}_mean"] = t.get("mean") if not t.get("censored") else None
        row[f"forget_{tol}_median"] = t.get("median")
    row["contraction_rate"] = (f.get("rate") or {}).get("mean")
    ly = card.get("lyapunov") or {}
    row.update({"lyapunov_max": ly.get("max_exponent"), "lyapunov_ci_low": ly.get("ci_low"),
                "lyapunov_ci_high": ly.get("ci_high")})
    cap = card.get("capacity") or {}
    row.update({"memory_capacity": cap.get("mc"), "state_dim": cap.get("state_dim")})
    con = card.get("connectivity") or {}
    chk = (card.get("fit_checks") or {}).get("connectivity.half_life", {})
    row.update({"half_life": con.get("half_life"), "half_life_valid": chk.get("valid"),
                "half_life_check": chk.get("reason")})
    lm = card.get("long_memory") or {}
    row.update({"long_memory": lm.get("verdict"), "long_memory_reason": lm.get("reason")})
    sem = card.get("semantic")
    if isinstance(sem, dict):
        row.update({"semantic_hull_score": sem.get("hull_score"), "semantic_recall_score": sem.get("recall_score")})
    return row


# ============================================================================================
# the run
# ============================================================================================
@dataclass
class ArchitecturesResult:
    """Everything one run produced (``write_report`` turns it into files)."""

    config: dict
    sizes: pd.DataFrame
    training: pd.DataFrame
    accuracy: pd.DataFrame
    cards: list[dict]
    card_frame: pd.DataFrame
    verdict: dict
    published: pd.DataFrame
    timings: pd.DataFrame
    tasks: dict
    device: str
    wall_s: float


def run_study(cfg: ArchitecturesConfig, device=None, progress: Progress | None = None) -> ArchitecturesResult:
    """Run the study (module docstring) and return its tables and cards (nothing is written).

    Parameters
    ----------
    cfg : the configuration (validated here).
    device : where to train and probe (default cpu).
    progress : ``progress(stage, done, total)``.

    Returns
    -------
    ArchitecturesResult

    Raises
    ------
    ConfigError
        For an invalid configuration (:meth:`ArchitecturesConfig.validate`), a unit that cannot be
        matched to ``target_params``, or a task whose token ids differ from ``vocab_size``.
    """
    from .. import cells
    from ..devices import resolve_device
    from ..probes.card import compute_card
    from ..train.sequence_tasks import train_on_task

    cfg.validate()
    dev = str(resolve_device(device))
    start = time.perf_counter()
    tasks = cfg.tasks()
    for t in tasks.values():
        if t.output_size != cfg.vocab_size or t.input_size != cfg.vocab_size:
            raise ConfigError(f"task {t.name} reads and writes {t.input_size}/{t.output_size} ids, not vocab_size")
    if progress:
        progress("matching parameter counts", 0, 1)
    sizes = matched_sizes(cfg)
    if progress:
        progress("matching parameter counts", 1, 1)
    H = dict(zip(sizes["unit"], sizes["hidden_size"]))
    seeds = cfg.seed_list
    n_train = len(cfg.units) * len(seeds) * len(TASKS)
    n_cards = len(cfg.units) * len(cfg.card_seed_list) * len(CONDITIONS)
    train_rows, cards, card_rows, timing = [], [], [], []
    done_t = done_c = 0

    def card_of(unit, name, cond, seed, extra):
        nonlocal done_c
        s, adjusted = card_settings_for(unit, cfg.card)
        t0 = time.perf_counter()
        c = compute_card(unit, name=f"{name} {cond} s{seed}", seed=seed, device=dev, settings=s)
        wall = time.perf_counter() - t0
        c["study"] = {"unit": name, "condition": cond, "seed": seed, "settings_adjusted": adjusted, **extra}
        cards.append(c)
        card_rows.append({"unit": name, "condition": cond, "seed": seed, **card_row(c),
                          "capacity_steps": s["capacity"]["steps"], **extra})
        timing.append({"stage": "card", "unit": name, "condition": cond, "seed": seed, "wall_s": wall,
                       **{f"{k}_s": v for k, v in c.get("wall_s", {}).items()}})
        done_c += 1
        if progress:
            progress("memory cards", done_c, n_cards)

    for name in cfg.units:
        opts = dict(cfg.unit_options.get(name, {}))
        for seed in seeds:
            unit = cells.build(name, cfg.vocab_size, int(H[name]), layers=cfg.layers, convention=cfg.convention,
                               dtype=cfg.dtype, seed=seed, device=dev, **opts)
            with_card = seed in cfg.card_seed_list
            if with_card:
                card_of(unit, name, "init", seed, {})
            for task_name in TASKS:
                task = tasks[task_name]
                res = train_on_task(unit, task, steps=cfg.steps, batch=cfg.batch, lr=cfg.lr, clip=cfg.clip,
                                    seed=seed, eval_size=cfg.eval_size, device=dev)
                m = res.metrics
                row = {"unit": name, "task": task_name, "seed": seed, "hidden_size": int(H[name]),
                       "token_accuracy": float(m["token_accuracy"]), "sequence_accuracy": float(m["sequence_accuracy"]),
                       "final_loss": float(res.final_loss), "baseline_loss": float(res.baseline),
                       "baseline_accuracy": float(task.baseline_accuracy),
                       "baseline_sequence_accuracy": float(task.baseline_sequence_accuracy),
                       "chance_accuracy": float(task.chance_accuracy), "steps_run": int(res.steps_run)}
                train_rows.append(row)
                timing.append({"stage": "train", "unit": name, "condition": task_name, "seed": seed,
                               "wall_s": res.wall_s})
                done_t += 1
                if progress:
                    progress("training", done_t, n_train)
                if with_card:
                    card_of(res.model.unit, name, task_name, seed,
                            {"token_accuracy": row["token_accuracy"], "baseline_accuracy": row["baseline_accuracy"]})
    training = pd.DataFrame(train_rows)
    accuracy = accuracy_table(training, cfg.level)
    sc = training[training["task"] == "selective_copy"]
    if {"mamba", "s4d"} <= set(cfg.units):
        verdict = gap_verdict(sc.loc[sc["unit"] == "mamba", "token_accuracy"],
                              sc.loc[sc["unit"] == "s4d", "token_accuracy"], level=cfg.level, margin=cfg.margin)
    else:
        verdict = {"verdict": "not run", "reason": "the comparison needs both mamba and s4d among the units"}
    verdict["quantity"] = "selective-copying token accuracy, mamba minus s4d, per seed"
    cfg_dict = cfg.as_dict()
    cfg_dict["tasks"] = {k: t.describe() for k, t in tasks.items()}
    return ArchitecturesResult(
        config=cfg_dict, sizes=sizes, training=training, accuracy=accuracy, cards=cards,
        card_frame=pd.DataFrame(card_rows), verdict=verdict, published=published_checks(accuracy),
        timings=pd.DataFrame(timing), tasks={k: t.describe() for k, t in tasks.items()}, device=dev,
        wall_s=time.perf_counter() - start)


def reproduce(out, quick: bool = False, device=None, config: ArchitecturesConfig | None = None,
              progress: Progress | None = None, command: str = "") -> dict:
    """Run the study and write its report (Markdown + HTML), the cards' comparison pages, every table
    as CSV, every card as JSON and config.json to ``out``.

    Parameters
    ----------
    out : output folder.
    quick : use :func:`quick_config` (ignored when ``config`` is given).
    device : where to compute.
    config : the configuration (default: quick or full preset).
    progress : ``progress(stage, done, total)``.
    command : the command line, recorded in config.json.

    Returns
    -------
    dict: paths (``html``, ``markdown``, ``compare`` pages), ``verdict``, ``accuracy``, ``sizes``,
    ``published``, ``wall_s``.

    Raises
    ------
    ConfigError
        As :func:`run_study`.
    """
    from .architectures_report import write_report

    cfg = config or (quick_config() if quick else ArchitecturesConfig())
    res = run_study(cfg, device=device, progress=progress)
    return write_report(res, Path(out), quick=quick, command=command)


__all__ = ["ArchitecturesConfig", "ArchitecturesResult", "PUBLISHED", "PUBLISHED_S6_RANGE", "QUICK_CARD", "UNITS",
           "accuracy_table", "card_row", "card_settings_for", "count_parameters", "gap_verdict", "match_hidden_size",
           "matched_sizes", "model_parameters", "published_checks", "quick_config", "registered_card_settings",
           "reproduce", "run_study",
           "state_dim"]
