"""The autocomplete task of Madsen, "Visualizing memorization in RNNs" (Distill 2019), built from
any text8-format corpus (lower-case words a-z separated by spaces).

Construction (as in the study's ``python/download/preprocess/autocomplete.py``):

- The corpus is a stream of words w_1, w_2, ...; each word is emitted as the unit ``" " + w``
  (``len(w) + 1`` characters) and **every character of the unit, the space included, has the word
  as its target**. At the space the model has seen 0 characters of the word, at the i-th letter i.
- Observations are greedy runs of whole consecutive units of at most ``max_length`` (200)
  characters: a unit that would overflow the current observation starts the next one. A word
  longer than ``max_length - 1`` letters fits no observation; it is skipped (and counted).
- Targets: ``<eos>`` = 0 (padding), ``<unknown>`` = 1, then the ``vocab_size`` (2^14) most
  frequent words, by decreasing count (ties: alphabetical). Inputs: ``<eos>`` = 0 (padding),
  space = 1, ``a``-``z`` = 2..27.
- Split: a seeded permutation of the observations; the first ``floor(0.9 N)`` train, the next
  ``floor(0.05 N)`` validation, the rest test.

Input format: bytes a-z and space; a newline counts as a word separator (so ``text8`` and
``text8`` + final newline both work). Any other byte (upper case, digits, punctuation, UTF-8) is
an ``InputError`` naming its offset: convert the text first (lower-case, map the rest to spaces).

Build: three streaming passes over the file (sha256; word counts; observations), each reading
4 MB at a time; the result is numpy arrays, cached on disk under a key made of the corpus sha256
and the options, and memory-mapped on a cache hit.

Output (:class:`AutocompleteData`): ``chars`` uint8 [N, max_length] input ids, ``targets``
[N, max_length] word ids (uint16; int32 above 2^16 classes), ``lengths`` int32 [N], ``first_word``
int64 [N], and the split indices (int64) from ``numpy.random.default_rng(seed).permutation``. The
corpus is usually text8 (Mahoney, http://mattmahoney.net/dc/text8.zip, the study's corpus) or a
synthetic stand-in from ``rnnmem.tasks.synthetic_text``.
"""

from __future__ import annotations

import hashlib
import heapq
import json
import math
import os
import shutil
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError

CHARS: list[str] = ["<eos>", " "] + [chr(c) for c in range(ord("a"), ord("z") + 1)]
PAD = 0  # <eos>: padding, in both inputs and targets
UNKNOWN = 1  # <unknown> target
SPACE = 1  # input id of " "
FORMAT_VERSION = 1
CHUNK_BYTES = 4 * 2**20
SPLIT_NAMES = ("train", "valid", "test")

# byte -> input id (255 = not allowed); newline is a separator, mapped like space
_CHAR_ID = np.full(256, 255, dtype=np.uint8)
_CHAR_ID[ord(" ")] = SPACE
_CHAR_ID[ord("\n")] = SPACE
for _i, _c in enumerate(range(ord("a"), ord("z") + 1)):
    _CHAR_ID[_c] = 2 + _i


def default_cache_dir() -> Path:
    """``$RNNMEM_CACHE/autocomplete`` or ``~/.cache/rnnmem/autocomplete``.

    Returns
    -------
    pathlib.Path
        The folder (not created here).
    """
    root = os.environ.get("RNNMEM_CACHE")
    return Path(root) / "autocomplete" if root else Path.home() / ".cache" / "rnnmem" / "autocomplete"


