"""``rnnmem reproduce zhao``: the time-series study of Zhao et al. (ICML 2020)."""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import Optional

import typer

from .parsing import ints, names


def zhao_command(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="Folder with arfima.csv, DJI.csv, traffic.csv, "
                                            "tree7.csv (the paper's series; split as in the paper)."),
    datasets: Optional[str] = typer.Option(None, "--datasets",
                                           help="Comma-separated subset of arfima,DJI,traffic,tree7."),
    dataset: Optional[str] = typer.Option(None, "--dataset",
                                          help="One series: arfima, DJI, traffic, tree7, or rnn-generated (the "
                                               "paper's short-memory control; generator options: "
                                               "`rnnmem reproduce zhao-control`)."),
    data: Optional[Path] = typer.Option(None, "--data", help="Another series (CSV) instead of --data-dir."),
    column: str = typer.Option("x", "--column", help="Column of --data holding the series."),
    split: Optional[str] = typer.Option(None, "--split",
                                        help="TRAIN,VAL,TEST numbers of (x_t, x_t+1) pairs for --data."),
    models: str = typer.Option("rnn,lstm,mrnnf,mrnn,mlstmf,mlstm,rnn2,rwa", "--models",
                               help="Comma-separated models."),
    seeds: int = typer.Option(100, "--seeds", help="Seeds per model and series (trained together)."),
    seed: int = typer.Option(0, "--seed", help="First seed."),
    max_epochs: int = typer.Option(1000, "--max-epochs", help="Epoch cap (early stopping on the training loss)."),
    scaler: str = typer.Option("train", "--scaler", help="MinMax fit: train (rnnmem default) | full (the paper)."),
    hidden: int = typer.Option(1, "--hidden", help="Hidden units (the paper: 1)."),
    K: int = typer.Option(100, "--K", help="Filter length of the memory-augmented models."),
    ablation_k: str = typer.Option("25,50,75,100", "--ablation-K",
                                   help="Filter lengths of the K ablation ('' = none)."),
    ablation_models: str = typer.Option("mrnnf,mrnn", "--ablation-models",
                                        help="Models of the K ablation ('' = none)."),
    out: Path = typer.Option(Path("rnnmem-zhao"), "--out", "-o", help="Output folder (report, figures, CSVs)."),
    db: Optional[Path] = typer.Option(None, "--db",
                                      help="Results database (default OUT/results.sqlite); reruns resume."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="The paper's Table 2 as CSV "
                                             "(model,dataset,rmse_mean,rmse_std); default: figures embedded in rnnmem."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default min(2, CPUs))."),
    device: str = typer.Option("cpu", "--device", help="cpu | cuda."),
    dtype: str = typer.Option("float32", "--dtype", help="float32 | float64."),
) -> None:
    """Reproduce Zhao et al. (2020): memory-augmented RNN/LSTM vs RNN/LSTM on four series."""
    from rich.console import Console

    from ..errors import ConfigError
    from ..studies.zhao import reproduce

    if dataset is not None and datasets is not None:
        raise ConfigError("give either --dataset or --datasets, not both")
    if dataset == "rnn-generated":
        if data is not None or data_dir is not None or split is not None:
            raise ConfigError("--dataset rnn-generated generates its own series: drop --data, --data-dir and --split")
        from ..studies.zhao_reviews import reproduce_control

        res = reproduce_control(out, seeds=seeds, seed=seed, models=names(models), max_epochs=max_epochs,
                                scaler=scaler, hidden=hidden, K=K, db=db, device=device, dtype=dtype,
                                workers=workers, command="rnnmem " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
        Console().print(f"{res['runs']} runs ({res['computed']} computed) in {res['wall_s']:.1f} s; generator: "
                        f"{res['verdict']['verdict']}; report: {res['html']} and {res['markdown']}")
        return
    if dataset is not None:
        datasets = dataset
    split_t = None
    if split is not None:
        parts = ints(split, "--split")
        if len(parts) != 3:
            raise ConfigError(f"--split must be TRAIN,VAL,TEST, got {split!r}")
        split_t = tuple(parts)
    res = reproduce(out, data_dir=data_dir, datasets=names(datasets) if datasets else None,
                    data=data, column=column, split=split_t, models=names(models), seeds=seeds,
                    seed=seed, max_epochs=max_epochs, scaler=scaler, hidden=hidden, K=K,
                    ablation_K=ints(ablation_k, "--ablation-K"),
                    ablation_models=names(ablation_models),
                    db=db, device=device, dtype=dtype, reference=reference, workers=workers,
                    command="rnnmem " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    Console().print(f"{res['runs']} runs ({res['computed']} computed) in {res['wall_s']:.1f} s; "
                    f"report: {res['html']} and {res['markdown']}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    reproduce.command("zhao")(zhao_command)
