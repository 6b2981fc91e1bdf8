"""Benchmark: the full published forgetting grid against the naive protocol, side by side.

    python benchmarks/bench_forgetting.py [--workers 2] [--runs 10] [--T 100000] [--sample-runs 1]
    python benchmarks/bench_forgetting.py --cells lstm --grid-only   # step 1 alone: runner vs in-process

1. rnnmem: the published grid (lstm and gru; input sizes x units in {1..128}; keras convention;
   float32; 10 runs; T = 100,000, P = 1,000) through the sweep runner (early stopping, seeds
   batched, grid cells in worker processes). Wall time and peak memory. The same cells are first
   run one after another in this process with one torch thread and no results store (after one
   untimed warm-up cell), and the two wall times are printed side by side with the load average:
   pooled / in-process is the sweep runner's whole cost (worker start-up, messages, storing)
   against what its workers buy. Every run's metrics and curves must be identical both ways.
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
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from rnnmem import cells
from rnnmem.probes.forgetting import ForgettingSettings, _draw_block, derive_input_seed, forgetting, tol_name
from rnnmem.store import ResultStore, RunRecord, run_tasks
from rnnmem.studies.muccino import SIZES, grid_tasks, run_cell

TOLS = (0.0, 1e-6, 1e-4, 1e-2)


def inprocess_grid(tasks) -> tuple[float, list[RunRecord]]:
    """Run ``tasks`` (grid_tasks) one after another in this process, one torch thread, nothing stored.

    The smallest task runs once first, untimed (first-call costs: the compiled step loops, torch's
    first operations), so this is the computation alone, the baseline for the sweep runner's pool.

    Returns
    -------
    (wall seconds, the records of every task in task order)
    """
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        smallest = min(tasks, key=lambda t: t.config["units"] * (t.config["units"] + t.config["input_size"]))
        run_cell(smallest.config, smallest.seeds)
        start = time.perf_counter()
        records = [rec for t in tasks for rec in run_cell(t.config, t.seeds)]
        return time.perf_counter() - start, records
    finally:
        torch.set_num_threads(saved)


def descendants_peak_mb(root: int) -> float:
    """Largest peak resident set (``VmHWM``) among the processes below ``root`` (pool workers, whether
    spawned or forked by multiprocessing's fork server), in MB; 0 where /proc is not available.

    Returns
    -------
    the largest peak RSS in MB over the processes running now
    """
    parents, peak = {}, 0.0
    proc = Path("/proc")
    if not proc.is_dir():
        return peak
    for d in proc.iterdir():
        if d.name.isdigit():
            try:
                parents[int(d.name)] = int((d / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, ValueError, IndexError):
                continue
    below, frontier = set(), {root}
    while frontier:
        frontier = {p for p, pp in parents.items() if pp in frontier and p not in below}
        below |= frontier
    for pid in below:
        try:
            for line in (proc / str(pid) / "status").read_text().splitlines():
                if line.startswith("VmHWM:"):
                    peak = max(peak, int(line.split()[1]) / 1024)
        except (OSError, ValueError, IndexError):
            continue
    return peak


def same_run(a: RunRecord, b: RunRecord | None) -> bool:
    """True when two records of one run agree exactly: status, config, every metric but the timing
    (``batch_wall_s``; NaN equals NaN) and every curve (False when ``b`` is None: not stored)."""
    if b is None:
        return False
    ma = {k: v for k, v in a.metrics.items() if k != "batch_wall_s"}
    mb = {k: v for k, v in b.metrics.items() if k != "batch_wall_s"}
    if (a.status, a.config, sorted(ma), sorted(a.curves)) != (b.status, b.config, sorted(mb), sorted(b.curves)):
        return False
    for k, x in ma.items():
        y = mb[k]
        if x != y and not (isinstance(x, float) and isinstance(y, float) and np.isnan(x) and np.isnan(y)):
            return False
    return all(np.array_equal(a.curves[k], b.curves[k], equal_nan=True) for k in a.curves)


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
    ap.add_argument("--cells", default="lstm,gru", help="cell types of the grid, comma-separated (lstm, gru)")
    ap.add_argument("--no-inprocess", action="store_true",
                    help="skip running the grid's cells in this process (1 thread) for comparison with the pool")
    ap.add_argument("--grid-only", action="store_true",
                    help="stop after the grid (step 1): skip the naive protocol, torch.nn and tf_keras")
    args = ap.parse_args()
    grid_cells = tuple(c.strip() for c in args.cells.split(",") if c.strip())
    if not grid_cells or any(c not in ("lstm", "gru") for c in grid_cells) or len(set(grid_cells)) != len(grid_cells):
        ap.error(f"--cells takes lstm and/or gru, comma-separated, each once; got {args.cells!r}")
    if not args.grid_only and grid_cells != ("lstm", "gru"):
        ap.error("the full benchmark (its bar and speed-ups) needs --cells lstm,gru; add --grid-only for fewer cells")
    from rnnmem.devices import set_threads, thread_report

    set_threads(args.threads)
    print("threads:", thread_report(), f"(+ {args.workers} worker process(es), 1 thread each)")

    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} (other processes on this machine count)")
    print(f"== rnnmem: full published grid ({len(grid_cells)} cell(s) x 64 x {args.runs} runs, T={args.T:,}, keras, "
          "float32)")
    cell_wall, tables, inproc_wall, loads, same, worker_peak = {}, [], {}, {}, {}, [0.0]
    with tempfile.TemporaryDirectory() as tmp:
        for cell in grid_cells:  # one cell type at a time, so the speed-up splits by cell
            tasks = grid_tasks(cells=(cell,), runs=args.runs, T=args.T, P=args.P)
            if not args.no_inprocess:
                load0 = os.getloadavg()[0]
                inproc_wall[cell], inproc_records = inprocess_grid(tasks)
                print(f"   {cell}: {len(inproc_records)} runs in-process (1 torch thread, no store) in "
                      f"{inproc_wall[cell]:.1f} s wall (load {load0:.2f} -> {os.getloadavg()[0]:.2f})", flush=True)
            load0 = os.getloadavg()[0]
            done = threading.Event()

            def sample_workers() -> None:  # the workers' peak memory: VmHWM only lasts while they live
                while not done.wait(0.2):
                    worker_peak[0] = max(worker_peak[0], descendants_peak_mb(os.getpid()))

            sampler = threading.Thread(target=sample_workers, daemon=True)
            sampler.start()
            start = time.perf_counter()
            with ResultStore(Path(tmp) / f"bench-{cell}.sqlite") as store:
                try:
                    tables.append(run_tasks(tasks, "rnnmem.studies.muccino:run_cell", store, workers=args.workers,
                                            progress=sys.stderr.isatty(), description=f"grid {cell}"))
                finally:
                    done.set()
                    sampler.join()
                cell_wall[cell] = time.perf_counter() - start
                loads[cell] = (load0, os.getloadavg()[0])
                if not args.no_inprocess:
                    same[cell] = sum(same_run(rec, store.get(rec.key)) for rec in inproc_records)
            print(f"   {cell}: {len(tables[-1])} runs through the sweep runner ({args.workers} worker(s) x 1 thread, "
                  f"stored) in {cell_wall[cell]:.1f} s wall (load {loads[cell][0]:.2f} -> {loads[cell][1]:.2f})",
                  flush=True)
    table = pd.concat(tables, ignore_index=True)
    grid_wall = sum(cell_wall.values())
    self_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    peak_mb = max(self_mb, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, worker_peak[0])
    print(f"   {len(table)} runs in {grid_wall:.1f} s wall; peak RSS of one process {peak_mb:.0f} MB (this process "
          f"{self_mb:.0f} MB, its pool processes up to {worker_peak[0]:.0f} MB)")
    print(f"   statuses: {table['status'].value_counts().to_dict()}")
    if inproc_wall:
        print(f"   sweep runner vs in-process, same cells (in-process: this process, 1 torch thread, no store; pooled: "
              f"{args.workers} worker process(es) x 1 thread, start-up and storing included; {os.cpu_count()} CPU(s))")
        print(f"   {'cell':<6}{'runs':>6}{'in-process s':>14}{'pooled s':>10}{'pooled/in-process':>19}"
              f"{'load before/after pooled':>26}{'identical runs':>16}")
        rows = [(c, len(t), inproc_wall[c], cell_wall[c], f"{loads[c][0]:.2f} / {loads[c][1]:.2f}", same[c])
                for c, t in zip(grid_cells, tables)]
        if len(rows) > 1:
            rows.append(("all", len(table), sum(inproc_wall.values()), grid_wall, "", sum(same.values())))
        for c, n, a, b, ld, k in rows:
            print(f"   {c:<6}{n:>6}{a:>14.1f}{b:>10.1f}{b / a:>18.2f}x{ld:>26}{f'{k}/{n}':>16}")
        if sum(same.values()) != len(table):
            print("   RESULTS DIFFER between the in-process and the pooled runs (see 'identical runs')")
            return 1
    if args.grid_only:
        return 0

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
