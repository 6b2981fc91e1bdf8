"""Report of the memory-stability reproduction: heat maps, tables, trend checks, comparison."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import __version__
from ..probes.forgetting import ForgettingSettings, tol_name
from ..report.document import Document
from ..report.heatmap import heatmaps
from .muccino import VARIANTS
from .published import MUCCINO2019, read_muccino_reference

PUBLISHED_VARIANT = "keras-float32"


def published_frame(reference: str | Path | None = None) -> pd.DataFrame:
    """The published table as (cell, input_size, units, mean_steps); from ``reference`` (a CSV with
    those columns) when given, else the figures embedded in rnnmem.

    Parameters
    ----------
    reference : str or Path or None, default None
        A CSV replacing ``published.MUCCINO2019``.

    Returns
    -------
    pandas.DataFrame
        Columns ``cell``, ``input_size``, ``units``, ``mean_steps`` (mean steps until identical
        outputs, Muccino 2019).

    Raises
    ------
    InputError
        If ``reference`` is missing or malformed (``published.read_muccino_reference``).
    """
    if reference is not None:
        return read_muccino_reference(reference)
    rows = [(cell, i, u, v) for (cell, i), row in MUCCINO2019.items() for u, v in row.items()]
    return pd.DataFrame(rows, columns=["cell", "input_size", "units", "mean_steps"])


def _pivot(df: pd.DataFrame, value: str) -> pd.DataFrame:
    return df.pivot(index="input_size", columns="units", values=value).sort_index().sort_index(axis=1)


CENSORED_DEFINITION = (
    "**Censored** has one meaning in this report: a run is **censored at a tolerance** when its forgetting "
    "steps there cannot be measured, either because the run reached T with the outputs still further "
    "apart than the tolerance, or because it ended at the dtype's rounding floor and the tolerance lies "
    "below what the dtype resolves (10x the floor level). A censored run is never averaged. A grid cell "
    "with censored runs shows no mean: in heat maps it shows the Kaplan-Meier median marked `(med) k/n c.` "
    "(k of its n runs censored), or only `k/n cens.` (grey) when more than half its runs are censored. How a run ended is its "
    "status: `exact` (the two runs' states became bitwise equal), `floor` (the difference got stuck at "
    "the rounding floor), `reached T` (stored as status `censored`: still differing at T), `diverging` "
    f"(reached T without contracting, and the difference grew: by more than {ForgettingSettings().growth_min:g} "
    "nats beyond what rounding explains; a difference that stays constant is `reached T`), `converged` (reached T "
    "with every tolerance met), `overflow` (a state or the difference became inf or NaN; the run is censored at "
    "every tolerance from that step on)."
)
STATUS_LABELS = {"n_exact": "ended exact", "n_floor": "ended at floor", "n_censored": "reached T",
                 "n_diverging": "diverging", "n_converged": "converged", "n_overflow": "overflow (inf/NaN)"}


def _display(df: pd.DataFrame, tol: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Values and labels of a heat map at tolerance ``tol``: the mean where no run is censored,
    else the Kaplan-Meier median marked ``(med) k/n c.`` (or only ``k/n cens.``, grey, when more
    than half the runs are censored); short lines so 8 x 8 grids stay legible."""
    cens, runs = _pivot(df, f"censored_{tol}"), _pivot(df, "runs")
    mean, med = _pivot(df, f"mean_{tol}"), _pivot(df, f"median_{tol}")
    value = mean.where(cens == 0, med)
    notes = [[("" if c == 0 else f"(med)\n{int(c)}/{int(r)} c." if np.isfinite(m) else f"{int(c)}/{int(r)}\ncens.")
              for c, r, m in zip(crow, rrow, mrow)]
             for crow, rrow, mrow in zip(cens.values, runs.values, value.values)]
    return value, pd.DataFrame(notes, index=cens.index, columns=cens.columns)


