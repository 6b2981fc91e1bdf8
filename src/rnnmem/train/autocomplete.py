"""Autocomplete models (Madsen, "Visualizing memorization in RNNs", Distill 2019): training and
evaluation.

Model (the study's ``gru_aligned`` / ``lstm_aligned`` / ``nlstm_aligned``)::

    e_t = E[x_t]                       character embedding; row 0 (<eos>, padding) is a fixed zero
    h_t = RNN(e_1 .. e_t)              rnnmem.cells unit (gru / lstm / nlstm), tf1 convention
    z_t = h_t W + b                    dense layer to the word vocabulary (logits, pre-softmax)

Initialisation as the study: E uniform(-sqrt(1/27), sqrt(1/27)) (27 trainable rows), the dense
kernel glorot-uniform with zero bias (``tf.layers.dense``), the recurrent unit as its convention.

Loss (``tf.losses.sparse_softmax_cross_entropy`` with weights, Reduction.MEAN)::

    L = sum_{t,b} m_tb * (-log softmax(z_tb)[y_tb]) / sum_{t,b} m_tb,   m_tb = [y_tb not in {<eos>, <unknown>}]

Optimiser: Adam with TensorFlow's defaults (lr 1e-3, beta 0.9 / 0.999, eps 1e-8), batch 64, no
dropout, no clipping. Batches: each epoch is a permutation of the training split seeded by
(seed, epoch), so a run resumed from a checkpoint sees exactly the batches it would have seen.

Evaluation (see :func:`evaluate`): masked token cross-entropy and accuracy; the study's variants
(its test ran with batch size 1: cross-entropy is the mean over observations of each one's
masked mean, accuracy is ``argmax == target`` over all non-padding characters) with <unknown>
targets counted as misses (the study compared argmax with the target id; the two agree unless a
model ranks <unknown>, never a training target, first); and top-1/2/3 accuracy given k known
characters of the word.
"""

from __future__ import annotations

import csv
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from .. import cells
from ..cells import init as winit
from ..cells.base import resolve_dtype
from ..errors import ConfigError, InputError
from ..devices import resolve_device
from ..tasks.autocomplete import CHARS, PAD, UNKNOWN, AutocompleteData, batch_order, known_characters
from .checkpoint import atomic_save, load_dict
from .fit import TrainResult as FitResult
from .fit import fit_seeds

CHECKPOINT_FORMAT = "rnnmem-autocomplete"
CHECKPOINT_VERSION = 1
DEFAULT_N_WORDS = 2**14 + 2


