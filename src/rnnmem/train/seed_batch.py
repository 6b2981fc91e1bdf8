"""Helpers for training S seeds as one batched computation (every parameter has a leading seed dim)."""

from __future__ import annotations

import torch
from torch import nn


def masked_copy(dst: torch.Tensor, src: torch.Tensor, mask: torch.Tensor) -> None:
    """``dst[e] = src[e]`` where ``mask[e]`` (``mask`` is boolean over the leading seed dim)."""
    m = mask.view((-1,) + (1,) * (dst.dim() - 1))
    dst.copy_(torch.where(m, src, dst))


def seed_params(net: nn.Module, size: int) -> list[torch.Tensor]:
    """The parameters of ``net``, each checked to carry the leading seed dim of length ``size``."""
    params = list(net.parameters())
    for p in params:
        if p.shape[0] != size:
            raise AssertionError(f"parameter of shape {tuple(p.shape)} has no leading seed dim")
    return params
