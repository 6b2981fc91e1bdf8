"""The memory card: every memory measure of one model, side by side, as one JSON-able summary.

The card is a loop over the probe registry (``probes.contract.PROBES``): each registered probe with
``in_card=True`` runs through the one contract, with its own settings schema (defaults, overridden
per probe by ``settings={name: {...}}``), and its ``Result.section()`` becomes the card's section of
that name; a probe registered tomorrow appears on the card without a line changed here. The built-in
probes (settings recorded in ``card["settings"]``):

- forgetting (``probes/forgetting.py``, Muccino 2019): steps to identical outputs per tolerance
  over several input pairs (in the model's own dtype; censored runs counted, never averaged: see
  ``forgetting_summary``), and the contraction rate of the state
  distance (fitted on a float64 copy of the model, after a 30-step transient);
- Lyapunov spectrum (``probes/lyapunov.py``): the maximal exponent with its confidence interval;
- memory capacity (``probes/capacity.py``, Jaeger 2002): MC and its per-lag r^2 curve;
- connectivity decay (``probes/connectivity.py``, Madsen 2019): the mean gradient norm of the
  output at t~ with respect to the input at t~ - k, against the lag k, and its fitted half-life
  ln 2 / rate (least squares on log values). A bare unit has no classes, so its "logit" is a
  fixed, seeded random unit-norm readout of the output vector;
- long memory (``probes/long_memory.py``, Zhao et al. 2020, Definition 3: long memory iff
  sum_k |A_k| diverges, A_k = E_t[dy_t/dx_{t-k}]): the probe's test, a verdict long / short /
  inconclusive with its reason, the tail exponent alpha of |A_k| ~ k^-alpha with its confidence
  interval (long memory needs alpha <= 1 and a power law that extrapolates the tail better than a
  mixture of exponentials), the exponent within a finite filter where the unit has one, and the
  earlier AIC comparison of an exponential and a power-law fit as description only (not a test);
- optionally the copy and adding tasks (``train/sequence_tasks.py``): the largest T solved
  (loss under 10% of the memoryless baseline).

Fitted numbers carry a validity check (``fit_checks``, rules in ``FIT_RULES``) that the page
shows beside them ("fit not valid: reason").
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from pathlib import Path


from .. import __version__
from ..errors import ConfigError, InputError
from .capacity import CapacityProbeSettings  # noqa: F401  (re-exported for the docs)
from .common import as_unit, check_finite
from .connectivity import RandomReadout, fit_half_life  # noqa: F401  (re-exported)
from .contract import PROBES, clean, validate_settings
from .forgetting import forgetting_summary  # noqa: F401  (re-exported)
from .long_memory import LONG_MEMORY_KEYS, long_memory_fields  # noqa: F401  (re-exported)

# The tail exponent alpha of |A_k| ~ k^-alpha describes the model only with enough tail lags, a
# plausible value and a tail that is a power law: long memory needs alpha <= 1 (Zhao et al.: a
# non-summable response); exponents far above a few mean the tail is a steep cutoff, which a power law
# cannot describe (the test's CI still decides the verdict, see ``probes/long_memory.py``).
FIT_RULES = {"min_points": 10, "min_r2": 0.9, "exponent_range": (0.0, 5.0)}


def long_memory_source(lm: dict) -> tuple[str, dict]:
    """Where the card's long-memory test numbers are: ``("long_memory", lm)``, or, when |A_k| alone was
    inconclusive and the verdict came from its upper bound mean_t ||dy_t/dx_{t-k}|| (``via_bound``),
    ``("long_memory.bound", lm["bound"])``.

    Parameters
    ----------
    lm : dict
        The card's ``long_memory`` section.

    Returns
    -------
    (str, dict)
        The section's path on the card and the dict holding the test numbers (``alpha``, ``n_tail``...):
        ``lm["bound"]`` when ``lm["alpha"]`` is None, ``lm["via_bound"]`` is true and ``lm["bound"]`` is a
        dict, else ``lm`` itself.
    """
    if lm.get("alpha") is None and lm.get("via_bound") and isinstance(lm.get("bound"), dict):
        return "long_memory.bound", lm["bound"]
    return "long_memory", lm


def fit_checks(card: dict) -> dict:
    """Whether each fitted headline of ``card`` is valid: ``{path: {"valid": bool, "reason": str}}``
    for ``long_memory.alpha`` (the tail exponent of the Definition-3 test; of its upper bound when the
    verdict came from there), ``long_memory.rate`` (descriptive exponential fit) and
    ``connectivity.half_life``.
    Rules (``FIT_RULES``): at least ``min_points`` fitted points, R^2 of the fit (on log values)
    >= ``min_r2`` where there is one, a tail exponent inside ``exponent_range``, and a tail that is a
    power law: not when the response ends (|A_k| below the numerical floor past some lag) or a mixture
    of exponentials extrapolates the tail better.

    Parameters
    ----------
    card : dict
        A memory card (:func:`compute_card` or :func:`load_card`); missing sections are skipped.

    Returns
    -------
    dict
        ``{path: {"valid": bool, "reason": str}}`` for each of ``long_memory.alpha`` (the test's points
        ``n_tail``, no R^2 rule), ``long_memory.rate`` (points ``n_fit``, R^2 ``r2_exp`` checked when present,
        ``rate > 0``) and ``connectivity.half_life`` (points ``fit_lags``, R^2 ``r2`` required) whose number
        is on the card; ``reason`` is ``"ok"`` or the failed rules joined by ``"; "``.
    """
    rules = FIT_RULES
    out = {}

    def check(points, r2, extra=(), need_r2=True):
        reasons = list(extra)
        if points is not None and points < rules["min_points"]:
            reasons.append(f"only {points} points fitted (< {rules['min_points']})")
        if r2 is None:
            if need_r2:
                reasons.append("no R\u00b2 (a flat or degenerate profile)")
        elif r2 < rules["min_r2"]:
            reasons.append(f"R\u00b2 = {r2:.3g} < {rules['min_r2']}")
        return {"valid": not reasons, "reason": "; ".join(reasons) if reasons else "ok"}

    lm = card.get("long_memory") or {}
    _, src = long_memory_source(lm)
    alpha = src.get("alpha")
    if alpha is not None:
        lo, hi = rules["exponent_range"]
        extra = []
        if not lo < alpha <= hi:
            extra.append(f"tail exponent {alpha:.4g} outside the plausible range ({lo:g}, {hi:g}]: "
                         + ("not a decay" if alpha <= lo else "a steep cut-off, not a power law"))
        if src.get("response_ends"):
            extra.append(f"the response ends after lag {src.get('k_end')}: a finite response has no power-law tail")
        elif src.get("extrapolation") == "mixture":
            extra.append("a mixture of exponentials extrapolates the tail better than the power law")
        out["long_memory.alpha"] = check(src.get("n_tail"), None, extra, need_r2=False)
    if lm.get("rate") is not None:
        extra = [] if lm["rate"] > 0 else [f"rate {lm['rate']:.4g} <= 0 (not a decay)"]
        out["long_memory.rate"] = check(lm.get("n_fit"), lm.get("r2_exp"), extra, need_r2=False)
    con = card.get("connectivity") or {}
    if "half_life" in con:
        extra = [] if con.get("half_life") is not None else ["no decay fitted"]
        out["connectivity.half_life"] = check(con.get("fit_lags"), con.get("r2"), extra)
    return out


def _tasks(unit, s, seed, device):
    from ..tasks.copy_adding import make_task
    from ..train.sequence_tasks import largest_solved, train_on_task

    out = {}
    for task in ("copy", "adding"):
        results = [train_on_task(unit, make_task(task, T), steps=s["steps"], seed=seed, device=device,
                                 eval_every=max(1, s["steps"] // 6), stop_when_solved=True) for T in s[task]]
        out[task] = {"largest_T_solved": largest_solved(results),
                     "runs": [{"T": r.task["T"], "loss": r.final_loss, "baseline": r.baseline, "solved": r.solved}
                              for r in results]}
    return out


TASK_SETTINGS = {"copy": [10, 20], "adding": [10, 20, 50], "steps": 600}


def card_probes() -> dict:
    """The probes the card computes: every registered probe with ``in_card``, in registry order.

    Returns
    -------
    dict
        ``{name: Probe}`` from :data:`rnnmem.probes.contract.PROBES`.
    """
    return {name: p for name, p in PROBES.items() if p.in_card}


def card_settings(settings: dict | None = None, tasks: bool = True) -> dict:
    """Each card probe's validated settings as a dict (its schema's defaults updated with
    ``settings[name]``), plus the tasks' settings; one ``ConfigError`` for an unknown probe or field.

    Parameters
    ----------
    settings : dict, optional
        ``{probe name or "tasks": {field: value}}`` overriding the defaults.
    tasks : bool
        Include the ``tasks`` entry (``TASK_SETTINGS`` updated with ``settings["tasks"]``); default True.

    Returns
    -------
    dict
        ``{probe name: settings dict (JSON mode)}`` for every card probe, plus ``"tasks"`` when asked.

    Raises
    ------
    ConfigError
        An unknown section name or an invalid field of a probe's settings.
    """
    settings = dict(settings or {})
    unknown = set(settings) - set(card_probes()) - {"tasks"}
    if unknown:
        raise ConfigError(f"unknown card section(s) {', '.join(sorted(unknown))}; the card's probes are "
                          f"{', '.join(card_probes())} (and tasks)")
    out = {}
    for name, p in card_probes().items():
        base = p.settings().model_dump()
        base.update(settings.get(name) or {})
        out[name] = validate_settings(p, base).model_dump(mode="json")
    if tasks:
        t = dict(TASK_SETTINGS)
        t.update(settings.get("tasks") or {})
        out["tasks"] = t
    return out


def __getattr__(name):  # CARD_SETTINGS: the defaults, computed from the registry when asked
    if name == "CARD_SETTINGS":
        return card_settings()
    raise AttributeError(name)


def compute_card(model, name: str | None = None, tasks: bool = False, seed: int = 0, device=None,
                 settings: dict | None = None, progress=None) -> dict:
    """Every card probe of ``model``, through the probe contract.

    The built-in sections and their measures (equations in each function's docstring):

    - ``forgetting`` (Muccino 2019): ``n(eps) = max(0, t_last(eps) + 1 - P)`` steps to identical outputs
      per tolerance, and the contraction rate of ``ln ||delta_t|| = a - rate t``
      (:func:`rnnmem.probes.forgetting.forgetting`);
    - ``lyapunov`` (Benettin et al. 1980): ``lambda_i = (1/n) sum_t ln |R_t[i, i]|`` of the QR method
      (:func:`rnnmem.probes.lyapunov.lyapunov_spectrum`);
    - ``capacity`` (Jaeger 2002): ``MC = sum_k r^2(u_{t-k}, y_k(t))``, adjusted r^2
      (:func:`rnnmem.probes.capacity.memory_capacity`);
    - ``connectivity`` (Madsen 2019): mean over t~ of ``|| d z_{t~} / d x_{t~-k} ||`` per lag k and its
      half-life ``ln 2 / rate`` (:func:`rnnmem.probes.connectivity.fit_half_life`);
    - ``long_memory`` (Zhao et al. 2020, Definition 3): long memory iff ``sum_k |A_k|`` diverges,
      ``A_k = E_t[dy_t / dx_{t-k}]`` (:func:`rnnmem.probes.long_memory.long_memory_probe`).

    Parameters
    ----------
    model : anything the model protocol accepts (a built-in unit, ``torch.nn.RNN/LSTM/GRU``, a
        module with the minimal protocol, ``CallableUnit``); one network, not an ensemble.
    name : str, optional, the card's title (default ``<cell>-<hidden_size>``).
    tasks : bool, also train on the copy and adding tasks (``TASK_SETTINGS``).
    seed : int, the seed of every probe's random draws.
    device : str, optional, where to compute (the caller's model is never moved).
    settings : dict, optional, ``{probe name: {field: value}}`` overriding the probes' defaults.
    progress : callable, optional, ``progress(section)`` after each section.

    Returns
    -------
    dict, JSON-able: ``name``, ``model``, ``settings``, ``wall_s`` per section, one section per probe
    (its ``Result.section()``), ``tasks`` when asked, and ``fit_checks``.
    """
    from ..devices import resolve_device

    if device is not None:
        resolve_device(device)  # one clear error before any measure runs
    unit = as_unit(model)
    check_finite(unit)  # before any measure: a NaN weight would otherwise surface only after minutes
    if getattr(unit, "ensemble", None):
        raise InputError("a memory card describes one network: build the unit with seed=, not seeds=")
    s = card_settings(settings, tasks=True)
    describe = unit.describe() if hasattr(unit, "describe") else {"cell": type(unit).__name__}
    card = {"name": name or f"{describe.get('cell')}-{describe.get('hidden_size')}", "model": describe,
            "rnnmem_version": __version__, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "seed": seed, "device": str(device or "cpu"), "settings": s, "wall_s": {}}
    for key, probe in card_probes().items():
        result = probe(unit, settings=s[key], seed=seed, device=device)
        card[key] = result.section()
        card["wall_s"][key] = result.wall_s
        if progress is not None:
            progress(key)
    if tasks:
        start = time.perf_counter()
        card["tasks"] = _tasks(unit, s["tasks"], seed, device)
        card["wall_s"]["tasks"] = time.perf_counter() - start
        if progress is not None:
            progress("tasks")
    card = clean(card)
    card["fit_checks"] = fit_checks(card)
    return card


def save_card(card: dict, path: str | Path) -> Path:
    """Write a memory card as indented JSON (parent folders are created).

    Parameters
    ----------
    card : dict
        A JSON-able card (:func:`compute_card`).
    path : str or Path
        The file to write (overwritten).

    Returns
    -------
    Path
        ``path``.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(card, indent=1))
    return path


def load_card(path: str | Path) -> dict:
    """Read a memory card written by :func:`save_card`.

    Parameters
    ----------
    path : str or Path
        The card's JSON file.

    Returns
    -------
    dict
        The card.

    Raises
    ------
    InputError
        The file does not exist, is not JSON, or lacks a card's keys (``name``, ``model``, ``forgetting``,
        ``lyapunov``, ``capacity``).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"card file {path} not found")
    try:
        card = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not a memory card (invalid JSON: {exc.msg})") from None
    missing = {"name", "model", "forgetting", "lyapunov", "capacity"} - set(card)
    if missing:
        raise InputError(f"{path} is not a memory card (missing {', '.join(sorted(missing))})")
    return card
