"""Multi-query associative recall (Zoology): exact layout, query distances, computed baselines,
trainer, CLI."""

from __future__ import annotations

import math
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from typer.testing import CliRunner

from rnnmem import cells
from rnnmem.errors import ConfigError
from rnnmem.tasks.copy_adding import make_task
from rnnmem.tasks.mqar import FILLER, MQARTask, paper_sizes
from rnnmem.tasks.token_common import IGNORE, memoryless_accuracy
from rnnmem.train.sequence_tasks import train_on_task


@pytest.mark.parametrize("kwargs", [
    {"T": 16, "n_pairs": 3, "vocab_size": 12, "filler": "blank"},
    {"T": 40, "n_pairs": 5, "vocab_size": 32, "n_queries": 3},
    {"T": 8, "n_pairs": 2, "vocab_size": 6, "query_distance": "uniform"},
])
def test_layout_is_exact(kwargs):
    task = MQARTask(**kwargs)
    N, Q, V, T = task.n_pairs, task.queries, task.vocab_size, task.T
    B = 300
    tokens, y, mask = task.sample_tokens(B, torch.Generator().manual_seed(0))
    assert tokens.shape == y.shape == mask.shape == (T, B)
    assert torch.equal(mask, y != IGNORE) and (mask.sum(0) == Q).all()
    keys, values = tokens[0 : 2 * N : 2], tokens[1 : 2 * N : 2]
    assert ((keys >= 1) & (keys <= V // 2 - 1)).all()  # disjoint key / value vocabularies
    assert ((values >= V // 2) & (values <= V - 1)).all()
    for b in range(B):
        k, v = keys[:, b].tolist(), values[:, b].tolist()
        assert len(set(k)) == N and len(set(v)) == N
        bound = dict(zip(k, v))
        qpos = mask[:, b].nonzero().flatten()
        assert (qpos >= 2 * N).all() and ((qpos - 2 * N) % 2 == 0).all()  # even offsets after the context
        queried = tokens[qpos, b].tolist()
        assert len(set(queried)) == Q and set(queried) <= set(k)  # distinct keys of this sequence
        assert y[qpos, b].tolist() == [bound[q] for q in queried]  # the value bound to each key
    after = tokens[2 * N :][~mask[2 * N :]]
    if task.filler == "blank":
        assert (after == FILLER).all()
    else:
        assert set(after.unique().tolist()) == set(range(V))  # Zoology: random tokens between queries
    x, yy = task.sample(B, torch.Generator().manual_seed(0))
    assert x.shape == (T, B, V) and torch.equal(x.argmax(-1), tokens) and torch.equal(yy, y)


def test_every_key_is_queried_by_default_and_a_subset_otherwise():
    full = MQARTask(20, n_pairs=4, vocab_size=16)
    t, _, m = full.sample_tokens(50, torch.Generator().manual_seed(2))
    for b in range(50):
        assert sorted(t[m[:, b], b].tolist()) == sorted(t[0:8:2, b].tolist())
    part = MQARTask(20, n_pairs=4, vocab_size=16, n_queries=2)
    _, _, pair, _ = part.sample_pairs(2000, torch.Generator().manual_seed(2))
    counts = torch.bincount(pair.flatten(), minlength=4).double() / (2000 * 2)
    assert torch.allclose(counts, torch.full((4,), 0.25, dtype=torch.float64), atol=0.03)  # uniform subset


@pytest.mark.parametrize("distance,a", [("power", 0.01), ("power", 0.5), ("uniform", None)])
def test_query_slots_follow_the_documented_distribution(distance, a):
    task = MQARTask(30, n_pairs=3, vocab_size=8, n_queries=1, query_distance=distance,
                    **({} if a is None else {"power_a": a}))
    S = task.slots
    assert S == 12
    g = np.arange(1, S + 1, dtype=float)
    w = g ** ((1.0 if a is None else a) - 1)
    expected = w / w.sum()  # P(g) = (g + 1)^(a - 1) / sum, g = 0..S-1
    assert np.allclose(task.slot_probabilities().numpy(), expected)
    n = 40_000
    _, _, _, slot = task.sample_pairs(n, torch.Generator().manual_seed(5))
    freq = np.bincount(slot.flatten().numpy(), minlength=S) / n
    assert np.all(np.abs(freq - expected) < 4 * np.sqrt(expected * (1 - expected) / n) + 1e-4)
    if distance == "power":
        assert expected[0] > 3 * expected[-1]  # most queries come soon after the context (12^(1-a))


def test_seeds_reproduce_and_differ():
    task = MQARTask(24, n_pairs=4, vocab_size=20)
    a = task.sample_tokens(16, torch.Generator().manual_seed(3))
    b = task.sample_tokens(16, torch.Generator().manual_seed(3))
    c = task.sample_tokens(16, torch.Generator().manual_seed(4))
    assert all(torch.equal(p, q) for p, q in zip(a, b))
    assert not torch.equal(a[0], c[0])


@pytest.mark.parametrize("kwargs,option", [
    ({"T": 20, "n_pairs": 0}, "n_pairs"), ({"T": 20, "n_pairs": 3, "n_queries": 4}, "n_queries"),
    ({"T": 20, "n_pairs": 3, "n_queries": 0}, "n_queries"), ({"T": 11, "n_pairs": 3}, "T"),
    ({"T": 20, "n_pairs": 4, "vocab_size": 9}, "vocab_size"), ({"T": 20, "query_distance": "near"}, "query_distance"),
    ({"T": 20, "power_a": 0.0}, "power_a"), ({"T": 20, "power_a": 1.5}, "power_a"),
    ({"T": 20, "filler": "x"}, "filler"),
])
def test_bad_options_are_one_clear_error(kwargs, option):
    with pytest.raises(ConfigError, match=rf"^{option} must be"):
        MQARTask(**kwargs)


def test_make_task_and_paper_sizes():
    assert make_task("mqar", 20, n_pairs=2) == MQARTask(20, n_pairs=2)
    with pytest.raises(ConfigError, match="bad option for task 'mqar'.*n_memorize"):
        make_task("mqar", 20, n_memorize=2)
    task = MQARTask(**paper_sizes())
    assert (task.n_keys, task.n_values, task.queries) == (4095, 4096, 16)
    tokens, y, mask = task.sample_tokens(4, torch.Generator().manual_seed(0))
    assert tokens.max() < 8192 and (mask.sum(0) == 16).all()


@pytest.mark.parametrize("task", [MQARTask(16, n_pairs=3, vocab_size=12),
                                  MQARTask(24, n_pairs=2, vocab_size=9, filler="blank", query_distance="uniform")])
def test_baselines_match_a_measured_memoryless_predictor(task):
    nv = task.vocab_size - task.vocab_size // 2
    assert task.baseline_accuracy == pytest.approx(1 / nv) and task.baseline == pytest.approx(math.log(nv))
    assert task.baseline_sequence_accuracy == pytest.approx(1 / math.perm(nv, task.queries))
    n = 20_000
    measured = memoryless_accuracy(task, n_fit=n, n_eval=n, seed=0)
    p = task.baseline_accuracy
    assert abs(measured["token_accuracy"] - p) < 4 * math.sqrt(p * (1 - p) / (n * task.queries))
    assert measured["sequence_accuracy"] <= task.baseline_sequence_accuracy + 4 * math.sqrt(
        task.baseline_sequence_accuracy / n)
    # the loss baseline: cross-entropy of the value frequencies seen at the query positions
    gen = torch.Generator().manual_seed(1)
    _, y_fit, m_fit = task.sample_tokens(n, gen)
    freq = torch.bincount(y_fit[m_fit], minlength=task.vocab_size).double()
    logits = (freq / freq.sum() + 1e-12).log().expand(task.T, n, -1)
    _, y_ev, _ = task.sample_tokens(n, gen)
    assert float(task.loss(logits, y_ev)) == pytest.approx(task.baseline, rel=0.01)


def test_small_gru_learns_the_bindings():
    task = MQARTask(12, n_pairs=2, vocab_size=8)  # 2 pairs, 3 keys / 4 values, queries in 4 slots
    unit = cells.build("gru", 8, 32, seed=0)
    res = train_on_task(unit, task, steps=3000, batch=32, lr=1e-2, eval_size=500, seed=0, eval_every=250,
                        stop_when_solved=True)
    # Training first sits on a plateau at loss ln 2, accuracy 1/2 (the net knows which two values
    # occurred, not which key each belongs to), then learns the bindings. Measured for seeds 0-9
    # (unit and training seed both = s, 1 torch thread): solved (loss < 10% of ln 4) after
    # 750-2000 of the 3000 steps, token accuracy 0.973-1.000, sequence accuracy 0.950-1.000, against
    # the memoryless 0.25 and 1/12; 2 threads gave the same numbers (seeds 0-2). Seed 0 here: 1250 steps.
    assert res.metrics["baseline_accuracy"] == pytest.approx(0.25)
    assert res.metrics["token_accuracy"] > 0.8, res.row()  # above the memoryless 1/4 and the plateau 1/2
    assert res.ratio < 0.3, res.row()


def test_bench_task_cli_mqar(tmp_path):
    from rnnmem.cli import app

    out = tmp_path / "mqar.csv"
    res = CliRunner().invoke(app, ["bench-task", "--task", "mqar", "--T", "12", "--units", "8", "--steps", "20",
                                   "--eval-size", "50", "--pairs", "2", "--vocab", "8", "--query-distance", "uniform",
                                   "--csv", str(out)])
    assert res.exit_code == 0, res.output
    assert "memoryless accuracy 1/(V - V//2) = 0.25" in " ".join(res.output.split())
    df = pd.read_csv(out)
    assert df["T"].tolist() == [12] and np.allclose(df.baseline, math.log(4))
    assert np.allclose(df.baseline_accuracy, 0.25) and df.token_accuracy.between(0, 1).all()


def test_bench_task_cli_bad_mqar_option_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "rnnmem.cli", "bench-task", "--task", "mqar", "--T", "20",
                           "--query-distance", "near"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: query_distance must be 'power' or 'uniform', got 'near'"]
