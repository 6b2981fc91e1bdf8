"""Connectivity: how strongly the prediction at step t~ depends on the input at step t.

Definition (Madsen 2019, "Visualizing memorization in RNNs", Distill; see
``shared/data/distill2019/README.md``)::

    connectivity(t, t~) = || d z_{t~, k(t~)} / d x_t ||^2          (norm="sq_l2", the study's)
    connectivity(t, t~) = || d z_{t~, k(t~)} / d x_t ||            (norm="l2")

where ``z_{t~}`` are the pre-softmax logits at output step t~, ``k(t~)`` is the target class at t~
(the target word, a chosen class, or the model's top-1 prediction) and ``x_t`` is the input at
step t. With ``normalize=True`` every column t~ is divided by its maximum over t (the published
figures), so the strongest input of each prediction has connectivity 1.

Where the gradient is taken (``at``). For character models the input is the one-hot vector
``o_t`` of the observed character and the embedding is the lookup ``e_t = o_t W`` (``W`` is the
``[chars, E]`` embedding matrix). The gradient is taken at the embedding output and carried to
the one-hot input through the embedding matrix, as in the study::

    d z / d o_t = W (d z / d e_t)          a vector with one entry per character (28)

``at="onehot"`` (default) takes the norm of that whole vector: entry c is how much the logit
would change if character c were fed at t (the observed character's entry included; the padding
row of W is zero, so its entry is 0). ``at="embedding"`` takes the norm of ``d z / d e_t``
itself. ``W`` is recovered from the model as ``embed(arange(chars))``, which is exact when
``embed`` is a row lookup (``nn.Embedding``), the only case the study defines.

Models (two documented protocols):

* **Character models** (``rnnmem.train.autocomplete.AutocompleteModel`` and anything with the
  same methods): ``embed(chars: Long[T, B]) -> [T, B, E]`` and
  ``from_embedding(e: [T, B, E]) -> logits [T, B, V]``; optional ``chars`` (list of characters),
  ``words`` (class names) and ``encode_text(str) -> Long[T]``. ``chars`` may be a string or a
  ``Long[T]`` tensor of character ids.
* **Any sequence model**: an ``nn.Module`` called as ``model(x)`` with ``x: [T, B, I]`` (float)
  returning logits ``[T, B, V]`` (or a tuple whose first element is the logits). ``chars`` is
  then the float input ``[T, I]``; the gradient is taken with respect to ``x_t`` directly.

Algorithm: batched vector-Jacobian products. The sequence is replicated across the batch
dimension, batch item k back-propagates the logit at ``t~ = t0 + k`` of its chunk, and one
backward pass returns the gradients for every input step of every item: ``ceil(T / chunk)``
backward passes instead of T. Two exact savings on top (both on by default, both switchable):

* ``causal=True``: a chunk whose largest output step is ``t1`` runs only the prefix ``[0, t1]``
  (a recurrent model's logits at ``t~ <= t1`` do not depend on later inputs); entries with
  ``t > t~`` are then zero by construction, not computed. With ``causal=False`` the whole
  sequence runs and those zeros come out of the model itself (the tests check both ways).
* ``shortcut=True``: when the logits are the output of one ``nn.Linear`` readout (found by a
  forward hook on a 2-step probe run), the forward pass stops at the readout's input ``h`` and
  the back-propagation starts there with the closed-form cotangent
  ``d z_{t~, k} / d h_{t~} = W_out[k]`` - the ``[T, B, V]`` logits (16386 classes for the study)
  are never formed for the replicated batch. Otherwise the logits are formed and indexed.

``method="sweep"`` (chosen by ``method="auto"`` when it applies) removes the repeated forward
passes and most of the padding: when the readout's input is the output of a recurrent core
``model.rnn`` (a rnnmem unit or ``torch.nn.RNN/LSTM/GRU``, checked numerically on the sequence),
the forward pass runs once, in segments of ``chunk`` steps whose initial states are graph leaves.
The backward pass then sweeps the segments from last to first with one batched cotangent per
output step ``t~`` already passed (the adjoint recursion ``lambda_{t-1} = J_t^T lambda_t`` for all
active t~ at once, new columns joining as their output step is reached), so each (t, t~) pair with
``t <= t~`` costs one batched step of back-propagation: about T^2/2 steps in all, in batches of up
to ``SWEEP_GROUP`` output steps, against T^2 for the naive loop.

``method="adjoint"`` (chosen first by ``method="auto"``) is the same sweep written out by hand
for rnnmem's rnn/lstm/gru units and torch.nn.RNN/LSTM/GRU cores (``rnnmem.cells.adjoint``): no
autograd graph, per-step coefficients precomputed, the embedding matrix folded into the first
layer's input kernel, each step a few matrix products on the block of active adjoints.

``connectivity_naive`` is the textbook reference: one forward pass and T separate backward
passes through the whole model (no truncation, no shortcut); tests compare the two to 1e-5 in
float64, and against central finite differences.
"""

from __future__ import annotations

import copy
import math
import contextlib
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..cells import adjoint
from ..cells.adjoint import input_adjoints
from ..cells.base import resolve_dtype
from ..errors import ConfigError, InputError
from ..devices import resolve_device
from .common import check_finite

NORMS = ("sq_l2", "l2")
ATS = ("onehot", "embedding")
METHODS = ("auto", "adjoint", "sweep", "vmap", "replicate")
DEFAULT_CHUNK = 32           # output steps per backward pass (vmap, replicate)
DEFAULT_SEGMENT = 16         # steps per graph segment (sweep)
SWEEP_GROUP = 256            # most output steps back-propagated together (sweep; bounds memory)


# ----------------------------------------------------------------------------- model protocol
def is_char_model(model) -> bool:
    """True for models following the character protocol (``embed`` + ``from_embedding``).

    Parameters
    ----------
    model : object
        Any model.

    Returns
    -------
    bool
        Whether ``model.embed`` and ``model.from_embedding`` are both callable.
    """
    return callable(getattr(model, "embed", None)) and callable(getattr(model, "from_embedding", None))


def _first(out):
    return out[0] if isinstance(out, (tuple, list)) else out


def encode(model, text: str) -> torch.Tensor:
    """Character ids of ``text`` for a character model: ``model.encode_text`` when present,
    else the index of each character in ``model.chars``. Unknown characters raise InputError.

    Parameters
    ----------
    model : character model
        Has ``encode_text(str)`` and/or ``chars`` (its alphabet, a sequence of characters).
    text : str
        A non-empty text; when ``model.chars`` exists every character must be in it.

    Returns
    -------
    torch.Tensor
        ``Long[T]`` character ids, T = ``len(text)`` for the ``chars`` lookup.

    Raises
    ------
    InputError
        An empty text or characters outside the model's alphabet.
    ConfigError
        The model has neither ``encode_text`` nor ``chars``.
    """
    if not isinstance(text, str) or not text:
        raise InputError("the text is empty; give at least one character")
    chars = getattr(model, "chars", None)
    if chars is not None:
        known = set(chars)
        bad = sorted({c for c in text if c not in known})
        if bad:
            raise InputError(
                f"characters {''.join(bad)!r} are not in the model's alphabet "
                f"{''.join(c for c in chars if len(c) == 1)!r}; clean the text first "
                "(rnnmem.report.explorer.clean_text lower-cases it and maps other characters to spaces)"
            )
    if callable(getattr(model, "encode_text", None)):
        ids = model.encode_text(text)
        return torch.as_tensor(ids, dtype=torch.long).reshape(-1)
    if chars is None:
        raise ConfigError("the model has neither encode_text nor chars; pass character ids as a LongTensor")
    index = {c: i for i, c in enumerate(chars)}
    return torch.tensor([index[c] for c in text], dtype=torch.long)


