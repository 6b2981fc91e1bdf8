"""GPU check: run every CUDA path of rnnmem briefly and compare it with the same computation on the CPU.

    python benchmarks/gpu_check.py                       # needs a CUDA device; under 5 minutes on one GPU
    python benchmarks/gpu_check.py --only cells,forgetting
    python benchmarks/gpu_check.py --allow-cpu-only --small   # no GPU: dry run, the "device" half on the CPU
    python -m pytest -m cuda tests/test_gpu_check.py     # the same checks as tests (skipped without CUDA)

Paths (each row: CPU time, device time, device/CPU ratio, the largest disagreement and its bound):

- ``cells``: every unit and convention, forward and backward: torch convention on the fused
  kernel and on the step loop (rnn, lstm, gru), keras (hard-sigmoid gates, GRU reset-before),
  keras2, tf1 (loop), nlstm, the memory cells mrnnf, mrnn, mlstmf, mlstm, rnn2, rwa, and an
  ensemble (several seeds as one batched computation).
- ``forgetting``: the forgetting probe (keras LSTM and GRU, 8 inputs, 32 units, 10 seeds batched).
- ``connectivity``: the connectivity matrix of the study's GRU 2x600 autocomplete model (default
  ``sweep`` method and ``vmap``).
- ``timeseries``: the hand-written ``fastseq`` kernels (forward and backward) and multi-seed
  training (``train_series``) of every time-series model for a few epochs.
- ``autocomplete``: training the study's full-size GRU 2x600 autocomplete model (16,386 words,
  batch 64, observations of 200 characters) for a few hundred steps on the device and a few on the CPU.
- ``lyapunov``, ``capacity``, ``long_memory``: the classic measures and the Definition-3 probe.

Agreement bounds, and why:

- deterministic computations in float32 (cells, fastseq kernels, connectivity, the first training
  loss): 1e-4 (absolute for outputs in [-1, 1]; relative to the largest magnitude for gradients,
  losses and connectivity). CPU and GPU sum in different orders, so float32 results differ by a
  few units of 1e-7 per operation; 1e-4 leaves room for the accumulation over a few hundred steps.
- float64 computations (forgetting probe, lyapunov, capacity, long-memory probe): 1e-8; the
  forgetting probe compares crossing steps, which must be identical at tolerances 1e-2, 1e-4 and
  1e-6 (a difference of 1e-15 cannot move a crossing unless a step lands on the tolerance to 1e-15).
- training trajectories: each Adam step turns a rounding difference of the gradient into a weight
  difference, and later steps compound it. The bound is *measured in the run*: the same training
  on the CPU through the units' autograd step loop instead of the fastseq kernels (the same float32
  maths in another operation order) shows how far rounding alone moves the loss curve; the device's
  curve must stay within ``max(1e-4, 10 x`` that distance ``)`` of the CPU's (time series). For the
  full-size autocomplete model a float64 CPU run is too slow, so: the first step's loss (a pure
  forward pass) within 1e-4 relative, the next CPU steps within 1e-3 relative (Adam's first steps
  are sign-like, ``lr * g / (|g| + eps)``, so they move every weight by ~lr whatever rounding did;
  1e-3 relative on a loss near 9.7 is 0.01), and the device's whole trajectory finite and falling.

TF32 is switched off (``torch.backends.cuda.matmul.allow_tf32`` and ``cudnn.allow_tf32``: cuDNN's
RNN kernels use TF32 by default on Ampere and later, which alone differs from float32 by ~1e-3).
Device times include one call's kernel launches and synchronisation, after one global warm-up.

Exit status: 0 all agree, 1 some path disagrees (listed), 2 no CUDA device (without
``--allow-cpu-only``).
"""

from __future__ import annotations

import argparse
import copy
import math
import os
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from rnnmem import cells

F32_TOL = 1e-4
F64_TOL = 1e-8


