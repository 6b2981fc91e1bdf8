"""Helpers every probe shares: turning what the user brings into an rnnmem unit."""

from __future__ import annotations

import torch
from torch import nn

from ..cells import CallableUnit, RecurrentUnit, from_module
from ..errors import ConfigError


def as_unit(model) -> RecurrentUnit | CallableUnit:
    """Accept a built-in unit, a ``CallableUnit`` or a ``torch.nn.RNN/LSTM/GRU``.

    Other modules must be wrapped with ``rnnmem.cells.CallableUnit(module, input_size,
    hidden_size)`` so their step signature is explicit.
    """
    if isinstance(model, (RecurrentUnit, CallableUnit)):
        return model
    if isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)):
        return from_module(model)
    raise ConfigError(
        f"cannot probe a {type(model).__name__}: pass an rnnmem unit, a torch.nn.RNN/LSTM/GRU, or wrap "
        "your module as rnnmem.cells.CallableUnit(module, input_size, hidden_size)"
    )


def unit_device(unit) -> torch.device:
    try:
        return next(unit.parameters()).device
    except StopIteration:
        return torch.device("cpu")


def unit_dtype(unit) -> torch.dtype:
    try:
        return next(unit.parameters()).dtype
    except StopIteration:
        return torch.float32
