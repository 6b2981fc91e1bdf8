"""Benchmark: batched connectivity against the naive T-backward loop, side by side in one run.

    python benchmarks/bench_connectivity.py [--T 200] [--chunk 32] [--naive-steps 20] [--threads N] [--repeat 2]

Model: the study's GRU autocomplete model at full size (``AutocompleteModel``: character
embedding 600, GRU 2 x 600 in the tf1 convention, dense layer to 16386 words), float32, CPU,
untrained (timing does not depend on the weights). Text: T characters of seeded random words.

1. rnnmem: ``connectivity_matrix`` for each method: ``sweep`` (the default for this model: one
   segmented forward pass, one batched adjoint sweep), ``vmap`` and ``replicate`` (chunks of
   output steps, causal prefixes); all with the linear-readout shortcut.
2. Naive: ``connectivity_naive`` (one forward pass, then one backward pass per output step
   through the whole model). Every backward pass runs the whole T-step graph, so its cost does
   not depend on t~: it is timed on ``--naive-steps`` output steps spread over the sequence and
   extrapolated linearly to all T (the output says so). Its columns are compared with rnnmem's.
Each measurement is the best of ``--repeat`` runs; wall and CPU (process) time are both printed,
because on a shared machine wall time also measures the other processes.
Bar: rnnmem >= 10x faster than the naive loop for T = 200 (wall time).
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from rnnmem.probes.connectivity import connectivity_matrix, connectivity_naive
from rnnmem.train.autocomplete import AutocompleteModel


def random_text(T: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out = ""
    while len(out) < T:
        out += " " + "".join(rng.choice(letters, size=int(rng.integers(1, 9))))
    return out[:T]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=None,
                    help="output steps per pass (vmap, replicate; default 32) / segment length (sweep; default 16)")
    ap.add_argument("--naive-steps", type=int, default=20, help="output steps timed for the naive loop")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    ap.add_argument("--hidden", type=int, default=600)
    ap.add_argument("--methods", default="sweep,vmap,replicate")
    ap.add_argument("--repeat", type=int, default=2, help="runs per measurement; the best is kept")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = AutocompleteModel(cell="gru", hidden=args.hidden, layers=2, embedding=args.hidden, convention="tf1",
                              seed=0)
    text = random_text(args.T)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"model: gru 2x{args.hidden} tf1, embedding {args.hidden}, {model.n_words} words, float32, CPU, "
          f"{torch.get_num_threads()} torch threads, load average {load:.1f}")
    print(f"T = {args.T} characters, chunk = {args.chunk or 'default'}")

    # warm-up (first calls pay one-off allocation and dispatch costs)
    connectivity_matrix(model, text[:8], chunk=4)
    connectivity_naive(model, text[:8], t_out=[0, 7])

    steps = np.unique(np.linspace(0, args.T - 1, min(args.naive_steps, args.T)).round().astype(int))
    scale = args.T / len(steps)
    naive, naive_wall, naive_cpu = timed(args.repeat, lambda: connectivity_naive(model, text, t_out=steps))
    print(f"\nnaive loop: {len(steps)} of {args.T} output steps in {naive_wall:.2f} s wall, {naive_cpu:.2f} s CPU "
          f"({naive_wall / len(steps) * 1e3:.1f} ms per t~); extrapolated linearly to all {args.T}: "
          f"{naive_wall * scale:.1f} s wall, {naive_cpu * scale:.1f} s CPU")

    rows = []
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        res, wall, cpu = timed(args.repeat, lambda: connectivity_matrix(model, text, chunk=args.chunk, method=method))
        ref = naive.raw[:, steps]
        err = np.abs(res.raw[:, steps] - ref).max() / np.abs(ref).max()
        rows.append((method, wall, cpu, naive_wall * scale / wall, naive_cpu * scale / cpu, err, res.config["shortcut"]))

    print(f"\n{'method':<11}{'wall s':>8}{'CPU s':>8}{'naive wall s':>14}{'naive CPU s':>13}"
          f"{'speed-up wall':>15}{'speed-up CPU':>14}{'max rel diff':>14}  shortcut")
    for method, wall, cpu, r_wall, r_cpu, err, shortcut in rows:
        print(f"{method:<11}{wall:>8.2f}{cpu:>8.2f}{naive_wall * scale:>14.1f}{naive_cpu * scale:>13.1f}"
              f"{r_wall:>14.1f}x{r_cpu:>13.1f}x{err:>14.1e}  {shortcut}")
    best = max(r[3] for r in rows)
    print(f"\n(naive: extrapolated from {len(steps)} of {args.T} output steps; each time the best of {args.repeat} "
          f"runs; CPU = process time, less sensitive than wall time to other processes on a shared machine)")
    print(f"bar: >= 10x faster than the naive loop (wall) -> {'PASS' if best >= 10 else 'FAIL'} (best {best:.1f}x)")


def timed(repeat: int, fn):
    """Best (smallest) wall and CPU time of ``repeat`` calls, and the last result."""
    walls, cpus = [], []
    for _ in range(repeat):
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return out, min(walls), min(cpus)


if __name__ == "__main__":
    main()
