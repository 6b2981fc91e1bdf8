"""The explorer page in a real browser: Playwright (Python) driving Debian's chromium.

Skips with the reason when Playwright or chromium is missing (``pip install playwright`` and
``apt-get install chromium``; no browser is downloaded). ``RNNMEM_CHROMIUM`` overrides the
browser path."""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch
from matplotlib import colormaps

from rnnmem.probes.connectivity import connectivity_matrix, top_k
from rnnmem.report.explorer import clean_text, text_words, write_explorer
from rnnmem.report.server import make_server
from rnnmem.train.autocomplete import AutocompleteModel

pytestmark = pytest.mark.browser

WORDS = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "a", "mat", "dog", "ran"]
TEXT = "the cat sat on the mat"
TRANSPARENT = "rgba(0, 0, 0, 0)"


@pytest.fixture(scope="module")
def browser(chromium):
    """The session browser from conftest (one Playwright instance per test session)."""
    return chromium


@pytest.fixture(scope="module")
def models():
    return {name: AutocompleteModel(cell=cell, hidden=8, layers=2, embedding=6, convention="tf1", words=WORDS,
                                    seed=seed)
            for name, cell, seed in (("GRU", "gru", 0), ("LSTM", "lstm", 1))}


def open_page(browser, url):
    page = browser.new_page(viewport={"width": 1200, "height": 700})
    errors: list[str] = []
    page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(url)
    page.wait_for_selector("body[data-ready='1']", timeout=15_000)
    return page, errors


def colours(page) -> list[list[str]]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#models .model')).map(
        p => Array.from(p.querySelectorAll('.ch')).map(s => getComputedStyle(s).backgroundColor))""")


def suggestions(page) -> list[list[tuple[str, str]]]:
    return page.evaluate("""() => Array.from(document.querySelectorAll('#models .model')).map(
        p => Array.from(p.querySelectorAll('ol.suggestions li')).map(
            li => [li.querySelector('.word').textContent, li.querySelector('.prob').textContent]))""")


def parse_rgb(css: str) -> np.ndarray:
    return np.array([float(v) for v in css[css.index("(") + 1 : -1].split(",")[:3]])


def python_top3(model, text: str) -> list[list[tuple[str, str]]]:
    with torch.no_grad():
        logits = model(model.encode_text(text)[:, None])[:, 0].double().numpy()
    return [[(w, f"{100 * p:.1f}%") for _, w, p in row] for row in top_k(logits, 3, model.words)]


def test_static_page_hover_colours_and_suggestions(browser, models, tmp_path):
    path = write_explorer(models, TEXT, tmp_path / "explorer.html")
    page, errors = open_page(browser, path.as_uri())
    text = clean_text(TEXT, [" "] + [chr(c) for c in range(97, 123)])
    T = len(text)
    assert page.locator("#models .model").count() == 2
    assert page.locator("#models .model").nth(0).locator(".ch").count() == T
    assert "".join(page.locator("#models .model").nth(1).locator(".ch").all_text_contents()) == text
    before = colours(page)  # the last character is selected when the page opens

    i = 9  # hover character i of the first model's text: both panels select it
    page.locator("#models .model").nth(0).locator(".ch").nth(i).hover()
    after = colours(page)
    assert after != before
    cmap = colormaps["viridis"]
    tops = suggestions(page)
    for mi, (name, model) in enumerate(models.items()):
        targets = [model.word_id(w) for w in text_words(text)]
        M = connectivity_matrix(model, text, targets=targets).matrix  # computed here, independently of the page
        for j in range(T):
            if j <= i:
                want = np.array(cmap(M[j, i])[:3]) * 255
                assert np.abs(parse_rgb(after[mi][j]) - want).max() <= 3.0, (name, j)
            else:
                assert after[mi][j] == TRANSPARENT
        assert [tuple(s) for s in tops[mi]] == python_top3(model, text)[i]
    sel = page.locator("#models .model").nth(1).locator(".ch.sel")
    assert sel.count() == 1 and sel.get_attribute("data-i") == str(i)

    page.locator("#models .model").nth(1).locator(".ch").nth(3).click()  # tap/click selects too
    assert colours(page)[0][4] == TRANSPARENT and colours(page)[0][3] != TRANSPARENT
    page.keyboard.press("ArrowRight")
    assert page.locator("#models .model").nth(0).locator(".ch.sel").get_attribute("data-i") == "4"
    page.screenshot(path=str(tmp_path / "explorer.png"), full_page=True)
    assert (tmp_path / "explorer.png").stat().st_size > 10_000
    assert errors == []
    page.close()


def test_serve_page_answers_typed_text(browser, models):
    server = make_server(models, port=0, max_chars=100)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        page, errors = open_page(browser, server.url)
        assert page.locator("#controls").is_visible()
        page.locator("#input").fill("The dog ran on")
        page.wait_for_selector("#status[data-seq]", timeout=30_000)
        assert "computed" in page.locator("#status").text_content()
        typed = " the dog ran on"
        assert "".join(page.locator("#models .model").nth(0).locator(".ch").all_text_contents()) == typed
        tops = suggestions(page)  # last character selected after each update
        for mi, model in enumerate(models.values()):
            assert [tuple(s) for s in tops[mi]] == python_top3(model, typed)[-1]
        before = colours(page)
        page.locator("#models .model").nth(0).locator(".ch").nth(5).hover()
        after = colours(page)
        assert after != before and after[0][6] == TRANSPARENT and after[0][5] != TRANSPARENT

        page.locator("#input").fill("x" * 150)  # over the server's limit: an error line, no crash
        page.wait_for_selector("#status.error", timeout=30_000)
        assert "limit" in page.locator("#status").text_content()
        assert [e for e in errors if "400" not in e] == []  # the refused request logs its 400 status
        page.close()
    finally:
        server.shutdown()
        server.server_close()
