"""The sweep runner: skip stored runs, resume after failures and kills, one row per run."""

from __future__ import annotations

import collections
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from rnnmem.errors import ConfigError
from rnnmem.store import ResultStore, RunRecord, Task, TaskFailed, run_key, run_tasks
from rnnmem.store.testing import ENV, calls, kill_when_stored

TOY = "rnnmem.store.testing:toy_run"
VOLATILE = ["wall_s", "started_at"]


@pytest.fixture
def toy_dir(tmp_path, monkeypatch):
    d = tmp_path / "toy"
    d.mkdir()
    monkeypatch.setenv(ENV, str(d))
    return d


def toy_tasks(sizes=(1, 2, 3, 4, 5, 6), seeds=(0, 1, 2)):
    return [Task("toy", {"n": n}, list(seeds)) for n in sizes]


def computed(toy_dir) -> collections.Counter:
    """How many times each (n, seed) run was computed, from the toy study's call log."""
    return collections.Counter((c["config"]["n"], s) for c in calls(toy_dir) for s in c["seeds"])


def reference(tmp_path, tasks, name="ref.sqlite"):
    saved = os.environ.pop(ENV, None)
    try:
        with ResultStore(tmp_path / name) as st:
            return run_tasks(tasks, TOY, st, workers=0, progress=False).drop(columns=VOLATILE)
    finally:
        if saved is not None:
            os.environ[ENV] = saved


def test_results_match_an_independent_computation(tmp_path, toy_dir):
    with ResultStore(tmp_path / "r.sqlite") as st:
        df = run_tasks(toy_tasks(sizes=(3, 1), seeds=(5, 4)), TOY, st, workers=0, progress=False)
        assert list(zip(df["config.n"], df.seed)) == [(3, 5), (3, 4), (1, 5), (1, 4)]  # task order, seed order
        for n, seed, mean, mx in zip(df["config.n"], df.seed, df["mean"], df["max"]):
            x = np.random.default_rng([seed, n]).standard_normal(n)
            assert mean == x.mean() and mx == x.max()
        curve = st.curves(df.key.iloc[0])["running_mean"]
        x = np.random.default_rng([5, 3]).standard_normal(3)
        assert np.allclose(curve, np.cumsum(x) / [1, 2, 3])
        assert (df.wall_s > 0).all() and df.started_at.str.len().gt(0).all()
        # keys are of the full (validated) config: asking with or without defaults is the same run
        assert df.key.iloc[0] == run_key("toy", {"n": 3, "scale": 1.0, "label": ""}, 5)


def test_rerun_skips_stored_runs_and_runs_only_missing_seeds(tmp_path, toy_dir):
    with ResultStore(tmp_path / "r.sqlite") as st:
        first = run_tasks(toy_tasks(seeds=(0, 1)), TOY, st, workers=0, progress=False)
        assert sum(computed(toy_dir).values()) == 12
        again = run_tasks(toy_tasks(seeds=(0, 1)), TOY, st, workers=0, progress=False)
        assert sum(computed(toy_dir).values()) == 12      # nothing recomputed
        pd.testing.assert_frame_equal(first, again)
        more = run_tasks(toy_tasks(seeds=(0, 1, 2)), TOY, st, workers=0, progress=False)
        counts = computed(toy_dir)
        assert sum(counts.values()) == 18 and set(counts.values()) == {1}
        assert len(more) == 18 and len(st) == 18
        assert [c["seeds"] for c in calls(toy_dir)[6:]] == [[2]] * 6   # one task per config, missing seed only


def test_resume_after_failures_gives_the_same_table_and_reruns_nothing(tmp_path, toy_dir):
    tasks = toy_tasks()
    ref = reference(tmp_path, tasks)
    (toy_dir / "fail_after").write_text("2")
    with ResultStore(tmp_path / "r.sqlite") as st:
        with pytest.raises(TaskFailed, match="4 of 6 tasks failed.*injected failure"):
            run_tasks(tasks, TOY, st, workers=0, progress=False, retries=1)
        assert len(st) == 6                                  # the two finished tasks are kept
    (toy_dir / "fail_after").unlink()
    with ResultStore(tmp_path / "r.sqlite") as st:
        table = run_tasks(tasks, TOY, st, workers=0, progress=False)
    pd.testing.assert_frame_equal(table.drop(columns=VOLATILE), ref)
    counts = computed(toy_dir)
    assert len(counts) == 18 and set(counts.values()) == {1}  # every run computed exactly once


