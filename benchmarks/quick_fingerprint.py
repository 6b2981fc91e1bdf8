"""Fingerprint every reproduction's quick run, and compare two fingerprints.

    python benchmarks/quick_fingerprint.py run OUT.json [--studies muccino,zhao,...] [--threads 1]
    python benchmarks/quick_fingerprint.py compare BEFORE.json AFTER.json [--rtol 1e-6]

``run`` calls ``rnnmem reproduce <study> --quick --out DIR`` for each study in a fresh temporary
folder and records every number of every CSV and JSON file the study writes (timings, dates,
paths and versions left out: they differ between any two runs). ``compare`` prints, per study,
how many numbers agree to ``rtol`` (relative, with an absolute floor of ``rtol`` for values near
zero) and every one that does not, and exits 1 when any differs or is missing. This is how the
one-contract refactor (issue 12) shows that no reproduction's numbers moved.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STUDIES = ("muccino", "distill", "zhao", "zhang", "zhao-reviews", "zhao-control")
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"
EXTRA = {"zhao": ["--data-dir", str(SHARED / "zhao2020")], "zhao-reviews": ["--data", str(SHARED / "zhao2020" / "reviews.json")]}
SKIP_KEYS = ("wall", "second", "time", "created", "date", "version", "path", "out", "dir", "file", "host",
             "elapsed", "duration", "started", "finished_at", "threads", "python", "torch", "platform", "kernel")


def _skip(key: str) -> bool:
    k = key.lower()
    return any(s in k for s in SKIP_KEYS) or k.endswith("_s") or k in ("command", "corpus", "explorer")


def _walk(obj, prefix: str, out: dict) -> None:
    if isinstance(obj, dict):
        for k, v in obj.items():
            if not _skip(str(k)):
                _walk(v, f"{prefix}.{k}", out)
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            _walk(v, f"{prefix}[{i}]", out)
    elif isinstance(obj, bool) or obj is None or isinstance(obj, str):
        out[prefix] = obj
    elif isinstance(obj, (int, float)):
        out[prefix] = float(obj)


def _csv_numbers(path: Path, prefix: str, out: dict) -> None:
    import pandas as pd

    frame = pd.read_csv(path)
    for col in frame.columns:
        if _skip(str(col)):
            continue
        for i, v in enumerate(frame[col].tolist()):
            if isinstance(v, float) and math.isnan(v):
                v = None
            out[f"{prefix}:{col}[{i}]"] = float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else v


def fingerprint(folder: Path) -> dict:
    out: dict = {}
    for path in sorted(folder.rglob("*")):
        rel = str(path.relative_to(folder))
        if path.suffix == ".csv":
            _csv_numbers(path, rel, out)
        elif path.suffix == ".json":
            try:
                _walk(json.loads(path.read_text()), rel, out)
            except json.JSONDecodeError:
                out[rel] = "unreadable"
    return out


def run(args) -> int:
    studies = args.studies.split(",") if args.studies else list(STUDIES)
    result = {}
    env = dict(os.environ, RNNMEM_NO_BROWSER="1")
    for study in studies:
        with tempfile.TemporaryDirectory() as tmp:
            cmd = [sys.executable, "-c", "import sys; from rnnmem.cli import main; sys.exit(main())", "reproduce", study, "--quick", "--out", tmp, "--threads", str(args.threads)]
            cmd += EXTRA.get(study, [])
            t0 = time.perf_counter()
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, stdin=subprocess.DEVNULL)
            took = time.perf_counter() - t0
            print(f"{study}: exit {proc.returncode} in {took:.1f} s", flush=True)
            if proc.returncode != 0:
                print(proc.stdout[-2000:], proc.stderr[-3000:], sep="\n")
                result[study] = {"__error__": proc.returncode}
                continue
            result[study] = fingerprint(Path(tmp))
            print(f"  {len(result[study])} values", flush=True)
    Path(args.output).write_text(json.dumps(result, indent=0, sort_keys=True))
    return 0


def _same(a, b, rtol: float) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        if math.isnan(a) and math.isnan(b):
            return True
        return abs(a - b) <= rtol * max(1.0, abs(a), abs(b))
    return a == b


def compare(args) -> int:
    before = json.loads(Path(args.before).read_text())
    after = json.loads(Path(args.after).read_text())
    bad = 0
    for study in sorted(set(before) | set(after)):
        b, a = before.get(study, {}), after.get(study, {})
        diffs = [k for k in sorted(set(b) | set(a)) if k not in a or k not in b or not _same(b[k], a[k], args.rtol)]
        same = len(set(b) & set(a)) - len([k for k in diffs if k in a and k in b])
        print(f"{study}: {same} of {len(set(b) | set(a))} values agree to rtol {args.rtol:g}; {len(diffs)} differ or are missing")
        for k in diffs[:20]:
            print(f"   {k}: before {b.get(k, '<missing>')!r} after {a.get(k, '<missing>')!r}")
        bad += len(diffs)
    return 1 if bad else 0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("output")
    r.add_argument("--studies", default="")
    r.add_argument("--threads", type=int, default=1)
    c = sub.add_parser("compare")
    c.add_argument("before")
    c.add_argument("after")
    c.add_argument("--rtol", type=float, default=1e-6)
    args = ap.parse_args()
    return run(args) if args.cmd == "run" else compare(args)


if __name__ == "__main__":
    sys.exit(main())
