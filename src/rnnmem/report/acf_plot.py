"""Decay plots for long memory: the sample ACF of a series and the response coefficients |A_k| of a
model, each in a semi-log panel (exponential decay is a straight line) beside a log-log panel
(power-law decay is a straight line)."""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from ..errors import InputError  # noqa: E402
from ..tasks.arfima import arfima_acf, gph, sample_acf  # noqa: E402


def _panels(title: str):
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), constrained_layout=True)
    fig.suptitle(title)
    axes[0].set_yscale("log")
    axes[1].set_xscale("log")
    axes[1].set_yscale("log")
    axes[0].set_title("semi-log (exponential decay = straight line)", fontsize=10)
    axes[1].set_title("log-log (power-law decay = straight line)", fontsize=10)
    return fig, axes


def _save(fig, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)
    return path


def plot_acf(x, path, nlags: int = 200, level: float = 0.95, d: float | str | None = "gph",
             title: str = "Sample autocorrelation", series_label: str = "series") -> Path:
    """Plot the sample ACF of ``x`` (lags 1..nlags) with the normal and Bartlett bands at ``level``.

    Positive autocorrelations are filled markers, |negative| ones hollow (log axes show magnitudes).
    ``d``: overlay the ARFIMA(0, d, 0) autocorrelation for this d (``"gph"``: the GPH estimate,
    ``None``: no overlay). Saved as PNG at ``path``; returns the path.

    The sample ACF is r_k = c_k / c_0 with biased (1/n) autocovariances (``sample_acf``); the overlay
    is rho_k = prod_{i=1}^{k} (i - 1 + d) / (i - d) (Hosking 1981), with d from the GPH
    log-periodogram regression (Geweke & Porter-Hudak 1983) when ``d="gph"``.

    Parameters
    ----------
    x : array-like of shape [T] or pandas.DataFrame
        The series, or a table returned by ``sample_acf`` (columns ``lag``, ``acf``, ``normal_band``,
        ``bartlett_band``; then ``nlags`` and ``level`` are not used).
    path : str or Path
        The PNG to write (parent folders are created).
    nlags : int, default 200
        The largest lag when ``x`` is a series.
    level : float, default 0.95
        The confidence level of the bands around 0 when ``x`` is a series.
    d : float, "gph" or None, default "gph"
        The memory parameter of the ARFIMA(0, d, 0) overlay; drawn only for 0 < |d| < 0.5.
    title : str, default "Sample autocorrelation"
        The figure title.
    series_label : str, default "series"
        The legend label of the series.

    Returns
    -------
    Path
        ``path``, after writing the two-panel (semi-log and log-log) figure at 150 dpi.

    Raises
    ------
    InputError
        If ``x`` is a DataFrame without the ``sample_acf`` columns, if ``d="gph"`` is given with an ACF
        table instead of the series, or (from ``sample_acf`` / ``gph``) if the series is constant.
    ConfigError
        From ``sample_acf``, if ``nlags`` is not in [1, T - 1] or ``level`` not in (0, 1).
    """
    acf = x if isinstance(x, pd.DataFrame) else sample_acf(x, nlags=nlags, level=level)
    if not {"lag", "acf", "normal_band", "bartlett_band"} <= set(acf.columns):
        raise InputError("plot_acf needs a series or the DataFrame returned by sample_acf")
    acf = acf[acf["lag"] >= 1]
    if isinstance(d, str):
        if isinstance(x, pd.DataFrame):
            raise InputError("d='gph' needs the series itself, not its ACF table")
        d = gph(x).d
    fig, axes = _panels(title)
    lag, r = acf["lag"].to_numpy(), acf["acf"].to_numpy()
    pos, neg = r > 0, r < 0
    for ax in axes:
        ax.plot(lag[pos], r[pos], "o", ms=3, color="C0", label=f"{series_label}: r_k > 0")
        ax.plot(lag[neg], -r[neg], "o", ms=3, mfc="none", color="C0", alpha=0.6, label="|r_k|, r_k < 0")
        ax.plot(lag, acf["normal_band"], "--", color="0.4", lw=1,
                label=f"{100 * acf.attrs.get('level', level):.0f}% band, i.i.d. (1.96/sqrt(n))")
        ax.plot(lag, acf["bartlett_band"], ":", color="C3", lw=1.2, label="Bartlett band")
        if d is not None and -0.5 < float(d) < 0.5 and float(d) != 0.0:
            theory = arfima_acf(float(d), int(lag.max()))[1:]
            ax.plot(np.arange(1, len(theory) + 1), np.abs(theory), "-", color="C2", lw=1.5,
                    label=f"ARFIMA(0, d, 0) ACF, d = {float(d):.3f}")
        ax.set_xlabel("lag k (steps)")
        ax.set_ylabel("autocorrelation |r_k|")
        ax.grid(True, which="both", alpha=0.25)
    axes[1].legend(fontsize=8, loc="lower left")
    return _save(fig, path)


