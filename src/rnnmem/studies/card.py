"""Moved: the memory card is a loop over the probe registry and lives in ``rnnmem.probes.card``
(it is not a study). This name stays importable for code written against rnnmem <= 0.3."""

from ..probes.card import *  # noqa: F401,F403
from ..probes.card import (compute_card, fit_checks, fit_half_life, forgetting_summary, load_card,  # noqa: F401
                           long_memory_fields, long_memory_source, save_card)