def class_names(model) -> list[str] | None:
    """The model's class names (``model.words``), if it has any.

    Parameters
    ----------
    model : object
        A model, optionally with a ``words`` sequence (one name per logit).

    Returns
    -------
    list of str or None
        ``list(model.words)``, or None when the model has no ``words``.
    """
    words = getattr(model, "words", None)
    return list(words) if words is not None else None


def padding_classes(names: list[str] | None) -> list[int]:
    """Class ids that are never a prediction: the padding class ``<eos>`` of the autocomplete
    vocabulary (none for models without class names).

    Parameters
    ----------
    names : list of str or None
        Class names (:func:`class_names`).

    Returns
    -------
    list of int
        Indices i with ``names[i] == "<eos>"``; empty for None.
    """
    return [i for i, n in enumerate(names or ()) if n == "<eos>"]


def _model_device_dtype(model) -> tuple[torch.device, torch.dtype]:
    for p in model.parameters():
        return p.device, p.dtype
    return torch.device("cpu"), torch.float32


def prepare_model(model: nn.Module, device=None, dtype=None) -> nn.Module:
    """The model itself when it already has ``device``/``dtype`` (None = keep), else a moved copy
    (the caller's model is never changed).

    Parameters
    ----------
    model : torch.nn.Module
        The model; its device and dtype are those of its first parameter (CPU float32 without parameters).
    device : str or torch.device, optional
        Target device (None: the model's).
    dtype : str or torch.dtype, optional
        Target dtype, e.g. ``"float64"`` (None: the model's).

    Returns
    -------
    torch.nn.Module
        ``model`` itself, or a deep copy moved to ``device``/``dtype``.

    Raises
    ------
    ConfigError
        ``model`` is not a ``torch.nn.Module``.
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"connectivity needs a torch.nn.Module, got {type(model).__name__}")
    cur_dev, cur_dt = _model_device_dtype(model)
    want_dev = resolve_device(device) if device is not None else cur_dev
    want_dt = resolve_dtype(dtype) if dtype is not None else cur_dt
    if want_dev == cur_dev and want_dt == cur_dt:
        return model
    return copy.deepcopy(model).to(device=want_dev, dtype=want_dt)


# ----------------------------------------------------------------------------- readout detection
class _ReadoutReached(Exception):
    """Raised by the readout's pre-hook to stop the forward pass at the readout input."""

    def __init__(self, features: torch.Tensor):
        super().__init__("readout reached")
        self.features = features


def find_readout(fn: Callable, x: torch.Tensor) -> nn.Linear | None:
    """The ``nn.Linear`` whose output *is* what ``fn(x)`` returns, called exactly once, with a
    ``[T, B, H]`` input; ``None`` when there is no such layer (then no shortcut is taken).

    Parameters
    ----------
    fn : nn.Module or bound method of an nn.Module
        The function mapping the input to logits (``model`` or ``model.from_embedding``); it is called
        once on ``x`` under ``torch.no_grad`` with forward hooks on every ``nn.Linear`` of its module.
    x : torch.Tensor
        A short probe input ``[T, B, D]`` (the first 2 steps of the sequence).

    Returns
    -------
    nn.Linear or None
        The readout layer, or None when ``fn`` is not a module's, the output is not one Linear's output,
        that Linear runs more than once, or its input is not ``[T, B, H]`` with the input's T and B.
    """
    module = fn if isinstance(fn, nn.Module) else getattr(fn, "__self__", None)
    if not isinstance(module, nn.Module):
        return None
    calls: list[tuple[nn.Linear, torch.Tensor, torch.Tensor]] = []
    handles = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            handles.append(m.register_forward_hook(lambda mod, inp, out: calls.append((mod, inp[0], out))))
    try:
        with torch.no_grad():
            out = _first(fn(x))
    finally:
        for h in handles:
            h.remove()
    hits = [c for c in calls if c[2] is out]
    if len(hits) != 1:
        return None
    lin, inp, _ = hits[0]
    if sum(1 for c in calls if c[0] is lin) != 1 or inp.dim() != 3 or inp.shape[:2] != x.shape[:2]:
        return None
    return lin


# ----------------------------------------------------------------------------- result
@dataclass
class ConnectivityResult:
    """``matrix[t, t~]`` = connectivity(t, t~) (row: input step t, column: output step t~),
    ``raw`` the same before normalisation, ``targets[t~]`` the class whose logit was
    differentiated, ``logits[t~]`` the model's logits (for suggestions), and the full config."""

    matrix: np.ndarray
    raw: np.ndarray
    targets: np.ndarray
    logits: np.ndarray
    tokens: list[str]
    target_names: list[str] | None
    config: dict = field(default_factory=dict)

    @property
    def T(self) -> int:
        """Sequence length.

        Returns
        -------
        int
            ``matrix.shape[0]`` (the matrix is ``[T, T]``).
        """
        return self.matrix.shape[0]

    def frame(self) -> pd.DataFrame:
        """Long form: one row per (t, t~) pair (only t <= t~ when ``causal``), with columns
        ``t, t_out, lag = t~ - t, connectivity, raw, char, char_out, target, target_word``.

        Returns
        -------
        pandas.DataFrame
            Rows sorted by ``t_out`` then ``t``; ``connectivity`` from ``matrix``, ``raw`` before normalisation,
            ``char``/``char_out`` the tokens at t and t~, ``target`` the class id at t~ and ``target_word``
            its name (only with class names); ``df.attrs["config"]`` holds the result's config.
        """
        T = self.T
        t, t_out = np.meshgrid(np.arange(T), np.arange(T), indexing="ij")
        keep = (t <= t_out) if self.config.get("causal", True) else np.ones_like(t, dtype=bool)
        t, t_out = t[keep], t_out[keep]
        toks = np.asarray(self.tokens, dtype=object)
        df = pd.DataFrame({
            "t": t,
            "t_out": t_out,
            "lag": t_out - t,
            "connectivity": self.matrix[t, t_out],
            "raw": self.raw[t, t_out],
            "char": toks[t],
            "char_out": toks[t_out],
            "target": self.targets[t_out],
        })
        if self.target_names is not None:
            names = np.asarray(self.target_names, dtype=object)
            df["target_word"] = names[self.targets[t_out]]
        df = df.sort_values(["t_out", "t"], kind="stable").reset_index(drop=True)
        df.attrs["config"] = dict(self.config)
        return df

    def decay(self) -> pd.DataFrame:
        """Mean connectivity per lag of this result: ``decay_profile(self)``.

        Returns
        -------
        pandas.DataFrame
            Columns ``lag, mean, std, sem, n`` (see :func:`decay_profile`).
        """
        return decay_profile(self)


