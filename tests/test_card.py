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
from rnnmem.report import card_page
from rnnmem.report.card_page import (HEADLINE, divergence_x_end, fmt, headline_rows, headline_text, lookup, render,
                                     write_card_page)
from rnnmem.probes.card import (compute_card, fit_checks, fit_half_life, forgetting_summary, load_card,
                                 long_memory_fields, save_card)

FAST = {"forgetting": {"T": 4000, "P": 200, "input_pairs": 2}, "lyapunov": {"steps": 300, "washout": 100, "k": 4},
        "capacity": {"steps": 2000, "washout": 200}, "connectivity": {"T": 60, "sequences": 1},
        "long_memory": {"T": 400, "max_lag": 100, "n_samples": 4},
        "semantic": {"sequences": 32, "fit_sequences": 64, "prefix_lengths": [4, 8], "words": 4000, "vocab_size": 60,
                     "dim": 8, "bootstrap": 200}}


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
    assert card["long_memory"]["verdict"] in ("short", "long", "inconclusive")
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
    nums = page.eval_on_selector_all("span.num", "els => els.map(e => [+e.dataset.card, e.dataset.key, e.textContent])")
    rows = page.eval_on_selector_all("#summary tr", "els => els.length")
    reading = page.eval_on_selector_all("#reading th", "els => els.map(e => e.textContent)")
    page.close()
    assert not errors, errors
    assert rows == 1 + len(headline_rows(cards))
    assert reading == ["forgetting", "contraction rate", "Lyapunov", "memory capacity", "connectivity", "long memory"]
    # every number taken from a card, in the table and in the interpretation lines, is that card's JSON value
    keys = {(ci, key) for ci, key, _ in nums}
    for ci, card in enumerate(cards):
        assert (ci, "long_memory.reason") in keys  # the test's reason, verbatim from the JSON
        for path, _, _ in headline_rows(cards):
            if not path.startswith(("tasks.", "forgetting.tolerances.")):
                assert (ci, path) in keys, (ci, path)
    for ci, key, text in nums:
        value = lookup(cards[ci], key)
        assert not isinstance(value, (dict, list)), key
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


# ----------------------------------------------------------------------------- honest headlines (issue 13, item 7)
def test_forgetting_summary_never_averages_censored_runs():
    none = forgetting_summary([10.0, 20.0, 30.0], runs=3)
    assert none["mean"] == 20.0 and none["median"] == 20.0 and none["censored"] == 0
    # 2 of 5 censored: they took longer than every finished run, so the median of all 5 is the 3rd smallest
    two = forgetting_summary([30.0, 10.0, 20.0], runs=5)
    assert two["median"] == 30.0 and two["mean"] is None and two["std"] is None
    assert two["censored"] == 2 and two["finished"] == 3
    # 3 of 5 censored (the "458.5 (3/5 censored)", a mean over 2 runs): no statistic of all runs
    three = forgetting_summary([417.0, 500.0], runs=5, at_floor=3)
    assert three["median"] is None and three["mean"] is None
    assert three["median_finished"] == 458.5 and three["at_floor"] == 3
    # 3 of 6: the median would average the 3rd finished run with a censored one: unknown
    assert forgetting_summary([1.0, 2.0, 3.0], runs=6)["median"] is None
    assert forgetting_summary([], runs=4)["median_finished"] is None


def _with(card, **tolerances):
    out = json.loads(json.dumps(card))
    out["forgetting"]["tolerances"].update(tolerances)
    return out


def test_censored_headline_shows_the_count_not_a_mean(cards):
    card = _with(cards[0], exact=forgetting_summary([417.0, 500.0], runs=5, at_floor=3),
                 **{"1e-06": forgetting_summary([30.0, 10.0, 20.0], runs=5)})
    text = headline_text(card, "forgetting.tolerances.exact")
    assert text.startswith("censored in 3/5 runs") and "median of the 2 finished: 458.5" in text
    assert "3 at the rounding floor" in text
    page = render([card])
    row = page[page.index("forgetting steps, exact"):page.index("forgetting steps, tol 1e-6")]
    assert "458.5" in row and "class='cens'" in row
    assert headline_text(card, "forgetting.tolerances.1e-06").startswith("30 median of all 5 runs (2/5 censored")
    old = json.loads(json.dumps(cards[0]))  # a card written by an older rnnmem: mean of the finished runs only
    old["forgetting"]["runs"] = 5
    old["forgetting"]["tolerances"]["exact"] = {"mean": 458.5, "std": 58.7, "censored": 3}
    text = headline_text(old, "forgetting.tolerances.exact")
    assert "censored in 3/5 runs" in text and "458.5" not in text


