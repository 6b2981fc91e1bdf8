"""``rnnmem forgetting`` (probe one model) and ``rnnmem reproduce muccino`` (the study)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .parsing import TRUST_HELP, explicit, floats, ints, names


def forgetting_command(
    ctx: typer.Context,
    cell: str = typer.Option("lstm", help="Unit: {units} (with --state-dict: needed for an rnnmem unit's "
                                          "file, checked against a torch module's)."),
    input_size: int = typer.Option(8, "--input-size", "-i", help="Input width."),
    units: int = typer.Option(32, "--units", "-u", help="Hidden units."),
    layers: int = typer.Option(1, help="Stacked layers."),
    convention: str = typer.Option("keras", help="torch | keras | keras2 | tf1."),
    dtype: str = opt.dtype_option(),
    runs: int = typer.Option(10, help="Networks (random init) or, with --state-dict, input pairs."),
    seed: int = opt.seed_option("First seed; run k uses seed + k."),
    T: int = typer.Option(100_000, "--T", help="Sequence length."),
    P: int = typer.Option(1_000, "--P", help="Steps in which the two inputs differ."),
    tolerances: str = typer.Option("0,1e-6,1e-4,1e-2", "--tol", help="Comma-separated absolute tolerances (0 = exact)."),
    state_dict: Optional[Path] = typer.Option(None, "--state-dict", help="A trained model (torch.save of an "
                                              "nn.RNN/LSTM/GRU state_dict or an rnnmem unit state_dict; a pickled "
                                              "module needs --trust-checkpoint)."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help=TRUST_HELP),
    no_early_stop: bool = typer.Option(False, "--no-early-stop", help="Compute all T steps."),
    device: str = opt.device_option(),
    threads: Optional[int] = opt.threads_option(),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the per-run table here."),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Count the steps a network needs to forget that two inputs ever differed."""
    rt = opt.runtime(device, threads, dtype=dtype, quiet=quiet)
    opt.check_out_file(csv, "--csv")
    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from ..cells import build
    from ..probes.forgetting import derive_input_seed, forgetting, tol_name

    tols = floats(tolerances, "--tol")
    seeds = list(range(seed, seed + runs))
    if state_dict is not None:
        from ..model_io import load_recurrent

        given = explicit(ctx, cell=cell, input_size=input_size, units=units, layers=layers, dtype=rt.dtype,
                         convention=convention)
        unit = load_recurrent(state_dict, cell=given.get("cell"), convention=convention,
                              trust_checkpoint=trust_checkpoint, expect=given)
        input_seeds = [derive_input_seed(s) for s in seeds]
    else:
        unit = build(cell, input_size, units, layers=layers, convention=convention, dtype=rt.dtype, seeds=seeds)
        input_seeds = None
    console = Console(stderr=True)
    with Progress(TextColumn("forgetting"), BarColumn(), TextColumn("{task.completed:,}/{task.total:,} steps"),
                  TimeRemainingColumn(), console=console, transient=True, disable=rt.quiet) as bar:
        task = bar.add_task("steps", total=T)
        result = forgetting(unit, input_seeds=input_seeds, device=rt.device, T=T, P=P, tolerances=tols,
                            early_stop=not no_early_stop, progress=lambda n: bar.advance(task, n))
    table = result.table
    out = Table(title=f"Forgetting steps ({result.unit.get('cell')}, {table['dtype'][0]}, "
                      f"{result.notes.get('kernel')} kernel, "
                      f"{result.steps_computed:,} of {T:,} steps computed in {result.wall_s:.2f} s)")
    for col in ["run", "status"] + [f"steps_{tol_name(t)}" for t in tols] + ["rate"]:
        out.add_column(col)
    for _, row in table.iterrows():
        cells = [str(row["run"]), row["status"]]
        for t in tols:
            v = row[f"steps_{tol_name(t)}"]
            cells.append("censored" if row[f"censored_{tol_name(t)}"] else f"{v:.0f}")
        cells.append(f"{row['rate']:.4f}" if row["rate"] == row["rate"] else "-")
        out.add_row(*cells)
    Console().print(out)
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
        Console().print(f"wrote {csv}")


def muccino_command(
    out: Path = opt.out_option("rnnmem-report"),
    quick: bool = typer.Option(False, "--quick", help="Reduced grid {1, 8, 64}, 3 runs (under a minute)."),
    explain: bool = typer.Option(False, "--explain", help="Protocol search instead: run the grid under the "
                                 "documented protocol variants and rank them by fit to the published table "
                                 "(OUT/explain.html; with --quick: sizes {1, 8, 64}; 10 runs either way)."),
    runs: Optional[int] = typer.Option(None, help="Runs per grid cell (default 10, quick 3)."),
    T: int = typer.Option(100_000, "--T", help="Sequence length."),
    P: int = typer.Option(1_000, "--P", help="Differing prefix."),
    variants: str = typer.Option("keras-float32,keras-float64,torch-float32", help="Comma-separated variants."),
    sizes: Optional[str] = typer.Option(None, help="Comma-separated input sizes = unit counts (default 1..128)."),
    tolerance: float = typer.Option(1e-4, help="Tolerance of the main heat map."),
    workers: Optional[int] = typer.Option(None, help="Worker processes (default: min(2, CPUs))."),
    db: Optional[Path] = typer.Option(None, help="Results database (default OUT/results.sqlite); reruns skip stored runs."),
    reference: Optional[Path] = typer.Option(None, help="Published table CSV (cell,input_size,units,mean_steps); "
                                             "default: the figures embedded in rnnmem."),
    device: str = opt.device_option(),
    seed: int = opt.seed_option(),
    threads: Optional[int] = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Reproduce Muccino (2019): forgetting steps over input size x units for LSTM and GRU."""
    if reference is not None:  # checked first: a bad table fails before torch is even imported
        from ..studies.published import read_muccino_reference

        read_muccino_reference(reference)
    rt = opt.runtime(device, threads, opt.pool_processes(workers), quiet=quiet)
    from rich.console import Console

    if explain:
        from ..studies.muccino import QUICK_SIZES, SIZES
        from ..studies.muccino_explain import explain as search
        from ..studies.muccino_report import published_frame

        published_frame(reference)  # a bad --reference fails before computing
        res = search(out, sizes=ints(sizes, "--sizes") if sizes else (QUICK_SIZES if quick else SIZES),
                     runs=runs or 10, T=T, P=P, workers=workers, reference=reference, seed=seed,
                     progress=rt.progress, command=opt.command_line())
        best = res["best"]
        Console().print(f"{res['runs']} runs, {res['variants']} protocol variants in {res['wall_s']:.1f} s "
                        f"(+{res['post_s']:.1f} s read-outs); best: {best['model']} / {best['criterion']} / "
                        f"{best['mode']} / from {best['offset']} / {best['runs']} runs, mean |log2 ratio| "
                        f"{best['fit all']:.3f}; report: {res['html']}")
        return
    from ..studies.muccino import reproduce as run

    res = run(out, quick=quick, runs=runs, T=T, P=P, variants=names(variants),
              sizes=ints(sizes, "--sizes") if sizes else None, tolerance=tolerance, workers=workers, db=db,
              reference=reference, device=rt.device, seed=seed, progress=rt.progress, command=opt.command_line())
    Console().print(f"{res['runs']} runs in {res['wall_s']:.1f} s; report: {res['html']} and {res['markdown']}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("forgetting")(forgetting_command)
    reproduce.command("muccino")(muccino_command)
