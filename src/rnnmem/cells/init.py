"""Weight initialisers, each drawing from an explicit ``torch.Generator`` so seeds reproduce.

Matrices use the ``x @ W`` layout: a kernel has shape ``(fan_in, gates * H)``.
"""

from __future__ import annotations

import math

import torch


def uniform(shape, bound: float, gen: torch.Generator | None, dtype) -> torch.Tensor:
    """U(-bound, bound); PyTorch's RNN default uses bound = 1/sqrt(H)."""
    return (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * bound


def glorot_uniform(shape, gen, dtype) -> torch.Tensor:
    """Glorot & Bengio (2010): U(-l, l), l = sqrt(6 / (fan_in + fan_out)) over the whole kernel."""
    fan_in, fan_out = shape
    return uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)), gen, dtype)


def orthogonal(shape, gen, dtype) -> torch.Tensor:
    """Saxe et al. (2014) as Keras' ``Orthogonal``: QR of a Gaussian matrix, sign-corrected.

    For a (H, G*H) recurrent kernel the rows are orthonormal: ``W @ W.T = I``.
    """
    rows, cols = shape
    a = torch.randn((max(rows, cols), min(rows, cols)), generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if rows < cols:
        q = q.T
    return q.to(dtype).contiguous()


def chrono_bias(hidden: int, tmax: float, gen, dtype) -> torch.Tensor:
    """Tallec & Ollivier (2018) chrono init: b_f = log(U[1, tmax - 1])."""
    u = torch.rand(hidden, generator=gen, dtype=torch.float64) * (tmax - 2) + 1
    return torch.log(u).to(dtype)