def _lm(card, **fields):
    """``card`` with its long-memory entry replaced by a Definition-3 verdict made of ``fields``."""
    out = json.loads(json.dumps(card))
    out.pop("fit_checks")
    verdict = {"verdict": "inconclusive", "reason": "a reason", "alpha_ci": None, "tail": None, "level": 0.95,
               "extrapolation": "neither", "response_ends": False, "via_bound": False}
    verdict.update(fields)
    out["long_memory"] = {**long_memory_fields(verdict), "lags": card["long_memory"]["lags"],
                          "abs_A": card["long_memory"]["abs_A"]}
    return out


def test_fits_outside_their_valid_range_are_flagged(cards):
    # the GRU "power-law exponent of 33.98": a steep cut-off, flagged beside the number
    card = _lm(cards[0], verdict="short", alpha=33.98, alpha_ci=(20.0, 60.0), tail=(7, 70), n_tail=53)
    checks = fit_checks(card)["long_memory.alpha"]
    assert not checks["valid"] and "outside the plausible range" in checks["reason"]
    assert "fit not valid: tail exponent 33.98 outside" in render([card])
    card = _lm(cards[0], verdict="long", alpha=0.8, alpha_ci=(0.7, 0.9), tail=(30, 300), n_tail=40,
               extrapolation="power")
    assert fit_checks(card)["long_memory.alpha"] == {"valid": True, "reason": "ok"}
    card["long_memory"].update(n_tail=4)
    assert "only 4 points" in fit_checks(card)["long_memory.alpha"]["reason"]
    # a tail exponent of a response that ends, or that exponentials extrapolate better, is not a power law
    ends = _lm(cards[0], verdict="short", alpha=2.0, alpha_ci=(1.5, 2.5), tail=(7, 70), n_tail=40,
               response_ends=True, k_end=70)
    assert "the response ends after lag 70" in fit_checks(ends)["long_memory.alpha"]["reason"]
    mix = _lm(cards[0], verdict="short", alpha=0.9, alpha_ci=(0.5, 1.3), tail=(30, 300), n_tail=40,
              extrapolation="mixture")
    assert "mixture of exponentials" in fit_checks(mix)["long_memory.alpha"]["reason"]
    card = json.loads(json.dumps(cards[0]))
    card.pop("fit_checks")
    card["connectivity"].update(r2=0.3, fit_lags=50)
    assert "fit not valid: R\u00b2 = 0.3" in render([card])
    assert cards[0]["fit_checks"] == fit_checks(cards[0])  # stored with the card


def test_card_shows_the_definition3_test_not_an_aic_verdict(cards):
    lm = cards[0]["long_memory"]
    assert lm["verdict"] in ("long", "short", "inconclusive") and lm["reason"]
    assert "exponent" not in lm  # the AIC-era key is gone; the test's alpha replaces it
    if lm["alpha"] is not None:
        assert lm["alpha_ci_low"] <= lm["alpha"] <= lm["alpha_ci_high"]
    page = render(cards[:1])
    row = page[page.index("tail exponent"):page.index("AIC(exp)")]
    if lm["alpha"] is not None:
        assert "data-key='long_memory.alpha_ci_low'" in row and "data-key='long_memory.alpha_ci_high'" in row
    assert "AIC(exp) - AIC(power), descriptive only" in page
    line = dict(card_page.interpretation(cards[0], 0))["long memory"]
    assert "AIC" not in line and "data-key='long_memory.reason'" in line
    # a unit without a finite filter has no "exponent within the filter" row
    assert "long_memory.alpha_within_filter" not in [p for p, _, _ in headline_rows(cards[:1])]


