"""Benchmark: the cost of the review-classification study (Zhao et al. 2020, Tables 5-6).

    python benchmarks/bench_reviews_cost.py [--data ../shared/data/zhao2020/reviews.json]
        [--models rnn,lstm,mrnnf,mlstmf] [--chunk 10] [--seeds 100] [--epochs 100] [--workers 2]

For each first layer, one batched task of ``--chunk`` seeds (the study's ``--seed-chunk``) is
trained with the study's own task function (``rnnmem.studies.zhao_reviews.run_batch``, one torch
thread) for 1 and for 3 epochs, after a warm-up call that trains the review embedding (cached per
process, as in the study's workers); half the CPU-time difference is the cost of one epoch, the rest
the task's set-up. The full study (``--seeds`` seeds in chunks, ``--epochs`` epochs, one layout)
is extrapolated from those costs and scheduled on ``--workers`` worker processes (longest task
first). Printed: per-epoch and set-up CPU seconds per model, the CPU hours of each model's share
and the estimated wall time; ``--paper-layout`` would double it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from bench_multiseed import makespan  # the same longest-first schedule as the time-series estimate
from rnnmem.studies.zhao_reviews import file_sha256, run_batch

DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "zhao2020" / "reviews.json"


def task_cpu(model: str, path: Path, sha: str, seeds: list[int], epochs: int) -> float:
    cfg = dict(model=model, data_path=str(path), data_sha256=sha, epochs=epochs)
    start = time.process_time()
    run_batch(cfg, seeds)
    return time.process_time() - start


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--models", default="rnn,lstm,mrnnf,mlstmf")
    ap.add_argument("--chunk", type=int, default=10, help="seeds per batched task (the study's --seed-chunk)")
    ap.add_argument("--seeds", type=int, default=100)
    ap.add_argument("--epochs", type=int, default=100)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for the timed tasks (the study's "
                    "workers use 1)")
    args = ap.parse_args()
    if not args.data.is_file():
        print(f"reviews file not found at {args.data}; give --data PATH (the UCI paper-review JSON)")
        return 2
    from rnnmem.devices import set_threads, thread_report

    set_threads(args.threads)
    print("threads:", thread_report())
    sha = file_sha256(args.data)
    seeds = list(range(args.chunk))
    start = time.process_time()
    task_cpu("rnn", args.data, sha, [0], 1)  # warm-up: the review embedding is trained once per process
    embedding_cpu = time.process_time() - start
    n_tasks = -(-args.seeds // args.chunk)
    print(f"one task = {args.chunk} seeds, hidden 128, K = 50, float32, {torch.get_num_threads()} torch thread(s); "
          "CPU seconds")
    print(f"(warm-up, once per worker process: loading the reviews and training their embedding, {embedding_cpu:.1f} s)")
    print(f"{'model':<8}{'1 epoch':>9}{'3 epochs':>10}{'per epoch':>11}{'set-up':>8}{'study CPU h':>13}")
    tasks: list[float] = []
    total = 0.0
    for model in [m.strip() for m in args.models.split(",") if m.strip()]:
        one = task_cpu(model, args.data, sha, seeds, 1)
        three = task_cpu(model, args.data, sha, seeds, 3)
        per_epoch = (three - one) / 2
        setup = max(one - per_epoch, 0.0)
        task = setup + per_epoch * args.epochs
        tasks += [task] * n_tasks
        total += task * n_tasks
        print(f"{model:<8}{one:>9.1f}{three:>10.1f}{per_epoch:>11.2f}{setup:>8.1f}{task * n_tasks / 3600:>13.2f}")
    wall = makespan(tasks, args.workers)
    print(f"\nfull study ({args.seeds} seeds x {args.epochs} epochs, one layout): {total / 3600:.1f} CPU hours -> "
          f"about {wall / 3600:.1f} h of wall time on {args.workers} workers (extrapolated from the measured costs; "
          f"--paper-layout doubles it)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
