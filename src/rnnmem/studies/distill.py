"""Reproduction of A. Madsen, "Visualizing memorization in RNNs", Distill (2019),
doi:10.23915/distill.00016 - the autocomplete models, their test table and the
accuracy-given-known-characters curve.

``reproduce(out, corpus=PATH)`` trains the study's three models on a text8-format corpus (GRU
2 x 600, LSTM 2 x 600, Nested LSTM 1 x 600 of depth 2; embedding 600; tf1 convention; Adam
defaults, batch 64, 2 epochs; full size needs a GPU). ``reproduce(out, quick=True)`` trains small
versions on the synthetic corpus with planted dependencies (``tasks.synthetic_text``) in a few
minutes on a CPU, and adds the controlled benchmark: accuracy at the planted response word by
true dependency distance. Both write ``report.md`` and ``report.html`` (training curves, the test
table beside the published one, parameter counts, accuracy by known characters) and the
interactive connectivity explorer page (``rnnmem.report.explorer``) on a test observation.

Published numbers below are facts transcribed from the article (see the reference data README
``distill2019/README.md``); everything else in the report is computed.
"""

from __future__ import annotations

import functools
import json
import platform
import time
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import torch  # noqa: E402

from ..errors import ConfigError  # noqa: E402
from ..devices import resolve_device
from ..report.document import Document  # noqa: E402
from ..tasks.autocomplete import build_dataset, check_corpus, default_cache_dir, dependency_positions  # noqa: E402
from ..tasks.synthetic_text import planted_dependency_text  # noqa: E402
from ..train.autocomplete import (  # noqa: E402
    KNOWN_VARIANTS, AutocompleteModel, TrainConfig, dependency_accuracy, evaluate, parameter_counts,
    save_checkpoint, train_autocomplete,
)

CITATION = 'A. Madsen, "Visualizing memorization in RNNs", Distill, 2019. doi:10.23915/distill.00016'

# ---- published facts (Madsen 2019; distill2019/README.md) ----
PUBLISHED_TEST = {  # model -> (test cross entropy, test accuracy)
    "GRU": (2.1170, 0.5201),
    "LSTM": (2.1713, 0.5140),
    "Nested LSTM": (2.4950, 0.4710),
}
PUBLISHED_KNOWN_TOP1 = {  # model -> top-1 accuracy given k = 0..8 known characters
    "GRU": (0.165, 0.383, 0.556, 0.658, 0.678, 0.673, 0.660, 0.665, 0.652),
    "LSTM": (0.167, 0.376, 0.539, 0.641, 0.670, 0.670, 0.659, 0.669, 0.661),
    "Nested LSTM": (0.137, 0.326, 0.492, 0.591, 0.622, 0.626, 0.619, 0.635, 0.631),
}
PUBLISHED_PARAMS = {  # model -> (embedding, recurrent, dense) for 600 units
    "GRU": (16200, 4323600, 9847986),
    "LSTM": (16200, 5764800, 9847986),
    "Nested LSTM": (16200, 5764800, 9847986),
}
PUBLISHED_STEPS = 14278  # 2 epochs, batch 64

# ---- the study's models ----
STUDY_MODELS = {
    "gru": {"name": "GRU", "cell": "gru", "layers": 2},
    "lstm": {"name": "LSTM", "cell": "lstm", "layers": 2},
    "nlstm": {"name": "Nested LSTM", "cell": "nlstm", "layers": 1, "depth": 2},
}
STUDY_HIDDEN = 600
STUDY_CONVENTION = "tf1"

# ---- the quick demo (ours): small models on the synthetic corpus ----
QUICK = {
    "corpus": {"n_words": 60_000, "vocab_size": 300, "n_keys": 2, "distances": [1, 2, 4, 8], "rate": 0.3,
               "kind": "copy"},
    "max_length": 80,
    "hidden": 64,
    "steps": 700,
    "lr": 3e-3,
}


def _versions() -> dict:
    import rnnmem

    return {"rnnmem": rnnmem.__version__, "torch": torch.__version__, "numpy": np.__version__,
            "pandas": pd.__version__, "python": platform.python_version()}


def study_parameter_table(hidden: int = STUDY_HIDDEN) -> pd.DataFrame:
    """Build the three study models (untrained, ``hidden`` units, 2^14 + 2 classes) and count
    their parameters beside the published counts.

    Parameters
    ----------
    hidden : int, default STUDY_HIDDEN (600)
        Units and embedding size of every model (the study's convention, tf1).

    Returns
    -------
    pandas.DataFrame
        One row per model (GRU, LSTM, Nested LSTM): ``model``, ``embedding``, ``recurrent``, ``dense``,
        ``published embedding``, ``published recurrent``, ``published dense`` (None unless
        ``hidden`` is 600) and ``match`` (all three counts equal the published ones; None without them).
        A copy of a cached table.
    """
    return _parameter_rows(hidden).copy()


