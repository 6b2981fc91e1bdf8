"""Reproduction of Zhao et al. (ICML 2020), "Do RNN and LSTM have Long Memory?": review classification.

The paper's experiment (Section 5.2, Tables 5-6, and their code release ``review_classification``):
5-class classification of the 382 Spanish reviews of the UCI paper-review set
(``rnnmem.tasks.reviews``) with a two-layer network, first layer RNN, LSTM, MRNNF (K = 50) or
MLSTMF (K = 50), second layer an LSTM, hidden 128, on 16-dim skip-gram word vectors; 100 seeds.
Training: ``rnnmem.train.classify`` (Adam lr 1e-3, weight decay 5e-4, batch 64, 100 epochs, model
kept at the best validation loss). Each (model, layout, chunk of seeds) is one batched task in
the results store (resumable).

Report: test accuracy, macro precision / recall / F1 and cross-entropy, mean (std) and best over
seeds, beside the published Tables 5-6 (``ZHAO2020_TABLES56``: published facts, cited); Welch
t-tests of MLSTMF against RNN and LSTM; majority-class baselines (computed); and, with
``paper_layout=True``, the same models trained on the published (T, N, D)-reshape layout, with the
share of the gap between our correct-layout results and the published ones that the layout
accounts for.

Published figures (J. Zhao, F. Huang, J. Lv, Y. Duan, Z. Qin, G. Li, G. Tian, ICML 2020,
Tables 5 and 6): mean test accuracy over 100 seeds RNN 0.2836, LSTM 0.3021, MRNNF (K=50) 0.3096,
MLSTMF (K=50) 0.3110; best accuracy 0.36 / 0.38 / 0.40 / 0.36; majority class 25.9 %.
"""

from __future__ import annotations

import functools
import math
import time
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..errors import ConfigError, InputError
from ..store.db import config_column
from ..store.validation import validate_model
from ..tasks.autocomplete import file_sha256
from ..devices import resolve_device
from ..train.classify import FIRST_LAYERS

STUDY = "zhao_reviews"
PAPER_MODELS = FIRST_LAYERS                      # rnn, lstm, mrnnf, mlstmf
LABELS = {"rnn": "RNN", "lstm": "LSTM", "mrnnf": "MRNNF50", "mlstmf": "MLSTMF50"}
LAYOUT_LABELS = {"rnnmem": "correct layout (rnnmem)", "paper": "published reshape layout"}
TEST_MODEL = "mlstmf"
BASELINES = ("rnn", "lstm")
METRICS = ("accuracy", "precision", "recall", "f1", "ce")
#: relative CPU cost per seed and epoch (measured, benchmarks in docs/zhao_reviews.md), to start
#: the longest tasks first
COST = {"rnn": 1.4, "lstm": 2.2, "mrnnf": 2.0, "mlstmf": 4.0}

#: Zhao et al. (ICML 2020), Tables 5-6: (mean test accuracy over 100 seeds, best accuracy).
ZHAO2020_TABLES56: dict[str, tuple[float, float]] = {
    "rnn": (0.2836, 0.36), "lstm": (0.3021, 0.38), "mrnnf": (0.3096, 0.40), "mlstmf": (0.3110, 0.36),
}
ZHAO2020_MAJORITY = 0.259
CITATION = ("J. Zhao, F. Huang, J. Lv, Y. Duan, Z. Qin, G. Li, G. Tian, \"Do RNN and LSTM have Long Memory?\", "
            "ICML 2020, Tables 5-6")


