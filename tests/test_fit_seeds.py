"""rnnmem.train.fit: the one multi-seed training loop (early stopping, best restoring, freezing).

The toy problem: every seed has one parameter p (starting at 0) and the loss -p, so plain SGD with
lr 1 adds exactly 1 to p at every update a seed takes: p counts the updates, and the parameters a
seed ends with say exactly which step's parameters were kept. The "validation loss" is a scripted
function of p, so the best step and the stopping step are known by hand.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.errors import ConfigError
from rnnmem.train.fit import EarlyStop, TrainResult, fit_seeds


class Counter(nn.Module):
    def __init__(self, S: int | None):
        super().__init__()
        self.p = nn.Parameter(torch.zeros(() if S is None else (S,), dtype=torch.float64))


def neg_p(m, batch):
    return -m.p


def sgd(params):
    return torch.optim.SGD(params, lr=1.0)


def scripted(script):
    """evaluate(): seed e's value at the parameters it has now, script[e][p_e]."""
    script = np.asarray(script, dtype=np.float64)

    def evaluate(m):
        p = m.p.detach().reshape(-1).round().long().tolist()
        return {"val": [script[e][k] for e, k in enumerate(p)]}
    return evaluate


def counts(res) -> list[int]:
    return [int(v) for v in res.model.p.detach().reshape(-1).round().tolist()]


# ------------------------------------------------------------------------------- best restoring
def test_restore_keeps_the_measured_parameters_with_the_lowest_value():
    # measured after each update (eval_at="after"): step k measures p = k
    script = [[9, 5, 3, 4, 2.5, 6, 7, 8], [9, 1, 2, 3, 4, 5, 6, 7]]
    res = fit_seeds(Counter(2), [None], neg_p, optimizer=sgd, seeds=[10, 11], steps=6, evaluate=scripted(script),
                    early_stop=EarlyStop(restore="val"))
    assert counts(res) == [4, 1]                      # argmin of script[e][1..6]
    assert res.best_step == {10: 4, 11: 1}
    assert res.table["best_val"].tolist() == [2.5, 1.0]
    assert res.table["status"].tolist() == ["completed", "completed"]
    assert res.table["steps"].tolist() == [6, 6]


def test_restore_before_and_after_the_update():
    # measured between the loss and the update (eval_at="before"): step k measures p = k - 1
    script = [[5, 4, 1, 3, 3, 3, 3], [2, 5, 5, 5, 5, 5, 5]]
    kw = dict(seeds=[0, 1], steps=5, evaluate=scripted(script), eval_at="before")
    before = fit_seeds(Counter(2), [None], neg_p, optimizer=sgd, early_stop=EarlyStop(restore="val"), **kw)
    after = fit_seeds(Counter(2), [None], neg_p, optimizer=sgd, early_stop=EarlyStop(restore="val", keep="after"), **kw)
    assert counts(before) == [2, 0]                   # the measured parameters
    assert counts(after) == [3, 1]                    # one update later (the published Zhao et al. loop)
    assert before.best_step == after.best_step == {0: 3, 1: 1}


def test_a_restore_metric_that_is_never_finite_marks_the_seed_diverged():
    script = [[np.nan] * 5, [3, 2, 1, 0, 0]]
    res = fit_seeds(Counter(2), [None], neg_p, optimizer=sgd, seeds=[0, 1], steps=3, evaluate=scripted(script),
                    early_stop=EarlyStop(restore="val"))
    assert res.table["status"].tolist() == ["diverged", "completed"]
    assert counts(res) == [0, 3]                      # the never-measured-finite seed gets its initial p back


