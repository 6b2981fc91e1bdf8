"""Helpers every probe shares: turning what the user brings into an rnnmem unit."""

from __future__ import annotations

import torch
from torch import nn

from ..cells import CallableUnit, RecurrentUnit
from ..cells.protocol import as_model


def as_unit(model) -> RecurrentUnit | CallableUnit:
    """Turn what the user brings into an rnnmem unit.

    The model protocol's door (``rnnmem.cells.protocol.as_model``): a built-in unit, a
    ``CallableUnit``, a ``torch.nn.RNN/LSTM/GRU`` (copied into a built-in unit), or an ``nn.Module``
    with the minimal protocol (``forward(x, state=None) -> (y, state)``, ``input_size``,
    ``hidden_size``), wrapped in a ``CallableUnit``.

    Parameters
    ----------
    model : RecurrentUnit, CallableUnit, torch.nn.RNN/LSTM/GRU or nn.Module
        The model to wrap (built-in units are returned as they are).

    Returns
    -------
    RecurrentUnit or CallableUnit
        The unit the probes compute with.
    """
    return as_model(model)


def unit_device(unit) -> torch.device:
    """Device of a unit's first parameter.

    Parameters
    ----------
    unit : nn.Module
        Any module (an rnnmem unit, a ``CallableUnit``...).

    Returns
    -------
    torch.device
        The device of ``next(unit.parameters())``; CPU when the unit has no parameters.
    """
    try:
        return next(unit.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def unit_dtype(unit) -> torch.dtype:
    """Dtype of a unit's first parameter.

    Parameters
    ----------
    unit : nn.Module
        Any module (an rnnmem unit, a ``CallableUnit``...).

    Returns
    -------
    torch.dtype
        The dtype of ``next(unit.parameters())``; ``torch.float32`` when the unit has no parameters.
    """
    try:
        return next(unit.parameters()).dtype
    except StopIteration:
        return torch.float32


def native_device_dtype(unit) -> tuple[torch.device, torch.dtype]:
    """Device and dtype a unit computes in: its parameters', else its buffers', else its
    initial state's (a ``CallableUnit`` around a parameter-free module), else CPU float32.

    Parameters
    ----------
    unit : RecurrentUnit or CallableUnit
        The unit (only its first floating-point parameter/buffer, or ``init_state(1)``, is read).

    Returns
    -------
    (torch.device, torch.dtype)
        Device and dtype of the first floating-point parameter or buffer, else of the first tensor of
        ``unit.init_state(1)`` (``CallableUnit`` only), else ``(cpu, torch.float32)``.
    """
    for t in list(unit.parameters()) + list(unit.buffers()):
        if torch.is_floating_point(t):
            return t.device, t.dtype
    st = unit.init_state(1) if isinstance(unit, CallableUnit) else None
    if st:
        return st[0].device, st[0].dtype
    return unit_device(unit), unit_dtype(unit)


def _count_bad(values) -> tuple[int, int] | None:
    """(non-finite count, size) of a tensor / array-like of numbers; None when it holds no floats."""
    if isinstance(values, torch.Tensor):
        if not (values.is_floating_point() or values.is_complex()):
            return None
        v = values.detach()
        if bool(torch.isfinite(v.sum())):  # fast path: a NaN or inf anywhere makes the sum non-finite
            return 0, v.numel()
        return int((~torch.isfinite(v)).sum()), v.numel()  # (or the sum overflowed: count exactly)
    import numpy as np

    if hasattr(values, "to_numpy"):  # pandas
        values = values.to_numpy()
    try:
        arr = np.asarray(values)
    except (TypeError, ValueError):
        return None
    if arr.dtype == object:
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError):
            return None
    if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.complexfloating)):
        return None
    return int((~np.isfinite(arr)).sum()), arr.size


def check_finite(model=None, *tensors, names=None) -> None:
    """Refuse NaN or infinite weights and inputs before a probe computes anything.

    A network with a NaN weight produces NaN states, and every comparison with NaN is false: the
    forgetting probe would see "no difference" and report ``converged`` after 0 steps, other
    probes meaningless numbers. Each probe calls this at its entry.

    Parameters
    ----------
    model : nn.Module, rnnmem unit, CallableUnit or None
        Every floating-point parameter and buffer is checked (``None``: no model).
    *tensors : tensor, array-like or None
        Inputs to check (``None`` entries are skipped; non-float data is skipped).
    names : sequence of str, optional
        One label per tensor for the message (default ``input 0``, ``input 1``...).

    Raises
    ------
    InputError
        Naming the first parameter or input with non-finite values and how many it holds.

    Returns
    -------
    None
        Returns only when every checked value is finite.
    """
    from ..errors import InputError

    module = model if isinstance(model, nn.Module) else None
    if module is not None:
        for kind, named in (("parameter", module.named_parameters()), ("buffer", module.named_buffers())):
            for name, value in named:
                bad = _count_bad(value)
                if bad and bad[0]:
                    raise InputError(
                        f"the model's {kind} {name!r} holds {bad[0]} NaN or infinite values (of {bad[1]}); a "
                        "probe of it would report meaningless numbers: check the training run or the model file")
    labels = list(names) if names is not None else [f"input {i}" for i in range(len(tensors))]
    for label, values in zip(labels, tensors):
        if values is None:
            continue
        bad = _count_bad(values)
        if bad and bad[0]:
            raise InputError(f"{label} contains NaN or infinite values ({bad[0]} of {bad[1]}); give finite numbers")
