"""Exact sequence form of a diagonal linear recurrence: a blocked (two-level) parallel scan.

    h_t = a_t * h_{t-1} + u_t,     t = 0 .. T-1,     h_{-1} = h0 (zero when not given)

elementwise, for real or complex ``a`` and ``u``, with ``a`` constant in time (LRU, S4D) or
varying (Mamba, minGRU). Unrolled, ``h_t = sum_{s <= t} (prod_{s < r <= t} a_r) u_s +
(prod_{r <= t} a_r) h0``; :func:`linear_scan` evaluates it as a scan over blocks of ``c`` steps
(Blelloch 1990, "Prefix sums and their applications"; Martin & Cundy 2018, "Parallelizing linear
recurrent neural nets over sequence length"):

1. within every block at once, the local scan with zero start, ``l_j = a_j l_{j-1} + u_j`` and the
   local products ``P_j = a_j P_{j-1}`` (``P_j = a^{j+1}`` for constant a), j = 0 .. c-1: c
   vectorised steps, each over all T/c blocks;
2. the carries between blocks, ``g_k = P_{c-1}^{(k)} g_{k-1} + l_{c-1}^{(k)}``, ``g_{-1} = h0``:
   the same recurrence on T/c steps (solved recursively);
3. ``h = l + P * g_{k-1}`` for every step of block k.

Every number is a product of the a's or a sum of nonnegative powers of them: nothing is ever divided
by a power of a (which under- or overflows for long sequences), so the scan is as stable as the
step loop for ``|a| <= 1`` and agrees with it to rounding (the order of the additions differs).
The depth is about ``2 sqrt(T)`` vectorised steps instead of T; the work stays O(T) (about three
passes over the data), so on a CPU the gain over a step loop comes from the Python and kernel-launch
overhead a step loop pays T times.

Without gradients (``torch.is_grad_enabled()`` false, or no input requiring one) the steps write
into preallocated buffers; with gradients the same arithmetic is built from out-of-place
operations, so autograd (and ``torch.func``) differentiate it exactly.
"""

from __future__ import annotations

import functools
import math

import torch

from ..errors import InputError

#: sequences at most this long are stepped directly (blocking does not pay below it)
MIN_BLOCKED = 32

Parts = tuple  # one real tensor (a real number) or (re, im) (a complex number)


def _block_size(T: int) -> int:
    return max(8, math.isqrt(T))


def _mul(a: Parts, b: Parts) -> Parts:
    if len(a) == 1:
        return tuple(a[0] * x for x in b)
    if len(b) == 1:
        return tuple(x * b[0] for x in a)
    return (a[0] * b[0] - a[1] * b[1], a[0] * b[1] + a[1] * b[0])


def _add(a: Parts, b: Parts) -> Parts:
    return tuple(x + y for x, y in zip(a, b))


def _acc_(dst: Parts, a: Parts, h: Parts) -> None:
    """``dst += a * h`` in place."""
    if len(a) == 1:
        for d, x in zip(dst, h):
            d.addcmul_(a[0], x)
        return
    dst[0].addcmul_(a[0], h[0]).addcmul_(a[1], h[1], value=-1)
    dst[1].addcmul_(a[0], h[1]).addcmul_(a[1], h[0])


def _index(p: Parts, *idx) -> Parts:
    return tuple(x[idx] for x in p)


def linear_scan(a: torch.Tensor, u: torch.Tensor, h0: torch.Tensor | None = None,
                block: int | None = None) -> torch.Tensor:
    """Every state of ``h_t = a_t * h_{t-1} + u_t`` (elementwise), by a blocked parallel scan.

    Parameters
    ----------
    a : Tensor
        The decay, real or complex. Time-varying: shape ``[T, ...]`` broadcastable to ``u``
        (``[1, ...]`` counts as constant). Constant in time: any shape broadcastable to
        ``u.shape[1:]`` with fewer dimensions than ``u`` (e.g. ``[N]``).
    u : Tensor ``[T, ...]``
        The inputs, real or complex; ``T >= 1``.
    h0 : Tensor, optional
        The state before step 0, broadcastable to ``u.shape[1:]`` (default zeros).
    block : int, optional
        Block length c (default ``max(8, isqrt(T))``); any value >= 1 gives the same result up to
        rounding.

    Returns
    -------
    Tensor ``[T, ...]`` shaped like ``u``, dtype the promotion of ``a``, ``u`` (and ``h0``):
    ``h_0 .. h_{T-1}``.

    Raises
    ------
    InputError
        When the shapes do not broadcast as described or ``u`` has no time steps.
    """
    tensors = (a, u) + ((h0,) if h0 is not None else ())
    for name, t in zip(("a", "u", "h0"), tensors):
        if not isinstance(t, torch.Tensor):
            raise InputError(f"linear_scan: {name} must be a tensor, got {type(t).__name__}")
    dtype = functools.reduce(torch.promote_types, [t.dtype for t in tensors])
    if not dtype.is_complex:
        return linear_scan_parts((a,), (u.to(dtype),), None if h0 is None else (h0.to(dtype),), block,
                                 inplace=False)[0]
    real = torch.empty((), dtype=dtype).real.dtype

    def parts(t):
        return (t.real.to(real), t.imag.to(real)) if t.is_complex() else (t.to(real),)

    out = linear_scan_parts(parts(a), parts(u), None if h0 is None else parts(h0), block, inplace=False)
    return torch.complex(*out) if len(out) == 2 else out[0].to(dtype)