def test_long_memory_line_follows_the_verdict(cards):
    def line(card):
        return dict(card_page.interpretation(card, 0))["long memory"]

    long = _lm(cards[0], verdict="long", alpha=0.7, alpha_ci=(0.6, 0.8), tail=(30, 300), n_tail=40,
               extrapolation="power")
    assert "diverges" in line(long) and "long memory" in line(long)
    ends = _lm(cards[0], verdict="short", alpha=11.3, alpha_ci=(8.5, 31.6), tail=(7, 70), n_tail=53,
               response_ends=True, k_end=70, k_max_requested=300, noise_floor=1.4e-14)
    assert "the response is finite" in line(ends) and "data-key='long_memory.k_end'>70<" in line(ends)
    summable = _lm(cards[0], verdict="short", alpha=5.9, alpha_ci=(4.1, 19.5), tail=(2, 20), n_tail=19)
    assert "above 1 with its whole CI" in line(summable)
    mix = _lm(cards[0], verdict="short", alpha=0.9, alpha_ci=(0.5, 1.3), tail=(30, 300), n_tail=40,
              extrapolation="mixture")
    assert "mixture of exponentials" in line(mix) and "cut-off" in line(mix)
    unsure = _lm(cards[0], verdict="inconclusive", alpha=1.0, alpha_ci=(0.8, 1.2), tail=(30, 300), n_tail=40)
    assert "inconclusive" in line(unsure)
    # the verdict from the upper bound (|A_k| too short, as for a trained MRNNF): its numbers, said so,
    # and the exponent within the filter gets its row
    bound = {"verdict": "short", "reason": "bound reason", "alpha": 82.0, "alpha_ci": (79.4, 93.3),
             "tail": (101, 128), "n_tail": 28, "response_ends": True, "k_end": 128, "k_max_requested": 300,
             "noise_floor": 1e-13, "filter_length": 100, "alpha_within_filter": 1.78,
             "alpha_within_filter_ci": (1.46, 2.10), "level": 0.95, "extrapolation": "power"}
    via = _lm(cards[0], verdict="short", alpha=float("nan"), via_bound=True, bound=bound)
    via = json.loads(json.dumps(via).replace("NaN", "null"))
    assert "upper bound" in line(via) and "data-key='long_memory.bound.k_end'" in line(via)
    assert "long_memory.alpha_within_filter" in [p for p, _, _ in headline_rows([via])]
    cell = headline_text(via, "long_memory.alpha_within_filter")
    assert "1.78 [1.46, 2.1]" in cell and "K = 100" in cell
    old = json.loads(json.dumps(cards[0]))  # a card from before the test: AIC verdict only
    old["long_memory"] = {"verdict": "short memory", "delta_aic": -425.6, "exponent": 33.98,
                          "lags": [0, 1], "abs_A": [1.0, 0.5]}
    assert "older rnnmem" in line(old) and "not a test" in line(old)
    render([old, cards[0]])  # an old card still renders beside a new one


def test_divergence_plot_is_semilog_and_zoomed_on_the_decay(cards, monkeypatch):
    scales = []

    def fake_png(fig):
        ax = fig.axes[0]
        scales.append((ax.get_title(), ax.get_xscale(), ax.get_yscale(), ax.get_xlim()))
        card_page.plt.close(fig)
        return "data:image/png;base64,"

    monkeypatch.setattr(card_page, "_png", fake_png)
    card_page.figures(cards[:1])
    title, xscale, yscale, xlim = scales[0]
    assert title.startswith("Forgetting") and (xscale, yscale) == ("linear", "log")
    # an exponential decay to a floor at step 25, then 1000 flat steps: within a factor 2 of the floor from
    # e^(-x/2) <= 2 e^(-12.5), x >= 25 - 2 ln 2 = 23.6, i.e. step 24; the axis ends at 2 x 24
    x = np.arange(1.0, 1026.0)
    y = np.maximum(np.exp(-0.5 * x), np.exp(-0.5 * 25))
    assert divergence_x_end(x, y) == 48.0
    assert xlim[1] == pytest.approx(max(divergence_x_end(
        np.asarray(cards[0]["forgetting"]["curve"]["bin_edges"][:-1], float),
        np.asarray([np.nan if v is None else v for v in cards[0]["forgetting"]["curve"]["out_maxabs"]], float)), 10))


def test_interpretation_lines_follow_the_numbers(cards):
    card = json.loads(json.dumps(cards[0]))
    lines = dict(card_page.interpretation(card, 0))
    assert set(lines) >= {"forgetting", "contraction rate", "Lyapunov", "memory capacity", "connectivity",
                          "long memory"}
    card["lyapunov"].update(max_exponent=-0.4, ci_low=-0.45, ci_high=-0.35)
    assert "contract" in dict(card_page.interpretation(card, 0))["Lyapunov"]
    card["lyapunov"].update(max_exponent=0.01, ci_low=-0.02, ci_high=0.04)
    assert "inconclusive" in dict(card_page.interpretation(card, 0))["Lyapunov"]
    card["long_memory"].update(verdict="inconclusive")
    assert "inconclusive" in dict(card_page.interpretation(card, 0))["long memory"]