DRIVER = textwrap.dedent("""
    import sys
    from rnnmem.store import ResultStore, Task, run_tasks
    tasks = [Task("toy", {"n": n}, [0, 1, 2]) for n in range(1, 13)]
    with ResultStore(sys.argv[1]) as st:
        run_tasks(tasks, "rnnmem.store.testing:toy_run", st, workers=0, progress=False)
""")


def test_sigkill_mid_sweep_then_resume(tmp_path, toy_dir):
    tasks = [Task("toy", {"n": n}, [0, 1, 2]) for n in range(1, 13)]
    ref = reference(tmp_path, tasks)
    db = tmp_path / "r.sqlite"
    (toy_dir / "sleep").write_text("0.15")
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, str(db)], env=dict(os.environ))
    before = kill_when_stored(proc, db, 9, timeout=60)
    assert 9 <= len(before) < 36, "the sweep should have been killed part-way"
    first_pass = computed(toy_dir)
    (toy_dir / "sleep").unlink()
    os.rename(toy_dir / "calls.log", toy_dir / "first.log")
    with ResultStore(db) as st:
        table = run_tasks(tasks, TOY, st, workers=0, progress=False)
    pd.testing.assert_frame_equal(table.drop(columns=VOLATILE), ref)
    second = computed(toy_dir)
    stored_runs = {(n, s) for n, s in zip(table["config.n"], table.seed)
                   if run_key("toy", {"n": int(n), "scale": 1.0, "label": ""}, int(s)) in before}
    assert len(stored_runs) == len(before)
    assert not stored_runs & set(second)                      # nothing stored was recomputed
    assert set(second) | stored_runs == set(zip(table["config.n"], table.seed))
    assert set(second.values()) == {1} and set(first_pass.values()) == {1}


class Batches:
    """An executor that runs its queued jobs in this process and reports them ``size`` at a time:
    several tasks finishing together, as a busy driver sees them from a pool."""

    name = "batches"

    def __init__(self, fn: str, size: int):
        self.fn, self.size, self.queue = fn, size, []

    def capacity(self):
        return self.size

    def submit(self, job):
        self.queue.append(job)

    def in_flight(self):
        return len(self.queue)

    def wait(self, timeout=None):
        from rnnmem.store.executors import execute

        done, self.queue = self.queue[:self.size], self.queue[self.size:]
        return [(job, execute(self.fn, job.task.config, job.task.seeds, one_thread=False)) for job in done]

    def close(self):
        self.queue.clear()


class CommitCounter:
    """Stands in for a store's SQLite connection: counts COMMITs and fails the ``fail_at``-th one
    (after its rows were inserted), as a disk error or a kill between insert and commit would."""

    def __init__(self, con, fail_at: int | None = None):
        self.con, self.fail_at, self.commits = con, fail_at, 0

    def execute(self, sql, *args):
        if sql == "COMMIT":
            self.commits += 1
            if self.commits == self.fail_at:
                raise sqlite3.OperationalError("disk I/O error (injected before COMMIT)")
        return self.con.execute(sql, *args)

    def __getattr__(self, name):
        return getattr(self.con, name)


