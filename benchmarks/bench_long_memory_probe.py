"""Benchmark: the Definition-3 long-memory probe (K = 2000 lags) and the ARFIMA statistics.

Printed side by side, in one run:
- ``long_memory_probe`` wall time for small models at K = max_lag = 2000, 64 sampled output
  times, trajectory 2300 steps, float64: batched copies (the default) and vmap over vjp;
- the naive alternative with the same information: one forward pass, then one backward pass per
  (output time, output component) with ``retain_graph``; measured on ``--naive-probe`` pairs and
  extrapolated linearly to all of them (stated in the output);
- ARFIMA simulation by FFT vs the direct O(n^2) MA(infinity) sum (n = 20,000), and the time of GPH
  plus local Whittle on that series.

Run: ``python benchmarks/bench_long_memory_probe.py [--threads 1] [--lags 2000]``
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from rnnmem import cells
from rnnmem.fractional import frac_weights
from rnnmem.probes.long_memory import FractionalFilter, LinearRecurrence, long_memory_probe
from rnnmem.tasks.arfima import gph, local_whittle, simulate_arfima


def timed(fn):
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def naive_seconds(model, x, times, n_out, n_probe):
    """One forward, then one backward per (t, o) pair; time n_probe pairs and extrapolate."""
    m = model.double() if isinstance(model, torch.nn.Module) else model
    xt = torch.as_tensor(x, dtype=torch.float64)[:, None, None].clone().requires_grad_(True)
    pairs = [(t, o) for t in times for o in range(n_out)]
    t0 = time.perf_counter()
    out = m(xt)
    y = out[0] if isinstance(out, tuple) else out
    fwd = time.perf_counter() - t0
    t0 = time.perf_counter()
    for t, o in pairs[:n_probe]:
        torch.autograd.grad(y[t, 0, o], xt, retain_graph=True)
    per = (time.perf_counter() - t0) / min(n_probe, len(pairs))
    return fwd + per * len(pairs)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1, help="torch threads (default 1: shared CPU)")
    ap.add_argument("--lags", type=int, default=2000)
    ap.add_argument("--samples", type=int, default=64)
    ap.add_argument("--naive-probe", type=int, default=16)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    from rnnmem.devices import thread_report

    print("threads:", thread_report())
    K, S = args.lags, args.samples
    x = np.random.default_rng(0).standard_normal(K + 300)
    models = {
        "linear RNN a=0.9 (O=1)": (lambda: LinearRecurrence(0.9), {}),
        "fractional filter d=0.3 (O=1)": (lambda: FractionalFilter(0.3, K), {}),
        "LSTM H=16, output=sum": (lambda: cells.build("lstm", 1, 16, seed=0), {"output": "sum"}),
        "LSTM H=16, output=norm (16 outputs)": (lambda: cells.build("lstm", 1, 16, seed=0), {}),
        "LSTM H=16 keras (step loop), sum": (lambda: cells.build("lstm", 1, 16, seed=0, convention="keras"),
                                             {"output": "sum"}),
    }
    print(f"long_memory_probe: K={K} lags, {S} output times, trajectory {len(x)} steps, float64, "
          f"{args.threads} thread(s)")
    print(f"{'model':40s} {'copies s':>9s} {'vmap s':>9s} {'naive s*':>9s} {'naive/copies':>12s}  verdict")
    for name, (make, kw) in models.items():
        tc, (frame, verdict) = timed(lambda: long_memory_probe(make(), x, max_lag=K, n_samples=S, **kw))
        tv, _ = timed(lambda: long_memory_probe(make(), x, max_lag=K, n_samples=S, method="vmap", **kw))
        n_out = 16 if "norm" in name else 1
        model = make()
        if "sum" in name:
            inner = model

            class Summed(torch.nn.Module):
                def __init__(self):
                    super().__init__()
                    self.inner = inner

                def forward(self, z):
                    return self.inner(z)[0].sum(-1, keepdim=True)

            model = Summed()
        tn = naive_seconds(model, x, verdict["config"]["sampled_times"], n_out, args.naive_probe)
        print(f"{name:40s} {tc:9.2f} {tv:9.2f} {tn:9.2f} {tn / tc:12.1f}  {verdict['verdict']}")
    print(f"* naive: one backward per (output time, component), {args.naive_probe} timed, extrapolated")

    n = 20_000
    t_fft, xs = timed(lambda: simulate_arfima(n, 0.3, seed=0, burn_in=0, method="truncated"))
    t_exact, _ = timed(lambda: simulate_arfima(n, 0.3, seed=0))
    psi = frac_weights(torch.tensor(-0.3, dtype=torch.float64), n - 1, include_zero=True).numpy()
    eps = np.random.default_rng(0).standard_normal(n)
    t_dir, xd = timed(lambda: np.array([psi[: t + 1] @ eps[t::-1] for t in range(n)]))
    assert np.allclose(xs, xd, atol=1e-8)
    t_est, _ = timed(lambda: (gph(xs), local_whittle(xs)))
    print(f"\nARFIMA(0, 0.3, 0), n={n}: FFT {t_fft * 1e3:.1f} ms vs direct O(n^2) sum {t_dir * 1e3:.0f} ms "
          f"(x{t_dir / t_fft:.0f}); exact (circulant embedding) {t_exact * 1e3:.1f} ms; "
          f"GPH + local Whittle {t_est * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