# ------------------------------------------------------------------------------- early stopping
def test_patience_counts_only_improvements_larger_than_min_delta():
    # seed 0 (measured at p = 1, 2, ...): 5, 4, 3.95, 3.92 -> improvements 1, 0.05, 0.08: two misses -> stop at 4
    script = [[9, 5, 4, 3.95, 3.92, 0, 0, 0, 0], [9, 8, 7, 6, 5, 4, 3, 2, 1]]
    res = fit_seeds(Counter(2), [None], neg_p, optimizer=sgd, seeds=[0, 1], steps=8, evaluate=scripted(script),
                    early_stop=EarlyStop(monitor="val", patience=2, min_delta=0.1))
    assert res.table["status"].tolist() == ["early_stopped", "completed"]
    assert res.table["steps"].tolist() == [4, 8]
    assert counts(res) == [4, 8]                      # the stopped seed is frozen, the other one trains on
    assert res.table["patience_val"].tolist() == [4.0, 1.0]
    h = res.history
    assert h[h.seed == 0].step.tolist() == [1, 2, 3, 4] and h[h.seed == 1].step.tolist() == list(range(1, 9))


def test_patience_on_the_training_loss_and_the_stopping_step_update():
    # loss = -p improves by 1 per step, never by more than min_delta = 100 after the first step (the
    # first finite loss always improves on +inf): patience 3 -> stop at the 4th step
    kw = dict(seeds=[0], steps=10, eval_at="before", evaluate=scripted([[0] * 12]))
    stop = dict(monitor="loss", patience=3, min_delta=100.0)
    res = fit_seeds(Counter(1), [None], neg_p, optimizer=sgd, early_stop=EarlyStop(**stop), **kw)
    late = fit_seeds(Counter(1), [None], neg_p, optimizer=sgd, early_stop=EarlyStop(**stop, keep="after"), **kw)
    kept = fit_seeds(Counter(1), [None], neg_p, optimizer=sgd, early_stop=EarlyStop(**stop, restore="val", keep="after"),
                     **kw)
    assert res.table["steps"].tolist() == late.table["steps"].tolist() == kept.table["steps"].tolist() == [4]
    assert counts(res) == [3]                         # the 4th update is masked out
    assert counts(late) == [4]                        # keep="after": the stopping step's update is taken
    assert counts(kept) == [1]                        # best val (all equal: the first, at p = 0) one update later
    assert res.table["patience_loss"].tolist() == [0.0]


def test_below_stops_a_seed_when_it_reaches_the_target():
    script = [[9, 8, 0.5, 0.1, 0, 0], [9, 8, 7, 6, 5, 4]]
    res = fit_seeds(Counter(2), [None], neg_p, optimizer=sgd, seeds=[0, 1], steps=5, evaluate=scripted(script),
                    early_stop=EarlyStop(monitor="val", below=1.0))
    assert res.table["steps"].tolist() == [2, 5] and counts(res) == [2, 5]
    assert res.table["status"].tolist() == ["early_stopped", "completed"]


def test_training_ends_when_every_seed_has_stopped():
    calls = []
    res = fit_seeds(Counter(2), lambda s: calls.append(s), neg_p, optimizer=sgd, seeds=[0, 1], steps=50,
                    evaluate=scripted([[1] * 60] * 2), early_stop=EarlyStop(monitor="val", below=2.0))
    assert calls == [0] and res.table["steps"].tolist() == [1, 1]


# ------------------------------------------------------------------------------- non-finite losses
def _nan_at(seed_index: int, at_p: int):
    def loss(m, batch):
        bad = torch.zeros_like(m.p, dtype=torch.bool)
        bad[seed_index] = m.p.detach()[seed_index] == at_p
        return torch.where(bad, torch.full_like(m.p, float("nan")), -m.p)
    return loss


def test_freeze_marks_the_seed_diverged_and_gives_back_its_best_parameters():
    script = [[9, 8, 7, 6, 5, 4, 3], [9, 2, 5, 4, 3, 2, 1]]
    res = fit_seeds(Counter(2), [None], _nan_at(1, 3), optimizer=sgd, seeds=[0, 1], steps=6, eval_at="before",
                    evaluate=scripted(script), nonfinite="freeze", early_stop=EarlyStop(restore="val"))
    # seed 1: measured p = 0, 1, 2 (best val 2 at p = 1), NaN loss at p = 3 (step 4): frozen with p = 1
    assert res.table["status"].tolist() == ["completed", "diverged"]
    assert counts(res) == [5, 1]
    assert res.table["steps"].tolist() == [6, 3]


