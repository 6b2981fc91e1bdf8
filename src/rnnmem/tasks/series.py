"""Univariate series for one-step-ahead prediction: loading, the paper's splits, MinMax scaling, AR(1).

Protocol of Zhao et al. (ICML 2020, Section 5.1 and their code): a series x_0..x_{n-1} gives the
n - 1 input/target pairs (x_t, x_{t+1}); the pairs are split chronologically into train, validation
and test blocks (``ZHAO_SPLITS``, numbers of *pairs*). Values are MinMax-scaled to [0, 1]; the paper
fits the scaler on the whole series (``scaler="full"``); rnnmem's default fits it on the values the
training pairs touch, x_0..x_train (``scaler="train"``), so nothing from the test block leaks in.
Metrics are computed on the original scale (``MinMaxScaler.inverse_transform``).

AR(1) baseline (ours, for the report's comparison): x_{t+1} = c + phi x_t + e_t fitted by ordinary
least squares on the training pairs, evaluated one step ahead on each block. With an intercept the
least-squares predictions are equivariant under affine rescaling, so the scaler does not change
them (checked in the tests); this convention reproduces the test RMSEs in
``shared/data/zhao2020/README.md`` (1.102 / 0.2753 x100 / 343.6 / 0.2827).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from ..errors import ConfigError, InputError

SCALERS = ("train", "full")


@dataclass(frozen=True)
class Split:
    """Numbers of (x_t, x_{t+1}) pairs in each chronological block; ``values`` = pairs + 1 for the
    published series. ``report_scale`` multiplies RMSE/MAE where the paper reports them scaled
    (DJI x100 in Table 2)."""

    train: int
    val: int
    test: int
    values: int | None = None
    report_scale: float = 1.0

    @property
    def pairs(self) -> int:
        return self.train + self.val + self.test


#: The paper's splits of the four published series, keyed by file stem (see
#: shared/data/zhao2020/README.md: "values" is the series length, the blocks count pairs).
ZHAO_SPLITS: dict[str, Split] = {
    "arfima": Split(2000, 1200, 800, values=4001),
    "DJI": Split(2500, 1500, 1028, values=5029, report_scale=100.0),
    "traffic": Split(1200, 200, 459, values=1860),
    "tree7": Split(2500, 1000, 850, values=4351),
}


def zhao_split(path_or_stem) -> Split:
    """The paper's split for a file such as ``.../DJI.csv`` (matched by stem, case-sensitive first,
    then case-insensitive)."""
    stem = Path(str(path_or_stem)).stem
    if stem in ZHAO_SPLITS:
        return ZHAO_SPLITS[stem]
    for key, split in ZHAO_SPLITS.items():
        if key.lower() == stem.lower():
            return split
    raise ConfigError(
        f"no published split for {stem!r}; known series: {', '.join(ZHAO_SPLITS)}. "
        "Give the block sizes explicitly (split_series(x, train, val, test))"
    )


# ----------------------------------------------------------------------------- loading
def load_series(path, column: str = "x", min_length: int = 3) -> np.ndarray:
    """Read one numeric column of a CSV file as a float64 array.

    Raises ``InputError`` for a missing or unreadable file, a missing column (the message lists
    the columns there are), a blank line between values, non-numeric or missing values (the first
    bad one is named by its line in the file, the header being line 1) and a series shorter than
    ``min_length``. Blank lines at the end of the file are ignored; no other row is ever dropped.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"series file not found: {path} (give the path of a CSV file with a column {column!r})")
    try:
        # rows = lines, cells as text: nothing is dropped or converted silently
        frame = pd.read_csv(path, skip_blank_lines=False, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"cannot read {path} as CSV: {exc}") from None
    if column not in frame.columns:
        cols = ", ".join(map(str, frame.columns)) or "none"
        raise InputError(f"{path} has no column {column!r} (columns: {cols}); pass --column NAME")
    blank = (frame.apply(lambda c: c.str.strip()) == "").all(axis=1).to_numpy()
    n = len(frame)
    while n and blank[n - 1]:  # trailing blank lines hold no data
        n -= 1
    frame, blank = frame.iloc[:n], blank[:n]
    if blank.any():
        line = int(np.flatnonzero(blank)[0]) + 2
        raise InputError(f"{path} line {line} is blank ({int(blank.sum())} blank line(s) between values); a series "
                         "must have one value per line: remove the blank lines or fill in the missing values")
    raw = frame[column].str.strip()
    values = pd.to_numeric(raw, errors="coerce")
    bad = values.isna() | ~np.isfinite(values.to_numpy(dtype=float, na_value=np.nan))
    if bad.any():
        first = int(np.flatnonzero(bad.to_numpy())[0])
        cell = raw.iloc[first]
        if cell.lower() in ("", "nan", "na", "n/a", "null", "none"):
            kind = "missing/NaN"
        elif pd.notna(values.iloc[first]):
            kind = f"infinite value {cell!r}"
        else:
            kind = f"non-numeric value {cell!r}"
        raise InputError(
            f"{path} column {column!r} has {int(bad.sum())} bad value(s), first a {kind} at line "
            f"{first + 2} (data row {first + 1}); clean or impute the series first"
        )
    x = values.to_numpy(dtype=np.float64)
    if x.size < min_length:
        raise InputError(f"{path} column {column!r} has {x.size} values; at least {min_length} are needed")
    return x


