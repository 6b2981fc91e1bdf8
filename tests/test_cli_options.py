"""Issue 12, point 4, CLI side: one shared set of options (``--device``, ``--dtype``, ``--threads``,
``--seed``, ``--out``, ``--quiet``) defined once in ``rnnmem.commands.options``, resolved once at the
command entry (a bad value is one error line before anything runs) and passed down; and
``commands/parsing.py`` for every comma-separated value."""

from __future__ import annotations

import pytest
import typer
from typer.testing import CliRunner

from cli_runner import run_main
from rnnmem.cli import app
from rnnmem.commands import options as opt
from rnnmem.commands import parsing
from rnnmem.errors import ConfigError

WIDE = {"COLUMNS": "250"}
FLAGS = {"device": ("--device",), "dtype": ("--dtype",), "threads": ("--threads",), "seed": ("--seed",),
         "out": ("--out", "-o"), "quiet": ("--quiet", "-q")}


def _commands() -> dict:
    def walk(cmd, prefix=""):
        for name, sub in sorted(getattr(cmd, "commands", {}).items()):
            if getattr(sub, "commands", None):
                yield from walk(sub, f"{prefix}{name} ")
            else:
                yield f"{prefix}{name}", sub
    return dict(walk(typer.main.get_command(app)))


def test_every_command_takes_the_shared_options_the_table_says():
    cmds = _commands()
    assert set(cmds) == set(opt.SHARED_OPTIONS), set(cmds) ^ set(opt.SHARED_OPTIONS)
    wrong = {}
    for name, cmd in cmds.items():
        params = {p.name: p for p in cmd.params}
        have = {o for o in FLAGS if o in params}
        if have != opt.SHARED_OPTIONS[name]:
            wrong[name] = sorted(have ^ opt.SHARED_OPTIONS[name])
        for o in have:
            assert tuple(params[o].opts) == FLAGS[o], (name, o, params[o].opts)
        if "device" in have:
            assert params["device"].help.startswith(opt.DEVICE_HELP) and params["device"].default == "cpu"
        if "threads" in have:
            assert params["threads"].help.startswith(opt.THREADS_HELP) and params["threads"].default is None
        if "quiet" in have:
            assert params["quiet"].help == opt.QUIET_HELP and params["quiet"].default is False
        if "dtype" in have:
            assert params["dtype"].default == "float32"
    assert not wrong, wrong




DTYPE_COMMANDS = {
    "forgetting": [],
    "card": [],
    "bench-task": ["--T", "5"],
    "reproduce zhao": ["--quick", "--data-dir", "nowhere"],
    "reproduce zhao-reviews": ["--data", "reviews.json"],
    "reproduce zhao-control": [],
    "reproduce zhang": ["--quick"],
    "reproduce architectures": ["--quick"],
}


def test_dtype_commands_are_all_listed():
    assert set(DTYPE_COMMANDS) == {n for n, s in opt.SHARED_OPTIONS.items() if "dtype" in s}


@pytest.mark.parametrize("command", sorted(DTYPE_COMMANDS))
def test_bad_dtype_is_one_error_before_anything_runs(monkeypatch, capsys, tmp_path, command):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    args = [*command.split(), *DTYPE_COMMANDS[command], "--dtype", "float16"]
    if "out" in opt.SHARED_OPTIONS[command]:
        args += ["--out", str(out)]
    code, stdout, err = run_main(monkeypatch, capsys, args)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert code == 2 and "Traceback" not in stdout + err, (code, stdout, err)
    assert lines == ["error: --dtype must be one of float32, float64, got 'float16'"], err
    assert not out.exists()  # nothing was set up, let alone computed


def test_runtime_resolves_once():
    rt = opt.runtime(None, 1, dtype="float64", quiet=True)
    assert rt == opt.Runtime("cpu", "float64", 1, True) and rt.progress is False
    assert opt.runtime("cpu", 1).dtype is None and opt.runtime("cpu", 1).progress is True
    with pytest.raises(ConfigError, match="--dtype must be one of float32, float64, got 'half'"):
        opt.runtime("cpu", 1, dtype="half")


# ------------------------------------------------------------- the resolved values reach the study
class _Stop(Exception):
    pass


def _capture(monkeypatch, module: str, function: str) -> dict:
    import importlib

    seen = {}

    def fake(*args, **kwargs):
        seen.update(kwargs)
        raise _Stop

    monkeypatch.setattr(importlib.import_module(module), function, fake)
    return seen


STUDIES = [
    (["reproduce", "zhao", "--quick", "--dataset", "rnn-generated"], "rnnmem.studies.zhao_control",
     "reproduce_control", True),
    (["reproduce", "zhao", "--quick", "--data-dir", "x"], "rnnmem.studies.zhao", "reproduce", True),
    (["reproduce", "zhao-control"], "rnnmem.studies.zhao_control", "reproduce_control", True),
    (["reproduce", "zhao-reviews", "--data", "r.json"], "rnnmem.studies.zhao_reviews", "reproduce", True),
    (["reproduce", "muccino", "--quick"], "rnnmem.studies.muccino", "reproduce", False),
    (["reproduce", "distill", "--quick"], "rnnmem.studies.distill", "reproduce", False),
    (["reproduce", "zhang", "--quick"], "rnnmem.studies.zhang", "reproduce", True),
]


