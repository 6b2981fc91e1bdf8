"""The Ray executor: each job is one Ray task; results come back to the driver, which stores them.

The driver (the process calling ``run_tasks``) connects to a cluster (``address``: ``"auto"``, a
``ray://host:10001`` client address or ``host:6379``), or reuses a Ray session already started in
the process (e.g. ``ray.init(num_cpus=2)`` in tests), or starts a local one. Tasks run
``rnnmem.store.executors.execute`` on the workers; rnnmem and the study's module must be
importable there (install rnnmem on every node, or pass a ``runtime_env`` through ``ray.init``
yourself). Ray's own retries are off (``max_retries=0``): a task that raises or whose worker dies
comes back as a failure and the runner resubmits it, exactly like the local executor, so retry
counts and the exactly-once guarantee (skip stored keys, ``INSERT OR IGNORE``) are the same.
"""

from __future__ import annotations

from ..errors import ConfigError
from .executors import Job, execute

_REMOTE = None


def _ray():
    try:
        import ray
    except ImportError:
        raise ConfigError("the ray executor needs Ray: pip install 'rnnmem[ray]' (or use --executor local)") from None
    return ray


def _remote():
    global _REMOTE
    if _REMOTE is None:
        ray = _ray()
        _REMOTE = ray.remote(num_cpus=1, max_retries=0)(execute)
    return _REMOTE


class RayExecutor:
    """Submit jobs as Ray tasks; at most ``capacity()`` in flight (2 per cluster CPU by default)."""

    name = "ray"

    def __init__(self, fn: str, workers: int | None = None, address: str | None = None):
        ray = _ray()
        self.fn = fn
        self._started = False
        if not ray.is_initialized():
            try:
                if address:
                    ray.init(address=address, log_to_driver=False)
                else:
                    ray.init(num_cpus=workers or None, log_to_driver=False)
            except (ConnectionError, ValueError, RuntimeError) as exc:
                raise ConfigError(f"cannot connect to a Ray cluster at {address or 'a new local instance'}: {exc}; "
                                  "start one with `ray start --head` or check --address") from None
            self._started = True
        cpus = int(ray.cluster_resources().get("CPU", 1))
        self.workers = int(workers) if workers else max(cpus, 1)
        self._refs: dict = {}

    def capacity(self) -> int:
        return 2 * self.workers

    def submit(self, job: Job) -> None:
        ref = _remote().remote(self.fn, job.task.config, job.task.seeds)
        self._refs[ref] = job

    def in_flight(self) -> int:
        return len(self._refs)

    def wait(self, timeout: float | None = None):
        ray = _ray()
        if not self._refs:
            return []
        refs = list(self._refs)
        # every task finished by now (the runner stores them in one transaction), else the first to finish
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=0)
        if not ready:
            ready, _ = ray.wait(refs, num_returns=1, timeout=timeout)
        out = []
        for ref in ready:
            job = self._refs.pop(ref)
            try:
                out.append((job, ray.get(ref)))
            except ray.exceptions.RayTaskError as exc:  # the study function raised: report its own error
                cause = getattr(exc, "cause", None)
                out.append((job, cause if isinstance(cause, BaseException) else exc))
            except ray.exceptions.RayError as exc:  # worker or node died, object lost...
                out.append((job, RuntimeError(f"Ray task failed: {type(exc).__name__}: {exc}")))
        return out

    def close(self) -> None:
        ray = _ray()
        for ref in list(self._refs):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or its worker is gone
                pass
        self._refs.clear()
        if self._started:
            ray.shutdown()
