"""The SQLite results store: keys, round trips, idempotence, atomicity, errors, export, CLI."""

from __future__ import annotations

import hashlib
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
import warnings

import numpy as np
import pandas as pd
import pytest

from rnnmem.errors import ConfigError, InputError
from rnnmem.store import ResultStore, RunRecord, run_key


def rec(seed=0, n=3, study="s", status="ok", **metrics):
    cfg = {"cell": "lstm", "units": n, "opts": {"a": 1, "b": [1, 2]}, "tol": [0.0, 1e-4]}
    return RunRecord(study=study, config=cfg, seed=seed, status=status,
                     metrics={"steps": 10 * seed + n, "rate": -0.5 * n, "note": "x", "gone": None, **metrics},
                     curves={"d": np.arange(n, dtype=np.float32) / 7, "i": np.arange(4).reshape(2, 2)})


def test_run_key_is_sha256_of_canonical_json_and_ignores_order_and_numpy_types():
    cfg = {"b": 2, "a": [1.5, "x"], "n": {"z": 1, "y": None}}
    text = '{"config":{"a":[1.5,"x"],"b":2,"n":{"y":null,"z":1}},"seed":3,"study":"st"}'
    assert run_key("st", cfg, 3) == hashlib.sha256(text.encode()).hexdigest()
    shuffled = {"n": {"y": None, "z": np.int64(1)}, "a": (np.float64(1.5), "x"), "b": 2}
    assert run_key("st", shuffled, np.int32(3)) == run_key("st", cfg, 3)
    assert len({run_key("st", cfg, 3), run_key("st", cfg, 4), run_key("other", cfg, 3),
                run_key("st", {**cfg, "b": 3}, 3)}) == 4
    with pytest.raises(ConfigError, match="seed"):
        run_key("st", cfg, 1.5)
    with pytest.raises(ConfigError, match="cannot be stored"):
        run_key("st", {"f": object()}, 1)


def test_put_get_roundtrip_and_idempotence(tmp_path):
    with ResultStore(tmp_path / "sub" / "r.sqlite") as st:
        r = rec(seed=2, nanval=float("nan"), flag=np.bool_(True), count=np.int64(7))
        assert st.put(r) == 1
        assert st.put(r) == 0                      # same key: nothing new
        assert st.put_many([rec(seed=2), rec(seed=3), rec(seed=3)]) == 1
        assert len(st) == 2 and st.keys() == {r.key, rec(seed=3).key} and st.keys("nope") == set()
        assert st.has(r.key) and not st.has("0" * 64)
        got = st.get(r.key)
        assert got.key == r.key and got.config == r.config and got.seed == 2 and got.status == "ok"
        assert got.metrics["steps"] == 23 and got.metrics["gone"] is None and np.isnan(got.metrics["nanval"])
        assert got.metrics["flag"] is True and got.metrics["count"] == 7 and got.metrics["note"] == "x"
        assert got.package_version and got.started_at
        curves = st.curves(r.key)
        assert curves["d"].dtype == np.float32 and np.array_equal(curves["d"], r.curves["d"])
        assert np.array_equal(curves["i"], np.arange(4).reshape(2, 2))
        assert st.get("0" * 64) is None
        with pytest.raises(InputError, match="no run with key"):
            st.curves("0" * 64)
    with ResultStore(tmp_path / "sub" / "r.sqlite") as st:  # reopened: still there, WAL mode
        assert len(st) == 2 and st.journal_mode == "wal"


