"""Report of the semantic memory study (``rnnmem.studies.zhang``): tables (CSV), figures (PNG),
config.json, the shared space (word2vec text) and one Markdown + one self-contained HTML report."""

from __future__ import annotations

import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..probes import semantic as S  # noqa: E402
from ..report.document import Document  # noqa: E402

LABELS = {"rnn": "vanilla RNN", "lstm": "LSTM", "gru": "GRU"}
INDICATORS = [
    ("hull_score", "(a) hull score = 1 - d / d_memoryless"),
    ("coverage", "(b) coverage = L_q / ceil(q n)"),
    ("recall_score", "(c) recall score (chance = 0)"),
    ("area_ratio", "(d) retained-area ratio (2-D PCA)"),
]


def _label(unit: str) -> str:
    return LABELS.get(unit, unit)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def fig_indicators(curves: pd.DataFrame, unit: str, thresholds: dict, path: Path) -> Path:
    g = curves[curves["unit"] == unit]
    fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
    for ax, (col, title) in zip(axes.flat, INDICATORS):
        for T, gt in g.groupby("train_length"):
            ax.plot(gt["n"], gt[col], marker="o", ms=3, label=f"trained on T = {T}")
        if col in thresholds:
            ax.axhline(thresholds[col], color="k", ls="--", lw=0.8, label=f"threshold {thresholds[col]:g}")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(col)
        ax.grid(alpha=0.3)
    for ax in axes[1]:
        ax.set_xlabel("prefix length n (words)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle(f"{_label(unit)}: semantic-space indicators vs prefix length")
    return _save(fig, path)


def fig_profiles(profiles: pd.DataFrame, units, path: Path) -> Path:
    n = int(profiles["n"].max())
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 3.6), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = profiles[(profiles["unit"] == unit) & (profiles["n"] == n)]
        for T, gt in g.groupby("train_length"):
            ax.plot(gt["lag"], gt["relative_weight"], lw=1.2, label=f"T = {T}")
        Tmax = g["train_length"].max()
        gb = g[g["train_length"] == Tmax]
        ax.plot(gb["lag"], n * gb["baseline_weight"], color="gray", ls=":", lw=1, label="memoryless state")
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_title(f"{_label(unit)} (n = {n})", fontsize=10)
        ax.set_xlabel("lag k (words back)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("n x mean barycentric weight (1 = running mean)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("(b) memory profile: weights of the closest hull point by lag")
    return _save(fig, path)


def fig_recall(recall: pd.DataFrame, units, path: Path) -> Path:
    n = int(recall["n"].max())
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 3.6), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = recall[(recall["unit"] == unit) & (recall["n"] == n)]
        for T, gt in g.groupby("train_length"):
            ax.plot(gt["lag"], gt["recall"], lw=1.2, label=f"T = {T}")
        ax.plot(g.groupby("lag")["chance"].mean(), color="gray", ls=":", label="chance (best constant guess)")
        ax.set_title(f"{_label(unit)} (n = {n})", fontsize=10)
        ax.set_xlabel("lag k (words back)")
        ax.set_xscale("symlog", linthresh=1)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("recall: word at lag k decoded (top-1)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("(c) recall at lag k")
    return _save(fig, path)


def fig_planted(planted: pd.DataFrame, units, path: Path) -> Path:
    Tmax = planted["train_length"].max()
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 3.6), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = planted[(planted["unit"] == unit) & (planted["train_length"] == Tmax)]
        for i, (_, r) in enumerate(g.iterrows()):
            ex = np.array(json.loads(r["excess"]))
            line, = ax.plot(np.arange(len(ex)), ex, lw=1.2, label=f"gap {r['gap_words']} (key at lag {r['planted_lag']})")
            ax.axvline(r["planted_lag"], color=line.get_color(), ls=":", lw=1)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"{_label(unit)} (T = {Tmax})", fontsize=10)
        ax.set_xlabel("lag k at the cue (words back)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("excess weight: cue - ordinary positions")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Planted-distance check: memory profile at the cue (dotted: the key's true lag)")
    return _save(fig, path)


