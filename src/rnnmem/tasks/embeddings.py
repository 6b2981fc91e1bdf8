"""Word embeddings for the semantic-space indicators: skip-gram with negative sampling (a small,
seeded torch trainer), the word2vec text format (read and write), and text8-format corpora as
word ids.

The space in which the memory of recurrent units is compared must be the same for every unit, so
it is a fixed embedding: trained once by rnnmem on the corpus (``train_skipgram``) or loaded from
a user file (``read_word2vec``).

Skip-gram with negative sampling (Mikolov, Sutskever, Chen, Corrado & Dean, NeurIPS 2013), for a
centre word c and a context word o within a (uniformly shrunk) window, with K noise words n_j
drawn from the unigram distribution raised to 3/4::

    loss = -log sigma(u_o . v_c) - sum_{j=1..K} log sigma(-u_{n_j} . v_c)

``v`` (input vectors, initialised uniform in +-0.5/d as in word2vec's C code) is the embedding;
``u`` (output vectors) starts at 0. Frequent words are subsampled, each occurrence kept with
probability ``min(1, (sqrt(f/t) + 1) t / f)`` (``f`` the word's relative frequency; the C code's
formula). Optimiser: sparse Adam (ours; word2vec uses SGD with a linearly decaying rate).

word2vec text format: a header line ``<words> <dimension>``, then one line per word:
``word v_1 ... v_d`` separated by single spaces. Files without the header line (GloVe's format)
are read too.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError, InputError
from ..devices import resolve_device

UNKNOWN = "<unknown>"


# ============================================================================================
# the embedding
# ============================================================================================
@dataclass
class Embedding:
    """Words and their vectors (``vectors[V, d]``, row i belongs to ``words[i]``)."""

    words: list[str]
    vectors: np.ndarray
    config: dict = field(default_factory=dict)

    def __post_init__(self):
        self.vectors = np.asarray(self.vectors)
        if self.vectors.ndim != 2 or self.vectors.shape[0] != len(self.words):
            raise InputError(f"vectors must be [len(words), d] = [{len(self.words)}, d], got {self.vectors.shape}")
        if self.vectors.shape[1] < 1:
            raise InputError("vectors must have at least one dimension")
        if not np.isfinite(self.vectors).all():
            raise InputError("the embedding contains NaN or infinite values")
        self._index = {}
        for i, w in enumerate(self.words):
            if w in self._index:
                raise InputError(f"word {w!r} appears twice in the embedding (rows {self._index[w]} and {i})")
            self._index[w] = i

    def __len__(self) -> int:
        return len(self.words)

    @property
    def dim(self) -> int:
        """Vector dimension d.

        Returns
        -------
        int
        """
        return int(self.vectors.shape[1])

    @property
    def index(self) -> dict[str, int]:
        """Word -> row lookup.

        Returns
        -------
        dict of str to int
        """
        return self._index

    @property
    def unknown_id(self) -> int | None:
        """Row of the ``<unknown>`` entry, if the embedding has one.

        Returns
        -------
        int or None
        """
        return self._index.get(UNKNOWN)

    def encode(self, words: Iterable[str] | str, what: str = "the text") -> np.ndarray:
        """Word ids of ``words`` (a list, or a string split on white space). A word not in the
        embedding becomes ``<unknown>`` when the embedding has that entry; otherwise it is an
        ``InputError`` naming the missing words.

        Parameters
        ----------
        words : iterable of str, or str
            The words.
        what : str, default "the text"
            How the words are named in error messages.

        Returns
        -------
        numpy.ndarray
            int64 row ids [len(words)].

        Raises
        ------
        InputError
            If there are no words, or words are missing and there is no ``<unknown>`` entry.
        """
        if isinstance(words, str):
            words = words.split()
        words = list(words)
        if not words:
            raise InputError(f"{what} holds no words; give at least one word")
        unk = self.unknown_id
        ids = np.fromiter((self._index.get(w, -1) for w in words), dtype=np.int64, count=len(words))
        missing = ids < 0
        if missing.any():
            if unk is None:
                bad = list(dict.fromkeys(np.asarray(words, dtype=object)[missing].tolist()))
                raise InputError(
                    f"{len(bad)} word(s) of {what} are not in the embedding, e.g. {', '.join(map(repr, bad[:5]))}, "
                    f"and it has no {UNKNOWN!r} entry; add a {UNKNOWN!r} vector to the embedding or remove "
                    "these words")
            ids[missing] = unk
        return ids

    def normalized(self) -> "Embedding":
        """The same words with unit-length vectors (cosine geometry). Zero vectors are an error.

        Returns
        -------
        Embedding
            Rows divided by their Euclidean norms; ``config["normalized"] = True``.

        Raises
        ------
        InputError
            If a vector is zero.
        """
        norms = np.linalg.norm(self.vectors, axis=1, keepdims=True)
        if (norms == 0).any():
            bad = [self.words[i] for i in np.flatnonzero(norms[:, 0] == 0)[:5]]
            raise InputError(f"cannot normalise zero vectors (words {', '.join(map(repr, bad))})")
        return Embedding(list(self.words), self.vectors / norms, {**self.config, "normalized": True})

    def centered(self) -> "Embedding":
        """The same words with the mean vector subtracted (removes the common direction that
        skip-gram vectors share; cf. Mu & Viswanath, ICLR 2018).

        Returns
        -------
        Embedding
            ``vectors - vectors.mean(0)``; ``config["centered"] = True``.
        """
        return Embedding(list(self.words), self.vectors - self.vectors.mean(0, keepdims=True),
                         {**self.config, "centered": True})

    def tensor(self, device=None, dtype=torch.float32) -> torch.Tensor:
        """The vectors as a torch tensor.

        Parameters
        ----------
        device : torch.device or str, optional
        dtype : torch.dtype, default torch.float32

        Returns
        -------
        torch.Tensor
            [V, d].
        """
        return torch.as_tensor(self.vectors, dtype=dtype, device=device)

    def save(self, path) -> Path:
        """Write the embedding in word2vec text format (:func:`write_word2vec`).

        Parameters
        ----------
        path : str or path
            Output file.

        Returns
        -------
        pathlib.Path
            The path written.

        Raises
        ------
        ConfigError
            If a word is empty or contains white space.
        """
        return write_word2vec(self, path)


# ============================================================================================
# word2vec text format
# ============================================================================================
def write_word2vec(embedding: Embedding, path, precision: int | None = None) -> Path:
    """Write ``embedding`` in word2vec text format (header ``V d``). ``precision`` significant
    digits default to 9 (float32 round-trips exactly) or 17 (float64).

    Parameters
    ----------
    embedding : Embedding
    path : str or path
        Output file (parent folders created).
    precision : int, optional
        Significant digits per number.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ConfigError
        If a word is empty or contains white space.
    """
    path = Path(path)
    for w in embedding.words:
        if not w or any(c.isspace() for c in w):
            raise ConfigError(f"word {w!r} cannot be written in word2vec text format (empty or contains white space)")
    if precision is None:
        precision = 17 if embedding.vectors.dtype == np.float64 else 9
    fmt = f"{{:.{precision}g}}"
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(f"{len(embedding)} {embedding.dim}\n")
        for w, v in zip(embedding.words, embedding.vectors):
            fh.write(w + " " + " ".join(fmt.format(float(x)) for x in v) + "\n")
    return path


def _header(line: str) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def read_word2vec(path, dtype=np.float32) -> Embedding:
    """Read a word2vec text file (or a header-less GloVe-style file). Every problem is one
    ``InputError`` naming the file, the line and what is wrong.

    Parameters
    ----------
    path : str or path
        The file (UTF-8 text).
    dtype : numpy dtype, default numpy.float32
        dtype of the vectors.

    Returns
    -------
    Embedding
        ``config`` records the ``source`` and the ``format`` (word2vec-text or glove-text).

    Raises
    ------
    InputError
        If the file is missing, not UTF-8 text, empty, inconsistent with its header, or has a bad
        line (wrong count, repeated word, non-number, NaN/inf).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"embedding file {path} not found")
    if not path.is_file():
        raise InputError(f"embedding file {path} is not a file")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not a word2vec *text* file (not UTF-8 at byte {exc.start}); "
                         "binary word2vec files must be converted to the text format first") from None
    lines = [ln for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InputError(f"embedding file {path} is empty; expected a header '<words> <dimension>' and one line per word")
    head = _header(lines[0])
    body = lines[1:] if head else lines
    first = 2 if head else 1
    if not body:
        raise InputError(f"{path}: the header announces {head[0]} words but the file has no word lines")
    dim = head[1] if head else len(body[0].split()) - 1
    if dim < 1:
        raise InputError(f"{path}: dimension must be >= 1, got {dim}")
    if head and head[0] != len(body):
        raise InputError(f"{path}: the header announces {head[0]} words but the file has {len(body)} word lines")
    words: list[str] = []
    vecs = np.empty((len(body), dim), dtype=dtype)
    seen: dict[str, int] = {}
    for i, ln in enumerate(body):
        parts = ln.rstrip("\n").split(" ")
        parts = [p for p in parts if p != ""]
        lineno = i + first
        if len(parts) != dim + 1:
            raise InputError(f"{path}, line {lineno}: expected a word and {dim} numbers, got {len(parts) - 1} numbers")
        w = parts[0]
        if w in seen:
            raise InputError(f"{path}, line {lineno}: word {w!r} already appeared on line {seen[w]}")
        seen[w] = lineno
        try:
            vecs[i] = [float(p) for p in parts[1:]]
        except ValueError:
            bad = next(p for p in parts[1:] if not _is_float(p))
            raise InputError(f"{path}, line {lineno}: {bad!r} is not a number") from None
        words.append(w)
    if not np.isfinite(vecs).all():
        row = int(np.flatnonzero(~np.isfinite(vecs).all(1))[0])
        raise InputError(f"{path}, line {row + first}: NaN or infinite value")
    return Embedding(words, vecs, {"source": str(path), "format": "word2vec-text" if head else "glove-text"})


def _is_float(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


# ============================================================================================
# corpora as word ids
# ============================================================================================
def build_vocabulary(counts: Counter | dict, size: int | None = None, min_count: int = 1) -> list[str]:
    """``[<unknown>]`` + the ``size`` most frequent words with at least ``min_count`` occurrences
    (count descending, ties alphabetical).

    Parameters
    ----------
    counts : Counter or dict
        Word (str or ASCII bytes) -> count.
    size : int, optional
        Most words kept (None: all).
    min_count : int, default 1
        Least count kept.

    Returns
    -------
    list of str
        The vocabulary, ``<unknown>`` first.

    Raises
    ------
    ConfigError
        If ``size`` is not a positive integer.
    """
    if size is not None and (not isinstance(size, int) or size < 1):
        raise ConfigError(f"vocabulary size must be a positive integer, got {size!r}")
    items = [(w.decode("ascii") if isinstance(w, bytes) else w, c) for w, c in counts.items()
             if c >= min_count and w != UNKNOWN]
    items.sort(key=lambda kv: (-kv[1], kv[0]))
    if size is not None:
        items = items[:size]
    return [UNKNOWN] + [w for w, _ in items]


def encode_words(words: list[str], vocabulary: list[str]) -> np.ndarray:
    """Ids of ``words`` in ``vocabulary``; words outside it map to ``<unknown>`` (which must be in it).

    Parameters
    ----------
    words : list of str
    vocabulary : list of str

    Returns
    -------
    numpy.ndarray
        int64 ids [len(words)].

    Raises
    ------
    InputError
        If ``words`` is empty, or a word is missing and the vocabulary has no ``<unknown>``.
    """
    return Embedding(vocabulary, np.zeros((len(vocabulary), 1))).encode(words)


@dataclass
class Corpus:
    """A word-id stream and its vocabulary (``vocabulary[0] == '<unknown>'``)."""

    ids: np.ndarray
    vocabulary: list[str]
    source: str = ""

    def __post_init__(self):
        self.ids = np.asarray(self.ids, dtype=np.int64)
        if self.ids.ndim != 1 or len(self.ids) == 0:
            raise InputError(f"corpus {self.source or ''} holds no words".replace("  ", " "))

    def counts(self) -> np.ndarray:
        """Occurrences of each vocabulary word in the stream.

        Returns
        -------
        numpy.ndarray
            int64 [len(vocabulary)].
        """
        return np.bincount(self.ids, minlength=len(self.vocabulary))


def corpus_from_words(words: list[str], vocab_size: int | None = None, source: str = "") -> Corpus:
    """A ``Corpus`` from an in-memory word list (vocabulary: its ``vocab_size`` most frequent words).

    Parameters
    ----------
    words : list of str
    vocab_size : int, optional
        Most words kept besides ``<unknown>`` (None: all).
    source : str, default ""
        Name recorded with the corpus.

    Returns
    -------
    Corpus

    Raises
    ------
    InputError
        If ``words`` is empty.
    """
    if not words:
        raise InputError(f"corpus {source} holds no words; give lower-case words separated by spaces".replace("  ", " "))
    vocab = build_vocabulary(Counter(words), vocab_size)
    return Corpus(encode_words(words, vocab), vocab, source)


def read_corpus(path, vocab_size: int | None = 2**14, max_words: int | None = None, chunk_bytes: int = 4 * 2**20,
                progress: Callable[[int], None] | None = None) -> Corpus:
    """A text8-format file (lower-case words a-z separated by spaces or newlines) as word ids.

    Reuses the autocomplete reader (``rnnmem.tasks.autocomplete``: ``check_corpus`` and
    ``count_words``, which validates every byte and counts words, streaming); the vocabulary is
    ``<unknown>`` + the ``vocab_size`` most frequent words of the whole file; the second pass
    converts the first ``max_words`` words (all by default) to ids, 4 MB at a time.

    Parameters
    ----------
    path : str or path
        text8-format file.
    vocab_size : int, optional, default 2**14
        Most frequent words kept (None: all).
    max_words : int, optional
        Words converted (None: all).
    chunk_bytes : int, default 4 MiB
        Bytes per read of the second pass.
    progress : callable, optional
        Called with the bytes of each block read in the second pass.

    Returns
    -------
    Corpus
        int64 ids, vocabulary, ``source`` = the path.

    Raises
    ------
    InputError
        If the file is missing, empty, not text8 format or holds no words.
    ConfigError
        On a bad ``max_words`` or ``vocab_size``.
    """
    from .autocomplete import check_corpus, count_words

    path = check_corpus(path)
    if max_words is not None and (not isinstance(max_words, int) or max_words < 1):
        raise ConfigError(f"max_words must be a positive integer, got {max_words!r}")
    counts = count_words(path)
    if not counts:
        raise InputError(f"corpus {path} holds no words; it must hold lower-case words separated by spaces")
    vocab = build_vocabulary(counts, vocab_size)
    lookup = {w.encode("ascii"): i for i, w in enumerate(vocab)}
    parts, total, carry = [], 0, b""
    with open(path, "rb") as fh:
        while max_words is None or total < max_words:
            block = fh.read(chunk_bytes)
            data = carry + block
            if not block:
                toks, carry = data.split(), b""
            else:
                cut = max(data.rfind(b" "), data.rfind(b"\n"))
                toks, carry = (data[:cut].split(), data[cut:]) if cut >= 0 else ([], data)
            if max_words is not None:
                toks = toks[: max_words - total]
            parts.append(np.fromiter((lookup.get(t, 0) for t in toks), dtype=np.int64, count=len(toks)))
            total += len(toks)
            if progress:
                progress(len(block))
            if not block:
                break
    return Corpus(np.concatenate(parts), vocab, str(path))


# ============================================================================================
# skip-gram with negative sampling
# ============================================================================================
@dataclass
class SkipGramConfig:
    """Settings of ``train_skipgram`` (recorded with the embedding)."""

    dim: int = 100
    window: int = 5
    negatives: int = 5
    epochs: int = 1
    lr: float = 0.01
    batch_size: int = 4096
    subsample: float = 1e-4
    seed: int = 0
    chunk_words: int = 1_000_000
    dtype: str = "float32"

    def __post_init__(self):
        for name in ("dim", "window", "negatives", "epochs", "batch_size", "chunk_words"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"skip-gram {name} must be a positive integer, got {v!r}")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            raise ConfigError(f"skip-gram lr must be > 0, got {self.lr!r}")
        if not self.subsample >= 0:
            raise ConfigError(f"skip-gram subsample must be >= 0 (0 = off), got {self.subsample!r}")
        if self.dtype not in ("float32", "float64"):
            raise ConfigError(f"dtype must be float32 or float64, got {self.dtype!r}")


def keep_probability(counts: np.ndarray, t: float) -> np.ndarray:
    """word2vec's subsampling: keep an occurrence with ``min(1, (sqrt(f/t) + 1) t/f)``.

    Parameters
    ----------
    counts : numpy.ndarray
        Count of each word [V].
    t : float
        Subsampling threshold (0: keep everything).

    Returns
    -------
    numpy.ndarray
        float64 probabilities [V] (1 for unseen words).
    """
    total = counts.sum()
    f = counts / max(total, 1)
    with np.errstate(divide="ignore", invalid="ignore"):
        p = np.where(f > 0, (np.sqrt(f / t) + 1) * t / f, 1.0) if t > 0 else np.ones_like(f)
    return np.minimum(p, 1.0)


def skipgram_pairs(ids: np.ndarray, window: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """(centre, context) pairs with word2vec's shrunk window: for each centre a radius b ~ U{1..window},
    contexts at offsets 1..b on both sides.

    Parameters
    ----------
    ids : numpy.ndarray
        Word ids [n].
    window : int
        Largest radius.
    rng : numpy.random.Generator
        Draws the radii.

    Returns
    -------
    tuple of numpy.ndarray
        ``(centre, context)`` word ids, equal length.
    """
    n = len(ids)
    radius = rng.integers(1, window + 1, size=n)
    cs, os_ = [], []
    pos = np.arange(n)
    for o in range(1, window + 1):
        ok = radius >= o
        left = ok & (pos - o >= 0)
        right = ok & (pos + o < n)
        cs += [ids[left], ids[right]]
        os_ += [ids[pos[left] - o], ids[pos[right] + o]]
    return np.concatenate(cs), np.concatenate(os_)


def train_skipgram(corpus: Corpus, config: SkipGramConfig | None = None, device=None,
                   progress: Callable[[int, int], None] | None = None) -> Embedding:
    """Train skip-gram with negative sampling on ``corpus`` (see the module docstring); the
    embedding holds every vocabulary word (``<unknown>`` included, trained like any word).
    Same seed and device -> same vectors. ``progress(done, total)`` counts processed words.

    Parameters
    ----------
    corpus : Corpus
    config : SkipGramConfig, optional
        Settings (default ``SkipGramConfig()``); ``seed`` seeds both numpy and torch draws.
    device : torch.device or str, optional
        Where to train (resolved by ``rnnmem.devices.resolve_device``).
    progress : callable, optional
        ``progress(done_words, total_words)`` after each chunk.

    Returns
    -------
    Embedding
        The input vectors v [V, d] (``config.dtype``); ``config`` records the settings, steps,
        mean loss, word count, device and wall time.

    Raises
    ------
    InputError
        If the corpus has fewer than two words.
    """
    cfg = config or SkipGramConfig()
    dev = resolve_device(device)
    dtype = torch.float64 if cfg.dtype == "float64" else torch.float32
    V, d = len(corpus.vocabulary), cfg.dim
    counts = corpus.counts()
    if counts.sum() < 2:
        raise InputError("skip-gram needs a corpus of at least two words")
    rng = np.random.default_rng(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    v_in = nn.Embedding(V, d, sparse=True, dtype=dtype)
    u_out = nn.Embedding(V, d, sparse=True, dtype=dtype)
    with torch.no_grad():
        v_in.weight.copy_((torch.rand(V, d, generator=gen, dtype=dtype) - 0.5) / d)
        u_out.weight.zero_()
    v_in.to(dev)
    u_out.to(dev)
    opt = torch.optim.SparseAdam(list(v_in.parameters()) + list(u_out.parameters()), lr=cfg.lr)
    noise = torch.as_tensor(counts, dtype=torch.float64) ** 0.75
    noise = noise / noise.sum()
    keep = keep_probability(counts, cfg.subsample)
    total = cfg.epochs * len(corpus.ids)
    done, steps, loss_sum, t0 = 0, 0, 0.0, time.perf_counter()
    for _epoch in range(cfg.epochs):
        for start in range(0, len(corpus.ids), cfg.chunk_words):
            chunk = corpus.ids[start:start + cfg.chunk_words]
            kept = chunk[rng.random(len(chunk)) < keep[chunk]]
            if len(kept) >= 2:
                c, o = skipgram_pairs(kept, cfg.window, rng)
                order = rng.permutation(len(c))
                c, o = c[order], o[order]
                for b in range(0, len(c), cfg.batch_size):
                    cb = torch.as_tensor(c[b:b + cfg.batch_size], device=dev)
                    ob = torch.as_tensor(o[b:b + cfg.batch_size], device=dev)
                    neg = torch.multinomial(noise, len(cb) * cfg.negatives, replacement=True,
                                            generator=gen).view(len(cb), cfg.negatives).to(dev)
                    vc = v_in(cb)  # [B, d]
                    pos = (vc * u_out(ob)).sum(-1)
                    negs = torch.bmm(u_out(neg), vc.unsqueeze(-1)).squeeze(-1)  # [B, K]
                    loss = -(nn.functional.logsigmoid(pos) + nn.functional.logsigmoid(-negs).sum(-1)).mean()
                    opt.zero_grad()
                    loss.backward()
                    opt.step()
                    loss_sum += float(loss.detach())
                    steps += 1
            done += len(chunk)
            if progress:
                progress(done, total)
    vectors = v_in.weight.detach().cpu().numpy().copy()
    conf = {"method": "skip-gram negative sampling (Mikolov et al. 2013)", **asdict(cfg), "steps": steps,
            "mean_loss": loss_sum / max(steps, 1), "words": int(len(corpus.ids)), "vocabulary": V,
            "device": str(dev), "wall_s": time.perf_counter() - t0, "source": corpus.source}
    return Embedding(list(corpus.vocabulary), vectors, conf)
