"""Train any rnnmem unit plus a linear readout on a sequence task (copy memory, adding, selective
copying, multi-query associative recall).

Model: the unit's top-layer output ``h_t`` feeds a linear readout, at every step for the
classification tasks (copy: logits over 10 classes; selective copying and MQAR: logits over the
task's token ids, scored only at the answer positions) and at the last step for the adding task
(one number). Training:
Adam (Kingma & Ba 2015) on fresh batches drawn each step, gradient-norm clipping, fixed number of
steps. Evaluation: the task loss on a held-out set drawn once from its own seed. A task counts
as *solved* when the final held-out loss is below ``solve_ratio`` (default 0.1) times the task's
memoryless baseline.

Determinism: the data stream, the held-out set and the readout initialisation come from
generators seeded with ``seed``; the unit is copied (the caller's is not trained) and keeps its
own initialisation. Same unit + same seed -> same numbers on the same device.
"""

from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..cells import CallableUnit
from ..errors import ConfigError
from ..probes.common import as_unit, unit_device
from .fit import EarlyStop, fit_seeds
from .fit import TrainResult as FitResult


class SequenceModel(nn.Module):
    """``unit`` + linear readout; ``forward(x[L, B, I])`` gives the task's prediction."""

    def __init__(self, unit, output_size: int, per_step: bool, generator: torch.Generator):
        super().__init__()
        self.unit = unit
        self.per_step = per_step
        H = int(unit.hidden_size)
        p = next(unit.parameters())
        bound = 1.0 / math.sqrt(H)  # torch.nn.Linear's default init, from our generator
        w = (torch.rand((output_size, H), generator=generator, dtype=torch.float64) * 2 - 1) * bound
        b = (torch.rand((output_size,), generator=generator, dtype=torch.float64) * 2 - 1) * bound
        self.readout = nn.Linear(H, output_size, device=p.device, dtype=p.dtype)
        with torch.no_grad():
            self.readout.weight.copy_(w)
            self.readout.bias.copy_(b)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The unit's outputs through the linear readout.

        Parameters
        ----------
        x : torch.Tensor
            Inputs [L, B, I] (the unit starts from its zero/initial state).

        Returns
        -------
        torch.Tensor
            Logits [L, B, C] at every step (``per_step``, classification tasks), or the last step's
            prediction [B] (adding).
        """
        state = None
        if isinstance(self.unit, CallableUnit):
            state = self.unit.init_state(x.shape[1], device=x.device, dtype=x.dtype)
        y, _ = self.unit(x, state)
        if self.per_step:
            return self.readout(y)  # [L, B, C]
        return self.readout(y[-1]).squeeze(-1)  # [B]


@dataclass(kw_only=True)
class TrainResult(FitResult):
    """Outcome of :func:`train_on_task` (a :class:`rnnmem.train.fit.TrainResult`).

    Parameters
    ----------
    task : dict
        The task's description.
    final_loss, baseline : float
        Held-out loss of the trained model and the task's memoryless baseline.
    solved : bool
        ``final_loss < solve_ratio * baseline``.
    solve_ratio : float
        The threshold ratio.
    steps_run : int
        Steps trained (fewer than asked when ``stop_when_solved`` stopped early).
    history : pandas.DataFrame
        Logged rows: ``step``, ``train_loss`` (mean since the last row), ``eval_loss``.
    metrics : dict
        The task's extra held-out metrics.
    config, unit : dict
        Training settings and the unit's description.
    wall_s : float
        Seconds.
    model : nn.Module
        The trained unit plus readout.
    table : pandas.DataFrame
        :func:`~rnnmem.train.fit.fit_seeds`' per-seed table (one row); ``.frame`` is :meth:`row`.
    """

    task: dict
    final_loss: float
    baseline: float
    solved: bool
    solve_ratio: float
    steps_run: int
    history: pd.DataFrame
    metrics: dict
    config: dict
    unit: dict
    wall_s: float
    model: nn.Module | None = field(default=None, repr=False)

    @property
    def ratio(self) -> float:
        """``final_loss / baseline``.

        Returns
        -------
        float
        """
        return self.final_loss / self.baseline

    @property
    def frame(self) -> pd.DataFrame:
        """One row (:meth:`row`).

        Returns
        -------
        pandas.DataFrame
            One row.
        """
        return pd.DataFrame([self.row()])

    def row(self) -> dict:
        """One flat row for tables and CSV.

        Returns
        -------
        dict
            ``task``, ``T``, ``final_loss``, ``baseline``, ``loss_over_baseline``, ``solved``,
            ``steps_run``, ``wall_s`` and the task's metrics.
        """
        return {
            "task": self.task["task"], "T": self.task["T"], "final_loss": self.final_loss,
            "baseline": self.baseline, "loss_over_baseline": self.ratio, "solved": self.solved,
            "steps_run": self.steps_run, "wall_s": self.wall_s, **self.metrics,
        }


def _check(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@torch.no_grad()
def evaluate(model: SequenceModel, task, x: torch.Tensor, y: torch.Tensor, chunk: int = 250) -> tuple[float, dict]:
    """Held-out loss (sample-weighted over chunks) and the task's extra metrics.

    Parameters
    ----------
    model : SequenceModel
    task : task object
        Provides ``loss`` and ``metrics``.
    x : torch.Tensor
        Held-out inputs [L, B, I].
    y : torch.Tensor
        Held-out targets, [L, B] (classification) or [B] (adding).
    chunk : int, default 250
        Sequences per forward pass.

    Returns
    -------
    tuple
        ``(loss, metrics)``: float mean loss over the B sequences and ``task.metrics`` of the
        concatenated outputs.
    """
    was = model.training
    model.eval()
    B = x.shape[1]
    total, outs = 0.0, []
    for s in range(0, B, chunk):
        xb = x[:, s : s + chunk]
        yb = y[:, s : s + chunk] if y.dim() == 2 else y[s : s + chunk]
        out = model(xb)
        total += float(task.loss(out, yb)) * xb.shape[1]
        outs.append(out)
    model.train(was)
    out = torch.cat(outs, dim=1 if model.per_step else 0)
    return total / B, task.metrics(out, y)


def train_on_task(
    model_or_unit,
    task,
    steps: int = 2_000,
    batch: int = 32,
    lr: float = 1e-2,
    clip: float | None = 1.0,
    seed: int = 0,
    eval_size: int = 1_000,
    eval_every: int | None = None,
    stop_when_solved: bool = False,
    solve_ratio: float = 0.1,
    device=None,
    progress=None,
) -> TrainResult:
    """Train a copy of ``model_or_unit`` (an rnnmem unit, torch.nn.RNN/LSTM/GRU or CallableUnit)
    with a linear readout on ``task`` (a :class:`~rnnmem.tasks.copy_adding.CopyTask`, ``AddingTask``,
    :class:`~rnnmem.tasks.selective_copy.SelectiveCopyTask` or :class:`~rnnmem.tasks.mqar.MQARTask`)
    and return the held-out loss against the baseline.

    ``eval_every``: also evaluate every that many steps (recorded in ``history``); with
    ``stop_when_solved`` training stops at the first evaluation below ``solve_ratio * baseline``.
    ``progress``: optional callable receiving the number of steps done since its last call.
    The loop is :func:`rnnmem.train.fit.fit_seeds` (one network, ``nonfinite="raise"``,
    ``EarlyStop(monitor="eval_loss", below=solve_ratio * baseline)`` with ``stop_when_solved``).

    Parameters
    ----------
    model_or_unit : module
        The unit to train (copied; the caller's is not changed).
    task : task object
        Draws batches (``sample``), scores them (``loss``, ``metrics``), knows its ``baseline``.
    steps, batch, lr, clip, seed, eval_size, eval_every, stop_when_solved, solve_ratio, device
        Training settings (see above).
    progress : callable or None
        ``progress(n)``: ``n`` steps done since the last call.

    Returns
    -------
    TrainResult
        Held-out loss, baseline, ``solved``, steps run, logged ``history``, metrics, trained model.

    Raises
    ------
    ConfigError
        On bad settings, an ensemble unit, a unit whose ``input_size`` differs from the task's, or
        a non-finite training loss.
    """
    start = time.perf_counter()
    _check("steps", steps, 1)
    _check("batch", batch, 1)
    _check("eval_size", eval_size, 1)
    if eval_every is not None:
        _check("eval_every", eval_every, 1)
    if stop_when_solved and eval_every is None:
        raise ConfigError("stop_when_solved needs eval_every (how often to check)")
    if not (lr > 0) or math.isinf(lr):
        raise ConfigError(f"lr must be a positive number, got {lr}")
    if clip is not None and not (clip > 0):
        raise ConfigError(f"clip must be positive or None, got {clip}")
    if not (0 < solve_ratio < 1):
        raise ConfigError(f"solve_ratio must be in (0, 1), got {solve_ratio}")
    unit = as_unit(model_or_unit)
    if getattr(unit, "ensemble", None):
        raise ConfigError("train one network at a time: build the unit with seed=..., not seeds=[...]")
    if int(unit.input_size) != task.input_size:
        raise ConfigError(
            f"task {task.name!r} feeds {task.input_size} input channel(s) but the unit has "
            f"input_size={unit.input_size}; build the unit with input_size={task.input_size}"
        )
    unit = copy.deepcopy(unit)
    if device is not None:
        unit = unit.to(device)
    dev = unit_device(unit)
    dtype = next(unit.parameters()).dtype
    gen_model = torch.Generator().manual_seed(int(seed))
    gen_data = torch.Generator().manual_seed(int(seed) + 1)
    gen_eval = torch.Generator().manual_seed(int(seed) + 2)
    model = SequenceModel(unit, task.output_size, task.kind == "classification", gen_model)
    model.train()
    x_ev, y_ev = task.sample(eval_size, gen_eval, device=dev, dtype=dtype)
    log_every = max(1, steps // 100)
    rows, running, n_run = [], 0.0, 0
    threshold = solve_ratio * task.baseline

    def on_step(info):
        nonlocal running, n_run
        step = info.step
        running += float(info.loss[0])
        n_run += 1
        row = None
        if step % log_every == 0 or step == steps:
            row = {"step": step, "train_loss": running / n_run, "eval_loss": np.nan}
            running, n_run = 0.0, 0
        if info.metrics is not None:
            row = row or {"step": step, "train_loss": np.nan}
            row["eval_loss"] = float(info.metrics["eval_loss"][0])
        if row is not None:
            rows.append(row)
        if progress is not None:
            progress(1)

    fit = fit_seeds(model, lambda s: task.sample(batch, gen_data, device=dev, dtype=dtype),
                    lambda m, b: task.loss(m(b[0]), b[1]), optimizer=lambda ps: torch.optim.Adam(ps, lr=lr),
                    seeds=[int(seed)], steps=steps, clip=clip, nonfinite="raise",
                    evaluate=(lambda m: {"eval_loss": evaluate(m, task, x_ev, y_ev)[0]}) if eval_every else None,
                    eval_every=eval_every, eval_at="after",
                    early_stop=EarlyStop(monitor="eval_loss", below=threshold) if stop_when_solved else None,
                    on_step=on_step)
    steps_run = int(fit.table["steps"].iloc[0])
    final, metrics = evaluate(model, task, x_ev, y_ev)
    config = {
        "steps": steps, "batch": batch, "lr": lr, "clip": clip, "seed": int(seed), "eval_size": eval_size,
        "eval_every": eval_every, "stop_when_solved": stop_when_solved, "optimizer": "Adam",
        "device": str(dev), "dtype": str(dtype).replace("torch.", ""),
        "readout": "linear, per step" if model.per_step else "linear, last step",
    }
    describe = unit.describe() if hasattr(unit, "describe") else {"cell": type(unit).__name__}
    return TrainResult(
        task=task.describe(), final_loss=final, baseline=task.baseline, solved=bool(final < threshold),
        solve_ratio=solve_ratio, steps_run=steps_run, history=pd.DataFrame(rows), metrics=metrics,
        config=config, unit=describe, wall_s=time.perf_counter() - start, model=model, table=fit.table,
    )


def largest_solved(results: list[TrainResult]) -> int | None:
    """The largest T whose run was solved, or None when none was.

    Parameters
    ----------
    results : list of TrainResult

    Returns
    -------
    int or None
    """
    solved = [r.task["T"] for r in results if r.solved]
    return max(solved) if solved else None


__all__ = ["SequenceModel", "TrainResult", "train_on_task", "evaluate", "largest_solved"]
