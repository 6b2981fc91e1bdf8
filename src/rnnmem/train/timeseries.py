"""One-step-ahead training on a univariate series, S seeds as one batched computation.

Protocol of Zhao et al. (ICML 2020, Section 5.1 and their code release): inputs x_t, targets
x_{t+1}, MinMax-scaled (``rnnmem.tasks.series``); each epoch is one full-sequence BPTT step with
batch 1 over the training block (Adam, lr 0.01), then a forward pass over the validation block that
continues from the training block's final state. Early stopping watches the *training* loss
(stop after ``patience`` = 100 epochs without an improvement larger than ``min_delta`` = 1e-5; at
most 1,000 epochs) and the model kept is the one with the best *validation* loss. The kept model
is evaluated by running train -> validation -> test, each block continuing from the previous
block's final state; RMSE and MAE are computed on the original scale.

Seeds: every weight of ``SeriesModel`` carries a leading seed dimension, the loss is the *sum*
of the per-seed mean squared errors (so each seed's gradient is exactly its own), Adam is
elementwise (so one Adam over the stacked parameters is S independent Adams), and early stopping,
best-model copies and divergence are tracked per seed: a seed that stops is frozen (its update is
masked out) and keeps its best copy. Training seed s inside a batch gives the numbers of training
it alone (tests/test_train_timeseries.py, to 1e-5).

rnnmem's choices where the paper's code differs (documented in docs/long_memory.md):
- the kept model is the one whose validation loss was measured (the parameters *before* the
  epoch's update); the published code copies the model after ``optimizer.step()``, i.e. one
  update later than the validation loss it compares (``keep="after"`` does that);
- a seed whose loss becomes NaN/inf is frozen and reported with status ``diverged``.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..cells import build, resolve_dtype
from ..errors import ConfigError, InputError
from ..devices import resolve_device
from ..cells.init import glorot_uniform
from .seed_batch import seed_params
from .fastseq import fast_forward
from .fit import EarlyStop, fit_seeds
from .fit import TrainResult as FitResult

# model name -> (cell, readout); "identity": the unit's own output (size 1) is the prediction
MODELS: dict[str, tuple[str, str]] = {
    "rnn": ("rnn", "linear"),
    "lstm": ("lstm", "linear"),
    "mrnnf": ("mrnnf", "identity"),
    "mrnn": ("mrnn", "identity"),
    "mlstmf": ("mlstmf", "linear"),
    "mlstm": ("mlstm", "linear"),
    "rnn2": ("rnn2", "identity"),
    "rwa": ("rwa", "linear"),
}
FILTER_MODELS = ("mrnnf", "mrnn", "mlstmf", "mlstm", "rnn2")   # models with a filter length K
STATUSES = ("early_stopped", "max_epochs", "diverged")
#: initialisations: ``torch`` (PyTorch's defaults, U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every
#: weight and bias: what the published code gets from nn.RNN/nn.LSTMCell/nn.Linear) or ``keras``
#: (glorot-uniform input kernels, orthogonal recurrent kernels, zero biases; an ablation only)
INITS = ("torch", "keras")
#: which parameters are kept at the best validation epoch: ``before`` the epoch's Adam update (the
#: parameters whose validation loss was measured: rnnmem) or ``after`` it (the published code's
#: ``deepcopy(model)`` after ``optimizer.step()``)
KEEPS = ("before", "after")


def derive_seed(seed: int, purpose: int) -> int:
    """A seed for a second random stream of member ``seed`` (numpy SeedSequence; stable across
    runs and platforms).

    Parameters
    ----------
    seed : int
        The member's seed.
    purpose : int
        Stream tag (e.g. ``READOUT_STREAM``).

    Returns
    -------
    int
        ``SeedSequence([seed, purpose]).generate_state(1, uint32)[0]``, in [0, 2^32).
    """
    return int(np.random.SeedSequence([int(seed), int(purpose)]).generate_state(1, dtype=np.uint32)[0])


READOUT_STREAM = 0x5EAD


class SeriesModel(nn.Module):
    """A recurrent unit plus its readout for one-step-ahead prediction, S seeds at once.

    ``y_t = z_t`` (mrnnf, mrnn, rnn2: the unit's output of size 1, as in the paper) or
    ``y_t = h_t W_o + b_o`` (rnn, lstm, mlstmf, mlstm, rwa: PyTorch's nn.Linear(H, 1) init,
    U(-1/sqrt(H), 1/sqrt(H)), drawn from a stream derived from the member's seed). Input x
    [T, S, 1, 1] -> prediction [T, S, 1, 1]. Units use the ``torch`` convention (the paper's
    PyTorch code); ``init="keras"`` swaps in glorot-uniform / orthogonal kernels and zero biases
    (unit and readout), for the initialisation ablation of issue 14. ``fast=True`` runs
    ``rnnmem.train.fastseq`` kernels, else the unit's step loop.
    """

    def __init__(self, model: str, seeds: list[int], hidden: int = 1, K: int = 100, dtype="float32",
                 device=None, init: str = "torch"):
        super().__init__()
        if model not in MODELS:
            raise ConfigError(f"unknown model {model!r}; choose from {', '.join(MODELS)}")
        if init not in INITS:
            raise ConfigError(f"init must be one of {', '.join(INITS)}, got {init!r}")
        self.init = init
        if not seeds:
            raise ConfigError("seeds must not be empty")
        cell, readout = MODELS[model]
        self.model, self.readout = model, readout
        self.seeds = [int(s) for s in seeds]
        self.hidden, self.K = int(hidden), int(K)
        opts = {}
        if model in FILTER_MODELS:
            opts["K"] = self.K
        if readout == "identity":
            opts["output_size"] = 1
        if init != "torch":
            opts["init"] = init
        self.unit = build(cell, 1, self.hidden, convention="torch", dtype=dtype, seeds=self.seeds, device=device,
                          **opts)
        dt = resolve_dtype(dtype)
        if readout == "linear":
            bound = 1.0 / self.hidden ** 0.5
            Ws, bs = [], []
            for s in self.seeds:
                gen = torch.Generator().manual_seed(derive_seed(s, READOUT_STREAM))
                if init == "torch":
                    Ws.append((torch.rand(self.hidden, 1, generator=gen, dtype=dt) * 2 - 1) * bound)
                    bs.append((torch.rand(1, 1, generator=gen, dtype=dt) * 2 - 1) * bound)
                else:                                  # Keras Dense: glorot_uniform kernel, zero bias
                    Ws.append(glorot_uniform((self.hidden, 1), gen, dt))
                    bs.append(torch.zeros(1, 1, dtype=dt))
            self.W_o = nn.Parameter(torch.stack(Ws))      # [S, H, 1]
            self.b_o = nn.Parameter(torch.stack(bs))      # [S, 1, 1]
        if device is not None:
            self.to(device)

    @property
    def size(self) -> int:
        """Number of seeds S.

        Returns
        -------
        int
        """
        return len(self.seeds)

    def forward(self, x: torch.Tensor, state=None, fast: bool = True):
        """One-step-ahead predictions of every seed.

        Parameters
        ----------
        x : torch.Tensor
            Inputs [T, S, 1, 1] (the scaled x_t, repeated over seeds).
        state : tuple of torch.Tensor, optional
            The unit's state to continue from (None: zeros).
        fast : bool, default True
            Use the ``rnnmem.train.fastseq`` kernels (else the unit's step loop).

        Returns
        -------
        tuple
            ``(y, state)``: predictions [T, S, 1, 1] and the unit's final state.
        """
        y, state = fast_forward(self.unit, x, state) if fast else self.unit(x, state)
        if self.readout == "linear":
            y = torch.einsum("tebh,eho->tebo", y, self.W_o) + self.b_o
        return y, state

    def describe(self) -> dict:
        """The model name, readout and the unit's description.

        Returns
        -------
        dict
            ``model``, ``readout``, ``unit``.
        """
        return {"model": self.model, "readout": self.readout, "unit": self.unit.describe()}

    def learned_d(self) -> np.ndarray | None:
        """Per-seed mean of the fixed memory parameter d (mrnnf, mlstmf), else None.

        Returns
        -------
        numpy.ndarray or None
            float64 [S].
        """
        if self.model not in ("mrnnf", "mlstmf"):
            return None
        with torch.no_grad():
            d = self.unit.d_values(0)
            return d.reshape(self.size, -1).mean(1).cpu().double().numpy()


@dataclass
class TrainSettings:
    """The paper's optimisation settings (Adam lr 0.01, <= 1,000 epochs, patience 100 on the
    training loss with min delta 1e-5)."""

    lr: float = 0.01
    max_epochs: int = 1000
    patience: int = 100
    min_delta: float = 1e-5

    def __post_init__(self):
        if not (self.lr > 0):
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        for name in ("max_epochs", "patience"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if not (self.min_delta >= 0):
            raise ConfigError(f"min_delta must be >= 0, got {self.min_delta}")


@dataclass(kw_only=True)
class TrainResult(FitResult):
    """Result of :func:`train_series` (a :class:`rnnmem.train.fit.TrainResult`).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per seed: status, epochs, best epoch, best losses, RMSE / MAE per block (``.frame``).
    curves : dict
        ``{seed: {"train_loss": [epochs], "val_loss": [epochs]}}`` (scaled MSE per epoch).
    config : dict
        The full configuration.
    wall_s : float
        Seconds, model construction and final evaluation included.
    epochs : int
        Epochs run by the longest-running seed.
    predictions : dict
        ``{block: [T, S]}`` predictions on the original scale (with ``keep_predictions``).
    history, model
        From :func:`~rnnmem.train.fit.fit_seeds`: per-seed, per-epoch losses and the trained ensemble.
    """

    table: pd.DataFrame
    curves: dict[int, dict[str, np.ndarray]]
    config: dict
    wall_s: float
    epochs: int
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


def _tensor(a: np.ndarray, S: int, dtype, device) -> torch.Tensor:
    t = torch.as_tensor(np.asarray(a, dtype=np.float64), dtype=dtype, device=device)
    return t.view(-1, 1, 1, 1).expand(-1, S, 1, 1)


def train_series(model: str, split, seeds, *, scaler: str = "train", hidden: int = 1, K: int = 100,
                 dtype="float32", device="cpu", settings: TrainSettings | None = None,
                 progress: Callable[[int, int], None] | None = None, keep_predictions: bool = False,
                 fast: bool = True, keep: str = "before", init: str = "torch") -> TrainResult:
    """Train ``model`` on ``split`` (a ``rnnmem.tasks.series.SeriesSplit``) for every seed in
    ``seeds`` at once; returns per-seed metrics on the original scale.

    ``progress(epoch, active_seeds)`` is called after every epoch. ``fast=False`` trains through
    the units' autograd step loop instead of the hand-written kernels (same numbers, slower).
    ``keep`` (``KEEPS``): at an epoch whose validation loss is the best so far, keep the parameters
    ``before`` that epoch's Adam update (those whose validation loss was measured; rnnmem's default)
    or ``after`` it (the published code). With ``after`` a seed also takes the update of the epoch
    at which it stops, as in the published loop (which breaks after ``optimizer.step()``).
    ``init`` (``INITS``): ``torch`` (the published code's PyTorch defaults) or ``keras``.
    The loop is :func:`rnnmem.train.fit.fit_seeds` (``EarlyStop(monitor="loss", patience,
    min_delta, restore="val_loss", keep)``, ``eval_at="before"``, ``nonfinite="freeze"``).

    Parameters
    ----------
    model : str
        A key of ``MODELS``.
    split : rnnmem.tasks.series.SeriesSplit
        Train / validation / test pairs.
    seeds : iterable of int
        Distinct seeds, trained as one batched ensemble.
    scaler, hidden, K, dtype, device, settings, fast, keep, init
        See above and :class:`SeriesModel` / :class:`TrainSettings`.
    progress : callable or None
        ``progress(epoch, active_seeds)`` after every epoch.
    keep_predictions : bool
        Store the per-block predictions in the result.

    Returns
    -------
    TrainResult
        ``table`` (one row per seed), ``curves``, ``config``, ``wall_s``, ``epochs``, ``history``, ``model``.

    Raises
    ------
    ConfigError
        On a bad ``keep``, ``init``, ``model``, scaler or repeated seeds.
    InputError
        If the split has no validation or test pair, or the scaler's values are constant.
    """
    from ..tasks.series import fit_scaler

    settings = settings or TrainSettings()
    if keep not in KEEPS:
        raise ConfigError(f"keep must be one of {', '.join(KEEPS)}, got {keep!r}")
    seeds = [int(s) for s in seeds]
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds must be distinct, got {seeds}")
    if len(split.val) < 1 or len(split.test) < 1:
        raise InputError("the split needs at least one validation and one test pair")
    device = resolve_device(device)
    dt = resolve_dtype(dtype)
    sc = fit_scaler(split, scaler)
    S = len(seeds)
    t0 = time.perf_counter()
    net = SeriesModel(model, seeds, hidden=hidden, K=K, dtype=dtype, device=device, init=init)
    blocks = {name: (_tensor(sc.transform(b.inputs), S, dt, device), _tensor(sc.transform(b.targets), S, dt, device))
              for name, b in split.blocks().items()}
    (x_tr, y_tr), (x_va, y_va) = blocks["train"], blocks["val"]
    seed_params(net, net.size)
    curve_train = np.full((settings.max_epochs, S), np.nan)
    curve_val = np.full((settings.max_epochs, S), np.nan)
    last_state: list = [None]   # the training pass's final state: the validation pass continues from it

    def loss_fn(net, batch):
        x, y = batch
        pred, state = net(x, fast=fast)
        last_state[0] = state
        return ((pred - y) ** 2).mean(dim=(0, 2, 3))              # [S] per-seed MSE (scaled)

    def evaluate(net):
        with torch.no_grad():
            pv, _ = net(x_va, tuple(s.detach() for s in last_state[0]), fast=fast)
            val = ((pv - y_va) ** 2).mean(dim=(0, 2, 3))
        return {"val_loss": val}

    def on_step(info):
        e = info.step - 1
        curve_train[e, info.trained] = info.loss[info.trained]
        curve_val[e, info.trained] = info.metrics["val_loss"][info.trained]
        if progress is not None:
            progress(info.step, int(info.active.sum()))

    # early stopping watches the training loss; the kept model is the one with the best validation
    # loss; a seed with a NaN/inf loss is frozen with its best parameters (so that its NaNs cannot
    # reach other seeds through kernels that multiply them by zero, e.g. the block-diagonal LSTM)
    fit = fit_seeds(net, [(x_tr, y_tr)], loss_fn, optimizer=lambda ps: torch.optim.Adam(ps, lr=settings.lr),
                    seeds=seeds, epochs=settings.max_epochs, evaluate=evaluate, eval_at="before", nonfinite="freeze",
                    early_stop=EarlyStop(monitor="loss", patience=settings.patience, min_delta=settings.min_delta,
                                         restore="val_loss", keep=keep),
                    on_step=on_step)
    ft = fit.table
    epochs_run = ft["steps"].to_numpy()
    best_epoch = ft["best_step"].to_numpy() - 1
    best_val = ft["best_val_loss"].to_numpy()
    best_train = ft["patience_loss"].to_numpy()
    status = np.array([{"completed": "max_epochs"}.get(v, v) for v in ft["status"]], dtype=object)
    epochs_total = int(epochs_run.max()) if S else 0
    never = best_epoch < 0
    status[never] = "diverged"
    with torch.no_grad():
        preds, state = {}, None
        for name in ("train", "val", "test"):
            x, _ = blocks[name]
            out, state = net(x, state, fast=fast)
            preds[name] = sc.inverse_transform(out[:, :, 0, 0].double().cpu().numpy())   # [T, S]
    rows = []
    d_learned = net.learned_d()
    for e, seed in enumerate(seeds):
        row = {"seed": seed, "model": model, "status": str(status[e]), "epochs": int(epochs_run[e]),
               "best_epoch": int(best_epoch[e]), "best_val_loss": float(best_val[e]),
               "best_train_loss": float(best_train[e])}
        for name, b in split.blocks().items():
            err = preds[name][:, e] - np.asarray(b.targets, dtype=np.float64)
            ok = not never[e] and np.all(np.isfinite(err))
            row[f"{name}_rmse"] = float(np.sqrt(np.mean(err ** 2))) if ok else float("nan")
            row[f"{name}_mae"] = float(np.mean(np.abs(err))) if ok else float("nan")
        if d_learned is not None:
            row["d"] = float(d_learned[e])
        rows.append(row)
    wall = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    curves = {seed: {"train_loss": curve_train[:epochs_run[e], e].copy(),
                     "val_loss": curve_val[:epochs_run[e], e].copy()} for e, seed in enumerate(seeds)}
    config = {
        "model": model, "cell": MODELS[model][0], "readout": MODELS[model][1], "hidden": int(hidden),
        "K": int(K) if model in FILTER_MODELS else None, "dtype": str(dt).replace("torch.", ""),
        "device": str(device), "scaler": sc.as_dict(), "settings": asdict(settings),
        "loss": "MSE on the MinMax-scaled series; sum over seeds of per-seed means",
        "metrics": "RMSE and MAE on the original scale, train -> val -> test continuing the state",
        "kept_model": ("parameters with the best validation loss (before that epoch's update)" if keep == "before"
                       else "parameters one Adam update after the best validation loss (the published code)"),
        "keep": keep, "init": init,
        "seeds": seeds, "kernels": "fastseq" if fast else "step loop", "unit": net.unit.describe(),
        "pairs": {k: len(b) for k, b in split.blocks().items()},
    }
    table.attrs["config"] = config
    result = TrainResult(table=table, curves=curves, config=config, wall_s=wall, epochs=epochs_total,
                         history=fit.history, model=net)
    if keep_predictions:
        result.predictions = preds
    return result


__all__ = ["MODELS", "FILTER_MODELS", "INITS", "KEEPS", "SeriesModel", "TrainSettings", "TrainResult", "train_series",
           "derive_seed"]
