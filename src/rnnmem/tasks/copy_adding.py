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

Output (time-major): copy ``sample`` gives ``x`` [T + 2M, B, 10] (one-hot; [T + 2M, B, 1] with
``encoding="scalar"``) in the requested float dtype and ``y`` int64 [T + 2M, B]; adding ``sample``
gives ``x`` [T, B, 2] and ``y`` [B] (drawn in float64, cast to the requested dtype).
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
        """Sequence length L = T + 2M.

        Returns
        -------
        int
        """
        return self.T + 2 * self.memory

    @property
    def input_size(self) -> int:
        """Input channels: 10 (one-hot digits) or 1 (``encoding="scalar"``).

        Returns
        -------
        int
        """
        return N_CLASSES if self.encoding == "onehot" else 1

    @property
    def output_size(self) -> int:
        """Number of output classes (the 10 digits).

        Returns
        -------
        int
        """
        return N_CLASSES

    @property
    def baseline(self) -> float:
        """Loss of the position-aware memoryless predictor: ``M ln 8 / (T + 2M)``.

        Returns
        -------
        float
            Mean cross-entropy in nats.
        """
        return self.memory * math.log(8) / self.length

    @property
    def answer_start(self) -> int:
        """First answer step, T + M (the targets before it are blanks).

        Returns
        -------
        int
        """
        return self.T + self.memory

    def describe(self) -> dict:
        """The task's settings for records.

        Returns
        -------
        dict
            ``task``, T, memory, variant, encoding, ``length``, ``baseline`` and the ``loss`` in words.
        """
        return {"task": self.name, **asdict(self), "length": self.length, "baseline": self.baseline,
                "loss": "cross-entropy over all positions (mean)"}

    def sample_digits(self, batch: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """Digit sequences: input ``[L, B]`` and target ``[L, B]`` (int64).

        Symbols s_i ~ U{1..8} drawn with ``torch.randint`` from ``generator`` (see the module docstring
        for the layout).

        Parameters
        ----------
        batch : int
            Number of sequences B (>= 1).
        generator : torch.Generator
            CPU generator all draws come from.

        Returns
        -------
        tuple of torch.Tensor
            ``(x, y)``, int64 [L, B] each, L = T + 2M.

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1.
        """
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
        """Digits as model inputs: one-hot over the 10 digits, or the digit as one float channel.

        Parameters
        ----------
        digits : torch.Tensor
            int64 [L, B].
        dtype : torch.dtype, default torch.float32

        Returns
        -------
        torch.Tensor
            [L, B, 10] (``"onehot"``) or [L, B, 1] (``"scalar"``) of ``dtype``.
        """
        if self.encoding == "onehot":
            return F.one_hot(digits, N_CLASSES).to(dtype)
        return digits.to(dtype).unsqueeze(-1)

    def sample(self, batch: int, generator: torch.Generator, device=None, dtype=torch.float32):
        """``x[L, B, I]`` (float) and ``y[L, B]`` (class indices) on ``device``.

        Parameters
        ----------
        batch : int
            Number of sequences B.
        generator : torch.Generator
            CPU generator (same seed, same data on every device).
        device : torch.device or str, optional
            Where the tensors are moved.
        dtype : torch.dtype, default torch.float32
            dtype of ``x``.

        Returns
        -------
        tuple of torch.Tensor
            ``x`` [L, B, I] of ``dtype``, ``y`` int64 [L, B].

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1.
        """
        digits, y = self.sample_digits(batch, generator)
        return self.encode(digits, dtype).to(device), y.to(device)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over all positions; ``out[L, B, 10]`` logits over the sequence.

        Parameters
        ----------
        out : torch.Tensor
            Logits [L, B, 10].
        y : torch.Tensor
            Targets int64 [L, B].

        Returns
        -------
        torch.Tensor
            Scalar mean cross-entropy (nats).
        """
        return F.cross_entropy(out.reshape(-1, N_CLASSES), y.reshape(-1))

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict:
        """Extra numbers: answer-only cross-entropy (baseline ln 8) and answer accuracy.

        Parameters
        ----------
        out : torch.Tensor
            Logits [L, B, 10].
        y : torch.Tensor
            Targets int64 [L, B].

        Returns
        -------
        dict
            ``answer_ce`` and ``answer_accuracy`` (floats) over the last M steps.
        """
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
        """Sequence length T.

        Returns
        -------
        int
        """
        return self.T

    @property
    def input_size(self) -> int:
        """Input channels: value and marker (2).

        Returns
        -------
        int
        """
        return 2

    @property
    def output_size(self) -> int:
        """Output size: one regression value.

        Returns
        -------
        int
        """
        return 1

    @property
    def baseline(self) -> float:
        """MSE of the constant prediction 1: ``Var(U + U') = 2/12 = 1/6``.

        Returns
        -------
        float
        """
        return 1.0 / 6.0

    def describe(self) -> dict:
        """The task's settings for records.

        Returns
        -------
        dict
            ``task``, T, markers, ``length``, ``baseline`` and the ``loss`` in words.
        """
        return {"task": self.name, **asdict(self), "length": self.length, "baseline": self.baseline,
                "loss": "MSE of the last-step prediction"}

    def marker_positions(self, batch: int, generator: torch.Generator) -> torch.Tensor:
        """``[2, B]`` marker positions (first < second).

        ``markers="halves"``: one uniform in [0, T//2), one in [T//2, T); ``"anywhere"``: two distinct
        uniform positions.

        Parameters
        ----------
        batch : int
            Number of sequences B (>= 1).
        generator : torch.Generator
            CPU generator.

        Returns
        -------
        torch.Tensor
            int64 [2, B].

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1.
        """
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
        """``x[T, B, 2]`` and target ``y[B]`` on ``device``.

        Channel 0 holds v_t ~ U[0, 1) (``torch.rand`` in float64), channel 1 the two markers; y is the
        sum of the two marked values. Drawn from ``generator`` (values first, then the markers).

        Parameters
        ----------
        batch : int
            Number of sequences B.
        generator : torch.Generator
            CPU generator.
        device : torch.device or str, optional
            Where the tensors are moved.
        dtype : torch.dtype, default torch.float32
            dtype of ``x`` and ``y``.

        Returns
        -------
        tuple of torch.Tensor
            ``x`` [T, B, 2] and ``y`` [B].

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1 (checked before anything is drawn).
        """
        _positive_int("batch", batch)
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
        """MSE; ``out[B]`` (or ``[B, 1]``) predictions at the last step.

        Parameters
        ----------
        out : torch.Tensor
            Predictions [B] or [B, 1].
        y : torch.Tensor
            Targets [B].

        Returns
        -------
        torch.Tensor
            Scalar mean squared error.
        """
        return F.mse_loss(out.reshape(-1), y.reshape(-1))

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict:
        """No extra numbers for the adding task.

        Parameters
        ----------
        out : torch.Tensor
            Predictions (unused).
        y : torch.Tensor
            Targets (unused).

        Returns
        -------
        dict
            Empty.
        """
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
    (n_pairs, vocab_size, n_queries, query_distance, power_a, filler; :mod:`rnnmem.tasks.mqar`).

    Parameters
    ----------
    name : str
        ``copy``, ``adding``, ``selective_copy`` (or ``selective-copy``) or ``mqar``.
    T : int
        Length parameter of the task.
    **options
        The task class's other fields.

    Returns
    -------
    CopyTask, AddingTask, SelectiveCopyTask or MQARTask

    Raises
    ------
    ConfigError
        On an unknown task name or a bad option.
    """
    cls = _task_class(name)
    try:
        return cls(T, **options)
    except TypeError as exc:
        raise ConfigError(f"bad option for task {name!r}: {exc}") from None


def memoryless_loss(task, n_fit: int = 20_000, n_eval: int = 20_000, seed: int = 0) -> float:
    """Measured loss of the best memoryless predictor, fitted on ``n_fit`` samples and evaluated
    on ``n_eval`` fresh ones (checks the baseline formulas).

    Copy: the predicted distribution at each position is the class frequency at that position
    in the fitting sample (knows the time, not the symbols). Adding: the constant mean target.

    Parameters
    ----------
    task : CopyTask or AddingTask
    n_fit : int, default 20000
        Fitting sequences.
    n_eval : int, default 20000
        Evaluation sequences.
    seed : int, default 0
        Seed of the ``torch.Generator``.

    Returns
    -------
    float
        Mean cross-entropy (copy, nats) or MSE (adding); compare with ``task.baseline``.

    Raises
    ------
    ConfigError
        If ``task`` is neither a CopyTask nor an AddingTask.
    """
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
