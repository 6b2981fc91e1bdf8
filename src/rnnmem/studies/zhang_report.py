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
    ("recall_score", "(c) recall score (chance = 0)"),
]


def _label(unit: str) -> str:
    return LABELS.get(unit, unit)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def _ci(v, lo, hi, digits: int = 3) -> str:
    """``mean [low, high]`` (just the mean when there is no interval)."""
    if pd.isna(v):
        return "n/a"
    if pd.isna(lo) or pd.isna(hi):
        return f"{v:.{digits}f}"
    return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"


def fig_indicators(intervals: pd.DataFrame, unit: str, thresholds: dict, path: Path, level: float = 0.95) -> Path:
    """The ranked indicators of one unit against the prefix length, one line per training length:
    the mean over seeds with its t interval shaded.

    Parameters
    ----------
    intervals : pandas.DataFrame
        ``zhang_stats.indicator_intervals``' output (``unit``, ``train_length``, ``n``, ``seeds`` and,
        per ranked indicator ``x``, ``x``, ``x_low``, ``x_high``).
    unit : str
        The unit drawn.
    thresholds : dict
        ``{indicator: threshold}``; a threshold of a drawn indicator is a dashed line.
    path : Path
        The PNG to write (130 dpi).
    level : float, default 0.95
        The coverage the intervals in ``intervals`` were computed at (the study's ``level``), named
        in the title.

    Returns
    -------
    Path
        ``path``.
    """
    g = intervals[intervals["unit"] == unit]
    fig, axes = plt.subplots(1, len(INDICATORS), figsize=(10, 3.8), sharex=True, squeeze=False)
    for ax, (col, title) in zip(axes[0], INDICATORS):
        for T, gt in g.groupby("train_length"):
            line, = ax.plot(gt["n"], gt[col], marker="o", ms=3, label=f"trained on T = {T}")
            if gt[f"{col}_low"].notna().any():
                ax.fill_between(gt["n"], gt[f"{col}_low"], gt[f"{col}_high"], color=line.get_color(), alpha=0.15)
        if col in thresholds:
            ax.axhline(thresholds[col], color="k", ls="--", lw=0.8, label=f"threshold {thresholds[col]:g}")
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(col)
        ax.set_xlabel("prefix length n (words)")
        ax.grid(alpha=0.3)
    axes[0, 0].legend(fontsize=8)
    seeds = int(g["seeds"].max()) if len(g) else 0
    fig.suptitle(f"{_label(unit)}: indicators vs prefix length (mean of {seeds} seeds, shaded: {100 * level:g}% t interval)")
    return _save(fig, path)


