"""A tiny deterministic study ("toy") for testing and demonstrating the store, runner and sweeps.

``toy_run(config, seeds)`` draws ``n`` N(0, scale^2) numbers per seed from
``numpy.random.default_rng([seed, n])`` and records their mean, standard deviation and maximum,
plus the running mean as a curve. Same seed and config -> the same numbers in every process.

Fault injection for tests, through files in the folder named by the environment variable
``RNNMEM_TOY_DIR`` (absent: no side effects at all):

* ``calls.log``: one JSON line ``{"config", "seeds", "pid"}`` appended per completed task, so
  tests count how many times each run was computed.
* ``sleep``: seconds to sleep per task (the file holds a number).
* ``crash_once``: the first task that finds this file renames it to ``crash_once.done`` (atomic,
  so exactly one task wins) and kills its own process with ``os._exit(1)``: a worker killed
  mid-sweep.
* ``fail_after``: an integer N; once ``calls.log`` holds N lines every task raises RuntimeError:
  a sweep that breaks down after N tasks.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from .db import RunRecord

STUDY = "toy"
ENV = "RNNMEM_TOY_DIR"


class ToyConfig(BaseModel):
    """Options of the toy study."""

    model_config = ConfigDict(extra="forbid")

    n: int = Field(default=16, ge=1, le=10_000_000, description="numbers drawn per run")
    scale: float = Field(default=1.0, gt=0, description="standard deviation of the draws")
    label: str = Field(default="", description="free text carried into the results")


def _faults(config: dict, seeds: list[int]) -> Path | None:
    d = os.environ.get(ENV)
    if not d:
        return None
    d = Path(d)
    sleep = d / "sleep"
    if sleep.exists():
        time.sleep(float(sleep.read_text().strip() or 0))
    marker = d / "crash_once"
    if marker.exists():
        try:
            marker.rename(d / "crash_once.done")
        except OSError:
            pass  # another task won the race
        else:
            os._exit(1)
    fail = d / "fail_after"
    log = d / "calls.log"
    if fail.exists():
        done = len(log.read_text().splitlines()) if log.exists() else 0
        if done >= int(fail.read_text().strip()):
            raise RuntimeError(f"toy study: injected failure after {done} tasks")
    return log


def toy_run(config: dict, seeds: list[int]) -> list[RunRecord]:
    """Run the toy study for ``seeds`` (see module docstring).

    Per seed: x = scale * z with z ~ N(0, 1), ``n`` draws from ``numpy.random.default_rng([seed, n])``.

    Parameters
    ----------
    config : dict
        Options of :class:`ToyConfig`: ``n`` (int, default 16), ``scale`` (float > 0, default 1.0),
        ``label`` (str, default "").
    seeds : list of int
        The seeds to run.

    Returns
    -------
    list of RunRecord
        One per seed, in order: status ``"ok"`` when |mean(x)| < scale, else ``"far"``; metrics
        ``mean``, ``std`` (population, ddof 0), ``max``, ``n_draws`` and ``label`` (None when
        empty); curve ``running_mean`` of shape [n] (mean of the first t draws, t = 1..n).

    Raises
    ------
    pydantic.ValidationError
        For an invalid config.
    RuntimeError
        The injected ``fail_after`` failure (only with ``RNNMEM_TOY_DIR`` set).
    """
    cfg = ToyConfig(**config)
    log = _faults(config, seeds)
    records = []
    for seed in seeds:
        x = np.random.default_rng([int(seed), cfg.n]).standard_normal(cfg.n) * cfg.scale
        running = np.cumsum(x) / np.arange(1, cfg.n + 1)
        records.append(RunRecord(
            study=STUDY, config=cfg.model_dump(), seed=seed, status="ok" if abs(x.mean()) < cfg.scale else "far",
            metrics={"mean": float(x.mean()), "std": float(x.std()), "max": float(x.max()), "n_draws": cfg.n,
                     "label": cfg.label or None},
            curves={"running_mean": running},
        ))
    if log is not None:
        with open(log, "a") as fh:
            fh.write(json.dumps({"config": config, "seeds": list(seeds), "pid": os.getpid()}) + "\n")
    return records


def calls(folder) -> list[dict]:
    """The tasks logged in ``folder/calls.log`` (empty list when none).

    Parameters
    ----------
    folder : str or Path
        The ``RNNMEM_TOY_DIR`` folder of a test.

    Returns
    -------
    list of dict
        One ``{"config", "seeds", "pid"}`` per completed toy task, in completion order.
    """
    log = Path(folder) / "calls.log"
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines() if line.strip()]


def kill_when_stored(proc, db, count: int, timeout: float, poll: float = 0.1) -> set[str]:
    """SIGKILL the process ``proc`` (a sweep driver) once the results database ``db`` holds at
    least ``count`` runs (or after ``timeout`` seconds, or when it exits by itself); returns the
    keys stored at that point. Used by the crash-and-resume tests.

    Parameters
    ----------
    proc : subprocess.Popen
        The driver process to kill (and reap).
    db : str or Path
        Its results database, whose run count is polled.
    count : int
        Kill once at least this many runs are stored.
    timeout : float
        Kill after this many seconds at the latest.
    poll : float, default 0.1
        Seconds between polls.

    Returns
    -------
    set of str
        The keys in ``db`` after the driver is dead.
    """
    import signal

    from .db import ResultStore

    deadline, stored = time.time() + timeout, 0
    while time.time() < deadline and stored < count and proc.poll() is None:
        time.sleep(poll)
        if Path(db).exists():
            with ResultStore(db) as st:
                stored = len(st)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ResultStore(db) as st:
        return st.keys()


def _register() -> None:
    from .registry import StudySpec, register_study

    register_study(StudySpec(
        name=STUDY, config_model=ToyConfig, run="rnnmem.store.testing:toy_run", seeds_per_task=4,
        description="tiny deterministic study (random draws) for testing sweeps and the results store"))


_register()
