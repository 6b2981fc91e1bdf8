"""Semantic memory of recurrent units: an interpretation of Zhang, Li, Hua & Song, "Assessing the
Memory Ability of Recurrent Neural Networks" (ECAI 2020).

What is the paper's: representing the meaning of a word sequence in a Semantic Euclidean Space,
indicators on that space that measure how much of the sequence a unit's hidden state holds, the
comparison of vanilla RNN, LSTM and GRU (internal factor) over sequence lengths (external factor),
and using the indicators to choose the training length. What is ours (the full text is not
available to us): every concrete definition below and in ``rnnmem.probes.semantic``; see
docs/semantic.md.

Pipeline (``run_study``):

1. corpus: a text8-format file, or the synthetic key-recall text (``tasks.key_recall_text``);
   split in order into train / fit / eval parts (80/10/10 by default);
2. space: skip-gram vectors trained on the train part (or a user word2vec file), normalised to
   unit length, shared by every unit;
3. for every unit and training length: a word-level LM on that space (``train.word_lm``, same
   budget for all), then on random windows of the fit part the readout (ridge, h_n -> running
   mean) and the lag decoders are fitted per prefix length n, and on windows of the eval part the
   indicators (a) hull score, (b) memory length and coverage, (c) recall, (d) retained area are
   computed for every n of the prefix grid;
4. (e) the recommended training length per unit from the thresholds;
5. synthetic corpus only: the planted-distance check (the memory profile at the cue minus the
   profile at ordinary positions must peak at the key's lag, and the unit must answer the key
   above chance: a trace the unit does not use fails);
6. steps 1-5 for every seed of ``cfg.seed_list``; then intervals over seeds, paired comparisons
   and rankings of the units, and the recommendation with its interval (``zhang_stats``).
   Coverage and the area ratio are computed but dropped from the ranking and the default
   recommendation (``DROPPED_INDICATORS``, measured by ``dropped_indicators``).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from scipy.stats import binomtest

from ..errors import ConfigError, InputError
from ..devices import resolve_device
from ..probes import semantic as S
from ..tasks import embeddings as E
from ..tasks.key_recall_text import key_recall_text
from ..train.word_lm import WordLM, WordLMConfig, evaluate_loss, random_windows, train_word_lm

STUDY = "zhang"
UNITS = ("rnn", "lstm", "gru")
LABELS = {"rnn": "vanilla RNN", "lstm": "LSTM", "gru": "GRU"}

Progress = Callable[[str, int, int], None]  # (stage, done, total)

#: Indicators the units are ranked on (summary: mean over n <= T at the longest T, per seed).
RANKED_INDICATORS = {"hull_score": "hull score (a)", "recall_score": "recall score (c)"}
#: Labels of every ranked measure: the indicators and, on the synthetic corpus, the planted check's
#: key accuracy above chance (mean over gaps of response - chance accuracy at the longest T, per seed).
RANKED_LABELS = {**RANKED_INDICATORS, "planted_accuracy": "key accuracy above chance (planted check)"}
#: Indicators still computed (curves.csv) but dropped from the ranking, the default and strict
#: recommendation and the report's headline tables, with the reason (docs/semantic.md, "Dropped
#: indicators"); ``dropped_indicators`` measures the evidence on every run.
DROPPED_INDICATORS = {
    "coverage": "the running-mean readout fills what a state forgot with its expected value, which the hull "
                "reaches with near-uniform weights, so L_q stays near q n for every unit: coverage stays near 1, "
                "its unit differences are a few hundredths, and it does not bind at its former threshold",
    "area_ratio": "the recalled words are mostly the last two or three, whose hull has no area, and a 2-D PCA "
                  "plane keeps only part of the space's variance: the ratio stays near 0 for every unit, far "
                  "below its former threshold, and its unit differences are a few hundredths",
}


@dataclass
class SyntheticSettings:
    """The synthetic key-recall corpus (``tasks.key_recall_text``)."""

    n_words: int = 400_000
    vocab_size: int = 2_000
    n_keys: int = 10
    distances: tuple[int, ...] = (5, 10, 20, 40)
    rate: float = 0.02
    topics: int = 10
    topic_share: float = 0.5
    doc_length: float = 200.0


@dataclass
class ZhangConfig:
    """Every setting of the study (recorded in config.json). Lengths are in words."""

    units: tuple[str, ...] = UNITS
    train_lengths: tuple[int, ...] = (25, 50, 100, 150, 200)
    prefix_lengths: tuple[int, ...] = (5, 10, 25, 50, 75, 100, 150, 200)
    hidden: int = 128
    embedding_dim: int = 200
    vocab_size: int = 10_000
    max_words: int | None = None
    split: tuple[float, float, float] = (0.8, 0.1, 0.1)
    sg_window: int = 5
    sg_negatives: int = 5
    sg_epochs: int = 1
    sg_lr: float = 0.01
    sg_batch: int = 4096
    sg_subsample: float = 1e-4
    budget_tokens: int = 2_000_000
    tokens_per_batch: int = 4000
    lr: float = 3e-3
    clip: float = 1.0
    windows_fit: int = 2048
    windows_eval: int = 512
    q: float = 0.5
    thresholds: dict = field(default_factory=lambda: dict(S.DEFAULT_THRESHOLDS))
    eps: float = 1e-6
    tol: float | None = None
    max_iter: int = 20_000
    model_dtype: str = "float32"
    probe_dtype: str = "float64"
    convention: str = "torch"
    seed: int = 0
    seeds: int = 5
    level: float = 0.95
    synthetic: SyntheticSettings = field(default_factory=SyntheticSettings)
    planted_prefix: int | None = None
    planted_alpha: float = 0.01

    def validate(self) -> "ZhangConfig":
        """Check every field once, before anything runs; returns self.

        Returns
        -------
        ZhangConfig
            ``self``, unchanged.

        Raises
        ------
        ConfigError
            For an unknown unit, empty or non-positive length lists, a prefix length below 2, ``q``
            outside (0, 1], a ``split`` that is not three positive fractions summing to 1, an unknown or
            empty threshold set, a non-positive size, ``seeds < 1``, ``level`` or ``planted_alpha``
            outside (0, 1), or ``windows_fit < 8``.
        """
        from ..cells import check_unit_names

        check_unit_names(self.units)
        for name in ("train_lengths", "prefix_lengths"):
            v = getattr(self, name)
            if not v or any((not isinstance(x, int)) or x < 1 for x in v):
                raise ConfigError(f"{name} must be a non-empty list of positive integers, got {v!r}")
        if min(self.prefix_lengths) < 2:
            raise ConfigError("prefix lengths must be >= 2 (a hull of one word says nothing)")
        if not 0 < self.q <= 1:
            raise ConfigError(f"q must lie in (0, 1], got {self.q}")
        if len(self.split) != 3 or min(self.split) <= 0 or abs(sum(self.split) - 1) > 1e-9:
            raise ConfigError(f"split must be three positive fractions summing to 1, got {self.split!r}")
        unknown = set(self.thresholds) - set(S.INDICATOR_NAMES)
        if unknown:
            raise ConfigError(f"unknown thresholds {sorted(unknown)}; choose from {', '.join(S.INDICATOR_NAMES)}")
        if not self.thresholds:
            raise ConfigError("give at least one threshold")
        for name in ("hidden", "embedding_dim", "windows_fit", "windows_eval"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1")
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 1:
            raise ConfigError(f"seeds must be a positive integer (seeds {self.seed}..{self.seed}+seeds-1 are run), "
                              f"got {self.seeds!r}")
        if not 0 < self.level < 1:
            raise ConfigError(f"level (interval coverage) must lie in (0, 1), got {self.level}")
        if not 0 < self.planted_alpha < 1:
            raise ConfigError(f"planted_alpha must lie in (0, 1), got {self.planted_alpha}")
        if self.windows_fit < 8:
            raise ConfigError("windows_fit must be >= 8 (the readout is a regression over these windows)")
        return self

    @property
    def grid(self) -> list[int]:
        """Prefix lengths evaluated: the prefix grid plus every training length (so the
        recommendation can test each training length itself).

        Returns
        -------
        list of int
            Sorted, without duplicates.
        """
        return sorted(set(self.prefix_lengths) | set(self.train_lengths))

    @property
    def seed_list(self) -> list[int]:
        """The seeds run: ``seed, seed + 1, ..., seed + seeds - 1``.

        Returns
        -------
        list of int
        """
        return [self.seed + i for i in range(self.seeds)]

    @property
    def max_prefix(self) -> int:
        """The longest prefix evaluated (words).

        Returns
        -------
        int
            ``max(grid)``.
        """
        return max(self.grid)

    def as_dict(self) -> dict:
        """The configuration as a plain dict (what config.json records).

        Returns
        -------
        dict
            Every field (``dataclasses.asdict``, the synthetic settings nested) plus ``grid`` and
            ``seed_list``.
        """
        d = asdict(self)
        d["grid"] = self.grid
        d["seed_list"] = self.seed_list
        return d


def quick_config(**overrides) -> ZhangConfig:
    """CPU-minutes preset: small synthetic corpus, short lengths, small units, 3 seeds.

    Training lengths 10, 20, 40; prefix lengths 5..40; 64 units; a 40-dimensional space; a
    100,000-word synthetic corpus of 300 words with 6 keys at gaps 3, 6, 10; split 70/10/20.

    Parameters
    ----------
    **overrides
        Fields of :class:`ZhangConfig` replacing the preset's values.

    Returns
    -------
    ZhangConfig
        The preset (not yet validated; ``run_study`` validates it).
    """
    base = ZhangConfig(seeds=3, train_lengths=(10, 20, 40), prefix_lengths=(5, 10, 20, 30, 40), hidden=64,
                       embedding_dim=40, sg_window=3, sg_epochs=3, sg_batch=1024, sg_lr=0.01, sg_subsample=1e-3,
                       budget_tokens=1_200_000, tokens_per_batch=800, lr=1e-2, windows_fit=1024, windows_eval=256,
                       split=(0.7, 0.1, 0.2),
                       synthetic=SyntheticSettings(n_words=100_000, vocab_size=300, n_keys=6, distances=(3, 6, 10),
                                                   rate=0.06, topics=6, topic_share=0.5, doc_length=80.0))
    return replace(base, **overrides)


# ============================================================================================
# data and space
# ============================================================================================
@dataclass
class StudyData:
    """The corpus as ids (``vocabulary[0] = <unknown>``), its parts, the episodes (synthetic)."""

    ids: np.ndarray
    vocabulary: list[str]
    parts: dict[str, tuple[int, int]]
    dependencies: pd.DataFrame | None
    source: str
    config: dict

    def part(self, name: str) -> np.ndarray:
        """The word ids of one part of the corpus.

        Parameters
        ----------
        name : str
            ``"train"``, ``"fit"`` or ``"eval"``.

        Returns
        -------
        numpy.ndarray
            A view of ``ids`` over that part's [start, end) range.
        """
        a, b = self.parts[name]
        return self.ids[a:b]


def _split(n: int, fractions) -> dict[str, tuple[int, int]]:
    a = int(n * fractions[0])
    b = a + int(n * fractions[1])
    return {"train": (0, a), "fit": (a, b), "eval": (b, n)}


def load_data(cfg: ZhangConfig, corpus=None) -> StudyData:
    """The synthetic key-recall corpus (``corpus=None``) or a text8-format file.

    The corpus is split in order into train / fit / eval parts by ``cfg.split``.

    Parameters
    ----------
    cfg : ZhangConfig
        The synthetic settings (with ``cfg.seed``), or ``vocab_size`` and ``max_words`` for a file.
    corpus : str or Path or None, default None
        A text8-format file; None: the synthetic key-recall text (``tasks.key_recall_text``).

    Returns
    -------
    StudyData
        Ids, vocabulary (``<unknown>`` first), parts, the planted episodes (synthetic only, else
        None), the source and its config.

    Raises
    ------
    InputError
        If a part is shorter than the longest prefix + 1 words (or the file cannot be read).
    """
    if corpus is None:
        s = cfg.synthetic
        syn = key_recall_text(n_words=s.n_words, vocab_size=s.vocab_size, n_keys=s.n_keys, distances=s.distances,
                              rate=s.rate, seed=cfg.seed, topics=s.topics, topic_share=s.topic_share,
                              doc_length=s.doc_length)
        c = E.corpus_from_words(syn.words, source="synthetic key-recall text")
        deps, source, conf = syn.dependencies, "synthetic", syn.config
    else:
        c = E.read_corpus(corpus, vocab_size=cfg.vocab_size, max_words=cfg.max_words)
        deps, source, conf = None, str(corpus), {"path": str(corpus), "vocab_size": cfg.vocab_size,
                                                  "max_words": cfg.max_words}
    parts = _split(len(c.ids), cfg.split)
    need = cfg.max_prefix + 1
    for name, (a, b) in parts.items():
        if b - a < need:
            raise InputError(f"the corpus ({len(c.ids)} words) is too short: its {name} part has {b - a} words, "
                             f"fewer than the longest prefix ({cfg.max_prefix}) + 1; use a longer corpus or shorter lengths")
    conf = {**conf, "words": int(len(c.ids)), "vocabulary": len(c.vocabulary),
            "parts": {k: list(v) for k, v in parts.items()}}
    return StudyData(c.ids, c.vocabulary, parts, deps, source, conf)


def build_space(cfg: ZhangConfig, data: StudyData, embedding=None, device=None,
                progress: Progress | None = None) -> tuple[StudyData, E.Embedding]:
    """The shared space: skip-gram on the train part, or the user's word2vec file restricted to
    the corpus's words (a word missing from it needs a ``<unknown>`` entry). Vectors are centred
    (the mean vector subtracted) and normalised to unit length. Returns the data re-indexed to the space's vocabulary.

    Parameters
    ----------
    cfg : ZhangConfig
        The skip-gram settings (``embedding_dim``, ``sg_*``, ``seed``).
    data : StudyData
        The corpus (:func:`load_data`).
    embedding : str or Path or Embedding or None, default None
        A word2vec text file or an ``Embedding`` to use instead of training skip-gram.
    device : torch device or str, optional
        Where skip-gram trains.
    progress : callable or None
        ``progress(stage, done, total)``.

    Returns
    -------
    tuple of (StudyData, Embedding)
        The data (unchanged for skip-gram, re-indexed to the restricted vocabulary for a user
        embedding) and the centred, unit-length space ``[V, d]``.

    Raises
    ------
    InputError
        If the corpus reads words as ``<unknown>`` and the user embedding has no such entry, or a
        corpus word is missing from it.
    """
    if embedding is None:
        sg = E.SkipGramConfig(dim=cfg.embedding_dim, window=cfg.sg_window, negatives=cfg.sg_negatives,
                              epochs=cfg.sg_epochs, lr=cfg.sg_lr, batch_size=cfg.sg_batch,
                              subsample=cfg.sg_subsample, seed=cfg.seed)
        train = E.Corpus(data.part("train"), data.vocabulary, data.source)
        cb = (lambda done, total: progress("space (skip-gram)", done, total)) if progress else None
        emb = E.train_skipgram(train, sg, device=device, progress=cb)
        return data, emb.centered().normalized()
    user = embedding if isinstance(embedding, E.Embedding) else E.read_word2vec(embedding)
    used = np.flatnonzero(np.bincount(data.ids, minlength=len(data.vocabulary)) > 0)
    words = [data.vocabulary[i] for i in used]
    if E.UNKNOWN in words and user.unknown_id is None:
        raise InputError(f"the corpus has words outside its {len(data.vocabulary) - 1}-word vocabulary (read as "
                         f"{E.UNKNOWN!r}) and the embedding has no {E.UNKNOWN!r} entry; add one, or raise --vocab-size")
    rows = user.encode([w for w in words], what="the corpus")
    keep = np.unique(rows)
    sub = E.Embedding([user.words[r] for r in keep], user.vectors[keep], {**user.config, "restricted_to_corpus": True})
    pos = {r: i for i, r in enumerate(keep)}
    old_to_new = np.zeros(len(data.vocabulary), dtype=np.int64)
    old_to_new[used] = [pos[r] for r in rows]
    new = StudyData(old_to_new[data.ids], sub.words, data.parts, data.dependencies, data.source,
                    {**data.config, "embedding": str(embedding)})
    return new, sub.centered().normalized()


# ============================================================================================
# indicators of one trained model
# ============================================================================================
@dataclass
class Windows:
    ids: np.ndarray  # [W, n]
    states: torch.Tensor  # [W, n, H] (probe dtype, probe device)


def _windows(model: WordLM, ids: np.ndarray, length: int, count: int, seed, dtype, device) -> Windows:
    w = random_windows(ids, length, count, np.random.default_rng(seed))
    return Windows(w, model.states(w).to(device=device, dtype=dtype))


def indicators_at(n: int, fit: Windows, ev: Windows, vectors: torch.Tensor, plane, cfg: ZhangConfig,
                  device) -> dict:
    """All indicators at prefix length ``n``: a curve row, the mean profile by lag (unit and
    memoryless baseline), and recall by lag.

    The readout ``z = W^T h_n + b`` (ridge to the running mean) and the lag decoders are fitted on the
    fit windows; on the eval windows (ours, an interpretation of Zhang, Li, Hua & Song, ECAI 2020;
    definitions in ``probes.semantic``):

    - (a) ``hull_score = 1 - mean_b dist(z_b, conv X_b) / mean_b dist(b, conv X_b)`` (b the
      readout's intercept, a state that holds nothing; NaN when the baseline lies on the hull);
    - (b) ``memory_length`` ``L_q = min{L : sum_{k<L} lam_k >= q}`` of the closest hull point's
      barycentric weights, ``coverage = L_q / ceil(q n)``;
    - (c) ``recall_score = (R - C) / (1 - C)``, R the mean recall over lags, C the mean chance recall;
    - (d) ``area_ratio``: area of the hull of the still-recalled words over that of all words, in
      the PCA ``plane``.

    Parameters
    ----------
    n : int
        The prefix length (words), at most the windows' length.
    fit, ev : Windows
        Fit and eval windows: ``ids[W, n_max]`` and ``states[W, n_max, H]`` (probe dtype and device).
    vectors : torch.Tensor
        The space ``[V, d]`` (probe dtype).
    plane : tuple of numpy.ndarray
        ``(mean[d], components[2, d])`` from ``probes.semantic.pca_plane``.
    cfg : ZhangConfig
        ``q`` and the QP solver options (``eps``, ``tol``, ``max_iter``).
    device : torch device
        Where the probes compute.

    Returns
    -------
    dict
        ``row`` (dict: ``n``, ``readout_r2``, ``hull_distance``, ``baseline_distance``, ``hull_score``,
        ``memory_length``, ``memory_length_median``, ``ideal_length``, ``coverage``, ``recall``,
        ``chance``, ``recall_score``, ``area_ratio``, ``area_few_retained``, ``qp_iterations``,
        ``qp_max_gap``, ``qp_converged``), ``profile`` (DataFrame per lag: ``n``, ``lag``, ``weight``,
        ``relative_weight`` = n weight, ``baseline_weight``) and ``recall`` (``recall_at_lag``'s frame
        with ``n``).
    """
    dt = vectors.dtype
    Vf = vectors[torch.as_tensor(fit.ids[:, :n], device=vectors.device)]
    Ve = vectors[torch.as_tensor(ev.ids[:, :n], device=vectors.device)]
    Hf, He = fit.states[:, n - 1], ev.states[:, n - 1]
    ro = S.fit_mean_readout(Hf, Vf, device=device, dtype=dt)
    z = ro(He)
    z0 = ro.intercept.expand_as(z)
    solver = {"eps": cfg.eps, "tol": cfg.tol, "max_iter": cfg.max_iter, "dtype": dt, "device": device}
    f = S.simplex_qp(Ve, z, **solver)
    f0 = S.simplex_qp(Ve, z0, **solver)
    dist = S.hull_distance(Ve, z, fit=f, baseline_fit=f0)
    prof = S.memory_profile(fit=f)
    prof0 = S.memory_profile(fit=f0)
    ml = S.memory_length(prof, q=cfg.q)
    dec = S.fit_lag_decoders(Hf, Vf, device=device, dtype=dt)
    decoded = dec(He).reshape(len(He), n, -1)
    targets = np.ascontiguousarray(ev.ids[:, :n][:, ::-1])
    center = dec.intercept.reshape(n, -1)  # per lag: what the decoder says when the state is uninformative
    hits = S.recall_hits(decoded, targets, vectors, center=center, device=device).cpu().numpy()
    rec = S.recall_at_lag(decoded, targets, vectors, hits=hits)
    area = S.retained_area(Ve.cpu().numpy(), hits[:, ::-1], plane=plane)
    R, C = rec["recall"].mean(), rec["chance"].mean()
    d_mean, d0_mean = dist["distance"].mean(), dist["baseline_distance"].mean()
    row = {
        "n": n, "readout_r2": float(ro.r2.item()), "hull_distance": d_mean, "baseline_distance": d0_mean,
        "hull_score": 1 - d_mean / d0_mean if d0_mean > S._on_hull_tol(f) else np.nan,
        "memory_length": ml["memory_length"].mean(), "memory_length_median": ml["memory_length"].median(),
        "ideal_length": int(ml["ideal_length"].iloc[0]), "coverage": ml["coverage"].mean(),
        "recall": R, "chance": C, "recall_score": (R - C) / (1 - C) if C < 1 else np.nan,
        "area_ratio": area["area_ratio"].mean(), "area_few_retained": float((area["retained_words"] < 3).mean()),
        "qp_iterations": f.iterations, "qp_max_gap": float(f.gap.max()),
        "qp_converged": f.converged and f0.converged,
    }
    mean_w = prof.groupby("lag")["weight"].mean()
    mean_w0 = prof0.groupby("lag")["weight"].mean()
    profile = pd.DataFrame({"n": n, "lag": mean_w.index, "weight": mean_w.to_numpy(),
                            "relative_weight": n * mean_w.to_numpy(), "baseline_weight": mean_w0.to_numpy()})
    rec.insert(0, "n", n)
    return {"row": row, "profile": profile, "recall": rec}


def planted_check(model: WordLM, data: StudyData, fit: Windows, vectors: torch.Tensor, cfg: ZhangConfig,
                  device, n_c: int) -> pd.DataFrame:
    """Is the planted distance recovered by the memory profile (indicator b)?

    Prefixes of ``n_c`` words ending at each cue of the eval part ("cue windows") and at random
    ordinary positions outside any episode ("control windows") are mapped by the readout fitted
    for length ``n_c``; the excess profile ``mean lam_k(cue) - mean lam_k(control)`` is computed per
    planted gap D. Recovered: its maximum over lags k >= 1 (lag 0 is the cue word itself) lies at
    the key's lag ``D + 1`` and exceeds 3 standard errors (``peak_at_key``).

    That alone does not show that the unit learned the dependency: a rare, distinct input leaves a
    trace in any state, and an untrained unit's profile can peak at the key too. The check
    therefore also asks whether the unit *uses* the key: ``response_accuracy`` is the LM's top-1
    accuracy on the word after the cue, ``chance_accuracy`` the accuracy of the best constant guess
    on the same episodes (the largest share of one key among them: no memoryless predictor does
    better), and ``accuracy_p`` the one-sided exact binomial test (``scipy.stats.binomtest``) of
    ``response_accuracy > chance_accuracy``. ``learned = accuracy_p < cfg.planted_alpha``, and the
    check passes (``recovered``) only when ``learned`` and ``peak_at_key`` both hold.

    Parameters
    ----------
    model : WordLM
        The trained word LM (``states`` and ``head``).
    data : StudyData
        The synthetic corpus with its ``dependencies`` (episodes).
    fit : Windows
        The fit windows (the readout for ``n_c`` is fitted on them).
    vectors : torch.Tensor
        The space ``[V, d]`` (probe dtype).
    cfg : ZhangConfig
        ``seed`` (control positions), ``planted_alpha`` and the QP solver options.
    device : torch device
        Where the probes compute.
    n_c : int
        The prefix length of the cue and control windows (longer than the largest planted lag).

    Returns
    -------
    pandas.DataFrame
        One row per gap: ``gap_words``, ``planted_distance``, ``planted_lag``, ``recovered_lag``,
        ``recovered_distance``, ``z``, ``excess_at_planted``, ``episodes``, ``controls``,
        ``response_accuracy``, ``chance_accuracy``, ``accuracy_p``, ``learned``, ``peak_at_key``,
        ``recovered`` and ``excess`` (the excess profile by lag, JSON text).

    Raises
    ------
    InputError
        If the eval part holds no complete episode.
    """
    deps = data.dependencies
    a, b = data.parts["eval"]
    dt = vectors.dtype
    ep = deps[(deps["cue_index"] >= a + n_c - 1) & (deps["response_index"] < b)]
    if ep.empty:
        raise InputError("the eval part holds no complete episode: use a longer synthetic corpus")
    busy = np.zeros(b - a, bool)
    for k, r in zip(deps["key_index"], deps["response_index"]):
        lo, hi = max(k, a), min(r, b - 1)
        if lo <= hi:
            busy[lo - a:hi - a + 1] = True
    cand = np.flatnonzero(~busy) + a
    cand = cand[cand >= a + n_c - 1]
    rng = np.random.default_rng([cfg.seed, 7])
    ctrl = rng.choice(cand, size=min(len(cand), max(len(ep), 200)), replace=False)
    Vf = vectors[torch.as_tensor(fit.ids[:, :n_c], device=vectors.device)]
    ro = S.fit_mean_readout(fit.states[:, n_c - 1], Vf, device=device, dtype=dt)
    solver = {"eps": cfg.eps, "tol": cfg.tol, "max_iter": cfg.max_iter, "dtype": dt, "device": device}

    def profiles(ends):
        w = data.ids[np.asarray(ends)[:, None] - n_c + 1 + np.arange(n_c)[None, :]]
        st = model.states(w)
        z = ro(st[:, -1].to(device=device, dtype=dt))
        f = S.simplex_qp(vectors[torch.as_tensor(w, device=vectors.device)], z, **solver)
        return f.weights.flip(-1).cpu().numpy(), st  # lag-major

    wc, _ = profiles(ctrl)
    rows = []
    for D, g in ep.groupby("gap_words"):
        wk, st = profiles(g["cue_index"].to_numpy())
        logits = model.head(st[:, -1].to(model.vectors.dtype))
        resp = torch.as_tensor(data.ids[g["response_index"].to_numpy()], device=logits.device)
        correct = int((logits.argmax(-1) == resp).sum())
        acc = correct / len(g)
        chance = float(np.bincount(data.ids[g["response_index"].to_numpy()]).max() / len(g))
        p_acc = float(binomtest(correct, len(g), chance, alternative="greater").pvalue) if chance < 1 else 1.0
        learned = p_acc < cfg.planted_alpha
        excess = wk.mean(0) - wc.mean(0)
        se = np.sqrt(wk.var(0, ddof=1) / len(wk) + wc.var(0, ddof=1) / len(wc))
        k = 1 + int(np.argmax(excess[1:]))
        zscore = excess[k] / se[k] if se[k] > 0 else np.inf
        planted = int(g["lag_at_cue"].iloc[0])
        rows.append({"gap_words": int(D), "planted_distance": planted + 1, "planted_lag": planted,
                     "recovered_lag": k, "recovered_distance": k + 1, "z": float(zscore),
                     "excess_at_planted": float(excess[planted]), "episodes": len(g), "controls": len(wc),
                     "response_accuracy": acc, "chance_accuracy": chance, "accuracy_p": p_acc,
                     "learned": bool(learned), "peak_at_key": bool(k == planted and zscore >= 3),
                     "recovered": bool(learned and k == planted and zscore >= 3),
                     "excess": json.dumps([round(float(x), 6) for x in excess])})
    return pd.DataFrame(rows)


# ============================================================================================
# the study
# ============================================================================================
@dataclass
class StudyResult:
    """Everything ``run_study`` measured. Per-seed tables carry a ``seed`` column; ``space``,
    ``data`` and ``pca_example`` are those of the first seed; ``intervals`` holds the seed means
    and t intervals of every indicator, ``recommended`` the recommendation with its interval over
    seeds (``zhang_stats.recommendation_interval``), ``ranking`` the paired comparisons."""

    config: dict
    curves: pd.DataFrame
    profiles: pd.DataFrame
    recall: pd.DataFrame
    recommended: pd.DataFrame
    recommended_strict: pd.DataFrame
    planted: pd.DataFrame | None
    training: pd.DataFrame
    runs: pd.DataFrame
    space: E.Embedding
    data: StudyData
    wall_s: float = 0.0
    pca_example: dict = field(default_factory=dict)
    intervals: pd.DataFrame | None = None
    summaries: dict = field(default_factory=dict)
    comparisons: dict = field(default_factory=dict)
    rankings: dict = field(default_factory=dict)
    dropped: pd.DataFrame | None = None


def _run_seed(cfg: ZhangConfig, corpus, embedding, dev, pdt, progress: Progress | None, counter: list) -> dict:
    """One seed of the study (``cfg.seed``): corpus, space, every unit x training length."""
    data = load_data(cfg, corpus)
    data, space = build_space(cfg, data, embedding, device=dev, progress=progress)
    vectors = space.tensor(device=dev, dtype=pdt)
    plane = S.pca_plane(space.vectors)
    sv = np.linalg.svd(space.vectors - space.vectors.mean(0), compute_uv=False) ** 2
    plane_variance = float(sv[:2].sum() / sv.sum()) if sv.sum() > 0 else float("nan")
    grid = [n for n in cfg.grid]
    n_c = None
    if data.dependencies is not None:
        n_c = cfg.planted_prefix or (int(data.dependencies["lag_at_cue"].max()) + 6)
        if n_c > cfg.max_prefix:
            raise ConfigError(f"the planted check needs prefixes of {n_c} words, longer than the longest prefix "
                              f"{cfg.max_prefix}; add a longer prefix length")
    curves, profiles, recalls, planted, logs, runs = [], [], [], [], [], []
    example = {}
    for unit in cfg.units:
        for T in cfg.train_lengths:
            lm_cfg = WordLMConfig(cell=unit, hidden=cfg.hidden, train_length=T, budget_tokens=cfg.budget_tokens,
                                  tokens_per_batch=max(cfg.tokens_per_batch, T), lr=cfg.lr, clip=cfg.clip,
                                  seed=cfg.seed, convention=cfg.convention, dtype=cfg.model_dtype)
            tag = f"seed {cfg.seed} {unit} T={T}"
            cb = (lambda s, tot, _l: progress(f"train {tag}", s, tot)) if progress else None
            t1 = time.perf_counter()
            model, log = train_word_lm(data.part("train"), space.vectors, lm_cfg, device=dev,
                                       ignore_id=space.unknown_id, progress=cb)
            train_s = time.perf_counter() - t1
            model.eval()
            log.insert(0, "train_length", T)
            log.insert(0, "unit", unit)
            logs.append(log)
            fit = _windows(model, data.part("fit"), cfg.max_prefix, cfg.windows_fit, [cfg.seed, 1], pdt, dev)
            ev = _windows(model, data.part("eval"), cfg.max_prefix, cfg.windows_eval, [cfg.seed, 2], pdt, dev)
            t2 = time.perf_counter()
            for i, n in enumerate(grid):
                res = indicators_at(n, fit, ev, vectors, plane, cfg, dev)
                curves.append({"unit": unit, "train_length": T, **res["row"]})
                for key, store in (("profile", profiles), ("recall", recalls)):
                    df = res[key]
                    df.insert(0, "train_length", T)
                    df.insert(0, "unit", unit)
                    store.append(df)
                if progress:
                    progress(f"indicators {tag}", i + 1, len(grid))
            if n_c is not None:
                pc = planted_check(model, data, fit, vectors, cfg, dev, n_c)
                pc.insert(0, "train_length", T)
                pc.insert(0, "unit", unit)
                planted.append(pc)
            if T == max(cfg.train_lengths):
                example[unit] = _pca_example(fit, ev, vectors, cfg, dev)
            runs.append({"unit": unit, "train_length": T, "steps": lm_cfg.steps, "batch": lm_cfg.batch,
                         "tokens": lm_cfg.steps * lm_cfg.batch * T, "final_train_loss": float(log["loss"].iloc[-1]),
                         "eval_loss": evaluate_loss(model, data.part("eval"), T, windows=min(256, cfg.windows_eval),
                                                    seed=cfg.seed, ignore_id=space.unknown_id),
                         "parameters": model.describe()["parameters"], "train_s": train_s,
                         "indicators_s": time.perf_counter() - t2})
            counter[0] += 1
            if progress:
                progress("runs", counter[0], counter[1])

    def cat(frames):
        df = pd.concat(frames, ignore_index=True) if frames else None
        if df is not None:
            df.insert(0, "seed", cfg.seed)
        return df

    return {"curves": cat([pd.DataFrame(curves)]), "profiles": cat(profiles), "recall": cat(recalls),
            "planted": cat(planted), "training": cat(logs), "runs": cat([pd.DataFrame(runs)]), "data": data,
            "space": space, "example": example, "n_c": n_c, "plane_variance": plane_variance}


def run_study(cfg: ZhangConfig, corpus=None, embedding=None, device=None,
              progress: Progress | None = None) -> StudyResult:
    """Run the whole study (see the module docstring) for every seed of ``cfg.seed_list`` and
    summarise over seeds (``zhang_stats``); no files are written.

    Parameters
    ----------
    cfg: the settings (validated here).
    corpus: a text8-format file, or None for the synthetic key-recall corpus.
    embedding: a word2vec text file or ``Embedding`` to use as the space (None: skip-gram per seed).
    device: where models and indicators compute.
    progress: ``progress(stage, done, total)`` callback.

    Returns
    -------
    A ``StudyResult``.

    Raises
    ------
    ConfigError
        For invalid settings (:meth:`ZhangConfig.validate`), or a planted check needing prefixes
        longer than the longest prefix length.
    InputError
        For a corpus too short for the prefixes, or an unusable embedding.
    """
    from . import zhang_stats as ZS

    cfg.validate()
    t0 = time.perf_counter()
    dev = resolve_device(device)
    pdt = torch.float64 if cfg.probe_dtype == "float64" else torch.float32
    counter = [0, cfg.seeds * len(cfg.units) * len(cfg.train_lengths)]
    per_seed = [_run_seed(replace(cfg, seed=s), corpus, embedding, dev, pdt, progress, counter)
                for s in cfg.seed_list]
    first = per_seed[0]

    def cat(key):
        frames = [r[key] for r in per_seed if r[key] is not None]
        return pd.concat(frames, ignore_index=True) if frames else None

    curves_df = cat("curves")
    kept = list(RANKED_INDICATORS)
    intervals = ZS.indicator_intervals(curves_df, [c for c in S.INDICATOR_NAMES + ("readout_r2",)
                                                   if c in curves_df.columns], cfg.level)
    rec = ZS.recommendation_interval(curves_df, cfg.thresholds, cfg.level)
    strict = ZS.recommendation_interval(curves_df, {**S.STRICT_THRESHOLDS, **cfg.thresholds}, cfg.level)
    summaries, comparisons, rankings = {}, {}, {}
    for ind in kept:
        summ = ZS.unit_summary(curves_df, ind)
        comp = ZS.compare_units(summ, cfg.level)
        summaries[ind], comparisons[ind] = summ, comp
        rankings[ind] = ZS.ranking_statement(summ, comp, RANKED_INDICATORS[ind], cfg.level, names=LABELS)
    planted_df = cat("planted")
    if planted_df is not None:
        summ = planted_accuracy_summary(planted_df)
        comp = ZS.compare_units(summ, cfg.level)
        summaries["planted_accuracy"], comparisons["planted_accuracy"] = summ, comp
        rankings["planted_accuracy"] = ZS.ranking_statement(summ, comp, RANKED_LABELS["planted_accuracy"],
                                                            cfg.level, names=LABELS)
    n_c = first["n_c"]
    conf = {"study": STUDY, **cfg.as_dict(), "device": str(dev), "corpus": first["data"].config,
            "space": first["space"].config, "planted_prefix": n_c,
            "pca_plane_variance": [r["plane_variance"] for r in per_seed],
            "readout": "ridge h_n -> running mean, per prefix length, GCV penalty",
            "solver": {"method": "FISTA with restart, simplex projection (Duchi et al. 2008)", "eps": cfg.eps,
                       "tol": cfg.tol if cfg.tol is not None else S.DEFAULT_TOL[pdt], "dtype": cfg.probe_dtype,
                       "max_iter": cfg.max_iter},
            "torch": torch.__version__}
    return StudyResult(config=conf, curves=curves_df, profiles=cat("profiles"), recall=cat("recall"),
                       recommended=rec, recommended_strict=strict, planted=planted_df,
                       training=cat("training"), runs=cat("runs"), space=first["space"], data=first["data"],
                       wall_s=time.perf_counter() - t0, pca_example=first["example"], intervals=intervals,
                       summaries=summaries, comparisons=comparisons, rankings=rankings,
                       dropped=dropped_indicators(curves_df))


def planted_accuracy_summary(planted: pd.DataFrame, train_length: int | None = None) -> pd.DataFrame:
    """One number per (unit, seed) from the planted check: the mean over gaps of
    ``response_accuracy - chance_accuracy`` of the units trained on ``train_length`` (default the
    longest): how much better than the best constant guess the unit answers the planted key.

    Parameters
    ----------
    planted : pandas.DataFrame
        The per-seed planted checks (:func:`planted_check` rows with ``unit``, ``seed`` and
        ``train_length``).
    train_length : int or None, default None
        The training length T (None: the largest).

    Returns
    -------
    pandas.DataFrame
        Columns ``unit``, ``seed``, ``value`` (as ``zhang_stats.unit_summary``); ``attrs`` records
        ``indicator = "planted_accuracy"`` and ``train_length``.
    """
    T = int(planted["train_length"].max()) if train_length is None else int(train_length)
    g = planted[planted["train_length"] == T].assign(
        value=lambda d: d["response_accuracy"] - d["chance_accuracy"])
    out = g.groupby(["unit", "seed"], sort=False)["value"].mean().reset_index()
    out.attrs.update(indicator="planted_accuracy", train_length=T)
    return out


def dropped_indicators(curves: pd.DataFrame, level: float = 0.95) -> pd.DataFrame:
    """The evidence for dropping ``DROPPED_INDICATORS``, measured on this run.

    Parameters
    ----------
    curves: the per-seed curves (``run_study``).
    level: interval coverage of the unit comparison.

    Returns
    -------
    One row per dropped indicator: ``low`` / ``high`` (range over every seed, unit, training and
    prefix length), ``unit_spread`` (largest minus smallest unit mean at the longest training
    length, over n <= T and seeds), ``below_default`` (share of rows below the indicator's former
    default threshold, ``semantic.FORMER_THRESHOLDS``), ``separated_pairs`` (unit pairs whose paired
    t interval excludes 0, of ``pairs``), for ``area_ratio`` the share of prefixes whose recalled
    words are fewer than 3 (hull of no area) and the ``reason``.
    """
    from . import zhang_stats as ZS

    rows = []
    for ind, reason in DROPPED_INDICATORS.items():
        if ind not in curves.columns:
            continue
        summ = ZS.unit_summary(curves, ind)
        comp = ZS.compare_units(summ, level)
        means = summ.groupby("unit")["value"].mean()
        th = S.FORMER_THRESHOLDS.get(ind)
        row = {"indicator": ind, "low": float(curves[ind].min()), "high": float(curves[ind].max()),
               "unit_spread": float(means.max() - means.min()),
               "below_default": float((curves[ind] < th).mean()) if th is not None else np.nan,
               "former_threshold": th, "separated_pairs": int((comp["verdict"] != "inconclusive").sum()),
               "pairs": len(comp),
               "few_retained": float(curves["area_few_retained"].mean())
               if ind == "area_ratio" and "area_few_retained" in curves else np.nan,
               "reason": reason}
        rows.append(row)
    return pd.DataFrame(rows)


def _pca_example(fit: Windows, ev: Windows, vectors, cfg: ZhangConfig, device) -> dict:
    """One eval prefix of the longest length for the PCA figure: its words and which are retained."""
    n = cfg.max_prefix
    dt = vectors.dtype
    Vf = vectors[torch.as_tensor(fit.ids[:, :n], device=vectors.device)]
    dec = S.fit_lag_decoders(fit.states[:, n - 1], Vf, device=device, dtype=dt)
    He = ev.states[:1, n - 1]
    decoded = dec(He).reshape(1, n, -1)
    targets = np.ascontiguousarray(ev.ids[:1, :n][:, ::-1])
    hits = S.recall_hits(decoded, targets, vectors, center=dec.intercept.reshape(n, -1),
                         device=device).cpu().numpy()[0, ::-1]
    return {"ids": ev.ids[0, :n].copy(), "retained": hits.copy()}


def reproduce(out, quick: bool = False, corpus=None, embedding=None, device=None, config: ZhangConfig | None = None,
              progress: Progress | None = None, command: str = "") -> dict:
    """Run the study and write the report (Markdown + HTML), figures (PNG), tables (CSV), the
    space (word2vec text) and config.json to ``out``. ``quick`` uses ``quick_config()`` and the
    synthetic corpus unless ``corpus`` is given.

    Parameters
    ----------
    out : str or Path
        The output folder.
    quick : bool, default False
        The CPU preset (:func:`quick_config`; ignored when ``config`` is given).
    corpus : str or Path or None
        A text8-format file; required unless ``quick``.
    embedding : str or Path or Embedding or None
        A word2vec file for the space (None: skip-gram).
    device : torch device or str, optional
    config : ZhangConfig or None
        The settings (default: the quick or full preset).
    progress : callable or None
        ``progress(stage, done, total)``.
    command : str, default ""
        The command line, recorded in the report.

    Returns
    -------
    dict
        ``zhang_report.write_report``'s paths and headline results.

    Raises
    ------
    ConfigError
        If neither ``corpus`` nor ``quick`` is given, or a setting is invalid.
    InputError
        For an unusable corpus or embedding.
    """
    from .zhang_report import write_report

    if corpus is None and not quick:
        raise ConfigError("give --corpus PATH (a text8-format file) or --quick (the synthetic corpus)")
    cfg = config or (quick_config() if quick else ZhangConfig())
    res = run_study(cfg, corpus=corpus, embedding=embedding, device=device, progress=progress)
    return write_report(res, Path(out), quick=quick, command=command)
