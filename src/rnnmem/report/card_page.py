"""HTML pages for memory cards: one model, or several side by side. Self-contained (figures
inlined as base64 PNG, no network). Every headline number is an element
``<span class="num" data-key="path.in.the.json">`` whose text is the JSON value to 4 significant
digits, so the page can be checked against the JSON mechanically."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HEADLINE = [  # (json path, label, unit)
    ("forgetting.tolerances.exact.mean", "forgetting steps, exact", "steps"),
    ("forgetting.tolerances.1e-06.mean", "forgetting steps, tol 1e-6", "steps"),
    ("forgetting.tolerances.0.0001.mean", "forgetting steps, tol 1e-4", "steps"),
    ("forgetting.tolerances.0.01.mean", "forgetting steps, tol 1e-2", "steps"),
    ("forgetting.rate.mean", "contraction rate (forgetting)", "nats/step"),
    ("lyapunov.max_exponent", "maximal Lyapunov exponent", "nats/step"),
    ("lyapunov.ci_low", "  confidence interval, low", "nats/step"),
    ("lyapunov.ci_high", "  confidence interval, high", "nats/step"),
    ("capacity.mc", "memory capacity MC", "inputs"),
    ("connectivity.half_life", "connectivity half-life", "steps"),
    ("long_memory.verdict", "long-memory verdict (Zhao et al. Def. 3)", ""),
    ("long_memory.delta_aic", "  AIC(exp) - AIC(power)", ""),
    ("long_memory.exponent", "  power-law exponent", ""),
    ("tasks.copy.largest_T_solved", "copy task: largest T solved", "steps"),
    ("tasks.adding.largest_T_solved", "adding task: largest T solved", "steps"),
]

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px}
th{background:#f3f3f3;text-align:left}td.v{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(340px,1fr));gap:12px}
img{width:100%;border:1px solid #eee}.muted{color:#666;font-size:0.9em}"""


def lookup(card: dict, path: str):
    """The value at a dotted path (keys may contain dots: tolerance names like '0.0001')."""
    node = card
    parts = path.split(".")
    i = 0
    while i < len(parts):
        if not isinstance(node, dict):
            return None
        for j in range(len(parts), i, -1):  # longest key first
            key = ".".join(parts[i:j])
            if key in node:
                node, i = node[key], j
                break
        else:
            return None
    return node


def fmt(value) -> str:
    """How a number appears on the page: 4 significant digits; None as an em dash."""
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


