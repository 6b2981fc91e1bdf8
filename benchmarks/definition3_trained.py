"""Definition-3 verdicts of trained models (issue 14's closing-note numbers).

Usage: python benchmarks/definition3_trained.py mrnnf|lstm EPOCHS [DATA_DIR]

Train MRNNF (K=100, hidden 1) and LSTM (hidden 1, linear readout) on tree7's training block
(scaler fitted on the training block, Adam lr 0.01, full-sequence BPTT, 300 epochs, float64,
seed 0), then run the Definition-3 probe on the scaled training series."""
import sys, time, json
from pathlib import Path
import numpy as np, torch
from torch import nn
torch.set_num_threads(1)
print('threads 1; load average', [round(v, 2) for v in __import__('os').getloadavg()])
from rnnmem import cells
from rnnmem.tasks.series import load_series, split_zhao, fit_scaler
from rnnmem.probes.long_memory import long_memory_probe

from rnnmem.train.timeseries import SeriesModel


class Net(nn.Module):
    """One seed of rnnmem's time-series model (SeriesModel: the paper's unit + readout, torch init)
    seen as a plain x[T, B, 1] -> y[T, B, 1] module."""
    def __init__(self, kind):
        super().__init__()
        self.inner = SeriesModel(kind, seeds=[0], hidden=1, K=100, dtype="float64")
    def forward(self, x):
        y, _ = self.inner(x.unsqueeze(1))          # [T, S=1, B, 1]
        return y[:, 0]

kind, epochs = sys.argv[1], int(sys.argv[2])
data_dir = Path(sys.argv[3]) if len(sys.argv) > 3 else Path(__file__).resolve().parents[2] / "shared" / "data" / "zhao2020"
if not (data_dir / "tree7.csv").is_file():
    sys.exit(f"tree7.csv not found in {data_dir}: pass the zhao2020 data folder as the third argument")
x = load_series(data_dir / "tree7.csv")
sp = split_zhao(x, "tree7")
sc = fit_scaler(sp, "train")
xin = torch.as_tensor(sc.transform(sp.train.inputs), dtype=torch.float64)[:, None, None]
yt = torch.as_tensor(sc.transform(sp.train.targets), dtype=torch.float64)[:, None, None]
torch.manual_seed(0)
net = Net(kind)
opt = torch.optim.Adam(net.parameters(), lr=0.01)
t0 = time.time()
losses = []
for ep in range(epochs):
    opt.zero_grad()
    loss = ((net(xin) - yt) ** 2).mean()
    loss.backward()
    opt.step()
    losses.append(loss.item())
print(kind, "train MSE first/last", losses[0], losses[-1], "epochs", epochs, "wall", round(time.time() - t0, 1), flush=True)
if kind == "mrnnf":
    print("learned d", float(net.inner.learned_d()[0]))
res = {}
for rng_name, kw in [("lags 1..400", dict(max_lag=400)), ("lags 1..400 fit 1..200", dict(max_lag=400, fit_range=(1, 200))), ("fit 1..99", dict(max_lag=400, fit_range=(1, 99)))]:
    t0 = time.time()
    frame, v = long_memory_probe(net, xin[:, 0, 0].numpy(), n_samples=64, seed=0, filter_length=100 if kind == "mrnnf" else None, **kw)
    keys = ["verdict", "alpha", "alpha_ci", "k_end", "tail", "extrapolation", "log_rmse_ratio", "via_bound",
            "alpha_within_filter", "alpha_within_filter_ci", "aic_exp", "aic_power", "reason"]
    out = {k: v.get(k) for k in keys}
    print(kind, rng_name, json.dumps(out, default=float), "probe s", round(time.time() - t0, 1), flush=True)
