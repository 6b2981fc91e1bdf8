"""Declarative sweeps: YAML validation, grid expansion, dry-run calibration, the CLI, the registry."""

from __future__ import annotations

import subprocess
import sys

import pytest
import yaml
from pydantic import BaseModel
from typer.testing import CliRunner

import rnnmem.studies  # noqa: F401  (declares the built-in studies, e.g. forgetting, to the store's registry)
from rnnmem.cli import app
from rnnmem.errors import ConfigError, InputError
from rnnmem.store import ResultStore, run_key
from rnnmem.store.sweep import calibrate, expand_range, load_sweep, plan_sweep
from rnnmem.store.testing import ENV, ToyConfig, calls
from rnnmem.store.registry import StudySpec, canonical_config, get_study, list_studies, register_study


def write(tmp_path, data, name="sweep.yaml"):
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


TOY = {"study": "toy", "grid": {"n": {"log2": [0, 2]}, "scale": [1.0, 2.0]}, "fixed": {"label": "t"}, "seeds": 5,
       "db": "out/r.sqlite"}


def test_ranges_expand_inclusively():
    assert expand_range("u", {"log2": [0, 7]}) == [2 ** k for k in range(8)]
    assert expand_range("t", {"log10": [-2, 1]}) == pytest.approx([0.01, 0.1, 1, 10])
    assert expand_range("i", {"start": 1, "stop": 9, "step": 4}) == [1, 5, 9]
    assert expand_range("i", {"start": 1, "stop": 10, "step": 4}) == [1, 5, 9]
    assert expand_range("i", {"start": 3, "stop": 5}) == [3, 4, 5]
    assert expand_range("f", {"start": 0.1, "stop": 0.3, "step": 0.1}) == pytest.approx([0.1, 0.2, 0.3])
    assert expand_range("c", ["lstm", "gru"]) == ["lstm", "gru"] and expand_range("c", "lstm") == ["lstm"]
    for bad, msg in [({"start": 1, "stop": 5, "step": 0}, "step must be > 0"),
                     ({"start": 5, "stop": 1}, "empty"), ({"log2": [3, 1]}, "empty"),
                     ({"log2": [0.5, 2]}, "two integer exponents"), ({"log2": 7}, "two integer exponents"),
                     ({"start": "a", "stop": 3}, "must be a number"), ({"from": 1, "to": 3}, "a range is"),
                     ({"start": 0, "stop": 1, "step": 1e-9}, "values"), ([], "no values")]:
        with pytest.raises(ConfigError, match=msg):
            expand_range("opt", bad)


def test_plan_expands_validates_and_chunks(tmp_path):
    plan = load_sweep(write(tmp_path, TOY))
    assert plan.study == "toy" and plan.run == "rnnmem.store.testing:toy_run"
    assert len(plan.configs) == 6 and plan.runs == 30 and plan.seeds == [0, 1, 2, 3, 4]
    assert plan.configs[0] == ToyConfig(n=1, scale=1.0, label="t").model_dump()   # full configs, defaults in
    assert [(c["n"], c["scale"]) for c in plan.configs] == [(n, s) for n in (1, 2, 4) for s in (1.0, 2.0)]
    tasks = plan.tasks()
    assert [t.seeds for t in tasks[:2]] == [[0, 1, 2, 3], [4]] and len(tasks) == 12   # toy: 4 seeds per task
    assert plan.db == tmp_path / "out" / "r.sqlite"
    plan = plan_sweep({**TOY, "seeds": {"start": 10, "count": 3}, "seeds_per_task": 2})
    assert plan.seeds == [10, 11, 12] and [t.seeds for t in plan.tasks()[:2]] == [[10, 11], [12]]
    assert plan_sweep({**TOY, "seeds": [7, 3]}).seeds == [7, 3]