@functools.lru_cache(maxsize=4)
def _parameter_rows(hidden: int) -> pd.DataFrame:
    rows = []
    for key, spec in STUDY_MODELS.items():
        m = AutocompleteModel(spec["cell"], hidden, spec["layers"], hidden, STUDY_CONVENTION,
                              depth=spec.get("depth", 2), seed=0)
        c = parameter_counts(m)
        pub = PUBLISHED_PARAMS[spec["name"]] if hidden == STUDY_HIDDEN else (None, None, None)
        rows.append({"model": spec["name"], "embedding": c["embedding"], "recurrent": c["recurrent"],
                     "dense": c["dense"], "published embedding": pub[0], "published recurrent": pub[1],
                     "published dense": pub[2],
                     "match": (c["embedding"], c["recurrent"], c["dense"]) == pub if pub[0] else None})
        del m
    return pd.DataFrame(rows)


# --------------------------------------------------------------------------- figures
def plot_training_curves(logs: dict[str, pd.DataFrame], path, title: str = "Training curves") -> Path:
    """Train (thin) and validation (markers) masked cross-entropy against step, one colour per model.

    Parameters
    ----------
    logs : dict of str to pandas.DataFrame
        ``{model name: training log}`` with columns ``step``, ``train_loss`` and ``val_loss`` (NaN
        between evaluations), in nats per character.
    path : str or Path
        The PNG to write (150 dpi).
    title : str, default "Training curves"
        The figure title.

    Returns
    -------
    Path
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    for i, (name, log) in enumerate(logs.items()):
        colour = f"C{i}"
        ax.plot(log["step"], log["train_loss"], color=colour, lw=1, alpha=0.7, label=f"{name} train")
        val = log.dropna(subset=["val_loss"])
        ax.plot(val["step"], val["val_loss"], color=colour, lw=2, marker="o", ms=3, label=f"{name} validation")
    ax.set_xlabel("training step (batch of 64 observations)")
    ax.set_ylabel("masked cross-entropy (nats per character)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return Path(path)


def plot_known_chars(known: pd.DataFrame, path, published: bool = True) -> Path:
    """Left: top-1/2/3 accuracy given k known characters, padding excluded (ours). Right: top-1 in
    the study's convention (padding counted as misses) beside the published curve.

    Parameters
    ----------
    known : pandas.DataFrame
        Rows per model, variant and k: ``model``, ``variant`` (``"no_padding"`` or ``"study"``),
        ``k``, ``top1``, ``top2``, ``top3`` (fractions of characters).
    path : str or Path
        The PNG to write (150 dpi).
    published : bool, default True
        Overlay :data:`PUBLISHED_KNOWN_TOP1` (k = 0..8) for the models it has.

    Returns
    -------
    Path
        ``path``.
    """
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharey=True)
    styles = {"top1": "-", "top2": "--", "top3": ":"}
    for i, (name, df) in enumerate(known.groupby("model", sort=False)):
        ours = df[df["variant"] == "no_padding"].sort_values("k")
        for col, ls in styles.items():
            axes[0].plot(ours["k"], ours[col], ls, color=f"C{i}", marker="o", ms=3,
                         label=f"{name} {col.replace('top', 'top-')}")
        study = df[df["variant"] == "study"].sort_values("k")
        axes[1].plot(study["k"], study["top1"], "-", color=f"C{i}", marker="o", ms=3, label=f"{name} (ours)")
        if published and name in PUBLISHED_KNOWN_TOP1:
            axes[1].plot(range(9), PUBLISHED_KNOWN_TOP1[name], "--", color=f"C{i}", alpha=0.8,
                         label=f"{name} (published)")
    axes[0].set_title("padding excluded, <unknown> = miss")
    axes[1].set_title("study convention: top-1, padding = miss")
    for ax in axes:
        ax.set_xlabel("known characters of the word, k")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    axes[0].set_ylabel("accuracy (fraction of characters)")
    fig.suptitle("Autocomplete accuracy given k known characters")
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return Path(path)


def plot_dependencies(dep: pd.DataFrame, chance: float, path) -> Path:
    """Accuracy at the planted response word (k = 0) by gap, with chance level.

    Parameters
    ----------
    dep : pandas.DataFrame
        Rows per model and gap: ``model``, ``mean_distance_chars`` (key to response, characters) and
        ``accuracy`` (top-1 at the response word).
    chance : float
        The chance accuracy, 1 / (number of keys), drawn as a dashed line.
    path : str or Path
        The PNG to write (150 dpi).

    Returns
    -------
    Path
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(6.5, 4))
    marks = ["o-", "s--", "^:", "D-."]
    for i, (name, df) in enumerate(dep.groupby("model", sort=False)):  # styles differ: curves may coincide
        ax.plot(df["mean_distance_chars"], df["accuracy"], marks[i % 4], color=f"C{i}", ms=7 - 1.5 * (i % 4),
                label=name)
    ax.axhline(chance, color="grey", ls="--", label=f"chance (1/{round(1 / chance)})")
    ax.set_xlabel("distance from key to response (characters)")
    ax.set_ylabel("top-1 accuracy at the response word, k = 0")
    ax.set_ylim(0, 1.02)
    ax.set_title("Planted dependencies: recall over a known distance")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------------- progress
