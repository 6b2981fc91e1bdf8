"""HTML pages for memory cards: one model, or several side by side. Self-contained (figures
inlined as base64 PNG, no network). Every number taken from the card is an element
``<span class="num" data-card="i" data-key="path.in.the.json">`` whose text is the JSON value of
card i to 4 significant digits, so the page can be checked against the JSON mechanically.

Honesty rules: a forgetting headline with censored runs shows the count and a statistic that
is known despite the censoring (the median over all runs while fewer than half are censored;
otherwise "censored in c/n runs" and the median of the finished ones, labelled as such), never a
mean over the finished runs; a fitted number whose fit fails ``probes.card.fit_checks`` says
"fit not valid: reason"; each measure gets one line of interpretation."""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

HEADLINE = [  # (json path, label, unit); a forgetting tolerance's path is its summary dict
    ("forgetting.tolerances.exact", "forgetting steps, exact", "steps"),
    ("forgetting.tolerances.1e-06", "forgetting steps, tol 1e-6", "steps"),
    ("forgetting.tolerances.0.0001", "forgetting steps, tol 1e-4", "steps"),
    ("forgetting.tolerances.0.01", "forgetting steps, tol 1e-2", "steps"),
    ("forgetting.rate.mean", "contraction rate (forgetting)", "nats/step"),
    ("lyapunov.max_exponent", "maximal Lyapunov exponent", "nats/step"),
    ("lyapunov.ci_low", "  confidence interval, low", "nats/step"),
    ("lyapunov.ci_high", "  confidence interval, high", "nats/step"),
    ("capacity.mc", "memory capacity MC", "inputs"),
    ("connectivity.half_life", "connectivity half-life", "steps"),
    ("long_memory.verdict", "long-memory verdict (Zhao et al. Def. 3 test)", ""),
    ("long_memory.alpha", "  tail exponent \u03b1 of |A_k| ~ k^-\u03b1 [CI]", ""),
    ("long_memory.alpha_within_filter", "  exponent within the filter, lags 1..K [CI]", ""),
    ("long_memory.delta_aic", "  AIC(exp) - AIC(power), descriptive only", ""),
    ("semantic.hull_score", "semantic hull score (a), Zhang et al. (ours)", ""),
    ("semantic.hull_score_ci_low", "  bootstrap interval, low", ""),
    ("semantic.hull_score_ci_high", "  bootstrap interval, high", ""),
    ("semantic.recall_score", "semantic recall score (c)", ""),
    ("semantic.usable_length", "semantic usable length (hull score at its threshold)", "words"),
    ("tasks.copy.largest_T_solved", "copy task: largest T solved", "steps"),
    ("tasks.adding.largest_T_solved", "adding task: largest T solved", "steps"),
]
# rows shown only when some card has a value there (the exponent within a filter: filter units only)
OPTIONAL = {"long_memory.alpha_within_filter"}

_CSS = """body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;max-width:1150px;margin:2em auto;
padding:0 1em;color:#222}table{border-collapse:collapse;margin:1em 0}th,td{border:1px solid #ccc;padding:4px 10px}
th{background:#f3f3f3;text-align:left}td.v{text-align:right;font-variant-numeric:tabular-nums}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(460px,1fr));gap:18px}figure{margin:0}
img{width:100%;border:1px solid #eee}.muted{color:#666;font-size:0.9em}
.warn{color:#9a3412;font-size:0.88em;display:block}.cens{color:#6d28d9}
#reading td{text-align:left}#reading th{width:13em}"""


def lookup(card: dict, path: str):
    """The value at a dotted path (keys may contain dots: tolerance names like '0.0001').

    At each level the longest run of path parts that is a key wins, so
    ``"forgetting.tolerances.0.0001.mean"`` finds the key ``"0.0001"``.

    Parameters
    ----------
    card : dict
        A memory card (the JSON written by ``rnnmem card``), or any nested dict.
    path : str
        The dotted path, e.g. ``"lyapunov.max_exponent"``.

    Returns
    -------
    object or None
        The value found, or None when a part of the path is missing or a non-dict is reached first.
    """
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
    """How a number appears on the page: 4 significant digits; None as an em dash.

    Parameters
    ----------
    value : object
        A card value.

    Returns
    -------
    str
        An em dash for None, ``"yes"``/``"no"`` for a bool, ``f"{value:.4g}"`` for an int or float,
        ``str(value)`` otherwise.
    """
    if value is None:
        return "\u2014"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return f"{value:.4g}"
    return str(value)


