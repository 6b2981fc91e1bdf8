"""Benchmark: the full published forgetting grid against the naive protocol, side by side.

    python benchmarks/bench_forgetting.py [--workers 2] [--runs 10] [--T 100000] [--sample-runs 1]

1. rnnmem: the published grid (lstm and gru; input sizes x units in {1..128}; keras convention;
   float32; 10 runs; T = 100,000, P = 1,000) through the sweep runner (early stopping, seeds
   batched, grid cells in worker processes). Wall time and peak memory.
2. Naive protocol on a sample of grid cells: every run computed for all T steps with
   torch.nn.LSTM / torch.nn.GRU, one run at a time (streams a and b as a batch of 2), then the
   crossing times read off the full output trajectory. torch.nn cannot compute Keras 2.2.4's
   hard-sigmoid gates, so the sampled comparison uses the keras2 convention (sigmoid gates, GRU
   reset-after), whose weights map exactly into torch.nn; rnnmem's probe runs the same networks
   and inputs, and the crossing times are compared run by run. The naive wall time per run is
   measured for every unit count (input size 8) and extrapolated to the whole grid.
Bar: full grid < 300 s and >= 50x faster than the naive protocol extrapolated; identical
crossing times on the sampled runs (tolerances 1e-2 and 1e-4; 1e-6 and exact are reported too).
"""

from __future__ import annotations

import argparse
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from rnnmem import cells
from rnnmem.probes.forgetting import ForgettingSettings, _draw_block, derive_input_seed, forgetting, tol_name
from rnnmem.store import ResultStore, run_tasks
from rnnmem.studies.muccino import SIZES, grid_tasks

TOLS = (0.0, 1e-6, 1e-4, 1e-2)


def naive_run(cell: str, I: int, H: int, seed: int, T: int, P: int):
    """All T steps with torch.nn, one run; returns crossing steps per tolerance and wall time."""
    unit = cells.build(cell, I, H, convention="keras2", seed=seed)
    mod = (torch.nn.LSTM if cell == "lstm" else torch.nn.GRU)(I, H)
    with torch.no_grad():
        w = unit._flat_weights()
        for name, value in zip(("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0"), w):
            getattr(mod, name).copy_(value)
    gen = [torch.Generator().manual_seed(derive_input_seed(seed))]
    start = time.perf_counter()
    last = {tol: -1 for tol in TOLS}
    state = None
    with torch.inference_mode():
        block = ForgettingSettings().block  # the probe's input blocks, so both see the same streams
        for t0 in range(0, T, block):
            C = min(block, T - t0)
            x = _draw_block(gen, C, I, t0, P, torch.float32)[:, 0]  # [C, 2, I]
            y, state = mod(x, state)
            d = (y[:, 0] - y[:, 1]).abs().amax(-1).numpy()
            for tol in TOLS:
                over = np.nonzero(d > tol)[0]
                if len(over):
                    last[tol] = t0 + over[-1]
    wall = time.perf_counter() - start
    steps = {tol: (None if last[tol] >= T - 1 else max(0, last[tol] + 1 - P)) for tol in TOLS}
    return steps, wall


def probe_run(cell, I, H, seed, T, P):
    unit = cells.build(cell, I, H, convention="keras2", seeds=[seed])
    res = forgetting(unit, T=T, P=P, tolerances=TOLS)
    row = res.table.iloc[0]
    return {tol: (None if row[f"censored_{tol_name(tol)}"] else int(row[f"steps_{tol_name(tol)}"])) for tol in TOLS}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--T", type=int, default=100_000)
    ap.add_argument("--P", type=int, default=1_000)
    ap.add_argument("--sample-runs", type=int, default=1, help="naive runs per sampled grid cell")
    args = ap.parse_args()
    torch.set_num_threads(1)

    print(f"== rnnmem: full published grid (2 cells x 64 x {args.runs} runs, T={args.T:,}, keras, float32)")
    with tempfile.TemporaryDirectory() as tmp:
        tasks = grid_tasks(runs=args.runs, T=args.T, P=args.P)
        start = time.perf_counter()
        with ResultStore(Path(tmp) / "bench.sqlite") as store:
            table = run_tasks(tasks, "rnnmem.studies.muccino:run_cell", store, workers=args.workers,
                              progress=sys.stderr.isatty(), description="grid")
        grid_wall = time.perf_counter() - start
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(f"   {len(table)} runs in {grid_wall:.1f} s wall; peak RSS of one process {peak_mb:.0f} MB")
    print(f"   statuses: {table['status'].value_counts().to_dict()}")

    print(f"== naive protocol: torch.nn, all {args.T:,} steps, one run at a time (input size 8, every unit count)")
    per_units, mismatches, compared = {}, {tol: 0 for tol in TOLS}, 0
    for cell in ("lstm", "gru"):
        for H in SIZES:
            walls = []
            for k in range(args.sample_runs):
                steps_naive, wall = naive_run(cell, 8, H, seed=k, T=args.T, P=args.P)
                steps_probe = probe_run(cell, 8, H, seed=k, T=args.T, P=args.P)
                walls.append(wall)
                compared += 1
                for tol in TOLS:
                    if steps_naive[tol] != steps_probe[tol]:
                        mismatches[tol] += 1
                print(f"   {cell} I=8 H={H:<3} naive {wall:6.2f} s  crossings naive/probe at 1e-4: "
                      f"{steps_naive[1e-4]}/{steps_probe[1e-4]}, 1e-2: {steps_naive[1e-2]}/{steps_probe[1e-2]}")
            per_units[(cell, H)] = float(np.mean(walls))
    naive_total = sum(per_units[(cell, H)] * len(SIZES) * args.runs for cell in ("lstm", "gru") for H in SIZES)
    ratio = naive_total / grid_wall
    print("== result")
    print(f"   naive protocol extrapolated to the grid: {naive_total:,.0f} s ({naive_total / 3600:.2f} h)")
    print(f"   rnnmem full grid: {grid_wall:.1f} s  -> speed-up {ratio:.0f}x")
    for tol in TOLS:
        print(f"   crossing times identical at tolerance {tol_name(tol)}: {compared - mismatches[tol]}/{compared}")
    ok = grid_wall < 300 and ratio >= 50 and mismatches[1e-2] == 0 and mismatches[1e-4] == 0
    print("   BAR:", "PASS" if ok else "FAIL", "(grid < 300 s, >= 50x, identical crossings at 1e-2 and 1e-4)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