def decay_profile(results) -> pd.DataFrame:
    """Mean connectivity as a function of the lag ``t~ - t >= 0``, pooled over every output step
    of one or several results (``ConnectivityResult``, their ``frame()``s, or a list of them).
    Columns: ``lag, mean, std, sem, n`` (n = number of (t, t~) pairs at that lag).

    With c(t, t~) the connectivity of Madsen (2019, "Visualizing memorization in RNNs", Distill) and
    P_k the pooled pairs at lag k = t~ - t,

        mean_k = (1 / n_k) sum_{(t, t~) in P_k} c(t, t~),   std_k (ddof = 1),   sem_k = std_k / sqrt(n_k).

    Parameters
    ----------
    results : ConnectivityResult, pandas.DataFrame, or a list of them
        Results or long frames with ``lag`` and ``connectivity`` columns (pairs with lag < 0 are dropped).

    Returns
    -------
    pandas.DataFrame
        One row per lag: ``lag, mean, std, sem, n``; ``attrs["config"]`` is the first result's config
        plus ``sequences`` (how many results were pooled).

    Raises
    ------
    InputError
        No result, or a frame without ``lag`` and ``connectivity``.
    """
    if isinstance(results, (ConnectivityResult, pd.DataFrame)):
        results = [results]
    frames = []
    for r in results:
        f = r.frame() if isinstance(r, ConnectivityResult) else r
        if not {"lag", "connectivity"} <= set(f.columns):
            raise InputError("decay_profile needs connectivity results or frames with 'lag' and 'connectivity'")
        frames.append(f.loc[f["lag"] >= 0, ["lag", "connectivity"]])
    if not frames:
        raise InputError("decay_profile needs at least one connectivity result")
    df = pd.concat(frames, ignore_index=True)
    g = df.groupby("lag")["connectivity"]
    out = pd.DataFrame({"mean": g.mean(), "std": g.std(ddof=1), "n": g.size()}).reset_index()
    out["sem"] = out["std"] / np.sqrt(out["n"])
    out = out[["lag", "mean", "std", "sem", "n"]]
    first = results[0]
    cfg = first.config if isinstance(first, ConnectivityResult) else first.attrs.get("config", {})
    out.attrs["config"] = {**cfg, "sequences": len(frames)}
    return out


def half_life(lags, values, reference: int = 0) -> dict:
    """Distance at which a mean connectivity profile first falls to half of its value at distance
    ``reference`` (0: the input at the output step itself, or 1: the previous character).

    Definition: with r = v(reference), the half-life is the first distance d > reference with
    v(d) <= r / 2, refined by geometric interpolation between d - 1 and d::

        d* = (d - 1) + ln(v(d-1) / (r/2)) / ln(v(d-1) / v(d)),

    which is exact for a geometric profile v(d) = c q^d (d* = ln 2 / -ln q, from reference 0).
    When the profile never falls to r / 2 within the measured distances the half-life is
    *censored*: ``half_life`` is None and ``at_least`` is the largest distance measured (the
    half-life is longer than that); no value is extrapolated. Missing (NaN) or non-positive
    values are skipped.

    Source: rnnmem's summary of the connectivity profile of Madsen (2019, Distill), described in
    ``docs/connectivity.md`` (the paper itself defines no half-life).

    Parameters
    ----------
    lags : array-like of int, distances t~ - t (a ``decay_profile``'s ``lag`` column).
    values : array-like of float, the mean connectivity at each distance.
    reference : 0 or 1, the distance whose value is halved.

    Returns
    -------
    dict with ``half_life`` (float or None), ``censored`` (bool), ``at_least`` (the largest
    distance measured when censored, else None), ``reference`` (the distance), ``reference_value``
    and ``max_distance``.

    Raises
    ------
    ConfigError
        ``reference`` is not 0 or 1.
    InputError
        ``lags`` and ``values`` are not 1-d of one length, or the profile has no positive value at
        ``reference``.
    """
    if reference not in (0, 1):
        raise ConfigError(f"the half-life's reference distance must be 0 or 1, got {reference!r}")
    lags = np.asarray(lags, dtype=np.float64)
    values = np.asarray(values, dtype=np.float64)
    if lags.shape != values.shape or lags.ndim != 1:
        raise InputError(f"lags and values must be 1-d arrays of one length, got {lags.shape} and {values.shape}")
    ok = np.isfinite(values) & np.isfinite(lags) & (values > 0)
    order = np.argsort(lags[ok], kind="stable")
    lags, values = lags[ok][order], values[ok][order]
    at_ref = np.flatnonzero(lags == reference)
    if not at_ref.size:
        raise InputError(f"the profile has no positive value at the reference distance {reference}")
    r = float(values[at_ref[0]])
    out = {"half_life": None, "censored": True, "at_least": float(lags.max()), "reference": int(reference),
           "reference_value": r, "max_distance": float(lags.max())}
    later = np.flatnonzero(lags > reference)
    below = later[values[later] <= r / 2]
    if not below.size:
        return out
    k = int(below[0])
    d, v = lags[k], values[k]
    d0, v0 = lags[k - 1], values[k - 1]  # the previous measured distance (the reference at worst)
    frac = np.log(v0 / (r / 2)) / np.log(v0 / v) if v0 > v else 1.0
    out.update(half_life=float(d0 + (d - d0) * frac), censored=False, at_least=None)
    return out


