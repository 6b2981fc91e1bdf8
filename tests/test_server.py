"""The live explorer server's safety: Host-header guard, loud non-loopback bind, a deadline for
half-sent requests, quiet client disconnects, body and text limits, one analysis at a time."""

from __future__ import annotations

import http.client
import json
import signal
import socket
import subprocess
import sys
import threading
import urllib.request
import warnings

import pytest

from rnnmem.errors import ConfigError, InputError, RnnmemWarning
from rnnmem.report.explorer import analyze
from rnnmem.report.server import MAX_BODY, allowed_hosts, bind_warning, make_server
from rnnmem.train.autocomplete import AutocompleteModel, save_checkpoint

WORDS = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "a", "mat", "dog"]


@pytest.fixture(scope="module")
def models():
    return {"GRU": AutocompleteModel(cell="gru", hidden=6, layers=1, embedding=4, convention="tf1", words=WORDS,
                                     seed=0)}


@pytest.fixture()
def server(models):
    with make_server(models, port=0, max_chars=12, read_timeout=1.0).start() as srv:
        yield srv


def _request(url, method="GET", path="/", host=None, body=None, headers=None):
    """(status, body bytes) of one request to the server at ``url`` with an explicit Host header."""
    port = int(url.rstrip("/").rsplit(":", 1)[1])
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.putrequest(method, path, skip_host=host is not None)
        if host is not None:
            conn.putheader("Host", host)
        for k, v in (headers or {}).items():
            conn.putheader(k, v)
        if body is not None:
            conn.putheader("Content-Type", "application/json")
            conn.putheader("Content-Length", str(len(body)))
        conn.endheaders(body)
        res = conn.getresponse()
        return res.status, res.read()
    finally:
        conn.close()


