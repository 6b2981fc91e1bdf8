"""The GPU check (benchmarks/gpu_check.py) as tests: every CUDA path against the CPU.

Run with ``python -m pytest -m cuda``; every test here is marked ``cuda`` and is skipped, saying
why, on a machine where torch sees no CUDA device (conftest.py skips all ``cuda``-marked tests)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "gpu_check.py"


def _load():
    spec = importlib.util.spec_from_file_location("rnnmem_gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


gpu_check = _load()


@pytest.mark.cuda
@pytest.mark.parametrize("name", list(gpu_check.CHECKS))
def test_cuda_path_matches_cpu(name):
    device = torch.device("cuda")
    gpu_check.setup(device)
    rows = gpu_check.CHECKS[name](device)
    assert rows, f"check {name} compared nothing"
    failures = [r.failure() for r in rows if not r.ok]
    assert not failures, "\n".join(failures)


def test_without_cuda_the_script_says_so_and_exits_2(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main([]) == 2
    err = capsys.readouterr().err
    assert "no CUDA device" in err and "--allow-cpu-only" in err


def test_dry_run_compares_and_flags_a_disagreement(monkeypatch):
    """The comparison code itself: a small check passes on the CPU, and a forced disagreement is
    reported as a failure naming the path and the bound."""
    rows = gpu_check.check_capacity(torch.device("cpu"), small=True)
    assert rows and all(r.ok for r in rows)
    bad = gpu_check.Row("x", "p", 1.0, 2.0, err=2e-4, tol=1e-4)
    assert not bad.ok and "0.0002 > bound 0.0001" in bad.failure() and bad.ratio == 2.0
    nan = gpu_check.Row("x", "p", 1.0, 2.0, err=float("nan"), tol=1e-4)
    assert not nan.ok


def test_unknown_check_is_one_clear_error(capsys, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert gpu_check.main(["--allow-cpu-only", "--only", "cells,nope"]) == 2
    assert "unknown check(s) nope" in capsys.readouterr().err
