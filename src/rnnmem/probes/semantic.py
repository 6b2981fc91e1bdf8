"""Semantic-space memory indicators: where a recurrent state sits among the words it has read.

An **interpretation** of Zhang, Li, Hua & Song, "Assessing the Memory Ability of Recurrent Neural
Networks" (ECAI 2020). Their full text is not available to us; what is known is that the meaning of
a sequence is represented in a "Semantic Euclidean Space" (their later work: each word a point, a
text the convex hull of its words' points), that evaluation indicators on that space measure how
much of a sequence a hidden state still holds, and that they guide the choice of the training
length. Everything below that goes beyond those sentences is **ours** (docs/semantic.md says which
part is which).

Notation. A prefix of ``n`` words has points ``x_1 .. x_n`` in R^d (the fixed, shared word
embedding; ``X = [x_1 .. x_n]`` is d x n, oldest word first). The *lag* of word i is
``k = n - i`` (lag 0 = the word just read). A hidden state ``h_n`` is placed in the space by a
readout, ``z_n = W^T h_n + b`` (``fit_ridge``).

- Readout (ours): ridge regression (Hoerl & Kennard 1970) from ``h_n`` to the running mean
  ``m_n = (1/n) sum_i x_i``, penalty chosen by generalised cross-validation (Golub, Heath & Wahba
  1979), closed form through the SVD of the centred design.
- (a) hull distance: ``dist(z, conv{x_i}) = min_{lam in simplex} ||X lam - z||``, solved with
  ``simplex_qp`` (FISTA, Beck & Teboulle 2009, with gradient restart, O'Donoghue & Candes 2015;
  projection onto the simplex by sorting, Duchi, Shalev-Shwartz, Singer & Chandra 2008, Fig. 1).
- (b) memory profile: the barycentric weights ``lam_i`` of the closest hull point, indexed by lag;
  memory length ``L_q = min {L : sum_{k<L} lam_k >= q}``. When the closest point has several
  barycentric representations (more words than dimensions, repeated words) the small Tikhonov
  term ``(eps/2)||lam||^2`` selects the minimum-norm one, i.e. the most even split (ours).
- (c) recall at lag k: a ridge decoder maps ``h_n`` to a point; word ``n-k`` counts as still
  represented when its vector is the nearest vocabulary vector to that point (cosine of the
  deviations from the decoder's intercept) (ours).
- (d) retained-area ratio: in the plane of the first two principal components of the vocabulary,
  area(hull of the words still represented) / area(hull of all words of the prefix) (ours).
- (e) recommended training length: the largest training length T at which every indicator passes
  its threshold at every prefix length up to T (ours).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from ..errors import ConfigError, InputError
from ..devices import resolve_device
from .common import check_finite

DEFAULT_TOL = {torch.float64: 1e-12, torch.float32: 1e-7}


# ============================================================================================
# helpers
# ============================================================================================
def _device(device) -> torch.device:
    return resolve_device(device)


def _tensor(x, name: str, dtype, device, dim: int | None = None) -> torch.Tensor:
    if isinstance(x, pd.DataFrame):
        x = x.to_numpy()
    try:
        t = torch.as_tensor(x)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise InputError(f"{name} must be an array of numbers, got {type(x).__name__}") from exc
    if not (torch.is_floating_point(t) or t.dtype in (torch.int32, torch.int64, torch.int16, torch.uint8)):
        raise InputError(f"{name} must hold numbers, got dtype {t.dtype}")
    t = t.to(device=device, dtype=dtype)
    if dim is not None and t.dim() != dim:
        raise InputError(f"{name} must have {dim} dimensions, got shape {tuple(t.shape)}")
    check_finite(None, t, names=[name])
    return t


def _lengths(lengths, B: int, n: int, device) -> torch.Tensor:
    if lengths is None:
        return torch.full((B,), n, dtype=torch.long, device=device)
    t = torch.as_tensor(lengths, device=device).long().reshape(-1)
    if t.numel() != B:
        raise InputError(f"lengths must have one entry per prefix ({B}), got {t.numel()}")
    if B and (t.min() < 1 or t.max() > n):
        raise InputError(f"lengths must lie in 1..{n} (the padded prefix length), got {t.min().item()}..{t.max().item()}")
    return t


def _np(x) -> np.ndarray:
    """A numpy view of a tensor (any device) or array-like."""
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _mask(lengths: torch.Tensor, n: int) -> torch.Tensor:
    """``mask[b, i]`` is True for the valid positions ``i < lengths[b]`` (oldest word first)."""
    return torch.arange(n, device=lengths.device)[None, :] < lengths[:, None]


# ============================================================================================
# the QP: closest point of a convex hull
# ============================================================================================
def project_simplex(v: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
    """Euclidean projection of each row of ``v[..., n]`` onto the probability simplex
    ``{w : w >= 0, sum w = 1}`` (restricted to ``mask`` where given; masked entries get 0).

    Duchi, Shalev-Shwartz, Singer & Chandra (ICML 2008), Fig. 1: sort ``u`` descending,
    ``rho = max{j : u_j - (sum_{r<=j} u_r - 1)/j > 0}``, ``theta = (sum_{r<=rho} u_r - 1)/rho``,
    ``w = max(v - theta, 0)``. Masked entries are replaced by ``max(v) - 2``, which lies below
    ``theta`` (``theta >= max(v) - 1`` because no weight exceeds 1), so they never enter the
    support and the valid entries get exactly their own projection.

    Parameters
    ----------
    v : torch.Tensor
        ``[..., n]`` points to project, one per row.
    mask : torch.Tensor, optional
        ``[..., n]`` bool (broadcastable to ``v``): the entries that take part; each row needs at least one.

    Returns
    -------
    torch.Tensor
        ``[..., n]`` in ``v``'s dtype: each row is ``argmin_{w in simplex} ||w - v||`` (0 on masked entries).
    """
    if mask is not None:
        big = v.masked_fill(~mask, float("-inf")).amax(-1, keepdim=True)
        v = torch.where(mask, v, big - 2)
    n = v.shape[-1]
    u, _ = torch.sort(v, dim=-1, descending=True)
    css = u.cumsum(-1) - 1
    j = torch.arange(1, n + 1, device=v.device, dtype=v.dtype)
    cond = (u - css / j) > 0
    rho = (cond * torch.arange(1, n + 1, device=v.device)).amax(-1, keepdim=True).clamp_min(1)
    theta = css.gather(-1, rho - 1) / rho.to(v.dtype)
    w = (v - theta).clamp_min(0)
    if mask is not None:
        w = w * mask
    return w


@dataclass
class HullFit:
    """Solution of ``simplex_qp`` for a batch of prefixes (tensors on the solver's device).

    ``weights[B, n]`` barycentric weights (oldest word first, 0 on padding), ``closest[B, d]`` the
    closest hull point ``X lam``, ``distance[B] = ||X lam - z||``, ``gap[B]`` the Frank-Wolfe
    duality gap (an upper bound on the objective's distance to its optimum), ``iterations``,
    ``lengths[B]``, and the solver settings."""

    weights: torch.Tensor
    closest: torch.Tensor
    distance: torch.Tensor
    gap: torch.Tensor
    iterations: int
    converged: bool
    lengths: torch.Tensor
    eps: float
    tol: float
    dtype: str

    def settings(self) -> dict:
        """The solver's description and settings, recorded with the indicators.

        Returns
        -------
        dict
            ``solver`` (a label), ``eps``, ``tol``, ``dtype``, ``iterations``, ``converged`` and ``max_gap``
            (largest Frank-Wolfe gap of the batch; 0.0 for an empty batch).
        """
        return {"solver": "FISTA+restart, simplex projection (Duchi 2008)", "eps": self.eps, "tol": self.tol,
                "dtype": self.dtype, "iterations": self.iterations, "converged": self.converged,
                "max_gap": float(self.gap.max().item()) if self.gap.numel() else 0.0}


def _check_points(points, mapped, lengths, dtype, device):
    X = _tensor(points, "points", dtype, device)
    if X.dim() == 2:
        X = X.unsqueeze(0)
    if X.dim() != 3:
        raise InputError(f"points must be [B, n, d] (prefixes x words x dimensions), got shape {tuple(X.shape)}")
    B, n, d = X.shape
    if n == 0:
        raise InputError("points hold no words: every prefix needs at least one word")
    z = _tensor(mapped, "mapped", dtype, device)
    if z.dim() == 1:
        z = z.unsqueeze(0)
    if z.shape != (B, d):
        raise InputError(f"mapped must be [B, d] = [{B}, {d}] (one point per prefix), got shape {tuple(z.shape)}")
    L = _lengths(lengths, B, n, device)
    return X, z, L


def simplex_qp(points, mapped, lengths=None, *, eps: float = 1e-6, tol: float | None = None,
               max_iter: int = 20_000, check_every: int = 25, dtype=torch.float64, device=None) -> HullFit:
    """Closest point of each prefix's convex hull to its mapped state, batched::

        min_{lam in simplex(n_b)}  f(lam) = 1/2 ||X_b lam - z_b||^2 + eps/2 ||lam||^2

    ``points[B, n, d]`` (padded beyond ``lengths[b]``), ``mapped[B, d]``. Accelerated projected
    gradient (FISTA, Beck & Teboulle 2009) with step ``1/L``, ``L = ||X_b - m_b||_2^2 + eps``
    (spectral norm of the points centred at their mean ``m_b``, which leaves the objective on the
    simplex unchanged and removes their common direction), gradient-based momentum restart
    (O'Donoghue & Candes 2015), started from the uniform weights. Stops when every Frank-Wolfe gap
    ``g.lam - min_i g_i`` (``g`` the gradient; an upper bound on ``f(lam) - f*``) is below
    ``tol * (1 + mean ||x_i||^2)``; ``tol`` defaults to 1e-12
    (float64) or 1e-7 (float32). ``eps`` (in squared-distance units of the points) selects, among
    several optimal weight vectors, the minimum-norm one; ``eps = 0`` gives the plain distance.

    Repeated points (a word read twice) are merged before the solve: a point occurring c times
    gets one weight w with penalty ``eps w^2 / (2c)``, and each occurrence receives ``w / c``.
    This is the same problem (for fixed totals the penalty is smallest for an equal split) but
    well conditioned, where duplicates would make the Gram matrix singular.

    Parameters
    ----------
    points : array-like or torch.Tensor
        ``[B, n, d]`` word vectors of each prefix, oldest first (``[n, d]`` for one prefix).
    mapped : array-like or torch.Tensor
        ``[B, d]`` mapped states (``[d]`` for one prefix).
    lengths : array-like of int, optional
        ``[B]`` valid words per prefix, in 1..n (default n for every prefix); positions beyond are padding.
    eps : float
        Tikhonov weight (finite, >= 0; default 1e-6).
    tol : float, optional
        Relative gap tolerance (default 1e-12 in float64, 1e-7 in float32).
    max_iter : int
        Most FISTA iterations (>= 1; default 20000).
    check_every : int
        Iterations between two gap checks (default 25).
    dtype : torch.float64, torch.float32, "float64" or "float32"
        Precision of the solve (default float64).
    device : str or torch.device, optional
        Where to solve (default CPU, as ``rnnmem.devices.resolve_device(None)``).

    Returns
    -------
    HullFit
        ``weights[B, n]``, ``closest[B, d]``, ``distance[B]``, ``gap[B]`` (clipped at 0), ``iterations``,
        ``converged`` (every gap under its threshold), ``lengths[B]``, ``eps``, ``tol`` and ``dtype``.

    Raises
    ------
    ConfigError
        A bad ``eps``, ``max_iter`` or ``dtype``.
    InputError
        Points or mapped states of the wrong shape, non-numeric or non-finite, or ``lengths`` out of range.
    """
    if not (isinstance(eps, (int, float)) and eps >= 0 and math.isfinite(eps)):
        raise ConfigError(f"eps must be a finite number >= 0, got {eps!r}")
    if not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"max_iter must be a positive integer, got {max_iter!r}")
    dev = _device(device)
    dtype = _resolve_dtype(dtype)
    X, z, L = _check_points(points, mapped, lengths, dtype, dev)
    B, n, d = X.shape
    if tol is None:
        tol = DEFAULT_TOL[dtype]
    valid = _mask(L, n)
    X = X * valid[..., None]  # padding never contributes
    scale = 1.0 + ((X * X).sum(-1).sum(-1) / L.to(dtype))  # 1 + mean squared norm of the points
    # on the simplex X lam - z = (X - m) lam - (z - m) for any point m: centring at the points' mean
    # removes their common direction from the Gram matrix (a smaller L, the same problem)
    m = X.sum(1) / L[:, None].to(dtype)
    Xc = (X - m[:, None, :]) * valid[..., None]
    G = Xc @ Xc.transpose(1, 2)  # [B, n, n] Gram matrix
    c = torch.einsum("bnd,bd->bn", Xc, z - m)  # Xc^T (z - m)
    small = G if n <= d else Xc.transpose(1, 2) @ Xc  # the smaller Gram: same largest eigenvalue
    lip = torch.linalg.eigvalsh(small)[..., -1] + eps  # [B]: ||X - m||_2^2 + eps
    lip = lip.clamp_min(torch.finfo(dtype).tiny)
    thresh = tol * scale
    # merge repeated points: rep[b, i] = first position holding the same point as i
    sq = torch.diagonal(G, dim1=1, dim2=2)
    d2 = sq[:, :, None] + sq[:, None, :] - 2 * G
    same = (d2 <= 1e-12 * scale[:, None, None]) & valid[:, :, None] & valid[:, None, :]
    rep = same.to(dtype).argmax(1)  # first j with same[j, i]
    ar = torch.arange(n, device=dev)
    mask = (rep == ar[None, :]) & valid  # the representatives
    count = torch.zeros(B, n, dtype=dtype, device=dev).scatter_add_(1, rep, valid.to(dtype))
    pen = eps / count.clamp_min(1)  # eps / c on the representatives
    x = torch.where(mask, count / L[:, None].to(dtype), torch.zeros_like(count))  # uniform over positions
    y = x.clone()
    t = torch.ones(B, 1, dtype=dtype, device=dev)
    big = torch.finfo(dtype).max

    def grad(v):
        return torch.bmm(G, v.unsqueeze(-1)).squeeze(-1) - c + pen * v

    def fw_gap(v):
        g = grad(v)
        return (g * v).sum(-1) - g.masked_fill(~mask, big).amin(-1)

    pmask = None if bool(mask.all()) else mask  # skip the masking work when nothing is padded or merged
    it = 0
    converged = False
    gap = fw_gap(x)
    if bool((gap <= thresh).all()):
        converged = True
    while not converged and it < max_iter:
        for _ in range(min(check_every, max_iter - it)):
            x_new = project_simplex(y - grad(y) / lip[:, None], pmask)
            t_new = (1 + torch.sqrt(1 + 4 * t * t)) / 2
            restart = ((y - x_new) * (x_new - x)).sum(-1, keepdim=True) > 0
            beta = torch.where(restart, torch.zeros_like(t), (t - 1) / t_new)
            t = torch.where(restart, torch.ones_like(t), t_new)
            y = x_new + beta * (x_new - x)
            x = x_new
            it += 1
        gap = fw_gap(x)
        converged = bool((gap <= thresh).all())
    weights = torch.where(valid, x.gather(1, rep) / count.gather(1, rep).clamp_min(1), torch.zeros_like(x))
    closest = torch.einsum("bnd,bn->bd", X, weights)
    dist = torch.linalg.vector_norm(closest - z, dim=-1)
    return HullFit(weights=weights, closest=closest, distance=dist, gap=gap.clamp_min(0), iterations=it,
                   converged=converged, lengths=L, eps=float(eps), tol=float(tol),
                   dtype=str(dtype).replace("torch.", ""))


def _resolve_dtype(dtype) -> torch.dtype:
    if dtype in (torch.float32, "float32"):
        return torch.float32
    if dtype in (torch.float64, "float64"):
        return torch.float64
    raise ConfigError(f"dtype must be float32 or float64, got {dtype!r}")


def scipy_simplex_qp(points: np.ndarray, mapped: np.ndarray, eps: float = 0.0, method: str = "nnls",
                     rho: float = 1e4) -> np.ndarray:
    """Reference solution of one simplex QP with scipy (for tests and benchmarks).

    ``nnls``: Lawson-Hanson NNLS on the augmented system ``[X; sqrt(eps) I; rho 1^T] lam ~
    [z; 0; rho]`` (the sum-to-one constraint as a heavily weighted row, Lawson & Hanson 1974,
    ch. 20; its violation is O(||grad|| / rho^2)). ``slsqp``: sequential least squares with the
    equality constraint and bounds [0, 1]. ``points[n, d]``, ``mapped[d]``; returns ``lam[n]``.

    Parameters
    ----------
    points : numpy.ndarray
        ``[n, d]`` points of one hull.
    mapped : numpy.ndarray
        ``[d]`` the point to approach.
    eps : float
        Tikhonov weight of ``eps/2 ||lam||^2`` (default 0).
    method : {"nnls", "slsqp"}
        Solver (default ``"nnls"``).
    rho : float
        Weight of the sum-to-one row for ``nnls`` (default 1e4).

    Returns
    -------
    numpy.ndarray
        ``[n]`` weights ``lam`` (sum to 1 up to the method's accuracy).

    Raises
    ------
    ConfigError
        An unknown ``method``.
    """
    from scipy.optimize import minimize, nnls

    Xt = np.asarray(points, dtype=np.float64)  # [n, d]
    z = np.asarray(mapped, dtype=np.float64)
    n, d = Xt.shape
    if method == "nnls":
        A = np.vstack([Xt.T, math.sqrt(eps) * np.eye(n), rho * np.ones((1, n))])
        b = np.concatenate([z, np.zeros(n), [rho]])
        lam, _ = nnls(A, b, maxiter=50 * n)
        return lam
    if method == "slsqp":
        G, cvec = Xt @ Xt.T, Xt @ z

        def f(v):
            return 0.5 * v @ G @ v - cvec @ v + 0.5 * z @ z + 0.5 * eps * v @ v

        def jac(v):
            return G @ v - cvec + eps * v

        res = minimize(f, np.full(n, 1.0 / n), jac=jac, method="SLSQP", bounds=[(0.0, 1.0)] * n,
                       constraints=[{"type": "eq", "fun": lambda v: v.sum() - 1.0, "jac": lambda v: np.ones(n)}],
                       options={"ftol": 1e-15, "maxiter": 1000})
        return res.x
    raise ConfigError(f"method must be nnls or slsqp, got {method!r}")


# ============================================================================================
# (a) hull distance and (b) memory profile
# ============================================================================================
def _fit_or_solve(points, mapped, lengths, fit, solver, device) -> HullFit:
    if fit is not None:
        if not isinstance(fit, HullFit):
            raise ConfigError(f"fit must be a HullFit from simplex_qp, got {type(fit).__name__}")
        return fit
    if points is None or mapped is None:
        raise ConfigError("give points and mapped (or a precomputed fit=simplex_qp(...))")
    return simplex_qp(points, mapped, lengths, device=device, **solver)


def hull_distance(points=None, mapped=None, lengths=None, *, fit: HullFit | None = None, baseline=None,
                  baseline_fit: HullFit | None = None, device=None, **solver) -> pd.DataFrame:
    """Indicator (a): distance of each mapped state to the convex hull of its prefix's words.

    One row per prefix: ``prefix`` (row index), ``n`` (words), ``distance``, ``gap`` (FW gap of the
    solve), and, when ``baseline[B, d]`` is given (e.g. the readout's prediction for a state that
    holds nothing, its intercept), ``baseline_distance`` and ``hull_score = 1 - distance /
    baseline_distance`` (1: on the hull, 0: no closer than a memoryless state; NaN when the
    baseline itself lies on the hull). ``baseline_fit`` passes the baseline's solve instead of
    ``baseline``. ``solver`` options go to ``simplex_qp``.

    The measure, after Zhang, Li, Hua & Song (ECAI 2020; the text as the convex hull of its words in a
    Semantic Euclidean Space), our interpretation (module docstring, docs/semantic.md):

        distance_b = min_{lam in simplex} ||X_b lam - z_b||,   hull_score_b = 1 - distance_b / baseline_distance_b.

    Parameters
    ----------
    points : array-like or torch.Tensor, optional
        ``[B, n, d]`` word vectors of each prefix, oldest first (not needed with ``fit`` and ``baseline_fit``).
    mapped : array-like or torch.Tensor, optional
        ``[B, d]`` mapped states (not needed with ``fit``).
    lengths : array-like of int, optional
        ``[B]`` valid words per prefix (default all n).
    fit : HullFit, optional
        A precomputed :func:`simplex_qp` solution of the mapped states.
    baseline : array-like or torch.Tensor, optional
        ``[B, d]`` or ``[d]`` baseline points (solved with the fit's dtype, eps and tol).
    baseline_fit : HullFit, optional
        A precomputed solution for the baseline (same prefixes).
    device : str or torch.device, optional
        Where to solve.
    **solver
        Options of :func:`simplex_qp` (``eps``, ``tol``, ``max_iter``, ``dtype``...).

    Returns
    -------
    pandas.DataFrame
        One row per prefix: ``prefix``, ``n``, ``distance``, ``gap`` and, with a baseline,
        ``baseline_distance`` and ``hull_score``; ``attrs["solver"]`` is the fit's :meth:`HullFit.settings`.

    Raises
    ------
    ConfigError
        Neither points and mapped nor a fit, a ``fit`` that is not a HullFit, or ``baseline`` without points.
    InputError
        Bad shapes or values, or a ``baseline_fit`` for other prefixes.
    """
    f = _fit_or_solve(points, mapped, lengths, fit, solver, device)
    df = pd.DataFrame({"prefix": np.arange(len(f.distance)), "n": f.lengths.cpu().numpy(),
                       "distance": f.distance.cpu().numpy(), "gap": f.gap.cpu().numpy()})
    if baseline is not None or baseline_fit is not None:
        if baseline_fit is not None:
            bf = baseline_fit
        else:
            if points is None:
                raise ConfigError("baseline needs the points (the hull) as well")
            b = _tensor(baseline, "baseline", f.weights.dtype, f.weights.device)
            if b.dim() == 1:
                b = b.expand(len(f.distance), -1)
            bf = simplex_qp(points, b, lengths if lengths is not None else f.lengths, device=f.weights.device,
                            dtype=f.weights.dtype, eps=f.eps, tol=f.tol)
        if bf.distance.shape != f.distance.shape:
            raise InputError("baseline_fit must solve the same prefixes as fit")
        bd = bf.distance.cpu().numpy()
        df["baseline_distance"] = bd
        with np.errstate(divide="ignore", invalid="ignore"):
            df["hull_score"] = np.where(bd > _on_hull_tol(f), 1.0 - df["distance"].to_numpy() / bd, np.nan)
    df.attrs["solver"] = f.settings()
    return df


def _on_hull_tol(f: HullFit) -> float:
    """Distances below this are numerically 'on the hull' (from the solver's gap tolerance)."""
    return math.sqrt(2 * f.tol) * 10


def memory_profile(points=None, mapped=None, lengths=None, *, fit: HullFit | None = None, device=None,
                   **solver) -> pd.DataFrame:
    """Indicator (b), the profile: barycentric weights of the closest hull point by lag.

    Long format, one row per (prefix, lag): ``prefix``, ``n``, ``lag`` (0 = last word read),
    ``weight`` (sums to 1 per prefix) and ``relative_weight = n * weight`` (1 everywhere for the
    running mean of the prefix).

    The measure (our interpretation of Zhang et al., ECAI 2020): ``weight_k = lam_{n-k}``, the barycentric
    weight of the word at lag k in the closest hull point ``argmin_{lam in simplex} ||X lam - z||``
    (minimum-norm among ties, :func:`simplex_qp`).

    Parameters
    ----------
    points, mapped, lengths : optional
        As for :func:`hull_distance` (not needed with ``fit``).
    fit : HullFit, optional
        A precomputed :func:`simplex_qp` solution.
    device : str or torch.device, optional
        Where to solve.
    **solver
        Options of :func:`simplex_qp`.

    Returns
    -------
    pandas.DataFrame
        Rows (prefix, lag) for lag 0..n_b-1 of each prefix: ``prefix``, ``n``, ``lag``, ``weight``,
        ``relative_weight``; ``attrs["solver"]`` is the fit's settings.

    Raises
    ------
    ConfigError, InputError
        As :func:`hull_distance`.
    """
    f = _fit_or_solve(points, mapped, lengths, fit, solver, device)
    w = f.weights.cpu().numpy()
    L = f.lengths.cpu().numpy()
    B, n = w.shape
    rows_p, rows_n, rows_k, rows_w = [], [], [], []
    for b in range(B):
        m = int(L[b])
        rows_p.append(np.full(m, b))
        rows_n.append(np.full(m, m))
        rows_k.append(np.arange(m))
        rows_w.append(w[b, :m][::-1])  # position m-1 has lag 0
    df = pd.DataFrame({"prefix": np.concatenate(rows_p), "n": np.concatenate(rows_n),
                       "lag": np.concatenate(rows_k), "weight": np.concatenate(rows_w)})
    df["relative_weight"] = df["n"] * df["weight"]
    df.attrs["solver"] = f.settings()
    return df


def memory_length(profile: pd.DataFrame, q: float = 0.5, atol: float = 1e-6) -> pd.DataFrame:
    """Indicator (b), the length: ``L_q = min{L : sum_{k<L} weight_k >= q - atol}`` per prefix.

    ``profile`` is ``memory_profile``'s output. Columns: ``prefix``, ``n``, ``q``, ``memory_length``
    (words, counted from the last one), ``ideal_length = ceil(q n - atol)`` (the running mean's
    value) and ``coverage = memory_length / ideal_length``.

    Source: ours, on the memory profile of our interpretation of Zhang et al. (ECAI 2020).

    Parameters
    ----------
    profile : pandas.DataFrame
        :func:`memory_profile`'s output (columns ``prefix``, ``n``, ``lag``, ``weight``).
    q : float
        Weight mass to reach, in (0, 1] (default 0.5).
    atol : float
        Slack on the cumulative weight (default 1e-6).

    Returns
    -------
    pandas.DataFrame
        One row per prefix: ``prefix``, ``n``, ``q``, ``memory_length`` (n when q is never reached),
        ``ideal_length`` (at least 1) and ``coverage``.

    Raises
    ------
    ConfigError
        ``q`` outside (0, 1].
    InputError
        A profile that is empty or lacks the columns.
    """
    if not 0 < q <= 1:
        raise ConfigError(f"q must lie in (0, 1], got {q}")
    need = {"prefix", "n", "lag", "weight"}
    if not need <= set(profile.columns):
        raise InputError(f"profile must have columns {sorted(need)} (from memory_profile), got {list(profile.columns)}")
    if profile.empty:
        raise InputError("profile is empty")
    p = profile.sort_values(["prefix", "lag"])
    cum = p.groupby("prefix")["weight"].cumsum()
    reached = p.loc[cum >= q - atol]
    first = reached.groupby("prefix")["lag"].min() + 1
    n = p.groupby("prefix")["n"].first()
    out = pd.DataFrame({"prefix": n.index, "n": n.to_numpy()})
    out["q"] = q
    out["memory_length"] = first.reindex(n.index).fillna(n).to_numpy().astype(int)
    out["ideal_length"] = np.ceil(q * out["n"] - atol).astype(int).clip(lower=1)
    out["coverage"] = out["memory_length"] / out["ideal_length"]
    return out


# ============================================================================================
# the readout and decoders: ridge regression with generalised cross-validation
# ============================================================================================
@dataclass
class Ridge:
    """A fitted ridge map ``y = (x - x_mean) W + y_mean`` (one penalty per output group).

    ``weight[p, G*q]``, ``alpha[G]`` (chosen penalties), ``gcv[G]`` (their GCV scores),
    ``r2[G]`` (in-sample coefficient of determination per group)."""

    weight: torch.Tensor
    x_mean: torch.Tensor
    y_mean: torch.Tensor
    alpha: torch.Tensor
    gcv: torch.Tensor
    r2: torch.Tensor
    groups: int

    def __call__(self, x) -> torch.Tensor:
        x = torch.as_tensor(x, device=self.weight.device, dtype=self.weight.dtype)
        check_finite(None, x, names=["the states"])
        return (x - self.x_mean) @ self.weight + self.y_mean

    @property
    def intercept(self) -> torch.Tensor:
        """The prediction for the mean state: what the readout says when the state is uninformative.

        Returns
        -------
        torch.Tensor
            ``y_mean``, ``[G*q]``.
        """
        return self.y_mean


def fit_ridge(x, y, groups: int = 1, alphas=None, device=None, dtype=torch.float64) -> Ridge:
    """Ridge regression (Hoerl & Kennard 1970) with an unpenalised intercept, closed form::

        W(alpha) = V diag(s / (s^2 + alpha)) U^T Y_c,   X_c = U diag(s) V^T  (centred data)

    The columns of ``y[N, G*q]`` form ``groups`` consecutive blocks of ``q``; each block gets the
    penalty minimising generalised cross-validation (Golub, Heath & Wahba 1979)
    ``GCV(alpha) = N RSS(alpha) / (N - 1 - df(alpha))^2``, ``df = sum s^2/(s^2+alpha)``, over
    ``alphas`` (default: ``s_max^2 * 10^[-8 .. 1]``, 28 values).

    Parameters
    ----------
    x : array-like or torch.Tensor
        ``[N, p]`` features (states), N >= 3.
    y : array-like or torch.Tensor
        ``[N, G*q]`` targets.
    groups : int
        Number G of column blocks, each with its own penalty (must divide the columns; default 1).
    alphas : array-like of float, optional
        Candidate penalties (all > 0); default ``s_max^2 * logspace(-8, 1, 28)`` (``s_max^2 = 1`` if X_c = 0).
    device : str or torch.device, optional
        Where to compute (default CPU).
    dtype : torch.float64, torch.float32, "float64" or "float32"
        Precision (default float64).

    Returns
    -------
    Ridge
        ``weight[p, G*q]``, ``x_mean[p]``, ``y_mean[G*q]``, the chosen ``alpha[G]``, their ``gcv[G]`` and the
        in-sample ``r2[G] = 1 - RSS_g / TSS_g`` per group.

    Raises
    ------
    InputError
        Non-numeric, non-finite or non-2-D data, different row counts, or N < 3.
    ConfigError
        ``groups`` that does not divide the target columns, non-positive ``alphas``, or a bad dtype.
    """
    dev = _device(device)
    dtype = _resolve_dtype(dtype)
    X = _tensor(x, "x (states)", dtype, dev, dim=2)
    Y = _tensor(y, "y (targets)", dtype, dev, dim=2)
    N, p = X.shape
    if Y.shape[0] != N:
        raise InputError(f"x and y must have the same number of rows, got {N} and {Y.shape[0]}")
    if N < 3:
        raise InputError(f"ridge regression needs at least 3 samples, got {N}")
    if not isinstance(groups, int) or groups < 1 or Y.shape[1] % groups:
        raise ConfigError(f"groups must divide the {Y.shape[1]} target columns, got {groups!r}")
    q = Y.shape[1] // groups
    xm, ym = X.mean(0), Y.mean(0)
    Xc, Yc = X - xm, Y - ym
    U, s, Vh = torch.linalg.svd(Xc, full_matrices=False)
    s2 = s * s
    smax2 = float(s2.max().item()) if s2.numel() else 0.0
    UtY = U.T @ Yc  # [r, G*q]
    tot = (Yc * Yc).sum(0)  # [G*q]
    out_of_span = (tot - (UtY * UtY).sum(0)).clamp_min(0)  # residual no alpha can remove
    UtY2 = (UtY * UtY).reshape(len(s), groups, q).sum(-1)  # [r, G]
    oos = out_of_span.reshape(groups, q).sum(-1)  # [G]
    if alphas is None:
        base = smax2 if smax2 > 0 else 1.0
        alphas = base * torch.logspace(-8, 1, 28, dtype=dtype, device=dev)
    else:
        alphas = torch.as_tensor(alphas, dtype=dtype, device=dev).reshape(-1)
        if alphas.numel() == 0 or (alphas <= 0).any():
            raise ConfigError("alphas must be positive numbers")
    shrink = alphas[:, None] / (s2[None, :] + alphas[:, None])  # [A, r]
    rss = oos[None, :] + (shrink[:, :, None] ** 2 * UtY2[None]).sum(1)  # [A, G]
    df_ = (s2[None, :] / (s2[None, :] + alphas[:, None])).sum(1)  # [A]
    denom = (N - 1 - df_).clamp_min(1e-12)
    gcv = N * rss / (denom[:, None] ** 2)
    best = gcv.argmin(0)  # [G]
    a = alphas[best]  # [G]
    coef = s[None, :] / (s2[None, :] + a[:, None])  # [G, r]
    UtYg = UtY.reshape(len(s), groups, q)  # [r, G, q]
    W = torch.einsum("pr,gr,rgq->pgq", Vh.T, coef, UtYg).reshape(p, groups * q)
    tot_g = tot.reshape(groups, q).sum(-1)
    r2 = 1 - rss[best, torch.arange(groups, device=dev)] / tot_g.clamp_min(torch.finfo(dtype).tiny)
    return Ridge(weight=W, x_mean=xm, y_mean=ym, alpha=a, gcv=gcv[best, torch.arange(groups, device=dev)],
                 r2=r2, groups=groups)


def running_mean(vectors: torch.Tensor) -> torch.Tensor:
    """``m_n = (1/n) sum_{i<=n} x_i`` along dim 1 of ``vectors[B, T, d]`` (every n at once).

    Parameters
    ----------
    vectors : torch.Tensor
        ``[B, T, d]`` word vectors, oldest first.

    Returns
    -------
    torch.Tensor
        ``[B, T, d]``: entry ``[:, n-1]`` is the mean of the first n vectors.
    """
    n = torch.arange(1, vectors.shape[1] + 1, device=vectors.device, dtype=vectors.dtype)
    return vectors.cumsum(1) / n[None, :, None]


def fit_mean_readout(states, vectors, device=None, dtype=torch.float64, alphas=None) -> Ridge:
    """The readout that places a state in the space: ridge from ``h_n`` to the running mean
    ``m_n`` of the prefix's word vectors (``states[N, H]``, ``vectors[N, n, d]``, one prefix
    length per call, or ``vectors[N, d]`` already averaged).

    Parameters
    ----------
    states : array-like or torch.Tensor
        ``[N, H]`` states after each prefix.
    vectors : array-like or torch.Tensor
        ``[N, n, d]`` word vectors of each prefix (averaged over n here) or ``[N, d]`` running means.
    device : str or torch.device, optional
        Where to compute.
    dtype : torch dtype or str
        float64 (default) or float32.
    alphas : array-like of float, optional
        Candidate penalties (see :func:`fit_ridge`).

    Returns
    -------
    Ridge
        The readout ``z = W^T h + b`` (one GCV penalty), :func:`fit_ridge`'s result.

    Raises
    ------
    InputError, ConfigError
        As :func:`fit_ridge`.
    """
    V = _tensor(vectors, "vectors", _resolve_dtype(dtype), _device(device))
    target = V.mean(1) if V.dim() == 3 else V
    return fit_ridge(states, target, device=device, dtype=dtype, alphas=alphas)


def fit_lag_decoders(states, vectors, device=None, dtype=torch.float64, alphas=None) -> Ridge:
    """One ridge decoder per lag: from ``h_n`` to the vector of word ``n - k`` for every
    ``k = 0..n-1`` (``states[N, H]``, ``vectors[N, n, d]`` oldest first), each with its own GCV
    penalty. The decoder's output for lag k is columns ``k*d:(k+1)*d``.

    Parameters
    ----------
    states : array-like or torch.Tensor
        ``[N, H]`` states after each prefix.
    vectors : array-like or torch.Tensor
        ``[N, n, d]`` word vectors of each prefix, oldest first.
    device : str or torch.device, optional
        Where to compute.
    dtype : torch dtype or str
        float64 (default) or float32.
    alphas : array-like of float, optional
        Candidate penalties (see :func:`fit_ridge`).

    Returns
    -------
    Ridge
        ``n`` groups of ``d`` outputs, lag 0 first.

    Raises
    ------
    InputError, ConfigError
        As :func:`fit_ridge` (``vectors`` must be 3-D).
    """
    V = _tensor(vectors, "vectors", _resolve_dtype(dtype), _device(device), dim=3)
    N, n, d = V.shape
    by_lag = V.flip(1).reshape(N, n * d)  # lag 0 first
    return fit_ridge(states, by_lag, groups=n, device=device, dtype=dtype, alphas=alphas)


# ============================================================================================
# (c) recall at lag k
# ============================================================================================
def nearest_word(decoded: torch.Tensor, vocabulary: torch.Tensor, center: torch.Tensor | None = None,
                 chunk: int = 8192) -> torch.Tensor:
    """Index of the vocabulary vector with the largest cosine similarity to each decoded point
    (``decoded[N, K, d]``). With ``center[K, d]`` (or ``[d]``), both are compared as deviations
    from the center of their lag: ``cos(decoded - c_k, x_v - c_k)``.

    Parameters
    ----------
    decoded : torch.Tensor
        ``[N, K, d]`` decoded points (K lags).
    vocabulary : torch.Tensor
        ``[V, d]`` word vectors (cast to ``decoded``'s dtype).
    center : torch.Tensor, optional
        ``[K, d]`` or ``[d]`` centres.
    chunk : int
        Rows per similarity product (bounds memory; default 8192).

    Returns
    -------
    torch.Tensor
        ``Long[N, K]`` vocabulary indices (the first one on ties).
    """
    N, K, d = decoded.shape
    vocab = vocabulary.to(decoded.dtype)

    def unit(v):
        return v / torch.linalg.vector_norm(v, dim=-1, keepdim=True).clamp_min(1e-30)

    if center is None:
        V = unit(vocab)
        flat = decoded.reshape(-1, d)
        out = [torch.argmax(flat[i:i + chunk] @ V.T, dim=-1) for i in range(0, flat.shape[0], chunk)]
        return torch.cat(out).reshape(N, K) if out else torch.zeros((N, K), dtype=torch.long, device=decoded.device)
    c = center.to(decoded.dtype).reshape(-1, d).expand(K, d)
    out = torch.empty((N, K), dtype=torch.long, device=decoded.device)
    for k in range(K):
        V = unit(vocab - c[k])
        x = decoded[:, k] - c[k]
        for i in range(0, N, chunk):
            out[i:i + chunk, k] = torch.argmax(x[i:i + chunk] @ V.T, dim=-1)
    return out


def recall_hits(decoded, targets, vocabulary, center=None, device=None) -> torch.Tensor:
    """``hits[N, K]``: is the nearest vocabulary word to ``decoded[N, K, d]`` (lag k's decoded
    point) the true word ``targets[N, K]`` (ids into ``vocabulary[V, d]``)? Nearest by cosine,
    of deviations from ``center[K, d]`` when given (``nearest_word``). The study centres at the
    decoder's intercept, the point a decoder predicts when the state says nothing about that lag,
    so that ridge shrinkage towards it does not turn every forgotten word into the word closest
    to the average.

    Parameters
    ----------
    decoded : array-like or torch.Tensor
        ``[N, K, d]`` decoded points.
    targets : array-like of int
        ``[N, K]`` true word ids.
    vocabulary : array-like or torch.Tensor
        ``[V, d]`` word vectors.
    center : array-like or torch.Tensor, optional
        ``[K, d]`` or ``[d]`` centres.
    device : str or torch.device, optional
        Where to compute (float64).

    Returns
    -------
    torch.Tensor
        ``Bool[N, K]`` hits.

    Raises
    ------
    InputError
        Mismatched shapes, non-finite values, or target ids outside the vocabulary.
    """
    dev = _device(device)
    D = _tensor(decoded, "decoded", torch.float64, dev, dim=3)
    T = torch.as_tensor(np.ascontiguousarray(_np(targets)), device=dev).long()
    Vv = _tensor(vocabulary, "vocabulary", torch.float64, dev, dim=2)
    if T.shape != D.shape[:2]:
        raise InputError(f"targets must be [N, K] = {tuple(D.shape[:2])}, got {tuple(T.shape)}")
    if D.shape[-1] != Vv.shape[-1]:
        raise InputError(f"decoded points have {D.shape[-1]} dimensions but the vocabulary vectors {Vv.shape[-1]}")
    if T.numel() and (T.min() < 0 or T.max() >= Vv.shape[0]):
        raise InputError(f"targets must be word ids in 0..{Vv.shape[0] - 1}")
    C = None
    if center is not None:
        C = _tensor(center, "center", torch.float64, dev)
        if C.shape[-1] != D.shape[-1] or C.numel() not in (D.shape[-1], D.shape[1] * D.shape[-1]):
            raise InputError(f"center must be [d] or [K, d] = [{D.shape[1]}, {D.shape[-1]}], got {tuple(C.shape)}")
    return nearest_word(D, Vv, C) == T


def recall_at_lag(decoded, targets, vocabulary, center=None, device=None, hits=None) -> pd.DataFrame:
    """Indicator (c): per lag k, the fraction of prefixes whose word at lag k is still represented
    (``recall_hits``; pass ``hits`` to reuse them). ``chance`` is the recall of the best constant
    guess (the most frequent word at that lag), ``recall_score = (recall - chance) / (1 - chance)``.

    Source: ours, an indicator in the spirit of Zhang et al. (ECAI 2020) (module docstring):

        recall_k = (1/N) sum_b [nearest_word(decoded_{b,k}) == targets_{b,k}],
        chance_k = max_w (share of prefixes whose word at lag k is w).

    Parameters
    ----------
    decoded, targets, vocabulary, center, device
        As for :func:`recall_hits` (``decoded`` and ``vocabulary`` are unused when ``hits`` is given).
    hits : array-like of bool, optional
        ``[N, K]`` precomputed hits.

    Returns
    -------
    pandas.DataFrame
        One row per lag k = 0..K-1: ``lag``, ``recall``, ``chance``, ``recall_score`` (NaN where chance is 1)
        and ``samples`` (N).

    Raises
    ------
    InputError
        Hits and targets of different shapes, no prefixes, or :func:`recall_hits`'s input errors.
    """
    if hits is None:
        hits = recall_hits(decoded, targets, vocabulary, center=center, device=device)
    hits = _np(hits).astype(bool)
    T = _np(targets).astype(np.int64)
    if hits.shape != T.shape:
        raise InputError(f"hits must be [N, K] = {T.shape}, got {hits.shape}")
    N, K = hits.shape
    if N == 0:
        raise InputError("no prefixes to score")
    chance = np.array([np.bincount(T[:, k]).max() / N for k in range(K)])
    recall = hits.mean(0)
    with np.errstate(divide="ignore", invalid="ignore"):
        score = np.where(chance < 1, (recall - chance) / (1 - chance), np.nan)
    return pd.DataFrame({"lag": np.arange(K), "recall": recall, "chance": chance, "recall_score": score,
                         "samples": N})


# ============================================================================================
# (d) retained area in a 2-D PCA view
# ============================================================================================
def pca_plane(vectors) -> tuple[np.ndarray, np.ndarray]:
    """``(mean[d], components[2, d])``: the first two principal axes of ``vectors[V, d]``.

    Parameters
    ----------
    vectors : array-like
        ``[V, d]`` vectors, V >= 3, d >= 2.

    Returns
    -------
    (numpy.ndarray, numpy.ndarray)
        The mean ``[d]`` and the two leading right singular vectors of the centred vectors ``[2, d]``
        (unit rows), float64.

    Raises
    ------
    InputError
        Fewer than 3 vectors or dimension < 2.
    """
    V = _np(vectors).astype(np.float64)
    if V.ndim != 2 or V.shape[0] < 3 or V.shape[1] < 2:
        raise InputError(f"PCA needs at least 3 vectors of dimension >= 2, got shape {V.shape}")
    mean = V.mean(0)
    _, _, vt = np.linalg.svd(V - mean, full_matrices=False)
    return mean, vt[:2]


def hull_area(points2d: np.ndarray) -> float:
    """Area of the convex hull of 2-D points (``scipy.spatial.ConvexHull``; 0 when fewer than 3
    points or all on a line).

    Parameters
    ----------
    points2d : numpy.ndarray
        ``[m, 2]`` points (duplicates merged).

    Returns
    -------
    float
        The area, in squared units of the points.
    """
    from scipy.spatial import ConvexHull, QhullError

    P = np.unique(np.asarray(points2d, dtype=np.float64), axis=0)
    if len(P) < 3:
        return 0.0
    try:
        return float(ConvexHull(P).volume)  # in 2-D, .volume is the area
    except QhullError:
        return 0.0


def retained_area(points, retained, lengths=None, plane=None) -> pd.DataFrame:
    """Indicator (d): ``area(hull of the retained words) / area(hull of all words)`` per prefix,
    in a 2-D PCA view.

    ``points[B, n, d]`` word vectors (oldest first; or already 2-D), ``retained[B, n]`` booleans
    (e.g. ``recall_hits`` reordered oldest first), ``plane = (mean, components)`` from
    ``pca_plane`` (needed unless the points are 2-D). NaN ratio when the prefix's own hull has no
    area (fewer than 3 distinct words, or collinear).

    Source: ours, an indicator in the spirit of Zhang et al. (ECAI 2020) (module docstring):
    ``area_ratio_b = area(conv{P x_i : i retained}) / area(conv{P x_i : i <= n_b})``, P the PCA plane.

    Parameters
    ----------
    points : array-like
        ``[B, n, d]`` word vectors (or ``[B, n, 2]`` already projected).
    retained : array-like of bool
        ``[B, n]`` which words are still represented.
    lengths : array-like of int, optional
        ``[B]`` valid words per prefix (default n).
    plane : (mean, components), optional
        From :func:`pca_plane`; required unless ``d == 2``.

    Returns
    -------
    pandas.DataFrame
        One row per prefix: ``prefix``, ``n``, ``retained_words``, ``area``, ``retained_area``, ``area_ratio``.

    Raises
    ------
    InputError
        Points not 3-D or ``retained`` of another shape.
    ConfigError
        Points of dimension > 2 without ``plane``.
    """
    P = _np(points).astype(np.float64)
    R = _np(retained).astype(bool)
    if P.ndim != 3:
        raise InputError(f"points must be [B, n, d], got shape {P.shape}")
    if R.shape != P.shape[:2]:
        raise InputError(f"retained must be [B, n] = {P.shape[:2]}, got {R.shape}")
    if P.shape[-1] != 2:
        if plane is None:
            raise ConfigError("points are not 2-D: give plane=pca_plane(vocabulary_vectors)")
        mean, comp = plane
        P = (P - mean) @ np.asarray(comp).T
    B, n, _ = P.shape
    L = np.full(B, n) if lengths is None else np.asarray(lengths, dtype=int)
    rows = []
    for b in range(B):
        m = int(L[b])
        full = hull_area(P[b, :m])
        keep = P[b, :m][R[b, :m]]
        kept = hull_area(keep)
        rows.append({"prefix": b, "n": m, "retained_words": int(R[b, :m].sum()), "area": full,
                     "retained_area": kept, "area_ratio": kept / full if full > 0 else np.nan})
    return pd.DataFrame(rows)


# ============================================================================================
# (e) recommended training length
# ============================================================================================
#: Indicator columns a threshold may name (mean over prefixes, larger = more memory).
INDICATOR_NAMES = ("hull_score", "coverage", "recall_score", "area_ratio")
#: Default thresholds (ours): the hull score (a). Coverage (b) and the area ratio (d) are no longer
#: thresholded by default: measured, they do not separate the units (docs/semantic.md, "Dropped
#: indicators"); a user may still name them.
DEFAULT_THRESHOLDS: dict[str, float] = {"hull_score": 0.5}
#: Word-level threshold for (c), added by the strict criterion.
WORD_THRESHOLDS: dict[str, float] = {"recall_score": 0.5}
STRICT_THRESHOLDS: dict[str, float] = {**DEFAULT_THRESHOLDS, **WORD_THRESHOLDS}
#: The thresholds coverage and area_ratio had before they were dropped (for the report's evidence).
FORMER_THRESHOLDS: dict[str, float] = {"coverage": 0.75, "area_ratio": 0.5}


def usable_length(curve: pd.DataFrame, thresholds: dict[str, float] | None = None) -> tuple[float, str]:
    """The largest prefix length n such that every indicator column named in ``thresholds`` is
    ``>=`` its threshold at every evaluated prefix length up to n (NaN values carry no evidence
    and are skipped). Returns ``(n, first_failure)``; ``n`` is NaN when the shortest length
    already fails, ``first_failure`` names the indicator that fails next ('' if none).

    Source: ours (indicator e's rule, module docstring), after Zhang et al. (ECAI 2020), whose indicators
    guide the choice of the training length.

    Parameters
    ----------
    curve : pandas.DataFrame
        One row per evaluated prefix length: ``n`` and indicator columns (names not in it are ignored).
    thresholds : dict of str to float, optional
        ``{indicator: minimum}`` (default ``DEFAULT_THRESHOLDS``, the hull score >= 0.5).

    Returns
    -------
    (float, str)
        The usable length (NaN if none) and the failing indicators at the next length, comma-joined ('' if none).
    """
    th = DEFAULT_THRESHOLDS if thresholds is None else thresholds
    c = curve.sort_values("n")
    best, failure = np.nan, ""
    for _, row in c.iterrows():
        bad = [k for k, v in th.items() if k in row and pd.notna(row[k]) and row[k] < v]
        if bad:
            failure = ", ".join(bad)
            break
        best = float(row["n"])
    return best, failure


def recommended_length(indicators: pd.DataFrame, thresholds: dict[str, float] | None = None) -> pd.DataFrame:
    """Indicator (e): per unit, the largest training length T such that the unit trained with T
    keeps every indicator above its threshold at every prefix length up to T.

    ``indicators`` has columns ``unit``, ``train_length``, ``n`` and the indicator columns
    (mean over prefixes). Returns one row per unit: ``recommended_length`` (NaN when no training
    length qualifies), ``status`` (``ok``; ``censored`` when the longest training length still
    qualifies, so the true value may be larger; ``none`` when none does), ``usable`` (the usable
    prefix length per training length, as text) and ``limited_by`` (the indicator failing first
    for the next longer training length).

    Source: ours (module docstring), after Zhang et al. (ECAI 2020): T qualifies when
    ``usable_length(curve_T) >= max{n <= T evaluated}``; the recommendation is the largest qualifying T.

    Parameters
    ----------
    indicators : pandas.DataFrame
        Columns ``unit``, ``train_length``, ``n`` and the indicators named in ``thresholds``.
    thresholds : dict of str to float, optional
        ``{indicator: minimum}`` (default ``DEFAULT_THRESHOLDS``).

    Returns
    -------
    pandas.DataFrame
        One row per unit: ``unit``, ``recommended_length``, ``status``, ``usable``, ``limited_by``;
        ``attrs["thresholds"]`` holds the thresholds used.

    Raises
    ------
    InputError
        Missing ``unit``, ``train_length`` or ``n`` columns.
    ConfigError
        A threshold naming a column that is not there.
    """
    th = DEFAULT_THRESHOLDS if thresholds is None else dict(thresholds)
    need = {"unit", "train_length", "n"}
    if not need <= set(indicators.columns):
        raise InputError(f"indicators must have columns {sorted(need)}, got {list(indicators.columns)}")
    missing = [k for k in th if k not in indicators.columns]
    if missing:
        raise ConfigError(f"thresholds name unknown indicators {missing}; available: "
                          f"{sorted(set(indicators.columns) - need)}")
    rows = []
    for unit, g in indicators.groupby("unit", sort=False):
        lengths = sorted(g["train_length"].unique())
        usable, fails, qualifies = {}, {}, {}
        for T in lengths:
            curve = g[g["train_length"] == T]
            usable[T], fails[T] = usable_length(curve, th)
            upto = curve[curve["n"] <= T]
            qualifies[T] = bool(len(upto)) and pd.notna(usable[T]) and usable[T] >= upto["n"].max()
        ok = [T for T in lengths if qualifies[T]]
        if not ok:
            rec, status = np.nan, "none"
            limit = fails[lengths[0]]
        else:
            rec = float(max(ok))
            status = "censored" if rec == lengths[-1] else "ok"
            nxt = [T for T in lengths if T > rec]
            limit = fails[nxt[0]] if nxt else ""
        rows.append({"unit": unit, "recommended_length": rec, "status": status,
                     "usable": "; ".join(f"T={T}: {'-' if pd.isna(usable[T]) else int(usable[T])}" for T in lengths),
                     "limited_by": limit})
    out = pd.DataFrame(rows)
    out.attrs["thresholds"] = th
    return out


# ============================================================================================
# The probe contract (``probes/contract.py``): PROBES["semantic"]
# ============================================================================================
import copy  # noqa: E402
import functools  # noqa: E402
import os  # noqa: E402
import warnings  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Literal  # noqa: E402

from pydantic import Field, field_validator  # noqa: E402

from .contract import ProbeSettings, register_probe  # noqa: E402

#: The built-in corpus (``corpus="synthetic"``): the Zhang study's quick key-recall text
#: (``tasks.key_recall_text``: Zipf filler words in topic documents, planted key episodes), generated
#: from the probe's seed; only its length and vocabulary come from the settings.
SYNTHETIC_CORPUS = {"n_keys": 6, "distances": (3, 6, 10), "rate": 0.06, "topics": 6, "topic_share": 0.5,
                    "doc_length": 80.0}
#: Skip-gram settings of the probe's space (``space="skipgram"``): the study's quick mode's, always on
#: the CPU (the same seed gives the same space on every device).
SKIPGRAM = {"window": 3, "negatives": 5, "epochs": 3, "lr": 0.01, "batch_size": 1024, "subsample": 1e-3}


class SemanticProbeSettings(ProbeSettings):
    """Settings of ``PROBES["semantic"]`` (defaults: the memory card's).

    ``sequences`` evaluation sequences and ``fit_sequences`` sequences to fit the readout and the lag
    decoders, windows of ``max(prefix_lengths)`` consecutive words drawn at random from the second and
    the first half of the corpus; the indicators at every prefix length in ``prefix_lengths`` (>= 2).
    ``corpus``: ``"synthetic"`` (the built-in key-recall text of ``words`` words over a ``vocab_size``
    vocabulary, generated from the seed, no network access) or the path of a text8-format file (its
    first ``words`` words, its ``vocab_size`` most frequent words kept, the rest ``<unknown>``).
    ``space``, the Semantic Euclidean Space: ``"skipgram"`` (``dim``-dimensional skip-gram vectors
    trained on the corpus, seeded, as the study), ``"random"`` (seeded Gaussian vectors: a space
    without semantics, the fastest) or the path of a word2vec text file; the vectors are centred and
    normalised to unit length. ``input_map``: the model reads the word vectors through a fixed seeded
    Gaussian map to its input width (``"random"``, N(0, 1) entries, so each input channel has unit
    variance) or the vectors themselves (``"space"``, the study's setting; needs ``input_size ==`` the
    space's dimension). ``state``: ``"output"`` (the model's output at the prefix's last word, the
    study's h_n: the top layer's hidden state for built-in units) or ``"full"`` (``state_vector``,
    every state component of every layer). ``q``: the memory length's mass (indicator b);
    ``threshold``: the hull-score threshold of the usable length (indicator e's rule, the study's
    default 0.5); ``level`` and ``bootstrap``: the percentile bootstrap over sequences of every interval.
    """

    sequences: int = Field(256, ge=8)
    fit_sequences: int = Field(1024, ge=8)
    prefix_lengths: tuple[int, ...] = (5, 10, 20)
    corpus: str = "synthetic"
    words: int = Field(30_000, ge=1_000)
    vocab_size: int = Field(300, ge=10)
    space: str = "skipgram"
    dim: int = Field(16, ge=2)
    input_map: Literal["random", "space"] = "random"
    state: Literal["output", "full"] = "output"
    q: float = Field(0.5, gt=0, le=1)
    threshold: float = 0.5
    level: float = Field(0.95, gt=0, lt=1)
    bootstrap: int = Field(1000, ge=100)

    @field_validator("prefix_lengths")
    @classmethod
    def _prefixes(cls, v):
        if not v or any(n < 2 for n in v):
            raise ValueError(f"prefix_lengths must be a non-empty list of lengths >= 2 (a hull of one word says "
                             f"nothing), got {list(v)}")
        return tuple(sorted(set(v)))

    @field_validator("corpus")
    @classmethod
    def _corpus(cls, v):
        if v != "synthetic" and not Path(v).is_file():
            raise ValueError(f"corpus must be 'synthetic' or the path of a text8-format file; {v!r} is not a file")
        return v

    @field_validator("space")
    @classmethod
    def _space(cls, v):
        if v not in ("skipgram", "random") and not Path(v).is_file():
            raise ValueError(f"space must be 'skipgram', 'random' or the path of a word2vec text file; "
                             f"{v!r} is not a file")
        return v

    def model_post_init(self, __context) -> None:
        """Check across fields after validation: each half of a synthetic corpus must be longer than the
        longest prefix.

        Parameters
        ----------
        __context : object
            pydantic's validation context (unused).

        Returns
        -------
        None

        Raises
        ------
        ValueError
            ``words // 2 <= max(prefix_lengths)`` for the synthetic corpus (a ConfigError through the contract).
        """
        if self.corpus == "synthetic" and self.words // 2 <= max(self.prefix_lengths):
            raise ValueError(f"words={self.words} is too short: each half of the corpus must hold more than the "
                             f"longest prefix ({max(self.prefix_lengths)})")


def _file_key(path: str):
    """(path, size, mtime) of a file, so a cached corpus or space is rebuilt when the file changes."""
    if path in ("synthetic", "skipgram", "random"):
        return path
    st = os.stat(path)
    return (str(Path(path).resolve()), st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=4)
def _corpus_and_space(corpus_key, words: int, vocab_size: int, space_key, dim: int, seed: int):
    """The corpus as ids into the space's vocabulary and the space (centred, unit-length vectors),
    cached (the per-member runs of an ensemble and repeated calls share them). Read-only arrays."""
    from ..tasks import embeddings as E
    from ..tasks.key_recall_text import key_recall_text

    corpus = corpus_key if isinstance(corpus_key, str) else corpus_key[0]
    space = space_key if isinstance(space_key, str) else space_key[0]
    if corpus == "synthetic":
        syn = key_recall_text(n_words=words, vocab_size=vocab_size, seed=seed, **SYNTHETIC_CORPUS)
        c = E.corpus_from_words(syn.words, source="synthetic key-recall text")
        source = {"corpus": "synthetic key-recall text", **SYNTHETIC_CORPUS, "words": words,
                  "vocab_size": vocab_size}
    else:
        c = E.read_corpus(corpus, vocab_size=vocab_size, max_words=words)
        source = {"corpus": corpus, "words": int(len(c.ids)), "vocab_size": vocab_size}
    ids, vocab = c.ids, list(c.vocabulary)
    if space == "skipgram":
        cfg = E.SkipGramConfig(dim=dim, seed=seed, **SKIPGRAM)
        emb = E.train_skipgram(c, cfg, device="cpu")
        source["space"] = {"method": "skip-gram (Mikolov et al. 2013)", "dim": dim, **SKIPGRAM}
    elif space == "random":
        g = np.random.default_rng([seed, 23])
        emb = E.Embedding(vocab, g.standard_normal((len(vocab), dim)))
        source["space"] = {"method": "random Gaussian vectors", "dim": dim}
    else:  # the user's word2vec file, restricted to the corpus's words (as the study's build_space)
        user = E.read_word2vec(space)
        used = np.flatnonzero(np.bincount(ids, minlength=len(vocab)) > 0)
        used_words = [vocab[i] for i in used]
        if E.UNKNOWN in used_words and user.unknown_id is None:
            raise InputError(f"the corpus has words outside its {len(vocab) - 1}-word vocabulary (read as "
                             f"{E.UNKNOWN!r}) and the space {space} has no {E.UNKNOWN!r} entry; add one, or raise "
                             "vocab_size")
        rows = user.encode(used_words, what="the corpus")
        keep = np.unique(rows)
        old_to_new = np.zeros(len(vocab), dtype=np.int64)
        old_to_new[used] = np.searchsorted(keep, rows)
        ids = old_to_new[ids]
        emb = E.Embedding([user.words[r] for r in keep], user.vectors[keep])
        source["space"] = {"method": "word2vec file", "path": space, "dim": user.dim}
    emb = emb.centered().normalized()
    vectors = np.asarray(emb.vectors, dtype=np.float64)
    ids = np.asarray(ids, dtype=np.int64)
    vectors.flags.writeable = False
    ids.flags.writeable = False
    source["vocabulary"] = len(emb.words)
    return ids, vectors, source


def _model_states(unit, table: torch.Tensor, ids: np.ndarray, lengths, state: str, chunk: int = 512) -> list:
    """The model's state after the first n words of each window, for every n in ``lengths``:
    ``[states_n[W, D] for n in lengths]`` (float64, on the table's device). ``table[V, I]`` holds each
    word's input vector; every window starts from the model's initial state."""
    out = [[] for _ in lengths]
    with torch.no_grad():
        for b in range(0, len(ids), chunk):
            x = table[torch.as_tensor(np.ascontiguousarray(ids[b:b + chunk].T), device=table.device)]  # [n, W, I]
            st, prev = None, 0
            for i, n in enumerate(lengths):
                y, st = unit(x[prev:n], st)
                h = y[-1] if state == "output" else unit.state_vector(st)
                out[i].append(h.reshape(h.shape[0], -1).to(torch.float64))
                prev = n
    return [torch.cat(o) for o in out]


def _windows(ids: np.ndarray, length: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """``count`` windows of ``length`` consecutive ids at uniformly random starts, ``[count, length]``."""
    starts = rng.integers(0, len(ids) - length + 1, size=count)
    return ids[starts[:, None] + np.arange(length)[None, :]]


def _percentiles(samples: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile interval of bootstrap ``samples[R, ...]`` (NaN replicates left out; NaN bounds where
    every replicate is NaN)."""
    a = (1 - level) / 2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # an all-NaN column gives NaN bounds
        lo, hi = np.nanquantile(samples, [a, 1 - a], axis=0)
    return np.asarray(lo), np.asarray(hi)


def _contract_run(unit, s: SemanticProbeSettings, *, seed, device, dtype, progress):
    """Semantic memory after Zhang et al. (ECAI 2020), our documented interpretation (module docstring,
    docs/semantic.md), on any model: how much of a word sequence's meaning in the Semantic Euclidean
    Space the model's state keeps, for each prefix length n.

    For each n: the readout (ridge, GCV penalty) maps the state after n words to the running mean of
    their vectors (fitted on ``fit_sequences`` windows of the corpus's first half); on ``sequences``
    windows of its second half,

    - (a) ``hull_score = 1 - mean_b d_b / mean_b d0_b``, ``d_b = min_{lam in simplex} ||X_b lam - z_b||``
      the distance of the mapped state to the convex hull of the prefix's word vectors, ``d0_b`` that
      of the memoryless state (the readout's intercept);
    - (b) the memory profile (barycentric weights by lag) and ``L_q``;
    - (c) ``recall_score = (R - C) / (1 - C)``, R the share of lags whose word a per-lag ridge decoder
      recovers as the nearest vocabulary vector, C the best constant guess's share.

    Headline: hull and recall scores as the mean over the prefix lengths, with percentile-bootstrap
    intervals over sequences (Efron & Tibshirani 1993: the sequences resampled and every ratio
    recomputed per replicate; C held at its value on all sequences, whose resampled maximum would be
    biased upwards); the usable length, the largest n up to which the hull score stays >= ``threshold``
    at every evaluated n (``usable_length``), from the point values and from the intervals' bounds.
    Nothing is trained but the seeded skip-gram space and the linear maps.

    Registered with ``in_card=True``: the default corpus is generated (no file, no network) and the
    space is small, so the card pays seconds, not minutes (docs/semantic.md gives the measured cost);
    and for an untrained model the numbers mean what memory capacity means for one: how much of the
    recent words a random state holds linearly.

    Parameters
    ----------
    unit : a prepared single network with the model protocol (the contract runs an ensemble per member).
    s : SemanticProbeSettings.
    seed : int, the seed of the corpus, space, input map, windows and bootstrap.
    device, dtype : where and in which precision the model runs (the indicators are float64).
    progress : ``progress(done, total)`` per prefix length, or None.

    Returns
    -------
    (frame, headline, details, raw): the per-(n, sequence) table, the headline numbers, the curve per
    n with the profile at the longest n and the corpus/space description, and ``{"curve", "profile"}``
    as DataFrames.
    """
    key = (_file_key(s.corpus), s.words, s.vocab_size, _file_key(s.space), s.dim, int(seed))
    ids, vectors_np, source = _corpus_and_space(*key)
    source = copy.deepcopy(source)  # the cached description stays as it was whatever the caller does
    V, d = vectors_np.shape
    I = int(unit.input_size)
    if s.input_map == "space" and I != d:
        raise ConfigError(f"input_map='space' feeds the {d}-dimensional space vectors, but the model's input_size "
                           f"is {I}; use input_map='random' (a fixed seeded map to the input width) or a space of "
                           f"dimension {I}")
    ns = list(s.prefix_lengths)
    n_max = ns[-1]
    half = len(ids) // 2
    if half <= n_max:
        raise InputError(f"the corpus ({len(ids)} words) is too short: each half must hold more than the longest "
                         f"prefix ({n_max}); use a longer corpus (words) or shorter prefix_lengths")
    dev = device if device is not None else torch.device("cpu")
    pdt = torch.float64
    vectors = torch.as_tensor(np.array(vectors_np), dtype=pdt, device=dev)
    if s.input_map == "random":
        g = torch.Generator().manual_seed(int(seed))
        P = torch.randn(d, I, generator=g, dtype=torch.float64)
        table = torch.as_tensor(np.array(vectors_np)) @ P
    else:
        table = torch.as_tensor(np.array(vectors_np))
    mdt = dtype if dtype is not None else torch.float32
    table = table.to(device=dev, dtype=mdt)
    rng = np.random.default_rng([int(seed), 11])
    fit_ids = _windows(ids[:half], n_max, s.fit_sequences, rng)
    ev_ids = _windows(ids[half:], n_max, s.sequences, rng)
    fit_states = _model_states(unit, table, fit_ids, ns, s.state)
    ev_states = _model_states(unit, table, ev_ids, ns, s.state)
    N = s.sequences
    frames, dist, base, rec_seq, r2, profile, converged = [], [], [], [], [], None, True
    for i, n in enumerate(ns):
        Vf = vectors[torch.as_tensor(fit_ids[:, :n], device=dev)]
        Ve = vectors[torch.as_tensor(ev_ids[:, :n], device=dev)]
        Hf, He = fit_states[i], ev_states[i]
        ro = fit_mean_readout(Hf, Vf, device=dev, dtype=pdt)
        z = ro(He)
        f = simplex_qp(Ve, z, dtype=pdt, device=dev)
        f0 = simplex_qp(Ve, ro.intercept.expand_as(z), dtype=pdt, device=dev)
        hd = hull_distance(fit=f, baseline_fit=f0)
        converged = converged and f.converged and f0.converged
        prof = memory_profile(fit=f)
        ml = memory_length(prof, q=s.q)
        dec = fit_lag_decoders(Hf, Vf, device=dev, dtype=pdt)
        targets = np.ascontiguousarray(ev_ids[:, :n][:, ::-1])  # lag 0 first
        hits = recall_hits(dec(He).reshape(N, n, -1), targets, vectors, center=dec.intercept.reshape(n, -1),
                           device=dev).cpu().numpy()
        chance = recall_at_lag(None, targets, None, hits=hits)["chance"].mean()
        dist.append(hd["distance"].to_numpy())
        base.append(hd["baseline_distance"].to_numpy())
        rec_seq.append(hits.mean(1))
        r2.append(float(ro.r2.item()))
        frames.append(pd.DataFrame({"n": n, "sequence": np.arange(N), "distance": dist[-1],
                                    "baseline_distance": base[-1], "qp_gap": hd["gap"].to_numpy(),
                                    "memory_length": ml["memory_length"].to_numpy(),
                                    "ideal_length": ml["ideal_length"].to_numpy(),
                                    "coverage": ml["coverage"].to_numpy(), "recall": rec_seq[-1],
                                    "chance": chance, "readout_r2": r2[-1]}))
        if n == n_max:
            w = prof.groupby("lag")["weight"].mean()
            w0 = memory_profile(fit=f0).groupby("lag")["weight"].mean()
            profile = {"lag": w.index.to_numpy(), "weight": w.to_numpy(), "baseline_weight": w0.to_numpy(),
                       "recall": hits.mean(0)}
        if progress is not None:
            progress(i + 1, len(ns))
    frame = pd.concat(frames, ignore_index=True)

    # point values, as the study's curves: ratios of means over the sequences
    tol = math.sqrt(2 * DEFAULT_TOL[pdt]) * 10  # distances below this are "on the hull" (_on_hull_tol)

    def hull_scores(dd, bb):  # [..., N] -> [...]
        m0 = bb.mean(-1)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(m0 > tol, 1 - dd.mean(-1) / m0, np.nan)

    # chance (the best constant guess's recall) is the corpus's reference level, held fixed at its value
    # on all sequences: resampled, the maximum of the word shares is biased upwards and would push the
    # intervals off the point values
    C = frame.groupby("n")["chance"].first().to_numpy()  # [len(ns)]

    def recall_scores(rr):  # rr[..., len(ns)]: mean recall over sequences
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(C < 1, (rr - C) / (1 - C), np.nan)

    D, B0, RS = np.stack(dist), np.stack(base), np.stack(rec_seq)  # [len(ns), N]
    hull = hull_scores(D, B0)
    recall = recall_scores(RS.mean(-1))
    # percentile bootstrap over sequences (Efron & Tibshirani 1993, ch. 13), in chunks of replicates
    brng = np.random.default_rng([int(seed), 13])
    hb, rb = [], []
    for start in range(0, s.bootstrap, 250):
        idx = brng.integers(0, N, size=(min(250, s.bootstrap - start), N))
        hb.append(hull_scores(D[:, idx], B0[:, idx]).T)  # [R, len(ns)]
        rb.append(recall_scores(RS[:, idx].mean(-1).T))
    hb, rb = np.concatenate(hb), np.concatenate(rb)
    h_lo, h_hi = _percentiles(hb, s.level)
    r_lo, r_hi = _percentiles(rb, s.level)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # mean of an all-NaN curve is NaN
        hm_lo, hm_hi = _percentiles(np.nanmean(hb, 1)[:, None], s.level)
        rm_lo, rm_hi = _percentiles(np.nanmean(rb, 1)[:, None], s.level)
        h_mean, r_mean = np.nanmean(hull), np.nanmean(recall)
    curve = pd.DataFrame({"n": ns, "hull_score": hull, "hull_score_low": h_lo, "hull_score_high": h_hi,
                          "recall_score": recall, "recall_score_low": r_lo, "recall_score_high": r_hi,
                          "readout_r2": r2, "coverage": frame.groupby("n")["coverage"].mean().to_numpy(),
                          "memory_length": frame.groupby("n")["memory_length"].mean().to_numpy()})
    th = {"hull_score": s.threshold}
    usable, failure = usable_length(curve[["n", "hull_score"]], th)
    usable_lo, _ = usable_length(curve[["n"]].assign(hull_score=h_lo), th)
    usable_hi, _ = usable_length(curve[["n"]].assign(hull_score=h_hi), th)
    head = {"hull_score": h_mean, "hull_score_ci_low": hm_lo[0], "hull_score_ci_high": hm_hi[0],
            "recall_score": r_mean, "recall_score_ci_low": rm_lo[0], "recall_score_ci_high": rm_hi[0],
            "readout_r2": float(np.mean(r2)), "usable_length": usable, "usable_length_ci_low": usable_lo,
            "usable_length_ci_high": usable_hi, "usable_censored": bool(usable == n_max),
            "limited_by": failure, "threshold": s.threshold, "level": s.level, "prefix_lengths": ns,
            "sequences": N, "space_dim": d, "vocabulary": V, "input_map": s.input_map, "state": s.state,
            "state_dim": int(ev_states[0].shape[1]), "qp_converged": converged}
    details = {"curve": curve.to_dict(orient="list"), "profile": profile, "source": source}
    return frame, head, details, {"curve": curve, "profile": pd.DataFrame(profile)}


def _plot(result, ax):
    """Hull and recall scores against the prefix length, with their bootstrap intervals and the threshold."""
    c = result.details.get("curve") or {}
    n = np.asarray(c.get("n", []), float)
    for key, label in (("hull_score", "hull score (a)"), ("recall_score", "recall score (c)")):
        v = np.asarray([np.nan if x is None else x for x in c.get(key, [])], float)
        lo = np.asarray([np.nan if x is None else x for x in c.get(f"{key}_low", [])], float)
        hi = np.asarray([np.nan if x is None else x for x in c.get(f"{key}_high", [])], float)
        (line,) = ax.plot(n, v, marker="o", lw=1.2, label=label)
        if len(lo) == len(n):
            ax.fill_between(n, lo, hi, color=line.get_color(), alpha=0.2, lw=0)
    th = result.headline.get("threshold")
    if th is not None:
        ax.axhline(th, color="0.5", lw=0.8, ls="--")
    ax.set_xlabel("prefix length n (words)")
    ax.set_ylabel("indicator (1 = all kept)")
    u = result.headline.get("usable_length")
    ax.set_title("semantic memory" + (f", usable length {u:g} words" if u is not None and np.isfinite(u) else ""))
    ax.legend(fontsize=8)


register_probe("semantic", SemanticProbeSettings, _contract_run,
               "how much of a word sequence's meaning in a Semantic Euclidean Space the state keeps: hull and "
               "recall scores per prefix length (Zhang et al. 2020, our interpretation)", plotter=_plot)