def test_freeze_without_restore_gives_back_the_initial_parameters():
    res = fit_seeds(Counter(2), [None], _nan_at(0, 2), optimizer=sgd, seeds=[0, 1], steps=4, nonfinite="freeze")
    assert counts(res) == [0, 4] and res.table["status"].tolist() == ["diverged", "completed"]


def test_skip_gives_a_nonfinite_seed_no_gradient_and_keeps_it_training():
    res = fit_seeds(Counter(2), [None], _nan_at(0, 2), optimizer=sgd, seeds=[0, 1], steps=4, nonfinite="skip")
    # seed 0's loss is NaN at every step from p = 2 on: no gradient, so it stays at 2
    assert counts(res) == [2, 4] and res.table["status"].tolist() == ["completed", "completed"]


def test_raise_names_the_loss_and_the_step():
    with pytest.raises(ConfigError, match=r"training diverged \(loss nan at step 3\)"):
        fit_seeds(lambda seed: Counter(None), [None], lambda m, b: -m.p if float(m.p.detach()) < 2 else m.p * float("nan"),
                  optimizer=sgd, seeds=[0], steps=5, nonfinite="raise")


# ------------------------------------------------------------------------------- factory and data
def test_a_factory_trains_each_seed_alone_like_the_ensemble():
    script = [[9, 5, 3, 4, 2.5, 6, 7, 8], [9, 1, 2, 3, 4, 5, 6, 7]]
    built = []

    def factory(seed):
        built.append(seed)
        return Counter(None)

    def evaluate(m):   # the factory's networks are trained one after the other: seed = built[-1]
        return {"val": script[built[-1] - 10][int(round(float(m.p.detach())))]}

    alone = fit_seeds(factory, [None], neg_p, optimizer=sgd, seeds=[10, 11], steps=6, evaluate=evaluate,
                      early_stop=EarlyStop(restore="val"))
    together = fit_seeds(Counter(2), [None], neg_p, optimizer=sgd, seeds=[10, 11], steps=6,
                         evaluate=scripted(script), early_stop=EarlyStop(restore="val"))
    assert built == [10, 11] and set(alone.model) == {10, 11}
    assert [int(alone.model[s].p.detach()) for s in (10, 11)] == counts(together)
    pd.testing.assert_frame_equal(alone.table, together.table)
    pd.testing.assert_frame_equal(alone.history, together.history)


def test_sequence_data_cycles_per_epoch_and_callable_data_gets_the_step():
    seen = []
    fit_seeds(Counter(1), ["a", "b", "c"], lambda m, b: (seen.append(b), -m.p)[1], optimizer=sgd, seeds=[0],
              epochs=2)
    assert seen == ["a", "b", "c"] * 2
    seen.clear()
    fit_seeds(Counter(1), lambda s: s, lambda m, b: (seen.append(b), -m.p)[1], optimizer=sgd, seeds=[0],
              steps=5, start_step=2)
    assert seen == [2, 3, 4]


def test_eval_every_defaults_to_once_per_epoch_and_progress_counts_steps():
    steps_seen, prog = [], []
    res = fit_seeds(Counter(1), [1, 2], neg_p, optimizer=sgd, seeds=[0], epochs=3,
                    evaluate=lambda m: (steps_seen.append(int(m.p.detach())), {"val": float(m.p.detach())})[1],
                    progress=lambda d, t: prog.append((d, t)))
    assert steps_seen == [2, 4, 6]
    assert prog == [(k, 6) for k in range(1, 7)]
    assert res.history["val"].isna().tolist() == [True, False] * 3


# ------------------------------------------------------------------------------- real cells
def _gru_fit(seed_list):
    unit = cells.build("gru", 2, 4, seeds=seed_list, dtype="float64")
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(7, len(seed_list), 3, 2, generator=gen, dtype=torch.float64)
    y = torch.randn(7, len(seed_list), 3, 4, generator=gen, dtype=torch.float64)

    def loss(m, batch):
        out, _ = m(batch[0])
        return ((out - batch[1]) ** 2).mean(dim=(0, 2, 3))

    def evaluate(m):
        with torch.no_grad():
            return {"val": ((m(x.flip(0))[0] - y) ** 2).mean(dim=(0, 2, 3))}

    return fit_seeds(unit, [(x, y)], loss, optimizer=lambda ps: torch.optim.Adam(ps, lr=0.05), seeds=seed_list,
                     epochs=12, evaluate=evaluate, early_stop=EarlyStop(monitor="val", patience=2, restore="val"))


