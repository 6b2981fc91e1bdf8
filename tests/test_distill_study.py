"""``rnnmem reproduce distill`` end to end on tiny settings, the published facts and the CLI errors."""

from __future__ import annotations

import json
import math
import re
import sys

import numpy as np
import pandas as pd
import pytest

from rnnmem.errors import ConfigError, InputError
from rnnmem.studies import distill
from rnnmem.train.autocomplete import load_checkpoint


def test_quick_reproduction_writes_report_and_resumes(tmp_path):
    out = tmp_path / "study"
    res = distill.reproduce(out, quick=True, steps=4, hidden=8, models=("gru", "nlstm"), eval_every=2,
                            command="test")
    for name in ("report.md", "report.html", "results.json", "test_results.csv", "known_chars.csv",
                 "comparison.csv", "parameters.csv", "dependencies.csv", "figures/training_curves.png",
                 "figures/known_chars.png", "figures/dependencies.png", "models/gru/model.pt",
                 "models/nlstm/checkpoint.pt", "models/gru/log.csv", "data/synthetic.txt"):
        assert (out / name).is_file(), name
    comp = res["comparison"]
    assert list(comp["model"]) == ["GRU", "Nested LSTM"]
    assert comp.loc[0, "published accuracy"] == distill.PUBLISHED_TEST["GRU"][1]
    assert res["parameters"]["match"].all()
    page = (out / "explorer.html").read_text()  # the connectivity explorer, both models side by side
    assert "GRU" in page and "Nested LSTM" in page and "<script" in page
    md = (out / "report.md").read_text()
    assert "Quick mode" in md and "0.5201" in md and "planted" in md.lower()
    # the static connectivity figures, the profile with its half-life and the link to the explorer
    for name in ("figures/connectivity_gru.png", "figures/connectivity_nested_lstm.png",
                 "figures/connectivity_profile.png", "connectivity_profile.csv"):
        assert (out / name).is_file(), name
        assert name.startswith("connectivity") or f"]({name})" in md, name
    assert "[explorer.html](explorer.html)" in md and "Half-life: the first distance" in md
    assert "<a href='explorer.html'>explorer.html</a>" in (out / "report.html").read_text()
    hl = json.loads((out / "results.json").read_text())["connectivity"]["half_life"]
    assert set(hl) == {"GRU", "Nested LSTM"} and all(h["reference"] == 0 for h in hl.values())
    explorer_data = json.loads(re.search(r'id="rnnmem-data">(.*?)</script>', page, re.S).group(1).replace("<\\/", "</"))
    groups = {e["group"] for e in explorer_data["examples"]}
    assert groups == {"planted dependencies (synthetic corpus, test split)", "test set"}
    assert explorer_data["scale"] == "log" and explorer_data["decades"] == distill.CONN_DECADES
    html = (out / "report.html").read_text()
    assert "data:image/png;base64" in html and not re.search(r"(src|href)=['\"]https?:", html)  # offline
    cfg = json.loads((out / "results.json").read_text())
    assert cfg["config"]["convention"] == "tf1" and cfg["config"]["dtype"] == "float32"
    assert cfg["models"]["GRU"]["steps"] == 4 and cfg["config"]["data"]["corpus_sha256"]
    model = load_checkpoint(out / "models" / "gru" / "model.pt")
    assert model.cell == "gru" and model.hidden == 8 and model.words == res["data"].words
    # the same command again resumes from the checkpoints instead of retraining
    again = distill.reproduce(out, quick=True, steps=4, hidden=8, models=("gru", "nlstm"), eval_every=2,
                              explorer=False)
    assert json.loads((out / "results.json").read_text())["models"]["GRU"]["resumed_from"] == 4
    pd.testing.assert_frame_equal(again["summary"], res["summary"])


def test_published_facts_match_the_reference_readme(shared_data):
    text = (shared_data / "distill2019" / "README.md").read_text()
    names = {"GRU": "GRU", "LSTM": "LSTM", "Nested LSTM": "Nested LSTM"}
    for name in names:
        m = re.search(rf"^\| {name} \| ([\d.]+) \| ([\d.]+)% \|$", text, re.M)
        assert m, name
        assert distill.PUBLISHED_TEST[name] == (float(m.group(1)), round(float(m.group(2)) / 100, 6))
        row = re.search(rf"^\| {name} \| (\.\d+(?: \| \.\d+){{8}}) \|$", text, re.M)
        assert tuple(float(v) for v in row.group(1).split(" | ")) == distill.PUBLISHED_KNOWN_TOP1[name]
    counts = re.search(r"GRU (\d+) / (\d+) / (\d+)", text).groups()
    assert distill.PUBLISHED_PARAMS["GRU"] == tuple(int(c) for c in counts)
    lstm = re.search(r"LSTM and Nested LSTM\s+(\d+) / (\d+) / (\d+)", text).groups()
    assert distill.PUBLISHED_PARAMS["LSTM"] == distill.PUBLISHED_PARAMS["Nested LSTM"] == tuple(int(c) for c in lstm)
    assert str(distill.PUBLISHED_STEPS) in text.replace(",", "")