# ----------------------------------------------------------------------------------------- helpers
@dataclass
class Row:
    """One compared path: times on both devices, the largest disagreement and its bound."""

    check: str
    path: str
    cpu_s: float
    dev_s: float
    err: float
    tol: float
    what: str = "max abs diff"
    note: str = ""
    extra_failures: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return bool(self.err <= self.tol) and not self.extra_failures  # NaN err -> not ok

    @property
    def ratio(self) -> float:
        return self.dev_s / self.cpu_s if self.cpu_s > 0 else float("nan")

    def failure(self) -> str:
        msgs = [] if self.err <= self.tol else [f"{self.what} {self.err:.3g} > bound {self.tol:.3g}"]
        return f"{self.check}/{self.path}: " + "; ".join(msgs + self.extra_failures)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn, device: torch.device):
    """``(fn(), seconds)`` with the device synchronised before and after."""
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return out, time.perf_counter() - t0


def max_abs(a, b) -> float:
    a, b = _np(a), _np(b)
    if a.shape != b.shape:
        return float("inf")
    return float(np.max(np.abs(a - b))) if a.size else 0.0


def max_rel(a, b) -> float:
    """``max|a - b| / max(max|b|, tiny)``: the error relative to the reference's scale."""
    a, b = _np(a), _np(b)
    if a.shape != b.shape:
        return float("inf")
    if not a.size:
        return 0.0
    scale = max(float(np.max(np.abs(b))), 1e-30)
    return float(np.max(np.abs(a - b))) / scale


def _np(t) -> np.ndarray:
    if isinstance(t, torch.Tensor):
        return t.detach().to("cpu", torch.float64).numpy()
    return np.asarray(t, dtype=np.float64)


def default_device(allow_cpu_only: bool = False) -> torch.device | None:
    """``cuda`` when torch sees a CUDA device; ``cpu`` for a dry run; None otherwise."""
    if torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu") if allow_cpu_only else None


def no_cuda_message() -> str:
    return (f"no CUDA device: torch.cuda.is_available() is False (torch {torch.__version__}, built with CUDA "
            f"{torch.version.cuda or 'none'}). Run this on a machine with an NVIDIA GPU and a CUDA build of torch, "
            "or pass --allow-cpu-only to dry-run the CPU half (the device half then also runs on the CPU).")


def setup(device: torch.device) -> str:
    """Strict float32 on the device (no TF32) and one warm-up of cuBLAS/cuDNN; returns a description."""
    if device.type != "cuda":
        return f"device: cpu (dry run: both halves on the CPU), {torch.get_num_threads()} CPU threads"
    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    torch.set_float32_matmul_precision("highest")
    a = torch.randn(64, 64, device=device)
    (a @ a).sum().item()
    lstm = torch.nn.LSTM(4, 8).to(device)
    lstm(torch.randn(3, 2, 4, device=device))[0].sum().backward()
    sync(device)
    name = torch.cuda.get_device_name(device)
    return (f"device: {device} = {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, TF32 off; "
            f"CPU: {torch.get_num_threads()} threads, {os.cpu_count()} cores")


def _weights_grads(unit, x, w_out, state=None, fast=False):
    """Output, final state and the gradients of sum(y * w_out) w.r.t. parameters and input."""
    from rnnmem.train.fastseq import fast_forward

    x = x.clone().requires_grad_(True)
    y, st = fast_forward(unit, x, state) if fast else unit(x, state)
    loss = (y * w_out.to(y.device, y.dtype)).sum()
    params = [p for p in unit.parameters() if p.requires_grad]
    grads = torch.autograd.grad(loss, params + [x], allow_unused=True)
    grads = [torch.zeros_like(t) if g is None else g for g, t in zip(grads, params + [x])]
    return y.detach(), [s.detach() for s in st], [g.detach() for g in grads]


