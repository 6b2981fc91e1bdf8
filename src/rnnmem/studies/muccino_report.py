"""Report of the memory-stability reproduction: heat maps, tables, trend checks, comparison."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from .. import __version__
from ..probes.forgetting import tol_name
from ..report.document import Document
from ..report.heatmap import heatmaps
from .muccino import VARIANTS
from .published import MUCCINO2019

PUBLISHED_VARIANT = "keras-float32"


def published_frame(reference: str | Path | None = None) -> pd.DataFrame:
    """The published table as (cell, input_size, units, mean_steps); from ``reference`` (a CSV with
    those columns) when given, else the figures embedded in rnnmem."""
    if reference is not None:
        from ..errors import InputError

        path = Path(reference)
        if not path.is_file():
            raise InputError(f"reference table {path} not found")
        df = pd.read_csv(path)
        missing = {"cell", "input_size", "units", "mean_steps"} - set(df.columns)
        if missing:
            raise InputError(f"reference table {path} lacks columns {sorted(missing)}")
        return df[["cell", "input_size", "units", "mean_steps"]]
    rows = [(cell, i, u, v) for (cell, i), row in MUCCINO2019.items() for u, v in row.items()]
    return pd.DataFrame(rows, columns=["cell", "input_size", "units", "mean_steps"])


def _pivot(df: pd.DataFrame, value: str) -> pd.DataFrame:
    return df.pivot(index="input_size", columns="units", values=value).sort_index().sort_index(axis=1)


def _notes(df: pd.DataFrame, tol: str) -> pd.DataFrame:
    """``c=k/n`` where k of a grid cell's n runs are censored at tolerance ``tol``."""
    cens, runs = _pivot(df, f"censored_{tol}"), _pivot(df, "runs")
    cells = [[f"c={int(c)}/{int(r)}" if c > 0 else "" for c, r in zip(crow, rrow)]
             for crow, rrow in zip(cens.values, runs.values)]
    return pd.DataFrame(cells, index=cens.index, columns=cens.columns)


def trend_checks(agg: pd.DataFrame, value: str, label: str) -> list[dict]:
    """The study's stated trends, tested with Spearman correlations on grid means (units >= 2):
    more units -> longer memory (both cells); larger input -> faster forgetting (LSTM)."""
    out = []
    sub = agg[agg["units"] >= 2].dropna(subset=[value])
    for cell in sorted(sub["cell"].unique()):
        g = sub[sub["cell"] == cell]
        if g["units"].nunique() > 1:
            rho, p = stats.spearmanr(g["units"], g[value])
            out.append({"source": label, "cell": cell, "trend": "more units -> longer memory",
                        "spearman": rho, "p": p, "holds": bool(rho > 0 and p < 0.05)})
        if cell == "lstm" and g["input_size"].nunique() > 1:
            rho, p = stats.spearmanr(g["input_size"], g[value])
            out.append({"source": label, "cell": cell, "trend": "larger input -> faster forgetting",
                        "spearman": rho, "p": p, "holds": bool(rho < 0 and p < 0.05)})
    return out


def compare_published(agg: pd.DataFrame, pub: pd.DataFrame, tol: str) -> pd.DataFrame:
    rows = []
    ours = agg[agg["variant"] == PUBLISHED_VARIANT]
    merged = ours.merge(pub, on=["cell", "input_size", "units"], how="inner")
    for cell, g in merged.groupby("cell"):
        g = g.dropna(subset=[f"mean_{tol}"])
        g2 = g[g["units"] >= 2]
        pos = g2[(g2["mean_steps"] > 0) & (g2[f"mean_{tol}"] > 0)]
        rho = stats.spearmanr(g2[f"mean_{tol}"], g2["mean_steps"])[0] if len(g2) > 2 else math.nan
        ratio = (pos[f"mean_{tol}"] / pos["mean_steps"]) if len(pos) else pd.Series(dtype=float)
        rows.append({
            "cell": cell, "grid cells": len(g), "spearman (units >= 2)": rho,
            "median ours/published": float(ratio.median()) if len(ratio) else math.nan,
            "mean |log2 ratio|": float(np.abs(np.log2(ratio)).mean()) if len(ratio) else math.nan,
            "ours mean": float(g[f"mean_{tol}"].mean()), "published mean": float(g["mean_steps"].mean()),
        })
    return pd.DataFrame(rows)