def linear_scan_parts(a: Parts, u: Parts, h0: Parts | None = None, block: int | None = None,
                      inplace: bool = False) -> Parts:
    """:func:`linear_scan` on numbers given as parts: ``(x,)`` for real tensors, ``(re, im)`` for
    complex ones (real tensors, possibly strided views such as the halves of a ``[re | im]``
    layout). Complex arithmetic on real parts runs several times faster than on torch's complex
    tensors on a CPU. ``inplace=True`` lets the scan overwrite ``u``'s parts (no gradient needed):
    the caller's freshly projected inputs become the states without a copy.

    Returns the states as parts (two when any of ``a``, ``u``, ``h0`` is complex).

    Parameters
    ----------
    a : tuple of Tensor
        ``(a,)`` or ``(a_re, a_im)``, shaped as :func:`linear_scan`'s ``a`` (time-varying ``[T, ...]``
        or constant).
    u : tuple of Tensor
        ``(u,)`` or ``(u_re, u_im)``, each ``[T, ...]`` with ``T >= 1``.
    h0 : tuple of Tensor, optional
        The state before step 0, parts broadcastable to ``u[0].shape[1:]`` (default zeros).
    block : int, optional
        Block length c (default ``max(8, isqrt(T))``).
    inplace : bool
        Let the scan overwrite ``u``'s parts when no gradient is needed (default False: they are
        copied first).

    Returns
    -------
    tuple of Tensor
        The states ``h_0 .. h_{T-1}`` as parts, each ``[T, ...]`` shaped like ``u[0]``; with
        ``inplace`` and no gradient they may be ``u``'s own tensors.

    Raises
    ------
    InputError
        When a part is not a tuple of 1 or 2 tensors, ``u`` has no time steps, the shapes do not
        broadcast to ``u`` without enlarging it, or ``block < 1``.
    """
    for name, p in (("a", a), ("u", u), ("h0", h0)):
        if p is None:
            continue
        if not isinstance(p, tuple) or len(p) not in (1, 2) or not all(isinstance(x, torch.Tensor) for x in p):
            raise InputError(f"linear_scan_parts: {name} must be a tuple of 1 (real) or 2 (re, im) tensors")
    T = u[0].shape[0] if u[0].dim() >= 1 else 0
    if T < 1:
        raise InputError(f"linear_scan: u must be [T, ...] with T >= 1, got shape {tuple(u[0].shape)}")
    rest = tuple(u[0].shape[1:])
    ndim = u[0].dim()
    varying = a[0].dim() == ndim and a[0].shape[0] != 1
    if a[0].dim() == ndim:
        if a[0].shape[0] not in (1, T):
            raise InputError(f"linear_scan: a has {a[0].shape[0]} time steps, u has {T}")
        if not varying:
            a = _index(a, 0)
    try:
        if torch.broadcast_shapes(a[0].shape[1:] if varying else a[0].shape, rest) != rest:
            raise RuntimeError
        if h0 is not None and torch.broadcast_shapes(h0[0].shape, rest) != rest:
            raise RuntimeError
    except RuntimeError:
        h0_shape = None if h0 is None else tuple(h0[0].shape)
        raise InputError(f"linear_scan: a {tuple(a[0].shape)} and h0 {h0_shape} must broadcast to u "
                         f"{tuple(u[0].shape)} without enlarging it") from None
    if not varying:  # the rank of one step of u, so powers stacked along a new dim broadcast
        a = tuple(x.reshape((1,) * (len(rest) - x.dim()) + tuple(x.shape)) for x in a)
    elif a[0].dim() < ndim:
        a = tuple(x.reshape((T,) + (1,) * (ndim - x.dim()) + tuple(x.shape[1:])) for x in a)
    c = int(block) if block is not None else _block_size(T)
    if c < 1:
        raise InputError(f"linear_scan: block must be >= 1, got {block}")
    grad = torch.is_grad_enabled() and any(x.requires_grad for p in (a, u, h0 or ()) for x in p)
    if not grad and not inplace:
        u = tuple(x.clone() for x in u)
    width = max(len(a), len(u), len(h0) if h0 is not None else 1)
    if len(u) < width:
        u = (u[0], torch.zeros_like(u[0]))
    if h0 is not None:
        h0 = tuple(x.expand(rest) for x in h0)
        if len(h0) < width:
            h0 = (h0[0], torch.zeros_like(h0[0]))
    return _scan(a, u, h0, varying, c, grad)


