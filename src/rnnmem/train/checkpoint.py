"""Checkpoint files: atomic writes and loads with one clear error.

A checkpoint is a ``torch.save`` of a plain dict (tensors, numbers, strings, lists, dicts), so it
loads with ``weights_only=True`` (no pickled code runs). Writes go to a temporary file in the
same folder that is then renamed over the target, so an interrupted write never leaves a
truncated checkpoint behind.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from ..errors import InputError


def atomic_save(obj: dict, path) -> Path:
    """``torch.save(obj, path)`` via a temporary file and ``os.replace``.

    Parameters
    ----------
    obj : dict
        Plain checkpoint dict (tensors, numbers, strings, lists, dicts).
    path : str or path
        Target file (parent folders created).

    Returns
    -------
    pathlib.Path
        The path written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    torch.save(obj, tmp)
    os.replace(tmp, path)
    return path


def load_dict(path, device="cpu", kind: str = "checkpoint") -> dict:
    """Load a checkpoint dict saved by :func:`atomic_save` onto ``device``.

    Parameters
    ----------
    path : str or path
        Checkpoint file.
    device : torch.device or str, default "cpu"
        ``map_location`` of ``torch.load`` (``weights_only=True``).
    kind : str, default "checkpoint"
        What the file is called in error messages.

    Returns
    -------
    dict
        The checkpoint.

    Raises
    ------
    InputError
        If the file is missing, unreadable, holds pickled Python objects, or is not a dict.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{kind} {path} not found")
    try:
        obj = torch.load(path, map_location=device, weights_only=True)
    except Exception as exc:  # corrupt, truncated, not a torch file, or pickled objects (never unpickled)
        from ..model_io import pickled_globals

        names = pickled_globals(path)
        if names:
            raise InputError(f"{kind} {path} holds pickled Python objects ({', '.join(sorted(set(names))[:4])}); "
                             "an rnnmem checkpoint holds only tensors and plain values, and rnnmem never "
                             "unpickles code: give a checkpoint written by rnnmem") from None
        raise InputError(f"cannot read {kind} {path} ({type(exc).__name__}: {str(exc)[:300]})") from None
    if not isinstance(obj, dict):
        raise InputError(f"{kind} {path} holds a {type(obj).__name__}, not a checkpoint dict")
    return obj
