"""The probe contract (issue 12): every registered probe x a set of models through one door.

For each probe in ``PROBES`` and each model (a built-in LSTM, a GRU ensemble, ``torch.nn.LSTM``,
a user-defined module with only the minimal protocol, a toy cell defined and registered here, and
every unit in the cell registry): the result has the five members, ``summary()`` is JSON-able, the
caller's model is unchanged (parameters, device, dtype), and bad settings give one ``ConfigError``.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.cells.base import RecurrentUnit
from rnnmem.errors import ConfigError
from rnnmem.probes import PROBES, Result, probe
from rnnmem.probes.card import compute_card

# Small enough for CI (2 cores), large enough that every probe's fit has points to work with.
SMALL = {
    "forgetting": {"T": 400, "P": 40, "input_pairs": 2, "rate_steps": 120},
    "lyapunov": {"steps": 40, "washout": 10, "k": 3},
    "capacity": {"steps": 300, "washout": 30},
    "connectivity": {"T": 24, "sequences": 1},
    "long_memory": {"T": 80, "max_lag": 30, "n_samples": 3},
    "semantic": {"sequences": 32, "fit_sequences": 64, "prefix_lengths": [4, 8], "words": 4000, "vocab_size": 60,
                 "dim": 8, "bootstrap": 200},
}


class MinimalGRU(nn.Module):
    """A user's model with only the minimal protocol: forward(x, state=None) -> (y, state) and
    input_size / hidden_size attributes (no init_state, no rnnmem base class)."""

    def __init__(self, input_size=1, hidden_size=5):
        super().__init__()
        self.input_size, self.hidden_size = input_size, hidden_size
        torch.manual_seed(3)
        self.cell = nn.GRUCell(input_size, hidden_size)

    def forward(self, x, state=None):
        h = x.new_zeros(x.shape[1], self.hidden_size) if state is None else state
        ys = []
        for t in range(x.shape[0]):
            h = self.cell(x[t], h)
            ys.append(h)
        return torch.stack(ys), h


class ToyCell(RecurrentUnit):
    """A new unit in one class: h' = tanh(x W_x + b + h W_h) (the base class does the rest)."""

    kind = "toy"
    gates = 1

    def _cell_step(self, layer, xp_t, st):
        p = self.layer_params[layer]
        (h,) = st
        h = torch.tanh(xp_t + torch.matmul(h, p.W_h))
        return h, (h,)


@pytest.fixture(scope="module", autouse=True)
def toy_registered():
    cells.register("toy", ToyCell, "test-only Elman cell")  # the one register call
    yield
    cells.UNITS.pop("toy", None)
    cells.UNIT_DOCS.pop("toy", None)


def _models():
    return {
        "lstm": lambda: cells.build("lstm", 1, 5, seed=0),
        "gru_ensemble": lambda: cells.build("gru", 1, 5, seeds=[1, 2]),
        "torch_lstm": lambda: nn.LSTM(1, 5),
        "minimal_module": lambda: MinimalGRU(),
        "toy_cell": lambda: cells.build("toy", 1, 5, seed=0),
    }


