"""Benchmark: S seeds trained as one batched computation vs one seed at a time (issue 4).

Side by side in one run, the same code path (``rnnmem.train.timeseries.train_series``; early
stopping disabled so every run does exactly ``--epochs`` epochs):

1. ``--seeds`` (100) seeds of mrnn and of lstm on tree7 for ``--epochs`` (50) epochs, batched,
   against one seed at a time, the sequential side measured on ``--sample`` (5) seeds and
   extrapolated linearly to all seeds. Bar: batched >= 10x faster. Each measurement runs in a
   fresh subprocess with one torch thread, so its peak RSS (printed) is its own.
2. The whole ``rnnmem reproduce zhao --seeds 5 --max-epochs 100`` (8 models x 4 series and the K
   ablation, 2 worker processes): wall time against the 10-minute bar (skip with --no-reproduce).
3. An estimate of the full study (8 models x 4 series x 100 seeds x 1,000 epochs, 2 workers):
   each (model, series) task's cost per epoch is measured with 100 seeds over ``--probe-epochs``
   epochs, multiplied by 1,000 (a batch runs until its last seed stops; the cap is the
   conservative bound), and the tasks are scheduled longest-first on 2 workers. Bar: < 2 hours.

Wall times are what the bars refer to; CPU times are printed beside them because a shared
machine stretches wall time (CPU time is what a dedicated 2-core machine would need).

Run: ``python benchmarks/bench_multiseed.py [--data-dir ../shared/data/zhao2020] [--no-reproduce]``
"""

from __future__ import annotations

import argparse
import heapq
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "zhao2020"
BAR_SPEEDUP = 10.0
BAR_QUICK_S = 600.0
BAR_FULL_S = 7200.0
MODELS = ("rnn", "lstm", "mrnnf", "mrnn", "mlstmf", "mlstm", "rnn2", "rwa")
DATASETS = ("arfima", "DJI", "traffic", "tree7")

CHILD = r"""
import json, resource, sys, time
import os, torch
torch.set_num_threads(int(os.environ.get('RNNMEM_BENCH_THREADS', '1')))
from rnnmem.tasks.series import load_series, split_zhao
from rnnmem.train.timeseries import TrainSettings, train_series
model, path, name, device = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[6]
seeds, epochs = json.loads(sys.argv[4]), int(sys.argv[5])
split = split_zhao(load_series(path), name)
settings = TrainSettings(max_epochs=epochs, patience=epochs + 1)
train_series(model, split, seeds[:1], settings=TrainSettings(max_epochs=1), device=device)   # warm-up
groups = [seeds] if sys.argv[7] == "batched" else [[s] for s in seeds]
w0, c0 = time.perf_counter(), time.process_time()
for g in groups:
    res = train_series(model, split, g, settings=settings, device=device)
wall, cpu = time.perf_counter() - w0, time.process_time() - c0
peak = torch.cuda.max_memory_allocated() / 2**20 if device.startswith("cuda") else None
print(json.dumps({"wall_s": wall, "cpu_s": cpu, "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
                  "cuda_peak_mb": peak, "epochs": res.epochs}))
"""


def child(model, data_dir, name, seeds, epochs, mode, device) -> dict:
    path = str(Path(data_dir) / f"{name}.csv")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", CHILD, model, path, name, json.dumps(list(seeds)), str(epochs),
                          device, mode], capture_output=True, text=True, cwd=REPO, env=env)
    if out.returncode != 0:
        raise SystemExit(f"child failed ({model} {name} {mode}):\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def speedup(args) -> bool:
    print(f"\n== batched vs one seed at a time: {args.seeds} seeds, tree7, {args.epochs} epochs "
          f"(sequential measured on {args.sample} seeds, extrapolated) ==")
    ok = True
    seeds = list(range(args.seeds))
    print(f"{'model':6s} {'batched wall':>13s} {'cpu':>8s} {'RSS MB':>7s} | {'sequential wall (extrap.)':>26s} "
          f"{'cpu':>9s} {'RSS MB':>7s} | {'speed-up wall':>13s} {'cpu':>6s}  bar >= {BAR_SPEEDUP:g}x")
    for model in ("mrnn", "lstm"):
        b = child(model, args.data_dir, "tree7", seeds, args.epochs, "batched", args.device)
        s = child(model, args.data_dir, "tree7", seeds[:args.sample], args.epochs, "sequential", args.device)
        f = args.seeds / args.sample
        seq_wall, seq_cpu = s["wall_s"] * f, s["cpu_s"] * f
        r_wall, r_cpu = seq_wall / b["wall_s"], seq_cpu / b["cpu_s"]
        passed = r_wall >= BAR_SPEEDUP
        ok &= passed
        print(f"{model:6s} {b['wall_s']:12.1f}s {b['cpu_s']:7.1f}s {b['rss_mb']:7.0f} | {seq_wall:25.1f}s "
              f"{seq_cpu:8.1f}s {s['rss_mb']:7.0f} | {r_wall:12.1f}x {r_cpu:5.1f}x  {'PASS' if passed else 'FAIL'}")
        if b.get("cuda_peak_mb") is not None:
            print(f"       CUDA peak memory: batched {b['cuda_peak_mb']:.0f} MB, sequential {s['cuda_peak_mb']:.0f} MB")
    return ok


def reproduce_quick(args) -> bool:
    print("\n== rnnmem reproduce zhao --seeds 5 --max-epochs 100 (fresh store, 2 workers) ==")
    out = Path(tempfile.mkdtemp(prefix="zhao-bench-"))
    cmd = [sys.executable, "-m", "rnnmem.cli", "reproduce", "zhao", "--data-dir", str(args.data_dir), "--seeds", "5",
           "--max-epochs", "100", "--out", str(out), "--workers", "2", "--device", args.device]
    t0 = time.perf_counter()
    before = os.times()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO)
    wall = time.perf_counter() - t0
    after = os.times()
    cpu = (after.children_user - before.children_user) + (after.children_system - before.children_system)
    if proc.returncode != 0:
        raise SystemExit(f"reproduce failed:\n{proc.stderr[-3000:]}")
    passed = wall < BAR_QUICK_S
    print(f"wall {wall:.1f} s (bar < {BAR_QUICK_S:.0f} s: {'PASS' if passed else 'FAIL'}), CPU {cpu:.1f} s "
          f"(/2 cores = {cpu / 2:.1f} s); report {out / 'zhao_report.md'}")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)
    return passed