# ============================================================================================
# configuration and the task function
# ============================================================================================
class ReviewsConfig(BaseModel):
    """One (model, layout) of the study: everything but the seed."""

    model_config = ConfigDict(extra="forbid")

    model: str
    layout: Literal["rnnmem", "paper"] = "rnnmem"
    data_path: str
    data_sha256: str
    train: int = Field(default=282, ge=1)
    val: int = Field(default=50, ge=1)
    test: int = Field(default=50, ge=1)
    split_seed: int = Field(default=0, ge=0)
    pad: int = Field(default=150, ge=1)
    emb_dim: int = Field(default=16, ge=1)
    emb_window: int = Field(default=16, ge=1)
    emb_min_count: int = Field(default=1, ge=1)
    emb_epochs: int = Field(default=5, ge=1)
    emb_negatives: int = Field(default=5, ge=1)
    emb_subsample: float = Field(default=1e-3, ge=0)
    emb_lr: float = Field(default=0.01, gt=0)
    emb_seed: int = Field(default=0, ge=0)
    hidden: int = Field(default=128, ge=1)
    K: int = Field(default=50, ge=1)
    lr: float = Field(default=1e-3, gt=0)
    weight_decay: float = Field(default=5e-4, ge=0)
    batch_size: int = Field(default=64, ge=1)
    epochs: int = Field(default=100, ge=1)
    dtype: Literal["float32", "float64"] = "float32"
    device: str = "cpu"

    @field_validator("model")
    @classmethod
    def _known_model(cls, v):
        if v not in FIRST_LAYERS:
            raise ValueError(f"unknown model {v!r}; choose from {', '.join(FIRST_LAYERS)}")
        return v

    def embedding_spec(self):
        """The skip-gram settings of this configuration's word vectors.

        Returns
        -------
        EmbeddingSpec
            ``dim``, ``window``, ``min_count``, ``epochs``, ``negatives``, ``subsample``, ``lr`` and
            ``seed`` from the ``emb_*`` fields.
        """
        from ..tasks.reviews import EmbeddingSpec

        return EmbeddingSpec(dim=self.emb_dim, window=self.emb_window, min_count=self.emb_min_count,
                             epochs=self.emb_epochs, negatives=self.emb_negatives, subsample=self.emb_subsample,
                             lr=self.emb_lr, seed=self.emb_seed)


def validate_config(config: dict) -> ReviewsConfig:
    """Validate a config dict, turning pydantic's report into one ConfigError line.

    Parameters
    ----------
    config : dict
        The fields of :class:`ReviewsConfig` (``model``, ``data_path`` and ``data_sha256`` required;
        unknown fields are refused).

    Returns
    -------
    ReviewsConfig
        The validated configuration.

    Raises
    ------
    ConfigError
        For an unknown model or layout, a missing or out-of-range field, or an unknown field.
    """
    return validate_model(ReviewsConfig, config, "zhao_reviews")


@functools.lru_cache(maxsize=4)
def _frame_and_embedding(path: str, sha: str, spec):
    """Loaded reviews and their embedding (one per process and embedding spec; the embedding
    does not depend on the layout, the split or the model)."""
    from ..tasks.reviews import load_reviews, review_embedding

    if file_sha256(path) != sha:
        raise InputError(f"{path} changed since the study was set up (its SHA-256 differs); rerun the command")
    frame = load_reviews(path)
    return frame, review_embedding(frame, spec)


def prepared(cfg: ReviewsConfig):
    """The ``ReviewTask`` of a config (cached embedding).

    Parameters
    ----------
    cfg : ReviewsConfig
        The data file and its SHA-256, split, split seed, padding, layout and embedding settings.

    Returns
    -------
    ReviewTask
        Per split a ``SequenceSet`` (``sets``) plus the reviews frame, the split indices, the
        embedding and its config.

    Raises
    ------
    InputError
        If the data file changed since set-up (SHA-256 differs) or cannot be read.
    """
    from ..tasks.reviews import prepare_reviews

    spec = cfg.embedding_spec()
    frame, emb = _frame_and_embedding(cfg.data_path, cfg.data_sha256, spec)
    return prepare_reviews(cfg.data_path, (cfg.train, cfg.val, cfg.test), split_seed=cfg.split_seed, pad=cfg.pad,
                           layout=cfg.layout, embedding=spec, frame=frame, vectors=emb)


def run_batch(config: dict, seeds: list[int]):
    """Train one (model, layout) for ``seeds`` as one batched computation; one RunRecord per seed
    (test/val/train metrics, best epoch, learned d; curves: train/val cross-entropy and val accuracy).

    Parameters
    ----------
    config : dict
        A :class:`ReviewsConfig` as a dict (validated here; the records store its full ``model_dump``).
    seeds : list of int
        The seeds, one network each.

    Returns
    -------
    list of RunRecord
        Study ``"zhao_reviews"``, one per seed; the metrics also carry ``batch_size_seeds``,
        ``vocabulary``, ``convention`` and ``kernels``.

    Raises
    ------
    ConfigError
        If ``config`` is invalid.
    InputError
        If the data file changed since set-up or cannot be read.
    """
    from ..store import seed_records
    from ..train.classify import ClassifySettings, train_classifier

    cfg = validate_config(config)
    task = prepared(cfg)
    settings = ClassifySettings(lr=cfg.lr, weight_decay=cfg.weight_decay, batch_size=cfg.batch_size,
                                epochs=cfg.epochs)
    res = train_classifier(cfg.model, task.sets, seeds, hidden=cfg.hidden, K=cfg.K, classes=5, dtype=cfg.dtype,
                           device=cfg.device, settings=settings)
    extra = {"batch_size_seeds": len(seeds), "vocabulary": len(task.embedding),
             "convention": "torch",              # initialisation of every layer (PyTorch defaults, as published)
             "kernels": res.config["kernels"]}
    return seed_records(STUDY, cfg.model_dump(), res.table, [res.curves[int(s)] for s in res.table["seed"]],
                        res.wall_s, extra, drop=("model",))


