"""The results store: one SQLite row per run (study, full config, seed, status, metrics, curves).

Design (docs/store.md has the user view):

* A run is identified by ``run_key(study, config, seed)``, the SHA-256 of the canonical JSON
  ``{"config": ..., "seed": ..., "study": ...}`` (sorted keys, no whitespace, numpy scalars and
  tuples normalised), so the same request maps to the same key in every process and session.
* ``runs.key`` is the primary key and rows are written with ``INSERT OR IGNORE``: storing a run
  twice is a no-op, so a resumed or duplicated sweep can never create two rows for one run.
* Every ``put``/``put_many`` is one transaction. SQLite's journal (WAL by default, ``synchronous
  = FULL``) makes each transaction atomic and durable, so a process killed mid-write leaves the
  database holding either all or none of that transaction's rows, never a torn one.
* Metrics are stored as JSON, curves as one compressed blob per run (``_pack_curves``).
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import math
import sqlite3
import warnings
import zlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import numpy as np
import pandas as pd

from .. import __version__
from ..errors import ConfigError, InputError, RnnmemWarning

SCHEMA_VERSION = 1
CONFIG_PREFIX = "config."
_ROW_COLUMNS = ("key, study, seed, status, config_json, request_json, metrics_json, curves, wall_s, "
                "started_at, package_version, stored_at")
BASE_COLUMNS = ("key", "study", "seed", "status")
TAIL_COLUMNS = ("wall_s", "started_at", "package_version", "config_json")
RESERVED = frozenset(BASE_COLUMNS + TAIL_COLUMNS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS rnnmem_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY,
    study TEXT NOT NULL,
    seed INTEGER NOT NULL,
    status TEXT NOT NULL,
    config_json TEXT NOT NULL,
    request_json TEXT,
    metrics_json TEXT NOT NULL,
    curves BLOB,
    wall_s REAL NOT NULL,
    started_at TEXT NOT NULL,
    package_version TEXT NOT NULL,
    stored_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_study ON runs (study);
"""


