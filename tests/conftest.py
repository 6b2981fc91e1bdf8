"""Shared fixtures. Reference data lives in ../shared/data beside the repository (never copied in)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

# Small recurrent models run fastest on one thread, and CI has two cores: keep test timings stable.
torch.set_num_threads(1)

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("RNNMEM_SHARED_DATA", REPO.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """Path to ../shared/data; skips the test with a clear reason when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"reference data not found at {SHARED_DATA} (set RNNMEM_SHARED_DATA)")
    return SHARED_DATA
