"""Review classification (Zhao et al. 2020): metrics, the classifier, batched seeds, the study and its CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from rnnmem.train.classify import (ClassifySettings, SequenceSet, StackedClassifier, classification_metrics,
                                   train_classifier)


SHARED_DATA = Path(os.environ.get("RNNMEM_SHARED_DATA", Path(__file__).resolve().parents[1].parent / "shared" / "data"))


def _cli(*args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}   # CI has two cores; no oversubscription
    return subprocess.run([sys.executable, "-m", "rnnmem.cli", *args], capture_output=True, text=True, timeout=300,
                          env=env)


# ---------------------------------------------------------------------------------------- metrics
def test_macro_metrics_by_hand():
    m = classification_metrics([0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 2, 0])
    # per class (P, R, F1): 0 (1/2, 1/2, 1/2), 1 (1/2, 1, 2/3), 2 (1, 2/3, 4/5)
    assert m["accuracy"] == pytest.approx(4 / 6)
    assert m["precision"] == pytest.approx((0.5 + 0.5 + 1) / 3)
    assert m["recall"] == pytest.approx((0.5 + 1 + 2 / 3) / 3)
    assert m["f1"] == pytest.approx((0.5 + 2 / 3 + 0.8) / 3)
    # a label only predicted counts with P = R = F1 = 0; labels absent from both are ignored
    m = classification_metrics([0, 0], [0, 3])
    assert (m["precision"], m["recall"], m["f1"]) == pytest.approx((0.5, 0.25, 1 / 3))


# ---------------------------------------------------------------------------------------- the classifier
@pytest.mark.parametrize("first", ["rnn", "lstm", "mrnnf", "mlstmf"])
def test_logits_read_the_last_real_step(first):
    torch.manual_seed(0)
    net = StackedClassifier(first, [3, 4], input_size=3, hidden=6, classes=5, K=4)
    x = torch.randn(12, 4, 3)
    last = torch.tensor([3, 11, 0, 7])
    with torch.no_grad():
        ref = net(x, last)
        after = x.clone()
        for b, lb in enumerate(last.tolist()):
            after[lb + 1:, b] = torch.randn(11 - lb, 3) * 5          # padding content must not matter
        assert ref.shape == (2, 4, 5)
        assert torch.allclose(net(after, last), ref, atol=1e-6)
        at = x.clone()
        at[last, torch.arange(4)] += 1.0                               # the last real token does matter
        assert not torch.allclose(net(at, last), ref, atol=1e-4)


def _toy_data(seed=0, D=3, T=10):
    rng = np.random.default_rng(seed)

    def part(n):
        return SequenceSet(rng.standard_normal((T, n, D)).astype(np.float32), rng.integers(2, T, n),
                           rng.integers(0, 5, n))

    return {"train": part(14), "val": part(6), "test": part(6)}


@pytest.mark.parametrize("first", ["rnn", "mlstmf"])
def test_batched_seeds_match_training_alone(first):
    data = _toy_data()
    st = ClassifySettings(epochs=3, batch_size=8)
    together = train_classifier(first, data, [5, 6, 7], hidden=8, K=4, classes=5, settings=st)
    alone = train_classifier(first, data, [6], hidden=8, K=4, classes=5, settings=st)
    a = together.table.set_index("seed").loc[6]
    b = alone.table.set_index("seed").loc[6]
    for col in ("test_ce", "val_ce", "train_ce", "best_val_ce"):
        assert a[col] == pytest.approx(b[col], rel=1e-5, abs=1e-6)
    assert a["best_epoch"] == b["best_epoch"]
    assert np.allclose(together.curves[6]["val_ce"], alone.curves[6]["val_ce"], rtol=1e-5, atol=1e-6)
    # different seeds really are different models
    t = together.table.set_index("seed")
    assert t.loc[5, "test_ce"] != pytest.approx(t.loc[7, "test_ce"], rel=1e-6)
    assert set(together.table["status"]) == {"ok"}


def test_kept_model_is_the_best_validation_epoch():
    data = _toy_data(1)
    res = train_classifier("lstm", data, [0, 1], hidden=8, classes=5, settings=ClassifySettings(epochs=4, batch_size=8))
    for seed in (0, 1):
        val = res.curves[seed]["val_ce"]
        row = res.table.set_index("seed").loc[seed]
        assert row["best_epoch"] == int(np.argmin(val))
        assert row["val_ce"] == pytest.approx(val.min(), rel=1e-5)   # the restored model reproduces its val loss


# ---------------------------------------------------------------------------------------- study tables
def test_published_comparison_and_welch():
    from rnnmem.studies.zhao_reviews import published_comparison, welch_tests

    rows = []
    for layout, model, accs in [("rnnmem", "lstm", [0.40, 0.42, 0.38]), ("paper", "lstm", [0.30, 0.31, 0.29]),
                                ("rnnmem", "mlstmf", [0.44, 0.46, 0.45]), ("rnnmem", "rnn", [0.30, 0.34, 0.32])]:
        rows += [{"layout": layout, "model": model, "seed": i, "status": "ok", "test_accuracy": a, "test_f1": a / 2}
                 for i, a in enumerate(accs)]
    runs = pd.DataFrame(rows)
    comp = published_comparison(runs).set_index("model")
    lstm = comp.loc["LSTM"]
    assert lstm["published mean"] == 0.3021 and lstm["published best"] == 0.38
    assert lstm["rnnmem mean"] == pytest.approx(0.40)
    assert lstm["gap explained by layout"] == pytest.approx((0.40 - 0.30) / (0.40 - 0.3021))
    assert "gap explained by layout" not in comp.columns or np.isnan(comp.loc["MLSTMF50", "gap explained by layout"])
    tests = welch_tests(runs)
    from scipy import stats

    ref = stats.ttest_ind([0.44, 0.46, 0.45], [0.30, 0.34, 0.32], equal_var=False)
    row = tests[(tests["vs"] == "RNN")].iloc[0]
    assert row["p"] == pytest.approx(ref.pvalue) and row["t"] == pytest.approx(ref.statistic)
    assert row["verdict"].startswith("higher")


# ---------------------------------------------------------------------------------------- end to end
WORDS = ("el artículo presenta una propuesta interesante pero falta validación experimental los resultados "
         "son claros y la redacción es buena aunque el estado del arte es débil").split()


@pytest.fixture()
def reviews20(tmp_path, request):
    """20 Spanish reviews: the first 20 of the shared file when present, else synthetic ones."""
    shared = SHARED_DATA / "zhao2020" / "reviews.json"
    out = {"paper": []}
    if shared.is_file():
        data = json.loads(shared.read_text(encoding="utf-8"))
        n = 0
        for p in data["paper"]:
            take = [r for r in p["review"] if r["lan"] == "es" and r["text"].strip()][:20 - n]
            if take:
                out["paper"].append({"id": p["id"], "review": take})
                n += len(take)
            if n >= 20:
                break
    else:
        rng = np.random.default_rng(0)
        for i in range(20):
            text = " ".join(rng.choice(WORDS, size=int(rng.integers(5, 40))))
            out["paper"].append({"id": i, "review": [{"id": 1, "lan": "es", "text": text.capitalize() + ".",
                                                      "evaluation": str(i % 5 - 2)}]})
    path = tmp_path / "reviews20.json"
    path.write_text(json.dumps(out), encoding="utf-8")
    return path


def test_cli_subset_end_to_end_and_resume(reviews20, tmp_path):
    out = tmp_path / "out"
    proc = _cli("reproduce", "zhao-reviews", "--data", str(reviews20), "--seeds", "3", "--epochs", "2",
                "--split", "12,4,4", "--paper-layout", "--hidden", "16", "--workers", "0", "--out", str(out))
    assert proc.returncode == 0, proc.stderr
    assert "24 runs (24 computed)" in proc.stdout.replace("\n", " ")
    md = (out / "zhao_reviews_report.md").read_text()
    assert "Tables 5-6" in md and "0.2836" in md and "382 reviews, 85/58/59/81/99" in md
    assert (out / "zhao_reviews_report.html").is_file() and (out / "zhao_reviews_boxplot.png").is_file()
    runs = pd.read_csv(out / "zhao_reviews_runs.csv")
    assert len(runs) == 24 and set(runs["layout"]) == {"rnnmem", "paper"}
    assert runs["test_accuracy"].between(0, 1).all() and (runs["test_ce"] > 0).all()
    assert set(runs["epochs"]) == {2} and set(runs["seed"]) == {0, 1, 2}
    # the two layouts feed different sequences, so the same seed gives different results
    piv = runs.pivot_table(index=["model", "seed"], columns="layout", values="test_ce")
    assert not np.allclose(piv["rnnmem"], piv["paper"])
    # rerun: everything comes from the store
    from rnnmem.studies.zhao_reviews import reproduce

    res = reproduce(out, reviews20, seeds=3, epochs=2, split=(12, 4, 4), paper_layout=True, hidden=16, workers=0,
                    progress=False)
    assert res["computed"] == 0 and res["runs"] == 24


def test_cli_bad_input_is_one_red_line(tmp_path, reviews20):
    proc = _cli("reproduce", "zhao-reviews", "--data", str(tmp_path / "missing.json"), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "reviews file not found" in proc.stderr
    assert "Traceback" not in proc.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"paper": [{"id": 1, "review": [{"lan": "es", "text": "hola"}]}]}), encoding="utf-8")
    proc = _cli("reproduce", "zhao-reviews", "--data", str(bad), "--out", str(tmp_path / "o"))
    assert proc.returncode == 2 and "lacks the field(s) evaluation" in proc.stderr
    from rnnmem.errors import ConfigError
    from rnnmem.studies.zhao_reviews import reproduce

    with pytest.raises(ConfigError, match="--split"):
        reproduce(tmp_path / "o", reviews20, seeds=1, epochs=1, workers=0, progress=False)   # 282/50/50 != 20