def _num(card: dict, path: str) -> str:
    v = lookup(card, path)
    extra = ""
    if path.startswith("forgetting.tolerances.") and path.endswith(".mean"):
        cens = lookup(card, path[: -len(".mean")] + ".censored")
        runs = lookup(card, "forgetting.runs")
        if cens:
            extra = f" <span class='muted'>({cens}/{runs} censored)</span>"
    return f"<span class='num' data-key='{html.escape(path)}'>{html.escape(fmt(v))}</span>{extra}"


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def figures(cards: list[dict]) -> list[tuple[str, str]]:
    """(caption, data URL) of the card's figures, every model overlaid."""
    out = []
    fig, ax = plt.subplots(figsize=(5, 3.4))
    for c in cards:
        cur = c["forgetting"]["curve"]
        edges = np.asarray(cur["bin_edges"], float)
        y = np.asarray([np.nan if v is None else v for v in cur["out_maxabs"]], float)
        ax.loglog(edges[:-1], np.where(y > 0, y, np.nan), label=c["name"])
    for tol in (1e-6, 1e-4, 1e-2):
        ax.axhline(tol, color="grey", lw=0.6, ls=":")
    ax.set(xlabel="shared steps after the prefix", ylabel="max |y_a - y_b|", title="Forgetting: output divergence")
    ax.legend(fontsize=8)
    out.append(("Divergence of the outputs of two runs whose inputs differed for P steps (first input pair).", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for c in cards:
        ex = [np.nan if v is None else v for v in c["lyapunov"]["exponents"]]
        ax.plot(np.arange(1, len(ex) + 1), ex, marker="o", ms=3, label=c["name"])
    ax.axhline(0, color="grey", lw=0.6)
    ax.set(xlabel="index", ylabel="exponent (nats/step)", title="Lyapunov spectrum (leading exponents)")
    ax.legend(fontsize=8)
    out.append(("Leading Lyapunov exponents of the input-driven network.", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for c in cards:
        ax.plot(c["capacity"]["lags"], c["capacity"]["r2"], label=f"{c['name']} (MC {fmt(c['capacity']['mc'])})")
    ax.set(xlabel="lag k", ylabel="r\u00b2 (bias-corrected)", title="Memory capacity: recall of u(t-k)")
    ax.legend(fontsize=8)
    out.append(("Out-of-sample r\u00b2 of a ridge readout recalling the input k steps back; MC is the sum.", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for c in cards:
        con = c["connectivity"]
        lags = np.asarray(con["lags"], float)
        m = np.asarray([np.nan if v is None else v for v in con["mean"]], float)
        line, = ax.semilogy(lags, np.where(m > 0, m, np.nan), label=c["name"])
        if con.get("rate"):
            ok = m > 0
            a = np.nanmean(np.log(m[ok]) + con["rate"] * lags[ok])
            ax.semilogy(lags, np.exp(a - con["rate"] * lags), ls="--", lw=0.8, color=line.get_color())
    ax.set(xlabel="lag t~ - t", ylabel="mean gradient norm", title="Connectivity decay")
    ax.legend(fontsize=8)
    out.append(("Mean norm of d(readout at t~)/d(input at t) against the lag, with the fitted exponential.", _png(fig)))

    fig, ax = plt.subplots(figsize=(5, 3.4))
    for c in cards:
        lm = c["long_memory"]
        lags = np.asarray(lm["lags"], float)
        a = np.asarray([np.nan if v is None else v for v in lm["abs_A"]], float)
        ok = (lags > 0) & (a > 0)
        ax.loglog(lags[ok], a[ok], label=f"{c['name']}: {lm['verdict']}")
    ax.set(xlabel="lag k", ylabel="|A_k|", title="Response coefficients (long memory?)")
    ax.legend(fontsize=8)
    out.append(("|A_k| = |E dy_t/dx_{t-k}|: a straight line on log-log axes is a power law (long memory).", _png(fig)))
    return out


def _table(cards: list[dict], with_tasks: bool) -> str:
    head = "<tr><th>measure</th>" + "".join(f"<th>{html.escape(c['name'])}</th>" for c in cards) + "<th>unit</th></tr>"
    rows = []
    for path, label, unit in HEADLINE:
        if path.startswith("tasks.") and not with_tasks:
            continue
        cells = "".join(f"<td class='v'>{_num(c, path)}</td>" for c in cards)
        rows.append(f"<tr><th>{html.escape(label)}</th>{cells}<td>{html.escape(unit)}</td></tr>")
    return f"<table id='summary'>{head}{''.join(rows)}</table>"


def _model_line(card: dict) -> str:
    m = card["model"]
    conv = m.get("convention") or {}
    parts = [f"{m.get('cell')}", f"input {m.get('input_size')}", f"{m.get('hidden_size')} units",
             f"{m.get('layers', 1)} layer(s)", f"convention {conv.get('name', '-') if isinstance(conv, dict) else conv}",
             f"{m.get('dtype')}", f"seed {m.get('seed')}"]
    return html.escape(", ".join(str(p) for p in parts))


def render(cards: list[dict], title: str | None = None) -> str:
    with_tasks = all("tasks" in c for c in cards)
    title = title or ("Memory card: " + cards[0]["name"] if len(cards) == 1 else "Memory cards compared")
    models = "".join(f"<li><b>{html.escape(c['name'])}</b>: {_model_line(c)}; rnnmem {html.escape(c['rnnmem_version'])}, "
                     f"{html.escape(c['created'])}</li>" for c in cards)
    figs = "".join(f"<figure><img alt='{html.escape(cap)}' src='{url}'><figcaption class='muted'>{html.escape(cap)}"
                   "</figcaption></figure>" for cap, url in figures(cards))
    s = cards[0]["settings"]
    notes = (f"Forgetting: {s['forgetting']['input_pairs']} input pairs, T = {s['forgetting']['T']:,}, "
             f"P = {s['forgetting']['P']:,}, element-wise absolute tolerances on the output, censored runs "
             f"excluded from means and counted. Lyapunov: {s['lyapunov']['steps']:,} QR steps in "
             f"{s['lyapunov']['dtype']}. Capacity: {s['capacity']['steps']:,} steps, ridge readouts, "
             f"bias-corrected r\u00b2. Connectivity: {s['connectivity']['norm']} gradient norm of a fixed random "
             f"readout, T = {s['connectivity']['T']}. Long memory: {s['long_memory']['n_samples']} output "
             f"times, lags up to {s['long_memory']['max_lag']}.")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><ul>{models}</ul>{_table(cards, with_tasks)}"
            f"<p class='muted'>{html.escape(notes)}</p><div class='grid'>{figs}</div></body></html>")


def write_card_page(cards: list[dict], path: str | Path, title: str | None = None) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(cards, title))
    return path
