"""The forgetting probe: closed forms, early stopping, statuses, bad input."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem import cells
from rnnmem.errors import ConfigError, InputError
from rnnmem.probes.forgetting import ForgettingSettings, OutputCriterion, _draw_block, forgetting, tol_name


class LinearRNN(nn.Module):
    """h_t = W h_{t-1} + U x_t, y_t = h_t (float64)."""

    def __init__(self, W: torch.Tensor, input_size: int, seed: int = 0):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        self.W = nn.Parameter(W.clone())
        self.U = nn.Parameter(torch.randn(input_size, W.shape[0], generator=g, dtype=W.dtype))

    def forward(self, x, state):
        h = state if state is not None else torch.zeros(x.shape[1], self.W.shape[0], dtype=x.dtype)
        ys = []
        for t in range(x.shape[0]):
            h = h @ self.W.T + x[t] @ self.U
            ys.append(h)
        return torch.stack(ys), h


def linear_unit(W, input_size=2):
    H = W.shape[0]
    mod = LinearRNN(W, input_size)
    return cells.CallableUnit(mod, input_size, H, init_state=lambda b: torch.zeros(b, H, dtype=W.dtype))


def test_linear_rnn_rate_matches_spectral_radius():
    r, H = 0.9, 6
    q, _ = torch.linalg.qr(torch.randn(H, H, generator=torch.Generator().manual_seed(1), dtype=torch.float64))
    unit = linear_unit(r * q)
    res = forgetting(unit, T=3000, P=200, input_seeds=[3, 4])
    for _, row in res.table.iterrows():
        assert row["fit_points"] > 100
        assert abs(row["rate"] - (-math.log(r))) <= 0.02 * abs(math.log(r))


def test_linear_rnn_crossing_times_match_closed_form():
    r, H, P = 0.8, 4, 100
    W = r * torch.eye(H, dtype=torch.float64)
    unit = linear_unit(W)
    tols = (1e-2, 1e-4, 1e-6)
    res = forgetting(unit, T=2000, P=P, tolerances=tols, input_seeds=[11])
    row = res.table.iloc[0]
    # closed form: at shared step k the output difference is r^k * m, m = max|h_a - h_b| at step P-1
    m = row["d0"] / r
    for tol in tols:
        k_star = math.ceil(math.log(tol / m) / math.log(r))
        assert row[f"steps_{tol_name(tol)}"] == k_star - 1
    assert row["status"] in ("exact", "floor")


@pytest.mark.parametrize(
    "cell,convention,dtype,I,H",
    [("lstm", "keras", "float32", 4, 8), ("gru", "keras", "float32", 16, 32),
     ("lstm", "torch", "float64", 2, 4), ("gru", "torch", "float32", 1, 64)],
)
def test_early_stop_equals_full_run(cell, convention, dtype, I, H):
    T = 12_000
    unit = cells.build(cell, I, H, convention=convention, dtype=dtype, seeds=[5, 6, 7])
    early = forgetting(unit, T=T, P=500)
    full = forgetting(unit, T=T, P=500, early_stop=False)
    assert full.steps_computed == T
    assert early.steps_computed < T, "this configuration should stop early"
    cols = [c for c in early.table.columns if c.startswith(("steps_", "censored_"))]
    cols += ["status", "event_step", "rate", "floor_level"]
    cols.remove("steps_computed")
    for c in cols:
        a, b = early.table[c].to_numpy(), full.table[c].to_numpy()
        if a.dtype.kind == "f":
            np.testing.assert_array_equal(np.nan_to_num(a, nan=-1), np.nan_to_num(b, nan=-1), err_msg=c)
        else:
            assert list(a) == list(b), c


def test_status_exact_for_small_gru():
    unit = cells.build("gru", 2, 2, convention="keras", seeds=[0, 1])
    res = forgetting(unit, T=5000, P=100)
    assert set(res.table["status"]) == {"exact"}
    assert not res.table["censored_exact"].any()


def test_status_floor_censors_tolerances_below_the_floor():
    unit = cells.build("lstm", 32, 128, convention="keras", seeds=[0])
    res = forgetting(unit, T=20_000, P=200)
    row = res.table.iloc[0]
    assert row["status"] == "floor"
    assert row["censored_exact"]
    assert 0 < row["floor_level"] < 1e-4
    assert not row["censored_0.01"] and row["steps_0.01"] >= 0


def test_status_censored_when_T_too_short():
    unit = cells.build("lstm", 1, 16, convention="keras", seeds=[0])
    res = forgetting(unit, T=110, P=100, tolerances=(0.0, 1e-6))
    row = res.table.iloc[0]
    assert row["status"] == "censored"
    assert row["censored_exact"] and math.isnan(row["steps_exact"])


def test_status_diverging_for_chaotic_rnn():
    unit = cells.build("rnn", 1, 64, convention="torch", seeds=[0])
    with torch.no_grad():
        unit.layer_params[0].W_h.mul_(4.0)  # spectral radius ~2.3: chaotic, not saturated
    res = forgetting(unit, T=3000, P=100)
    row = res.table.iloc[0]
    assert row["status"] == "diverging"
    assert row["censored_0.01"]
    # saturated chaos: the difference stays at the attractor's size but grows again after each dip
    assert row["growth"] > ForgettingSettings().growth_min + row["growth_rounding"]


class ScaledIdentity(nn.Module):
    """h_t = lam h_{t-1} + x_t U + drift, y_t = h_t: the minimal model protocol (``input_size``,
    ``hidden_size``, ``forward(x, state=None)``), probed through ``as_model``. After the prefix the
    state difference is lam^(t-P+1) (h^a_{P-1} - h^b_{P-1}) exactly: it contracts for lam < 1, stays
    constant for lam = 1 (identity recurrent weight) and grows for lam > 1. ``drift`` adds the same
    amount to both runs every step: it changes no difference, only makes the state, and so its
    rounding, large."""

    def __init__(self, lam: float, dtype=torch.float64, drift: float = 0.0, input_size: int = 2, hidden_size: int = 3):
        super().__init__()
        self.input_size, self.hidden_size, self.lam, self.drift = input_size, hidden_size, lam, drift
        g = torch.Generator().manual_seed(0)
        self.U = nn.Parameter(torch.randn(input_size, hidden_size, generator=g, dtype=torch.float64).to(dtype))

    def forward(self, x, state=None):
        h = torch.zeros(x.shape[1], self.hidden_size, dtype=x.dtype) if state is None else state
        ys = []
        for t in range(x.shape[0]):
            h = self.lam * h + x[t] @ self.U + self.drift
            ys.append(h)
        return torch.stack(ys), h


def scaled_identity(lam, **kw):
    from rnnmem.cells.protocol import as_model

    return as_model(ScaledIdentity(lam, **kw))


def test_status_contracting_constant_growing():
    """The three regimes of the difference after the prefix, each with its status: contracting
    (lam = 0.9) agrees; constant (lam = 1) is censored at every tolerance, not diverging; growing
    (lam = 1.01) is diverging, with growth (T - 1 - P) ln(lam) and rate -ln(lam)."""
    T, P, s = 2000, 100, ForgettingSettings()
    down = forgetting(scaled_identity(0.9), T=T, P=P, input_seeds=[1, 2]).table
    assert set(down["status"]) <= {"exact", "floor", "converged"}
    assert not down["censored_0.01"].any() and (down["growth"] == 0).all()

    flat = forgetting(scaled_identity(1.0), T=T, P=P, input_seeds=[1, 2]).table
    assert (flat["status"] == "censored").all()
    for tol in s.tolerances:
        assert flat[f"censored_{tol_name(tol)}"].all()
    assert (flat["rate"].abs() < 1e-12).all()
    assert (flat["growth"] < s.growth_min / 100).all()  # rounding only, far below the threshold

    lam = 1.01
    up = forgetting(scaled_identity(lam), T=T, P=P, input_seeds=[1, 2]).table
    assert (up["status"] == "diverging").all()
    np.testing.assert_allclose(up["growth"], (T - 1 - P) * math.log(lam), rtol=1e-9)
    np.testing.assert_allclose(up["rate"], -math.log(lam), rtol=1e-6)
    assert (up["growth_rounding"] < 1e-6).all()


@pytest.mark.parametrize("growth_min", [0.1, 0.5])
def test_growth_min_is_the_diverging_threshold(growth_min):
    """A slow growth, (T - 1 - P) ln(1.0001) = 0.19 nats: diverging above growth_min = 0.1, censored
    below growth_min = 0.5; the decision is growth > growth_min + growth_rounding."""
    T, P, lam = 2000, 100, 1.0001
    t = forgetting(scaled_identity(lam), T=T, P=P, input_seeds=[1], growth_min=growth_min).table
    growth = (T - 1 - P) * math.log(lam)
    np.testing.assert_allclose(t["growth"], growth, rtol=1e-6)
    want = "diverging" if growth > growth_min + t["growth_rounding"][0] else "censored"
    assert t["status"][0] == want
    assert want == ("diverging" if growth_min < growth else "censored")


def test_constant_difference_in_float32_is_not_diverging():
    """An identity recurrent weight in float32 with a drift of 10 per step: the state reaches 2e5,
    where one float32 rounding (1.6e-2) is 4e-4 of the difference (about 40), every step. The
    difference stays constant up to rounding: censored like the float64 twin, its growth far below
    growth_min, and the worst-case rounding allowance covers it."""
    T, P, s = 20_000, 100, ForgettingSettings()
    t32 = forgetting(scaled_identity(1.0, dtype=torch.float32, drift=10.0), T=T, P=P, input_seeds=[1, 2]).table
    t64 = forgetting(scaled_identity(1.0, dtype=torch.float64, drift=10.0), T=T, P=P, input_seeds=[1, 2]).table
    assert (t32["dtype"] == "float32").all()
    assert (t32["status"] == "censored").all() and (t64["status"] == "censored").all()
    assert (t32["growth"] > 0).all()  # float32 rounding does move the difference ...
    assert (t32["growth"] < s.growth_min / 100).all()  # ... by far less than the threshold
    assert (t32["growth"] < t32["growth_rounding"]).all()
    assert (t64["growth"] < 1e-9).all()


def _first_nonfinite_step(module, T, P, input_seeds, dtype):
    """The first step at which a state of either stream, or their difference, is not finite,
    per run (-1 if never): the module run directly on the probe's input streams (``_draw_block``,
    the documented protocol), without the probe's tracker."""
    gens = [torch.Generator().manual_seed(s) for s in input_seeds]
    block, R, I = ForgettingSettings().block, len(input_seeds), module.input_size
    x = torch.cat([_draw_block(gens, min(block, T - t0), I, t0, P, dtype) for t0 in range(0, T, block)])
    with torch.no_grad():
        h, _ = module(x.reshape(T, 2 * R, I))  # y_t = h_t: the state
    h = h.reshape(T, R, 2, -1)
    a, b = h[:, :, 0], h[:, :, 1]
    bad = ~(torch.isfinite(a) & torch.isfinite(b) & torch.isfinite(a - b)).all(-1)  # [T, R]
    return [int(bad[:, r].float().argmax()) if bad[:, r].any() else -1 for r in range(R)]