def _cli(monkeypatch, capsys, *args) -> tuple[int, str]:
    from rnnmem import cli

    monkeypatch.setattr(sys, "argv", ["rnnmem", *args])
    try:
        cli.main()
        code = 0
    except SystemExit as exc:  # typer exits 0 on success, main() 2 on rnnmem errors
        code = exc.code
    return code, capsys.readouterr().err


def test_cli_errors_are_one_line(monkeypatch, capsys, tmp_path):
    code, err = _cli(monkeypatch, capsys, "reproduce", "distill", "--out", str(tmp_path))
    assert code == 2 and "either a corpus" in err and len(err.strip().splitlines()) == 1
    code, err = _cli(monkeypatch, capsys, "reproduce", "distill", "--corpus", str(tmp_path / "text8"),
                     "--out", str(tmp_path))
    assert code == 2 and "not found" in err and len(err.strip().splitlines()) == 1
    bad = tmp_path / "bad.txt"
    bad.write_text(" Hello world")
    code, err = _cli(monkeypatch, capsys, "train-autocomplete", "--corpus", str(bad), "--out", str(tmp_path / "t"),
                     "--cache-dir", str(tmp_path / "c"))
    assert code == 2 and "not text8 format" in err
    code, err = _cli(monkeypatch, capsys, "reproduce", "distill", "--quick", "--models", "gru,rnn",
                     "--out", str(tmp_path))
    assert code == 2 and "unknown model" in err


def test_cli_train_autocomplete_and_synthetic_text(monkeypatch, capsys, tmp_path):
    code, _ = _cli(monkeypatch, capsys, "synthetic-text", str(tmp_path / "s.txt"), "--words", "3000",
                   "--distances", "1,2")
    assert code == 0
    assert (tmp_path / "s.txt").is_file() and (tmp_path / "s.txt.dependencies.csv").is_file()
    code, _ = _cli(monkeypatch, capsys, "train-autocomplete", "--corpus", str(tmp_path / "s.txt"),
                   "--out", str(tmp_path / "m"), "--hidden", "8", "--layers", "1", "--steps", "3",
                   "--max-length", "40", "--cache-dir", str(tmp_path / "c"), "--threads", "1")
    assert code == 0
    model = load_checkpoint(tmp_path / "m" / "model.pt")
    assert model.hidden == 8 and (tmp_path / "m" / "curves.png").is_file()
    assert len(pd.read_csv(tmp_path / "m" / "log.csv")) >= 1


def test_half_life_is_exact_on_a_geometric_profile():
    from rnnmem.probes.connectivity import half_life

    lags = np.arange(60)
    for q in (0.5, 0.8, 0.97):
        hl = half_life(lags, 2.5 * q ** lags)
        assert hl["half_life"] == pytest.approx(math.log(2) / -math.log(q), rel=1e-12) and not hl["censored"]
        one = half_life(lags, 2.5 * q ** lags, reference=1)  # half of the value at distance 1: one step later
        assert one["half_life"] == pytest.approx(1 + math.log(2) / -math.log(q), rel=1e-12)
    # never halves within the text: censored, a lower bound, no extrapolated number
    slow = half_life(lags, 0.999 ** lags)
    assert slow["censored"] and slow["half_life"] is None and slow["at_least"] == 59
    assert distill.half_life_text(slow).startswith("> 59 characters (censored")
    # unordered lags, a NaN and a zero are skipped; a value exactly at half is the crossing
    assert half_life([2, 0, 1, 3], [0.5, 1.0, np.nan, 0.0])["half_life"] == 2.0
    with pytest.raises(InputError, match="reference distance 0"):
        half_life([1, 2], [1.0, 0.5])
    with pytest.raises(ConfigError, match="0 or 1"):
        half_life(lags, q ** lags, reference=2)
