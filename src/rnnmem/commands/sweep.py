"""``rnnmem sweep config.yaml``: validate, estimate (``--dry-run``) and run a declarative sweep."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import typer

from . import options as opt


def sweep_command(
    config: Path = typer.Argument(..., help="Sweep YAML file (study, grid, fixed, seeds, db); see docs/sweeps.md."),
    dry_run: bool = typer.Option(False, "--dry-run", help="Validate, count, time a calibration task; run nothing."),
    executor: Optional[str] = typer.Option(None, help="local (process pool, default) or ray."),
    address: Optional[str] = typer.Option(None, help="Ray cluster address: auto, host:6379 or ray://host:10001."),
    workers: Optional[int] = typer.Option(None, help="Worker processes (local; 0 or 1 = in this process) or Ray CPUs."),
    db: Optional[Path] = typer.Option(None, help="Results database (overrides the file's db)."),
    calibrate: int = typer.Option(1, help="--dry-run: number of sample tasks timed, spread over the grid."),
    progress: bool = typer.Option(True, help="Show a progress bar."),
    threads: Optional[int] = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Run a grid of study configs x seeds into a results database; stored runs are skipped."""
    rt = opt.runtime("cpu", threads, opt.pool_processes(workers), quiet=quiet)  # devices: per config, below
    import time

    from .. import studies  # noqa: F401  (declares rnnmem's studies to the store's registry)

    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError
    from ..store.executors import EXECUTORS
    from ..store.sweep import calibrate as run_calibration
    from ..store.sweep import format_seconds, load_sweep, run_sweep, stored_keys

    console = Console()
    plan = load_sweep(config)
    from ..devices import resolve_device

    for device in sorted({str(c["device"]) for c in plan.configs if c.get("device") is not None}):
        resolve_device(device)  # a device that cannot run fails here, not in every task
    if executor is not None and executor not in EXECUTORS:
        raise ConfigError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if workers is not None and workers < 0:
        raise ConfigError(f"--workers must be >= 0, got {workers}")
    db_path = db or plan.db
    info = Table(title=f"sweep {config}", show_header=False)
    info.add_column("")
    info.add_column("")
    info.add_row("study", plan.study)
    for name, values in plan.grid.items():
        shown = ", ".join(map(str, values[:10])) + (f", ... ({len(values)} values)" if len(values) > 10 else "")
        info.add_row(f"grid {name}", shown)
    for name, value in plan.fixed.items():
        info.add_row(f"fixed {name}", str(value))
    stored = stored_keys(db_path, plan.study)
    tasks = plan.tasks()
    info.add_row("configs", str(len(plan.configs)))
    info.add_row("seeds", f"{len(plan.seeds)} ({plan.seeds_per_task} per task)")
    info.add_row("runs", f"{plan.runs} in {len(tasks)} tasks")
    info.add_row("database", f"{db_path} ({len(stored)} runs of this study stored)")
    if not dry_run:
        console.print(info)
        start = time.perf_counter()
        table = run_sweep(plan, executor=executor, workers=workers, address=address, progress=progress and rt.progress,
                          db=db_path)
        console.print(f"{len(table)} runs in {db_path} ({time.perf_counter() - start:.1f} s); "
                      f"list them with: rnnmem results --db {db_path}")
        return
    cal = run_calibration(plan, samples=calibrate, workers=workers, stored=stored)
    for s in cal.samples:
        info.add_row("calibration task", f"{s['config']} seeds {s['seeds']}: {s['wall_s']:.2f} s")
    info.add_row("to run", f"{cal.runs_to_do} runs in {cal.tasks_to_do} tasks")
    info.add_row("estimated cost", f"{format_seconds(cal.cpu_s)} CPU = {format_seconds(cal.wall_s)} on "
                 f"{cal.workers} worker{'s' if cal.workers > 1 else ''} ({cal.per_run_s:.3g} s per run)")
    console.print(info)
    console.print("dry run: nothing was run or stored. The estimate assumes every run costs the mean of the "
                  "calibration runs; use --calibrate N to sample more of the grid.")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("sweep")(sweep_command)