# ----------------------------------------------------------------------------- core
def _setup(model, chars, targets, norm, at):
    """Validated inputs of one probe run on an already prepared model: the function mapping the
    input to logits, the input ``x[T, 1, D]``, the embedding matrix (or None), the target classes,
    the logits ``[T, V]``, the display tokens and the class names."""
    if norm not in NORMS:
        raise ConfigError(f"norm must be one of {', '.join(NORMS)}, got {norm!r}")
    if at not in ATS:
        raise ConfigError(f"at must be one of {', '.join(ATS)}, got {at!r}")
    dev, dt = _model_device_dtype(model)
    char_model = is_char_model(model)
    if char_model:
        if isinstance(chars, str):
            text = chars
            ids = encode(model, chars)
        else:
            ids = torch.as_tensor(chars)
            if ids.dtype not in (torch.int64, torch.int32, torch.int16, torch.uint8):
                raise InputError(f"character ids must be an integer tensor, got {ids.dtype}")
            ids = ids.reshape(-1).long()
            text = None
        if ids.numel() == 0:
            raise InputError("the sequence is empty; give at least one character")
        alphabet = getattr(model, "chars", None)
        if alphabet is not None and (ids.min() < 0 or ids.max() >= len(alphabet)):
            raise InputError(f"character ids must lie in [0, {len(alphabet)}), got {ids.min()}..{ids.max()}")
        ids = ids.to(dev)
        with torch.no_grad():
            x = model.embed(ids[:, None]).to(dt)  # [T, 1, E]
        fn = model.from_embedding
        if alphabet is not None:
            tokens = list(text) if text is not None else [alphabet[i] for i in ids.tolist()]
        else:
            tokens = [str(i) for i in ids.tolist()]
        if at == "onehot":
            n_chars = len(alphabet) if alphabet is not None else int(ids.max()) + 1
            with torch.no_grad():
                W = model.embed(torch.arange(n_chars, device=dev)[:, None])[:, 0].to(dt)  # [C, E]
        else:
            W = None
    else:
        if isinstance(chars, str):
            raise InputError("a text needs a character model (embed + from_embedding); give a float tensor [T, I]")
        x = torch.as_tensor(chars)
        if not torch.is_floating_point(x):
            raise InputError(
                f"models without embed/from_embedding take a float input [T, I]; got dtype {x.dtype}"
            )
        if x.dim() == 2:
            x = x[:, None, :]
        if x.dim() != 3 or x.shape[1] != 1:
            raise InputError(f"the input must have shape [T, I] or [T, 1, I], got {tuple(x.shape)}")
        if x.shape[0] == 0:
            raise InputError("the sequence is empty")
        if torch.isnan(x).any():
            raise InputError("the input contains NaN values")
        x = x.to(device=dev, dtype=dt)
        fn = model
        tokens = [str(t) for t in range(x.shape[0])]
        W = None
    T = x.shape[0]
    with torch.no_grad():
        logits = _first(fn(x))
    if logits.dim() != 3 or logits.shape[0] != T or logits.shape[1] != 1:
        raise InputError(f"the model must return logits [T, B, V] = [{T}, 1, V]; got {tuple(logits.shape)}")
    V = logits.shape[-1]
    names = class_names(model)
    k = _resolve_targets(targets, logits[:, 0], names, T, V).to(dev)
    return fn, x, W, k, logits[:, 0], tokens, names


@contextlib.contextmanager
def _frozen(model: nn.Module):
    """Evaluation mode and no parameter gradients for the duration (both restored after): only
    the gradient with respect to the input is needed. cuDNN is switched off inside: its fused RNN
    kernels cannot back-propagate in evaluation mode; torch's native kernels compute the same."""
    was_training = model.training
    flags = [(p, p.requires_grad) for p in model.parameters()]
    model.eval()
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        with torch.backends.cudnn.flags(enabled=False):
            yield
    finally:
        model.train(was_training)
        for p, flag in flags:
            p.requires_grad_(flag)


def _resolve_targets(targets, logits, names, T, V) -> torch.Tensor:
    """Class differentiated at each output step: None/'predicted' = the model's top-1, an int or a
    class name = that class everywhere, or one class id per step."""
    if targets is None or (isinstance(targets, str) and targets == "predicted"):
        z = logits.clone()
        z[:, padding_classes(names)] = -torch.inf
        return z.argmax(-1).cpu()
    if isinstance(targets, str):
        if names is None or targets not in names:
            raise ConfigError(f"target class {targets!r} is not one of the model's words")
        return torch.full((T,), names.index(targets), dtype=torch.long)
    if isinstance(targets, (int, np.integer)):
        k = torch.full((T,), int(targets), dtype=torch.long)
    else:
        k = torch.as_tensor(np.asarray(targets)).reshape(-1).long().cpu()
        if k.numel() != T:
            raise InputError(f"targets must give one class per step ({T}), got {k.numel()}")
    if k.min() < 0 or k.max() >= V:
        raise InputError(f"target classes must lie in [0, {V}), got {int(k.min())}..{int(k.max())}")
    return k


def _reduce(g: torch.Tensor, W: torch.Tensor | None, norm: str) -> torch.Tensor:
    """Norm over the last axis of the gradient, carried to the one-hot input when W is given."""
    if W is not None:
        g = g @ W.T  # [.., E] @ [E, C]: d z / d o_t = W (d z / d e_t)
    sq = (g * g).sum(-1)
    return sq if norm == "sq_l2" else sq.sqrt()


def memory_estimate(T: int, hidden: int, vocabulary: int, dtype=torch.float32, layers: int = 1) -> int:
    """Bytes :func:`connectivity_matrix` needs for a sequence of ``T`` steps (an estimate, within a
    small factor): the ``[T, T]`` gradient-norm matrix on the device in ``dtype``, its float64 copy
    and the normalised float64 matrix of the result (``T^2 (itemsize + 16)``), the logits on the
    device and in float64 (``T V (itemsize + 8)``), and the forward graph the backward sweep keeps
    (about 8 tensors of ``hidden`` values per layer and step).

    Parameters
    ----------
    T: sequence length (characters).
    hidden, layers: hidden units per layer and stacked layers of the recurrent core.
    vocabulary: output classes (the logits' width).
    dtype: the probe's floating dtype (name or torch dtype).

    Returns
    -------
    The estimate in bytes.
    """
    b = torch.empty((), dtype=resolve_dtype(dtype)).element_size()
    T, hidden, vocabulary, layers = int(T), int(hidden), int(vocabulary), max(1, int(layers))
    return T * T * (b + 16) + T * vocabulary * (b + 8) + 8 * T * hidden * layers * b


def _finish(raw: np.ndarray, normalize: bool) -> np.ndarray:
    if not normalize:
        return raw.copy()
    colmax = raw.max(axis=0, keepdims=True)
    return np.divide(raw, colmax, out=np.zeros_like(raw), where=colmax > 0)


