"""The memory card: measures, JSON, the page (checked in headless Chromium), --compare."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from rnnmem import cells
from rnnmem.errors import InputError
from rnnmem.report.card_page import HEADLINE, fmt, lookup, write_card_page
from rnnmem.studies.card import compute_card, fit_half_life, load_card, save_card

FAST = {"forgetting": {"T": 4000, "P": 200, "input_pairs": 2}, "lyapunov": {"steps": 300, "washout": 100, "k": 4},
        "capacity": {"steps": 2000, "washout": 200}, "connectivity": {"T": 60, "sequences": 1},
        "long_memory": {"T": 400, "max_lag": 100, "n_samples": 4}}


@pytest.fixture(scope="module")
def cards():
    out = []
    for cell, seed in (("gru", 0), ("lstm", 1)):
        unit = cells.build(cell, 1, 8, seed=seed)
        out.append(compute_card(unit, seed=seed, settings=FAST))
    return out


def test_card_holds_every_measure_and_is_json(cards, tmp_path):
    card = cards[0]
    for key in ("forgetting", "lyapunov", "capacity", "connectivity", "long_memory"):
        assert key in card and card["wall_s"][key] >= 0
    assert card["long_memory"]["verdict"] in ("short memory", "long memory")
    assert card["lyapunov"]["ci_low"] <= card["lyapunov"]["max_exponent"] <= card["lyapunov"]["ci_high"]
    # the forgetting contraction rate and the maximal Lyapunov exponent measure the same decay
    assert card["forgetting"]["rate"]["mean"] == pytest.approx(-card["lyapunov"]["max_exponent"], rel=0.1)
    path = save_card(card, tmp_path / "c.json")
    assert load_card(path) == json.loads(path.read_text())


def test_same_seed_same_card(cards):
    again = compute_card(cells.build("gru", 1, 8, seed=0), seed=0, settings=FAST)
    for path, _, _ in HEADLINE:
        assert lookup(again, path) == lookup(cards[0], path), path


def test_half_life_fit_recovers_an_exponential():
    lags = np.arange(40)
    fit = fit_half_life(lags, 3.0 * 0.8 ** lags)
    assert fit["half_life"] == pytest.approx(math.log(2) / -math.log(0.8), rel=1e-9)


def test_bad_card_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_card(tmp_path / "none.json")
    (tmp_path / "x.json").write_text("{")
    with pytest.raises(InputError, match="invalid JSON"):
        load_card(tmp_path / "x.json")
    (tmp_path / "y.json").write_text("{}")
    with pytest.raises(InputError, match="missing"):
        load_card(tmp_path / "y.json")
    with pytest.raises(InputError, match="one network"):
        compute_card(cells.build("gru", 1, 4, seeds=[0, 1]))


def _check_page(chromium, path, cards):
    page = chromium.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(path.as_uri())
    nums = page.eval_on_selector_all("span.num", "els => els.map(e => [e.dataset.key, e.textContent])")
    page.close()
    assert not errors, errors
    shown = [(k, t) for k, t in nums]
    assert len(shown) == len(cards) * sum(1 for p, _, _ in HEADLINE if not p.startswith("tasks."))
    for i, (key, text) in enumerate(shown):
        card = cards[i % len(cards)]
        value = lookup(card, key)
        assert text == fmt(value), (key, text, value)
        if isinstance(value, float):
            assert float(text) == pytest.approx(value, rel=5e-4)


@pytest.mark.browser
def test_page_renders_without_errors_and_numbers_equal_the_json(chromium, cards, tmp_path):
    _check_page(chromium, write_card_page(cards[:1], tmp_path / "card.html"), cards[:1])
    _check_page(chromium, write_card_page(cards, tmp_path / "compare.html"), cards)


def test_cli_card_and_compare(tmp_path):
    def run(*args):
        return subprocess.run([sys.executable, "-m", "rnnmem.cli", "card", *args], capture_output=True, text=True,
                              timeout=600)

    res = run("--cell", "gru", "--units", "4", "--out", str(tmp_path / "a"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "a" / "card.html").is_file()
    card = load_card(tmp_path / "a" / "card.json")
    assert card["model"]["hidden_size"] == 4
    save_card({**card, "name": "other"}, tmp_path / "b.json")
    res = run("--compare", str(tmp_path / "a" / "card.json"), str(tmp_path / "b.json"), "--out", str(tmp_path / "c"))
    assert res.returncode == 0, res.stderr
    assert "other" in (tmp_path / "c" / "compare.html").read_text()
    res = run("--compare", str(tmp_path / "b.json"))
    assert res.returncode == 2 and "at least two" in res.stderr