# =========================================================================== model
class AutocompleteModel(nn.Module):
    """Character embedding + recurrent unit + dense layer to word logits (see module docstring).

    Inputs are time-major ``LongTensor[T, B]`` character ids (``chars``: ``<eos>``, space, a-z);
    outputs ``[T, B, n_words]`` logits. Built without ``words`` (e.g. only to count parameters),
    the vocabulary is ``<eos>``, ``<unknown>`` and ``<word2>`` ... ``<word{n_words-1}>``."""

    def __init__(self, cell: str = "gru", hidden: int = 600, layers: int = 2, embedding: int = 600,
                 convention: str = "tf1", n_words: int | None = None, depth: int = 2, dtype="float32",
                 seed: int = 0, chars: list[str] | None = None, words: list[str] | None = None, device=None):
        super().__init__()
        chars = list(CHARS if chars is None else chars)
        if len(chars) < 2 or chars[0] != "<eos>" or len(set(chars)) != len(chars):
            raise ConfigError("chars must be distinct with '<eos>' (padding) first")
        if words is None:
            n_words = DEFAULT_N_WORDS if n_words is None else n_words
            if not isinstance(n_words, int) or n_words < 3:
                raise ConfigError(f"n_words must be an integer >= 3, got {n_words!r}")
            words = ["<eos>", "<unknown>"] + [f"<word{i}>" for i in range(2, n_words)]
        else:
            words = list(words)
            if n_words is not None and n_words != len(words):
                raise ConfigError(f"n_words={n_words} but {len(words)} words were given")
            if len(words) < 3 or words[:2] != ["<eos>", "<unknown>"]:
                raise ConfigError("words must start with '<eos>', '<unknown>' and hold at least one word")
        for name, v in (("hidden", hidden), ("layers", layers), ("embedding", embedding)):
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not isinstance(seed, int):
            raise ConfigError(f"seed must be an integer, got {seed!r}")
        self.chars, self.words = chars, words
        self.cell, self.hidden, self.layers, self.embedding_size = cell, hidden, layers, embedding
        self.convention_name = convention if isinstance(convention, str) else convention.name
        self.depth, self.seed = depth, seed
        tdtype = resolve_dtype(dtype)
        self.dtype_name = str(tdtype).replace("torch.", "")
        gen = torch.Generator().manual_seed(seed)
        n_chars = len(chars)
        scale = math.sqrt(1.0 / (n_chars - 1))
        self.embedding_weight = nn.Parameter(winit.uniform((n_chars - 1, embedding), scale, gen, tdtype))
        options = {"depth": depth} if cell == "nlstm" else {}
        self.rnn = cells.build(cell, embedding, hidden, layers=layers, convention=convention, dtype=tdtype,
                               seed=seed, **options)
        self.dense = nn.Linear(hidden, len(words), dtype=tdtype)
        with torch.no_grad():
            self.dense.weight.copy_(winit.glorot_uniform((hidden, len(words)), gen, tdtype).T)
            self.dense.bias.zero_()
        self._index = {w: i for i, w in enumerate(words)}
        if device is not None:
            self.to(device)

    # ------------------------------------------------------------------ contract
    @property
    def n_words(self) -> int:
        """Number of word classes (``<eos>``, ``<unknown>`` and the words).

        Returns
        -------
        int
        """
        return len(self.words)

    @property
    def device(self) -> torch.device:
        """Device of the model's parameters.

        Returns
        -------
        torch.device
        """
        return self.embedding_weight.device

    def embedding_matrix(self) -> torch.Tensor:
        """``E[n_chars, E]`` with the fixed zero row 0 (what the one-hot input multiplies).

        Returns
        -------
        torch.Tensor
            [n_chars, embedding].
        """
        w = self.embedding_weight
        return torch.cat([w.new_zeros(1, w.shape[1]), w], dim=0)

    def embed(self, chars: torch.Tensor) -> torch.Tensor:
        """``chars[T, B]`` (ids) -> ``e[T, B, E]``; padding (id 0) embeds to exactly zero.

        Parameters
        ----------
        chars : torch.Tensor
            int64 or int32 character ids [T, B], in [0, n_chars).

        Returns
        -------
        torch.Tensor
            [T, B, embedding] on the model's device.

        Raises
        ------
        InputError
            If ``chars`` is not an integer tensor of shape [T, B] with ids in range.
        """
        if not isinstance(chars, torch.Tensor) or chars.dtype not in (torch.int64, torch.int32):
            raise InputError("chars must be an integer (Long) tensor of character ids")
        if chars.dim() != 2:
            raise InputError(f"chars must have shape [T, B], got {tuple(chars.shape)}")
        if chars.numel() and (int(chars.min()) < 0 or int(chars.max()) >= len(self.chars)):
            raise InputError(f"character ids must lie in [0, {len(self.chars) - 1}]")
        return F.embedding(chars.to(self.device), self.embedding_matrix())

    def from_embedding(self, e: torch.Tensor) -> torch.Tensor:
        """``e[T, B, E]`` -> logits ``[T, B, n_words]`` (pre-softmax).

        Parameters
        ----------
        e : torch.Tensor
            Embedded characters [T, B, embedding].

        Returns
        -------
        torch.Tensor
            Logits [T, B, n_words].
        """
        y, _ = self.rnn(e)
        return self.dense(y)

    def forward(self, chars: torch.Tensor) -> torch.Tensor:
        """Character ids to word logits: ``from_embedding(embed(chars))``.

        Parameters
        ----------
        chars : torch.Tensor
            int64 character ids [T, B].

        Returns
        -------
        torch.Tensor
            Logits [T, B, n_words].

        Raises
        ------
        InputError
            As :meth:`embed`.
        """
        return self.from_embedding(self.embed(chars))

    def encode_text(self, text: str, errors: str = "strict") -> torch.Tensor:
        """Text -> ``LongTensor[T]`` of character ids on the model's device, lower-cased first.

        Characters map one to one (no leading space is added; training observations start with
        a space before every word). Characters outside the alphabet raise ``InputError``
        (``errors="strict"``) or are dropped (``errors="drop"``).

        Parameters
        ----------
        text : str
        errors : {"strict", "drop"}, default "strict"

        Returns
        -------
        torch.Tensor
            int64 [T].

        Raises
        ------
        ConfigError
            On an unknown ``errors`` value.
        InputError
            With ``errors="strict"``, if the text holds characters outside the alphabet.
        """
        if errors not in ("strict", "drop"):
            raise ConfigError(f"errors must be 'strict' or 'drop', got {errors!r}")
        index = {c: i for i, c in enumerate(self.chars) if len(c) == 1}
        text = text.lower()
        bad = sorted({c for c in text if c not in index})
        if bad and errors == "strict":
            raise InputError(f"text holds characters outside the model's alphabet (space and a-z): "
                             f"{''.join(bad)!r}; remove them or use errors='drop'")
        ids = [index[c] for c in text if c in index]
        return torch.tensor(ids, dtype=torch.long, device=self.device)

    def decode_chars(self, ids) -> str:
        """Character ids back to text (padding, id 0, is left out).

        Parameters
        ----------
        ids : iterable of int

        Returns
        -------
        str
        """
        return "".join(self.chars[int(i)] if int(i) else "" for i in ids)

    def word_id(self, word: str) -> int:
        """Target id of ``word`` (``<unknown>`` = 1 when outside the vocabulary).

        Parameters
        ----------
        word : str

        Returns
        -------
        int
        """
        return self._index.get(word, UNKNOWN)

    @torch.no_grad()
    def suggest(self, text: str, k: int = 3) -> list[list[tuple[str, float]]]:
        """Top-k predicted words with probabilities at every character of ``text``.

        Parameters
        ----------
        text : str
            Lower-cased and encoded with :meth:`encode_text` (strict).
        k : int, default 3
            Words per position.

        Returns
        -------
        list of list of (str, float)
            One list per character: ``k`` (word, softmax probability) pairs, most likely first; empty
            for empty text.

        Raises
        ------
        InputError
            If the text holds characters outside the alphabet.
        """
        x = self.encode_text(text).unsqueeze(1)
        if x.shape[0] == 0:
            return []
        p = torch.softmax(self.forward(x)[:, 0].double(), dim=-1)
        val, idx = p.topk(k, dim=-1)
        return [[(self.words[i], float(v)) for v, i in zip(vs.tolist(), ix.tolist())] for vs, ix in zip(val, idx)]

    def config(self) -> dict:
        """Everything needed to rebuild the model: ``AutocompleteModel(**model.config())``.

        Returns
        -------
        dict
            cell, hidden, layers, embedding, convention, n_words, depth, dtype, seed, chars, words.
        """
        return {"cell": self.cell, "hidden": self.hidden, "layers": self.layers, "embedding": self.embedding_size,
                "convention": self.convention_name, "n_words": self.n_words, "depth": self.depth,
                "dtype": self.dtype_name, "seed": self.seed, "chars": list(self.chars), "words": list(self.words)}

    def describe(self) -> dict:
        """Config without the word list, plus the recurrent unit's full description and counts.

        Returns
        -------
        dict
            :meth:`config` without ``words``/``chars``, plus ``unit`` and ``parameters``
            (:func:`parameter_counts`).
        """
        d = {k: v for k, v in self.config().items() if k not in ("words", "chars")}
        d["unit"] = self.rnn.describe()
        d["parameters"] = parameter_counts(self)
        return d