@pytest.mark.parametrize("change, msg", [
    ({"study": "nope"}, "unknown study 'nope'; registered studies: .*toy"),
    ({"grid": {"n": [1], "units": [2]}}, "unknown option 'units' in grid for study 'toy'"),
    ({"fixed": {"bogus": 1}}, "unknown option 'bogus' in fixed"),
    ({"fixed": {"n": 3}}, "both in grid and fixed"),
    ({"grid": {}}, "the grid is empty"),
    ({"grid": {"n": []}}, "grid option 'n' has no values"),
    ({"grid": {"n": {"start": 4, "stop": 1}}}, "empty"),
    ({"grid": {"n": [1, 0]}}, r"s.yaml: config \(n=0\): option n = 0: Input should be greater than or equal to 1"),
    ({"grid": {"n": [2, 2], "scale": [1.0]}}, "appears twice"),
    ({"seeds": 0}, "seeds must be >= 1"),
    ({"seeds": [1, 1]}, "seed twice"),
    ({"seeds": []}, "empty list"),
    ({"workers": -1}, "workers"),
    ({"executor": "dask"}, "unknown executor 'dask'"),
    ({"colour": "red"}, "unknown key 'colour'"),
    ({"import": "no_such_module_abc"}, "cannot import study module"),
])
def test_bad_sweeps_fail_with_one_clear_error(change, msg):
    with pytest.raises(ConfigError, match=msg):
        plan_sweep({**TOY, **change}, source="s.yaml")


def test_missing_option_and_bad_value_are_both_named_not_the_whole_config():
    """units: 0 with no input_size: the error names input_size as missing and units = 0 as out of
    range, each with its fix, instead of printing the whole config dict as input_size's value."""
    plan = {"study": "forgetting", "grid": {"cell": ["lstm"], "units": 0}, "seeds": 2}
    with pytest.raises(ConfigError) as err:
        plan_sweep(plan, source="s.yaml")
    msg = str(err.value)
    assert "option input_size is required: give it a value (in a sweep file: under grid or fixed)" in msg
    assert "option units = 0: Input should be greater than or equal to 1" in msg
    assert "{" not in msg, msg  # no dict dumped into the message


def test_bad_files(tmp_path):
    with pytest.raises(InputError, match="not found"):
        load_sweep(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("study: toy\ngrid: {n: [1, 2\n")
    with pytest.raises(InputError, match="not valid YAML"):
        load_sweep(bad)
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="mapping"):
        load_sweep(bad)


def test_calibration_extrapolates_the_sampled_cost(tmp_path):
    plan = plan_sweep(TOY)
    cal = calibrate(plan, samples=3, workers=2)
    assert [s["config"]["n"] for s in cal.samples] == [1, 2, 4] and all(s["seeds"] == [0, 1, 2, 3] for s in cal.samples)
    per_run = sum(s["wall_s"] for s in cal.samples) / 12
    assert cal.per_run_s == pytest.approx(per_run) and cal.runs_to_do == 30 and cal.tasks_to_do == 12
    assert cal.cpu_s == pytest.approx(per_run * 30) and cal.wall_s == pytest.approx(per_run * 15)
    done = {run_key("toy", plan.configs[0], s) for s in range(5)}
    cal = calibrate(plan, samples=1, workers=1, stored=done)
    assert cal.runs_to_do == 25 and cal.tasks_to_do == 10 and len(cal.samples) == 1


def test_cli_dry_run_then_run_then_resume(tmp_path, monkeypatch):
    toy = tmp_path / "toy"
    toy.mkdir()
    monkeypatch.setenv(ENV, str(toy))
    path = write(tmp_path, TOY)
    db = tmp_path / "out" / "r.sqlite"
    runner = CliRunner()
    res = runner.invoke(app, ["sweep", str(path), "--dry-run", "--calibrate", "2"])
    assert res.exit_code == 0, res.output
    assert "30 in 12 tasks" in res.output and "estimated cost" in res.output and "nothing was run" in res.output
    assert not db.exists() and len(calls(toy)) == 2               # two calibration tasks ran, nothing stored
    (toy / "calls.log").unlink()
    res = runner.invoke(app, ["sweep", str(path), "--workers", "0", "--no-progress"])
    assert res.exit_code == 0, res.output
    with ResultStore(db) as st:
        table = st.load("toy")
    assert len(table) == 30 and len(calls(toy)) == 12
    more = write(tmp_path, {**TOY, "seeds": 6})
    res = runner.invoke(app, ["sweep", str(more), "--workers", "0", "--no-progress", "--dry-run"])
    assert "30 runs of this study stored" in res.output and "6 runs in 6 tasks" in res.output
    (toy / "calls.log").unlink()
    res = runner.invoke(app, ["sweep", str(more), "--workers", "0", "--no-progress"])
    assert res.exit_code == 0 and [c["seeds"] for c in calls(toy)] == [[5]] * 6   # only the new seed ran
    res = runner.invoke(app, ["sweep", str(path), "--executor", "spark"])
    assert isinstance(res.exception, ConfigError)


