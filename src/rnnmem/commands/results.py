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


def results_command(
    db: Path = typer.Option(..., "--db", help="Results database (SQLite) written by a sweep or reproduction."),
    study: Optional[str] = typer.Option(None, help="Only this study."),
    export: Optional[Path] = typer.Option(None, help="Write every run to this .csv or .parquet file."),
    show: int = typer.Option(0, help="Also print the first N runs (config and metric columns)."),
    merge: Optional[list[Path]] = typer.Option(None, help="First copy in the runs of these databases (repeatable); "
                                               "runs already in --db are kept once."),
) -> None:
    """List stored runs per study and status, merge databases, and export them to CSV/Parquet."""
    from rich.console import Console
    from rich.table import Table

    from ..errors import ConfigError, InputError
    from ..store import ResultStore

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
        table = Table(title=f"{db} ({len(df)} runs)")
        summ = summary(df)
        for col in summ.columns:
            table.add_column(col, justify="right" if col in ("runs", "configs", "wall_s_total", "wall_s_mean") else "left")
        for row in summ.itertuples(index=False):
            table.add_row(*[f"{v:.3g}" if isinstance(v, float) else str(v) for v in row])
        console.print(table)
        if show > 0 and not df.empty:
            cols = ["seed", "status"] + [c for c in df.columns if c.startswith("config.")]
            cols += [c for c in df.columns if c not in cols and c not in ("key", "study", "config_json", "started_at",
                                                                           "package_version")]
            runs = Table(title=f"first {min(show, len(df))} runs")
            runs.add_column("key")
            for c in cols:
                runs.add_column(c.removeprefix("config."))
            for _, r in df.head(show).iterrows():
                runs.add_row(r["key"][:10], *[f"{r[c]:.4g}" if isinstance(r[c], float) else str(r[c]) for c in cols])
            console.print(runs)
        if export is not None:
            path = store.export(export, study)
            console.print(f"wrote {len(df)} runs to {path}")


def register(app: typer.Typer, reproduce: typer.Typer) -> None:
    app.command("results")(results_command)