def fig_profiles(profiles: pd.DataFrame, units, path: Path) -> Path:
    """Indicator (b): the memory profile at the longest prefix, one panel per unit.

    Plots ``n x`` the mean barycentric weight of the closest hull point by lag (1 = the running
    mean's even weights), one line per training length, with the memoryless state's profile
    (dotted, longest training length).

    Parameters
    ----------
    profiles : pandas.DataFrame
        The per-seed profiles (``unit``, ``train_length``, ``n``, ``lag``, ``relative_weight``,
        ``baseline_weight``); the rows at the largest ``n`` are drawn, averaged over seeds.
    units : list of str
        The units, one panel each.
    path : Path
        The PNG to write (130 dpi).

    Returns
    -------
    Path
        ``path``.
    """
    n = int(profiles["n"].max())
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 3.6), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = profiles[(profiles["unit"] == unit) & (profiles["n"] == n)]
        for T, gt in g.groupby("train_length"):
            m = gt.groupby("lag")["relative_weight"].mean()
            ax.plot(m.index, m.to_numpy(), lw=1.2, label=f"T = {T}")
        Tmax = g["train_length"].max()
        gb = g[g["train_length"] == Tmax].groupby("lag")["baseline_weight"].mean()
        ax.plot(gb.index, n * gb.to_numpy(), color="gray", ls=":", lw=1, label="memoryless state")
        ax.axhline(1.0, color="k", lw=0.6)
        ax.set_title(f"{_label(unit)} (n = {n})", fontsize=10)
        ax.set_xlabel("lag k (words back)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("n x mean barycentric weight (1 = running mean)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("(b) memory profile: weights of the closest hull point by lag (mean over seeds)")
    return _save(fig, path)


def fig_recall(recall: pd.DataFrame, units, path: Path) -> Path:
    """Indicator (c): recall at lag k at the longest prefix, one panel per unit, one line per
    training length, with the chance recall (best constant guess, dotted); symlog lag axis.

    Parameters
    ----------
    recall : pandas.DataFrame
        The per-seed recall frames (``unit``, ``train_length``, ``n``, ``lag``, ``recall``,
        ``chance``); the rows at the largest ``n`` are drawn, averaged over seeds.
    units : list of str
        The units, one panel each.
    path : Path
        The PNG to write (130 dpi).

    Returns
    -------
    Path
        ``path``.
    """
    n = int(recall["n"].max())
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 3.6), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = recall[(recall["unit"] == unit) & (recall["n"] == n)]
        for T, gt in g.groupby("train_length"):
            m = gt.groupby("lag")["recall"].mean()
            ax.plot(m.index, m.to_numpy(), lw=1.2, label=f"T = {T}")
        ax.plot(g.groupby("lag")["chance"].mean(), color="gray", ls=":", label="chance (best constant guess)")
        ax.set_title(f"{_label(unit)} (n = {n})", fontsize=10)
        ax.set_xlabel("lag k (words back)")
        ax.set_xscale("symlog", linthresh=1)
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("recall: word at lag k decoded (top-1)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("(c) recall at lag k (mean over seeds)")
    return _save(fig, path)


def fig_planted(planted: pd.DataFrame, units, path: Path) -> Path:
    """The planted-distance check at the longest training length: per unit, the excess profile at
    the cue (cue minus ordinary positions) by lag for each gap, averaged over seeds, with the key's
    lag dotted.

    Parameters
    ----------
    planted : pandas.DataFrame
        The per-seed planted checks (``zhang.planted_check`` rows with ``unit``, ``train_length``,
        ``gap_words``, ``planted_lag``, ``excess``).
    units : list of str
        The units, one panel each.
    path : Path
        The PNG to write (130 dpi).

    Returns
    -------
    Path
        ``path``.
    """
    Tmax = planted["train_length"].max()
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 3.6), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = planted[(planted["unit"] == unit) & (planted["train_length"] == Tmax)]
        for D, gd in g.groupby("gap_words"):
            ex = np.mean([json.loads(e) for e in gd["excess"]], axis=0)
            lag = int(gd["planted_lag"].iloc[0])
            line, = ax.plot(np.arange(len(ex)), ex, lw=1.2, label=f"gap {D} (key at lag {lag})")
            ax.axvline(lag, color=line.get_color(), ls=":", lw=1)
        ax.axhline(0, color="k", lw=0.6)
        ax.set_title(f"{_label(unit)} (T = {Tmax})", fontsize=10)
        ax.set_xlabel("lag k at the cue (words back)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("excess weight: cue - ordinary positions")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Planted-distance check: memory profile at the cue, mean over seeds (dotted: the key's lag)")
    return _save(fig, path)


def fig_training(training: pd.DataFrame, units, path: Path) -> Path:
    """Training curves: next-word cross-entropy (nats) against training words, one panel per unit,
    one line per training length, averaged over seeds.

    Parameters
    ----------
    training : pandas.DataFrame
        The per-seed training logs (``unit``, ``train_length``, ``tokens``, ``loss``).
    units : list of str
        The units, one panel each.
    path : Path
        The PNG to write (130 dpi).

    Returns
    -------
    Path
        ``path``.
    """
    fig, axes = plt.subplots(1, len(units), figsize=(4.2 * len(units), 3.4), sharey=True, squeeze=False)
    for ax, unit in zip(axes[0], units):
        g = training[training["unit"] == unit]
        for T, gt in g.groupby("train_length"):
            m = gt.groupby("tokens")["loss"].mean()
            ax.plot(m.index, m.to_numpy(), lw=1.2, label=f"T = {T}")
        ax.set_title(_label(unit), fontsize=10)
        ax.set_xlabel("training words (same budget for all)")
        ax.grid(alpha=0.3)
    axes[0, 0].set_ylabel("next-word cross-entropy (nats)")
    axes[0, 0].legend(fontsize=8)
    fig.suptitle("Training curves (mean over seeds)")
    return _save(fig, path)