# ----------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class Pairs:
    """One block of one-step-ahead pairs: ``inputs[i] = x[start + i]``, ``targets[i] = x[start + i + 1]``."""

    inputs: np.ndarray
    targets: np.ndarray
    start: int

    def __len__(self) -> int:
        return len(self.inputs)


@dataclass(frozen=True)
class SeriesSplit:
    """A series cut into chronological train/val/test blocks of pairs (``unused`` pairs at the end
    are left out when the blocks do not cover the whole series)."""

    x: np.ndarray
    train: Pairs
    val: Pairs
    test: Pairs
    unused: int

    def blocks(self) -> dict[str, Pairs]:
        return {"train": self.train, "val": self.val, "test": self.test}


def _count(name: str, value) -> int:
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ConfigError(f"{name} must be a non-negative integer number of pairs, got {value!r}")
    return int(value)


def split_series(x, train: int, val: int, test: int | None = None) -> SeriesSplit:
    """Cut x_0..x_{n-1} into the pair blocks [0, train), [train, train+val), [train+val, +test).

    ``test=None`` takes every remaining pair. Blocks are numbers of (x_t, x_{t+1}) pairs, so a
    series of n values holds n - 1 pairs; asking for more raises ``InputError``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 1:
        raise InputError(f"the series must be one-dimensional, got shape {x.shape}")
    train, val = _count("train", train), _count("val", val)
    n_pairs = x.size - 1
    if test is None:
        test = n_pairs - train - val
        if test < 1:
            raise InputError(f"no pairs left for the test block: {x.size} values give {n_pairs} pairs, "
                             f"train + val = {train + val}")
    test = _count("test", test)
    if train < 1:
        raise ConfigError("the training block needs at least one pair")
    if train + val + test > n_pairs:
        raise InputError(
            f"the blocks need {train + val + test} pairs (train {train} + val {val} + test {test}) but "
            f"{x.size} values give only {n_pairs}; check the split or the file"
        )
    inputs, targets = x[:-1], x[1:]

    def block(a: int, b: int) -> Pairs:
        return Pairs(inputs[a:b], targets[a:b], a)

    a1, a2, a3 = train, train + val, train + val + test
    return SeriesSplit(x=x, train=block(0, a1), val=block(a1, a2), test=block(a2, a3),
                       unused=n_pairs - a3)


def split_zhao(x, name) -> SeriesSplit:
    """``split_series`` with the paper's split for series ``name`` (a file stem or path); checks
    the series length against the published one."""
    sp = zhao_split(name)
    x = np.asarray(x, dtype=np.float64)
    if sp.values is not None and x.size != sp.values:
        raise InputError(f"series {Path(str(name)).stem!r} has {x.size} values but the published one has "
                         f"{sp.values}; is it the right file?")
    return split_series(x, sp.train, sp.val, sp.test)


# ----------------------------------------------------------------------------- scaling
@dataclass(frozen=True)
class MinMaxScaler:
    """x' = (x - lo) / (hi - lo), mapping [lo, hi] to [0, 1] (scikit-learn's MinMaxScaler with
    feature_range (0, 1), which the paper's code uses). Works on numpy arrays, torch tensors and
    floats alike."""

    lo: float
    hi: float
    fitted_on: str = "train"

    def transform(self, x):
        return (x - self.lo) / (self.hi - self.lo)

    def inverse_transform(self, x):
        return x * (self.hi - self.lo) + self.lo

    def as_dict(self) -> dict:
        return {"lo": self.lo, "hi": self.hi, "fitted_on": self.fitted_on}


def fit_scaler(split: SeriesSplit, scaler: str = "train") -> MinMaxScaler:
    """Fit the MinMax scaler on the values the training pairs touch, x_0..x_train (``"train"``,
    default) or on the whole series (``"full"``, the paper's choice)."""
    if scaler not in SCALERS:
        raise ConfigError(f"scaler must be one of {', '.join(SCALERS)}, got {scaler!r}")
    values = split.x if scaler == "full" else split.x[: len(split.train) + 1]
    lo, hi = float(values.min()), float(values.max())
    if hi <= lo:
        raise InputError(f"the {'series' if scaler == 'full' else 'training block'} is constant "
                         f"(all values {lo}); MinMax scaling is undefined")
    return MinMaxScaler(lo, hi, scaler)


# ----------------------------------------------------------------------------- AR(1) baseline
def rmse(pred, target) -> float:
    return float(np.sqrt(np.mean((np.asarray(pred) - np.asarray(target)) ** 2)))


def mae(pred, target) -> float:
    return float(np.mean(np.abs(np.asarray(pred) - np.asarray(target))))


def fit_ar1(inputs, targets) -> tuple[float, float]:
    """OLS of targets on [1, inputs]: returns (c, phi) of x_{t+1} = c + phi x_t."""
    inputs = np.asarray(inputs, dtype=np.float64)
    if inputs.size < 2 or np.ptp(inputs) == 0:
        raise InputError("AR(1) needs at least two distinct training inputs")
    A = np.column_stack([np.ones_like(inputs), inputs])
    (c, phi), *_ = np.linalg.lstsq(A, np.asarray(targets, dtype=np.float64), rcond=None)
    return float(c), float(phi)


def ar1_baseline(split: SeriesSplit, scaler: str = "train", report_scale: float = 1.0) -> pd.DataFrame:
    """AR(1) by least squares on the (scaled) training pairs, one-step-ahead predictions on every
    block, RMSE and MAE on the original scale (times ``report_scale``). One row per block."""
    sc = fit_scaler(split, scaler)
    c, phi = fit_ar1(sc.transform(split.train.inputs), sc.transform(split.train.targets))
    rows = []
    for name, block in split.blocks().items():
        if len(block) == 0:
            continue
        pred = sc.inverse_transform(c + phi * sc.transform(block.inputs))
        rows.append({"block": name, "pairs": len(block), "rmse": rmse(pred, block.targets) * report_scale,
                     "mae": mae(pred, block.targets) * report_scale, "c_scaled": c, "phi": phi,
                     "scaler": scaler, "report_scale": report_scale})
    frame = pd.DataFrame(rows)
    frame.attrs["config"] = {"model": "AR(1) with intercept, OLS on training pairs", "scaler": sc.as_dict(),
                             "report_scale": report_scale, "precision": "float64"}
    return frame


def zhao_ar1_table(data_dir, scaler: str = "train") -> pd.DataFrame:
    """The AR(1) baseline on every published series found in ``data_dir`` (test-block rows, RMSE
    and MAE in the paper's reporting scale; DJI x100)."""
    data_dir = Path(data_dir)
    rows = []
    for stem, sp in ZHAO_SPLITS.items():
        path = data_dir / f"{stem}.csv"
        if not path.is_file():
            continue
        res = ar1_baseline(split_zhao(load_series(path), stem), scaler=scaler, report_scale=sp.report_scale)
        test = res[res.block == "test"].iloc[0].to_dict()
        rows.append({"dataset": stem, **test})
    if not rows:
        raise InputError(f"none of {', '.join(s + '.csv' for s in ZHAO_SPLITS)} found in {data_dir}")
    return pd.DataFrame(rows)


__all__ = [
    "Split", "ZHAO_SPLITS", "zhao_split", "load_series", "Pairs", "SeriesSplit", "split_series",
    "split_zhao", "MinMaxScaler", "fit_scaler", "SCALERS", "rmse", "mae", "fit_ar1", "ar1_baseline",
    "zhao_ar1_table",
]
