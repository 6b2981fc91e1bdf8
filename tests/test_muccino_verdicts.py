"""Verdicts of the memory-stability reproduction, the protocol search and its building blocks."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch

from rnnmem import cells
from rnnmem.probes.forgetting import OutputCriterion, _draw_block, derive_input_seed, forgetting
from rnnmem.studies.muccino_verdicts import cell_values, comparison_table, km_median, verdict_table

SIZES = (1, 2, 4, 8, 16, 32, 64, 128)


def _grid(fn, runs=5):
    """Per-run table: each cell's runs spread +-10% around fn (their mean is exactly fn)."""
    rows = []
    for cell in ("lstm", "gru"):
        for i in SIZES:
            for u in SIZES:
                m = fn(cell, i, u)
                for r in range(runs):
                    rows.append({"cell": cell, "input_size": i, "units": u, "steps": m * (1 + (r - (runs - 1) / 2) * 0.05),
                                 "censored": False})
    return pd.DataFrame(rows)


def published_like(cell, i, u):
    """The published pattern: ~1 step at one unit; LSTM grows with units and shrinks with input;
    GRU grows with units, no input effect."""
    if u == 1:
        return 1.0
    if cell == "lstm":
        return 20 + 4 * np.log2(u) - 2 * np.log2(i)
    return 10 + 1.5 * np.log2(u)


def _published():
    return (_grid(published_like, runs=1).rename(columns={"steps": "mean_steps"})
            .drop(columns="censored"))


def _verdicts(fn):
    runs = _grid(fn)
    vt = verdict_table(cell_values(runs, "steps", "censored"), _published(), n_boot=300)
    return vt.set_index([vt["claim"], vt["cells"].str[:4]])["verdict"], vt


def test_table_with_the_published_trends_gets_reproduced_everywhere():
    verdict, vt = _verdicts(published_like)
    assert (vt["verdict"] == "reproduced").all(), vt[["claim", "cells", "ours", "interval", "p", "verdict"]]
    assert len(vt) == 8


def test_table_without_the_trends_is_not_reproduced():
    # no units trend (depends on input only), LSTM input trend reversed, GRU input effect,
    # a 1-unit column ten times too long
    def flat(cell, i, u):
        return 10.0 * published_like(cell, 1, 1) * 10 if u == 1 else 25 + 3 * np.log2(i)

    verdict, vt = _verdicts(flat)
    assert verdict[("more units -> longer memory", "LSTM")] == "not reproduced"
    assert verdict[("more units -> longer memory", "GRU ")] == "not reproduced"
    assert verdict[("larger input -> faster forgetting", "LSTM")] == "not reproduced"
    assert verdict[("no input effect", "GRU ")] == "not reproduced"
    assert verdict[("1-unit column (~1 step)", "LSTM")] == "not reproduced"
    assert verdict[("magnitudes", "GRU ")] == "not reproduced"  # ~2x the published GRU magnitudes


def test_cells_used_are_stated_and_the_same_for_every_column():
    _, vt = _verdicts(published_like)
    big = vt[vt["claim"] != "1-unit column (~1 step)"]
    assert big["cells"].str.contains(r"units 2-128 x input 1-128 \(56 cells\)").all()
    one = vt[vt["claim"] == "1-unit column (~1 step)"]
    assert one["cells"].str.contains(r"units 1 x input 1-128 \(8 cells\)").all()
    # the comparison table: every column of a row over the row's cells, units = 1 never dropped silently
    runs = _grid(lambda c, i, u: 10.0 if u == 1 else published_like(c, i, u))
    comp = comparison_table(cell_values(runs, "steps", "censored"), _published()).set_index(["cell", "cells"])
    assert comp.loc[("lstm", "units >= 2"), "grid cells"] == 56
    assert comp.loc[("lstm", "units = 1"), "grid cells"] == 8
    assert comp.loc[("lstm", "all"), "grid cells"] == 64
    assert comp.loc[("lstm", "units = 1"), "median ours/published"] == pytest.approx(10.0)
    assert comp.loc[("lstm", "units >= 2"), "median ours/published"] == pytest.approx(1.0)
    assert comp.loc[("lstm", "all"), "mean |log2 ratio|"] > comp.loc[("lstm", "units >= 2"), "mean |log2 ratio|"]