def _span(card: dict, path: str, ci: int) -> str:
    """One number of card ``ci`` on the page, tagged with its JSON path."""
    return (f"<span class='num' data-card='{ci}' data-key='{html.escape(path)}'>"
            f"{html.escape(fmt(lookup(card, path)))}</span>")


def _tolerance_summary(card: dict, path: str) -> dict | None:
    """The forgetting summary at ``path``; cards written before censoring was summarised honestly
    (only a mean over the finished runs) get the fields that can be recovered."""
    t = lookup(card, path)
    if not isinstance(t, dict):
        return None
    if "finished" in t:
        return t
    runs = lookup(card, "forgetting.runs")
    cens = t.get("censored") or 0
    return {"old": True, "runs": runs, "censored": cens, "finished": (runs or 0) - cens,
            "mean": t.get("mean") if not cens else None}


def _forgetting_cell(card: dict, path: str, ci: int) -> str:
    t = _tolerance_summary(card, path)
    if t is None:
        return "\u2014"
    sp = lambda key: _span(card, f"{path}.{key}", ci)  # noqa: E731
    if t.get("old"):
        if not t["censored"]:
            return sp("mean")
        return (f"<span class='cens'>censored in {sp('censored')}/{_span(card, 'forgetting.runs', ci)} runs</span>"
                "<span class='warn'>a card from an older rnnmem: only a mean over the finished runs was stored, "
                "which is biased low; not shown</span>")
    if not t["censored"]:
        return f"{sp('mean')} <span class='muted'>mean of all {sp('runs')} runs</span>"
    floor = (f", {sp('at_floor')} at the rounding floor" if t.get("at_floor") else "")
    count = f"{sp('censored')}/{sp('runs')} censored{floor}"
    if t.get("median") is not None:
        return (f"{sp('median')} <span class='muted'>median of all {sp('runs')} runs ({count}, "
                "counted as longer)</span>")
    finished = (f"; median of the {sp('finished')} finished: {sp('median_finished')}"
                if t.get("median_finished") is not None
                else f": none within {_span(card, 'forgetting.bound', ci)} steps")
    return (f"<span class='cens'>censored in {sp('censored')}/{sp('runs')} runs</span>"
            f"<span class='muted'>{finished}{' (' + sp('at_floor') + ' at the rounding floor)' if t.get('at_floor') else ''}"
            "</span>")


def _checks(card: dict) -> dict:
    if "fit_checks" in card:
        return card["fit_checks"]
    from ..probes.card import fit_checks  # a card written before the checks were stored

    return fit_checks(card)


def _lm_source(card: dict) -> tuple[str, dict]:
    from ..probes.card import long_memory_source

    return long_memory_source(card.get("long_memory") or {})


def _ci_text(card: dict, path: str, ci: int) -> str:
    """``value [low, high]`` of the estimate at ``path`` with its CI at ``path_ci_low``/``_high``."""
    return f"{_span(card, path, ci)} [{_span(card, path + '_ci_low', ci)}, {_span(card, path + '_ci_high', ci)}]"


