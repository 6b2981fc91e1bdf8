"""Lyapunov spectrum of an input-driven recurrent network.

The network is the non-autonomous map ``z_t = F(z_{t-1}, x_t)`` on its FULL state z (every
component of every layer, flattened: h, and c for LSTM, the inner cells of a Nested LSTM),
driven by i.i.d. ``x_t ~ N(0, I)`` as in the forgetting study. With the Jacobians
``J_t = dF/dz (z_{t-1}, x_t)`` (autograd, ``torch.func.jacrev`` vmapped over a block of steps),
the exponents come from the standard QR method (Benettin, Galgani, Giorgilli & Strelcyn 1980;
Shimada & Nagashima 1979):

    Q_t R_t = J_t Q_{t-1}    (thin QR, Q_0 a random orthonormal D x k frame)
    lambda_i = (1 / n) sum_{t=1}^{n} ln |R_t[i, i]|      (nats per step)

after a state washout (the trajectory forgets its zero initial state; no Jacobians) and a frame
washout (the frame aligns with the Lyapunov vectors; QR done, not averaged). ``lambda_1`` is the
maximal exponent: a small state difference shrinks like ``exp(lambda_1 t)``, so it should equal
minus the contraction rate the forgetting probe fits (``rate = -lambda_1``).

Confidence interval (ours): the n averaged steps are cut into ``blocks`` contiguous blocks per
input realisation; the block means of ln|R_11| are treated as independent (batch means; valid
when a block is much longer than the correlation time of the log-stretching factors) and give
``se = sd(block means) / sqrt(#blocks)`` and a Student-t interval. ``realisations > 1`` runs
independent input streams as one batch (same network, different inputs); the block means of all
of them are pooled. Every exponent gets the same treatment (``se`` column).

Everything runs in ``dtype`` (float64 by default) on ``device`` on a copy of the network; the
caller's model is not modified. A ``CallableUnit`` must be a pure function of (x, state) that
torch.func can vmap (no in-place writes, no data-dependent Python control flow); if vmapping
fails the Jacobians are taken one step at a time (slower; recorded in ``notes``).
"""

from __future__ import annotations

import contextlib
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from scipy import stats

from ..cells import CallableUnit, RecurrentUnit
from ..cells.base import python_loop
from ..errors import ConfigError, InputError
from ..devices import resolve_device
from .capacity import native_device_dtype, prepare_unit
from .common import check_finite


@dataclass
class LyapunovResult:
    """Lyapunov exponents (nats/step, sorted descending) with standard errors."""

    exponents: np.ndarray
    se: np.ndarray
    max_exponent: float
    ci: tuple[float, float]
    confidence: float
    state_dim: int
    config: dict
    unit: dict
    wall_s: float
    per_realisation: np.ndarray  # [realisations, k] exponents of each input stream
    notes: dict = field(default_factory=dict)

    @property
    def contraction_rate(self) -> float:
        """``-max_exponent``: the rate the forgetting probe fits (nats/step, > 0 = forgetting).

        Returns
        -------
        float
            ``-lambda_1`` in nats per step.
        """
        return -self.max_exponent

    def to_frame(self) -> pd.DataFrame:
        """One row per exponent: index (1 = maximal), exponent, se, CI bounds.

        Returns
        -------
        pandas.DataFrame
            Columns ``index`` (1..k), ``exponent`` and ``se`` (nats/step), ``ci_low``/``ci_high``
            (``exponent -/+ q se`` with q the Student-t quantile of ``confidence`` on
            ``blocks * realisations - 1`` degrees of freedom) and ``units`` (``"nats/step"``).
        """
        q = _t_quantile(self.confidence, self.config["blocks"] * self.config["realisations"])
        return pd.DataFrame({
            "index": np.arange(1, len(self.exponents) + 1),
            "exponent": self.exponents,
            "se": self.se,
            "ci_low": self.exponents - q * self.se,
            "ci_high": self.exponents + q * self.se,
            "units": "nats/step",
        })

    def summary(self) -> dict:
        """Flat, JSON-able summary (for tables and the memory card).

        Returns
        -------
        dict
            ``max_exponent``, ``ci_low``, ``ci_high``, ``confidence``, ``contraction_rate``,
            ``sum_exponents`` (sum of the k exponents), ``n_exponents``, ``n_positive`` (finite exponents
            > 0), ``state_dim``, ``wall_s`` and every key of ``config``.
        """
        finite = self.exponents[np.isfinite(self.exponents)]
        return {
            "max_exponent": self.max_exponent, "ci_low": self.ci[0], "ci_high": self.ci[1],
            "confidence": self.confidence, "contraction_rate": self.contraction_rate,
            "sum_exponents": float(self.exponents.sum()), "n_exponents": len(self.exponents),
            "n_positive": int((finite > 0).sum()), "state_dim": self.state_dim, "wall_s": self.wall_s,
            **self.config,
        }