def write_report(runs: pd.DataFrame, agg: pd.DataFrame, out: str | Path, meta: dict, tolerance: float = 1e-4,
                 reference: str | Path | None = None) -> tuple[Path, Path]:
    """Write heat maps, CSVs and ``report.md`` / ``report.html`` into ``out``."""
    out = Path(out)
    fig_dir = out / "figures"
    fig_dir.mkdir(parents=True, exist_ok=True)
    runs.to_csv(out / "runs.csv", index=False)
    agg.to_csv(out / "summary.csv", index=False)
    tols = meta["tolerances"]
    main = tol_name(tolerance)
    pub = published_frame(reference)
    doc = Document("Memory stability of random LSTM/GRU networks: reproduction of Muccino (2019)")
    doc.text(
        "Two N(0,1) input streams differ for the first P steps and share the rest; the table counts the "
        "shared steps until the outputs agree within a tolerance and stay so (0 = bit-exact). "
        f"Runs: {meta['runs']} per grid cell; T = {meta['T']:,}, P = {meta['P']:,}; tolerances "
        f"{', '.join(tol_name(t) for t in tols)} (element-wise absolute, on the layer output). "
        "Means are over runs that were not censored; `c=k/n` marks k of n runs censored (the difference "
        "was still above the tolerance at T, or the dtype's rounding floor lies above it). "
        f"rnnmem {__version__}; wall time {meta['wall_s']:.1f} s on {meta['workers']} worker process(es); "
        f"command: `{meta['command']}`."
    )
    doc.heading("Main result and the published figures")
    variants = [v for v in VARIANTS if v in set(agg["variant"])]
    base = agg[agg["variant"] == variants[0]] if variants else agg
    panels, notes = {}, {}
    for cell in ("lstm", "gru"):
        g = base[base["cell"] == cell]
        if len(g):
            panels[f"rnnmem {cell.upper()} ({variants[0]}, tol {main})"] = _pivot(g, f"mean_{main}")
            notes[f"rnnmem {cell.upper()} ({variants[0]}, tol {main})"] = _notes(g, main)
    for cell in ("lstm", "gru"):
        p = pub[pub["cell"] == cell]
        if len(p):
            panels[f"published {cell.upper()}"] = p.pivot(index="input_size", columns="units", values="mean_steps")
    f = heatmaps(panels, fig_dir / "heatmap_main.png", f"Mean steps to identical outputs (tolerance {main}) "
                 "beside the published table", "mean steps after the prefix", notes=notes)
    doc.figure(f, f"Mean forgetting steps, tolerance {main}, laid out like the study's figures.")
    if PUBLISHED_VARIANT in set(agg["variant"]):
        doc.table(compare_published(agg, pub, main), f"Ours ({PUBLISHED_VARIANT}, tolerance {main}) against the "
                  "published table on the grid cells both have.")
    doc.heading("The study's trend checks")
    checks = []
    for v in variants:
        checks += trend_checks(agg[agg["variant"] == v], f"mean_{main}", f"rnnmem {v}")
    pub_agg = pub.rename(columns={"mean_steps": "published"})
    checks += trend_checks(pub_agg, "published", "published")
    doc.table(pd.DataFrame(checks), "Spearman correlation over the grid (units >= 2); a trend holds when the "
              "correlation has the stated sign with p < 0.05.")
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
                row[f"median of means, tol {name}"] = float(g[f"mean_{name}"].median())
                row[f"censored runs, tol {name}"] = int(g[f"censored_{name}"].sum())
            rows.append(row)
    doc.table(pd.DataFrame(rows), "Per tolerance: the median over grid cells of the mean steps, and how many runs "
              "were censored.")
    for v in variants:
        g = agg[agg["variant"] == v]
        panels, notes = {}, {}
        for t in tols:
            name = tol_name(t)
            for cell in ("lstm", "gru"):
                gc = g[g["cell"] == cell]
                if len(gc):
                    title = f"{cell.upper()} tol {name}"
                    panels[title], notes[title] = _pivot(gc, f"mean_{name}"), _notes(gc, name)
        f = heatmaps(panels, fig_dir / f"heatmap_tolerances_{v}.png", f"Mean forgetting steps per tolerance ({v})",
                     "mean steps (log scale)", notes=notes, log=True, fmt="{:.0f}")
        doc.figure(f, f"Every tolerance, {v}.")
    doc.heading("Precision and convention")
    doc.text("The same grid in float64 and with PyTorch's convention (sigmoid gates, GRU reset-after, "
             "uniform init) shows how much of the answer is the framework's arithmetic rather than the network.")
    status = agg.groupby(["variant", "cell"])[["n_exact", "n_floor", "n_censored", "n_diverging", "n_converged"]].sum()
    doc.table(status.reset_index(), "Run status counts: exact (states bitwise equal), floor (difference stuck at "
              "the dtype's rounding level), censored / diverging (still above tolerance at T).")
    for v in variants[1:]:
        g = agg[agg["variant"] == v]
        panels, notes = {}, {}
        for cell in ("lstm", "gru"):
            gc = g[g["cell"] == cell]
            if len(gc):
                panels[f"{cell.upper()} tol {main}"], notes[f"{cell.upper()} tol {main}"] = (
                    _pivot(gc, f"mean_{main}"), _notes(gc, main))
        f = heatmaps(panels, fig_dir / f"heatmap_main_{v}.png", f"Mean steps, tolerance {main} ({v})",
                     "mean steps after the prefix", notes=notes)
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
    f = heatmaps(panels, fig_dir / "heatmap_rate.png", "Mean contraction rate (nats/step)", "rate", fmt="{:.2f}")
    doc.figure(f, "Contraction rate per grid cell.")
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
                 "`summary.csv`: the aggregated grid", "`figures/`: the heat maps as PNG",
                 f"`{meta.get('db', 'results.sqlite')}`: the results store (resumable)"])
    return doc.save(out)
