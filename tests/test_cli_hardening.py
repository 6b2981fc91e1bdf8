"""Issue 17, CLI side: ``--threads`` and its default, one ``--device`` check at the entry of every
command, the connectivity length limit, input checks before computing (zhao series, --reference
tables, the autocomplete corpus) and help texts (no ``<bool>``, every option explained)."""

from __future__ import annotations

import pytest
import torch
import typer
from typer.testing import CliRunner

from cli_runner import run_main
from rnnmem import devices
from rnnmem.cli import app
from rnnmem.commands import options as opt
from rnnmem.errors import ConfigError, InputError

WIDE = {"COLUMNS": "250"}




def assert_one_error_line(code, out, err, match: str):
    assert code == 2, (code, out, err)
    text = out + err
    assert "Traceback" not in text
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match in lines[0], lines[0]


# ----------------------------------------------------------------------------- item 2: threads
def test_default_thread_rule():
    """CPUs shared by the computing processes, never more than the load average leaves free, >= 1."""
    assert devices.default_threads(1, cpus=8, load=0.3) == 8
    assert devices.default_threads(2, cpus=8, load=0.0) == 4
    assert devices.default_threads(3, cpus=8, load=0.0) == 2
    assert devices.default_threads(1, cpus=2, load=1.2) == 1   # one busy core on a 2-core machine
    assert devices.default_threads(1, cpus=8, load=5.9) == 3
    assert devices.default_threads(4, cpus=2, load=0.0) == 1
    assert devices.default_threads(1, cpus=4, load=40.0) == 1
    assert 1 <= devices.default_threads() <= devices.available_cpus()


def test_setup_applies_the_rule_and_the_option(monkeypatch):
    monkeypatch.setattr(devices, "available_cpus", lambda: 6)
    monkeypatch.setattr(devices.os, "getloadavg", lambda: (0.0, 0.0, 0.0))
    assert opt.setup("cpu", None, processes=2) == "cpu" and torch.get_num_threads() == 3
    opt.setup("cpu", None, processes=1)
    assert torch.get_num_threads() == 6
    opt.setup("cpu", 2)
    assert torch.get_num_threads() == 2
    with pytest.raises(ConfigError, match="--threads must be a positive integer"):
        opt.setup("cpu", -1)