def _compare_unit(check, path, unit_cpu, x, device, fast=False, tol=F32_TOL, note=""):
    """Forward + backward of ``unit_cpu`` on the CPU and of its copy on ``device``."""
    unit_dev = copy.deepcopy(unit_cpu).to(device)
    y0 = unit_cpu(x)[0] if not fast else None
    shape = y0.shape if y0 is not None else None
    if shape is None:
        from rnnmem.train.fastseq import fast_forward
        shape = fast_forward(unit_cpu, x)[0].shape
    w_out = torch.randn(shape, generator=torch.Generator().manual_seed(11), dtype=x.dtype)
    (yc, sc, gc), t_cpu = timed(lambda: _weights_grads(unit_cpu, x, w_out, fast=fast), torch.device("cpu"))
    (yd, sd, gd), t_dev = timed(lambda: _weights_grads(unit_dev, x.to(device), w_out, fast=fast), device)
    err_y = max(max_abs(yd, yc), *(max_abs(a, b) for a, b in zip(sd, sc)))
    err_g = max(max_rel(a, b) for a, b in zip(gd, gc))
    wrong_device = [] if yd.device.type == device.type else [f"output on {yd.device}, expected {device.type}"]
    return Row(check, path, t_cpu, t_dev, max(err_y, err_g), tol, "max diff (y, state abs; grads rel)",
               note, wrong_device)


# ------------------------------------------------------------------------------------------ checks
def check_cells(device: torch.device, small: bool = False) -> list[Row]:
    """Every unit/convention forward and backward, fused and loop, CPU vs device (float32)."""
    T, B, I, H = (60, 4, 8, 16) if small else (300, 16, 8, 32)
    x = torch.randn(T, B, I, generator=torch.Generator().manual_seed(0))
    cases = [
        ("rnn", "torch", {}, True), ("rnn", "torch", {}, False),
        ("lstm", "torch", {}, True), ("lstm", "torch", {}, False),
        ("gru", "torch", {}, True), ("gru", "torch", {}, False),
        ("lstm", "keras", {}, None), ("gru", "keras", {}, None),
        ("lstm", "keras2", {}, None), ("gru", "keras2", {}, None),
        ("lstm", "tf1", {}, None), ("gru", "tf1", {}, None),
        ("nlstm", "torch", {"depth": 2}, None),
        ("mrnnf", "torch", {"K": 20}, None), ("mrnn", "torch", {"K": 20}, None),
        ("mlstmf", "torch", {"K": 20}, None), ("mlstm", "torch", {"K": 20}, None),
        ("rnn2", "torch", {"K": 20}, None), ("rwa", "torch", {}, None),
    ]
    rows = []
    for cell, conv, opts, fused in cases:
        layers = 1 if cell in ("nlstm", "mrnnf", "mrnn", "mlstmf", "mlstm", "rnn2", "rwa") else 2
        unit = cells.build(cell, I, H, layers=layers, convention=conv, seed=0, **opts)
        if fused is not None:
            unit.use_fused = fused
        path = "fused" if unit.use_fused and unit.fusable() else "loop"
        rows.append(_compare_unit("cells", f"{cell} {conv} {layers}x{H} {path}", unit, x, device))
    ens = cells.build("lstm", I, H, convention="keras", seeds=list(range(4)))
    xe = torch.randn(T, 4, B, I, generator=torch.Generator().manual_seed(1))
    rows.append(_compare_unit("cells", f"lstm keras 1x{H} ensemble of 4 loop", ens, xe, device))
    return rows