def trend_checks(agg: pd.DataFrame, value: str, label: str, published: pd.DataFrame | None = None) -> list[dict]:
    """The study's stated trends, tested with Spearman correlations on grid means over the cells
    with units >= 2 (stated in the ``cells`` column): more units -> longer memory (both cells);
    larger input -> faster forgetting (LSTM); no input effect (GRU). Verdict rules:
    ``muccino_verdicts``.

    Parameters
    ----------
    agg : pandas.DataFrame
        Per grid cell: ``cell``, ``input_size``, ``units`` and ``value`` (cells where it is NaN are
        left out); with a ``mean_steps`` column (the published table) the published rho enters the
        verdict, without one only our rho's sign and p-value do.
    value : str
        The column tested, e.g. ``"mean_0.0001"`` (ours) or ``"published"`` (the published table).
    label : str
        The data's name, copied to the ``source`` column.
    published : pandas.DataFrame, optional
        The published table (``cell``, ``input_size``, ``units``, ``mean_steps``): merged on the grid
        cell so that the published rho over the same cells enters the verdict (a rho interval that
        excludes it is *not reproduced*). Without it (and without ``mean_steps`` in ``agg``) only
        our rho's sign and p-value decide.

    Returns
    -------
    list of dict
        One per (cell, trend) with a varying variable: ``source``, ``cell``, ``cells``, ``trend``,
        ``spearman``, ``published spearman``, ``interval``, ``p``, ``verdict``.
    """
    from .muccino_verdicts import trend_verdict

    out = []
    sub = agg[agg["units"] >= 2].dropna(subset=[value]).rename(columns={value: "mean"})
    if "mean_steps" not in sub.columns:
        if published is not None:
            keys = ["cell", "input_size", "units"]
            sub = sub.merge(published[keys + ["mean_steps"]], on=keys, how="left")
        else:
            sub = sub.assign(mean_steps=np.nan)
    for cell in sorted(sub["cell"].unique()):
        g = sub[sub["cell"] == cell]
        claims = [("more units -> longer memory", "units", +1)]
        claims.append(("larger input -> faster forgetting", "input_size", -1) if cell == "lstm"
                      else ("no input effect", "input_size", 0))
        for text, var, sign in claims:
            if g[var].nunique() > 1:
                v = trend_verdict(g, var, sign, text)
                out.append({"source": label, "cell": cell, "cells": f"units >= 2 ({len(g)} cells)", "trend": text,
                            "spearman": v["ours"], "published spearman": v["published"], "interval": v["interval"],
                            "p": v["p"], "verdict": v["verdict"]})
    return out


def compare_published(agg: pd.DataFrame, pub: pd.DataFrame, tol: str) -> pd.DataFrame:
    """Ours (the published variant) against the published table per cell type and cell set
    (units >= 2, units = 1, all): every column of a row over the same cells.

    Parameters
    ----------
    agg : pandas.DataFrame
        ``muccino.aggregate``'s output (rows of variant ``keras-float32`` are used).
    pub : pandas.DataFrame
        :func:`published_frame`'s output.
    tol : str
        The tolerance's column suffix (``tol_name``), e.g. ``"0.0001"``.

    Returns
    -------
    pandas.DataFrame
        ``muccino_verdicts.comparison_table``'s rows.
    """
    from .muccino_verdicts import comparison_table

    ours = agg[agg["variant"] == PUBLISHED_VARIANT][["cell", "input_size", "units", f"mean_{tol}"]]
    return comparison_table(ours.rename(columns={f"mean_{tol}": "mean"}), pub)


def verdicts(runs: pd.DataFrame, pub: pd.DataFrame, tol: str, variant: str = PUBLISHED_VARIANT,
             n_boot: int = 2000) -> pd.DataFrame:
    """The verdict table of ``variant`` at tolerance ``tol`` (see ``muccino_verdicts``).

    Parameters
    ----------
    runs : pandas.DataFrame
        One row per run (``muccino.runs_frame``).
    pub : pandas.DataFrame
        :func:`published_frame`'s output.
    tol : str
        The tolerance's column suffix, e.g. ``"0.0001"``.
    variant : str, default PUBLISHED_VARIANT ("keras-float32")
        The variant judged.
    n_boot : int, default 2000
        Bootstrap replicates of the ratio-of-sums intervals.

    Returns
    -------
    pandas.DataFrame
        ``muccino_verdicts.verdict_table``'s rows (claim, verdict, statistic, ours, published,
        interval, p, cells, also).
    """
    from .muccino_verdicts import cell_values, verdict_table

    sub = runs[runs["variant"] == variant]
    return verdict_table(cell_values(sub, f"steps_{tol}", f"censored_{tol}"), pub, n_boot=n_boot)


