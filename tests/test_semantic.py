"""Semantic-space indicators (rnnmem.probes.semantic): the QP solver against scipy, the two
reference networks of the issue (running mean; last word only), the readout, recall, area and
the recommended training length."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch

from rnnmem.errors import ConfigError, InputError
from rnnmem.probes import semantic as S


def unit_vectors(rng, n, d):
    v = rng.normal(size=(n, d))
    return v / np.linalg.norm(v, axis=1, keepdims=True)


# --------------------------------------------------------------------------- simplex projection
def _bisection_projection(v, iters=200):
    lo, hi = v.min() - 1, v.max()
    for _ in range(iters):
        mid = (lo + hi) / 2
        if np.clip(v - mid, 0, None).sum() > 1:
            lo = mid
        else:
            hi = mid
    return np.clip(v - (lo + hi) / 2, 0, None)


def test_simplex_projection_matches_bisection_and_respects_mask():
    rng = np.random.default_rng(0)
    v = rng.normal(size=(20, 7)) * 3
    w = S.project_simplex(torch.tensor(v)).numpy()
    for i in range(20):
        np.testing.assert_allclose(w[i], _bisection_projection(v[i]), atol=1e-10)
    assert np.allclose(w.sum(1), 1) and (w >= 0).all()
    mask = torch.tensor(rng.random((20, 7)) < 0.6)
    mask[:, 0] = True
    wm = S.project_simplex(torch.tensor(v), mask).numpy()
    for i in range(20):
        m = mask[i].numpy()
        np.testing.assert_allclose(wm[i, m], _bisection_projection(v[i, m]), atol=1e-10)
        assert (wm[i, ~m] == 0).all()


# --------------------------------------------------------------------------- QP vs scipy
@pytest.mark.parametrize("n,d", [(6, 3), (12, 20), (25, 8)])
@pytest.mark.parametrize("method", ["nnls", "slsqp"])
def test_qp_agrees_with_scipy(n, d, method):
    rng = np.random.default_rng(n * 100 + d)
    B = 5
    X = rng.normal(size=(B, n, d))
    z = rng.normal(size=(B, d)) * 0.7
    lengths = rng.integers(2, n + 1, size=B)
    lengths[0] = n
    # eps > 0: strictly convex, so the weights themselves are unique and comparable
    f = S.simplex_qp(X, z, lengths, eps=1e-3)
    assert f.converged
    # eps = 0: the plain distance (weights may be non-unique when n > d + 1)
    f0 = S.simplex_qp(X, z, lengths, eps=0.0)
    for b in range(B):
        m = int(lengths[b])
        lam = S.scipy_simplex_qp(X[b, :m], z[b], eps=1e-3, method=method)
        np.testing.assert_allclose(f.weights[b, :m].numpy(), lam, atol=1e-4)
        assert (f.weights[b, m:] == 0).all()
        lam0 = S.scipy_simplex_qp(X[b, :m], z[b], eps=0.0, method=method)
        ref = np.linalg.norm(X[b, :m].T @ lam0 - z[b])
        assert abs(f0.distance[b].item() - ref) < 1e-4


def test_qp_float32_and_bad_input():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(3, 8, 4))
    z = rng.normal(size=(3, 4))
    f = S.simplex_qp(X, z, dtype="float32", eps=1e-3)
    ref = S.simplex_qp(X, z, eps=1e-3)
    assert f.weights.dtype == torch.float32
    np.testing.assert_allclose(f.weights.numpy(), ref.weights.numpy(), atol=1e-3)
    with pytest.raises(InputError, match="mapped must be"):
        S.simplex_qp(X, z[:, :3])
    with pytest.raises(InputError, match="no words"):
        S.simplex_qp(np.zeros((2, 0, 4)), np.zeros((2, 4)))
    with pytest.raises(InputError, match="NaN"):
        S.simplex_qp(np.full((1, 3, 2), np.nan), np.zeros((1, 2)))
    with pytest.raises(InputError, match="lengths"):
        S.simplex_qp(X, z, lengths=[9, 1, 1])
    with pytest.raises(ConfigError, match="eps"):
        S.simplex_qp(X, z, eps=-1)


# --------------------------------------------------------------------------- the two reference networks
def _running_mean_network(x: torch.Tensor) -> torch.Tensor:
    """A recurrent network whose state is exactly the running mean: h_t = h_{t-1} + (x_t - h_{t-1}) / t."""
    h = torch.zeros_like(x[:, 0])
    out = []
    for t in range(x.shape[1]):
        h = h + (x[:, t] - h) / (t + 1)
        out.append(h)
    return torch.stack(out, 1)


@pytest.mark.parametrize("n,d", [(8, 16), (30, 6)])  # d >= n (unique weights) and d < n (min-norm tie-break)
def test_running_mean_state_is_on_the_hull_with_uniform_profile(n, d):
    rng = np.random.default_rng(n + d)
    B = 40
    words = torch.tensor(np.stack([unit_vectors(rng, n, d) for _ in range(B)]))
    states = _running_mean_network(words)[:, -1]  # [B, d] after n words
    ro = S.fit_mean_readout(states, words)  # the readout: ridge from h_n to the running mean
    z = ro(states)
    f = S.simplex_qp(words, z, eps=1e-6)
    dist = S.hull_distance(fit=f)
    assert dist["distance"].max() < 1e-5
    prof = S.memory_profile(fit=f)
    np.testing.assert_allclose(prof["weight"], 1.0 / n, atol=1e-4)
    assert set(prof["lag"]) == set(range(n))
    ml = S.memory_length(prof, q=0.55)
    assert (ml["memory_length"] == math.ceil(0.55 * n)).all()
    assert np.allclose(ml["coverage"], 1.0)


def test_last_word_state_puts_all_weight_at_lag_zero():
    rng = np.random.default_rng(3)
    B, n, d = 30, 20, 8  # more words than dimensions: unit vectors are still all extreme points
    words = np.stack([unit_vectors(rng, n, d) for _ in range(B)])
    state = words[:, -1]  # the network keeps only the word just read (its state is that point)
    prof = S.memory_profile(words, state, eps=1e-6)
    lag0 = prof[prof["lag"] == 0]["weight"].to_numpy()
    assert lag0.min() > 1 - 1e-3
    assert prof[prof["lag"] > 0]["weight"].max() < 1e-3
    assert (S.memory_length(prof, q=0.9)["memory_length"] == 1).all()
    assert S.hull_distance(words, state)["distance"].max() < 1e-5


def test_profile_with_padding_and_mid_lag_memory():
    """A state holding the mean of the words at lags 2..4 has its weight exactly there."""
    rng = np.random.default_rng(4)
    n, d = 12, 16
    words = np.stack([unit_vectors(rng, n, d) for _ in range(6)])
    lengths = np.array([12, 12, 10, 9, 8, 12])
    z = np.stack([words[b, L - 5:L - 2].mean(0) for b, L in enumerate(lengths)])  # lags 2, 3, 4
    prof = S.memory_profile(words, z, lengths, eps=1e-8)
    assert (prof.groupby("prefix")["n"].first().to_numpy() == lengths).all()
    mean_w = prof.groupby("lag")["weight"].mean()
    np.testing.assert_allclose(mean_w.loc[[2, 3, 4]], 1 / 3, atol=1e-4)
    assert mean_w.drop([2, 3, 4]).max() < 1e-4
    assert (S.memory_length(prof, q=0.9)["memory_length"] == 5).all()


def test_hull_distance_of_a_point_outside_and_baseline_score():
    # three points of a triangle in the plane; the state lies 0.5 above the plane's hull
    tri = np.array([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    df = S.hull_distance(tri, np.array([[0.2, 0.2, 0.5]]), baseline=np.array([[0.2, 0.2, 1.0]]))
    assert df["distance"].iloc[0] == pytest.approx(0.5, abs=1e-6)
    assert df["baseline_distance"].iloc[0] == pytest.approx(1.0, abs=1e-6)
    assert df["hull_score"].iloc[0] == pytest.approx(0.5, abs=1e-5)
    # outside in-plane: closest point is the vertex (1, 0, 0)
    df = S.hull_distance(tri, np.array([[2.0, -1.0, 0.0]]))
    assert df["distance"].iloc[0] == pytest.approx(math.sqrt(2), abs=1e-6)


# --------------------------------------------------------------------------- readout and decoders
def test_ridge_matches_normal_equations_and_picks_small_penalty_for_clean_data():
    rng = np.random.default_rng(5)
    N, p, q = 200, 6, 3
    x = rng.normal(size=(N, p))
    W = rng.normal(size=(p, q))
    y = x @ W + 0.3 + 0.01 * rng.normal(size=(N, q))
    r = S.fit_ridge(x, y)
    a = r.alpha.item()
    xc, yc = x - x.mean(0), y - y.mean(0)
    ref = np.linalg.solve(xc.T @ xc + a * np.eye(p), xc.T @ yc)
    np.testing.assert_allclose(r.weight.numpy(), ref, rtol=1e-8, atol=1e-10)
    assert r.r2.item() > 0.999
    np.testing.assert_allclose(r(x).numpy(), x @ W + 0.3, atol=0.01)
    # pure noise: GCV chooses heavy shrinkage
    noise = S.fit_ridge(x, rng.normal(size=(N, 1)))
    assert noise.alpha.item() > 100 * a


def test_lag_decoders_recall_a_delay_line():
    """A state that stores the last 3 words exactly recalls lags 0-2 and nothing beyond."""
    rng = np.random.default_rng(6)
    V, d, n, N = 40, 10, 8, 400
    vocab = unit_vectors(rng, V, d)
    ids = rng.integers(0, V, size=(N, n))
    vec = vocab[ids]  # [N, n, d]
    state = vec[:, -3:].reshape(N, -1)  # delay line of length 3
    dec = S.fit_lag_decoders(state, vec)
    decoded = dec(state).reshape(N, n, d)  # lag-major
    targets = ids[:, ::-1]  # lag k -> word n-1-k
    rec = S.recall_at_lag(decoded, targets.copy(), vocab)
    assert (rec.loc[rec["lag"] <= 2, "recall"] == 1).all()
    assert (rec.loc[rec["lag"] > 2, "recall"] < 0.25).all()
    assert (rec["chance"] > 0).all() and (rec["chance"] < 0.2).all()


# --------------------------------------------------------------------------- retained area
def test_retained_area_ratio():
    square = np.array([[[0.0, 0], [1, 0], [1, 1], [0, 1], [0.5, 0.5]]])
    full = np.ones((1, 5), bool)
    assert S.retained_area(square, full)["area_ratio"].iloc[0] == pytest.approx(1.0)
    half = np.array([[True, True, True, False, False]])
    assert S.retained_area(square, half)["area_ratio"].iloc[0] == pytest.approx(0.5)
    one = np.array([[True, False, False, False, False]])
    assert S.retained_area(square, one)["area_ratio"].iloc[0] == 0.0
    line = np.array([[[0.0, 0], [1, 1], [2, 2]]])
    assert np.isnan(S.retained_area(line, np.ones((1, 3), bool))["area_ratio"].iloc[0])
    # projected from d dimensions with a PCA plane
    rng = np.random.default_rng(7)
    vocab = rng.normal(size=(50, 5))
    plane = S.pca_plane(vocab)
    pts = vocab[rng.integers(0, 50, size=(3, 10))]
    df = S.retained_area(pts, np.ones((3, 10), bool), plane=plane)
    assert np.allclose(df["area_ratio"], 1.0)
    with pytest.raises(ConfigError, match="plane"):
        S.retained_area(pts, np.ones((3, 10), bool))


# --------------------------------------------------------------------------- recommended length
def _curves(unit, T, values):
    return pd.DataFrame({"unit": unit, "train_length": T, "n": [5, 10, 25, 50],
                         "hull_score": values, "recall_score": 0.9, "coverage": 1.0, "area_ratio": 0.9})


def test_recommended_length_ok_censored_and_none():
    ind = pd.concat([
        _curves("lstm", 10, [0.9, 0.9, 0.9, 0.2]), _curves("lstm", 25, [0.9, 0.9, 0.8, 0.3]),
        _curves("lstm", 50, [0.9, 0.9, 0.4, 0.3]),  # fails at 25 < 50
        _curves("gru", 10, [0.9] * 4), _curves("gru", 25, [0.9] * 4), _curves("gru", 50, [0.9] * 4),
        _curves("rnn", 10, [0.1] * 4), _curves("rnn", 25, [0.1] * 4), _curves("rnn", 50, [0.1] * 4),
    ])
    rec = S.recommended_length(ind).set_index("unit")
    assert rec.loc["lstm", "recommended_length"] == 25 and rec.loc["lstm", "status"] == "ok"
    assert rec.loc["lstm", "limited_by"] == "hull_score"
    assert rec.loc["gru", "recommended_length"] == 50 and rec.loc["gru", "status"] == "censored"
    assert np.isnan(rec.loc["rnn", "recommended_length"]) and rec.loc["rnn", "status"] == "none"
    with pytest.raises(ConfigError, match="unknown indicators"):
        S.recommended_length(ind, {"nope": 1.0})
