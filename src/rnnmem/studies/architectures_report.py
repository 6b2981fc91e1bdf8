"""Report of the architectures study: matched sizes, task accuracy over seeds, the memory cards of every
model per condition (random init, trained on selective copying, trained on MQAR), the published
selective-copying finding beside ours, and the cards' comparison pages (``report/card_page.py``)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from .. import __version__  # noqa: E402
from ..probes.card import save_card  # noqa: E402
from ..report.card_page import headline_text, write_card_page  # noqa: E402
from ..report.document import Document  # noqa: E402
from .architectures import (CONDITION_LABELS, CONDITIONS, PUBLISHED, PUBLISHED_S6_RANGE, TASK_LABELS,  # noqa: E402
                            TASKS)

TOLERANCE_LABELS = {"exact": "exact", "1e-06": "tol 1e-6", "0.0001": "tol 1e-4", "0.01": "tol 1e-2"}


def _num(v, digits: int = 3) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "\u2014"
    return f"{v:.{digits}g}"


def _acc(v) -> str:
    return "\u2014" if v is None or not np.isfinite(v) else f"{100 * v:.1f}%"


def accuracy_cell(row) -> str:
    """``mean [low, high] (per seed: a, b, c)`` in percent; without an interval for one seed.

    Parameters
    ----------
    row : pandas.Series or dict
        A row of ``architectures.accuracy_table`` (``mean``, ``ci_low``, ``ci_high``, ``per_seed``).

    Returns
    -------
    str
        E.g. ``"81.3% [77.0%, 85.6%] (seeds: 80.1, 82.0, 81.8)"``; the interval is left out when
        ``ci_low`` is NaN.
    """
    per = ", ".join(f"{100 * float(x):.1f}" for x in str(row["per_seed"]).split(", "))
    ci = "" if not np.isfinite(row["ci_low"]) else f" [{_acc(row['ci_low'])}, {_acc(row['ci_high'])}]"
    return f"{_acc(row['mean'])}{ci} (seeds: {per})"


def _fig_accuracy(accuracy: pd.DataFrame, units, level: float, path: Path) -> Path:
    fig, axes = plt.subplots(1, len(TASKS), figsize=(5.2 * len(TASKS), 3.6), constrained_layout=True)
    for ax, task in zip(np.atleast_1d(axes), TASKS):
        a = accuracy[accuracy["task"] == task].set_index("unit").reindex(units)
        x = np.arange(len(units))
        m = a["mean"].to_numpy(float)
        lo, hi = a["ci_low"].to_numpy(float), a["ci_high"].to_numpy(float)
        err = np.vstack([np.where(np.isfinite(lo), m - lo, 0), np.where(np.isfinite(hi), hi - m, 0)])
        ax.bar(x, m, yerr=err, capsize=3, color="#4c78a8")
        base = float(a["baseline_accuracy"].dropna().iloc[0]) if a["baseline_accuracy"].notna().any() else None
        if base is not None:
            ax.axhline(base, color="#cf222e", ls="--", lw=1, label=f"memoryless baseline {100 * base:.1f}%")
            ax.legend(fontsize=8, loc="upper right")
        ax.set_xticks(x, units, rotation=45, ha="right")
        ax.set_ylim(0, 1.05)
        ax.set(ylabel="held-out token accuracy", title=f"{TASK_LABELS[task]} ({100 * level:g}% t interval over seeds)")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _fig_memory(frame: pd.DataFrame, units, path: Path) -> Path:
    """Maximal Lyapunov exponent (with CI) and memory capacity per unit and condition."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    x = np.arange(len(units))
    width = 0.8 / len(CONDITIONS)
    for j, cond in enumerate(CONDITIONS):
        g = frame[frame["condition"] == cond].groupby("unit").first().reindex(units)
        m = g["lyapunov_max"].to_numpy(float)
        err = np.vstack([m - g["lyapunov_ci_low"].to_numpy(float), g["lyapunov_ci_high"].to_numpy(float) - m])
        axes[0].errorbar(x + (j - 1) * width, m, yerr=np.nan_to_num(err), fmt="o", ms=4, capsize=2,
                         label=CONDITION_LABELS[cond])
        axes[1].bar(x + (j - 1) * width, g["memory_capacity"].to_numpy(float), width, label=CONDITION_LABELS[cond])
    axes[0].axhline(0, color="grey", lw=0.6)
    axes[0].set(ylabel="max Lyapunov exponent (nats/step)", title="Maximal Lyapunov exponent [CI]")
    axes[1].set(ylabel="memory capacity MC (inputs)", title="Memory capacity")
    for ax in axes:
        ax.set_xticks(x, units, rotation=45, ha="right")
        ax.legend(fontsize=7)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _plain(text: str) -> str:
    """A card page's plain-text cell for a Markdown table (its " | " separators would split the cell)."""
    return text.replace(" | ", "; ")