def write_report(runs: pd.DataFrame, agg: pd.DataFrame, out: str | Path, meta: dict, tolerance: float = 1e-4,
                 reference: str | Path | None = None) -> tuple[Path, Path]:
    """Write heat maps, CSVs and ``report.md`` / ``report.html`` into ``out``.

    Parameters
    ----------
    runs: one row per run (``muccino.runs_frame``); agg: per grid cell (``muccino.aggregate``).
    out: the report folder; meta: runs, T, P, tolerances, wall_s, workers, command, db.
    tolerance: of the main heat map and the verdicts; reference: the published table CSV.

    Returns
    -------
    The paths of ``report.md`` and ``report.html``.

    Raises
    ------
    InputError
        If ``reference`` is missing or malformed.
    """
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    agg.to_csv(out / "summary.csv", index=False)
    tols = meta["tolerances"]
    main = tol_name(tolerance)
    pub = published_frame(reference)
    grid = dict(ncols=2, panel_size=(5.0, 4.2), dpi=100, fontsize=7.5)  # readable at a ~1000 px page
    doc = Document("Memory stability of random LSTM/GRU networks: reproduction of Muccino (2019)")
    doc.text(
        "Two N(0,1) input streams differ for the first P steps and share the rest; the table counts the "
        "shared steps until the outputs agree within a tolerance and stay so (0 = bit-exact). "
        f"Runs: {meta['runs']} per grid cell; T = {meta['T']:,}, P = {meta['P']:,}; tolerances "
        f"{', '.join(tol_name(t) for t in tols)} (element-wise absolute, on the layer output). "
        f"rnnmem {__version__}; wall time {meta['wall_s']:.1f} s on {meta['workers']} worker process(es); "
        f"command: `{meta['command']}`."
    )
    doc.text(CENSORED_DEFINITION)
    variants = [v for v in VARIANTS if v in set(agg["variant"])]
    if PUBLISHED_VARIANT in set(agg["variant"]):
        doc.heading("Verdicts: what was reproduced")
        vt = verdicts(runs, pub, main)
        n_rep = int((vt["verdict"] == "reproduced").sum())
        doc.text(f"Default protocol ({PUBLISHED_VARIANT}, absolute tolerance {main} on the outputs, "
                 f"{meta['runs']} runs per cell): {n_rep} of {len(vt)} claims reproduced. The `cells` column "
                 "states the grid cells each row is computed over (the same cells for every column of the row). "
                 "Rules: magnitudes and the 1-unit column are reproduced when the 95% bootstrap interval "
                 "of the ratio of sums lies in [0.8, 1.25] and not reproduced when it lies outside; a trend "
                 "is reproduced when Spearman rho has the claimed sign with p < 0.05 and not reproduced when "
                 "its 95% interval excludes the published rho; 'no input effect' is not reproduced when "
                 "p < 0.05 and reproduced when the interval lies within (-0.4, 0.4); anything else is "
                 "inconclusive. `rnnmem reproduce muccino --explain` searches protocol variants for one "
                 "that explains the published table.")
        doc.table(vt, "Published claims against this reproduction (p: Spearman test; interval: 95%).")
    doc.heading("Main result and the published figures")
    base = agg[agg["variant"] == variants[0]] if variants else agg
    panels, notes = {}, {}
    for cell in ("lstm", "gru"):
        g = base[base["cell"] == cell]
        if len(g):
            title = f"rnnmem {cell.upper()} ({variants[0]}, tol {main})"
            panels[title], notes[title] = _display(g, main)
    for cell in ("lstm", "gru"):
        p = pub[pub["cell"] == cell]
        if len(p):
            panels[f"published {cell.upper()}"] = p.pivot(index="input_size", columns="units", values="mean_steps")
    f = heatmaps(panels, fig_dir / "heatmap_main.png", f"Mean steps to identical outputs (tolerance {main}) "
                 "beside the published table", "mean steps after the prefix", notes=notes, **grid)
    doc.figure(f, f"Mean forgetting steps, tolerance {main}, laid out like the study's figures (top: rnnmem, "
               "bottom: published).")
    if PUBLISHED_VARIANT in set(agg["variant"]):
        doc.table(compare_published(agg, pub, main), f"Ours ({PUBLISHED_VARIANT}, tolerance {main}) against the "
                  "published table, per cell set: every column of a row is computed over the same grid cells "
                  "(cells with a censored run are left out and counted). mean |log2 ratio| uses "
                  "log2((ours + 0.1) / (published + 0.1)).")
    doc.heading("The study's trend checks")
    checks = []
    for v in variants:
        checks += trend_checks(agg[agg["variant"] == v], f"mean_{main}", f"rnnmem {v}", published=pub)
    pub_agg = pub.rename(columns={"mean_steps": "published"})
    words = {"reproduced": "holds", "not reproduced": "absent", "inconclusive": "inconclusive"}
    checks += [{**c, "verdict": words[c["verdict"]]} for c in trend_checks(pub_agg, "published", "published")]
    doc.table(pd.DataFrame(checks), "Spearman correlation over the grid cells with units >= 2 (verdict rules as "
              "in the verdict table: our rows are also 'not reproduced' when their rho interval excludes the "
              "published rho over the same cells; the published rows are judged on their own rho only).")
    doc.heading("How the answer depends on the definition of 'identical'")
    rows = []
    for v in variants:
        for cell in ("lstm", "gru"):
            g = agg[(agg["variant"] == v) & (agg["cell"] == cell)]
            if not len(g):
                continue
            row = {"variant": v, "cell": cell}
            for t in tols:
                name = tol_name(t)
                row[f"median of cell means, tol {name}"] = float(g[f"mean_{name}"].median())
                row[f"cells with censored runs, tol {name}"] = int((g[f"censored_{name}"] > 0).sum())
                row[f"censored runs, tol {name}"] = int(g[f"censored_{name}"].sum())
            rows.append(row)
    doc.table(pd.DataFrame(rows), "Per tolerance: the median over grid cells of the cell means (over the cells "
              "without censored runs), how many cells have censored runs and how many runs are censored.")
    for v in variants:
        g = agg[agg["variant"] == v]
        panels, notes = {}, {}
        for t in tols:
            name = tol_name(t)
            for cell in ("lstm", "gru"):
                gc = g[g["cell"] == cell]
                if len(gc):
                    title = f"{cell.upper()} tol {name}"
                    panels[title], notes[title] = _display(gc, name)
        f = heatmaps(panels, fig_dir / f"heatmap_tolerances_{v}.png", f"Forgetting steps per tolerance ({v})",
                     "steps (log scale)", notes=notes, log=True, fmt="{:.0f}", **grid)
        doc.figure(f, f"Every tolerance (rows), LSTM (left) and GRU (right), {v}: the mean where no run is "
                   "censored, else the Kaplan-Meier median (`(med) k/n c.`: k of n runs censored; grey `k/n cens.`: "
                   "more than half censored, no median).")
    doc.heading("Precision and convention")
    doc.text("The same grid in float64 and with PyTorch's convention (sigmoid gates, GRU reset-after, "
             "uniform init) shows how much of the answer is the framework's arithmetic rather than the network.")
    status = agg.groupby(["variant", "cell"])[list(STATUS_LABELS)].sum().rename(columns=STATUS_LABELS)
    for t in tols:
        status[f"censored at tol {tol_name(t)}"] = agg.groupby(["variant", "cell"])[f"censored_{tol_name(t)}"].sum()
    doc.table(status.reset_index(), "How the runs ended (status) and how many are censored at each tolerance: a "
              "run that ended at the floor is censored at the tolerances below what the dtype resolves (usually "
              "only exact); a run that reached T is censored at every tolerance it still exceeded.")
    for v in variants[1:]:
        g = agg[agg["variant"] == v]
        panels, notes = {}, {}
        for cell in ("lstm", "gru"):
            gc = g[g["cell"] == cell]
            if len(gc):
                panels[f"{cell.upper()} tol {main}"], notes[f"{cell.upper()} tol {main}"] = _display(gc, main)
        f = heatmaps(panels, fig_dir / f"heatmap_main_{v}.png", f"Mean steps, tolerance {main} ({v})",
                     "mean steps after the prefix", notes=notes, **grid)
        doc.figure(f, f"Tolerance {main}, {v}.")
    doc.heading("Contraction rate")
    doc.text("Slope of the log L2 distance between the two runs' full states after the prefix (nats per step, "
             "fitted where the distance is above the rounding floor); the implied horizon ln(d0/eps)/rate "
             "predicts the forgetting steps.")
    panels = {}
    for v in variants:
        for cell in ("lstm", "gru"):
            gc = agg[(agg["variant"] == v) & (agg["cell"] == cell)]
            if len(gc):
                panels[f"{cell.upper()} {v}"] = _pivot(gc, "rate")
    f = heatmaps(panels, fig_dir / "heatmap_rate.png", "Mean contraction rate (nats/step)", "rate", fmt="{:.2f}",
                 **grid)
    doc.figure(f, "Contraction rate per grid cell (rows: variants; LSTM left, GRU right).")
    hcol = f"horizon_{main}"
    if hcol in runs.columns:
        ok = runs.dropna(subset=[hcol, f"steps_{main}"])
        ok = ok[(ok[f"steps_{main}"] > 0) & (ok[hcol] > 0)]
        if len(ok) > 2:
            rho = stats.spearmanr(ok[hcol], ok[f"steps_{main}"])[0]
            doc.text(f"Implied horizon against measured steps at tolerance {main}: Spearman {rho:.3f} over "
                     f"{len(ok)} runs.")
    doc.heading("Files")
    doc.bullets(["`runs.csv`: every run with its full configuration, status and metrics",
                 "`summary.csv`: the aggregated grid (`mean_<tol>` only where no run is censored; "
                 "`mean_uncensored_<tol>` over the measurable runs; `median_<tol>` Kaplan-Meier)",
                 "`figures/`: the heat maps as PNG",
                 f"`{meta.get('db', 'results.sqlite')}`: the results store (resumable)"])
    return doc.save(out)
