"""Verdicts on the published claims of the memory-stability study, with their statistics.

Muccino (2019) makes five claims about its convergence table (mean steps until "identical" outputs
over input size x units for LSTM and GRU):

1. the magnitudes (tens of steps for LSTM, ~15 for GRU, for units >= 2);
2. more units -> longer memory (both cells);
3. larger input -> faster forgetting (LSTM);
4. no input effect (GRU);
5. the 1-unit column: about one step (0.2 to 2.0) for both cells.

Every statistic here is computed over a stated set of grid cells, the same set for every column of
a row: ``units >= 2`` (56 cells per cell type on the full grid) for claims 1-4, ``units = 1``
(8 cells) for claim 5. A grid cell with a censored run (its value could not be measured, see
``docs/forgetting.md``) has no mean; it is left out and counted in the row's ``cells`` text.

Statistics and verdict rules (the thresholds are documented choices, not the study's):

- magnitudes and the 1-unit column: ratio of sums ``sum(ours) / sum(published)`` over the cells,
  with a 95% bootstrap interval (runs resampled within each grid cell, the published table taken as
  fixed). *reproduced* when the interval lies inside [0.8, 1.25], *not reproduced* when it lies
  entirely outside it, else *inconclusive*. Pearson r and the mean |log2 ratio| are shown too.
- a trend (claims 2, 3): Spearman rho of the cell means against units (or input size), with its
  p-value and the 95% interval from Fisher's z with the Bonett-Wright standard error
  ``1.06 / sqrt(n - 3)``. *reproduced* when rho has the claimed sign with p < 0.05; *not
  reproduced* when the interval excludes the published rho (or rho has the wrong sign with
  p < 0.05); else *inconclusive*.
- no effect (claim 4): *not reproduced* when p < 0.05 (a significant input effect); *reproduced*
  when the rho interval lies inside (-0.4, 0.4) (at most a moderate correlation); else
  *inconclusive*.

The mean |log2 ratio| uses ``log2((ours + 0.1) / (published + 0.1))``: 0.1 is half the published
resolution (every published mean is a multiple of 0.2), so a cell where either side is 0 stays finite.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

PSEUDO = 0.1
MAGNITUDE_BAND = (0.8, 1.25)
NO_EFFECT_MARGIN = 0.4
ALPHA = 0.05
KEYS = ["cell", "input_size", "units"]
CELL_SETS = {"units >= 2": lambda g: g["units"] >= 2, "units = 1": lambda g: g["units"] == 1,
             "all": lambda g: g["units"] >= 1}


def log2_ratio(ours, published) -> np.ndarray:
    """``log2((ours + 0.1) / (published + 0.1))`` element-wise (see module docstring).

    Parameters
    ----------
    ours, published : array-like of float
        Mean steps per grid cell (broadcast together).

    Returns
    -------
    numpy.ndarray
        The log2 ratios; 0.1 (``PSEUDO``, half the published resolution) keeps zeros finite.
    """
    return np.log2((np.asarray(ours, float) + PSEUDO) / (np.asarray(published, float) + PSEUDO))


def spearman_ci(rho: float, n: int, level: float = 0.95) -> tuple[float, float]:
    """Interval for a Spearman rho from Fisher's z with the Bonett-Wright (2000) standard error
    ``1.06 / sqrt(n - 3)``. Returns ``(nan, nan)`` for n <= 3 or an undefined rho.

    ``tanh(atanh(rho) -+ z_{(1+level)/2} 1.06 / sqrt(n - 3))``, rho clipped to +-0.999999 first
    (Fisher 1921; Bonett & Wright 2000, Psychometrika 65).

    Parameters
    ----------
    rho : float
        The Spearman correlation.
    n : int
        The number of pairs it was computed on.
    level : float, default 0.95
        Two-sided coverage.

    Returns
    -------
    tuple of (float, float)
        The lower and upper bound.
    """
    if n <= 3 or not np.isfinite(rho):
        return math.nan, math.nan
    z = math.atanh(min(max(rho, -0.999999), 0.999999))
    half = stats.norm.ppf(0.5 + level / 2) * 1.06 / math.sqrt(n - 3)
    return math.tanh(z - half), math.tanh(z + half)


def cell_values(runs: pd.DataFrame, value: str, censored: str) -> pd.DataFrame:
    """Per grid cell: ``n`` runs, ``n_censored``, ``mean`` (NaN when any run is censored) and
    ``values`` (the uncensored run values, for the bootstrap).

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run with ``cell``, ``input_size``, ``units`` and the two columns below.
    value : str
        The column of forgetting steps, e.g. ``"steps_0.0001"``.
    censored : str
        The matching boolean censoring column, e.g. ``"censored_0.0001"``.

    Returns
    -------
    pandas.DataFrame
        One row per (cell, input_size, units): the keys, ``n``, ``n_censored``, ``mean`` and
        ``values`` (a numpy array).
    """
    rows = []
    for key, g in runs.groupby(KEYS, sort=True):
        cens = g[censored].astype(bool).to_numpy()
        vals = g.loc[~cens, value].astype(float).to_numpy()
        rows.append({**dict(zip(KEYS, key)), "n": len(g), "n_censored": int(cens.sum()),
                     "mean": float(vals.mean()) if len(vals) and not cens.any() else math.nan, "values": vals})
    return pd.DataFrame(rows)


def _describe_cells(g: pd.DataFrame, cell: str, which: str, dropped: int) -> str:
    units = sorted(g["units"].unique())
    inputs = sorted(g["input_size"].unique())
    span = lambda v: f"{v[0]}-{v[-1]}" if len(v) > 1 else f"{v[0]}"  # noqa: E731
    text = f"{cell.upper()} units {span(units)} x input {span(inputs)} ({len(g)} cells)"
    if dropped:
        text += f"; {dropped} cell(s) with censored runs left out"
    return text


def _band_verdict(lo: float, hi: float) -> str:
    a, b = MAGNITUDE_BAND
    if not (np.isfinite(lo) and np.isfinite(hi)):
        return "inconclusive"
    if a <= lo and hi <= b:
        return "reproduced"
    if hi < a or lo > b:
        return "not reproduced"
    return "inconclusive"


def _bootstrap_sum(values: list[np.ndarray], n_boot: int, rng: np.random.Generator) -> np.ndarray:
    """Bootstrap distribution of the sum over cells of each cell's mean (runs resampled per cell)."""
    total = np.zeros(n_boot)
    for v in values:
        idx = rng.integers(0, len(v), size=(n_boot, len(v)))
        total += v[idx].mean(axis=1)
    return total


