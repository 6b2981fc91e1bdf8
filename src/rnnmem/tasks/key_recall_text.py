"""Synthetic text with planted key-recall dependencies and *no start marker* (ours), for checking
that the semantic memory profile (``rnnmem.probes.semantic``, indicator b) finds the distance
over which a trained unit holds a word.

Filler words follow the Zipf-Mandelbrot law of ``rnnmem.tasks.synthetic_text`` (its invented
vocabulary and probabilities are reused). Before each filler word an episode starts with
probability ``rate``::

    ... K f_1 ... f_D recall K ...

``K`` is one of ``n_keys`` key words that occur nowhere else, ``f_i`` filler words, ``recall``
the cue. The word after the cue can only be predicted from the key, ``distance_words = D + 2``
words back; at the cue the key lies at lag ``D + 1`` (lag 0 = the cue itself).

Optional topics (``topics > 0``; ours): the filler stream is cut into documents of geometric
length (mean ``doc_length``), each with one of ``topics`` topics; filler word rank r belongs to
topic ``r mod topics``, and each filler word is drawn, with probability ``topic_share``, from the
Zipf law restricted to its document's topic (otherwise from the global law). A unit that keeps
the gist of the last words then predicts better, which gives the semantic space structure and
the units a reason to hold more than the keys.

Why not ``synthetic_text.planted_dependency_text``: its episodes open with a start marker one
word before the key, so a unit that remembers "an episode started" puts weight on the marker at
lag D + 2 right next to the key's lag D + 1, and the peak of the profile cannot tell the two
apart. Here the key itself is the only sign of an episode.

Output: a :class:`~rnnmem.tasks.synthetic_text.SyntheticCorpus` (text8 ``str`` with a leading
space, a DataFrame of episodes, the config). Randomness: ``numpy.random.default_rng(seed)`` for
the words and episodes, ``[seed, 1]`` for the choice of keys, ``[seed, 2]`` for the topics.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from ..errors import ConfigError
from .synthetic_text import check_episode_options
from .synthetic_text import SyntheticCorpus, invented_vocabulary, zipf_probabilities


def key_recall_text(n_words: int = 100_000, vocab_size: int = 500, n_keys: int = 8, distances=(4, 8, 12),
                    rate: float = 0.03, seed: int = 0, cue: str = "recall", topics: int = 0,
                    topic_share: float = 0.5, doc_length: float = 100.0) -> SyntheticCorpus:
    """Generate the text (text8 format, leading space) and the table of episodes.

    ``dependencies`` columns: ``episode``, ``key``, ``key_index``, ``cue_index``,
    ``response_index`` (word positions in ``text.split()``), ``gap_words`` (D),
    ``distance_words`` (D + 2, key to response) and ``lag_at_cue`` (D + 1). Same seed -> same text.

    Parameters
    ----------
    n_words : int, default 100000
        Filler positions drawn (an episode of gap D consumes D of them; the text holds
        ``config["total_words"]`` words).
    vocab_size : int, default 500
        Invented filler words.
    n_keys : int, default 8
        Key words (>= 2), drawn from invented words ranked after the filler.
    distances : sequence of int, default (4, 8, 12)
        Gaps D, each episode's drawn uniformly.
    rate : float, default 0.03
        Probability, before each filler word, that an episode starts (in [0, 1)).
    seed : int, default 0
        Seeds ``numpy.random.default_rng`` (``[seed, 1]`` picks the keys, ``[seed, 2]`` the topics).
    cue : str, default "recall"
        The cue word (lower-case a-z).
    topics : int, default 0
        Number of topics (0: no topics).
    topic_share : float, default 0.5
        Probability a filler word is drawn from its document's topic, in [0, 1].
    doc_length : float, default 100.0
        Mean document length in words (>= 1).

    Returns
    -------
    SyntheticCorpus
        ``text``, ``dependencies`` and ``config`` (the options, the keys, the Zipf law, word and
        episode counts).

    Raises
    ------
    ConfigError
        On a bad option.
    """
    distances = check_episode_options(n_words, n_keys, distances, rate)
    if not (cue.isalpha() and cue.islower() and cue.isascii()):
        raise ConfigError(f"the cue must be a lower-case a-z word, got {cue!r}")
    if not isinstance(topics, int) or topics < 0 or (topics and topics > vocab_size):
        raise ConfigError(f"topics must be an integer in 0..vocab_size, got {topics!r}")
    if not 0 <= topic_share <= 1 or not doc_length >= 1:
        raise ConfigError("topic_share must lie in [0, 1] and doc_length be >= 1")
    rng = np.random.default_rng(seed)
    filler = invented_vocabulary(vocab_size, exclude={cue})
    pool = invented_vocabulary(vocab_size + 20 * n_keys, exclude={cue})[vocab_size:]
    keys = [pool[j] for j in np.random.default_rng([seed, 1]).choice(len(pool), size=n_keys, replace=False)]
    cum = np.cumsum(zipf_probabilities(vocab_size))
    cum[-1] = 1.0
    fill_ids = np.searchsorted(cum, rng.random(n_words), side="right")
    doc_topic = None
    if topics:
        trng = np.random.default_rng([seed, 2])
        p = zipf_probabilities(vocab_size)
        ranks = np.arange(vocab_size)
        new_doc = trng.random(n_words) < 1.0 / doc_length
        new_doc[0] = True
        doc_topic = trng.integers(0, topics, size=int(new_doc.sum()))[np.cumsum(new_doc) - 1]
        from_topic = trng.random(n_words) < topic_share
        u = trng.random(n_words)
        for t in range(topics):
            own = ranks[ranks % topics == t]
            tc = np.cumsum(p[own] / p[own].sum())
            tc[-1] = 1.0
            sel = from_topic & (doc_topic == t)
            fill_ids[sel] = own[np.searchsorted(tc, u[sel], side="right")]
    starts = rng.random(n_words) < rate
    gaps = rng.choice(np.asarray(distances), size=n_words)
    key_ids = rng.integers(0, n_keys, size=n_words)
    out: list[str] = []
    rows = []
    i = 0
    while i < n_words:
        if starts[i] and i + gaps[i] <= n_words:
            d, k = int(gaps[i]), keys[int(key_ids[i])]
            key_index = len(out)
            out.append(k)
            out.extend(filler[j] for j in fill_ids[i:i + d])
            out.append(cue)
            out.append(k)
            rows.append({"episode": len(rows), "key": k, "key_index": key_index, "cue_index": key_index + d + 1,
                         "response_index": key_index + d + 2, "gap_words": d, "distance_words": d + 2,
                         "lag_at_cue": d + 1})
            i += d
        else:
            out.append(filler[fill_ids[i]])
            i += 1
    deps = pd.DataFrame(rows, columns=["episode", "key", "key_index", "cue_index", "response_index", "gap_words",
                                       "distance_words", "lag_at_cue"])
    config = {"generator": "key_recall_text", "n_words": n_words, "vocab_size": vocab_size, "n_keys": n_keys,
              "distances": distances, "rate": rate, "seed": seed, "cue": cue, "keys": keys,
              "zipf": {"exponent": 1.0, "offset": 2.7}, "topics": topics, "topic_share": topic_share,
              "doc_length": doc_length, "total_words": len(out), "episodes": len(rows)}
    return SyntheticCorpus(text=" " + " ".join(out), dependencies=deps, config=config)
