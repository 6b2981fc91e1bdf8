"""``rnnmem cells``: list the recurrent units, conventions and their options."""

from __future__ import annotations

import json

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table


def _listing() -> dict:
    from ..cells import CONVENTION_DOCS, CONVENTIONS, OPTION_DOCS, list_units
    from ..cells import _UNIT_OPTIONS as unit_options

    return {
        "units": {name: {"description": doc, "options": sorted(unit_options.get(name, ()))}
                  for name, doc in list_units().items()},
        "conventions": {name: {**c.as_dict(), "description": CONVENTION_DOCS.get(name, "")}
                        for name, c in CONVENTIONS.items()},
        "options": {**OPTION_DOCS, "layers": "stacked layers >= 1", "dtype": "float32 | float64",
                    "device": "cpu | cuda | cuda:N (parameters, inputs and states follow it)"},
    }


def cells_command(
    as_json: bool = typer.Option(False, "--json", help="Print the listing as JSON."),
) -> None:
    """List recurrent units, conventions and their options."""
    info = _listing()
    if as_json:
        typer.echo(json.dumps(info, indent=2))
        return
    console = Console()
    units = Table(title="Recurrent units (rnnmem.cells.build(name, input_size, hidden_size, ...))")
    units.add_column("unit")
    units.add_column("unit options")
    units.add_column("description")
    for name, u in info["units"].items():
        units.add_row(name, ", ".join(u["options"]) or "-", escape(u["description"]))
    console.print(units)
    convs = Table(title="Conventions (convention=NAME; override any option per unit)")
    cols = ("gate_activation", "gru_reset", "init", "forget_bias", "forget_shift", "two_biases")
    convs.add_column("convention")
    for col in cols:
        convs.add_column(col)
    convs.add_column("description")
    for name, c in info["conventions"].items():
        two = c["two_biases"] if c["gru_two_biases"] is None else f"{c['two_biases']} (GRU {c['gru_two_biases']})"
        convs.add_row(name, *(str(c[k]) for k in cols[:-1]), str(two), escape(c["description"]))
    console.print(convs)
    opts = Table(title="Options")
    opts.add_column("option")
    opts.add_column("meaning")
    for name, doc in info["options"].items():
        opts.add_row(name, escape(doc))
    console.print(opts)


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("cells")(cells_command)
