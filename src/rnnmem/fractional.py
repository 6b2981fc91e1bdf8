"""Fractional differencing / integration weights (Hosking 1981; Granger & Joyeux 1980).

The expansion (1 - B)^d = sum_{j>=0} pi_j(d) B^j has

    pi_0 = 1,   pi_j = prod_{i=0}^{j-1} (i - d) / (i + 1)  =  pi_{j-1} * (j - 1 - d) / j

so pi_1 = -d. Zhao et al. (ICML 2020) write the filter weights as w_j(d) for j = 1..K with the
current input included (w_1 = -d): w_j(d) = pi_j(d). ``frac_weights`` computes them with a
cumulative product (vectorised, differentiable in d); ``frac_weights(-d)`` gives the coefficients of
(1 - B)^{-d}, the MA(infinity) weights of fractional integration used by ARFIMA simulation.
"""

from __future__ import annotations

import torch


def frac_weights(d: torch.Tensor | float, K: int, include_zero: bool = False) -> torch.Tensor:
    """Weights pi_1..pi_K (or pi_0..pi_K with ``include_zero``) of (1 - B)^d.

    ``d`` may be a tensor of any shape; the result has shape ``d.shape + (K,)`` (K+1 with
    ``include_zero``). Gradients flow through ``d``.

    Equation (Hosking 1981; Granger & Joyeux 1980): pi_0 = 1, pi_j(d) = pi_{j-1}(d) (j - 1 - d) / j,
    i.e. pi_j(d) = prod_{i=1}^{j} (i - 1 - d) / i, computed as a cumulative product of the ratios.

    Parameters
    ----------
    d : torch.Tensor or float
        Differencing order(s), any shape; a float becomes a 0-d tensor of the default dtype.
    K : int
        Number of weights after pi_0 (filter length), >= 1.
    include_zero : bool, default False
        Prepend pi_0 = 1.

    Returns
    -------
    torch.Tensor
        Shape ``d.shape + (K,)`` (``+ (K + 1,)`` with ``include_zero``), dtype and device of ``d``.

    Raises
    ------
    ValueError
        When ``K < 1``.
    """
    if K < 1:
        raise ValueError(f"filter length K must be >= 1, got {K}")
    d = torch.as_tensor(d, dtype=torch.get_default_dtype()) if not torch.is_tensor(d) else d
    j = torch.arange(1, K + 1, dtype=d.dtype, device=d.device)
    ratios = (j - 1 - d.unsqueeze(-1)) / j  # pi_j / pi_{j-1}
    w = torch.cumprod(ratios, dim=-1)
    if include_zero:
        w = torch.cat([torch.ones_like(w[..., :1]), w], dim=-1)
    return w


def fractional_filter(x, d: float, axis: int = 0):
    """Apply (1 - B)^d to ``x`` along ``axis`` by FFT convolution, truncated at the series start.

    y_t = sum_{j=0}^{t} pi_j(d) x_{t-j} (pre-sample values taken as zero), with pi_j(d) from
    ``frac_weights``. ``d < 0`` integrates: (1 - B)^{-d} is the MA(infinity) filter of ARFIMA
    (Hosking 1981, eq. 2.4). Cost O(n log n) via ``scipy.signal.fftconvolve``; float64 numpy in
    and out (the weights are computed in float64 by ``frac_weights``).

    Parameters
    ----------
    x : array-like
        The series, any shape; converted to float64.
    d : float
        Differencing order (``d < 0`` integrates).
    axis : int, default 0
        The time axis.

    Returns
    -------
    numpy.ndarray
        float64, same shape as ``x``: y_t for t = 0..n-1 along ``axis`` (a copy when n = 0).
    """
    import numpy as np
    from scipy.signal import fftconvolve

    x = np.asarray(x, dtype=np.float64)
    n = x.shape[axis]
    if n == 0:
        return x.copy()
    w = np.ones(1) if n == 1 else frac_weights(torch.tensor(float(d), dtype=torch.float64), n - 1,
                                                include_zero=True).numpy()
    shape = [1] * x.ndim
    shape[axis] = n
    y = fftconvolve(x, w.reshape(shape), mode="full", axes=axis)
    return np.take(y, np.arange(n), axis=axis)
