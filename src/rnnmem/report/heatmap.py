"""Annotated heat maps of a grid (rows x columns), e.g. input size x units, for papers."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def _annotation(value: float, note: str, fmt: str) -> str:
    text = "" if np.isnan(value) else fmt.format(value)
    return f"{text}\n{note}" if note else text


def heatmaps(panels: dict[str, pd.DataFrame], path: str | Path, title: str, cbar_label: str,
             notes: dict[str, pd.DataFrame] | None = None, fmt: str = "{:.1f}", log: bool = False,
             cmap: str = "viridis", row_label: str = "input size", col_label: str = "units",
             ncols: int | None = None, panel_size: tuple[float, float] = (5.2, 4.8), dpi: int = 150,
             fontsize: float | None = None) -> Path:
    """Annotated heat maps sharing one colour scale.

    Parameters
    ----------
    panels: maps a panel title to a pivot table (index = rows, columns = columns).
    path: the PNG to write (parent folders are created).
    title: the figure title; cbar_label: the label of the shared colour bar.
    notes: maps the same titles to tables of short strings drawn under each value (e.g. censored
        counts). Missing values (NaN) are drawn grey and left blank (their note is still drawn).
    fmt: ``str.format`` pattern of the cell values (default ``"{:.1f}"``).
    log: a logarithmic colour scale (default False); then values <= 0 are drawn as missing.
    cmap: the matplotlib colour map (default ``"viridis"``).
    row_label, col_label: the axis labels (default ``"input size"`` and ``"units"``).
    ncols: panels per row (default: all in one row); a grid keeps wide figures readable when a
        page shrinks them to its width.
    panel_size: inches per panel (width, height); dpi: resolution of the PNG.
    fontsize: of the cell labels (default 6.5 for more than 6 columns, else 8).

    Returns
    -------
    The path of the written PNG.
    """
    from matplotlib.colors import LogNorm, Normalize

    values = np.concatenate([np.asarray(df.values, dtype=float).ravel() for df in panels.values()])
    finite = values[np.isfinite(values)]
    if log:
        finite = finite[finite > 0]
    vmin = float(finite.min()) if finite.size else 0.0
    vmax = float(finite.max()) if finite.size else 1.0
    if vmin == vmax:
        vmax = vmin + 1.0
    norm = LogNorm(vmin, vmax) if log and vmin > 0 else Normalize(vmin, vmax)
    n = len(panels)
    ncols = max(1, min(int(ncols or n), n))
    nrows = -(-n // ncols)
    fig, axes = plt.subplots(nrows, ncols, figsize=(panel_size[0] * ncols + 0.8, panel_size[1] * nrows),
                             squeeze=False, constrained_layout=True)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    cm = plt.get_cmap(cmap).with_extremes(bad="#dddddd")
    im = None
    for ax, (name, df) in zip(axes.ravel(), panels.items()):
        data = np.asarray(df.values, dtype=float)
        masked = np.ma.masked_invalid(np.where(data > 0, data, np.nan) if log else data)
        im = ax.imshow(masked, cmap=cm, norm=norm, origin="upper", aspect="auto")
        ax.set_xticks(range(len(df.columns)), [str(c) for c in df.columns])
        ax.set_yticks(range(len(df.index)), [str(i) for i in df.index])
        ax.set_xlabel(col_label)
        ax.set_ylabel(row_label)
        ax.set_title(name)
        note_df = notes.get(name) if notes else None
        small = len(df.columns) > 6
        for i in range(data.shape[0]):
            for j in range(data.shape[1]):
                note = str(note_df.iloc[i, j]) if note_df is not None else ""
                v = data[i, j]
                drawn = np.isfinite(v) and (v > 0 or not log)
                # grey (missing) cells get black labels: white on light grey is unreadable
                color = "white" if drawn and norm(v) < 0.6 else "black"
                ax.text(j, i, _annotation(v, note, fmt), ha="center", va="center",
                        fontsize=fontsize or (6.5 if small else 8), color=color)
    fig.colorbar(im, ax=list(axes.ravel()[:n]), label=cbar_label, shrink=0.9 if nrows == 1 else 0.6)
    fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    plt.close(fig)
    return path