def parameter_counts(model: AutocompleteModel) -> dict[str, int]:
    """Trainable parameters by part (the padding row of the embedding is not a parameter).

    Parameters
    ----------
    model : AutocompleteModel

    Returns
    -------
    dict of str to int
        ``embedding``, ``recurrent``, ``dense``, ``total``.
    """
    emb = model.embedding_weight.numel()
    rec = sum(p.numel() for p in model.rnn.parameters())
    dense = sum(p.numel() for p in model.dense.parameters())
    return {"embedding": emb, "recurrent": rec, "dense": dense, "total": emb + rec + dense}


def save_checkpoint(model: AutocompleteModel, path, **extra) -> Path:
    """Save model config and weights (plus any ``extra`` entries, e.g. training state).

    Parameters
    ----------
    model : AutocompleteModel
    path : str or path
        Checkpoint file (written atomically, :func:`rnnmem.train.checkpoint.atomic_save`).
    **extra
        Further plain entries of the checkpoint dict.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    obj = {"format": CHECKPOINT_FORMAT, "version": CHECKPOINT_VERSION, "config": model.config(),
           "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()}, **extra}
    return atomic_save(obj, path)


def load_checkpoint(path, device="cpu") -> AutocompleteModel:
    """Rebuild the model saved by :func:`save_checkpoint` on ``device`` (eval mode).

    Parameters
    ----------
    path : str or path
        Checkpoint file.
    device : torch.device or str, default "cpu"

    Returns
    -------
    AutocompleteModel
        In eval mode on ``device``.

    Raises
    ------
    InputError
        If the file is unreadable, not an autocomplete checkpoint, or its weights do not fit its
        config.
    ConfigError
        If the stored config is invalid.
    """
    obj = load_dict(path, device="cpu", kind="autocomplete checkpoint")
    if obj.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path} is not an rnnmem autocomplete checkpoint (format {obj.get('format')!r})")
    model = AutocompleteModel(**obj["config"])
    try:
        model.load_state_dict(obj["state_dict"])
    except RuntimeError as exc:
        raise InputError(f"{path}: weights do not fit the stored config: {exc}") from None
    return model.to(resolve_device(device)).eval()


# =========================================================================== training
@dataclass
class TrainConfig:
    """Training options; ``steps`` wins over ``epochs``; neither = 2 epochs (the study)."""

    steps: int | None = None
    epochs: float | None = None
    batch_size: int = 64
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    seed: int = 0
    log_every: int = 10
    eval_every: int = 200
    eval_batches: int | None = 20
    checkpoint_every: int = 500

    def __post_init__(self):
        for name in ("batch_size", "log_every", "eval_every", "checkpoint_every"):
            v = getattr(self, name)
            if not isinstance(v, int) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.steps is not None and (not isinstance(self.steps, int) or self.steps < 1):
            raise ConfigError(f"steps must be a positive integer, got {self.steps!r}")
        if self.epochs is not None and not self.epochs > 0:
            raise ConfigError(f"epochs must be > 0, got {self.epochs!r}")
        if self.eval_batches is not None and self.eval_batches < 1:
            raise ConfigError("eval_batches must be >= 1 or None (whole validation split)")
        if not self.lr > 0:
            raise ConfigError(f"lr must be > 0, got {self.lr}")
        self.betas = tuple(float(b) for b in self.betas)

    def steps_per_epoch(self, n_train: int) -> int:
        """Batches per epoch, ``ceil(n_train / batch_size)``.

        Parameters
        ----------
        n_train : int
            Training observations.

        Returns
        -------
        int
        """
        return math.ceil(n_train / self.batch_size)

    def total_steps(self, n_train: int) -> int:
        """Steps to run: ``steps`` if set, else ``round(epochs * steps_per_epoch)`` (2 epochs by default),
        at least 1.

        Parameters
        ----------
        n_train : int
            Training observations.

        Returns
        -------
        int
        """
        if self.steps is not None:
            return self.steps
        return max(1, round((2.0 if self.epochs is None else self.epochs) * self.steps_per_epoch(n_train)))

    def as_dict(self) -> dict:
        """The options as a plain dict (``betas`` as a list).

        Returns
        -------
        dict
        """
        d = asdict(self)
        d["betas"] = list(self.betas)
        return d


LOG_COLUMNS = ["step", "epoch", "train_loss", "val_loss", "val_accuracy", "elapsed_s"]


@dataclass(kw_only=True)
class TrainResult(FitResult):
    """Result of :func:`train_autocomplete` (a :class:`rnnmem.train.fit.TrainResult`).

    Parameters
    ----------
    log : pandas.DataFrame
        The training log (``LOG_COLUMNS``), resumed runs included.
    steps : int
        Steps done in all (this run and the runs it resumed).
    wall_s : float
        Seconds of this run.
    resumed_from : int
        The step this run started from (0 = a fresh run).
    checkpoint : Path or None
        The training checkpoint written.
    config : dict
        Training options, model description, data fingerprint.
    history, table, model
        From :func:`~rnnmem.train.fit.fit_seeds` (this run's steps only).
    """

    log: pd.DataFrame
    steps: int
    wall_s: float
    resumed_from: int
    checkpoint: Path | None = None
    config: dict = field(default_factory=dict)


def batch_tensors(data: AutocompleteData, rows: np.ndarray, device) -> tuple[torch.Tensor, torch.Tensor]:
    """``(chars[T, B], targets[T, B])`` Long tensors of observations ``rows``, trimmed to the
    longest one (padding is at the end of each observation).

    Parameters
    ----------
    data : AutocompleteData
    rows : array-like of int
        Observation indices [B].
    device : torch.device or str

    Returns
    -------
    tuple of torch.Tensor
        int64 ``chars`` and ``targets``, [T, B] each, T = the longest length among ``rows``.
    """
    rows = np.asarray(rows)
    T = int(np.max(np.asarray(data.lengths)[rows]))
    chars = torch.from_numpy(np.ascontiguousarray(np.asarray(data.chars[rows, :T]).T).astype(np.int64))
    targets = torch.from_numpy(np.ascontiguousarray(np.asarray(data.targets[rows, :T]).T).astype(np.int64))
    return chars.to(device), targets.to(device)


def masked_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean cross-entropy over positions whose target is a known word (not <eos>, not <unknown>);
    returns ``(loss, count)``.

    L = sum_{t,b} m_tb (-log softmax(z_tb)[y_tb]) / sum_{t,b} m_tb (the module docstring's loss;
    the mean is 0 when no position counts).

    Parameters
    ----------
    logits : torch.Tensor
        [T, B, n_words] (computed in float32).
    targets : torch.Tensor
        int64 [T, B].

    Returns
    -------
    tuple of torch.Tensor
        Scalar ``loss`` (nats) and scalar ``count`` of known-word positions.
    """
    masked = targets.masked_fill(targets == UNKNOWN, PAD)
    count = (masked != PAD).sum()
    loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), masked.reshape(-1), ignore_index=PAD,
                           reduction="sum")
    return loss / count.clamp(min=1), count