def _snapshot(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, \
        {str(p.device) for p in model.parameters()}, {p.dtype for p in model.parameters()}


def _check_result(res, name):
    assert isinstance(res, Result) and res.probe == name
    assert isinstance(res.frame, pd.DataFrame) and len(res.frame) > 0
    summary = res.summary()
    assert isinstance(summary, dict) and summary
    json.dumps(summary)  # JSON-serialisable, NaN-free
    json.loads(res.to_json())
    assert res.config["probe"] == name and res.config["settings"]
    assert np.isfinite(res.wall_s) and res.wall_s >= 0


@pytest.mark.parametrize("probe_name", list(PROBES))
@pytest.mark.parametrize("model_name", list(_models()))
def test_every_probe_on_every_kind_of_model(probe_name, model_name):
    torch.manual_seed(0)
    model = _models()[model_name]()
    before, devices, dtypes = _snapshot(model)
    calls = []
    res = PROBES[probe_name](model, settings=SMALL[probe_name], seed=1, dtype="float64",
                             progress=lambda done, total: calls.append((done, total)))
    _check_result(res, probe_name)
    assert res.config["dtype"] == "float64"
    after, devices2, dtypes2 = _snapshot(model)
    assert devices == devices2 and dtypes == dtypes2, "the probe moved or cast the caller's model"
    assert before.keys() == after.keys() and all(torch.equal(before[k], after[k]) for k in before)
    if model_name == "gru_ensemble":
        assert len(res.summary()["members"]) == 2 and set(res.frame["member"]) == {0, 1}
    assert calls, "progress(done, total) was never called"
    assert all(isinstance(d, (int, float)) for d, _ in calls)


@pytest.mark.parametrize("probe_name", list(PROBES))
def test_plot_draws(probe_name):
    import matplotlib

    matplotlib.use("Agg")
    res = PROBES[probe_name](cells.build("gru", 1, 4, seed=0), settings=SMALL[probe_name], seed=0)
    ax = res.plot()
    assert ax.get_xlabel() and (ax.lines or ax.collections)


@pytest.mark.parametrize("probe_name", list(PROBES))
def test_bad_settings_are_one_config_error(probe_name):
    unit = cells.build("lstm", 1, 4, seed=0)
    with pytest.raises(ConfigError, match="unknown option 'no_such_field'"):
        PROBES[probe_name](unit, settings={"no_such_field": 1})
    first = next(iter(PROBES[probe_name].settings.model_fields))
    with pytest.raises(ConfigError, match=f"{probe_name} settings"):
        PROBES[probe_name](unit, settings={first: -5})
    with pytest.raises(ConfigError, match="seed"):
        PROBES[probe_name](unit, settings=SMALL[probe_name], seed=-1)


def test_unknown_probe_and_unprobeable_model():
    with pytest.raises(ConfigError, match="unknown probe"):
        probe("nope", cells.build("lstm", 1, 4, seed=0))
    with pytest.raises(ConfigError, match="minimal protocol|input_size and hidden_size"):
        PROBES["capacity"](nn.Linear(3, 3))


def test_ensemble_members_are_the_single_networks():
    """The contract's per-member run of an ensemble gives what each single network gives."""
    ens = PROBES["capacity"](cells.build("gru", 1, 5, seeds=[1, 2], dtype="float64"), settings=SMALL["capacity"])
    for e, s in enumerate([1, 2]):
        one = PROBES["capacity"](cells.build("gru", 1, 5, seed=s, dtype="float64"), settings=SMALL["capacity"])
        assert ens.summary()["members"][e]["mc"] == pytest.approx(one.summary()["mc"], rel=1e-9)


def _registered_cells():
    return [name for name in cells.UNITS if name != "toy"]


@pytest.mark.parametrize("cell", _registered_cells())
def test_every_probe_runs_on_every_registered_cell(cell):
    """Every unit in the registry (the built-in ones and any added later) through every probe."""
    unit = cells.build(cell, 1, 4, seed=0, dtype="float64")
    settings = {k: dict(v) for k, v in SMALL.items()}
    # capacity's ridge readout needs more training steps than state dimensions (the memory units'
    # input windows make D ~ 100)
    settings["capacity"]["steps"] = max(300, 5 * unit.state_size() + 60)  # lags up to 2D are left out
    for name, p in PROBES.items():
        res = p(unit, settings=settings.get(name), seed=0)
        _check_result(res, name)


def test_card_is_a_loop_over_the_registry():
    """A probe registered now appears on the card with no card code changed."""
    from pydantic import Field

    from rnnmem.probes.contract import ProbeSettings, register_probe

    class StateNorm(ProbeSettings):
        steps: int = Field(20, ge=1)

    def run(unit, s, *, seed, device, dtype, progress):
        g = torch.Generator().manual_seed(seed)
        x = torch.randn(s.steps, 1, unit.input_size, generator=g, dtype=dtype)
        _, st = unit(x)
        norm = float(unit.state_vector(st).norm())
        return pd.DataFrame({"norm": [norm]}), {"final_state_norm": norm}, {}, None

    register_probe("state_norm", StateNorm, run, "test-only: norm of the final state")
    try:
        small = {k: v for k, v in SMALL.items()}
        card = compute_card(cells.build("lstm", 1, 4, seed=0), settings=small)
        assert card["state_norm"]["final_state_norm"] > 0
        assert set(PROBES) <= set(card)
        json.dumps(card)
    finally:
        PROBES.pop("state_norm")


@pytest.mark.cuda
@pytest.mark.parametrize("probe_name", ["forgetting", "capacity", "long_memory"])
def test_device_runs_on_a_copy_and_the_callers_model_stays(probe_name):
    """On CUDA every probe computes on a moved copy; the caller's CPU model stays on the CPU (the
    old ``forgetting(model, device=...)`` moved it)."""
    from rnnmem.probes.forgetting import forgetting

    unit = cells.build("gru", 1, 4, seed=0)
    res = PROBES[probe_name](unit, settings=SMALL[probe_name], device="cuda")
    assert res.config["device"].startswith("cuda")
    assert all(p.device.type == "cpu" for p in unit.parameters())
    forgetting(unit, T=200, P=20, device="cuda")
    assert all(p.device.type == "cpu" for p in unit.parameters())