def test_tasks_finishing_together_are_stored_in_one_transaction_all_or_nothing(tmp_path, toy_dir, monkeypatch):
    import rnnmem.store.runner as runner

    tasks = toy_tasks()                                   # 6 tasks x 3 seeds
    ref = reference(tmp_path, tasks)
    monkeypatch.setattr(runner, "make_executor", lambda kind, fn, **kw: Batches(fn, 3))
    with ResultStore(tmp_path / "one.sqlite") as st:
        st._con = counter = CommitCounter(st._con)
        table = run_tasks(tasks, TOY, st, progress=False)
        assert counter.commits == 2                       # two rounds of three finished tasks: two transactions
    pd.testing.assert_frame_equal(table.drop(columns=VOLATILE), ref)

    os.remove(toy_dir / "calls.log")
    with ResultStore(tmp_path / "r.sqlite") as st:
        real = st._con
        st._con = CommitCounter(real, fail_at=2)
        with pytest.raises(sqlite3.OperationalError, match="injected"):
            run_tasks(tasks, TOY, st, progress=False)
        st._con = real
        assert len(st) == 9                               # the first batch, whole; none of the second
        first = computed(toy_dir)
        table = run_tasks(tasks, TOY, st, progress=False)  # resume
        assert len(st) == 18
    pd.testing.assert_frame_equal(table.drop(columns=VOLATILE), ref)
    counts = computed(toy_dir)
    assert set(first.values()) == {1} and len(first) == 18   # the second batch was computed, then lost
    batch1 = {(n, s) for n in (1, 2, 3) for s in (0, 1, 2)}
    assert {k for k, v in counts.items() if v == 1} == batch1  # stored runs were not recomputed
    assert {k for k, v in counts.items() if v == 2} == set(counts) - batch1


POOL_DRIVER = textwrap.dedent("""
    import sys
    from rnnmem.store import ResultStore, Task, run_tasks
    tasks = [Task("toy", {"n": n}, [0, 1, 2]) for n in range(1, 13)]
    with ResultStore(sys.argv[1]) as st:
        run_tasks(tasks, "rnnmem.store.testing:toy_run", st, workers=2, progress=False)
""")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
def test_pooled_sweep_killed_mid_way_resumes_without_duplicates(tmp_path, toy_dir):
    """SIGKILL of a driver with two busy pool workers, after some batches are stored: the stored
    runs are whole, the resumed sweep computes only the rest, and the table is the reference's."""
    tasks = [Task("toy", {"n": n}, [0, 1, 2]) for n in range(1, 13)]
    ref = reference(tmp_path, tasks)
    db = tmp_path / "r.sqlite"
    (toy_dir / "sleep").write_text("0.3")
    proc = subprocess.Popen([sys.executable, "-c", POOL_DRIVER, str(db)], env=dict(os.environ))
    procs: dict[int, tuple[int, str]] = {}
    try:
        deadline, stored = time.time() + 120, 0
        while time.time() < deadline and stored < 9 and proc.poll() is None:
            time.sleep(0.05)
            procs.update(_descendants(proc.pid))
            if db.exists() and db.stat().st_size > 0:  # the driver has set the file up
                with ResultStore(db) as st:
                    stored = len(st)
        procs.update(_descendants(proc.pid))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        assert len(_pool_workers(proc.pid, procs)) == 2, procs
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in procs):
            time.sleep(0.1)
        assert not [p for p in procs if _alive(p)], "workers outlived their driver"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in procs:
            if _alive(p):
                os.kill(p, signal.SIGKILL)
    with ResultStore(db) as st:
        before = st.keys()
    assert 9 <= len(before) < 36 and len(before) % 3 == 0, "killed part-way, whole tasks stored"
    first_pass = computed(toy_dir)
    (toy_dir / "sleep").unlink()
    os.rename(toy_dir / "calls.log", toy_dir / "first.log")
    with ResultStore(db) as st:
        table = run_tasks(tasks, TOY, st, workers=2, progress=False)
        assert len(st) == 36
    pd.testing.assert_frame_equal(table.drop(columns=VOLATILE), ref)
    second = computed(toy_dir)
    stored_runs = {(n, s) for n, s in zip(table["config.n"], table.seed)
                   if run_key("toy", {"n": int(n), "scale": 1.0, "label": ""}, int(s)) in before}
    assert len(stored_runs) == len(before)
    assert not stored_runs & set(second)                      # nothing stored was recomputed
    assert set(second) | stored_runs == set(zip(table["config.n"], table.seed))
    assert set(second.values()) == {1} and set(first_pass.values()) == {1}


def test_pool_workers_see_the_drivers_current_environment(tmp_path, monkeypatch):
    """Workers forked from a fork server started for an earlier sweep still get the environment the
    driver has now (the toy study logs its calls to the folder named by RNNMEM_TOY_DIR)."""
    a, b = tmp_path / "a", tmp_path / "b"
    a.mkdir()
    b.mkdir()
    with ResultStore(tmp_path / "r.sqlite") as st:
        monkeypatch.setenv(ENV, str(a))
        run_tasks(toy_tasks(sizes=(1, 2)), TOY, st, workers=2, progress=False)
        monkeypatch.setenv(ENV, str(b))
        run_tasks(toy_tasks(sizes=(3, 4)), TOY, st, workers=2, progress=False)
    assert sorted(c["config"]["n"] for c in calls(a)) == [1, 2]
    assert sorted(c["config"]["n"] for c in calls(b)) == [3, 4]
    assert os.getpid() not in {c["pid"] for c in calls(a) + calls(b)}


