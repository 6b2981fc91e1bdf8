"""The one model protocol every probe consumes.

Every probe in rnnmem takes a *recurrent model*: anything :func:`as_model` turns into an object with

============================  ===================================================================
``input_size``, ``hidden_size``  widths of ``x_t`` and of the output ``y_t``
``state_names``               names of the state components (``("h", "c")`` for an LSTM)
``ensemble``                  ``None``, or E when the model holds E independently seeded networks
``init_state(batch)``         the initial state, a tuple of tensors (``None`` allowed for wrapped
                              modules that start from their own default)
``forward(x, state=None, return_all_states=False)``
                              ``x[T, (E,) B, I] -> (y[T, (E,) B, H], state)``; with
                              ``return_all_states`` also every step's state components
``step(x_t, state)``          ``x_t[(E,) B, I] -> (y_t, state)``; equals ``forward`` on one step
``state_vector(state)``       the full state flattened: ``[(E,) B, D]`` (divergence, Jacobians)
``state_from_vector(z)``      its inverse
``capabilities()``            optional extras probes query instead of testing ``kind`` strings:
                              ``ensemble``, ``fused``, ``native``, ``cell_step``, ``scan``
``describe()``                a JSON-able description recorded with every result
============================  ===================================================================

Built-in units (``cells.build``) implement it natively (``RecurrentUnit``). Three other doors lead
in, all through :func:`as_model`:

- ``torch.nn.RNN`` / ``LSTM`` / ``GRU``: copied into the equivalent built-in unit (``from_module``);
- a user's ``nn.Module`` with the **minimal protocol**: ``forward(x[T, B, I], state=None) ->
  (y[T, B, H], state)`` (state a tensor or a tuple of tensors, ``None`` meaning "start fresh") and
  integer attributes ``input_size`` and ``hidden_size``; an ``init_state(batch)`` method is used
  when present. It is wrapped in :class:`~rnnmem.cells.custom.CallableUnit`, which derives
  ``step`` and ``state_vector`` from ``forward`` (the state's batch dimension is found by comparing
  the states for batch 1 and 2);
- ``CallableUnit(module, input_size, hidden_size)`` explicitly, for a module without those attributes.

A new unit family is one file: a ``RecurrentUnit`` subclass whose state components are shaped
``[layers, (E,) B, F]`` and one ``cells.register(name, cls, doc, options)`` call (see docs/api.md).
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch
from torch import nn

from ..errors import ConfigError


@runtime_checkable
class RecurrentModel(Protocol):
    """What every probe relies on (see the module docstring)."""

    input_size: int
    hidden_size: int
    state_names: tuple[str, ...]
    ensemble: int | None

    def init_state(self, batch: int, device=None, dtype=None):
        """The initial state for ``batch`` sequences.

        Parameters
        ----------
        batch : int
            B, the number of sequences.
        device : torch.device or str, optional
            Where to allocate it (default: the model's device).
        dtype : torch.dtype, optional
            Its dtype (default: the model's dtype).

        Returns
        -------
        tuple of Tensor or None
            One tensor per ``state_names`` (built-in units: each ``[layers, (E,) B, F]``); None for a
            wrapped module that starts from its own default.
        """

    def forward(self, x: torch.Tensor, state=None, return_all_states: bool = False):
        """Run a sequence: ``x[T, (E,) B, I] -> (y[T, (E,) B, H], state)``.

        Parameters
        ----------
        x : Tensor
            Inputs ``[T, B, I]``, or ``[T, E, B, I]`` when ``ensemble`` is E.
        state : tuple of Tensor, optional
            The state to start from; None: the initial state.
        return_all_states : bool
            Also return every step's state components (default False).

        Returns
        -------
        tuple
            ``(y, state)``: the outputs ``[T, (E,) B, H]`` and the final state; with
            ``return_all_states`` ``(y, state, states)``, ``states[k]`` component k at every step
            (a leading T dimension).
        """

    def step(self, x_t: torch.Tensor, state=None):
        """One step, ``x_t[(E,) B, I] -> (y_t, state)``; equals ``forward`` on a one-step sequence.

        Parameters
        ----------
        x_t : Tensor
            Input of one step, ``[(E,) B, I]``.
        state : tuple of Tensor, optional
            The state before the step; None: the initial state.

        Returns
        -------
        tuple
            ``(y_t, state)``: the output ``[(E,) B, H]`` and the state after the step.
        """

    def state_vector(self, state) -> torch.Tensor:
        """The full state flattened per sequence (divergence, Jacobians of the step map).

        Parameters
        ----------
        state : tuple of Tensor
            A state as ``forward`` returns it.

        Returns
        -------
        Tensor
            ``[(E,) B, D]``, D the state's length per sequence.
        """

    def state_from_vector(self, z: torch.Tensor):
        """Inverse of :meth:`state_vector`.

        Parameters
        ----------
        z : Tensor
            ``[(E,) B, D]``.

        Returns
        -------
        tuple of Tensor
            The state components, shaped as the model's states.
        """

    def capabilities(self) -> frozenset:
        """Optional extras probes query instead of testing ``kind`` strings.

        Returns
        -------
        frozenset of str
            A subset of ``ensemble``, ``fused``, ``native``, ``cell_step``, ``scan`` and the
            capabilities of registered kernels (``cells.register_kernel``); empty for wrapped modules.
        """


def _int_attr(module, name: str):
    value = getattr(module, name, None)
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def is_minimal_module(module) -> bool:
    """True for an ``nn.Module`` that declares the minimal protocol's ``input_size`` and ``hidden_size``.

    Parameters
    ----------
    module : object
        Anything; only ``nn.Module`` instances qualify.

    Returns
    -------
    bool
        Whether ``module`` is an ``nn.Module`` whose ``input_size`` and ``hidden_size`` attributes are
        positive ints (bools excluded).
    """
    return isinstance(module, nn.Module) and _int_attr(module, "input_size") is not None \
        and _int_attr(module, "hidden_size") is not None


def as_model(model):
    """Bring what the user gives into the model protocol.

    Parameters
    ----------
    model : RecurrentUnit, CallableUnit, torch.nn.RNN/LSTM/GRU, or an nn.Module with the minimal
        protocol (``forward(x, state=None) -> (y, state)``, ``input_size``, ``hidden_size``).

    Returns
    -------
    An object implementing :class:`RecurrentModel`: the model itself when it already does (never a
    copy), a built-in unit holding a copy of a ``torch.nn`` module's weights, or a ``CallableUnit``
    around the user's module (which shares its parameters; probes copy it before moving it).

    Raises
    ------
    ConfigError
        For anything else, naming the two ways in.
    """
    from .base import RecurrentUnit
    from .custom import CallableUnit
    from .wrap import from_module

    if isinstance(model, (RecurrentUnit, CallableUnit)):
        return model
    if isinstance(model, (nn.RNN, nn.LSTM, nn.GRU)):
        return from_module(model)
    if is_minimal_module(model):
        init = getattr(model, "init_state", None)
        names = getattr(model, "state_names", None)
        return CallableUnit(model, model.input_size, model.hidden_size, init_state=init if callable(init) else None,
                            state_names=tuple(names) if names else None)
    if isinstance(model, RecurrentModel):  # a full implementation of the protocol, not a subclass
        return model
    raise ConfigError(
        f"cannot probe a {type(model).__name__}: pass an rnnmem unit, a torch.nn.RNN/LSTM/GRU, an nn.Module with "
        "integer input_size and hidden_size attributes whose forward(x[T, B, I], state=None) returns (y, state), "
        "or wrap your module as rnnmem.cells.CallableUnit(module, input_size, hidden_size)"
    )


__all__ = ["RecurrentModel", "as_model", "is_minimal_module"]