def test_load_flattens_config_and_orders_rows(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as st:
        st.put_many([rec(seed=s, n=n) for n in (5, 3) for s in (1, 0)] + [rec(seed=0, study="a")])
        df = st.load("s")
        assert list(df.columns[:4]) == ["key", "study", "seed", "status"]
        assert list(df.columns[-4:]) == ["wall_s", "started_at", "package_version", "config_json"]
        assert {"config.cell", "config.units", "config.opts.a", "config.opts.b", "config.tol"} <= set(df.columns)
        assert df["config.opts.b"].iloc[0] == "[1, 2]"
        assert len(df) == 4 and set(df.study) == {"s"}
        assert df["steps"].dtype == np.int64 and df["rate"].dtype == float
        assert list(zip(df["config.units"], df.seed)) == [(3, 0), (3, 1), (5, 0), (5, 1)]
        assert df.steps.tolist() == [10 * s + n for n, s in zip(df["config.units"], df.seed)]
        assert len(st.load()) == 5 and st.studies() == ["a", "s"]
        keys = [rec(seed=1, n=5).key]
        assert st.load(keys=keys).key.tolist() == keys
        empty = st.load("none")
        assert empty.empty and list(empty.columns) == ["key", "study", "seed", "status", "wall_s", "started_at",
                                                       "package_version", "config_json"]


def test_bad_records_are_refused():
    with pytest.raises(ConfigError, match="reserved"):
        RunRecord("s", {}, 0, "ok", {"seed": 1})
    with pytest.raises(ConfigError, match="curves"):
        RunRecord("s", {}, 0, "ok", {"m": np.ones(3)})
    with pytest.raises(ConfigError, match="numeric"):
        RunRecord("s", {}, 0, "ok", {}, curves={"c": np.array(["a"])})
    with pytest.raises(ConfigError, match="status"):
        RunRecord("s", {}, 0, "", {})


def test_put_many_is_all_or_nothing(tmp_path):
    def records():
        yield rec(seed=0)
        yield rec(seed=1)
        raise RuntimeError("producer died")

    with ResultStore(tmp_path / "r.sqlite") as st:
        with pytest.raises(RuntimeError):
            st.put_many(records())
        assert len(st) == 0


def test_bad_paths_give_clear_errors(tmp_path):
    with pytest.raises(InputError, match="is a directory"):
        ResultStore(tmp_path)
    junk = tmp_path / "junk.sqlite"
    junk.write_text("this is not a database, just some text" * 50)
    with pytest.raises(InputError, match="not a readable SQLite database"):
        ResultStore(junk)
    other = tmp_path / "other.sqlite"
    con = sqlite3.connect(other)
    con.execute("CREATE TABLE people (name TEXT)")
    con.commit()
    con.close()
    with pytest.raises(InputError, match="not an rnnmem results store"):
        ResultStore(other)
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(InputError, match="cannot create the folder"):
        ResultStore(blocker / "r.sqlite")
    st = ResultStore(tmp_path / "ok.sqlite")
    st.close()
    with pytest.raises(InputError, match="closed"):
        st.keys()


def test_export_csv_and_parquet(tmp_path):
    with ResultStore(tmp_path / "r.sqlite") as st:
        st.put_many([rec(seed=s) for s in range(3)])
        table = st.load()
        csv = pd.read_csv(st.export(tmp_path / "out" / "runs.csv"))
        assert csv.key.tolist() == table.key.tolist() and np.allclose(csv.rate, table.rate)
        pytest.importorskip("pyarrow")
        pq = pd.read_parquet(st.export(tmp_path / "runs.parquet"))
        assert pq.key.tolist() == table.key.tolist() and pq.steps.tolist() == table.steps.tolist()
        with pytest.raises(InputError, match=r"\.csv or \.parquet"):
            st.export(tmp_path / "runs.xlsx")


WRITER = textwrap.dedent("""
    import sys, numpy as np
    from rnnmem.store import ResultStore, RunRecord
    st = ResultStore(sys.argv[1])
    print("ready", flush=True)
    for batch in range(100000):
        recs = [RunRecord("crash", {"batch": batch}, s, "ok", {"v": float(batch * 10 + s)},
                          curves={"c": np.full(2000, batch + s / 10)}) for s in range(10)]
        st.put_many(recs)
""")


def test_sigkill_mid_write_never_corrupts(tmp_path):
    db = tmp_path / "crash.sqlite"
    proc = subprocess.Popen([sys.executable, "-c", WRITER, str(db)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    deadline = time.time() + 30
    while time.time() < deadline:
        time.sleep(0.3)
        with ResultStore(db) as st:
            if len(st) >= 50:
                break
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    with ResultStore(db) as st:
        assert st._db().execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        df = st.load("crash")
        assert len(df) >= 50 and len(df) % 10 == 0   # whole transactions only
        for key, batch, seed, v in zip(df.key, df["config.batch"], df.seed, df.v):
            assert v == batch * 10 + seed
        last = df.key.iloc[-1]
        assert np.all(st.curves(last)["c"] == st.get(last).config["batch"] + st.get(last).seed / 10)


def test_results_command_lists_and_exports(tmp_path):
    from typer.testing import CliRunner

    from rnnmem.cli import app

    db = tmp_path / "r.sqlite"
    with ResultStore(db) as st:
        st.put_many([rec(seed=s, status="ok" if s else "censored") for s in range(3)] + [rec(seed=0, study="b")])
    runner = CliRunner()
    res = runner.invoke(app, ["results", "--db", str(db), "--export", str(tmp_path / "all.csv"), "--show", "2"])
    assert res.exit_code == 0, res.output
    assert "censored" in res.output and "4 runs" in res.output and "wrote 4 runs" in res.output
    assert len(pd.read_csv(tmp_path / "all.csv")) == 4
    res = runner.invoke(app, ["results", "--db", str(db), "--study", "b", "--export", str(tmp_path / "b.csv")])
    assert res.exit_code == 0 and len(pd.read_csv(tmp_path / "b.csv")) == 1
    res = runner.invoke(app, ["results", "--db", str(db), "--study", "zzz"])
    assert isinstance(res.exception, ConfigError) and "stored studies: b, s" in str(res.exception)
    res = runner.invoke(app, ["results", "--db", str(tmp_path / "missing.sqlite")])
    assert isinstance(res.exception, InputError)
    assert not (tmp_path / "missing.sqlite").exists()


def test_cli_prints_one_red_line_for_a_bad_database(tmp_path):
    junk = tmp_path / "x.sqlite"
    junk.write_text("not sqlite at all, definitely not" * 30)
    out = subprocess.run([sys.executable, "-m", "rnnmem.cli", "results", "--db", str(junk)], capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 2 and "not a readable SQLite database" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_merge_copies_missing_runs_once(tmp_path):
    from typer.testing import CliRunner

    from rnnmem.cli import app

    with ResultStore(tmp_path / "a.sqlite") as a, ResultStore(tmp_path / "b.sqlite") as b:
        a.put_many([rec(seed=s) for s in (0, 1, 2)])
        b.put_many([rec(seed=s) for s in (2, 3)])
        assert a.merge(tmp_path / "b.sqlite") == 1 and a.merge(tmp_path / "b.sqlite") == 0
        assert a.keys() == {rec(seed=s).key for s in range(4)}
        assert np.array_equal(a.curves(rec(seed=3).key)["d"], rec(seed=3).curves["d"])
        with pytest.raises(InputError, match="no such results database"):
            a.merge(tmp_path / "none.sqlite")
        with pytest.raises(InputError, match="into itself"):
            a.merge(tmp_path / "a.sqlite")
    res = CliRunner().invoke(app, ["results", "--db", str(tmp_path / "c.sqlite"), "--merge", str(tmp_path / "a.sqlite"),
                                   "--merge", str(tmp_path / "b.sqlite")])
    assert res.exit_code == 0, res.output
    assert "merged 4 new runs" in res.output and "merged 0 new runs" in res.output


def test_curve_blobs_round_trip_every_shape_and_read_old_npz():
    import io

    from rnnmem.store.db import _pack_curves, _unpack_curves

    curves = {"scalar": np.float64(3.5), "empty": np.zeros((0, 3)), "strided": np.arange(6.0).reshape(2, 3).T,
              "ints": np.arange(4, dtype=np.int32), "nan": np.array([np.nan, 1.0])}
    back = _unpack_curves(_pack_curves(curves))
    for k, v in curves.items():
        np.testing.assert_array_equal(back[k], np.asarray(v))
        assert back[k].shape == np.asarray(v).shape and back[k].dtype == np.asarray(v).dtype
    buf = io.BytesIO()
    np.savez_compressed(buf, a=np.arange(3.0))
    np.testing.assert_array_equal(_unpack_curves(buf.getvalue())["a"], np.arange(3.0))


def _damaged_store(tmp_path):
    """A results store of a few hundred small runs (every page a b-tree page, no overflow pages)
    with one page in the middle zeroed: the header and schema still read, the data does not."""
    db = tmp_path / "damaged.sqlite"
    with ResultStore(db) as st:
        for n in range(1, 61):
            st.put_many([rec(seed=s, n=n) for s in range(5)])
    page = sqlite3.connect(db).execute("PRAGMA page_size").fetchone()[0]
    data = bytearray(db.read_bytes())
    middle = len(data) // page // 2
    assert middle > 1
    data[middle * page:(middle + 1) * page] = bytes(page)
    db.write_bytes(bytes(data))
    return db, bytes(data)


def test_store_zeroed_in_the_middle_is_refused_clearly_and_left_untouched(tmp_path):
    db, before = _damaged_store(tmp_path)
    with pytest.raises(InputError, match="not a readable SQLite database .*malformed.*left untouched"):
        ResultStore(db)
    assert db.read_bytes() == before
    truncated = tmp_path / "truncated.sqlite"
    truncated.write_bytes(before[: len(before) // 3])
    with pytest.raises(InputError, match="not a readable SQLite database"):  # the same error as a truncated file
        ResultStore(truncated)


def test_cli_sweep_and_results_refuse_a_zeroed_store_in_one_line(tmp_path):
    db, before = _damaged_store(tmp_path)
    sweep = tmp_path / "sweep.yaml"
    sweep.write_text(f"study: toy\ngrid:\n  n: [3, 4]\nseeds: 2\ndb: {db}\n")
    for args in (["results", "--db", str(db)], ["results", "--db", str(db), "--show", "3"],
                 ["sweep", str(sweep), "--workers", "0", "--no-progress"]):
        out = subprocess.run([sys.executable, "-m", "rnnmem.cli", *args], capture_output=True, text=True,
                             timeout=120, env={**os.environ, "COLUMNS": "200"})
        assert out.returncode == 2, (args, out.stdout, out.stderr)
        assert "not a readable SQLite database" in out.stderr and "Traceback" not in out.stderr, out.stderr
        assert len(out.stderr.strip().splitlines()) == 1, out.stderr
        assert db.read_bytes() == before, args  # never overwritten, never written to


def test_empty_file_is_initialised_with_a_warning(tmp_path):
    from rnnmem.errors import RnnmemWarning

    empty = tmp_path / "empty.sqlite"
    empty.touch()
    with pytest.warns(RnnmemWarning, match="empty .0-byte. file.*initialised as a new"):
        with ResultStore(empty) as st:
            assert len(st) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with ResultStore(empty) as st:  # now a store: no warning the second time
            assert len(st) == 0
    again = tmp_path / "again.sqlite"
    again.touch()
    out = subprocess.run([sys.executable, "-m", "rnnmem.cli", "results", "--db", str(again)], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stderr.strip().startswith("warning: results database") and "0-byte" in out.stderr, out.stderr


def _wide_store(path):
    """Runs shaped like the forgetting study's: 16 config options (two of which vary) and 20 metrics."""
    fixed = {f"option_{i}": i for i in range(14)}
    metrics = {f"steps_tol_{i}": 10 * i for i in range(10)} | {f"censored_tol_{i}": False for i in range(10)}
    with ResultStore(path) as st:
        st.put_many([RunRecord(study="wide", config={**fixed, "cell": cell, "units": units}, seed=seed, status="exact",
                               metrics={**metrics, "rate": 0.25 * seed + units})
                     for cell in ("lstm", "gru") for units in (4, 8) for seed in range(2)])
    return path


def test_results_show_prints_full_headers_and_takes_columns(tmp_path):
    from typer.testing import CliRunner

    from rnnmem.cli import app

    db = _wide_store(tmp_path / "wide.sqlite")
    runner = CliRunner()
    res = runner.invoke(app, ["results", "--db", str(db), "--show", "8"], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    lines = res.output.splitlines()
    assert all(len(line) <= 200 for line in lines)
    header = next(line for line in lines if "status" in line and "seed" in line and "key" in line)
    cells = [c.strip() for c in header.strip("┃ ").split("┃")]
    # the default set: key, seed, status, the options that differ, then the metrics in full, as many as fit
    assert cells[:5] == ["key", "seed", "status", "cell", "units"] and len(cells) >= 10, cells
    names = {"key", "seed", "status", "cell", "units", "rate"} | {f"steps_tol_{i}" for i in range(10)}
    assert set(cells) <= names | {f"censored_tol_{i}" for i in range(10)}, cells  # whole names, none cut
    assert "same in every run shown: option_0=0, option_1=1" in res.output
    assert "not shown for lack of width" in res.output and "--columns" in res.output
    res = runner.invoke(app, ["results", "--db", str(db), "--show", "3", "--columns", "seed,units,rate,option_3"],
                        env={"COLUMNS": "80"})
    assert res.exit_code == 0, res.output
    header = next(line for line in res.output.splitlines() if "seed" in line and "rate" in line)
    assert [c.strip() for c in header.strip("┃ ").split("┃")] == ["seed", "units", "rate", "option_3"]
    assert "4.25" in res.output and "not shown" not in res.output
    res = runner.invoke(app, ["results", "--db", str(db), "--show", "3", "--columns", "seed,nope"])
    assert isinstance(res.exception, ConfigError)
    assert "unknown column 'nope'; available columns: key, seed, status, " in str(res.exception)
    assert "steps_tol_9" in str(res.exception) and "censored_tol_0" in str(res.exception)
    res = runner.invoke(app, ["results", "--db", str(db), "--columns", "seed"])
    assert isinstance(res.exception, ConfigError) and "add --show N" in str(res.exception)
