"""``rnnmem card``: one model's memory card (HTML + JSON), or several cards compared."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def card_command(
    files: Optional[List[Path]] = typer.Argument(None, help="With --compare: card JSON files to set side by side."),
    compare: bool = typer.Option(False, "--compare", help="Compare the card JSON files given as arguments."),
    cell: str = typer.Option("lstm", help="Unit: rnn, lstm, gru, nlstm, or a memory-augmented unit."),
    units: int = typer.Option(64, "--units", "-u", help="Hidden units."),
    input_size: int = typer.Option(1, "--input-size", "-i", help="Input width."),
    layers: int = typer.Option(1, help="Stacked layers."),
    convention: str = typer.Option("torch", help="torch | keras | keras2 | tf1."),
    dtype: str = typer.Option("float32", help="float32 | float64 (the model's own precision)."),
    seed: int = typer.Option(0, help="Seed of the network (random init) and of every probe."),
    checkpoint: Optional[Path] = typer.Option(None, help="A trained model: torch.save of an nn.RNN/LSTM/GRU, its "
                                              "state_dict, or an rnnmem unit state_dict (with --cell/--convention)."),
    tasks: bool = typer.Option(False, "--tasks", help="Also train on the copy and adding tasks (slower)."),
    name: Optional[str] = typer.Option(None, help="Name shown on the card."),
    out: Path = typer.Option(Path("memory-card"), "--out", "-o", help="Output folder (card.json, card.html)."),
    device: str = typer.Option("cpu", help="cpu | cuda."),
) -> None:
    """Every memory measure of one model on one page (or --compare several cards)."""
    from rich.console import Console

    from ..errors import ConfigError
    from ..report.card_page import HEADLINE, fmt, lookup, write_card_page
    from ..studies.card import compute_card, load_card, save_card

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
    if checkpoint is not None:
        from ..model_io import load_recurrent

        unit = load_recurrent(checkpoint, cell=cell, convention=convention)
        name = name or checkpoint.stem
    else:
        from ..cells import build

        unit = build(cell, input_size, units, layers=layers, convention=convention, dtype=dtype, seed=seed)
    with console.status("computing the memory card...") as status:
        card = compute_card(unit, name=name, tasks=tasks, seed=seed, device=device,
                            progress=lambda key: status.update(f"done: {key}"))
    js = save_card(card, out / "card.json")
    page = write_card_page([card], out / "card.html")
    for path, label, unit_ in HEADLINE:
        if path.startswith("tasks.") and not tasks:
            continue
        console.print(f"{label:<44} {fmt(lookup(card, path)):>12} {unit_}")
    console.print(f"wrote {js} and {page}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("card")(card_command)