def _probe_forgetting(monkeypatch):
    """Record torch's thread count at the moment the forgetting probe runs inside the command."""
    import rnnmem.probes.forgetting as F

    seen = []
    real = F.forgetting

    def probe(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return real(*args, **kwargs)

    monkeypatch.setattr(F, "forgetting", probe)
    return seen


TINY_FORGETTING = ["forgetting", "-u", "2", "-i", "1", "--runs", "1", "--T", "50", "--P", "5"]


@pytest.mark.parametrize("threads", [1, 3])
def test_threads_option_reaches_the_computation(monkeypatch, threads):
    seen = _probe_forgetting(monkeypatch)
    torch.set_num_threads(2 if threads != 2 else 1)
    res = CliRunner().invoke(app, [*TINY_FORGETTING, "--threads", str(threads)], env=WIDE)
    assert res.exit_code == 0, res.output
    assert seen == [threads]


def test_default_threads_inside_a_command(monkeypatch):
    seen = _probe_forgetting(monkeypatch)
    monkeypatch.setattr(devices, "available_cpus", lambda: 4)
    monkeypatch.setattr(devices.os, "getloadavg", lambda: (1.5, 1.0, 1.0))  # one core busy elsewhere
    torch.set_num_threads(1)
    res = CliRunner().invoke(app, TINY_FORGETTING, env=WIDE)
    assert res.exit_code == 0, res.output
    assert seen == [devices.default_threads(1, cpus=4, load=1.5)] == [3]


def test_pool_workers_use_one_thread():
    from rnnmem.store.executors import LocalExecutor

    torch.set_num_threads(2)
    ex = LocalExecutor("rnnmem.store.testing:toy", workers=1)
    try:
        assert ex._ensure_pool().submit(torch.get_num_threads).result(timeout=120) == 1
    finally:
        ex.close()


def test_every_computing_command_has_threads():
    cmd = typer.main.get_command(app)
    have = {name for name, c in _walk(cmd) if any(p.name == "threads" for p in c.params)}
    computing = {"forgetting", "card", "bench-task", "connectivity", "serve", "sweep", "train-autocomplete",
                 "reproduce muccino", "reproduce distill", "reproduce zhao", "reproduce zhao-reviews",
                 "reproduce zhao-control", "reproduce zhang"}
    assert computing <= have, computing - have


# ----------------------------------------------------------------------------- item 8: --device
DEVICE_COMMANDS = {
    "forgetting": [],
    "card": [],
    "bench-task": ["--T", "5"],
    "connectivity": ["--model", "m.pt", "--text", "a"],
    "serve": ["--model", "m.pt"],
    "train-autocomplete": ["--synthetic"],
    "reproduce muccino": ["--quick"],
    "reproduce distill": ["--quick"],
    "reproduce zhao": ["--quick", "--data-dir", "nowhere"],
    "reproduce zhao-reviews": ["--data", "reviews.json"],
    "reproduce zhao-control": [],
    "reproduce zhang": ["--quick"],
    "reproduce architectures": ["--quick"],
}


def test_device_commands_are_all_listed():
    cmd = typer.main.get_command(app)
    have = {name for name, c in _walk(cmd) if any(p.name == "device" for p in c.params)}
    assert have == set(DEVICE_COMMANDS)


@pytest.mark.parametrize("device", ["nonsense", "cuda", "mps"])
@pytest.mark.parametrize("command", sorted(DEVICE_COMMANDS))
def test_bad_device_is_one_error_before_anything_runs(monkeypatch, capsys, tmp_path, command, device):
    if device.startswith("cuda") and torch.cuda.is_available() and torch.cuda.device_count() > 1:
        pytest.skip("this machine has the CUDA device")
    if device == "cuda" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "out"
    args = [*command.split(), *DEVICE_COMMANDS[command], "--device", device]
    if any(p.name == "out" for p in dict(_walk(typer.main.get_command(app)))[command].params):
        args += ["--out", str(out)]
    code, stdout, err = run_main(monkeypatch, capsys, args)
    assert_one_error_line(code, stdout, err, repr(device))
    assert not out.exists()  # nothing was set up, let alone computed


@pytest.mark.cuda
def test_cuda_index_beyond_the_devices_is_refused():
    n = torch.cuda.device_count()
    with pytest.raises(ConfigError, match=f"sees {n} CUDA device"):
        devices.resolve_device(f"cuda:{n}")
    assert devices.resolve_device(f"cuda:{n - 1}").index == n - 1


def test_sweep_checks_the_device_of_its_configs_first(monkeypatch, capsys, tmp_path):
    import yaml

    from rnnmem.store import sweep as S

    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump({"study": "forgetting", "grid": {"units": [2]},
                                    "fixed": {"input_size": 1, "T": 50, "P": 5, "device": "cuda:7"},
                                    "seeds": 1, "db": str(tmp_path / "r.sqlite")}))
    monkeypatch.setattr(S, "run_sweep", lambda *a, **k: pytest.fail("the sweep ran"))
    code, out, err = run_main(monkeypatch, capsys, ["sweep", str(path)])
    if torch.cuda.is_available() and torch.cuda.device_count() > 7:  # pragma: no cover
        pytest.skip("this machine has cuda:7")
    assert_one_error_line(code, out, err, "cuda:7")


# ----------------------------------------------------------------------------- item 9: connectivity length
@pytest.fixture()
def checkpoint(tmp_path):
    from rnnmem.train.autocomplete import AutocompleteModel, save_checkpoint

    model = AutocompleteModel(cell="gru", hidden=8, layers=1, embedding=6, convention="tf1",
                              words=["<eos>", "<unknown>", "the", "cat", "sat"], seed=0)
    return str(save_checkpoint(model, tmp_path / "m.pt"))


