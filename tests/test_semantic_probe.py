"""PROBES["semantic"]: the Zhang et al. semantic-memory indicators (our interpretation) on any model
and a corpus, through the probe contract (issue 12, point 2)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.errors import ConfigError, InputError
from rnnmem.probes import PROBES
from rnnmem.tasks import embeddings as E
from rnnmem.tasks.key_recall_text import key_recall_text

# a random space (no skip-gram) keeps these tests fast; the contract test covers the default space
FAST = {"sequences": 48, "fit_sequences": 96, "prefix_lengths": [3, 6], "words": 3000, "vocab_size": 50,
        "dim": 6, "bootstrap": 200, "space": "random"}


class RunningMean(nn.Module):
    """Output = the running mean of the inputs read so far: a state that keeps exactly what the
    readout asks for (the mean of the prefix's word vectors when it reads the space itself)."""

    def __init__(self, size):
        super().__init__()
        self.input_size = self.hidden_size = size

    def forward(self, x, state=None):
        if state is None:
            s, c = x.new_zeros(x.shape[1:]), x.new_zeros(x.shape[1], 1)
        else:
            s, c = state
        ys = []
        for t in range(x.shape[0]):
            s, c = s + x[t], c + 1
            ys.append(s / c)
        return torch.stack(ys), (s, c)


class Memoryless(nn.Module):
    """Output = 0 whatever it reads: holds nothing."""

    def __init__(self, input_size, hidden_size=4):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size

    def forward(self, x, state=None):
        y = x.new_zeros(x.shape[0], x.shape[1], self.hidden_size)
        return y, y[-1]


def test_a_state_that_is_the_running_mean_keeps_everything():
    res = PROBES["semantic"](RunningMean(FAST["dim"]), settings={**FAST, "input_map": "space"}, seed=0)
    s = res.summary()
    assert s["readout_r2"] > 1 - 1e-6
    assert s["hull_score"] > 0.999  # the mapped state lies on the hull (distance ~0, the memoryless one's is not)
    assert s["hull_score_ci_low"] > 0.999
    assert s["usable_length"] == 6 and s["usable_censored"] is True


def test_a_memoryless_state_scores_zero():
    res = PROBES["semantic"](Memoryless(3), settings=FAST, seed=0)
    s = res.summary()
    assert s["hull_score"] == pytest.approx(0.0, abs=1e-12)  # mapped state == the memoryless baseline
    assert s["recall_score"] <= 0  # never better than the best constant guess
    assert s["usable_length"] is None and s["limited_by"] == "hull_score"


def test_frame_headline_and_intervals():
    unit = cells.build("gru", 2, 16, seed=0)
    res = PROBES["semantic"](unit, settings=FAST, seed=3)
    f = res.frame
    assert len(f) == FAST["sequences"] * 2 and set(f["n"]) == {3, 6}
    assert {"sequence", "distance", "baseline_distance", "recall", "chance", "memory_length", "coverage"} <= set(f)
    s = res.summary()
    for key in ("hull_score", "recall_score"):
        assert s[f"{key}_ci_low"] <= s[key] <= s[f"{key}_ci_high"], key
    curve = res.details["curve"]
    for lo, v, hi in zip(curve["hull_score_low"], curve["hull_score"], curve["hull_score_high"]):
        assert lo <= v <= hi
    # the headline hull score is the study's ratio of means per prefix length, averaged over the lengths
    per_n = f.groupby("n").apply(lambda g: 1 - g["distance"].mean() / g["baseline_distance"].mean())
    assert s["hull_score"] == pytest.approx(per_n.mean(), rel=1e-12)
    assert s["state_dim"] == 16 and s["space_dim"] == FAST["dim"]
    json.loads(res.to_json())


def test_same_seed_same_numbers_and_full_state():
    unit = cells.build("lstm", 1, 8, seed=0)
    a = PROBES["semantic"](unit, settings=FAST, seed=1).summary()
    b = PROBES["semantic"](unit, settings=FAST, seed=1).summary()
    c = PROBES["semantic"](unit, settings=FAST, seed=2).summary()
    assert a == b and a["hull_score"] != c["hull_score"]
    full = PROBES["semantic"](unit, settings={**FAST, "state": "full"}, seed=1).summary()
    assert full["state_dim"] == 16  # h and c


def test_a_corpus_file_and_a_word2vec_space(tmp_path):
    syn = key_recall_text(n_words=3000, vocab_size=40, n_keys=3, distances=(2, 4), rate=0.05, seed=5)
    corpus = tmp_path / "text8"
    corpus.write_text(" " + " ".join(syn.words))
    words = sorted(set(syn.words))
    rng = np.random.default_rng(0)
    space = E.write_word2vec(E.Embedding(words, rng.standard_normal((len(words), 5))), tmp_path / "space.txt")
    settings = {**FAST, "corpus": str(corpus), "space": str(space), "vocab_size": 1000}
    res = PROBES["semantic"](cells.build("rnn", 5, 8, seed=0), settings={**settings, "input_map": "space"}, seed=0)
    assert res.summary()["space_dim"] == 5 and res.summary()["vocabulary"] == len(words)
    assert res.details["source"]["corpus"] == str(corpus)
    short = E.write_word2vec(E.Embedding(words[1:], rng.standard_normal((len(words) - 1, 5))), tmp_path / "s2.txt")
    with pytest.raises(InputError, match="not in the embedding"):
        PROBES["semantic"](cells.build("rnn", 1, 8, seed=0), settings={**settings, "space": str(short)})


def test_bad_settings_are_one_clear_error(tmp_path):
    unit = cells.build("lstm", 1, 4, seed=0)
    with pytest.raises(ConfigError, match="corpus.*not a file"):
        PROBES["semantic"](unit, settings={"corpus": str(tmp_path / "missing.txt")})
    with pytest.raises(ConfigError, match="space.*not a file"):
        PROBES["semantic"](unit, settings={"space": "glove"})
    with pytest.raises(ConfigError, match="prefix_lengths"):
        PROBES["semantic"](unit, settings={"prefix_lengths": [1, 5]})
    with pytest.raises(ConfigError, match="too short"):
        PROBES["semantic"](unit, settings={"words": 1000, "prefix_lengths": [600]})
    with pytest.raises(ConfigError, match="input_map='space'.*input_size is 1"):
        PROBES["semantic"](unit, settings={**FAST, "input_map": "space"})


def test_plot_and_card_registration():
    import matplotlib

    matplotlib.use("Agg")
    res = PROBES["semantic"](cells.build("gru", 1, 4, seed=0), settings=FAST, seed=0)
    ax = res.plot()
    assert ax.get_xlabel().startswith("prefix length") and len(ax.lines) >= 2
    assert PROBES["semantic"].in_card
