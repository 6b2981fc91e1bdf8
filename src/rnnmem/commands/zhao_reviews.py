"""``rnnmem reproduce zhao-reviews`` (the review-classification experiment of Zhao et al., ICML 2020)
and ``rnnmem reproduce zhao-control`` (their short-memory control on an RNN-generated series)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .parsing import names, split3


def zhao_reviews_command(
    data: Path = typer.Option(..., "--data", help="The UCI paper-review JSON (e.g. shared/data/zhao2020/reviews.json)."),
    seeds: int = typer.Option(100, "--seeds", help="Seeds per model (trained together in chunks of --seed-chunk)."),
    seed: int = opt.seed_option(),
    epochs: int = typer.Option(100, "--epochs", help="Training epochs (the model kept is the one with the best "
                                                     "validation loss)."),
    paper_layout: bool = typer.Option(False, "--paper-layout", help="Also train every model on the published "
                                      "(N,T,D)->(T,N,D) reshape layout and compare it with the published numbers."),
    models: str = typer.Option("rnn,lstm,mrnnf,mlstmf", "--models", help="Comma-separated first layers."),
    split: str = typer.Option("282,50,50", "--split", help="TRAIN,VAL,TEST numbers of reviews (seeded permutation)."),
    seed_chunk: int = typer.Option(10, "--seed-chunk", help="Seeds per batched task (memory: about 0.25-0.4 GB "
                                   "per seed on CPU at hidden 128)."),
    hidden: int = typer.Option(128, "--hidden", help="Hidden units of both layers (the paper: 128)."),
    K: int = typer.Option(50, "--K", help="Filter length of MRNNF/MLSTMF (the paper: 50)."),
    out: Path = opt.out_option("rnnmem-zhao-reviews", "Output folder (report, figure, CSVs)."),
    db: Optional[Path] = typer.Option(None, "--db", help="Results database (default OUT/results.sqlite); reruns resume."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default min(2, CPUs); 0 = this one)."),
    device: str = opt.device_option(),
    dtype: str = opt.dtype_option(),
    threads: Optional[int] = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Reproduce Zhao et al. (2020), Tables 5-6: 5-class classification of Spanish paper reviews."""
    rt = opt.runtime(device, threads, opt.pool_processes(workers), dtype=dtype, quiet=quiet)
    from rich.console import Console

    from ..errors import ConfigError
    from ..studies.zhao_reviews import reproduce

    sp = split3(split, "--split")
    model_list = names(models)
    if not model_list:
        raise ConfigError("--models must name at least one of rnn, lstm, mrnnf, mlstmf")
    res = reproduce(out, data, models=model_list, seeds=seeds, seed=seed, epochs=epochs, paper_layout=paper_layout,
                    split=sp, seed_chunk=seed_chunk, hidden=hidden, K=K, db=db, device=rt.device, dtype=rt.dtype,
                    workers=workers, progress=rt.progress, command=opt.command_line())
    Console().print(f"{res['runs']} runs ({res['computed']} computed) in {res['wall_s']:.1f} s; "
                    f"report: {res['html']} and {res['markdown']}")


def zhao_control_command(
    seeds: int = typer.Option(100, "--seeds", help="Seeds per model (trained together)."),
    seed: int = opt.seed_option(),
    models: str = typer.Option("rnn,lstm,mrnnf,mrnn,mlstmf,mlstm,rnn2,rwa", "--models", help="Comma-separated models."),
    max_epochs: int = typer.Option(1000, "--max-epochs", help="Epoch cap (early stopping on the training loss)."),
    scaler: str = typer.Option("train", "--scaler", help="MinMax fit: train (rnnmem default) | full (the paper)."),
    hidden: int = typer.Option(1, "--hidden", help="Hidden units of the trained models (the paper: 1)."),
    K: int = typer.Option(100, "--K", help="Filter length of the memory-augmented models."),
    gen_hidden: int = typer.Option(8, "--gen-hidden", help="Hidden units of the generating RNN."),
    gen_seed: int = typer.Option(0, "--gen-seed", help="Seed of the generating RNN and its noise."),
    radius: float = typer.Option(0.9, "--radius", help="Contraction factor ||W_h + w_o w_x||_2 of the generator (< 1)."),
    probe_lags: int = typer.Option(300, "--probe-lags", help="Lags of the Definition-3 probe of the generator."),
    out: Path = opt.out_option("rnnmem-zhao-control"),
    db: Optional[Path] = typer.Option(None, "--db", help="Results database (default OUT/results.sqlite); reruns resume."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default min(2, CPUs); 0 = this one)."),
    device: str = opt.device_option(),
    dtype: str = opt.dtype_option(),
    threads: Optional[int] = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Short-memory control of Zhao et al. (2020): every time-series model on an RNN-generated series."""
    rt = opt.runtime(device, threads, opt.pool_processes(workers), dtype=dtype, quiet=quiet)
    from rich.console import Console

    from ..studies.zhao_control import reproduce_control
    from ..tasks.rnn_generated import RNNGeneratorSpec

    spec = RNNGeneratorSpec(hidden=gen_hidden, seed=gen_seed, radius=radius)
    res = reproduce_control(out, seeds=seeds, seed=seed, models=names(models),
                            max_epochs=max_epochs, scaler=scaler, hidden=hidden, K=K, generator=spec,
                            probe_lags=probe_lags, db=db, device=rt.device, dtype=rt.dtype, workers=workers,
                            progress=rt.progress, command=opt.command_line())
    Console().print(f"{res['runs']} runs ({res['computed']} computed) in {res['wall_s']:.1f} s; generator: "
                    f"{res['verdict']['verdict']}; report: {res['html']} and {res['markdown']}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    reproduce.command("zhao-reviews")(zhao_reviews_command)
    reproduce.command("zhao-control")(zhao_control_command)
