"""Load a user's trained recurrent model from disk for probing.

Accepted files (``torch.save``):
- a pickled ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` module;
- a state_dict of one (keys ``weight_ih_l0``, ``weight_hh_l0``, ...): the cell type follows from the
  gate count (4 LSTM, 3 GRU, 1 RNN), sizes and layer count from the shapes;
- a state_dict of an rnnmem unit (keys ``layer_params.0.W_x`` ...): give ``cell`` and ``convention``.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch
from torch import nn

from .errors import InputError


def _load(path: Path):
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception:  # not a plain state_dict: a pickled module (trusted user file)
        try:
            return torch.load(path, map_location="cpu", weights_only=False)
        except Exception as exc:
            raise InputError(f"cannot read {path} as a torch file ({type(exc).__name__}: {exc}); "
                             "save the model with torch.save(model.state_dict(), path)") from None


def load_recurrent(path, cell: str | None = None, convention: str = "torch", nonlinearity: str = "tanh",
                   **options):
    """Return an rnnmem unit holding the weights stored at ``path`` (see module docstring)."""
    from .cells import build, from_module

    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} not found")
    obj = _load(path)
    if isinstance(obj, (nn.RNN, nn.LSTM, nn.GRU)):
        return from_module(obj)
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"{path} holds a {type(obj).__name__}, not a recurrent module or state_dict")
    if "weight_ih_l0" in obj:
        layers = 1 + max(int(m.group(1)) for k in obj if (m := re.fullmatch(r"weight_ih_l(\d+)", k)))
        w_ih, w_hh = obj["weight_ih_l0"], obj["weight_hh_l0"]
        hidden = w_hh.shape[1]
        gates = w_ih.shape[0] // hidden
        kinds = {4: nn.LSTM, 3: nn.GRU, 1: nn.RNN}
        if gates not in kinds or any(k.endswith("_reverse") for k in obj):
            raise InputError(f"{path}: weight shapes {tuple(w_ih.shape)} match no unidirectional RNN/LSTM/GRU")
        kwargs = {"nonlinearity": nonlinearity} if gates == 1 else {}
        module = kinds[gates](w_ih.shape[1], hidden, num_layers=layers, bias="bias_ih_l0" in obj, **kwargs)
        module = module.to(w_ih.dtype)
        try:
            module.load_state_dict(obj)
        except RuntimeError as exc:
            raise InputError(f"{path}: state_dict does not fit a {kinds[gates].__name__}: {exc}") from None
        return from_module(module)
    if "layer_params.0.W_x" in obj:
        if cell is None:
            raise InputError(f"{path} is an rnnmem unit state_dict: say which cell it is (--cell)")
        W_x, W_h = obj["layer_params.0.W_x"], obj["layer_params.0.W_h"]
        layers = 1 + max(int(m.group(1)) for k in obj if (m := re.match(r"layer_params\.(\d+)\.", k)))
        unit = build(cell, W_x.shape[-2], W_h.shape[-2], layers=layers, convention=convention,
                     dtype=W_x.dtype, seed=0, **options)
        try:
            unit.load_state_dict(obj)
        except RuntimeError as exc:
            raise InputError(f"{path}: state_dict does not fit {cell} with convention {convention}: {exc}") from None
        return unit
    raise InputError(f"{path}: unrecognised state_dict keys {sorted(obj)[:4]}...; expected torch.nn.RNN/LSTM/GRU "
                     "or rnnmem unit weights")