def test_a_fixed_seed_run_is_deterministic():
    a, b = _gru_fit([3, 4]), _gru_fit([3, 4])
    pd.testing.assert_frame_equal(a.history, b.history, check_exact=True)
    pd.testing.assert_frame_equal(a.table, b.table, check_exact=True)
    for p, q in zip(a.model.parameters(), b.model.parameters()):
        assert torch.equal(p, q)


def test_result_frame_summary_and_config():
    res = _gru_fit([3, 4])
    assert res.frame is res.table and list(res.table["seed"]) == [3, 4]
    assert {"seed", "step", "loss", "val"} <= set(res.history.columns)
    s = json.loads(json.dumps(res.summary()))
    assert s["seeds"] == [3, 4] and sum(s["statuses"].values()) == 2
    assert s["mean_final_loss"] == pytest.approx(res.table["final_loss"].mean())
    assert res.config["early_stop"]["restore"] == "val" and res.config["optimizer"] == "Adam"


def test_trainer_results_are_fit_results():
    from rnnmem.train import autocomplete, classify, sequence_tasks, timeseries

    for cls in (timeseries.TrainResult, classify.ClassifyResult, autocomplete.TrainResult,
                sequence_tasks.TrainResult):
        assert issubclass(cls, TrainResult)


# ------------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=3, epochs=2), "exactly one of steps and epochs"),
    (dict(steps=3, seeds=[1, 1]), "distinct"),
    (dict(steps=3, seeds=[]), "must not be empty"),
    (dict(steps=3, clip=1.0), "couple the seeds"),
    (dict(steps=3, eval_at="later"), "eval_at"),
    (dict(steps=3, nonfinite="nan"), "nonfinite"),
    (dict(steps=3, early_stop=EarlyStop(restore="val")), "no evaluate callback"),
    (dict(steps=3, early_stop=EarlyStop(restore="val", keep="after"), evaluate=lambda m: {"val": [1, 2]}),
     "eval_at='before'"),
    (dict(steps=3, early_stop=EarlyStop(restore="acc"), evaluate=lambda m: {"val": [1, 2]}), "returned val"),
    (dict(steps=3, evaluate=lambda m: {"val": [1, 2, 3]}), "one value per seed"),
])
def test_bad_settings_give_one_clear_error(kwargs, match):
    args = dict(optimizer=sgd, seeds=[0, 1])
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        fit_seeds(Counter(2), [None], neg_p, **args)


def test_bad_models_and_losses():
    with pytest.raises(ConfigError, match="leading seed dimension"):
        fit_seeds(Counter(3), [None], neg_p, optimizer=sgd, seeds=[0, 1], steps=1)
    with pytest.raises(ConfigError, match="per-seed loss"):
        fit_seeds(Counter(2), [None], lambda m, b: -m.p.sum(), optimizer=sgd, seeds=[0, 1], steps=1)
    with pytest.raises(ConfigError, match="epochs needs data as a sequence"):
        fit_seeds(Counter(2), lambda s: None, neg_p, optimizer=sgd, seeds=[0, 1], epochs=1)
    for bad in (dict(patience=0), dict(min_delta=-1.0), dict(keep="later"), dict(below=float("inf"))):
        with pytest.raises(ConfigError):
            EarlyStop(**bad)


# ------------------------------------------------------------------------------- layering
def test_tasks_never_import_the_training_layer():
    root = Path(__file__).resolve().parents[1] / "src" / "rnnmem" / "tasks"
    offenders = []
    for path in sorted(root.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                mod = ("." * node.level) + (node.module or "")
                if mod.startswith("..train") or mod.startswith("rnnmem.train"):
                    offenders.append(f"{path.name}: from {mod} import ...")
            elif isinstance(node, ast.Import):
                offenders += [f"{path.name}: import {a.name}" for a in node.names if a.name.startswith("rnnmem.train")]
    assert not offenders, offenders
