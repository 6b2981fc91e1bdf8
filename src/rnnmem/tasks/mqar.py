"""Multi-query associative recall, MQAR (Arora, Eyuboglu et al. 2023, "Zoology: measuring and
improving recall in efficient language models", arXiv:2312.04927, section 3 and appendix; the
generator ``multiquery_ar`` in HazyResearch/zoology ``zoology/data/multiquery_ar.py``), with its
memoryless baseline and exact-match accuracy.

Layout, with N = n_pairs key-value pairs, Q = n_queries queries, sequence length T and V =
vocab_size token ids (as in Zoology)::

    ids:    0 = filler,  keys 1 .. V//2 - 1,  values V//2 .. V - 1     (disjoint vocabularies)
    input:  k_1 v_1 k_2 v_2 ... k_N v_N   (N distinct keys, N distinct values, each drawn
                                           uniformly without replacement; pair i binds k_i -> v_i)
            then T - 2N positions of filler, with Q queries k_{j_1} .. k_{j_Q} (distinct pairs,
            a uniformly random subset; Zoology queries all, Q = N) placed at the even offsets
            2 g_1, .., 2 g_Q after the context
    target: v_{j_q} at the position of the q-th query (the network reads the key and emits
            its value in the same step), ignored everywhere else

Query distance. The slots g are drawn without replacement from {0, .., S - 1}, S = (T - 2N) // 2,
with probability (Zoology's power law, ``power_a`` a; real text repeats bigrams at power-law
distances)

    P(g) = (g + 1)^(a - 1) / sum_{h=1}^{S} h^(a - 1),

``query_distance="power"`` with Zoology's default a = 0.01 (P(g) ~ 1/(g + 1): most queries come
soon after the context), or ``query_distance="uniform"`` (a = 1: every slot equally likely).
Filler (``filler``): ``"random"`` replaces every filler position by a token uniform over all V
ids, as Zoology's default ``random_non_queries=True`` (such tokens may repeat a key, and are not
scored); ``"blank"`` leaves them 0.

Sizes. Zoology's main sweep (its Figure 2) uses V = 8192, T from 64 to 512 and N from 4 to 64
with Q = N; :func:`paper_sizes` returns T = 256, N = 16, V = 8192 as one such point. Our defaults
(N = 4, V = 32, one-hot inputs) are small enough for an LSTM to learn short instances on a 2-core
CPU; an 8192-way one-hot input is practical only on a GPU.

Loss and metrics. Cross-entropy over the Q query positions (mean), logits over all V ids.
Exact-match accuracy per query and per sequence (all Q right).

Memoryless baseline. A predictor that sees only the position and the current token (the queried
key) cannot know the value bound to it: values are drawn uniformly without replacement from the
V - V//2 value ids, independently of the keys, so its best guess scores

    token accuracy  = 1 / (V - V//2),      answer cross-entropy = ln(V - V//2)  (loss baseline),

and its sequence accuracy is at most that of guessing Q distinct values right, 1/(n(n-1)..(n-Q+1))
with n = V - V//2 (reported as ``baseline_sequence_accuracy``; a per-query independent guess gets
(1/n)^Q). A uniform guess over all V ids (chance) scores 1/V. The token formula is checked against
:func:`rnnmem.tasks.token_common.memoryless_accuracy`.

All samples come from a caller-owned ``torch.Generator`` (CPU), so the same seed gives the same
data on every device.

Output (time-major): ``sample_tokens`` gives ``tokens``, ``targets`` (int64 [T, B]) and ``mask``
(bool [T, B]); ``sample`` gives one-hot ``x`` [T, B, V] in the requested float dtype and ``y``
int64 [T, B].
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from ..errors import ConfigError
from .copy_adding import _positive_int
from .token_common import IGNORE, answer_loss, exact_match

FILLER = 0
ZOOLOGY_POWER_A = 0.01


def paper_sizes() -> dict:
    """One point of Zoology's MQAR sweep (Figure 2: V = 8192, T in 64..512, N in 4..64, Q = N),
    as :class:`MQARTask` arguments.

    Returns
    -------
    dict
        ``{"T": 256, "n_pairs": 16, "vocab_size": 8192}``.
    """
    return {"T": 256, "n_pairs": 16, "vocab_size": 8192}


@dataclass(frozen=True)
class MQARTask:
    """Multi-query associative recall (see the module docstring for layout, loss and baseline).

    Parameters
    ----------
    T: sequence length; needs ``T >= 2 n_pairs + 2 n_queries``.
    n_pairs: key-value pairs N in the context (>= 1).
    vocab_size: token ids V; keys ``1..V//2-1``, values ``V//2..V-1``; needs ``V >= 2 N + 2``.
    n_queries: queries Q (1..N; None: N, every key queried once, as in Zoology).
    query_distance: ``"power"`` (Zoology's power law with exponent ``power_a``) or ``"uniform"``.
    power_a: power-law exponent a in (0, 1] (Zoology's default 0.01; 1 is uniform).
    filler: ``"random"`` (Zoology: random tokens between the queries) or ``"blank"`` (0).
    """

    T: int
    n_pairs: int = 4
    vocab_size: int = 32
    n_queries: int | None = None
    query_distance: str = "power"
    power_a: float = ZOOLOGY_POWER_A
    filler: str = "random"

    name = "mqar"
    kind = "classification"

    def __post_init__(self):
        _positive_int("n_pairs", self.n_pairs)
        N = self.n_pairs
        if self.n_queries is not None:
            _positive_int("n_queries", self.n_queries)
            if self.n_queries > N:
                raise ConfigError(f"n_queries must be <= n_pairs ({N}): each query asks a different key, "
                                  f"got {self.n_queries}")
        need_T = 2 * N + 2 * self.queries
        if not isinstance(self.T, int) or isinstance(self.T, bool) or self.T < need_T:
            raise ConfigError(f"T must be an integer >= 2*n_pairs + 2*n_queries = {need_T} (the context plus one "
                              f"slot per query), got {self.T!r}")
        need_V = 2 * N + 2
        if not isinstance(self.vocab_size, int) or isinstance(self.vocab_size, bool) or self.vocab_size < need_V:
            raise ConfigError(f"vocab_size must be an integer >= 2*n_pairs + 2 = {need_V} (n_pairs distinct keys "
                              f"in 1..V//2-1), got {self.vocab_size!r}")
        if self.query_distance not in ("power", "uniform"):
            raise ConfigError(f"query_distance must be 'power' or 'uniform', got {self.query_distance!r}")
        a = self.power_a
        if isinstance(a, bool) or not isinstance(a, (int, float)) or not (0 < a <= 1):
            raise ConfigError(f"power_a must be a number in (0, 1] (Zoology: 0.01), got {a!r}")
        if self.filler not in ("random", "blank"):
            raise ConfigError(f"filler must be 'random' or 'blank', got {self.filler!r}")

    @property
    def queries(self) -> int:
        """Q: the number of queries per sequence.

        Returns
        -------
        int
            ``n_queries``, or ``n_pairs`` when it is None.
        """
        return self.n_pairs if self.n_queries is None else self.n_queries

    @property
    def length(self) -> int:
        """Sequence length T.

        Returns
        -------
        int
        """
        return self.T

    @property
    def n_keys(self) -> int:
        """Number of key ids, ``V//2 - 1`` (ids 1..V//2-1).

        Returns
        -------
        int
        """
        return self.vocab_size // 2 - 1

    @property
    def n_values(self) -> int:
        """Number of value ids, ``V - V//2`` (ids V//2..V-1).

        Returns
        -------
        int
        """
        return self.vocab_size - self.vocab_size // 2

    @property
    def slots(self) -> int:
        """S = (T - 2N) // 2: the even offsets after the context where queries may go.

        Returns
        -------
        int
        """
        return (self.T - 2 * self.n_pairs) // 2

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

    def slot_probabilities(self) -> torch.Tensor:
        """``P(g)`` for g = 0..S-1 (float64; uniform for ``query_distance="uniform"``).

        P(g) = (g + 1)^(a - 1) / sum_{h=1}^{S} h^(a - 1) (Zoology's power law, a = ``power_a``; a = 1
        for uniform).

        Returns
        -------
        torch.Tensor
            float64 [S], summing to 1.
        """
        a = 1.0 if self.query_distance == "uniform" else float(self.power_a)
        w = torch.arange(1, self.slots + 1, dtype=torch.float64) ** (a - 1.0)
        return w / w.sum()

    @property
    def baseline(self) -> float:
        """Answer cross-entropy of the best memoryless predictor: ``ln(V - V//2)``.

        Returns
        -------
        float
            Nats.
        """
        return math.log(self.n_values)

    @property
    def baseline_accuracy(self) -> float:
        """Token accuracy of the best memoryless predictor: ``1 / (V - V//2)``.

        Returns
        -------
        float
        """
        return 1.0 / self.n_values

    @property
    def baseline_sequence_accuracy(self) -> float:
        """Best memoryless sequence accuracy: ``1 / (n (n-1) .. (n-Q+1))``, n = V - V//2.

        Returns
        -------
        float
        """
        return 1.0 / math.perm(self.n_values, self.queries)

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
            ``task``, the fields (``n_queries`` resolved to Q), ``length``, ``baseline``,
            ``baseline_accuracy``, ``baseline_sequence_accuracy``, ``chance_accuracy`` and the ``loss``.
        """
        return {"task": self.name, **asdict(self), "n_queries": self.queries, "length": self.length,
                "baseline": self.baseline, "baseline_accuracy": self.baseline_accuracy,
                "baseline_sequence_accuracy": self.baseline_sequence_accuracy,
                "chance_accuracy": self.chance_accuracy,
                "loss": "cross-entropy over the query positions (mean)"}

    def sample_pairs(self, batch: int, generator: torch.Generator):
        """Keys ``[B, N]``, values ``[B, N]``, queried pair indices ``[B, Q]`` and query slots
        ``[B, Q]`` (the q-th query asks pair ``pair[b, q]`` at position ``2N + 2 slot[b, q]``).

        Keys and values are distinct within a sequence (random permutations via ``torch.rand`` argsort),
        slots are drawn without replacement from :meth:`slot_probabilities`, all from ``generator``.

        Parameters
        ----------
        batch : int
            Number of sequences B (>= 1).
        generator : torch.Generator
            CPU generator.

        Returns
        -------
        tuple of torch.Tensor
            ``(keys, values, pair, slot)``, int64.

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1.
        """
        _positive_int("batch", batch)
        N, Q, half = self.n_pairs, self.queries, self.vocab_size // 2
        keys = 1 + torch.rand((batch, self.n_keys), generator=generator).argsort(dim=1)[:, :N]
        values = half + torch.rand((batch, self.n_values), generator=generator).argsort(dim=1)[:, :N]
        pair = torch.rand((batch, N), generator=generator).argsort(dim=1)[:, :Q]
        p = self.slot_probabilities().expand(batch, -1)
        slot = torch.multinomial(p, Q, replacement=False, generator=generator)
        return keys, values, pair, slot

    def sample_tokens(self, batch: int, generator: torch.Generator):
        """Token sequences.

        Parameters
        ----------
        batch : int
            Number of sequences B (>= 1).
        generator : torch.Generator
            CPU generator all draws come from (pairs, slots, then the random filler).

        Returns
        -------
        ``tokens[T, B]`` (int64 ids), ``targets[T, B]`` (the bound value at each query,
        :data:`~rnnmem.tasks.token_common.IGNORE` elsewhere) and ``mask[T, B]`` (True at the
        queries).

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1.
        """
        keys, values, pair, slot = self.sample_pairs(batch, generator)
        N = self.n_pairs
        seq = torch.full((batch, self.T), FILLER, dtype=torch.int64)
        seq[:, 0 : 2 * N : 2] = keys
        seq[:, 1 : 2 * N : 2] = values
        qpos = 2 * N + 2 * slot
        seq.scatter_(1, qpos, keys.gather(1, pair))
        tgt = torch.full((batch, self.T), IGNORE, dtype=torch.int64)
        tgt.scatter_(1, qpos, values.gather(1, pair))
        if self.filler == "random":
            noise = torch.randint(0, self.vocab_size, (batch, self.T), generator=generator)
            free = torch.ones((batch, self.T), dtype=torch.bool)
            free[:, : 2 * N] = False
            free.scatter_(1, qpos, False)
            seq = torch.where(free, noise, seq)
        tokens, targets = seq.T.contiguous(), tgt.T.contiguous()
        return tokens, targets, targets != IGNORE

    def encode(self, tokens: torch.Tensor, dtype=torch.float32) -> torch.Tensor:
        """One-hot ``[T, B, V]``.

        Parameters
        ----------
        tokens : torch.Tensor
            int64 ids [T, B].
        dtype : torch.dtype, default torch.float32

        Returns
        -------
        torch.Tensor
            [T, B, V] of ``dtype``.
        """
        return F.one_hot(tokens, self.vocab_size).to(dtype)

    def sample(self, batch: int, generator: torch.Generator, device=None, dtype=torch.float32):
        """``x[T, B, V]`` (one-hot, float) and ``y[T, B]`` (IGNORE off the queries) on ``device``.

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
            ``x`` [T, B, V] and ``y`` int64 [T, B].

        Raises
        ------
        ConfigError
            If ``batch`` is not an integer >= 1.
        """
        tokens, y, _ = self.sample_tokens(batch, generator)
        return self.encode(tokens, dtype).to(device), y.to(device)

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the query positions; ``out[T, B, V]`` logits.

        Parameters
        ----------
        out : torch.Tensor
            Logits [T, B, V].
        y : torch.Tensor
            Targets int64 [T, B] (IGNORE off the queries).

        Returns
        -------
        torch.Tensor
            Scalar (nats).
        """
        return answer_loss(out, y)

    def metrics(self, out: torch.Tensor, y: torch.Tensor) -> dict:
        """Exact-match accuracy per query and per sequence, beside their memoryless values.

        Parameters
        ----------
        out : torch.Tensor
            Logits [T, B, V].
        y : torch.Tensor
            Targets int64 [T, B].

        Returns
        -------
        dict
            ``token_accuracy``, ``sequence_accuracy``, ``baseline_accuracy``,
            ``baseline_sequence_accuracy``.
        """
        return {**exact_match(out.argmax(-1), y), "baseline_accuracy": self.baseline_accuracy,
                "baseline_sequence_accuracy": self.baseline_sequence_accuracy}


__all__ = ["MQARTask", "paper_sizes", "FILLER", "ZOOLOGY_POWER_A"]