def card_table(cards: list[dict], condition: str) -> pd.DataFrame:
    """One row per card of ``condition``: the forgetting steps per tolerance as the card page shows
    them (censored runs counted, never averaged), the maximal Lyapunov exponent with its CI, memory
    capacity of the state dimension, the connectivity half-life (or why its fit is not valid), the
    long-memory verdict and, for trained models, that seed's task accuracy.

    Parameters
    ----------
    cards : list of dict
        The study's memory cards, each with a ``study`` entry (``unit``, ``condition``, ``seed`` and,
        for trained models, ``token_accuracy``).
    condition : str
        ``"init"``, ``"selective_copy"`` or ``"mqar"``.

    Returns
    -------
    pandas.DataFrame
        Text columns ``unit``, ``seed``, ``forgetting <tolerance>`` per tolerance,
        ``Lyapunov max [CI]``, ``MC / state dim``, ``connectivity half-life``, ``long memory`` and
        (not for ``"init"``) ``task accuracy``; empty when no card has that condition.
    """
    rows = []
    for c in cards:
        st = c["study"]
        if st["condition"] != condition:
            continue
        row = {"unit": st["unit"], "seed": st["seed"]}
        for tol in (c["forgetting"].get("tolerances") or {}):
            row[f"forgetting {TOLERANCE_LABELS.get(tol, tol)}"] = _plain(headline_text(c, f"forgetting.tolerances.{tol}"))
        ly = c["lyapunov"]
        row["Lyapunov max [CI]"] = (f"{_num(ly.get('max_exponent'))} [{_num(ly.get('ci_low'))}, "
                                    f"{_num(ly.get('ci_high'))}]")
        cap = c["capacity"]
        row["MC / state dim"] = f"{_num(cap.get('mc'))} / {cap.get('state_dim')}"
        row["connectivity half-life"] = _plain(headline_text(c, "connectivity.half_life"))
        row["long memory"] = str(c["long_memory"].get("verdict"))
        if condition != "init":
            row["task accuracy"] = _acc(st.get("token_accuracy"))
        rows.append(row)
    return pd.DataFrame(rows)


