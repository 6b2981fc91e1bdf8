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
3. The fairest baseline: the same torch.nn fused kernel, one run at a time, with the probe's
   early-stopping rule applied to it (``naive_run(..., early_stop=True)``): after each input
   block of 250 steps it stops once every run is exact (h and c of both streams equal at the block
   end: after the prefix both streams see the same inputs, so equal states stay equal, and the
   probe also only stops at block ends) or at the floor (over the last 500 steps the largest
   state difference is below 1024 eps max(|state|, 1), positive, and not decaying: the probe's
   floor test, here on h for every step, since torch.nn exposes c only at block ends).
The speed-up is reported per cell type (the GRU half is inflated by torch's slow CPU GRU
kernel) and split into what the stopping rule gives (naive / torch.nn with early stopping) and
what batching the seeds, rnnmem's kernels and the grid's worker processes give on top
(torch.nn with early stopping / rnnmem).
Bar: full grid < 300 s and >= 50x faster than the naive protocol extrapolated; identical
crossing times on the sampled runs (tolerances 1e-2 and 1e-4; 1e-6 and exact are reported too).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnmem import cells
from rnnmem.probes.forgetting import ForgettingSettings, _draw_block, derive_input_seed, forgetting, tol_name
from rnnmem.store import ResultStore, run_tasks
from rnnmem.studies.muccino import SIZES, grid_tasks

TOLS = (0.0, 1e-6, 1e-4, 1e-2)


