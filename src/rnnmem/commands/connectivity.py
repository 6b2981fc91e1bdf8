"""``rnnmem connectivity`` (the explorer page for trained autocomplete models) and ``rnnmem serve``
(the same page on localhost, analysing typed text live)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer


def load_models(specs: list[str], device: str = "cpu") -> dict:
    """``PATH`` or ``NAME=PATH`` autocomplete checkpoints -> ``{name: model}`` (name: file stem)."""
    from ..errors import ConfigError
    from ..train.autocomplete import load_checkpoint

    if not specs:
        raise ConfigError("give at least one --model checkpoint")
    from ..devices import resolve_device

    resolve_device(device)
    models: dict = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or Path(spec).exists():
            name, path = Path(spec).stem, spec
        if name in models:
            raise ConfigError(f"two models are named {name!r}; name them with --model NAME=PATH")
        models[name] = load_checkpoint(path, device=device)
    return models


def _progress_bar(console):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("connectivity {task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total} chunks"), TimeElapsedColumn(), console=console,
                    transient=True)


def connectivity_command(
    model: List[str] = typer.Option(..., "--model", "-m", help="Autocomplete checkpoint, PATH or NAME=PATH; "
                                    "repeat for models side by side."),
    text: str = typer.Option(..., "--text", "-t", help="Text to analyse (cleaned: lower-case, a-z and spaces)."),
    html: Optional[Path] = typer.Option(None, "--html", help="Write the self-contained explorer page here."),
    csv: Optional[Path] = typer.Option(None, "--csv", help="Write the long-form table (all models) here."),
    target: str = typer.Option("text", help="Logit differentiated: text (the word in the text, the study's) "
                               "| predicted (the model's top-1)."),
    norm: str = typer.Option("sq_l2", help="sq_l2 (the study's) | l2."),
    normalize: bool = typer.Option(True, "--normalize/--raw", help="Divide by the max over t (the study's)."),
    chunk: int = typer.Option(32, help="Output steps back-propagated per batched pass."),
    device: str = typer.Option("cpu", help="cpu | cuda."),
    title: Optional[str] = typer.Option(None, help="Page title."),
) -> None:
    """Connectivity of trained autocomplete models on a text: explorer page, table, decay by lag."""
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError
    from ..probes.connectivity import decay_profile
    from ..report.explorer import analyze, explorer_html

    console_only = html is None and csv is None
    models = load_models(model, device)
    console = Console(stderr=True)
    with _progress_bar(console) as bar:
        tasks: dict = {}

        def progress(name, done, total):
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        data = analyze(models, text, target=target, norm=norm, normalize=normalize, chunk=chunk, device=device,
                       max_chars=None, progress=progress)
    if not data["tokens"]:
        raise ConfigError("the text has no letters after cleaning; give some words")
    frames = []
    for m in data["models"]:
        rows = [(t, t_out, v) for t_out, row in enumerate(m["conn"]) for t, v in enumerate(row)]
        df = pd.DataFrame(rows, columns=["t", "t_out", "connectivity"])
        df.insert(0, "model", m["name"])
        df["lag"] = df["t_out"] - df["t"]
        df["char"] = [data["tokens"][t] for t in df["t"]]
        df["char_out"] = [data["tokens"][t] for t in df["t_out"]]
        df["target_word"] = [m["targets"][t] for t in df["t_out"]]
        frames.append(df)
    table = pd.concat(frames, ignore_index=True)
    if html is not None:
        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(explorer_html(data, title=title), encoding="utf-8")
        console.print(f"explorer page: {html}")
    if csv is not None:
        csv.parent.mkdir(parents=True, exist_ok=True)
        table.to_csv(csv, index=False)
        console.print(f"table: {csv}")
    out = Console()
    lags = [lag for lag in (0, 1, 2, 5, 10, 20, 50, 100, 200) if lag < len(data["tokens"])]
    summary = Table(title=f"Mean connectivity by lag t~ - t ({norm}, {'normalised by max over t' if normalize else 'raw'}, "
                          f"target: {target})")
    summary.add_column("model")
    for lag in lags:
        summary.add_column(f"lag {lag}", justify="right")
    summary.add_column("wall s", justify="right")
    for m, df in zip(data["models"], frames):
        prof = decay_profile(df).set_index("lag")
        summary.add_row(m["name"], *[f"{prof.loc[lag, 'mean']:.3g}" for lag in lags], f"{m['wall_s']:.2f}")
    out.print(summary)
    last = len(data["tokens"]) - 1
    sugg = Table(title=f"Top-3 suggestions after {data['text']!r}")
    sugg.add_column("model")
    for r in range(3):
        sugg.add_column(f"#{r + 1}")
    for m in data["models"]:
        sugg.add_row(m["name"], *[f"{w} ({p:.1%})" for w, p in m["top"][last]])
    out.print(sugg)
    if console_only:
        console.print("(use --html PAGE.html for the interactive page, --csv TABLE.csv for every pair)")


def serve_command(
    model: List[str] = typer.Option(..., "--model", "-m", help="Autocomplete checkpoint, PATH or NAME=PATH; repeat."),
    port: int = typer.Option(8765, help="TCP port (0: any free port)."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1: this machine only)."),
    text: str = typer.Option("", "--text", "-t", help="Text shown when the page opens."),
    target: str = typer.Option("predicted", help="predicted (top-1, suits unfinished words) | text."),
    norm: str = typer.Option("sq_l2", help="sq_l2 | l2."),
    normalize: bool = typer.Option(True, "--normalize/--raw", help="Divide by the max over t."),
    max_chars: int = typer.Option(500, help="Longest text accepted (after cleaning)."),
    chunk: int = typer.Option(32, help="Output steps back-propagated per batched pass."),
    device: str = typer.Option("cpu", help="cpu | cuda."),
    verbose: bool = typer.Option(False, help="Log every request."),
) -> None:
    """Serve the connectivity explorer on localhost: type text, get suggestions and connectivity live."""
    from rich.console import Console

    from ..report.server import serve

    models = load_models(model, device)
    console = Console(stderr=True)
    serve(models, host=host, port=port, target=target, norm=norm, normalize=normalize, chunk=chunk, device=device,
          max_chars=max_chars, text=text, quiet=not verbose,
          on_ready=lambda url: console.print(f"serving the connectivity explorer at {url}  (Ctrl-C stops)"))


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("connectivity")(connectivity_command)
    app.command("serve")(serve_command)
