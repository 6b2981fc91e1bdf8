"""``rnnmem reproduce zhao``: the time-series study of Zhao et al. (ICML 2020)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .parsing import ints, names, split3

#: ``--quick``: few seeds and epochs, no K ablation (a look at the study in minutes; not comparable
#: with the paper, which trains 100 seeds for up to 1,000 epochs).
QUICK = {"seeds": 5, "max_epochs": 100}
FULL = {"seeds": 100, "max_epochs": 1000}


def zhao_command(
    data_dir: Optional[Path] = typer.Option(None, "--data-dir", help="A FOLDER holding the paper's four series "
                                            "(arfima.csv, DJI.csv, traffic.csv, tree7.csv), each split as in the "
                                            "paper; all four run unless --datasets or --dataset picks some."),
    datasets: Optional[str] = typer.Option(None, "--datasets",
                                           help="With --data-dir: a comma-separated SUBSET of the published series "
                                                "arfima,DJI,traffic,tree7 (default: all four)."),
    dataset: Optional[str] = typer.Option(None, "--dataset",
                                          help="ONE series by name: arfima, DJI, traffic or tree7 (read from "
                                               "--data-dir, like --datasets NAME), or rnn-generated: the paper's "
                                               "short-memory control, generated, needing no file (generator "
                                               "options: `rnnmem reproduce zhao-control`)."),
    data: Optional[Path] = typer.Option(None, "--data", help="YOUR OWN series: one CSV FILE (its column --column, "
                                        "cut by --split) instead of --data-dir."),
    quick: bool = typer.Option(False, "--quick", help=f"{QUICK['seeds']} seeds, at most {QUICK['max_epochs']} "
                               "epochs, no K ablation: all 8 models on the four series in about 380 CPU seconds, "
                               "some 3-4 minutes on 2 free cores (not comparable with the paper). --seeds, "
                               "--max-epochs and --ablation-models override it."),
    column: str = typer.Option("x", "--column", help="Column of --data holding the series."),
    split: Optional[str] = typer.Option(None, "--split",
                                        help="TRAIN,VAL,TEST numbers of (x_t, x_t+1) pairs for --data."),
    models: str = typer.Option("rnn,lstm,mrnnf,mrnn,mlstmf,mlstm,rnn2,rwa", "--models",
                               help="Comma-separated models."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help=f"Seeds per model and series, trained together "
                                        f"(default {FULL['seeds']}; quick {QUICK['seeds']})."),
    seed: int = opt.seed_option(),
    max_epochs: Optional[int] = typer.Option(None, "--max-epochs", help=f"Epoch cap, early stopping on the training "
                                             f"loss (default {FULL['max_epochs']:,}; quick {QUICK['max_epochs']})."),
    scaler: Optional[str] = typer.Option(None, "--scaler", help="MinMax fit: train | full (the paper); default: "
                                         "the protocol's (rnnmem: train, paper: full)."),
    protocol: str = typer.Option("rnnmem", "--protocol",
                                 help="rnnmem (default: scaler on the training block, keep the parameters whose "
                                      "validation loss was best) | paper (the published code: whole-series scaler, "
                                      "keep the model one update after the best validation epoch)."),
    alpha: float = typer.Option(0.05, "--alpha", help="Level of the Holm-corrected Welch tests against Table 2."),
    hidden: int = typer.Option(1, "--hidden", help="Hidden units (the paper: 1)."),
    K: int = typer.Option(100, "--K", help="Filter length of the memory-augmented models."),
    ablation_k: str = typer.Option("25,50,75,100", "--ablation-K",
                                   help="Filter lengths of the K ablation ('' = none)."),
    ablation_models: Optional[str] = typer.Option(None, "--ablation-models",
                                                  help="Models of the K ablation ('' = none; default mrnnf,mrnn, "
                                                       "quick none)."),
    out: Path = opt.out_option("rnnmem-zhao", "Output folder (report, figures, CSVs)."),
    db: Optional[Path] = typer.Option(None, "--db",
                                      help="Results database (default OUT/results.sqlite); reruns resume."),
    reference: Optional[Path] = typer.Option(None, "--reference", help="The paper's Table 2 as CSV "
                                             "(model,dataset,rmse_mean,rmse_std); default: figures embedded in rnnmem."),
    workers: Optional[int] = typer.Option(None, "--workers", help="Worker processes (default min(2, CPUs))."),
    device: str = opt.device_option(),
    dtype: str = opt.dtype_option(),
    threads: Optional[int] = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Reproduce Zhao et al. (2020): memory-augmented RNN/LSTM vs RNN/LSTM on four series."""
    rt = opt.runtime(device, threads, opt.pool_processes(workers), dtype=dtype, quiet=quiet)
    from rich.console import Console

    from ..errors import ConfigError
    from ..studies.zhao import ABLATION_MODELS, reproduce

    preset = QUICK if quick else FULL
    seeds = preset["seeds"] if seeds is None else seeds
    max_epochs = preset["max_epochs"] if max_epochs is None else max_epochs
    if ablation_models is None:
        ablation_models = "" if quick else ",".join(ABLATION_MODELS)
    if dataset is not None and datasets is not None:
        raise ConfigError("give either --dataset or --datasets, not both")
    if dataset == "rnn-generated":
        if data is not None or data_dir is not None or split is not None:
            raise ConfigError("--dataset rnn-generated generates its own series: drop --data, --data-dir and --split")
        if protocol != "rnnmem":
            raise ConfigError("--protocol applies to the published series and --data; drop it for --dataset "
                              "rnn-generated (its control uses rnnmem's protocol with --scaler)")
        from ..studies.zhao_control import reproduce_control

        res = reproduce_control(out, seeds=seeds, seed=seed, models=names(models), max_epochs=max_epochs,
                                scaler=scaler or "train", hidden=hidden, K=K, db=db, device=rt.device, dtype=rt.dtype,
                                workers=workers, progress=rt.progress, command=opt.command_line())
        Console().print(f"{res['runs']} runs ({res['computed']} computed) in {res['wall_s']:.1f} s; generator: "
                        f"{res['verdict']['verdict']}; report: {res['html']} and {res['markdown']}")
        return
    if dataset is not None:
        datasets = dataset
    split_t = split3(split, "--split") if split is not None else None
    res = reproduce(out, data_dir=data_dir, datasets=names(datasets) if datasets else None,
                    data=data, column=column, split=split_t, models=names(models), seeds=seeds,
                    seed=seed, max_epochs=max_epochs, scaler=scaler, protocol=protocol, alpha=alpha, hidden=hidden, K=K,
                    ablation_K=ints(ablation_k, "--ablation-K"),
                    ablation_models=names(ablation_models),
                    db=db, device=rt.device, dtype=rt.dtype, reference=reference, workers=workers,
                    progress=rt.progress, command=opt.command_line())
    Console().print(f"{res['runs']} runs ({res['computed']} computed) in {res['wall_s']:.1f} s; "
                    f"report: {res['html']} and {res['markdown']}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    reproduce.command("zhao")(zhao_command)
