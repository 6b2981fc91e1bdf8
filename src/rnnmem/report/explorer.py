"""The interactive connectivity explorer (Madsen 2019, "Visualizing memorization in RNNs",
Distill): one self-contained HTML page showing a text once per model; clicking or tapping a
character (or the arrow keys) selects it as the target and colours every earlier character by
its connectivity to it (viridis) and lists the model's top-3 predicted words with their
probabilities. Hovering a character reads its value (a readout line per model and a tooltip)
without changing the selection. Several models appear side by side, as in the study, and a
menu switches between example texts (``examples=``).

The page has no external resources: CSS, JavaScript (``assets/``), the viridis table and the
data are inlined, so it works offline from a file. ``rnnmem serve`` (``report/server.py``)
serves the same page with a text box whose text is analysed live through a JSON endpoint that
returns :func:`analyze`'s output.

Conventions (see docs/connectivity.md):

* Text is cleaned as the autocomplete data are built: lower-cased, every character outside the
  model's alphabet becomes a space, runs of spaces collapse to one, and a leading space is added
  (each word of an observation is emitted as ``" " + word``).
* ``target="text"`` (the study's): the logit differentiated at a character is that of the word
  the character belongs to (a space belongs to the word after it); words outside the vocabulary
  give ``<unknown>``, as in the data. A final space with no word after it falls back to the
  model's top-1 prediction. ``target="predicted"``: always the top-1 prediction (the first
  suggestion), which suits live typing where the last word is unfinished.
* Suggestions: the top-3 classes of ``softmax(logits)`` (over all classes) excluding the padding
  class ``<eos>``; ``<unknown>`` can appear, it is a class the model predicts.
* Colours: viridis of the connectivity, which with ``normalize=True`` is already divided by its
  maximum over the earlier characters (1 = the strongest input); without normalisation it is
  divided by the largest value of that model over the whole text. Scale ``"log"`` (the default):
  the colour bar position is ``(log10 v + D) / D`` clipped to [0, 1], a floor of ``D = decades``
  decades below the maximum (default 4: 1e-4 and below share the darkest colour), so that
  long-range connectivity (1e-2..1e-3 of the maximum) is visible, as in the study's figures.
  Scale ``"linear"``: the position is ``v`` itself (a 1e-2 cell is then indistinguishable from
  a 1e-12 one). Both can be switched on the page.
"""

from __future__ import annotations

import html
import json
import re
import time
from importlib import resources
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import ConfigError, InputError
from ..probes.connectivity import class_names, connectivity_matrix, memory_estimate, padding_classes, top_k

TARGETS = ("text", "predicted")
SCALES = ("log", "linear")
DEFAULT_DECADES = 4
VIRIDIS_STOPS = 64
DEFAULT_MAX_CHARS = 1000
TOP = 3


# ----------------------------------------------------------------------------- text
def alphabet(model) -> list[str]:
    """Single characters the model reads (``<eos>`` and other multi-character names excluded).

    Parameters
    ----------
    model : nn.Module
        A character model with a ``chars`` list (e.g. ``AutocompleteModel``).

    Returns
    -------
    list of str
        The one-character entries of ``model.chars``, in order.

    Raises
    ------
    ConfigError
        If the model has no ``chars`` attribute (not a character model).
    """
    chars = getattr(model, "chars", None)
    if chars is None:
        raise ConfigError(f"the explorer needs a character model with a `chars` list; {type(model).__name__} has none")
    return [c for c in chars if len(c) == 1]


def clean_text(text: str, chars) -> str:
    """Lower-case, map characters outside ``chars`` to spaces, collapse runs of spaces and start
    with one space (the autocomplete data's form). A trailing space is kept.

    Parameters
    ----------
    text : str
        The raw text.
    chars : iterable of str
        The characters kept (usually :func:`alphabet` of the model).

    Returns
    -------
    str
        The cleaned text, starting with one space; ``""`` when nothing but spaces remains.

    Raises
    ------
    InputError
        If ``text`` is not a string.
    """
    if not isinstance(text, str):
        raise InputError(f"text must be a string, got {type(text).__name__}")
    allowed = set(chars)
    out = "".join(c if c in allowed else " " for c in text.lower())
    out = re.sub(" +", " ", out)
    if not out.startswith(" "):
        out = " " + out
    return "" if out == " " else out


