"""The forgetting study's stored config and run keys record every setting that changes a status
(``growth_min``), and its status counts cover the probe's whole status vocabulary."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from rnnmem.errors import ConfigError
from rnnmem.probes.forgetting import STATUSES, ForgettingSettings
from rnnmem.store import ResultStore, RunRecord, pending_tasks, run_key, run_tasks
from rnnmem.store.registry import canonical_config
from rnnmem.studies import muccino
from rnnmem.studies.muccino import STUDY, aggregate, censored_at, grid_tasks, validate_config
from rnnmem.studies.muccino_report import STATUS_LABELS

BASE = {"cell": "gru", "input_size": 1, "units": 2, "T": 400, "P": 100}


def test_growth_min_is_in_the_stored_config_and_the_key():
    default = ForgettingSettings().growth_min
    task = grid_tasks(cells=("gru",), input_sizes=(1,), units=(2,), runs=1, T=400, P=100)[0]
    assert task.config["growth_min"] == default
    assert canonical_config(STUDY, BASE)["growth_min"] == default
    other = canonical_config(STUDY, {**BASE, "growth_min": 0.5})
    assert other["growth_min"] == 0.5
    assert run_key(STUDY, canonical_config(STUDY, BASE), 0) != run_key(STUDY, other, 0)
    assert validate_config({**BASE, "growth_min": 0.5}).settings().growth_min == 0.5
    with pytest.raises(ConfigError, match="growth_min"):
        validate_config({**BASE, "growth_min": 0.0})


def test_runs_stored_before_growth_min_was_recorded_are_not_resumed(tmp_path):
    """A store written before the setting existed holds configs without ``growth_min``: resuming
    the same grid must not reuse them (they were labelled by another rule), but rerun them."""
    tasks = grid_tasks(cells=("gru",), input_sizes=(1,), units=(2,), runs=2, T=400, P=100)
    new = tasks[0].config
    old = {k: v for k, v in new.items() if k != "growth_min"}  # the config as stored before
    with ResultStore(tmp_path / "old.sqlite") as store:
        store.put(RunRecord(STUDY, old, 0, "censored", {"rate": 0.1}))
        pending, keys = pending_tasks(tasks, store)
        assert pending[0].seeds == [0, 1], "a run stored under the old config was taken for a new one"
        assert run_key(STUDY, old, 0) not in keys[0]
        resumed = run_tasks(tasks, "rnnmem.studies.muccino:run_cell", store, workers=0, progress=False)
        everything = store.load()
    assert sorted(resumed["seed"]) == [0, 1] and (resumed["config.growth_min"] == new["growth_min"]).all()
    assert len(everything) == 3  # the old run is kept, apart: its config has no growth_min
    assert everything["config.growth_min"].isna().sum() == 1


def test_run_cell_passes_growth_min_to_the_probe(monkeypatch):
    seen = []
    real = muccino.forgetting

    def spy(unit, settings):
        seen.append(settings)
        return real(unit, settings)

    monkeypatch.setattr(muccino, "forgetting", spy)
    cfg = validate_config({**BASE, "growth_min": 0.7}).model_dump()
    records = muccino.run_cell(cfg, [0])
    assert seen[0].growth_min == 0.7
    assert records[0].config["growth_min"] == 0.7


def test_status_counts_cover_every_status_and_overflow_is_censored_where_it_stopped():
    assert set(STATUS_LABELS) == {f"n_{s}" for s in STATUSES}
    runs = pd.DataFrame({
        "variant": "keras-float32", "cell": "gru", "input_size": 1, "units": 2, "seed": [0, 1, 2],
        "status": ["overflow", "floor", "censored"], "P": 100, "event_step": [900.0, 499.0, np.nan],
        "steps_computed": 2000, "rate": [-0.01, 0.2, 0.0],
        "steps_0.01": [np.nan, 12.0, np.nan], "censored_0.01": [True, False, True],
    })
    row = aggregate(runs, tolerances=(1e-2,)).iloc[0]
    for s in STATUSES:
        assert row[f"n_{s}"] == int((runs["status"] == s).sum()), s
    # followed for: the steps before the overflow (900 - 100), through the floor step, until T
    assert list(censored_at(runs)) == [800.0, 400.0, 1900.0]
    assert row["censored_0.01"] == 2 and math.isnan(row["mean_0.01"])