def _register() -> None:
    from ..store.registry import StudySpec, register_study

    register_study(StudySpec(STUDY, ReviewsConfig, "rnnmem.studies.zhao_reviews:run_batch", seeds_per_task=10,
                             description="Zhao et al. 2020: review classification (RNN/LSTM/MRNNF/MLSTMF + LSTM)"))


_register()


# ============================================================================================
# tasks
# ============================================================================================
def build_tasks(data_path, models=PAPER_MODELS, layouts=("rnnmem",), seeds=range(100), seed_chunk: int = 10,
                **fixed) -> list:
    """One Task per (model, layout, chunk of ``seed_chunk`` seeds); longest tasks first.

    Parameters
    ----------
    data_path : str or Path
        The reviews file (its SHA-256 is recorded in every config).
    models : iterable of str, default PAPER_MODELS
        First-layer models (``rnn``, ``lstm``, ``mrnnf``, ``mlstmf``).
    layouts : iterable of str, default ("rnnmem",)
        ``"rnnmem"`` and/or ``"paper"`` (the published reshape layout).
    seeds : iterable of int, default range(100)
    seed_chunk : int, default 10
        Seeds per task.
    **fixed
        Further :class:`ReviewsConfig` fields shared by every task (split, ``epochs``, ``hidden``,
        ``K``, ``dtype``, ``device``...).

    Returns
    -------
    list of Task
        Study ``"zhao_reviews"``, sorted by the model's relative cost (``COST``), largest first.

    Raises
    ------
    ConfigError
        If there is no seed, ``seed_chunk`` is not a positive integer, or a config is invalid.
    """
    from ..store import Task

    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ConfigError("at least one seed is needed")
    if not isinstance(seed_chunk, int) or seed_chunk < 1:
        raise ConfigError(f"seed chunk must be a positive integer, got {seed_chunk!r}")
    path = Path(data_path).expanduser().resolve()
    base = {"data_path": str(path), "data_sha256": file_sha256(path)}
    tasks = []
    for layout in layouts:
        for m in models:
            cfg = {**base, "model": m, "layout": layout, **fixed}
            validate_config(cfg)
            for i in range(0, len(seeds), seed_chunk):
                tasks.append(Task(STUDY, cfg, seeds[i:i + seed_chunk]))
    tasks.sort(key=lambda t: -COST[t.config["model"]])
    return tasks


# ============================================================================================
# tables
# ============================================================================================
def runs_frame(df: pd.DataFrame) -> pd.DataFrame:
    """The store's rows reduced to what the report needs (one row per run).

    Parameters
    ----------
    df : pandas.DataFrame
        The results store's table of ``zhao_reviews`` runs.

    Returns
    -------
    pandas.DataFrame
        ``model``, ``layout``, ``epochs``, ``hidden``, ``K``, ``n_test``, ``seed``, ``status``,
        ``<split>_<metric>`` for the splits train/val/test and :data:`METRICS` present, and
        ``best_epoch``, ``best_val_ce``, ``d``, ``wall_s``, ``batch_wall_s``, ``vocabulary`` when present.
    """
    out = pd.DataFrame({k: df[config_column(df, k)].values for k in ("model", "layout", "epochs", "hidden", "K")})
    out["n_test"] = df[config_column(df, "test")].values
    out["seed"] = df["seed"].values
    out["status"] = df["status"].values
    for split in ("train", "val", "test"):
        for m in METRICS:
            c = f"{split}_{m}"
            if c in df.columns:
                out[c] = df[c].astype(float).values
    for c in ("best_epoch", "best_val_ce", "d", "wall_s", "batch_wall_s", "vocabulary"):
        if c in df.columns:
            out[c] = df[c].values
    return out


