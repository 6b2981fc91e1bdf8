"""Labelled sequences for classification (the data container of ``rnnmem.train.classify`` and
``rnnmem.tasks.reviews``; it lives here so that tasks never import the training layer)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError


@dataclass
class SequenceSet:
    """Labelled sequences for classification: ``x`` [T, N, D] time-major inputs, ``last`` [N] the
    index of each sequence's last real step, ``labels`` [N] integers in 0..classes-1."""

    x: np.ndarray
    last: np.ndarray
    labels: np.ndarray

    def __post_init__(self):
        self.x = np.asarray(self.x)
        self.last = np.asarray(self.last, dtype=np.int64)
        self.labels = np.asarray(self.labels, dtype=np.int64)
        if self.x.ndim != 3:
            raise InputError(f"sequences must be [T, N, D], got shape {self.x.shape}")
        T, N, _ = self.x.shape
        if N < 1:
            raise InputError("a split holds no sequences")
        if self.last.shape != (N,) or self.labels.shape != (N,):
            raise InputError(f"last and labels must have one entry per sequence ({N}), got "
                             f"{self.last.shape} and {self.labels.shape}")
        if (self.last < 0).any() or (self.last >= T).any():
            raise InputError(f"last-step indices must lie in [0, {T - 1}]")
        if (self.labels < 0).any():
            raise InputError("labels must be non-negative integers")
        if not np.isfinite(self.x).all():
            raise InputError("the sequences contain NaN or infinite values")

    def __len__(self) -> int:
        return int(self.x.shape[1])


__all__ = ["SequenceSet"]
