"""Explorer page data, HTML, the live server's JSON endpoint and the CLI (no browser needed)."""

from __future__ import annotations

import json
import re
import threading
import urllib.error
import urllib.request

import numpy as np
import pytest
from matplotlib import colormaps
from typer.testing import CliRunner

from rnnmem.cli import app
from rnnmem.errors import ConfigError, InputError
from rnnmem.probes.connectivity import connectivity_matrix, top_k
from rnnmem.report.explorer import analyze, clean_text, explorer_html, text_words, viridis_stops, write_explorer
from rnnmem.report.server import make_server
from rnnmem.train.autocomplete import AutocompleteModel, save_checkpoint

WORDS = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "a", "mat", "dog"]
ALPHABET = [" "] + [chr(c) for c in range(97, 123)]


def small_model(cell="gru", seed=0):
    return AutocompleteModel(cell=cell, hidden=8, layers=2, embedding=6, convention="tf1", words=WORDS, seed=seed)


@pytest.fixture(scope="module")
def models():
    return {"GRU": small_model("gru"), "LSTM": small_model("lstm", seed=1)}


def page_data(page: str) -> dict:
    m = re.search(r'<script type="application/json" id="rnnmem-data">(.*?)</script>', page, re.S)
    return json.loads(m.group(1).replace("<\\/", "</"))


def test_clean_text_and_word_units():
    assert clean_text("The CAT,  sat!\n", ALPHABET) == " the cat sat "
    assert clean_text("", ALPHABET) == "" and clean_text(" ?! ", ALPHABET) == ""
    assert text_words(" the cat ") == ["the"] * 4 + ["cat"] * 4 + [None]
    assert text_words(" a") == ["a", "a"]


def test_analysis_matches_the_probe_and_the_model(models):
    data = analyze(models, "The cat sat on the zebra")
    text = " the cat sat on the zebra"
    assert data["text"] == text and data["tokens"] == list(text)
    for m in data["models"]:
        model = models[m["name"]]
        words = text_words(text)
        want = [model.word_id(w) for w in words]
        assert want[-1] == 1  # 'zebra' is outside the vocabulary -> <unknown>, as in the data
        res = connectivity_matrix(model, text, targets=want)
        assert len(m["conn"]) == len(text) and [len(r) for r in m["conn"]] == list(range(1, len(text) + 1))
        for t_out in (0, 7, len(text) - 1):
            np.testing.assert_allclose(m["conn"][t_out], res.matrix[: t_out + 1, t_out], rtol=1e-3, atol=1e-12)
        assert m["targets"] == [WORDS[k] for k in want]
        tops = top_k(res.logits, 3, WORDS)
        for t in range(len(text)):
            assert [w for w, _ in m["top"][t]] == [w for _, w, _ in tops[t]]
            np.testing.assert_allclose([p for _, p in m["top"][t]], [p for _, _, p in tops[t]], rtol=1e-5)
            assert "<eos>" not in [w for w, _ in m["top"][t]]


def test_predicted_targets_and_trailing_space(models):
    data = analyze(models, "the cat ", target="predicted")
    for m in data["models"]:
        assert m["targets"] == [row[0][0] for row in m["top"]]
    text_mode = analyze(models, "the cat ")
    m = text_mode["models"][0]
    assert m["targets"][-1] == m["top"][-1][0][0]  # no word after the final space: top-1
    assert m["target_source"][-1].startswith("top-1") and m["target_source"][0] == "word in the text"


def test_page_is_self_contained(models, tmp_path):
    path = write_explorer(models, "the cat sat on the mat", tmp_path / "page.html")
    page = path.read_text()
    assert page.startswith("<!DOCTYPE html>")
    assert not re.search(r"https?://|<script[^>]+src=|<link[^>]+href=|@import|url\(", page)
    data = page_data(page)
    assert [m["name"] for m in data["models"]] == ["GRU", "LSTM"]
    assert data["live"] is False and data["text"] == " the cat sat on the mat"
    assert data["viridis"] == viridis_stops()
    assert "function viridis" in page and "#models" in page  # the JS and CSS are inline


def test_viridis_stops_are_matplotlibs():
    stops = np.array(viridis_stops(64)) / 255
    cmap = colormaps["viridis"]
    for i in (0, 17, 40, 63):
        np.testing.assert_allclose(stops[i], cmap(i / 63)[:3], atol=1 / 255)


def test_script_breaking_text_is_escaped(models):
    data = analyze(models, "cat")
    data["models"][0]["name"] = "</script><b>x"
    page = explorer_html(data)
    assert page.count("</script>") == 2
    assert page_data(page)["models"][0]["name"] == "</script><b>x"


def test_bad_input(models, tmp_path):
    with pytest.raises(ConfigError, match="target"):
        analyze(models, "cat", target="word")
    with pytest.raises(ConfigError, match="at least one model"):
        analyze({}, "cat")
    with pytest.raises(InputError, match="limit is 5"):
        analyze(models, "the cat sat", max_chars=5)
    with pytest.raises(InputError, match="no letters"):
        write_explorer(models, "?!", tmp_path / "x.html")


