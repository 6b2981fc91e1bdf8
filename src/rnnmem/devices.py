"""One place that turns a user's ``--device`` into a torch device, or one clear error, and one
place that chooses how many torch threads a command uses (``--threads``)."""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch

from .errors import ConfigError


def resolve_device(device=None) -> torch.device:
    """``None`` -> cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` -> that device.

    Raises ``ConfigError`` for a name torch does not know, a device type other than cpu/cuda, or
    cuda on a machine where torch sees no CUDA device.

    Parameters
    ----------
    device : str, torch.device or None, default None
        ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a torch.device; ``None`` means cpu.

    Returns
    -------
    torch.device
        The device (``cuda`` without an index stays index-less: the current CUDA device).

    Raises
    ------
    ConfigError
        For an unknown name, a type other than cpu/cuda, cuda without a CUDA device, or an index
        beyond the visible CUDA devices.
    """
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but torch sees no CUDA device; use --device cpu")
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        n = torch.cuda.device_count()
        raise ConfigError(f"device {device!r} was asked for but torch sees {n} CUDA device(s) "
                          f"(cuda:0..cuda:{n - 1}); use one of those or --device cpu")
    return dev


# ----------------------------------------------------------------------------- threads
def available_cpus() -> int:
    """CPUs this process may run on: its affinity mask (``os.sched_getaffinity``), further capped
    by a cgroup v2 CPU quota (``/sys/fs/cgroup/cpu.max``, rounded up) where one is set.

    Returns
    -------
    int
        At least 1.
    """
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cpus = os.cpu_count() or 1
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()[:2]
        if quota != "max":
            cpus = min(cpus, max(1, math.ceil(int(quota) / int(period))))
    except (OSError, ValueError):
        pass
    return max(1, cpus)


def default_threads(processes: int = 1, cpus: int | None = None, load: float | None = None) -> int:
    """Torch threads per process when the user gives no ``--threads``.

    ``max(1, min(cpus // processes, cpus - floor(load)))``: the CPUs available to this process
    (:func:`available_cpus`) shared between ``processes`` computing processes (the workers of a
    pool, or 1), and never more than the CPUs that the 1-minute load average (``os.getloadavg``,
    the other processes already running) leaves free. Torch's own default (one thread per core,
    whatever else runs) oversubscribes a busy machine: with OpenMP's spinning threads one busy
    core made a 2-thread run about 3x slower than a 1-thread run.

    Parameters
    ----------
    processes : int, default 1
        Computing processes that share the CPUs (values below 1 count as 1).
    cpus : int or None, default None
        Overrides :func:`available_cpus` (for tests).
    load : float or None, default None
        Overrides the 1-minute load average (for tests).

    Returns
    -------
    int
        The thread count, at least 1.
    """
    processes = max(1, int(processes))
    cpus = available_cpus() if cpus is None else max(1, int(cpus))
    if load is None:
        try:
            load = os.getloadavg()[0]
        except (AttributeError, OSError):  # pragma: no cover - not Unix
            load = 0.0
    free = cpus - math.floor(max(0.0, load))
    return max(1, min(cpus // processes, free))


def set_threads(threads: int | None = None, processes: int = 1) -> int:
    """Set torch's intra-op threads to ``threads`` (``None`` or 0: :func:`default_threads`) and
    return the number set. Raises ``ConfigError`` for a negative count.

    Parameters
    ----------
    threads : int or None, default None
        Torch intra-op threads; ``None`` or 0 chooses :func:`default_threads`.
    processes : int, default 1
        Processes sharing the CPUs, for :func:`default_threads`.

    Returns
    -------
    int
        The thread count now set (``torch.get_num_threads()``).

    Raises
    ------
    ConfigError
        When ``threads`` is negative, a bool, or not a whole number.
    """
    if threads is not None and (isinstance(threads, bool) or int(threads) != threads or threads < 0):
        raise ConfigError(f"--threads must be a positive integer (or 0 for the default), got {threads!r}")
    n = int(threads) if threads else default_threads(processes)
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def thread_report() -> str:
    """One line for benchmark and report headers: torch threads of this process, available CPUs
    and the load average (1, 5, 15 minutes).

    Returns
    -------
    str
        E.g. ``"1 torch thread(s) in this process, 2 CPU(s) available, load average 0.77 1.29 1.88"``
        (nan load averages where the platform has none).
    """
    try:
        load = os.getloadavg()
    except (AttributeError, OSError):  # pragma: no cover - not Unix
        load = (float("nan"),) * 3
    return (f"{torch.get_num_threads()} torch thread(s) in this process, {available_cpus()} CPU(s) available, "
            f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
