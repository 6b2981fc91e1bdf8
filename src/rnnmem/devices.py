"""One place that turns a user's ``--device`` into a torch device, or one clear error."""

from __future__ import annotations

import torch

from .errors import ConfigError


def resolve_device(device=None) -> torch.device:
    """``None`` -> cpu; ``"cpu"``, ``"cuda"``, ``"cuda:N"`` or a ``torch.device`` -> that device.

    Raises ``ConfigError`` for a name torch does not know, a device type other than cpu/cuda, or
    cuda on a machine where torch sees no CUDA device."""
    if device is None:
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ConfigError(f"unknown device {device!r}; use cpu, cuda or cuda:N") from None
    if dev.type not in ("cpu", "cuda"):
        raise ConfigError(f"device {device!r} is not supported; use cpu, cuda or cuda:N")
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} was asked for but torch sees no CUDA device; use --device cpu")
    return dev