def test_censored_cells_are_left_out_and_counted():
    runs = _grid(published_like)
    runs.loc[(runs["cell"] == "lstm") & (runs["units"] == 128) & (runs["input_size"] == 1), "censored"] = True
    vt = verdict_table(cell_values(runs, "steps", "censored"), _published(), n_boot=100)
    lstm = vt[vt["cells"].str.startswith("LSTM units 2-128")]
    assert lstm["cells"].str.contains("1 cell\\(s\\) with censored runs left out").all()


def test_km_median_with_censoring():
    assert km_median(np.array([10.0, 20.0, 30.0]), np.array([])) == 20.0
    # 1 of 3 measured (277) and two censored later: the median is not reached
    assert np.isnan(km_median(np.array([277.0]), np.array([800.0, 900.0])))
    # 2 of 3 measured: the KM median is the larger measured value
    assert km_median(np.array([100.0, 200.0]), np.array([900.0])) == 200.0


def test_aggregate_shows_no_mean_over_the_few_uncensored_runs():
    from rnnmem.studies.muccino import aggregate
    from rnnmem.studies.muccino_report import _display

    base = {"variant": "keras-float32", "cell": "gru", "input_size": 1, "units": 64, "P": 1000, "rate": 0.1}
    rows = [{**base, "seed": 0, "status": "exact", "steps_exact": 277.0, "censored_exact": False,
             "event_step": 1276, "steps_computed": 1500},
            {**base, "seed": 1, "status": "floor", "steps_exact": np.nan, "censored_exact": True,
             "event_step": 1749, "steps_computed": 1750},
            {**base, "seed": 2, "status": "floor", "steps_exact": np.nan, "censored_exact": True,
             "event_step": 1749, "steps_computed": 1750}]
    agg = aggregate(pd.DataFrame(rows), tolerances=(0.0,))
    row = agg.iloc[0]
    assert np.isnan(row["mean_exact"]) and row["mean_uncensored_exact"] == 277.0 and row["censored_exact"] == 2
    value, notes = _display(agg, "exact")
    assert np.isnan(value.iloc[0, 0]) and notes.iloc[0, 0] == "2/3\ncens."


@pytest.mark.parametrize("cell,convention", [("lstm", "keras"), ("gru", "keras2")])
def test_probe_criteria_match_a_naive_read_of_the_full_trajectory(cell, convention):
    T, P, R = 1500, 200, 3
    crits = (OutputCriterion("abs1e-4", atol=1e-4), OutputCriterion("exact"), OutputCriterion("isclose", 1e-8, 1e-5),
             OutputCriterion("rel1e-3", rtol=1e-3), OutputCriterion("round4", decimals=4))
    unit = cells.build(cell, 4, 8, convention=convention, seeds=range(R))
    res = forgetting(unit, T=T, P=P, tolerances=(0.0, 1e-4), criteria=crits, early_stop=False).table
    gens = [torch.Generator().manual_seed(derive_input_seed(s)) for s in range(R)]
    ys, st = [], None
    with torch.inference_mode():
        for t0 in range(0, T, 250):
            y, st = unit(_draw_block(gens, 250, 4, t0, P, torch.float32), st)
            ys.append(y)
    y = torch.cat(ys).double().numpy()
    a, b = y[:, :, 0], y[:, :, 1]
    close = {"abs1e-4": (np.abs(a - b) <= 1e-4).all(-1), "exact": (a == b).all(-1),
             "isclose": np.isclose(a, b).all(-1), "rel1e-3": (np.abs(a - b) <= 1e-3 * np.abs(b)).all(-1),
             "round4": (np.round(a, 4) == np.round(b, 4)).all(-1)}
    for name, c in close.items():
        for r in range(R):
            far = np.nonzero(~c[:, r])[0]
            first = P + np.argmax(c[P:, r])
            if not res.loc[r, f"censored_stay_{name}"]:
                assert res.loc[r, f"stay_{name}"] == max(0, far.max() + 1 - P), (name, r)
            assert res.loc[r, f"first_{name}"] == first - P, (name, r)
    assert (res["stay_abs1e-4"] == res["steps_0.0001"]).all()
    assert (res["first_abs1e-4"] <= res["stay_abs1e-4"]).all()


