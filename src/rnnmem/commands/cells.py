"""``rnnmem cells``: list the recurrent units, conventions and their options."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table


def cells_command() -> None:
    """List recurrent units, conventions and their options."""
    from ..cells import CONVENTION_DOCS, CONVENTIONS, OPTION_DOCS, list_units

    console = Console()
    units = Table(title="Recurrent units")
    units.add_column("unit")
    units.add_column("description")
    for name, doc in list_units().items():
        units.add_row(name, doc)
    console.print(units)
    convs = Table(title="Conventions (override any option per unit)")
    for col in ("convention", "gate_activation", "gru_reset", "init", "forget_bias", "forget_shift", "description"):
        convs.add_column(col)
    for name, c in CONVENTIONS.items():
        convs.add_row(name, c.gate_activation, c.gru_reset, c.init, str(c.forget_bias), str(c.forget_shift),
                      CONVENTION_DOCS[name])
    console.print(convs)
    opts = Table(title="Options")
    opts.add_column("option")
    opts.add_column("meaning")
    for name, doc in OPTION_DOCS.items():
        opts.add_row(name, doc)
    opts.add_row("layers", "stacked layers >= 1")
    opts.add_row("dtype", "float32 | float64")
    console.print(opts)


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("cells")(cells_command)
