"""The short-memory control series (a random contracting RNN driven by N(0, 1) noise) and its study."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnmem.errors import ConfigError
from rnnmem.tasks.rnn_generated import (RNNGenerator, RNNGeneratorSpec, generate_rnn_series, oracle_rmse,
                                        write_rnn_series)


def test_series_is_seeded_and_its_innovations_are_the_noise():
    spec = RNNGeneratorSpec(length=600, burn_in=50, seed=3)
    a, b = generate_rnn_series(spec), generate_rnn_series(spec)
    assert a.equals(b)
    c = generate_rnn_series(RNNGeneratorSpec(length=600, burn_in=50, seed=4))
    assert not np.allclose(a["x"], c["x"])
    assert len(a) == 600 and list(a.columns) == ["x", "eps", "oracle"]
    # x_t = E[x_t | past] + eps_t exactly, and eps is the seeded standard normal stream after burn-in
    assert np.allclose(a["x"] - a["oracle"], a["eps"], atol=1e-12)
    assert np.array_equal(a["eps"].to_numpy(), np.random.default_rng(3).standard_normal(650)[50:])
    cfg = a.attrs["config"]
    assert cfg["contraction"] == pytest.approx(0.9) and cfg["seed"] == 3


def test_oracle_rmse_blocks():
    fr = generate_rnn_series(RNNGeneratorSpec(length=101, burn_in=10))
    o = oracle_rmse(fr, (50, 30, 20))
    eps = fr["eps"].to_numpy()[1:]
    assert o["train"] == pytest.approx(np.sqrt(np.mean(eps[:50] ** 2)))
    assert o["test"] == pytest.approx(np.sqrt(np.mean(eps[80:100] ** 2)))


def test_response_obeys_the_contraction_bound_and_probe_says_short():
    from rnnmem.probes.long_memory import long_memory_probe

    spec = RNNGeneratorSpec(hidden=6, radius=0.8, seed=1)
    gen = RNNGenerator(spec)
    assert gen.contraction == pytest.approx(0.8)
    frame, verdict = long_memory_probe(gen, 200, max_lag=40, n_samples=16, seed=0)
    bound = float(gen.w_o.norm() * gen.w_x.norm())
    k = frame["lag"].to_numpy()[1:]
    # |E_t dx_t/d eps_{t-k}| <= ||w_o|| ||w_x|| radius^(k-1) (the documented bound); A_0 = 1
    assert frame["abs_A"].iloc[0] == pytest.approx(1.0)
    assert np.all(frame["abs_A"].to_numpy()[1:] <= bound * 0.8 ** (k - 1) * (1 + 1e-9))
    assert verdict["verdict"] == "short", verdict["reason"]


def test_bad_spec_is_a_config_error():
    with pytest.raises(ConfigError, match="radius"):
        RNNGeneratorSpec(radius=1.0)
    with pytest.raises(ConfigError, match="hidden"):
        RNNGeneratorSpec(hidden=0)
    with pytest.raises(ConfigError, match="burn_in"):
        RNNGeneratorSpec(burn_in=-1)


def test_csv_round_trip(tmp_path):
    from rnnmem.tasks.series import load_series

    spec = RNNGeneratorSpec(length=300, burn_in=20)
    path = write_rnn_series(tmp_path / "g.csv", spec)
    assert np.array_equal(load_series(path, "x"), generate_rnn_series(spec)["x"].to_numpy())


def test_control_study_end_to_end(tmp_path):
    from rnnmem.studies.zhao_control import reproduce_control

    torch.set_num_threads(1)
    spec = RNNGeneratorSpec(length=401, burn_in=50)
    res = reproduce_control(tmp_path / "ctl", seeds=2, models=["rnn", "mrnnf"], max_epochs=3, K=10,
                            generator=spec, split=(200, 100, 100), probe_lags=30, probe_samples=16, workers=0,
                            progress=False)
    assert res["runs"] == 4 and res["computed"] == 4
    assert res["verdict"]["verdict"] == "short", res["verdict"]["reason"]
    tab = res["table"].set_index("model")
    assert list(tab.index) == ["RNN", "MRNNF"] and (tab["runs"] == 2).all()
    assert np.isfinite(tab["median"]).all()
    md = res["markdown"].read_text()
    assert "| short |" in md and "1.0063" in md and "oracle" in md
    assert (tmp_path / "ctl" / "zhao_control_boxplot.png").is_file()
    again = reproduce_control(tmp_path / "ctl", seeds=2, models=["rnn", "mrnnf"], max_epochs=3, K=10,
                              generator=spec, split=(200, 100, 100), probe_lags=30, probe_samples=16, workers=0,
                              progress=False)
    assert again["computed"] == 0 and again["table"]["median"].tolist() == res["table"]["median"].tolist()
    with pytest.raises(ConfigError, match="split"):
        reproduce_control(tmp_path / "x", generator=spec, split=(300, 100, 100), workers=0, progress=False)


def test_reproduce_zhao_dataset_rnn_generated_runs_the_control(tmp_path):
    from typer.testing import CliRunner

    from rnnmem.cli import app

    runner = CliRunner()
    out = tmp_path / "ctl"
    res = runner.invoke(app, ["reproduce", "zhao", "--dataset", "rnn-generated", "--models", "rnn", "--seeds", "1",
                              "--max-epochs", "1", "--K", "5", "--workers", "0", "--out", str(out)])
    assert res.exit_code == 0, res.output
    assert "generator: short" in res.output
    assert (out / "zhao_control_boxplot.png").is_file() and (out / "rnn_generated.csv").is_file()
    bad = runner.invoke(app, ["reproduce", "zhao", "--dataset", "rnn-generated", "--data", str(tmp_path / "x.csv"),
                              "--out", str(tmp_path / "o")])
    assert bad.exit_code != 0