def _long_memory_cell(card: dict, path: str, ci: int) -> str:
    """The tail exponent alpha or the exponent within the filter, with its CI; taken from the upper
    bound's test (and said so) when the verdict came from there."""
    name = path.rsplit(".", 1)[1]
    prefix, src = _lm_source(card)
    lm = card.get("long_memory") or {}
    level = (f"{src['level']:.0%} CI" if isinstance(src.get("level"), (int, float)) else "CI")
    if name == "alpha":
        where = (f", lags {_span(card, prefix + '.tail_from', ci)}\u2013{_span(card, prefix + '.tail_to', ci)}"
                 if src.get("tail_from") is not None else "")
    else:
        where = f", K = {_span(card, prefix + '.filter_length', ci)}" if src.get("filter_length") is not None else ""
    if prefix == "long_memory":
        if lm.get(name) is None:
            return _span(card, path, ci)
        out = f"{_ci_text(card, path, ci)}<span class='muted' style='display:block'>{level}{where}</span>"
    else:  # via the upper bound
        out = _span(card, path, ci)
        if src.get(name) is not None:
            out += (f"<span class='muted' style='display:block'>|A_k| too short to fit; its upper bound "
                    f"mean_t ||dy_t/dx_(t-k)||: {_ci_text(card, prefix + '.' + name, ci)}, {level}{where}</span>")
    check = _checks(card).get(path)
    if check is not None and not check["valid"] and lookup(card, f"{prefix}.{name}") is not None:
        out += f"<span class='warn'>fit not valid: {html.escape(check['reason'])}</span>"
    return out


def _cell(card: dict, path: str, ci: int) -> str:
    """The page's cell for one headline of card ``ci``."""
    if path.startswith("forgetting.tolerances."):
        return _forgetting_cell(card, path, ci)
    if path in ("long_memory.alpha", "long_memory.alpha_within_filter") and "alpha" in (card.get("long_memory") or {}):
        return _long_memory_cell(card, path, ci)
    out = _span(card, path, ci)
    check = _checks(card).get(path)
    if check is not None and not check["valid"] and lookup(card, path) is not None:
        out += f"<span class='warn'>fit not valid: {html.escape(check['reason'])}</span>"
    return out


def headline_text(card: dict, path: str) -> str:
    """A headline as plain text (the console summary of ``rnnmem card``): the page's cell without
    markup.

    Parameters
    ----------
    card : dict
        A memory card.
    path : str
        The headline's JSON path (one of :data:`HEADLINE`'s), e.g. ``"forgetting.tolerances.0.0001"``.

    Returns
    -------
    str
        The cell's text, HTML tags removed and entities unescaped; a fit warning follows ``" | "``.
    """
    import re

    text = _cell(card, path, 0).replace("<span class='warn'>", " | ").replace("<span class='muted' style='display:block'>", " ")
    return html.unescape(re.sub(r"<[^>]+>", "", text)).strip()


