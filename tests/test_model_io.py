"""Loading a user's model file: never unpickle code by default (--trust-checkpoint opts in), one clear
error for a state_dict with missing keys, and options that contradict the file are refused."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.errors import ConfigError, InputError
from rnnmem.model_io import load_recurrent, pickled_globals


class _Planted:
    """Unpickling this creates the file ``marker`` (as a malicious pickle could run any code)."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _cli(*args):
    """The real command line (exit status 2 and one ``error:`` line for bad input)."""
    return subprocess.run([sys.executable, "-m", "rnnmem.cli", *args], capture_output=True, text=True, timeout=300)


def _invoke(*args) -> tuple[int, str]:
    """The command in this process: (0, output) or (2, the RnnmemError message main() prints)."""
    from typer.testing import CliRunner

    from rnnmem.cli import app
    from rnnmem.errors import RnnmemError

    res = CliRunner().invoke(app, list(args))
    if isinstance(res.exception, RnnmemError):
        return 2, str(res.exception)
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    return res.exit_code, res.output


@pytest.fixture(params=["torch_save", "plain_pickle"])
def planted(request, tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "model.pt"
    if request.param == "torch_save":
        torch.save(_Planted(marker), path)
    else:
        path.write_bytes(pickle.dumps(_Planted(marker)))
    return path, marker


def test_malicious_pickle_is_refused_without_running(planted):
    path, marker = planted
    name = f"{open.__module__}.{open.__qualname__}"  # what pickle records for open (io.open)
    assert pickled_globals(path) == [name]
    with pytest.raises(InputError, match="--trust-checkpoint") as err:
        load_recurrent(path)
    assert f"pickled Python objects ({name})" in str(err.value)
    assert not marker.exists(), "loading ran the file's code"


def test_malicious_pickle_cli_and_autocomplete_checkpoint(tmp_path):
    marker = tmp_path / "marker"
    path = tmp_path / "evil.pt"
    torch.save(_Planted(marker), path)
    res = _cli("forgetting", "--state-dict", str(path), "--T", "200", "--P", "10")
    assert res.returncode == 2 and "--trust-checkpoint" in res.stderr and "Traceback" not in res.stderr
    code, msg = _invoke("card", "--checkpoint", str(path), "--out", str(tmp_path / "card"))
    assert code == 2 and "--trust-checkpoint" in msg
    from rnnmem.train.autocomplete import load_checkpoint

    with pytest.raises(InputError, match="never unpickles code"):
        load_checkpoint(path)
    assert not marker.exists()


def test_pickled_module_needs_the_opt_in(tmp_path):
    torch.manual_seed(0)
    mod = nn.LSTM(3, 5)
    path = tmp_path / "lstm.pt"
    torch.save(mod, path)
    with pytest.raises(InputError, match=r"torch\.nn\.modules\.rnn\.LSTM.*--trust-checkpoint"):
        load_recurrent(path)
    unit = load_recurrent(path, trust_checkpoint=True)
    assert unit.kind == "lstm" and unit.input_size == 3 and unit.hidden_size == 5
    x = torch.randn(7, 2, 3)
    np.testing.assert_allclose(unit(x)[0].detach(), mod(x)[0].detach(), atol=1e-6)
    code, out = _invoke("forgetting", "--state-dict", str(path), "--trust-checkpoint", "--T", "300", "--P", "10",
                        "--runs", "1")
    assert code == 0, out


def test_state_dict_with_missing_keys_names_them(tmp_path):
    sd = nn.LSTM(2, 4, num_layers=2).state_dict()
    del sd["weight_hh_l0"]
    torch.save(sd, tmp_path / "a.pt")
    with pytest.raises(InputError, match=r"no 'weight_hh_l0' \(a torch.nn.RNN/LSTM/GRU state_dict has"):
        load_recurrent(tmp_path / "a.pt")
    sd = nn.GRU(2, 4, num_layers=2).state_dict()
    del sd["bias_hh_l1"]
    torch.save(sd, tmp_path / "b.pt")
    with pytest.raises(InputError, match="no 'bias_hh_l1'"):
        load_recurrent(tmp_path / "b.pt")
    sd = nn.GRU(2, 4).state_dict()
    sd["weight_hh_l0"] = 3
    torch.save(sd, tmp_path / "c.pt")
    with pytest.raises(InputError, match="'weight_hh_l0' is int, expected a 2-D floating-point tensor"):
        load_recurrent(tmp_path / "c.pt")
    unit_sd = cells.build("gru", 2, 3, seed=0).state_dict()
    del unit_sd["layer_params.0.W_h"]
    torch.save(unit_sd, tmp_path / "d.pt")
    with pytest.raises(InputError, match="no 'layer_params.0.W_h'"):
        load_recurrent(tmp_path / "d.pt", cell="gru")
    code, msg = _invoke("forgetting", "--state-dict", str(tmp_path / "a.pt"), "--T", "200", "--P", "10")
    assert code == 2 and "weight_hh_l0" in msg


def test_options_that_contradict_the_file_are_refused(tmp_path):
    path = tmp_path / "gru.pt"
    torch.save(nn.GRU(2, 4).state_dict(), path)
    with pytest.raises(ConfigError, match=r"--cell lstm \(the file holds gru\); --units 8 \(the file holds 4\)"):
        load_recurrent(path, expect={"cell": "lstm", "units": 8})
    assert load_recurrent(path, expect={"cell": "gru", "units": 4, "input_size": 2, "layers": 1,
                                        "dtype": "float32", "convention": "torch"}).hidden_size == 4
    res = _cli("forgetting", "--state-dict", str(path), "-u", "8", "--cell", "lstm", "--T", "200", "--P", "10")
    assert res.returncode == 2
    assert "--cell lstm (the file holds gru)" in res.stderr and "--units 8 (the file holds 4)" in res.stderr
    code, msg = _invoke("card", "--checkpoint", str(path), "-i", "3", "--out", str(tmp_path / "card"))
    assert code == 2 and "--input-size 3 (the file holds 2)" in msg
    # options left at their defaults are not conflicts, and matching ones are accepted
    code, out = _invoke("forgetting", "--state-dict", str(path), "-u", "4", "-i", "2", "--cell", "gru", "--T", "300",
                        "--P", "10", "--runs", "1")
    assert code == 0, out


def test_unit_state_dict_needs_its_cell_on_the_cli(tmp_path):
    path = tmp_path / "unit.pt"
    torch.save(cells.build("gru", 2, 3, seed=0, convention="keras").state_dict(), path)
    code, msg = _invoke("forgetting", "--state-dict", str(path), "--T", "200", "--P", "10")
    assert code == 2 and "say which cell it is (--cell)" in msg
    code, msg = _invoke("forgetting", "--state-dict", str(path), "--cell", "gru", "-u", "5", "--T", "200", "--P", "10")
    assert code == 2 and "--units 5 (the file holds 3)" in msg