def fig_training(training: pd.DataFrame, units, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 3.4), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = training[training["unit"] == unit]
        for T, gt in g.groupby("train_length"):
            ax.plot(gt["tokens"], gt["loss"], lw=1.2, label=f"T = {T}")
        ax.set_title(_label(unit), fontsize=10)
        ax.set_xlabel("training words (same budget for all)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("next-word cross-entropy (nats)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Training curves")
    return _save(fig, path)


def fig_pca(example: dict, space, units, path: Path) -> Path:
    mean, comp = S.pca_plane(space.vectors)
    P = (space.vectors - mean) @ comp.T
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 4.0), sharex=True, sharey=True, squeeze=False)
    from scipy.spatial import ConvexHull, QhullError

    def hull_line(ax, pts, **kw):
        pts = np.unique(pts, axis=0)
        if len(pts) < 3:
            return
        try:
            h = ConvexHull(pts)
        except QhullError:
            return
        v = np.append(h.vertices, h.vertices[0])
        ax.plot(pts[v, 0], pts[v, 1], **kw)

    for ax, unit in zip(axes[0], units):
        ax.scatter(P[:, 0], P[:, 1], s=2, color="0.85", label="vocabulary")
        if unit in example:
            ids, kept = example[unit]["ids"], example[unit]["retained"].astype(bool)
            pts = P[ids]
            ax.scatter(pts[:, 0], pts[:, 1], s=10, color="tab:blue", label="words of the prefix")
            ax.scatter(pts[kept, 0], pts[kept, 1], s=22, color="tab:red", label="still represented")
            hull_line(ax, pts, color="tab:blue", lw=1)
            hull_line(ax, pts[kept], color="tab:red", lw=1.5)
            full, part = S.hull_area(pts), S.hull_area(pts[kept])
            ax.set_title(f"{_label(unit)}: area ratio {part / full if full > 0 else float('nan'):.2f}", fontsize=10)
        ax.set_xlabel("PC 1")
    axes[0, 0].set_ylabel("PC 2")
    axes[0, 0].legend(fontsize=7, loc="best")
    fig.suptitle("(d) one evaluation prefix in the 2-D PCA view of the space")
    return _save(fig, path)


def _fmt_len(v, status) -> str:
    if status == "none":
        return "none (below thresholds at every training length)"
    if status == "censored":
        return f">= {int(v)} (censored: the longest training length still qualifies)"
    return str(int(v))