def interpretation(card: dict, ci: int) -> list[tuple[str, str]]:
    """One line per measure: what the card's numbers mean for this model (HTML, numbers tagged).

    Parameters
    ----------
    card : dict
        A memory card (with ``forgetting``, ``lyapunov``, ``capacity``, ``connectivity``,
        ``long_memory``, ``settings`` and optionally ``tasks``).
    ci : int
        The card's index on the page (written into the number tags' ``data-card``).

    Returns
    -------
    list of (str, str)
        ``(measure, HTML line)`` pairs: forgetting (tolerance 1e-4), contraction rate, Lyapunov,
        memory capacity, connectivity, long memory and tasks, each only when the card has the value.
    """
    sp = lambda key: _span(card, key, ci)  # noqa: E731
    lines = []
    f = card["forgetting"]
    tol = _tolerance_summary(card, "forgetting.tolerances.0.0001")
    P = card["settings"]["forgetting"]["P"]
    if tol is not None:
        key = "forgetting.tolerances.0.0001"
        if not tol["censored"] and tol.get("mean") is not None:
            what = (f"agree to 1e-4 after {sp(key + '.mean')} steps on average: inputs older than that no longer "
                    "change the output at that precision")
        elif tol.get("median") is not None:
            what = (f"agree to 1e-4 after a median of {sp(key + '.median')} steps, but {sp(key + '.censored')} "
                    "run(s) never did: the memory depends on the input")
        else:
            what = (f"do not agree to 1e-4 within the run in {sp(key + '.censored')}/{sp(key + '.runs')} runs: the "
                    "model keeps the difference (long memory, or a floor above 1e-4)")
        lines.append(("forgetting", f"Two runs whose inputs differed for the first {P:,} steps {what}."))
    rate = (f.get("rate") or {}).get("mean")
    if rate is not None:
        lines.append(("contraction rate", (
            f"The distance between the two states shrinks by {sp('forgetting.rate.mean')} nats per step: exponential "
            "forgetting, a straight line on the semi-log divergence plot."
            if rate > 0 else
            f"The state distance does not shrink ({sp('forgetting.rate.mean')} nats/step): no exponential forgetting.")))
    ly = card["lyapunov"]
    if ly.get("max_exponent") is not None:
        lo, hi = ly.get("ci_low"), ly.get("ci_high")
        if hi is not None and hi < 0:
            what = ("below 0 with its whole confidence interval: the input-driven dynamics contract, so the state "
                    "forgets its past at this rate (it should match minus the contraction rate)")
        elif lo is not None and lo > 0:
            what = "above 0 with its whole confidence interval: chaotic, small differences grow"
        else:
            what = "its confidence interval contains 0: the dynamics are at the edge of stability (inconclusive)"
        lines.append(("Lyapunov", f"The maximal exponent {sp('lyapunov.max_exponent')} is {what}."))
    cap = card["capacity"]
    if cap.get("mc") is not None:
        lines.append(("memory capacity", (
            f"A linear readout of the state recalls the equivalent of {sp('capacity.mc')} past inputs, out of at most "
            f"{sp('capacity.state_dim')} (the state dimension).")))
    con = card["connectivity"]
    check = _checks(card).get("connectivity.half_life", {"valid": True})
    if con.get("half_life") is not None and check["valid"]:
        lines.append(("connectivity", (
            f"The gradient of the output with respect to an input halves every {sp('connectivity.half_life')} steps "
            f"back (exponential fit, R\u00b2 {sp('connectivity.r2')}).")))
    else:
        lines.append(("connectivity", "The gradient decay is not a clean exponential here: the half-life is not a "
                                      "valid summary (see the plot)."))
    lines.append(("long memory", long_memory_line(card, ci)))
    if "tasks" in card:
        lines.append(("tasks", (
            f"Largest sequence length solved: copy {sp('tasks.copy.largest_T_solved')}, adding "
            f"{sp('tasks.adding.largest_T_solved')} (loss under 10% of the memoryless baseline).")))
    return lines


