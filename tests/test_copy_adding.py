"""Copy-memory and adding tasks (TCN benchmark): exact data, baselines, trainer, CLI."""

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
from rnnmem.tasks.copy_adding import AddingTask, CopyTask, make_task, memoryless_loss
from rnnmem.train.sequence_tasks import largest_solved, train_on_task


def test_copy_sequences_are_exact():
    T, B = 7, 64
    task = CopyTask(T)
    digits, y = task.sample_digits(B, torch.Generator().manual_seed(0))
    assert digits.shape == y.shape == (T + 20, B) and task.length == T + 20
    assert ((digits[:10] >= 1) & (digits[:10] <= 8)).all()
    assert set(digits[:10].unique().tolist()) == set(range(1, 9))  # all eight symbols occur
    assert (digits[10 : 10 + T - 1] == 0).all()  # T - 1 blanks
    assert (digits[T + 9 :] == 9).all()  # TCN: delimiter and the 10 answer steps are 9
    assert (y[: T + 10] == 0).all() and torch.equal(y[T + 10 :], digits[:10])
    blank = CopyTask(T, variant="blank")
    d2, y2 = blank.sample_digits(B, torch.Generator().manual_seed(0))
    assert torch.equal(d2[: T + 9], digits[: T + 9]) and torch.equal(y2, y)
    assert (d2[T + 9] == 9).all() and (d2[T + 10 :] == 0).all()  # one delimiter, then blanks
    x, yy = task.sample(B, torch.Generator().manual_seed(0))
    assert x.shape == (T + 20, B, 10) and x.dtype == torch.float32
    assert torch.equal(x.argmax(-1), digits) and torch.equal(yy, y)
    xs, _ = CopyTask(T, encoding="scalar").sample(B, torch.Generator().manual_seed(0))
    assert xs.shape == (T + 20, B, 1) and torch.equal(xs[..., 0].long(), digits)


