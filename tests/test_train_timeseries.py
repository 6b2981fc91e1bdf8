"""Fast kernels (exact gradients) and the batched multi-seed training protocol."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rnnmem import cells
from rnnmem.errors import ConfigError
from rnnmem.tasks.series import split_series
from rnnmem.train.fastseq import fast_forward, unsupported_reason
from rnnmem.train.timeseries import MODELS, SeriesModel, TrainSettings, train_series

KINDS = ("rnn", "lstm", "mrnnf", "rnn2", "mrnn", "mlstmf", "mlstm", "rwa")


def _unit(kind, seeds=None, seed=None, layers=1, I=2, H=3, K=5):
    opts = {} if kind in ("rnn", "lstm", "rwa") else {"K": K}
    return cells.build(kind, I, H, layers=layers, dtype="float64", seeds=seeds, seed=seed, **opts)


def _series(n=180, seed=0):
    rng = np.random.default_rng(seed)
    return np.cumsum(rng.normal(size=n)) * 0.1 + np.sin(np.arange(n) / 5.0)


# ------------------------------------------------------------------------------------------ kernels
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("layers, seeds", [(1, None), (2, [3, 4])])
def test_fast_kernels_match_autograd_through_the_step_loop(kind, layers, seeds):
    torch.manual_seed(0)
    u = _unit(kind, seeds=seeds, seed=None if seeds else 7, layers=layers)
    assert unsupported_reason(u) is None
    B, T = 2, 11
    lead = (T, len(seeds), B) if seeds else (T, B)
    x = torch.randn(*lead, 2, dtype=torch.float64, requires_grad=True)
    st0 = tuple(0.3 * torch.randn_like(s) for s in u.init_state(B))
    if kind == "rwa":   # l = log of the normaliser: keep it far from the d_0 = 0 start
        st0 = (st0[0], st0[1], st0[2] - 1.0)
    st0 = tuple(s.requires_grad_(True) for s in st0)
    params = list(u.parameters())
    outs = []
    for fn in (lambda: u(x, st0), lambda: fast_forward(u, x, st0)):
        y, st = fn()
        gen = torch.Generator().manual_seed(1)
        loss = (y * torch.randn(y.shape, generator=gen, dtype=y.dtype)).sum()
        loss = loss + sum((s * torch.randn(s.shape, generator=gen, dtype=s.dtype)).sum() for s in st)
        grads = torch.autograd.grad(loss, params + [x, *st0], allow_unused=True)
        outs.append((y.detach(), [s.detach() for s in st], grads))
    (y1, s1, g1), (y2, s2, g2) = outs
    torch.testing.assert_close(y2, y1, rtol=0, atol=1e-12)
    for a, b in zip(s2, s1):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
    for a, b in zip(g2, g1):
        if a is None or b is None:
            assert (a is None or torch.all(a == 0)) and (b is None or torch.all(b == 0))
        else:
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-11)


def test_lstm_manual_kernel_matches_when_the_ensemble_is_too_wide_to_fuse(monkeypatch):
    """Small ensembles run torch's fused LSTM on block-diagonal weights; wide ones the manual kernel."""
    from rnnmem.train import fastseq

    monkeypatch.setattr(fastseq, "FUSED_MAX_UNITS", 0)
    test_fast_kernels_match_autograd_through_the_step_loop("lstm", 2, [3, 4])
    test_fast_kernels_match_autograd_through_the_step_loop("lstm", 1, None)


def test_unsupported_configurations_fall_back_to_the_step_loop():
    u = cells.build("rnn", 1, 2, nonlinearity="relu", seed=0)
    assert "tanh" in unsupported_reason(u)
    x = torch.randn(5, 1, 1)
    torch.testing.assert_close(fast_forward(u, x)[0], u(x)[0])
    k = cells.build("lstm", 1, 2, convention="keras", seed=0)
    assert "sigmoid" in unsupported_reason(k)


# ------------------------------------------------------------------------------------------ training
SMALL = TrainSettings(max_epochs=14, patience=3, min_delta=1e-4)


def _split():
    return split_series(_series(), 100, 40, 39)