def text_words(text: str) -> list[str | None]:
    """For each character, the word of its unit ``" " + word``: a letter belongs to its word, a
    space to the word after it (``None`` when no word follows).

    Parameters
    ----------
    text : str
        A cleaned text (:func:`clean_text`: single spaces between words).

    Returns
    -------
    list of (str or None)
        One entry per character of ``text``.
    """
    out: list[str | None] = [None] * len(text)
    for m in re.finditer(r"[^ ]+", text):
        out[m.start() : m.end()] = [m.group()] * (m.end() - m.start())
        if m.start() > 0 and text[m.start() - 1] == " ":
            out[m.start() - 1] = m.group()
    return out


def word_id(model, word: str) -> int:
    """Target id of ``word``: ``model.word_id`` when present, else its index in ``model.words``
    with ``<unknown>`` for words outside the vocabulary.

    Parameters
    ----------
    model : nn.Module
        A character model with a ``word_id`` method or a word vocabulary (``words``).
    word : str
        The word.

    Returns
    -------
    int
        The class index of ``word`` (of ``<unknown>`` when it is not in the vocabulary).

    Raises
    ------
    ConfigError
        If the model has no word vocabulary, or the word is unknown and there is no ``<unknown>`` class.
    """
    if callable(getattr(model, "word_id", None)):
        return int(model.word_id(word))
    names = class_names(model)
    if names is None:
        raise ConfigError("target='text' needs a model with a word vocabulary (`words`); use target='predicted'")
    if word in names:
        return names.index(word)
    if "<unknown>" in names:
        return names.index("<unknown>")
    raise ConfigError(f"word {word!r} is not in the vocabulary and the model has no <unknown> class")


def describe_model(model) -> str:
    """A one-line description of a model for the page.

    Uses ``model.describe()`` when it returns a dict with ``cell`` and ``hidden``:
    ``"<cell> <layers> x <hidden>, embedding E, <convention> convention, N words"`` (the optional
    parts only when present); otherwise (or if ``describe`` fails) the class name and parameter count.

    Parameters
    ----------
    model : nn.Module
        The model.

    Returns
    -------
    str
        The description, e.g. ``"lstm 2 x 600, embedding 56, 16,384 words"`` or
        ``"MyModel, 12,345 parameters"``.
    """
    d = {}
    describe = getattr(model, "describe", None)
    if callable(describe):
        try:
            d = describe()
        except Exception:  # optional metadata of a user model
            d = {}
    if "cell" in d and "hidden" in d:
        layers = d.get("layers", 1)
        parts = [f"{d['cell']} {layers} x {d['hidden']}"]
        if d.get("embedding"):
            parts.append(f"embedding {d['embedding']}")
        if d.get("convention"):
            parts.append(f"{d['convention']} convention")
        if d.get("n_words"):
            parts.append(f"{d['n_words']:,} words")
        return ", ".join(parts)
    n = sum(p.numel() for p in model.parameters())
    return f"{type(model).__name__}, {n:,} parameters"


# ----------------------------------------------------------------------------- analysis
def _sig(values: np.ndarray, digits: int = 4) -> list[float]:
    return [float(f"{v:.{digits}g}") for v in values]


def analysis_memory(models: dict, T: int) -> int:
    """Bytes :func:`analyze` needs for ``T`` characters (an estimate): per model the probe's
    :func:`rnnmem.probes.connectivity.memory_estimate` plus the page data, ``T (T + 1) / 2``
    Python floats in lists (about 32 bytes each).

    Parameters
    ----------
    models : dict
        ``{name: model}``; the hidden size and layer count are read from ``model.rnn``
        (``hidden_size``, ``num_layers``; 0 and 1 when absent), the vocabulary from ``words``.
    T : int
        The number of characters (the cleaned text's length, leading space included).

    Returns
    -------
    int
        The estimated number of bytes, summed over the models.
    """
    total = 0
    for model in models.values():
        params = [p for p in model.parameters() if p.is_floating_point()]
        dtype = params[0].dtype if params else "float32"
        core = getattr(model, "rnn", None)
        hidden = int(getattr(core, "hidden_size", 0) or 0)
        layers = int(getattr(core, "num_layers", 1) or 1)
        names = class_names(model)
        vocabulary = len(names) if names is not None else 0
        total += memory_estimate(T, hidden, vocabulary, dtype, layers) + 16 * T * (T + 1)
    return total