def test_float32_overflow_is_its_own_status_never_floor_or_converged():
    """A difference growing by 1.01 per step overflows float32 (3.4e38) after about 8,500 steps;
    then the states are inf and their difference inf or NaN. Each run ends ``overflow`` at the
    first non-finite step (found independently by running the module on the same streams),
    censored at every tolerance (a NaN difference never counts as agreeing), with the rate and
    growth of the finite steps: -ln(1.01) per step, as in exact arithmetic. Early stopping gives
    the same table as the full run."""
    T, P, lam, seeds = 20_000, 100, 1.01, [1, 2]
    want = _first_nonfinite_step(ScaledIdentity(lam, dtype=torch.float32), T, P, seeds, torch.float32)
    assert all(P < w < T for w in want), want  # the streams do overflow, after the prefix
    crit = [OutputCriterion("dec2", decimals=2), OutputCriterion("abs", atol=1e-4)]
    early = forgetting(scaled_identity(lam, dtype=torch.float32), T=T, P=P, input_seeds=seeds, criteria=crit)
    full = forgetting(scaled_identity(lam, dtype=torch.float32), T=T, P=P, input_seeds=seeds, criteria=crit,
                      early_stop=False)
    t = early.table
    assert (t["dtype"] == "float32").all()
    assert list(t["status"]) == ["overflow", "overflow"]
    assert list(t["event_step"]) == want
    for tol in ForgettingSettings().tolerances:
        assert t[f"censored_{tol_name(tol)}"].all() and t[f"steps_{tol_name(tol)}"].isna().all()
    for c in crit:
        assert t[f"censored_stay_{c.name}"].all() and t[f"censored_first_{c.name}"].all()
    # the fit runs over every finite step after P, and they grow exactly as lam^k
    assert list(t["fit_points"]) == [w - P for w in want]
    np.testing.assert_allclose(t["rate"], -math.log(lam), rtol=1e-5)  # measured 9e-7 (float32 rounding)
    np.testing.assert_allclose(t["growth"], (t["event_step"] - 1 - P) * math.log(lam), rtol=1e-5)
    assert np.isfinite(t["growth_rounding"]).all()
    # early stopping: both runs have their event by step 8,750, and nothing later changes the table
    assert early.steps_computed < T and full.steps_computed == T
    cols = [c for c in t.columns if c != "steps_computed"]
    pd_a, pd_b = t[cols].fillna(-1), full.table[cols].fillna(-1)
    assert pd_a.equals(pd_b)


