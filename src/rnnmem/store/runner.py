"""Run a list of tasks into a ResultStore, skipping what is stored, resuming what is not.

``run_tasks(tasks, "module:function", store)`` is the whole sweep machinery:

1. Each task's config is canonicalised by its study's pydantic model when the study is registered
   (rnnmem.store.registry; ``run_tasks`` imports the function's module first, so its study has
   registered), so the same request always has the same run keys.
2. Seeds whose ``run_key(study, config, seed)`` is already stored are dropped; tasks left with no
   seed are skipped entirely. Nothing stored is ever recomputed.
3. The rest run on an executor (executors.py: in-process, a local process pool, or Ray). The
   calling process is the only one that writes SQLite: the records of the tasks that finished
   since the driver last looked (one task, or several that finished together) are stored in one
   transaction as soon as they arrive, so killing the sweep loses only the tasks in flight and
   never part of a task.
4. A task that raises or whose worker dies is resubmitted (``retries`` more attempts). Tasks still
   failing are reported together in one error after every other task has been stored; running
   the same call again retries only them.
"""

from __future__ import annotations

import contextlib
import signal
import threading
import time
from collections import deque

import pandas as pd

from ..errors import ConfigError, RnnmemError
from .db import ResultStore, RunRecord, run_key
from .executors import Job, Task, make_executor, resolve

__all__ = ["Task", "run_tasks", "TaskFailed", "pending_tasks"]


class TaskFailed(RnnmemError):
    """Some tasks still failed after all attempts (their runs are not stored; rerun to retry)."""


def _canonical(task: Task) -> Task:
    from .registry import canonical_config

    if not isinstance(task, Task):
        raise ConfigError(f"run_tasks expects Task objects, got {type(task).__name__}")
    seeds = [int(s) for s in task.seeds]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"task for study {task.study!r} lists a seed twice: {task.seeds}")
    return Task(task.study, canonical_config(task.study, task.config), seeds)


def pending_tasks(tasks, store: ResultStore) -> tuple[list[Task], list[list[str]]]:
    """Canonicalised tasks, each reduced to its seeds not yet in ``store``, and every task's keys.

    Returns ``(pending, keys)``: ``pending[i]`` has the missing seeds of task ``i`` (possibly
    none); ``keys[i]`` the run keys of all its seeds, in seed order.

    Parameters
    ----------
    tasks : iterable of Task
        The tasks; each config is canonicalised by its study's model when the study is registered
        (:func:`rnnmem.store.registry.canonical_config`).
    store : ResultStore
        The results database whose keys are skipped.

    Returns
    -------
    tuple of (list of Task, list of list of str)
        ``(pending, keys)`` as above, both with one entry per task in input order; the pending
        tasks carry the canonical configs.

    Raises
    ------
    ConfigError
        When an item is not a Task, a task lists a seed twice, or a config fails its study's model.
    """
    tasks = [_canonical(t) for t in tasks]
    stored: dict[str, set[str]] = {}
    pending, keys = [], []
    for t in tasks:
        if t.study not in stored:
            stored[t.study] = store.keys(t.study)
        ks = [run_key(t.study, t.config, s) for s in t.seeds]
        keys.append(ks)
        pending.append(Task(t.study, t.config, [s for s, k in zip(t.seeds, ks) if k not in stored[t.study]]))
    return pending, keys


def _check(job: Job, out, fn: str) -> list[RunRecord]:
    """Records returned for ``job``: one RunRecord per requested seed, keyed by the request."""
    task = job.task
    if isinstance(out, RunRecord):
        out = [out]
    if not isinstance(out, (list, tuple)) or not all(isinstance(r, RunRecord) for r in out):
        raise ConfigError(f"{fn} must return a list of RunRecord, got {type(out).__name__}")
    by_seed = {}
    for rec in out:
        if rec.study != task.study:
            raise ConfigError(f"{fn} returned a record for study {rec.study!r} while running study {task.study!r}")
        by_seed[rec.seed] = rec
    if sorted(by_seed) != sorted(task.seeds) or len(out) != len(task.seeds):
        raise ConfigError(f"{fn} returned runs for seeds {sorted(r.seed for r in out)} but was asked for "
                          f"seeds {sorted(task.seeds)}; it must return one RunRecord per seed")
    records = []
    for seed in task.seeds:
        rec = by_seed[seed]
        if rec.key != run_key(task.study, task.config, seed):
            # the function filled in defaults (or renamed options): keep its full config, key by the request
            rec.request = task.config
        records.append(rec)
    return records


@contextlib.contextmanager
def _sigterm_exits_cleanly():
    """While running tasks, SIGTERM raises ``SystemExit(143)`` in the main thread, so the runner's
    ``finally`` closes the worker pool (and the caller's ``with ResultStore`` closes the database)
    before the process ends, instead of dying at once and leaving its workers behind. Only when
    SIGTERM still has its default action and this is the main thread (a program that handles
    SIGTERM itself keeps its handler); the default is restored afterwards. SIGINT already raises
    KeyboardInterrupt, which takes the same path."""
    main = threading.current_thread() is threading.main_thread()
    if not main or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
        yield
        return

    def terminate(signum, frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _progress(enabled: bool, description: str, total: int):
    from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                               TimeRemainingColumn)

    if not enabled:
        return None
    return Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                    TextColumn("tasks · {task.fields[runs]} runs stored"), TimeElapsedColumn(),
                    TextColumn("ETA"), TimeRemainingColumn(), transient=False)