def format_bytes(n: float) -> str:
    """``1234567`` -> ``"1.2 MB"`` (decimal units).

    Parameters
    ----------
    n : float
        A number of bytes.

    Returns
    -------
    str
        Whole bytes below 1000 (``"999 B"``), else one decimal in kB, MB, GB or TB (the largest unit).
    """
    for unit in ("B", "kB", "MB", "GB", "TB"):
        if n < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} TB"  # pragma: no cover


def viridis_stops(n: int = VIRIDIS_STOPS) -> list[list[int]]:
    """``n`` evenly spaced colours of matplotlib's viridis, 0..255 (the page interpolates).

    Parameters
    ----------
    n : int, default VIRIDIS_STOPS (64)
        The number of colours.

    Returns
    -------
    list of [int, int, int]
        ``n`` RGB triples from the low to the high end of the map.
    """
    from matplotlib import colormaps

    rgba = colormaps["viridis"](np.linspace(0.0, 1.0, n))
    return [[int(round(255 * c)) for c in row[:3]] for row in rgba]


def check_scale(scale: str, decades) -> tuple[str, int]:
    """Validate the colour scale options; returns ``(scale, decades)``.

    Parameters
    ----------
    scale : str
        ``"log"`` or ``"linear"`` (:data:`SCALES`).
    decades : int
        The log scale's floor in decades below the maximum, an integer from 1 to 16.

    Returns
    -------
    tuple of (str, int)
        ``scale`` and ``decades`` as an ``int``.

    Raises
    ------
    ConfigError
        If ``scale`` is not one of :data:`SCALES` or ``decades`` is not an integer in [1, 16].
    """
    if scale not in SCALES:
        raise ConfigError(f"scale must be one of {', '.join(SCALES)}, got {scale!r}")
    if isinstance(decades, bool) or not isinstance(decades, (int, np.integer)) or not 1 <= decades <= 16:
        raise ConfigError(f"decades (the log scale's floor) must be an integer from 1 to 16, got {decades!r}")
    return scale, int(decades)