def verdict_table(cells: pd.DataFrame, published: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """One row per (claim, cell type): the statistic over the stated cells and the verdict.

    The magnitude rows use the ratio of sums ``sum(ours) / sum(published)`` with a percentile
    bootstrap interval (runs resampled within each cell; Efron 1979); the trend rows
    :func:`trend_verdict`. Claims and rules: module docstring (Muccino 2019).

    Parameters
    ----------
    cells: per grid cell, as returned by :func:`cell_values` (``cell, input_size, units, n,
        n_censored, mean, values``).
    published: the published table (``cell, input_size, units, mean_steps``).
    n_boot: bootstrap replicates for the ratio-of-sums intervals (0: no interval, verdict from the
        point estimate against the band).
    seed: of the bootstrap.

    Returns
    -------
    DataFrame with columns claim, verdict, statistic, ours, published, interval (95%), p, cells, also.
    """
    rng = np.random.default_rng(seed)
    merged = cells.merge(published, on=KEYS, how="inner")
    rows = []
    for cell in ("lstm", "gru"):
        for which in ("units >= 2", "units = 1"):
            g_all = merged[(merged["cell"] == cell) & CELL_SETS[which](merged)]
            if not len(g_all):
                continue
            g = g_all[np.isfinite(g_all["mean"])]
            desc = _describe_cells(g_all, cell, which, len(g_all) - len(g))
            if not len(g):
                continue
            # magnitudes / the 1-unit column: ratio of sums with a bootstrap interval
            pub_sum = float(g["mean_steps"].sum())
            ratio = float(g["mean"].sum()) / pub_sum
            if n_boot:
                boot = _bootstrap_sum(list(g["values"]), n_boot, rng) / pub_sum
                lo, hi = (float(x) for x in np.percentile(boot, [2.5, 97.5]))
            else:
                lo = hi = ratio
            r = stats.pearsonr(g["mean"], g["mean_steps"]) if len(g) > 2 and g["mean"].nunique() > 1 else None
            claim = "magnitudes" if which == "units >= 2" else "1-unit column (~1 step)"
            rows.append({
                "claim": claim, "cells": desc, "statistic": "ratio of sums ours/published",
                "ours": ratio, "published": math.nan, "interval": f"[{lo:.3g}, {hi:.3g}]", "p": math.nan,
                "verdict": _band_verdict(lo, hi),
                "also": f"mean |log2 ratio| {np.abs(log2_ratio(g['mean'], g['mean_steps'])).mean():.2f}; "
                        f"Pearson r {r.statistic:.2f}" if r is not None else
                        f"mean |log2 ratio| {np.abs(log2_ratio(g['mean'], g['mean_steps'])).mean():.2f}",
            })
            if which != "units >= 2":
                continue
            claims = [("more units -> longer memory", "units", +1)]
            claims.append(("larger input -> faster forgetting", "input_size", -1) if cell == "lstm"
                          else ("no input effect", "input_size", 0))
            for text, var, sign in claims:
                rows.append(trend_verdict(g, var, sign, text, desc))
    cols = ["claim", "verdict", "statistic", "ours", "published", "interval", "p", "cells", "also"]
    return pd.DataFrame(rows, columns=cols)


def trend_verdict(g: pd.DataFrame, var: str, sign: int, claim: str, desc: str = "") -> dict:
    """Spearman rho of ``g['mean']`` against ``g[var]``, the published rho on the same cells
    (``g['mean_steps']``) and the verdict (rules in the module docstring). ``sign``: +1, -1 or 0
    (no effect).

    rho is Spearman's (1904) rank correlation with its two-sided p-value (``scipy.stats.spearmanr``)
    and the interval of :func:`spearman_ci`; NaN (inconclusive) with n <= 3 or a constant column.

    Parameters
    ----------
    g : pandas.DataFrame
        The grid cells compared: ``mean`` (ours), ``mean_steps`` (published) and ``var``.
    var : str
        ``"units"`` or ``"input_size"``.
    sign : int
        The claimed direction: +1 (increasing), -1 (decreasing) or 0 (no effect).
    claim : str
        The claim's text, copied to the row.
    desc : str, default ""
        The description of the cells, copied to the row.

    Returns
    -------
    dict
        ``claim``, ``cells``, ``statistic``, ``ours`` (rho), ``published`` (the published rho),
        ``interval`` (text), ``p``, ``verdict`` (``reproduced``, ``not reproduced`` or
        ``inconclusive``) and ``also`` (empty).
    """
    n = len(g)
    if n > 3 and g["mean"].nunique() > 1 and g[var].nunique() > 1:
        rho, p = (float(x) for x in stats.spearmanr(g[var], g["mean"]))
    else:
        rho, p = math.nan, math.nan
    gp = g.dropna(subset=["mean_steps"])  # the published rho: over the cells the published table has
    pub_rho = (float(stats.spearmanr(gp[var], gp["mean_steps"])[0])
               if len(gp) > 3 and gp[var].nunique() > 1 and gp["mean_steps"].nunique() > 1 else math.nan)
    lo, hi = spearman_ci(rho, n)
    if not np.isfinite(rho):
        verdict = "inconclusive"
    elif sign == 0:
        verdict = ("not reproduced" if p < ALPHA else
                   "reproduced" if -NO_EFFECT_MARGIN < lo and hi < NO_EFFECT_MARGIN else "inconclusive")
    elif np.sign(rho) == sign and p < ALPHA:
        verdict = "reproduced"
    elif (p < ALPHA and np.sign(rho) == -sign) or (np.isfinite(pub_rho) and not lo <= pub_rho <= hi):
        verdict = "not reproduced"
    else:
        verdict = "inconclusive"
    return {"claim": claim, "cells": desc, "statistic": f"Spearman rho vs {var.replace('_', ' ')}",
            "ours": rho, "published": pub_rho, "interval": f"[{lo:.2f}, {hi:.2f}]", "p": p, "verdict": verdict,
            "also": ""}


def comparison_table(cells: pd.DataFrame, published: pd.DataFrame) -> pd.DataFrame:
    """Ours against the published table per cell type and cell set (``units >= 2``, ``units = 1``,
    ``all``); every column of a row is computed over the same cells (those without censored runs;
    the number left out is a column).

    Parameters
    ----------
    cells : pandas.DataFrame
        Ours per grid cell: ``cell``, ``input_size``, ``units``, ``mean`` (NaN for a cell with
        censored runs).
    published : pandas.DataFrame
        ``cell``, ``input_size``, ``units``, ``mean_steps``.

    Returns
    -------
    pandas.DataFrame
        One row per (cell, cell set): ``grid cells``, ``left out (censored runs)``, ``ours mean``,
        ``published mean``, ``ratio of sums``, ``median ours/published``, ``mean |log2 ratio|``,
        ``Pearson r`` and ``Spearman rho`` (NaN with fewer than 3 cells or a constant column).
    """
    merged = cells.merge(published, on=KEYS, how="inner")
    rows = []
    for cell in ("lstm", "gru"):
        for which, sel in CELL_SETS.items():
            g_all = merged[(merged["cell"] == cell) & sel(merged)]
            if not len(g_all):
                continue
            g = g_all[np.isfinite(g_all["mean"])]
            ok = len(g) > 2 and g["mean"].nunique() > 1 and g["mean_steps"].nunique() > 1
            rows.append({
                "cell": cell, "cells": which, "grid cells": len(g),
                "left out (censored runs)": len(g_all) - len(g),
                "ours mean": float(g["mean"].mean()) if len(g) else math.nan,
                "published mean": float(g["mean_steps"].mean()) if len(g) else math.nan,
                "ratio of sums": float(g["mean"].sum() / g["mean_steps"].sum()) if len(g) else math.nan,
                "median ours/published": float((g["mean"] / g["mean_steps"]).median()) if len(g) else math.nan,
                "mean |log2 ratio|": float(np.abs(log2_ratio(g["mean"], g["mean_steps"])).mean()) if len(g) else math.nan,
                "Pearson r": float(stats.pearsonr(g["mean"], g["mean_steps"])[0]) if ok else math.nan,
                "Spearman rho": float(stats.spearmanr(g["mean"], g["mean_steps"])[0]) if ok else math.nan,
            })
    return pd.DataFrame(rows)


def km_median(values: np.ndarray, censored_at: np.ndarray) -> float:
    """Kaplan-Meier median of right-censored steps (``scipy.stats.ecdf``): the smallest t with
    survival <= 0.5; NaN when the survival curve never reaches 0.5 (too many runs censored).

    The survival estimate is ``S(t) = prod_{t_i <= t} (1 - d_i / n_i)`` (d_i events at t_i, n_i
    runs at risk; Kaplan & Meier 1958, JASA 53).

    Parameters
    ----------
    values: the measured (uncensored) steps.
    censored_at: for each censored run, the steps it was followed for (its value is larger).

    Returns
    -------
    float
        The median; the plain median of ``values`` when nothing is censored, NaN when ``values`` is
        empty.
    """
    values = np.asarray(values, float)
    censored_at = np.asarray(censored_at, float)
    if not len(values):
        return math.nan
    if not len(censored_at):
        return float(np.median(values))
    sf = stats.ecdf(stats.CensoredData(uncensored=values, right=censored_at)).sf
    below = np.nonzero(sf.probabilities <= 0.5)[0]
    return float(sf.quantiles[below[0]]) if len(below) else math.nan
