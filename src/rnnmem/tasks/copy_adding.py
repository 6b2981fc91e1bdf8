"""The copy-memory and adding tasks of the TCN benchmark (Bai, Kolter & Koltun 2018, "An
empirical evaluation of generic convolutional and recurrent networks for sequence modeling",
arXiv:1803.01271, section 5 and their repository's ``copy_memory/utils.py`` and
``adding_problem/utils.py``), with their memoryless baselines.

Copy memory (blank time T, M = 10 symbols)::

    input  (length T + 2M):  s_1 .. s_M,  0 x (T - 1),  9 x (M + 1)     s_i ~ U{1..8}
    target (length T + 2M):  0 x (T + M),  s_1 .. s_M

The first 9 is the delimiter. ``variant="tcn"`` (default) is the TCN code: every input after the
delimiter is also 9. ``variant="blank"`` is the older form (Arjovsky, Shah & Bengio 2016): the
delimiter is followed by M blanks (0), so the net must also count. Loss: cross-entropy over all
T + 2M positions and 10 classes, averaged (TCN). A predictor that knows the position but not
the symbols gets the blanks right and guesses 1/8 on the M answer steps, hence the baseline

    copy baseline = M ln 8 / (T + 2M)          (10 ln 8 / (T + 20) for M = 10).

Inputs are one-hot over the 10 digits by default (``encoding="scalar"`` feeds the digit as one
float channel, as TCN feeds its convolutional net); the sequence and loss are the same.

Adding (length T)::

    channel 0: v_t ~ U[0, 1];   channel 1: exactly two 1s, else 0;   target = sum of marked v_t

``markers="halves"`` (default) puts one marker in each half (Le, Jaitly & Hinton 2015;
first in [0, T//2), second in [T//2, T)); ``markers="anywhere"`` draws two distinct positions
uniformly (the TCN code). Loss: MSE of the prediction read out at the last step. Predicting the
constant 1 (the target's mean) is the memoryless baseline: Var(v_a + v_b) = 2/12, so

    adding baseline = 1/6 ~ 0.167.

All samples come from a caller-owned ``torch.Generator`` (CPU), so the same seed gives the same
data on every device.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError

BLANK, DELIMITER, N_CLASSES = 0, 9, 10


def _positive_int(name: str, value, minimum: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class CopyTask:
    """Copy memory with blank time ``T`` and ``memory`` symbols (see module docstring)."""

    T: int
    memory: int = 10
    variant: str = "tcn"
    encoding: str = "onehot"

    name = "copy"
    kind = "classification"

    def __post_init__(self):
        _positive_int("T", self.T)
        _positive_int("memory", self.memory)
        if self.variant not in ("tcn", "blank"):
            raise ConfigError(f"copy variant must be 'tcn' or 'blank', got {self.variant!r}")
        if self.encoding not in ("onehot", "scalar"):
            raise ConfigError(f"copy encoding must be 'onehot' or 'scalar', got {self.encoding!r}")

    @property
    def length(self) -> int:
        return self.T + 2 * self.memory

    @property
    def input_size(self) -> int:
        return N_CLASSES if self.encoding == "onehot" else 1

    @property
    def output_size(self) -> int:
        return N_CLASSES

    @property
    def baseline(self) -> float:
        """Loss of the position-aware memoryless predictor: ``M ln 8 / (T + 2M)``."""
        return self.memory * math.log(8) / self.length

    @property
    def answer_start(self) -> int:
        return self.T + self.memory

    def describe(self) -> dict:
        return {"task": self.name, **asdict(self), "length": self.length, "baseline": self.baseline,
                "loss": "cross-entropy over all positions (mean)"}

    def sample_digits(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Digit sequences: input ``[L, B]`` and target ``[L, B]`` (int64)."""
        _positive_int("batch", batch)
        M, T, L = self.memory, self.T, self.length
        symbols = torch.randint(1, 9, (M, batch), generator=generator)
        x = torch.zeros(L, batch, dtype=torch.int64)
        x[:M] = symbols
        if self.variant == "tcn":
            x[M + T - 1 :] = DELIMITER
        else:
            x[M + T - 1] = DELIMITER
        y = torch.zeros(L, batch, dtype=torch.int64)
        y[self.answer_start :] = symbols
        return x, y

    def encode(self, digits: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        if self.encoding == "onehot":
            return F.one_hot(digits, N_CLASSES).to(dtype)
        return digits.to(dtype).unsqueeze(-1)

    def sample(self, batch: int, generator: torch.Generator, device=None, dtype=torch.float32):
        """``x[L, B, I]`` (float) and ``y[L, B]`` (class indices) on ``device``."""
        digits, y = self.sample_digits(batch, generator)
        return self.encode(digits, dtype).to(device), y.to(device)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over all positions; ``out[L, B, 10]`` logits over the sequence."""
        return F.cross_entropy(out.reshape(-1, N_CLASSES), y.reshape(-1))

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict:
        """Extra numbers: answer-only cross-entropy (baseline ln 8) and answer accuracy."""
        a = self.answer_start
        ans = out[a:].reshape(-1, N_CLASSES)
        tgt = y[a:].reshape(-1)
        return {
            "answer_ce": float(F.cross_entropy(ans, tgt)),
            "answer_accuracy": float((ans.argmax(-1) == tgt).double().mean()),
        }


@dataclass(frozen=True)
class AddingTask:
    """Adding problem of length ``T`` (see module docstring)."""

    T: int
    markers: str = "halves"

    name = "adding"
    kind = "regression"

    def __post_init__(self):
        _positive_int("T", self.T, 2)
        if self.markers not in ("halves", "anywhere"):
            raise ConfigError(f"adding markers must be 'halves' or 'anywhere', got {self.markers!r}")

    @property
    def length(self) -> int:
        return self.T

    @property
    def input_size(self) -> int:
        return 2

    @property
    def output_size(self) -> int:
        return 1

    @property
    def baseline(self) -> float:
        """MSE of the constant prediction 1: ``Var(U + U') = 2/12 = 1/6``."""
        return 1.0 / 6.0

    def describe(self) -> dict:
        return {"task": self.name, **asdict(self), "length": self.length, "baseline": self.baseline,
                "loss": "MSE of the last-step prediction"}

    def marker_positions(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``[2, B]`` marker positions (first < second)."""
        _positive_int("batch", batch)
        T = self.T
        if self.markers == "halves":
            h = T // 2
            a = torch.randint(0, h, (batch,), generator=generator)
            b = h + torch.randint(0, T - h, (batch,), generator=generator)
        else:
            p = torch.randint(0, T, (batch,), generator=generator)
            q = torch.randint(0, T - 1, (batch,), generator=generator)
            q = q + (q >= p).long()  # uniform over the T - 1 other positions
            a, b = torch.minimum(p, q), torch.maximum(p, q)
        return torch.stack([a, b])

    def sample(self, batch: int, generator: torch.Generator, device=None, dtype=torch.float32):
        """``x[T, B, 2]`` and target ``y[B]`` on ``device``."""
        values = torch.rand((self.T, batch), generator=generator, dtype=torch.float64)
        pos = self.marker_positions(batch, generator)
        marks = torch.zeros(self.T, batch, dtype=torch.float64)
        cols = torch.arange(batch)
        marks[pos[0], cols] = 1.0
        marks[pos[1], cols] = 1.0
        y = values[pos[0], cols] + values[pos[1], cols]
        x = torch.stack([values, marks], dim=-1)
        return x.to(device=device, dtype=dtype), y.to(device=device, dtype=dtype)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """MSE; ``out[B]`` (or ``[B, 1]``) predictions at the last step."""
        return F.mse_loss(out.reshape(-1), y.reshape(-1))

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict:
        return {}


TASKS = {"copy": CopyTask, "adding": AddingTask}
TASK_NAMES = ("copy", "adding", "selective_copy", "mqar")


def _task_class(name: str):
    if name in TASKS:
        return TASKS[name]
    if name in ("selective_copy", "selective-copy"):
        from .selective_copy import SelectiveCopyTask

        return SelectiveCopyTask
    if name == "mqar":
        from .mqar import MQARTask

        return MQARTask
    raise ConfigError(f"unknown task {name!r}; choose one of {', '.join(TASK_NAMES)}")


def make_task(name: str, T: int, **options):
    """Build a task by name: ``copy`` (options memory, variant, encoding), ``adding`` (markers),
    ``selective_copy`` (n_memorize, vocab_size; :mod:`rnnmem.tasks.selective_copy`) or ``mqar``
    (n_pairs, vocab_size, n_queries, query_distance, power_a, filler; :mod:`rnnmem.tasks.mqar`)."""
    cls = _task_class(name)
    try:
        return cls(T, **options)
    except TypeError as exc:
        raise ConfigError(f"bad option for task {name!r}: {exc}") from None


def memoryless_loss(task, n_fit: int = 20_000, n_eval: int = 20_000, seed: int = 0) -> float:
    """Measured loss of the best memoryless predictor, fitted on ``n_fit`` samples and evaluated
    on ``n_eval`` fresh ones (checks the baseline formulas).

    Copy: the predicted distribution at each position is the class frequency at that position
    in the fitting sample (knows the time, not the symbols). Adding: the constant mean target."""
    gen = torch.Generator().manual_seed(int(seed))
    if isinstance(task, CopyTask):
        _, y_fit = task.sample_digits(n_fit, gen)
        counts = F.one_hot(y_fit, N_CLASSES).double().sum(1)  # [L, 10]
        probs = (counts + 1e-12) / (counts.sum(-1, keepdim=True) + N_CLASSES * 1e-12)
        _, y_ev = task.sample_digits(n_eval, gen)
        logp = probs.log().gather(1, y_ev)  # [L, B]
        return float(-logp.mean())
    if isinstance(task, AddingTask):
        _, y_fit = task.sample(n_fit, gen, dtype=torch.float64)
        _, y_ev = task.sample(n_eval, gen, dtype=torch.float64)
        return float(((y_ev - y_fit.mean()) ** 2).mean())
    raise ConfigError(f"memoryless_loss takes a CopyTask or AddingTask, got {type(task).__name__}")
