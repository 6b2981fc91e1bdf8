"""The UCI Spanish paper-review set as a 5-class sequence-classification task (Zhao et al., ICML 2020).

Data: the raw JSON of the UCI "Paper Reviews" data set (Keith, Fuentes & Meneses 2017):
``{"paper": [{"id", "review": [{"lan", "text", "evaluation", ...}, ...]}, ...]}``. Zhao et al.
(Section 5.2 and their ``review_classification/preprocess.py``) keep the reviews whose language
``lan`` is ``"es"`` and whose cleaned text is not empty, and label each with ``evaluation + 2``
(evaluation -2..2 -> classes 0..4). The published copy gives 382 reviews with class counts
85 / 58 / 59 / 81 / 99 (``EXPECTED_COUNTS``).

Cleaning (rnnmem's rule, documented in docs/zhao_reviews.md): Unicode NFC, lower case, every
punctuation character (Unicode categories P*: . , ; : ! ? ¿ ¡ quotes, dashes, brackets ( ) [ ] { },
slashes, ...) replaced by a space, then split on white space. The published ``text_clean``
removes a fixed list (brackets, quotes, ``¿``, ``-``, tabs) and strips ``,``/``.``/``?`` only
when a space follows; both keep the same 382 reviews.

Split (the paper's): ``np.random.RandomState(seed).permutation(n)`` with seed 0; the first 282
are the training set, the next 50 validation, the last 50 test.

Encoding: every token becomes its vector in a word embedding (16-dim skip-gram trained on the
same corpus, ``review_embedding``); sequences are post-padded with zero vectors or truncated to
``pad`` = 150 tokens; ``last`` = min(length, pad) - 1 is the step whose state the classifier reads.

Layouts: the classifier takes time-major input [T, N, D]. rnnmem transposes the [N, T, D] array
(``layout="rnnmem"``). The published code *reshaped* it (``np.reshape(data, (T, N, D))``), which
reads the N*T token vectors in review-major order and refills them time-major, so the "sequence"
of example n at step t is token (t*N + n) mod T of review floor((t*N + n) / T): words of many
reviews, mostly not review n's (``layout="paper"``, reproduced for comparison).
"""

from __future__ import annotations

import json
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError
from .sequence_set import SequenceSet

LANGUAGE = "es"
LABEL_OFFSET = 2
CLASSES = 5
EXPECTED_REVIEWS = 382
EXPECTED_COUNTS = (85, 58, 59, 81, 99)     # classes 0..4 (evaluation -2..2)
PAPER_SPLIT = (282, 50, 50)
PAD = 150
LAYOUTS = ("rnnmem", "paper")


# ============================================================================================
# cleaning and loading
# ============================================================================================
def clean_text(text: str) -> str:
    """Lower-case ``text`` with every Unicode punctuation character (categories P*, which include
    brackets and quotes) replaced by a space and white space collapsed to single spaces.

    Parameters
    ----------
    text : str
        Raw text (converted with ``str``; NFC-normalised first).

    Returns
    -------
    str
        The cleaned text (may be empty).
    """
    text = unicodedata.normalize("NFC", str(text)).lower()
    chars = (" " if unicodedata.category(c).startswith("P") else c for c in text)
    return " ".join("".join(chars).split())


def _read_json(path: Path):
    if not path.exists():
        raise InputError(f"reviews file not found: {path} (give the path of the UCI paper-review JSON, "
                         "e.g. shared/data/zhao2020/reviews.json)")
    if not path.is_file():
        raise InputError(f"reviews path {path} is not a file; give the JSON file itself")
    try:
        with open(path, encoding="utf-8") as fh:
            return json.load(fh)
    except UnicodeDecodeError as exc:
        raise InputError(f"{path} is not UTF-8 text (byte {exc.start}); give the raw reviews JSON") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path} is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno})") from None


