"""Speed of rnnmem's recurrent units against plain torch.nn modules, measured side by side.

For lstm and gru at (I, H) in {(1, 1), (8, 32), (32, 128), (128, 512)}, batch 2, 10,000 steps,
it times, with identical weights and inputs:

- ``fused``: the rnnmem unit (torch convention) on its fused path (torch's ``_VF`` kernel),
- ``loop``:  the same unit with ``use_fused = False`` (rnnmem's Python step loop),
- ``torch``: ``torch.nn.LSTM`` / ``torch.nn.GRU`` holding the same weights.

Repetitions are interleaved (each round runs the three in a fresh random order) and the
reported time is the median over rounds, in microseconds per time step; ratios are medians of
the per-round ratios (the three runs of one round share the machine's load). Runs are inference
(``torch.no_grad``) on one intra-op thread unless told otherwise.

Exits with status 1 when the fused path is slower than 1.2x torch.nn anywhere.

    python benchmarks/bench_cells.py                 # the full table (about a minute on an idle core)
    python benchmarks/bench_cells.py --steps 2000 --rounds 3 --json out.json
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import statistics
import sys
import time

import torch

from rnnmem import cells

SIZES = [(1, 1), (8, 32), (32, 128), (128, 512)]
LIMIT = 1.2


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _torch_module(unit, cell: str) -> torch.nn.Module:
    """torch.nn.LSTM / GRU carrying exactly the unit's weights."""
    module = getattr(torch.nn, cell.upper())(unit.input_size, unit.hidden_size, num_layers=unit.num_layers)
    module = module.to(device=unit.layer_params[0].W_x.device, dtype=unit.dtype).eval()
    with torch.no_grad():
        for layer, p in enumerate(unit.layer_params):
            getattr(module, f"weight_ih_l{layer}").copy_(p.W_x.T)
            getattr(module, f"weight_hh_l{layer}").copy_(p.W_h.T)
            getattr(module, f"bias_ih_l{layer}").copy_(p.b)
            getattr(module, f"bias_hh_l{layer}").copy_(p.b_h)
    return module


def _timer(fn, repeat: int, device: torch.device) -> float:
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(repeat):
        fn()
    _sync(device)
    return (time.perf_counter() - t0) / repeat


def bench_one(cell: str, I: int, H: int, steps: int, batch: int, rounds: int, min_sample: float,
              device: torch.device, grad: bool) -> dict:
    unit = cells.build(cell, I, H, convention="torch", seed=0, device=device)
    module = _torch_module(unit, cell)
    x = torch.randn(steps, batch, I, generator=torch.Generator().manual_seed(1)).to(device)

    def fused():
        unit.use_fused = True
        return unit(x)[0]

    def loop():
        unit.use_fused = False
        return unit(x)[0]

    def nn():
        return module(x)[0]

    fns = {"fused": fused, "loop": loop, "torch": nn}
    with torch.set_grad_enabled(grad):
        outs = {k: f() for k, f in fns.items()}  # warm-up, and the paths must agree
        diff_fused = (outs["fused"] - outs["torch"]).abs().max().item()
        diff_loop = (outs["loop"] - outs["torch"]).abs().max().item()
        # repeat the fast calls so one sample lasts >= min_sample seconds (timer resolution, noise)
        reps = {k: max(1, int(min_sample / max(_timer(f, 1, device), 1e-9))) for k, f in fns.items()}
        samples: dict[str, list[float]] = {k: [] for k in fns}
        for _ in range(rounds):
            order = list(fns)
            random.shuffle(order)
            for k in order:
                samples[k].append(_timer(fns[k], reps[k], device) / steps * 1e6)
    med = {k: statistics.median(v) for k, v in samples.items()}
    ratio = {
        "fused/torch": statistics.median(f / t for f, t in zip(samples["fused"], samples["torch"])),
        "loop/torch": statistics.median(f / t for f, t in zip(samples["loop"], samples["torch"])),
        "loop/fused": statistics.median(f / t for f, t in zip(samples["loop"], samples["fused"])),
    }
    return {"cell": cell, "input_size": I, "hidden_size": H, "us_per_step": med, "ratio": ratio,
            "samples_us_per_step": samples, "calls_per_sample": reps,
            "max_abs_diff_vs_torch": {"fused": diff_fused, "loop": diff_loop}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--batch", type=int, default=2)
    ap.add_argument("--rounds", type=int, default=7, help="interleaved repetitions (median taken)")
    ap.add_argument("--min-sample", type=float, default=0.05, help="seconds per timed sample (fast paths repeat)")
    ap.add_argument("--threads", type=int, default=1, help="torch intra-op threads (0: leave torch's default)")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--grad", action="store_true", help="time with autograd recording (default: no_grad)")
    ap.add_argument("--cells", default="lstm,gru")
    ap.add_argument("--json", default=None, help="also write all samples and the config here")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    random.seed(0)
    torch.manual_seed(0)
    device = torch.device(args.device)
    config = {"steps": args.steps, "batch": args.batch, "rounds": args.rounds, "min_sample_s": args.min_sample,
              "threads": torch.get_num_threads(), "device": str(device), "grad": args.grad,
              "dtype": "float32", "convention": "torch", "torch": torch.__version__,
              "python": platform.python_version(), "machine": platform.machine(), "limit_fused_vs_torch": LIMIT}
    print(f"rnnmem cells benchmark: batch {args.batch}, {args.steps} steps, {config['threads']} thread(s), "
          f"{device}, {'autograd' if args.grad else 'no_grad'}, float32, torch {torch.__version__}")
    print("us per step (median of interleaved rounds); ratios are medians of per-round ratios")
    header = f"{'cell':5s} {'I':>4s} {'H':>4s} | {'fused':>9s} {'loop':>9s} {'torch.nn':>9s} | " \
             f"{'fused/nn':>8s} {'loop/nn':>8s} {'loop/fused':>10s} | {'maxdiff fused,loop':>18s}"
    print(header)
    print("-" * len(header))
    results, failed = [], []
    for cell in args.cells.split(","):
        for I, H in SIZES:
            r = bench_one(cell, I, H, args.steps, args.batch, args.rounds, args.min_sample, device, args.grad)
            results.append(r)
            us, ra, d = r["us_per_step"], r["ratio"], r["max_abs_diff_vs_torch"]
            ok = ra["fused/torch"] <= LIMIT
            if not ok:
                failed.append(f"{cell} ({I},{H})")
            print(f"{cell:5s} {I:4d} {H:4d} | {us['fused']:9.3f} {us['loop']:9.3f} {us['torch']:9.3f} | "
                  f"{ra['fused/torch']:8.3f} {ra['loop/torch']:8.2f} {ra['loop/fused']:10.2f} | "
                  f"{d['fused']:8.1e},{d['loop']:8.1e}{'' if ok else '  <-- fused > 1.2x torch.nn'}",
                  flush=True)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": config, "results": results}, fh, indent=2)
    if failed:
        print(f"FAIL: fused path slower than {LIMIT}x torch.nn for: {', '.join(failed)}")
        return 1
    print(f"OK: fused path within {LIMIT}x of torch.nn everywhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