PRELOAD_STUDY = textwrap.dedent("""
    import os
    IMPORTED_IN = os.getpid()
    from rnnmem.store import RunRecord
    def run(config, seeds):
        return [RunRecord("preload", config, s, "ok", {"imported_in_worker": IMPORTED_IN == os.getpid(),
                                                       "pid": os.getpid()}) for s in seeds]
""")
PRELOAD_DRIVER = textwrap.dedent("""
    import json, os, sys
    from rnnmem.store import ResultStore, Task, run_tasks
    with ResultStore(sys.argv[1]) as st:
        df = run_tasks([Task("preload", {"x": x}, [0]) for x in range(4)], "preload_study:run", st, workers=2,
                       progress=False)
    print(json.dumps({"driver": os.getpid(), "imported_in_worker": df.imported_in_worker.tolist(),
                      "pids": df.pid.tolist()}))
""")


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here")
def test_pool_workers_start_with_the_study_module_imported(tmp_path):
    """The study's module is imported once, by the fork server, before any worker exists: a fresh
    driver's workers find it already loaded (with spawn each worker imported it itself)."""
    import json

    (tmp_path / "preload_study.py").write_text(PRELOAD_STUDY)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", PRELOAD_DRIVER, str(tmp_path / "r.sqlite")], env=env,
                         capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout.strip().splitlines()[-1])
    assert res["driver"] not in res["pids"]
    assert res["imported_in_worker"] == [False] * 4


def test_process_pool_with_a_killed_worker_loses_and_duplicates_nothing(tmp_path, toy_dir):
    tasks = toy_tasks(sizes=(1, 2, 3, 4, 5, 6, 7, 8))
    ref = reference(tmp_path, tasks)
    (toy_dir / "crash_once").write_text("")
    with ResultStore(tmp_path / "r.sqlite") as st:
        table = run_tasks(tasks, TOY, st, workers=2, progress=False)
        assert len(st) == 24
    assert (toy_dir / "crash_once.done").exists()               # a worker really died
    pd.testing.assert_frame_equal(table.drop(columns=VOLATILE), ref)
    assert os.getpid() not in {c["pid"] for c in calls(toy_dir)}  # the work ran in worker processes
    assert set(computed(toy_dir)) == set(zip(ref["config.n"], ref.seed))


