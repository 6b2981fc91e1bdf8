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
from rnnmem.report.explorer import analyze, clean_text, colour_level, explorer_html, text_words, write_explorer
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


def test_static_page_click_colours_and_suggestions(browser, models, tmp_path):
    path = write_explorer(models, TEXT, tmp_path / "explorer.html")
    page, errors = open_page(browser, path.as_uri())
    text = clean_text(TEXT, [" "] + [chr(c) for c in range(97, 123)])
    T = len(text)
    assert page.locator("#models .model").count() == 2
    assert page.locator("#models .model").nth(0).locator(".ch").count() == T
    assert "".join(page.locator("#models .model").nth(1).locator(".ch").all_text_contents()) == text
    before = colours(page)  # the last character is selected when the page opens

    i = 9  # click character i of the first model's text: both panels select it
    page.locator("#models .model").nth(0).locator(".ch").nth(i).click()
    after = colours(page)
    assert after != before
    cmap = colormaps["viridis"]
    tops = suggestions(page)
    for mi, (name, model) in enumerate(models.items()):
        targets = [model.word_id(w) for w in text_words(text)]
        M = connectivity_matrix(model, text, targets=targets).matrix  # computed here, independently of the page
        for j in range(T):
            if j <= i:
                want = np.array(cmap(colour_level(M[j, i]))[:3]) * 255  # log scale, 4 decades: the default
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
        page.locator("#models .model").nth(0).locator(".ch").nth(5).click()  # a click selects (hovering only reads a value)
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


# ----------------------------------------------------------------------------- colour scale, hover, examples
def _planted_values(models) -> dict:
    """Page data whose last row holds known values: character 1 at 1e-2, character 2 at 1e-12 of
    the max (the values a GRU gives a key word 38 characters back, and a forgotten input)."""
    data = analyze(models, TEXT)
    for m in data["models"]:
        row = [1e-6] * len(m["conn"][-1])
        row[1], row[2], row[-1] = 1e-2, 1e-12, 1.0
        m["conn"][-1] = row
    return data


def _distance(a: str, b: str) -> float:
    return float(np.abs(parse_rgb(a) - parse_rgb(b)).max())


def test_log_scale_shows_what_the_linear_scale_hides(browser, models, tmp_path):
    path = tmp_path / "scale.html"
    path.write_text(explorer_html(_planted_values(models)), encoding="utf-8")
    page, errors = open_page(browser, path.as_uri())
    assert page.locator("#scale").input_value() == "log" and page.locator("#decades").input_value() == "4"
    log = colours(page)[0]  # the last character is selected when the page opens
    cmap = colormaps["viridis"]
    # log scale, floor 4 decades: 1e-2 sits half-way up the colour bar, 1e-12 at the floor
    assert np.abs(parse_rgb(log[1]) - np.array(cmap(0.5)[:3]) * 255).max() <= 3.0
    assert np.abs(parse_rgb(log[2]) - np.array(cmap(0.0)[:3]) * 255).max() <= 3.0
    assert _distance(log[1], log[2]) > 60  # visibly different (0..255 per channel)
    assert "1e-4" in page.locator("#legend").text_content()

    page.select_option("#scale", "linear")
    linear = colours(page)[0]
    # The linear scale (the page's behaviour before the log scale existed) puts 1e-2 at 1% of the bar:
    # rgb(69, 5, 88) against rgb(68, 1, 84) for 1e-12, at most 4/255 per channel: the same dark purple to
    # the eye, against > 60/255 on the log scale. This is why log is the default.
    assert _distance(linear[1], linear[2]) <= 5.0
    assert page.locator("#decades").is_disabled()

    page.select_option("#scale", "log")
    page.select_option("#decades", "2")  # a floor of 2 decades: 1e-2 is now at the floor too
    assert _distance(colours(page)[0][1], colours(page)[0][2]) == 0.0
    assert errors == []
    page.close()


def test_hover_reads_a_value_without_changing_the_selection(browser, models, tmp_path):
    data = _planted_values(models)
    path = tmp_path / "hover.html"
    path.write_text(explorer_html(data), encoding="utf-8")
    page, errors = open_page(browser, path.as_uri())
    last = str(len(data["tokens"]) - 1)
    panel = page.locator("#models .model").nth(0)
    before = colours(page)
    panel.locator(".ch").nth(1).hover()
    readout = page.locator("#models .model .readout")
    assert readout.nth(0).get_attribute("data-value") == "0.01"
    assert "1.00\u00d710^-2" in readout.nth(0).text_content()
    assert "character 2" in readout.nth(0).text_content()
    assert readout.nth(1).get_attribute("data-value") == "0.01"  # the other panel reads the same character
    assert panel.locator(".ch.sel").get_attribute("data-i") == last  # the selection did not move
    assert colours(page) == before
    assert panel.locator(".ch").nth(1).get_attribute("title") == "connectivity 1.00\u00d710^-2"
    page.keyboard.press("ArrowLeft")  # keys and clicks still select
    assert panel.locator(".ch.sel").get_attribute("data-i") == str(int(last) - 1)
    panel.locator(".ch").nth(int(last)).hover()  # after the selection: no value
    assert readout.nth(0).get_attribute("data-value") == "" and "not read yet" in readout.nth(0).text_content()
    assert errors == []
    page.close()


def test_example_menu_switches_texts(browser, models, tmp_path):
    examples = [("test set", "observation 1", "a dog ran"), ("planted", "gap 2", "the mat sat on a cat")]
    path = write_explorer(models, TEXT, tmp_path / "examples.html", examples=examples, label="sample")
    page, errors = open_page(browser, path.as_uri())
    assert page.locator("#example-field").is_visible()
    assert page.locator("#example optgroup").count() == 2
    page.select_option("#example", label="gap 2")
    first = page.locator("#models .model").nth(0)
    assert "".join(first.locator(".ch").all_text_contents()) == " the mat sat on a cat"
    assert first.locator(".ch.sel").get_attribute("data-i") == str(len(" the mat sat on a cat") - 1)
    page.select_option("#example", label="sample")
    assert "".join(first.locator(".ch").all_text_contents()) == clean_text(TEXT, " abcdefghijklmnopqrstuvwxyz")
    assert errors == []
    page.close()
