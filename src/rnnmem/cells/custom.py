"""Adapter for any user nn.Module that steps a recurrent state.

The module must accept ``(x[T, B, I], state)`` and return ``(y[T, B, H], state)``, where
``state`` is a tensor or a tuple of tensors (``None`` on the first call is allowed when
``init_state`` is not given). This is the documented signature every probe relies on.
"""

from __future__ import annotations

import torch
from torch import nn

from ..errors import ConfigError, InputError


class CallableUnit(nn.Module):
    """Wrap ``module`` so probes can drive it like a built-in unit."""

    kind = "custom"

    def __init__(self, module: nn.Module, input_size: int, hidden_size: int, init_state=None,
                 state_names: tuple[str, ...] | None = None):
        super().__init__()
        if not callable(module):
            raise ConfigError("CallableUnit needs a callable nn.Module")
        self.module = module
        self.input_size = int(input_size)
        self.hidden_size = int(hidden_size)
        self.num_layers = 1
        self.ensemble = None
        self._init_state = init_state
        self.state_names = state_names or ("state",)
        try:
            p = next(module.parameters())
            self.dtype = p.dtype
        except (StopIteration, AttributeError):
            self.dtype = torch.float32

    def init_state(self, batch: int, device=None, dtype=None):
        if self._init_state is None:
            return None
        st = self._init_state(batch)
        st = st if isinstance(st, tuple) else (st,)
        return tuple(s.to(device=device or s.device, dtype=dtype or s.dtype) for s in st)

    def describe(self) -> dict:
        return {"cell": "custom", "module": type(self.module).__name__,
                "input_size": self.input_size, "hidden_size": self.hidden_size,
                "dtype": str(self.dtype).replace("torch.", "")}

    def _call(self, x, state):
        raw = state
        if isinstance(state, tuple) and len(state) == 1 and self.state_names == ("state",):
            raw = state[0]
        y, st = self.module(x, raw)
        if not isinstance(st, tuple):
            st = (st,)
        return y, st

    def forward(self, x, state=None, return_all_states: bool = False):
        if x.dim() != 3 or x.shape[-1] != self.input_size:
            raise InputError(f"input must have shape [T, B, {self.input_size}], got {tuple(x.shape)}")
        if torch.isnan(x).any():
            raise InputError("input contains NaN values; clean or impute the data first")
        if not return_all_states:
            return self._call(x, state)
        ys, states = [], []
        for t in range(x.shape[0]):
            y, state = self._call(x[t : t + 1], state)
            ys.append(y)
            states.append(state)
        stacked = tuple(torch.stack([s[k] for s in states]) for k in range(len(states[0])))
        return torch.cat(ys), state, stacked

    def step(self, x_t, state=None):
        y, st = self.forward(x_t.unsqueeze(0), state)
        return y[0], st