def connectivity_matrix(model, chars, targets=None, norm: str = "sq_l2", normalize: bool = True,
                        chunk: int | None = None, device=None, at: str = "onehot", causal: bool = True,
                        shortcut: bool = True, method: str = "auto", dtype=None,
                        progress: Callable[[int, int], None] | None = None) -> ConnectivityResult:
    """Connectivity of every (t, t~) pair with batched vector-Jacobian products (module docstring).

    ``method``: ``auto`` (default: ``adjoint`` when the model's recurrent core has a hand-derived
    sweep, else ``sweep`` when it has a recurrent core feeding a linear readout and ``causal``, else
    ``vmap``), ``adjoint``, ``sweep``, ``vmap`` or ``replicate`` (see
    ``_chunk_grads`` and ``_sweep``). ``chunk``: output steps per backward pass for vmap/replicate
    (default 32), steps per graph segment for sweep (default 16). ``progress(done, total)`` is
    called as the work proceeds. ``device`` and ``dtype`` (None: the model's own) run the probe on
    a moved copy of the model.

    The measure (Madsen 2019, "Visualizing memorization in RNNs", Distill), for input step t and output
    step t~, with z the logits and k(t~) the target class:

        raw(t, t~) = || d z_{t~, k(t~)} / d x_t ||^2   (norm="sq_l2")   or   || . ||   (norm="l2"),
        matrix(t, t~) = raw(t, t~) / max_t raw(t, t~)   (normalize=True; 0 for an all-zero column),

    with ``d z / d o_t = W (d z / d e_t)`` for a character model at ``at="onehot"`` (W the embedding matrix).

    Parameters
    ----------
    model : torch.nn.Module
        A character model (``embed`` + ``from_embedding``) or a module ``model(x[T, B, I]) -> logits
        [T, B, V]`` (or a tuple whose first element is the logits).
    chars : str, Long[T] tensor, or float tensor [T, I] / [T, 1, I]
        A text or character ids (character model), or the float input (other models).
    targets : None, "predicted", int, str, or sequence of int
        Class differentiated at each output step: None/"predicted" the model's top-1 (never ``<eos>``), an
        int or a class name that class at every step, or one class id per step (T values).
    norm : {"sq_l2", "l2"}
        Squared or plain L2 norm of the gradient (default ``"sq_l2"``, the study's).
    normalize : bool
        Divide each column t~ by its maximum over t (default True).
    chunk : int, optional
        Output steps per backward pass (vmap/replicate, default 32) or steps per graph segment (sweep,
        default 16); >= 1.
    device : str or torch.device, optional
        Where to compute (None: the model's device).
    at : {"onehot", "embedding"}
        Where the gradient of a character model is taken (see the module docstring).
    causal : bool
        Run only the prefix up to each chunk's last output step; entries t > t~ are zero (default True).
    shortcut : bool
        Start back-propagation at the input of a detected ``nn.Linear`` readout (default True).
    method : {"auto", "adjoint", "sweep", "vmap", "replicate"}
        Algorithm (see above); all give the same numbers up to rounding.
    dtype : str or torch.dtype, optional
        Precision (None: the model's).
    progress : callable, optional
        ``progress(done, total)``.

    Returns
    -------
    ConnectivityResult
        ``matrix`` and ``raw`` (``[T, T]`` float64, row t = input step, column t~ = output step), ``targets``
        (``[T]`` class ids), ``logits`` (``[T, V]`` float64), ``tokens``, ``target_names`` and ``config``
        (definition, norm, method used, dtype, device...).

    Raises
    ------
    ConfigError
        A bad ``chunk``, ``method``, ``norm``, ``at`` or target name, a method that does not apply to the
        model, or a model that is not an ``nn.Module``.
    InputError
        An empty, non-finite or wrongly shaped input, ids outside the alphabet, logits not ``[T, 1, V]``,
        or targets of the wrong length or range.
    """
    if chunk is not None and (not isinstance(chunk, int) or isinstance(chunk, bool) or chunk < 1):
        raise ConfigError(f"chunk must be a positive integer, got {chunk!r}")
    if method not in METHODS:
        raise ConfigError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    check_finite(model, None if isinstance(chars, str) else chars, names=["the input sequence"])
    model_ = prepare_model(model, device, dtype)
    with _frozen(model_):
        fn, x, W, k, logits, tokens, names = _setup(model_, chars, targets, norm, at)
        T, D = x.shape[0], x.shape[-1]
        readout = find_readout(fn, x[: min(T, 2)]) if shortcut else None
        plan = None
        if method in ("auto", "adjoint") and readout is not None and causal:
            plan = _adjoint_plan(model_, fn, x, readout)
        if method == "adjoint" and plan is None:
            raise ConfigError("method='adjoint' needs a model whose logits are one nn.Linear readout of the output of "
                              "`model.rnn`, a rnnmem rnn/lstm/gru unit (not an ensemble) or torch.nn.RNN/LSTM/GRU "
                              "(time-major, unidirectional), with shortcut=True and causal=True; use method='sweep' "
                              "(any recurrent core) or 'vmap' (any model)")
        if plan is not None:
            method = "adjoint"
        graph = None
        if method in ("auto", "sweep") and readout is not None and causal:
            graph = _sweep_graph(model_, fn, x, readout, DEFAULT_SEGMENT if chunk is None else chunk)
        if method == "sweep" and graph is None:
            raise ConfigError("method='sweep' needs a model whose logits are one nn.Linear readout of the output of a "
                              "recurrent core `model.rnn` (a rnnmem unit or torch.nn.RNN/LSTM/GRU), with shortcut=True "
                              "and causal=True; use method='vmap' for other models")
        if method == "auto":
            method = "sweep" if graph is not None else "vmap"
        raw = torch.zeros(T, T, dtype=x.dtype, device=x.device)  # [t, t~]
        if method == "adjoint":
            core, specs, states = plan
            rows = readout.weight[k].to(x.dtype)
            for t, g in input_adjoints(core, x[:, 0], rows, project=W, specs=specs, states=states):
                raw[t, t:] = _reduce(g, None, norm)
                if progress is not None:
                    progress(T - t, T)
        elif method == "sweep":
            chunk = DEFAULT_SEGMENT if chunk is None else chunk
            for t, cols, g in _sweep(graph, readout.weight[k], progress):
                raw[t, cols] = _reduce(g, W, norm)
        else:
            chunk = DEFAULT_CHUNK if chunk is None else chunk
            starts = list(range(0, T, chunk))
            for n, t0 in enumerate(starts):
                t_out = torch.arange(t0, min(t0 + chunk, T), device=x.device)
                Tc = int(t_out[-1]) + 1 if causal else T
                g = _chunk_grads(fn, x[:Tc], t_out, k[t_out], readout, method)  # [Tc, K, D]
                raw[:Tc, t_out] = _reduce(g, W, norm)
                if progress is not None:
                    progress(n + 1, len(starts))
    raw_np = raw.detach().cpu().double().numpy()
    config = {
        "definition": "connectivity(t, t~) = norm of d logit[t~, target(t~)] / d input[t] (Madsen 2019)",
        "norm": norm, "normalize": bool(normalize), "at": at if is_char_model(model_) else "input",
        "protocol": "embed+from_embedding" if is_char_model(model_) else "module(x[T,B,I])",
        "targets": _targets_label(targets), "causal": bool(causal),
        "shortcut": "linear readout" if readout is not None else "none",
        "chunk": chunk, "T": T, "input_dim": D, "classes": int(logits.shape[-1]),
        "dtype": str(x.dtype).replace("torch.", ""), "device": str(x.device),
        "method": {"vmap": "batched vjp (vmap over the backward pass)",
                   "replicate": "batched vjp (sequence replicated across the batch)",
                   "sweep": "batched adjoint sweep over graph segments of the recurrent core",
                   "adjoint": "hand-derived batched adjoint sweep of the recurrent core (rnnmem.cells.adjoint)"}[method],
    }
    describe = getattr(model_, "describe", None)
    if callable(describe):
        try:
            config["model"] = describe()
        except Exception:  # a user model's describe() is optional metadata
            pass
    return ConnectivityResult(
        matrix=_finish(raw_np, normalize), raw=raw_np, targets=k.cpu().numpy(),
        logits=logits.detach().cpu().double().numpy(), tokens=tokens, target_names=names, config=config,
    )


