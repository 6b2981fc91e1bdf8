"""Synthetic text8-format corpora: a Zipf word stream, optionally with planted long-range
dependencies whose true distance is known.

Why: the autocomplete study (Madsen, "Visualizing memorization in RNNs", Distill 2019) trains on
text8, which cannot be downloaded at run time. These generators give (a) a stand-in of the same
size and word statistics for the data-pipeline benchmark and (b) a controlled task where a model
*must* remember a word over a known distance to autocomplete correctly.

Word frequencies follow a Zipf-Mandelbrot law (Mandelbrot 1953), the usual fit to natural text::

    p(r) = (r + q)^(-s) / sum_r' (r' + q)^(-s),   rank r = 0, 1, ...,  s = 1, q = 2.7

Words are invented from consonant-vowel syllables; rank r maps to a unique word (mixed-radix
digits of r), so frequent words are short, as in natural language.

Planted dependency episodes (ours), inserted between filler words with probability ``rate`` per
filler word::

    copy:       ... remember K f_1 ... f_D recall K ...
    agreement:  ... remember K f_1 ... f_D recall R(K) ...

K is one of ``n_keys`` key words, f_i filler words, and R a fixed one-to-one map from keys to
response words (so the model must learn the pairing, not just copy). The response word is
predictable only from the key, ``distance_words = D + 2`` words earlier; chance accuracy at the
space before the response is ``1 / n_keys``. Every episode is recorded (word indices, distance
in words and in characters).

Output: text8-format ``str`` (or file) with a leading space, plus a pandas DataFrame of episodes.
Randomness: ``numpy.random.default_rng(seed)`` (keys and responses from ``default_rng([seed, 1])``);
the same seed gives the same text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError

CONSONANTS = "bcdfghjklmnprstvwxyz"  # 20 consonants (q omitted)
VOWELS = "aeiou"
SYLLABLES = [c + v for c in CONSONANTS for v in VOWELS]  # 100 consonant-vowel syllables

KINDS = ("copy", "agreement")


def check_episode_options(n_words, n_keys, distances, rate) -> list[int]:
    """Validate the options shared by the planted-dependency generators; returns the distances as
    ints. Bad values raise one ConfigError naming the option.

    Parameters
    ----------
    n_words : int
        Filler words (>= 1).
    n_keys : int
        Key words (>= 2).
    distances : sequence of int
        Gaps D (non-empty, each >= 0).
    rate : float
        Episode start probability, in [0, 1).

    Returns
    -------
    list of int
        The distances.

    Raises
    ------
    ConfigError
        Naming the first bad option.
    """
    if not isinstance(n_words, int) or n_words < 1:
        raise ConfigError(f"n_words must be a positive integer, got {n_words!r}")
    if not isinstance(n_keys, int) or n_keys < 2:
        raise ConfigError(f"n_keys must be an integer >= 2, got {n_keys!r}")
    distances = [int(d) for d in distances]
    if not distances or min(distances) < 0:
        raise ConfigError(f"distances must be a non-empty list of integers >= 0, got {distances!r}")
    if not 0 <= rate < 1:
        raise ConfigError(f"rate must be in [0, 1), got {rate}")
    return distances


def zipf_probabilities(n: int, exponent: float = 1.0, offset: float = 2.7) -> np.ndarray:
    """Zipf-Mandelbrot probabilities ``p(r) ∝ (r + offset)^(-exponent)`` for ranks ``0..n-1``.

    Parameters
    ----------
    n : int
        Number of ranks (>= 1).
    exponent : float, default 1.0
        s (> 0).
    offset : float, default 2.7
        q (> 0).

    Returns
    -------
    numpy.ndarray
        float64 [n], summing to 1.

    Raises
    ------
    ConfigError
        If ``n < 1`` or exponent/offset are not positive.
    """
    if n < 1:
        raise ConfigError(f"vocabulary size must be >= 1, got {n}")
    if exponent <= 0 or offset <= 0:
        raise ConfigError("zipf exponent and offset must be > 0")
    w = (np.arange(n, dtype=np.float64) + offset) ** (-exponent)
    return w / w.sum()


def invented_word(rank: int) -> str:
    """The unique invented word of a rank: syllable digits of ``rank`` in mixed radix.

    Ranks 0-99 have one syllable, 100-10,099 two, then three, ... (bijective numeration, so no
    two ranks share a word). A trailing consonant is added to every second multi-syllable word,
    which spreads word lengths like natural text (2, 4, 5, 6, 7 ... letters).

    Parameters
    ----------
    rank : int
        Frequency rank (>= 0).

    Returns
    -------
    str
        Lower-case a-z word.

    Raises
    ------
    ConfigError
        If ``rank < 0``.
    """
    if rank < 0:
        raise ConfigError(f"rank must be >= 0, got {rank}")
    n = len(SYLLABLES)
    k, block, r = 1, n, rank
    while r >= block:
        r -= block
        k += 1
        block = n**k
    digits = []
    for _ in range(k):
        r, d = divmod(r, n)
        digits.append(SYLLABLES[d])
    word = "".join(reversed(digits))
    if k > 1 and rank % 2:
        word += CONSONANTS[(rank // 2) % len(CONSONANTS)]
    return word


def invented_vocabulary(n: int, exclude: set[str] | frozenset = frozenset()) -> list[str]:
    """``n`` distinct invented words, most frequent (shortest) first, none in ``exclude``.

    Parameters
    ----------
    n : int
        Number of words.
    exclude : set of str, default empty
        Words to skip (e.g. marker words).

    Returns
    -------
    list of str
    """
    words, rank = [], 0
    seen = set()
    while len(words) < n:
        w = invented_word(rank)
        rank += 1
        if w in exclude or w in seen:
            continue
        seen.add(w)
        words.append(w)
    return words


def write_zipf_text8(path, n_bytes: int, vocab_size: int = 250_000, seed: int = 0,
                     chunk_words: int = 1_000_000) -> dict:
    """Write a text8-format file of about ``n_bytes`` (single spaces, leading space, no newline)
    with Zipf-distributed invented words. Streams in chunks; returns a summary dict.

    Words are i.i.d. draws (``numpy.random.default_rng(seed)``) from :func:`zipf_probabilities`
    over :func:`invented_vocabulary` (``vocab_size``); the file is cut at a word boundary so it never
    exceeds ``n_bytes``.

    Parameters
    ----------
    path : str or path
        Output file (parent folders created).
    n_bytes : int
        Target size in bytes (>= 1).
    vocab_size : int, default 250000
        Invented words.
    seed : int, default 0
    chunk_words : int, default 1000000
        Words drawn per chunk.

    Returns
    -------
    dict
        ``path``, ``bytes`` written, ``words``, ``vocab_size``, ``seed``.

    Raises
    ------
    ConfigError
        If ``n_bytes < 1`` or ``vocab_size < 1``.
    """
    if n_bytes < 1:
        raise ConfigError(f"n_bytes must be >= 1, got {n_bytes}")
    rng = np.random.default_rng(seed)
    vocab = np.array(invented_vocabulary(vocab_size), dtype=object)
    cum = np.cumsum(zipf_probabilities(vocab_size))
    cum[-1] = 1.0
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    written = n_words = 0
    with open(path, "wb") as fh:
        while written < n_bytes:
            ids = np.searchsorted(cum, rng.random(chunk_words), side="right")
            data = (" " + " ".join(vocab[ids].tolist())).encode("ascii")
            if written + len(data) > n_bytes:  # cut at a word boundary, never past n_bytes
                cut = data.rfind(b" ", 0, n_bytes - written + 1)
                if cut <= 0:
                    break
                data = data[:cut]
            fh.write(data)
            written += len(data)
            n_words += data.count(b" ")
    return {"path": str(path), "bytes": written, "words": n_words, "vocab_size": vocab_size, "seed": seed}


@dataclass
class SyntheticCorpus:
    """A generated corpus: ``text`` (text8 format), every planted episode, and the config."""

    text: str
    dependencies: pd.DataFrame
    config: dict = field(default_factory=dict)

    @property
    def words(self) -> list[str]:
        """The words of ``text``.

        Returns
        -------
        list of str
        """
        return self.text.split()

    def save(self, path) -> tuple[Path, Path]:
        """Write the text to ``path`` and the episodes to ``path`` + ``.dependencies.csv``.

        Parameters
        ----------
        path : str or path
            Text file (parent folders created).

        Returns
        -------
        tuple of pathlib.Path
            ``(text_path, dependencies_csv_path)``.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.text, encoding="ascii")
        deps = path.with_name(path.name + ".dependencies.csv")
        self.dependencies.to_csv(deps, index=False)
        return path, deps