def _t_quantile(confidence: float, n: int) -> float:
    return float(stats.t.ppf(0.5 + confidence / 2, max(n - 1, 1)))


class StepMap:
    """The one-step map ``z' = F(z, x)`` of a unit's full flattened state.

    ``z[B, D]`` is the model protocol's ``state_vector``. Units with the ``cell_step`` capability
    (the gated units: one layer's step on ``[layers, B, H]`` states) step through their own
    ``_cell_step`` (the code their loop runs); every other unit takes one step of its Python loop
    (the protocol's ``step`` inside ``cells.base.python_loop``: no fused kernel, no compiled loop, no
    in-place buffers, so ``torch.func`` can trace it),
    and a ``CallableUnit`` is called on one time step.
    """

    def __init__(self, unit, device=None, dtype=None):
        self.unit = unit
        dev0, dt0 = native_device_dtype(unit)
        self.device = resolve_device(device) if device is not None else dev0
        self.dtype = dtype or dt0
        if isinstance(unit, RecurrentUnit):
            self.kind = "cell_step" if "cell_step" in unit.capabilities() else "builtin"
            self.L, self.n = unit.num_layers, len(unit.state_names)
            self.dim = unit.state_size()
        elif isinstance(unit, CallableUnit):
            self.kind = "callable"
            unit._layout()  # one clear error now if the state's batch dimension cannot be found
            self.dim = int(unit.state_vector(self._template(1)).shape[-1])
        else:  # pragma: no cover - prepare_unit only returns these two kinds
            raise ConfigError(f"cannot build a step map for {type(unit).__name__}")

    def _template(self, batch: int):
        if isinstance(self.unit, CallableUnit):
            return self.unit.template_state(batch, device=self.device, dtype=self.dtype)
        return self.unit.init_state(batch, device=self.device, dtype=self.dtype)

    def init(self, batch: int) -> torch.Tensor:
        """The unit's initial state, flattened: ``[batch, D]``.

        Parameters
        ----------
        batch : int
            Number of independent trajectories (realisations).

        Returns
        -------
        torch.Tensor
            ``[batch, D]`` on the map's device and dtype (a ``CallableUnit``'s template state).
        """
        return self.flatten(self._template(batch))

    def flatten(self, state) -> torch.Tensor:
        """A unit state (tuple of component tensors) as one vector per batch row.

        Parameters
        ----------
        state : tuple of torch.Tensor
            The unit's state (for a built-in unit each component ``[layers, B, H]``).

        Returns
        -------
        torch.Tensor
            ``[B, D]``, the model protocol's ``state_vector(state)``.
        """
        return self.unit.state_vector(state)

    def unflatten(self, z: torch.Tensor):
        """Inverse of :meth:`flatten`.

        Parameters
        ----------
        z : torch.Tensor
            ``[B, D]`` flattened states.

        Returns
        -------
        tuple of torch.Tensor
            The unit's state, ``unit.state_from_vector(z)``.
        """
        return self.unit.state_from_vector(z)

    def __call__(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """``z[B, D], x[B, I] -> z'[B, D]``."""
        state = self.unflatten(z)
        u = self.unit
        if self.kind == "callable":
            _, st = u._call(x.unsqueeze(0), state)
            return self.flatten(st)
        if self.kind == "builtin":
            with python_loop():
                _, st = u.step(x, state)
            return self.flatten(st)
        inp, new = x, [[] for _ in range(self.n)]
        for layer in range(self.L):
            p = u.layer_params[layer]
            st = tuple(s[layer] for s in state)
            h, st = u._cell_step(layer, torch.matmul(inp, p.W_x) + p.b, st)
            for k, s in enumerate(st):
                new[k].append(s)
            inp = h
        return self.flatten(tuple(torch.stack(c) for c in new))

    def single(self, z: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        """Unbatched ``z[D], x[I] -> z'[D]`` (what jacrev differentiates).

        Parameters
        ----------
        z : torch.Tensor
            ``[D]`` flattened state.
        x : torch.Tensor
            ``[I]`` input of the step.

        Returns
        -------
        torch.Tensor
            ``[D]`` next flattened state ``F(z, x)``.
        """
        return self(z.unsqueeze(0), x.unsqueeze(0))[0]


def jacobians(fmap: StepMap, Z: torch.Tensor, X: torch.Tensor, vectorize: bool = True) -> torch.Tensor:
    """``J[n] = dF/dz (Z[n], X[n])`` for a batch of points: ``[N, D, D]``.

    Reverse-mode Jacobians (``torch.func.jacrev`` of :meth:`StepMap.single` with respect to z).

    Parameters
    ----------
    fmap : StepMap
        The one-step map F.
    Z : torch.Tensor
        ``[N, D]`` states the Jacobian is taken at.
    X : torch.Tensor
        ``[N, I]`` inputs of those steps.
    vectorize : bool
        True: one ``torch.func.vmap`` call over the N points (memory ~ N D^2 numbers); False: a Python loop.

    Returns
    -------
    torch.Tensor
        ``[N, D, D]`` Jacobians, ``J[n][i, j] = dF_i/dz_j``.
    """
    jac = torch.func.jacrev(fmap.single, argnums=0)
    if vectorize:
        return torch.func.vmap(jac)(Z, X)
    return torch.stack([jac(z, x) for z, x in zip(Z, X)])


#: smallest state dimension for which ``method="auto"`` forms J Q by forward mode (below it the full
#: Jacobians, vectorised over steps, are faster: measured 4x at D = 152, k = 1)
JVP_MIN_STATE = 512


def tangent_products(fmap: StepMap, Z: torch.Tensor, X: torch.Tensor, Q: torch.Tensor) -> torch.Tensor:
    """``J(Z[r], X[r]) @ Q[r]`` for every realisation r: ``[R, D, k]``, by k forward-mode
    Jacobian-vector products per point (``torch.func.jvp``), never forming the D x D Jacobian.

    Parameters
    ----------
    fmap : StepMap
        The one-step map F.
    Z : torch.Tensor
        ``[R, D]`` states, one per realisation.
    X : torch.Tensor
        ``[R, I]`` inputs of the step.
    Q : torch.Tensor
        ``[R, D, k]`` tangent frames (columns are the tangent vectors).

    Returns
    -------
    torch.Tensor
        ``[R, D, k]``: column j of slice r is ``dF/dz (Z[r], X[r]) @ Q[r][:, j]``.
    """

    def one(z, x, q_cols):
        def f(zz):
            return fmap.single(zz, x)

        return torch.func.vmap(lambda q: torch.func.jvp(f, (z,), (q,))[1], in_dims=1, out_dims=1)(q_cols)

    return torch.func.vmap(one)(Z, X, Q)


@contextlib.contextmanager
def _cpu_threads(n: int | None, device: torch.device):
    """Temporarily run torch's CPU kernels on ``n`` threads (None or a GPU: unchanged)."""
    if n is None or device.type != "cpu":
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


def _check_int(name, value, minimum):
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def lyapunov_spectrum(
    model,
    steps: int = 2_000,
    washout: int = 500,
    frame_washout: int = 200,
    k: int | None = None,
    seed: int = 0,
    dtype=torch.float64,
    device=None,
    realisations: int = 1,
    blocks: int = 20,
    confidence: float = 0.95,
    input_std: float = 1.0,
    chunk: int = 256,
    threads: int | None = 1,
    progress=None,
    method: str = "auto",
) -> LyapunovResult:
    """Lyapunov spectrum of ``model`` driven by N(0, input_std^2) inputs (see module docstring).

    ``steps``: QR steps averaged; ``washout``: state-only steps first; ``frame_washout``: QR steps
    discarded; ``k``: number of exponents (default all, D); ``realisations``: independent input
    streams batched together; ``blocks``: batch-means blocks per stream for the standard errors;
    ``chunk``: Jacobians computed per vectorised call (memory ~ chunk * D^2 numbers);
    ``threads``: CPU threads while it runs (restored after; small matrices are fastest on one
    thread, and more threads on a busy machine slow the QR loop down many times; None = leave);
    ``progress``: optional callable receiving the number of steps done since the last call;
    ``method``: how the tangent map J_t Q_t is formed: ``"jacobian"`` (the full D x D Jacobian by
    reverse mode, ``jacobians``), ``"jvp"`` (k Jacobian-vector products by forward mode, never
    forming J: D/k times less work, what a large state such as Mamba's needs), or ``"auto"``
    (jvp when D >= ``JVP_MIN_STATE`` and k <= D / 4, else the full Jacobian; the two agree to
    rounding, tested). Where an
    operation of the unit has no forward-mode rule, jvp falls back to the full Jacobian (noted).

    The exponents follow the QR method (Benettin, Galgani, Giorgilli & Strelcyn 1980; Shimada &
    Nagashima 1979) on the Jacobians ``J_t = dF/dz (z_{t-1}, x_t)`` of the full flattened state:

        Q_t R_t = J_t Q_{t-1},      lambda_i = (1 / steps) sum_t ln |R_t[i, i]|   (nats per step),

    averaged over ``realisations``; ``se_i = sd(block means of ln|R_t[i, i]|) / sqrt(blocks * realisations)``
    and the CI of lambda_1 is ``lambda_1 +/- t_{(1+confidence)/2, blocks*realisations-1} se_1``.

    Parameters
    ----------
    model : rnnmem unit, CallableUnit, torch.nn.RNN/LSTM/GRU or nn.Module with the model protocol
        A single network (ensembles are refused); a copy runs, the caller's model is not modified.
    steps : int
        QR steps averaged (>= 2, >= ``blocks``; default 2000).
    washout : int
        State-only steps from the initial state before any Jacobian (>= 0; default 500).
    frame_washout : int
        QR steps done but not averaged, to align the frame (>= 0; default 200).
    k : int, optional
        Number of exponents (1..D); default all D.
    seed : int
        Seeds the inputs (``seed``) and the initial orthonormal frame (``seed + 1``).
    dtype : torch.float32 or torch.float64
        Precision of the whole computation (default float64).
    device : str or torch.device, optional
        Where to compute; default the model's device.
    realisations : int
        Independent input streams run as one batch (>= 1; default 1).
    blocks : int
        Batch-means blocks per stream for the standard errors (>= 2; default 20).
    confidence : float
        Level of the interval on lambda_1, in (0, 1); default 0.95.
    input_std : float
        Standard deviation of the i.i.d. Gaussian inputs (finite, >= 0; default 1.0).
    chunk : int
        Steps x realisations whose Jacobians are computed per vectorised call (>= 1; default 256).
    threads : int or None
        CPU threads while it runs (default 1; None leaves torch's setting).
    progress : callable, optional
        ``progress(n)`` with the number of steps done since the last call.
    method : {"auto", "jacobian", "jvp"}
        How ``J_t Q_{t-1}`` is formed (see above).

    Returns
    -------
    LyapunovResult
        ``exponents`` and ``se`` (``[k]``, nats/step, sorted descending), ``max_exponent`` (lambda_1),
        ``ci`` (its interval), ``confidence``, ``state_dim`` (D), ``config``, ``unit`` (its describe()),
        ``wall_s`` (seconds), ``per_realisation`` (``[realisations, k]``) and ``notes`` (fallbacks taken).

    Raises
    ------
    ConfigError
        An out-of-range option, ``k > D``, an unknown method or dtype, an ensemble, or ``method="jvp"``
        on a unit without forward-mode rules.
    InputError
        Non-finite weights, or a state/Jacobian that becomes NaN or infinite.
    """
    start = time.perf_counter()
    steps = _check_int("steps", steps, 2)
    washout = _check_int("washout", washout, 0)
    frame_washout = _check_int("frame_washout", frame_washout, 0)
    R = _check_int("realisations", realisations, 1)
    blocks = _check_int("blocks", blocks, 2)
    chunk = _check_int("chunk", chunk, 1)
    if threads is not None:
        threads = _check_int("threads", threads, 1)
    if blocks > steps:
        raise ConfigError(f"blocks ({blocks}) cannot exceed steps ({steps})")
    if not (0 < confidence < 1):
        raise ConfigError(f"confidence must be in (0, 1), got {confidence}")
    if not (input_std >= 0) or math.isinf(input_std):
        raise ConfigError(f"input_std must be a finite number >= 0, got {input_std}")
    if dtype not in (torch.float32, torch.float64):
        raise ConfigError(f"dtype must be torch.float32 or torch.float64, got {dtype}")
    if method not in ("auto", "jacobian", "jvp"):
        raise ConfigError(f"method must be auto, jacobian or jvp, got {method!r}")
    check_finite(model)
    unit, dev, dt = prepare_unit(model, device=device, dtype=dtype)
    fmap = StepMap(unit, dev, dt)
    D = fmap.dim
    k = D if k is None else _check_int("k", k, 1)
    if k > D:
        raise ConfigError(f"k={k} exponents asked for but the state has only {D} dimensions")
    I = int(unit.input_size)
    total = washout + frame_washout + steps
    gen = torch.Generator().manual_seed(int(seed))
    x_all = (input_std * torch.randn((total, R, I), generator=gen, dtype=torch.float64)).to(dev, dt)
    q_gen = torch.Generator().manual_seed(int(seed) + 1)
    Q = torch.linalg.qr(torch.randn((D, k), generator=q_gen, dtype=torch.float64))[0]
    Q = Q.to(dev, dt).expand(R, D, k).contiguous()
    sums = torch.zeros(blocks, R, k, dtype=torch.float64, device=dev)
    counts = torch.zeros(blocks, dtype=torch.float64, device=dev)
    notes: dict = {}
    vectorize = True
    # auto: the full Jacobians are vectorised over a chunk of steps (fast for small states) but hold
    # chunk * D^2 numbers (12 GB for Mamba-64's D = 2432 at chunk 256); k products per step need none
    use_jvp = method == "jvp" or (method == "auto" and D >= JVP_MIN_STATE and 4 * k <= D)
    with _cpu_threads(threads, dev), torch.no_grad():
        z = fmap.init(R)
        for t in range(washout):
            z = fmap(z, x_all[t])
        if progress is not None and washout:
            progress(washout)
        if not torch.isfinite(z).all():
            raise InputError("the network's state became NaN or infinite during the washout")
        C = max(1, chunk // R)
        t = washout
        while t < total:
            c = min(C, total - t)
            zs = []
            for j in range(c):  # the trajectory through this chunk
                zs.append(z)
                z = fmap(z, x_all[t + j])
            Zp = torch.stack(zs)  # [c, R, D]
            Xc = x_all[t : t + c]
            if use_jvp:
                diag = torch.empty(c, R, k, dtype=dt, device=dev)
                try:
                    for j in range(c):
                        with torch.enable_grad():
                            JQ = tangent_products(fmap, Zp[j], Xc[j], Q)
                        if not torch.isfinite(JQ).all():
                            raise InputError("the tangent map became NaN or infinite (the state diverged)")
                        Q, Rm = torch.linalg.qr(JQ.detach())
                        diag[j] = torch.diagonal(Rm, dim1=-2, dim2=-1)
                except RuntimeError as exc:  # an operation without a forward-mode rule: full Jacobians
                    if method == "jvp":
                        raise ConfigError(f"forward-mode AD failed on this unit ({str(exc).splitlines()[0][:200]}); "
                                          "use method='jacobian'") from None
                    use_jvp = False
                    notes["jvp"] = f"forward mode failed ({str(exc).splitlines()[0][:200]}); full Jacobians"
                    Q = torch.linalg.qr(torch.randn((D, k), generator=torch.Generator().manual_seed(int(seed) + 1),
                                                    dtype=torch.float64))[0].to(dev, dt).expand(R, D, k).contiguous()
                    sums.zero_()
                    counts.zero_()
                    z = fmap.init(R)
                    for tt in range(washout):
                        z = fmap(z, x_all[tt])
                    t = washout
                    continue
            else:
                with torch.enable_grad():
                    try:
                        J = jacobians(fmap, Zp.reshape(c * R, D), Xc.reshape(c * R, I), vectorize)
                    except RuntimeError as exc:
                        if not vectorize:
                            raise
                        vectorize = False
                        notes["vectorized"] = f"vmap failed ({str(exc).splitlines()[0][:200]}); looped"
                        J = jacobians(fmap, Zp.reshape(c * R, D), Xc.reshape(c * R, I), False)
                J = J.detach().reshape(c, R, D, D)
                if not torch.isfinite(J).all():
                    raise InputError("the Jacobian became NaN or infinite (the state diverged)")
                diag = torch.empty(c, R, k, dtype=dt, device=dev)
                for j in range(c):
                    Q, Rm = torch.linalg.qr(torch.matmul(J[j], Q))
                    diag[j] = torch.diagonal(Rm, dim1=-2, dim2=-1)
            logs = diag.abs().log().to(torch.float64)
            step_idx = torch.arange(t, t + c, device=dev) - washout - frame_washout
            keep = step_idx >= 0
            if keep.any():
                b = (step_idx[keep] * blocks) // steps
                sums.index_add_(0, b, logs[keep])
                counts.index_add_(0, b, torch.ones_like(b, dtype=torch.float64))
            t += c
            if progress is not None:
                progress(c)
    sums, counts = sums.cpu().numpy(), counts.cpu().numpy()
    per_real = sums.sum(0) / counts.sum()  # [R, k]
    block_means = sums / counts[:, None, None]  # [blocks, R, k]
    exps = per_real.mean(0)
    flat = block_means.reshape(blocks * R, k)
    with np.errstate(invalid="ignore"):
        se = flat.std(0, ddof=1) / math.sqrt(blocks * R)
    order = np.argsort(-exps, kind="stable")
    exps, se = exps[order], se[order]
    q = _t_quantile(confidence, blocks * R)
    lam1, se1 = float(exps[0]), float(se[0])
    config = {
        "steps": steps, "washout": washout, "frame_washout": frame_washout, "k": k, "seed": int(seed),
        "realisations": R, "blocks": blocks, "input": f"iid N(0, {input_std:g}^2)",
        "input_std": float(input_std), "dtype": str(dt).replace("torch.", ""), "device": str(dev),
        "units": "nats/step",
        "method": "QR (Benettin 1980), " + ("forward-mode Jacobian-vector products J Q of the full state"
                                            if use_jvp else "autograd Jacobians of the full state"),
        "ci": "batch means over blocks x realisations, Student t", "threads": threads,
    }
    describe = unit.describe() if hasattr(unit, "describe") else {"cell": type(unit).__name__}
    return LyapunovResult(
        exponents=exps, se=se, max_exponent=lam1, ci=(lam1 - q * se1, lam1 + q * se1),
        confidence=float(confidence), state_dim=D, config=config, unit=describe,
        wall_s=time.perf_counter() - start, per_realisation=per_real[:, order], notes=notes,
    )


# --------------------------------------------------------------------------------------------
# The probe contract (``probes/contract.py``): PROBES["lyapunov"]
# --------------------------------------------------------------------------------------------
from typing import Literal  # noqa: E402

from pydantic import Field  # noqa: E402

from .contract import ProbeSettings, register_probe  # noqa: E402


class LyapunovProbeSettings(ProbeSettings):
    """Settings of ``PROBES["lyapunov"]`` (defaults: the memory card's): ``steps`` QR steps after a
    ``washout``, the ``k`` largest exponents (capped at the state dimension D), computed in ``dtype``
    (float64 by default: the exponents of a contracting map sum rounding errors otherwise)."""

    steps: int = Field(2_000, ge=2)
    washout: int = Field(500, ge=0)
    k: int = Field(16, ge=1)
    dtype: Literal["float32", "float64"] = "float64"


def _contract_run(unit, s: LyapunovProbeSettings, *, seed, device, dtype, progress):
    """The Lyapunov spectrum along the input-driven trajectory (Benettin/QR; module docstring)."""
    D = unit.state_size()
    done = [0]

    def tick(n):
        done[0] += n
        if progress is not None:
            progress(done[0], s.washout + s.steps)

    res = lyapunov_spectrum(unit, steps=s.steps, washout=s.washout, k=min(s.k, D), seed=seed,
                            dtype=getattr(torch, s.dtype), progress=tick)
    summ = res.summary()
    head = {"max_exponent": summ["max_exponent"], "ci_low": summ["ci_low"], "ci_high": summ["ci_high"],
            "confidence": summ["confidence"], "contraction_rate": summ["contraction_rate"],
            "n_exponents": summ["n_exponents"], "state_dim": summ["state_dim"]}
    return res.to_frame(), head, {"exponents": res.exponents}, res


def _plot(result, ax):
    ex = np.asarray(result.details["exponents"], float)
    ax.plot(np.arange(1, len(ex) + 1), ex, "o-", ms=3)
    ax.axhline(0.0, color="0.5", lw=0.8)
    ax.set_xlabel("exponent index")
    ax.set_ylabel("Lyapunov exponent (per step)")
    ax.set_title("Lyapunov spectrum")


register_probe("lyapunov", LyapunovProbeSettings, _contract_run,
               "Lyapunov spectrum of the state along the input-driven trajectory (Benettin et al. 1980)",
               plotter=_plot)