def _read_all(sock, timeout=20.0) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it never does)."""
    sock.settimeout(timeout)
    out = b""
    while chunk := sock.recv(65536):
        out += chunk
    return out


def test_host_header_must_name_this_server(models, server):
    port = server.server_address[1]
    assert _request(server.url, host="evil.example")[0] == 400
    assert _request(server.url, host=f"evil.example:{port}", path="/api/analyze?text=the")[0] == 400
    for host in (f"127.0.0.1:{port}", f"localhost:{port}", "localhost"):
        assert _request(server.url, host=host)[0] == 200, host
    with make_server(models, port=0, allow_hosts=["Explorer.LAN"]).start() as srv:
        assert _request(srv.url, host="explorer.lan:80")[0] == 200
        assert _request(srv.url, host="evil.example")[0] == 400
    assert allowed_hosts("::1") == ["[::1]", "localhost", "127.0.0.1"]
    with pytest.raises(ConfigError, match="not a host name"):
        allowed_hosts("127.0.0.1", ["http://x.example/"])


def test_non_loopback_bind_warns_loudly(models):
    assert bind_warning("127.0.0.1") is None and bind_warning("localhost") is None and bind_warning("::1") is None
    with pytest.warns(RnnmemWarning, match="not a loopback address") as record:
        srv = make_server(models, host="0.0.0.0", port=0)
    assert "--allow-host" in str(record[0].message)
    with srv.start():
        assert _request(srv.url, host="evil.example")[0] == 400
        assert _request(srv.url, host=f"127.0.0.1:{srv.server_address[1]}")[0] == 200
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        make_server(models, port=0).server_close()


def test_cli_serve_warns_on_a_public_bind_and_stops_cleanly(models, tmp_path):
    path = save_checkpoint(models["GRU"], tmp_path / "gru.pt")
    proc = subprocess.Popen([sys.executable, "-m", "rnnmem.cli", "serve", "--model", str(path), "--host", "0.0.0.0",
                             "--port", "0", "--threads", "1"], stderr=subprocess.PIPE, text=True)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "serving the connectivity explorer" in line:
                break
        text = "".join(lines)
        assert "WARNING:" in text and "not a loopback address" in text, text
        proc.send_signal(signal.SIGINT)
        rest = proc.communicate(timeout=60)[1]
        assert "Traceback" not in rest and proc.returncode == 0, rest
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_half_sent_request_is_closed_after_the_deadline(server):
    port = server.server_address[1]
    half_headers = socket.create_connection(("127.0.0.1", port))
    half_headers.sendall(b"GET /api/analyze?text=the HTTP/1.1\r\nHost: 127.0.0.1\r\n")  # no blank line
    half_body = socket.create_connection(("127.0.0.1", port))
    half_body.sendall(b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                      b"Content-Length: 100\r\n\r\n{\"text\": ")
    try:
        # the server keeps answering others while the two half requests hang
        with urllib.request.urlopen(server.url + "api/analyze?text=the%20cat", timeout=30) as r:
            assert json.loads(r.read())["text"] == " the cat"
        for sock in (half_headers, half_body):
            reply = _read_all(sock)  # returns only once the server closed the connection
            assert reply.startswith(b"HTTP/1.1 408"), reply[:200]
    finally:
        half_headers.close()
        half_body.close()
    assert _request(server.url)[0] == 200


def test_client_disconnect_prints_no_traceback(models, capfd):
    with make_server(models, port=0).start() as srv:
        port = srv.server_address[1]
        for _ in range(3):  # full request, then hang up before the answer
            body = json.dumps({"text": "the cat sat on the mat"}).encode()
            sock = socket.create_connection(("127.0.0.1", port))
            sock.sendall(b"POST /api/analyze HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                         b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            sock.close()
        sock = socket.create_connection(("127.0.0.1", port))  # the page, read one byte, hang up
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        sock.recv(1)
        sock.close()
        assert _request(srv.url, path="/api/analyze?text=the")[0] == 200
    err = capfd.readouterr().err
    assert "Traceback" not in err and "Exception" not in err, err


def test_body_limit(server):
    status, body = _request(server.url, "POST", "/api/analyze", body=b"{" + b" " * MAX_BODY + b"}")
    assert status == 413 and "at most" in json.loads(body)["error"]
    status, _ = _request(server.url, "POST", "/api/analyze", body=b"{not json")
    assert status == 400
    assert _request(server.url, "POST", "/")[0] == 405
    status, body = _request(server.url, path="/nowhere")
    assert status == 404 and "no such page" in json.loads(body)["error"]


def test_max_chars_is_inclusive(models, server):
    limit = 12  # the server fixture's max_chars
    exact, over = "a" * limit, "a" * (limit + 1)
    assert len(analyze(models, exact, max_chars=limit)["tokens"]) == limit + 1  # + the leading space
    with pytest.raises(InputError, match=f"has {limit + 1} characters after cleaning; the limit is {limit}"):
        analyze(models, over, max_chars=limit)
    status, _ = _request(server.url, "POST", "/api/analyze", body=json.dumps({"text": exact}).encode())
    assert status == 200
    status, body = _request(server.url, "POST", "/api/analyze", body=json.dumps({"text": over}).encode())
    assert status == 400 and f"the limit is {limit}" in json.loads(body)["error"]


def test_one_analysis_at_a_time(models):
    srv = make_server(models, port=0)
    active, peak, lock = [0], [0], threading.Lock()
    real = srv.analyze

    def counted(text):
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        try:
            return real(text)
        finally:
            with lock:
                active[0] -= 1

    srv.analyze = counted
    statuses = []
    with srv.start():
        def ask(i):
            statuses.append(_request(srv.url, path=f"/api/analyze?text=the%20cat%20{'a' * (i + 1)}")[0])

        threads = [threading.Thread(target=ask, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
    assert statuses == [200] * 6 and peak[0] == 1


# ----------------------------------------------------------------------------- example texts (issue 13, item 5)
def _page_data(html_text: str) -> dict:
    """The JSON the explorer page carries (the menu is built from its ``examples``)."""
    import re

    m = re.search(r'<script type="application/json" id="rnnmem-data">(.*?)</script>', html_text, re.S)
    return json.loads(m.group(1).replace("<\\/", "</").replace("<\\!--", "<!--"))


def test_planted_examples_hold_one_dependency_each():
    from rnnmem.tasks.synthetic_text import planted_examples

    opts = {"vocab_size": 300, "n_keys": 2, "kind": "copy", "rate": 0.3}
    ex = planted_examples(distances=[1, 2, 4, 8], max_chars=200, seed=3, **opts)
    assert [e["gap_words"] for e in ex] == [1, 2, 4, 8]
    for e in ex:
        words = e["text"].split()
        assert words.count("remember") == 1 and words.count("recall") == 1  # exactly one episode
        i, j = words.index("remember"), words.index("recall")
        assert j - i - 2 == e["gap_words"] and words[i + 1] == e["key"] and words[j + 1] == e["response"]
        assert e["text"][e["key_at"]:].startswith(e["key"] + " ")
        assert e["text"][e["response_at"]:].startswith(" " + e["response"])
        assert e["distance_chars"] == e["response_at"] - e["key_at"] and len(e["text"]) - 1 <= 200
    assert ex == planted_examples(distances=[1, 2, 4, 8], max_chars=200, seed=3, **opts)  # seeded
    assert ex != planted_examples(distances=[1, 2, 4, 8], max_chars=200, seed=4, **opts)
    # a tight limit drops context words first, then the gaps whose bare episode does not fit
    short = planted_examples(distances=[1, 8], max_chars=40, seed=3, **opts)
    assert all(len(e["text"]) - 1 <= 40 for e in short) and [e["gap_words"] for e in short] == [1]


@pytest.fixture(scope="module")
def trained_setup(tmp_path_factory):
    """A model on a tiny synthetic corpus, its checkpoint recording the data fingerprint, the corpus
    file, and the autocomplete cache that holds its dataset."""
    from rnnmem.tasks.autocomplete import build_dataset
    from rnnmem.tasks.synthetic_text import planted_dependency_text
    from rnnmem.train.autocomplete import _data_fingerprint

    root = tmp_path_factory.mktemp("served")
    corpus, _ = planted_dependency_text(n_words=3000, vocab_size=60, n_keys=2, distances=[1, 2], rate=0.2,
                                        seed=0).save(root / "corpus.txt")
    data = build_dataset(corpus, vocab_size=80, max_length=60, seed=0, cache_dir=root / "cache" / "autocomplete")
    model = AutocompleteModel(cell="gru", hidden=6, layers=1, embedding=4, convention="tf1", words=data.words, seed=0)
    with_data = save_checkpoint(model, root / "with_data.pt", data=_data_fingerprint(data))
    bare = save_checkpoint(model, root / "bare.pt")
    return {"root": root, "corpus": corpus, "data": data, "model": model, "with_data": with_data, "bare": bare}


def test_served_page_offers_planted_test_set_and_own_examples(trained_setup, monkeypatch):
    from rnnmem.commands.connectivity import model_paths, serve_examples

    s = trained_setup
    monkeypatch.setenv("RNNMEM_CACHE", str(s["root"] / "cache"))
    models = {"GRU": s["model"]}
    examples, notes = serve_examples(models, model_paths([f"GRU={s['with_data']}"]), 200,
                                     own=["The cat sat, on the MAT"])
    groups = [e["group"] for e in examples]
    planted = [e for e in examples if e["group"].startswith("planted dependencies")]
    test = [e for e in examples if e["group"] == "test set (GRU)"]
    assert len(planted) == 4 and all("remember" in e["text"] and "recall" in e["text"] for e in planted)
    # the test observations, picked as the Distill report picks them, in the model's test split
    test_rows = s["data"].split_index("test")
    assert len(test) == 4 and [e["text"] for e in test] == [s["data"].decode(int(r)) for r in test_rows[:4]]
    assert groups[-1] == "your examples" and notes == []
    with make_server(models, port=0, max_chars=200, examples=examples).start() as srv:
        status, body = _request(srv.url)
        assert status == 200
        page = body.decode()
        assert "<select id=\"example\">" in page
        menu = _page_data(page)["examples"]
        assert [(e["group"], e["label"]) for e in menu] == [(e["group"], e["label"]) for e in examples]
        assert [e["text"] for e in menu[:-1]] == [e["text"] for e in examples[:-1]]
        assert menu[-1]["text"] == " the cat sat on the mat"  # cleaned as the analysis cleans it
        # choosing an example posts its text: the API answers it within the limit
        status, body = _request(srv.url, "POST", "/api/analyze", body=json.dumps({"text": planted[-1]["text"]}).encode())
        assert status == 200 and json.loads(body)["text"] == planted[-1]["text"]


def test_test_set_group_only_with_the_recorded_corpus(trained_setup, monkeypatch, tmp_path):
    from rnnmem.commands.connectivity import model_paths, serve_examples

    s = trained_setup
    models = {"GRU": s["model"]}
    # a checkpoint that does not record its data: no test-set group, and a note says why
    examples, notes = serve_examples(models, model_paths([f"GRU={s['bare']}"]), 200)
    assert not any(e["group"].startswith("test set") for e in examples)
    assert any("does not record its training corpus" in n for n in notes)
    # recorded, but the dataset is not in this cache: skipped with a note; --corpus brings it back
    monkeypatch.setenv("RNNMEM_CACHE", str(tmp_path / "empty"))
    examples, notes = serve_examples(models, model_paths([f"GRU={s['with_data']}"]), 200)
    assert not any(e["group"].startswith("test set") for e in examples)
    assert any("--corpus" in n for n in notes)
    examples, notes = serve_examples(models, model_paths([f"GRU={s['with_data']}"]), 200, corpus=s["corpus"])
    assert sum(e["group"] == "test set (GRU)" for e in examples) == 4 and notes == []
    other = tmp_path / "other.txt"
    other.write_text(" some other words here " * 50)
    with pytest.raises(InputError, match="not the one the model was trained on"):
        serve_examples(models, model_paths([f"GRU={s['with_data']}"]), 200, corpus=other)
    with pytest.raises(InputError, match="does not record the corpus"):
        serve_examples(models, model_paths([f"GRU={s['bare']}"]), 200, corpus=s["corpus"])


def test_an_example_over_the_limit_is_refused_before_serving(models):
    with pytest.raises(ConfigError, match="example 'long' has 20 characters after cleaning, over the limit of 12"):
        make_server(models, port=0, max_chars=12, examples=[("long", "a" * 20)])
    with pytest.raises(ConfigError, match="no letters"):
        make_server(models, port=0, max_chars=12, examples=[("empty", "!!!")])
