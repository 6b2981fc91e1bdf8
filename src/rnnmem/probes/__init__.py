"""Probes: each measures one aspect of a recurrent model's memory (forgetting, connectivity,
long memory, capacity, Lyapunov exponents, semantic retention).

Every probe has one door, ``PROBES[name](model, *, settings=None, seed=0, device=None, dtype=None,
progress=None) -> Result`` (see ``contract.py``); the functions underneath (``forgetting``,
``memory_capacity``, ``lyapunov_spectrum``, ``connectivity_matrix``, ``long_memory_probe``, the
semantic array functions) stay available for finer control.
"""

from .contract import PROBES, Probe, ProbeSettings, Result, prepare, register_probe  # noqa: F401
from . import forgetting, lyapunov, capacity, connectivity, long_memory, semantic  # noqa: E402,F401  (register)


def probe(name: str, model, **kwargs) -> Result:
    """Run the registered probe ``name`` on ``model``: ``PROBES[name](model, **kwargs)`` with one clear
    error for an unknown name.

    Parameters
    ----------
    name : str
        A key of ``PROBES`` (``"forgetting"``, ``"connectivity"``, ``"long_memory"``, ``"capacity"``,
        ``"lyapunov"``, ``"semantic"``...).
    model : rnnmem unit, CallableUnit, torch.nn.RNN/LSTM/GRU or nn.Module with the model protocol
        The recurrent model to probe (see :func:`rnnmem.probes.common.as_unit`).
    **kwargs
        Passed on to the probe: ``settings``, ``seed``, ``device``, ``dtype``, ``progress``
        (see :class:`rnnmem.probes.contract.Probe`).

    Returns
    -------
    Result
        The probe's result (``summary()``, ``to_frame()``, ``to_json()``, ``plot()``).

    Raises
    ------
    ConfigError
        ``name`` is not a registered probe (the message lists the valid names).
    """
    from ..errors import ConfigError

    if name not in PROBES:
        raise ConfigError(f"unknown probe {name!r}; choose one of {', '.join(PROBES)}")
    return PROBES[name](model, **kwargs)


__all__ = ["PROBES", "Probe", "ProbeSettings", "Result", "prepare", "probe", "register_probe"]
