"""``rnnmem reproduce architectures``: LSTM, GRU, LRU, S4D, Mamba, minGRU, minLSTM, sLSTM and mLSTM at
matched parameter counts through the memory card, at init and trained on selective copying and MQAR,
beside the Mamba paper's selective-copying finding."""

from __future__ import annotations

from pathlib import Path
from typing import List, Optional

import typer

from . import options as opt
from .parsing import names


def _card_overrides(items: list[str]) -> dict:
    """``["lyapunov.steps=100", ...]`` -> ``{"lyapunov": {"steps": 100}}`` (integers stay integers)."""
    from ..errors import ConfigError

    out: dict = {}
    for it in items:
        key, sep, val = it.partition("=")
        probe, dot, name = key.strip().partition(".")
        if not sep or not dot or not probe or not name or not val.strip():
            raise ConfigError(f"--card must look like PROBE.FIELD=VALUE (e.g. lyapunov.steps=200), got {it!r}")
        text = val.strip()
        try:
            value = int(text)
        except ValueError:
            try:
                value = float(text)
            except ValueError:
                value = text
        out.setdefault(probe, {})[name] = value
    return out


def architectures_command(
    quick: bool = typer.Option(False, "--quick", help="CPU scale: ~2,000 parameters, short sequences, 400 steps, "
                               "3 seeds, small card settings (minutes on 2 cores)."),
    out: Path = opt.out_option("rnnmem-architectures", "Output folder (report, comparison pages, cards, CSVs)."),
    device: str = opt.device_option("The full mode is sized for --device cuda."),
    dtype: str = opt.dtype_option("float32 | float64: precision of the models (training and cards)."),
    threads: Optional[int] = opt.threads_option(),
    seed: int = opt.seed_option("First seed (units, readouts, data, probes)."),
    quiet: bool = opt.quiet_option(),
    units: Optional[str] = typer.Option(None, "--units", help="Comma-separated units (default: lstm, gru, lru, "
                                        "s4d, mamba, mingru, minlstm, xlstm_s, xlstm_m)."),
    seeds: Optional[int] = typer.Option(None, "--seeds", help="Seeds trained per unit and task (default 5; quick 3)."),
    card_seeds: Optional[int] = typer.Option(None, "--card-seeds", help="How many of the seeds get memory cards "
                                             "(default 3; quick 1; 0: none)."),
    steps: Optional[int] = typer.Option(None, "--steps", help="Adam steps per training run (default 5000; quick 400)."),
    target_params: Optional[int] = typer.Option(None, "--target-params", help="Parameter count every model is "
                                                "matched to, unit + readout (default 50000; quick 2000)."),
    layers: Optional[int] = typer.Option(None, "--layers", help="Stacked layers (default 2, as the Mamba paper; "
                                         "quick 1)."),
    batch: Optional[int] = typer.Option(None, "--batch", help="Batch size (default 64; quick 32)."),
    eval_size: Optional[int] = typer.Option(None, "--eval-size", help="Held-out sequences (default 1000; quick 500)."),
    sc_noise: Optional[int] = typer.Option(None, "--sc-noise", help="Selective copying: noise tokens T (default 256; "
                                           "quick 16; paper 4096)."),
    sc_memorize: Optional[int] = typer.Option(None, "--sc-memorize", help="Selective copying: tokens to memorise "
                                              "(default 16; quick 4; paper 16)."),
    mqar_length: Optional[int] = typer.Option(None, "--mqar-length", help="MQAR sequence length (default 128; "
                                              "quick 32)."),
    mqar_pairs: Optional[int] = typer.Option(None, "--mqar-pairs", help="MQAR key-value pairs (default 6; quick 4)."),
    card: List[str] = typer.Option([], "--card", help="PROBE.FIELD=VALUE, repeatable: a memory-card probe setting "
                                   "(e.g. lyapunov.steps=100)."),
) -> None:
    """Modern recurrent units at matched parameter counts: memory cards at init and after training on
    selective copying and MQAR, task accuracy over seeds, and whether Mamba beats S4D on selective copying
    (Gu & Dao 2023, Table 1) beyond the seed-to-seed uncertainty."""
    rt = opt.runtime(device, threads, dtype=dtype, quiet=quiet)
    from dataclasses import replace

    from rich.console import Console
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from ..errors import ConfigError
    from ..studies.architectures import ArchitecturesConfig, quick_config, reproduce

    cfg = quick_config() if quick else ArchitecturesConfig()
    over: dict = {"dtype": rt.dtype, "seed": seed}
    if units:
        over["units"] = tuple(names(units))
    for key, val in (("seeds", seeds), ("steps", steps), ("target_params", target_params), ("layers", layers),
                     ("batch", batch), ("eval_size", eval_size)):
        if val is not None:
            if val < 1:
                raise ConfigError(f"--{key.replace('_', '-')} must be a positive integer, got {val}")
            over[key] = val
    if card_seeds is not None:
        over["card_seeds"] = card_seeds
    elif seeds is not None and cfg.card_seeds > seeds:
        over["card_seeds"] = seeds
    sc = dict(cfg.selective_copy)
    sc.update({k: v for k, v in (("T", sc_noise), ("n_memorize", sc_memorize)) if v is not None})
    mq = dict(cfg.mqar)
    mq.update({k: v for k, v in (("T", mqar_length), ("n_pairs", mqar_pairs)) if v is not None})
    over.update(selective_copy=sc, mqar=mq)
    if card:
        base = {k: dict(v) for k, v in (cfg.card or {}).items()}
        for probe, fields in _card_overrides(card).items():
            base.setdefault(probe, {}).update(fields)
        over["card"] = base
    cfg = replace(cfg, **over).validate()
    opt.check_out_dir(out)
    console = Console(stderr=True)
    with Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
                  TimeElapsedColumn(), console=console, transient=True, disable=rt.quiet) as bar:
        stages: dict[str, int] = {}

        def progress(stage: str, done: int, total: int) -> None:
            if stage not in stages:
                stages[stage] = bar.add_task(stage, total=total)
            bar.update(stages[stage], completed=done, total=total)

        res = reproduce(out, quick=quick, device=rt.device, config=cfg, progress=None if rt.quiet else progress,
                        command=opt.command_line())
    c = Console()
    for _, r in res["sizes"].iterrows():
        c.print(f"{r['unit']:<8} hidden {r['hidden_size']:>4}  parameters {r['total_params']:>7,} "
                f"({100 * r['rel_diff']:+.1f}% of {r['target']:,})", highlight=False, soft_wrap=True)
    for _, r in res["accuracy"].iterrows():
        ci = "" if r["ci_low"] != r["ci_low"] else f" [{100 * r['ci_low']:.1f}, {100 * r['ci_high']:.1f}]"
        c.print(f"{r['unit']:<8} {r['task']:<15} accuracy {100 * r['mean']:.1f}%{ci} over {r['seeds']} seed(s) "
                f"(memoryless {100 * r['baseline_accuracy']:.1f}%)", highlight=False, soft_wrap=True)
    v = res["verdict"]
    c.print(f"selective copying, mamba vs s4d (Gu & Dao 2023, Table 1): {v['verdict']}: {v['reason']}",
            highlight=False, soft_wrap=True)
    c.print(f"{res['wall_s']:.0f} s; report: {res['html']} and {res['markdown']}", highlight=False, soft_wrap=True)


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    reproduce.command("architectures")(architectures_command)