PROBE = r"""
import json, sys, time
import os, torch
torch.set_num_threads(int(os.environ.get('RNNMEM_BENCH_THREADS', '1')))
from rnnmem.tasks.series import load_series, split_zhao
from rnnmem.train.timeseries import TrainSettings, train_series
data_dir, epochs, device, jobs = sys.argv[1], int(sys.argv[2]), sys.argv[3], json.loads(sys.argv[4])
out = []
for model, name, K in jobs:
    split = split_zhao(load_series(f"{data_dir}/{name}.csv"), name)
    train_series(model, split, list(range(100)), K=K, settings=TrainSettings(max_epochs=1), device=device)
    c0 = time.process_time()
    settings = TrainSettings(max_epochs=epochs, patience=epochs + 1)
    train_series(model, split, list(range(100)), K=K, settings=settings, device=device)
    out.append([model, name, K, (time.process_time() - c0) / epochs])
print(json.dumps(out))
"""


def makespan(costs: list[float], workers: int) -> float:
    """Longest-processing-time-first schedule on ``workers`` machines."""
    loads = [0.0] * workers
    heapq.heapify(loads)
    for c in sorted(costs, reverse=True):
        heapq.heappush(loads, heapq.heappop(loads) + c)
    return max(loads)


def estimate_full(args) -> bool:
    print(f"\n== estimate of the full study (100 seeds, 1,000 epochs, 2 workers; per-epoch CPU cost measured "
          f"over {args.probe_epochs} epochs with 100 seeds) ==")
    jobs = [[m, d, 100] for d in DATASETS for m in MODELS]
    jobs += [[m, d, k] for d in DATASETS for m in ("mrnnf", "mrnn") for k in (25, 50, 75)]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    half = len(jobs) // 2   # two probes in parallel, one per core, as the study's two workers
    procs = [subprocess.Popen([sys.executable, "-c", PROBE, str(args.data_dir), str(args.probe_epochs), args.device,
                               json.dumps(part)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO,
                              env=env) for part in (jobs[:half], jobs[half:])]
    rows = []
    for p in procs:
        out, err = p.communicate()
        if p.returncode != 0:
            raise SystemExit(f"probe failed:\n{err[-3000:]}")
        rows += json.loads(out.strip().splitlines()[-1])
    per_epoch = {(m, d, k): c for m, d, k, c in rows}
    print(f"{'':8s}" + "".join(f"{d:>10s}" for d in DATASETS) + "   (CPU s per epoch, 100 seeds, K=100)")
    for m in MODELS:
        print(f"{m:8s}" + "".join(f"{per_epoch[(m, d, 100)]:10.3f}" for d in DATASETS))
    main = [c * 1000 for (m, d, k), c in per_epoch.items() if k == 100]
    abl = [c * 1000 for (m, d, k), c in per_epoch.items() if k != 100]
    t_main = makespan(main, 2)
    t_all = makespan(main + abl, 2)
    passed = t_main < BAR_FULL_S
    print(f"8 models x 4 series x 100 seeds: {sum(main) / 3600:.2f} CPU hours -> {t_main / 3600:.2f} h on 2 workers "
          f"(bar < 2 h: {'PASS' if passed else 'FAIL'}); with the default K ablation (mrnnf, mrnn at K=25,50,75): "
          f"{t_all / 3600:.2f} h")
    return passed


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=50)
    ap.add_argument("--sample", type=int, default=5)
    ap.add_argument("--probe-epochs", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--no-reproduce", action="store_true", help="skip the reproduce zhao --seeds 5 timing")
    ap.add_argument("--no-estimate", action="store_true", help="skip the full-study estimate")
    ap.add_argument("--keep", action="store_true", help="keep the quick reproduction's output folder")
    ap.add_argument("--threads", type=int, default=1, help="torch threads of each timed training subprocess")
    args = ap.parse_args()
    os.environ["RNNMEM_BENCH_THREADS"] = str(max(1, args.threads))
    if not (args.data_dir / "tree7.csv").is_file():
        raise SystemExit(f"tree7.csv not found in {args.data_dir}; pass --data-dir")
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f} (shared machines stretch wall time)")
    print(f"threads: {max(1, args.threads)} torch thread(s) in each timed subprocess; the quick reproduction's "
          "2 workers use 1 each")
    results = {"speedup": speedup(args)}
    if not args.no_reproduce:
        results["reproduce --seeds 5 --max-epochs 100"] = reproduce_quick(args)
    if not args.no_estimate:
        results["full-study estimate"] = estimate_full(args)
    print("\n" + ", ".join(f"{k}: {'PASS' if v else 'FAIL'}" for k, v in results.items()))


if __name__ == "__main__":
    main()