@pytest.mark.parametrize("quiet", [False, True])
@pytest.mark.parametrize("args, module, function, has_dtype", STUDIES, ids=[" ".join(s[0][:3]) for s in STUDIES])
def test_reproductions_get_the_resolved_device_dtype_and_progress(monkeypatch, tmp_path, args, module, function,
                                                                 has_dtype, quiet):
    seen = _capture(monkeypatch, module, function)
    extra = ["--dtype", "float64"] if has_dtype else []
    res = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "o"), "--threads", "1", *extra,
                                   *(["--quiet"] if quiet else [])], env=WIDE)
    assert isinstance(res.exception, _Stop), res.output
    assert seen["device"] == "cpu"
    assert seen["command"].startswith("rnnmem ")
    if function == "reproduce" and module.endswith("zhang"):
        assert seen["config"].model_dtype == "float64"
        assert (seen["progress"] is None) == quiet
    else:
        assert seen["progress"] is (not quiet)
        if has_dtype:
            assert seen["dtype"] == "float64"


def _spy_progress(monkeypatch) -> list:
    import rich.progress

    made = []
    real = rich.progress.Progress

    class Spy(real):
        def __init__(self, *a, **k):
            made.append(k.get("disable", False))
            super().__init__(*a, **k)

    monkeypatch.setattr(rich.progress, "Progress", Spy)
    return made


@pytest.mark.parametrize("quiet", [False, True])
def test_quiet_turns_the_progress_bar_off_and_keeps_the_results(monkeypatch, quiet):
    made = _spy_progress(monkeypatch)
    args = ["forgetting", "-u", "2", "-i", "1", "--runs", "1", "--T", "50", "--P", "5", "--threads", "1"]
    res = CliRunner().invoke(app, args + (["-q"] if quiet else []), env=WIDE)
    assert res.exit_code == 0, res.output
    assert made == [quiet]
    assert "Forgetting steps" in res.output


def test_bench_task_dtype_reaches_the_unit(monkeypatch, tmp_path):
    import rnnmem.train.sequence_tasks as S

    seen = []
    real = S.train_on_task

    def spy(unit, *a, **k):
        seen.append(next(unit.parameters()).dtype)
        return real(unit, *a, **k)

    monkeypatch.setattr(S, "train_on_task", spy)
    res = CliRunner().invoke(app, ["bench-task", "--task", "adding", "--T", "4", "--units", "4", "--steps", "3",
                                   "--eval-size", "8", "--dtype", "float64", "--threads", "1", "-q",
                                   "--csv", str(tmp_path / "b.csv")], env=WIDE)
    assert res.exit_code == 0, res.output
    import pandas as pd
    import torch

    assert seen == [torch.float64]
    assert pd.read_csv(tmp_path / "b.csv")["dtype"].tolist() == ["float64"]


# ----------------------------------------------------------------------------- parsing
def test_parsing_helpers():
    assert parsing.ints(" 10, 20,,50", "--T", nonempty=True, minimum=1) == [10, 20, 50]
    with pytest.raises(ConfigError, match=r"--T must be a comma-separated list of integers, got '5,x'"):
        parsing.ints("5,x", "--T")
    with pytest.raises(ConfigError, match="--T must list positive integers, got '0,5'"):
        parsing.ints("0,5", "--T", minimum=1)
    with pytest.raises(ConfigError, match="--T must list at least one integer"):
        parsing.ints(" , ", "--T", nonempty=True)
    assert parsing.split3("1, 2,3") == (1, 2, 3)
    with pytest.raises(ConfigError, match="--split must be TRAIN,VAL,TEST, got '1,2'"):
        parsing.split3("1,2")
    assert parsing.name_values(["a=0.5", " b =1", "a=2"], "--threshold") == {"a": 2.0, "b": 1.0}
    for bad in ("a", "=0.3", "a=x"):
        with pytest.raises(ConfigError, match=r"--threshold must look like NAME=VALUE \(e.g. r=0.3\)"):
            parsing.name_values([bad], "--threshold", "r=0.3")
    assert parsing.names(" lstm, gru,,") == ["lstm", "gru"]


def test_no_command_parses_lists_inline():
    """Every comma-separated value goes through commands/parsing.py (one error wording)."""
    import ast
    from pathlib import Path

    import rnnmem.commands as C

    bad = []
    for path in sorted(Path(C.__file__).parent.glob("*.py")):
        if path.name == "parsing.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "split"
                    and node.args and isinstance(node.args[0], ast.Constant) and node.args[0].value == ","):
                bad.append(f"{path.name}:{node.lineno}")
    assert not bad, bad