def test_adding_sequences_are_exact():
    T, B = 11, 500
    for markers in ("halves", "anywhere"):
        task = AddingTask(T, markers=markers)
        x, y = task.sample(B, torch.Generator().manual_seed(1), dtype=torch.float64)
        assert x.shape == (T, B, 2) and y.shape == (B,)
        assert ((x[..., 0] >= 0) & (x[..., 0] < 1)).all()
        marks = x[..., 1]
        assert set(marks.unique().tolist()) == {0.0, 1.0}
        assert (marks.sum(0) == 2).all()  # exactly two markers per sequence
        torch.testing.assert_close(y, (x[..., 0] * marks).sum(0))
        pos = marks.T.nonzero()[:, 1].reshape(B, 2)
        if markers == "halves":
            assert (pos[:, 0] < T // 2).all() and (pos[:, 1] >= T // 2).all()
        else:  # both markers can land in the same half
            assert ((pos[:, 1] < T // 2).any() and (pos[:, 0] >= T // 2).any())
    first = AddingTask(T).sample(8, torch.Generator().manual_seed(3))
    again = AddingTask(T).sample(8, torch.Generator().manual_seed(3))
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])


@pytest.mark.parametrize("task", [CopyTask(5), CopyTask(50), CopyTask(20, variant="blank"),
                                  AddingTask(10), AddingTask(50, markers="anywhere")])
def test_baseline_formula_matches_a_measured_memoryless_predictor(task):
    measured = memoryless_loss(task, n_fit=10_000, n_eval=10_000, seed=0)
    if isinstance(task, CopyTask):
        assert task.baseline == pytest.approx(10 * math.log(8) / (task.T + 20))
    else:
        assert task.baseline == pytest.approx(1 / 6)
    assert measured == pytest.approx(task.baseline, rel=0.05)


def test_small_lstm_solves_adding():
    task = AddingTask(10)
    unit = cells.build("lstm", 2, 32, seed=0)
    res = train_on_task(unit, task, steps=400, batch=32, lr=1e-2, eval_size=500, seed=0)
    # measured over seeds 0-5 (unit and training seed both = s; 1 and 2 torch threads the same):
    # loss/baseline 0.008-0.027, first/last logged training loss 259x-826x
    assert res.solved and res.ratio < 0.1, res.row()
    assert res.history.train_loss.iloc[0] > 5 * res.history.train_loss.iloc[-1]
    assert res.config["optimizer"] == "Adam" and res.task["task"] == "adding"
    assert largest_solved([res]) == 10
    assert unit.layer_params[0].W_h.grad is None  # the caller's unit was copied, not trained


def test_copy_loss_drops_clearly_below_baseline():
    task = CopyTask(5, memory=2)  # a short copy: 2 symbols over 5 blank steps
    unit = cells.build("lstm", 10, 32, seed=0)
    res = train_on_task(unit, task, steps=1500, batch=32, lr=1e-2, eval_size=500, seed=0)
    assert res.baseline == pytest.approx(2 * math.log(8) / 9)
    # Training sits in a sharp transition around 800 steps: there, seeds 0-9 (unit and training seed
    # both = s) gave answer accuracy 0.69-1.00 and loss/baseline 0.02-0.39, and another CPU's kernels
    # (like another seed) gave 0.861. At 1500 steps every seed 0-9 is past it: accuracy 1.000 for all,
    # loss/baseline 0.003-0.026 (1 torch thread; 2 threads gave the same numbers on seeds 0 and 5).
    # The bounds below keep a wide margin from that and are still far from a memoryless predictor
    # (accuracy 1/8, loss/baseline 1).
    assert res.ratio < 0.25, res.row()
    assert res.metrics["answer_accuracy"] > 0.8, res.row()


def test_trainer_is_deterministic_and_checks_its_input():
    task = AddingTask(6)
    unit = cells.build("gru", 2, 8, seed=1)
    a = train_on_task(unit, task, steps=20, eval_size=50, seed=4)
    b = train_on_task(unit, task, steps=20, eval_size=50, seed=4)
    assert a.final_loss == b.final_loss
    with pytest.raises(ConfigError, match="input_size=2"):
        train_on_task(cells.build("gru", 3, 8, seed=1), task, steps=5)
    with pytest.raises(ConfigError, match="eval_every"):
        train_on_task(unit, task, steps=5, stop_when_solved=True)
    with pytest.raises(ConfigError, match="unknown task"):
        make_task("add", 5)
    with pytest.raises(ConfigError, match="markers"):
        AddingTask(5, markers="middle")


def test_bench_task_cli_table_and_csv(tmp_path):
    from rnnmem.cli import app

    out = tmp_path / "bench.csv"
    res = CliRunner().invoke(app, ["bench-task", "--task", "adding", "--T", "4,6", "--units", "8", "--steps", "30",
                                   "--eval-size", "100", "--csv", str(out)])
    assert res.exit_code == 0, res.output
    assert "largest T solved" in res.output and "0.1667" in res.output
    df = pd.read_csv(out)
    assert df["T"].tolist() == [4, 6]
    assert np.allclose(df.baseline, 1 / 6)
    assert np.allclose(df.loss_over_baseline, df.final_loss / df.baseline)
    assert (df.solved == (df.final_loss < 0.1 / 6)).all()


def test_bench_task_cli_bad_input_is_one_line():
    proc = subprocess.run([sys.executable, "-m", "rnnmem.cli", "bench-task", "--task", "copy", "--T", "5,x"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == ["error: --T must be a comma-separated list of integers, got '5,x'"]


@pytest.mark.parametrize("batch", [0, -1, 2.5, True])
def test_adding_sample_refuses_a_bad_batch_before_drawing(batch):
    from rnnmem.tasks.copy_adding import AddingTask

    gen = torch.Generator().manual_seed(0)
    state = gen.get_state()
    with pytest.raises(ConfigError, match="batch must be an integer >= 1"):
        AddingTask(T=10).sample(batch, gen)
    assert torch.equal(gen.get_state(), state)  # nothing was drawn