@torch.no_grad()
def validation_loss(model: AutocompleteModel, data: AutocompleteData, split: str = "valid",
                    batch_size: int = 64, max_batches: int | None = None, device="cpu") -> tuple[float, float]:
    """Token-weighted masked cross-entropy and masked accuracy on the first ``max_batches``
    batches of ``split`` (in split order: the same subset every time).

    Parameters
    ----------
    model : AutocompleteModel
    data : AutocompleteData
    split : str, default "valid"
    batch_size : int, default 64
    max_batches : int, optional
        None: the whole split.
    device : torch.device or str, default "cpu"

    Returns
    -------
    tuple of float
        ``(cross_entropy, accuracy)`` over known-word positions; NaN, NaN when there are none.

    Raises
    ------
    ConfigError
        If the split is unknown.
    """
    idx = data.split_index(split)
    was_training = model.training
    model.eval()
    total = correct = count = 0.0
    for b, start in enumerate(range(0, len(idx), batch_size)):
        if max_batches is not None and b >= max_batches:
            break
        x, y = batch_tensors(data, idx[start : start + batch_size], device)
        logits = model(x)
        loss, n = masked_cross_entropy(logits, y)
        known = y > UNKNOWN
        total += float(loss) * int(n)
        count += int(n)
        correct += int(((logits.argmax(-1) == y) & known).sum())
    model.train(was_training)
    if count == 0:
        return float("nan"), float("nan")
    return total / count, correct / count