def load_reviews(path, language: str = LANGUAGE) -> pd.DataFrame:
    """The reviews of ``path`` in ``language`` with non-empty cleaned text, in file order.

    Columns: ``paper_id``, ``review_id``, ``evaluation`` (-2..2), ``label`` (evaluation + 2),
    ``text`` (cleaned), ``tokens`` (number of words). ``attrs`` records the source, the language
    counts and the number of reviews dropped for empty text. Every structural problem (missing
    file, not JSON, no ``paper`` list, a review without ``lan``/``text``/``evaluation``, an
    evaluation outside -2..2) is one ``InputError`` naming the file and the entry.

    Parameters
    ----------
    path : str or path
        The UCI paper-review JSON.
    language : str, default "es"
        Value of ``lan`` kept.

    Returns
    -------
    pandas.DataFrame
        One row per kept review (382 for the published file and ``"es"``).

    Raises
    ------
    InputError
        On a structural problem, or when no review is kept.
    """
    path = Path(path).expanduser()
    data = _read_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("paper"), list):
        got = f"keys {sorted(data)[:6]}" if isinstance(data, dict) else f"a JSON {type(data).__name__}"
        raise InputError(f"{path}: expected an object with a 'paper' list (the UCI paper-review format), got {got}")
    rows, langs, empty = [], Counter(), 0
    for i, paper in enumerate(data["paper"]):
        if not isinstance(paper, dict) or not isinstance(paper.get("review"), list):
            raise InputError(f"{path}: paper entry {i} has no 'review' list; each paper must be "
                             "{'id': ..., 'review': [...]}")
        for j, rev in enumerate(paper["review"]):
            where = f"{path}: paper {paper.get('id', i)!r}, review {j}"
            if not isinstance(rev, dict):
                raise InputError(f"{where} is not an object")
            missing = [k for k in ("lan", "text", "evaluation") if k not in rev]
            if missing:
                raise InputError(f"{where} lacks the field(s) {', '.join(missing)}; every review needs "
                                 "'lan', 'text' and 'evaluation'")
            langs[str(rev["lan"])] += 1
            if rev["lan"] != language:
                continue
            try:
                ev = int(str(rev["evaluation"]).strip())
            except ValueError:
                raise InputError(f"{where}: evaluation {rev['evaluation']!r} is not an integer") from None
            if not -LABEL_OFFSET <= ev <= CLASSES - 1 - LABEL_OFFSET:
                raise InputError(f"{where}: evaluation {ev} is outside -2..2")
            text = clean_text(rev["text"] if rev["text"] is not None else "")
            if not text:
                empty += 1
                continue
            rows.append({"paper_id": paper.get("id", i), "review_id": rev.get("id", j), "evaluation": ev,
                         "label": ev + LABEL_OFFSET, "text": text, "tokens": len(text.split())})
    if not rows:
        raise InputError(f"{path} holds no reviews in language {language!r} with non-empty text "
                         f"(languages found: {dict(langs) or 'none'})")
    frame = pd.DataFrame(rows)
    frame.attrs.update({"source": str(path), "language": language, "languages": dict(langs),
                        "dropped_empty": empty, "cleaning": "NFC, lower case, Unicode punctuation -> space"})
    return frame


def class_counts(frame: pd.DataFrame, classes: int = CLASSES) -> list[int]:
    """Number of reviews per class 0..classes-1.

    Parameters
    ----------
    frame : pandas.DataFrame
        With a ``label`` column.
    classes : int, default 5

    Returns
    -------
    list of int
        [classes] counts.
    """
    return np.bincount(frame["label"].to_numpy(), minlength=classes).tolist()


def check_published_counts(frame: pd.DataFrame) -> None:
    """Raise ``InputError`` unless ``frame`` has the published 382 reviews and class counts
    85/58/59/81/99 (the check the reproduction makes on the published file).

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`load_reviews`.

    Returns
    -------
    None

    Raises
    ------
    InputError
        If the review count or class counts differ from the published ones.
    """
    counts = class_counts(frame)
    if len(frame) != EXPECTED_REVIEWS or tuple(counts) != EXPECTED_COUNTS:
        raise InputError(f"{frame.attrs.get('source', 'the reviews')}: {len(frame)} reviews with class counts "
                         f"{counts}; the published set has {EXPECTED_REVIEWS} with {list(EXPECTED_COUNTS)}")


