"""Training loops and multi-seed (batched) ensembles.

Every trainer (``timeseries.train_series``, ``classify.train_classifier``,
``autocomplete.train_autocomplete``, ``sequence_tasks.train_on_task``, ``word_lm.train_word_lm``)
runs on one loop, :func:`fit_seeds` (``rnnmem.train.fit``); see docs/training.md.
"""

from .fit import EarlyStop, StepInfo, TrainResult, fit_seeds

__all__ = ["fit_seeds", "EarlyStop", "StepInfo", "TrainResult"]