class _Bars:
    """Rich progress bars for the study (or nothing when disabled)."""

    def __init__(self, enabled: bool):
        self.enabled = enabled
        self.progress = None

    def __enter__(self):
        if self.enabled:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn("{task.fields[info]}"), TimeRemainingColumn(),
                                     console=Console(stderr=True))
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def task(self, description: str, total: int):
        if self.progress is None:
            return None
        tid = self.progress.add_task(description, total=total, info="")

        def update(done, total_, info=None):
            text = ""
            if info:
                text = "  ".join(f"{k} {v:.3f}" for k, v in info.items())
            self.progress.update(tid, completed=done, total=total_, info=text)
        return update

    def message(self, text: str) -> None:
        if self.progress is not None:
            self.progress.console.print(text)


# --------------------------------------------------------------------------- connectivity
CONN_DECADES = 4  # the log colour scale's floor: 1e-4 of the max and below share the darkest colour
N_TEST_TEXTS = 4  # test observations offered in the explorer and pooled into the profile


def explorer_texts(data, synthetic, n_test: int = N_TEST_TEXTS) -> list[dict]:
    """The texts the connectivity section and the explorer show, first the sample text.

    With the synthetic corpus: for each planted gap the longest-gap test observation holding an
    episode of that gap (longest gap first), with the positions of the key word and of the space
    before the response word (k = 0, where the response is predicted from the key alone); then the
    first ``n_test`` test observations. Each entry: ``group``, ``label``, ``text``, ``targets``
    (positions chosen for the static figure) and ``marks`` ({first position: (note, length)}).

    Parameters
    ----------
    data : AutocompleteData
        The built dataset (``tasks.autocomplete.build_dataset``): its test split is used.
    synthetic : SyntheticCorpus or None
        The planted-dependency corpus (``tasks.synthetic_text``), or None for a real corpus (then only
        test observations are offered).
    n_test : int, default N_TEST_TEXTS (4)
        How many test observations follow.

    Returns
    -------
    list of dict
        The entries described above; test observations target one third, two thirds and the last
        character of the text.
    """
    test = [int(r) for r in data.split_index("test")]
    out = []
    if synthetic is not None:
        pos = dependency_positions(data, synthetic.dependencies, "test")
        for gap, eps in sorted(pos.groupby("gap_words"), key=lambda kv: -kv[0]):
            ep = eps.sort_values("distance_chars", ascending=False).iloc[0]
            text = data.decode(int(ep["row"]))
            spaces = [i for i, c in enumerate(text) if c == " "]
            fw = int(np.asarray(data.first_word)[int(ep["row"])])
            key_at = spaces[int(ep["key_index"]) - fw] + 1  # first letter of the key word
            resp_at = int(ep["position"])  # the space before the response word
            out.append({"group": "planted dependencies (synthetic corpus, test split)",
                        "label": f"gap {int(gap)} words: key '{ep['key']}' ... response '{ep['response']}', "
                                 f"{resp_at - key_at} characters apart",
                        "text": text, "targets": [resp_at, len(text) - 1],
                        "marks": {key_at: (f"key '{ep['key']}'", len(ep["key"])),
                                  resp_at: (f"before '{ep['response']}'", 1)}})
    for row in test[:n_test]:
        text = data.decode(row)
        out.append({"group": "test set", "label": f"test observation {row}: {text.strip()[:48]}",
                    "text": text, "targets": [len(text) // 3, 2 * len(text) // 3, len(text) - 1], "marks": {}})
    return out


def connectivity_profile(analyses: list[dict], model: str) -> pd.DataFrame:
    """Mean normalised connectivity by distance t~ - t for one model, pooled over every target
    position t~ of every analysed text (``report.explorer.analyze`` results); columns of
    ``probes.connectivity.decay_profile`` (lag, mean, std, sem, n).

    With c(t, t~) Madsen's (2019, Distill) connectivity and P_k the pooled pairs at lag k = t~ - t:
    ``mean_k = (1 / n_k) sum_{(t, t~) in P_k} c(t, t~)``.

    Parameters
    ----------
    analyses : list of dict
        :func:`rnnmem.report.explorer.analyze` results, each including ``model``.
    model : str
        The model's name in the analyses.

    Returns
    -------
    pandas.DataFrame
        One row per lag: ``lag``, ``mean``, ``std``, ``sem``, ``n`` (number of (t, t~) pairs).
    """
    from ..probes.connectivity import decay_profile

    frames = []
    for a in analyses:
        m = next(x for x in a["models"] if x["name"] == model)
        rows = [(t_out - t, v) for t_out, row in enumerate(m["conn"]) for t, v in enumerate(row)]
        frames.append(pd.DataFrame(rows, columns=["lag", "connectivity"]))
    return decay_profile(frames)


def half_life_text(hl: dict, unit: str = "characters") -> str:
    """``"3.1 characters"``, or ``"> 79 characters (censored)"`` when the profile never halves.

    Parameters
    ----------
    hl : dict
        A ``probes.connectivity.half_life`` result (``half_life``, ``censored``, ``at_least``).
    unit : str, default "characters"
        The distance unit written after the number.

    Returns
    -------
    str
        The half-life to 3 significant digits, or ``"> N <unit> (censored: never falls to half within
        the texts)"``.
    """
    if hl["censored"]:
        return f"> {hl['at_least']:.0f} {unit} (censored: never falls to half within the texts)"
    return f"{hl['half_life']:.3g} {unit}"


def plot_connectivity_text(analysis: dict, model: str, targets: list[int], path, marks: dict | None = None,
                           decades: int = CONN_DECADES, width: int = 56) -> Path:
    """The study's figure: the text, once per chosen target position t~, each earlier character
    coloured by its normalised connectivity to t~ on a log colour scale (viridis, floor
    ``decades`` decades below the max; the explorer's colours), the target outlined in red, later
    characters grey. ``marks`` ({first position: (note, length)}) are underlined and their
    largest value is noted in the panel's title.

    Parameters
    ----------
    analysis : dict
        An :func:`rnnmem.report.explorer.analyze` result.
    model : str
        The model's name in ``analysis``.
    targets : list of int
        The target positions t~, one panel each.
    path : str or Path
        The PNG to write (130 dpi).
    marks : dict or None, default None
        ``{first position: (note, length)}`` spans to underline and report.
    decades : int, default CONN_DECADES (4)
        The log scale's floor in decades below the maximum.
    width : int, default 56
        Characters per line of text.

    Returns
    -------
    Path
        ``path``.
    """
    from matplotlib.colors import LogNorm
    from matplotlib.patches import Rectangle

    from ..report.explorer import colour_level

    m = next(x for x in analysis["models"] if x["name"] == model)
    tokens = analysis["tokens"]
    T = len(tokens)
    cols = min(width, T)
    lines = -(-T // cols)
    marks = marks or {}
    cmap = matplotlib.colormaps["viridis"]
    block = lines + 2.4  # rows per panel: two title rows, the text, a gap
    n_rows = block * len(targets)
    H = 0.32 * n_rows + 1.25  # inches: the panels, then 1.25 in for the colour bar and its label
    fig = plt.figure(figsize=(0.17 * cols + 0.6, H))
    ax = fig.add_axes([0.01, 1.2 / H, 0.98, 1 - 1.25 / H])
    ax.set_xlim(0, cols)
    ax.set_ylim(n_rows, 0)
    ax.axis("off")
    for p, t_out in enumerate(targets):
        top = p * block
        row = np.asarray(m["conn"][t_out], float)
        scale = 1.0 if analysis["normalize"] else (m["max"] or 1.0)
        level = colour_level(row / scale, "log", decades)
        word = m["targets"][t_out]
        far = [j for j in range(t_out + 1) if level[j] > 0 and t_out - j > 10]
        notes = []
        for k in sorted(marks):
            label, n = marks[k]
            if k + n - 1 <= t_out:
                where = f"{t_out - k}" if n == 1 else f"{t_out - k - n + 1}-{t_out - k}"
                notes.append(f"{label} at distance {where}: {'max ' if n > 1 else ''}{row[k:k + n].max():.2g}")
        note = "; ".join(notes)
        ax.text(0, top + 0.5, f"target t~ = {t_out} ('{tokens[t_out]}', logit of '{word}'): {len(far)} characters "
                f"more than 10 back are above the 1e-{decades} floor", fontsize=10, va="center", ha="left", color="#222")
        if note:
            ax.text(0, top + 1.3, note, fontsize=10, va="center", ha="left", color="#9a3412")
        for j, ch in enumerate(tokens):
            x, y = j % cols, top + 1.8 + j // cols
            if j <= t_out:
                c = cmap(level[j])
                ax.add_patch(Rectangle((x, y), 1, 1, facecolor=c, edgecolor="none"))
                lum = 0.2126 * c[0] + 0.7152 * c[1] + 0.0722 * c[2]
                ink = "#111" if lum > 0.5 else "white"
            else:
                ink = "#b1b8c0"
            ax.text(x + 0.5, y + 0.52, ch if ch != " " else "\u2423" if j == t_out else " ", fontsize=11,
                    family="monospace", ha="center", va="center", color=ink)
            if j == t_out:
                ax.add_patch(Rectangle((x, y), 1, 1, facecolor="none", edgecolor="#d1495b", lw=2))
            if any(k <= j < k + n for k, (_, n) in marks.items()):
                ax.plot([x + 0.08, x + 0.92], [y + 0.97, y + 0.97], color="#d1495b", lw=1.5)
    cax = fig.add_axes([0.25, 0.72 / H, 0.5, 0.16 / H])
    sm = matplotlib.cm.ScalarMappable(norm=LogNorm(vmin=10.0 ** -decades, vmax=1.0), cmap=cmap)
    cb = fig.colorbar(sm, cax=cax, orientation="horizontal", extend="min")
    cb.set_label(f"{model}: connectivity / max over earlier characters (log; below 1e-{decades}: darkest)",
                 fontsize=10)
    cb.ax.tick_params(labelsize=9)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return Path(path)


def plot_connectivity_profiles(profiles: dict[str, pd.DataFrame], half_lives: dict[str, dict], path,
                               min_pairs: int = 5) -> Path:
    """Mean normalised connectivity against the distance t~ - t (log y), one line per model, with
    the half-life marked (a dotted vertical line; censored: no line, the legend says "> N (censored)").
    Distances with fewer than ``min_pairs`` (t, t~) pairs are not drawn.

    Parameters
    ----------
    profiles : dict of str to pandas.DataFrame
        ``{model: connectivity_profile(...)}``.
    half_lives : dict of str to dict
        ``{model: probes.connectivity.half_life(...)}``; half of each ``reference_value`` is drawn as a
        thin horizontal line.
    path : str or Path
        The PNG to write (150 dpi).
    min_pairs : int, default 5
        The fewest (t, t~) pairs a distance needs to be drawn.

    Returns
    -------
    Path
        ``path``.
    """
    fig, ax = plt.subplots(figsize=(7.5, 4.2))
    marks = ["o-", "s--", "^:", "D-."]
    for i, (name, prof) in enumerate(profiles.items()):
        p = prof[(prof["n"] >= min_pairs) & (prof["mean"] > 0)]
        hl = half_lives[name]
        label = f"{name}: half-life {half_life_text(hl)}"
        if len(label) > 60:
            label = f"{name}: half-life > {hl['at_least']:.0f} (censored)"
        ax.semilogy(p["lag"], p["mean"], marks[i % 4], color=f"C{i}", ms=3, lw=1.2, label=label)
        if hl["half_life"] is not None:
            ax.axvline(hl["half_life"], color=f"C{i}", ls=":", lw=1)
        ax.axhline(hl["reference_value"] / 2, color=f"C{i}", ls="-", lw=0.5, alpha=0.5)
    ax.set_xlabel("distance t~ - t (characters back from the target)")
    ax.set_ylabel("mean connectivity / max over earlier characters")
    ax.set_title("Connectivity against distance (thin lines: half of the value at distance 0)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return Path(path)


# --------------------------------------------------------------------------- study
def reproduce(out, corpus=None, quick: bool = False, device="cpu", steps: int | None = None,
              epochs: float | None = None, hidden: int | None = None, models=("gru", "lstm", "nlstm"),
              batch_size: int = 64, lr: float | None = None, seed: int = 0, cache_dir=None,
              max_length: int | None = None, vocab_size: int = 2**14, checkpoint_every: int = 500,
              eval_every: int | None = None, eval_batches: int | None = 20, resume: bool = True,
              explorer: bool = True, progress: bool = False, command: str | None = None) -> dict:
    """Run the study and write the report into ``out`` (see module docstring).

    Re-running with the same ``out`` resumes each model from its checkpoint. Returns a dict with
    the result tables (pandas) and the report paths.

    Parameters
    ----------
    out : str or Path
        The output folder (report.md/.html, figures/, CSV tables, results.json, models/<cell>/
        checkpoints and logs, explorer.html).
    corpus : str or Path or None
        A text8-format corpus; exactly one of ``corpus`` and ``quick`` must be given.
    quick : bool, default False
        Small models on the synthetic planted-dependency corpus (:data:`QUICK`), plus the planted
        dependency benchmark.
    device : str, default "cpu"
        Where to train and evaluate.
    steps, epochs : int or float or None
        Training length; ``steps`` wins (default: 700 steps in quick mode, else 2 epochs, the study's).
    hidden : int or None
        Units and embedding size (default 64 quick, 600 full).
    models : tuple of str, default ("gru", "lstm", "nlstm")
        Keys of :data:`STUDY_MODELS`.
    batch_size : int, default 64
    lr : float or None
        Adam learning rate (default 3e-3 quick, 1e-3 full).
    seed : int, default 0
    cache_dir : str or Path or None
        The dataset cache (default: ``out/cache`` quick, else the package default).
    max_length : int or None
        The longest observation in characters (default 80 quick, 200 full).
    vocab_size : int, default 2**14
        The most word classes besides ``<eos>`` and ``<unknown>``.
    checkpoint_every, eval_every, eval_batches : int or None
        Checkpoint and validation frequency (steps) and validation batches.
    resume : bool, default True
        Resume from checkpoints in ``out``.
    explorer : bool, default True
        Write the interactive explorer page.
    progress : bool, default False
        Show rich progress bars on stderr.
    command : str or None
        The command line, recorded in the report.

    Returns
    -------
    dict
        ``summary``, ``comparison``, ``known_chars``, ``parameters``, ``dependencies`` (None without the
        synthetic corpus) tables; ``markdown``, ``html``, ``explorer`` paths; ``models`` (the trained
        models by name), ``data`` (the dataset) and ``wall_s``.

    Raises
    ------
    ConfigError
        If both or neither of ``corpus`` and ``quick`` are given, or a model key is unknown.
    InputError
        If the corpus is missing, not a file or empty (``tasks.autocomplete.check_corpus``).
    """
    t_start = time.perf_counter()
    if quick == (corpus is not None):
        raise ConfigError("give either a corpus (--corpus PATH, text8 format) or --quick (synthetic corpus)")
    unknown = [m for m in models if m not in STUDY_MODELS]
    if unknown or not models:
        raise ConfigError(f"unknown model(s) {unknown}; choose from {', '.join(STUDY_MODELS)}")
    if corpus is not None:
        corpus = check_corpus(corpus, synthetic_hint="--quick")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = str(resolve_device(device))
    hidden = hidden or (QUICK["hidden"] if quick else STUDY_HIDDEN)
    max_length = max_length or (QUICK["max_length"] if quick else 200)
    lr = lr or (QUICK["lr"] if quick else 1e-3)
    if quick and steps is None and epochs is None:
        steps = QUICK["steps"]
    synthetic = None
    if quick:
        synthetic = planted_dependency_text(seed=seed, **QUICK["corpus"])
        corpus, _ = synthetic.save(out / "data" / "synthetic.txt")
        cache_dir = cache_dir or out / "cache"
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    results: dict = {"models": {}}
    with _Bars(progress) as bars:
        build_bar = bars.task("building dataset", 1)
        data = build_dataset(corpus, vocab_size=vocab_size, max_length=max_length, seed=seed, cache_dir=cache_dir,
                             progress=(lambda stage, done, total: build_bar(done, total)) if build_bar else None)
        bars.message(f"dataset: {data.config['observations']:,} observations "
                     f"({'cache hit' if data.cache_hit else 'built'}), {data.n_words:,} word classes")
        logs, summaries, known, deps, trained = {}, [], [], [], {}
        for key in models:
            spec = STUDY_MODELS[key]
            name = spec["name"]
            model = AutocompleteModel(spec["cell"], hidden, spec["layers"], hidden, STUDY_CONVENTION,
                                      depth=spec.get("depth", 2), seed=seed, words=data.words)
            cfg = TrainConfig(steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                              checkpoint_every=checkpoint_every,
                              eval_every=eval_every or (max(1, steps // 10) if quick and steps else 500),
                              eval_batches=eval_batches)
            total = cfg.total_steps(len(data.split_index("train")))
            bar = bars.task(f"train {name}", total)
            mdir = out / "models" / key
            res = train_autocomplete(model, data, cfg, out_dir=mdir, device=device, resume=resume, progress=bar)
            save_checkpoint(model, mdir / "model.pt", train=res.config["train"], data=res.config["data"])
            ebar = bars.task(f"test {name}", 1)
            ev = evaluate(model, data, "test", batch_size=batch_size, device=device,
                          progress=(lambda d, t: ebar(d, t)) if ebar else None)
            logs[name] = res.log
            summaries.append({"model": name, **ev.summary})
            known.append(ev.known_chars.assign(model=name))
            if synthetic is not None:
                pos = dependency_positions(data, synthetic.dependencies, "test")
                deps.append(dependency_accuracy(model, data, pos, device=device).assign(model=name))
            trained[name] = model.eval()
            results["models"][name] = {"describe": model.describe(), "train": res.config,
                                       "train_wall_s": res.wall_s, "resumed_from": res.resumed_from,
                                       "steps": res.steps, "test": ev.summary}
    summary = pd.DataFrame(summaries)
    known_df = pd.concat(known, ignore_index=True)
    dep_df = pd.concat(deps, ignore_index=True) if deps else None
    params = study_parameter_table()

    # ---- files ----
    fig_dir = out / "figures"
    fig_dir.mkdir(exist_ok=True)
    summary.to_csv(out / "test_results.csv", index=False)
    known_df.to_csv(out / "known_chars.csv", index=False)
    params.to_csv(out / "parameters.csv", index=False)
    for name, log in logs.items():
        log.to_csv(out / f"log_{name.lower().replace(' ', '_')}.csv", index=False)
    curves = plot_training_curves(logs, fig_dir / "training_curves.png",
                                  title=f"Training curves ({'synthetic corpus, quick' if quick else Path(corpus).name})")
    kplot = plot_known_chars(known_df, fig_dir / "known_chars.png")
    dplot = None
    if dep_df is not None:
        dep_df.to_csv(out / "dependencies.csv", index=False)
        dplot = plot_dependencies(dep_df, 1.0 / synthetic.config["n_keys"], fig_dir / "dependencies.png")

    # ---- connectivity: the explorer's texts, the static figures, the profile and its half-life ----
    from ..probes.connectivity import half_life
    from ..report.explorer import analyze, explorer_html

    texts = explorer_texts(data, synthetic)
    sample = texts[0]["text"]
    with _Bars(progress) as bars:
        bar = bars.task("connectivity (explorer texts)", len(texts))
        analyses = []
        for i, t in enumerate(texts):
            analyses.append(analyze(trained, t["text"], device=device, max_chars=None))
            if bar:
                bar(i + 1, len(texts))
    conn_figs, profiles, half_lives = {}, {}, {}
    for name in trained:
        slug = name.lower().replace(" ", "_")
        conn_figs[name] = plot_connectivity_text(analyses[0], name, texts[0]["targets"],
                                                 fig_dir / f"connectivity_{slug}.png", marks=texts[0]["marks"])
        profiles[name] = connectivity_profile(analyses, name)
        half_lives[name] = half_life(profiles[name]["lag"], profiles[name]["mean"], reference=0)
    pd.concat([p.assign(model=n) for n, p in profiles.items()], ignore_index=True).to_csv(
        out / "connectivity_profile.csv", index=False)
    prof_fig = plot_connectivity_profiles(profiles, half_lives, fig_dir / "connectivity_profile.png")
    results["connectivity"] = {"texts": len(texts), "decades": CONN_DECADES,
                               "half_life_definition": "first distance at which the mean normalised connectivity "
                                                       "falls to half of its value at distance 0 (geometric "
                                                       "interpolation; censored if never)",
                               "half_life": half_lives}
    explorer_path = None
    if explorer:
        menu = [{"group": t["group"], "label": t["label"], "text": t["text"], "main": i == 0,
                 "data": None if i == 0 else a} for i, (t, a) in enumerate(zip(texts, analyses))]
        explorer_path = out / "explorer.html"
        explorer_path.write_text(explorer_html(analyses[0], title="Connectivity explorer: " + ", ".join(trained),
                                               examples=menu, decades=CONN_DECADES), encoding="utf-8")
    for model in trained.values():
        model.to("cpu")

    # ---- comparison table ----
    comp = []
    for row in summaries:
        pub = PUBLISHED_TEST.get(row["model"], (np.nan, np.nan))
        comp.append({"model": row["model"], "cross entropy (study)": row["cross_entropy_study"],
                     "accuracy (study)": row["accuracy_study"], "published cross entropy": pub[0],
                     "published accuracy": pub[1], "cross entropy (token mean)": row["cross_entropy"],
                     "accuracy (masked)": row["accuracy"], "top-3 (masked)": row["top3"]})
    comp_df = pd.DataFrame(comp)
    comp_df.to_csv(out / "comparison.csv", index=False)

    config = {
        "study": CITATION, "quick": quick, "corpus": str(corpus), "device": device, "hidden": hidden,
        "embedding": hidden, "convention": STUDY_CONVENTION, "dtype": "float32", "models": list(models),
        "batch_size": batch_size, "lr": lr, "steps": steps, "epochs": epochs, "seed": seed,
        "max_length": max_length, "vocab_size": vocab_size, "data": data.config,
        "synthetic": synthetic.config if synthetic is not None else None, "command": command,
        "versions": _versions(), "wall_s": time.perf_counter() - t_start,
        "explorer": str(explorer_path) if explorer_path else None,
    }
    results["config"] = config
    (out / "results.json").write_text(json.dumps(results | {"comparison": comp}, indent=1, default=_json_default))
    md, html = _report(out, config, data, summary, comp_df, params, known_df, dep_df, curves, kplot, dplot,
                       explorer_path, sample, results, conn=(texts, conn_figs, half_lives, prof_fig))
    return {"summary": summary, "comparison": comp_df, "known_chars": known_df, "parameters": params,
            "dependencies": dep_df, "markdown": md, "html": html, "explorer": explorer_path, "models": trained,
            "data": data, "wall_s": config["wall_s"]}


def _json_default(o):
    if isinstance(o, (np.integer,)):
        return int(o)
    if isinstance(o, (np.floating,)):
        return float(o)
    if isinstance(o, Path):
        return str(o)
    if isinstance(o, (pd.DataFrame,)):
        return o.to_dict("records")
    raise TypeError(type(o).__name__)


def _report(out, config, data, summary, comp_df, params, known_df, dep_df, curves, kplot, dplot, explorer_path,
            sample, results, conn) -> tuple[Path, Path]:
    quick = config["quick"]
    doc = Document("Visualizing memorization in RNNs (Madsen, Distill 2019): autocomplete reproduction")
    doc.text(f"Study: {CITATION}. Published numbers are transcribed from the article (embedded in "
             "`rnnmem.studies.distill`); all other numbers are computed by this run.")
    if quick:
        doc.text("**Quick mode.** Small models (" + f"{config['hidden']} units" + ") trained for "
                 f"{config['steps']} steps on a synthetic corpus with planted long-range dependencies "
                 "(`rnnmem.tasks.synthetic_text`), not on text8: the numbers are NOT comparable with the "
                 "published ones, which are shown for reference only. Run `rnnmem reproduce distill --corpus "
                 "text8` on a GPU for the real comparison.")
    doc.heading("Setup")
    dc = data.config
    doc.bullets([
        f"corpus `{config['corpus']}` (sha256 `{dc['corpus_sha256'][:16]}...`, {dc['corpus_words']:,} words, "
        f"{dc['unique_words']:,} distinct; {dc['skipped_words']} words longer than {dc['max_length'] - 1} "
        "letters skipped)",
        f"observations of at most {dc['max_length']} characters: {dc['observations']:,}; vocabulary "
        f"{data.n_words:,} classes (<eos>, <unknown>, the {data.n_words - 2:,} most frequent words, at most "
        f"{dc['vocab_size']:,}); <unknown> "
        f"targets: {dc['unknown_fraction']:.2%} of characters",
        f"models: embedding {config['embedding']}, {config['hidden']} units, convention `{config['convention']}`, "
        f"{config['dtype']}; Adam lr {config['lr']}, batch {config['batch_size']}, seed {config['seed']}, "
        f"device `{config['device']}`",
        "train steps: " + ", ".join(f"{n} {m['steps']:,} ({m['train_wall_s']:.0f} s this run"
                                    + (f", resumed at {m['resumed_from']:,}" if m["resumed_from"] else "") + ")"
                                    for n, m in results["models"].items())
        + f" (published: {PUBLISHED_STEPS:,} = 2 epochs)",
    ])
    doc.table(data.summary(), caption="Observations per split (seeded 90/5/5 permutation).")
    doc.heading("Parameter counts (600-unit models, constructed, not trained)")
    doc.table(params, caption="The embedding's padding row is a fixed zero and not counted (27 x 600).")
    doc.heading("Training")
    doc.figure(curves, "Masked cross-entropy on training batches and on the validation subset.")
    doc.heading("Test results beside the published table")
    doc.table(comp_df, floatfmt="{:.4f}",
              caption="'(study)' columns use the study's definitions (its test ran with batch size 1: cross "
                      "entropy = mean over observations of each one's masked mean; accuracy = argmax == target "
                      "over all non-padding characters, <unknown> targets counting as misses). 'masked' columns "
                      "exclude <unknown> targets; token-mean cross entropy weights every known character equally.")
    doc.heading("Accuracy given k known characters of the word")
    doc.figure(kplot, "Left: ours (padding excluded). Right: the study's convention beside the published curve.")
    ours = known_df[known_df["variant"] == "no_padding"].pivot(index="model", columns="k", values="top1")
    study = known_df[known_df["variant"] == "study"].pivot(index="model", columns="k", values="top1")
    tab = []
    for name in summary["model"]:
        tab.append({"model": name, "variant": "ours, padding excluded", **ours.loc[name].to_dict()})
        tab.append({"model": name, "variant": "ours, study convention", **study.loc[name].to_dict()})
        if name in PUBLISHED_KNOWN_TOP1:
            tab.append({"model": name, "variant": "published", **dict(enumerate(PUBLISHED_KNOWN_TOP1[name]))})
    tk = pd.DataFrame(tab)
    tk.columns = [f"k={c}" if isinstance(c, (int, np.integer)) else c for c in tk.columns]
    doc.table(tk, floatfmt="{:.3f}", caption="Top-1 accuracy by k. Variants: " + "; ".join(
        f"{k}: {v}" for k, v in KNOWN_VARIANTS.items()) + ". Top-2/3 in known_chars.csv.")
    if dep_df is not None:
        doc.heading("Controlled benchmark: planted dependencies")
        sc = config["synthetic"]
        doc.text(f"Episodes `{sc['start_marker']} K f_1 ... f_D {sc['cue_marker']} K` with {sc['n_keys']} keys and "
                 f"gaps D in {sc['distances']} filler words: at the space before the response word (k = 0) the "
                 "word is predictable only from the key; chance is "
                 f"1/{sc['n_keys']}. Only episodes with key and response in the same test observation count.")
        doc.table(dep_df[["model", "gap_words", "mean_distance_chars", "episodes", "accuracy"]], floatfmt="{:.3f}")
        doc.figure(dplot, "Accuracy at the planted response word by distance.")
    texts, conn_figs, half_lives, prof_fig = conn
    doc.heading("Connectivity")
    doc.text("Connectivity (the study's measure): the squared L2 norm of the gradient of the logit of the word at "
             "the target position t~ with respect to the one-hot input character at t <= t~, divided by its maximum "
             "over t. The colour scale is logarithmic (viridis; 1e-" + str(CONN_DECADES) + " of the maximum and "
             "below share the darkest colour) so that weak long-range links stay visible: on a linear scale a "
             "1e-2 link is indistinguishable from zero. Text: " + texts[0]["label"] + ".")
    if explorer_path is not None:
        doc.text(f"Interactive version: [{explorer_path.name}]({explorer_path.name}) (self-contained, offline): "
                 "click a character to select it as the target, hover to read a value, switch between log and "
                 f"linear colours and between {len(texts)} texts (planted-dependency and test-set observations).")
    else:
        doc.text("The explorer page was not written (explorer=False).")
    for name, path in conn_figs.items():
        doc.figure(path, f"{name}: the text coloured by connectivity to each target position (outlined in red); "
                         "underlined: the planted key and the position before the response word.")
    doc.figure(prof_fig, "Mean normalised connectivity against the distance t~ - t, pooled over every target of the "
                         f"{len(texts)} texts (log y; distances with fewer than 5 pairs not drawn). The half-life "
                         "describes the first drop; a plateau further back (long-range links) shows in the curve, "
                         "not in the half-life.")
    doc.table(pd.DataFrame([{"model": n, "connectivity at distance 0": h["reference_value"],
                             "half-life": half_life_text(h), "largest distance": h["max_distance"]}
                            for n, h in half_lives.items()]), floatfmt="{:.3g}",
              caption="Half-life: the first distance at which the mean normalised connectivity falls to half of "
                      "its value at distance 0, interpolated geometrically between the two measured distances "
                      "around the crossing (`rnnmem.probes.connectivity.half_life`). Censored (never falls to "
                      "half within the texts) is reported as a lower bound, never extrapolated.")
    doc.heading("Reproducibility")
    doc.bullets([f"command: `{config['command'] or 'rnnmem.studies.distill.reproduce'}`",
                 "versions: " + ", ".join(f"{k} {v}" for k, v in config["versions"].items()),
                 f"wall time {config['wall_s']:.0f} s; full configuration in results.json; checkpoints and logs "
                 "in models/<cell>/ (rerun the same command to resume)"])
    return doc.save(out, "report")