def write_report(res, out: Path, quick: bool = False, command: str = "") -> dict:
    """Write every output of a ``StudyResult`` to ``out``; returns the paths and headline tables."""
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    cfg = res.config
    units = list(dict.fromkeys(res.curves["unit"]))
    res.curves.to_csv(out / "curves.csv", index=False)
    res.profiles.to_csv(out / "profiles.csv", index=False)
    res.recall.to_csv(out / "recall.csv", index=False)
    res.recommended.to_csv(out / "recommended.csv", index=False)
    res.training.to_csv(out / "training.csv", index=False)
    res.runs.to_csv(out / "runs.csv", index=False)
    if res.planted is not None:
        res.planted.to_csv(out / "planted.csv", index=False)
    res.space.save(out / "space.txt")
    (out / "config.json").write_text(json.dumps({**cfg, "command": command, "wall_s": res.wall_s}, indent=2,
                                                default=str))
    th = cfg["thresholds"]
    figs = {u: fig_indicators(res.curves, u, th, fig_dir / f"indicators_{u}.png") for u in units}
    f_prof = fig_profiles(res.profiles, units, fig_dir / "profiles.png")
    f_rec = fig_recall(res.recall, units, fig_dir / "recall.png")
    f_train = fig_training(res.training, units, fig_dir / "training.png")
    f_pca = fig_pca(res.pca_example, res.space, units, fig_dir / "pca.png") if res.pca_example else None
    f_plant = fig_planted(res.planted, units, fig_dir / "planted.png") if res.planted is not None else None

    doc = Document("Semantic memory of recurrent units (after Zhang, Li, Hua & Song, ECAI 2020)")
    doc.text("rnnmem's **interpretation** of \"Assessing the Memory Ability of Recurrent Neural Networks\" "
             "(ECAI 2020). The paper's full text is not available to us; the definitions below are ours "
             "(docs/semantic.md).")
    doc.heading("What is the paper's and what is ours")
    doc.bullets([
        "Paper: the meaning of a word sequence lives in a Semantic Euclidean Space (each word a point, a text the "
        "convex hull of its words); indicators on that space measure how much of the sequence the hidden state "
        "holds; vanilla RNN, LSTM and GRU are compared over sequence lengths; the indicators guide the choice of "
        "the training length.",
        "Ours: the space (skip-gram vectors of the corpus, unit length, shared by all units); the readout (ridge "
        "from h_n to the running mean of the word vectors, one per prefix length, GCV penalty); (a) hull distance "
        "scored against a memoryless state; (b) barycentric weights of the closest hull point by lag and L_q; "
        "(c) top-1 recall of the word at lag k by a ridge decoder; (d) area of the hull of the recalled words in a "
        "2-D PCA plane over the area of the prefix's hull; (e) the recommendation rule and its thresholds; the "
        "word-level LM training (fixed embedding input, next-word prediction, same budget); the synthetic corpus "
        "and the planted-distance check.",
    ])
    doc.heading("Setup")
    c = cfg["corpus"]
    setup = pd.DataFrame([
        ("corpus", f"{res.data.source}: {c['words']:,} words, vocabulary {c['vocabulary']:,} (with <unknown>)"),
        ("parts (train / fit / eval)", " / ".join(f"{b - a:,}" for a, b in c["parts"].values())),
        ("space", f"{res.space.dim}-d, {len(res.space):,} words, unit length; "
                  f"{res.space.config.get('method', res.space.config.get('source', ''))}"),
        ("units", ", ".join(_label(u) for u in units) + f"; hidden {cfg['hidden']}, convention {cfg['convention']}, "
                  f"{cfg['model_dtype']}"),
        ("training lengths T", ", ".join(map(str, cfg["train_lengths"]))),
        ("budget per run", f"{cfg['budget_tokens']:,} target words, {cfg['tokens_per_batch']:,} words per update, "
                           f"Adam lr {cfg['lr']:g}, clip {cfg['clip']:g}"),
        ("prefix lengths n", ", ".join(map(str, cfg["grid"]))),
        ("windows", f"{cfg['windows_fit']} fit, {cfg['windows_eval']} eval (random starts, zero initial state)"),
        ("QP solver", f"FISTA + restart, eps {cfg['eps']:g}, FW-gap tol {cfg['solver']['tol']:g} x scale, "
                      f"{cfg['probe_dtype']}"),
        ("q, thresholds", f"q = {cfg['q']:g}; " + ", ".join(f"{k} >= {v:g}" for k, v in th.items())),
        ("device, seed", f"{cfg['device']}, seed {cfg['seed']}"),
    ], columns=["setting", "value"])
    doc.table(setup)
    doc.heading("Training (same budget for every unit and length)")
    runs = res.runs[["unit", "train_length", "steps", "batch", "tokens", "final_train_loss", "eval_loss",
                     "parameters", "train_s"]]
    doc.table(runs, caption="eval_loss: next-word cross-entropy (nats) on the eval part, windows of length T.")
    doc.figure(f_train, "Training loss vs training words.")
    doc.heading("Indicators per unit")
    doc.text("Each panel: one line per training length T, against the prefix length n (words read from a zero "
             "state). Means over the eval windows; dashed: the recommendation threshold. hull_score 1 = the mapped "
             "state lies on the hull of the words read, 0 = no closer than a state that holds nothing.")
    for u in units:
        doc.figure(figs[u], f"{_label(u)}: indicators (a)-(d).")
    cols = ["unit", "train_length", "n", "readout_r2", "hull_score", "memory_length", "coverage", "recall",
            "chance", "recall_score", "area_ratio"]
    Tmax = max(cfg["train_lengths"])
    doc.table(res.curves[res.curves["train_length"] == Tmax][cols],
              caption=f"Indicators of the units trained on the longest length T = {Tmax} (all rows: curves.csv).")
    doc.heading("(b) Memory profile")
    doc.text("Mean barycentric weight of the closest hull point at each lag, times n (1 everywhere for the running "
             "mean). Dotted: the same for the readout's intercept, i.e. a state that holds nothing. The running-mean "
             "readout fills what a state has forgotten with its expected value, which sits inside the hull and gets "
             "nearly uniform weights; a forgetful unit therefore shows a modest excess at short lags, not a cliff, "
             "and L_q stays close to q n (see the coverage panels).")
    doc.figure(f_prof, "Memory profiles at the longest prefix.")
    doc.heading("(c) Recall at lag k")
    doc.figure(f_rec, "Top-1 recall of the word k steps back, at the longest prefix.")
    if f_pca is not None:
        doc.heading("(d) Retained area")
        doc.figure(f_pca, "One eval prefix: all its words (blue hull) and the words still represented (red hull).")
    doc.heading("(e) Recommended training length")
    rec = res.recommended.copy()
    rec["recommended"] = [_fmt_len(v, s) for v, s in zip(rec["recommended_length"], rec["status"])]
    rec["unit"] = rec["unit"].map(_label)
    doc.table(rec[["unit", "recommended", "usable", "limited_by"]],
              caption="Thresholds: " + ", ".join(f"{k} >= {v:g}" for k, v in th.items()) + ". Recommended: the "
                      "largest training length T whose unit keeps every thresholded indicator at or above its "
                      "threshold at every prefix length up to T. usable: per T, the longest prefix length up to "
                      "which they all pass ('-': fails at the shortest). limited_by: the indicator failing first "
                      "for the next longer T (or, for 'none', for the shortest).")
    strict_th = res.recommended_strict.attrs.get("thresholds", {})
    st = res.recommended_strict.copy()
    st["recommended"] = [_fmt_len(v, s_) for v, s_ in zip(st["recommended_length"], st["status"])]
    st["unit"] = st["unit"].map(_label)
    res.recommended_strict.to_csv(out / "recommended_strict.csv", index=False)
    doc.text("The same rule with the word-level indicators (c) and (d) thresholded as well ("
             + ", ".join(f"{k} >= {v:g}" for k, v in strict_th.items()) + "): a unit must also still decode, "
             "word for word, half of the prefix.")
    doc.table(st[["unit", "recommended", "usable", "limited_by"]], caption="Strict criterion (recommended_strict.csv).")
    verdict = None
    if res.planted is not None:
        doc.heading("Planted-distance check (synthetic corpus)")
        doc.text(f"Each episode plants a key that must be recalled D + 2 words later, after the cue word; at the cue "
                 f"the key lies at lag D + 1. Prefixes of {cfg['planted_prefix']} words ending at every cue of the eval "
                 "part and at ordinary positions are placed in the space by the readout; the excess of the mean "
                 "barycentric weights (cue minus ordinary) should peak at the key's lag. Recovered = the peak over "
                 "lags >= 1 is at D + 1 and is at least 3 standard errors. response_accuracy: the LM's top-1 "
                 "accuracy on the recalled word (chance 1 / number of keys) - whether the unit learned the dependency.")
        pl = res.planted.drop(columns=["excess"]).copy()
        pl["unit"] = pl["unit"].map(_label)
        doc.table(pl[["unit", "train_length", "gap_words", "planted_distance", "recovered_distance", "z",
                      "response_accuracy", "recovered"]])
        doc.figure(f_plant, "Excess memory profile at the cue, units trained on the longest length.")
        best = res.planted[res.planted["train_length"] == Tmax]
        learned = best[best["response_accuracy"] >= 0.9]
        ok = int(learned["recovered"].sum())
        verdict = {"recovered": int(best["recovered"].sum()), "cases": len(best),
                   "learned_cases": len(learned), "recovered_when_learned": ok}
        doc.text(f"**Check at T = {Tmax}: recovered in {verdict['recovered']} of {verdict['cases']} (unit, distance) "
                 f"cases; among the cases where the unit learned the dependency (response accuracy >= 0.9), "
                 f"{ok} of {len(learned)}.**")
    doc.heading("Reproduce")
    doc.text(f"`{command or 'rnnmem reproduce zhang ' + ('--quick' if quick else '--corpus PATH')}`. Tables: curves.csv, "
             "profiles.csv, recall.csv, recommended.csv, planted.csv, runs.csv, training.csv; the space: space.txt "
             f"(word2vec text); every setting: config.json. Wall time {res.wall_s:.0f} s.")
    md, html = doc.save(out)
    return {"markdown": md, "html": html, "out": out, "recommended": res.recommended, "planted": res.planted,
            "verdict": verdict, "wall_s": res.wall_s, "runs": len(res.runs)}
