"""``--device`` handling: one clear error for what cannot run."""

from __future__ import annotations

import pytest
import torch

from rnnmem.devices import resolve_device
from rnnmem.errors import ConfigError


def test_cpu_and_default():
    assert resolve_device(None) == torch.device("cpu")
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")


@pytest.mark.parametrize("name,match", [("gpu0", "unknown device"), ("meta", "not supported")])
def test_bad_names_are_config_errors(name, match):
    with pytest.raises(ConfigError, match=match):
        resolve_device(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_a_gpu_says_so():
    with pytest.raises(ConfigError, match="no CUDA device.*--device cpu"):
        resolve_device("cuda")


@pytest.mark.cuda
def test_cuda_with_a_gpu():
    assert resolve_device("cuda").type == "cuda"
