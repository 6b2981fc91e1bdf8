"""``rnnmem card``: one model's memory card (HTML + JSON), or several cards compared."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import options as opt
from .parsing import TRUST_HELP, explicit


def card_command(
    ctx: typer.Context,
    files: Optional[List[Path]] = typer.Argument(None, help="With --compare: card JSON files to set side by side."),
    compare: bool = typer.Option(False, "--compare", help="Compare the card JSON files given as arguments."),
    cell: str = typer.Option("lstm", help="Unit: {units}."),
    units: int = typer.Option(64, "--units", "-u", help="Hidden units."),
    input_size: int = typer.Option(1, "--input-size", "-i", help="Input width."),
    layers: int = typer.Option(1, help="Stacked layers."),
    convention: str = typer.Option("torch", help="torch | keras | keras2 | tf1."),
    dtype: str = opt.dtype_option("float32 | float64 (the model's own precision)."),
    seed: int = opt.seed_option("Seed of the network (random init) and of every probe."),
    checkpoint: Optional[Path] = typer.Option(None, help="A trained model: torch.save of an nn.RNN/LSTM/GRU "
                                              "state_dict, an rnnmem unit state_dict (with --cell/--convention), or "
                                              "(with --trust-checkpoint) a pickled module."),
    trust_checkpoint: bool = typer.Option(False, "--trust-checkpoint", help=TRUST_HELP),
    tasks: bool = typer.Option(False, "--tasks", help="Also train on the copy and adding tasks (slower)."),
    name: Optional[str] = typer.Option(None, help="Name shown on the card."),
    out: Path = opt.out_option("memory-card", "Output folder (card.json, card.html)."),
    device: str = opt.device_option(),
    threads: Optional[int] = opt.threads_option(),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Every memory measure of one model on one page (or --compare several cards)."""
    rt = opt.runtime(device, threads, dtype=dtype, quiet=quiet)
    from rich.console import Console

    from ..errors import ConfigError
    from ..report.card_page import headline_rows, headline_text, write_card_page
    from ..probes.card import compute_card, load_card, save_card

    console = Console()
    if compare:
        if not files or len(files) < 2:
            raise ConfigError("--compare needs at least two card JSON files")
        cards = [load_card(f) for f in files]
        page = write_card_page(cards, out / "compare.html")
        console.print(f"wrote {page}")
        return
    if files:
        raise ConfigError("card files are only read with --compare")
    opt.check_out_dir(out)
    if checkpoint is not None:
        from ..model_io import load_recurrent

        given = explicit(ctx, cell=cell, input_size=input_size, units=units, layers=layers, dtype=rt.dtype,
                         convention=convention)
        unit = load_recurrent(checkpoint, cell=given.get("cell"), convention=convention,
                              trust_checkpoint=trust_checkpoint, expect=given)
        name = name or checkpoint.stem
    else:
        from ..cells import build

        unit = build(cell, input_size, units, layers=layers, convention=convention, dtype=rt.dtype, seed=seed)
    if rt.quiet:
        card = compute_card(unit, name=name, tasks=tasks, seed=seed, device=rt.device)
    else:
        with console.status("computing the memory card...") as status:
            card = compute_card(unit, name=name, tasks=tasks, seed=seed, device=rt.device,
                                progress=lambda key: status.update(f"done: {key}"))
    js = save_card(card, out / "card.json")
    page = write_card_page([card], out / "card.html")
    for path, label, unit_ in headline_rows([card]):
        console.print(f"{label:<44} {headline_text(card, path):>12} {unit_}", markup=False, highlight=False)
    console.print(f"wrote {js} and {page}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("card")(card_command)