def run_tasks(tasks, fn: str, store: ResultStore, executor: str = "local", workers: int | None = None,
              progress: bool = True, description: str = "", retries: int = 2, address: str | None = None,
              ) -> pd.DataFrame:
    """Run ``fn`` ("module:function", ``fn(config, seeds) -> list[RunRecord]``) on every task.

    Stored runs are skipped; the rest run on ``executor`` ("local": ``workers`` processes,
    default min(2, CPUs), 0 or 1 = in this process; "ray": Ray tasks on the cluster at
    ``address``). Records are written by this process as tasks finish (the tasks that finished
    together in one transaction). Each failing task gets ``retries`` more attempts; tasks failing
    after that raise ``TaskFailed`` once all the others are stored.

    Returns ``store.load()`` restricted to the tasks' runs, in task order then seed order.

    Parameters
    ----------
    tasks : iterable of Task
        What to run: one config of a study and the seeds computed together.
    fn : str
        The study function as ``"module:function"``; it must return one RunRecord per seed, of the
        task's study.
    store : ResultStore
        The results database: read to skip stored runs, written by this process only.
    executor : str, default "local"
        ``"local"`` or ``"ray"`` (:func:`rnnmem.store.executors.make_executor`).
    workers : int or None, default None
        Local worker processes (``None``: min(2, CPUs); 0 or 1: this process); Ray: 2 jobs in flight each.
    progress : bool, default True
        Show a rich progress bar (tasks done, runs stored, elapsed time, ETA).
    description : str, default ""
        The progress bar's label (default: the first task's study and the executor's name).
    retries : int, default 2
        Extra attempts for a task that raises or whose worker dies (an ``RnnmemError``, such as a
        bad config or a wrong return value, is not retried).
    address : str or None, default None
        Ray only: the cluster address.

    Returns
    -------
    pandas.DataFrame
        The :meth:`ResultStore.load` table of every run of ``tasks`` (stored before or now).

    Raises
    ------
    ConfigError
        For ``retries < 0``, an ``fn`` that cannot be imported, a bad task or config, or an
        unknown executor.
    TaskFailed
        When tasks still fail after their attempts; every other run has been stored by then.
    """
    tasks = list(tasks)
    if retries < 0:
        raise ConfigError(f"retries must be >= 0, got {retries}")
    resolve(fn)  # fail fast in this process if the function cannot be imported
    pending, keys = pending_tasks(tasks, store)
    jobs = deque(Job(i, t) for i, t in enumerate(pending) if t.seeds)
    n_jobs = len(jobs)
    failures: list[tuple[Job, BaseException]] = []
    if jobs:
        ex = make_executor(executor, fn, workers=workers, address=address)
        bar = _progress(progress, description or f"{tasks[0].study} ({ex.name})", n_jobs)
        stored = 0
        with _sigterm_exits_cleanly():
            try:
                if bar is not None:
                    bar.start()
                    bar_id = bar.add_task(description or tasks[0].study, total=n_jobs, runs=0)
                while jobs or ex.in_flight():
                    while jobs and ex.in_flight() < ex.capacity():
                        ex.submit(jobs.popleft())
                    batch, finished = [], 0
                    for job, out in ex.wait(timeout=1.0):
                        if isinstance(out, BaseException):
                            if job.attempt <= retries and not isinstance(out, RnnmemError):
                                jobs.appendleft(Job(job.index, job.task, job.attempt + 1))
                                continue
                            failures.append((job, out))
                        else:
                            try:
                                batch.extend(_check(job, out, fn))
                            except RnnmemError as exc:
                                failures.append((job, exc))
                        finished += 1
                    # every task that finished since the last round: one transaction (all or none)
                    stored += store.put_many(batch)
                    if bar is not None and finished:
                        bar.update(bar_id, advance=finished, runs=stored)
            finally:
                ex.close()
                if bar is not None:
                    bar.stop()
    if failures:
        job, exc = failures[0]
        raise TaskFailed(
            f"{len(failures)} of {n_jobs} tasks failed (after up to {retries + 1} attempts each); the other runs are "
            f"stored and rerunning the same sweep retries only these. First failure: study {job.task.study!r} "
            f"config {job.task.config} seeds {job.task.seeds}: {type(exc).__name__}: {exc}")
    wanted = [k for ks in keys for k in ks]
    table = store.load(keys=wanted)
    order = {k: i for i, k in enumerate(dict.fromkeys(wanted))}
    table = table.iloc[table["key"].map(order).argsort(kind="stable")].reset_index(drop=True)
    return table


def timed_task(fn: str, task: Task) -> tuple[list[RunRecord], float]:
    """Run one task in this process (nothing stored); returns its records and wall seconds.

    Parameters
    ----------
    fn : str
        The study function as ``"module:function"``.
    task : Task
        The task (its config is canonicalised first, as :func:`run_tasks` does).

    Returns
    -------
    tuple of (list of RunRecord, float)
        One record per seed in ``task.seeds`` order, and the wall seconds of the study call
        (``time.perf_counter``; the process's thread settings are left as they are).

    Raises
    ------
    ConfigError
        When ``fn`` cannot be imported, the task is invalid, or ``fn`` does not return one
        RunRecord per seed; anything the study function raises propagates.
    """
    from .executors import execute

    resolve(fn)  # imports the study's module, which registers it, before the config is canonicalised
    task = _canonical(task)
    t0 = time.perf_counter()
    out = execute(fn, task.config, task.seeds, one_thread=False)
    wall = time.perf_counter() - t0
    return _check(Job(0, task), out, fn), wall
