"""Autocomplete model, training loop, checkpoints and evaluation (rnnmem.train.autocomplete)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rnnmem.errors import ConfigError, InputError
from rnnmem.tasks.autocomplete import UNKNOWN, build_dataset, dependency_positions
from rnnmem.tasks.synthetic_text import planted_dependency_text
from rnnmem.train.autocomplete import (
    AutocompleteModel, TrainConfig, dependency_accuracy, evaluate, load_checkpoint, masked_cross_entropy,
    parameter_counts, save_checkpoint, train_autocomplete,
)


@pytest.fixture(scope="module")
def corpus():
    return planted_dependency_text(n_words=8000, vocab_size=60, n_keys=3, distances=(1, 3), rate=0.08, seed=0)


@pytest.fixture(scope="module")
def data(corpus, tmp_path_factory):
    path, _ = corpus.save(tmp_path_factory.mktemp("ac") / "syn.txt")
    # vocab_size 40 < 60 filler words: some <unknown> targets, to exercise masking
    return build_dataset(path, vocab_size=40, max_length=40, cache=False)


def small(data, cell="gru", seed=0, **kw):
    layers = 1 if cell == "nlstm" else 2
    return AutocompleteModel(cell, 12, layers, 8, words=data.words, seed=seed, **kw)


@pytest.mark.parametrize("cell, layers, recurrent", [("gru", 2, 4_323_600), ("lstm", 2, 5_764_800),
                                                     ("nlstm", 1, 5_764_800)])
def test_parameter_counts_match_the_study(cell, layers, recurrent):
    model = AutocompleteModel(cell, 600, layers, 600, "tf1", depth=2)
    assert parameter_counts(model) == {"embedding": 16_200, "recurrent": recurrent, "dense": 9_847_986,
                                       "total": 16_200 + recurrent + 9_847_986}
    assert model.n_words == 2**14 + 2


def test_padding_row_is_a_fixed_zero(data):
    model = small(data)
    e = model.embed(torch.tensor([[0, 1], [0, 5]]))
    assert torch.all(e[:, 0] == 0) and e[0, 1].abs().sum() > 0 and e[1, 1].abs().sum() > 0
    assert model.embedding_matrix().shape == (28, 8) and torch.all(model.embedding_matrix()[0] == 0)
    assert model.embed(torch.zeros(3, 2, dtype=torch.long)).shape == (3, 2, 8)
    with pytest.raises(InputError):
        model.embed(torch.tensor([[28]]))
    with pytest.raises(InputError):
        model.embed(torch.tensor([1, 2]))


def test_model_contract_shapes_and_rebuild(data):
    model = small(data, "nlstm")
    x = model.encode_text(" ab cd").unsqueeze(1)
    out = model(x)
    assert out.shape == (6, 1, data.n_words)
    torch.testing.assert_close(model.from_embedding(model.embed(x)), out)
    again = AutocompleteModel(**model.config())
    torch.testing.assert_close(again(x), out)  # same config (seed included) -> same weights
    assert len(model.suggest(" ab", 3)) == 3 and len(model.suggest(" ab", 3)[0]) == 3


def test_encode_text(data):
    model = small(data)
    assert model.encode_text(" Ab z").tolist() == [1, 2, 3, 1, 27]
    with pytest.raises(InputError, match="'!'"):
        model.encode_text(" hi!")
    assert model.encode_text(" hi!", errors="drop").tolist() == [1, 9, 10]
    with pytest.raises(ConfigError):
        model.encode_text("x", errors="ignore")


def test_bad_model_config(data):
    with pytest.raises(ConfigError):
        AutocompleteModel("nope", 8, 1, 8, words=data.words)
    with pytest.raises(ConfigError):
        AutocompleteModel("gru", 0, 1, 8, words=data.words)
    with pytest.raises(ConfigError):
        AutocompleteModel("gru", 8, 1, 8, words=["a", "b", "c"])
    with pytest.raises(ConfigError):
        AutocompleteModel("gru", 8, 1, 8, words=data.words, n_words=5)


def test_masked_cross_entropy_ignores_padding_and_unknown():
    torch.manual_seed(0)
    logits = torch.randn(5, 3, 7)
    targets = torch.tensor([[2, 0, 1], [3, 4, 0], [1, 1, 6], [5, 0, 0], [2, 2, 2]])
    loss, count = masked_cross_entropy(logits, targets)
    keep = targets > 1
    manual = -torch.log_softmax(logits, -1).gather(-1, targets.unsqueeze(-1)).squeeze(-1)[keep].mean()
    assert int(count) == int(keep.sum()) == 8
    torch.testing.assert_close(loss, manual)
    changed = logits.clone()
    changed[~keep] = 100 * torch.randn_like(changed[~keep])  # masked positions cannot matter
    torch.testing.assert_close(masked_cross_entropy(changed, targets)[0], loss)


def test_training_loss_decreases(data):
    model = small(data)
    res = train_autocomplete(model, data, TrainConfig(steps=40, lr=1e-2, log_every=10, eval_every=40, eval_batches=2))
    log = res.log
    assert list(log["step"]) == [10, 20, 30, 40]
    # Over model seeds 0-5 (x training seeds 0 and s) the mean loss fell by 0.39-0.87 nats from the
    # first ten steps to the last ten (this run, seeds 0/0: 0.55; the old bound 0.5 sat on that edge),
    # and the validation loss ended at 2.62-3.15, 0.58-1.11 below the uniform guess log(n_words) = log(42) = 3.74.
    assert log["train_loss"].iloc[-1] < log["train_loss"].iloc[0] - 0.2, log
    assert np.isfinite(log["val_loss"].iloc[-1]) and log["val_loss"].iloc[-1] < np.log(data.n_words) - 0.3, log


class _StopAt:
    def __init__(self, step):
        self.step = step

    def __call__(self, step, total, info):
        if step == self.step:
            raise KeyboardInterrupt


def test_interrupted_and_resumed_equals_uninterrupted(data, tmp_path):
    cfg = TrainConfig(steps=9, checkpoint_every=3, log_every=2, eval_every=4, eval_batches=1, seed=3)
    full = small(data, seed=1)
    res_full = train_autocomplete(full, data, cfg, out_dir=tmp_path / "full")

    part = small(data, seed=1)
    with pytest.raises(KeyboardInterrupt):
        train_autocomplete(part, data, cfg, out_dir=tmp_path / "part", progress=_StopAt(5))  # mid-epoch stop
    fresh = small(data, seed=1)  # a new process: model rebuilt, state from the checkpoint
    res_part = train_autocomplete(fresh, data, cfg, out_dir=tmp_path / "part")
    assert res_part.resumed_from == 5 and res_part.steps == 9
    for key, value in full.state_dict().items():
        assert torch.equal(value, fresh.state_dict()[key]), key
    cols = ["step", "train_loss", "val_loss", "val_accuracy"]
    pd.testing.assert_frame_equal(res_full.log[cols], res_part.log[cols])
    on_disk = pd.read_csv(tmp_path / "part" / "log.csv")
    np.testing.assert_allclose(on_disk["train_loss"], res_full.log["train_loss"], rtol=1e-12)

    # interrupted inside an update (during the 5th forward pass): resume from the step-3 checkpoint
    mid = small(data, seed=1)
    calls = []

    def hook(module, inputs, output):
        if module.training:
            calls.append(1)
            if len(calls) == 5:
                raise KeyboardInterrupt

    handle = mid.dense.register_forward_hook(hook)
    with pytest.raises(KeyboardInterrupt):
        train_autocomplete(mid, data, cfg, out_dir=tmp_path / "mid")
    handle.remove()
    again = small(data, seed=1)
    res_mid = train_autocomplete(again, data, cfg, out_dir=tmp_path / "mid")
    assert res_mid.resumed_from == 3
    for key, value in full.state_dict().items():
        assert torch.equal(value, again.state_dict()[key]), key
    pd.testing.assert_frame_equal(res_full.log[cols], res_mid.log[cols])

    # extending the run continues from the final checkpoint; changing the recipe is refused
    longer = small(data, seed=1)
    res_longer = train_autocomplete(longer, data, TrainConfig(steps=10, checkpoint_every=3, log_every=2,
                                                              eval_every=4, eval_batches=1, seed=3),
                                    out_dir=tmp_path / "part")
    assert res_longer.resumed_from == 9 and res_longer.steps == 10
    with pytest.raises(ConfigError, match="different data or training options"):
        train_autocomplete(small(data, seed=1), data, TrainConfig(steps=12, lr=0.5, seed=3), out_dir=tmp_path / "part")
    with pytest.raises(ConfigError, match="different model config"):
        train_autocomplete(small(data, seed=2), data, cfg, out_dir=tmp_path / "part")


def test_checkpoint_round_trip_and_errors(data, tmp_path):
    model = small(data, "lstm")
    path = save_checkpoint(model, tmp_path / "m.pt", note="hello")
    loaded = load_checkpoint(path)
    x = model.encode_text(" abc de").unsqueeze(1)
    torch.testing.assert_close(loaded(x), model(x))
    assert loaded.config() == model.config() and not loaded.training
    with pytest.raises(InputError, match="not found"):
        load_checkpoint(tmp_path / "none.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(InputError, match="cannot read"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"format": "other"}, tmp_path / "other.pt")
    with pytest.raises(InputError, match="not an rnnmem autocomplete checkpoint"):
        load_checkpoint(tmp_path / "other.pt")


def test_evaluate_matches_per_observation_reference(data):
    model = small(data, seed=5)
    ev = evaluate(model, data, "test", batch_size=16, max_k=3)
    ce_tok, ce_obs, hit_known, hit_all, n_known, n_all = 0.0, [], 0, 0, 0, 0
    with torch.no_grad():
        for row in data.split_index("test"):
            n = int(data.lengths[row])
            x = torch.as_tensor(np.asarray(data.chars[row, :n]), dtype=torch.long)[:, None]
            y = torch.as_tensor(np.asarray(data.targets[row, :n]), dtype=torch.long)
            logits = model(x)[:, 0]
            ce = -torch.log_softmax(logits, -1)[torch.arange(n), y]
            known = y > UNKNOWN
            pred = logits.argmax(-1)
            if known.any():
                ce_obs.append(float(ce[known].mean()))
            ce_tok += float(ce[known].sum())
            n_known += int(known.sum())
            hit_known += int((pred == y)[known].sum())
            hit_all += int(((pred == y) & known).sum())  # <unknown> targets are misses
            n_all += n
    s = ev.summary
    assert s["known_targets"] == n_known and s["characters"] == n_all
    assert s["cross_entropy"] == pytest.approx(ce_tok / n_known, rel=1e-5)
    assert s["cross_entropy_study"] == pytest.approx(np.mean(ce_obs), rel=1e-5)
    assert s["accuracy"] == pytest.approx(hit_known / n_known)
    assert s["accuracy_study"] == pytest.approx(hit_all / n_all)
    assert s["accuracy"] <= s["top2"] <= s["top3"]
    kc = ev.known_chars
    assert set(kc["variant"]) == {"no_padding", "masked", "study"} and list(kc["k"].unique()) == [0, 1, 2, 3]
    ours = kc[kc["variant"] == "no_padding"]
    assert (ours["top1"] <= ours["top2"]).all() and (ours["top2"] <= ours["top3"]).all()
    # study variant: padding positions added as misses -> more positions, never higher accuracy
    study = kc[kc["variant"] == "study"].set_index("k")
    no_pad = ours.set_index("k")
    assert (study["positions"] >= no_pad["positions"]).all()
    assert (study["top1"] <= no_pad["top1"] + 1e-12).all()
    assert no_pad.loc[0, "positions"] == int((np.asarray(data.chars[data.split_index("test")]) == 1).sum())


def test_study_known_chars_counts_every_position(data):
    model = small(data)
    L = data.max_length
    ev = evaluate(model, data, "test", max_k=L + 1)
    study = ev.known_chars[ev.known_chars["variant"] == "study"]
    assert study["positions"].sum() == len(data.split_index("test")) * L


def test_dependency_accuracy_runs_on_planted_episodes(data, corpus):
    pos = dependency_positions(data, corpus.dependencies, "test")
    acc = dependency_accuracy(small(data), data, pos)
    assert set(acc["gap_words"]) <= {1, 3} and acc["episodes"].sum() == len(pos)
    assert ((acc["accuracy"] >= 0) & (acc["accuracy"] <= 1)).all()


@pytest.mark.cuda
def test_cuda_matches_cpu(data, tmp_path):
    cpu, gpu = small(data, seed=4), small(data, seed=4)
    cfg = TrainConfig(steps=3, eval_every=3, eval_batches=1)
    train_autocomplete(cpu, data, cfg, device="cpu")
    train_autocomplete(gpu, data, cfg, device="cuda", out_dir=tmp_path)
    for key, value in cpu.state_dict().items():
        torch.testing.assert_close(gpu.state_dict()[key].cpu(), value, rtol=1e-4, atol=1e-5)
    assert load_checkpoint(tmp_path / "checkpoint.pt", device="cuda").device.type == "cuda"
    ev_c, ev_g = evaluate(cpu, data, device="cpu"), evaluate(gpu, data, device="cuda")
    assert ev_g.summary["cross_entropy"] == pytest.approx(ev_c.summary["cross_entropy"], rel=1e-4)
