"""Options shared by the commands, defined once: ``--device``, ``--dtype``, ``--threads``, ``--seed``,
``--out``, and :func:`setup`, which every computing command calls first so that a device that
cannot run and a bad thread count are one clear error before anything is computed.

Also the help formatting every command uses (:class:`RnnmemCommand`, :class:`RnnmemGroup`): flags
show no type (typer would print ``<bool>``), repeatable options and variadic arguments show their
element type (``<path>`` instead of ``<list[Path]>``), and help texts may name lists generated
from the registries (``{units}``: every unit ``rnnmem.cells.build`` accepts), filled in only when
help is printed so that startup does not import torch.
"""

from __future__ import annotations

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
