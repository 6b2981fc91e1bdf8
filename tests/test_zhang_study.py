"""The semantic memory study (rnnmem.studies.zhang, rnnmem reproduce zhang) on tiny settings."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from rnnmem.cli import app
from rnnmem.errors import ConfigError, InputError
from rnnmem.studies import zhang as Z
from rnnmem.tasks import embeddings as E
from rnnmem.tasks.key_recall_text import key_recall_text
from rnnmem.train.word_lm import WordLMConfig, train_word_lm


def tiny_config(**kw) -> Z.ZhangConfig:
    base = Z.ZhangConfig(
        units=("rnn", "gru"), train_lengths=(6, 12), prefix_lengths=(4, 8, 12), hidden=8, embedding_dim=32,
        sg_window=2, sg_epochs=1, sg_batch=512, sg_subsample=0.0, budget_tokens=3000, tokens_per_batch=120,
        lr=1e-2, windows_fit=40, windows_eval=24, seeds=2,
        synthetic=Z.SyntheticSettings(n_words=4000, vocab_size=40, n_keys=3, distances=(1, 3), rate=0.08,
                                      topics=2, topic_share=0.5, doc_length=30.0))
    return replace(base, **kw)


def test_key_recall_text_episodes():
    c = key_recall_text(n_words=3000, vocab_size=50, n_keys=4, distances=(2, 5), rate=0.05, seed=2, topics=3)
    w = c.words
    d = c.dependencies
    assert len(d) > 20 and set(d["gap_words"]) == {2, 5}
    for _, r in d.iterrows():
        assert w[r["key_index"]] == w[r["response_index"]] == r["key"]
        assert w[r["cue_index"]] == "recall"
        assert r["cue_index"] - r["key_index"] == r["lag_at_cue"] == r["gap_words"] + 1
    keys = set(c.config["keys"])
    # keys occur only as key and response of an episode
    assert sum(x in keys for x in w) == 2 * len(d)
    assert key_recall_text(n_words=3000, vocab_size=50, n_keys=4, distances=(2, 5), rate=0.05, seed=2,
                           topics=3).text == c.text
    with pytest.raises(ConfigError, match="topics"):
        key_recall_text(topics=-1)


def test_word_lm_same_budget_and_fixed_embedding():
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 20, size=2000)
    vec = rng.normal(size=(20, 6)).astype(np.float32)
    a = WordLMConfig(cell="lstm", hidden=8, train_length=5, budget_tokens=1000, tokens_per_batch=100)
    b = replace(a, train_length=20)
    assert a.steps == b.steps == 10 and a.batch * 5 == b.batch * 20 == 100
    m, log = train_word_lm(ids, vec, a)
    m2, _ = train_word_lm(ids, vec, a)
    for p, q in zip(m.parameters(), m2.parameters()):
        assert torch.equal(p, q)  # same seed, same run
    assert torch.equal(m.vectors, torch.as_tensor(vec))  # the space is never trained
    assert log["tokens"].iloc[-1] == 1000 and np.isfinite(log["loss"]).all()
    h = m.states(ids[:30].reshape(3, 10))
    assert h.shape == (3, 10, 8)
    with pytest.raises(ConfigError, match="tokens_per_batch"):
        WordLMConfig(train_length=50, tokens_per_batch=10)


def test_study_end_to_end(tmp_path):
    cfg = tiny_config()
    res = Z.reproduce(tmp_path, quick=True, config=cfg, command="test")
    out = tmp_path
    for name in ["report.md", "report.html", "curves.csv", "profiles.csv", "recall.csv", "recommended.csv",
                 "recommended_strict.csv", "intervals.csv", "comparisons.csv", "dropped_indicators.csv",
                 "planted.csv", "runs.csv", "training.csv", "space.txt", "config.json",
                 "figures/indicators_rnn.png", "figures/indicators_gru.png", "figures/profiles.png",
                 "figures/recall.png", "figures/planted.png", "figures/training.png", "figures/pca.png"]:
        assert (out / name).exists(), name
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves["unit"]) == {"rnn", "gru"} and set(curves["train_length"]) == {6, 12}
    assert set(curves["seed"]) == {0, 1} and len(curves) == 2 * 2 * 2 * 4
    # two seeds -> an interval for every indicator, around the seed mean
    iv = pd.read_csv(out / "intervals.csv")
    assert len(iv) == 2 * 2 * 4 and (iv["seeds"] == 2).all()
    for col in ["hull_score", "coverage", "recall_score", "area_ratio", "readout_r2"]:
        ok = iv[col].notna()
        assert ok.any(), col
        assert (iv.loc[ok, f"{col}_low"] <= iv.loc[ok, col] + 1e-12).all(), col
        assert (iv.loc[ok, f"{col}_high"] >= iv.loc[ok, col] - 1e-12).all(), col
        pair = curves.groupby(["unit", "train_length", "n"])[col].mean()
        np.testing.assert_allclose(iv.set_index(["unit", "train_length", "n"])[col].loc[pair.index], pair)
    assert (iv["hull_score_high"] > iv["hull_score_low"]).any()
    comp = pd.read_csv(out / "comparisons.csv")
    assert set(comp["indicator"]) == {"hull_score", "recall_score", "planted_accuracy"}
    assert (comp["seeds"] == 2).all()
    assert np.isfinite(comp["low"]).all() and (comp["low"] <= comp["difference"]).all()
    assert sorted(curves["n"].unique()) == [4, 6, 8, 12]  # the grid includes the training lengths
    assert curves["qp_converged"].all()
    for col in ["hull_score", "coverage", "recall_score", "area_ratio", "readout_r2"]:
        assert curves[col].notna().any(), col
    assert ((curves["recall"] >= 0) & (curves["recall"] <= 1)).all()
    rec = pd.read_csv(out / "recommended.csv")
    assert list(rec["unit"]) == ["rnn", "gru"] and set(rec["status"]) <= {"ok", "censored", "none"}
    assert {"low", "high", "settled", "per_seed"} <= set(rec.columns)
    assert rec["per_seed"].str.contains("seed 1: ").all()
    planted = pd.read_csv(out / "planted.csv")
    assert set(planted["gap_words"]) == {1, 3} and set(planted["seed"]) == {0, 1}
    assert (planted["recovered"] == (planted["learned"] & planted["peak_at_key"])).all()
    assert (planted["learned"] == (planted["accuracy_p"] < Z.ZhangConfig().planted_alpha)).all()
    assert (planted["planted_distance"] == planted["gap_words"] + 2).all()
    conf = json.loads((out / "config.json").read_text())
    assert conf["probe_dtype"] == "float64" and conf["solver"]["tol"] == 1e-12 and conf["convention"] == "torch"
    assert conf["thresholds"] == Z.ZhangConfig().thresholds
    md = (out / "report.md").read_text()
    for section in ["At a glance", "What is the paper's and what is ours", "(e) Recommended training length",
                    "Comparison of the units", "Planted-distance check", "Dropped indicators"]:
        assert section in md
    # the report ends with the ranking statement and its confidence
    last = md[md.index("## Conclusion"):]
    assert "hull score (a)" in last and "recall score (c)" in last and "95% CI [" in last
    assert ("inconclusive" in last) or ("every pair separated" in last)
    space = E.read_word2vec(out / "space.txt")
    np.testing.assert_allclose(np.linalg.norm(space.vectors, axis=1), 1, atol=1e-5)
    # same seed -> same numbers
    again = Z.run_study(cfg)
    pd.testing.assert_frame_equal(again.curves.reset_index(drop=True), res_curves(out), check_dtype=False,
                                  rtol=1e-9, atol=1e-12)


def res_curves(out):
    return pd.read_csv(out / "curves.csv")


def test_user_embedding_without_unknown_is_a_clear_error(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text(" ".join(["the cat sat on the mat"] * 200))
    emb = E.Embedding(["the", "cat", "sat", "on"], np.eye(4))
    cfg = tiny_config(prefix_lengths=(4,), train_lengths=(4,), vocab_size=10)
    data = Z.load_data(cfg, corpus)
    with pytest.raises(InputError, match="'mat'.*no '<unknown>' entry"):
        Z.build_space(cfg, data, emb)
    with_unk = E.Embedding(["<unknown>", "the", "cat", "sat", "on"], np.eye(5) + 0.1)
    data2, space = Z.build_space(cfg, data, with_unk)
    assert space.words[data2.ids[5]] == "<unknown>"  # 'mat' read as <unknown>


def test_bad_input_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(InputError, match="empty"):
        Z.load_data(tiny_config(), empty)
    short = tmp_path / "short.txt"
    short.write_text("the cat sat")
    with pytest.raises(InputError, match="too short"):
        Z.load_data(tiny_config(), short)
    with pytest.raises(ConfigError, match="unknown unit"):
        tiny_config(units=("lstm", "nope")).validate()
    with pytest.raises(ConfigError, match="unknown thresholds"):
        tiny_config(thresholds={"speed": 1.0}).validate()
    with pytest.raises(ConfigError, match="--corpus"):
        Z.reproduce(tmp_path / "x")


def test_cli_errors_are_one_line(tmp_path):
    runner = CliRunner()
    r = runner.invoke(app, ["reproduce", "zhang", "--out", str(tmp_path / "o")])
    assert r.exit_code != 0 and "--corpus" in str(r.exception or r.output)
    empty = tmp_path / "e.txt"
    empty.write_text("")
    r = runner.invoke(app, ["reproduce", "zhang", "--corpus", str(empty), "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, InputError) and "empty" in str(r.exception)
    r = runner.invoke(app, ["reproduce", "zhang", "--quick", "--threshold", "bogus", "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, ConfigError) and "NAME=VALUE" in str(r.exception)
    r = runner.invoke(app, ["reproduce", "zhang", "--quick", "--seeds", "0", "--out", str(tmp_path / "o")])
    assert isinstance(r.exception, ConfigError) and "--seeds must be a positive integer" in str(r.exception)
    assert not (tmp_path / "o").exists()
    with pytest.raises(ConfigError, match="seeds must be a positive integer"):
        tiny_config(seeds=0).validate()