def summary(runs: pd.DataFrame) -> pd.DataFrame:
    """Per (layout, model): runs, and for each test metric the mean, std (ddof 1) and best over the
    seeds that did not diverge (best = max, min for the cross-entropy).

    Parameters
    ----------
    runs : pandas.DataFrame
        :func:`runs_frame`'s output.

    Returns
    -------
    pandas.DataFrame
        One row per (layout, model): ``runs``, ``diverged``, ``<metric>_mean``, ``<metric>_std``,
        ``<metric>_best`` for accuracy, precision, recall, f1 and ce, ``best_epoch_mean`` and, for
        models that learn d, ``d_mean``; layout ``rnnmem`` first, models in the paper's order.
    """
    rows = []
    for (layout, model), g in runs.groupby(["layout", "model"], sort=False):
        ok = g[g["status"] != "diverged"]
        row = {"layout": layout, "model": model, "runs": len(g), "diverged": int((g["status"] == "diverged").sum())}
        for m in METRICS:
            v = ok[f"test_{m}"].astype(float).dropna()
            row[f"{m}_mean"] = float(v.mean()) if len(v) else math.nan
            row[f"{m}_std"] = float(v.std(ddof=1)) if len(v) > 1 else math.nan
            row[f"{m}_best"] = (float(v.min()) if m == "ce" else float(v.max())) if len(v) else math.nan
        if "best_epoch" in g:
            row["best_epoch_mean"] = float(g["best_epoch"].astype(float).mean())
        if "d" in g and g["d"].notna().any():
            row["d_mean"] = float(g["d"].astype(float).mean())
        rows.append(row)
    out = pd.DataFrame(rows)
    if len(out):
        lo = {"rnnmem": 0, "paper": 1}
        mo = {m: i for i, m in enumerate(PAPER_MODELS)}
        out = out.sort_values(["layout", "model"], key=lambda c: c.map(lo if c.name == "layout" else mo),
                              kind="stable").reset_index(drop=True)
    return out


def metrics_table(summ: pd.DataFrame) -> pd.DataFrame:
    """Mean (std) / best of every test metric per layout and model, as text.

    Parameters
    ----------
    summ : pandas.DataFrame
        :func:`summary`'s output.

    Returns
    -------
    pandas.DataFrame
        ``layout``, ``model`` (label), ``runs`` and, per metric, ``<metric> mean (std)`` and
        ``<metric> best`` (4 decimals; empty where undefined).
    """
    rows = []
    for r in summ.itertuples():
        row = {"layout": r.layout, "model": LABELS.get(r.model, r.model), "runs": r.runs}
        for m in METRICS:
            mean, std, best = getattr(r, f"{m}_mean"), getattr(r, f"{m}_std"), getattr(r, f"{m}_best")
            row[f"{m} mean (std)"] = "" if math.isnan(mean) else (
                f"{mean:.4f} ({std:.4f})" if not math.isnan(std) else f"{mean:.4f}")
            row[f"{m} best"] = "" if math.isnan(best) else f"{best:.4f}"
        rows.append(row)
    return pd.DataFrame(rows)


def published_comparison(runs: pd.DataFrame) -> pd.DataFrame:
    """Ours beside Tables 5-6: mean and best test accuracy per layout; for the paper layout a
    one-sample t-test of each layout's accuracies against the published mean, and the share of the
    gap (ours, correct layout) - (published) that switching to the published layout closes:
    ``(mean_rnnmem - mean_paper_layout) / (mean_rnnmem - published)`` (1: all of it, 0: none,
    negative: the layout moves our mean away from the published one, > 1: past it).

    The one-sample t-test (``scipy.stats.ttest_1samp``, two-sided; Student 1908) is run for each
    layout with at least two distinct accuracies; published figures: Zhao et al. (ICML 2020),
    Tables 5-6.

    Parameters
    ----------
    runs : pandas.DataFrame
        :func:`runs_frame`'s output (diverged runs are left out).

    Returns
    -------
    pandas.DataFrame
        One row per model run: ``model``, ``published mean``, ``published best`` and per layout
        ``<layout> mean``, ``<layout> best``, ``<layout> n``, ``<layout> p vs published mean``; with
        both layouts, ``gap explained by layout``.
    """
    from scipy import stats

    ok = runs[runs["status"] != "diverged"]
    rows = []
    for m in PAPER_MODELS:
        if m not in set(ok["model"]):
            continue
        pub_mean, pub_best = ZHAO2020_TABLES56[m]
        row = {"model": LABELS[m], "published mean": pub_mean, "published best": pub_best}
        means = {}
        for layout in ("rnnmem", "paper"):
            v = ok[(ok["model"] == m) & (ok["layout"] == layout)]["test_accuracy"].astype(float).dropna().values
            if len(v):
                means[layout] = float(v.mean())
                row[f"{layout} mean"] = float(v.mean())
                row[f"{layout} best"] = float(v.max())
                row[f"{layout} n"] = len(v)
                if len(v) > 1 and np.std(v) > 0:
                    row[f"{layout} p vs published mean"] = float(stats.ttest_1samp(v, pub_mean).pvalue)
        if "rnnmem" in means and "paper" in means:
            gap = means["rnnmem"] - pub_mean
            row["gap explained by layout"] = (means["rnnmem"] - means["paper"]) / gap if gap != 0 else math.nan
        rows.append(row)
    return pd.DataFrame(rows)