def check_forgetting(device: torch.device, small: bool = False) -> list[Row]:
    """The forgetting probe on 10 batched seeds (float64): identical crossing steps."""
    from rnnmem.probes.forgetting import forgetting, tol_name

    T, P = (4_000, 200) if small else (20_000, 1_000)
    tols = (1e-2, 1e-4, 1e-6)
    rows = []
    for cell in ("lstm", "gru"):
        def run(dev):
            unit = cells.build(cell, 8, 32, convention="keras", dtype="float64", seeds=list(range(10)))
            return forgetting(unit, T=T, P=P, tolerances=tols + (0.0,), device=dev)

        rc, t_cpu = timed(lambda: run("cpu"), torch.device("cpu"))
        rd, t_dev = timed(lambda: run(device), device)
        mism, worst = [], 0.0
        for tol in tols:
            col = f"steps_{tol_name(tol)}"
            a, b = rc.table[col].to_numpy(dtype=float), rd.table[col].to_numpy(dtype=float)
            ca, cb = rc.table[f"censored_{tol_name(tol)}"].to_numpy(), rd.table[f"censored_{tol_name(tol)}"].to_numpy()
            if not np.array_equal(ca, cb):
                mism.append(f"censoring differs at {tol_name(tol)}")
            both = ~ca & ~cb
            if both.any():
                worst = max(worst, float(np.max(np.abs(a[both] - b[both]))))
        rows.append(Row("forgetting", f"{cell} keras 8x32, 10 seeds, T={T:,} f64", t_cpu, t_dev, worst, 0.0,
                        "max crossing-step diff (1e-2,1e-4,1e-6)",
                        f"steps computed cpu {rc.steps_computed}, device {rd.steps_computed}", mism))
    return rows


def _study_model(small: bool, words=None):
    from rnnmem.train.autocomplete import AutocompleteModel

    if small:
        return AutocompleteModel("gru", 48, 2, 48, "tf1", seed=0, words=words, n_words=None if words else 300)
    return AutocompleteModel("gru", 600, 2, 600, "tf1", seed=0, words=words)


def check_connectivity(device: torch.device, small: bool = False) -> list[Row]:
    """Connectivity matrix of the study's GRU 2x600 model (float32): CPU (auto: the hand-derived
    adjoint sweep) vs the device's adjoint sweep, autograd sweep and vmap."""
    from rnnmem.probes.connectivity import connectivity_matrix

    T = 40 if small else 100
    model = _study_model(small)
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_connectivity import random_text  # the connectivity benchmark's text, one definition

    text = random_text(T)
    connectivity_matrix(model, text[:6], chunk=4)  # warm-up
    rc, t_cpu = timed(lambda: connectivity_matrix(model, text), torch.device("cpu"))
    rows = []
    for method in ("adjoint", "sweep", "vmap"):
        connectivity_matrix(model, text[:6], chunk=4, method=method, device=device)  # warm-up of this path
        rd, t_dev = timed(lambda: connectivity_matrix(model, text, method=method, device=device), device)
        size = "gru 2x48 tf1, 300 words" if small else f"gru 2x600 tf1, {model.n_words} words"
        rows.append(Row("connectivity", f"{size}, T={T}, device {method}", t_cpu, t_dev,
                        max_rel(rd.raw, rc.raw), F32_TOL, "max rel diff (raw matrix)",
                        f"cpu method {rc.config.get('method')}",
                        [] if rd.config["device"].startswith(device.type) else [f"ran on {rd.config['device']}"]))
    return rows


def _series(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=n)) * 0.1 + np.sin(np.arange(n) / 5.0)