@pytest.mark.parametrize("model", list(MODELS))
def test_a_seed_trained_in_a_batch_equals_the_seed_trained_alone(model):
    split = _split()
    batch = train_series(model, split, [0, 1, 2], K=6, settings=SMALL).table.set_index("seed")
    alone = train_series(model, split, [2], K=6, settings=SMALL).table.set_index("seed")
    for col in ("test_rmse", "test_mae", "val_rmse", "best_val_loss"):
        assert abs(batch.loc[2, col] - alone.loc[2, col]) <= 1e-5 * max(1.0, abs(alone.loc[2, col]))
    for col in ("epochs", "best_epoch", "status"):
        assert batch.loc[2, col] == alone.loc[2, col]


def test_seeds_stop_independently_and_curves_have_their_own_length():
    res = train_series("mrnnf", _split(), [0, 1, 2, 3], K=6, settings=TrainSettings(max_epochs=30, patience=3,
                                                                                      min_delta=1e-3))
    tb = res.table
    assert (tb["status"] == "early_stopped").any()
    assert tb["epochs"].nunique() > 1                 # different seeds stopped at different epochs
    for row in tb.itertuples():
        assert len(res.curves[row.seed]["train_loss"]) == row.epochs
        assert 0 <= row.best_epoch < row.epochs
        vals = res.curves[row.seed]["val_loss"]
        assert vals[row.best_epoch] == pytest.approx(vals.min())
        assert row.best_val_loss == pytest.approx(vals.min())


def test_kept_model_is_the_one_whose_validation_loss_was_best():
    """The final evaluation reruns train -> val with the kept parameters: its validation MSE (on the
    scaled series) must be the best validation loss seen during training."""
    from rnnmem.tasks.series import fit_scaler

    split = _split()
    res = train_series("lstm", split, [5, 6], settings=TrainSettings(max_epochs=15, patience=50))
    sc = fit_scaler(split, "train")
    for row in res.table.itertuples():
        val_mse_scaled = (row.val_rmse / (sc.hi - sc.lo)) ** 2
        assert val_mse_scaled == pytest.approx(row.best_val_loss, rel=1e-4)


def test_fast_and_step_loop_training_agree():
    split = _split()
    a = train_series("mlstm", split, [1], K=6, settings=TrainSettings(max_epochs=8)).table
    b = train_series("mlstm", split, [1], K=6, settings=TrainSettings(max_epochs=8), fast=False).table
    assert a["test_rmse"].iloc[0] == pytest.approx(b["test_rmse"].iloc[0], rel=1e-5)


def test_metrics_are_on_the_original_scale():
    """An affine change of units (x -> 10 x + 5) leaves the scaled problem unchanged: RMSE x 10."""
    x = _series()
    s = TrainSettings(max_epochs=6)
    a = train_series("rnn", split_series(x, 100, 40, 39), [0], settings=s).table.iloc[0]
    b = train_series("rnn", split_series(10 * x + 5, 100, 40, 39), [0], settings=s).table.iloc[0]
    assert b["test_rmse"] == pytest.approx(10 * a["test_rmse"], rel=1e-4)
    assert b["test_mae"] == pytest.approx(10 * a["test_mae"], rel=1e-4)


def test_series_model_layout_and_readouts():
    m = SeriesModel("mrnnf", [0, 1], K=8)
    assert m.readout == "identity" and m.unit.output_size == 1
    y, _ = m(torch.rand(30, 2, 1, 1))
    assert y.shape == (30, 2, 1, 1) and torch.all(y.abs() <= 1)      # tanh output, as in the paper
    lin = SeriesModel("lstm", [0, 1])
    assert lin.W_o.shape == (2, 1, 1) and lin.b_o.shape == (2, 1, 1)
    for p in lin.parameters():
        assert p.shape[0] == 2                                        # a seed dim in every weight
    torch.testing.assert_close(SeriesModel("lstm", [1]).W_o[0], lin.W_o[1])   # member = alone
    assert lin.learned_d() is None and m.learned_d().shape == (2,)


