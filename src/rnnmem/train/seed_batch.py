"""Helpers for training S seeds as one batched computation (every parameter has a leading seed dim)."""

from __future__ import annotations

import torch
from torch import nn


def masked_copy(dst: torch.Tensor, src: torch.Tensor, mask: torch.Tensor) -> None:
    """``dst[e] = src[e]`` where ``mask[e]`` (``mask`` is boolean over the leading seed dim).

    Parameters
    ----------
    dst : torch.Tensor
        [S, ...], updated in place.
    src : torch.Tensor
        [S, ...], same shape as ``dst``.
    mask : torch.Tensor
        bool [S].

    Returns
    -------
    None
    """
    m = mask.view((-1,) + (1,) * (dst.dim() - 1))
    dst.copy_(torch.where(m, src, dst))


def seed_params(net: nn.Module, size: int) -> list[torch.Tensor]:
    """The parameters of ``net``, each checked to carry the leading seed dim of length ``size``.

    Parameters
    ----------
    net : torch.nn.Module
        A seed-batched module.
    size : int
        Number of seeds S.

    Returns
    -------
    list of torch.Tensor
        ``list(net.parameters())``.

    Raises
    ------
    AssertionError
        If a parameter's first dimension is not ``size`` (a programming error, not a user input).
    """
    params = list(net.parameters())
    for p in params:
        if p.shape[0] != size:
            raise AssertionError(f"parameter of shape {tuple(p.shape)} has no leading seed dim")
    return params
