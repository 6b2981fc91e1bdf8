"""The ``rnnmem`` command line. Each command group lives in ``rnnmem/commands/<name>.py`` and
exposes ``register(app, reproduce)``; this file only assembles them and turns rnnmem's own
errors into one clear line (exit code 2)."""

from __future__ import annotations

import importlib
import sys

import typer

from .errors import RnnmemError

COMMAND_MODULES = [
    "rnnmem.commands.cells",
    "rnnmem.commands.forgetting",
    "rnnmem.commands.card",
    "rnnmem.commands.results",
    "rnnmem.commands.sweep",
    "rnnmem.commands.bench_task",
    "rnnmem.commands.distill",
    "rnnmem.commands.zhao",
    "rnnmem.commands.connectivity",
    "rnnmem.commands.zhang",
    "rnnmem.commands.zhao_reviews",
]

app = typer.Typer(
    name="rnnmem",
    help="Measure, explain and visualise how long recurrent neural networks remember.",
    add_completion=False,
    pretty_exceptions_enable=False,
)
reproduce = typer.Typer(help="Reproduce a published study (one command each).", no_args_is_help=True)
app.add_typer(reproduce, name="reproduce")


@app.callback(invoke_without_command=True)
def _root(
    ctx: typer.Context,
    version: bool = typer.Option(False, "--version", help="Print the version and exit."),
) -> None:
    if version:
        from . import __version__

        typer.echo(__version__)
        raise typer.Exit()
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit()


for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app, reproduce)


def main() -> None:
    try:
        app()
    except RnnmemError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
