"""The ``rnnmem`` command line. Each command group lives in ``rnnmem/commands/<name>.py`` and
exposes ``register(app, reproduce)``; this file only assembles them and turns rnnmem's own
errors into one clear line (exit code 2)."""

from __future__ import annotations

import importlib
import sys
import warnings

import typer

from .commands.options import RnnmemGroup, apply_help_format
from .errors import RnnmemError, RnnmemWarning

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
    "rnnmem.commands.architectures",
]

app = typer.Typer(
    name="rnnmem",
    help="Measure, explain and visualise how long recurrent neural networks remember.",
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=RnnmemGroup,
)
reproduce = typer.Typer(help="Reproduce a published study (one command each).", no_args_is_help=True,
                        cls=RnnmemGroup)
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
apply_help_format(app, reproduce)


def _show_warning(message, category, filename, lineno, file=None, line=None, _default=warnings.showwarning):
    """rnnmem's own warnings as one yellow ``warning: ...`` line on stderr; others as Python prints them."""
    if issubclass(category, RnnmemWarning):
        typer.secho(f"warning: {message}", fg="yellow", err=True)
    else:
        _default(message, category, filename, lineno, file, line)


def main() -> None:
    warnings.showwarning = _show_warning
    try:
        app()
    except RnnmemError as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