# --------------------------------------------------------------------------- observations (core)
def pack_observations(unit_lengths: np.ndarray, max_length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greedy packing of units (``len(word) + 1`` chars each) into observations of at most
    ``max_length`` characters, in order.

    Returns ``(start, stop, skipped)``: observation o holds units ``start[o]:stop[o]``; ``skipped``
    lists the units longer than ``max_length`` (each also closes the observation before it). The
    last observation is included even if it is not full.

    Parameters
    ----------
    unit_lengths : array-like of int
        Length in characters of each unit [U].
    max_length : int
        Most characters per observation.

    Returns
    -------
    tuple of numpy.ndarray
        ``(start, stop, skipped)``, int64 arrays [N], [N] and [S] of unit indices.
    """
    lens = np.asarray(unit_lengths, dtype=np.int64)
    n = len(lens)
    cs = np.cumsum(lens)
    starts, stops, skipped = [], [], []
    s = 0
    while s < n:
        base = cs[s - 1] if s else 0
        e = int(np.searchsorted(cs, base + max_length, side="right"))
        if e == s:  # this unit alone is longer than max_length
            skipped.append(s)
            s += 1
            continue
        starts.append(s)
        stops.append(e)
        s = e
    return (np.asarray(starts, dtype=np.int64), np.asarray(stops, dtype=np.int64),
            np.asarray(skipped, dtype=np.int64))


def _fill(starts, stops, unit_lengths, char_ids, word_ids, max_length, target_dtype):
    """Matrices ``chars[N, L]`` (uint8) and ``targets[N, L]`` for observations given as unit
    ranges; ``char_ids`` is the flat input-id stream of all units, ``word_ids`` one id per unit."""
    lens = np.asarray(unit_lengths, dtype=np.int64)
    cs = np.concatenate([[0], np.cumsum(lens)])
    n_obs = len(starts)
    obs_len = cs[stops] - cs[starts]
    chars = np.zeros((n_obs, max_length), dtype=np.uint8)
    targets = np.zeros((n_obs, max_length), dtype=target_dtype)
    if n_obs == 0:
        return chars, targets, obs_len
    # flat position p of character j of observation o: p = cs[starts[o]] + j; with the observations
    # laid out back to back (no gaps except skipped units) that is one arange minus a step function
    total = int(obs_len.sum())
    row = np.repeat(np.arange(n_obs, dtype=np.int64), obs_len)
    col = np.arange(total, dtype=np.int64)
    col -= np.repeat(np.cumsum(obs_len) - obs_len, obs_len)
    src = np.repeat(cs[starts], obs_len)
    src += col
    flat = row * max_length + col
    del row, col
    chars.reshape(-1)[flat] = char_ids[src]
    targets.reshape(-1)[flat] = np.repeat(np.asarray(word_ids, dtype=target_dtype), lens)[src]
    return chars, targets, obs_len


def observations_from_words(words: list[str], vocabulary: list[str], max_length: int = 200) -> dict:
    """The observations of a (small) word list, in memory: the reference the streaming builder
    must agree with. ``vocabulary`` is the full target list (``<eos>``, ``<unknown>``, words...).

    Parameters
    ----------
    words : list of str
        The corpus as words (a-z only).
    vocabulary : list of str
        Target id -> word; words not in it get ``<unknown>`` (1).
    max_length : int, default 200
        Most characters per observation.

    Returns
    -------
    dict
        ``chars`` uint8 [N, max_length] input ids, ``targets`` [N, max_length] word ids (uint16, or
        int32 above 2^16 classes; 0 = padding), ``lengths`` [N], ``first_word`` [N] (index of each
        observation's first word) and ``skipped`` (indices of words too long to fit), int64.

    Raises
    ------
    InputError
        If a word is empty or not lower-case a-z.
    """
    lookup = {w: i for i, w in enumerate(vocabulary)}
    for w in words:
        _check_word(w)
    lens = np.array([len(w) + 1 for w in words], dtype=np.int64)
    ids = np.array([lookup.get(w, UNKNOWN) for w in words], dtype=np.int64)
    stream = _CHAR_ID[np.frombuffer(("".join(" " + w for w in words)).encode("ascii"), dtype=np.uint8)]
    starts, stops, skipped = pack_observations(lens, max_length)
    chars, targets, lengths = _fill(starts, stops, lens, stream, ids, max_length, _target_dtype(len(vocabulary)))
    return {"chars": chars, "targets": targets, "lengths": lengths, "first_word": starts, "skipped": skipped}


def _check_word(w: str) -> None:
    if not w or any(not ("a" <= c <= "z") for c in w):
        raise InputError(f"word {w!r} is not text8 format (lower-case a-z only)")


def _target_dtype(n_classes: int):
    return np.uint16 if n_classes <= 2**16 else np.int32


# --------------------------------------------------------------------------- streaming passes
def file_sha256(path: Path, chunk: int = CHUNK_BYTES) -> str:
    """SHA-256 of a file, read ``chunk`` bytes at a time.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    chunk : int, default CHUNK_BYTES (4 MiB)
        Bytes per read.

    Returns
    -------
    str
        Hex digest (64 characters).
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            h.update(block)
    return h.hexdigest()


def _chunks(path: Path, chunk_bytes: int):
    """Yield ``(offset, bytes)`` blocks that end at a separator (a word never straddles two)."""
    carry = b""
    offset = 0
    with open(path, "rb") as fh:
        while True:
            block = fh.read(chunk_bytes)
            if not block:
                break
            data = carry + block
            cut = max(data.rfind(b" "), data.rfind(b"\n"))
            if cut < 0:
                carry = data
                continue
            yield offset, data[: cut + 1]
            offset += cut + 1
            carry = data[cut + 1 :]
    if carry:
        yield offset, carry


def _validate(offset: int, data: bytes, path: Path) -> None:
    ids = _CHAR_ID[np.frombuffer(data, dtype=np.uint8)]
    bad = np.flatnonzero(ids == 255)
    if len(bad):
        i = int(bad[0])
        raise InputError(
            f"{path} is not text8 format: byte {data[i:i + 1]!r} at offset {offset + i} (only lower-case a-z, "
            "spaces and newlines are allowed); lower-case the text and replace other characters by spaces"
        )


def count_words(path: Path, chunk_bytes: int = CHUNK_BYTES, progress: Callable[[int], None] | None = None) -> Counter:
    """Pass 1: validate every byte and count words (streaming, one chunk of words at a time).

    Parameters
    ----------
    path : pathlib.Path
        text8-format file.
    chunk_bytes : int, default CHUNK_BYTES (4 MiB)
        Bytes per read.
    progress : callable, optional
        Called with the number of bytes of each processed chunk.

    Returns
    -------
    collections.Counter
        Word (bytes) -> count.

    Raises
    ------
    InputError
        At the first byte that is not a-z, space or newline (its offset named).
    """
    counts: Counter = Counter()
    for offset, data in _chunks(path, chunk_bytes):
        _validate(offset, data, path)
        counts.update(data.split())
        if progress:
            progress(len(data))
    return counts


def make_vocabulary(counts: Counter, vocab_size: int) -> list[str]:
    """``["<eos>", "<unknown>"]`` + the ``vocab_size`` most frequent words (count desc, then a-z).

    Parameters
    ----------
    counts : collections.Counter
        Word (bytes or str) -> count.
    vocab_size : int
        Number of words kept.

    Returns
    -------
    list of str
        Target id -> word, ``vocab_size + 2`` entries at most.
    """
    top = heapq.nsmallest(vocab_size, counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return ["<eos>", "<unknown>"] + [w.decode("ascii") if isinstance(w, bytes) else w for w, _ in top]


def split_indices(n: int, seed: int, fractions=(0.9, 0.05, 0.05)) -> dict[str, np.ndarray]:
    """Seeded permutation; train = first floor(f_train N), valid = next floor(f_valid N), test = rest.

    Parameters
    ----------
    n : int
        Number of observations N.
    seed : int
        Seed of ``numpy.random.default_rng``.
    fractions : tuple of float, default (0.9, 0.05, 0.05)
        Train, validation and test fractions (the test fraction is implied by the rest).

    Returns
    -------
    dict of str to numpy.ndarray
        ``"train"``, ``"valid"``, ``"test"`` -> int64 observation indices.
    """
    perm = np.random.default_rng(seed).permutation(n)
    n_train = math.floor(n * fractions[0])
    n_valid = math.floor(n * fractions[1])
    return {"train": perm[:n_train], "valid": perm[n_train : n_train + n_valid], "test": perm[n_train + n_valid :]}


# --------------------------------------------------------------------------- dataset
@dataclass
class AutocompleteData:
    """Observations as padded matrices plus the split and vocabulary.

    ``chars[N, L]`` uint8 input ids, ``targets[N, L]`` word ids, ``lengths[N]``, ``first_word[N]``
    (corpus index of each observation's first word), ``splits`` name -> observation indices."""

    chars: np.ndarray
    targets: np.ndarray
    lengths: np.ndarray
    first_word: np.ndarray
    splits: dict[str, np.ndarray]
    words: list[str]
    config: dict = field(default_factory=dict)
    cache_hit: bool = False
    cache_path: Path | None = None

    chars_vocabulary = CHARS

    @property
    def max_length(self) -> int:
        """Padded observation length L.

        Returns
        -------
        int
            ``chars.shape[1]``.
        """
        return int(self.chars.shape[1])

    @property
    def n_words(self) -> int:
        """Number of target classes (``<eos>``, ``<unknown>`` and the vocabulary words).

        Returns
        -------
        int
            ``len(words)``.
        """
        return len(self.words)

    def split(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        """``(chars, targets)`` of one split (copies, in split order).

        Parameters
        ----------
        name : str
            ``"train"``, ``"valid"`` or ``"test"``.

        Returns
        -------
        tuple of numpy.ndarray
            ``chars`` uint8 [n, L] and ``targets`` [n, L].

        Raises
        ------
        ConfigError
            If the split is unknown.
        """
        idx = self.split_index(name)
        return np.asarray(self.chars[idx]), np.asarray(self.targets[idx])

    def split_index(self, name: str) -> np.ndarray:
        """Observation indices of one split.

        Parameters
        ----------
        name : str
            ``"train"``, ``"valid"`` or ``"test"``.

        Returns
        -------
        numpy.ndarray
            int64 indices into the observations.

        Raises
        ------
        ConfigError
            If the split is unknown.
        """
        if name not in self.splits:
            raise ConfigError(f"unknown split {name!r}; choose one of {', '.join(self.splits)}")
        return self.splits[name]

    def decode(self, row: int) -> str:
        """The text of observation ``row`` (leading space included).

        Parameters
        ----------
        row : int
            Observation index.

        Returns
        -------
        str
            Its ``lengths[row]`` characters.
        """
        n = int(self.lengths[row])
        return "".join(CHARS[c] for c in np.asarray(self.chars[row, :n]))

    def summary(self) -> pd.DataFrame:
        """Observations, characters, known and unknown targets per split.

        Returns
        -------
        pandas.DataFrame
            One row per split: ``split``, ``observations``, ``characters``, ``known_targets``,
            ``unknown_targets``.
        """
        rows = []
        for name, idx in self.splits.items():
            t = np.asarray(self.targets[idx])
            rows.append({
                "split": name, "observations": len(idx), "characters": int((t != PAD).sum()),
                "known_targets": int((t > UNKNOWN).sum()), "unknown_targets": int((t == UNKNOWN).sum()),
            })
        return pd.DataFrame(rows)


def _options(vocab_size, max_length, fractions, seed) -> dict:
    return {"format": FORMAT_VERSION, "vocab_size": vocab_size, "max_length": max_length,
            "split": list(fractions), "seed": seed}


def _check_options(vocab_size, max_length, fractions, seed) -> tuple[float, float, float]:
    if not isinstance(vocab_size, int) or isinstance(vocab_size, bool) or vocab_size < 1:
        raise ConfigError(f"vocab_size must be a positive integer, got {vocab_size!r}")
    if not isinstance(max_length, int) or isinstance(max_length, bool) or max_length < 2:
        raise ConfigError(f"max_length must be an integer >= 2, got {max_length!r}")
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-9:
        raise ConfigError(f"split must be three fractions >= 0 summing to 1, got {fractions!r}")
    if not isinstance(seed, int):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    return fr


SYNTHETIC_HINT = "`rnnmem reproduce distill --quick` or `rnnmem train-autocomplete --synthetic`"


def check_corpus(corpus, synthetic_hint: str = SYNTHETIC_HINT) -> Path:
    """The corpus path, or InputError when it is missing, not a file or empty.

    Parameters
    ----------
    corpus: path of a text8-format file.
    synthetic_hint: how the caller's user gets the synthetic corpus instead (named in the error).

    Returns
    -------
    The path.

    Raises
    ------
    InputError
        If the path does not exist, is not a file, or is empty.
    """
    path = Path(corpus).expanduser()
    if not path.exists():
        raise InputError(f"corpus {path} not found; give the path of a text8-format file (e.g. the unzipped "
                         f"http://mattmahoney.net/dc/text8.zip) or use the synthetic corpus ({synthetic_hint})")
    if not path.is_file():
        raise InputError(f"corpus {path} is not a file")
    if path.stat().st_size == 0:
        raise InputError(f"corpus {path} is empty; it must hold lower-case words separated by spaces")
    return path


def build_dataset(
    corpus,
    vocab_size: int = 2**14,
    max_length: int = 200,
    split=(0.9, 0.05, 0.05),
    seed: int = 0,
    cache_dir=None,
    cache: bool = True,
    chunk_bytes: int = CHUNK_BYTES,
    progress: Callable[[str, int, int], None] | None = None,
) -> AutocompleteData:
    """Build (or load from the cache) the autocomplete dataset of a text8-format file.

    ``progress(stage, done_bytes, total_bytes)`` is called during the passes. The cache entry is
    ``cache_dir/<sha256[:16]>-<options hash>/``; ``cache=False`` neither reads nor writes it.

    Parameters
    ----------
    corpus : str or path
        text8-format file (lower-case a-z words separated by spaces/newlines).
    vocab_size : int, default 2**14
        Most frequent words kept as targets (others are ``<unknown>``).
    max_length : int, default 200
        Characters per observation (>= 2).
    split : tuple of float, default (0.9, 0.05, 0.05)
        Train / validation / test fractions, summing to 1.
    seed : int, default 0
        Seed of the split permutation.
    cache_dir : path, optional
        Cache root; default :func:`default_cache_dir`.
    cache : bool, default True
        Read and write the cache.
    chunk_bytes : int, default CHUNK_BYTES (4 MiB)
        Bytes per read.
    progress : callable, optional
        ``progress(stage, done_bytes, total_bytes)`` with stage ``"count"`` or ``"build"``.

    Returns
    -------
    AutocompleteData
        ``chars`` uint8 [N, max_length], ``targets`` [N, max_length] (uint16, or int32 above 2^16
        classes), ``lengths`` int32 [N], ``first_word`` int64 [N], the splits, the vocabulary and a
        ``config`` dict (options, corpus sha256, counts, build time); memory-mapped on a cache hit.

    Raises
    ------
    ConfigError
        On bad options.
    InputError
        If the corpus is missing, empty, not text8 format, or yields no observations.
    """
    fractions = _check_options(vocab_size, max_length, split, seed)
    path = check_corpus(corpus)
    size = path.stat().st_size
    t0 = time.perf_counter()
    sha = file_sha256(path, chunk_bytes)
    options = _options(vocab_size, max_length, fractions, seed)
    key = sha[:16] + "-" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    cdir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    entry = cdir / key
    if cache and (entry / "meta.json").is_file():
        data = load_cached(entry)
        data.config["corpus"] = str(path)
        return data

    def report(stage):
        done = [0]

        def f(n):
            done[0] += n
            if progress:
                progress(stage, done[0], size)
        return f

    counts = count_words(path, chunk_bytes, report("count"))
    if not counts:
        raise InputError(f"corpus {path} holds no words (only whitespace)")
    words = make_vocabulary(counts, vocab_size)
    n_unique, n_corpus_words = len(counts), int(sum(counts.values()))
    # every corpus word -> its id (<unknown> for words outside the vocabulary): one dict lookup per token
    lookup = dict.fromkeys(counts, UNKNOWN)
    del counts
    lookup.update((w.encode("ascii"), i) for i, w in enumerate(words[2:], start=2))
    tdtype = _target_dtype(len(words))

    parts_chars, parts_targets, parts_len, parts_first = [], [], [], []
    n_skipped = 0
    word_base = 0  # corpus index of the first pending word
    pend_ids = np.zeros(0, dtype=np.int64)
    pend_lens = np.zeros(0, dtype=np.int64)
    pend_chars = np.zeros(0, dtype=np.uint8)
    step = report("build")
    for _, data in _chunks(path, chunk_bytes):
        toks = data.split()
        step(len(data))
        if not toks:
            continue
        ids = np.fromiter(map(lookup.__getitem__, toks), dtype=np.int64, count=len(toks))
        lens = np.fromiter(map(len, toks), dtype=np.int64, count=len(toks)) + 1
        stream = _CHAR_ID[np.frombuffer(b" " + b" ".join(toks), dtype=np.uint8)]
        ids = np.concatenate([pend_ids, ids])
        lens = np.concatenate([pend_lens, lens])
        stream = np.concatenate([pend_chars, stream])
        starts, stops, skipped = pack_observations(lens, max_length)
        n_skipped += int(np.sum(skipped < (starts[-1] if len(starts) else len(lens))))
        # keep the last (possibly unfinished) observation pending for the next chunk
        if len(starts):
            last = int(starts[-1])
            done_starts, done_stops = starts[:-1], stops[:-1]
        else:
            last = len(lens)
            done_starts = done_stops = starts
        chars, targets, olen = _fill(done_starts, done_stops, lens, stream, ids, max_length, tdtype)
        parts_chars.append(chars)
        parts_targets.append(targets)
        parts_len.append(olen)
        parts_first.append(done_starts + word_base)
        cut = int(lens[:last].sum())
        pend_ids, pend_lens, pend_chars = ids[last:], lens[last:], stream[cut:]
        word_base += last
    if len(pend_lens):
        starts, stops, skipped = pack_observations(pend_lens, max_length)
        n_skipped += len(skipped)
        chars, targets, olen = _fill(starts, stops, pend_lens, pend_chars, pend_ids, max_length, tdtype)
        parts_chars.append(chars)
        parts_targets.append(targets)
        parts_len.append(olen)
        parts_first.append(starts + word_base)
    chars = np.concatenate(parts_chars)
    del parts_chars
    targets = np.concatenate(parts_targets)
    del parts_targets
    lengths = np.concatenate(parts_len).astype(np.int32)
    first_word = np.concatenate(parts_first).astype(np.int64)
    if len(chars) == 0:
        raise InputError(f"corpus {path} yields no observations: every word is longer than max_length - 1 = "
                         f"{max_length - 1} characters")
    splits = split_indices(len(chars), seed, fractions)
    unknown = int((targets == UNKNOWN).sum())
    config = {
        **options, "corpus": str(path), "corpus_sha256": sha, "corpus_bytes": size,
        "corpus_words": n_corpus_words, "unique_words": n_unique, "skipped_words": n_skipped,
        "observations": int(len(chars)), "n_classes": len(words), "n_chars": len(CHARS),
        "unknown_fraction": unknown / max(1, int((targets != PAD).sum())),
        "split_sizes": {k: int(len(v)) for k, v in splits.items()}, "cache_key": key,
        "build_s": time.perf_counter() - t0,
    }
    data = AutocompleteData(chars, targets, lengths, first_word, splits, words, config, cache_hit=False)
    if cache:
        data.cache_path = save_cache(data, entry)
    return data


_ARRAYS = ("chars", "targets", "lengths", "first_word")


def save_cache(data: AutocompleteData, entry: Path) -> Path:
    """Write the arrays (``.npy``) and metadata; atomic (temporary folder renamed into place).

    Parameters
    ----------
    data : AutocompleteData
        The dataset.
    entry : pathlib.Path
        Cache folder to create (kept as is if another process created it first).

    Returns
    -------
    pathlib.Path
        ``entry``.
    """
    entry.parent.mkdir(parents=True, exist_ok=True)
    tmp = entry.with_name(entry.name + f".tmp{os.getpid()}")
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    for name in _ARRAYS:
        np.save(tmp / f"{name}.npy", getattr(data, name))
    for name, idx in data.splits.items():
        np.save(tmp / f"split_{name}.npy", idx)
    (tmp / "words.json").write_text(json.dumps(data.words))
    (tmp / "meta.json").write_text(json.dumps(data.config, indent=1))
    if entry.exists():  # another process won the race: keep theirs
        shutil.rmtree(tmp)
    else:
        os.replace(tmp, entry)
    return entry


def load_cached(entry) -> AutocompleteData:
    """Load a cache entry (arrays memory-mapped read-only).

    Parameters
    ----------
    entry : str or path
        Cache folder written by :func:`save_cache`.

    Returns
    -------
    AutocompleteData
        With ``cache_hit=True`` and ``cache_path=entry``.

    Raises
    ------
    InputError
        If the entry is unreadable.
    """
    entry = Path(entry)
    try:
        config = json.loads((entry / "meta.json").read_text())
        arrays = {name: np.load(entry / f"{name}.npy", mmap_mode="r") for name in _ARRAYS}
        splits = {name: np.load(entry / f"split_{name}.npy") for name in SPLIT_NAMES}
        words = json.loads((entry / "words.json").read_text())
    except (OSError, ValueError) as exc:
        raise InputError(f"autocomplete cache {entry} is unreadable ({exc}); delete the folder to rebuild") from None
    return AutocompleteData(**arrays, splits=splits, words=words, config=config, cache_hit=True, cache_path=entry)


def find_dataset(fingerprint: dict | None, corpus=None, cache_dir=None) -> AutocompleteData | None:
    """The dataset a model was trained on, from the fingerprint its checkpoint records (``data``:
    ``corpus_sha256`` and the build options ``vocab_size``, ``max_length``, ``split``, ``seed``).

    Without ``corpus``: the cache entry of that corpus and those options under ``cache_dir``
    (default :func:`default_cache_dir`), or None when it is not there (or the fingerprint is
    incomplete). With ``corpus`` (a text8-format file): its dataset is built with the recorded
    options (or loaded from the cache); a file whose sha256 differs from the recorded one is refused.

    Parameters
    ----------
    fingerprint : dict or None
        The checkpoint's data fingerprint.
    corpus : str or path, optional
        The training corpus, to rebuild the dataset.
    cache_dir : path, optional
        Cache root.

    Returns
    -------
    AutocompleteData or None.

    Raises
    ------
    InputError
        With ``corpus``: if the fingerprint is incomplete or the corpus sha256 differs.
    """
    keys = ("corpus_sha256", "vocab_size", "max_length", "split", "seed")
    if not isinstance(fingerprint, dict) or any(fingerprint.get(k) is None for k in keys):
        if corpus is not None:
            raise InputError("the checkpoint does not record the corpus it was trained on (no data fingerprint), "
                             "so its test split cannot be rebuilt; leave out --corpus")
        return None
    fp = fingerprint
    if corpus is not None:
        data = build_dataset(corpus, vocab_size=int(fp["vocab_size"]), max_length=int(fp["max_length"]),
                             split=tuple(fp["split"]), seed=int(fp["seed"]), cache_dir=cache_dir)
        if data.config.get("corpus_sha256") != fp["corpus_sha256"]:
            raise InputError(f"corpus {corpus} is not the one the model was trained on (sha256 "
                             f"{str(data.config.get('corpus_sha256'))[:12]}... vs {fp['corpus_sha256'][:12]}... "
                             "recorded in the checkpoint); give the training corpus")
        return data
    try:
        fractions = _check_options(int(fp["vocab_size"]), int(fp["max_length"]), tuple(fp["split"]), int(fp["seed"]))
    except (ConfigError, TypeError, ValueError):
        return None
    options = _options(int(fp["vocab_size"]), int(fp["max_length"]), fractions, int(fp["seed"]))
    key = fp["corpus_sha256"][:16] + "-" + hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()[:12]
    entry = (Path(cache_dir) if cache_dir is not None else default_cache_dir()) / key
    if not (entry / "meta.json").is_file():
        return None
    data = load_cached(entry)
    return data if data.config.get("corpus_sha256") == fp["corpus_sha256"] else None


def dataset_from_text(text: str, path, **options) -> AutocompleteData:
    """Write ``text`` to ``path`` and build its dataset (convenience for generated corpora).

    Parameters
    ----------
    text : str
        text8-format text (ASCII).
    path : str or path
        File to write (parent folders created).
    **options
        Keyword arguments of :func:`build_dataset`.

    Returns
    -------
    AutocompleteData
        As :func:`build_dataset`.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="ascii")
    return build_dataset(path, **options)


# --------------------------------------------------------------------------- batches and positions
def batch_order(n: int, batch_size: int, seed: int, epoch: int) -> list[np.ndarray]:
    """The batches of one epoch: a permutation seeded by ``(seed, epoch)``, cut into
    ``ceil(n / batch_size)`` batches (the last may be smaller).

    Parameters
    ----------
    n : int
        Number of observations.
    batch_size : int
        Observations per batch.
    seed : int
        Run seed.
    epoch : int
        Epoch number (part of the ``numpy.random.default_rng`` seed).

    Returns
    -------
    list of numpy.ndarray
        int64 index arrays, each [<= batch_size].
    """
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    return [perm[i : i + batch_size] for i in range(0, n, batch_size)]


def known_characters(chars: np.ndarray) -> np.ndarray:
    """k[..., t] = characters of the current word already seen at step t: 0 at the unit's space,
    i at its i-th letter. Padding continues the count (as the study's ContextAccuracy does, where
    ``<eos>`` is not a space). ``chars`` is ``[..., T]`` (time last).

    Parameters
    ----------
    chars : array-like of int
        Input ids ``[..., T]``.

    Returns
    -------
    numpy.ndarray
        int array of the shape of ``chars``.
    """
    chars = np.asarray(chars)
    T = chars.shape[-1]
    t = np.broadcast_to(np.arange(T), chars.shape)
    last_space = np.where(chars == SPACE, t, -1)
    last_space = np.maximum.accumulate(last_space, axis=-1)
    return np.where(last_space >= 0, t - last_space, t + 1)


def dependency_positions(data: AutocompleteData, dependencies: pd.DataFrame, split: str = "test") -> pd.DataFrame:
    """Locate planted episodes (from ``synthetic_text``) in the observations of ``split``: one row
    per episode whose key and response fall in the same observation, with ``row`` (observation)
    and ``position`` (step of the space before the response word, where k = 0).

    Parameters
    ----------
    data : AutocompleteData
        The dataset built from the planted corpus.
    dependencies : pandas.DataFrame
        Episodes with at least ``key_index`` and ``response_index`` (corpus word indices).
    split : str, default "test"
        Split whose observations are searched.

    Returns
    -------
    pandas.DataFrame
        The columns of ``dependencies`` plus ``row`` and ``position``.

    Raises
    ------
    ConfigError
        If the split is unknown.
    """
    idx = data.split_index(split)
    in_split = np.zeros(len(data.first_word), dtype=bool)
    in_split[idx] = True
    fw = np.asarray(data.first_word)
    out = []
    for rec in dependencies.itertuples(index=False):
        o_key = int(np.searchsorted(fw, rec.key_index, side="right") - 1)
        o_resp = int(np.searchsorted(fw, rec.response_index, side="right") - 1)
        if o_key < 0 or o_key != o_resp or not in_split[o_resp]:
            continue
        n = rec.response_index - fw[o_resp]
        spaces = np.flatnonzero(np.asarray(data.chars[o_resp, : data.lengths[o_resp]]) == SPACE)
        if n >= len(spaces):
            continue
        out.append({**rec._asdict(), "row": o_resp, "position": int(spaces[n])})
    cols = list(dependencies.columns) + ["row", "position"]
    return pd.DataFrame(out, columns=cols)
