"""Executors: where the runner's jobs run. All share one small interface.

``submit(job)`` queues a job; ``wait(timeout)`` returns the jobs finished since the last call as
``(job, records)`` or ``(job, exception)`` pairs; ``in_flight()`` counts submitted, unfinished jobs;
``capacity()`` is how many jobs to keep queued so every worker stays busy; ``close()`` releases
workers. Retries, skipping and storing are the runner's job (runner.py), so every executor gets
the same guarantees: only the driver process writes to SQLite, and a job whose worker dies is
reported as a failure and resubmitted.

* ``inline``: runs each job in the calling process (``workers`` 0 or 1).
* ``local``: a process pool (one torch thread per worker). A worker that dies breaks the pool; its
  in-flight jobs come back as failures and the next submit starts a fresh pool. Workers are forked
  from multiprocessing's fork server where the platform has one (POSIX; spawned elsewhere): the
  server is a clean process started once per driver that imports rnnmem and the study's module
  once (``_worker_context``), so a pool's workers start warm instead of each paying the imports
  (about 2 s of CPU each for torch and the probes), a second sweep in the same driver starts its
  workers at once, and workers exit without tearing down an interpreter (0.5 s per pool with
  spawn). Each worker takes the driver's current environment when it starts (``_init_worker``).
* ``ray``: each job is one Ray task (rnnmem.store.ray_executor).
"""

from __future__ import annotations

import concurrent.futures as cf
import multiprocessing as mp
import os
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ..errors import ConfigError
from .db import RunRecord


@dataclass
class Task:
    """One chunk of work: one config of a study, several seeds computed together."""

    study: str
    config: dict
    seeds: list[int] = field(default_factory=list)


@dataclass
class Job:
    """A task as submitted: ``index`` into the runner's task list, seeds still missing, attempt number."""

    index: int
    task: Task
    attempt: int = 1


def resolve(fn: str):
    """Import ``"module:function"`` and return the function (ConfigError if it cannot be found).

    Parameters
    ----------
    fn : str
        ``"module:function"``, e.g. ``"rnnmem.store.testing:toy_run"`` (exactly one colon).

    Returns
    -------
    callable
        The function, with signature ``fn(config: dict, seeds: list[int]) -> list[RunRecord]``.

    Raises
    ------
    ConfigError
        When ``fn`` is not a ``"module:function"`` string, the module cannot be imported, or it has
        no callable of that name.
    """
    import importlib

    if not isinstance(fn, str) or fn.count(":") != 1:
        raise ConfigError(f"study function must be given as 'module:function', got {fn!r}")
    module, name = fn.split(":")
    try:
        mod = importlib.import_module(module)
    except ImportError as exc:
        raise ConfigError(f"cannot import study module {module!r} ({exc}); check the name and that it is installed") from None
    func = getattr(mod, name, None)
    if not callable(func):
        raise ConfigError(f"module {module!r} has no function {name!r}")
    return func


def execute(fn: str, config: dict, seeds: list[int], one_thread: bool = True) -> list[RunRecord]:
    """Worker side of every executor: run ``fn(config, seeds)`` (with one torch thread in workers;
    ``one_thread=False`` leaves the calling process's thread settings alone).

    Fills ``started_at`` and ``wall_s`` (the task's wall time split over its runs) where the study
    function left them empty.

    Parameters
    ----------
    fn : str
        The study function as ``"module:function"`` (:func:`resolve`).
    config : dict
        One config of the study (passed as a copy).
    seeds : list of int
        The seeds this task computes (passed as a copy).
    one_thread : bool, default True
        Set one torch/OpenMP/MKL thread (and ``OMP_NUM_THREADS``/``MKL_NUM_THREADS=1``) before and
        after importing the study; ``False`` in the driver process (inline executor, calibration).

    Returns
    -------
    list
        What ``fn`` returned, as a list (a single RunRecord is wrapped); RunRecords get
        ``started_at`` (UTC, ISO 8601) and ``wall_s`` (seconds) where empty. The runner checks
        that there is one RunRecord per seed.

    Raises
    ------
    ConfigError
        When ``fn`` cannot be resolved; anything the study function raises propagates.
    """
    if one_thread:
        _one_thread()
    func = resolve(fn)
    if one_thread:
        _one_thread()  # the study module may just have imported torch
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    t0 = time.perf_counter()
    records = func(dict(config), list(seeds))
    wall = time.perf_counter() - t0
    if isinstance(records, RunRecord):
        records = [records]
    records = list(records)
    for rec in records:
        if isinstance(rec, RunRecord):
            if not rec.started_at:
                rec.started_at = started
            if not rec.wall_s:
                rec.wall_s = wall / max(len(records), 1)
    return records


