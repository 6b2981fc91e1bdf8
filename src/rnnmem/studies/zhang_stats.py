"""Uncertainty over seeds for the semantic memory study (``rnnmem.studies.zhang``): intervals for
every indicator, paired comparisons of the units, a ranking statement that says when it is
inconclusive, and an interval for the recommended training length.

Every seed re-draws everything random in the study (the synthetic corpus, the skip-gram space, the
initial weights and data order of every unit, the evaluation windows), and all units of one seed
share the corpus, space and windows. Comparisons of units are therefore *paired by seed*.

- Interval of a mean over S seeds: Student's t, ``mean +- t_{(1+level)/2, S-1} sd / sqrt(S)``
  (``sd`` with ``ddof = 1``); none (NaN) for S < 2.
- Paired comparison of units a and b on a per-seed summary ``v``: the t interval and the two-sided
  one-sample t test (``scipy.stats.ttest_1samp``) of the differences ``v_a(s) - v_b(s)``;
  ``a > b`` when the interval lies above 0, ``b > a`` when below, otherwise ``inconclusive``
  (also with fewer than 2 seeds). Each comparison is at ``level`` on its own (not corrected for
  the number of pairs; the report says so).
- Recommended length with an interval: ``semantic.recommended_length`` on the curves of the
  seed means (the point value), of the lower interval bounds (``low``: qualifies even at the lower
  bound) and of the upper bounds (``high``). The rule is monotone in the indicator values, so
  ``low <= point <= high``; ``low != high`` means the seeds do not settle the recommendation.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
from scipy import stats

from ..errors import ConfigError, InputError
from ..probes import semantic as S


def t_interval(values, level: float = 0.95) -> tuple[float, float, float]:
    """``(mean, low, high)`` of the t interval for the mean of ``values`` (NaNs dropped).

    The interval is Student's (1908, "The probable error of a mean", Biometrika 6):
    ``mean -+ t_{(1+level)/2, S-1} sd / sqrt(S)`` over S values, ``sd`` with ddof = 1.

    Parameters
    ----------
    values: one number per seed.
    level: coverage of the interval, in (0, 1).

    Returns
    -------
    The mean and the interval ``mean -+ t_{(1+level)/2, S-1} sd / sqrt(S)``; the bounds are NaN
    with fewer than 2 values, the mean is NaN with none.

    Raises
    ------
    ConfigError
        If ``level`` is not in (0, 1).
    """
    if not 0 < level < 1:
        raise ConfigError(f"level must lie in (0, 1), got {level}")
    x = np.asarray(values, dtype=np.float64)
    x = x[np.isfinite(x)]
    if len(x) == 0:
        return math.nan, math.nan, math.nan
    m = float(x.mean())
    if len(x) < 2:
        return m, math.nan, math.nan
    half = float(stats.t.ppf((1 + level) / 2, len(x) - 1) * x.std(ddof=1) / math.sqrt(len(x)))
    return m, m - half, m + half


def indicator_intervals(curves: pd.DataFrame, indicators, level: float = 0.95,
                        by=("unit", "train_length", "n")) -> pd.DataFrame:
    """Seed mean and t interval of every indicator per (unit, training length, prefix length).

    Parameters
    ----------
    curves: one row per seed and ``by`` group (columns ``seed``, ``by`` and the indicators).
    indicators: the indicator columns.
    level: interval coverage.
    by: the grouping columns (default ``("unit", "train_length", "n")``).

    Returns
    -------
    One row per ``by`` group: ``seeds`` and, per indicator ``x``, ``x`` (the mean over seeds),
    ``x_low`` and ``x_high``.

    Raises
    ------
    InputError
        If ``curves`` lacks ``seed``, a ``by`` column or an indicator column.
    ConfigError
        If ``level`` is not in (0, 1).
    """
    by = list(by)
    need = set(by) | {"seed"} | set(indicators)
    if not need <= set(curves.columns):
        raise InputError(f"curves lack columns {sorted(need - set(curves.columns))}")
    rows = []
    for key, g in curves.groupby(by, sort=False):
        row = dict(zip(by, key if isinstance(key, tuple) else (key,)))
        row["seeds"] = int(g["seed"].nunique())
        for col in indicators:
            m, lo, hi = t_interval(g[col], level)
            row[col], row[f"{col}_low"], row[f"{col}_high"] = m, lo, hi
        rows.append(row)
    return pd.DataFrame(rows)


def unit_summary(curves: pd.DataFrame, indicator: str, train_length: int | None = None) -> pd.DataFrame:
    """One number per (unit, seed): the mean of ``indicator`` over the prefix lengths ``n <= T``
    of the units trained on ``T`` (default: the longest training length).

    Parameters
    ----------
    curves : pandas.DataFrame
        Per-seed curves with columns ``unit``, ``seed``, ``train_length``, ``n`` and ``indicator``.
    indicator : str
        The indicator column summarised.
    train_length : int or None, default None
        The training length T (None: the largest in ``curves``).

    Returns
    -------
    pandas.DataFrame
        Columns ``unit``, ``seed``, ``value``; ``attrs`` records ``indicator`` and ``train_length``.

    Raises
    ------
    InputError
        If ``curves`` has no column ``indicator`` or no rows at training length T.
    """
    if indicator not in curves.columns:
        raise InputError(f"curves have no column {indicator!r}")
    T = int(curves["train_length"].max()) if train_length is None else int(train_length)
    g = curves[(curves["train_length"] == T) & (curves["n"] <= T)]
    if g.empty:
        raise InputError(f"no curves at training length {T}")
    out = g.groupby(["unit", "seed"], sort=False)[indicator].mean().rename("value").reset_index()
    out.attrs.update(indicator=indicator, train_length=T)
    return out


def compare_units(summary: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """Paired comparison of every pair of units on a per-seed summary (``unit_summary``).

    For the per-seed differences ``d_s = v_a(s) - v_b(s)`` over the seeds both units have: the
    Student-t interval of their mean (:func:`t_interval`) and the two-sided one-sample t test of
    mean 0 (``scipy.stats.ttest_1samp``; Student 1908). Each pair is at ``level`` on its own (no
    correction for the number of pairs).

    Parameters
    ----------
    summary : pandas.DataFrame
        Columns ``unit``, ``seed``, ``value`` (one value per unit and seed; duplicates are averaged).
    level : float, default 0.95
        Coverage of the intervals.

    Returns
    -------
    pandas.DataFrame
        One row per pair (units in order of first appearance): ``a``, ``b``, ``seeds`` (paired),
        ``mean_a``, ``mean_b``, ``difference`` (mean of ``a - b``), ``low``, ``high`` (t interval),
        ``p`` (two-sided paired t test; NaN below 2 seeds or for identical differences) and
        ``verdict`` (``"a > b"``, ``"b > a"`` with the unit names, or ``inconclusive``);
        ``attrs["level"]`` records ``level``.

    Raises
    ------
    InputError
        If ``summary`` lacks the columns ``unit``, ``seed`` or ``value``.
    ConfigError
        If ``level`` is not in (0, 1).
    """
    need = {"unit", "seed", "value"}
    if not need <= set(summary.columns):
        raise InputError(f"summary must have columns {sorted(need)}, got {list(summary.columns)}")
    units = list(dict.fromkeys(summary["unit"]))
    wide = summary.pivot_table(index="seed", columns="unit", values="value", aggfunc="mean")
    rows = []
    for a, b in itertools.combinations(units, 2):
        pair = wide[[a, b]].dropna()
        d = (pair[a] - pair[b]).to_numpy()
        m, lo, hi = t_interval(d, level)
        p = math.nan
        if len(d) >= 2 and np.ptp(d) > 0:
            p = float(stats.ttest_1samp(d, 0.0).pvalue)
        if np.isfinite(lo) and lo > 0:
            verdict = f"{a} > {b}"
        elif np.isfinite(hi) and hi < 0:
            verdict = f"{b} > {a}"
        else:
            verdict = "inconclusive"
        rows.append({"a": a, "b": b, "seeds": len(d), "mean_a": float(pair[a].mean()) if len(d) else math.nan,
                     "mean_b": float(pair[b].mean()) if len(d) else math.nan, "difference": m, "low": lo,
                     "high": hi, "p": p, "verdict": verdict})
    out = pd.DataFrame(rows, columns=["a", "b", "seeds", "mean_a", "mean_b", "difference", "low", "high", "p",
                                      "verdict"])
    out.attrs["level"] = level
    return out


def ranking_statement(summary: pd.DataFrame, comparisons: pd.DataFrame, label: str, level: float = 0.95,
                      names: dict | None = None) -> dict:
    """The ranking of the units on one summary and how sure it is.

    Units are ordered by their mean over seeds; neighbours are joined by ``>`` when their paired
    interval excludes 0 and by ``~`` (not separated) otherwise.

    Parameters
    ----------
    summary : pandas.DataFrame
        The per-seed summary (``unit``, ``value``), as from :func:`unit_summary`.
    comparisons : pandas.DataFrame
        :func:`compare_units`'s output for the same summary.
    label : str
        The summary's name in the sentences (e.g. ``"recall"``).
    level : float, default 0.95
        The intervals' coverage, as printed ("95% CI").
    names : dict or None, default None
        Display names of the units (default: the unit names).

    Returns
    -------
    ``{"order": "GRU > LSTM ~ RNN", "conclusive": bool (every pair separated), "text": one sentence
    per pair, e.g. "LSTM > GRU on recall: difference 0.08, 95% CI [0.02, 0.14]", "pairs": n}``.
    """
    names = names or {}
    nm = lambda u: names.get(u, u)  # noqa: E731
    means = summary.groupby("unit", sort=False)["value"].mean().sort_values(ascending=False)
    decided = {}
    for _, r in comparisons.iterrows():
        decided[frozenset((r["a"], r["b"]))] = r
    order = nm(means.index[0]) if len(means) else ""
    for u, v in zip(means.index[:-1], means.index[1:]):
        r = decided.get(frozenset((u, v)))
        order += (" > " if r is not None and r["verdict"] != "inconclusive" else " ~ ") + nm(v)
    pct = f"{100 * level:g}%"
    parts = []
    for _, r in comparisons.iterrows():
        # state every pair with the larger mean first
        a, b, d, lo, hi = r["a"], r["b"], r["difference"], r["low"], r["high"]
        if d < 0:
            a, b, d, lo, hi = b, a, -d, -hi, -lo
        ci = f"{pct} CI [{lo:.3g}, {hi:.3g}]" if np.isfinite(lo) else "no interval (fewer than 2 seeds)"
        head = f"{nm(a)} > {nm(b)}" if r["verdict"] != "inconclusive" else f"{nm(a)} vs {nm(b)} inconclusive"
        parts.append(f"{head} on {label}: difference {d:.3g}, {ci}")
    conclusive = bool(len(comparisons)) and bool((comparisons["verdict"] != "inconclusive").all())
    return {"order": order, "conclusive": conclusive, "text": "; ".join(parts), "pairs": len(comparisons)}


def recommendation_interval(curves: pd.DataFrame, thresholds: dict, level: float = 0.95) -> pd.DataFrame:
    """The recommended training length (``semantic.recommended_length``) with an interval over seeds.

    Parameters
    ----------
    curves: per-seed curves (``seed``, ``unit``, ``train_length``, ``n`` and the thresholded indicators).
    thresholds: indicator -> threshold.
    level: interval coverage.

    Returns
    -------
    ``recommended_length`` (NaN for none), ``status``, ``usable`` and ``limited_by`` from the seed
    means; ``low`` / ``low_status`` from the lower interval bounds and ``high`` / ``high_status``
    from the upper ones (NaN and ``"no interval"`` with one seed); ``per_seed`` (each seed's own
    recommendation, as text); ``settled`` (True when ``low`` and ``high`` agree).

    Raises
    ------
    InputError
        If ``curves`` lacks a needed column (:func:`indicator_intervals`).
    """
    th = dict(thresholds)
    ci = indicator_intervals(curves, list(th), level)
    mean_tab = ci[["unit", "train_length", "n", *th]]
    point = S.recommended_length(mean_tab, th)
    seeds = sorted(curves["seed"].unique())
    per_seed = {s: S.recommended_length(curves[curves["seed"] == s], th).set_index("unit") for s in seeds}
    out = point.copy()
    if len(seeds) >= 2:
        lo_tab = ci[["unit", "train_length", "n"]].assign(**{k: ci[f"{k}_low"] for k in th})
        hi_tab = ci[["unit", "train_length", "n"]].assign(**{k: ci[f"{k}_high"] for k in th})
        lo = S.recommended_length(lo_tab, th).set_index("unit")
        hi = S.recommended_length(hi_tab, th).set_index("unit")
        out["low"] = out["unit"].map(lo["recommended_length"])
        out["low_status"] = out["unit"].map(lo["status"])
        out["high"] = out["unit"].map(hi["recommended_length"])
        out["high_status"] = out["unit"].map(hi["status"])
        out["settled"] = [(a == b) or (pd.isna(a) and pd.isna(b)) for a, b in zip(out["low"], out["high"])]
    else:
        out["low"], out["low_status"], out["high"], out["high_status"] = np.nan, "no interval", np.nan, "no interval"
        out["settled"] = False

    def fmt(r):
        return "none" if r["status"] == "none" else f"{int(r['recommended_length'])}" + (
            "+" if r["status"] == "censored" else "")

    out["per_seed"] = ["; ".join(f"seed {s}: {fmt(per_seed[s].loc[u])}" for s in seeds) for u in out["unit"]]
    out.attrs["thresholds"] = th
    out.attrs["level"] = level
    return out
