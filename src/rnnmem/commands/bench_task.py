"""``rnnmem bench-task``: train a unit on the copy, adding, selective-copying or MQAR task for several
T and report the largest T solved (held-out loss under 10% of the memoryless baseline)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt
from .parsing import ints


def bench_task_command(
    cell: str = typer.Option("lstm", "--cell", help="Unit name (see `rnnmem cells`)."),
    units: int = typer.Option(64, "--units", help="Hidden units per layer."),
    task: str = typer.Option("copy", "--task", help="copy | adding | selective_copy | mqar"),
    T: str = typer.Option("10,20,50", "--T", help="Comma-separated list of T (copy: blank time; adding: length; "
                                                  "selective_copy: noise tokens; mqar: sequence length)."),
    steps: int = typer.Option(2000, "--steps", help="Training steps (Adam updates) per T."),
    batch: int = typer.Option(32, "--batch", help="Batch size."),
    lr: float = typer.Option(1e-2, "--lr", help="Adam learning rate."),
    clip: float = typer.Option(1.0, "--clip", help="Gradient-norm clip (0 = none)."),
    layers: int = typer.Option(1, "--layers", help="Stacked layers."),
    convention: str = typer.Option("torch", "--convention", help="torch | keras | keras2 | tf1"),
    seed: int = opt.seed_option("Seed of the unit, the data and the readout."),
    eval_size: int = typer.Option(1000, "--eval-size", help="Held-out sequences for the final loss."),
    eval_every: int = typer.Option(0, "--eval-every", help="Evaluate every N steps (0 = only at the end)."),
    stop_when_solved: bool = typer.Option(
        False, "--stop-when-solved", help="Stop a T at its first solved evaluation (needs --eval-every)."
    ),
    variant: str = typer.Option("tcn", "--copy-variant", help="copy: tcn (9s after the delimiter) | blank"),
    markers: str = typer.Option("halves", "--adding-markers", help="adding: halves | anywhere"),
    memorize: int = typer.Option(4, "--memorize", help="selective_copy: data tokens to memorise (paper: 16)."),
    vocab: Optional[int] = typer.Option(
        None, "--vocab",
        help="selective_copy / mqar: token ids incl. noise/filler (default 8 / 32; papers: 16 / 8192)."),
    pairs: int = typer.Option(4, "--pairs", help="mqar: key-value pairs."),
    queries: Optional[int] = typer.Option(None, "--queries", help="mqar: queries per sequence (default: --pairs)."),
    query_distance: str = typer.Option("power", "--query-distance", help="mqar: power (Zoology, a=0.01) | uniform"),
    device: str = opt.device_option(),
    dtype: str = opt.dtype_option("float32 | float64: the unit's, the readout's and the data's precision."),
    threads: Optional[int] = opt.threads_option(),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Also write the table to this CSV file."),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Train a unit on copy/adding/selective_copy/mqar for each T; report final loss, baseline and the
    largest T solved."""
    rt = opt.runtime(device, threads, dtype=dtype, quiet=quiet)
    import pandas as pd
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
    from rich.table import Table

    from .. import cells
    from ..errors import ConfigError
    from ..tasks.copy_adding import make_task
    from ..train.sequence_tasks import largest_solved, train_on_task

    Ts = ints(T, "--T", nonempty=True, minimum=1)
    task = "selective_copy" if task == "selective-copy" else task
    vocab_opt = {} if vocab is None else {"vocab_size": vocab}
    options = {"copy": {"variant": variant}, "adding": {"markers": markers},
               "selective_copy": {"n_memorize": memorize, **vocab_opt},
               "mqar": {"n_pairs": pairs, "n_queries": queries, "query_distance": query_distance, **vocab_opt},
               }.get(task, {})
    tokens = task in ("selective_copy", "mqar")
    tasks = [make_task(task, t, **options) for t in Ts]
    if eval_every < 0:
        raise ConfigError(f"--eval-every must be >= 0, got {eval_every}")
    opt.check_out_file(csv, "--csv")
    console = Console()
    results = []
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=rt.quiet) as bar:
        overall = bar.add_task(f"{task} with {cell} ({units} units)", total=len(tasks) * steps)
        for tk in tasks:
            unit = cells.build(cell, tk.input_size, units, layers=layers, convention=convention, seed=seed,
                               dtype=rt.dtype, device=rt.device)
            res = train_on_task(
                unit, tk, steps=steps, batch=batch, lr=lr, clip=clip or None, seed=seed, eval_size=eval_size,
                eval_every=eval_every or None, stop_when_solved=stop_when_solved, device=rt.device,
                progress=lambda n: bar.advance(overall, n),
            )
            bar.advance(overall, steps - res.steps_run)
            results.append(res)
    rows = [{**r.row(), "cell": cell, "units": units, "layers": layers, "convention": convention, "dtype": rt.dtype, "seed": seed,
             "lr": lr, "batch": batch, "steps": steps} for r in results]
    df = pd.DataFrame(rows)
    table = Table(title=f"{task}: {cell}, {units} units, {layers} layer(s), {convention} convention, "
                        f"{rt.dtype}, {steps} steps, seed {seed}")
    for col in ("T", "final loss", "memoryless baseline", "loss / baseline", "solved", "steps", "time (s)"):
        table.add_column(col, justify="right")
    if task == "copy":
        table.add_column("answer accuracy", justify="right")
    if tokens:
        for col in ("accuracy", "seq. accuracy"):
            table.add_column(col, justify="right")
    for r in results:
        cells_ = [str(r.task["T"]), f"{r.final_loss:.4g}", f"{r.baseline:.4g}", f"{r.ratio:.3f}",
                  "yes" if r.solved else "no", str(r.steps_run), f"{r.wall_s:.1f}"]
        if task == "copy":
            cells_.append(f"{r.metrics['answer_accuracy']:.3f}")
        if tokens:
            cells_ += [f"{r.metrics[k]:.3f}" for k in ("token_accuracy", "sequence_accuracy")]
        table.add_row(*cells_)
    console.print(table)
    best = largest_solved(results)
    rule = "solved = held-out loss < 10% of the memoryless baseline"
    if task == "copy":
        rule += "; copy baseline = 10 ln 8 / (T + 20)"
    elif task == "selective_copy":
        rule += (f"; baseline = ln(V - 2), memoryless accuracy 1/(V - 2) = {tasks[0].baseline_accuracy:.4g} per token, "
                 f"{tasks[0].baseline_sequence_accuracy:.3g} per sequence (the data symbols are uniform)")
    elif task == "mqar":
        rule += (f"; baseline = ln(V - V//2), memoryless accuracy 1/(V - V//2) = {tasks[0].baseline_accuracy:.4g} "
                 f"per query, <= {tasks[0].baseline_sequence_accuracy:.3g} per sequence (values are uniform, "
                 "unbound to keys)")
    else:
        rule += "; adding baseline = 1/6"
    console.print(f"largest T solved: {best if best is not None else 'none'}  ({rule})")
    unsolved_below = [r.task["T"] for r in results if not r.solved and best is not None and r.task["T"] < best]
    if unsolved_below:
        console.print(f"note: smaller T not solved: {unsolved_below}")
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        df.to_csv(csv, index=False)
        console.print(f"wrote {csv}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("bench-task")(bench_task_command)
