"""Benchmark: rnnmem's connectivity against the strongest baselines a user would write, side by side.

    python benchmarks/bench_connectivity.py [--T 200] [--threads 1,2] [--methods sweep] [--sample-steps 20]
                                            [--repeat 1] [--device cpu|cuda]

Model: the study's GRU autocomplete model at full size (``AutocompleteModel``: character
embedding 600, GRU 2 x 600 in the tf1 convention, dense layer to 16386 words), float32,
untrained (timing does not depend on the weights). Text: T characters of seeded random words.
Every method computes the same matrix raw[t, t~] = || W_emb (d z_{t~, k(t~)} / d e_t) ||^2 (the
gradient of the target logit at t~ with respect to the embedded input at t, carried to the one-hot
input), with the targets k(t~) rnnmem chose (the model's top-1), and is checked against
rnnmem's matrix (max |diff| / max |rnnmem|, and ``np.allclose(rtol=1e-3, atol=1e-6 max)``).

1. rnnmem: ``connectivity_matrix`` (``--methods``, default ``adjoint,sweep``; the first is the one
   compared: ``adjoint`` is what ``method="auto"`` picks for this model, the hand-derived batched
   reverse sweep of ``rnnmem.cells.adjoint``; ``sweep`` the autograd sweep over graph segments
   that other recurrent cores get; ``vmap``, ``replicate`` can be added).
2. Baselines, written as a competent PyTorch user would (parameters frozen, eval mode, the readout
   row of each target taken directly from the dense layer, no [T, V] logits formed):
   - ``prefix-row``: for each t~, a forward pass over the causal prefix [0, t~] only and one
     backward pass from the target's readout row ``W_out[k] . h_{t~}`` to the embeddings. Its
     cost grows with t~, so it is timed on ``--sample-steps`` output steps spread evenly over the
     sequence and scaled by T / (steps timed) (unbiased for a cost linear in t~; the output says so).
   - ``jacrev-rows``: ``torch.func.jacrev`` of the T target readout logits
     ``z_t~ = W_out[k(t~)] . h_t~ + b`` with respect to the embeddings ``e[T, 1, E]`` (one forward
     pass, a vmapped backward over the T cotangents).
   - ``batched-rows``: the same T target logits, one ``torch.autograd.grad(...,
     is_grads_batched=True)`` with the identity as the batch of cotangents.
   - ``naive``: ``connectivity_naive`` (a backward pass per t~ through the whole model and the
     16386-wide dense layer; cost independent of t~, timed on the sampled steps, scaled to T).
Everything runs at each thread count of ``--threads`` in this one process (``torch.set_num_threads``)
with the thread count and the load average printed. Each time is the best of ``--repeat`` runs;
wall and CPU (process) time are both printed: on a shared machine wall time also measures the
other processes. Ratios are baseline time / rnnmem time (> 1: rnnmem faster).
Goals (issue 16): rnnmem >= 5x faster than the best baseline at T = 200 (wall); >= 10x faster
than the naive loop (the earlier bar).

Arithmetic: the script also prints the multiply-adds each computation needs (``flops``) and the
rate each method reached (GFLOP/s = 2 x multiply-adds / wall). Every exact method here back-propagates
through the recurrence row by row: a row-step (one output step's adjoint through one time step)
costs ``sum over layers of G H (H + I)`` multiply-adds (G gates, I the input width; rnnmem's bottom
layer hands on ``C`` projected values instead of ``E``), rnnmem takes ``T (T + 1) / 2`` row-steps
(pairs t <= t~ only), the batched baselines ``T^2``. The ratio of the two counts is what the
arithmetic alone allows; what exceeds it would have to come from a higher GFLOP/s.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np
import torch

from rnnmem.probes.connectivity import connectivity_matrix, connectivity_naive
from rnnmem.train.autocomplete import AutocompleteModel

GOAL_BASELINE = 5.0
GOAL_NAIVE = 10.0


def random_text(T: int, seed: int = 0) -> str:
    rng = np.random.default_rng(seed)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    out = ""
    while len(out) < T:
        out += " " + "".join(rng.choice(letters, size=int(rng.integers(1, 9))))
    return out[:T]


# ----------------------------------------------------------------------------------- baselines
class Baselines:
    """The hand-written baselines on one model and text; each returns raw[t, t~] (numpy, float64)
    for the output steps it computed (NaN elsewhere)."""

    def __init__(self, model: AutocompleteModel, text: str, targets: np.ndarray):
        self.model = model.eval()
        for p in model.parameters():
            p.requires_grad_(False)
        dev = model.device
        ids = model.encode_text(text)
        with torch.no_grad():
            self.e = model.embed(ids[:, None])                                    # [T, 1, E]
            self.W = model.embed(torch.arange(len(model.chars), device=dev)[:, None])[:, 0]  # [C, E]
        k = torch.as_tensor(targets, device=dev).long()
        self.w_rows = model.dense.weight[k]                                       # [T, H]
        self.b_rows = model.dense.bias[k]                                         # [T]
        self.T = self.e.shape[0]

    def _norms(self, g: torch.Tensor) -> torch.Tensor:
        """|| W_emb g ||^2 over the last axis (g [..., E] -> [...])."""
        return ((g @ self.W.T) ** 2).sum(-1)

    def _target_logits(self, e: torch.Tensor) -> torch.Tensor:
        h = self.model.rnn(e)[0][:, 0]                                            # [T, H]
        return (h * self.w_rows[: e.shape[0]]).sum(-1) + self.b_rows[: e.shape[0]]

    def prefix_row(self, steps) -> np.ndarray:
        raw = np.full((self.T, self.T), np.nan)
        for t in steps:
            e = self.e[: t + 1].clone().requires_grad_(True)
            h = self.model.rnn(e)[0][-1, 0]                                       # h_{t~} [H]
            z = h @ self.w_rows[t] + self.b_rows[t]
            (g,) = torch.autograd.grad(z, e)
            raw[: t + 1, t] = self._norms(g[:, 0]).double().cpu().numpy()
            raw[t + 1:, t] = 0.0
        return raw

    def jacrev_rows(self) -> np.ndarray:
        J = torch.func.jacrev(lambda e: self._target_logits(e))(self.e)           # [T~, T, 1, E]
        return self._norms(J[:, :, 0]).T.double().cpu().numpy()

    def batched_rows(self) -> np.ndarray:
        e = self.e.clone().requires_grad_(True)
        z = self._target_logits(e)
        eye = torch.eye(self.T, dtype=z.dtype, device=z.device)
        (g,) = torch.autograd.grad(z, e, grad_outputs=eye, is_grads_batched=True)  # [T~, T, 1, E]
        return self._norms(g[:, :, 0]).T.double().cpu().numpy()


def flops(model: AutocompleteModel, T: int) -> dict:
    """Multiply-adds of the reverse sweeps (module docstring): ``adjoint`` (pairs t <= t~, projected
    bottom layer) and ``batched`` (all T^2 pairs, gradient at the embedding, then projected)."""
    rnn = model.rnn
    G, H, L = rnn.gates, rnn.hidden_size, rnn.num_layers
    E, C = rnn.input_size, len(model.chars)
    widths = [E] + [H] * (L - 1)
    per_adj = sum(G * H * (H + (C if i == 0 else w)) for i, w in enumerate(widths))
    per_batched = sum(G * H * (H + w) for w in widths)
    return {"adjoint": per_adj * T * (T + 1) / 2, "batched": per_batched * T * T + T * T * E * C}


def timed(repeat: int, fn, device: torch.device):
    """Best (smallest) wall and CPU time of ``repeat`` calls, and the last result."""
    walls, cpus = [], []
    for _ in range(repeat):
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        w, c = time.perf_counter(), time.process_time()
        out = fn()
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        walls.append(time.perf_counter() - w)
        cpus.append(time.process_time() - c)
    return out, min(walls), min(cpus)


def compare(raw: np.ndarray, ref: np.ndarray, cols) -> tuple[float, bool]:
    a, b = raw[:, cols], ref[:, cols]
    scale = np.abs(b).max()
    return float(np.abs(a - b).max() / scale), bool(np.allclose(a, b, rtol=1e-3, atol=1e-6 * scale))


def run_threads(n: int, model, text: str, args, device) -> dict:
    if device.type == "cpu":
        torch.set_num_threads(n)
    load = os.getloadavg() if hasattr(os, "getloadavg") else (float("nan"),) * 3
    print(f"\n== {torch.get_num_threads()} torch thread(s); load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"(other processes on this machine count)")
    T = len(text)
    model_dev = model.to(device)
    connectivity_matrix(model_dev, text[:8], chunk=4)  # warm-up (one-off allocation and dispatch costs)
    rows = []
    ref = None
    for method in [m.strip() for m in args.methods.split(",") if m.strip()]:
        res, wall, cpu = timed(args.repeat, lambda: connectivity_matrix(model_dev, text, chunk=args.chunk,
                                                                       method=method), device)
        if ref is None:
            ref, targets = res.raw, res.targets
        err, close = compare(res.raw, ref, slice(None))
        rows.append((f"rnnmem {method}", wall, cpu, err, close, "all T"))
    warm = Baselines(model_dev, text[:8], targets[:8])  # warm-up of each baseline (vmap set-up included)
    warm.prefix_row([3, 7]), warm.jacrev_rows(), warm.batched_rows()
    base = Baselines(model_dev, text, targets)
    steps = np.unique(np.linspace(0, T - 1, min(args.sample_steps, T)).round().astype(int))
    scale = T / len(steps)
    raw, wall, cpu = timed(args.repeat, lambda: base.prefix_row(steps), device)
    rows.append(("prefix-row", wall * scale, cpu * scale, *compare(raw, ref, steps),
                 f"{len(steps)} of {T} t~ x {scale:.1f}"))
    raw, wall, cpu = timed(args.repeat, base.jacrev_rows, device)
    rows.append(("jacrev-rows", wall, cpu, *compare(raw, ref, slice(None)), "all T"))
    raw, wall, cpu = timed(args.repeat, base.batched_rows, device)
    rows.append(("batched-rows", wall, cpu, *compare(raw, ref, slice(None)), "all T"))
    for p in model_dev.parameters():  # the naive reference manages its own gradients
        p.requires_grad_(True)
    naive, wall, cpu = timed(args.repeat, lambda: connectivity_naive(model_dev, text, targets=targets, t_out=steps),
                             device)
    rows.append(("naive", wall * scale, cpu * scale, *compare(naive.raw, ref, steps),
                 f"{len(steps)} of {T} t~ x {scale:.1f}"))

    r_wall, r_cpu = rows[0][1], rows[0][2]
    work = flops(model, T)
    macs = {"rnnmem adjoint": work["adjoint"], "jacrev-rows": work["batched"], "batched-rows": work["batched"]}
    print(f"{'method':<16}{'wall s':>9}{'CPU s':>9}{'wall ratio':>12}{'CPU ratio':>11}{'max rel diff':>14}"
          f"{'allclose':>10}{'GFLOP/s':>9}  timed on")
    for name, wall, cpu, err, close, how in rows:
        rate = f"{2 * macs[name] / wall / 1e9:>9.1f}" if name in macs else f"{'-':>9}"
        print(f"{name:<16}{wall:>9.2f}{cpu:>9.2f}{wall / r_wall:>11.2f}x{cpu / r_cpu:>10.2f}x{err:>14.1e}"
              f"{'yes' if close else 'NO':>10}{rate}  {how}")
    print(f"multiply-adds: rnnmem adjoint {work['adjoint'] / 1e9:.1f} G (T(T+1)/2 row-steps), batched baselines "
          f"{work['batched'] / 1e9:.1f} G (T^2 row-steps): the arithmetic alone allows "
          f"{work['batched'] / work['adjoint']:.2f}x at equal GFLOP/s")
    baselines = [r for r in rows if r[0] in ("prefix-row", "jacrev-rows", "batched-rows")]
    best = min(baselines, key=lambda r: r[1])
    naive_row = rows[-1]
    out = {"threads": torch.get_num_threads(), "best": best[0], "vs_best_wall": best[1] / r_wall,
           "vs_best_cpu": best[2] / r_cpu, "vs_naive_wall": naive_row[1] / r_wall,
           "all_close": all(r[4] for r in rows), "arith": work["batched"] / work["adjoint"]}
    print(f"rnnmem ({rows[0][0]}) vs the best baseline ({best[0]}): {out['vs_best_wall']:.2f}x wall, "
          f"{out['vs_best_cpu']:.2f}x CPU (goal >= {GOAL_BASELINE:.0f}x wall: "
          f"{'MET' if out['vs_best_wall'] >= GOAL_BASELINE else 'NOT MET'}); vs naive {out['vs_naive_wall']:.1f}x wall "
          f"(bar >= {GOAL_NAIVE:.0f}x: {'MET' if out['vs_naive_wall'] >= GOAL_NAIVE else 'NOT MET'})")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--T", type=int, default=200)
    ap.add_argument("--chunk", type=int, default=None,
                    help="output steps per pass (vmap, replicate; default 32) / segment length (sweep; default 16)")
    ap.add_argument("--sample-steps", "--naive-steps", type=int, default=20,
                    help="output steps timed for the prefix-row and naive loops (scaled to T)")
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts, each run in turn")
    ap.add_argument("--hidden", type=int, default=600)
    ap.add_argument("--methods", default="adjoint,sweep", help="rnnmem methods (the first is the reference)")
    ap.add_argument("--repeat", type=int, default=1, help="runs per measurement; the best is kept")
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()
    from rnnmem.devices import resolve_device, thread_report

    device = resolve_device(args.device)
    threads = [int(t) for t in args.threads.split(",") if t.strip()]
    model = AutocompleteModel(cell="gru", hidden=args.hidden, layers=2, embedding=args.hidden, convention="tf1",
                              seed=0)
    text = random_text(args.T)
    print("threads:", thread_report())
    print(f"model: gru 2x{args.hidden} tf1, embedding {args.hidden}, {model.n_words} words, float32, {device}; "
          f"T = {args.T} characters, chunk = {args.chunk or 'default'}, best of {args.repeat} run(s)")
    results = [run_threads(n, model, text, args, device) for n in (threads if device.type == "cpu" else [0])]
    print("\nsummary (wall ratios; > 1 means rnnmem is faster):")
    for r in results:
        print(f"  {r['threads']} thread(s): vs best baseline ({r['best']}) {r['vs_best_wall']:.2f}x wall / "
              f"{r['vs_best_cpu']:.2f}x CPU (arithmetic bound {r['arith']:.2f}x at equal GFLOP/s), vs naive "
              f"{r['vs_naive_wall']:.1f}x; all matrices allclose: "
              f"{'yes' if r['all_close'] else 'NO'}")


if __name__ == "__main__":
    main()