def long_memory_line(card: dict, ci: int) -> str:
    """The interpretation of the Definition-3 test (HTML, numbers tagged): what the verdict rests on,
    then the test's own reason.

    The test (Zhao et al. 2020, "Do RNN and LSTM have Long Memory?", Definition 3) calls memory long
    when sum_k |A_k| diverges, i.e. |A_k| ~ k^-alpha with alpha <= 1 and the power law extrapolating
    the tail better than a mixture of exponentials (``probes/long_memory.py``).

    Parameters
    ----------
    card : dict
        A memory card; its ``long_memory`` section (a card without ``alpha``, from an older rnnmem,
        gets a line saying its AIC verdict was not a test).
    ci : int
        The card's index on the page (for the number tags).

    Returns
    -------
    str
        The HTML sentence(s): the verdict's evidence (from |A_k| or its upper bound), then the reason.
    """
    sp = lambda key: _span(card, key, ci)  # noqa: E731
    lm = card.get("long_memory") or {}
    verdict = str(lm.get("verdict") or "")
    if "alpha" not in lm:  # a card from an older rnnmem: an AIC comparison, not a test
        return ("A card from an older rnnmem: its long-memory verdict " + html.escape(verdict or "(none)")
                + " compared an exponential and a power-law fit by AIC, which is not a test; rerun "
                "<code>rnnmem card</code> for the Definition-3 test.")
    prefix, src = _lm_source(card)
    p = prefix + "."
    ci_txt = lambda: _ci_text(card, p + "alpha", ci)  # noqa: E731
    lags = (f" over lags {sp(p + 'tail_from')}\u2013{sp(p + 'tail_to')}" if src.get("tail_from") is not None else "")
    lead = ("|A_k| alone is too short to test, but its upper bound mean_t ||dy_t/dx_(t-k)|| (so |A_k| too) "
            if prefix != "long_memory" else "|A_k| ")
    lo = src.get("alpha_ci_low")
    if verdict == "long":
        what = (f"{lead}decays like k^-\u03b1 with \u03b1 = {ci_txt()}{lags}, at most 1 with its whole CI, and the "
                "power law extrapolates the tail better than a mixture of exponentials: sum_k |A_k| diverges, long "
                "memory in the sense of Zhao et al., Definition 3.")
    elif verdict == "short" and src.get("response_ends"):
        what = (f"{lead}falls below the numerical floor ({sp(p + 'noise_floor')}) after lag {sp(p + 'k_end')} and "
                f"stays there up to lag {sp(p + 'k_max_requested')}: the response is finite, so sum_k |A_k| "
                "converges: short memory.")
        if src.get("alpha") is not None:
            what += f" Before it ends its tail exponent is \u03b1 = {ci_txt()}{lags} (long memory needs \u03b1 \u2264 1)."
    elif verdict == "short" and lo is not None and lo > 1:
        what = (f"{lead}has tail exponent \u03b1 = {ci_txt()}{lags}, above 1 with its whole CI: sum_k |A_k| converges, "
                "short memory.")
    elif verdict == "short" and src.get("extrapolation") == "mixture":
        what = (f"{lead}is extrapolated better by a mixture of exponentials than by a power law{lags} (\u03b1 = "
                f"{ci_txt()}): an exponential cut-off, so sum_k |A_k| converges: short memory.")
    elif verdict == "short":
        what = f"{lead}is summable: short memory (see the test's reason)."
    else:
        what = ("The test cannot tell long from short memory here (inconclusive)"
                + (f": \u03b1 = {ci_txt()}{lags}" if src.get("alpha") is not None else "")
                + "; on a finite range a power law and a slow mixture of exponentials can look alike.")
    return (what + f"<span class='muted' style='display:block'>The test's reason: {sp('long_memory.reason')}</span>")


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def divergence_x_end(x: np.ndarray, y: np.ndarray) -> float:
    """Where the divergence curve's decay ends: twice the first step at which it is within a factor
    2 of its smallest positive value (the rounding floor, or the last value before exact zeros).

    Parameters
    ----------
    x : numpy.ndarray of shape [N]
        The steps (left bin edges) of the curve.
    y : numpy.ndarray of shape [N]
        The output divergence max |y_a - y_b| per step (NaN or <= 0 where absent).

    Returns
    -------
    float
        The x-axis end, at least 10.0 (also 10.0 when no value is finite and positive).
    """
    ok = np.isfinite(y) & (y > 0)
    if not ok.any():
        return 10.0
    low = np.nanmin(y[ok])
    first = int(np.flatnonzero(ok & (y <= 2 * low))[0])
    return float(max(10.0, 2 * x[first]))