def test_float16_emulation_rounds_the_state_every_step():
    from rnnmem.studies.muccino_explain import emulate_float16

    unit = cells.build("lstm", 3, 5, convention="keras2", seeds=[0, 1])
    emulate_float16(unit)
    x = torch.randn(20, 2, 2, 3)
    y, state, all_st = unit(x, return_all_states=True)
    assert torch.equal(y, y.half().float())
    for comp in all_st:
        assert torch.equal(comp, comp.half().float())
    assert unit.rounding_dtype == torch.float16
    res = forgetting(unit, T=3000, P=200, tolerances=(1e-2,))
    assert set(res.table["status"]) <= {"exact", "floor"}


def test_glorot_recurrent_init_differs_from_orthogonal():
    ortho = cells.build("gru", 4, 16, convention="keras", seed=3)
    glorot = cells.build("gru", 4, 16, convention="keras", seed=3, init="glorot")
    W = ortho.layer_params[0].W_h.detach()
    assert torch.allclose(W @ W.T, torch.eye(16), atol=1e-5)
    G = glorot.layer_params[0].W_h.detach()
    assert not torch.allclose(G @ G.T, torch.eye(16), atol=1e-2)
    assert G.abs().max() <= (6 / (16 + 48)) ** 0.5


def _cli(*args):
    return subprocess.run([sys.executable, "-m", "rnnmem.cli", *args], capture_output=True, text=True, timeout=600)


def test_explain_cli_ranks_the_variants_and_names_the_best(tmp_path):
    out = tmp_path / "ex"
    res = _cli("reproduce", "muccino", "--explain", "--out", str(out), "--sizes", "1,4", "--runs", "2",
               "--T", "2000", "--P", "200", "--workers", "0")
    assert res.returncode == 0, res.stderr
    fits = pd.read_csv(out / "explain_variants.csv")
    assert fits["model"].nunique() == 8 and fits["criterion"].nunique() == 14
    assert set(fits["mode"]) == {"first", "stay"} and set(fits["offset"]) == {"P", "P+1"}
    assert fits["fit all"].is_monotonic_increasing
    text = (out / "explain.md").read_text()
    best = fits.iloc[0]
    closing = text.split("## Closing note")[1]
    assert f"{best['model']} / {best['criterion']} / {best['mode']}" in closing
    assert f"{best['fit all']:.3f}" in closing
    assert "explains the published table" in closing


def test_explain_bad_reference_fails_before_computing(tmp_path):
    res = _cli("reproduce", "muccino", "--explain", "--out", str(tmp_path / "x"), "--reference",
               str(tmp_path / "missing.csv"), "--sizes", "1", "--runs", "1", "--T", "500", "--P", "100")
    assert res.returncode == 2 and "not found" in res.stderr
    assert not (tmp_path / "x" / "explain.sqlite").exists()


def test_heatmap_grid_fits_the_page(tmp_path):
    from PIL import Image

    from rnnmem.report.heatmap import heatmaps

    df = pd.DataFrame(np.arange(64.0).reshape(8, 8) + 1, index=SIZES, columns=SIZES)
    panels = {f"p{k}": df for k in range(8)}
    path = heatmaps(panels, tmp_path / "h.png", "t", "v", ncols=2, panel_size=(5.0, 4.2), dpi=100)
    w, h = Image.open(path).size
    assert w <= 1100 and h > w  # 4 rows of 2, not one 8-panel strip