def naive_run(cell: str, I: int, H: int, seed: int, T: int, P: int, early_stop: bool = False):
    """torch.nn, one run: all T steps, or with ``early_stop`` until the probe's stopping rule
    holds (see the module docstring); returns crossing steps per tolerance, wall time and the
    steps computed."""
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
    s = ForgettingSettings()
    eps = float(torch.finfo(torch.float32).eps)
    window_d, window_scale = [], []
    end = T
    with torch.inference_mode():
        block = s.block  # the probe's input blocks, so both see the same streams
        for t0 in range(0, T, block):
            C = min(block, T - t0)
            x = _draw_block(gen, C, I, t0, P, torch.float32)[:, 0]  # [C, 2, I]
            y, state = mod(x, state)
            d = (y[:, 0] - y[:, 1]).abs().amax(-1).numpy()
            for tol in TOLS:
                over = np.nonzero(d > tol)[0]
                if len(over):
                    last[tol] = t0 + over[-1]
            if early_stop:
                t = t0 + C
                window_d.append(d)
                window_scale.append(y.abs().amax((-1, -2)).numpy())
                parts = state if isinstance(state, tuple) else (state,)
                if t > P and all(torch.equal(p[:, 0], p[:, 1]) for p in parts):
                    end = t
                    break
                if t - s.floor_window >= P:
                    dw = np.concatenate(window_d[-(s.floor_window // block + 2):])[-s.floor_window:]
                    sc = np.concatenate(window_scale[-(s.floor_window // block + 2):])[-s.floor_window:].max()
                    half = s.floor_window // 2
                    if 0 < dw.max() <= s.floor_factor * eps * max(sc, 1.0) and dw[half:].max() >= 0.5 * dw[:half].max():
                        end = t
                        break
    wall = time.perf_counter() - start
    steps = {tol: (None if last[tol] >= end - 1 else max(0, last[tol] + 1 - P)) for tol in TOLS}
    return steps, wall, end


# The Keras user's naive protocol (4.): tf_keras 2.2.4-convention layers (hard-sigmoid gates, GRU
# reset-before: the grid's own maths) in graph mode (tf.function over the whole sequence), one run at
# a time, streams a and b as a batch of 2, all T steps; seconds per run for every unit count at input
# size 8 (Keras' own initial weights: the cost of a step does not depend on their values).
TF_FORGETTING = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
import tf_keras
tf.config.threading.set_intra_op_parallelism_threads(1)
tf.config.threading.set_inter_op_parallelism_threads(1)
T, sizes = int(sys.argv[1]), [int(v) for v in sys.argv[2].split(",")]
x = tf.constant(np.random.default_rng(1).standard_normal((2, T, 8)).astype("float32"))
out = {"tf": tf.__version__, "s": {}}
for cell in ("lstm", "gru"):
    for H in sizes:
        layer = (tf_keras.layers.LSTM(H, recurrent_activation="hard_sigmoid", return_sequences=True)
                 if cell == "lstm" else
                 tf_keras.layers.GRU(H, recurrent_activation="hard_sigmoid", reset_after=False,
                                     return_sequences=True))
        run = tf.function(lambda v: layer(v))
        run(x).numpy()  # builds the layer and traces the full-length graph (not timed)
        t0 = time.perf_counter()
        y = run(x).numpy()
        np.abs(y[0] - y[1]).max(-1)  # the difference trajectory the crossing times are read from
        out["s"][f"{cell}-{H}"] = time.perf_counter() - t0
        print(cell, H, out["s"][f"{cell}-{H}"], file=sys.stderr, flush=True)
print(json.dumps(out))
"""


def keras_naive(T: int, python: str | None) -> dict | None:
    """Seconds per naive run of the tf_keras peer (``TF_FORGETTING``) per (cell, units), run in a
    subprocess of this interpreter or ``python``; None when tensorflow / tf_keras do not import."""
    import json
    import subprocess

    exe = python or sys.executable
    try:
        out = subprocess.run([exe, "-c", TF_FORGETTING, str(T), ",".join(str(h) for h in SIZES)],
                             capture_output=True, text=True, timeout=3600)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        print(f"   tf_keras peer failed: {out.stderr.strip()[-500:]}")
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


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
    ap.add_argument("--threads", type=int, default=1, help="torch threads of this process (pool workers use 1)")
    ap.add_argument("--tf-python", default=None,
                    help="a Python interpreter with tensorflow and tf_keras for the Keras peer (default: this one)")
    ap.add_argument("--no-keras", action="store_true", help="skip the tf_keras peer")
    args = ap.parse_args()
    from rnnmem.devices import set_threads, thread_report

    set_threads(args.threads)
    print("threads:", thread_report(), f"(+ {args.workers} worker process(es), 1 thread each)")

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other processes on this machine count)")
    print(f"== rnnmem: full published grid (2 cells x 64 x {args.runs} runs, T={args.T:,}, keras, float32)")
    cell_wall, tables = {}, []
    with tempfile.TemporaryDirectory() as tmp:
        for cell in ("lstm", "gru"):  # one cell type at a time, so the speed-up splits by cell
            tasks = grid_tasks(cells=(cell,), runs=args.runs, T=args.T, P=args.P)
            start = time.perf_counter()
            with ResultStore(Path(tmp) / f"bench-{cell}.sqlite") as store:
                tables.append(run_tasks(tasks, "rnnmem.studies.muccino:run_cell", store, workers=args.workers,
                                        progress=sys.stderr.isatty(), description=f"grid {cell}"))
            cell_wall[cell] = time.perf_counter() - start
            print(f"   {cell}: {len(tables[-1])} runs in {cell_wall[cell]:.1f} s wall", flush=True)
    table = pd.concat(tables, ignore_index=True)
    grid_wall = sum(cell_wall.values())
    peak_mb = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                  resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss) / 1024
    print(f"   {len(table)} runs in {grid_wall:.1f} s wall; peak RSS of one process {peak_mb:.0f} MB")
    print(f"   statuses: {table['status'].value_counts().to_dict()}")

    print(f"== torch.nn, one run at a time (input size 8, every unit count): naive = all {args.T:,} steps; "
          "early-stop = the same kernel stopped by the probe's rule")
    per_units, per_units_es, mismatches, mism_es, compared = {}, {}, {tol: 0 for tol in TOLS}, {tol: 0 for tol in TOLS}, 0
    for cell in ("lstm", "gru"):
        for H in SIZES:
            walls, walls_es = [], []
            for k in range(args.sample_runs):
                steps_naive, wall, _ = naive_run(cell, 8, H, seed=k, T=args.T, P=args.P)
                steps_es, wall_es, end_es = naive_run(cell, 8, H, seed=k, T=args.T, P=args.P, early_stop=True)
                steps_probe = probe_run(cell, 8, H, seed=k, T=args.T, P=args.P)
                walls.append(wall)
                walls_es.append(wall_es)
                compared += 1
                for tol in TOLS:
                    mismatches[tol] += steps_naive[tol] != steps_probe[tol]
                    mism_es[tol] += steps_es[tol] != steps_probe[tol]
                print(f"   {cell} I=8 H={H:<3} naive {wall:6.2f} s, early-stop {wall_es:6.2f} s ({end_es:,} steps)  "
                      f"crossings naive/early-stop/probe at 1e-4: {steps_naive[1e-4]}/{steps_es[1e-4]}/"
                      f"{steps_probe[1e-4]}, 1e-2: {steps_naive[1e-2]}/{steps_es[1e-2]}/{steps_probe[1e-2]}", flush=True)
            per_units[(cell, H)] = float(np.mean(walls))
            per_units_es[(cell, H)] = float(np.mean(walls_es))
    peer = None if args.no_keras else keras_naive(args.T, args.tf_python)
    if peer is not None:
        print(f"== tf_keras {peer['tf']} graph mode, one run at a time (input size 8, every unit count, all "
              f"{args.T:,} steps, keras 2.2.4 maths, 1 thread; timing only: Keras' own weights)")
        for c in ("lstm", "gru"):
            print("   " + c + " " + ", ".join(f"H={H} {peer['s'][f'{c}-{H}']:.2f} s" for H in SIZES))
    else:
        print("== tf_keras peer: not run (" + ("--no-keras" if args.no_keras else
              "tensorflow / tf_keras do not import; pass --tf-python") + ")")
    keras_cell = None if peer is None else {
        c: sum(peer["s"][f"{c}-{H}"] * len(SIZES) * args.runs for H in SIZES) for c in ("lstm", "gru")}
    naive_cell = {c: sum(per_units[(c, H)] * len(SIZES) * args.runs for H in SIZES) for c in ("lstm", "gru")}
    es_cell = {c: sum(per_units_es[(c, H)] * len(SIZES) * args.runs for H in SIZES) for c in ("lstm", "gru")}
    naive_total, es_total = sum(naive_cell.values()), sum(es_cell.values())
    ratio = naive_total / grid_wall
    print("== result (extrapolated to the grid from input size 8; speed-ups are wall-time ratios)")
    print(f"   {'cell':<6}{'naive s':>10}{'torch.nn+ES s':>15}{'rnnmem s':>10}{'total':>9}{'from ES rule':>14}"
          f"{'from batching':>15}")
    for c, n, e, r in [(c, naive_cell[c], es_cell[c], cell_wall[c]) for c in ("lstm", "gru")] + \
                      [("both", naive_total, es_total, grid_wall)]:
        print(f"   {c:<6}{n:>10,.0f}{e:>15,.0f}{r:>10.1f}{n / r:>8.0f}x{n / e:>13.1f}x{e / r:>14.1f}x")
    print("   (from ES rule = naive / torch.nn with early stopping; from batching = torch.nn with early stopping / "
          "rnnmem: batched seeds, rnnmem's kernels and the worker processes together)")
    if keras_cell is not None:
        for c in ("lstm", "gru"):
            print(f"   tf_keras naive protocol, {c}: {keras_cell[c]:,.0f} s extrapolated to the grid -> rnnmem "
                  f"{keras_cell[c] / cell_wall[c]:.0f}x faster (torch.nn naive / tf_keras naive: "
                  f"{naive_cell[c] / keras_cell[c]:.2f})")
    print(f"   naive protocol extrapolated to the grid: {naive_total:,.0f} s ({naive_total / 3600:.2f} h)")
    print(f"   rnnmem full grid: {grid_wall:.1f} s  -> speed-up {ratio:.0f}x")
    for tol in TOLS:
        print(f"   torch.nn+ES crossing times identical to the probe's at {tol_name(tol)}: "
              f"{compared - mism_es[tol]}/{compared}")
    for tol in TOLS:
        print(f"   crossing times identical at tolerance {tol_name(tol)}: {compared - mismatches[tol]}/{compared}")
    ok = grid_wall < 300 and ratio >= 50 and mismatches[1e-2] == 0 and mismatches[1e-4] == 0
    print("   BAR:", "PASS" if ok else "FAIL", "(grid < 300 s, >= 50x, identical crossings at 1e-2 and 1e-4)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