def _write_log(rows: list[dict], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=LOG_COLUMNS)
        w.writeheader()
        w.writerows(rows)
    tmp.replace(path)


def _data_fingerprint(data: AutocompleteData) -> dict:
    c = data.config
    return {k: c.get(k) for k in ("corpus_sha256", "vocab_size", "max_length", "split", "seed", "observations")}


def train_autocomplete(model: AutocompleteModel, data: AutocompleteData, config: TrainConfig | None = None,
                       out_dir=None, device="cpu", resume: bool = True,
                       progress: Callable[[int, int, dict], None] | None = None) -> TrainResult:
    """Train ``model`` on ``data``'s training split (see module docstring).

    With ``out_dir``: the log is written to ``out_dir/log.csv`` at every log point, a checkpoint
    (model, Adam state, step, log) to ``out_dir/checkpoint.pt`` every ``checkpoint_every`` steps,
    at the end, and when interrupted between steps (KeyboardInterrupt, re-raised; interrupted
    inside an update, the last periodic checkpoint is kept). With ``resume`` an existing
    checkpoint is continued (same model config, data and training options required; ``steps`` /
    ``epochs`` may grow). ``progress(step, total, info)`` is called after every step. The loop is
    :func:`rnnmem.train.fit.fit_seeds` (one network; resumed with ``start_step``).

    Parameters
    ----------
    model : AutocompleteModel
        Trained in place (moved to ``device``).
    data : AutocompleteData
        The prepared data set.
    config : TrainConfig or None
        Training options (default ``TrainConfig()``).
    out_dir : path or None
        Where the log and checkpoint go.
    device : str
        Torch device.
    resume : bool
        Continue from ``out_dir/checkpoint.pt`` when it exists.
    progress : callable or None
        ``progress(step, total, info)``.

    Returns
    -------
    TrainResult
        ``log``, ``steps``, ``wall_s``, ``resumed_from``, ``checkpoint``, ``config``, plus
        ``history``/``table``/``model`` from ``fit_seeds``.

    Raises
    ------
    ConfigError
        If the model and data disagree (word classes, alphabet), or the checkpoint to resume was
        trained with another model config, data or training options.
    InputError
        If the training split is empty or the checkpoint is not a training checkpoint.
    """
    config = config or TrainConfig()
    if model.n_words != data.n_words:
        raise ConfigError(f"model has {model.n_words} word classes but the data has {data.n_words}")
    if model.chars != list(data.chars_vocabulary):
        raise ConfigError("model and data use different character alphabets")
    device = resolve_device(device)
    model.to(device)
    train_idx = data.split_index("train")
    if len(train_idx) == 0:
        raise InputError("the training split is empty; use a larger corpus")
    spe = config.steps_per_epoch(len(train_idx))
    total = config.total_steps(len(train_idx))
    out = Path(out_dir) if out_dir is not None else None
    ckpt_path = out / "checkpoint.pt" if out is not None else None
    rows: list[dict] = []
    step = 0
    running = [0.0, 0]
    elapsed_before = 0.0
    opt_state = None
    fixed = {k: v for k, v in config.as_dict().items() if k not in ("steps", "epochs")}
    fingerprint = _data_fingerprint(data)
    if resume and ckpt_path is not None and ckpt_path.is_file():
        obj = load_dict(ckpt_path, kind="training checkpoint")
        st = obj.get("train_state")
        if obj.get("format") != CHECKPOINT_FORMAT or st is None:
            raise InputError(f"{ckpt_path} is not an rnnmem autocomplete training checkpoint")
        if obj["config"] != model.config():
            raise ConfigError(f"{ckpt_path} was trained with a different model config; use another --out or "
                              "delete the checkpoint")
        if st["fixed"] != fixed or st["data"] != fingerprint:
            raise ConfigError(f"{ckpt_path} was trained with different data or training options; use another "
                              "--out or delete the checkpoint")
        model.load_state_dict(obj["state_dict"])
        opt_state = st["optimizer"]
        step, rows, elapsed_before = int(st["step"]), list(st["log"]), float(st["elapsed_s"])
        running = st["running"]
    resumed_from = step
    opt = None

    def make_optimizer(params):
        nonlocal opt
        opt = torch.optim.Adam(params, lr=config.lr, betas=config.betas, eps=config.eps)
        if opt_state is not None:
            opt.load_state_dict(opt_state)
            for group in opt.state.values():  # map the restored Adam moments onto the model's device
                for k, v in group.items():
                    if isinstance(v, torch.Tensor) and k != "step":
                        group[k] = v.to(device)
        return opt

    def checkpoint():
        if ckpt_path is None or opt is None:
            return
        state = {"step": step, "optimizer": opt.state_dict(), "log": rows, "fixed": fixed, "data": fingerprint,
                 "elapsed_s": elapsed_before + time.perf_counter() - t0, "total_steps": total,
                 "running": [run_loss, run_n]}  # the unfinished log interval
        save_checkpoint(model, ckpt_path, train_state=state)

    order_epoch, order = -1, None
    dirty = False  # True while weights, step and log are out of step with each other

    def batch_at(s):
        nonlocal dirty, order_epoch, order
        dirty = True
        epoch, b = divmod(s, spe)
        if epoch != order_epoch:
            order, order_epoch = batch_order(len(train_idx), config.batch_size, config.seed, epoch), epoch
        return batch_tensors(data, train_idx[order[b]], device)

    def on_step(info):
        nonlocal step, run_loss, run_n, dirty
        step = info.step
        loss_value = float(info.loss[0])
        run_loss += loss_value
        run_n += 1
        inf = {"loss": loss_value}
        if step % config.log_every == 0 or step % config.eval_every == 0 or step == total:
            row = {"step": step, "epoch": step / spe, "train_loss": run_loss / run_n,
                   "val_loss": float("nan"), "val_accuracy": float("nan"),
                   "elapsed_s": elapsed_before + time.perf_counter() - t0}
            run_loss, run_n = 0.0, 0
            if step % config.eval_every == 0 or step == total:
                row["val_loss"], row["val_accuracy"] = validation_loss(
                    model, data, "valid", config.batch_size, config.eval_batches, device)
                inf["val_loss"] = row["val_loss"]
            rows.append(row)
            if out is not None:
                _write_log(rows, out / "log.csv")
        dirty = False
        if step % config.checkpoint_every == 0 and step < total:
            checkpoint()
        if progress:
            progress(step, total, inf)

    t0 = time.perf_counter()
    model.train()
    run_loss, run_n = float(running[0]), int(running[1])
    try:
        fit = fit_seeds(model, batch_at, lambda m, b: masked_cross_entropy(m(b[0]), b[1])[0],
                        optimizer=make_optimizer, seeds=[config.seed], steps=total, start_step=step,
                        nonfinite="propagate", on_step=on_step)
    except KeyboardInterrupt:
        if not dirty:  # interrupted mid-update: the last periodic checkpoint stays the resume point
            checkpoint()
        raise
    checkpoint()
    wall = time.perf_counter() - t0
    log = pd.DataFrame(rows, columns=LOG_COLUMNS)
    return TrainResult(log=log, steps=step, wall_s=wall, resumed_from=resumed_from, checkpoint=ckpt_path,
                       history=fit.history, table=fit.table, model=model,
                       config={"train": config.as_dict(), "total_steps": total, "steps_per_epoch": spe,
                               "device": str(device), "model": model.describe(), "data": fingerprint})


