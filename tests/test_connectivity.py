"""Connectivity probe: batched VJPs against the naive T-backward loop and finite differences."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from rnnmem.errors import ConfigError, InputError
from rnnmem.probes.connectivity import (
    connectivity,
    connectivity_matrix,
    connectivity_naive,
    decay_profile,
    find_readout,
    top_k,
)
from rnnmem.train.autocomplete import AutocompleteModel

TEXT = " the cat sat on a mat"
WORDS = ["<eos>", "<unknown>", "the", "cat", "sat", "on", "a", "mat", "dog"]


def small_model(cell="gru", dtype="float64", seed=0, layers=2):
    return AutocompleteModel(cell=cell, hidden=7, layers=1 if cell == "nlstm" else layers, embedding=5,
                             convention="tf1", words=WORDS, dtype=dtype, seed=seed)


def rel_err(a, b):
    return np.abs(a - b).max() / np.abs(b).max()


@pytest.fixture(scope="module")
def gru():
    return small_model("gru")


@pytest.fixture(scope="module")
def gru_naive(gru):
    return connectivity_naive(gru, TEXT, normalize=False)


@pytest.mark.parametrize("method", ["vmap", "replicate"])
@pytest.mark.parametrize("shortcut,causal,chunk", [(True, True, 4), (False, False, 5), (True, False, 32),
                                                   (False, True, 1)])
def test_batched_matches_naive_loop(gru, gru_naive, method, shortcut, causal, chunk):
    res = connectivity_matrix(gru, TEXT, normalize=False, chunk=chunk, method=method, shortcut=shortcut,
                              causal=causal)
    assert res.config["shortcut"] == ("linear readout" if shortcut else "none")
    assert rel_err(res.raw, gru_naive.raw) < 1e-5
    assert np.allclose(res.raw, gru_naive.raw, rtol=1e-5, atol=1e-12)
    np.testing.assert_array_equal(res.targets, gru_naive.targets)


@pytest.mark.parametrize("cell", ["lstm", "nlstm"])
def test_other_cells_match_naive(cell):
    model = small_model(cell, seed=3)
    res = connectivity_matrix(model, TEXT[:12], normalize=False, chunk=6)
    ref = connectivity_naive(model, TEXT[:12], normalize=False)
    assert rel_err(res.raw, ref.raw) < 1e-5


@pytest.mark.parametrize("segment", [1, 4, 32])
@pytest.mark.parametrize("group", [5, 256])
def test_sweep_matches_naive_loop(gru, gru_naive, segment, group, monkeypatch):
    import rnnmem.probes.connectivity as C

    monkeypatch.setattr(C, "SWEEP_GROUP", group)
    calls = []
    res = connectivity_matrix(gru, TEXT, normalize=False, chunk=segment, method="sweep",
                              progress=lambda done, total: calls.append((done, total)))
    assert res.config["method"].startswith("batched adjoint sweep")
    assert np.allclose(res.raw, gru_naive.raw, rtol=1e-5, atol=1e-12)
    assert calls and calls[-1][0] == calls[-1][1]


@pytest.mark.parametrize("cell,convention", [("lstm", "torch"), ("lstm", "tf1"), ("nlstm", "tf1"), ("rnn", "torch")])
def test_sweep_other_cores_match_naive(cell, convention):
    # torch-convention LSTM runs torch's fused kernel segment by segment: the graphs of earlier
    # segments must stay valid while later segments run.
    model = AutocompleteModel(cell=cell, hidden=6, layers=1 if cell == "nlstm" else 2, embedding=5,
                              convention=convention, words=WORDS, dtype="float64", seed=2)
    res = connectivity_matrix(model, TEXT, normalize=False, chunk=3, method="sweep")
    assert res.config["method"].startswith("batched adjoint sweep")
    ref = connectivity_naive(model, TEXT, normalize=False)
    assert rel_err(res.raw, ref.raw) < 1e-5


def test_auto_falls_back_to_vmap_and_sweep_says_what_it_needs(gru):
    assert connectivity_matrix(gru, TEXT, shortcut=False).config["method"].startswith("batched vjp (vmap")
    assert connectivity_matrix(gru, TEXT, causal=False).config["method"].startswith("batched vjp (vmap")
    with pytest.raises(ConfigError, match="recurrent core"):
        connectivity_matrix(gru, TEXT, method="sweep", shortcut=False)


def _fd_onehot_gradient(model, ids, t, t_out, k, eps=1e-6):
    """Central differences of logit[t_out, k] along each one-hot direction at step t: feeding
    o_t + h * u_c changes the embedding by h * W[c] (W = the embedding matrix). All 2C
    perturbed sequences run as one batch."""
    W = model.embedding_matrix().detach()
    C = W.shape[0]
    e = model.embed(ids[:, None]).detach().repeat(1, 2 * C, 1)  # [T, 2C, E]
    e[t, :C] += eps * W
    e[t, C:] -= eps * W
    with torch.no_grad():
        z = model.from_embedding(e)[t_out, :, k]
    return (z[:C] - z[C:]) / (2 * eps)


def test_matches_finite_differences_through_the_embedding(gru):
    res = connectivity_matrix(gru, TEXT, normalize=False, chunk=8)
    ids = gru.encode_text(TEXT)
    for t, t_out in [(0, 0), (1, 6), (5, 6), (3, 15), (10, len(TEXT) - 1), (0, len(TEXT) - 1)]:
        g = _fd_onehot_gradient(gru, ids, t, t_out, int(res.targets[t_out]))
        fd = float((g**2).sum())
        assert res.raw[t, t_out] == pytest.approx(fd, rel=1e-5, abs=1e-14), (t, t_out)
    # the padding character's one-hot entry is zero (its embedding row is fixed at zero)
    assert g[0] == 0.0


def test_embedding_level_gradient_and_l2_norm(gru):
    sq = connectivity_matrix(gru, TEXT, normalize=False, at="embedding")
    l2 = connectivity_matrix(gru, TEXT, normalize=False, at="embedding", norm="l2")
    np.testing.assert_allclose(l2.raw, np.sqrt(sq.raw), rtol=1e-12)
    ids = gru.encode_text(TEXT)
    e = gru.embed(ids[:, None]).detach().clone().requires_grad_(True)
    t_out = 12
    z = gru.from_embedding(e)[t_out, 0, int(sq.targets[t_out])]
    (g,) = torch.autograd.grad(z, e)
    np.testing.assert_allclose(sq.raw[:, t_out], (g[:, 0] ** 2).sum(-1).numpy(), rtol=1e-10, atol=1e-18)
    onehot = connectivity_matrix(gru, TEXT, normalize=False)
    assert not np.allclose(onehot.raw, sq.raw)  # the embedding matrix changes the numbers


def test_causality_exactly_zero_from_the_model(gru):
    res = connectivity_matrix(gru, TEXT, normalize=False, causal=False, chunk=7)
    T = len(TEXT)
    future = np.tril(np.ones((T, T), dtype=bool), -1)  # t > t~
    assert np.all(res.raw[future] == 0.0)
    assert np.all(res.raw[~future] > 0.0)
    assert len(res.frame()) == T * T  # non-causal mode keeps every pair


def test_normalisation_by_the_max_over_t(gru, gru_naive):
    res = connectivity_matrix(gru, TEXT)
    np.testing.assert_allclose(res.matrix.max(axis=0), 1.0)
    np.testing.assert_allclose(res.matrix, gru_naive.raw / gru_naive.raw.max(axis=0, keepdims=True), rtol=1e-5)


def test_targets_given_class_and_predicted(gru):
    T = len(TEXT)
    per_step = np.arange(T) % len(WORDS)
    a = connectivity_matrix(gru, TEXT, targets=per_step, normalize=False)
    np.testing.assert_array_equal(a.targets, per_step)
    b = connectivity_naive(gru, TEXT, targets=per_step, normalize=False)
    assert rel_err(a.raw, b.raw) < 1e-5
    c = connectivity_matrix(gru, TEXT, targets="cat")
    assert set(c.targets) == {WORDS.index("cat")}
    d = connectivity_matrix(gru, TEXT, targets=4)
    assert set(d.targets) == {4}
    pred = connectivity_matrix(gru, TEXT)  # top-1, the padding class <eos> never chosen
    logits = gru(gru.encode_text(TEXT)[:, None])[:, 0].detach()
    logits[:, 0] = -torch.inf
    np.testing.assert_array_equal(pred.targets, logits.argmax(-1).numpy())
    assert [s[0][0] for s in top_k(pred.logits, 3, WORDS)] == list(pred.targets)


def test_character_ids_and_text_agree(gru):
    a = connectivity_matrix(gru, TEXT, normalize=False)
    b = connectivity_matrix(gru, gru.encode_text(TEXT), normalize=False)
    np.testing.assert_array_equal(a.raw, b.raw)
    assert b.tokens == list(TEXT)


class _SeqModel(nn.Module):
    """A plain sequence model: x[T, B, I] -> logits[T, B, V] (torch.nn.LSTM + linear readout)."""

    def __init__(self, I=3, H=6, V=4):
        super().__init__()
        torch.manual_seed(0)
        self.rnn = nn.LSTM(I, H, num_layers=2, dtype=torch.float64)
        self.out = nn.Linear(H, V, dtype=torch.float64)

    def forward(self, x):
        return self.out(self.rnn(x)[0])


def test_any_sequence_module_with_float_input():
    model = _SeqModel()
    x = torch.randn(12, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    assert find_readout(model, x[:2, None]) is model.out
    res = connectivity_matrix(model, x, targets=2, normalize=False, chunk=5)
    assert res.config["at"] == "input" and res.config["protocol"] == "module(x[T,B,I])"
    assert res.config["method"].startswith("hand-derived batched adjoint sweep")  # model.rnn: torch.nn.LSTM
    ref = connectivity_naive(model, x, targets=2, normalize=False)
    assert rel_err(res.raw, ref.raw) < 1e-5
    eps, t, t_out = 1e-6, 4, 9
    fd = torch.zeros(3, dtype=torch.float64)
    with torch.no_grad():
        for i in range(3):
            xp, xm = x.clone(), x.clone()
            xp[t, i] += eps
            xm[t, i] -= eps
            fd[i] = (model(xp[:, None])[t_out, 0, 2] - model(xm[:, None])[t_out, 0, 2]) / (2 * eps)
    assert res.raw[t, t_out] == pytest.approx(float((fd**2).sum()), rel=1e-5)


def test_dtype_copy_and_the_model_is_left_as_it_was():
    model = small_model(dtype="float32").train()
    flags = [p.requires_grad for p in model.parameters()]
    res = connectivity_matrix(model, TEXT, dtype="float64", normalize=False)
    assert res.config["dtype"] == "float64"
    assert model.training and [p.requires_grad for p in model.parameters()] == flags
    assert next(model.parameters()).dtype == torch.float32
    ref32 = connectivity_matrix(model, TEXT, normalize=False)
    assert ref32.config["dtype"] == "float32"
    assert rel_err(ref32.raw, res.raw) < 1e-4


def test_frame_and_decay_profile(gru):
    res = connectivity_matrix(gru, TEXT)
    df = connectivity(gru, TEXT)
    T = len(TEXT)
    assert len(df) == T * (T + 1) // 2
    assert {"t", "t_out", "lag", "connectivity", "raw", "char", "char_out", "target", "target_word"} <= set(df.columns)
    assert (df["lag"] == df["t_out"] - df["t"]).all() and (df["lag"] >= 0).all()
    np.testing.assert_allclose(df["connectivity"], res.matrix[df["t"], df["t_out"]])
    assert df.attrs["config"]["norm"] == "sq_l2" and df.attrs["config"]["normalize"] is True
    prof = decay_profile(res)
    for lag in (0, 3, T - 1):
        vals = np.array([res.matrix[t, t + lag] for t in range(T - lag)])
        row = prof.loc[prof["lag"] == lag].iloc[0]
        assert row["mean"] == pytest.approx(vals.mean()) and row["n"] == len(vals)
    pooled = decay_profile([res, df])
    assert (pooled["n"] == 2 * prof["n"]).all() and pooled.attrs["config"]["sequences"] == 2


def test_bad_input_raises_one_clear_error(gru):
    with pytest.raises(ConfigError, match="norm"):
        connectivity_matrix(gru, TEXT, norm="l1")
    with pytest.raises(ConfigError, match="chunk"):
        connectivity_matrix(gru, TEXT, chunk=0)
    with pytest.raises(ConfigError, match="method"):
        connectivity_matrix(gru, TEXT, method="loop")
    with pytest.raises(InputError, match="alphabet"):
        connectivity_matrix(gru, " the cat!")
    with pytest.raises(InputError, match="one class per step"):
        connectivity_matrix(gru, TEXT, targets=[2, 3])
    with pytest.raises(ConfigError, match="not one of the model's words"):
        connectivity_matrix(gru, TEXT, targets="zebra")
    with pytest.raises(InputError, match="empty"):
        connectivity_matrix(gru, "")
    with pytest.raises(InputError, match="float input"):
        connectivity_matrix(_SeqModel(), torch.zeros(5, 3, dtype=torch.long))