def planted_dependency_text(
    n_words: int = 200_000,
    vocab_size: int = 2_000,
    n_keys: int = 10,
    distances=(2, 4, 8, 16),
    rate: float = 0.03,
    kind: str = "copy",
    seed: int = 0,
    start_marker: str = "remember",
    cue_marker: str = "recall",
) -> SyntheticCorpus:
    """Generate text with planted long-range dependencies (see module docstring).

    ``n_words`` filler words are drawn from a Zipf law over ``vocab_size`` invented words; before
    each filler word an episode starts with probability ``rate``, its gap D drawn uniformly from
    ``distances`` (filler words between key and cue). Episodes never overlap. Same seed -> same
    text.

    Parameters
    ----------
    n_words : int, default 200000
        Filler positions drawn (>= 1).
    vocab_size : int, default 2000
        Invented filler words.
    n_keys : int, default 10
        Key words (>= 2); keys and responses are invented words ranked after the filler, picked
        with seed ``[seed, 1]``.
    distances : sequence of int, default (2, 4, 8, 16)
        Gaps D.
    rate : float, default 0.03
        Episode start probability per filler word, in [0, 1).
    kind : str, default "copy"
        ``"copy"`` (response = key) or ``"agreement"`` (response = R(key)).
    seed : int, default 0
        Seed of ``numpy.random.default_rng``.
    start_marker, cue_marker : str, default "remember", "recall"
        Marker words (lower-case a-z).

    Returns
    -------
    SyntheticCorpus
        ``text`` (text8, leading space); ``dependencies`` with columns episode, kind, key, response,
        key_index, response_index, gap_words, distance_words, distance_chars; ``config``.

    Raises
    ------
    ConfigError
        On a bad option.
    """
    if kind not in KINDS:
        raise ConfigError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    distances = check_episode_options(n_words, n_keys, distances, rate)
    for m in (start_marker, cue_marker):
        if not m.isalpha() or not m.islower() or not m.isascii():
            raise ConfigError(f"marker words must be lower-case a-z, got {m!r}")
    rng = np.random.default_rng(seed)
    reserved = {start_marker, cue_marker}
    # keys and responses: drawn from the invented words ranked just after the filler vocabulary
    filler = invented_vocabulary(vocab_size, exclude=reserved)
    pool = invented_vocabulary(vocab_size + 50 * n_keys, exclude=reserved)[vocab_size:]  # never filler
    pick = np.random.default_rng([seed, 1]).choice(len(pool), size=2 * n_keys, replace=False)
    special = [pool[j] for j in pick]
    keys = special[:n_keys]
    responses = keys if kind == "copy" else special[n_keys : 2 * n_keys]
    cum = np.cumsum(zipf_probabilities(vocab_size))
    cum[-1] = 1.0
    filler_ids = np.searchsorted(cum, rng.random(n_words), side="right")
    starts = rng.random(n_words) < rate
    gaps = rng.choice(np.asarray(distances), size=n_words)
    key_ids = rng.integers(0, n_keys, size=n_words)

    out: list[str] = []
    char_pos: list[int] = []  # character offset of each word's leading space
    pos = 0
    rows = []
    i = 0

    def emit(w: str) -> None:
        nonlocal pos
        char_pos.append(pos)
        out.append(w)
        pos += len(w) + 1

    while i < n_words:
        if starts[i] and i + gaps[i] <= n_words:
            d, k = int(gaps[i]), int(key_ids[i])
            emit(start_marker)
            key_index = len(out)
            emit(keys[k])
            for j in range(d):
                emit(filler[filler_ids[i + j]])
            emit(cue_marker)
            resp_index = len(out)
            emit(responses[k])
            rows.append({
                "episode": len(rows), "kind": kind, "key": keys[k], "response": responses[k],
                "key_index": key_index, "response_index": resp_index, "gap_words": d,
                "distance_words": resp_index - key_index,
                "distance_chars": char_pos[resp_index] - char_pos[key_index],
            })
            i += d
        else:
            emit(filler[filler_ids[i]])
            i += 1
    text = " " + " ".join(out)
    deps = pd.DataFrame(rows, columns=["episode", "kind", "key", "response", "key_index", "response_index",
                                       "gap_words", "distance_words", "distance_chars"])
    config = {
        "generator": "planted_dependency_text", "n_words": n_words, "vocab_size": vocab_size,
        "n_keys": n_keys, "distances": distances, "rate": rate, "kind": kind, "seed": seed,
        "start_marker": start_marker, "cue_marker": cue_marker, "keys": keys, "responses": responses,
        "zipf": {"exponent": 1.0, "offset": 2.7}, "total_words": len(out), "episodes": len(rows),
    }
    return SyntheticCorpus(text=text, dependencies=deps, config=config)


