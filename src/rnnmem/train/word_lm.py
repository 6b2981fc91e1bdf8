"""Word-level language models on a fixed, shared embedding: the units compared by the semantic
memory study (``rnnmem.studies.zhang``).

Model (ours; the paper's training setup is not available to us): the input at step t is the
fixed vector ``e(w_t)`` of the shared embedding (not trained, so every unit reads the same space
the indicators measure in), a recurrent unit from ``rnnmem.cells`` (vanilla RNN, LSTM, GRU, any
registered unit) and a linear layer to the vocabulary; the task is next-word prediction with
cross-entropy (targets ``<unknown>`` ignored).

Training length = truncation: each training sequence is a window of ``train_length`` consecutive
words starting at a random corpus position, read from a zero state, with back-propagation
through the whole window. *Same budget* for every unit and training length: the same number of
target words ``budget_tokens`` and the same number of words per update ``tokens_per_batch``
(so the same number of updates; a window of length T gives ``tokens_per_batch // T`` sequences
per batch), the same hidden size, optimiser (Adam), learning rate and gradient-norm clip.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from .. import cells
from ..errors import ConfigError, InputError
from .fit import fit_seeds


class WordLM(nn.Module):
    """Fixed embedding -> recurrent unit -> linear layer over the vocabulary.

    ``vectors[V, d]`` is stored as a buffer (never trained). ``forward(ids[T, B])`` returns
    logits ``[T, B, V]``; ``states(ids[B, n])`` returns the top layer's ``h`` at every step,
    ``[B, n, H]``."""

    def __init__(self, cell: str, vectors, hidden: int = 128, layers: int = 1, convention: str = "torch",
                 seed: int = 0, dtype: str = "float32", device=None, **options):
        super().__init__()
        vec = torch.as_tensor(np.asarray(vectors), dtype=cells.resolve_dtype(dtype))
        if vec.dim() != 2 or vec.shape[0] < 2:
            raise InputError(f"vectors must be [V, d] with V >= 2, got shape {tuple(vec.shape)}")
        self.register_buffer("vectors", vec)
        self.cell = cell
        self.unit = cells.build(cell, input_size=vec.shape[1], hidden_size=hidden, layers=layers,
                                convention=convention, dtype=dtype, seed=seed, **options)
        gen = torch.Generator().manual_seed(int(seed) + 1)
        head = nn.Linear(hidden, vec.shape[0], dtype=vec.dtype)
        bound = 1.0 / math.sqrt(hidden)
        with torch.no_grad():
            head.weight.copy_((torch.rand(head.weight.shape, generator=gen, dtype=vec.dtype) * 2 - 1) * bound)
            head.bias.zero_()
        self.head = head
        self.hidden = hidden
        self.seed = seed
        if device is not None:
            self.to(device)

    @property
    def vocab_size(self) -> int:
        """Vocabulary size V (rows of the fixed embedding).

        Returns
        -------
        int
        """
        return int(self.vectors.shape[0])

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """Next-word logits at every step (zero initial state).

        Parameters
        ----------
        ids : torch.Tensor
            int64 word ids [T, B].

        Returns
        -------
        torch.Tensor
            Logits [T, B, V].
        """
        y, _ = self.unit(self.vectors[ids])
        return self.head(y)

    @torch.no_grad()
    def states(self, ids, batch: int = 256) -> torch.Tensor:
        """Top-layer hidden states ``h_1..h_n`` for each row of ``ids[B, n]`` (zero initial state).

        Parameters
        ----------
        ids : array-like of int
            [B, n], n >= 1.
        batch : int, default 256
            Rows per forward pass.

        Returns
        -------
        torch.Tensor
            [B, n, H].

        Raises
        ------
        InputError
            If ``ids`` is not [B, n] with n >= 1.
        """
        dev = self.vectors.device
        ids = torch.as_tensor(np.asarray(ids), dtype=torch.long)
        if ids.dim() != 2 or ids.shape[1] == 0:
            raise InputError(f"ids must be [B, n] with n >= 1, got shape {tuple(ids.shape)}")
        out = []
        for b in range(0, ids.shape[0], batch):
            x = self.vectors[ids[b:b + batch].T.to(dev)]  # [n, b, d]
            y, _ = self.unit(x)
            out.append(y.transpose(0, 1))
        return torch.cat(out)

    def describe(self) -> dict:
        """The model, its unit, vocabulary and embedding sizes, and its parameter count.

        Returns
        -------
        dict
        """
        return {"model": "WordLM", "cell": self.cell, "unit": self.unit.describe(), "vocab_size": self.vocab_size,
                "embedding_dim": int(self.vectors.shape[1]), "embedding_trained": False,
                "parameters": sum(p.numel() for p in self.parameters())}


@dataclass
class WordLMConfig:
    """Everything that defines one training run (recorded with the results)."""

    cell: str = "lstm"
    hidden: int = 128
    layers: int = 1
    train_length: int = 50
    budget_tokens: int = 1_000_000
    tokens_per_batch: int = 2048
    lr: float = 3e-3
    clip: float = 1.0
    seed: int = 0
    convention: str = "torch"
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("hidden", "layers", "train_length", "budget_tokens", "tokens_per_batch"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if self.tokens_per_batch < self.train_length:
            raise ConfigError(f"tokens_per_batch ({self.tokens_per_batch}) must be >= train_length "
                              f"({self.train_length}): a batch holds at least one training window")
        if not (self.lr > 0 and self.clip > 0):
            raise ConfigError("lr and clip must be > 0")

    @property
    def batch(self) -> int:
        """Sequences per batch, ``tokens_per_batch // train_length``.

        Returns
        -------
        int
        """
        return self.tokens_per_batch // self.train_length

    @property
    def steps(self) -> int:
        """Updates to spend ``budget_tokens``: ``ceil(budget_tokens / (batch * train_length))``, at least 1.

        Returns
        -------
        int
        """
        return max(1, math.ceil(self.budget_tokens / (self.batch * self.train_length)))


def random_windows(ids: np.ndarray, length: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` windows of ``length`` consecutive ids at uniformly random starts, ``[count, length]``.

    Parameters
    ----------
    ids : numpy.ndarray
        Word-id stream [n].
    length : int
        Window length.
    count : int
        Number of windows.
    rng : numpy.random.Generator
        Draws the starts.

    Returns
    -------
    numpy.ndarray
        [count, length], dtype of ``ids``.

    Raises
    ------
    InputError
        If ``ids`` is shorter than ``length``.
    """
    n = len(ids)
    if n < length:
        raise InputError(f"the corpus part has {n} words, fewer than a window of {length}; use a longer corpus "
                         "or shorter lengths")
    starts = rng.integers(0, n - length + 1, size=count)
    return ids[starts[:, None] + np.arange(length)[None, :]]