def figures(cards: list[dict]) -> list[tuple[str, str]]:
    """(caption, data URL) of the card's figures, every model overlaid.

    Five figures, in order: the forgetting output divergence (semi-log, with the contraction rate's
    slope and the tolerances), the Lyapunov spectrum, the memory-capacity r^2 per lag, the
    connectivity decay with its exponential fit, and the response coefficients |A_k| (log-log, with
    the tail power law, the slope -1 boundary and the numerical floor).

    Parameters
    ----------
    cards : list of dict
        The memory cards, one curve each, labelled by ``name``.

    Returns
    -------
    list of (str, str)
        ``(caption, "data:image/png;base64,...")`` per figure (PNG at 110 dpi).
    """
    out = []
    fig, ax = plt.subplots(figsize=(5, 3.4))
    x_end = 10.0
    for c in cards:
        cur = c["forgetting"]["curve"]
        edges = np.asarray(cur["bin_edges"], float)
        y = np.asarray([np.nan if v is None else v for v in cur["out_maxabs"]], float)
        y = np.where(y > 0, y, np.nan)
        x = edges[:-1]
        line, = ax.semilogy(x, y, marker="o", ms=2.5, lw=1.2, label=c["name"])
        x_end = max(x_end, divergence_x_end(x, y))
        rate = (c["forgetting"].get("rate") or {}).get("mean")
        first = np.flatnonzero(np.isfinite(y))
        if rate and rate > 0 and first.size:  # the contraction rate as a slope: exp(-rate t) from the first point
            x0, y0 = x[first[0]], y[first[0]]
            xs = np.linspace(x0, x_end, 50)
            ax.semilogy(xs, y0 * np.exp(-rate * (xs - x0)), ls="--", lw=0.8, color=line.get_color())
    for tol in (1e-6, 1e-4, 1e-2):
        ax.axhline(tol, color="grey", lw=0.6, ls=":")
    ax.set_xlim(0, x_end)
    ax.set(xlabel="shared steps after the prefix (linear)", ylabel="max |y_a - y_b| (log)",
           title="Forgetting: output divergence")
    ax.legend(fontsize=8)
    out.append(("Divergence of the outputs of two runs whose inputs differed for P steps (first input pair), "
                "semi-log axes: exponential forgetting is a straight line; dashed: the slope of the fitted "
                "contraction rate; dotted: the tolerances 1e-6, 1e-4, 1e-2. Zoomed on the decay (the rest is flat "
                "at the rounding floor or zero).", _png(fig)))

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
    bottoms = []
    for c in cards:
        lm = c["long_memory"]
        lags = np.asarray(lm["lags"], float)
        a = np.asarray([np.nan if v is None else v for v in lm["abs_A"]], float)
        ok = (lags > 0) & (a > 0)
        line, = ax.loglog(lags[ok], a[ok], label=f"{c['name']}: {lm['verdict']}")
        if lm.get("alpha") is not None and lm.get("intercept_tail") is not None and lm.get("tail_from") is not None:
            ks = np.geomspace(lm["tail_from"], lm["tail_to"], 30)  # the fitted tail: exp(a) k^-alpha
            ax.loglog(ks, np.exp(lm["intercept_tail"] - lm["alpha"] * np.log(ks)), ls="--", lw=1.0,
                      color=line.get_color())
        if ok.any():  # the boundary slope -1 through the first point: long memory needs a tail at least as flat
            k0, a0 = lags[ok][0], a[ok][0]
            ks = np.geomspace(k0, lags[ok][-1], 30)
            ax.loglog(ks, a0 * k0 / ks, ls=":", lw=0.8, color="grey")
        floor = lm.get("noise_floor")
        if floor and ok.any():  # below it |A_k| is rounding noise: shown down to 1e-3 of it, no further
            ax.axhline(floor, ls="-.", lw=0.8, color=line.get_color())
            bottoms.append(floor * 1e-3 if np.nanmin(a[ok]) < floor * 1e-3 else np.nanmin(a[ok]))
    if bottoms:
        ax.set_ylim(bottom=min(bottoms))
    ax.set(xlabel="lag k", ylabel="|A_k|", title="Response coefficients (long memory?)")
    ax.legend(fontsize=8)
    out.append(("|A_k| = |E dy_t/dx_{t-k}| on log-log axes; dashed: the fitted tail power law k^-\u03b1 over the "
                "tail lags of the Definition-3 test; dotted grey: slope -1, the boundary (long memory needs a tail "
                "at least as flat, \u03b1 \u2264 1, and sum_k |A_k| diverging); dash-dotted: the numerical floor "
                "(below it |A_k| is rounding noise; the axis stops 3 decades below it).", _png(fig)))
    return out


def headline_rows(cards: list[dict]) -> list[tuple[str, str, str]]:
    """The rows of the summary table: ``HEADLINE`` without the task rows unless every card has tasks,
    and without an ``OPTIONAL`` row that no card has a value for.

    Parameters
    ----------
    cards : list of dict
        The memory cards shown.

    Returns
    -------
    list of (str, str, str)
        ``(json path, label, unit)`` rows, in :data:`HEADLINE` order.
    """
    with_tasks = all("tasks" in c for c in cards)

    def has(card, path):
        prefix, _ = _lm_source(card) if path.startswith("long_memory.") else ("", None)
        return lookup(card, path) is not None or (prefix and lookup(card, prefix + path[len("long_memory"):]) is not None)

    return [(path, label, unit) for path, label, unit in HEADLINE
            if (with_tasks or not path.startswith("tasks."))
            and (path not in OPTIONAL or any(has(c, path) for c in cards))]


