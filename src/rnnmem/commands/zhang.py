"""``rnnmem reproduce zhang``: semantic memory of RNN, LSTM and GRU (after Zhang et al., ECAI 2020)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .parsing import ints, name_values, names


def zhang_command(
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="A text8-format corpus (lower-case words separated "
                                          "by spaces)."),
    quick: bool = typer.Option(False, "--quick", help="Small models, short lengths, the synthetic key-recall corpus "
                               "(CPU minutes)."),
    out: Path = opt.out_option("rnnmem-zhang", "Output folder (report, figures, CSVs)."),
    device: str = opt.device_option(),
    dtype: str = opt.dtype_option("float32 | float64: precision of the trained language models (the semantic "
                                  "indicators are always computed in float64)."),
    threads: Optional[int] = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
    embedding: Optional[Path] = typer.Option(None, "--embedding", help="Use this word2vec text file as the space "
                                             "instead of training skip-gram."),
    units: Optional[str] = typer.Option(None, "--units", help="Comma-separated units (default rnn,lstm,gru)."),
    train_lengths: Optional[str] = typer.Option(None, "--train-lengths", help="Comma-separated training lengths "
                                                "(default 25,50,100,150,200; quick 10,20,40)."),
    prefix_lengths: Optional[str] = typer.Option(None, "--prefix-lengths", help="Comma-separated prefix lengths "
                                                 "(default 5,10,25,50,75,100,150,200; quick 5,10,20,30,40)."),
    hidden: Optional[int] = typer.Option(None, "--hidden", help="Hidden units (default 128; quick 64)."),
    dim: Optional[int] = typer.Option(None, "--dim", help="Dimension of the skip-gram space (default 200; quick 40)."),
    budget: Optional[int] = typer.Option(None, "--budget", help="Target words per training run (default 2,000,000)."),
    vocab_size: Optional[int] = typer.Option(None, "--vocab-size", help="Corpus vocabulary (most frequent words; "
                                             "default 10,000)."),
    max_words: Optional[int] = typer.Option(None, "--max-words", help="Use only the first N words of the corpus."),
    threshold: list[str] = typer.Option([], "--threshold", help="NAME=VALUE, repeatable: hull_score, coverage, "
                                        "recall_score, area_ratio (defaults: hull_score=0.5, coverage=0.75; "
                                        "recall_score and area_ratio only when given)."),
    seed: int = opt.seed_option("First seed of the corpus, space, training and windows."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds run (seed, seed+1, ...); every indicator, "
                                        "comparison and recommendation gets a 95% interval over them (default 5; "
                                        "quick 3; 1 gives no interval)."),
) -> None:
    """Semantic memory (after Zhang et al., ECAI 2020): train RNN, LSTM and GRU on a corpus under the same
    budget, measure hull distance, memory profile, recall and retained area over prefix and training lengths,
    and recommend a training length per unit."""
    rt = opt.runtime(device, threads, dtype=dtype, quiet=quiet)
    from dataclasses import replace

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..errors import ConfigError
    from ..studies.zhang import ZhangConfig, quick_config, reproduce

    if corpus is None and not quick:
        raise ConfigError("give --corpus PATH (a text8-format file) or --quick (the synthetic corpus)")
    if corpus is not None:
        from ..tasks.autocomplete import check_corpus

        check_corpus(corpus, synthetic_hint="--quick")
    cfg = quick_config() if quick else ZhangConfig()
    over = {"model_dtype": rt.dtype}
    if units:
        over["units"] = tuple(names(units))
    if train_lengths:
        over["train_lengths"] = tuple(ints(train_lengths, "--train-lengths", nonempty=True))
    if prefix_lengths:
        over["prefix_lengths"] = tuple(ints(prefix_lengths, "--prefix-lengths", nonempty=True))
    for key, val in (("seeds", seeds), ("hidden", hidden), ("embedding_dim", dim), ("budget_tokens", budget),
                     ("vocab_size", vocab_size), ("max_words", max_words)):
        if val is not None:
            if val < 1:
                raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer, got {val}")
            over[key] = val
    if threshold:
        over["thresholds"] = {**cfg.thresholds, **name_values(threshold, "--threshold", "recall_score=0.3")}
    cfg = replace(cfg, seed=seed, **over).validate()
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=rt.quiet) as bar:
        tasks: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)
            if done >= total and stage != "runs":
                bar.remove_task(tasks.pop(stage))

        res = reproduce(out, quick=quick, corpus=corpus, embedding=embedding, device=rt.device, config=cfg,
                        progress=None if rt.quiet else progress, command=opt.command_line())
    c = Console()
    for _, r in res["recommended"].iterrows():
        v = r["recommended_length"]
        txt = "none" if r["status"] == "none" else (f">= {int(v)} (censored)" if r["status"] == "censored" else str(int(v)))
        if r["low_status"] != "no interval" and not r["settled"]:
            lo, hi = r["low"], r["high"]
            txt += (f", not settled by the seeds (interval {'none' if lo != lo else int(lo)} .. "
                    f"{'none' if hi != hi else int(hi)})")
        c.print(f"{r['unit']}: recommended training length {txt}")
    for name, rk in res["rankings"].items():
        c.print(f"ranking on {name}: {rk['order']} ({'conclusive' if rk['conclusive'] else 'inconclusive'})")
    if res["verdict"] is not None:
        v = res["verdict"]
        c.print(f"planted-distance check: passed in {v['recovered']}/{v['cases']} (unit, gap, seed) cases "
                f"({v['recovered_when_learned']}/{v['learned_cases']} where the unit learned the dependency; "
                f"{v['peak_without_learning']} profile peaks at the key without learning do not count)")
    c.print(f"{res['runs']} runs in {res['wall_s']:.0f} s; report: {res['html']} and {res['markdown']}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    reproduce.command("zhang")(zhang_command)
