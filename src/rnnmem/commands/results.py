"""``rnnmem results``: summarise a results database and export it to CSV or Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd
import typer


def summary(df: pd.DataFrame) -> pd.DataFrame:
    """Per (study, status): runs, distinct configs, total and mean wall seconds, package versions."""
    if df.empty:
        return pd.DataFrame(columns=["study", "status", "runs", "configs", "wall_s_total", "wall_s_mean", "versions"])
    g = df.groupby(["study", "status"], sort=True)
    out = g.agg(runs=("key", "size"), configs=("config_json", "nunique"), wall_s_total=("wall_s", "sum"),
                wall_s_mean=("wall_s", "mean"),
                versions=("package_version", lambda s: ", ".join(sorted(set(map(str, s))))))
    return out.reset_index()


HIDDEN = ("study", "config_json", "started_at", "package_version")


def run_columns(df: pd.DataFrame) -> dict[str, str]:
    """Every column ``--columns`` can name: display name -> column of ``df``.

    Parameters
    ----------
    df : pandas.DataFrame
        Runs as ``ResultStore.load`` returns them.

    Returns
    -------
    dict
        Config options under their bare name (``units`` for ``config.units``, unless a metric has
        that name, then ``config.units``), metrics and the other columns under their own, in the
        table's order; ``study``, ``config_json``, ``started_at`` and ``package_version`` are left out.
    """
    names = {}
    for col in df.columns:
        if col in HIDDEN:
            continue
        bare = col.removeprefix("config.")
        names[col if bare != col and bare in df.columns else bare] = col
    return names


def _cell(value) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def pick_columns(df: pd.DataFrame, columns: str | None, width: int) -> tuple[list[str], list[str], dict]:
    """The columns ``--show`` prints, those left out for lack of width, and the constant config.

    Parameters
    ----------
    df : pandas.DataFrame
        The runs to show (``ResultStore.load``).
    columns : str or None
        ``--columns``: comma-separated display names (see ``run_columns``), printed in that order;
        None chooses the default set: key, seed, status, the config options that differ between
        runs, then every metric and wall_s, as many as fit ``width`` with every header in full.
    width : int
        Terminal width in characters.

    Returns
    -------
    (shown, left_out, fixed)
        Display names shown and not shown, and ``{option: value}`` of the config options that are
        the same in every run (printed once above the table instead of as columns).

    Raises
    ------
    ConfigError
        An unknown name in ``columns`` (the message lists the available ones).
    """
    from ..errors import ConfigError

    names = run_columns(df)
    if columns is not None:
        from .parsing import names as split_names

        wanted = split_names(columns)
        if not wanted:
            raise ConfigError(f"--columns is empty; give comma-separated names from: {', '.join(names)}")
        for c in wanted:
            if c not in names and f"config.{c}" in names:
                continue
            if c not in names:
                raise ConfigError(f"--columns: unknown column {c!r}; available columns: {', '.join(names)}")
        return [c if c in names else f"config.{c}" for c in wanted], [], {}
    fixed, default = {}, ["key", "seed", "status"]
    for name, col in names.items():
        if name in default:
            continue
        if col.startswith("config."):
            values = df[col].map(_cell)
            if values.nunique() > 1:
                default.append(name)
            else:
                fixed[name] = values.iloc[0] if len(values) else ""
        else:
            default.append(name)
    shown, used = [], 1  # the table's left border
    for name in default:
        cells = [_cell(v) for v in df[names[name]]]
        need = max([len(name)] + [len(v) for v in cells]) + 3  # padding on both sides and a border
        if name == "key":
            need = 10 + 3
        if used + need > width and len(shown) >= 3:
            break
        shown.append(name)
        used += need
    return shown, [n for n in default if n not in shown], fixed


def results_command(
    db: Path = typer.Option(..., "--db", help="Results database (SQLite) written by a sweep or reproduction."),
    study: Optional[str] = typer.Option(None, help="Only this study."),
    export: Optional[Path] = typer.Option(None, help="Write every run to this .csv or .parquet file."),
    show: int = typer.Option(0, help="Also print the first N runs: key, seed, status, the config options that "
                             "differ between runs and the metrics, as many as fit the terminal width."),
    columns: Optional[str] = typer.Option(None, help="With --show: print these columns, comma-separated (e.g. "
                                          "seed,units,rate); an unknown name lists the available ones."),
    merge: Optional[list[Path]] = typer.Option(None, help="First copy in the runs of these databases (repeatable); "
                                               "runs already in --db are kept once."),
) -> None:
    """List stored runs per study and status, merge databases, and export them to CSV/Parquet."""
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError, InputError
    from ..store import ResultStore

    if columns is not None and show <= 0:
        raise ConfigError("--columns chooses the columns of --show N; add --show N (the number of runs to print)")
    if not db.exists() and not merge:
        raise InputError(f"no results database at {db}; run a sweep first or check the --db path")
    console = Console()
    with ResultStore(db) as store:
        for other in merge or []:
            console.print(f"merged {store.merge(other)} new runs from {other}")
        studies = store.studies()
        if study is not None and study not in studies:
            raise ConfigError(f"study {study!r} has no runs in {db}; stored studies: {', '.join(studies) or 'none'}")
        df = store.load(study)
        head = df.head(max(show, 0))
        shown, left_out, fixed = pick_columns(head, columns, console.width)  # a bad --columns fails before output
        table = Table(title=f"{db} ({len(df)} runs)")
        summ = summary(df)
        for col in summ.columns:
            table.add_column(col, justify="right" if col in ("runs", "configs", "wall_s_total", "wall_s_mean") else "left")
        for row in summ.itertuples(index=False):
            table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
        console.print(table)
        if show > 0 and not df.empty:
            names = run_columns(df)
            if fixed:
                console.print("same in every run shown: " + ", ".join(f"{k}={v}" for k, v in fixed.items()),
                              highlight=False)
            runs = Table(title=f"first {len(head)} runs")
            for name in shown:
                runs.add_column(name, overflow="fold")
            for _, r in head.iterrows():
                runs.add_row(*[r["key"][:10] if name == "key" else _cell(r[names[name]]) for name in shown])
            console.print(runs)
            if left_out:
                console.print(f"{len(left_out)} more column{'s' if len(left_out) > 1 else ''} not shown for lack of "
                              f"width: {', '.join(left_out)}; choose columns with --columns a,b,c", highlight=False)
        if export is not None:
            path = store.export(export, study)
            console.print(f"wrote {len(df)} runs to {path}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("results")(results_command)