# ----------------------------------------------------------------------------------------------
# canonical JSON and run keys
# ----------------------------------------------------------------------------------------------
def _plain(value, where: str = "config"):
    """Turn ``value`` into plain JSON types (dict/list/str/int/float/bool/None), recursively."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                raise ConfigError(f"{where}: keys must be strings, got {k!r}")
            out[k] = _plain(v, f"{where}.{k}")
        return out
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, np.ndarray) and value.ndim <= 1 and value.dtype.kind in "biuf":
        return [_plain(v, where) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value
    if isinstance(value, Path):
        return str(value)
    raise ConfigError(f"{where}: {type(value).__name__} values cannot be stored; use numbers, strings, lists or dicts")


def canonical_json(value) -> str:
    """Canonical JSON text: sorted keys, no whitespace, plain types (numpy scalars -> Python).

    Tuples and 1-D numeric numpy arrays become lists, numpy scalars their Python values, ``Path``
    its string; NaN and infinities are written as ``NaN`` / ``Infinity`` (``allow_nan=True``).

    Parameters
    ----------
    value : dict, list, tuple, str, int, float, bool, None or numpy scalar/array
        The value to encode, nested to any depth (dict keys must be strings).

    Returns
    -------
    str
        The JSON text, identical for equal values in every process and session.

    Raises
    ------
    ConfigError
        For a non-string dict key or a value of another type (naming where in ``value`` it sits).
    """
    return json.dumps(_plain(value), sort_keys=True, separators=(",", ":"), allow_nan=True)


def run_key(study: str, config: dict, seed: int) -> str:
    """SHA-256 hex digest of ``canonical_json({"study", "config", "seed"})``: stable across runs.

    Parameters
    ----------
    study : str
        The study name (non-empty).
    config : dict
        The run's config (everything but the seed); encoded with :func:`canonical_json`.
    seed : int
        The run's seed (a Python or numpy integer; not a bool).

    Returns
    -------
    str
        The 64-character lowercase hex digest, the ``runs.key`` primary key.

    Raises
    ------
    ConfigError
        For an empty or non-string ``study``, a ``config`` that is not a dict or holds values
        :func:`canonical_json` cannot store, or a seed that is not an integer.
    """
    if not isinstance(study, str) or not study:
        raise ConfigError(f"study must be a non-empty string, got {study!r}")
    if not isinstance(config, dict):
        raise ConfigError(f"config must be a dict, got {type(config).__name__}")
    text = canonical_json({"study": study, "config": config, "seed": _seed(seed)})
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _seed(seed) -> int:
    if isinstance(seed, (bool, np.bool_)) or not isinstance(seed, (int, np.integer)):
        raise ConfigError(f"seed must be an integer, got {seed!r}")
    return int(seed)


def _metric(name: str, value):
    if isinstance(value, np.generic):
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    raise ConfigError(f"metric {name!r} is a {type(value).__name__}; metrics are numbers, strings or None "
                      "(put arrays in curves)")


def _utc_now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


# ----------------------------------------------------------------------------------------------
# one run
# ----------------------------------------------------------------------------------------------
@dataclass
class RunRecord:
    """One run of a study: its full config, seed, status, scalar metrics and curves.

    ``request`` is optional: the config as the task asked for it, when the study function filled
    in defaults (``config`` is then the full config). The key hashes ``request`` when set, so
    asking again for the same thing finds the stored run.
    """

    study: str
    config: dict
    seed: int
    status: str
    metrics: dict
    curves: dict = field(default_factory=dict)
    wall_s: float = 0.0
    started_at: str = ""
    package_version: str = __version__
    request: dict | None = None

    def __post_init__(self):
        self.seed = _seed(self.seed)
        if not isinstance(self.status, str) or not self.status:
            raise ConfigError(f"run status must be a non-empty string, got {self.status!r}")
        self.config = _plain(self.config)
        if self.request is not None:
            self.request = _plain(self.request, "request")
        if not isinstance(self.metrics, dict):
            raise ConfigError(f"metrics must be a dict, got {type(self.metrics).__name__}")
        metrics = {}
        for name, value in self.metrics.items():
            if not isinstance(name, str) or name in RESERVED or name.startswith(CONFIG_PREFIX):
                raise ConfigError(f"metric name {name!r} is reserved or invalid; rename it "
                                  f"(reserved: {', '.join(sorted(RESERVED))}, and names starting 'config.')")
            metrics[name] = _metric(name, value)
        self.metrics = metrics
        curves = {}
        for name, arr in (self.curves or {}).items():
            a = np.asarray(arr)
            if a.dtype.kind not in "biufc":
                raise ConfigError(f"curve {name!r} has dtype {a.dtype}; curves must be numeric arrays")
            curves[str(name)] = a
        self.curves = curves
        self.wall_s = float(self.wall_s)

    @property
    def key(self) -> str:
        """The run's key: ``run_key(study, request, seed)``, with ``config`` when ``request`` is None.

        Returns
        -------
        str
            64-character SHA-256 hex digest (see :func:`run_key`).
        """
        return run_key(self.study, self.request if self.request is not None else self.config, self.seed)


_CURVES_MAGIC = b"RNNMEMC1"


def seed_records(study: str, config: dict, table, curves, wall_s: float, extra: dict | None = None,
                 drop: tuple[str, ...] = ()) -> list[RunRecord]:
    """One RunRecord per row of a batched computation's table (one row per seed, with ``seed`` and
    ``status`` columns; the other columns, less ``drop``, become metrics). ``curves`` holds each
    row's curves, in row order; each run gets an even share of the batch's wall time, and its
    metrics ``batch_wall_s`` and ``extra``.

    Parameters
    ----------
    study : str
        The study name of every record.
    config : dict
        The config shared by every row (the batch computed one config for several seeds).
    table : pandas.DataFrame
        One row per seed, with columns ``seed`` and ``status``; every other column (less ``drop``)
        becomes a scalar metric of that row's run.
    curves : iterable of dict
        One ``{name: numeric array}`` per row, in row order (same length as ``table``).
    wall_s : float
        Wall seconds of the whole batch: stored as metric ``batch_wall_s`` of every run, and
        ``wall_s / len(table)`` as each run's ``wall_s``.
    extra : dict, optional
        More metrics added to every run (they override table columns of the same name).
    drop : tuple of str, default ()
        Table columns that are not metrics.

    Returns
    -------
    list of RunRecord
        One record per row, in row order.

    Raises
    ------
    ConfigError
        From :class:`RunRecord`, for a reserved or non-scalar metric or a non-numeric curve.
    ValueError
        When ``curves`` and ``table`` differ in length.
    KeyError
        When a name in ``drop`` (or ``seed``/``status``) is not a column.
    """
    rows = table.to_dict("records")
    records = []
    for row, curve in zip(rows, curves, strict=True):
        seed = int(row.pop("seed"))
        status = row.pop("status")
        for name in drop:
            row.pop(name)
        row["batch_wall_s"] = wall_s
        row.update(extra or {})
        records.append(RunRecord(study=study, config=config, seed=seed, status=status, metrics=row,
                                 curves=curve, wall_s=wall_s / len(rows)))
    return records


def _pack_curves(curves: dict) -> bytes | None:
    """Curves as one zlib-compressed blob: a JSON header (name, dtype, shape per array) and the
    arrays' raw little-endian bytes. About 50x cheaper than ``np.savez_compressed`` for the many
    small arrays a sweep stores; blobs in the older ``.npz`` form are still read."""
    if not curves:
        return None
    arrays = {str(k): np.asarray(v) for k, v in curves.items()}
    for name, a in arrays.items():
        if a.dtype.kind not in "biuf":
            raise ConfigError(f"curve {name!r} must be a numeric array, got dtype {a.dtype}")
    header = json.dumps([[k, a.dtype.newbyteorder("<").str, list(a.shape)] for k, a in arrays.items()]).encode()
    body = b"".join(a.astype(a.dtype.newbyteorder("<"), copy=False).tobytes() for a in arrays.values())
    return _CURVES_MAGIC + zlib.compress(len(header).to_bytes(4, "little") + header + body, 1)


def _unpack_curves(blob: bytes | None) -> dict[str, np.ndarray]:
    if not blob:
        return {}
    if not blob.startswith(_CURVES_MAGIC):  # stored by an older rnnmem as .npz
        with np.load(io.BytesIO(blob), allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    raw = zlib.decompress(blob[len(_CURVES_MAGIC):])
    n = int.from_bytes(raw[:4], "little")
    out, offset = {}, 4 + n
    for name, dtype, shape in json.loads(raw[4 : 4 + n]):
        dt = np.dtype(dtype)
        count = int(np.prod(shape)) if shape else 1
        out[name] = np.frombuffer(raw, dtype=dt, count=count, offset=offset).reshape(tuple(shape)).copy()
        offset += count * dt.itemsize
    return out


def config_column(df, name: str) -> str:
    """The column of config option ``name`` in a table of runs: ``config.<name>`` as ``load``
    returns it, or ``<name>`` in a table whose prefix was stripped. ``KeyError`` when absent.

    Parameters
    ----------
    df : pandas.DataFrame
        A table of runs (:meth:`ResultStore.load`, possibly with the ``config.`` prefix stripped).
    name : str
        The config option (nested options as ``outer.inner``).

    Returns
    -------
    str
        ``"config.<name>"`` when that column exists, else ``name``.

    Raises
    ------
    KeyError
        When neither column exists (the key is ``name``).
    """
    for c in (f"{CONFIG_PREFIX}{name}", name):
        if c in df.columns:
            return c
    raise KeyError(name)


def _flatten(d: dict, prefix: str) -> dict:
    """Nested dicts -> ``prefix.a.b`` keys (empty dicts dropped); lists -> their JSON text."""
    out = {}
    for k, v in d.items():
        if isinstance(v, dict):
            out.update(_flatten(v, f"{prefix}{k}."))
        elif isinstance(v, list):
            out[f"{prefix}{k}"] = json.dumps(v)
        else:
            out[f"{prefix}{k}"] = v
    return out


# ----------------------------------------------------------------------------------------------
# the store
# ----------------------------------------------------------------------------------------------
def _is_corrupt(exc: sqlite3.DatabaseError) -> bool:
    """True when SQLite says the file is damaged or not a database (not a lock or a permission)."""
    name = getattr(exc, "sqlite_errorname", "")
    if name in ("SQLITE_CORRUPT", "SQLITE_NOTADB") or name.startswith(("SQLITE_CORRUPT_", "SQLITE_NOTADB_")):
        return True
    msg = str(exc)
    return "not a database" in msg or "malformed" in msg or "encrypted" in msg


def _damage_is_input_error(method):
    """Wrap a ResultStore method so damage SQLite finds only while reading or writing (past the
    open-time check) is the same clear InputError as at open, never a raw sqlite3 traceback."""

    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        try:
            return method(self, *args, **kwargs)
        except sqlite3.DatabaseError as exc:
            if _is_corrupt(exc):
                raise self._unreadable(str(exc)) from None
            raise

    return wrapper


class ResultStore:
    """An SQLite results database at ``path`` (created with its folders when missing).

    ``wal=True`` (default) uses write-ahead logging: readers never block the writer. On a network
    filesystem (NFS, SMB) that lacks shared memory use ``wal=False`` (classic rollback journal);
    see docs/store.md. ``timeout`` is how long a writer waits for another process's lock.

    Parameters
    ----------
    path : str or Path
        The database file (``~`` expanded); a missing file is created, an empty (0-byte) one is
        initialised with an ``RnnmemWarning``.
    wal : bool, default True
        Write-ahead logging (``True``) or the rollback journal (``False``).
    timeout : float, default 60.0
        Seconds a connection waits for another process's lock.

    Raises
    ------
    InputError
        When ``path`` is a directory, its folder cannot be created, the file cannot be opened, is
        damaged or not an SQLite file, is an SQLite database that is not an rnnmem store, or was
        written by a newer schema.
    """

    def __init__(self, path, wal: bool = True, timeout: float = 60.0):
        self.path = Path(path).expanduser()
        if self.path.is_dir():
            raise InputError(f"results database {self.path} is a directory; give a file path such as "
                             f"{self.path / 'results.sqlite'}")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise InputError(f"cannot create the folder for results database {self.path}: {exc.strerror or exc}; "
                             "choose a writable location") from None
        try:
            empty_file = self.path.is_file() and self.path.stat().st_size == 0
        except OSError:
            empty_file = False
        try:
            self._con = sqlite3.connect(str(self.path), timeout=timeout, isolation_level=None)
        except sqlite3.Error as exc:
            raise InputError(f"cannot open results database {self.path}: {exc}; check the path and permissions") from None
        try:
            self._setup(wal)
        except sqlite3.DatabaseError as exc:
            self._con.close()
            if _is_corrupt(exc):
                raise self._unreadable(str(exc)) from None
            raise InputError(f"cannot use results database {self.path}: {exc}; check the path and permissions") from None
        except InputError:
            self._con.close()
            raise
        if empty_file:
            warnings.warn(f"results database {self.path} was an empty (0-byte) file; it has been initialised as a "
                          "new, empty results store", RnnmemWarning, stacklevel=2)

    def _unreadable(self, detail: str) -> InputError:
        """The one error for a damaged or foreign file (the file itself is left as it is)."""
        return InputError(f"{self.path} is not a readable SQLite database ({detail}); it was left untouched: "
                          "restore it from a copy, or point --db at an rnnmem results file or a new path")

    def _setup(self, wal: bool) -> None:
        con = self._con
        con.execute("PRAGMA busy_timeout = 60000")
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if tables and "rnnmem_meta" not in tables:
            raise InputError(f"{self.path} is an SQLite database but not an rnnmem results store (tables: "
                             f"{', '.join(sorted(tables))}); choose another --db path")
        if tables:
            # a file damaged inside (a page zeroed, a torn copy) still has a valid header and schema:
            # check every page's structure before anything reads or writes it (~0.1 s per 300 MB)
            problem = con.execute("PRAGMA quick_check(1)").fetchone()[0]
            if problem != "ok":
                detail = " ".join(str(problem).replace("*** in database main ***", "").split())
                raise self._unreadable(f"database disk image is malformed: {detail}")
        mode = con.execute(f"PRAGMA journal_mode = {'WAL' if wal else 'DELETE'}").fetchone()[0]
        self.journal_mode = str(mode).lower()
        con.execute("PRAGMA synchronous = FULL")
        if "rnnmem_meta" not in tables:
            con.execute("BEGIN IMMEDIATE")
            try:
                for stmt in filter(str.strip, _SCHEMA.split(";")):
                    con.execute(stmt)
                con.execute("INSERT OR IGNORE INTO rnnmem_meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                con.execute("INSERT OR IGNORE INTO rnnmem_meta VALUES ('created_with', ?)", (__version__,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        row = con.execute("SELECT value FROM rnnmem_meta WHERE name = 'schema_version'").fetchone()
        if row is None or int(row[0]) > SCHEMA_VERSION:
            raise InputError(f"{self.path} was written by a newer rnnmem (schema {row[0] if row else '?'}); "
                             "upgrade rnnmem to read it")

    # -- context manager ------------------------------------------------------------------------
    def __enter__(self) -> "ResultStore":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection (calling it again does nothing; later queries raise InputError).

        Returns
        -------
        None
        """
        con, self._con = getattr(self, "_con", None), None
        if con is not None:
            con.close()

    def _db(self) -> sqlite3.Connection:
        if self._con is None:
            raise InputError(f"results database {self.path} is closed")
        return self._con

    def __repr__(self) -> str:
        return f"ResultStore({str(self.path)!r})"

    # -- queries ---------------------------------------------------------------------------------
    @_damage_is_input_error
    def keys(self, study: str | None = None) -> set[str]:
        """Keys of the stored runs (of one study when given).

        Parameters
        ----------
        study : str or None, default None
            Only the runs of this study; ``None``: every run.

        Returns
        -------
        set of str
            The run keys (empty when nothing is stored).

        Raises
        ------
        InputError
            When the store is closed or the file turns out to be damaged.
        """
        if study is None:
            rows = self._db().execute("SELECT key FROM runs")
        else:
            rows = self._db().execute("SELECT key FROM runs WHERE study = ?", (study,))
        return {r[0] for r in rows}

    @_damage_is_input_error
    def has(self, key: str) -> bool:
        """Whether a run with this key is stored.

        Parameters
        ----------
        key : str
            A run key (:func:`run_key`).

        Returns
        -------
        bool
            True when the key is in the ``runs`` table.

        Raises
        ------
        InputError
            When the store is closed or the file turns out to be damaged.
        """
        return self._db().execute("SELECT 1 FROM runs WHERE key = ?", (key,)).fetchone() is not None

    @_damage_is_input_error
    def __len__(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM runs").fetchone()[0]

    @_damage_is_input_error
    def studies(self) -> list[str]:
        """The studies with at least one stored run.

        Returns
        -------
        list of str
            Distinct study names, sorted.

        Raises
        ------
        InputError
            When the store is closed or the file turns out to be damaged.
        """
        return [r[0] for r in self._db().execute("SELECT DISTINCT study FROM runs ORDER BY study")]

    # -- writes ----------------------------------------------------------------------------------
    def put(self, record: RunRecord) -> int:
        """Store one run; returns 1 if it was new, 0 if a run with its key was already stored.

        Parameters
        ----------
        record : RunRecord
            The run; a stored run with the same key is left untouched.

        Returns
        -------
        int
            1 if the run was added, 0 if its key was already stored.

        Raises
        ------
        InputError
            When ``record`` is not a RunRecord, or the store is closed or damaged.
        ConfigError
            When a curve is complex (curves are stored as real numeric arrays).
        """
        return self.put_many([record])

    def put_many(self, records: Iterable[RunRecord]) -> int:
        """Store runs in one transaction (all or nothing). Already stored keys are left untouched.

        Returns the number of new rows.

        Each row gets ``stored_at`` = now (UTC, ISO 8601 to the second), and ``started_at`` = now
        and ``package_version`` = this rnnmem's version where the record leaves them empty.

        Parameters
        ----------
        records : iterable of RunRecord
            The runs; keys repeated within ``records`` or already stored are written once.

        Returns
        -------
        int
            The number of new rows (0 for an empty ``records``).

        Raises
        ------
        InputError
            When an item is not a RunRecord (nothing is written), or the store is closed or damaged.
        ConfigError
            When a curve is complex (curves are stored as real numeric arrays).
        """
        rows = []
        now = _utc_now()
        for rec in records:
            if not isinstance(rec, RunRecord):
                raise InputError(f"put expects RunRecord objects, got {type(rec).__name__}")
            rows.append((
                rec.key, rec.study, rec.seed, rec.status, canonical_json(rec.config),
                None if rec.request is None else canonical_json(rec.request),
                json.dumps(rec.metrics, allow_nan=True), _pack_curves(rec.curves), rec.wall_s,
                rec.started_at or now, rec.package_version or __version__, now,
            ))
        if not rows:
            return 0
        return self._insert_rows(rows)

    @_damage_is_input_error
    def _insert_rows(self, rows) -> int:
        """Insert rows (in the table's column order) in one transaction, keeping any run already
        stored under the same key; returns how many were added. Nothing is written on error."""
        con = self._db()
        con.execute("BEGIN IMMEDIATE")
        try:
            before = con.total_changes
            con.executemany(f"INSERT OR IGNORE INTO runs ({_ROW_COLUMNS}) VALUES ({', '.join('?' * 12)})", rows)
            added = con.total_changes - before
            con.execute("COMMIT")
        except BaseException:
            con.execute("ROLLBACK")
            raise
        return added

    @_damage_is_input_error
    def merge(self, other) -> int:
        """Copy every run of the results database ``other`` that this one lacks (one transaction).

        Runs are matched by key, so merging twice, or merging databases that overlap, stores each
        run once. Returns the number of runs added.

        Parameters
        ----------
        other : str or Path
            Another rnnmem results database (``~`` expanded), opened and validated like any store.

        Returns
        -------
        int
            The number of runs copied (those whose keys this store lacked).

        Raises
        ------
        InputError
            When ``other`` does not exist, is this store's own file, is not a readable rnnmem
            results store, or either file is damaged.
        """
        other = Path(other).expanduser()
        if not other.is_file():
            raise InputError(f"cannot merge {other}: no such results database")
        if other.resolve() == self.path.resolve():
            raise InputError(f"cannot merge {other} into itself")
        with ResultStore(other) as src:  # validates that it is an rnnmem store (and checkpoints its WAL)
            rows = src._db().execute(f"SELECT {_ROW_COLUMNS} FROM runs")
            return self._insert_rows(rows)

    # -- reads -----------------------------------------------------------------------------------
    @_damage_is_input_error
    def get(self, key: str) -> RunRecord | None:
        """The stored run with this key (curves included), or None.

        Parameters
        ----------
        key : str
            A run key (:func:`run_key`).

        Returns
        -------
        RunRecord or None
            The run as stored (config, request, metrics, curves, wall time, start time, version),
            or ``None`` when no run has this key.

        Raises
        ------
        InputError
            When the store is closed or the file turns out to be damaged.
        """
        row = self._db().execute(
            "SELECT study, config_json, seed, status, metrics_json, curves, wall_s, started_at, package_version, "
            "request_json FROM runs WHERE key = ?", (key,)).fetchone()
        if row is None:
            return None
        study, cfg, seed, status, metrics, blob, wall, started, version, request = row
        return RunRecord(study=study, config=json.loads(cfg), seed=seed, status=status, metrics=json.loads(metrics),
                         curves=_unpack_curves(blob), wall_s=wall, started_at=started, package_version=version,
                         request=None if request is None else json.loads(request))

    @_damage_is_input_error
    def curves(self, key: str) -> dict[str, np.ndarray]:
        """The curves stored with a run ({} when it has none); InputError for an unknown key.

        Parameters
        ----------
        key : str
            A run key (:func:`run_key`).

        Returns
        -------
        dict of str to numpy.ndarray
            Curve name -> array, with the dtype and shape it was stored with.

        Raises
        ------
        InputError
            When no run has this key, or the store is closed or damaged.
        """
        row = self._db().execute("SELECT curves FROM runs WHERE key = ?", (key,)).fetchone()
        if row is None:
            raise InputError(f"no run with key {key} in {self.path}")
        return _unpack_curves(row[0])

    @_damage_is_input_error
    def load(self, study: str | None = None, keys: Iterable[str] | None = None) -> pd.DataFrame:
        """One row per run, ordered by study, config and seed.

        Columns: ``key, study, seed, status``, the config flattened into ``config.<name>`` columns
        (nested dicts as ``config.<name>.<sub>``, lists as their JSON text), one column per metric (its
        bare name), then ``wall_s, started_at, package_version, config_json``. ``keys`` restricts
        the rows to those keys.

        Metric columns that hold only numbers get a numeric dtype (int64 when every value is an
        int, else float with None as NaN), only bools bool; mixed columns stay object.

        Parameters
        ----------
        study : str or None, default None
            Only the runs of this study; ``None``: every study.
        keys : iterable of str or None, default None
            Only the runs with these keys (unknown keys are ignored); ``None``: no restriction.

        Returns
        -------
        pandas.DataFrame
            One row per run (the columns above; an empty frame with the base and tail columns when
            nothing matches). Curves are not included: see :meth:`curves`.

        Raises
        ------
        InputError
            When the store is closed or the file turns out to be damaged.
        """
        sql = ("SELECT key, study, seed, status, config_json, metrics_json, wall_s, started_at, package_version "
               "FROM runs")
        args: tuple = ()
        if study is not None:
            sql += " WHERE study = ?"
            args = (study,)
        sql += " ORDER BY study, config_json, seed"
        wanted = None if keys is None else set(keys)
        records, config_cols, metric_cols = [], {}, {}
        for key, st, seed, status, cfg, metrics, wall, started, version in self._db().execute(sql, args):
            if wanted is not None and key not in wanted:
                continue
            flat = _flatten(json.loads(cfg), CONFIG_PREFIX)
            met = json.loads(metrics)
            config_cols.update(dict.fromkeys(flat))
            metric_cols.update(dict.fromkeys(met))
            records.append({"key": key, "study": st, "seed": seed, "status": status, **flat, **met,
                            "wall_s": wall, "started_at": started, "package_version": version, "config_json": cfg})
        columns = [*BASE_COLUMNS, *config_cols, *metric_cols, *TAIL_COLUMNS]
        df = pd.DataFrame.from_records(records, columns=columns)
        for col in metric_cols:
            df[col] = _numeric(df[col])
        return df

    def export(self, path, study: str | None = None) -> Path:
        """Write ``load(study)`` to ``path``: ``.csv`` or ``.parquet`` chosen by the suffix.

        In Parquet, an object column mixing value types (say numbers and text) is written as text.

        Parameters
        ----------
        path : str or Path
            The file to write (``~`` expanded, parent folders created); suffix ``.csv`` or ``.parquet``.
        study : str or None, default None
            Only the runs of this study; ``None``: every run.

        Returns
        -------
        Path
            The file written.

        Raises
        ------
        InputError
            For another suffix, a Parquet export without pyarrow installed, or a closed/damaged store.
        """
        path = Path(path).expanduser()
        suffix = path.suffix.lower()
        if suffix not in (".csv", ".parquet"):
            raise InputError(f"cannot export to {path.name!r}: use a .csv or .parquet file name")
        df = self.load(study)
        path.parent.mkdir(parents=True, exist_ok=True)
        if suffix == ".csv":
            df.to_csv(path, index=False)
        else:
            try:
                import pyarrow  # noqa: F401
            except ImportError:
                raise InputError("Parquet export needs pyarrow: pip install 'rnnmem[parquet]' (or export to .csv)") from None
            out = df.copy()
            for col in out.columns:  # a column mixing types (e.g. numbers and text) is written as text
                if out[col].dtype == object:
                    types = {type(v) for v in out[col] if v is not None and not (isinstance(v, float) and math.isnan(v))}
                    if len(types) > 1:
                        out[col] = out[col].map(lambda v: None if v is None else str(v))
            out.to_parquet(path, index=False)
        return path


def _numeric(col: pd.Series) -> pd.Series:
    """Numeric metric columns as float/int/bool dtypes; None -> NaN for numbers. Mixed columns stay object."""
    values = [v for v in col if v is not None]
    if not values:
        return col
    if all(isinstance(v, bool) for v in values):
        return col.astype(bool) if len(values) == len(col) else col
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        if len(values) == len(col) and all(isinstance(v, int) for v in values):
            return col.astype("int64")
        return pd.to_numeric(col.map(lambda v: np.nan if v is None else v), errors="coerce").astype(float)
    return col
