"""``rnnmem --help`` and ``rnnmem cells``: in-process, and after ``pip install .`` in a fresh venv."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

import rnnmem
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


def _can_build_wheels_here() -> bool:
    """Whether this interpreter's own setuptools can build a wheel without build isolation
    (setuptools >= 70.1 ships bdist_wheel; older ones need the ``wheel`` package)."""
    probe = ("import importlib.util as u, sys\nimport setuptools\n"
             "if int(setuptools.__version__.split('.')[0]) < 64:\n    sys.exit(1)  # pyproject.toml: setuptools>=64\n"
             "try:\n    import setuptools.command.bdist_wheel\n"
             "except ImportError:\n    sys.exit(0 if u.find_spec('wheel') else 1)")
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, timeout=120).returncode == 0


def _site_dirs() -> list[str]:
    """The site-packages folders of the interpreter running pytest (its venv's, and the base's or the
    user's when they are on its path): where torch, numpy, typer... are installed for it."""
    return [p for p in sys.path if Path(p).name in ("site-packages", "dist-packages") and Path(p).is_dir()]


@pytest.mark.slow
def test_pip_install_in_fresh_venv(tmp_path):
    """Build a wheel of a clean copy of the source, ``pip install`` it into a new virtual environment,
    then the installed ``rnnmem`` script runs ``--version``, ``--help`` and ``cells``.

    Independent of which interpreter or venv runs pytest: the wheel is built by the running
    interpreter (its own setuptools when that can build wheels, else pip's isolated build, as
    ``pip install .`` does), and the new venv is isolated from the base interpreter (no
    ``--system-site-packages``, whose setuptools or missing torch would differ between machines);
    a ``.pth`` file points it at the running interpreter's site-packages for the dependencies only
    (plain paths: their ``.pth`` files, such as an editable rnnmem's, are not processed)."""
    src = _copy_source(tmp_path)
    wheels = tmp_path / "wheels"
    build = [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "--disable-pip-version-check", "-w", str(wheels)]
    if _can_build_wheels_here():
        build.append("--no-build-isolation")
    built = subprocess.run([*build, str(src)], capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert built.returncode == 0, built.stdout + built.stderr
    wheel = sorted(wheels.glob("rnnmem-*.whl"))
    assert len(wheel) == 1, list(wheels.iterdir())

    env_dir = tmp_path / "venv"
    made = subprocess.run([sys.executable, "-m", "venv", str(env_dir)], capture_output=True, text=True, timeout=300)
    assert made.returncode == 0, made.stdout + made.stderr
    bindir = env_dir / ("Scripts" if sys.platform == "win32" else "bin")
    py = str(bindir / "python")
    where = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                           capture_output=True, text=True, timeout=120, check=True)
    (Path(where.stdout.strip()) / "zz_rnnmem_test_deps.pth").write_text("\n".join(_site_dirs()) + "\n")
    # --ignore-installed: where the running environment has rnnmem installed (not editable), the .pth
    # makes it visible here and pip would call it "already satisfied" and install nothing (no script);
    # nor may pip ever uninstall it from the running environment.
    install = subprocess.run([py, "-m", "pip", "install", "--no-deps", "--no-index", "--ignore-installed",
                              "-q", "--disable-pip-version-check", str(wheel[0])],
                             capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert install.returncode == 0, install.stdout + install.stderr
    exe = bindir / "rnnmem"
    assert exe.exists()
    # the venv's rnnmem is the installed wheel, not the editable checkout or another install
    where = subprocess.run([py, "-c", "import rnnmem; print(rnnmem.__file__)"],
                           capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert where.returncode == 0 and str(env_dir) in where.stdout, where.stdout + where.stderr
    env = {"COLUMNS": "250", "PATH": f"{bindir}:/usr/bin:/bin", "HOME": str(tmp_path)}
    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, timeout=300, env=env,
                             cwd=tmp_path)
    assert version.returncode == 0 and version.stdout.strip() == rnnmem.__version__, version.stdout + version.stderr
    helped = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert helped.returncode == 0, helped.stdout + helped.stderr
    assert "cells" in helped.stdout
    listed = subprocess.run([str(exe), "cells"], capture_output=True, text=True, timeout=300, env=env,
                            cwd=tmp_path)
    assert listed.returncode == 0, listed.stdout + listed.stderr
    _check_cells_listing(listed.stdout)
