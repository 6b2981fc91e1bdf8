"""``rnnmem reproduce distill`` (the study), ``rnnmem train-autocomplete`` (one model) and
``rnnmem synthetic-text`` (write a corpus with planted dependencies)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .parsing import ints, names


def distill_command(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="text8-format corpus (e.g. the unzipped text8)."),
    quick: bool = typer.Option(False, "--quick", help="Small models on the synthetic corpus (minutes on a CPU)."),
    out: Path = opt.out_option("rnnmem-distill", "Output folder (rerun to resume)."),
    device: str = opt.device_option("Full size needs a GPU."),
    steps: Optional[int] = typer.Option(None, help="Training steps per model (default: 2 epochs; quick 700)."),
    epochs: Optional[float] = typer.Option(None, help="Training epochs per model (if --steps is not given)."),
    hidden: Optional[int] = typer.Option(None, help="Units and embedding size (default 600; quick 64)."),
    models: str = typer.Option("gru,lstm,nlstm", help="Comma-separated subset of gru, lstm, nlstm."),
    batch_size: int = typer.Option(64, "--batch-size", help="Observations per batch."),
    lr: Optional[float] = typer.Option(None, help="Adam learning rate (default 1e-3; quick 3e-3)."),
    seed: int = opt.seed_option("Seed of the split, initialisation and batch order."),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Dataset cache (default ~/.cache/rnnmem)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Steps between checkpoints."),
    eval_every: Optional[int] = typer.Option(None, "--eval-every", help="Steps between validation losses."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Ignore existing checkpoints in --out."),
    threads: Optional[int] = typer.Option(None, "--threads", help=opt.THREADS_HELP + " With --quick the default "
                                          "is 1: its small models gain nothing from more."),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Reproduce Madsen (Distill 2019): autocomplete GRU / LSTM / Nested LSTM, test table, known-chars curve."""
    rt = opt.runtime(device, threads or (1 if quick else None), quiet=quiet)
    from rich.console import Console

    from ..studies.distill import reproduce

    res = reproduce(out, corpus=corpus, quick=quick, device=rt.device, steps=steps, epochs=epochs, hidden=hidden,
                    models=names(models), batch_size=batch_size, lr=lr, seed=seed, cache_dir=cache_dir,
                    checkpoint_every=checkpoint_every, eval_every=eval_every, resume=not no_resume,
                    progress=rt.progress, command=opt.command_line())
    from rich.table import Table

    table = Table(title="Test split beside the published table" + (" (quick: not comparable)" if quick else ""))
    cols = ["model", "cross entropy (study)", "published cross entropy", "accuracy (study)", "published accuracy"]
    for col in cols:
        table.add_column(col)
    for _, row in res["comparison"].iterrows():
        table.add_row(row["model"], *(f"{row[c]:.4f}" for c in cols[1:]))
    console = Console()
    console.print(table)
    console.print(f"report: {res['html']} and {res['markdown']} ({res['wall_s']:.0f} s)")


