"""Ablation: which training protocol reproduces the mean AND the spread of Zhao et al.'s Table 2 (issue 14).

rnnmem's default protocol differs from the published code (huawei-noah/noah-research,
mRNN-mLSTM/time_series_prediction/train.py) in two places, and a third candidate (initialisation)
is checked as a sensitivity:

| protocol     | scaler | kept model at the best validation epoch | init  |
|--------------|--------|-----------------------------------------|-------|
| rnnmem       | train  | before the update (measured parameters)  | torch |
| scaler-full  | full   | before                                   | torch |
| keep-after   | train  | after the update (published code)        | torch |
| paper        | full   | after                                    | torch |
| keras-init   | train  | before                                   | keras |

(``torch``: PyTorch's default U(-1/sqrt(fan_in), 1/sqrt(fan_in)), what the published code gets from
nn.RNN / nn.LSTMCell / nn.Linear; ``keras``: glorot-uniform / orthogonal kernels, zero biases.)

Each (series, model, protocol) trains ``--seeds`` seeds as one batched computation
(``rnnmem.train.timeseries.train_series``) and stores its per-seed table as a CSV in ``--out``
(rerunning skips what is there). ``--summary`` prints, per cell, our mean/std/n, the paper's
mean/std (n = 100), Welch's t-test of the means (``rnnmem.studies.zhao.paper_tests``, Holm over
the cells of one dataset x protocol), a percentile-bootstrap 95% interval of our std (2,000
resamples) and an F-test of the variances (two-sided, our s^2 / paper s^2 with (n - 1, 99) degrees
of freedom; it assumes normal errors, which skewed RMSE distributions are not: read it with the
bootstrap interval).

A series can carry another split as ``NAME@TRAIN/VAL/TEST`` (e.g. ``traffic@1400/200/259``).

Run (what issue 14's numbers in docs/long_memory.md came from; ``nice`` because it is long: about
25 CPU minutes on this 2-core machine, more than an hour of wall time beside other work)::

    nice -n 10 python benchmarks/zhao_protocol_ablation.py --datasets tree7,arfima \
        --models rnn,mrnnf,lstm --protocols rnnmem,paper --seeds 50
    nice -n 10 python benchmarks/zhao_protocol_ablation.py --datasets traffic,traffic@1400/200/259 \
        --models rnn,lstm,mrnnf --protocols rnnmem,paper --seeds 50 --jobs 1
    nice -n 10 python benchmarks/zhao_protocol_ablation.py --datasets tree7 --models mrnn \
        --protocols rnnmem --seeds 20 --jobs 1
    python benchmarks/zhao_protocol_ablation.py --summary

Results go to ``reports/zhao_protocol_ablation/`` (git-ignored), one CSV per (series, model,
protocol). When the training block holds the series' minimum and maximum (tree7, traffic, DJI)
the two scaler fits are identical, so a ``full``-scaler protocol is not recomputed: its twin's
runs (same protocol with ``scaler=train``) are copied under its name.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "zhao2020"
DEFAULT_OUT = REPO / "reports" / "zhao_protocol_ablation"   # git-ignored

PROTOCOLS = {
    "rnnmem": {"scaler": "train", "keep": "before", "init": "torch"},
    "scaler-full": {"scaler": "full", "keep": "before", "init": "torch"},
    "keep-after": {"scaler": "train", "keep": "after", "init": "torch"},
    "paper": {"scaler": "full", "keep": "after", "init": "torch"},
    "keras-init": {"scaler": "train", "keep": "before", "init": "keras"},
}


def _split(name: str, data_dir: Path):
    from rnnmem.tasks.series import ZHAO_SPLITS, load_series, split_series

    base, _, sizes = name.partition("@")
    x = load_series(data_dir / f"{base}.csv")
    if sizes:
        tr, va, te = (int(v) for v in sizes.split("/"))
    else:
        sp = ZHAO_SPLITS[base]
        tr, va, te = sp.train, sp.val, sp.test
    return base, split_series(x, tr, va, te), ZHAO_SPLITS[base].report_scale


def _job(args) -> str:
    name, model, protocol, seeds, data_dir, out = args
    import torch

    torch.set_num_threads(1)
    from rnnmem.train.timeseries import train_series

    path = Path(out) / f"{name.replace('/', '-')}__{model}__{protocol}.csv"
    if path.is_file():
        return f"{path.name}: stored"
    base, split, scale = _split(name, Path(data_dir))
    t0, c0 = time.perf_counter(), time.process_time()
    res = train_series(model, split, range(seeds), **PROTOCOLS[protocol])
    tab = res.table.copy()
    for c in ("train_rmse", "val_rmse", "test_rmse", "train_mae", "val_mae", "test_mae"):
        tab[c] = tab[c] * scale
    tab.insert(0, "protocol", protocol)
    tab.insert(0, "dataset", name)
    tab["wall_s"] = time.perf_counter() - t0
    tab["cpu_s"] = time.process_time() - c0
    tmp = path.with_suffix(".tmp")
    tab.to_csv(tmp, index=False)
    tmp.replace(path)
    return f"{path.name}: {seeds} seeds in {tab['wall_s'].iloc[0]:.0f} s wall, {tab['cpu_s'].iloc[0]:.0f} s CPU"


def summarize(out: Path, alpha: float = 0.05):
    import numpy as np
    import pandas as pd
    from scipy import stats

    from rnnmem.studies.zhao import LABELS, ZHAO2020_TABLE2, paper_tests

    files = sorted(Path(out).glob("*.csv"))
    if not files:
        raise SystemExit(f"no results in {out}")
    runs = pd.concat([pd.read_csv(f) for f in files], ignore_index=True)
    rows = []
    for (ds, protocol), g in runs.groupby(["dataset", "protocol"], sort=False):
        base = ds.partition("@")[0]
        t = paper_tests(g.assign(dataset=base), alpha=alpha, correction="holm")
        for r in t.itertuples():
            ours = g.loc[g["model"] == next(m for m, lab in LABELS.items() if lab == r.model), "test_rmse"].dropna()
            p_std = ZHAO2020_TABLE2.get((r.model, base), (np.nan, np.nan))[1]
            f = float(ours.var(ddof=1) / p_std ** 2) if len(ours) > 1 else np.nan
            dfn = len(ours) - 1
            p_var = float(2 * min(stats.f.cdf(f, dfn, 99), stats.f.sf(f, dfn, 99))) if np.isfinite(f) else np.nan
            boot = np.random.default_rng(0).choice(ours.to_numpy(), size=(2000, len(ours))).std(axis=1, ddof=1)
            lo, hi = np.percentile(boot, [2.5, 97.5])
            rows.append({"dataset": ds, "protocol": protocol, "model": r.model, "n": r.n, "mean": r.mean,
                         "std": r.std, "std_ci95": f"[{lo:.3g}, {hi:.3g}]", "paper_mean": r.paper_mean,
                         "paper_std": r.paper_std, "t": r.t, "p_mean": r.p, "p_mean_holm": r.p_adj,
                         "verdict_mean": r.verdict, "std_ratio": r.std / r.paper_std if r.paper_std else np.nan,
                         "p_var": p_var})
    tab = pd.DataFrame(rows)
    order = {p: i for i, p in enumerate(PROTOCOLS)}
    tab = tab.sort_values(["dataset", "model", "protocol"], key=lambda c: c.map(order) if c.name == "protocol" else c)
    return tab


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--datasets", default="tree7,arfima")
    ap.add_argument("--models", default="rnn,lstm,mrnnf,mrnn")
    ap.add_argument("--protocols", default=",".join(PROTOCOLS))
    ap.add_argument("--seeds", type=int, default=20)
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--jobs", type=int, default=min(2, os.cpu_count() or 1))
    ap.add_argument("--summary", action="store_true", help="print the table of what is stored and exit")
    a = ap.parse_args(argv)
    if a.summary:
        import pandas as pd

        with pd.option_context("display.width", 200, "display.max_rows", 500, "display.max_columns", 30):
            print(summarize(a.out).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
        return 0
    if a.seeds < 2:
        ap.error("--seeds must be >= 2")
    unknown = set(a.protocols.split(",")) - set(PROTOCOLS)
    if unknown:
        ap.error(f"unknown protocols {sorted(unknown)}; choose from {', '.join(PROTOCOLS)}")
    a.out.mkdir(parents=True, exist_ok=True)
    jobs, copies = [], []
    for d in a.datasets.split(","):
        same = _same_scalers(d, a.data_dir)
        for m in a.models.split(","):
            for p in a.protocols.split(","):
                twin = _twin(p) if same else None
                if twin is not None:        # identical computation: copy the twin's runs afterwards
                    copies.append((d, m, p, twin))
                    if twin not in a.protocols.split(","):
                        jobs.append((d, m, twin, a.seeds, str(a.data_dir), str(a.out)))
                else:
                    jobs.append((d, m, p, a.seeds, str(a.data_dir), str(a.out)))
    with ProcessPoolExecutor(max_workers=a.jobs) as ex:
        for msg in ex.map(_job, jobs):
            print(msg, flush=True)
    import pandas as pd

    for d, m, p, twin in copies:
        src = a.out / f"{d.replace('/', '-')}__{m}__{twin}.csv"
        dst = a.out / f"{d.replace('/', '-')}__{m}__{p}.csv"
        if not dst.is_file():
            pd.read_csv(src).assign(protocol=p).to_csv(dst, index=False)
            print(f"{dst.name}: same scaler fit as {twin} on {d} (the training block holds the series' min and "
                  f"max), runs copied", flush=True)
    return 0


def _same_scalers(name: str, data_dir: Path) -> bool:
    from rnnmem.tasks.series import fit_scaler

    _, split, _ = _split(name, Path(data_dir))
    a, b = fit_scaler(split, "train"), fit_scaler(split, "full")
    return a.lo == b.lo and a.hi == b.hi


def _twin(protocol: str) -> str | None:
    """The protocol that differs from ``protocol`` only by fitting the scaler on the training block."""
    cfg = dict(PROTOCOLS[protocol], scaler="train")
    if PROTOCOLS[protocol]["scaler"] == "train":
        return None
    return next(p for p, c in PROTOCOLS.items() if c == cfg)


if __name__ == "__main__":
    sys.exit(main())
