"""Weight initialisers, each drawing from an explicit ``torch.Generator`` so seeds reproduce.

Matrices use the ``x @ W`` layout: a kernel has shape ``(fan_in, gates * H)``.
"""

from __future__ import annotations

import math

import torch


def uniform(shape, bound: float, gen: torch.Generator | None, dtype) -> torch.Tensor:
    """U(-bound, bound); PyTorch's RNN default uses bound = 1/sqrt(H).

    Parameters
    ----------
    shape : tuple of int
        Shape of the result.
    bound : float
        Half-width of the interval.
    gen : torch.Generator or None
        Source of the draws (None: torch's global generator).
    dtype : torch.dtype
        dtype of the draws and of the result.

    Returns
    -------
    Tensor
        ``shape``, entries ``(2 u - 1) bound`` with u ~ U[0, 1).
    """
    return (torch.rand(shape, generator=gen, dtype=dtype) * 2 - 1) * bound


def glorot_uniform(shape, gen, dtype) -> torch.Tensor:
    """Glorot & Bengio (2010): U(-l, l), l = sqrt(6 / (fan_in + fan_out)) over the whole kernel.

    Parameters
    ----------
    shape : tuple of int
        ``(fan_in, fan_out)``, e.g. ``(I, G*H)`` (the ``x @ W`` layout).
    gen : torch.Generator or None
        Source of the draws.
    dtype : torch.dtype
        dtype of the draws and of the result.

    Returns
    -------
    Tensor
        ``shape``, drawn by :func:`uniform` with that bound.
    """
    fan_in, fan_out = shape
    return uniform(shape, math.sqrt(6.0 / (fan_in + fan_out)), gen, dtype)


def orthogonal(shape, gen, dtype) -> torch.Tensor:
    """Saxe et al. (2014) as Keras' ``Orthogonal``: QR of a Gaussian matrix, sign-corrected.

    For a (H, G*H) recurrent kernel the rows are orthonormal: ``W @ W.T = I``.

    Parameters
    ----------
    shape : tuple of int
        ``(rows, cols)``.
    gen : torch.Generator or None
        Source of the Gaussian draws (made in float64).
    dtype : torch.dtype
        dtype of the result.

    Returns
    -------
    Tensor
        ``shape``, contiguous: orthonormal rows when rows < cols, orthonormal columns otherwise.
    """
    rows, cols = shape
    a = torch.randn((max(rows, cols), min(rows, cols)), generator=gen, dtype=torch.float64)
    q, r = torch.linalg.qr(a)
    q = q * torch.sign(torch.diagonal(r)).unsqueeze(0)
    if rows < cols:
        q = q.T
    return q.to(dtype).contiguous()


def chrono_bias(hidden: int, tmax: float, gen, dtype) -> torch.Tensor:
    """Tallec & Ollivier (2018) chrono init: b_f = log(U[1, tmax - 1]).

    Parameters
    ----------
    hidden : int
        H, the number of forget-gate biases.
    tmax : float
        The largest timescale, > 2 (``chrono_tmax``, default 100 in the conventions).
    gen : torch.Generator or None
        Source of the draws (made in float64).
    dtype : torch.dtype
        dtype of the result.

    Returns
    -------
    Tensor
        ``[hidden]``, values in [0, log(tmax - 1)).
    """
    u = torch.rand(hidden, generator=gen, dtype=torch.float64) * (tmax - 2) + 1
    return torch.log(u).to(dtype)