# =========================================================================== evaluation
@dataclass
class Evaluation:
    """``summary``: one dict of metrics; ``known_chars``: accuracy by known characters k."""

    summary: dict
    known_chars: pd.DataFrame


KNOWN_VARIANTS = {
    "no_padding": "non-padding characters; <unknown> targets count as misses (ours, the issue's definition)",
    "masked": "known-word targets only (padding and <unknown> excluded)",
    "study": "as no_padding, plus every padding position up to max_length counted as a miss (the study's "
             "ContextAccuracy on padded batches)",
}


@torch.no_grad()
def evaluate(model: AutocompleteModel, data: AutocompleteData, split: str = "test", batch_size: int = 64,
             device="cpu", max_k: int = 8, max_observations: int | None = None,
             progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Test metrics of ``model`` on ``split`` (see module docstring and ``KNOWN_VARIANTS``).

    ``summary``: ``cross_entropy`` (token mean, masked), ``cross_entropy_study`` (mean over
    observations of each one's masked mean), ``accuracy`` / ``top2`` / ``top3`` (masked),
    ``accuracy_study`` (argmax == target over non-padding characters), counts.

    Parameters
    ----------
    model : AutocompleteModel
    data : AutocompleteData
    split : str, default "test"
    batch_size : int, default 64
    device : torch.device or str, default "cpu"
    max_k : int, default 8
        Largest number of known characters k tabulated (larger k are dropped).
    max_observations : int, optional
        Evaluate only the first observations of the split.
    progress : callable, optional
        ``progress(batch, n_batches)``.

    Returns
    -------
    Evaluation
        ``summary`` (dict above, plus ``split``, ``observations``, ``characters``,
        ``known_targets``) and ``known_chars`` (columns ``variant``, ``k``, ``positions``,
        ``top1``..``top3``, one row per variant and k = 0..max_k).

    Raises
    ------
    ConfigError
        If the split is unknown.
    InputError
        If the split is empty.
    """
    device = resolve_device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    idx = data.split_index(split)
    if max_observations is not None:
        idx = idx[:max_observations]
    if len(idx) == 0:
        raise InputError(f"split {split!r} is empty")
    nbins = max_k + 2  # last bin collects k > max_k (dropped)
    hits = {v: np.zeros((3, nbins)) for v in KNOWN_VARIANTS}
    totals = {v: np.zeros(nbins) for v in KNOWN_VARIANTS}
    ce_sum = known_n = 0.0
    obs_ce = []
    top = np.zeros(3)
    study_hit = nonpad_n = 0.0
    n_batches = math.ceil(len(idx) / batch_size)
    for bi, start in enumerate(range(0, len(idx), batch_size)):
        rows = idx[start : start + batch_size]
        x, y = batch_tensors(data, rows, device)
        logits = model(x).float()
        ce = -torch.log_softmax(logits, dim=-1).gather(-1, y.unsqueeze(-1)).squeeze(-1)  # [T, B]
        top3 = logits.topk(3, dim=-1).indices
        hit = torch.cumsum((top3 == y.unsqueeze(-1)).to(torch.int8), dim=-1).clamp(max=1)  # [T, B, 3] top-j
        y_np = y.T.cpu().numpy()  # [B, T]
        ce_np = ce.T.cpu().numpy()
        T = y_np.shape[1]
        known = y_np > UNKNOWN
        nonpad = y_np != PAD
        # a hit needs a known target: <unknown> targets are misses even if <unknown> is predicted
        hit_np = hit.permute(1, 0, 2).cpu().numpy().astype(bool) & known[..., None]  # [B, T, 3]
        ce_sum += float(ce_np[known].sum())
        known_n += int(known.sum())
        per_obs_n = known.sum(1)
        per_obs = np.where(per_obs_n > 0, (ce_np * known).sum(1) / np.maximum(per_obs_n, 1), np.nan)
        obs_ce.extend(per_obs[per_obs_n > 0].tolist())
        top += hit_np[known].sum(0)
        study_hit += int(hit_np[..., 0][nonpad].sum())
        nonpad_n += int(nonpad.sum())
        k_full = np.minimum(known_characters(np.asarray(data.chars[rows])), max_k + 1)  # [B, L]
        k = k_full[:, :T]
        for variant, mask in (("no_padding", nonpad), ("masked", known)):
            totals[variant] += np.bincount(k[mask], minlength=nbins)
            for j in range(3):
                hits[variant][j] += np.bincount(k[mask], weights=hit_np[..., j][mask], minlength=nbins)
        # study: every position up to L; padding positions are misses (model outputs after the end are
        # zeros in the study's dynamic_rnn, whose <eos> target the dense bias never ranks top-3)
        totals["study"] += np.bincount(k_full.reshape(-1), minlength=nbins)
        for j in range(3):
            hits["study"][j] += np.bincount(k[nonpad], weights=hit_np[..., j][nonpad], minlength=nbins)
        if progress:
            progress(bi + 1, n_batches)
    model.train(was_training)
    summary = {
        "split": split, "observations": int(len(idx)), "characters": int(nonpad_n), "known_targets": int(known_n),
        "cross_entropy": ce_sum / max(known_n, 1), "cross_entropy_study": float(np.mean(obs_ce)) if obs_ce else float("nan"),
        "accuracy": float(top[0] / max(known_n, 1)), "top2": float(top[1] / max(known_n, 1)),
        "top3": float(top[2] / max(known_n, 1)), "accuracy_study": study_hit / max(nonpad_n, 1),
    }
    rows_out = []
    for variant in KNOWN_VARIANTS:
        for kk in range(max_k + 1):
            n = totals[variant][kk]
            rows_out.append({"variant": variant, "k": kk, "positions": int(n),
                             **{f"top{j + 1}": (hits[variant][j][kk] / n if n else float("nan")) for j in range(3)}})
    return Evaluation(summary=summary, known_chars=pd.DataFrame(rows_out))


@torch.no_grad()
def dependency_accuracy(model: AutocompleteModel, data: AutocompleteData, positions: pd.DataFrame,
                        device="cpu", batch_size: int = 64) -> pd.DataFrame:
    """Top-1 accuracy at the space before each planted response word (k = 0: the word can only
    be known from memory), by gap. ``positions`` from ``tasks.autocomplete.dependency_positions``.

    Parameters
    ----------
    model : AutocompleteModel
    data : AutocompleteData
    positions : pandas.DataFrame
        With ``row``, ``position``, ``response``, ``gap_words``, ``distance_chars``.
    device : torch.device or str, default "cpu"
    batch_size : int, default 64

    Returns
    -------
    pandas.DataFrame
        One row per gap: ``gap_words``, ``episodes``, ``accuracy``, ``mean_distance_chars``
        (empty when ``positions`` is).
    """
    cols = ["gap_words", "episodes", "accuracy", "mean_distance_chars"]
    if len(positions) == 0:
        return pd.DataFrame(columns=cols)
    device = resolve_device(device)
    model.to(device)
    was_training = model.training
    model.eval()
    pred = np.zeros(len(positions), dtype=np.int64)
    rows = np.array(positions["row"], dtype=np.int64)
    pos = np.array(positions["position"], dtype=np.int64)
    for start in range(0, len(positions), batch_size):
        sl = slice(start, start + batch_size)
        x, _ = batch_tensors(data, rows[sl], device)
        logits = model(x)
        pred[sl] = logits[torch.as_tensor(pos[sl], device=device), torch.arange(len(rows[sl]), device=device)] \
            .argmax(-1).cpu().numpy()
    model.train(was_training)
    want = np.array([model.word_id(w) for w in positions["response"]])
    df = positions.assign(hit=(pred == want))
    g = df.groupby("gap_words")
    return pd.DataFrame({"gap_words": list(g.groups), "episodes": g.size().to_numpy(),
                         "accuracy": g["hit"].mean().to_numpy(),
                         "mean_distance_chars": g["distance_chars"].mean().to_numpy()})