def welch_tests(runs: pd.DataFrame, metric: str = "test_accuracy", test=TEST_MODEL, baselines=BASELINES) -> pd.DataFrame:
    """Welch two-sample t-tests (scipy.stats.ttest_ind, equal_var=False) of ``metric``: ``test``
    against each model in ``baselines``, per layout.

    ``t = (mean_a - mean_b) / sqrt(s_a^2 / n_a + s_b^2 / n_b)`` with Welch-Satterthwaite degrees of
    freedom (Welch 1947), two-sided p-value; diverged runs are left out.

    Parameters
    ----------
    runs : pandas.DataFrame
        :func:`runs_frame`'s output.
    metric : str, default "test_accuracy"
        The column compared.
    test : str, default TEST_MODEL ("mlstmf")
    baselines : iterable of str, default BASELINES ("rnn", "lstm")

    Returns
    -------
    pandas.DataFrame
        One row per (layout, baseline) with at least two values each: ``layout``, ``metric``,
        ``model``, ``vs``, ``n``, ``n_vs``, ``mean``, ``mean_vs``, ``diff``, ``t``, ``p``, ``verdict``.
    """
    from scipy import stats

    ok = runs[runs["status"] != "diverged"]
    rows = []
    for layout in [lo for lo in ("rnnmem", "paper") if lo in set(ok["layout"])]:
        g = ok[ok["layout"] == layout]
        xa = g.loc[g["model"] == test, metric].astype(float).dropna().values
        for b in baselines:
            xb = g.loc[g["model"] == b, metric].astype(float).dropna().values
            if len(xa) < 2 or len(xb) < 2:
                continue
            res = stats.ttest_ind(xa, xb, equal_var=False)
            p = float(res.pvalue)
            rows.append({"layout": layout, "metric": metric, "model": LABELS[test], "vs": LABELS[b],
                         "n": len(xa), "n_vs": len(xb), "mean": xa.mean(), "mean_vs": xb.mean(),
                         "diff": xa.mean() - xb.mean(), "t": float(res.statistic), "p": p,
                         "verdict": ("higher" if xa.mean() > xb.mean() else "lower") + (
                             " (p<0.05)" if p < 0.05 else " (n.s.)" if not math.isnan(p) else " (no variance)")})
    return pd.DataFrame(rows)


