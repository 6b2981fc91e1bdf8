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

Then the protocol of issue 16 (the forgetting probe's step loop without early stopping): one
keras-convention pair (8 inputs, 32 units, batch 2 = the probe's streams a and b) over
``--keras-steps`` steps, per step, for LSTM and GRU:

- ``rnnmem loop``: ``cells.build(cell, 8, 32, convention="keras")`` (hard-sigmoid gates, GRU
  reset-before: not a torch kernel, so rnnmem's step loop, compiled where a C compiler is available),
  inference mode;
- ``py loop``: the same unit with ``use_native = False`` (the Python step loop, what ran before the
  compiled step loops of ``cells/_native.py``);
- ``torch.nn``: ``torch.nn.LSTM`` / ``GRU`` (8, 32), the fused kernel (sigmoid gates, reset-after:
  the same sizes, not the same maths; the speed a fused kernel reaches);
- ``tf_keras``: ``tf_keras.layers.LSTM/GRU(32, recurrent_activation="hard_sigmoid",
  reset_after=False)`` called inside ``tf.function`` (graph mode) on the whole sequence, when
  ``tensorflow`` and ``tf_keras`` import (in this interpreter, or in ``--tf-python``'s); otherwise
  it says "peer not installed" and quotes the numbers published in issue 16, labelled as not
  measured here.
Goals (issue 16): rnnmem's loop >= 3x faster per step than tf_keras graph mode, and within 2x of
torch.nn's fused kernel.

Last (``--memory-steps``, 0 skips it), the memory-augmented units mrnn, mlstm, mrnnf, mlstmf, rnn2
(K = 100) and the recurrent weighted average rwa (no filter, no K) at (I, H, batch) = (1, 1, 1), the
Zhao study's size, and (8, 32, 2): us per step of the compiled loop against the Python loop
(``use_native = False``), wall and this thread's CPU time.

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


# issue 16's measurement of the peer (100,000 steps, one pair): published there, not measured here
ISSUE16_TF_KERAS_S = {"lstm": (5.3, 5.5), "gru": (6.9, 8.3)}
TF_PEER = r"""
import json, sys, time
import numpy as np
import tensorflow as tf
import tf_keras
tf.config.threading.set_intra_op_parallelism_threads(int(sys.argv[3]))
cell, steps = sys.argv[1], int(sys.argv[2])
layer = (tf_keras.layers.LSTM(32, recurrent_activation="hard_sigmoid") if cell == "lstm" else
         tf_keras.layers.GRU(32, recurrent_activation="hard_sigmoid", reset_after=False))
x = tf.constant(np.random.default_rng(1).standard_normal((2, steps, 8)).astype("float32"))
run = tf.function(lambda v: layer(v))
run(x[:, :10]).numpy()
run(x).numpy()  # traces the full-length graph
walls, cpus = [], []
for _ in range(int(sys.argv[4])):
    c0, t0 = time.process_time(), time.perf_counter()
    run(x).numpy()
    walls.append(time.perf_counter() - t0)
    cpus.append(time.process_time() - c0)  # every thread of this process (tf's pools included)
print(json.dumps({"us_per_step": min(walls) / steps * 1e6, "cpu_us_per_step": sorted(cpus)[len(cpus) // 2] / steps * 1e6,
                  "tf": tf.__version__}))
"""


def tf_peer(cell: str, steps: int, threads: int, rounds: int, python: str | None) -> dict | None:
    """Per-step time of tf_keras in graph mode, run in a subprocess (this interpreter or ``python``):
    ``us_per_step`` (best wall time of ``rounds``), ``cpu_us_per_step`` (median CPU time of the
    subprocess, all its threads) and ``tf`` (version); None when tensorflow / tf_keras do not import
    there."""
    import subprocess

    exe = python or sys.executable
    try:
        out = subprocess.run([exe, "-c", TF_PEER, cell, str(steps), str(max(threads, 1)), str(rounds)],
                             capture_output=True, text=True, timeout=1800)
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return json.loads(out.stdout.strip().splitlines()[-1])


def _native_used(unit, x) -> bool:
    """Whether ``unit(x)`` in inference mode runs the compiled step loop (cells/_native.py)."""
    with torch.inference_mode():
        return unit._native_ok(x, unit.init_state(x.shape[-2]))


def bench_keras(steps: int, rounds: int, threads: int, tf_python: str | None) -> list[dict]:
    """The issue-16 protocol (module docstring): us per step of rnnmem's keras loop, torch.nn's
    fused kernel and the tf_keras peer, one (8, 32) pair over ``steps`` steps."""
    x = torch.randn(steps, 2, 8, generator=torch.Generator().manual_seed(1))
    rows = []
    for cell in ("lstm", "gru"):
        unit = cells.build(cell, 8, 32, convention="keras", seed=0)
        module = getattr(torch.nn, cell.upper())(8, 32).eval()
        def pyloop(unit=unit):  # the loop before the compiled step loops (cells/_native.py)
            unit.use_native = False
            try:
                return unit(x)
            finally:
                unit.use_native = True

        def blocks(unit=unit):  # as the forgetting probe drives it: blocks of 250 steps, every state kept
            state = None
            for t0 in range(0, steps, 250):
                _, state, _ = unit(x[t0:t0 + 250], state, return_all_states=True)

        fns = {"loop": lambda: unit(x), "torch": lambda: module(x), "pyloop": pyloop, "blocks": blocks}
        with torch.inference_mode():
            for f in fns.values():
                f()
            samples = {k: [] for k in fns}
            cpu = {k: [] for k in fns}  # this thread's CPU time: less sensitive to a loaded machine
            for _ in range(rounds):
                order = list(fns)
                random.shuffle(order)
                for k in order:
                    c0 = time.thread_time()
                    samples[k].append(_timer(fns[k], 1, torch.device("cpu")) / steps * 1e6)
                    cpu[k].append((time.thread_time() - c0) / steps * 1e6)
        med = {k: statistics.median(v) for k, v in samples.items()}
        med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
        peer = tf_peer(cell, steps, threads, max(1, min(rounds, 3)), tf_python)
        rows.append({"cell": cell, "loop_us": med["loop"], "torch_us": med["torch"], "pyloop_us": med["pyloop"],
                     "blocks_us": med["blocks"], "cpu_us": med_cpu,
                     "blocks_over_torch": statistics.median(a / b for a, b in zip(samples["blocks"], samples["torch"])),
                     "loop_over_torch_cpu": statistics.median(a / b for a, b in zip(cpu["loop"], cpu["torch"])),
                     "native": _native_used(unit, x),
                     "loop_over_torch": statistics.median(a / b for a, b in zip(samples["loop"], samples["torch"])),
                     "tf_us": None if peer is None else peer["us_per_step"],
                     "tf_cpu_us": None if peer is None else peer.get("cpu_us_per_step"),
                     "tf_version": None if peer is None else peer["tf"]})
    return rows


def print_keras(rows: list[dict], steps: int, threads: int) -> None:
    print(f"\nissue-16 protocol: keras convention, 8 inputs, 32 units, batch 2 (one pair), {steps:,} steps, "
          f"{threads} thread(s), inference; us per step (median of interleaved rounds; tf_keras: the best of "
          "its rounds, in its own process)")
    head = (f"{'cell':5s} | {'rnnmem loop':>11s} {'torch.nn':>9s} {'tf_keras':>9s} {'py loop':>9s} | "
            f"{'loop/nn':>8s} {'tf/loop':>8s} {'py/loop':>8s}")
    print(head)
    print("-" * len(head))
    for r in rows:
        tf_txt = f"{r['tf_us']:9.2f}" if r["tf_us"] is not None else f"{'n/a':>9s}"
        ratio = f"{r['tf_us'] / r['loop_us']:8.2f}" if r["tf_us"] is not None else f"{'n/a':>8s}"
        print(f"{r['cell']:5s} | {r['loop_us']:11.2f} {r['torch_us']:9.2f} {tf_txt} {r['pyloop_us']:9.2f} | "
              f"{r['loop_over_torch']:8.2f} {ratio} {r['pyloop_us'] / r['loop_us']:8.2f}")
    print("CPU time (us per step; rnnmem and torch.nn: this thread, tf_keras: its process; "
          "wall time above is inflated by other processes' load):")
    for r in rows:
        c = r["cpu_us"]
        tf_cpu = (f"  tf_keras {r['tf_cpu_us']:.2f} (process, all threads) | tf/loop {r['tf_cpu_us'] / c['loop']:.2f}"
                  if r.get("tf_cpu_us") is not None else "")
        print(f"{r['cell']:5s} | loop {c['loop']:.2f}  blocks {c['blocks']:.2f}  torch.nn {c['torch']:.2f}  "
              f"py loop {c['pyloop']:.2f} | loop/nn {r['loop_over_torch_cpu']:.2f}{tf_cpu}")
    for r in rows:
        print(f"{r['cell']:5s} | probe-style (blocks of 250 steps, all states kept): {r['blocks_us']:.2f} us/step wall, "
              f"{r['blocks_over_torch']:.2f}x torch.nn")
    print(f"load average: {open('/proc/loadavg').read().split()[0] if sys.platform.startswith('linux') else 'n/a'}")
    print("rnnmem loop: the compiled step loop (cells/_native.py) where it is available "
          f"({', '.join(r['cell'] + ': ' + ('yes' if r['native'] else 'NO, Python loop') for r in rows)}); "
          "py loop: the Python step loop (use_native = False), the loop before it")
    for r in rows:
        within2 = r["loop_over_torch"] <= 2.0
        print(f"{r['cell']}: within 2x of torch.nn fused: {'MET' if within2 else 'NOT MET'} "
              f"({r['loop_over_torch']:.2f}x)", end="; ")
        if r["tf_us"] is not None:
            speed = r["tf_us"] / r["loop_us"]
            print(f">= 3x faster than tf_keras graph (tf {r['tf_version']}, measured here): "
                  f"{'MET' if speed >= 3 else 'NOT MET'} ({speed:.2f}x)")
        else:
            lo, hi = ISSUE16_TF_KERAS_S[r["cell"]]
            lo_us, hi_us = lo / 100_000 * 1e6, hi / 100_000 * 1e6
            print(f"tf_keras peer not installed (tensorflow / tf_keras do not import; pass --tf-python). "
                  f"NOT MEASURED HERE, context only: issue 16 published {lo}-{hi} s per 100,000 steps = "
                  f"{lo_us:.0f}-{hi_us:.0f} us/step on its machine; 3x faster would be <= {lo_us / 3:.1f} us/step "
                  f"(rnnmem here: {r['loop_us']:.1f} us/step, {lo_us / r['loop_us']:.2f}-{hi_us / r['loop_us']:.2f}x "
                  "against those numbers, machines differ)")


MEMORY_SIZES = [(1, 1, 1), (8, 32, 2)]  # (I, H, batch): the Zhao study's models; the forgetting probe's pair


def bench_memory(cells_: list[str], steps: int, rounds: int) -> list[dict]:
    """The memory-augmented units (K = 100; rwa without K) in inference: us per step of the compiled step loop
    (cells/_native.py) against the Python step loop (``use_native = False``), interleaved rounds,
    medians of wall and of this thread's CPU time, and the largest output difference."""
    rows = []
    for cell in cells_:
        for I, H, B in MEMORY_SIZES:
            unit = cells.build(cell, I, H, seed=0, **({} if cell == "rwa" else {"K": 100}))  # rwa: no filter
            x = torch.randn(steps, B, I, generator=torch.Generator().manual_seed(1))

            def run(native, unit=unit, x=x):
                unit.use_native = native
                try:
                    return unit(x)[0]
                finally:
                    unit.use_native = True

            fns = {"compiled": lambda: run(True), "python": lambda: run(False)}
            with torch.inference_mode():
                diff = float((fns["compiled"]() - fns["python"]()).abs().max())
                path = (run(True), unit.last_path)[1]
                wall, cpu = {k: [] for k in fns}, {k: [] for k in fns}
                for _ in range(rounds):
                    order = list(fns)
                    random.shuffle(order)
                    for k in order:
                        c0 = time.thread_time()
                        wall[k].append(_timer(fns[k], 1, torch.device("cpu")) / steps * 1e6)
                        cpu[k].append((time.thread_time() - c0) / steps * 1e6)
            med = {k: statistics.median(v) for k, v in wall.items()}
            med_cpu = {k: statistics.median(v) for k, v in cpu.items()}
            rows.append({"cell": cell, "I": I, "H": H, "batch": B, "path": path, "compiled_us": med["compiled"],
                         "python_us": med["python"], "compiled_cpu_us": med_cpu["compiled"],
                         "python_cpu_us": med_cpu["python"],
                         "speedup": statistics.median(b / a for a, b in zip(wall["compiled"], wall["python"])),
                         "speedup_cpu": statistics.median(b / a for a, b in zip(cpu["compiled"], cpu["python"])),
                         "max_abs_diff": diff})
    return rows


def print_memory(rows: list[dict], steps: int, threads: int) -> None:
    print(f"\nmemory-augmented units (K = 100; rwa has no K; float32, inference, {steps:,} steps, {threads} thread(s)): "
          "us per step, compiled loop vs Python loop (median of interleaved rounds)")
    head = (f"{'cell':7s} {'I':>3s} {'H':>3s} {'B':>2s} | {'compiled':>9s} {'python':>9s} {'speed-up':>8s} | "
            f"{'cpu comp':>9s} {'cpu py':>9s} {'speed-up':>8s} | {'maxdiff':>8s} path")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['cell']:7s} {r['I']:3d} {r['H']:3d} {r['batch']:2d} | {r['compiled_us']:9.2f} {r['python_us']:9.2f} "
              f"{r['speedup']:7.1f}x | {r['compiled_cpu_us']:9.2f} {r['python_cpu_us']:9.2f} {r['speedup_cpu']:7.1f}x | "
              f"{r['max_abs_diff']:8.1e} {r['path']}")
    print(f"load average: {open('/proc/loadavg').read().split()[0] if sys.platform.startswith('linux') else 'n/a'}")


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
    ap.add_argument("--keras-steps", type=int, default=100_000,
                    help="steps of the issue-16 keras protocol (0: skip that section)")
    ap.add_argument("--keras-rounds", type=int, default=3)
    ap.add_argument("--tf-python", default=None, help="a Python interpreter with tensorflow and tf_keras (the peer)")
    ap.add_argument("--skip-table", action="store_true", help="only the issue-16 keras protocol")
    ap.add_argument("--memory-steps", type=int, default=2000,
                    help="steps of the memory-unit comparison (compiled vs Python loop; 0: skip it)")
    ap.add_argument("--memory-cells", default="mrnn,mlstm,mrnnf,mlstmf,rnn2,rwa")
    ap.add_argument("--memory-rounds", type=int, default=3)
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    from rnnmem.devices import thread_report

    print("threads:", thread_report())
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
    for cell in ([] if args.skip_table else args.cells.split(",")):
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
    keras = []
    if args.keras_steps > 0 and device.type == "cpu":
        keras = bench_keras(args.keras_steps, args.keras_rounds, torch.get_num_threads(), args.tf_python)
        print_keras(keras, args.keras_steps, torch.get_num_threads())
    memory = []
    if args.memory_steps > 0 and device.type == "cpu":
        memory = bench_memory(args.memory_cells.split(","), args.memory_steps, args.memory_rounds)
        print_memory(memory, args.memory_steps, torch.get_num_threads())
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"config": config, "results": results, "keras_protocol": keras, "memory_units": memory}, fh,
                      indent=2)
    if failed:
        print(f"FAIL: fused path slower than {LIMIT}x torch.nn for: {', '.join(failed)}")
        return 1
    print(f"OK: fused path within {LIMIT}x of torch.nn everywhere")
    return 0


if __name__ == "__main__":
    sys.exit(main())