def _descendants(pid: int) -> dict[int, tuple[int, str]]:
    """Every process below ``pid`` (children, grandchildren...): pid -> (parent pid, command line)."""
    table = {}
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            ppid = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            table[int(d.name)] = (ppid, (d / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"))
        except (OSError, ValueError, IndexError):
            continue
    out, frontier = {}, {pid}
    while frontier:
        frontier = {p for p, (pp, _) in table.items() if pp in frontier and p not in out}
        out.update({p: table[p] for p in frontier})
    return out


def _pool_workers(driver: int, procs: dict[int, tuple[int, str]]) -> list[int]:
    """The pool workers among a driver's descendants: spawned children of the driver, or processes
    forked by its multiprocessing fork server (same command line as the server, parent the server)."""
    server = {p for p, (pp, cmd) in procs.items() if pp == driver and "multiprocessing.forkserver" in cmd}
    return [p for p, (pp, cmd) in procs.items() if (pp == driver and "spawn_main" in cmd) or pp in server]


def _alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped counts as gone)."""
    try:
        return (Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]) not in ("Z", "X")
    except (OSError, IndexError):
        return False


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the process table from /proc (Linux)")
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
def test_killing_the_sweep_driver_ends_its_workers_and_resource_tracker(tmp_path, toy_dir, sig):
    """A sweep driver killed while its two pool workers are busy: within a few seconds no worker, no
    fork server and no multiprocessing resource tracker of that driver is left (before: they ran
    forever, re-parented to PID 1). SIGTERM is a clean shutdown: the driver closes its pool and
    exits with 128 + 15."""
    (toy_dir / "sleep").write_text("120")  # every task outlives the test: the workers are busy when it dies
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"study: toy\ngrid:\n  n: [1, 2, 3, 4, 5, 6]\nseeds: 2\ndb: {tmp_path / 'r.sqlite'}\n")
    log = tmp_path / "driver.log"  # a file, not a pipe: orphaned workers would hold a pipe open
    with open(log, "w") as out:
        driver = subprocess.Popen([sys.executable, "-m", "rnnmem.cli", "sweep", str(sweep), "--workers", "2",
                                   "--no-progress"], env=dict(os.environ), stdout=out, stderr=subprocess.STDOUT)
    kids: dict[int, tuple[int, str]] = {}
    try:
        deadline = time.time() + 120
        while time.time() < deadline and driver.poll() is None:
            kids = _descendants(driver.pid)
            if len(_pool_workers(driver.pid, kids)) == 2:
                break
            time.sleep(0.2)
        workers = _pool_workers(driver.pid, kids)
        assert len(workers) == 2, (kids, driver.poll())
        assert any("resource_tracker" in cmd for _, cmd in kids.values()), kids
        time.sleep(2.0)  # let the workers pick up their (sleeping) tasks
        os.kill(driver.pid, sig)
        driver.wait(timeout=60)
        if sig == signal.SIGTERM:
            assert driver.returncode == 128 + signal.SIGTERM, log.read_text()
        deadline = time.time() + 10
        while time.time() < deadline and any(_alive(p) for p in kids):
            time.sleep(0.1)
        left = {p: kids[p] for p in kids if _alive(p)}
        assert not left, f"still running 10 s after the driver died: {left}"
    finally:
        if driver.poll() is None:
            driver.kill()
            driver.wait()
        for p in kids:  # only this test's own processes
            if _alive(p):
                os.kill(p, signal.SIGKILL)


def adhoc(config, seeds):
    """An unregistered study whose function fills in a default option."""
    return [RunRecord("adhoc", {**config, "depth": 2}, s, "ok", {"v": config["x"] * 10 + s}) for s in seeds]


def wrong_seeds(config, seeds):
    return [RunRecord("adhoc", config, s + 100, "ok", {}) for s in seeds]


def test_unregistered_study_with_filled_in_defaults_is_keyed_by_the_request(tmp_path):
    tasks = [Task("adhoc", {"x": x}, [0, 1]) for x in (1, 2)]
    with ResultStore(tmp_path / "r.sqlite") as st:
        df = run_tasks(tasks, "test_runner:adhoc", st, workers=0, progress=False)
        assert df.v.tolist() == [10, 11, 20, 21] and df["config.depth"].tolist() == [2] * 4
        assert df.key.iloc[0] == run_key("adhoc", {"x": 1}, 0)
        assert st.get(df.key.iloc[0]).config == {"x": 1, "depth": 2}
        again = run_tasks(tasks, "test_runner:wrong_seeds", st, workers=0, progress=False)  # all stored: not called
        pd.testing.assert_frame_equal(df, again)
        with pytest.raises(TaskFailed, match="one RunRecord per seed"):
            run_tasks([Task("adhoc", {"x": 3}, [0])], "test_runner:wrong_seeds", st, workers=0, progress=False)


def test_bad_arguments_fail_before_running(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as st:
        with pytest.raises(ConfigError, match="module:function"):
            run_tasks(toy_tasks(), "toy_run", st, progress=False)
        with pytest.raises(ConfigError, match="cannot import"):
            run_tasks(toy_tasks(), "no_such_module_xyz:f", st, progress=False)
        with pytest.raises(ConfigError, match="unknown option"):
            run_tasks([Task("toy", {"n": 2, "bogus": 1}, [0])], TOY, st, progress=False)
        with pytest.raises(ConfigError, match="seed twice"):
            run_tasks([Task("toy", {"n": 2}, [0, 0])], TOY, st, progress=False)
        with pytest.raises(ConfigError, match="unknown executor"):
            run_tasks(toy_tasks(), TOY, st, executor="dask", progress=False)
        assert len(st) == 0