def check_timeseries(device: torch.device, small: bool = False) -> list[Row]:
    """fastseq kernels (forward + backward) and multi-seed train_series, CPU vs device."""
    from rnnmem.tasks.series import split_series
    from rnnmem.train.timeseries import MODELS, TrainSettings, train_series

    rows = []
    T, S, K = (50, 3, 10) if small else (400, 10, 50)
    for kind in MODELS:
        opts = {} if kind in ("rnn", "lstm", "rwa") else {"K": K}
        unit = cells.build(kind, 1, 4, seeds=list(range(S)), **opts)
        x = torch.randn(T, S, 1, 1, generator=torch.Generator().manual_seed(2))
        rows.append(_compare_unit("timeseries", f"fastseq {kind}, {S} seeds, T={T}", unit, x, device, fast=True))

    n, epochs = (160, 4) if small else (1_000, 15)
    split = split_series(_series(n), int(0.6 * n), int(0.2 * n), n - int(0.6 * n) - int(0.2 * n) - 1)
    settings = TrainSettings(max_epochs=epochs)
    seeds = list(range(S))
    for model in MODELS:
        kw = {} if model in ("rnn", "lstm", "rwa") else {"K": K}
        rc, t_cpu = timed(lambda: train_series(model, split, seeds, settings=settings, device="cpu", **kw),
                          torch.device("cpu"))
        # the same training through an equivalent float32 computation in another operation order
        # (the units' autograd step loop instead of the fastseq kernels): how far rounding alone moves it
        r_loop = train_series(model, split, seeds, settings=settings, device="cpu", fast=False, **kw)
        rd, t_dev = timed(lambda: train_series(model, split, seeds, settings=settings, device=device, **kw), device)
        err, spread = 0.0, 0.0
        failures = []
        for s in seeds:
            c, d, w = (r.curves[s]["train_loss"] for r in (rc, rd, r_loop))
            if len(c) != len(d):
                failures.append(f"seed {s}: {len(c)} epochs on cpu, {len(d)} on the device")
                continue
            m = min(len(c), len(w))
            spread = max(spread, max_rel(c[:m], w[:m]))
            err = max(err, max_rel(d, c))
        tol = max(F32_TOL, 10 * spread)
        rows.append(Row("timeseries", f"train {model}, {S} seeds, {epochs} epochs", t_cpu, t_dev, err, tol,
                        "max rel diff (train loss curve)", f"cpu fastseq-vs-step-loop {spread:.1e}", failures))
    return rows


def _full_vocabulary_dataset(tmp: Path, small: bool):
    """A text8-format corpus whose vocabulary has exactly the study's 2^14 words (every invented
    word appears at least once, then Zipf-distributed filler), built into an AutocompleteData."""
    from rnnmem.tasks.autocomplete import build_dataset
    from rnnmem.tasks.synthetic_text import invented_vocabulary, zipf_probabilities

    n_vocab = 298 if small else 2**14
    vocab = invented_vocabulary(n_vocab)
    rng = np.random.default_rng(0)
    p = zipf_probabilities(n_vocab)
    filler = rng.choice(n_vocab, size=20_000 if small else 200_000, p=p)
    words = list(rng.permutation(vocab)) + [vocab[i] for i in filler]
    path = tmp / "corpus.txt"
    path.write_text(" " + " ".join(words), encoding="ascii")
    return build_dataset(path, vocab_size=n_vocab, max_length=200, cache=False)


