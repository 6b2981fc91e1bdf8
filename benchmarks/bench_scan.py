"""Sequence forward of the linear-recurrence units: parallel scan against the step loop (issue 15).

For each unit (default lru, s4d, mamba, mingru) and each length T (default 1,000, 10,000 and
100,000), batch 8, on the CPU, inference (``torch.no_grad``), float32, it times side by side:

- ``scan``: ``unit(x)``, the unit's sequence forward over all T steps (its parallel scan, or s4d's
  FFT convolution, or mamba's compiled loops; the path that ran, ``unit.last_path``, is printed);
- ``step loop``: ``unit.step(x_t, state)`` called once per time step from ``unit.init_state(B)``:
  the model protocol's step, the same for every unit (not a unit's own internal loop).

Units are built by name, ``rnnmem.cells.build(name, input_size, hidden_size, seed=0)``, with
``--hidden`` (default 64) as hidden_size, ``--input`` (default 64) as input_size and every other
size (state size N, d_state, expansion, ...) at the unit's default; the table gives each unit's
state length D (``unit.state_size()``). A unit not registered (yet) is reported as such.

Repetitions are interleaved: each round runs scan and step loop in a fresh random order; times are
medians over rounds and the ratio is the median of the per-round ratios (both runs of a round share
the machine's load). The step loop runs at most ``--step-prefix`` steps (default 10,000): for longer
T its time is the prefix's time scaled by T / prefix, marked ``est.`` in the table. ``max|diff|``
compares the scan's outputs with the step loop's over the steps both ran. The acceptance of issue
15, "the scan is at least 10x faster than the step loop at T = 10k", is evaluated per unit.
Rows are printed as they are measured. The address space is limited to ``--max-memory-gb``
(default 8 GiB) while measuring: a unit whose forward needs more is reported "out of memory"
instead of pushing a shared machine into swap or the OOM killer.

    python benchmarks/bench_scan.py                          # the full table
    python benchmarks/bench_scan.py --units mingru --T 1000 10000 --repeats 3 --json out.json

Exit status 1 when a measured unit misses the acceptance at T = 10,000.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import random
import statistics
import sys
import time

import torch

from rnnmem import cells

try:
    import resource
except ImportError:  # not on Windows: no memory limit there
    resource = None

UNITS = ("lru", "s4d", "mamba", "mingru")
LENGTHS = (1_000, 10_000, 100_000)
ACCEPT_T = 10_000
ACCEPT_RATIO = 10.0


@contextlib.contextmanager
def _memory_limit(gb: float):
    """Lower the soft address-space limit to ``gb`` GiB for the block (restored after); 0: none."""
    if not gb or resource is None:
        yield
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    want = int(gb * (1 << 30))
    if hard != resource.RLIM_INFINITY:
        want = min(want, hard)
    resource.setrlimit(resource.RLIMIT_AS, (want, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def _load() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def _time_scan(unit, x):
    t0 = time.perf_counter()
    y, _ = unit(x)
    return time.perf_counter() - t0, y, getattr(unit, "last_path", "?")


def _time_steps(unit, x, n):
    state = unit.init_state(x.shape[1])
    outs = []
    t0 = time.perf_counter()
    for t in range(n):
        y_t, state = unit.step(x[t], state)
        outs.append(y_t)
    elapsed = time.perf_counter() - t0
    return elapsed, torch.stack(outs)


def measure(name: str, T: int, *, batch: int, input_size: int, hidden: int, repeats: int,
            step_prefix: int, seed: int = 0) -> dict:
    """One unit at one length: median times of scan and step loop, their ratio, and agreement."""
    row = {"unit": name, "T": T}
    if name not in cells.list_units():
        return {**row, "status": "not registered"}
    unit = cells.build(name, input_size, hidden, seed=seed)
    unit.eval()
    state_size = unit.state_size() if hasattr(unit, "state_size") else None
    x = torch.randn((T, batch, input_size), generator=torch.Generator().manual_seed(seed + 1))
    n = min(T, step_prefix)
    scans, steps, ratios, diffs = [], [], [], []
    path = "?"
    with torch.no_grad():
        _time_scan(unit, x[: min(T, 64)])      # warm-up (lazy initialisation, allocator)
        _time_steps(unit, x, min(n, 8))
        for _ in range(repeats):
            order = ["scan", "step"]
            random.shuffle(order)
            got = {}
            for which in order:
                if which == "scan":
                    got["scan"] = _time_scan(unit, x)
                else:
                    got["step"] = _time_steps(unit, x, n)
            t_scan, y, path = got["scan"]
            t_step, y_steps = got["step"]
            t_step_full = t_step * T / n
            scans.append(t_scan)
            steps.append(t_step_full)
            ratios.append(t_step_full / t_scan)
            diffs.append(float((y[:n] - y_steps).abs().max()))
    return {
        **row, "status": "ok", "path": path, "state_size": state_size,
        "scan_s": statistics.median(scans), "step_s": statistics.median(steps),
        "step_estimated": n < T, "step_steps_timed": n, "ratio": statistics.median(ratios),
        "max_abs_diff": max(diffs),
    }


def _verdicts(rows: list[dict]) -> dict[str, str]:
    out = {}
    for name in dict.fromkeys(r["unit"] for r in rows):
        mine = [r for r in rows if r["unit"] == name]
        if mine[0]["status"] == "not registered":
            out[name] = "not registered"
            continue
        at = [r for r in mine if r["T"] == ACCEPT_T]
        if at and at[0]["status"] != "ok":
            out[name] = f"not evaluated (T = {ACCEPT_T}: {at[0]['status']})"
        elif not at:
            out[name] = f"not evaluated (T = {ACCEPT_T} not measured)"
        else:
            r = at[0]
            est = ", step loop estimated" if r["step_estimated"] else ""
            ok = r["ratio"] >= ACCEPT_RATIO
            out[name] = f"{'yes' if ok else 'NO'} ({r['ratio']:.1f}x{est})"
    return out


def _fmt_s(s: float) -> str:
    return f"{s * 1e3:.1f} ms" if s < 1 else f"{s:.2f} s"


def print_header(info: dict) -> None:
    print(f"bench_scan: torch {info['torch']}, {info['platform']}, torch threads {info['threads']}, "
          f"batch {info['batch']}, input {info['input']}, hidden {info['hidden']} "
          f"(other sizes at the units' defaults), float32, CPU, no grad, repeats {info['repeats']}")
    print(f"load average (1, 5, 15 min) at the start: {info['load_before']}")
    print("step loop = unit.step(x_t, state) per time step (the protocol's step, same for every unit); "
          "D = state length per sequence")
    print(HEAD)
    print("-" * len(HEAD), flush=True)


HEAD = f"{'unit':8} {'T':>7} {'D':>6} {'path':14} {'scan':>10} {'step loop':>16} {'ratio':>8} {'max|diff|':>10}"


def print_row(r: dict) -> None:
    if r["status"] != "ok":
        print(f"{r['unit']:8} {r['T']:>7} {'':>6} {r['status']}", flush=True)
        return
    step = _fmt_s(r["step_s"]) + (" (est.)" if r["step_estimated"] else "")
    d = "" if r["state_size"] is None else str(r["state_size"])
    print(f"{r['unit']:8} {r['T']:>7} {d:>6} {r['path'][:14]:14} {_fmt_s(r['scan_s']):>10} {step:>16} "
          f"{r['ratio']:>7.1f}x {r['max_abs_diff']:>10.1e}", flush=True)


def print_footer(rows: list[dict], info: dict) -> None:
    if any(r.get("step_estimated") for r in rows):
        print(f"(est.) step loop timed over the first {info['step_prefix']} steps and scaled by T / "
              f"{info['step_prefix']}")
    print(f"load average (1, 5, 15 min) at the end: {info['load_after']}")
    print(f"acceptance (scan >= {ACCEPT_RATIO:g}x faster than the step loop at T = {ACCEPT_T}):")
    for name, verdict in info["acceptance"].items():
        print(f"  {name:8} {verdict}")


def main(argv: list[str] | None = None) -> dict:
    """Run the benchmark; returns ``{"info": ..., "rows": [...]}`` (also printed as a table)."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--units", nargs="+", default=list(UNITS), help="units to time (default: %(default)s)")
    ap.add_argument("--T", nargs="+", type=int, default=list(LENGTHS), help="sequence lengths")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (default 1)")
    ap.add_argument("--repeats", type=int, default=3, help="interleaved rounds per cell (median)")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--input", type=int, default=64, help="input_size")
    ap.add_argument("--hidden", type=int, default=64, help="hidden_size")
    ap.add_argument("--step-prefix", type=int, default=10_000,
                    help="time at most this many steps of the step loop; longer T is scaled (est.)")
    ap.add_argument("--max-memory-gb", type=float, default=8.0,
                    help="address-space limit while measuring (a cell that needs more is reported "
                         "'out of memory' instead of swapping the machine); 0 = none (default 8)")
    ap.add_argument("--json", default=None, help="also write the rows and settings to this file")
    args = ap.parse_args(argv)
    for key in ("threads", "repeats", "batch", "input", "hidden", "step_prefix"):
        if getattr(args, key) < 1:
            ap.error(f"--{key.replace('_', '-')} must be >= 1")
    if any(T < 2 for T in args.T):
        ap.error("--T values must be >= 2")
    torch.set_num_threads(args.threads)
    random.seed(0)
    info = {"torch": torch.__version__, "platform": platform.platform(), "threads": torch.get_num_threads(),
            "batch": args.batch, "input": args.input, "hidden": args.hidden, "repeats": args.repeats,
            "step_prefix": args.step_prefix, "max_memory_gb": args.max_memory_gb, "load_before": _load()}
    print_header(info)
    rows = []
    with _memory_limit(args.max_memory_gb):
        for name in args.units:
            for T in args.T:
                try:
                    row = measure(name, T, batch=args.batch, input_size=args.input, hidden=args.hidden,
                                  repeats=args.repeats, step_prefix=args.step_prefix)
                except (MemoryError, RuntimeError) as exc:
                    text = str(exc)
                    oom = isinstance(exc, MemoryError) or "allocate memory" in text
                    status = (f"out of memory (over the {args.max_memory_gb:g} GB limit)" if oom
                              else "failed: " + text.splitlines()[0][:80])
                    row = {"unit": name, "T": T, "status": status}
                rows.append(row)
                print_row(row)
                if row["status"] == "not registered":  # one line for a unit that is not there
                    break
    info["load_after"] = _load()
    info["acceptance"] = _verdicts(rows)
    print_footer(rows, info)
    result = {"info": info, "rows": rows}
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)
    return result


if __name__ == "__main__":
    res = main()
    failed = [n for n, v in res["info"]["acceptance"].items() if v.startswith("NO")]
    sys.exit(1 if failed else 0)
