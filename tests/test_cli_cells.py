"""``rnnmem --help`` and ``rnnmem cells``: in-process, and after ``pip install .`` in a fresh venv."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from rnnmem import cells
from rnnmem.cli import app

REPO = Path(__file__).resolve().parents[1]


def _check_cells_listing(text: str) -> None:
    """Every unit, every convention and every option appears in ``rnnmem cells``."""
    for name in cells.list_units():
        assert name in text, name
    for name in cells.CONVENTIONS:
        assert name in text, name
    for option in cells.OPTION_DOCS:
        assert option in text, option
    for word in ("hard_sigmoid", "before", "after", "depth", "nonlinearity", "float64"):
        assert word in text, word


def test_cells_command_in_process():
    runner = CliRunner()
    result = runner.invoke(app, ["cells"], env={"COLUMNS": "250"})
    assert result.exit_code == 0, result.output
    _check_cells_listing(result.output)
    assert "Nested LSTM" in result.output
    assert "[x, h]" in result.output  # descriptions are printed literally, not read as rich markup


def test_cells_command_json():
    result = CliRunner().invoke(app, ["cells", "--json"])
    assert result.exit_code == 0, result.output
    info = json.loads(result.output)
    assert set(info["units"]) == set(cells.list_units())
    assert info["units"]["nlstm"]["options"] == ["depth"]
    assert info["conventions"]["keras"]["gate_activation"] == "hard_sigmoid"
    assert info["conventions"]["tf1"]["forget_shift"] == 1.0
    assert set(cells.OPTION_DOCS) <= set(info["options"])


def test_root_help_lists_cells_command():
    result = CliRunner().invoke(app, ["--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "cells" in result.output and "reproduce" in result.output


def _copy_source(dst: Path) -> Path:
    """A clean copy of the source tree (what a fresh checkout holds), so building the wheel never
    writes build/ or egg-info into the working tree other processes use."""
    ignore = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache",
                                    ".venv", "rnnmem-report", "reports", "*.sqlite", "*.db", ".whl")
    src = dst / "src-copy"
    shutil.copytree(REPO, src, ignore=ignore, symlinks=True)
    return src


@pytest.mark.slow
def test_pip_install_in_fresh_venv(tmp_path):
    """``pip install .`` into a new virtual environment (system site-packages supply torch etc.),
    then the installed ``rnnmem`` script runs ``--help`` and ``cells``."""
    env_dir = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(env_dir)],
                          capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    bindir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    py = str(bindir / "python")
    # venv seeds its own setuptools (65.5 with Python 3.11), which cannot build a wheel without the
    # `wheel` package; with --no-build-isolation the backend must come from the environment, so
    # drop that seed and let the system's setuptools (the one this checkout builds with) serve.
    probe = ("import importlib.util as u, sys\ntry:\n    import setuptools.command.bdist_wheel\n"
             "except ImportError:\n    sys.exit(0 if u.find_spec('wheel') else 1)")
    can_build = subprocess.run([py, "-c", probe], capture_output=True, timeout=120).returncode == 0
    if not can_build:
        subprocess.run([str(bindir / "pip"), "uninstall", "-y", "-q", "setuptools"], capture_output=True,
                       timeout=300, check=True)
    src = _copy_source(tmp_path)
    install = subprocess.run(
        [str(bindir / "pip"), "install", "--no-deps", "--no-build-isolation", "-q",
         "--disable-pip-version-check", str(src)],
        capture_output=True, text=True, timeout=600,
    )
    assert install.returncode == 0, install.stdout + install.stderr
    exe = bindir / "rnnmem"
    assert exe.exists()
    # the venv's rnnmem is the installed copy, not the editable checkout
    where = subprocess.run([str(bindir / "python"), "-c", "import rnnmem; print(rnnmem.__file__)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert where.returncode == 0 and str(env_dir) in where.stdout, where.stdout + where.stderr
    env = {"COLUMNS": "250", "PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    helped = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert helped.returncode == 0, helped.stdout + helped.stderr
    assert "cells" in helped.stdout
    listed = subprocess.run([str(exe), "cells"], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    _check_cells_listing(listed.stdout)