def test_connectivity_refuses_text_over_the_limit_stating_the_memory(monkeypatch, capsys, checkpoint):
    from rnnmem.report import explorer

    monkeypatch.setattr(explorer, "connectivity_matrix", lambda *a, **k: pytest.fail("computed"))
    text = "ab " * 400  # 1,201 characters after cleaning (a leading space is added)
    code, out, err = run_main(monkeypatch, capsys, ["connectivity", "--model", checkpoint, "--text", text])
    assert_one_error_line(code, out, err, f"the limit is {explorer.DEFAULT_MAX_CHARS}")
    assert "--max-chars" in err and "of memory" in err
    code, out, err = run_main(monkeypatch, capsys, ["connectivity", "--model", checkpoint, "--text", "the cat",
                                                    "--max-chars", "5"])
    assert_one_error_line(code, out, err, "the limit is 5")


def test_connectivity_max_chars_raises_the_limit(checkpoint):
    res = CliRunner().invoke(app, ["connectivity", "--model", checkpoint, "--text", "the cat sat " * 3,
                                   "--max-chars", "40"], env=WIDE)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["connectivity", "--model", checkpoint, "--text", "the cat sat " * 3,
                                   "--max-chars", "30"], env=WIDE)
    assert isinstance(res.exception, InputError) and "the limit is 30" in str(res.exception)


def test_memory_estimate_covers_the_matrix_that_crashed():
    """100k characters made the probe allocate its float32 [T, T] matrix (40 GB) and crash; the
    estimate counts that matrix and its float64 copies, and grows with T^2."""
    from rnnmem.probes.connectivity import memory_estimate
    from rnnmem.report.explorer import format_bytes

    T = 100_000
    est = memory_estimate(T, hidden=600, vocabulary=16386, dtype="float32", layers=2)
    assert est >= T * T * 4
    assert memory_estimate(2 * T, 600, 16386) > 3.5 * memory_estimate(T, 600, 16386)  # T^2 dominates
    assert format_bytes(est).endswith("GB") or format_bytes(est).endswith("TB")


# ----------------------------------------------------------------------------- item 10: zhao series
def _series(tmp_path, values, name="s.csv", text=None):
    path = tmp_path / name
    path.write_text(text if text is not None else "x\n" + "\n".join(str(v) for v in values) + "\n")
    return path


@pytest.fixture()
def no_training(monkeypatch):
    """Fail the test if a zhao task is ever run."""
    import rnnmem.store as store

    monkeypatch.setattr(store, "run_tasks", lambda *a, **k: pytest.fail("tasks ran before the input check"))


def _zhao(monkeypatch, capsys, tmp_path, data, split, *extra):
    return run_main(monkeypatch, capsys, ["reproduce", "zhao", "--data", str(data), "--split", split,
                                          "--out", str(tmp_path / "out"), "--workers", "0", *extra])


def test_zhao_too_short_blocks_are_refused_up_front(monkeypatch, capsys, tmp_path, no_training):
    data = _series(tmp_path, [0.1, 0.5, 0.2, 0.9, 0.4])
    code, out, err = _zhao(monkeypatch, capsys, tmp_path, data, "2,1,1")
    assert_one_error_line(code, out, err, "the validation block has 1 pair(s); at least 10")
    data = _series(tmp_path, [((i * 37) % 11) / 10 for i in range(80)], "k.csv")
    code, out, err = _zhao(monkeypatch, capsys, tmp_path, data, "40,15,15")
    assert_one_error_line(code, out, err, "the training block has 40 pair(s) but the memory models look back K = 100")
    assert "--K" in err
    # the same split is fine without the filter models (checked, then run: stopped here by no_training)
    from rnnmem.studies.zhao import check_datasets, custom_dataset

    check_datasets([custom_dataset(data, "x", (40, 15, 15))], "train", None)
    check_datasets([custom_dataset(data, "x", (40, 15, 15))], "train", 25)