def _targets_label(targets) -> str:
    if targets is None or (isinstance(targets, str) and targets == "predicted"):
        return "predicted (top-1)"
    if isinstance(targets, (str, int, np.integer)):
        return f"class {targets}"
    return "given per step"


def _features(fn, x: torch.Tensor, readout: nn.Linear) -> torch.Tensor:
    """Run ``fn(x)`` up to the readout layer and return the readout's input ``h [T, B, H]``."""
    handle = readout.register_forward_pre_hook(_stop_at_readout)
    try:
        fn(x)
    except _ReadoutReached as stop:
        return stop.features
    finally:
        handle.remove()
    raise RuntimeError("the readout layer was not reached")  # find_readout guarantees it is


def _chunk_grads(fn, x: torch.Tensor, t_out: torch.Tensor, k: torch.Tensor,
                 readout: nn.Linear | None, method: str = "vmap") -> torch.Tensor:
    """``g[t, j] = d z_{t_out[j], k[j]} / d x_t`` for the prefix ``x[:Tc]`` (``x: [Tc, 1, D]``),
    every j of the chunk in one backward pass.

    ``method="vmap"``: one forward pass at batch 1, then one backward pass with a batch of K
    cotangents (``torch.autograd.grad(..., is_grads_batched=True)``, i.e. vmap over the VJP).
    ``method="replicate"``: the sequence is copied K times along the batch axis, item j gets the
    cotangent of output step ``t_out[j]``, and one ordinary backward pass does the rest (works
    for any differentiable model, costs one extra batched forward pass)."""
    Tc, K = x.shape[0], t_out.numel()
    cols = torch.arange(K, device=x.device)
    if method == "vmap":
        xg = x.detach().clone().requires_grad_(True)  # [Tc, 1, D]
        with torch.enable_grad():
            out = _features(fn, xg, readout) if readout is not None else _first(fn(xg))
            cot = torch.zeros((K,) + tuple(out.shape), dtype=out.dtype, device=out.device)
            if readout is not None:
                cot[cols, t_out, 0] = readout.weight[k].to(out.dtype)  # d z_{t~,k} / d h_{t~} = W_out[k]
            else:
                cot[cols, t_out, 0, k] = 1.0
            (g,) = torch.autograd.grad(out, xg, cot, is_grads_batched=True)  # [K, Tc, 1, D]
        return g[:, :, 0].transpose(0, 1)
    xr = x.detach().expand(Tc, K, x.shape[-1]).clone().requires_grad_(True)
    with torch.enable_grad():
        if readout is not None:
            h = _features(fn, xr, readout)  # [Tc, K, H]
            cot = torch.zeros_like(h)
            cot[t_out, cols] = readout.weight[k].to(h.dtype)
            (g,) = torch.autograd.grad(h, xr, cot)
        else:
            z = _first(fn(xr))
            (g,) = torch.autograd.grad(z[t_out, cols, k].sum(), xr)
    return g


# ----------------------------------------------------------------------------- sweep
def _core_call(core: nn.Module, x: torch.Tensor, state):
    """Run the recurrent core on ``x[T, 1, D]`` from ``state`` (a tuple of tensors or None):
    ``(y[T, 1, H], final state as a tuple)`` for rnnmem units and torch.nn.RNN/LSTM/GRU alike."""
    if isinstance(core, nn.LSTM):
        y, (h, c) = core(x, None if state is None else tuple(state))
        return y, (h, c)
    if isinstance(core, nn.RNNBase):
        y, h = core(x, None if state is None else state[0])
        return y, (h,)
    y, st = core(x, None if state is None else tuple(state))
    return y, tuple(st)


def _sweep_graph(model: nn.Module, fn: Callable, x: torch.Tensor, readout: nn.Linear, seg: int):
    """The forward graph of the sweep, or None when it does not apply.

    ``model.rnn`` must be a recurrent core (a single rnnmem unit, or torch.nn.RNN/LSTM/GRU in
    time-major layout). It runs once over ``x``, in segments of ``seg`` steps whose input and
    initial state are graph leaves; the result is used only when the segments' outputs equal the
    readout's input (``_features``), i.e. the logits really are the readout of this core.
    Returns ``[(a, b, x leaf, state leaves or None, y, final state)]`` per segment."""
    from ..cells.base import RecurrentUnit

    core = getattr(model, "rnn", None)
    if isinstance(core, RecurrentUnit):
        if getattr(core, "seeds", None) is not None:
            return None
    elif not (isinstance(core, nn.RNNBase) and not core.batch_first and not core.bidirectional):
        return None
    T = x.shape[0]
    bounds = list(range(0, T, seg)) + [T]
    pieces = []
    state = None
    try:
        with torch.enable_grad():
            for a, b in zip(bounds[:-1], bounds[1:]):
                xs = x[a:b].detach().clone().requires_grad_(True)
                sin = None if state is None else tuple(c.detach().clone().requires_grad_(True) for c in state)
                y, sout = _core_call(core, xs, sin)
                pieces.append((a, b, xs, sin, y, sout))
                state = sout
    except Exception:  # a core with another calling convention: no sweep
        return None
    y = torch.cat([p[4] for p in pieces]).detach()
    return pieces if _feeds_readout(y, fn, x, readout, rtol=1e-6, atol=1e-6) else None


def _feeds_readout(y: torch.Tensor, fn: Callable, x: torch.Tensor, readout: nn.Linear, rtol: float,
                   atol: float = 0.0, atol_rel: float = 0.0) -> bool:
    """Whether ``y`` ``[T, 1, H]`` (a recurrent core's outputs along ``x``) equals the readout's
    input when ``fn(x)`` runs (``_features``), to ``torch.allclose`` with ``rtol`` and an absolute
    tolerance ``atol`` (``atol_rel`` > 0: ``atol_rel`` times the features' largest magnitude): the
    check that the logits really are the readout of that core."""
    with torch.no_grad():
        feats = _features(fn, x, readout)
    if y.shape != feats.shape:
        return False
    if atol_rel > 0:
        atol = atol_rel * max(float(feats.abs().max()), 1e-30)
    return torch.allclose(y, feats, rtol=rtol, atol=atol)


def _adjoint_plan(model: nn.Module, fn: Callable, x: torch.Tensor, readout: nn.Linear):
    """``(core, layer specs, trajectory)`` for the hand-derived sweep (``rnnmem.cells.adjoint``), or
    None when it does not apply: ``model.rnn`` must have a hand-derived sweep, its equations must
    reproduce the core's first steps (``adjoint.consistent``) and the core's top-layer outputs
    along ``x`` must equal the readout's input (``_features``), i.e. the logits really are the
    readout of this core run from a zero state."""
    core = getattr(model, "rnn", None)
    specs = adjoint.layer_specs(core) if isinstance(core, nn.Module) else None
    if specs is None:
        return None
    with torch.no_grad():
        try:
            states = adjoint.trajectory(core, specs, x[:, 0])
        except Exception:  # a core with another calling convention: no sweep
            return None
        if not adjoint.consistent(specs, x[:, 0], states[0]):
            return None
    top = states[0][-1][:, None]
    return (core, specs, states) if _feeds_readout(top, fn, x, readout, rtol=1e-5, atol_rel=1e-6) else None


