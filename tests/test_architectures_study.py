"""The architectures study (issue 15): matched parameter counts, the Mamba-vs-S4D verdict, the published
checks, and a tiny run end to end through the CLI and the Python API (same config -> same numbers)."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from cli_runner import run_main as _run_main
from rnnmem import cells
from rnnmem.errors import ConfigError
from rnnmem.studies import architectures as A

# ------------------------------------------------------------------------------ matched parameter counts
QUICK_OPTIONS = A.quick_config().unit_options


@pytest.mark.parametrize("unit", A.UNITS)
def test_match_hidden_size_is_the_closest_valid_size(unit):
    opts = QUICK_OPTIONS.get(unit, {})
    m = A.match_hidden_size(unit, 3000, input_size=16, output_size=16, options=opts)
    H = m["hidden_size"]
    built = cells.build(unit, 16, H, seed=0, **opts)
    assert m["unit_params"] == sum(p.numel() for p in built.parameters())
    assert m["readout_params"] == (H + 1) * 16
    assert m["total_params"] == m["unit_params"] + m["readout_params"]
    assert abs(m["rel_diff"]) <= 0.10 and m["rel_diff"] == pytest.approx((m["total_params"] - 3000) / 3000)
    # no other valid hidden size nearby is closer to the target (the count grows with H)
    for h in range(max(1, H - 6), H + 7):
        try:
            other = A.model_parameters(unit, h, input_size=16, output_size=16, options=opts)["total_params"]
        except ConfigError:
            continue
        assert abs(other - 3000) >= abs(m["total_params"] - 3000), (h, other, m)


def test_match_hidden_size_skips_sizes_the_unit_refuses():
    m = A.match_hidden_size("xlstm_m", 5000, input_size=16, output_size=16, options={"heads": 4})
    assert m["hidden_size"] % 4 == 0
    with pytest.raises(ConfigError):
        A.model_parameters("xlstm_m", m["hidden_size"] + 1, input_size=16, output_size=16, options={"heads": 4})


def test_match_hidden_size_says_when_no_size_is_close_enough():
    smallest = A.model_parameters("lstm", 1, input_size=16, output_size=16)["total_params"]
    with pytest.raises(ConfigError, match="no hidden size gives a parameter count within 10%"):
        A.match_hidden_size("lstm", smallest // 2, input_size=16, output_size=16)
    with pytest.raises(ConfigError, match="positive integer"):
        A.match_hidden_size("lstm", 0, input_size=16, output_size=16)


def test_matched_sizes_of_the_quick_preset_are_within_ten_percent():
    df = A.matched_sizes(A.quick_config())
    assert list(df["unit"]) == list(A.UNITS)
    assert (df["rel_diff"].abs() <= 0.10).all(), df
    assert (df["state_dim"] > 0).all()


# ------------------------------------------------------------------------------ the verdict
def test_verdict_clear_win_is_reproduced():
    a, b = [0.90, 0.93, 0.95, 0.91], [0.30, 0.36, 0.33, 0.31]
    v = A.gap_verdict(a, b)
    assert v["verdict"] == "reproduced" and v["lower"] > 0
    # the one-sided Welch p-value is scipy's
    ref = stats.ttest_ind(a, b, equal_var=False, alternative="greater")
    assert v["p_greater"] == pytest.approx(ref.pvalue, rel=1e-9)
    assert v["diff"] == pytest.approx(np.mean(a) - np.mean(b))


def test_verdict_clear_loss_is_not_reproduced():
    v = A.gap_verdict([0.20, 0.25, 0.22], [0.60, 0.65, 0.62])
    assert v["verdict"] == "not reproduced" and v["upper"] < 0


def test_verdict_overlap_is_inconclusive():
    v = A.gap_verdict([0.40, 0.70, 0.50], [0.45, 0.55, 0.35])
    assert v["verdict"] == "inconclusive" and v["lower"] < 0 < v["upper"]


def test_verdict_margin_and_edge_cases():
    a, b = [0.60, 0.62, 0.61], [0.40, 0.41, 0.42]
    assert A.gap_verdict(a, b)["verdict"] == "reproduced"
    assert A.gap_verdict(a, b, margin=0.5)["verdict"] == "not reproduced"  # the gap is surely below 0.5
    assert A.gap_verdict([0.9], [0.1])["verdict"] == "inconclusive"  # one seed: no uncertainty
    v = A.gap_verdict([1.0, 1.0], [0.5, 0.5])  # no spread at all: the seeds agree exactly
    assert v["verdict"] == "reproduced" and v["lower"] == v["upper"] == pytest.approx(0.5)
    assert A.gap_verdict([0.5, 0.5], [0.5, 0.5])["verdict"] == "not reproduced"  # equal, surely not better
    with pytest.raises(ConfigError):
        A.gap_verdict(a, b, level=0.3)


def test_published_checks_compare_the_interval_with_the_cited_value():
    acc = pd.DataFrame([
        {"unit": "s4d", "task": "selective_copy", "seeds": 3, "mean": 0.2, "ci_low": 0.15, "ci_high": 0.25},
        {"unit": "mamba", "task": "selective_copy", "seeds": 3, "mean": 0.6, "ci_low": 0.55, "ci_high": 0.65},
    ])
    p = A.published_checks(acc).set_index("our unit")
    assert p.loc["s4d", "status"] == "reproduced"  # 18.3% lies in [15%, 25%]
    assert p.loc["mamba", "status"] == "not reproduced (ours lower)"  # below 97.0-99.8%
    assert p.loc["s4d", "published accuracy"] == 0.183 and p.loc["mamba", "published accuracy"] == 0.998
    acc.loc[1, ["ci_low", "ci_high"]] = [0.96, 0.99]
    assert A.published_checks(acc).set_index("our unit").loc["mamba", "status"] == "reproduced"


def test_config_is_checked_before_anything_runs():
    with pytest.raises(ConfigError, match="unknown unit 'nope'"):
        A.quick_config(units=("nope",)).validate()
    with pytest.raises(ConfigError, match="card_seeds"):
        A.quick_config(seeds=2, card_seeds=3).validate()
    with pytest.raises(ConfigError, match="unknown card section"):
        A.quick_config(card={"nonsense": {}}).validate()
    with pytest.raises(ConfigError, match="unknown field"):
        A.quick_config(selective_copy={"T": 4, "vocab_size": 9}).validate()


# ------------------------------------------------------------------------------ end to end
TINY_CARD = {"forgetting": {"T": 200, "P": 20, "input_pairs": 2, "rate_steps": 50},
             "capacity": {"steps": 200, "washout": 20},
             "lyapunov": {"steps": 20, "washout": 5, "k": 2},
             "connectivity": {"T": 20, "sequences": 1},
             "long_memory": {"T": 60, "max_lag": 20, "n_samples": 2},
             "semantic": {"sequences": 8, "fit_sequences": 32, "words": 1000, "vocab_size": 20, "space": "random",
                          "bootstrap": 100}}
TINY = dict(units="s4d,mamba", seeds=2, card_seeds=1, steps=3, target_params=600, batch=8, eval_size=40,
            sc_noise=4, sc_memorize=2, mqar_length=12, mqar_pairs=2)
DETERMINISTIC = ("sizes.csv", "training.csv", "accuracy.csv", "cards.csv", "published.csv")


def _tiny_card() -> dict:
    return A.registered_card_settings(TINY_CARD)


def _cli_args(out) -> list[str]:
    args = ["reproduce", "architectures", "--quick", "--out", str(out), "--quiet", "--threads", "1"]
    for k, v in TINY.items():
        args += [f"--{k.replace('_', '-')}", str(v)]
    for probe, fields in _tiny_card().items():
        for f, v in fields.items():
            args += ["--card", f"{probe}.{f}={v}"]
    return args




def test_tiny_run_cli_and_api_agree(monkeypatch, capsys, tmp_path):
    cli_out = tmp_path / "cli"
    code, stdout, err = _run_main(monkeypatch, capsys, _cli_args(cli_out))
    assert code == 0, err
    assert "selective copying, mamba vs s4d" in stdout and "report:" in stdout
    for name in (*DETERMINISTIC, "verdict.json", "config.json", "timings.csv", "report.html", "report.md",
                 "cards/compare_init.html", "cards/compare_selective_copy.html", "cards/compare_mqar.html",
                 "cards/mamba-init-s0.json", "cards/s4d-mqar-s0.json"):
        assert (cli_out / name).is_file(), name
    cfg = json.loads((cli_out / "config.json").read_text())
    assert cfg["units"] == ["s4d", "mamba"] and cfg["seed_list"] == [0, 1] and cfg["steps"] == 3
    assert cfg["published"]["rows"][0]["accuracy"] == 0.183
    training = pd.read_csv(cli_out / "training.csv")
    assert len(training) == 2 * 2 * 2  # units x tasks x seeds
    assert set(training["task"]) == {"selective_copy", "mqar"}
    cards = pd.read_csv(cli_out / "cards.csv")
    assert len(cards) == 2 * 3  # units x (init + two tasks), first seed
    for tol in ("exact", "0.01"):  # censored runs are counted, and a mean is given only without any
        assert (cards[f"forget_{tol}_censored"] >= 0).all()
        assert cards.loc[cards[f"forget_{tol}_censored"] > 0, f"forget_{tol}_mean"].isna().all()
    verdict = json.loads((cli_out / "verdict.json").read_text())
    assert verdict["verdict"] in ("reproduced", "not reproduced", "inconclusive") and verdict["n_a"] == 2
    html = (cli_out / "report.html").read_text()
    assert "Matched parameter counts" in html and verdict["verdict"] in html and "18.3%" in html

    # the same study through the Python API: the same numbers (--card updates the quick preset's fields)
    card = {k: {**v, **_tiny_card().get(k, {})} for k, v in A.quick_config().card.items()}
    api_cfg = A.quick_config(units=("s4d", "mamba"), seeds=2, card_seeds=1, steps=3, target_params=600, batch=8,
                             eval_size=40, selective_copy={"T": 4, "n_memorize": 2},
                             mqar={"T": 12, "n_pairs": 2, "n_queries": None}, card=card)
    api_out = tmp_path / "api"
    res = A.reproduce(api_out, quick=True, config=api_cfg)
    assert res["verdict"]["verdict"] == verdict["verdict"]
    api_json = json.loads((api_out / "config.json").read_text())
    assert json.loads(json.dumps(api_json["card"])) == cfg["card"]
    for name in DETERMINISTIC:
        a, b = pd.read_csv(cli_out / name), pd.read_csv(api_out / name)
        pd.testing.assert_frame_equal(a, b, check_exact=True, obj=name)
    assert json.loads((api_out / "verdict.json").read_text()) == verdict


def test_cli_bad_values_are_one_error_line(monkeypatch, capsys, tmp_path):
    out = tmp_path / "o"
    code, _, err = _run_main(monkeypatch, capsys, ["reproduce", "architectures", "--quick", "--out", str(out),
                                                   "--units", "lstm,nope"])
    assert code == 2 and "error: unknown unit 'nope'" in err and "Traceback" not in err
    code, _, err = _run_main(monkeypatch, capsys, ["reproduce", "architectures", "--quick", "--out", str(out),
                                                   "--card", "lyapunov=3"])
    assert code == 2 and "--card must look like PROBE.FIELD=VALUE" in err
    code, _, err = _run_main(monkeypatch, capsys, ["reproduce", "architectures", "--quick", "--out", str(out),
                                                   "--card", "lyapunov.bogus=3"])
    assert code == 2 and "bogus" in err
    assert not out.exists()
