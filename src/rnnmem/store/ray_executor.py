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
    """Submit jobs as Ray tasks; at most ``capacity()`` in flight (2 per cluster CPU by default).

    Parameters
    ----------
    fn : str
        The study function as ``"module:function"`` (importable on every Ray worker).
    workers : int or None, default None
        Jobs in flight are ``2 * workers``; also ``num_cpus`` of a local Ray instance started here.
        ``None``: the cluster's CPU count.
    address : str or None, default None
        The cluster to connect to when Ray is not initialised yet (``"auto"``, ``"ray://host:10001"``,
        ``"host:6379"``); ``None`` starts a local instance.

    Raises
    ------
    ConfigError
        When Ray is not installed, or ``ray.init`` cannot connect or start.
    """

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
        """How many jobs the runner keeps submitted: two per worker.

        Returns
        -------
        int
            ``2 * workers``.
        """
        return 2 * self.workers

    def submit(self, job: Job) -> None:
        """Submit ``job`` as one Ray task running :func:`rnnmem.store.executors.execute` (1 CPU, no Ray retries).

        Parameters
        ----------
        job : Job
            The task and its attempt number.

        Returns
        -------
        None
        """
        ref = _remote().remote(self.fn, job.task.config, job.task.seeds)
        self._refs[ref] = job

    def in_flight(self) -> int:
        """Jobs submitted and not yet returned by :meth:`wait`.

        Returns
        -------
        int
            The number of pending Ray object refs.
        """
        return len(self._refs)

    def wait(self, timeout: float | None = None):
        """Return every job finished by now, else wait up to ``timeout`` for the first to finish.

        A task whose study function raised comes back with that exception (the ``RayTaskError``'s
        cause); a task lost to a dead worker or node as a ``RuntimeError`` naming the Ray error.

        Parameters
        ----------
        timeout : float or None, default None
            Seconds to wait when no job has finished yet; ``None`` waits until one does.

        Returns
        -------
        list of tuple
            ``(job, records)`` or ``(job, exception)`` per finished job; ``[]`` when none finished
            in time or nothing is in flight.
        """
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
        """Cancel the tasks still in flight (forcefully) and shut Ray down if this executor started it.

        Returns
        -------
        None
        """
        ray = _ray()
        for ref in list(self._refs):
            try:
                ray.cancel(ref, force=True)
            except Exception:  # already finished or its worker is gone
                pass
        self._refs.clear()
        if self._started:
            ray.shutdown()