def test_nonfinite_state_after_an_exact_event_changes_nothing():
    """Components 0-2 contract (0.5 per step) until the two runs' states are bitwise equal; a
    fourth, input-free component grows as 1.5^t and overflows float64 around step 1,750, long
    after, making the (identical) states inf and their difference NaN. The run stays ``exact``
    and its forgetting steps are the same whether the probe stops early or computes all T steps."""
    T, P = 3000, 100

    def unit():
        mod = ScaledIdentity(torch.tensor([0.5, 0.5, 0.5, 1.5], dtype=torch.float64), hidden_size=4,
                             drift=torch.tensor([0.0, 0.0, 0.0, 1.0], dtype=torch.float64))
        with torch.no_grad():
            mod.U[:, 3] = 0.0
        return mod

    from rnnmem.cells.protocol import as_model

    with torch.no_grad():
        h, _ = unit()(torch.zeros(T, 1, 2, dtype=torch.float64))
    assert math.isinf(h[-1, 0, 3]) and math.isfinite(h[1000, 0, 3])  # overflows after step 1,000
    crit = [OutputCriterion("dec2", decimals=2)]
    early = forgetting(as_model(unit()), T=T, P=P, input_seeds=[1, 2], criteria=crit)
    full = forgetting(as_model(unit()), T=T, P=P, input_seeds=[1, 2], criteria=crit, early_stop=False)
    assert (early.table["status"] == "exact").all() and (early.table["event_step"] < 1000).all()
    assert early.steps_computed < 1000 and full.steps_computed == T
    cols = [c for c in early.table.columns if c != "steps_computed"]
    assert early.table[cols].fillna(-1).equals(full.table[cols].fillna(-1))
    assert not early.table["censored_exact"].any()


