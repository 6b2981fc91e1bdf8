"""The memory-stability study: grid, store, resume, report, CLI."""

from __future__ import annotations

import subprocess
import sys

import pandas as pd
import pytest

from rnnmem.errors import ConfigError
from rnnmem.store import ResultStore, pending_tasks, run_tasks
from rnnmem.studies.muccino import aggregate, grid_tasks, runs_frame, validate_config

FN = "rnnmem.studies.muccino:run_cell"
SMALL = dict(T=4000, P=200)


def _metrics(df: pd.DataFrame) -> pd.DataFrame:
    cols = [c for c in df.columns if c.startswith(("steps_", "censored_")) or c in ("status", "rate", "seed")]
    cols = [c for c in cols if c != "steps_computed"]
    key = [c for c in df.columns if c.endswith(("cell", "input_size", "units"))]
    return df.sort_values(key + ["seed"]).reset_index(drop=True)[key + cols]


def test_resume_after_interruption_gives_same_table_and_reruns_nothing(tmp_path):
    tasks = grid_tasks(cells=("lstm", "gru"), input_sizes=(1, 4), units=(2, 8), runs=2, **SMALL)
    with ResultStore(tmp_path / "full.sqlite") as store:
        full = run_tasks(tasks, FN, store, workers=0, progress=False)
    with ResultStore(tmp_path / "resumed.sqlite") as store:
        run_tasks(tasks[:3], FN, store, workers=0, progress=False)  # the sweep "dies" after 3 tasks
        first = store.load().set_index("key")["started_at"]
        pending, _ = pending_tasks(tasks, store)
        assert sum(1 for t in pending if t.seeds) == len(tasks) - 3
        resumed = run_tasks(tasks, FN, store, workers=0, progress=False)
        after = store.load().set_index("key")["started_at"]
    assert (after.loc[first.index] == first).all(), "stored runs were recomputed"
    assert len(resumed) == len(full) == len(tasks) * 2
    pd.testing.assert_frame_equal(_metrics(full), _metrics(resumed))


def test_aggregate_counts_censored_and_never_averages_them(tmp_path):
    tasks = grid_tasks(cells=("lstm",), input_sizes=(8,), units=(64,), runs=2, **SMALL)
    with ResultStore(tmp_path / "r.sqlite") as store:
        df = runs_frame(run_tasks(tasks, FN, store, workers=0, progress=False))
    agg = aggregate(df)
    row = agg.iloc[0]
    assert row["runs"] == 2
    assert row["censored_exact"] == 2 and pd.isna(row["mean_exact"])  # float32 64 units: rounding floor
    assert row["censored_0.01"] == 0 and row["mean_0.01"] > 0


def test_bad_config_is_one_clear_error():
    with pytest.raises(ConfigError, match="unknown cell"):
        validate_config({"cell": "lstn", "input_size": 1, "units": 1})
    with pytest.raises(ConfigError, match="P=1000 must be shorter"):
        validate_config({"cell": "lstm", "input_size": 1, "units": 1, "T": 1000})
    with pytest.raises(ConfigError, match="tolerances must be finite and >= 0"):
        validate_config({"cell": "lstm", "input_size": 1, "units": 1, "tolerances": [-1]})
    with pytest.raises(ConfigError, match="unknown variant"):
        grid_tasks(variants=("keras-float16",))


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "rnnmem.cli", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=300)


def test_reproduce_cli_writes_report_and_resumes(tmp_path):
    out = tmp_path / "rep"
    args = ["reproduce", "muccino", "--out", str(out), "--sizes", "1,4", "--runs", "2", "--T", "3000", "--P", "200",
            "--variants", "keras-float32,torch-float32", "--workers", "0"]
    first = _cli(*args)
    assert first.returncode == 0, first.stderr
    for name in ("report.md", "report.html", "runs.csv", "summary.csv", "results.sqlite",
                 "figures/heatmap_main.png", "figures/heatmap_rate.png", "figures/heatmap_main_torch-float32.png"):
        assert (out / name).is_file(), name
    text = (out / "report.md").read_text()
    assert "published LSTM" not in text or "trend" in text
    assert "more units -> longer memory" in text and "censored" in text
    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 2 * 2 * 2 * 2 * 2  # variants x cells x inputs x units x runs
    again = _cli(*args)
    assert again.returncode == 0
    assert pd.read_csv(out / "runs.csv").drop(columns=["wall_s"]).equals(runs.drop(columns=["wall_s"]))


def test_cli_bad_input_is_one_line(tmp_path):
    res = _cli("forgetting", "--cell", "lstm", "--T", "100", "--P", "100")
    assert res.returncode == 2
    assert res.stderr.strip().startswith("error:") and len(res.stderr.strip().splitlines()) == 1
    bad = tmp_path / "x.pt"
    bad.write_text("nope")
    res = _cli("forgetting", "--state-dict", str(bad), "--T", "2000", "--P", "100")
    assert res.returncode == 2 and "cannot read" in res.stderr
    res = _cli("forgetting", "--cell", "lstm", "--tol", "-1e-3", "--T", "2000", "--P", "100")
    assert res.returncode == 2 and "tolerances must be finite" in res.stderr


def test_sweep_yaml_runs_the_forgetting_study_into_the_same_keys(tmp_path):
    (tmp_path / "f.yaml").write_text(
        "study: forgetting\ngrid:\n  cell: [gru]\n  input_size: [2]\n  units: {log2: [1, 2]}\n"
        "fixed:\n  convention: keras\n  T: 3000\n  P: 200\nseeds: 2\n")
    res = _cli("sweep", str(tmp_path / "f.yaml"), "--workers", "0")
    assert res.returncode == 0, res.stderr
    tasks = grid_tasks(cells=("gru",), input_sizes=(2,), units=(2, 4), runs=2, T=3000, P=200)
    with ResultStore(tmp_path / "f.sqlite") as store:
        pending, _ = pending_tasks(tasks, store)
        assert all(not t.seeds for t in pending), "reproduce and sweep must share run keys"
