"""Bring weights from elsewhere into rnnmem units.

- ``from_module(m)``: a torch.nn.RNN / LSTM / GRU (any layer count, batch_first or not) as an
  rnnmem unit with the torch convention and the module's weights (a copy, on the module's device
  and dtype), so every probe can use it.
- ``load_keras(unit, layer, kernel, recurrent_kernel, bias)``: Keras layouts (LSTM gates i,f,c,o;
  GRU z,r,h; GRU reset_after bias of shape (2, 3H)).
- ``load_tf1(unit, layer, ...)``: TF1 BasicLSTMCell (kernel over [x, h], gates i,j,f,o) and
  GRUCell (gates kernel r,u over [x, h], candidate kernel).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..errors import ConfigError
from .base import RecurrentUnit


def _t(a, like: torch.Tensor) -> torch.Tensor:
    return torch.as_tensor(np.asarray(a), dtype=like.dtype, device=like.device)


def _check_layer(unit, layer: int) -> None:
    if not isinstance(unit, RecurrentUnit):
        raise ConfigError(f"expected an rnnmem unit (cells.build), got {type(unit).__name__}")
    if not isinstance(layer, int) or not 0 <= layer < unit.num_layers:
        raise ConfigError(f"layer must be 0..{unit.num_layers - 1} for this unit, got {layer!r}")


def _set(unit: RecurrentUnit, layer: int, name: str, value: torch.Tensor) -> None:
    holder = unit.layer_params[layer]
    if name not in holder._parameters:
        raise ConfigError(
            f"layer {layer} of this {unit.kind} unit has no parameter {name!r} (its parameters: "
            f"{', '.join(holder._parameters)}); build the unit with a convention whose bias layout "
            "matches the weights (e.g. keras2 for a reset_after GRU bias of shape (2, 3H))"
        )
    p = holder._parameters[name]
    if p.shape != value.shape:
        raise ConfigError(f"layer {layer} {name}: expected shape {tuple(p.shape)}, got {tuple(value.shape)}")
    with torch.no_grad():
        p.copy_(value)


def from_module(module: nn.Module) -> RecurrentUnit:
    """Wrap a torch.nn.RNN/LSTM/GRU as an rnnmem unit (torch convention, weights copied).

    Inputs to the returned unit are always time-major ``[T, B, I]``, whatever the module's
    ``batch_first``; the maths is identical (checked by the test suite). Dropout between layers
    is not applied: the unit computes what the module computes in ``eval()`` mode.

    Parameters
    ----------
    module : nn.Module
        A ``torch.nn.RNN`` (tanh or relu), ``LSTM`` or ``GRU``, float32 or float64, any number of
        layers, with or without bias (none: zero biases).

    Returns
    -------
    RecurrentUnit
        The ``rnn`` / ``lstm`` / ``gru`` unit (convention ``torch``) on the module's device and dtype,
        holding a copy of its weights; ``unit.source_module`` names the module's class.

    Raises
    ------
    ConfigError
        For another kind of module, a bidirectional module, an LSTM with ``proj_size``, or a dtype
        other than float32 / float64.
    """
    from . import build

    if isinstance(module, nn.LSTM):
        name, extra = "lstm", {}
    elif isinstance(module, nn.GRU):
        name, extra = "gru", {}
    elif isinstance(module, nn.RNN):
        name, extra = "rnn", {"nonlinearity": module.nonlinearity}
    else:
        raise ConfigError(
            f"from_module takes torch.nn.RNN, LSTM or GRU, got {type(module).__name__}; "
            "wrap other models with rnnmem.cells.CallableUnit"
        )
    if module.bidirectional:
        raise ConfigError("bidirectional modules are not causal and have no single forward state")
    if getattr(module, "proj_size", 0):
        raise ConfigError("LSTM with proj_size is not supported")
    ref = module.weight_ih_l0
    if ref.dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"module dtype must be float32 or float64, got {ref.dtype}")
    unit = build(
        name,
        module.input_size,
        module.hidden_size,
        layers=module.num_layers,
        convention="torch",
        dtype=ref.dtype,
        seed=0,
        **extra,
    ).to(ref.device)
    for layer in range(module.num_layers):
        _set(unit, layer, "W_x", getattr(module, f"weight_ih_l{layer}").detach().T)
        _set(unit, layer, "W_h", getattr(module, f"weight_hh_l{layer}").detach().T)
        if module.bias:
            _set(unit, layer, "b", getattr(module, f"bias_ih_l{layer}").detach())
            _set(unit, layer, "b_h", getattr(module, f"bias_hh_l{layer}").detach())
        else:
            _set(unit, layer, "b", torch.zeros_like(unit.layer_params[layer].b))
            _set(unit, layer, "b_h", torch.zeros_like(unit.layer_params[layer].b_h))
    unit.source_module = type(module).__name__
    return unit


def _reorder(a: np.ndarray, H: int, order: list[int]) -> np.ndarray:
    parts = [a[..., k * H : (k + 1) * H] for k in range(a.shape[-1] // H)]
    return np.concatenate([parts[k] for k in order], axis=-1)


def load_keras(unit: RecurrentUnit, layer: int, kernel, recurrent_kernel, bias) -> RecurrentUnit:
    """Load Keras weights (``layer.get_weights()``) into layer ``layer`` of ``unit``.

    Build ``unit`` with the matching convention: ``keras`` (2.2.4: hard_sigmoid, GRU reset
    before, one bias) or ``keras2`` (sigmoid, GRU reset_after with bias shape (2, 3H)).

    Parameters
    ----------
    unit : RecurrentUnit
        An ``rnn``, ``lstm`` or ``gru`` unit (not an ensemble).
    layer : int
        The layer to load, 0 <= layer < layers.
    kernel : array_like
        ``[I_l, G*H]``, Keras gate order (LSTM i, f, c, o; GRU z, r, h).
    recurrent_kernel : array_like
        ``[H, G*H]``, the same gate order.
    bias : array_like
        ``[G*H]``, or ``[2, G*H]`` (input bias, recurrent bias) for a GRU with ``reset_after``.

    Returns
    -------
    RecurrentUnit
        ``unit`` itself, its parameters overwritten in place (gates reordered to i, f, g, o / r, z, n;
        a second bias ``b_h`` the weights do not carry is set to zero).

    Raises
    ------
    ConfigError
        When ``unit`` is not an rnnmem unit of those kinds, ``layer`` is out of range, a shape does
        not match the unit's, or the bias layout does not match its convention.
    """
    _check_layer(unit, layer)
    H = unit.hidden_size
    kernel, recurrent_kernel, bias = (np.asarray(a) for a in (kernel, recurrent_kernel, bias))
    if bias.ndim not in (1, 2):
        raise ConfigError(f"layer {layer}: Keras bias must have shape (G*H,) or (2, G*H), got {bias.shape}")
    ref = unit.layer_params[layer].W_x
    if unit.kind == "lstm":
        order = [0, 1, 2, 3]  # Keras i,f,c,o == torch i,f,g,o
    elif unit.kind == "gru":
        order = [1, 0, 2]  # Keras z,r,h -> torch r,z,n
    elif unit.kind == "rnn":
        order = [0]
    else:
        raise ConfigError(f"load_keras does not know the layout of {unit.kind!r}")
    _set(unit, layer, "W_x", _t(_reorder(kernel, H, order), ref))
    _set(unit, layer, "W_h", _t(_reorder(recurrent_kernel, H, order), ref))
    if bias.ndim == 2:  # GRU reset_after: (input bias, recurrent bias)
        _set(unit, layer, "b", _t(_reorder(bias[0], H, order), ref))
        _set(unit, layer, "b_h", _t(_reorder(bias[1], H, order), ref))
    else:
        _set(unit, layer, "b", _t(_reorder(bias, H, order), ref))
        if hasattr(unit.layer_params[layer], "b_h"):
            _set(unit, layer, "b_h", torch.zeros_like(unit.layer_params[layer].b_h))
    return unit


def load_tf1(unit: RecurrentUnit, layer: int, kernel=None, bias=None, *, gates_kernel=None,
             gates_bias=None, candidate_kernel=None, candidate_bias=None) -> RecurrentUnit:
    """Load TF1 weights: BasicLSTMCell / BasicRNNCell ``kernel, bias``; GRUCell ``gates_*,
    candidate_*``. Kernels act on ``[x, h]`` (rows: input first). Build ``unit`` with
    ``convention="tf1"`` (BasicLSTMCell's forget_bias=1.0 is the convention's forget_shift).

    Parameters
    ----------
    unit : RecurrentUnit
        An ``rnn``, ``lstm`` or ``gru`` unit (not an ensemble).
    layer : int
        The layer to load, 0 <= layer < layers.
    kernel, bias : array_like, optional
        BasicLSTMCell (``[I_l + H, 4H]``, gates i, j, f, o; ``[4H]``) or BasicRNNCell (``[I_l + H, H]``,
        ``[H]``).
    gates_kernel, gates_bias : array_like, optional
        GRUCell's gates: ``[I_l + H, 2H]`` (r, u) and ``[2H]``.
    candidate_kernel, candidate_bias : array_like, optional
        GRUCell's candidate: ``[I_l + H, H]`` and ``[H]``.

    Returns
    -------
    RecurrentUnit
        ``unit`` itself, its parameters overwritten in place (a second bias ``b_h`` set to zero).

    Raises
    ------
    ConfigError
        When ``unit`` is not an rnnmem unit of those kinds, ``layer`` is out of range, the weights its
        kind needs are missing, or a shape does not match the unit's.
    """
    _check_layer(unit, layer)
    H = unit.hidden_size
    I = unit.layer_input_size(layer)
    ref = unit.layer_params[layer].W_x
    if unit.kind == "lstm":
        if kernel is None or bias is None:
            raise ConfigError("load_tf1 for an LSTM needs kernel and bias (BasicLSTMCell)")
        k = _reorder(np.asarray(kernel), H, [0, 2, 1, 3])  # i,j,f,o -> i,f,j,o
        b = _reorder(np.asarray(bias), H, [0, 2, 1, 3])
    elif unit.kind == "gru":
        parts = (gates_kernel, gates_bias, candidate_kernel, candidate_bias)
        if any(a is None for a in parts):
            raise ConfigError(
                "load_tf1 for a GRU needs gates_kernel, gates_bias, candidate_kernel, candidate_bias (GRUCell)"
            )
        k = np.concatenate([np.asarray(gates_kernel), np.asarray(candidate_kernel)], axis=-1)
        b = np.concatenate([np.asarray(gates_bias), np.asarray(candidate_bias)], axis=-1)
    elif unit.kind == "rnn":
        if kernel is None or bias is None:
            raise ConfigError("load_tf1 for an RNN needs kernel and bias (BasicRNNCell)")
        k, b = np.asarray(kernel), np.asarray(bias)
    else:
        raise ConfigError(f"load_tf1 does not know the layout of {unit.kind!r}")
    if k.ndim != 2 or k.shape[0] != I + H:
        raise ConfigError(f"layer {layer}: TF1 kernel must have {I + H} rows (input {I} + hidden {H}), "
                          f"got shape {k.shape}")
    _set(unit, layer, "W_x", _t(k[:I], ref))
    _set(unit, layer, "W_h", _t(k[I:], ref))
    _set(unit, layer, "b", _t(b, ref))
    if "b_h" in unit.layer_params[layer]._parameters:  # TF1 cells have one bias
        _set(unit, layer, "b_h", torch.zeros_like(unit.layer_params[layer].b_h))
    return unit