def test_rate_of_a_huge_growing_state_in_float64():
    """float64, 1.01 per step over 20,000 steps: the state difference reaches 1e86. The rounding
    floor of each step is relative to that step's state, so every step is fitted and the rate is
    the closed form -ln(1.01) per step (it was NaN with one cutoff from the largest state)."""
    T, P, lam = 20_000, 100, 1.01
    res = forgetting(scaled_identity(lam), T=T, P=P, input_seeds=[1, 2])
    t = res.table
    assert (t["status"] == "diverging").all()
    assert (t["fit_points"] == T - P).all()
    np.testing.assert_allclose(t["rate"], -math.log(lam), rtol=1e-9)
    np.testing.assert_allclose(t["growth"], (T - 1 - P) * math.log(lam), rtol=1e-9)
    for curve, d0 in zip(res.curves, t["d0"]):
        last = curve["state_l2"][-1]  # the last bin's largest L2 distance: step T - 1's
        assert 1e80 < last < math.inf  # finite: its squares (1e172) are not formed in the state's dtype
        # d0 = max-abs difference at step P, lam^(T - 1 - P) of it at T - 1; L2 / max-abs in [1, sqrt(3)]
        excess = math.log(last) - math.log(d0) - (T - 1 - P) * math.log(lam)
        assert -1e-9 <= excess <= 0.5 * math.log(3) + 1e-9


