"""Load a user's trained recurrent model from disk for probing.

Accepted files (``torch.save``):
- a state_dict of a ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` (keys ``weight_ih_l0``, ``weight_hh_l0``,
  ...): the cell type follows from the gate count (4 LSTM, 3 GRU, 1 RNN), sizes and layer count from
  the shapes;
- a state_dict of an rnnmem unit (keys ``layer_params.0.W_x`` ...): give ``cell`` and ``convention``;
- a pickled ``torch.nn.RNN`` / ``LSTM`` / ``GRU`` module, only with ``trust_checkpoint=True`` (CLI:
  ``--trust-checkpoint``).

Files are read with ``torch.load(weights_only=True)``: tensors and plain containers only, so a file
cannot run code when it is loaded. A file that needs full unpickling (a whole pickled module, or
anything else that names Python callables) is refused with an error naming ``--trust-checkpoint``;
unpickling runs whatever code the file names, so opt in only for files from a source you trust.
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import torch
from torch import nn

from .errors import ConfigError, InputError


TRUST_HINT = ("save the model with torch.save(model.state_dict(), path), or, only if you trust the file's "
              "source, pass --trust-checkpoint (Python: trust_checkpoint=True)")


def pickled_globals(path: Path) -> list[str] | None:
    """Python callables that unpickling ``path`` would import, found without unpickling it.

    Returns the names (``module.name``) for a ``torch.save`` file or a plain pickle, an empty list
    when the file is a pickle that names none, and ``None`` when it is not a pickle at all.

    Parameters
    ----------
    path : str or Path
        The file to inspect (read with ``torch.serialization.get_unsafe_globals_in_checkpoint``, or
        scanned opcode by opcode with ``pickletools.genops`` for a legacy pickle; never unpickled).

    Returns
    -------
    list of str or None
        The ``module.name`` of every global the pickle references (``"?"`` where a
        ``STACK_GLOBAL`` name could not be recovered), ``[]`` for none, ``None`` for a non-pickle.
    """
    import pickletools

    try:
        return list(torch.serialization.get_unsafe_globals_in_checkpoint(path))
    except Exception:  # not a torch.save zip archive: try a plain (legacy) pickle stream
        pass
    names: list[str] = []
    strings: list[str] = []
    try:
        with open(path, "rb") as fh:
            for op, arg, _ in pickletools.genops(fh):
                if op.name in ("GLOBAL", "INST"):
                    names.append(str(arg).replace(" ", "."))
                elif op.name == "STACK_GLOBAL":
                    names.append(".".join(strings[-2:]) if len(strings) >= 2 else "?")
                elif isinstance(arg, str) and "UNICODE" in op.name:
                    strings.append(arg)
    except Exception:
        return None
    return names


def _load(path: Path, trust_checkpoint: bool = False):
    try:
        with warnings.catch_warnings():  # torch warns about the protocol of plain pickles it then refuses
            warnings.filterwarnings("ignore", message="Detected pickle protocol")
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # not tensors-only: a pickled module, arbitrary objects, or not a torch file
        first = exc
    if not trust_checkpoint:
        names = pickled_globals(path)
        if names:
            shown = ", ".join(sorted(set(names))[:4]) + (", ..." if len(set(names)) > 4 else "")
            raise InputError(f"{path} holds pickled Python objects ({shown}); loading it would run code "
                             f"the file names, so rnnmem reads only tensors by default: {TRUST_HINT}")
        why = ("neither a torch.save archive nor a pickle of tensors" if "Weights only load failed" in str(first)
               else f"{type(first).__name__}: {first}")
        raise InputError(f"cannot read {path} as a torch file ({why}); "
                         "save the model with torch.save(model.state_dict(), path)") from None
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise InputError(f"cannot read {path} as a torch file ({type(exc).__name__}: {exc}); "
                         "save the model with torch.save(model.state_dict(), path)") from None


_TORCH_KEY = re.compile(r"(weight|bias)_(ih|hh)_l(\d+)(_reverse)?")
_FIELDS = {  # expect key -> (CLI option, how to read it from a unit)
    "cell": ("--cell", lambda u: u.kind),
    "input_size": ("--input-size", lambda u: u.input_size),
    "units": ("--units", lambda u: u.hidden_size),
    "layers": ("--layers", lambda u: u.num_layers),
    "dtype": ("--dtype", lambda u: str(u.dtype).replace("torch.", "")),
    "convention": ("--convention", lambda u: u.convention.name),
}


def _tensor(obj: dict, key: str, path: Path, ndim: int, expected: str):
    if key not in obj:
        raise InputError(f"{path}: the state_dict has no {key!r} ({expected}); its keys are "
                         f"{', '.join(sorted(map(str, obj))[:8])}{', ...' if len(obj) > 8 else ''}")
    value = obj[key]
    if not isinstance(value, torch.Tensor) or value.ndim != ndim or not value.is_floating_point():
        what = f"a {value.ndim}-D {value.dtype} tensor" if isinstance(value, torch.Tensor) else type(value).__name__
        raise InputError(f"{path}: {key!r} is {what}, expected a {ndim}-D floating-point tensor ({expected})")
    return value


def _torch_module(obj: dict, path: Path, nonlinearity: str) -> nn.Module:
    """A torch.nn.RNN/LSTM/GRU built from its state_dict ``obj`` (every required key checked)."""
    expected = ("a torch.nn.RNN/LSTM/GRU state_dict has weight_ih_l<k>, weight_hh_l<k> and, with bias, "
                "bias_ih_l<k>, bias_hh_l<k> for every layer k")
    if any(k.endswith("_reverse") for k in obj):
        raise InputError(f"{path}: a bidirectional module (keys *_reverse) is not causal and cannot be probed")
    layers = 1 + max(int(m.group(3)) for k in obj if (m := _TORCH_KEY.fullmatch(k)))
    bias = any(k.startswith("bias_") for k in obj)
    w_ih = _tensor(obj, "weight_ih_l0", path, 2, expected)
    w_hh = _tensor(obj, "weight_hh_l0", path, 2, expected)
    for layer in range(layers):
        for kind in ("weight",) + (("bias",) if bias else ()):
            for part in ("ih", "hh"):
                _tensor(obj, f"{kind}_{part}_l{layer}", path, 2 if kind == "weight" else 1, expected)
    hidden = w_hh.shape[1]
    gates = w_ih.shape[0] // hidden if hidden else 0
    kinds = {4: nn.LSTM, 3: nn.GRU, 1: nn.RNN}
    if gates not in kinds or w_ih.shape[0] != gates * hidden or w_hh.shape[0] != gates * hidden:
        raise InputError(f"{path}: weight shapes weight_ih_l0 {tuple(w_ih.shape)}, weight_hh_l0 {tuple(w_hh.shape)} "
                         "match no RNN/LSTM/GRU (rows must be 1, 3 or 4 times the hidden size)")
    kwargs = {"nonlinearity": nonlinearity} if gates == 1 else {}
    module = kinds[gates](w_ih.shape[1], hidden, num_layers=layers, bias=bias, **kwargs).to(w_ih.dtype)
    try:
        module.load_state_dict(obj)
    except RuntimeError as exc:
        raise InputError(f"{path}: state_dict does not fit a {kinds[gates].__name__}: {exc}") from None
    return module


def check_expected(unit, path, expect: dict | None) -> None:
    """Raise one ``ConfigError`` naming every value in ``expect`` that the loaded ``unit`` contradicts.

    Parameters
    ----------
    unit : RecurrentUnit
        The unit read from ``path``.
    path : path-like
        The file, named in the message.
    expect : dict or None
        What the caller stated explicitly, keys among ``cell``, ``input_size``, ``units``,
        ``layers``, ``dtype``, ``convention`` (``None`` values are skipped).

    Returns
    -------
    None
        Nothing when every stated value matches (compared as case-insensitive text).

    Raises
    ------
    ConfigError
        Naming each contradicted option with the file's value, or an unknown key in ``expect``.
    """
    conflicts = []
    for key, value in (expect or {}).items():
        if key not in _FIELDS:
            raise ConfigError(f"cannot check {key!r} against a model file; known: {', '.join(_FIELDS)}")
        if value is None:
            continue
        flag, read = _FIELDS[key]
        have = read(unit)
        if str(value).lower() != str(have).lower():
            conflicts.append(f"{flag} {value} (the file holds {have})")
    if conflicts:
        raise ConfigError(f"{'; '.join(conflicts)}: these options contradict {path}, whose weights fix them; "
                          "drop the options or pass the file's values")


def load_recurrent(path, cell: str | None = None, convention: str = "torch", nonlinearity: str = "tanh",
                   *, trust_checkpoint: bool = False, expect: dict | None = None, **options):
    """Return an rnnmem unit holding the weights stored at ``path`` (see module docstring).

    Parameters
    ----------
    path : path-like
        A ``torch.save`` file: a torch.nn.RNN/LSTM/GRU state_dict, an rnnmem unit state_dict, or
        (with ``trust_checkpoint``) a pickled torch.nn.RNN/LSTM/GRU.
    cell, convention : str
        The unit and convention of an rnnmem unit state_dict (the file does not record them).
    nonlinearity : str
        ``tanh`` or ``relu`` for a torch.nn.RNN state_dict.
    trust_checkpoint : bool
        Allow full unpickling (runs any code the file names): only for files you trust.
    expect : dict, optional
        Values the user stated explicitly (``cell``, ``input_size``, ``units``, ``layers``, ``dtype``,
        ``convention``); any that the file contradicts raise one ``ConfigError`` naming them.
    **options
        Unit options for an rnnmem unit state_dict.

    Returns
    -------
    RecurrentUnit
        The unit (torch modules through ``cells.from_module``; rnnmem state_dicts built with
        ``cells.build`` and loaded), on the CPU with the file's dtype.

    Raises
    ------
    InputError
        When the file is missing or unreadable, holds pickled objects without ``trust_checkpoint``,
        is not a recurrent module/state_dict, is bidirectional, has missing, mis-shaped or
        non-finite weights, or is an rnnmem state_dict without ``cell``.
    ConfigError
        When ``expect`` contradicts the file (:func:`check_expected`).
    """
    from .cells import build, from_module

    path = Path(path)
    if not path.is_file():
        raise InputError(f"model file {path} not found")
    obj = _load(path, trust_checkpoint)
    if isinstance(obj, (nn.RNN, nn.LSTM, nn.GRU)):
        unit = from_module(obj)
        check_expected(unit, path, expect)
        return unit
    if isinstance(obj, nn.Module):
        obj = obj.state_dict()
    if not isinstance(obj, dict) or not obj:
        raise InputError(f"{path} holds a {type(obj).__name__}, not a recurrent module or state_dict")
    for key, value in obj.items():
        if isinstance(value, torch.Tensor) and value.is_floating_point() and not torch.isfinite(value).all():
            bad = int((~torch.isfinite(value)).sum())
            raise InputError(f"{path}: {key!r} holds {bad} NaN or infinite values (of {value.numel()}); a probe of "
                             "it would report meaningless numbers: check the training run that wrote it")
    if any(isinstance(k, str) and _TORCH_KEY.fullmatch(k) for k in obj):
        unit = from_module(_torch_module(obj, path, nonlinearity))
        check_expected(unit, path, expect)
        return unit
    if any(isinstance(k, str) and k.startswith("layer_params.") for k in obj):
        if cell is None:
            raise InputError(f"{path} is an rnnmem unit state_dict: say which cell it is (--cell)")
        expected = "an rnnmem unit state_dict has layer_params.<k>.W_x and layer_params.<k>.W_h for every layer k"
        W_x = _tensor(obj, "layer_params.0.W_x", path, 2, expected)
        W_h = _tensor(obj, "layer_params.0.W_h", path, 2, expected)
        layers = 1 + max(int(m.group(1)) for k in obj if (m := re.match(r"layer_params\.(\d+)\.", str(k))))
        unit = build(cell, W_x.shape[-2], W_h.shape[-2], layers=layers, convention=convention,
                     dtype=W_x.dtype, seed=0, **options)
        try:
            unit.load_state_dict(obj)
        except RuntimeError as exc:
            raise InputError(f"{path}: state_dict does not fit {cell} with convention {convention}: {exc}") from None
        check_expected(unit, path, expect)
        return unit
    raise InputError(f"{path}: unrecognised state_dict keys {sorted(map(str, obj))[:4]}...; expected torch.nn.RNN/"
                     "LSTM/GRU weights (weight_ih_l0, weight_hh_l0, ...) or rnnmem unit weights "
                     "(layer_params.0.W_x, ...)")