# ============================================================================================
# figure
# ============================================================================================
def box_plot(runs: pd.DataFrame, baseline: dict, path) -> Path:
    """Test accuracy over seeds per model, one panel per layout; red diamonds: published means,
    dashed: majority-class baselines.

    Parameters
    ----------
    runs : pandas.DataFrame
        :func:`runs_frame`'s output (diverged runs are left out).
    baseline : dict
        ``tasks.reviews.majority_baseline``'s output (``test_accuracy``, ``whole_set_rate``).
    path : str or Path
        The PNG to write (130 dpi).

    Returns
    -------
    Path
        ``path``.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ok = runs[runs["status"] != "diverged"]
    layouts = [lo for lo in ("rnnmem", "paper") if lo in set(ok["layout"])]
    fig, axes = plt.subplots(1, max(1, len(layouts)), figsize=(5.5 * max(1, len(layouts)), 4.2), squeeze=False,
                             sharey=True)
    for ax, layout in zip(axes[0], layouts):
        g = ok[ok["layout"] == layout]
        models = [m for m in PAPER_MODELS if m in set(g["model"])]
        ax.boxplot([g.loc[g["model"] == m, "test_accuracy"].astype(float).dropna().values for m in models])
        ax.set_xticks(range(1, len(models) + 1), [LABELS[m] for m in models])
        for i, m in enumerate(models, start=1):
            ax.plot(i, ZHAO2020_TABLES56[m][0], "D", color="tab:red", ms=6, label="paper mean" if i == 1 else None)
        ax.axhline(baseline["test_accuracy"], ls="--", color="gray",
                   label=f"train-majority class on test ({baseline['test_accuracy']:.2f})")
        ax.axhline(baseline["whole_set_rate"], ls=":", color="gray",
                   label=f"majority rate, whole set ({baseline['whole_set_rate']:.3f})")
        ax.set_title(LAYOUT_LABELS[layout])
        ax.set_ylabel(f"test accuracy ({int(g['n_test'].iloc[0])} reviews)" if "n_test" in g else "test accuracy")
        ax.grid(axis="y", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8, frameon=False)
    fig.suptitle("Zhao et al. (2020) review classification: test accuracy over seeds")
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    path = Path(path)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


# ============================================================================================
# the whole reproduction
# ============================================================================================
def write_report(runs: pd.DataFrame, out: Path, meta: dict, data: dict) -> tuple[Path, Path]:
    """Write ``zhao_reviews_report.md`` / ``.html``, the box plot and the CSV tables into ``out``.

    Files besides the report: ``zhao_reviews_boxplot.png``, ``zhao_reviews_summary.csv`` and
    ``zhao_reviews_runs.csv``.

    Parameters
    ----------
    runs : pandas.DataFrame
        :func:`runs_frame`'s output.
    out : Path
        The output folder (must exist).
    meta : dict
        ``command``, ``seeds``, ``seed_chunk``, ``K``, ``hidden``, ``lr``, ``weight_decay``,
        ``batch_size``, ``epochs``, ``dtype``, ``device``, ``wall_s``, ``runs``, ``computed``, ``db``.
    data : dict
        :func:`data_facts`' output.

    Returns
    -------
    tuple of (Path, Path)
        The Markdown and HTML reports.
    """
    from ..report.document import Document

    summ = summary(runs)
    doc = Document("Zhao et al. (ICML 2020), \"Do RNN and LSTM have Long Memory?\": review classification")
    doc.text(f"Command: `{meta['command']}`. {meta['seeds']} seeds per model and layout, trained in batched chunks of "
             f"{meta['seed_chunk']} seeds; two layers (first: RNN, LSTM, MRNNF K={meta['K']}, MLSTMF K={meta['K']}; "
             f"second: LSTM), hidden {meta['hidden']}; Adam lr {meta['lr']:g}, weight decay {meta['weight_decay']:g}, "
             f"batch {meta['batch_size']}, {meta['epochs']} epochs, model kept at the best validation cross-entropy; "
             f"dtype {meta['dtype']}, device {meta['device']}. Wall time {meta['wall_s']:.0f} s "
             f"({meta['runs']} runs, {meta['computed']} computed now). Results store: `{meta['db']}`.")
    doc.heading("Data")
    counts = data["class_counts"]
    doc.text(f"`{data['source']}`: {data['reviews']} Spanish reviews with non-empty text (language counts "
             f"{data['languages']}, {data['dropped_empty']} Spanish reviews dropped for empty text); class counts "
             f"(evaluation -2..2) {counts}"
             + (" (as published: 382 reviews, 85/58/59/81/99)." if data["reviews"] == 382 and
                tuple(counts) == (85, 58, 59, 81, 99) else " (the published set: 382 reviews, 85/58/59/81/99).")
             + f" Split: RandomState({data['split_seed']}).permutation, {data['split'][0]} train / {data['split'][1]} "
             f"validation / {data['split'][2]} test. Word vectors: {data['embedding']['dim']}-dim skip-gram "
             f"(window {data['embedding']['window']}, min count {data['embedding']['min_count']}, "
             f"{data['embedding']['epochs']} epochs, seed {data['embedding']['seed']}; vocabulary "
             f"{data['embedding']['vocabulary']}), sequences padded or truncated to {data['pad']} tokens "
             f"({data['truncated']} of {data['reviews']} reviews are longer).")
    base = data["baseline"]
    doc.text(f"Majority-class baselines (computed): the most frequent class covers {base['whole_set_rate']:.3f} of the "
             f"whole set (the paper: {ZHAO2020_MAJORITY:.1%}); always predicting the training split's most frequent "
             f"class scores {base['test_accuracy']:.2f} on this test split.")
    doc.heading("Test metrics over seeds")
    doc.table(metrics_table(summ), caption="Test split; mean (std, ddof 1) and best over seeds (best = lowest for "
              "the cross-entropy). Precision, recall and F1 are macro averages over the labels present in the "
              "targets or predictions (scikit-learn's average='macro'). Diverged runs are excluded and counted.")
    doc.heading("Beside the published Tables 5-6")
    comp = published_comparison(runs)
    if len(comp):
        doc.table(comp, caption=f"Test accuracy. Published: {CITATION} (100 seeds; figures embedded in rnnmem as "
                  "published facts). 'p vs published mean': one-sample t-test of our seeds against the published mean. "
                  "'gap explained by layout': (rnnmem mean - paper-layout mean) / (rnnmem mean - published mean): "
                  "1 = the published layout accounts for the whole difference, 0 = for none of it, negative = it "
                  "moves our mean away from the published one.")
    fig = box_plot(runs, base, out / "zhao_reviews_boxplot.png")
    doc.figure(fig, "Test accuracy over seeds; red diamonds: published means; dashed: majority class of the "
                    "training split predicted on the test split; dotted: majority rate of the whole set.")
    doc.heading("Welch t-tests: MLSTMF against RNN and LSTM")
    tests = pd.concat([welch_tests(runs, "test_accuracy"), welch_tests(runs, "test_f1")], ignore_index=True)
    if len(tests):
        doc.table(tests, caption="scipy.stats.ttest_ind(equal_var=False) over seeds; diff = mean - mean_vs (positive: "
                                 "MLSTMF better). The paper reports MLSTMF with the highest mean accuracy.")
    else:
        doc.text("Not enough runs for the tests (need at least two seeds of MLSTMF and of RNN/LSTM).")
    if "paper" in set(runs["layout"]):
        doc.heading("The published layout")
        doc.text("The published training script reshapes the padded batch array of shape (N, T, D) to (T, N, D) with "
                 "np.reshape instead of a transpose, so the sequence fed for example n at step t is token "
                 "(t*N + n) mod T of review floor((t*N + n) / T): words of many reviews. rnnmem reproduces it with "
                 "`--paper-layout` (per split, as published); the labels and the last-token index stay those of "
                 "review n.")
    doc.heading("Runs")
    doc.text(f"Statuses: {runs['status'].value_counts().to_dict()}. Each run's full configuration, metrics and curves "
             "(train/validation cross-entropy and validation accuracy per epoch) are in the results store "
             "(`rnnmem results` exports them).")
    summ.to_csv(out / "zhao_reviews_summary.csv", index=False)
    runs.to_csv(out / "zhao_reviews_runs.csv", index=False)
    return doc.save(out, "zhao_reviews_report")


def data_facts(cfg: ReviewsConfig) -> dict:
    """What the report says about the data (counts, split, embedding, baselines).

    Parameters
    ----------
    cfg : ReviewsConfig
        A configuration of the study (its data, split and embedding settings are used).

    Returns
    -------
    dict
        ``source``, ``reviews``, ``class_counts``, ``languages``, ``dropped_empty``, ``split``,
        ``split_seed``, ``pad``, ``truncated`` (reviews longer than ``pad`` tokens), ``embedding``
        (its config with ``steps`` and ``mean_loss``) and ``baseline``
        (``tasks.reviews.majority_baseline``).

    Raises
    ------
    InputError
        If the data file changed since set-up or cannot be read.
    """
    from ..tasks.reviews import class_counts, majority_baseline

    task = prepared(cfg)
    fr = task.frame
    return {"source": cfg.data_path, "reviews": len(fr), "class_counts": class_counts(fr),
            "languages": fr.attrs.get("languages", {}), "dropped_empty": fr.attrs.get("dropped_empty", 0),
            "split": [cfg.train, cfg.val, cfg.test], "split_seed": cfg.split_seed, "pad": cfg.pad,
            "truncated": int((fr["tokens"] > cfg.pad).sum()),
            "embedding": {**task.config["embedding"], "steps": task.embedding.config.get("steps"),
                          "mean_loss": task.embedding.config.get("mean_loss")},
            "baseline": majority_baseline(fr, task.indices)}


def reproduce(out, data, models=PAPER_MODELS, seeds: int = 100, seed: int = 0, epochs: int = 100,
              paper_layout: bool = False, split=(282, 50, 50), seed_chunk: int = 10, hidden: int = 128, K: int = 50,
              db=None, device: str = "cpu", dtype: str = "float32", workers: int | None = None,
              progress: bool = True, command: str = "") -> dict:
    """Run (or resume) the review-classification study and write the report. Returns the report
    paths, the summary and timings.

    Parameters
    ----------
    out : str or Path
        The output folder (created); the results database defaults to ``out/results.sqlite``.
    data : str or Path
        The UCI paper-review file (``tasks.reviews.load_reviews``).
    models : iterable of str, default PAPER_MODELS
    seeds : int, default 100
        Seeds per (model, layout): ``seed .. seed + seeds - 1``.
    seed : int, default 0
    epochs : int, default 100
    paper_layout : bool, default False
        Also train on the published (T, N, D)-reshape layout.
    split : tuple of 3 int, default (282, 50, 50)
        Train / validation / test reviews; must add up to the usable reviews.
    seed_chunk : int, default 10
        Seeds per task.
    hidden : int, default 128
    K : int, default 50
        Filter length of MRNNF / MLSTMF.
    db : str or Path or None
        The results database (finished runs are reused).
    device : str, default "cpu"
    dtype : str, default "float32"
    workers : int or None
    progress : bool, default True
    command : str, default ""

    Returns
    -------
    dict
        ``markdown``, ``html`` (paths), ``runs``, ``computed``, ``wall_s``, ``db``, ``summary``,
        ``comparison`` (:func:`published_comparison`) and ``data`` (:func:`data_facts`).

    Raises
    ------
    ConfigError
        For invalid ``seeds``, device, model or split (its sum must equal the usable reviews).
    InputError
        If the data file is missing or unreadable (checked before any task starts).
    """
    from ..store import ResultStore, pending_tasks, run_tasks
    from ..tasks.reviews import load_reviews

    out = Path(out).expanduser()
    if not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {seeds!r}")
    resolve_device(device)
    models = tuple(models)
    for m in models:
        if m not in PAPER_MODELS:
            raise ConfigError(f"unknown model {m!r}; choose from {', '.join(PAPER_MODELS)}")
    if len(split) != 3:
        raise ConfigError(f"--split must be TRAIN,VAL,TEST, got {split!r}")
    path = Path(data).expanduser()
    frame = load_reviews(path)                       # fail fast on a bad file, before any task starts
    if sum(int(s) for s in split) != len(frame):
        raise ConfigError(f"{path} has {len(frame)} usable reviews but the split {'/'.join(map(str, split))} needs "
                          f"{sum(int(s) for s in split)}; pass --split TRAIN,VAL,TEST adding up to {len(frame)}")
    out.mkdir(parents=True, exist_ok=True)
    layouts = ("rnnmem", "paper") if paper_layout else ("rnnmem",)
    fixed = {"train": int(split[0]), "val": int(split[1]), "test": int(split[2]), "epochs": int(epochs),
             "hidden": int(hidden), "K": int(K), "dtype": dtype, "device": device}
    tasks = build_tasks(path, models, layouts, range(seed, seed + seeds), seed_chunk, **fixed)
    db_path = Path(db).expanduser() if db else out / "results.sqlite"
    start = time.perf_counter()
    with ResultStore(db_path) as store:
        pending, _ = pending_tasks(tasks, store)
        computed = sum(len(t.seeds) for t in pending)
        table = run_tasks(tasks, "rnnmem.studies.zhao_reviews:run_batch", store, workers=workers, progress=progress,
                          description="zhao-reviews: model x layout x seed-chunk tasks")
    wall = time.perf_counter() - start
    runs = runs_frame(table)
    cfg = validate_config(tasks[0].config)
    facts = data_facts(cfg)
    meta = {"command": command or "rnnmem reproduce zhao-reviews", "seeds": seeds, "seed_chunk": seed_chunk,
            "hidden": hidden, "K": K, "lr": cfg.lr, "weight_decay": cfg.weight_decay, "batch_size": cfg.batch_size,
            "epochs": epochs, "dtype": dtype, "device": device, "wall_s": wall, "runs": len(runs),
            "computed": computed, "db": db_path.name if db_path.parent == out else str(db_path)}
    md, html = write_report(runs, out, meta, facts)
    return {"markdown": md, "html": html, "runs": len(runs), "computed": computed, "wall_s": wall, "db": db_path,
            "summary": summary(runs), "comparison": published_comparison(runs), "data": facts}


__all__ = ["STUDY", "PAPER_MODELS", "ZHAO2020_TABLES56", "ZHAO2020_MAJORITY", "ReviewsConfig", "run_batch",
           "build_tasks", "runs_frame", "summary", "metrics_table", "published_comparison", "welch_tests", "box_plot",
           "reproduce", "data_facts"]