def colour_level(values, scale: str = "log", decades: int = DEFAULT_DECADES) -> np.ndarray:
    """Position on the colour bar, in [0, 1], of connectivity values already divided by their
    maximum (what the page computes): ``"log"``: ``(log10 v + decades) / decades`` clipped to
    [0, 1], values <= 0 at 0; ``"linear"``: ``v`` clipped to [0, 1].

    Parameters
    ----------
    values : array-like of float, normalised connectivity (1 = the maximum).
    scale, decades : the colour scale and the log scale's floor in decades below the maximum.

    Returns
    -------
    numpy.ndarray of the same shape, in [0, 1].
    """
    scale, decades = check_scale(scale, decades)
    v = np.asarray(values, dtype=np.float64)
    if scale == "linear":
        return np.clip(v, 0.0, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        lv = (np.log10(np.where(v > 0, v, np.nan)) + decades) / decades
    return np.clip(np.nan_to_num(lv, nan=0.0), 0.0, 1.0)


def analyze(models: dict, text: str, target: str = "text", norm: str = "sq_l2", normalize: bool = True,
            chunk: int | None = None, device=None, max_chars: int | None = DEFAULT_MAX_CHARS,
            progress: Callable[[str, int, int], None] | None = None) -> dict:
    """Everything the page shows, JSON-serialisable: the cleaned text's characters and, per model,
    ``conn[t~] = [connectivity(t, t~) for t <= t~]`` (4 significant digits), the target word of
    each step and its source, the top-3 suggestions ``[word, probability]`` and the text's word.
    ``progress(model_name, done, total)`` is called after each chunk of the probe.

    The measure is Madsen's (2019, "Visualizing memorization in RNNs", Distill) connectivity
    ``connectivity(t, t~) = || d z_{t~, k(t~)} / d x_t ||^2`` (``norm="sq_l2"``; the plain L2 norm
    for ``"l2"``), ``z`` the logits and ``k(t~)`` the target class
    (:func:`rnnmem.probes.connectivity.connectivity_matrix`).

    Parameters
    ----------
    models : dict
        ``{name: character model}``, at least one; the first model's alphabet cleans the text and
        every model must read all its characters.
    text : str
        The raw text (cleaned with :func:`clean_text`).
    target : str, default "text"
        ``"text"``: the word each character belongs to (top-1 where no word follows); ``"predicted"``:
        the model's top-1 prediction (:data:`TARGETS`).
    norm : str, default "sq_l2"
        ``"sq_l2"`` or ``"l2"``.
    normalize : bool, default True
        Divide each column t~ by its maximum over t (1 = the strongest earlier input).
    chunk : int or None, default None
        Passed to the probe (output steps per backward pass, or steps per segment).
    device : torch device or str, optional
        Where the probe runs (default: the model's own).
    max_chars : int or None, default DEFAULT_MAX_CHARS (1000)
        The largest number of characters after cleaning (the leading space not counted); None: no limit.
    progress : callable or None
        ``progress(model_name, done, total)``.

    Returns
    -------
    dict
        ``{"text", "tokens", "models", "norm", "normalize", "target"}``; ``models`` is a list of
        dicts with ``name``, ``description``, ``conn`` (list over t~ of lists over t <= t~),
        ``max``, ``targets``, ``target_source``, ``top``, ``text_words``, ``wall_s`` (seconds) and,
        for a non-empty text, the probe's ``config``.

    Raises
    ------
    ConfigError
        If ``target`` is unknown, ``models`` is not a non-empty dict, or a model is not a character
        model (or lacks a vocabulary with ``target="text"``).
    InputError
        If the text is longer than ``max_chars`` after cleaning (the message gives the memory it would
        need) or a model cannot read one of its characters.
    """
    if target not in TARGETS:
        raise ConfigError(f"target must be one of {', '.join(TARGETS)}, got {target!r}")
    if not isinstance(models, dict) or not models:
        raise ConfigError("give at least one model, as a dict {name: model}")
    first = next(iter(models.values()))
    clean = clean_text(text, alphabet(first))
    typed = max(len(clean) - 1, 0)  # the leading space is cleaning's own, not the user's: not counted
    if max_chars is not None and typed > max_chars:
        need = analysis_memory(models, len(clean))
        raise InputError(f"the text has {typed} characters after cleaning; the limit is {max_chars}. "
                         f"Its connectivity needs about {format_bytes(need)} of memory (it grows with the square "
                         f"of the length; {format_bytes(analysis_memory(models, max_chars + 1))} at the limit): "
                         "shorten the text, or raise the limit with --max-chars N (max_chars= in Python)")
    words = text_words(clean)
    out_models = []
    for name, model in models.items():
        bad = sorted(set(clean) - set(alphabet(model)))
        if bad:
            raise InputError(f"model {name!r} cannot read the characters {''.join(bad)!r} of the text")
        entry = {"name": str(name), "description": describe_model(model), "conn": [], "max": 0.0,
                 "targets": [], "target_source": [], "top": [], "text_words": words, "wall_s": 0.0}
        if clean:
            t0 = time.perf_counter()
            names = class_names(model)
            targets = None
            sources = ["top-1 prediction"] * len(clean)
            if target == "text":
                targets = _text_targets(model, clean, words, device)
                sources = ["word in the text" if w is not None else "top-1 prediction (no word follows)"
                           for w in words]
            res = connectivity_matrix(model, clean, targets=targets, norm=norm, normalize=normalize, chunk=chunk,
                                      device=device,
                                      progress=(lambda d, n, _name=name: progress(_name, d, n)) if progress else None)
            M = res.matrix
            entry["conn"] = [_sig(M[: t + 1, t]) for t in range(len(clean))]
            entry["max"] = float(M.max())
            labels = names if names is not None else [str(i) for i in range(res.logits.shape[-1])]
            entry["targets"] = [labels[k] for k in res.targets]
            entry["target_source"] = sources
            entry["top"] = [[[w, float(f"{p:.6g}")] for _, w, p in row] for row in top_k(res.logits, TOP, names)]
            entry["wall_s"] = time.perf_counter() - t0
            entry["config"] = res.config
        out_models.append(entry)
    return {
        "text": clean,
        "tokens": list(clean),
        "models": out_models,
        "norm": norm,
        "normalize": bool(normalize),
        "target": target,
    }


def _text_targets(model, clean: str, words: list[str | None], device) -> np.ndarray:
    """The study's targets (word id, <unknown> outside the vocabulary); top-1 where no word follows."""
    ids = [word_id(model, w) if w is not None else -1 for w in words]
    if any(i < 0 for i in ids):
        import torch

        from ..probes.connectivity import encode, prepare_model

        m = prepare_model(model, device)
        with torch.no_grad():
            x = encode(m, clean).to(next(m.parameters()).device)
            logits = m.from_embedding(m.embed(x[:, None]))[:, 0].clone()
        logits[:, padding_classes(class_names(m))] = -torch.inf
        pred = logits.argmax(-1).cpu().numpy()
        ids = [int(pred[t]) if i < 0 else i for t, i in enumerate(ids)]
    return np.asarray(ids, dtype=np.int64)


# ----------------------------------------------------------------------------- page
def _asset(name: str) -> str:
    return resources.files("rnnmem.report").joinpath("assets", name).read_text(encoding="utf-8")


def _lead(data: dict) -> str:
    norm = "squared L2 norm" if data["norm"] == "sq_l2" else "L2 norm"
    tgt = ("the word the character belongs to (a space: the next word)" if data["target"] == "text"
           else "the model's top-1 prediction")
    scale = ("divided by its maximum over the earlier characters" if data["normalize"]
             else "divided by the largest value for that model")
    return (
        "Click or tap a character (or use the arrow keys) to select it. Every character up to it is coloured by "
        f"its <b>connectivity</b>: the {norm} of the gradient of the logit of {tgt} at the selected character "
        "with respect to that earlier input character, taken through the embedding to the one-hot input, "
        f"{scale}. Hover a character to read its value (the line under each text) without changing the "
        "selection. The colour scale is logarithmic by default so that weak long-range links stay visible; "
        "switch it to linear below. The list shows the model's top-3 predicted words. Method: Madsen (2019), "
        "<i>Visualizing memorization in RNNs</i>, Distill."
    )


def explorer_html(data: dict, live: bool = False, api: str = "api/analyze", title: str | None = None,
                  examples: list | None = None, scale: str = "log", decades: int = DEFAULT_DECADES) -> str:
    """The page for ``data`` (from :func:`analyze`); ``live`` adds the text box that posts to
    ``api`` (used by ``rnnmem serve``).

    Parameters
    ----------
    data : dict from :func:`analyze`, shown when the page opens.
    live, api : live mode (a text box analysed through ``api``) and the endpoint's path.
    title : page title (default: the model names).
    examples : optional list of dicts ``{"label", "text", "group"?, "data"?, "main"?}`` offered in
        a menu. ``data`` (an :func:`analyze` result) is rendered when chosen; without it, in live
        mode, the text is put in the text box and analysed through ``api``. ``main=True`` marks the
        entry whose analysis is ``data`` itself (not repeated in the page).
    scale, decades : the initial colour scale ("log" or "linear") and the log floor in decades.

    Returns
    -------
    str, the self-contained HTML page.

    Raises
    ------
    ConfigError
        For an invalid ``scale`` or ``decades``, or an example without ``label`` and ``text`` strings.
    """
    from .. import __version__

    scale, decades = check_scale(scale, decades)
    title = title or ("Connectivity explorer: " + ", ".join(m["name"] for m in data["models"]))
    page = dict(data)
    page["viridis"] = viridis_stops()
    page["live"] = bool(live)
    page["api"] = api
    page["scale"] = scale
    page["decades"] = decades
    page["examples"] = []
    for ex in examples or []:
        if not isinstance(ex, dict) or not isinstance(ex.get("label"), str) or not isinstance(ex.get("text"), str):
            raise ConfigError("each example must be a dict with a 'label' and a 'text' string")
        page["examples"].append({"label": ex["label"], "group": str(ex.get("group") or ""), "text": ex["text"],
                                 "main": bool(ex.get("main")), "data": None if ex.get("main") else ex.get("data")})
    page["scale_label"] = ("connectivity / max over earlier characters" if data["normalize"]
                           else "connectivity / max over the text")
    payload = json.dumps(page, separators=(",", ":"), allow_nan=False)
    payload = payload.replace("</", "<\\/").replace("<!--", "<\\!--")  # safe inside <script>
    cfg = next((m.get("config") for m in data["models"] if m.get("config")), {})
    footer = (f"rnnmem {html.escape(__version__)} &middot; norm <code>{html.escape(data['norm'])}</code> &middot; "
              f"normalize <code>{data['normalize']}</code> &middot; target <code>{html.escape(data['target'])}</code>")
    if cfg:
        footer += (f" &middot; dtype <code>{html.escape(cfg.get('dtype', ''))}</code> &middot; gradient at "
                   f"<code>{html.escape(cfg.get('at', ''))}</code> &middot; {html.escape(cfg.get('method', ''))}")
    out = _asset("explorer.html")
    for key, value in (("@@CSS@@", _asset("explorer.css")), ("@@JS@@", _asset("explorer.js")),
                       ("@@TITLE@@", html.escape(title)), ("@@LEAD@@", _lead(data)), ("@@FOOTER@@", footer),
                       ("@@VERSION@@", html.escape(__version__)), ("@@DATA@@", payload)):
        out = out.replace(key, value)
    return out


def write_explorer(models: dict, text: str, path, *, target: str = "text", norm: str = "sq_l2",
                   normalize: bool = True, chunk: int | None = None, device=None, title: str | None = None,
                   max_chars: int | None = DEFAULT_MAX_CHARS,
                   progress: Callable[[str, int, int], None] | None = None,
                   examples: list | None = None, label: str = "the given text", scale: str = "log",
                   decades: int = DEFAULT_DECADES) -> Path:
    """Write the self-contained explorer page for ``models`` ({name: model}) on ``text``.

    Parameters
    ----------
    models, text, target, norm, normalize, chunk, device, max_chars, progress : as :func:`analyze`.
    path : the HTML file to write.
    title : page title.
    examples : further texts for the page's menu, each ``(label, text)``, ``(group, label, text)``
        or a dict with "label", "text" and optionally "group"; each is analysed here.
    label : the menu label of ``text`` (shown first).
    scale, decades : the initial colour scale and log floor (see :func:`explorer_html`).

    Returns
    -------
    Path of the page.

    Raises
    ------
    ConfigError
        For invalid options (as :func:`analyze` and :func:`explorer_html`) or a malformed example.
    InputError
        If the text or an example has no letters after cleaning, or is over ``max_chars``.
    """
    check_scale(scale, decades)
    extra = [_example_entry(ex) for ex in examples or []]
    data = analyze(models, text, target=target, norm=norm, normalize=normalize, chunk=chunk, device=device,
                   max_chars=max_chars, progress=progress)
    if not data["tokens"]:
        raise InputError("the text has no letters after cleaning; give some words")
    menu = [{"label": label, "text": data["text"], "group": "", "main": True}] if extra else []
    for ex in extra:
        ex_data = analyze(models, ex["text"], target=target, norm=norm, normalize=normalize, chunk=chunk,
                          device=device, max_chars=max_chars, progress=progress)
        if not ex_data["tokens"]:
            raise InputError(f"example {ex['label']!r} has no letters after cleaning")
        menu.append({**ex, "text": ex_data["text"], "data": ex_data})
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(explorer_html(data, title=title, examples=menu, scale=scale, decades=decades), encoding="utf-8")
    return path


def _example_entry(ex) -> dict:
    if isinstance(ex, dict):
        entry = {"label": ex.get("label"), "text": ex.get("text"), "group": ex.get("group") or ""}
    elif isinstance(ex, (tuple, list)) and len(ex) in (2, 3):
        group, label, text = ex if len(ex) == 3 else ("", *ex)
        entry = {"label": label, "text": text, "group": group}
    else:
        entry = {"label": None, "text": None}
    if not isinstance(entry["label"], str) or not isinstance(entry["text"], str):
        raise ConfigError(f"an example must be (label, text), (group, label, text) or a dict with 'label' and "
                          f"'text' strings, got {ex!r}")
    return entry


__all__ = ["analyze", "check_scale", "clean_text", "colour_level", "explorer_html", "text_words", "viridis_stops",
           "write_explorer", "DEFAULT_DECADES", "SCALES", "TARGETS"]
