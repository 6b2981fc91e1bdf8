"""Smoke test of benchmarks/bench_scan.py (issue 15's scan-vs-step benchmark) on tiny sizes."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_scan.py"


def _load():
    spec = importlib.util.spec_from_file_location("rnnmem_bench_scan", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_bench_scan_main_tiny(tmp_path, capsys):
    bench = _load()
    out = tmp_path / "scan.json"
    res = bench.main(["--units", "mingru", "no_such_unit", "--T", "50", "--repeats", "1", "--batch", "2",
                      "--input", "3", "--hidden", "4", "--step-prefix", "20", "--json", str(out)])
    text = capsys.readouterr().out
    assert "torch threads 1" in text and "load average" in text and "unit.step" in text
    rows = {r["unit"]: r for r in res["rows"]}
    r = rows["mingru"]
    assert r["status"] == "ok" and r["path"] == "scan-blocked" and r["state_size"] == 4
    assert r["scan_s"] > 0 and r["step_s"] > 0 and r["ratio"] > 0
    assert r["step_estimated"] and r["step_steps_timed"] == 20 and "(est.)" in text
    assert r["max_abs_diff"] < 1e-5                  # the scan's outputs are the step loop's
    assert rows["no_such_unit"]["status"] == "not registered" and "not registered" in text
    assert res["info"]["acceptance"]["mingru"].startswith("not evaluated")
    assert json.loads(out.read_text())["rows"][0]["unit"] == "mingru"
