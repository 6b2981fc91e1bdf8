"""Shared pieces of the token-recall tasks (selective copying, MQAR): the ignore label, the masked
cross-entropy, exact-match accuracy at the answer positions, and a *measured* memoryless predictor
that checks each task's baseline formula.

A token task has ``sample_tokens(batch, generator) -> (tokens[L, B], targets[L, B], mask[L, B])``
(int64, int64, bool); ``targets`` holds :data:`IGNORE` wherever ``mask`` is False. The model emits
logits ``out[L, B, V]`` over the task's ``output_size`` token ids at every step and is scored
only where ``mask`` is True (the answer positions).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..errors import ConfigError

IGNORE = -100  # label of the positions that are not scored (torch's cross_entropy default)


def answer_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over the answer positions only.

    Parameters
    ----------
    out: logits ``[L, B, V]``.
    y: targets ``[L, B]``, :data:`IGNORE` outside the answer positions.

    Returns
    -------
    Scalar tensor: ``-(1/N) sum_{answers} log softmax(out)[target]`` (N answer positions).
    """
    return F.cross_entropy(out.reshape(-1, out.shape[-1]), y.reshape(-1), ignore_index=IGNORE)


def exact_match(pred: torch.Tensor, y: torch.Tensor) -> dict:
    """Exact-match accuracy of predicted token ids ``pred[L, B]`` against ``y[L, B]`` at the
    answer positions (``y != IGNORE``).

    Parameters
    ----------
    pred : torch.Tensor
        Predicted token ids [L, B].
    y : torch.Tensor
        Targets [L, B], :data:`IGNORE` outside the answer positions.

    Returns
    -------
    ``{"token_accuracy": fraction of answer positions right,
    "sequence_accuracy": fraction of sequences with every answer right}``.
    (``token_accuracy`` is NaN when there is no answer position.)
    """
    mask = y != IGNORE
    right = (pred == y) & mask
    n = int(mask.sum())
    token = float(right.sum()) / n if n else float("nan")
    seq = float((right.sum(0) == mask.sum(0)).double().mean())
    return {"token_accuracy": token, "sequence_accuracy": seq}


def memoryless_accuracy(task, n_fit: int = 20_000, n_eval: int = 20_000, seed: int = 0) -> dict:
    """Measured exact-match accuracy of the best *memoryless* predictor of a token task.

    The predictor sees only the current position t and the current input token x_t (no
    memory of earlier inputs). It is fitted on ``n_fit`` sampled sequences as the most frequent
    target of each (t, x_t) pair (unseen pairs: the overall most frequent target; ties: the
    lowest id) and evaluated on ``n_eval`` fresh ones. Used by the tests to check each task's
    ``baseline_accuracy`` formula, which it estimates with binomial error
    ``sqrt(p(1 - p) / (n_eval * answers per sequence))``.

    Parameters
    ----------
    task : SelectiveCopyTask or MQARTask
        Any token task with ``sample_tokens`` and ``output_size``.
    n_fit : int, default 20000
        Fitting sequences (>= 1).
    n_eval : int, default 20000
        Evaluation sequences (>= 1).
    seed : int, default 0
        Seed of the ``torch.Generator`` both samples come from.

    Returns
    -------
    ``{"token_accuracy": ..., "sequence_accuracy": ...}`` of that predictor.

    Raises
    ------
    ConfigError
        If ``n_fit`` or ``n_eval`` is not an integer >= 1.
    """
    for name, value in (("n_fit", n_fit), ("n_eval", n_eval)):
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise ConfigError(f"{name} must be an integer >= 1, got {value!r}")
    gen = torch.Generator().manual_seed(int(seed))
    V = int(task.output_size)
    x, y, mask = task.sample_tokens(n_fit, gen)
    L = x.shape[0]
    key = torch.arange(L).unsqueeze(1) * V + x  # (t, x_t) as one index, [L, B]
    counts = torch.zeros(L * V, V, dtype=torch.float64)
    counts.index_put_((key[mask], y[mask]), torch.ones(int(mask.sum()), dtype=torch.float64), accumulate=True)
    overall = int(counts.sum(0).argmax())
    table = counts.argmax(1)  # first maximum = lowest id on ties
    table[counts.sum(1) == 0] = overall
    x2, y2, _ = task.sample_tokens(n_eval, gen)
    key2 = torch.arange(L).unsqueeze(1) * V + x2
    return exact_match(table[key2], y2)


__all__ = ["IGNORE", "answer_loss", "exact_match", "memoryless_accuracy"]