def test_torch_module_and_ensemble_agree():
    """A torch.nn.GRU probed directly equals the same weights run through rnnmem's unit."""
    torch.manual_seed(0)
    mod = nn.GRU(3, 5)
    unit = cells.from_module(mod)
    a = forgetting(mod, T=3000, P=100, input_seeds=[1, 2])
    b = forgetting(unit, T=3000, P=100, input_seeds=[1, 2])
    assert a.table["steps_0.0001"].tolist() == b.table["steps_0.0001"].tolist()
    assert len(a.table) == 2


def test_same_seed_same_numbers_and_curves_are_logbinned():
    u1 = cells.build("lstm", 4, 8, convention="keras", seeds=[3, 4])
    u2 = cells.build("lstm", 4, 8, convention="keras", seeds=[3, 4])
    a, b = forgetting(u1, T=5000, P=100), forgetting(u2, T=5000, P=100)
    assert a.table.drop(columns=["steps_computed"]).equals(b.table.drop(columns=["steps_computed"]))
    curve = a.curves[0]
    assert len(curve["bin_edges"]) <= 121 and "c_maxabs" in curve
    assert np.all(np.diff(curve["bin_edges"]) > 0)


@pytest.mark.parametrize("kwargs,match", [
    ({"T": 100, "P": 100}, "prefix P=100 must be shorter"),
    ({"tolerances": (-1e-3,)}, "tolerances must be finite and >= 0"),
    ({"T": 0}, "T must be a positive integer"),
    ({"growth_min": 0.0}, "growth_min"),
    ({"growth_min": math.inf}, "growth_min"),
])
def test_bad_settings(kwargs, match):
    with pytest.raises(ConfigError, match=match):
        ForgettingSettings(**kwargs)


def test_bad_model():
    with pytest.raises(ConfigError, match="cannot probe a Linear"):
        forgetting(nn.Linear(2, 2), T=100, P=10)
    with pytest.raises(ConfigError, match="unknown cell"):
        cells.build("lstn", 1, 1)


def test_unreadable_state_dict(tmp_path):
    from rnnmem.model_io import load_recurrent

    bad = tmp_path / "model.pt"
    bad.write_text("not a torch file")
    with pytest.raises(InputError, match="cannot read"):
        load_recurrent(bad)
    with pytest.raises(InputError, match="not found"):
        load_recurrent(tmp_path / "missing.pt")


def test_state_dict_round_trip(tmp_path):
    from rnnmem.model_io import load_recurrent

    torch.manual_seed(0)
    mod = nn.LSTM(2, 6, num_layers=2)
    path = tmp_path / "lstm.pt"
    torch.save(mod.state_dict(), path)
    unit = load_recurrent(path)
    assert unit.kind == "lstm" and unit.num_layers == 2 and unit.hidden_size == 6
    x = torch.randn(20, 3, 2)
    np.testing.assert_allclose(unit(x)[0].detach(), mod(x)[0].detach(), atol=1e-6)
