"""Sequence classification with two stacked recurrent units, S seeds as one batched computation.

Model (Zhao et al., ICML 2020, Section 5.2 and their code release ``review_classification``)::

    y^(1) = U1(x)          U1 one of rnn, lstm, mrnnf, mlstmf (hidden H; mrnnf/mlstmf with filter K)
    y^(2) = LSTM(y^(1))    (hidden H)
    logits_b = y^(2)_{l_b, b} W_o + b_o,    p = softmax(logits)

``l_b`` is the index of review b's last real token (sequences are post-padded with zeros; the
computation is causal, so the padding after ``l_b`` never reaches the logits, and every batch is
run only up to ``max_b l_b``). Loss: cross-entropy, mean over the batch. Adam (lr 1e-3, L2 weight
decay 5e-4 added to the gradient as in ``torch.optim.Adam``), batches of 64 in a fixed order
(the published code does not shuffle), 100 epochs; after each epoch the validation cross-entropy
(mean over the validation examples) is measured and the parameters with the lowest one are kept
(no early stopping), as in the published code.

Seeds: every weight carries a leading seed dimension (``rnnmem.cells`` ensembles, evaluated with
the hand-written kernels of ``rnnmem.train.fastseq``); the loss is the *sum* of the per-seed
batch means, so each seed's gradient is exactly its own, and Adam is elementwise, so one Adam
over the stacked parameters is S independent Adams. Best-model copies are tracked per seed.
Training seed s inside a batch of seeds gives the numbers of training it alone (to float rounding;
tests/test_zhao_reviews_study.py).

Initialisation (the ``torch`` convention, i.e. PyTorch's defaults as in the published code):
layer 1 from seed s, layer 2 from ``derive_seed(s, LAYER2_STREAM)``, the read-out (nn.Linear's
U(-1/sqrt(H), 1/sqrt(H))) from ``derive_seed(s, READOUT_STREAM)``.

Where rnnmem differs from the published code (see docs/zhao_reviews.md): the units follow their
documented equations (the published RNN/LSTM/MRNNF/MLSTMF wrappers apply an extra ``tanh`` to the
second LSTM's hidden state and feed the squashed state back, and the published MLSTMF layer adds
a linear H -> H output map); rnnmem does neither.

Metrics per seed on each split: accuracy, macro precision / recall / F1 (macro over the labels
present in the targets or the predictions, 0 where a label is never predicted -- scikit-learn's
``average="macro"`` with its default zero-division result), and cross-entropy (mean negative
log-likelihood, natural log).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F  # noqa: N812
from torch import nn

from ..cells import build, resolve_dtype
from ..errors import ConfigError, InputError
from ..devices import resolve_device
from .seed_batch import seed_params
from .fastseq import fast_forward
from ..tasks.sequence_set import SequenceSet
from .fit import EarlyStop, fit_seeds
from .fit import TrainResult as FitResult
from .timeseries import derive_seed

#: first-layer cells of the paper (the second layer is always an LSTM)
FIRST_LAYERS = ("rnn", "lstm", "mrnnf", "mlstmf")
FILTER_CELLS = ("mrnnf", "mlstmf")
LAYER2_STREAM = 0x1A2
READOUT_STREAM = 0xC1A5
SPLITS = ("train", "val", "test")


# ============================================================================================
# data and settings
# ============================================================================================
@dataclass
class ClassifySettings:
    """Optimisation settings of the published review classifier (Adam lr 1e-3, weight decay
    5e-4, batch 64, 100 epochs, model kept at the best validation loss)."""

    lr: float = 1e-3
    weight_decay: float = 5e-4
    batch_size: int = 64
    epochs: int = 100

    def __post_init__(self):
        if not (self.lr > 0):
            raise ConfigError(f"learning rate must be > 0, got {self.lr}")
        if not (self.weight_decay >= 0):
            raise ConfigError(f"weight decay must be >= 0, got {self.weight_decay}")
        for name in ("batch_size", "epochs"):
            v = getattr(self, name)
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")


@dataclass(kw_only=True)
class ClassifyResult(FitResult):
    """Result of :func:`train_classifier` (a :class:`rnnmem.train.fit.TrainResult`).

    Parameters
    ----------
    table : pandas.DataFrame
        One row per seed: metrics per split, status, best epoch, best validation CE (``.frame``).
    curves : dict
        ``{seed: {"train_ce", "val_ce", "val_accuracy": [epochs]}}``.
    config : dict
        The full configuration.
    wall_s : float
        Seconds, model construction and final evaluation included.
    predictions : dict
        ``{split: [S, N]}`` predicted labels (with ``keep_predictions``).
    history, model
        From :func:`~rnnmem.train.fit.fit_seeds`: per-seed, per-batch losses (validation
        metrics at epoch ends) and the trained ensemble.
    """

    table: pd.DataFrame
    curves: dict[int, dict[str, np.ndarray]]
    config: dict
    wall_s: float
    predictions: dict[str, np.ndarray] = field(default_factory=dict)


# ============================================================================================
# the model
# ============================================================================================
class StackedClassifier(nn.Module):
    """``first`` cell, then an LSTM, then a linear read-out of the state at the last real step;
    S seeds at once (every parameter has a leading seed dimension). x [T, B, D] (shared by all
    seeds) -> logits [S, B, classes]."""

    def __init__(self, first: str, seeds: list[int], input_size: int, hidden: int = 128, classes: int = 5,
                 K: int = 50, dtype="float32", device=None):
        super().__init__()
        if first not in FIRST_LAYERS:
            raise ConfigError(f"unknown first layer {first!r}; choose one of {', '.join(FIRST_LAYERS)}")
        seeds = [int(s) for s in seeds]
        if not seeds:
            raise ConfigError("seeds must not be empty")
        if len(set(seeds)) != len(seeds):
            raise ConfigError(f"seeds must be distinct, got {seeds}")
        for name, v in (("input_size", input_size), ("hidden", hidden), ("classes", classes), ("K", K)):
            if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
                raise ConfigError(f"{name} must be a positive integer, got {v!r}")
        if classes < 2:
            raise ConfigError(f"classes must be >= 2, got {classes}")
        self.first_kind, self.seeds = first, seeds
        self.hidden, self.classes, self.K = int(hidden), int(classes), int(K)
        opts = {"K": self.K} if first in FILTER_CELLS else {}
        self.first = build(first, int(input_size), self.hidden, convention="torch", dtype=dtype, seeds=seeds,
                           device=device, **opts)
        width = getattr(self.first, "out_features", self.hidden)
        self.second = build("lstm", int(width), self.hidden, convention="torch", dtype=dtype,
                            seeds=[derive_seed(s, LAYER2_STREAM) for s in seeds], device=device)
        dt = resolve_dtype(dtype)
        bound = 1.0 / self.hidden ** 0.5
        Ws, bs = [], []
        for s in seeds:
            gen = torch.Generator().manual_seed(derive_seed(s, READOUT_STREAM))
            Ws.append((torch.rand(self.classes, self.hidden, generator=gen, dtype=dt) * 2 - 1) * bound)
            bs.append((torch.rand(self.classes, generator=gen, dtype=dt) * 2 - 1) * bound)
        self.W_o = nn.Parameter(torch.stack(Ws).transpose(1, 2).contiguous())   # [S, H, C]
        self.b_o = nn.Parameter(torch.stack(bs).unsqueeze(1))                   # [S, 1, C]
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

    def forward(self, x: torch.Tensor, last: torch.Tensor) -> torch.Tensor:
        """Logits of every seed from the state at each sequence's last real step.

        Only the steps up to ``max(last)`` are run (the computation is causal).

        Parameters
        ----------
        x : torch.Tensor
            Inputs [T, B, D], shared by all seeds.
        last : torch.Tensor
            int64 [B], index of each sequence's last real step.

        Returns
        -------
        torch.Tensor
            Logits [S, B, classes].
        """
        T_run = int(last.max()) + 1            # causal: later steps never reach the logits
        x = x[:T_run]
        xe = x.unsqueeze(1).expand(x.shape[0], self.size, x.shape[1], x.shape[2])
        y1, _ = fast_forward(self.first, xe)
        y2, _ = fast_forward(self.second, y1)                                    # [T, S, B, H]
        B = x.shape[1]
        h = y2[last, :, torch.arange(B, device=x.device)]                        # [B, S, H]
        return torch.einsum("bsh,shc->sbc", h, self.W_o) + self.b_o

    def describe(self) -> dict:
        """The two layers' descriptions and the read-out.

        Returns
        -------
        dict
            ``first``, ``second``, ``readout``.
        """
        return {"first": self.first.describe(), "second": self.second.describe(),
                "readout": f"linear {self.hidden} -> {self.classes} per seed"}

    def learned_d(self) -> np.ndarray | None:
        """Per-seed mean of the fixed memory parameter d of the first layer (mrnnf, mlstmf).

        Returns
        -------
        numpy.ndarray or None
            float64 [S]; None when the first layer has no d (rnn, lstm).
        """
        if self.first_kind not in FILTER_CELLS:
            return None
        with torch.no_grad():
            d = self.first.d_values(0)
            return d.reshape(self.size, -1).mean(1).cpu().double().numpy()


# ============================================================================================
# metrics
# ============================================================================================
def classification_metrics(y_true, y_pred) -> dict:
    """Accuracy and macro precision / recall / F1 over the labels present in ``y_true`` or
    ``y_pred`` (per-label P = TP / predicted, R = TP / true, F1 = 2PR / (P + R); 0 where the
    denominator is 0, as scikit-learn's default).

    Macro average: the unweighted mean over those labels (the definitions of scikit-learn's
    ``precision_recall_fscore_support(average="macro")``).

    Parameters
    ----------
    y_true : array-like of int
        True labels [N].
    y_pred : array-like of int
        Predicted labels [N].

    Returns
    -------
    dict
        ``accuracy``, ``precision``, ``recall``, ``f1`` (floats in [0, 1]).

    Raises
    ------
    InputError
        If the arrays are not equal-length, non-empty and 1-D.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    if y_true.shape != y_pred.shape or y_true.ndim != 1 or y_true.size == 0:
        raise InputError(f"y_true and y_pred must be equal-length 1-d arrays, got {y_true.shape} and {y_pred.shape}")
    labels = np.union1d(y_true, y_pred)
    P, R, F = [], [], []
    for c in labels:
        tp = float(np.sum((y_pred == c) & (y_true == c)))
        npred, ntrue = float(np.sum(y_pred == c)), float(np.sum(y_true == c))
        p = tp / npred if npred else 0.0
        r = tp / ntrue if ntrue else 0.0
        P.append(p)
        R.append(r)
        F.append(2 * p * r / (p + r) if p + r > 0 else 0.0)
    return {"accuracy": float(np.mean(y_true == y_pred)), "precision": float(np.mean(P)),
            "recall": float(np.mean(R)), "f1": float(np.mean(F))}


# ============================================================================================
# training
# ============================================================================================
def _tensors(data: SequenceSet, dt, device):
    return (torch.as_tensor(data.x, dtype=dt, device=device), torch.as_tensor(data.last, device=device),
            torch.as_tensor(data.labels, device=device))


def _batches(n: int, size: int):
    return [(b, min(n, b + size)) for b in range(0, n, size)]


def _per_seed_ce(logits: torch.Tensor, y: torch.Tensor, reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of logits [S, B, C] against y [B]: per-seed mean [S] (or per example [S, B])."""
    S, B, C = logits.shape
    ce = F.cross_entropy(logits.reshape(S * B, C), y.repeat(S), reduction="none").view(S, B)
    return ce.mean(1) if reduction == "mean" else ce


def _logits(net, x, last, batch_size) -> torch.Tensor:
    """Logits [S, N, C] of a whole split, in batches (no gradient)."""
    with torch.no_grad():
        return torch.cat([net(x[:, a:b], last[a:b]) for a, b in _batches(x.shape[1], batch_size)], 1)


def train_classifier(first: str, data: dict[str, SequenceSet], seeds, *, hidden: int = 128, K: int = 50,
                     classes: int | None = None, dtype="float32", device="cpu",
                     settings: ClassifySettings | None = None,
                     progress: Callable[[int, int], None] | None = None,
                     keep_predictions: bool = False) -> ClassifyResult:
    """Train the stacked classifier with first layer ``first`` on ``data`` (``{"train", "val",
    "test"}`` -> ``SequenceSet``) for every seed in ``seeds`` at once; returns per-seed metrics of
    the model kept at the best validation cross-entropy.

    ``progress(epoch, epochs)`` is called after every epoch. The loop is
    :func:`rnnmem.train.fit.fit_seeds` (``EarlyStop(restore="val_ce")``, ``nonfinite="skip"``).

    Parameters
    ----------
    first : str
        First-layer cell, one of ``FIRST_LAYERS``.
    data : dict
        ``{"train", "val", "test"}`` -> :class:`~rnnmem.tasks.sequence_set.SequenceSet`.
    seeds : iterable of int
        Distinct seeds, trained as one batched ensemble.
    hidden, K, classes, dtype, device, settings
        Model size, filter length, number of classes (default: from the labels), precision,
        device and :class:`ClassifySettings`.
    progress : callable or None
        ``progress(epoch, epochs)``.
    keep_predictions : bool
        Store the predicted labels per split.

    Returns
    -------
    ClassifyResult
        ``table`` (one row per seed), ``curves``, ``config``, ``wall_s``, ``history``, ``model``.

    Raises
    ------
    ConfigError
        If a split is missing, or on a bad model setting (cell, seeds, sizes).
    InputError
        If the splits' input widths differ or a label is >= ``classes``.
    """
    settings = settings or ClassifySettings()
    missing = [s for s in SPLITS if s not in data]
    if missing:
        raise ConfigError(f"data must hold the splits {', '.join(SPLITS)}; missing {', '.join(missing)}")
    seeds = [int(s) for s in seeds]
    D = data["train"].x.shape[2]
    for name in SPLITS:
        if data[name].x.shape[2] != D:
            raise InputError(f"split {name!r} has {data[name].x.shape[2]} input dims, train has {D}")
    n_cls = int(classes) if classes is not None else int(max(int(d.labels.max()) for d in data.values()) + 1)
    for name in SPLITS:
        if int(data[name].labels.max()) >= n_cls:
            raise InputError(f"split {name!r} has label {int(data[name].labels.max())} >= classes = {n_cls}")
    device = resolve_device(device)
    dt = resolve_dtype(dtype)
    S = len(seeds)
    t0 = time.perf_counter()
    net = StackedClassifier(first, seeds, D, hidden=hidden, classes=n_cls, K=K, dtype=dtype, device=device)
    tens = {name: _tensors(data[name], dt, device) for name in SPLITS}
    x_tr, l_tr, y_tr = tens["train"]
    x_va, l_va, y_va = tens["val"]
    seed_params(net, net.size)
    E = settings.epochs
    curve_train = np.full((E, S), np.nan)
    curve_val = np.full((E, S), np.nan)
    curve_val_acc = np.full((E, S), np.nan)
    batches = _batches(len(data["train"]), settings.batch_size)
    tot = np.zeros(S)                           # sum of this epoch's per-seed batch means

    def loss_fn(net, batch):
        x, last, y = batch
        return _per_seed_ce(net(x, last), y)                                          # [S]

    def evaluate(net):
        net.eval()
        lv = _logits(net, x_va, l_va, settings.batch_size)
        net.train()
        return {"val_ce": _per_seed_ce(lv, y_va), "val_accuracy": (lv.argmax(-1) == y_va).double().mean(1)}

    def on_step(info):
        nonlocal tot
        tot = tot + info.loss
        if info.metrics is not None:                # the end of an epoch
            epoch = info.step // len(batches) - 1
            curve_train[epoch] = tot / len(batches)     # mean of the batch means (as published)
            curve_val[epoch] = info.metrics["val_ce"]
            curve_val_acc[epoch] = info.metrics["val_accuracy"]
            tot = np.zeros(S)
            if progress is not None:
                progress(epoch + 1, E)

    net.train()
    fit = fit_seeds(net, [(x_tr[:, a:b], l_tr[a:b], y_tr[a:b]) for a, b in batches], loss_fn,
                    optimizer=lambda ps: torch.optim.Adam(ps, lr=settings.lr, weight_decay=settings.weight_decay),
                    seeds=seeds, epochs=E, evaluate=evaluate, eval_at="after", nonfinite="skip",
                    early_stop=EarlyStop(restore="val_ce"), on_step=on_step)
    best_epoch = fit.table["best_step"].to_numpy() // len(batches) - 1
    best_val = fit.table["best_val_ce"].to_numpy()
    net.eval()
    rows = [dict(seed=s, model=first) for s in seeds]
    preds = {}
    for name in SPLITS:
        x, last, y = tens[name]
        lg = _logits(net, x, last, settings.batch_size)                              # [S, N, C]
        ce = _per_seed_ce(lg, y).double().cpu().numpy()
        pred = lg.argmax(-1).cpu().numpy()
        preds[name] = pred
        truth = data[name].labels
        for e, row in enumerate(rows):
            m = classification_metrics(truth, pred[e])
            for k, v in m.items():
                row[f"{name}_{k}"] = v
            row[f"{name}_ce"] = float(ce[e])
    d_learned = net.learned_d()
    for e, row in enumerate(rows):
        never = best_epoch[e] < 0
        row["status"] = "diverged" if never else "ok"
        if never:
            for k in list(row):
                if k.startswith(SPLITS):
                    row[k] = float("nan")
        row["best_epoch"] = int(best_epoch[e])
        row["best_val_ce"] = float(best_val[e])
        if d_learned is not None:
            row["d"] = float(d_learned[e])
    wall = time.perf_counter() - t0
    table = pd.DataFrame(rows)
    curves = {s: {"train_ce": curve_train[:, e].copy(), "val_ce": curve_val[:, e].copy(),
                  "val_accuracy": curve_val_acc[:, e].copy()} for e, s in enumerate(seeds)}
    config = {
        "first": first, "second": "lstm", "hidden": int(hidden), "K": int(K) if first in FILTER_CELLS else None,
        "classes": n_cls, "input_size": int(D), "dtype": str(dt).replace("torch.", ""), "device": str(device),
        "settings": asdict(settings), "seeds": seeds, "sizes": {n: len(data[n]) for n in SPLITS},
        "loss": "cross-entropy, mean over the batch; sum over seeds of per-seed means",
        "kept_model": "parameters with the lowest validation cross-entropy after an epoch",
        "batches": "fixed order, no shuffling (as published)", "readout": "state at the last real step",
        "model": net.describe(), "kernels": "fastseq",
    }
    table.attrs["config"] = config
    res = ClassifyResult(table=table, curves=curves, config=config, wall_s=wall, history=fit.history, model=net)
    if keep_predictions:
        res.predictions = preds
    return res


__all__ = ["FIRST_LAYERS", "SequenceSet", "ClassifySettings", "ClassifyResult", "StackedClassifier",
           "classification_metrics", "train_classifier"]