def test_cli_reports_a_bad_sweep_as_one_red_line(tmp_path):
    path = write(tmp_path, {**TOY, "grid": {"n": [1], "units": [4]}})
    out = subprocess.run([sys.executable, "-m", "rnnmem.cli", "sweep", str(path), "--dry-run"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 2 and "unknown option 'units'" in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


class _Cfg(BaseModel):
    a: int = 1
    b: int = 2


def test_registry(monkeypatch):
    assert "toy" in list_studies() and get_study("toy").config_model is ToyConfig
    spec = register_study(StudySpec("tmp_study", _Cfg, "rnnmem.store.testing:toy_run", 3, "test",
                                    check=lambda c: (_ for _ in ()).throw(ConfigError("a must not exceed b"))
                                    if c.a > c.b else None))
    try:
        assert get_study("tmp_study") is spec
        assert canonical_config("tmp_study", {"a": 0}) == {"a": 0, "b": 2}
        with pytest.raises(ConfigError, match="a must not exceed b"):
            canonical_config("tmp_study", {"a": 5})
        with pytest.raises(ConfigError, match="unknown option c"):
            canonical_config("tmp_study", {"c": 5})
    finally:
        from rnnmem.store import registry

        registry._STUDIES.pop("tmp_study")
    assert canonical_config("unregistered", {"z": 1}) == {"z": 1}
    for bad, msg in [(dict(name=""), "name"), (dict(config_model=dict), "BaseModel"), (dict(run="x.y"), "module:function"),
                     (dict(seeds_per_task=0), "seeds_per_task")]:
        kw = dict(name="x", config_model=_Cfg, run="m:f", seeds_per_task=1)
        kw.update(bad)
        with pytest.raises(ConfigError, match=msg):
            StudySpec(**kw)
    with pytest.raises(ConfigError, match="unknown study"):
        get_study("does-not-exist")


def test_store_gets_studies_by_registration_never_by_importing_them():
    """Issue 12: the registry lives in the store, which imports no study. In a fresh process the store
    knows only its own toy study and says how to get rnnmem's; importing rnnmem.studies declares the
    built-in study modules, imported lazily on lookup."""
    code = """
import sys
from rnnmem.errors import ConfigError
from rnnmem.store import registry, sweep, runner
assert not any(m.startswith('rnnmem.studies') for m in sys.modules), sorted(sys.modules)
try:
    registry.get_study('forgetting')
except ConfigError as exc:
    assert "unknown study 'forgetting'" in str(exc) and 'import rnnmem.studies' not in str(exc)
    assert 'register when rnnmem.studies is imported' in str(exc), str(exc)
else:
    raise AssertionError('forgetting found without rnnmem.studies')
import rnnmem.studies
assert 'rnnmem.studies.muccino' not in sys.modules   # declared, not imported
assert registry.get_study('forgetting').run == 'rnnmem.studies.muccino:run_cell'
assert 'rnnmem.studies.muccino' in sys.modules
print('ok')
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-3000:]


def test_ray_executor_without_ray_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "ray", None)
    from rnnmem.store import Task, run_tasks

    with ResultStore(tmp_path / "r.sqlite") as st:
        with pytest.raises(ConfigError, match=r"pip install 'rnnmem\[ray\]'"):
            run_tasks([Task("toy", {"n": 1}, [0])], "rnnmem.store.testing:toy_run", st, executor="ray",
                      progress=False)
