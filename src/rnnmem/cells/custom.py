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
        """The module's initial state, from the ``init_state`` callable given at construction.

        Parameters
        ----------
        batch : int
            B, the number of sequences.
        device : torch.device or str, optional
            Move the state there (default: where the callable put it).
        dtype : torch.dtype, optional
            Cast it (default: the callable's dtype).

        Returns
        -------
        tuple of Tensor or None
            The state as a tuple (a single tensor is wrapped); None when no ``init_state`` was given
            (the module then starts from its own default when called with ``state=None``).
        """
        if self._init_state is None:
            return None
        st = self._init_state(batch)
        st = st if isinstance(st, tuple) else (st,)
        return tuple(s.to(device=device or s.device, dtype=dtype or s.dtype) for s in st)

    def describe(self) -> dict:
        """What a result records about the wrapped model.

        Returns
        -------
        dict
            ``cell`` (``"custom"``), ``module`` (the module's class name), ``input_size``,
            ``hidden_size``, ``dtype`` (of its first parameter, else ``"float32"``).
        """
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
        """Run the module over a sequence (see ``RecurrentUnit.forward``; no ensemble dimension).

        With ``return_all_states`` the module is called once per step, so its per-step states
        can be collected.

        Parameters
        ----------
        x : Tensor
            Inputs ``[T, B, I]``, no NaN.
        state : Tensor or tuple of Tensor, optional
            The state to start from; None: the module's own start.
        return_all_states : bool
            Also return every step's state (default False).

        Returns
        -------
        y : Tensor
            The module's outputs, ``[T, B, H]``.
        state : tuple of Tensor
            The final state (a single tensor is wrapped in a tuple).
        states : tuple of Tensor
            Only with ``return_all_states``: component k at every step, ``[T, *shape_k]``.

        Raises
        ------
        InputError
            When ``x`` is not ``[T, B, input_size]`` or contains NaN.
        """
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
        """One time step: ``x_t[B, I] -> (y_t[B, H], state)``.

        Parameters
        ----------
        x_t : Tensor
            Input of one step, ``[B, I]``.
        state : Tensor or tuple of Tensor, optional
            The state before the step; None: the module's own start.

        Returns
        -------
        y_t : Tensor
            ``[B, H]``.
        state : tuple of Tensor
            The state after the step.

        Raises
        ------
        InputError
            As :meth:`forward`.
        """
        y, st = self.forward(x_t.unsqueeze(0), state)
        return y[0], st

    # ----------------------------------------------------------------- protocol: flat state
    def template_state(self, batch: int, device=None, dtype=None) -> tuple:
        """The state after no input: ``init_state(batch)`` when given, else what the module returns
        after one zero step from ``None`` (its own initial state, one step on).

        It gives the state's layout (shapes, batch dimension) and a concrete state where the module
        has no ``init_state`` (e.g. the Lyapunov probe's starting point).

        Parameters
        ----------
        batch : int
            B, the number of sequences.
        device : torch.device or str, optional
            Where to put it (default: the module's first parameter's device, else CPU).
        dtype : torch.dtype, optional
            Its dtype (default: the module's dtype).

        Returns
        -------
        tuple of Tensor
            One tensor per state component.
        """
        st = self.init_state(batch, device=device, dtype=dtype)
        if st is None:
            dev = device or next((p.device for p in self.module.parameters()), torch.device("cpu"))
            with torch.no_grad():
                x0 = torch.zeros(1, batch, self.input_size, dtype=dtype or self.dtype, device=dev)
                _, st = self._call(x0, None)
        return tuple(s.to(device=device or s.device, dtype=dtype or s.dtype) for s in st)

    def _layout(self):
        """Per state component: (batch dim, shape without it), found by comparing the state
        shapes for batch 1 and 2 (exactly one dimension must grow with the batch)."""
        if getattr(self, "_layout_cache", None) is None:
            layout = []
            for a, b in zip(self.template_state(1), self.template_state(2)):
                diff = [i for i, (m, n) in enumerate(zip(a.shape, b.shape)) if m != n]
                if a.dim() != b.dim() or len(diff) != 1:
                    raise ConfigError(
                        "cannot find the batch dimension of the wrapped module's state: each component "
                        "must have exactly one dimension that grows with the batch")
                bd = diff[0]
                layout.append((bd, tuple(n for i, n in enumerate(a.shape) if i != bd)))
            self._layout_cache = layout
        return self._layout_cache

    def state_vector(self, state) -> torch.Tensor:
        """The full state flattened per sequence: ``[B, D]`` (components in order).

        Each component's batch dimension (found by comparing the states for batch 1 and 2) is moved
        first and the rest flattened.

        Parameters
        ----------
        state : Tensor or tuple of Tensor
            A state of the wrapped module.

        Returns
        -------
        Tensor
            ``[B, D]``, D = :meth:`state_size`.

        Raises
        ------
        ConfigError
            When a state component has no single dimension that grows with the batch.
        """
        state = state if isinstance(state, tuple) else (state,)
        return torch.cat([s.movedim(bd, 0).reshape(s.shape[bd], -1) for s, (bd, _) in zip(state, self._layout())],
                         dim=1)

    def state_from_vector(self, z: torch.Tensor) -> tuple:
        """Inverse of :meth:`state_vector`: ``z[B, D]`` back to the component tuple.

        Parameters
        ----------
        z : Tensor
            ``[B, D]``.

        Returns
        -------
        tuple of Tensor
            The components in the module's layout (batch dimension where the module keeps it).

        Raises
        ------
        InputError
            When D is not the module's state length.
        """
        out, off = [], 0
        for bd, shape in self._layout():
            size = int(torch.tensor(shape).prod().item()) if shape else 1
            out.append(z[:, off: off + size].reshape(z.shape[0], *shape).movedim(0, bd))
            off += size
        if off != z.shape[-1]:
            raise InputError(f"state vector has {z.shape[-1]} entries, the module's state has {off}")
        return tuple(out)

    def state_size(self) -> int:
        """``D``, the length of :meth:`state_vector` for one sequence.

        Returns
        -------
        int
            The number of state entries per sequence.
        """
        return int(self.state_vector(self.template_state(1)).shape[-1])

    def capabilities(self) -> frozenset:
        """A wrapped module offers only the protocol (see ``RecurrentUnit.capabilities``).

        Returns
        -------
        frozenset
            Empty.
        """
        return frozenset()