@pytest.fixture()
def server(models):
    srv = make_server(models, port=0, text="the cat")
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def _post(url, body: bytes):
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_server_page_and_json_endpoint(server, models):
    with urllib.request.urlopen(server.url, timeout=30) as r:
        page = r.read().decode()
    data = page_data(page)
    assert data["live"] is True and data["api"] == "api/analyze" and data["text"] == " the cat"
    status, got = _post(server.url + "api/analyze", json.dumps({"text": "The dog sat"}).encode())
    assert status == 200
    want = analyze(models, "The dog sat", target="predicted")
    assert got["text"] == " the dog sat"
    for g, w in zip(got["models"], want["models"]):
        assert g["top"] == w["top"] and g["targets"] == w["targets"]
        np.testing.assert_allclose(g["conn"][-1], w["conn"][-1])
    with urllib.request.urlopen(server.url + "api/analyze?text=a%20cat", timeout=30) as r:
        assert json.loads(r.read())["text"] == " a cat"
    assert _post(server.url + "api/analyze", b"{not json")[0] == 400
    status, err = _post(server.url + "api/analyze", json.dumps({"text": "x" * 2000}).encode())
    assert status == 400 and "limit" in err["error"]
    assert _post(server.url + "api/analyze", json.dumps({"text": 3}).encode())[0] == 400
    assert _post(server.url + "nowhere", b"{}")[0] == 404


def test_cli_connectivity_writes_page_and_table(models, tmp_path):
    paths = []
    for name, model in models.items():
        paths.append(f"{name}={save_checkpoint(model, tmp_path / (name + '.pt'))}")
    out = tmp_path / "out.html"
    csv = tmp_path / "conn.csv"
    result = CliRunner().invoke(app, ["connectivity", "--model", paths[0], "--model", paths[1],
                                      "--text", "the cat sat", "--html", str(out), "--csv", str(csv)])
    assert result.exit_code == 0, result.output
    data = page_data(out.read_text())
    assert [m["name"] for m in data["models"]] == ["GRU", "LSTM"]
    ref = analyze(models, "the cat sat")
    assert data["models"][0]["top"] == ref["models"][0]["top"]
    import pandas as pd

    table = pd.read_csv(csv, keep_default_na=False)
    T = len(" the cat sat")
    assert len(table) == 2 * T * (T + 1) // 2 and set(table["model"]) == {"GRU", "LSTM"}
    assert "Mean connectivity by lag" in result.output
    bad = CliRunner().invoke(app, ["connectivity", "--model", str(tmp_path / "missing.pt"), "--text", "a"])
    assert bad.exit_code != 0


# ----------------------------------------------------------------------------- colour scale and example texts
from rnnmem.report.explorer import check_scale, colour_level  # noqa: E402


def test_colour_level_log_and_linear():
    v = np.array([1.0, 1e-1, 1e-2, 1e-4, 1e-12, 0.0])
    np.testing.assert_allclose(colour_level(v), [1.0, 0.75, 0.5, 0.0, 0.0, 0.0])  # 4 decades: the default
    np.testing.assert_allclose(colour_level(v, decades=12), [1.0, 11 / 12, 10 / 12, 8 / 12, 0.0, 0.0])
    np.testing.assert_allclose(colour_level(v, "linear"), [1.0, 0.1, 0.01, 1e-4, 1e-12, 0.0])
    with pytest.raises(ConfigError, match="scale must be one of log, linear"):
        check_scale("sqrt", 4)
    with pytest.raises(ConfigError, match="integer from 1 to 16"):
        check_scale("log", 0)
    with pytest.raises(ConfigError, match="integer from 1 to 16"):
        colour_level(v, "log", 2.5)


def test_page_carries_scale_and_example_texts(models, tmp_path):
    path = write_explorer(models, "the cat", tmp_path / "ex.html", examples=[("a dog", "a dog sat"),
                                                                              ("planted", "gap 1", "the mat")],
                          decades=6, scale="linear")
    data = page_data(path.read_text())
    assert data["scale"] == "linear" and data["decades"] == 6
    ex = data["examples"]
    assert [e["label"] for e in ex] == ["the given text", "a dog", "gap 1"] and ex[2]["group"] == "planted"
    assert ex[0]["main"] and ex[0]["data"] is None  # the page's own data, not repeated
    assert ex[1]["data"]["text"] == " a dog sat"
    want = analyze(models, "a dog sat")
    np.testing.assert_allclose(ex[1]["data"]["models"][0]["conn"][-1], want["models"][0]["conn"][-1])
    assert page_data(explorer_html(analyze(models, "cat")))["examples"] == []  # one text: no menu
    with pytest.raises(ConfigError, match="an example must be"):
        write_explorer(models, "cat", tmp_path / "bad.html", examples=[("only a label",)])
    with pytest.raises(ConfigError, match="scale must be"):
        write_explorer(models, "cat", tmp_path / "bad.html", scale="log10")