def fig_pca(example: dict, space, units, path: Path) -> Path:
    """Indicator (d) illustrated: one evaluation prefix per unit in the 2-D PCA view of the space,
    its words and their hull (blue), the words still represented and their hull (red), and the area
    ratio in the title.

    Parameters
    ----------
    example : dict
        ``{unit: {"ids": [n] word ids, "retained": [n] booleans}}`` (``StudyResult.pca_example``).
    space : Embedding
        The space (its ``vectors[V, d]`` define the PCA plane; the vocabulary is drawn grey).
    units : list of str
        The units, one panel each (a unit missing from ``example`` shows the vocabulary only).
    path : Path
        The PNG to write (130 dpi).

    Returns
    -------
    Path
        ``path``.
    """
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
    if status == "no interval":
        return "n/a"
    return str(int(v))


def _short_len(v, status) -> str:
    if status in ("none", "no interval") or pd.isna(v):
        return "none" if status == "none" else "n/a"
    return f"{int(v)}+" if status == "censored" else str(int(v))


def _rec_table(rec: pd.DataFrame) -> pd.DataFrame:
    out = pd.DataFrame({"unit": rec["unit"].map(_label),
                        "recommended (seed means)": [_fmt_len(v, s) for v, s in
                                                     zip(rec["recommended_length"], rec["status"])],
                        "interval [low, high]": [f"[{_short_len(a, sa)}, {_short_len(b, sb)}]" for a, sa, b, sb in
                                                 zip(rec["low"], rec["low_status"], rec["high"], rec["high_status"])],
                        "settled by the seeds": ["yes" if s else "no" for s in rec["settled"]],
                        "per seed": rec["per_seed"], "usable (means)": rec["usable"],
                        "limited_by": rec["limited_by"]})
    return out


def _rec_sentence(rec: pd.DataFrame) -> str:
    parts = []
    for _, r in rec.iterrows():
        point = _short_len(r["recommended_length"], r["status"])
        if r["low_status"] == "no interval":
            parts.append(f"{_label(r['unit'])} {point} (one seed: no interval)")
        elif r["settled"]:
            parts.append(f"{_label(r['unit'])} {point} (settled: every bound of the interval gives the same)")
        else:
            parts.append(f"{_label(r['unit'])} {point}, interval [{_short_len(r['low'], r['low_status'])}, "
                         f"{_short_len(r['high'], r['high_status'])}] (not settled by the seeds)")
    return "; ".join(parts)


def _planted_verdict(planted: pd.DataFrame, Tmax: int) -> dict:
    best = planted[planted["train_length"] == Tmax]
    learned = best[best["learned"]]
    return {"recovered": int(best["recovered"].sum()), "cases": len(best), "learned_cases": len(learned),
            "recovered_when_learned": int(learned["recovered"].sum()),
            "peak_without_learning": int((best["peak_at_key"] & ~best["learned"]).sum())}


