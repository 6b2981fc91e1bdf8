"""Published figures embedded as facts, with their sources.

MUCCINO2019: average steps after the 1,000-step unique prefix until "identical" outputs, from
A. Muccino, "An Investigation of RNN Memory Stability" (2019), as transcribed in the reference
data (muccino2019/convergence_steps.csv). Keys: (cell, input_size) -> {units: mean_steps}.
"""

MUCCINO2019_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)

MUCCINO2019 = {
    ("lstm", 1): {1: 1.4, 2: 20.4, 4: 34.0, 8: 34.8, 16: 43.0, 32: 39.8, 64: 47.8, 128: 45.4},
    ("lstm", 2): {1: 0.8, 2: 14.2, 4: 35.2, 8: 36.2, 16: 40.0, 32: 41.4, 64: 44.0, 128: 44.8},
    ("lstm", 4): {1: 0.8, 2: 19.6, 4: 27.0, 8: 33.6, 16: 38.0, 32: 41.8, 64: 43.2, 128: 46.2},
    ("lstm", 8): {1: 1.2, 2: 16.8, 4: 26.8, 8: 30.8, 16: 34.8, 32: 40.4, 64: 41.0, 128: 45.6},
    ("lstm", 16): {1: 1.0, 2: 15.4, 4: 24.6, 8: 27.0, 16: 36.2, 32: 39.6, 64: 40.8, 128: 44.8},
    ("lstm", 32): {1: 0.2, 2: 14.8, 4: 20.2, 8: 23.6, 16: 31.2, 32: 34.0, 64: 38.6, 128: 41.4},
    ("lstm", 64): {1: 0.6, 2: 15.6, 4: 23.6, 8: 27.0, 16: 28.0, 32: 32.8, 64: 34.8, 128: 38.8},
    ("lstm", 128): {1: 1.0, 2: 14.2, 4: 22.8, 8: 26.4, 16: 28.6, 32: 30.6, 64: 31.6, 128: 35.6},
    ("gru", 1): {1: 0.6, 2: 13.6, 4: 15.6, 8: 18.2, 16: 15.4, 32: 15.6, 64: 16.2, 128: 19.6},
    ("gru", 2): {1: 0.2, 2: 12.2, 4: 14.0, 8: 14.0, 16: 14.0, 32: 16.8, 64: 17.6, 128: 16.0},
    ("gru", 4): {1: 0.4, 2: 12.8, 4: 12.4, 8: 16.4, 16: 16.2, 32: 16.8, 64: 16.8, 128: 16.4},
    ("gru", 8): {1: 0.4, 2: 11.4, 4: 13.6, 8: 14.0, 16: 16.4, 32: 16.0, 64: 16.0, 128: 15.6},
    ("gru", 16): {1: 0.8, 2: 11.0, 4: 15.8, 8: 14.4, 16: 15.6, 32: 17.0, 64: 15.4, 128: 16.2},
    ("gru", 32): {1: 0.2, 2: 11.0, 4: 13.6, 8: 13.8, 16: 15.0, 32: 15.4, 64: 16.4, 128: 16.0},
    ("gru", 64): {1: 0.6, 2: 9.4, 4: 13.4, 8: 16.8, 16: 14.0, 32: 16.8, 64: 16.6, 128: 19.0},
    ("gru", 128): {1: 2.0, 2: 7.0, 4: 12.6, 8: 14.4, 16: 14.2, 32: 15.0, 64: 15.0, 128: 15.2},
}


def read_muccino_reference(path):
    """A user's table in place of ``MUCCINO2019``: a CSV with columns cell, input_size, units,
    mean_steps, checked completely (light: pandas only, so commands check it before anything else).

    Parameters
    ----------
    path: the CSV file (``~`` is expanded).

    Returns
    -------
    DataFrame (cell lower-case, numeric input_size, units, mean_steps).

    Raises
    ------
    InputError
        Naming the file and the problem (missing, unreadable, a missing column, no rows, a missing or
        non-numeric value with its line).
    """
    from pathlib import Path

    import numpy as np
    import pandas as pd

    from ..errors import InputError

    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"reference table {path} not found (give a CSV with columns cell,input_size,units,"
                         "mean_steps, or leave out --reference for the published figures)")
    try:
        df = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise InputError(f"cannot read reference table {path} as CSV: {exc}") from None
    missing = {"cell", "input_size", "units", "mean_steps"} - set(df.columns)
    if missing:
        raise InputError(f"reference table {path} lacks columns {sorted(missing)} "
                         "(expected cell,input_size,units,mean_steps)")
    if df.empty:
        raise InputError(f"reference table {path} has no rows")
    df = df[["cell", "input_size", "units", "mean_steps"]].copy()
    for col in ("input_size", "units", "mean_steps"):
        num = pd.to_numeric(df[col], errors="coerce")
        if num.isna().any():
            row = int(np.flatnonzero(num.isna().to_numpy())[0])
            raise InputError(f"reference table {path}: column {col} has a missing or non-numeric value "
                             f"{df[col].iloc[row]!r} at line {row + 2}")
        df[col] = num
    df["cell"] = df["cell"].astype(str).str.strip().str.lower()
    return df