def write_report(res, out: Path, quick: bool = False, command: str = "") -> dict:
    """Write every output of an ``ArchitecturesResult`` to ``out``; returns paths and headline numbers.

    Files: ``report.md``/``report.html`` (the study's page), ``cards/compare_<condition>.html`` (the
    memory cards of every unit side by side, ``rnnmem card --compare``'s page), ``cards/*.json`` (each
    card), ``sizes.csv``, ``training.csv``, ``accuracy.csv``, ``cards.csv``, ``published.csv``,
    ``verdict.json``, ``timings.csv`` (wall times; the only output that differs between reruns besides
    the cards' creation stamps) and ``config.json``.

    Parameters
    ----------
    res : ArchitecturesResult
        The result of ``architectures.run_study``.
    out : Path
        The output folder (created; figures go to ``out/figures``, cards to ``out/cards``).
    quick : bool, default False
        Whether the quick preset ran (said in the report and config.json).
    command : str, default ""
        The command line, recorded in the report and config.json.

    Returns
    -------
    dict
        ``html``, ``markdown`` (paths), ``compare`` (``{condition: page path}``), ``verdict``,
        ``accuracy``, ``sizes``, ``published`` (DataFrames) and ``wall_s`` (seconds of the run).
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    card_dir = out / "cards"
    card_dir.mkdir(exist_ok=True)
    cfg = res.config
    units = list(cfg["units"])
    level = cfg["level"]
    pct = f"{100 * level:g}%"
    res.sizes.to_csv(out / "sizes.csv", index=False)
    res.training.to_csv(out / "training.csv", index=False)
    res.accuracy.to_csv(out / "accuracy.csv", index=False)
    res.card_frame.to_csv(out / "cards.csv", index=False)
    res.published.to_csv(out / "published.csv", index=False)
    res.timings.to_csv(out / "timings.csv", index=False)
    (out / "verdict.json").write_text(json.dumps(res.verdict, indent=2, default=str))
    (out / "config.json").write_text(json.dumps({**cfg, "command": command, "quick": quick, "device": res.device,
                                                 "rnnmem_version": __version__, "published": PUBLISHED,
                                                 "wall_s": res.wall_s}, indent=2, default=str))
    compare = {}
    for c in res.cards:
        st = c["study"]
        save_card(c, card_dir / f"{st['unit']}-{st['condition']}-s{st['seed']}.json")
    for cond in CONDITIONS:
        group = [c for c in res.cards if c["study"]["condition"] == cond]
        if group:
            compare[cond] = write_card_page(group, card_dir / f"compare_{cond}.html",
                                            title=f"Memory cards compared: {CONDITION_LABELS[cond]}")

    tasks = res.tasks
    sc, mq = tasks["selective_copy"], tasks["mqar"]
    v = res.verdict
    seeds = cfg["seed_list"]
    scale = (f"{cfg['layers']} layer(s), ~{cfg['target_params']:,} parameters per model (unit + readout), "
             f"selective copying with {sc['T']} noise tokens and {sc['n_memorize']} tokens to memorise "
             f"(length {sc['length']}), vocabulary {sc['vocab_size']}, {cfg['steps']:,} Adam steps of batch "
             f"{cfg['batch']}, {len(seeds)} seed(s)")
    paper = PUBLISHED["paper_sizes"]
    doc = Document("Modern recurrent architectures at matched size: memory probes and selective copying")
    doc.text("LSTM, GRU, LRU, S4D, Mamba, minGRU, minLSTM and xLSTM's sLSTM and mLSTM, each sized to the same "
             "parameter count, measured by the same memory probes (the memory card: forgetting, Lyapunov exponent, "
             "memory capacity, connectivity, long memory) at random initialisation and after training on "
             "selective copying and MQAR. " + ("Quick mode (CPU scale). " if quick else "")
             + f"Command: `{command or 'rnnmem.studies.architectures.reproduce'}`.")
    doc.heading("At a glance")
    glance = []
    if v.get("verdict") == "not run":
        glance.append(f"Published finding (Mamba vs S4): **not run**: {v['reason']}.")
    else:
        glance.append(
            f"Published finding, \"{PUBLISHED['finding']}\" ({PUBLISHED['source']}): **{v['verdict']}** at our "
            f"scale. Mamba {_acc(v['mean_a'])} vs S4D {_acc(v['mean_b'])} token accuracy on selective copying "
            f"(mean over {v['n_a']} and {v['n_b']} seeds); {v['reason']}.")
    glance.append(f"Our scale: {scale}. The paper's: {PUBLISHED['setup']}; its {paper['T']:,} noise tokens are "
                  f"{paper['T'] / sc['T']:,.0f} times our {sc['T']}: absolute accuracies are not comparable "
                  "across these scales; the check is the qualitative gap.")
    for _, r in res.published.iterrows():
        if r["our unit"]:
            glance.append(f"Published {r['published model']} ({r['architecture']}, {r['layer']}) "
                          f"{_acc(r['published accuracy'])}: ours ({r['our unit']}) {_acc(r['our mean'])}"
                          + (f" [{_acc(r['our low'])}, {_acc(r['our high'])}]" if np.isfinite(r["our low"]) else "")
                          + f": **{r['status']}**.")
    for task in TASKS:
        a = res.accuracy[res.accuracy["task"] == task].sort_values("mean", ascending=False)
        if len(a):
            top = a.iloc[0]
            glance.append(f"Most accurate on {TASK_LABELS[task]}: {top['unit']} ({accuracy_cell(top)}); memoryless "
                          f"baseline {_acc(top['baseline_accuracy'])}.")
    doc.bullets(glance)

    doc.heading("Setup")
    card_s = {k: v for k, v in (res.cards[0]["settings"] if res.cards else {}).items() if k != "tasks"}
    setup = pd.DataFrame([
        ("units", ", ".join(units)),
        ("matched size", f"target {cfg['target_params']:,} trainable parameters (unit + linear readout), "
                         f"within {cfg['tolerance']:.0%}; hidden size searched per unit, fixed options: "
                         + (", ".join(f"{u} {o}" for u, o in cfg["unit_options"].items() if u in units) or "none")),
        ("build", f"{cfg['layers']} layer(s), convention {cfg['convention']}, {cfg['dtype']}, device {res.device}"),
        ("selective copying", f"T = {sc['T']} noise tokens, {sc['n_memorize']} to memorise, vocabulary {sc['vocab_size']} "
                              f"(length {sc['length']}); memoryless accuracy {_acc(sc['baseline_accuracy'])}"),
        ("MQAR", f"length {mq['T']}, {mq['n_pairs']} pairs, {mq['n_queries'] or mq['n_pairs']} queries, vocabulary "
                 f"{mq['vocab_size']}, query distance {mq['query_distance']}; memoryless accuracy "
                 f"{_acc(mq['baseline_accuracy'])}"),
        ("training", f"Adam lr {cfg['lr']:g}, batch {cfg['batch']}, {cfg['steps']:,} steps, clip {cfg['clip']}, "
                     f"held-out set of {cfg['eval_size']:,} sequences; accuracy = exact-match token accuracy at the "
                     "answer positions"),
        ("seeds", f"{len(seeds)}: {', '.join(map(str, seeds))} (unit init, readout, data and held-out set); cards "
                  f"for {', '.join(map(str, cfg['card_seed_list'])) or 'none'}"),
        ("memory cards", "; ".join(f"{k}: " + ", ".join(f"{f}={val}" for f, val in s.items()) for k, s in card_s.items())
                         + " (capacity steps raised to 4 D + 40 where the state dimension D needs it: cards.csv "
                           "capacity_steps)"),
        ("statistics", f"{pct} Student-t intervals over seeds; verdict: one-sided Welch t bounds at {pct} each, "
                       f"margin {cfg['margin']:g}"),
    ], columns=["setting", "value"])
    doc.table(setup)

    doc.heading("Matched parameter counts")
    sz = res.sizes.copy()
    sz["rel_diff"] = sz["rel_diff"].map(lambda x: f"{100 * x:+.1f}%")
    doc.table(sz[["unit", "hidden_size", "options", "unit_params", "readout_params", "total_params", "target",
                  "rel_diff", "state_dim"]],
              "Trainable parameters: the unit, its linear readout to the vocabulary, and their total (what is "
              "matched); state_dim is the flattened state every probe sees.")

    doc.heading("Task accuracy")
    acc_rows = []
    for u in units:
        row = {"unit": u}
        for task in TASKS:
            a = res.accuracy[(res.accuracy["unit"] == u) & (res.accuracy["task"] == task)]
            row[TASK_LABELS[task]] = accuracy_cell(a.iloc[0]) if len(a) else "\u2014"
        acc_rows.append(row)
    doc.table(pd.DataFrame(acc_rows),
              f"Held-out exact-match token accuracy: mean [{pct} t interval] over {len(seeds)} seed(s), and each "
              f"seed's value. Memoryless baselines: selective copying {_acc(sc['baseline_accuracy'])} "
              f"(1/(V-2)), MQAR {_acc(mq['baseline_accuracy'])} (1/(V - V//2)).")
    doc.figure(_fig_accuracy(res.accuracy, units, level, fig_dir / "accuracy.png"),
               "Token accuracy per unit (bars: mean over seeds; whiskers: t interval); dashed: memoryless baseline.")

    doc.heading("The published finding: selective vs LTI state-space model")
    doc.text(f"{PUBLISHED['source']}: {PUBLISHED['finding']}. Their setup: {PUBLISHED['setup']}. Ours: {scale}. "
             "Our `s4d` is a diagonal LTI SSM after a linear input projection, without a gate (Table 1's \"S4, no "
             "gate\" row); our `mamba` is the gated Mamba block with the selective S6 layer (Table 1's Mamba row). "
             f"A published value counts as reproduced when our {pct} interval over seeds covers it (Mamba: "
             f"overlaps the S6 range {_acc(PUBLISHED_S6_RANGE[0])}\u2013{_acc(PUBLISHED_S6_RANGE[1])}).")
    pub = res.published.copy()
    for col in ("published accuracy", "our mean", "our low", "our high"):
        pub[col] = pub[col].map(_acc)
    doc.table(pub, "Published accuracies (cited constants) beside ours at our scale.")
    if v.get("verdict") != "not run":
        vt = pd.DataFrame([
            ("quantity", v["quantity"]),
            ("mean mamba / s4d", f"{_acc(v['mean_a'])} / {_acc(v['mean_b'])} ({v['n_a']} / {v['n_b']} seeds)"),
            ("difference", f"{v['diff']:+.4f}"),
            (f"one-sided {pct} bounds", f"[{_num(v['lower'], 4)}, {_num(v['upper'], 4)}]"),
            ("Welch df, p (mamba > s4d + margin)", f"{_num(v['df'], 3)}, {_num(v['p_greater'], 3)}"),
            ("verdict", f"{v['verdict']}: {v['reason']}"),
        ], columns=["", "value"])
        doc.table(vt, f"Verdict ({v['test']}); inconclusive is an honest answer when the seeds do not settle it.")

    doc.heading("Memory cards")
    doc.text("Each model's memory card (probes through the one probe contract; the readout is not part of the "
             "card, the probes drive the unit with their own random inputs). Forgetting steps per tolerance: the "
             "mean of all runs when none is censored, else the median of all runs while fewer than half are "
             "censored (counted as longer), else the censored count; censored runs are never averaged. The "
             "comparison pages show every card's figures and interpretation: "
             + ", ".join(f"[{CONDITION_LABELS[k]}]({p.relative_to(out).as_posix()})" for k, p in compare.items())
             + ".")
    for cond in CONDITIONS:
        t = card_table(res.cards, cond)
        if len(t):
            doc.heading(CONDITION_LABELS[cond], level=3)
            doc.table(t)
    if len(res.card_frame):
        doc.figure(_fig_memory(res.card_frame, units, fig_dir / "memory.png"),
                   "Maximal Lyapunov exponent with its confidence interval and memory capacity, per unit and "
                   "condition (first card seed).")
    doc.heading("Files")
    doc.bullets(["`sizes.csv`: matched parameter counts", "`training.csv`: one row per unit, task and seed",
                 "`accuracy.csv`: mean and interval per unit and task", "`cards.csv`: the cards' headline numbers "
                 "(forgetting per tolerance with censored counts)", "`cards/*.json`, `cards/compare_*.html`: the "
                 "memory cards", "`published.csv`, `verdict.json`: the published finding beside ours",
                 "`config.json`: every setting", "`timings.csv`: wall time per training run and card"])
    md, htm = doc.save(out)
    return {"html": htm, "markdown": md, "compare": compare, "verdict": v, "accuracy": res.accuracy,
            "sizes": res.sizes, "published": res.published, "wall_s": res.wall_s}