def planted_examples(distances=(1, 2, 4, 8), max_chars: int | None = 500, seed: int = 0, context_words: int = 6,
                     n_words: int = 4_000, **corpus) -> list[dict]:
    """Short texts with one planted dependency each, one per gap in ``distances``, for showing
    long-range memory (e.g. the menu of ``rnnmem serve``).

    A corpus is generated with ``planted_dependency_text(n_words, distances=distances, seed=seed,
    **corpus)`` (so with the options of a model's training corpus, its words are the model's); for
    each gap D the first episode ``remember K f_1 ... f_D recall R(K)`` whose window (up to
    ``context_words`` filler words before it and one word after) holds no other episode is cut out.
    Context words are dropped from the front until the text (cleaned form, leading space not
    counted) has at most ``max_chars`` characters; a gap whose bare episode does not fit is left out.

    Parameters
    ----------
    distances : gaps D (filler words between key and cue), as in ``planted_dependency_text``.
    max_chars : longest text, in characters after the leading space; None: no limit.
    seed : the corpus seed (same seed -> same texts).
    context_words : filler words before the episode.
    n_words : filler words of the generated corpus (enough to hold an episode of every gap).
    **corpus : further ``planted_dependency_text`` options (vocab_size, n_keys, rate, kind, markers).

    Returns
    -------
    list of dicts, one per gap that fits, in the order of ``distances``: ``label``, ``text`` (leading
    space), ``gap_words``, ``key``, ``response``, ``distance_chars`` (from the key's first letter to
    the space before the response word) and ``key_at`` / ``response_at`` (those character positions).

    Raises
    ------
    ConfigError
        On a bad ``max_chars``, ``context_words`` or corpus option.
    """
    if max_chars is not None and (not isinstance(max_chars, int) or isinstance(max_chars, bool) or max_chars < 1):
        raise ConfigError(f"max_chars must be a positive integer or None, got {max_chars!r}")
    if not isinstance(context_words, int) or context_words < 0:
        raise ConfigError(f"context_words must be an integer >= 0, got {context_words!r}")
    corpus.setdefault("rate", 0.05)
    gen = planted_dependency_text(n_words=n_words, distances=distances, seed=seed, **corpus)
    words = gen.words
    deps = gen.dependencies
    spans = list(zip((deps["key_index"] - 1).tolist(), deps["response_index"].tolist()))  # marker .. response
    out = []
    for d in dict.fromkeys(int(x) for x in distances):
        chosen = None
        for ep in deps[deps["gap_words"] == d].itertuples():
            lo = max(0, ep.key_index - 1 - context_words)
            hi = min(len(words), ep.response_index + 2)
            if not any(a < hi and b >= lo for a, b in spans if a != ep.key_index - 1):  # no other episode inside
                chosen = (ep, lo, hi)
                break
        if chosen is None:
            continue
        ep, lo, hi = chosen
        window = words[lo:hi]
        while True:
            text = " " + " ".join(window)
            if max_chars is None or len(text) - 1 <= max_chars:
                break
            if lo < ep.key_index - 1:
                window, lo = window[1:], lo + 1
            elif hi > ep.response_index + 1:
                window, hi = window[:-1], hi - 1
            else:
                window = None
                break
        if window is None:
            continue
        offsets = [0]
        for w in window[:-1]:
            offsets.append(offsets[-1] + len(w) + 1)
        key_at = offsets[ep.key_index - lo] + 1
        resp_at = offsets[ep.response_index - lo]
        out.append({"label": f"gap {d} words: key '{ep.key}' ... response '{ep.response}', "
                             f"{resp_at - key_at} characters apart",
                    "text": text, "gap_words": d, "key": ep.key, "response": ep.response,
                    "distance_chars": resp_at - key_at, "key_at": key_at, "response_at": resp_at})
    return out