# ============================================================================================
# split
# ============================================================================================
def split_indices(n: int, train: int, val: int, test: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Indices of the train / validation / test reviews: ``RandomState(seed).permutation(n)`` cut
    into consecutive blocks (the published split is seed 0, 282 / 50 / 50 of 382).

    Parameters
    ----------
    n : int
        Number of reviews.
    train, val, test : int
        Block sizes (positive, summing to n).
    seed : int, default 0
        Seed of ``numpy.random.RandomState``.

    Returns
    -------
    dict of str to numpy.ndarray
        ``"train"``, ``"val"``, ``"test"`` -> row indices.

    Raises
    ------
    ConfigError
        If a size is not a positive integer or the sizes do not add up to n.
    """
    for name, v in (("train", train), ("val", val), ("test", test)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"split size {name} must be a positive integer, got {v!r}")
    if train + val + test != n:
        raise ConfigError(f"the split {train}/{val}/{test} covers {train + val + test} reviews but there are {n}; "
                          "give sizes that add up (--split TRAIN,VAL,TEST)")
    perm = np.random.RandomState(seed).permutation(n)
    return {"train": perm[:train], "val": perm[train:train + val], "test": perm[train + val:]}


# ============================================================================================
# embedding and encoding
# ============================================================================================
@dataclass(frozen=True)
class EmbeddingSpec:
    """Skip-gram settings of the review embedding. The paper: gensim Word2Vec(sg=1, size 16,
    window 16, min_count 1) with gensim's defaults (5 negatives, 5 epochs, sample 1e-3)."""

    dim: int = 16
    window: int = 16
    min_count: int = 1
    epochs: int = 5
    negatives: int = 5
    subsample: float = 1e-3
    lr: float = 0.01
    seed: int = 0


def corpus_words(frame: pd.DataFrame) -> list[str]:
    """All words of the reviews in file order, as one stream (the published corpus is read with
    gensim's Text8Corpus, which ignores line breaks: context windows cross review boundaries).

    Parameters
    ----------
    frame : pandas.DataFrame
        With a cleaned ``text`` column.

    Returns
    -------
    list of str
    """
    return [w for text in frame["text"] for w in text.split()]


def review_embedding(frame: pd.DataFrame, spec: EmbeddingSpec | None = None, device=None):
    """Seeded skip-gram embedding of the review corpus (``rnnmem.tasks.embeddings.train_skipgram``).
    Words with fewer than ``min_count`` occurrences map to ``<unknown>``.

    Parameters
    ----------
    frame : pandas.DataFrame
        Output of :func:`load_reviews`.
    spec : EmbeddingSpec, optional
        Skip-gram settings (default ``EmbeddingSpec()``: 16 dimensions, window 16, 5 epochs, seed 0).
    device : torch.device or str, optional
        Where to train.

    Returns
    -------
    rnnmem.tasks.embeddings.Embedding
        One vector [dim] per vocabulary word, ``<unknown>`` included.

    Raises
    ------
    ConfigError
        If ``min_count`` is not a positive integer, or a skip-gram setting is bad.
    """
    from .embeddings import Corpus, SkipGramConfig, build_vocabulary, encode_words, train_skipgram

    spec = spec or EmbeddingSpec()
    if not isinstance(spec.min_count, int) or spec.min_count < 1:
        raise ConfigError(f"min_count must be a positive integer, got {spec.min_count!r}")
    words = corpus_words(frame)
    vocab = build_vocabulary(Counter(words), None, spec.min_count)
    corpus = Corpus(encode_words(words, vocab), vocab, str(frame.attrs.get("source", "reviews")))
    cfg = SkipGramConfig(dim=spec.dim, window=spec.window, negatives=spec.negatives, epochs=spec.epochs,
                         lr=spec.lr, subsample=spec.subsample, seed=spec.seed)
    return train_skipgram(corpus, cfg, device=device)


def encode_reviews(frame: pd.DataFrame, embedding, pad: int = PAD) -> tuple[np.ndarray, np.ndarray]:
    """Word vectors of every review, post-padded with zeros or truncated to ``pad`` tokens:
    returns ``x`` [N, pad, D] (float32) and ``last`` [N] = min(tokens, pad) - 1.

    Parameters
    ----------
    frame : pandas.DataFrame
        With a cleaned ``text`` column.
    embedding : rnnmem.tasks.embeddings.Embedding
        Its ``encode`` maps words to rows (unknown words to ``<unknown>``).
    pad : int, default 150
        Sequence length.

    Returns
    -------
    tuple of numpy.ndarray
        ``x`` float32 [N, pad, D] and ``last`` int64 [N].

    Raises
    ------
    ConfigError
        If ``pad`` is not a positive integer.
    InputError
        If a word is missing from an embedding without ``<unknown>``.
    """
    if not isinstance(pad, (int, np.integer)) or isinstance(pad, bool) or pad < 1:
        raise ConfigError(f"pad must be a positive integer, got {pad!r}")
    vec = np.asarray(embedding.vectors, dtype=np.float32)
    x = np.zeros((len(frame), pad, vec.shape[1]), dtype=np.float32)
    last = np.zeros(len(frame), dtype=np.int64)
    for i, text in enumerate(frame["text"]):
        ids = embedding.encode(text.split()[:pad], what=f"review {i}")
        x[i, :len(ids)] = vec[ids]
        last[i] = len(ids) - 1
    return x, last


def to_time_major(x: np.ndarray, layout: str = "rnnmem") -> np.ndarray:
    """[N, T, D] -> [T, N, D]: a transpose (``"rnnmem"``) or the published reshape (``"paper"``).

    Parameters
    ----------
    x : numpy.ndarray
        [N, T, D].
    layout : str, default "rnnmem"
        ``"rnnmem"`` or ``"paper"`` (see the module docstring).

    Returns
    -------
    numpy.ndarray
        C-contiguous [T, N, D].

    Raises
    ------
    ConfigError
        On an unknown layout.
    InputError
        If ``x`` is not 3-D.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    x = np.asarray(x)
    if x.ndim != 3:
        raise InputError(f"expected [N, T, D], got shape {x.shape}")
    N, T, D = x.shape
    if layout == "paper":
        return np.ascontiguousarray(np.reshape(x, (T, N, D)))
    return np.ascontiguousarray(x.transpose(1, 0, 2))


@dataclass
class ReviewTask:
    """The prepared task: per split a ``SequenceSet`` plus the frame, split indices and embedding."""

    sets: dict
    frame: pd.DataFrame
    indices: dict[str, np.ndarray]
    embedding: object
    config: dict


def prepare_reviews(path, split=PAPER_SPLIT, split_seed: int = 0, pad: int = PAD, layout: str = "rnnmem",
                    embedding: EmbeddingSpec | None = None, language: str = LANGUAGE, device=None,
                    frame: pd.DataFrame | None = None, vectors=None) -> ReviewTask:
    """Load, clean, embed, pad and split the reviews of ``path`` (see the module docstring).

    ``frame``/``vectors`` reuse an already loaded frame and trained embedding. The layout is
    applied to each split separately, as in the published code.

    Parameters
    ----------
    path : str or path
        The UCI paper-review JSON (recorded as the source; not read when ``frame`` is given).
    split : tuple of int, default (282, 50, 50)
        Train, validation, test sizes.
    split_seed : int, default 0
        Seed of the split permutation.
    pad : int, default 150
        Sequence length.
    layout : str, default "rnnmem"
        ``"rnnmem"`` (transpose) or ``"paper"`` (the published reshape).
    embedding : EmbeddingSpec, optional
        Skip-gram settings (ignored when ``vectors`` is given).
    language : str, default "es"
    device : torch.device or str, optional
        Where the embedding is trained.
    frame : pandas.DataFrame, optional
        Reviews already loaded.
    vectors : Embedding, optional
        Embedding already trained.

    Returns
    -------
    ReviewTask
        ``sets`` ("train", "val", "test") of SequenceSet with ``x`` float32 [pad, n, D], the frame,
        the indices, the embedding and a ``config`` dict.

    Raises
    ------
    ConfigError
        On a bad layout, split or pad.
    InputError
        On a bad reviews file.
    """
    if layout not in LAYOUTS:
        raise ConfigError(f"layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if len(split) != 3:
        raise ConfigError(f"split must be (train, val, test), got {split!r}")
    frame = frame if frame is not None else load_reviews(path, language)
    spec = embedding or EmbeddingSpec()
    emb = vectors if vectors is not None else review_embedding(frame, spec, device=device)
    idx = split_indices(len(frame), *(int(s) for s in split), seed=split_seed)
    x, last = encode_reviews(frame, emb, pad)
    labels = frame["label"].to_numpy()
    sets = {name: SequenceSet(to_time_major(x[ix], layout), last[ix], labels[ix]) for name, ix in idx.items()}
    config = {"source": str(path), "language": language, "reviews": len(frame), "class_counts": class_counts(frame),
              "split": [int(s) for s in split], "split_seed": int(split_seed), "pad": int(pad), "layout": layout,
              "embedding": {**spec.__dict__, "vocabulary": len(emb)}}
    return ReviewTask(sets, frame, idx, emb, config)


def majority_baseline(frame: pd.DataFrame, indices: dict[str, np.ndarray]) -> dict:
    """Majority-class rates: of the whole set, and the test accuracy of always predicting the
    training split's most frequent class.

    Parameters
    ----------
    frame : pandas.DataFrame
        With a ``label`` column.
    indices : dict of str to numpy.ndarray
        With ``"train"`` and ``"test"`` row indices.

    Returns
    -------
    dict
        ``whole_set_rate``, ``majority_class``, ``train_majority_class``, ``test_accuracy``.
    """
    labels = frame["label"].to_numpy()
    counts = np.bincount(labels, minlength=CLASSES)
    train_major = int(np.bincount(labels[indices["train"]], minlength=CLASSES).argmax())
    return {"whole_set_rate": float(counts.max() / counts.sum()), "majority_class": int(counts.argmax()),
            "train_majority_class": train_major,
            "test_accuracy": float(np.mean(labels[indices["test"]] == train_major))}


__all__ = ["clean_text", "load_reviews", "class_counts", "check_published_counts", "split_indices", "EmbeddingSpec",
           "review_embedding", "encode_reviews", "to_time_major", "prepare_reviews", "ReviewTask",
           "majority_baseline", "EXPECTED_REVIEWS", "EXPECTED_COUNTS", "PAPER_SPLIT", "PAD", "LAYOUTS", "CLASSES"]