def _one_thread() -> None:
    """One compute thread per worker: torch.set_num_threads(1) if torch is loaded, and the OpenMP/MKL
    environment set so a torch imported later by the study starts with one thread (no torch import
    here: studies that do not need torch start faster)."""
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ[var] = "1"
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _exit_with_parent() -> None:
    """Make this pool worker exit as soon as the process that started it (the sweep driver) dies.

    A worker blocked on the pool's call queue never sees end-of-file when the driver is killed
    (every worker holds a copy of the queue's write end), so without this it would wait forever,
    re-parented to PID 1, and keep multiprocessing's resource tracker alive with it. A daemon thread
    waits on ``multiprocessing.parent_process().sentinel`` (a pipe only the parent holds open on
    POSIX, the parent's process handle on Windows), which becomes ready when the parent exits for
    any reason, SIGKILL included, and then ends this process with ``os._exit``.
    """
    import threading
    from multiprocessing.connection import wait

    parent = mp.parent_process()
    if parent is None:  # not a multiprocessing child: nothing to watch
        return

    def watch() -> None:
        wait([parent.sentinel])
        os._exit(1)

    threading.Thread(target=watch, name="rnnmem-parent-watchdog", daemon=True).start()


def _init_worker(environ: dict[str, str] | None = None) -> None:
    """Pool worker start-up: ignore Ctrl-C, exit with the driver, take the driver's environment
    ``environ`` (a worker forked from the fork server would otherwise see the environment the
    server started with, possibly sweeps ago), one compute thread."""
    import signal

    # Ctrl-C reaches the whole process group: the driver handles it (closing the pool); workers
    # ignore it instead of each printing a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent()
    if environ is not None:
        for name in [k for k in os.environ if k not in environ]:
            del os.environ[name]
        os.environ.update(environ)
    _one_thread()


def _worker_context(fn: str):
    """The multiprocessing context of the local pool's workers: ``forkserver`` where available,
    else ``spawn`` (both start workers from a clean process, never by forking the driver with its
    threads and open database).

    The fork server is multiprocessing's own: started once per driver process at the first pool,
    it lives until the driver exits (and exits with it, even on SIGKILL). Before it starts, this
    module and the module of ``fn`` are added to its preload list (after what is there already:
    multiprocessing's default ``__main__``, the driver script, or the program's own choice), so
    the server imports them (torch included) once and every worker forked from it starts with
    them loaded. Preloading is best effort: a module the server cannot import (say, one found only
    through a ``sys.path`` entry the driver added at run time) is imported by each worker instead,
    as with spawn. Once the server runs, its preload list no longer matters: a later sweep of
    another study imports that study in each worker.
    """
    if "forkserver" not in mp.get_all_start_methods():
        return mp.get_context("spawn")
    from multiprocessing import forkserver

    ctx = mp.get_context("forkserver")
    current = getattr(forkserver._forkserver, "_preload_modules", None)
    current = ["__main__"] if current is None else list(current)
    wanted = [__name__] + ([fn.split(":")[0]] if isinstance(fn, str) and fn.count(":") == 1 else [])
    ctx.set_forkserver_preload(list(dict.fromkeys(current + wanted)))  # read when the server (re)starts
    return ctx