def _table(cards: list[dict], with_tasks: bool) -> str:
    head = "<tr><th>measure</th>" + "".join(f"<th>{html.escape(c['name'])}</th>" for c in cards) + "<th>unit</th></tr>"
    rows = []
    for path, label, unit in headline_rows(cards):
        cells = "".join(f"<td class='v'>{_cell(c, path, ci)}</td>" for ci, c in enumerate(cards))
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
    """The self-contained HTML page for one card or several side by side.

    The page lists the models, the summary table (:func:`headline_rows`, every number tagged with
    its JSON path), "What the numbers say" (:func:`interpretation`), the settings of the first card
    and the :func:`figures` inlined as base64 PNG.

    Parameters
    ----------
    cards : list of dict
        The memory cards (at least one); the settings note is taken from the first.
    title : str or None, default None
        The page title (default ``"Memory card: <name>"`` for one card, ``"Memory cards compared"``
        for several).

    Returns
    -------
    str
        The HTML page.
    """
    with_tasks = all("tasks" in c for c in cards)
    title = title or ("Memory card: " + cards[0]["name"] if len(cards) == 1 else "Memory cards compared")
    models = "".join(f"<li><b>{html.escape(c['name'])}</b>: {_model_line(c)}; rnnmem {html.escape(c['rnnmem_version'])}, "
                     f"{html.escape(c['created'])}</li>" for c in cards)
    figs = "".join(f"<figure><img alt='{html.escape(cap)}' src='{url}'><figcaption class='muted'>{html.escape(cap)}"
                   "</figcaption></figure>" for cap, url in figures(cards))
    s = cards[0]["settings"]
    notes = (f"Forgetting: {s['forgetting']['input_pairs']} input pairs, T = {s['forgetting']['T']:,}, "
             f"P = {s['forgetting']['P']:,}, element-wise absolute tolerances on the output; a run is censored "
             "when it never reaches the tolerance within T steps or the tolerance lies below the dtype's rounding "
             "floor: censored runs are counted and never averaged (a median over all runs is shown while fewer "
             f"than half are censored). Lyapunov: {s['lyapunov']['steps']:,} QR steps in "
             f"{s['lyapunov']['dtype']}. Capacity: {s['capacity']['steps']:,} steps, ridge readouts, "
             f"bias-corrected r\u00b2. Connectivity: {s['connectivity']['norm']} gradient norm of a fixed random "
             f"readout, T = {s['connectivity']['T']}. Long memory: {s['long_memory']['n_samples']} output "
             f"times, lags up to {s['long_memory']['max_lag']}; the Definition-3 test (probes/long_memory.py) "
             "estimates the tail exponent \u03b1 of |A_k| ~ k^-\u03b1 with a HAC + bootstrap confidence interval "
             "and tests the power law against a mixture of exponentials by extrapolation: long iff \u03b1 \u2264 1 "
             "and the power law wins; lags where |A_k| is below the dtype's numerical floor end the response. "
             "The AIC difference is descriptive only (a mixture of exponentials can favour the power law by "
             "AIC), not a test.")
    rows = {}
    for ci, c in enumerate(cards):
        for measure, line in interpretation(c, ci):
            prefix = f"<b>{html.escape(c['name'])}</b>: " if len(cards) > 1 else ""
            rows.setdefault(measure, []).append(prefix + line)
    reading = ("<h2>What the numbers say</h2><table id='reading'>"
               + "".join(f"<tr><th>{html.escape(m)}</th><td>{'<br>'.join(lines)}</td></tr>" for m, lines in rows.items())
               + "</table>")
    return ("<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><ul>{models}</ul>{_table(cards, with_tasks)}{reading}"
            f"<p class='muted'>{html.escape(notes)}</p><div class='grid'>{figs}</div></body></html>")


def write_card_page(cards: list[dict], path: str | Path, title: str | None = None) -> Path:
    """Write the HTML page of :func:`render` to ``path``.

    Parameters
    ----------
    cards : list of dict
        The memory cards (at least one).
    path : str or Path
        The HTML file (parent folders are created).
    title : str or None, default None
        The page title (see :func:`render`).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render(cards, title))
    return path