def _sweep(pieces, w_out: torch.Tensor, progress=None):
    """Adjoint sweep (module docstring) over the segment graph of ``_sweep_graph``.
    ``w_out[t~] = d z_{t~, k(t~)} / d h_{t~}`` (the readout row of the target). Yields
    ``(t, cols, g)`` (two slices) with ``g[i, j] = d z_{cols[j]} / d x_{t[i]}`` (shape
    ``[len(t), len(cols), D]``) for every segment of every group of output steps; the pairs not
    yielded are zero (t > t~)."""
    T = pieces[-1][1]
    with torch.enable_grad():
        groups = list(range(0, T, SWEEP_GROUP))
        total = sum(sum(1 for p in pieces if p[0] < min(c0 + SWEEP_GROUP, T)) for c0 in groups)
        done = 0
        for c0 in groups:
            c1 = min(c0 + SWEEP_GROUP, T)
            carried = None  # cotangents of the state leaving the segment, one per active column
            for a, b, xs, sin, y, sout in reversed([p for p in pieces if p[0] < c1]):
                lo = max(c0, a)          # active columns: t~ in [lo, c1)
                n_new = max(0, min(c1, b) - lo)
                n_act = c1 - lo
                outs, cots = [], []
                if n_new:
                    cot_y = y.new_zeros((n_act,) + tuple(y.shape))
                    j = torch.arange(n_new, device=y.device)
                    cot_y[j, lo - a + j, 0] = w_out[lo:lo + n_new].to(y.dtype)
                    outs.append(y)
                    cots.append(cot_y)
                if carried is not None:
                    for comp, cot in zip(sout, carried):
                        pad = cot.new_zeros((n_new,) + tuple(cot.shape[1:]))
                        outs.append(comp)
                        cots.append(torch.cat([pad, cot]) if n_new else cot)
                ins = [xs] + (list(sin) if sin is not None else [])
                grads = torch.autograd.grad(outs, ins, cots, retain_graph=True, is_grads_batched=True,
                                            allow_unused=True)
                gx = grads[0] if grads[0] is not None else xs.new_zeros((n_act,) + tuple(xs.shape))
                yield slice(a, b), slice(lo, c1), gx[:, :, 0].transpose(0, 1)
                if sin is not None:
                    carried = [g if g is not None else c.new_zeros((n_act,) + tuple(c.shape))
                               for g, c in zip(grads[1:], sin)]
                done += 1
                if progress is not None:
                    progress(done, total)


def _stop_at_readout(module, inputs):
    raise _ReadoutReached(inputs[0])


def connectivity(model, chars, targets=None, norm: str = "sq_l2", normalize: bool = True,
                 chunk: int | None = None, device=None, at: str = "onehot", causal: bool = True,
                 shortcut: bool = True, method: str = "auto", dtype=None, progress=None) -> pd.DataFrame:
    """Connectivity as a long DataFrame (see ``ConnectivityResult.frame``); the configuration
    is in ``df.attrs['config']``. ``connectivity_matrix`` returns the matrix form.

    The measure is Madsen's (2019, Distill) ``connectivity(t, t~) = || d z_{t~, k(t~)} / d x_t ||^2`` (or
    its square root with ``norm="l2"``), each column divided by its maximum with ``normalize=True``.

    Parameters
    ----------
    model, chars, targets, norm, normalize, chunk, device, at, causal, shortcut, method, dtype, progress
        As for :func:`connectivity_matrix`.

    Returns
    -------
    pandas.DataFrame
        ``connectivity_matrix(...).frame()``: one row per (t, t~) pair with t <= t~ when causal.

    Raises
    ------
    ConfigError, InputError
        As :func:`connectivity_matrix`.
    """
    return connectivity_matrix(model, chars, targets=targets, norm=norm, normalize=normalize, chunk=chunk,
                               device=device, at=at, causal=causal, shortcut=shortcut, method=method, dtype=dtype,
                               progress=progress).frame()


def connectivity_naive(model, chars, targets=None, norm: str = "sq_l2", normalize: bool = True,
                       device=None, at: str = "onehot", dtype=None, t_out=None) -> ConnectivityResult:
    """Reference implementation: one forward pass over the whole sequence, then one backward pass
    per output step t~ through the whole model (no truncation, no readout shortcut). ``t_out``
    restricts the output steps computed (the other columns stay NaN); used by tests and the
    benchmark.

    Computes the same measure as :func:`connectivity_matrix` (Madsen 2019), column by column:
    ``raw[:, t~] = || d z_{t~, k(t~)} / d x_t ||^2`` (or its norm) for every t.

    Parameters
    ----------
    model, chars, targets, norm, normalize, device, at, dtype
        As for :func:`connectivity_matrix`.
    t_out : iterable of int, optional
        Output steps t~ to compute (default all T).

    Returns
    -------
    ConnectivityResult
        ``matrix`` and ``raw`` ``[T, T]`` float64 (NaN in columns not computed; normalisation over the
        computed columns only), ``targets``, ``logits``, ``tokens``, ``target_names`` and ``config``
        (``causal`` is False: entries t > t~ are computed, and are zero for a causal model).

    Raises
    ------
    ConfigError, InputError
        As :func:`connectivity_matrix` (norm, at, input and targets).
    """
    check_finite(model, None if isinstance(chars, str) else chars, names=["the input sequence"])
    model_ = prepare_model(model, device, dtype)
    with _frozen(model_):
        fn, x, W, k, logits, tokens, names = _setup(model_, chars, targets, norm, at)
        T = x.shape[0]
        steps = range(T) if t_out is None else [int(s) for s in t_out]
        raw = torch.full((T, T), float("nan"), dtype=x.dtype, device=x.device)
        xg = x.detach().clone().requires_grad_(True)
        with torch.enable_grad():
            z = _first(fn(xg))
            for s in steps:
                (g,) = torch.autograd.grad(z[s, 0, k[s]], xg, retain_graph=True)
                raw[:, s] = _reduce(g[:, 0], W, norm)
    raw_np = raw.detach().cpu().double().numpy()
    if t_out is None:
        mat = _finish(raw_np, normalize)
    else:
        mat = np.full_like(raw_np, np.nan)
        cols = list(steps)
        mat[:, cols] = _finish(raw_np[:, cols], normalize)
    config = {"norm": norm, "normalize": bool(normalize), "at": at if is_char_model(model_) else "input",
              "method": "naive (one backward per t~)",
              "targets": _targets_label(targets), "causal": False, "T": T,
              "dtype": str(x.dtype).replace("torch.", "")}
    return ConnectivityResult(matrix=mat, raw=raw_np, targets=k.cpu().numpy(),
                              logits=logits.detach().cpu().double().numpy(), tokens=tokens,
                              target_names=names, config=config)