def _scan(a: Parts, u: Parts, h0: Parts | None, varying: bool, c: int, grad: bool) -> Parts:
    """The blocked scan (see the module docstring). Without ``grad`` it overwrites ``u``."""
    T = u[0].shape[0]
    if T <= max(MIN_BLOCKED, c) or c == 1:
        return _sequential(a, u, h0, varying, grad)
    m = T // c
    T0 = m * c
    rest = tuple(u[0].shape[1:])
    ub = tuple(x[:T0].view((m, c) + rest) for x in u)       # block k, step j: ub[:, j]
    ab = tuple(x[:T0].reshape((m, c) + tuple(x.shape[1:])) for x in a) if varying else None
    # 1. local scans inside every block (zero start) and the local products P_j of a
    if grad:
        loc = [_index(ub, slice(None), 0)]
        prods = [_index(ab, slice(None), 0)] if varying else None
        for j in range(1, c):
            aj = _index(ab, slice(None), j) if varying else a
            loc.append(_add(_mul(aj, loc[-1]), _index(ub, slice(None), j)))
            if varying:
                prods.append(_mul(aj, prods[-1]))
        L = tuple(torch.stack([p[k] for p in loc], 1) for k in range(len(u)))          # [m, c, ...]
        P = tuple(torch.stack([p[k] for p in prods], 1) for k in range(len(a))) if varying else None
    else:
        L = ub  # overwritten in place
        P = tuple(x.clone() for x in ab) if varying else None
        for j in range(1, c):
            aj = _index(ab, slice(None), j) if varying else a
            _acc_(_index(L, slice(None), j), aj, _index(L, slice(None), j - 1))
            if varying:
                pj = _mul(aj, _index(P, slice(None), j - 1))
                for dst, v in zip(_index(P, slice(None), j), pj):
                    dst.copy_(v)
    if not varying:  # a^(j+1), j = 0..c-1, by products (doubling: a^(k+i) = a^k a^i; no division)
        P = tuple(x.unsqueeze(0) for x in a)                                  # [1, ...]: a^1
        while P[0].shape[0] < c:
            top = _index(P, slice(-1, None))                                  # a^k, k = len(P)
            P = tuple(torch.cat([x, y]) for x, y in zip(P, _mul(top, P)))
        P = tuple(x[:c].unsqueeze(0) for x in P)                              # [1, c, ...]
    # 2. carries between blocks: the same recurrence over the m block ends (never in place: the
    # block ends are part of L)
    ends = tuple(x[:, -1].clone() if not grad else x[:, -1] for x in L)
    a_blk = _index(P, slice(None), -1) if varying else _index(P, 0, -1)
    g = _scan(a_blk, ends, h0, varying, _block_size(m), grad)                    # [m, ...]
    # 3. every step of block k >= 1 (and block 0 when h0 is given): h = l + P * g_{k-1}
    if h0 is not None:
        g_in = tuple(torch.cat([h.unsqueeze(0), x[:-1]]) for h, x in zip(h0, g))
        lo = 0
    else:
        g_in = tuple(x[:-1] for x in g)
        lo = 1
    Pk = _index(P, slice(lo, None)) if varying else P
    g_in = tuple(x.unsqueeze(1) for x in g_in)
    if grad:
        corr = _add(_index(L, slice(lo, None)), _mul(Pk, g_in))
        if lo:
            corr = tuple(torch.cat([x[:1], y]) for x, y in zip(L, corr))
        main = tuple(x.reshape((T0,) + rest) for x in corr)
    else:
        _acc_(_index(L, slice(lo, None)), Pk, g_in)
        main = tuple(x.view((T0,) + rest) for x in L)
    if T0 == T:
        return main if grad else u
    # the last T - T0 (< c) steps continue from h_{T0-1}
    a_tail = _index(a, slice(T0, None)) if varying else a
    tail = _sequential(a_tail, _index(u, slice(T0, None)), _index(main, -1), varying, grad)
    if grad:
        return tuple(torch.cat([x, y]) for x, y in zip(main, tail))
    return u  # main and tail were written into u's storage


def _sequential(a: Parts, u: Parts, h0: Parts | None, varying: bool, grad: bool) -> Parts:
    """The step loop ``h_t = a_t h_{t-1} + u_t`` (overwrites ``u`` without ``grad``)."""
    T = u[0].shape[0]
    rest = tuple(u[0].shape[1:])
    if grad:
        hs, h = [], h0
        for t in range(T):
            ut = _index(u, t)
            h = ut if h is None else _add(_mul(_index(a, t) if varying else a, h), ut)
            hs.append(tuple(x.expand(rest) for x in h))
        return tuple(torch.stack([p[k] for p in hs]) for k in range(len(u)))
    if h0 is not None:
        _acc_(_index(u, 0), _index(a, 0) if varying else a, h0)
    for t in range(1, T):
        _acc_(_index(u, t), _index(a, t) if varying else a, _index(u, t - 1))
    return u


__all__ = ["linear_scan", "linear_scan_parts"]