def train_command(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="text8-format corpus."),
    synthetic: bool = typer.Option(False, "--synthetic", help="Use the quick synthetic corpus instead."),
    out: Path = opt.out_option("rnnmem-autocomplete", "Folder for checkpoint, log, model.pt."),
    cell: str = typer.Option("gru", help="Unit: gru, lstm, nlstm (the study's), or any of {units}."),
    hidden: int = typer.Option(600, help="Recurrent units."),
    layers: int = typer.Option(2, help="Stacked layers."),
    embedding: Optional[int] = typer.Option(None, help="Embedding size (default: = hidden)."),
    depth: int = typer.Option(2, help="Nested LSTM depth."),
    convention: str = typer.Option("tf1", help="torch | keras | keras2 | tf1."),
    steps: Optional[int] = typer.Option(None, help="Training steps (default: 2 epochs)."),
    epochs: Optional[float] = typer.Option(None, help="Training epochs."),
    batch_size: int = typer.Option(64, "--batch-size", help="Observations per batch."),
    lr: float = typer.Option(1e-3, help="Adam learning rate."),
    max_length: int = typer.Option(200, "--max-length", help="Characters per observation."),
    seed: int = opt.seed_option("Seed of the split, initialisation, batch order (and the synthetic corpus)."),
    device: str = opt.device_option(),
    cache_dir: Optional[Path] = typer.Option(None, "--cache-dir", help="Dataset cache (default ~/.cache/rnnmem; "
                                             "with --synthetic OUT/cache)."),
    checkpoint_every: int = typer.Option(500, "--checkpoint-every", help="Steps between checkpoints in OUT "
                                         "(a rerun resumes from the last one)."),
    eval_every: int = typer.Option(200, "--eval-every", help="Steps between validation losses (logged to "
                                   "log.csv)."),
    no_resume: bool = typer.Option(False, "--no-resume", help="Ignore an existing checkpoint in OUT and start over."),
    threads: Optional[int] = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Train one autocomplete model; writes OUT/model.pt (for `rnnmem connectivity --model`), log.csv, curves."""
    rt = opt.runtime(device, threads, quiet=quiet)
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    from ..errors import ConfigError
    from ..studies.distill import QUICK, plot_training_curves
    from ..tasks.autocomplete import build_dataset, check_corpus
    from ..tasks.synthetic_text import planted_dependency_text
    from ..train.autocomplete import AutocompleteModel, TrainConfig, evaluate, save_checkpoint, train_autocomplete

    if synthetic == (corpus is not None):
        raise ConfigError("give either --corpus PATH or --synthetic")
    from ..cells import list_units

    if cell not in list_units():
        raise ConfigError(f"unknown cell {cell!r}; choose one of {', '.join(list_units())}")
    if corpus is not None:
        check_corpus(corpus, synthetic_hint="--synthetic")
    opt.check_out_dir(out)
    if synthetic:
        corpus, _ = planted_dependency_text(seed=seed, **QUICK["corpus"]).save(out / "synthetic.txt")
        cache_dir = cache_dir or out / "cache"
    console = Console(stderr=True)
    data = build_dataset(corpus, max_length=max_length, seed=seed, cache_dir=cache_dir)
    model = AutocompleteModel(cell, hidden, layers, embedding or hidden, convention, depth=depth, seed=seed,
                              words=data.words)
    cfg = TrainConfig(steps=steps, epochs=epochs, batch_size=batch_size, lr=lr, seed=seed,
                      checkpoint_every=checkpoint_every, eval_every=eval_every)
    with Progress(TextColumn(f"train {cell}"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[info]}"),
                  TimeRemainingColumn(), console=console, disable=rt.quiet) as bar:
        task = bar.add_task("train", total=cfg.total_steps(len(data.split_index("train"))), info="")
        res = train_autocomplete(model, data, cfg, out_dir=out, device=rt.device, resume=not no_resume,
                                 progress=lambda s, t, info: bar.update(task, completed=s, info=f"loss {info['loss']:.3f}"))
    save_checkpoint(model, out / "model.pt", train=res.config["train"], data=res.config["data"])
    plot_training_curves({cell: res.log}, out / "curves.png", title=f"Training curves ({cell}, {hidden} units)")
    ev = evaluate(model, data, "test", batch_size=batch_size, device=rt.device)
    Console().print({k: (round(v, 4) if isinstance(v, float) else v) for k, v in ev.summary.items()})
    Console().print(f"wrote {out / 'model.pt'}, {out / 'log.csv'}, {out / 'curves.png'}")


def synthetic_command(
    path: Path = typer.Argument(..., help="Output text8-format file (episodes go to PATH.dependencies.csv)."),
    words: int = typer.Option(200_000, help="Filler words."),
    vocab: int = typer.Option(2_000, help="Filler vocabulary (Zipf)."),
    keys: int = typer.Option(10, help="Distinct key words."),
    distances: str = typer.Option("2,4,8,16", help="Comma-separated gaps (filler words between key and cue)."),
    rate: float = typer.Option(0.03, help="Episode probability per filler word."),
    kind: str = typer.Option("copy", help="copy | agreement."),
    seed: int = opt.seed_option("Seed of the generator."),
) -> None:
    """Write a synthetic corpus with planted long-range dependencies of known distance."""
    from rich.console import Console

    from ..tasks.synthetic_text import planted_dependency_text

    dist = ints(distances, "--distances")
    corpus = planted_dependency_text(n_words=words, vocab_size=vocab, n_keys=keys, distances=dist, rate=rate,
                                     kind=kind, seed=seed)
    text_path, dep_path = corpus.save(path)
    Console().print(f"wrote {text_path} ({corpus.config['total_words']:,} words, {corpus.config['episodes']:,} "
                    f"episodes) and {dep_path}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    reproduce.command("distill")(distill_command)
    app.command("train-autocomplete")(train_command)
    app.command("synthetic-text")(synthetic_command)