def write_report(res, out: Path, quick: bool = False, command: str = "") -> dict:
    """Write every output of a ``StudyResult`` to ``out``; returns the paths and headline tables.

    Files: ``report.md``/``report.html``, ``figures/*.png``, ``curves.csv``, ``intervals.csv``,
    ``profiles.csv``, ``recall.csv``, ``recommended.csv``, ``recommended_strict.csv``,
    ``training.csv``, ``runs.csv``, ``comparisons.csv``, ``dropped_indicators.csv`` and
    ``planted.csv`` (when measured), ``space.txt`` (word2vec text, first seed) and ``config.json``.

    Parameters
    ----------
    res : StudyResult
        The result of ``zhang.run_study``.
    out : Path
        The output folder (created).
    quick : bool, default False
        Whether the quick preset ran (said in the report).
    command : str, default ""
        The command line, recorded in the report and config.json.

    Returns
    -------
    dict
        ``markdown``, ``html``, ``out`` (paths), ``recommended``, ``planted`` (tables), ``verdict``
        (the planted check's summary, None without it), ``wall_s``, ``runs`` (number of trained models) and
        ``rankings``.
    """
    from .zhang import DROPPED_INDICATORS, RANKED_LABELS

    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    cfg = res.config
    units = list(dict.fromkeys(res.curves["unit"]))
    seeds = cfg["seed_list"]
    S_ = len(seeds)
    level = cfg["level"]
    pct = f"{100 * level:g}%"
    res.curves.to_csv(out / "curves.csv", index=False)
    res.intervals.to_csv(out / "intervals.csv", index=False)
    res.profiles.to_csv(out / "profiles.csv", index=False)
    res.recall.to_csv(out / "recall.csv", index=False)
    res.recommended.to_csv(out / "recommended.csv", index=False)
    res.recommended_strict.to_csv(out / "recommended_strict.csv", index=False)
    res.training.to_csv(out / "training.csv", index=False)
    res.runs.to_csv(out / "runs.csv", index=False)
    comp_all = pd.concat([c.assign(indicator=k) for k, c in res.comparisons.items()], ignore_index=True)
    comp_all.to_csv(out / "comparisons.csv", index=False)
    if res.dropped is not None:
        res.dropped.to_csv(out / "dropped_indicators.csv", index=False)
    if res.planted is not None:
        res.planted.to_csv(out / "planted.csv", index=False)
    res.space.save(out / "space.txt")
    (out / "config.json").write_text(json.dumps({**cfg, "command": command, "wall_s": res.wall_s}, indent=2,
                                                default=str))
    th = cfg["thresholds"]
    Tmax = max(cfg["train_lengths"])
    figs = {u: fig_indicators(res.intervals, u, th, fig_dir / f"indicators_{u}.png", level) for u in units}
    f_prof = fig_profiles(res.profiles, units, fig_dir / "profiles.png")
    f_rec = fig_recall(res.recall, units, fig_dir / "recall.png")
    f_train = fig_training(res.training, units, fig_dir / "training.png")
    f_pca = fig_pca(res.pca_example, res.space, units, fig_dir / "pca.png") if res.pca_example else None
    f_plant = fig_planted(res.planted, units, fig_dir / "planted.png") if res.planted is not None else None
    verdict = _planted_verdict(res.planted, Tmax) if res.planted is not None else None
    summary_of = (f"mean over the prefix lengths n <= {Tmax} of the units trained on T = {Tmax}, one value per "
                  f"seed; {S_} seeds ({', '.join(map(str, seeds))}), paired by seed, {pct} t intervals, each "
                  "comparison at that level on its own (not corrected for the number of pairs)")

    doc = Document("Semantic memory of recurrent units (after Zhang, Li, Hua & Song, ECAI 2020)")
    doc.text("rnnmem's **interpretation** of \"Assessing the Memory Ability of Recurrent Neural Networks\" "
             "(ECAI 2020). The paper's full text is not available to us; the definitions below are ours "
             "(docs/semantic.md). No number of the paper is reproduced or compared.")
    doc.heading("At a glance")
    glance = []
    for ind, r in res.rankings.items():
        state = "conclusive" if r["conclusive"] else ("inconclusive (one seed: no interval)" if S_ < 2 else
                                                      "inconclusive for at least one pair")
        glance.append(f"Ranking on {RANKED_LABELS[ind]}: **{r['order']}** ({state}; '>' = paired {pct} "
                      "interval excludes 0, '~' = it does not).")
    glance.append(f"Recommended training length (threshold rule on the seed means, interval from the {pct} "
                  f"bounds): {_rec_sentence(res.recommended)}.")
    if verdict is not None:
        glance.append(f"Planted-distance check at T = {Tmax}: passed in {verdict['recovered']} of {verdict['cases']} "
                      f"(unit, gap, seed) cases; a pass needs the unit to answer the key above chance (binomial "
                      f"p < {cfg['planted_alpha']:g}) and the profile to peak at the key's lag. "
                      f"Profile peaks at the key without the unit having learned the dependency (they do not "
                      f"count): {verdict['peak_without_learning']}.")
    glance.append("Dropped from the ranking and the default recommendation: " + ", ".join(DROPPED_INDICATORS)
                  + " (near-constant, they never decided a recommendation: evidence under 'Dropped indicators').")
    doc.bullets(glance)
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
        "2-D PCA plane (dropped from the ranking); (e) the recommendation rule and its thresholds; the "
        "word-level LM training (fixed embedding input, next-word prediction, same budget); the seeds and "
        "intervals; the synthetic corpus and the planted-distance check.",
    ])
    doc.heading("Setup")
    c = cfg["corpus"]
    setup = pd.DataFrame([
        ("corpus", f"{res.data.source}: {c['words']:,} words, vocabulary {c['vocabulary']:,} (with <unknown>)"
                   + ("; a new synthetic corpus per seed (the sizes here: the first seed's)" if res.data.source ==
                      "synthetic" else "")),
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
        ("seeds", f"{S_}: {', '.join(map(str, seeds))} (each re-draws corpus (synthetic), space, initial weights, "
                  f"data order and windows); intervals: {pct} Student t over seeds"),
        ("QP solver", f"FISTA + restart, eps {cfg['eps']:g}, FW-gap tol {cfg['solver']['tol']:g} x scale, "
                      f"{cfg['probe_dtype']}"),
        ("q, thresholds", f"q = {cfg['q']:g}; " + ", ".join(f"{k} >= {v:g}" for k, v in th.items())),
        ("device", f"{cfg['device']}"),
    ], columns=["setting", "value"])
    doc.table(setup)
    doc.heading("Training (same budget for every unit and length)")
    agg = res.runs.groupby(["unit", "train_length"], sort=False).agg(
        steps=("steps", "first"), batch=("batch", "first"), tokens=("tokens", "first"),
        final_train_loss=("final_train_loss", "mean"), parameters=("parameters", "first"),
        train_s=("train_s", "mean")).reset_index()
    from .zhang_stats import t_interval

    agg["eval_loss"] = [_ci(*t_interval(g["eval_loss"], level)) for _, g in
                        res.runs.groupby(["unit", "train_length"], sort=False)]
    doc.table(agg[["unit", "train_length", "steps", "batch", "tokens", "final_train_loss", "eval_loss",
                   "parameters", "train_s"]],
              caption=f"Means over seeds; eval_loss: next-word cross-entropy (nats) on the eval part, windows of "
                      f"length T, mean [{pct} interval]; train_s: seconds per run.")
    doc.figure(f_train, "Training loss vs training words.")
    doc.heading("Indicators per unit")
    doc.text("Each panel: one line per training length T, against the prefix length n (words read from a zero "
             f"state): the mean over seeds of the mean over eval windows, shaded: its {pct} t interval over seeds; "
             "dashed: the recommendation threshold. hull_score 1 = the mapped state lies on the hull of the words "
             "read, 0 = no closer than a state that holds nothing. recall_score 0 = the best constant guess.")
    for u in units:
        doc.figure(figs[u], f"{_label(u)}: indicators (a) and (c).")
    iv = res.intervals[res.intervals["train_length"] == Tmax]
    tab = pd.DataFrame({"unit": iv["unit"].map(_label), "n": iv["n"]})
    for col in ("hull_score", "recall_score", "readout_r2"):
        tab[col] = [_ci(v, lo, hi) for v, lo, hi in zip(iv[col], iv[f"{col}_low"], iv[f"{col}_high"])]
    doc.table(tab, caption=f"Units trained on the longest length T = {Tmax}: mean over {S_} seeds [{pct} t interval] "
                           "(every unit, T and n with intervals of every indicator: intervals.csv; per seed: "
                           "curves.csv).")
    doc.heading("Comparison of the units")
    doc.text(f"Summary per unit and seed: {summary_of}. Differences are a minus b. The hull score and the recall "
             "score measure how much of the *recent* words the state holds in the space (recall falls to chance "
             "within a few lags); the planted check's key accuracy measures whether the unit holds and uses one "
             "word over a long gap. They need not agree.")
    for ind, comp in res.comparisons.items():
        t = comp.copy()
        t["a"], t["b"] = t["a"].map(_label), t["b"].map(_label)
        t["verdict"] = [v if v == "inconclusive" else " > ".join(_label(x) for x in v.split(" > "))
                        for v in comp["verdict"]]
        t["difference [CI]"] = [_ci(d, lo, hi) for d, lo, hi in zip(t["difference"], t["low"], t["high"])]
        how = (f" Summary: the mean over gaps of response minus chance accuracy at T = {Tmax}, per seed."
               if ind == "planted_accuracy" else "")
        doc.table(t[["a", "b", "seeds", "mean_a", "mean_b", "difference [CI]", "p", "verdict"]],
                  caption=f"{RANKED_LABELS[ind]}: ranking {res.rankings[ind]['order']}.{how}")
    doc.heading("(b) Memory profile")
    doc.text("Mean barycentric weight of the closest hull point at each lag, times n (1 everywhere for the running "
             "mean). Dotted: the same for the readout's intercept, i.e. a state that holds nothing. The running-mean "
             "readout fills what a state has forgotten with its expected value, which sits inside the hull and gets "
             "nearly uniform weights; a forgetful unit therefore shows a modest excess at short lags, not a cliff, "
             "and L_q stays close to q n (which is why coverage is dropped, below).")
    doc.figure(f_prof, "Memory profiles at the longest prefix.")
    doc.heading("(c) Recall at lag k")
    doc.figure(f_rec, "Top-1 recall of the word k steps back, at the longest prefix.")
    doc.heading("(e) Recommended training length")
    doc.table(_rec_table(res.recommended),
              caption="Thresholds: " + ", ".join(f"{k} >= {v:g}" for k, v in th.items()) + ". Recommended: the "
                      "largest training length T whose unit keeps every thresholded indicator at or above its "
                      "threshold at every prefix length up to T, applied to the seed means; the interval applies "
                      f"the same rule to the lower and upper bounds of the {pct} intervals ('+': censored, the "
                      "longest T still qualifies). 'settled' = both bounds give the same length. per seed: the rule "
                      "on each seed alone. usable: per T, the longest prefix length up to which the means pass.")
    strict_th = res.recommended_strict.attrs.get("thresholds", {})
    doc.text("The same rule with the recall score (c) thresholded as well ("
             + ", ".join(f"{k} >= {v:g}" for k, v in strict_th.items()) + "): a unit must also still decode, "
             "word for word, half of the prefix above chance.")
    doc.table(_rec_table(res.recommended_strict), caption="Strict criterion (recommended_strict.csv).")
    if res.planted is not None:
        doc.heading("Planted-distance check (synthetic corpus)")
        doc.text(f"Each episode plants a key that must be recalled D + 2 words later, after the cue word; at the cue "
                 f"the key lies at lag D + 1. Prefixes of {cfg['planted_prefix']} words ending at every cue of the eval "
                 "part and at ordinary positions are placed in the space by the readout; the excess of the mean "
                 "barycentric weights (cue minus ordinary) should peak at the key's lag (peak_at_key: the peak over "
                 "lags >= 1 is at D + 1 and at least 3 standard errors). A state can hold a trace of a rare, "
                 "distinct key without the unit having learned to use it, so the check also asks that the unit "
                 "answers the key: learned = the LM's top-1 accuracy on the recalled word beats the best constant "
                 f"guess on the same episodes (chance_accuracy) by a one-sided exact binomial test, p < "
                 f"{cfg['planted_alpha']:g}. **Passed = learned and peak_at_key.**")
        p = res.planted
        g = p.groupby(["unit", "train_length", "gap_words"], sort=False)
        pt = g.agg(planted_distance=("planted_distance", "first"), episodes=("episodes", "mean"),
                   response_accuracy=("response_accuracy", "mean"), chance_accuracy=("chance_accuracy", "mean"),
                   learned=("learned", "sum"), peak_at_key=("peak_at_key", "sum"),
                   passed=("recovered", "sum")).reset_index()
        for col in ("learned", "peak_at_key", "passed"):
            pt[col] = [f"{int(v)}/{S_}" for v in pt[col]]
        pt["unit"] = pt["unit"].map(_label)
        doc.table(pt, caption=f"Over {S_} seeds: accuracies are means, learned / peak_at_key / passed count the "
                              "seeds (per seed, with z-scores and p-values: planted.csv).")
        doc.figure(f_plant, "Excess memory profile at the cue, units trained on the longest length.")
        doc.text(f"**Check at T = {Tmax}: passed in {verdict['recovered']} of {verdict['cases']} (unit, gap, seed) "
                 f"cases; the unit had learned the dependency in {verdict['learned_cases']} of them, and the profile "
                 f"found the key's lag in {verdict['recovered_when_learned']} of those. Cases where the profile peaked "
                 "at the key although the unit had not learned the dependency (a trace, not a memory the unit "
                 f"uses; they fail): {verdict['peak_without_learning']}.**")
    doc.heading("Dropped indicators")
    if res.dropped is not None and len(res.dropped):
        d = res.dropped.copy()
        doc.text("Coverage (b) and the retained-area ratio (d) are still computed (curves.csv, intervals.csv) but no "
                 "longer thresholded by default, ranked or shown above: measured here, neither informs the "
                 "recommendation (coverage stays above its former threshold, the area ratio far below its own) and "
                 "their unit differences are a few hundredths, however significant. The evidence of this run:")
        shown = d[["indicator", "low", "high", "unit_spread", "former_threshold", "below_default",
                   "separated_pairs", "pairs", "few_retained"]]
        doc.table(shown, caption="low / high: range over every seed, unit, T and n; unit_spread: largest minus "
                                 f"smallest unit mean at T = {Tmax}; below_default: share of rows below the former "
                                 "default threshold; separated_pairs: unit pairs whose paired interval excludes 0; "
                                 "few_retained (area_ratio): share of eval prefixes with fewer than 3 recalled words, "
                                 "whose hull has no area.")
        pv = cfg.get("pca_plane_variance") or []
        reasons = [f"{r['indicator']}: {r['reason']}" for _, r in d.iterrows()]
        if pv:
            reasons.append(f"The 2-D PCA plane holds {100 * min(pv):.0f}-{100 * max(pv):.0f}% of the space's variance "
                           "(over seeds).")
        doc.bullets(reasons)
        if f_pca is not None:
            doc.figure(f_pca, "(d) One eval prefix (first seed): all its words (blue hull) and the words still "
                              "represented (red hull).")
    doc.heading("Reproduce")
    doc.text(f"`{command or 'rnnmem reproduce zhang ' + ('--quick' if quick else '--corpus PATH')}`. Tables: curves.csv "
             "(per seed), intervals.csv, comparisons.csv, profiles.csv, recall.csv, recommended.csv, "
             "recommended_strict.csv, planted.csv, dropped_indicators.csv, runs.csv, training.csv; the space: "
             f"space.txt (word2vec text, first seed); every setting: config.json. Wall time {res.wall_s:.0f} s.")
    doc.heading("Conclusion")
    concl = []
    for ind, r in res.rankings.items():
        if S_ < 2:
            head = f"{RANKED_LABELS[ind]}: {r['order']}, inconclusive: one seed gives no interval."
        elif r["conclusive"]:
            head = f"{RANKED_LABELS[ind]}: **{r['order']}**, every pair separated at {pct}."
        else:
            head = (f"{RANKED_LABELS[ind]}: **{r['order']}**, inconclusive: the paired {pct} interval of at "
                    "least one pair includes 0.")
        if ind == "planted_accuracy":
            head += f" (Summary: mean over gaps of response minus chance accuracy at T = {Tmax}, per seed.)"
        concl.append(f"{head} {r['text']}.")
    concl.append(f"Recommended training length: {_rec_sentence(res.recommended)}.")
    doc.text(f"Ranking ({summary_of}):")
    doc.bullets(concl)
    md, html = doc.save(out)
    return {"markdown": md, "html": html, "out": out, "recommended": res.recommended, "planted": res.planted,
            "verdict": verdict, "wall_s": res.wall_s, "runs": len(res.runs), "rankings": res.rankings}
