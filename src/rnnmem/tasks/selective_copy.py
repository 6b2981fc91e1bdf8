"""Selective copying (Gu & Dao 2023, "Mamba: linear-time sequence modeling with selective state
spaces", arXiv:2312.00752, section 4.1.1 and appendix E.1), with its memoryless baseline and
exact-match accuracy.

Layout (the data generator of the S4/Mamba code, ``torch_copying_data(L, M, A, variable=True)``
in state-spaces/s4 ``src/dataloaders/datasets/copying.py``), with T noise tokens, M = n_memorize
tokens to memorise and a vocabulary of V = vocab_size token ids::

    ids:     0 = noise (blank),  1 .. V-2 = data symbols,  V-1 = marker
    input  (length T + 2M):  T + M positions, M of them (distinct, uniformly random, kept in
                             order) hold data symbols d_1..d_M ~ U{1..V-2} (with replacement),
                             the other T are noise;  then V-1 x M  (the markers)
    target (length T + 2M):  ignored on the first T + M positions;  d_1 .. d_M  at the markers

The network reads the i-th marker and must emit d_i at that same step. Unlike the copy task the
data positions vary from sequence to sequence, so a time-invariant (LTI) model cannot simply
delay its input: it has to select the data tokens by content (the paper's point).

Sizes. The Mamba paper (appendix E.1) trains on sequences of length 4096 with a vocabulary of
16 tokens including the noise token and 16 tokens to memorise (Table 1: S4 18.3%, S6/Mamba
97.0-99.8% accuracy). :func:`paper_sizes` returns these as ``T=4096, n_memorize=16,
vocab_size=16``, reading "length 4096" as the number of noise tokens (the S4 code's ``L`` /
``l_noise``; the total length is then 4128; had the paper meant the total, T would be 4064, a 1%
difference). The defaults here (``n_memorize=4, vocab_size=8``) are small enough for an LSTM to
learn short instances on a 2-core CPU in seconds to minutes; pass the paper's sizes for a GPU.

Loss and metrics. Cross-entropy over the M answer positions only (mean), logits over all V ids.
Exact-match accuracy per answer token and per sequence (all M right).

Memoryless baseline. A predictor that sees only the position and the current token (a marker)
knows neither which symbols were seen nor their order; the data symbols are i.i.d. uniform over
the V - 2 data ids, so its best guess (any data id, e.g. the most frequent one) scores

    token accuracy  = 1 / (V - 2),      sequence accuracy = (1 / (V - 2))^M,
    answer cross-entropy = ln(V - 2)    (the loss baseline: uniform over the data ids),

while a uniform guess over all V ids (chance) scores 1/V per token. The formulas are checked
against :func:`rnnmem.tasks.token_common.memoryless_accuracy`, a fitted memoryless predictor.

All samples come from a caller-owned ``torch.Generator`` (CPU), so the same seed gives the same
data on every device.

Output (time-major, L = T + 2M): ``sample_tokens`` gives ``tokens``, ``targets`` (int64 [L, B]) and
``mask`` (bool [L, B]); ``sample`` gives one-hot ``x`` [L, B, V] in the requested float dtype and
``y`` int64 [L, B].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .copy_adding import _positive_int
from .token_common import IGNORE, answer_loss, exact_match

NOISE = 0


def paper_sizes() -> dict:
    """The Mamba paper's selective-copying sizes (appendix E.1), as :class:`SelectiveCopyTask`
    arguments: 4096 noise tokens, 16 tokens to memorise, 16 token ids including the noise token.

    Returns
    -------
    dict
        ``{"T": 4096, "n_memorize": 16, "vocab_size": 16}``.
    """
    return {"T": 4096, "n_memorize": 16, "vocab_size": 16}


@dataclass(frozen=True)
class SelectiveCopyTask:
    """Selective copying with ``T`` noise tokens, ``n_memorize`` data tokens and ``vocab_size``
    token ids (see the module docstring for the layout, loss and baseline).

    Parameters
    ----------
    T: number of noise tokens (>= 1); the sequence has ``T + 2 n_memorize`` steps.
    n_memorize: data tokens to memorise and reproduce in order (>= 1).
    vocab_size: token ids including noise (0) and marker (V-1); >= 4 (at least two data symbols).
    """

    T: int
    n_memorize: int = 4
    vocab_size: int = 8

    name = "selective_copy"
    kind = "classification"

    def __post_init__(self):
        _positive_int("T", self.T)
        _positive_int("n_memorize", self.n_memorize)
        if not isinstance(self.vocab_size, int) or isinstance(self.vocab_size, bool) or self.vocab_size < 4:
            raise ConfigError(
                f"vocab_size must be an integer >= 4 (noise, marker and at least two data symbols), "
                f"got {self.vocab_size!r}"
            )

    @property
    def length(self) -> int:
        """Sequence length L = T + 2M.

        Returns
        -------
        int
        """
        return self.T + 2 * self.n_memorize

    @property
    def n_symbols(self) -> int:
        """Number of data symbols, ``V - 2``.

        Returns
        -------
        int
        """
        return self.vocab_size - 2

    @property
    def marker(self) -> int:
        """Token id of the marker, V - 1.

        Returns
        -------
        int
        """
        return self.vocab_size - 1

    @property
    def input_size(self) -> int:
        """Input width: one-hot over the V token ids.

        Returns
        -------
        int
        """
        return self.vocab_size

    @property
    def output_size(self) -> int:
        """Number of output logits, V.

        Returns
        -------
        int
        """
        return self.vocab_size

    @property
    def answer_start(self) -> int:
        """First answer (marker) step, T + M.

        Returns
        -------
        int
        """
        return self.T + self.n_memorize

    @property
    def baseline(self) -> float:
        """Answer cross-entropy of the best memoryless predictor: ``ln(V - 2)``.

        Returns
        -------
        float
            Nats.
        """
        return math.log(self.n_symbols)

    @property
    def baseline_accuracy(self) -> float:
        """Token accuracy of the best memoryless predictor: ``1 / (V - 2)``.

        Returns
        -------
        float
        """
        return 1.0 / self.n_symbols

    @property
    def baseline_sequence_accuracy(self) -> float:
        """Sequence accuracy of the best memoryless predictor: ``(1 / (V - 2))^M``.

        Returns
        -------
        float
        """
        return self.baseline_accuracy ** self.n_memorize

    @property
    def chance_accuracy(self) -> float:
        """Token accuracy of a uniform guess over all V ids: ``1 / V``.

        Returns
        -------
        float
        """
        return 1.0 / self.vocab_size

    def describe(self) -> dict:
        """The task's settings and baselines for records.

        Returns
        -------
        dict
            ``task``, T, n_memorize, vocab_size, ``length``, ``baseline``, ``baseline_accuracy``,
            ``baseline_sequence_accuracy``, ``chance_accuracy`` and the ``loss``.
        """
        return {"task": self.name, **asdict(self), "length": self.length, "baseline": self.baseline,
                "baseline_accuracy": self.baseline_accuracy,
                "baseline_sequence_accuracy": self.baseline_sequence_accuracy,
                "chance_accuracy": self.chance_accuracy,
                "loss": "cross-entropy over the answer (marker) positions (mean)"}

    def sample_tokens(self, batch: int, generator: torch.Generator):
        """Token sequences.

        Data symbols are drawn with ``torch.randint`` (uniform over 1..V-2, with replacement), then
        their M distinct positions among the first T + M steps (``torch.rand`` argsort, sorted), both
        from ``generator``.

        Parameters
        ----------
        batch : int
            Number of sequences B (>= 1).
        generator : torch.Generator
            CPU generator.

        Returns
        -------
        ``tokens[L, B]`` (int64 ids), ``targets[L, B]`` (data symbols at the markers,
        :data:`~rnnmem.tasks.token_common.IGNORE` elsewhere) and ``mask[L, B]`` (True at the
        markers), with ``L = T + 2 n_memorize``.

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1.
        """
        _positive_int("batch", batch)
        M, R = self.n_memorize, self.T + self.n_memorize
        data = torch.randint(1, self.vocab_size - 1, (batch, M), generator=generator)
        # M distinct positions among the R = T + M region, uniformly, in increasing order
        pos = torch.rand((batch, R), generator=generator).argsort(dim=1)[:, :M].sort(dim=1).values
        region = torch.full((batch, R), NOISE, dtype=torch.int64)
        region.scatter_(1, pos, data)
        markers = torch.full((batch, M), self.marker, dtype=torch.int64)
        tokens = torch.cat([region, markers], dim=1).T.contiguous()
        targets = torch.full((self.length, batch), IGNORE, dtype=torch.int64)
        targets[R:] = data.T
        return tokens, targets, targets != IGNORE

    def encode(self, tokens: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """One-hot ``[L, B, V]``.

        Parameters
        ----------
        tokens : torch.Tensor
            int64 ids [L, B].
        dtype : torch.dtype, default torch.float32

        Returns
        -------
        torch.Tensor
            [L, B, V] of ``dtype``.
        """
        return F.one_hot(tokens, self.vocab_size).to(dtype)

    def sample(self, batch: int, generator: torch.Generator, device=None, dtype=torch.float32):
        """``x[L, B, V]`` (one-hot, float) and ``y[L, B]`` (targets, IGNORE off the answers) on
        ``device``.

        Parameters
        ----------
        batch : int
            Number of sequences B.
        generator : torch.Generator
            CPU generator (same seed, same data on every device).
        device : torch.device or str, optional
        dtype : torch.dtype, default torch.float32
            dtype of ``x``.

        Returns
        -------
        tuple of torch.Tensor
            ``x`` [L, B, V] and ``y`` int64 [L, B].

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1.
        """
        tokens, y, _ = self.sample_tokens(batch, generator)
        return self.encode(tokens, dtype).to(device), y.to(device)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the answer positions; ``out[L, B, V]`` logits.

        Parameters
        ----------
        out : torch.Tensor
            Logits [L, B, V].
        y : torch.Tensor
            Targets int64 [L, B] (IGNORE off the answers).

        Returns
        -------
        torch.Tensor
            Scalar (nats).
        """
        return answer_loss(out, y)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict:
        """Exact-match token and sequence accuracy at the answers, beside their memoryless values.

        Parameters
        ----------
        out : torch.Tensor
            Logits [L, B, V].
        y : torch.Tensor
            Targets int64 [L, B].

        Returns
        -------
        dict
            ``token_accuracy``, ``sequence_accuracy``, ``baseline_accuracy``,
            ``baseline_sequence_accuracy``.
        """
        return {**exact_match(out.argmax(-1), y), "baseline_accuracy": self.baseline_accuracy,
                "baseline_sequence_accuracy": self.baseline_sequence_accuracy}


__all__ = ["SelectiveCopyTask", "paper_sizes", "NOISE"]
