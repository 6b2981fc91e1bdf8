"""Series loading, the paper's splits, MinMax scaling and the AR(1) least-squares baseline."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnmem.errors import ConfigError, InputError
from rnnmem.tasks.arfima import simulate_arfima
from rnnmem.tasks.series import (
    ZHAO_SPLITS,
    ar1_baseline,
    fit_ar1,
    fit_scaler,
    load_series,
    split_series,
    split_zhao,
    zhao_ar1_table,
    zhao_split,
)


def _write(tmp_path, text, name="s.csv"):
    p = tmp_path / name
    p.write_text(text)
    return p


# ----------------------------------------------------------------------------- loading
def test_load_series_reads_the_column(tmp_path):
    p = _write(tmp_path, "day,x,temp\n1,0.5,3\n2,-1.25,4\n3,2,5\n")
    x = load_series(p)
    assert x.dtype == np.float64
    np.testing.assert_array_equal(x, [0.5, -1.25, 2.0])
    np.testing.assert_array_equal(load_series(p, column="temp"), [3, 4, 5])


def test_load_series_errors(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_series(tmp_path / "missing.csv")
    p = _write(tmp_path, "day,y\n1,2\n2,3\n3,4\n")
    with pytest.raises(InputError, match=r"no column 'x' \(columns: day, y\)"):
        load_series(p)
    p = _write(tmp_path, "x\n1\n\n2\nNaN\n3\n", "blank.csv")
    with pytest.raises(InputError, match="line 3 is blank"):  # a blank line is never dropped silently
        load_series(p)
    p = _write(tmp_path, "x\n1\n2\nNaN\n3\n", "nan.csv")
    with pytest.raises(InputError, match=r"missing/NaN at line 4 \(data row 3\)"):
        load_series(p)
    p = _write(tmp_path, "x\n1\nabc\n2\n", "txt.csv")
    with pytest.raises(InputError, match=r"non-numeric value 'abc' at line 3 \(data row 2\)"):
        load_series(p)
    assert load_series(_write(tmp_path, "x\n1\n2\n3\n\n\n", "trailing.csv")).tolist() == [1.0, 2.0, 3.0]
    p = _write(tmp_path, "x\n1\n2\n", "short.csv")
    with pytest.raises(InputError, match="2 values; at least 3"):
        load_series(p)
    p = _write(tmp_path, "", "empty.csv")
    with pytest.raises(InputError, match="cannot read"):
        load_series(p)


# ----------------------------------------------------------------------------- splits
def test_zhao_splits_table():
    assert {k: (s.train, s.val, s.test, s.values) for k, s in ZHAO_SPLITS.items()} == {
        "arfima": (2000, 1200, 800, 4001), "DJI": (2500, 1500, 1028, 5029),
        "traffic": (1200, 200, 459, 1860), "tree7": (2500, 1000, 850, 4351)}
    for s in ZHAO_SPLITS.values():  # the blocks are the n - 1 pairs exactly
        assert s.pairs == s.values - 1
    assert zhao_split("/some/where/DJI.csv") is ZHAO_SPLITS["DJI"]
    assert zhao_split("dji") is ZHAO_SPLITS["DJI"]
    with pytest.raises(ConfigError, match="no published split"):
        zhao_split("sunspots.csv")


def test_split_series_blocks():
    x = np.arange(11.0)  # 10 pairs
    sp = split_series(x, 5, 3, 2)
    np.testing.assert_array_equal(sp.train.inputs, [0, 1, 2, 3, 4])
    np.testing.assert_array_equal(sp.train.targets, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(sp.val.inputs, [5, 6, 7])
    np.testing.assert_array_equal(sp.test.targets, [9, 10])
    assert (sp.train.start, sp.val.start, sp.test.start, sp.unused) == (0, 5, 8, 0)
    rest = split_series(x, 4, 2)
    assert len(rest.test) == 4 and rest.test.targets[-1] == 10
    part = split_series(x, 4, 2, 1)
    assert part.unused == 3
    with pytest.raises(InputError, match="need 11 pairs"):
        split_series(x, 6, 3, 2)
    with pytest.raises(ConfigError, match="val"):
        split_series(x, 5, -1, 2)


def test_published_series_have_the_published_lengths(shared_data):
    folder = shared_data / "zhao2020"
    found = 0
    for stem, s in ZHAO_SPLITS.items():
        path = folder / f"{stem}.csv"
        if not path.is_file():
            continue
        found += 1
        sp = split_zhao(load_series(path), stem)
        assert (len(sp.train), len(sp.val), len(sp.test), sp.unused) == (s.train, s.val, s.test, 0)
    if not found:
        pytest.skip("zhao2020 series not in the shared data")


def test_split_zhao_checks_length():
    with pytest.raises(InputError, match="published one has 4001"):
        split_zhao(np.zeros(100), "arfima")


# ----------------------------------------------------------------------------- scaling
def test_scaler_train_and_full():
    x = np.r_[np.linspace(0, 1, 6), 5.0, -3.0, 2.0]  # 8 pairs; train block touches x_0..x_4
    sp = split_series(x, 4, 2, 2)
    tr = fit_scaler(sp)
    assert (tr.lo, tr.hi, tr.fitted_on) == (0.0, 0.8, "train")
    full = fit_scaler(sp, "full")
    assert (full.lo, full.hi) == (-3.0, 5.0)
    np.testing.assert_allclose(full.inverse_transform(full.transform(x)), x)
    t = torch.tensor(x)
    torch.testing.assert_close(tr.inverse_transform(tr.transform(t)), t)
    assert full.transform(x).min() == 0.0 and full.transform(x).max() == 1.0
    with pytest.raises(ConfigError, match="scaler"):
        fit_scaler(sp, "minmax")
    with pytest.raises(InputError, match="constant"):
        fit_scaler(split_series(np.r_[np.ones(5), 2.0], 3, 1, 1))


# ----------------------------------------------------------------------------- AR(1)
def test_fit_ar1_recovers_the_coefficients():
    x = 2.0 + simulate_arfima(20_000, 0.0, ar=[0.6], seed=4)  # mean 2 -> c = 2 (1 - 0.6)
    c, phi = fit_ar1(x[:-1], x[1:])
    assert phi == pytest.approx(0.6, abs=0.02)
    assert c == pytest.approx(0.8, abs=0.05)


def test_ar1_is_scaler_invariant_and_evaluates_each_block():
    x = simulate_arfima(3001, 0.3, ar=[0.2], seed=8) * 10 + 4
    sp = split_series(x, 1500, 900, 600)
    a, b = ar1_baseline(sp, "train"), ar1_baseline(sp, "full")
    assert list(a["block"]) == ["train", "val", "test"]
    np.testing.assert_allclose(a["rmse"], b["rmse"], rtol=1e-10)
    # the test RMSE is the one-step-ahead error of the training fit, on the original scale
    c, phi = fit_ar1(sp.train.inputs, sp.train.targets)
    pred = c + phi * sp.test.inputs
    assert a.loc[2, "rmse"] == pytest.approx(np.sqrt(np.mean((pred - sp.test.targets) ** 2)), rel=1e-10)
    assert a.loc[2, "mae"] == pytest.approx(np.mean(np.abs(pred - sp.test.targets)), rel=1e-10)


def test_ar1_reproduces_the_readme_numbers(shared_data):
    """shared/data/zhao2020/README.md: test RMSE 1.102 / 0.2753 (x100) / 343.6 / 0.2827."""
    folder = shared_data / "zhao2020"
    if not all((folder / f"{s}.csv").is_file() for s in ZHAO_SPLITS):
        pytest.skip("zhao2020 series not in the shared data")
    published = {"arfima": 1.102, "DJI": 0.2753, "traffic": 343.6, "tree7": 0.2827}
    for scaler in ("train", "full"):
        table = zhao_ar1_table(folder, scaler=scaler).set_index("dataset")
        for name, rmse in published.items():
            # the README rounds to 4 significant digits
            assert table.loc[name, "rmse"] == pytest.approx(rmse, rel=1e-3), (name, scaler)
    assert table.loc["DJI", "report_scale"] == 100.0