def train_word_lm(ids: np.ndarray, vectors, config: WordLMConfig, device=None, ignore_id: int | None = 0,
                  progress: Callable[[int, int, float], None] | None = None) -> tuple[WordLM, pd.DataFrame]:
    """Train a ``WordLM`` on the id stream ``ids`` (see the module docstring). Returns the model
    and a log (``step``, ``tokens``, ``loss`` = mean cross-entropy in nats since the last row).
    ``ignore_id`` (default 0 = ``<unknown>``) is not a target. Same seed -> same run. The loop is
    :func:`rnnmem.train.fit.fit_seeds` (one network, gradient-norm clipping).

    Parameters
    ----------
    ids : array of int
        The training id stream.
    vectors : array [V, d]
        The fixed embedding.
    config : WordLMConfig
        Everything that defines the run.
    device : str or None
        Torch device (default CPU).
    ignore_id : int or None
        Target id left out of the loss.
    progress : callable or None
        ``progress(step, steps, loss)`` after every step.

    Returns
    -------
    (WordLM, pandas.DataFrame)
        The trained model and the log.

    Raises
    ------
    InputError
        If ``ids`` is not 1-D with more than ``train_length`` words, ids fall outside the
        vocabulary, or ``vectors`` is not [V, d] with V >= 2.
    """
    cfg = config
    ids = np.asarray(ids, dtype=np.int64)
    if ids.ndim != 1 or len(ids) < cfg.train_length + 1:
        raise InputError(f"training needs more than train_length = {cfg.train_length} words, got {len(ids)}")
    dev = torch.device(device) if device is not None else torch.device("cpu")
    torch.manual_seed(cfg.seed)
    model = WordLM(cfg.cell, vectors, cfg.hidden, cfg.layers, cfg.convention, cfg.seed, cfg.dtype, dev)
    if ids.max() >= model.vocab_size or ids.min() < 0:
        raise InputError(f"word ids must lie in 0..{model.vocab_size - 1} (the embedding's vocabulary)")
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100 if ignore_id is None else int(ignore_id))
    rng = np.random.default_rng(cfg.seed)
    rows, acc, cnt, t0 = [], 0.0, 0, time.perf_counter()
    every = max(1, cfg.steps // 50)

    def lm_loss(m, batch):
        logits = m(batch[:-1])
        return loss_fn(logits.reshape(-1, m.vocab_size), batch[1:].reshape(-1))

    def on_step(info):
        nonlocal acc, cnt
        step, loss = info.step, float(info.loss[0])
        acc += loss
        cnt += 1
        if step % every == 0 or step == cfg.steps:
            rows.append({"step": step, "tokens": step * cfg.batch * cfg.train_length, "loss": acc / cnt,
                         "wall_s": time.perf_counter() - t0})
            acc, cnt = 0.0, 0
        if progress:
            progress(step, cfg.steps, loss)

    fit_seeds(model, lambda s: torch.as_tensor(random_windows(ids, cfg.train_length + 1, cfg.batch, rng).T, device=dev),
              lm_loss, optimizer=lambda ps: torch.optim.Adam(ps, lr=cfg.lr), seeds=[cfg.seed], steps=cfg.steps,
              clip=cfg.clip, nonfinite="propagate", on_step=on_step)
    log = pd.DataFrame(rows)
    log.attrs["config"] = asdict(cfg)
    return model, log


@torch.no_grad()
def evaluate_loss(model: WordLM, ids: np.ndarray, length: int, windows: int = 256, seed: int = 0,
                  ignore_id: int | None = 0) -> float:
    """Mean next-word cross-entropy (nats) over ``windows`` random windows of ``length`` words.

    Parameters
    ----------
    model : WordLM
    ids : numpy.ndarray
        Word-id stream.
    length : int
        Words predicted per window (windows of length + 1 ids are drawn).
    windows : int, default 256
    seed : int, default 0
        Seed of ``numpy.random.default_rng`` drawing the starts.
    ignore_id : int or None, default 0
        Target id left out of the loss.

    Returns
    -------
    float

    Raises
    ------
    InputError
        If ``ids`` is shorter than ``length + 1``.
    """
    rng = np.random.default_rng(seed)
    win = torch.as_tensor(random_windows(np.asarray(ids), length + 1, windows, rng).T, device=model.vectors.device)
    logits = model(win[:-1])
    loss_fn = nn.CrossEntropyLoss(ignore_index=-100 if ignore_id is None else int(ignore_id))
    return float(loss_fn(logits.reshape(-1, model.vocab_size), win[1:].reshape(-1)))
