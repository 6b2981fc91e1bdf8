"""``rnnmem connectivity`` (the explorer page for trained autocomplete models) and ``rnnmem serve``
(the same page on localhost, analysing typed text live)."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import options as opt


def model_paths(specs: list[str]) -> dict:
    """``PATH`` or ``NAME=PATH`` -> ``{name: path}`` (name: the file stem)."""
    from ..errors import ConfigError

    if not specs:
        raise ConfigError("give at least one --model checkpoint")
    paths: dict = {}
    for spec in specs:
        name, sep, path = spec.partition("=")
        if not sep or not name or Path(spec).exists():
            name, path = Path(spec).stem, spec
        if name in paths:
            raise ConfigError(f"two models are named {name!r}; name them with --model NAME=PATH")
        paths[name] = path
    return paths


def load_models(specs: list[str], device: str = "cpu") -> dict:
    """``PATH`` or ``NAME=PATH`` autocomplete checkpoints -> ``{name: model}`` (name: file stem)."""
    from ..devices import resolve_device
    from ..train.autocomplete import load_checkpoint

    paths = model_paths(specs)
    resolve_device(device)
    return {name: load_checkpoint(path, device=device) for name, path in paths.items()}


N_PLANTED_CONTEXT = 6  # filler words before each planted episode in serve's examples


def serve_examples(models: dict, paths: dict, max_chars: int | None, own=(), corpus=None,
                   n_test: int | None = None) -> tuple[list[dict], list[str]]:
    """The texts ``rnnmem serve`` offers in its menu, and notes on what was left out and why.

    1. Planted dependencies: ``tasks.synthetic_text.planted_examples`` with the options of the
       synthetic corpus of ``reproduce distill --quick`` (``studies.distill.QUICK``) and the data
       seed the checkpoint records (else 0), one text per gap, within ``max_chars``; a model trained
       on that corpus knows their words (the group label says when the models' vocabulary lacks the keys).
    2. Test set: when a checkpoint records its training data (corpus sha256 and build options) and
       that dataset is in the autocomplete cache, or ``corpus`` is its training corpus, the first
       ``n_test`` test observations that fit ``max_chars``, picked as the Distill report's explorer
       picks them (``studies.distill.explorer_texts``). Otherwise the group is left out (a note says why).
    3. ``own``: the user's ``--example`` texts.

    Returns
    -------
    (examples, notes): examples as dicts ``group``, ``label``, ``text``; notes as strings.
    """
    from ..studies.distill import N_TEST_TEXTS, QUICK, explorer_texts
    from ..tasks.autocomplete import default_cache_dir, find_dataset
    from ..tasks.synthetic_text import planted_examples
    from ..train.checkpoint import load_dict

    n_test = N_TEST_TEXTS if n_test is None else n_test
    fits = lambda text: max_chars is None or len(text) - text.startswith(" ") <= max_chars  # noqa: E731
    notes, examples = [], []
    prints = {name: load_dict(path, kind="autocomplete checkpoint").get("data") for name, path in paths.items()}
    seeds = sorted({int(fp["seed"]) for fp in prints.values() if isinstance(fp, dict) and fp.get("seed") is not None})
    seed = seeds[0] if seeds else 0
    opts = {k: v for k, v in QUICK["corpus"].items() if k != "n_words"}
    planted = planted_examples(max_chars=max_chars, seed=seed, context_words=N_PLANTED_CONTEXT, **opts)
    keys = {ex["key"] for ex in planted} | {ex["response"] for ex in planted}
    unknown = [name for name, m in models.items() if not keys <= set(getattr(m, "words", ()))]
    group = f"planted dependencies (synthetic corpus of reproduce distill --quick, seed {seed})"
    if unknown:
        group += f"; keys outside the vocabulary of {', '.join(unknown)}"
    examples += [{"group": group, "label": ex["label"], "text": ex["text"]} for ex in planted]
    if len(planted) < len(opts["distances"]):
        notes.append(f"planted dependencies: {len(opts['distances']) - len(planted)} gap(s) left out, longer than "
                     f"--max-chars {max_chars}")
    seen = {}
    for name, fp in prints.items():
        if not isinstance(fp, dict) or not fp.get("corpus_sha256"):
            notes.append(f"test set: the checkpoint of {name} does not record its training corpus; no test-set "
                         "examples for it")
            continue
        seen.setdefault(fp["corpus_sha256"] + repr(sorted(fp.items())), (fp, []))[1].append(name)
    if corpus is not None and not seen:
        find_dataset(None, corpus=corpus)  # raises: no checkpoint records the corpus to check --corpus against
    for fp, names in seen.values():
        data = find_dataset(fp, corpus=corpus)
        if data is None:
            notes.append(f"test set: the dataset of {', '.join(names)} (corpus sha256 {fp['corpus_sha256'][:12]}...) is "
                         f"not in the cache {default_cache_dir()}; pass --corpus PATH (the training corpus) to add "
                         "test-set examples")
            continue
        texts = [t for t in explorer_texts(data, None, n_test=20 * n_test) if fits(t["text"])]
        examples += [{"group": f"test set ({', '.join(names)})", "label": t["label"], "text": t["text"]}
                     for t in texts[:n_test]]
        if not texts:
            notes.append(f"test set: no test observation of {', '.join(names)} fits --max-chars {max_chars}")
    for text in own or ():
        examples.append({"group": "your examples", "label": " ".join(text.split())[:48] or "(empty)", "text": text})
    return examples, notes


def _progress_bar(console, quiet: bool = False):
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(TextColumn("connectivity {task.description}"), BarColumn(),
                    TextColumn("{task.completed}/{task.total} chunks"), TimeElapsedColumn(), console=console,
                    transient=True, disable=quiet)


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
    max_chars: Optional[int] = typer.Option(None, "--max-chars", help="Longest text accepted, after cleaning "
                                            "(default {max_chars}); memory grows with the square of the length, "
                                            "and a longer text is refused with the memory it would need."),
    device: str = opt.device_option(),
    threads: Optional[int] = opt.threads_option(),
    title: Optional[str] = typer.Option(None, help="Page title."),
    quiet: bool = opt.quiet_option(),
) -> None:
    """Connectivity of trained autocomplete models on a text: explorer page, table, decay by lag."""
    rt = opt.runtime(device, threads, quiet=quiet)
    opt.check_out_file(html, "--html")
    opt.check_out_file(csv, "--csv")
    import pandas as pd
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError
    from ..probes.connectivity import decay_profile
    from ..report.explorer import DEFAULT_MAX_CHARS, analyze, explorer_html

    if max_chars is not None and max_chars < 1:
        raise ConfigError(f"--max-chars must be a positive integer, got {max_chars}")
    console_only = html is None and csv is None
    models = load_models(model, rt.device)
    console = Console(stderr=True)
    with _progress_bar(console, rt.quiet) as bar:
        tasks: dict = {}

        def progress(name, done, total):
            if name not in tasks:
                tasks[name] = bar.add_task(name, total=total)
            bar.update(tasks[name], completed=done)

        data = analyze(models, text, target=target, norm=norm, normalize=normalize, chunk=chunk, device=rt.device,
                       max_chars=max_chars or DEFAULT_MAX_CHARS, progress=progress)
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
    host: str = typer.Option("127.0.0.1", help="Interface to bind (127.0.0.1: this machine only; any other address "
                             "lets other machines use the explorer and prints a warning)."),
    allow_host: List[str] = typer.Option([], "--allow-host", help="Also accept requests whose Host header names this "
                                         "host (repeat; e.g. the machine's name when binding 0.0.0.0). Always "
                                         "accepted: the bound host, localhost, 127.0.0.1, [::1]."),
    text: str = typer.Option("", "--text", "-t", help="Text shown when the page opens."),
    example: List[str] = typer.Option([], "--example", "-e", help="A text offered in the page's menu (repeat). "
                                      "The menu also offers planted-dependency texts and, when the model's "
                                      "training data is available, test-set observations."),
    corpus: Optional[Path] = typer.Option(None, "--corpus", help="The models' training corpus (text8 format), to "
                                          "offer test-set observations when its dataset is not in the cache "
                                          "(checked against the sha256 the checkpoint records)."),
    target: str = typer.Option("predicted", help="predicted (top-1, suits unfinished words) | text."),
    norm: str = typer.Option("sq_l2", help="sq_l2 | l2."),
    normalize: bool = typer.Option(True, "--normalize/--raw", help="Divide by the max over t."),
    max_chars: int = typer.Option(500, help="Longest text accepted, in characters after cleaning (a text of "
                                  "exactly this length is accepted)."),
    chunk: int = typer.Option(32, help="Output steps back-propagated per batched pass."),
    device: str = opt.device_option(),
    threads: Optional[int] = opt.threads_option(),
    verbose: bool = typer.Option(False, help="Log every request."),
) -> None:
    """Serve the connectivity explorer on localhost: type text, get suggestions and connectivity live."""
    rt = opt.runtime(device, threads)
    from rich.console import Console
    from rich.markup import escape

    from ..report.server import serve

    paths = model_paths(model)
    models = load_models(model, rt.device)
    console = Console(stderr=True)
    examples, notes = serve_examples(models, paths, max_chars, own=example, corpus=corpus)
    for note in notes:
        console.print(f"note: {escape(note)}", highlight=False)
    serve(models, host=host, port=port, target=target, norm=norm, normalize=normalize, chunk=chunk, device=rt.device,
          max_chars=max_chars, text=text, examples=examples, quiet=not verbose, allow_hosts=allow_host,
          on_warning=lambda msg: console.print(f"[bold red]WARNING:[/] {escape(msg)}", highlight=False),
          on_ready=lambda url: console.print(f"serving the connectivity explorer at {escape(url)}  (Ctrl-C stops)"))


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("connectivity")(connectivity_command)
    app.command("serve")(serve_command)
