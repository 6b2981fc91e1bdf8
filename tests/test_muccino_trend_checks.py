"""The report's trend checks use the published rho over the same grid cells (not our own rho twice)."""

from __future__ import annotations

import itertools

import pandas as pd

from rnnmem.studies.muccino_report import trend_checks


def _grid(values):
    rows = [{"cell": "lstm", "input_size": i, "units": u, "value": values(i, u)}
            for i, u in itertools.product([1, 2, 4, 8], [2, 4, 8, 16, 32])]
    return pd.DataFrame(rows)


def _units_row(checks):
    (row,) = [c for c in checks if c["trend"] == "more units -> longer memory"]
    return row


def test_a_published_rho_outside_our_interval_is_not_reproduced():
    ours = _grid(lambda i, u: 100.0 + 10 * i)             # no units effect at all: rho 0, p 1
    published = _grid(lambda i, u: 50.0 * u).rename(columns={"value": "mean_steps"})  # rho ~ +0.97
    alone = _units_row(trend_checks(ours, "value", "rnnmem"))
    assert alone["verdict"] == "inconclusive" and alone["spearman"] == 0.0
    merged = _units_row(trend_checks(ours, "value", "rnnmem", published=published))
    assert merged["published spearman"] > 0.9
    assert merged["verdict"] == "not reproduced"


def test_published_cells_missing_from_the_table_are_left_out_of_its_rho():
    ours = _grid(lambda i, u: 100.0 + 10 * i)
    published = _grid(lambda i, u: 50.0 * u).rename(columns={"value": "mean_steps"})
    published = published[published["input_size"] != 8]   # 15 of the 20 cells published
    row = _units_row(trend_checks(ours, "value", "rnnmem", published=published))
    assert row["cells"] == "units >= 2 (20 cells)" and row["published spearman"] > 0.9
    assert row["verdict"] == "not reproduced"
