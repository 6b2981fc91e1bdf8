"""Options shared by the commands, defined once: ``--device``, ``--dtype``, ``--threads``, ``--seed``,
``--out``, ``--quiet``, and :func:`runtime` (or :func:`setup`), which every computing command calls
first so that a device that cannot run, an unknown dtype and a bad thread count are one clear error
before anything is computed; the command then passes the resolved values down. ``SHARED_OPTIONS``
says which command takes which of them, and why a command leaves one out.

Also the help formatting every command uses (:class:`RnnmemCommand`, :class:`RnnmemGroup`): flags
show no type (typer would print ``<bool>``), repeatable options and variadic arguments show their
element type (``<path>`` instead of ``<list[Path]>``), and help texts may name lists generated
from the registries (``{units}``: every unit ``rnnmem.cells.build`` accepts), filled in only when
help is printed so that startup does not import torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import typer
from typer.core import TyperArgument, TyperCommand, TyperGroup, TyperOption

DEVICE_HELP = "cpu | cuda | cuda:N; checked before anything is computed."
THREADS_HELP = ("Torch CPU threads of this process (0 or unset: CPUs / computing processes, and no more than the "
                "CPUs the 1-minute load average leaves free; at least 1). Pool workers use 1 thread each.")


def device_option(extra: str = "") -> typer.models.OptionInfo:
    """``--device`` (default cpu)."""
    return typer.Option("cpu", "--device", help=DEVICE_HELP + (f" {extra}" if extra else ""))


def dtype_option(help: str = "float32 | float64.") -> typer.models.OptionInfo:
    """``--dtype`` (default float32)."""
    return typer.Option("float32", "--dtype", help=help)


def threads_option() -> typer.models.OptionInfo:
    """``--threads`` (default: :func:`rnnmem.devices.default_threads`)."""
    return typer.Option(None, "--threads", help=THREADS_HELP)


def seed_option(help: str = "First seed.") -> typer.models.OptionInfo:
    """``--seed`` (default 0)."""
    return typer.Option(0, "--seed", help=help)


def out_option(default: str, help: str = "Output folder.") -> typer.models.OptionInfo:
    """``--out`` / ``-o`` with a default folder name."""
    return typer.Option(Path(default), "--out", "-o", help=help)


QUIET_HELP = "No progress bars or status lines; the results and the closing line are still printed."


def quiet_option() -> typer.models.OptionInfo:
    """``--quiet`` / ``-q`` (default off)."""
    return typer.Option(False, "--quiet", "-q", help=QUIET_HELP)

#: The shared options each command takes. A command leaves one out where it has no such concept:
#: no ``--dtype`` where the precision is fixed by the study or the model (muccino: its --variants
#: name the dtype; distill, train-autocomplete: float32 autocomplete models; connectivity, serve: the
#: checkpoint's own), no ``--out`` where the output is one file (forgetting, bench-task, connectivity:
#: --csv/--html; sweep: the YAML's db), no ``--seed`` where nothing is random (connectivity, serve)
#: or the seeds are in the YAML (sweep), no ``--device`` where configs name it (sweep) or nothing
#: runs on torch (synthetic-text), no ``--quiet`` for serve (its --verbose logs requests); cells and
#: results compute nothing.
SHARED_OPTIONS: dict[str, frozenset[str]] = {
    "cells": frozenset(),
    "results": frozenset(),
    "forgetting": frozenset({"device", "dtype", "threads", "seed", "quiet"}),
    "card": frozenset({"device", "dtype", "threads", "seed", "out", "quiet"}),
    "bench-task": frozenset({"device", "dtype", "threads", "seed", "quiet"}),
    "connectivity": frozenset({"device", "threads", "quiet"}),
    "serve": frozenset({"device", "threads"}),
    "train-autocomplete": frozenset({"device", "threads", "seed", "out", "quiet"}),
    "synthetic-text": frozenset({"seed"}),
    "sweep": frozenset({"threads", "quiet"}),
    "reproduce muccino": frozenset({"device", "threads", "seed", "out", "quiet"}),
    "reproduce distill": frozenset({"device", "threads", "seed", "out", "quiet"}),
    "reproduce zhao": frozenset({"device", "dtype", "threads", "seed", "out", "quiet"}),
    "reproduce zhao-reviews": frozenset({"device", "dtype", "threads", "seed", "out", "quiet"}),
    "reproduce zhao-control": frozenset({"device", "dtype", "threads", "seed", "out", "quiet"}),
    "reproduce zhang": frozenset({"device", "dtype", "threads", "seed", "out", "quiet"}),
    "reproduce architectures": frozenset({"device", "dtype", "threads", "seed", "out", "quiet"}),
}


@dataclass(frozen=True)
class Runtime:
    """What a command resolved once at its entry and passes down.

    Attributes
    ----------
    device : str
        Canonical device (``"cpu"``, ``"cuda"``, ``"cuda:1"``), checked usable.
    dtype : str or None
        ``"float32"`` or ``"float64"``; None for a command without a dtype.
    threads : int
        Torch CPU threads set for this process.
    quiet : bool
        No progress display.
    """

    device: str
    dtype: str | None
    threads: int
    quiet: bool = False

    @property
    def progress(self) -> bool:
        """Whether to show progress (not ``quiet``)."""
        return not self.quiet


def runtime(device: str | None = "cpu", threads: int | None = None, processes: int = 1, *,
            dtype: str | None = None, quiet: bool = False) -> Runtime:
    """Check the device and the dtype and set the torch threads: the first call of a computing command.

    Parameters
    ----------
    device : str or None
        The ``--device`` value (None: cpu).
    threads : int or None
        The ``--threads`` value (None or 0: :func:`rnnmem.devices.default_threads`).
    processes : int
        Computing processes that will share the CPUs (the pool's workers, or 1).
    dtype : str or None
        The ``--dtype`` value; None for a command without one.
    quiet : bool
        The ``--quiet`` flag.

    Returns
    -------
    Runtime
        The resolved values, to pass down.

    Raises
    ------
    ConfigError
        A device torch cannot use here, an unknown dtype or a negative thread count.
    """
    from ..devices import resolve_device, set_threads

    dev = str(resolve_device(device))
    if dtype is not None:
        from ..cells.base import DTYPES

        if dtype not in DTYPES:
            from ..errors import ConfigError

            raise ConfigError(f"--dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    return Runtime(dev, dtype, set_threads(threads, processes), bool(quiet))


def setup(device: str | None = "cpu", threads: int | None = None, processes: int = 1) -> str:
    """Check the device and set the torch threads; the first call of every computing command.

    Parameters
    ----------
    device: the ``--device`` value (None: cpu).
    threads: the ``--threads`` value (None or 0: :func:`rnnmem.devices.default_threads`).
    processes: computing processes that will share the CPUs (the pool's workers, or 1).

    Returns
    -------
    The device as a canonical string (``"cpu"``, ``"cuda"``, ``"cuda:1"``).

    Raises ``ConfigError`` for a device torch cannot use here or a negative thread count.
    """
    from ..devices import resolve_device, set_threads

    dev = str(resolve_device(device))
    set_threads(threads, processes)
    return dev


def command_line() -> str:
    """The command as typed, for reports: ``"rnnmem " + shell-quoted sys.argv[1:]``."""
    import shlex
    import sys

    return "rnnmem " + " ".join(shlex.quote(a) for a in sys.argv[1:])


def pool_processes(workers: int | None) -> int:
    """Computing processes of a study run with ``workers`` (None: the default pool size; 0 or 1:
    this process)."""
    if workers is None:
        from ..store.executors import default_workers

        return default_workers()
    return max(1, int(workers))


# ----------------------------------------------------------------------------- help formatting
def _units() -> str:
    from ..cells import list_units

    return ", ".join(list_units())


def _max_chars() -> str:
    from ..report.explorer import DEFAULT_MAX_CHARS

    return f"{DEFAULT_MAX_CHARS:,}"


#: Placeholders a help text may hold, filled in when help is printed.
LAZY_HELP: dict[str, Callable[[], str]] = {"{units}": _units, "{max_chars}": _max_chars}

def _element_label(param: Any) -> str:
    """``<path>``, ``<str>``, ``<int>``... for the element type of a list-typed parameter."""
    from typing import get_args

    args = [a for a in get_args(param.type_descriptor.annotation) if a is not type(None)]
    elem = args[0] if args else str
    for _ in range(3):  # unwrap Optional[list[X]] / list[X]
        inner = [a for a in get_args(elem) if a is not type(None)]
        if not inner:
            break
        elem = inner[0]
    if isinstance(elem, type) and issubclass(elem, Path):
        return "<path>"
    return f"<{elem.__name__ if isinstance(elem, type) else elem}>"


def tidy_param(param: Any) -> None:
    """Normal metavars: nothing for a flag, the element type for a repeatable option or a variadic
    argument (idempotent)."""
    if isinstance(param, TyperOption):
        if param.is_flag or param.count:
            param.metavar = ""
        elif param.multiple and param.metavar is None:
            param.metavar = _element_label(param)
    elif isinstance(param, TyperArgument) and param.nargs != 1 and "display_type_rich" not in vars(param):
        label = _element_label(param)
        param.display_type_rich = lambda ctx, _label=label: _label


def _fill(text: str | None) -> str | None:
    if not text:
        return text
    for key, make in LAZY_HELP.items():
        if key in text:
            text = text.replace(key, make())
    return text


class _Tidy:
    def get_params(self, ctx: Any) -> list:
        params = super().get_params(ctx)
        for p in params:
            tidy_param(p)
        return params

    def format_help(self, ctx: Any, formatter: Any) -> None:
        for p in self.params:
            if getattr(p, "help", None):
                p.help = _fill(p.help)
        super().format_help(ctx, formatter)


class RnnmemCommand(_Tidy, TyperCommand):
    """A typer command with rnnmem's help formatting (module docstring)."""


class RnnmemGroup(_Tidy, TyperGroup):
    """A typer group with rnnmem's help formatting (module docstring)."""


def apply_help_format(*apps: typer.Typer) -> None:
    """Give every command registered on ``apps`` (that names no class of its own) rnnmem's help
    formatting."""
    for app in apps:
        for info in app.registered_commands:
            if info.cls is None or info.cls is TyperCommand:
                info.cls = RnnmemCommand


# ----------------------------------------------------------------------------- output paths
def check_out_dir(path: Path | None, option: str = "--out") -> Path | None:
    """Create the output folder ``path`` now (before any computing); ``InputError`` naming
    ``option`` when it is a file or cannot be created."""
    from ..errors import InputError

    if path is None:
        return None
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise InputError(f"{option} {path} is a file, not a folder; give a folder path")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"cannot create the {option} folder {path}: {exc.strerror or exc}") from None
    return path


def check_out_file(path: Path | None, option: str) -> Path | None:
    """Check, before any computing, that the file ``path`` of ``option`` can be written later: not
    a folder, and its folder exists or can be created."""
    from ..errors import InputError

    if path is None:
        return None
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{option} {path} is a folder; give a file path")
    check_out_dir(path.parent, f"folder of {option}")
    return path
