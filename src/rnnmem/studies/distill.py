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
    their parameters beside the published counts."""
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
    """Train (thin) and validation (markers) masked cross-entropy against step, one colour per model."""
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
    the study's convention (padding counted as misses) beside the published curve."""
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
    """Accuracy at the planted response word (k = 0) by gap, with chance level."""
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


# --------------------------------------------------------------------------- study
def reproduce(out, corpus=None, quick: bool = False, device="cpu", steps: int | None = None,
              epochs: float | None = None, hidden: int | None = None, models=("gru", "lstm", "nlstm"),
              batch_size: int = 64, lr: float | None = None, seed: int = 0, cache_dir=None,
              max_length: int | None = None, vocab_size: int = 2**14, checkpoint_every: int = 500,
              eval_every: int | None = None, eval_batches: int | None = 20, resume: bool = True,
              explorer: bool = True, progress: bool = False, command: str | None = None) -> dict:
    """Run the study and write the report into ``out`` (see module docstring).

    Re-running with the same ``out`` resumes each model from its checkpoint. Returns a dict with
    the result tables (pandas) and the report paths."""
    t_start = time.perf_counter()
    if quick == (corpus is not None):
        raise ConfigError("give either a corpus (--corpus PATH, text8 format) or --quick (synthetic corpus)")
    unknown = [m for m in models if m not in STUDY_MODELS]
    if unknown or not models:
        raise ConfigError(f"unknown model(s) {unknown}; choose from {', '.join(STUDY_MODELS)}")
    if corpus is not None:
        corpus = check_corpus(corpus)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    device = str(torch.device(device))
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

    explorer_path = None
    sample = _sample_text(data, synthetic)
    if explorer:
        from ..report.explorer import write_explorer

        with _Bars(progress) as bars:
            bar = bars.task("explorer (connectivity)", 1)
            explorer_path = write_explorer(trained, sample, out / "explorer.html", device=device,
                                           title="Connectivity explorer: " + ", ".join(trained),
                                           progress=(lambda stage, d, t: bar(d, t)) if bar else None)
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
                       explorer_path, sample, results)
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


def _sample_text(data, synthetic) -> str:
    """A test observation for the explorer: for the synthetic corpus one holding a planted episode."""
    test = data.split_index("test")
    if synthetic is not None:
        pos = dependency_positions(data, synthetic.dependencies, "test")
        if len(pos):
            return data.decode(int(pos.sort_values("gap_words", ascending=False)["row"].iloc[0]))
    return data.decode(int(test[0]))


def _report(out, config, data, summary, comp_df, params, known_df, dep_df, curves, kplot, dplot, explorer_path,
            sample, results) -> tuple[Path, Path]:
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
    doc.heading("Interactive explorer")
    if explorer_path is not None:
        doc.text(f"Open `{explorer_path.name}` (self-contained, offline): hover a character to colour earlier "
                 "characters by connectivity and list the top-3 predicted words.")
    else:
        doc.text("The explorer page was not written (explorer=False). Sample text: `" + sample.strip()[:120] + "`.")
    doc.heading("Reproducibility")
    doc.bullets([f"command: `{config['command'] or 'rnnmem.studies.distill.reproduce'}`",
                 "versions: " + ", ".join(f"{k} {v}" for k, v in config["versions"].items()),
                 f"wall time {config['wall_s']:.0f} s; full configuration in results.json; checkpoints and logs "
                 "in models/<cell>/ (rerun the same command to resume)"])
    return doc.save(out, "report")
