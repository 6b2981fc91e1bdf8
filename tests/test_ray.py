"""The Ray executor on a local Ray instance (ray.init(num_cpus=2)): same table as the local
executor, a killed worker loses and duplicates nothing, a killed driver resumes."""

from __future__ import annotations

import collections
import os
import subprocess
import sys
import textwrap
import time

import pandas as pd
import pytest

ray = pytest.importorskip("ray")

from rnnmem.store import ResultStore, Task, TaskFailed, run_key, run_tasks  # noqa: E402
from rnnmem.store.testing import ENV, calls, kill_when_stored  # noqa: E402

pytestmark = pytest.mark.ray
TOY = "rnnmem.store.testing:toy_run"
VOLATILE = ["wall_s", "started_at"]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A local Ray instance whose workers see the toy study's fault-injection folder."""
    toy = tmp_path_factory.mktemp("toy")
    saved = os.environ.get(ENV)
    os.environ[ENV] = str(toy)          # before ray.init: the workers inherit it
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield toy, ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()
        if saved is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = saved


@pytest.fixture
def toy(cluster):
    folder, _ = cluster
    for f in folder.iterdir():
        f.unlink()
    return folder


def reference(tmp_path, tasks):
    saved = os.environ.pop(ENV)
    try:
        with ResultStore(tmp_path / "ref.sqlite") as st:
            return run_tasks(tasks, TOY, st, workers=0, progress=False).drop(columns=VOLATILE)
    finally:
        os.environ[ENV] = saved


def computed(folder) -> collections.Counter:
    return collections.Counter((c["config"]["n"], s) for c in calls(folder) for s in c["seeds"])


def test_same_table_as_local_executor_even_when_a_worker_is_killed(tmp_path, toy):
    tasks = [Task("toy", {"n": n}, [0, 1, 2]) for n in range(1, 11)]
    ref = reference(tmp_path, tasks)
    (toy / "crash_once").write_text("")
    with ResultStore(tmp_path / "r.sqlite") as st:
        table = run_tasks(tasks, TOY, st, executor="ray", progress=False)
        assert len(st) == 30
    assert (toy / "crash_once.done").exists()                 # one worker process really died (os._exit)
    pd.testing.assert_frame_equal(table.drop(columns=VOLATILE), ref)
    counts = computed(toy)
    assert set(counts) == set(zip(ref["config.n"], ref.seed)) and set(counts.values()) == {1}


def test_persistent_failures_are_retried_then_reported(tmp_path, toy):
    (toy / "fail_after").write_text("0")
    with ResultStore(tmp_path / "r.sqlite") as st:
        with pytest.raises(TaskFailed, match="2 of 2 tasks failed.*3 attempts.*injected failure"):
            run_tasks([Task("toy", {"n": n}, [0]) for n in (1, 2)], TOY, st, executor="ray", progress=False)
        assert len(st) == 0


DRIVER = textwrap.dedent("""
    import sys
    from rnnmem.store import ResultStore, Task, run_tasks
    tasks = [Task("toy", {"n": n}, [0, 1]) for n in range(1, 21)]
    with ResultStore(sys.argv[1]) as st:
        run_tasks(tasks, "rnnmem.store.testing:toy_run", st, executor="ray", address=sys.argv[2], progress=False)
""")


def test_driver_killed_and_restarted_resumes_with_every_run_once(tmp_path, cluster, toy):
    _, address = cluster
    tasks = [Task("toy", {"n": n}, [0, 1]) for n in range(1, 21)]
    ref = reference(tmp_path, tasks)
    db = tmp_path / "r.sqlite"
    (toy / "sleep").write_text("0.4")
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(db), address], env=dict(os.environ),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    before = kill_when_stored(proc, db, 8, timeout=90, poll=0.2)
    assert 8 <= len(before) < 40, "the driver should have been killed part-way"
    (toy / "sleep").unlink()
    time.sleep(1.0)                                           # let the dead driver's in-flight tasks drain
    if (toy / "calls.log").exists():
        os.rename(toy / "calls.log", toy / "first.log")
    with ResultStore(db) as st:
        table = run_tasks(tasks, TOY, st, executor="ray", progress=False)
        assert len(st) == 40
    pd.testing.assert_frame_equal(table.drop(columns=VOLATILE), ref)
    second = computed(toy)
    keys = {(n, s): run_key("toy", {"n": n, "scale": 1.0, "label": ""}, s) for n in range(1, 21) for s in (0, 1)}
    assert not {run for run, k in keys.items() if k in before} & set(second)   # nothing stored was recomputed
    assert {run for run, k in keys.items() if k not in before} <= set(second)  # everything missing was


def test_sweep_cli_with_the_ray_executor(tmp_path, toy):
    import yaml
    from typer.testing import CliRunner

    from rnnmem.cli import app

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "toy", "grid": {"n": {"log2": [0, 3]}}, "seeds": 3, "db": "r.sqlite"}))
    res = CliRunner().invoke(app, ["sweep", str(path), "--executor", "ray", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ResultStore(tmp_path / "r.sqlite") as st:
        assert len(st) == 12
    assert len(calls(toy)) == 4
