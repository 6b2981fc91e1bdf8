"""Benchmark: the memory card of a 64-unit LSTM and GRU (default settings, no tasks).

    python benchmarks/bench_card.py

Prints the wall time of every measure, side by side for the two units, and checks the bar:
each card under 60 s on 2 CPU cores.
"""

from __future__ import annotations

import argparse
import sys
import time

from rnnmem import cells
from rnnmem.devices import set_threads, thread_report
from rnnmem.probes.card import compute_card


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: rnnmem's default rule)")
    args = ap.parse_args()
    set_threads(args.threads)
    print("threads:", thread_report())
    rows, ok = {}, True
    for cell in ("lstm", "gru"):
        unit = cells.build(cell, 1, 64, seed=0)
        start = time.perf_counter()
        card = compute_card(unit, seed=0)
        total = time.perf_counter() - start
        rows[cell] = (card["wall_s"], total)
        ok &= total < 60
    measures = list(rows["lstm"][0])
    print(f"{'measure':<14}" + "".join(f"{c:>12}" for c in rows) + "   (seconds)")
    for m in measures:
        print(f"{m:<14}" + "".join(f"{rows[c][0][m]:>12.2f}" for c in rows))
    print(f"{'total':<14}" + "".join(f"{rows[c][1]:>12.2f}" for c in rows))
    print(f"gru/lstm total ratio: {rows['gru'][1] / rows['lstm'][1]:.2f}")
    print("BAR:", "PASS" if ok else "FAIL", "(each card < 60 s)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