def plot_response(frame: pd.DataFrame, verdict: dict, path, title: str | None = None) -> Path:
    """Plot |A_k| from ``long_memory_probe`` with the Definition-3 test's tail power law
    (alpha and its CI over the tail lags) and the descriptive exponential fit over the measurable
    lags; the title gives the verdict. Saved as PNG at ``path``.

    The curves drawn are |A_k| = |E_t dy_t/dx_{t-k}| (column ``fitted``), the tail power law
    exp(intercept_tail) k^-alpha over ``verdict["tail"]`` and the exponential
    exp(intercept_exp - rate k) over [k_min, k_end], plus the numerical floor if finite.

    Parameters
    ----------
    frame : pandas.DataFrame
        The per-lag table returned by ``long_memory_probe`` (columns ``lag`` and ``fitted``; lags
        with k < 1 or |A_k| <= 0 are not drawn).
    verdict : dict
        The verdict returned with it (keys ``verdict``, ``alpha``, ``alpha_ci``, ``tail``, ``k_min``,
        ``k_end``, ``aic_exp``, ``intercept_exp``, ``rate``, ``intercept_tail``, ``noise_floor``;
        the optional ones are drawn only if present and finite).
    path : str or Path
        The PNG to write (parent folders are created).
    title : str or None, default None
        The first title line (default: "Response coefficients |A_k| = |E_t dy_t/dx_{t-k}|").

    Returns
    -------
    Path
        ``path``, after writing the two-panel (semi-log and log-log) figure at 150 dpi.

    Raises
    ------
    InputError
        If ``frame`` lacks the ``lag`` or ``fitted`` column (not a ``long_memory_probe`` frame).
    """
    if "fitted" not in frame.columns or "lag" not in frame.columns:
        raise InputError("plot_response needs the (frame, verdict) returned by long_memory_probe")
    lag, val = frame["lag"].to_numpy(), frame["fitted"].to_numpy()
    keep = (lag >= 1) & (val > 0)
    head = title or "Response coefficients |A_k| = |E_t dy_t/dx_{t-k}|"
    sub = f"Definition 3: {verdict['verdict']}"
    if np.isfinite(verdict.get("alpha", np.nan)):
        lo, hi = verdict["alpha_ci"]
        sub += f"; tail exponent alpha {verdict['alpha']:.3g} [{lo:.3g}, {hi:.3g}]"
    fig, axes = _panels(f"{head}\n{sub}")
    col = frame.attrs.get("config", {}).get("fitted_column", "fitted")
    for ax in axes:
        ax.plot(lag[keep], val[keep], ".", ms=3, color="C0", label=f"|A_k| ({col})")
        if verdict.get("k_end") and np.isfinite(verdict.get("aic_exp", np.nan)):
            k = np.arange(verdict["k_min"], verdict["k_end"] + 1, dtype=float)
            ax.plot(k, np.exp(verdict["intercept_exp"] - verdict["rate"] * k), "-", color="C3", lw=1.0,
                    label="exponential fit (descriptive)")
        if verdict.get("tail") and np.isfinite(verdict.get("alpha", np.nan)):
            k = np.arange(verdict["tail"][0], verdict["tail"][1] + 1, dtype=float)
            ax.plot(k, np.exp(verdict["intercept_tail"] - verdict["alpha"] * np.log(k)), "-",
                    color="C2", lw=1.6, label="tail power law k^-alpha")
            for a in verdict["tail"]:
                ax.axvline(a, color="0.6", lw=0.8, ls=":")
        if np.isfinite(verdict.get("noise_floor", np.nan)):
            ax.axhline(verdict["noise_floor"], color="0.5", lw=0.8, ls="--", label="numerical floor")
        ax.set_xlabel("lag k (steps)")
        ax.set_ylabel("|A_k| (output units per input unit)")
        ax.grid(True, which="both", alpha=0.25)
    axes[1].legend(fontsize=8, loc="lower left")
    return _save(fig, path)


__all__ = ["plot_acf", "plot_response"]