class InlineExecutor:
    """Runs each job in the calling process, one at a time (no pool)."""

    name = "inline"

    def __init__(self, fn: str):
        self.fn = fn
        self._queue: list[Job] = []

    def capacity(self) -> int:
        """How many jobs the runner keeps submitted: 1 (jobs run one at a time, in ``wait``).

        Returns
        -------
        int
            1.
        """
        return 1

    def submit(self, job: Job) -> None:
        """Queue ``job``; it runs in the next :meth:`wait`.

        Parameters
        ----------
        job : Job
            The task and its attempt number.

        Returns
        -------
        None
        """
        self._queue.append(job)

    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait`.

        Returns
        -------
        int
            The queue length.
        """
        return len(self._queue)

    def wait(self, timeout: float | None = None):
        """Run the oldest queued job in this process (torch thread settings left alone).

        Parameters
        ----------
        timeout : float or None, default None
            Not used (the job runs to completion); accepted for the common executor interface.

        Returns
        -------
        list of tuple
            ``[(job, records)]`` or ``[(job, exception)]`` when the study function raised (an
            ``Exception``; the runner retries or reports it); ``[]`` when nothing is queued.
        """
        if not self._queue:
            return []
        job = self._queue.pop(0)
        try:
            return [(job, execute(self.fn, job.task.config, job.task.seeds, one_thread=False))]
        except Exception as exc:  # reported to the runner, which retries or records the failure
            return [(job, exc)]

    def close(self) -> None:
        """Drop the queued jobs (none is running between calls).

        Returns
        -------
        None
        """
        self._queue.clear()


class LocalExecutor:
    """A pool of ``workers`` processes started from a clean process (``_worker_context``: the fork
    server or spawn; never a fork of the driver, which is unsafe with torch's thread pools)."""

    name = "local"

    def __init__(self, fn: str, workers: int):
        self.fn = fn
        self.workers = int(workers)
        self._pool: cf.ProcessPoolExecutor | None = None
        self._futures: dict[cf.Future, Job] = {}

    def _ensure_pool(self) -> cf.ProcessPoolExecutor:
        if self._pool is None:
            self._pool = cf.ProcessPoolExecutor(max_workers=self.workers, mp_context=_worker_context(self.fn),
                                                initializer=_init_worker, initargs=(dict(os.environ),))
        return self._pool

    def capacity(self) -> int:
        """How many jobs the runner keeps submitted: two per worker, so none waits for work.

        Returns
        -------
        int
            ``2 * workers``.
        """
        return 2 * self.workers

    def submit(self, job: Job) -> None:
        """Submit ``job`` to the pool (started on first use; a broken pool is replaced first).

        Parameters
        ----------
        job : Job
            The task and its attempt number; runs :func:`execute` in a worker with one thread.

        Returns
        -------
        None
        """
        pool = self._ensure_pool()
        try:
            fut = pool.submit(execute, self.fn, job.task.config, job.task.seeds)
        except cf.process.BrokenProcessPool:
            self._discard_pool()
            fut = self._ensure_pool().submit(execute, self.fn, job.task.config, job.task.seeds)
        self._futures[fut] = job

    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait`.

        Returns
        -------
        int
            The number of pending futures.
        """
        return len(self._futures)

    def wait(self, timeout: float | None = None):
        """Wait until at least one job finishes (or ``timeout``) and return every finished job.

        A job whose worker died comes back as a ``RuntimeError`` naming that, and the broken pool
        is discarded (the next :meth:`submit` starts a fresh one).

        Parameters
        ----------
        timeout : float or None, default None
            Seconds to wait; ``None`` waits until a job finishes.

        Returns
        -------
        list of tuple
            ``(job, records)`` or ``(job, exception)`` per finished job; ``[]`` when none finished
            in time or nothing is in flight.
        """
        if not self._futures:
            return []
        done, _ = cf.wait(list(self._futures), timeout=timeout, return_when=cf.FIRST_COMPLETED)
        out, broken = [], False
        for fut in done:
            job = self._futures.pop(fut)
            exc = fut.exception()
            if isinstance(exc, cf.process.BrokenProcessPool):
                broken = True
                exc = RuntimeError(f"a worker process died while running this task ({exc})")
            out.append((job, fut.result() if exc is None else exc))
        if broken:
            self._discard_pool()
        return out

    def _discard_pool(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Release the workers. Tasks still running (the runner was interrupted) are killed: their
        results could no longer be stored anyway.

        Returns
        -------
        None
        """
        if self._pool is not None:
            if self._futures:
                for proc in list(getattr(self._pool, "_processes", {}).values()):
                    proc.terminate()
            self._pool.shutdown(wait=not self._futures, cancel_futures=True)
            self._pool = None
        self._futures.clear()


EXECUTORS = ("local", "ray")


def make_executor(kind: str, fn: str, workers: int | None = None, address: str | None = None):
    """Build the executor named ``kind`` ("local" or "ray") for study function ``fn``.

    Parameters
    ----------
    kind : str
        ``"local"`` (in-process or a process pool) or ``"ray"``.
    fn : str
        The study function as ``"module:function"``.
    workers : int or None, default None
        Local: worker processes (``None``: :func:`default_workers`; 0 or 1: run in this process).
        Ray: up to ``2 * workers`` tasks in flight, and the CPUs of a local Ray instance it starts
        (``None``: the cluster's CPU count).
    address : str or None, default None
        Ray only: the cluster to connect to (``"auto"``, ``"ray://host:10001"``, ``"host:6379"``);
        ``None`` reuses the Ray session of this process or starts a local one.

    Returns
    -------
    InlineExecutor, LocalExecutor or RayExecutor

    Raises
    ------
    ConfigError
        For an unknown ``kind``, negative local ``workers``, and (ray) Ray not installed or no
        cluster reachable at ``address``.
    """
    if kind == "local":
        n = default_workers() if workers is None else int(workers)
        if n < 0:
            raise ConfigError(f"workers must be >= 0, got {n}")
        return InlineExecutor(fn) if n <= 1 else LocalExecutor(fn, n)
    if kind == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(fn, workers=workers, address=address)
    raise ConfigError(f"unknown executor {kind!r}; choose one of {', '.join(EXECUTORS)}")


def default_workers() -> int:
    """min(2, CPUs available to this process).

    Returns
    -------
    int
        ``max(1, min(2, len(os.sched_getaffinity(0))))`` (``os.cpu_count()`` where there is no
        affinity mask).
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    return max(1, min(2, cpus))