@pytest.mark.parametrize("kwargs, match", [
    ({"model": "gru"}, "unknown model"),
    ({"seeds": [1, 1]}, "distinct"),
])
def test_bad_training_requests_raise_config_errors(kwargs, match):
    args = {"model": "rnn", "seeds": [0]}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=match):
        train_series(args["model"], _split(), args["seeds"], settings=TrainSettings(max_epochs=1))


@pytest.mark.parametrize("kwargs", [{"lr": 0}, {"max_epochs": 0}, {"patience": -1}, {"min_delta": -1.0}])
def test_bad_settings_raise_config_errors(kwargs):
    with pytest.raises(ConfigError):
        TrainSettings(**kwargs)


# ------------------------------------------------------------------------------------------ protocol options
def _rerun_val_mse(split, row, scaler="train"):
    from rnnmem.tasks.series import fit_scaler

    sc = fit_scaler(split, scaler)
    return (row.val_rmse / (sc.hi - sc.lo)) ** 2


def test_keep_after_keeps_the_parameters_one_update_after_the_best_validation_epoch():
    """keep="after" (the published code's deepcopy after optimizer.step()): the kept parameters
    are those the next epoch started from, so rerunning train -> val with them gives that next
    epoch's validation loss, not the best one (keep="before" gives the best one)."""
    split = _split()
    s = TrainSettings(max_epochs=60, patience=8, min_delta=1e-4)
    after = train_series("rnn", split, [0, 1, 2, 3], settings=s, keep="after")
    checked = 0
    for row in after.table.itertuples():
        curve = after.curves[row.seed]["val_loss"]
        if row.best_epoch + 1 < row.epochs:
            assert _rerun_val_mse(split, row) == pytest.approx(curve[row.best_epoch + 1], rel=1e-4)
            assert curve[row.best_epoch + 1] > curve[row.best_epoch]
            checked += 1
    assert checked >= 2                      # measured: all 4 seeds stop after their best epoch
    before = train_series("rnn", split, [0, 1, 2, 3], settings=s, keep="before")
    for row in before.table.itertuples():
        assert _rerun_val_mse(split, row) == pytest.approx(row.best_val_loss, rel=1e-4)
    # same trajectory either way: the bookkeeping changes only which parameters are kept
    for a, b in zip(after.table.itertuples(), before.table.itertuples()):
        assert (a.epochs, a.best_epoch) == (b.epochs, b.best_epoch)
        np.testing.assert_allclose(after.curves[a.seed]["val_loss"], before.curves[b.seed]["val_loss"], rtol=1e-6)


@pytest.mark.parametrize("model", ["lstm", "mrnnf"])
def test_keep_after_a_seed_in_a_batch_equals_the_seed_alone(model):
    """Seeds stop at different epochs (a stopping seed still takes its last update under keep="after")."""
    split = _split()
    stop = TrainSettings(max_epochs=30, patience=3, min_delta=1e-3)
    batch = train_series(model, split, [0, 1, 2, 3], K=6, settings=stop, keep="after").table.set_index("seed")
    assert batch["epochs"].nunique() > 1
    for s in (0, 3):
        alone = train_series(model, split, [s], K=6, settings=stop, keep="after").table.set_index("seed")
        for col in ("test_rmse", "val_rmse", "best_val_loss"):
            assert abs(batch.loc[s, col] - alone.loc[s, col]) <= 1e-5 * max(1.0, abs(alone.loc[s, col]))
        assert batch.loc[s, "epochs"] == alone.loc[s, "epochs"]


def test_keras_init_has_zero_biases_and_glorot_readout():
    m = SeriesModel("lstm", [0, 1], hidden=2, init="keras")
    assert torch.all(m.b_o == 0) and m.W_o.abs().max() <= (6 / 3) ** 0.5
    torch_m = SeriesModel("lstm", [0, 1], hidden=2)
    assert not torch.allclose(m.W_o, torch_m.W_o)
    assert m.unit.describe()["convention"]["init"] == "keras"
    with pytest.raises(ConfigError, match="init"):
        SeriesModel("lstm", [0], init="glorot")
    with pytest.raises(ConfigError, match="keep"):
        train_series("rnn", _split(), [0], settings=TrainSettings(max_epochs=1), keep="later")