def test_zhao_blank_line_names_the_line(monkeypatch, capsys, tmp_path, no_training):
    text = "x\n" + "\n".join(str(i % 7) for i in range(30)) + "\n\n" + "\n".join(str(i % 5) for i in range(30)) + "\n"
    data = _series(tmp_path, None, "blank.csv", text=text)
    code, out, err = _zhao(monkeypatch, capsys, tmp_path, data, "30,12,12", "--models", "rnn", "--ablation-models", "")
    assert_one_error_line(code, out, err, "line 32 is blank")


def test_zhao_constant_series_is_one_clear_error(monkeypatch, capsys, tmp_path, no_training):
    data = _series(tmp_path, [3.0] * 60, "flat.csv")
    code, out, err = _zhao(monkeypatch, capsys, tmp_path, data, "30,12,12", "--models", "rnn,lstm",
                           "--ablation-models", "")
    assert_one_error_line(code, out, err, "constant")
    assert "series flat" in err and "{" not in err  # names the series, no config dump


# ----------------------------------------------------------------------------- item 13: checks before compute
def test_muccino_bad_reference_fails_before_the_grid(monkeypatch, capsys, tmp_path, no_training):
    bad = tmp_path / "ref.csv"
    bad.write_text("cell,input_size,units\nlstm,1,1\n")
    code, out, err = run_main(monkeypatch, capsys, ["reproduce", "muccino", "--quick", "--reference", str(bad),
                                                    "--out", str(tmp_path / "o")])
    assert_one_error_line(code, out, err, "lacks columns ['mean_steps']")
    bad.write_text("cell,input_size,units,mean_steps\nlstm,1,1,many\n")
    code, out, err = run_main(monkeypatch, capsys, ["reproduce", "muccino", "--quick", "--reference", str(bad),
                                                    "--out", str(tmp_path / "o")])
    assert_one_error_line(code, out, err, "non-numeric value 'many' at line 2")
    code, out, err = run_main(monkeypatch, capsys, ["reproduce", "muccino", "--quick", "--reference",
                                                    str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")])
    assert_one_error_line(code, out, err, "not found")


def test_zhao_bad_reference_fails_before_training(monkeypatch, capsys, tmp_path, no_training):
    data = _series(tmp_path, [((i * 37) % 11) / 10 for i in range(80)], "k.csv")
    code, out, err = _zhao(monkeypatch, capsys, tmp_path, data, "40,15,15", "--models", "rnn", "--ablation-models",
                           "", "--reference", str(tmp_path / "missing.csv"))
    assert_one_error_line(code, out, err, "reference table")


def test_zhao_control_checks_models_before_generating(monkeypatch, capsys, tmp_path):
    import rnnmem.tasks.rnn_generated as G

    monkeypatch.setattr(G, "generate_rnn_series", lambda *a, **k: pytest.fail("generated before the check"))
    code, out, err = run_main(monkeypatch, capsys, ["reproduce", "zhao-control", "--models", "rnn,foo",
                                                    "--out", str(tmp_path / "o")])
    assert_one_error_line(code, out, err, "unknown model(s) ['foo']")
    assert not (tmp_path / "o").exists()


def test_output_paths_are_checked_before_computing(monkeypatch, capsys, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    seen = _probe_forgetting(monkeypatch)
    code, out, err = run_main(monkeypatch, capsys, [*TINY_FORGETTING, "--csv", str(a_file / "t.csv")])
    assert_one_error_line(code, out, err, "is a file")
    code, out, err = run_main(monkeypatch, capsys, ["card", "--out", str(a_file)])
    assert_one_error_line(code, out, err, "is a file, not a folder")
    assert seen == []


# ----------------------------------------------------------------------------- item 14: corpus hint
def test_train_autocomplete_missing_corpus_suggests_synthetic(monkeypatch, capsys, tmp_path):
    code, out, err = run_main(monkeypatch, capsys, ["train-autocomplete", "--corpus", str(tmp_path / "none.txt"),
                                                    "--out", str(tmp_path / "o")])
    assert_one_error_line(code, out, err, "--synthetic")
    assert "--quick" not in err
    code, out, err = run_main(monkeypatch, capsys, ["reproduce", "distill", "--corpus", str(tmp_path / "none.txt")])
    assert_one_error_line(code, out, err, "(--quick)")
    code, out, err = run_main(monkeypatch, capsys, ["reproduce", "zhang", "--corpus", str(tmp_path / "none.txt")])
    assert_one_error_line(code, out, err, "(--quick)")


# ----------------------------------------------------------------------------- item 17: help
def _walk(cmd, prefix=""):
    """(name, command) for every command of the click tree under ``cmd``."""
    for name, sub in sorted(getattr(cmd, "commands", {}).items()):
        full = f"{prefix}{name}"
        if getattr(sub, "commands", None):
            yield from _walk(sub, full + " ")
        else:
            yield full, sub


def _all_commands():
    return [name for name, _ in _walk(typer.main.get_command(app))]


def _help(args):
    res = CliRunner().invoke(app, [*args, "--help"], env=WIDE)
    assert res.exit_code == 0, res.output
    return res.output


@pytest.mark.parametrize("command", ["", "reproduce"] + _all_commands())
def test_help_shows_no_python_types(command):
    text = _help(command.split())
    assert "<bool>" not in text and "<list[" not in text, text


def _line(text, option):
    return next(ln for ln in text.splitlines() if f" {option} " in ln)


def test_help_metavars():
    card = _help(["card"])
    assert "<" not in _line(card, "--compare").split("Compare")[0]          # a flag shows no type
    assert _line(card, "files...").split()[2] == "<path>"                   # element type, not list[Path]
    assert _line(_help(["results"]), "--merge").split()[2] == "<path>"
    assert _line(_help(["connectivity"]), "--normalize").split()[3] == "Divide"   # --normalize --raw Divide...


def test_every_option_of_every_command_has_help():
    missing = []
    for name, cmd in _walk(typer.main.get_command(app)):
        for p in cmd.params:
            if not (getattr(p, "help", None) or "").strip():
                missing.append(f"{name} {p.name}")
    assert not missing, missing


def test_forgetting_cell_help_lists_every_unit():
    from rnnmem.cells import list_units

    text = _help(["forgetting"])
    line = next(ln for ln in text.splitlines() if "--cell" in ln)
    assert all(u in line for u in list_units()), line
    assert len(list_units()) >= 10  # every registered unit, the ten 2019-era ones and the modern ones


def test_zhao_data_options_say_how_they_differ():
    cmd = dict(_walk(typer.main.get_command(app)))["reproduce zhao"]
    helps = {p.name: p.help for p in cmd.params}
    assert "FOLDER" in helps["data_dir"] and "four series" in helps["data_dir"]
    assert "With --data-dir" in helps["datasets"] and "SUBSET" in helps["datasets"]
    assert "ONE series" in helps["dataset"] and "rnn-generated" in helps["dataset"]
    assert "YOUR OWN" in helps["data"] and "instead of --data-dir" in helps["data"]


def test_zhao_quick_presets(monkeypatch, tmp_path):
    import rnnmem.studies.zhao as Z

    calls = []

    def fake(out, **kw):
        calls.append(kw)
        return {"runs": 0, "computed": 0, "wall_s": 0.0, "html": "h", "markdown": "m"}

    monkeypatch.setattr(Z, "reproduce", fake)
    base = ["reproduce", "zhao", "--data-dir", str(tmp_path), "--out", str(tmp_path / "o")]
    assert CliRunner().invoke(app, [*base, "--quick"]).exit_code == 0
    assert CliRunner().invoke(app, [*base, "--quick", "--seeds", "7", "--ablation-models", "mrnnf"]).exit_code == 0
    assert CliRunner().invoke(app, base).exit_code == 0
    quick, override, full = calls
    assert (quick["seeds"], quick["max_epochs"], quick["ablation_models"]) == (5, 100, [])
    assert (override["seeds"], override["max_epochs"], override["ablation_models"]) == (7, 100, ["mrnnf"])
    assert (full["seeds"], full["max_epochs"], full["ablation_models"]) == (100, 1000, list(Z.ABLATION_MODELS))