def check_autocomplete(device: torch.device, small: bool = False, steps: int | None = None,
                       cpu_steps: int | None = None) -> list[Row]:
    """Training of the study's full-size GRU autocomplete model: a few CPU steps, a few hundred on
    the device; first loss tight, next ones loose, the device's trajectory finite and falling."""
    from rnnmem.train.autocomplete import TrainConfig, train_autocomplete

    steps = steps or (20 if small else 300)
    cpu_steps = min(cpu_steps or 3, steps)
    with tempfile.TemporaryDirectory() as tmp:
        data = _full_vocabulary_dataset(Path(tmp), small)

        def run(dev, n):
            model = _study_model(small, words=data.words)
            losses = []
            cfg = TrainConfig(steps=n, eval_every=10**9, eval_batches=1, log_every=10**9, checkpoint_every=10**9)
            res = train_autocomplete(model, data, cfg, device=dev,
                                     progress=lambda step, total, info: losses.append(info["loss"]))
            return np.array(losses), res

        (lc, _), t_cpu = timed(lambda: run("cpu", cpu_steps), torch.device("cpu"))
        (ld, res_d), t_dev = timed(lambda: run(device, steps), device)
    failures = []
    first = abs(ld[0] - lc[0]) / abs(lc[0])
    later = float(np.max(np.abs(ld[1:cpu_steps] - lc[1:]) / np.abs(lc[1:]))) if cpu_steps > 1 else 0.0
    if later > 1e-3:
        failures.append(f"steps 2..{cpu_steps}: rel diff {later:.3g} > 1e-3")
    if not np.all(np.isfinite(ld)):
        failures.append("non-finite loss on the device")
    tail = float(np.mean(ld[-max(1, steps // 10):]))
    if steps >= 100 and not tail < ld[0] - 0.5:
        failures.append(f"device loss did not fall: first {ld[0]:.3f}, mean of the last 10% {tail:.3f}")
    size = "gru 2x48, 300 words (small)" if small else f"gru 2x600 tf1, {data.n_words} words"
    # per-step times: CPU over cpu_steps, device over all its steps (data and dataset build excluded)
    return [Row("autocomplete", f"{size}, batch 64, first loss", t_cpu / cpu_steps, t_dev / steps, first, F32_TOL,
                "rel diff (step-1 loss); times per step",
                f"cpu {cpu_steps} steps, device {steps} steps: loss {ld[0]:.4f} -> {tail:.4f} "
                f"(steps 2..{cpu_steps} rel diff {later:.1e}, bound 1e-3)", failures)]


def check_lyapunov(device: torch.device, small: bool = False) -> list[Row]:
    from rnnmem.probes.lyapunov import lyapunov_spectrum

    steps = 300 if small else 1_000
    rows = []
    for cell in ("lstm", "gru"):
        unit = cells.build(cell, 4, 16, convention="keras", dtype="float64", seed=0)
        rc, t_cpu = timed(lambda: lyapunov_spectrum(unit, steps=steps, washout=100, device="cpu"), torch.device("cpu"))
        rd, t_dev = timed(lambda: lyapunov_spectrum(unit, steps=steps, washout=100, device=device), device)
        rows.append(Row("lyapunov", f"{cell} keras 4x16 f64, {steps} QR steps", t_cpu, t_dev,
                        max_abs(rd.exponents, rc.exponents), F64_TOL, "max abs diff (exponents)"))
    return rows


def check_capacity(device: torch.device, small: bool = False) -> list[Row]:
    from rnnmem.probes.capacity import memory_capacity

    steps = 2_000 if small else 10_000
    unit = cells.build("rnn", 1, 50, dtype="float64", seed=0)
    rc, t_cpu = timed(lambda: memory_capacity(unit, steps=steps, washout=500, device="cpu"), torch.device("cpu"))
    rd, t_dev = timed(lambda: memory_capacity(unit, steps=steps, washout=500, device=device), device)
    err = max(max_abs(rd.curve["r2"], rc.curve["r2"]), abs(rd.mc - rc.mc))
    return [Row("capacity", f"rnn 1x50 f64, {steps:,} steps", t_cpu, t_dev, err, F64_TOL,
                "max abs diff (r2 per lag, mc)", f"mc {rc.mc:.3f}")]


def check_long_memory(device: torch.device, small: bool = False) -> list[Row]:
    from rnnmem.probes.long_memory import long_memory_probe

    rows = []
    # the memory cells' filter makes their backward pass costly on a CPU: short settings for them
    cases = [("lstm", "copies", {}, (300, 30, 4) if small else (2_000, 200, 32)),
             ("mrnnf", "vmap", {"K": 20}, (150, 20, 2) if small else (300, 50, 8))]
    for kind, method, opts, (T, lag, n) in cases:
        unit = cells.build(kind, 1, 8, dtype="float64", seed=0, **opts)
        (fc, vc), t_cpu = timed(lambda: long_memory_probe(unit, T, max_lag=lag, n_samples=n, method=method,
                                                          device="cpu"), torch.device("cpu"))
        (fd, vd), t_dev = timed(lambda: long_memory_probe(unit, T, max_lag=lag, n_samples=n, method=method,
                                                          device=device), device)
        err = max(max_rel(fd["abs_A"], fc["abs_A"]), max_rel(fd["mean_abs"], fc["mean_abs"]))
        rows.append(Row("long_memory", f"{kind} 1x8 f64, {method}, lags {lag}, {n} samples", t_cpu, t_dev, err,
                        F64_TOL, "max rel diff (A_k)", f"verdict cpu {vc.get('verdict')}, device {vd.get('verdict')}",
                        [] if vc.get("verdict") == vd.get("verdict") else ["verdicts differ"]))
    return rows


CHECKS = {
    "cells": check_cells,
    "forgetting": check_forgetting,
    "connectivity": check_connectivity,
    "timeseries": check_timeseries,
    "autocomplete": check_autocomplete,
    "lyapunov": check_lyapunov,
    "capacity": check_capacity,
    "long_memory": check_long_memory,
}


# -------------------------------------------------------------------------------------------- main
def print_rows(rows: list[Row], device: torch.device) -> None:
    dev = "GPU" if device.type == "cuda" else "dev(cpu)"
    head = f"{'check':<13}{'path':<52}{'CPU s':>9}{dev + ' s':>10}{dev[:3] + '/CPU':>9}{'diff':>10}{'bound':>9}  ok"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.check:<13}{r.path[:51]:<52}{r.cpu_s:>9.3f}{r.dev_s:>10.3f}{r.ratio:>9.2f}{r.err:>10.1e}"
              f"{r.tol:>9.0e}  {'yes' if r.ok else 'NO'}" + (f"   {r.note}" if r.note else ""), flush=True)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--allow-cpu-only", action="store_true",
                    help="without CUDA: dry run, both halves on the CPU (tests the script, not the GPU)")
    ap.add_argument("--small", action="store_true", help="small models and sequences (for a CPU dry run)")
    ap.add_argument("--only", default=None, help=f"comma-separated subset of {','.join(CHECKS)}")
    ap.add_argument("--steps", type=int, default=None, help="autocomplete training steps on the device (300)")
    ap.add_argument("--cpu-steps", type=int, default=None, help="autocomplete training steps on the CPU (3)")
    args = ap.parse_args(argv)
    device = default_device(args.allow_cpu_only)
    if device is None:
        print(f"error: {no_cuda_message()}", file=sys.stderr)
        return 2
    names = list(CHECKS) if args.only is None else [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        print(f"error: unknown check(s) {', '.join(unknown)}; choose from {', '.join(CHECKS)}", file=sys.stderr)
        return 2
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"rnnmem GPU check: {setup(device)}; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if device.type != "cuda":
        print("DRY RUN (--allow-cpu-only): no CUDA device; the device half runs on the CPU, so agreement is "
              "trivial and the ratios are not GPU numbers")
    start = time.perf_counter()
    rows: list[Row] = []
    crashed: list[str] = []
    for name in names:
        t0 = time.perf_counter()
        try:
            kw = {"steps": args.steps, "cpu_steps": args.cpu_steps} if name == "autocomplete" else {}
            new = CHECKS[name](device, small=args.small, **kw)
        except Exception:  # report and go on: one broken path must not hide the others
            crashed.append(name)
            print(f"== {name}: CRASHED\n{traceback.format_exc()}", flush=True)
            continue
        print(f"== {name} ({time.perf_counter() - t0:.1f} s)")
        print_rows(new, device)
        rows.extend(new)
    total = time.perf_counter() - start
    failed = [r for r in rows if not r.ok]
    print(f"\ntotal {total:.1f} s ({'under' if total < 300 else 'OVER'} the 5-minute budget); "
          f"{len(rows) - len(failed)}/{len(rows)} paths agree" + (f"; crashed: {', '.join(crashed)}" if crashed else ""))
    for r in failed:
        print(f"DISAGREES: {r.failure()}")
    return 1 if failed or crashed else 0


if __name__ == "__main__":
    sys.exit(main())