def top_k(logits: np.ndarray, k: int = 3, names: list[str] | None = None, exclude=None) -> list[list[tuple]]:
    """Top-k classes per step with softmax probabilities (over all classes), skipping the class
    ids in ``exclude`` (default: ``padding_classes(names)``, i.e. ``<eos>``). Returns, per step, a
    list of ``(class_id, name, probability)``; the first entry is the "predicted" target.

    Parameters
    ----------
    logits : numpy.ndarray
        ``[T, V]`` logits (float64 softmax over all V classes, excluded ones included).
    k : int
        Entries per step (default 3; fewer when fewer classes remain).
    names : list of str, optional
        Class names (None: the class id as a string).
    exclude : iterable of int, optional
        Class ids skipped (default: the ``<eos>`` class of ``names``).

    Returns
    -------
    list of list of (int, str, float)
        Per step, up to k ``(class_id, name, probability)`` in decreasing probability.
    """
    exclude = set(padding_classes(names) if exclude is None else exclude)
    z = np.asarray(logits, dtype=np.float64)
    z = z - z.max(axis=-1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=-1, keepdims=True)
    ranked = np.argsort(-p, axis=-1, kind="stable")
    out = []
    for t in range(p.shape[0]):
        row = []
        for c in ranked[t]:
            if int(c) in exclude:
                continue
            row.append((int(c), names[c] if names is not None else str(int(c)), float(p[t, c])))
            if len(row) == k:
                break
        out.append(row)
    return out


__all__ = [
    "connectivity", "connectivity_matrix", "connectivity_naive", "decay_profile", "half_life", "ConnectivityResult",
    "top_k", "encode", "is_char_model", "padding_classes", "find_readout", "prepare_model", "NORMS", "ATS",
]


# --------------------------------------------------------------------------------------------
# The probe contract (``probes/contract.py``): PROBES["connectivity"]
# --------------------------------------------------------------------------------------------
from typing import Literal  # noqa: E402

from pydantic import Field  # noqa: E402

from .contract import ProbeSettings, register_probe  # noqa: E402


class RandomReadout(nn.Module):
    """Scalar "logit" of a bare recurrent model: z_t = v . y_t with a fixed, seeded unit vector v
    (float64 draw), so the connectivity of a model without classes is defined."""

    def __init__(self, unit, seed: int):
        super().__init__()
        self.unit = unit
        g = torch.Generator().manual_seed(seed)
        v = torch.randn(unit.hidden_size, generator=g, dtype=torch.float64)
        self.register_buffer("v", v / v.norm())

    def forward(self, x):
        """The scalar readout ``z_t = v . y_t`` of the unit's output.

        Parameters
        ----------
        x : torch.Tensor
            Inputs ``[T, B, I]``.

        Returns
        -------
        torch.Tensor
            ``[T, B, 1]`` logits (one "class"), in the output's dtype.
        """
        y = self.unit(x)[0]
        return (y @ self.v.to(y.dtype)).unsqueeze(-1)


def fit_half_life(lags: np.ndarray, values: np.ndarray) -> dict:
    """Least-squares fit of ln v_k = a - rate * k over the lags where v_k > 1e-12 max(v);
    half-life = ln 2 / rate.

    Source: rnnmem's memory-card summary of the connectivity decay profile of Madsen (2019, Distill),
    an exponential fit (the paper defines no rate); compare :func:`half_life`, which interpolates
    the first crossing instead of fitting.

    Parameters
    ----------
    lags : numpy.ndarray
        Lags k (a :func:`decay_profile`'s ``lag`` column).
    values : numpy.ndarray
        Mean connectivity v_k at each lag (non-finite values are left out).

    Returns
    -------
    dict with ``rate``, ``half_life`` (None unless rate > 0), ``r2`` (of the log fit) and ``fit_lags``.
    With fewer than 3 lags to fit, ``rate``, ``half_life`` and ``r2`` are None.
    """
    lags, values = np.asarray(lags, float), np.asarray(values, float)
    ok = np.isfinite(values) & (values > 1e-12 * np.nanmax(values))
    if ok.sum() < 3:
        return {"rate": None, "half_life": None, "r2": None, "fit_lags": int(ok.sum())}
    slope, intercept = np.polyfit(lags[ok], np.log(values[ok]), 1)
    pred = intercept + slope * lags[ok]
    ss_res = float(((np.log(values[ok]) - pred) ** 2).sum())
    ss_tot = float(((np.log(values[ok]) - np.log(values[ok]).mean()) ** 2).sum())
    rate = -slope
    return {"rate": rate, "half_life": math.log(2) / rate if rate > 0 else None,
            "r2": 1 - ss_res / ss_tot if ss_tot > 0 else None, "fit_lags": int(ok.sum())}


class ConnectivityProbeSettings(ProbeSettings):
    """Settings of ``PROBES["connectivity"]`` (defaults: the memory card's): ``sequences`` random
    N(0, 1) input sequences of ``T`` steps; the gradient of a seeded random unit-norm readout of the
    output (:class:`RandomReadout`) at t~ with respect to the input at t, reduced with ``norm``, in
    float64; the decay profile is its mean over t~ per lag k = t~ - t."""

    T: int = Field(150, ge=2)
    sequences: int = Field(2, ge=1)
    norm: Literal["l2", "sq_l2"] = "l2"


def _contract_run(unit, s: ConnectivityProbeSettings, *, seed, device, dtype, progress):
    """Connectivity decay against the lag and its half-life ln 2 / rate (Madsen 2019; module docstring)."""
    model = RandomReadout(unit, seed)
    g = torch.Generator().manual_seed(seed)
    results = []
    for i in range(s.sequences):
        x = torch.randn(s.T, unit.input_size, generator=g, dtype=torch.float64)
        results.append(connectivity_matrix(model, x, targets=0, norm=s.norm, normalize=False, dtype="float64"))
        if progress is not None:
            progress(i + 1, s.sequences)
    prof = decay_profile(results)
    fit = fit_half_life(prof["lag"].to_numpy(), prof["mean"].to_numpy())
    return prof, fit, {"lags": prof["lag"].to_numpy(), "mean": prof["mean"].to_numpy()}, results


def _plot(result, ax):
    lags, v = np.asarray(result.details["lags"], float), np.asarray(result.details["mean"], float)
    ok = np.isfinite(v) & (v > 0)
    ax.semilogy(lags[ok], v[ok])
    ax.set_xlabel("lag k = t~ - t")
    ax.set_ylabel("mean gradient norm (log)")
    hl = result.headline.get("half_life")
    ax.set_title("connectivity decay" + (f", half-life {hl:.3g} steps" if hl else ""))


register_probe("connectivity", ConnectivityProbeSettings, _contract_run,
               "gradient of the output at t~ w.r.t. the input at t, against the lag (Madsen 2019)", plotter=_plot)
