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
             cmap: str = "viridis", row_label: str = "input size", col_label: str = "units") -> Path:
    """Side-by-side annotated heat maps sharing one colour scale.

    ``panels`` maps a panel title to a pivot table (index = rows, columns = columns). ``notes``
    maps the same titles to tables of short strings drawn under each value (e.g. censored counts).
    Missing values (NaN) are drawn grey and left blank.
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
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n + 0.8, 4.8), squeeze=False, constrained_layout=True)
    cm = plt.get_cmap(cmap).copy()
    cm.set_bad("#dddddd")
    im = None
    for ax, (name, df) in zip(axes[0], panels.items()):
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
                shade = norm(v) if np.isfinite(v) and (v > 0 or not log) else 0.0
                color = "white" if shade < 0.6 else "black"
                ax.text(j, i, _annotation(v, note, fmt), ha="center", va="center",
                        fontsize=6.5 if small else 8, color=color)
    fig.colorbar(im, ax=list(axes[0]), label=cbar_label, shrink=0.9)
    fig.suptitle(title)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path
