"""The review-classification data: cleaning, loading, errors, split, embedding, padding, layouts."""

from __future__ import annotations

import json

import numpy as np
import pytest

from rnnmem.errors import ConfigError, InputError
from rnnmem.tasks import reviews as R


def _write(path, papers):
    path.write_text(json.dumps({"paper": papers}), encoding="utf-8")
    return path


def _review(text, ev, lan="es", rid=1):
    return {"id": rid, "lan": lan, "text": text, "evaluation": str(ev), "confidence": "3"}


@pytest.fixture()
def small_json(tmp_path):
    papers = [
        {"id": 1, "review": [_review("El artículo (muy) bueno, y [claro].", 2, rid=1),
                             _review("Paper in English.", -1, lan="en", rid=2),
                             _review("  ... ¿? -- ", 0, rid=3)]},
        {"id": 2, "review": [_review("Falta validación: ¡nada! \"citas\" -- sección 3", -2, rid=1),
                             _review("Se acepta.", 1, rid=2)]},
    ]
    return _write(tmp_path / "reviews.json", papers)


def test_clean_text_removes_punctuation_and_brackets():
    assert R.clean_text("El Artículo (muy) bueno, y [claro]. ¿Por qué? «sí» {x}") == \
        "el artículo muy bueno y claro por qué sí x"
    assert R.clean_text("socio-económico\tfin") == "socio económico fin"
    assert R.clean_text(" .,;: ") == ""


def test_load_reviews_keeps_spanish_nonempty_and_labels(small_json):
    fr = R.load_reviews(small_json)
    assert list(fr["label"]) == [4, 0, 3]                       # evaluation + 2, file order
    assert list(fr["text"]) == ["el artículo muy bueno y claro", "falta validación nada citas sección 3", "se acepta"]
    assert fr.attrs["dropped_empty"] == 1                       # the review with punctuation only
    assert fr.attrs["languages"] == {"es": 4, "en": 1}
    assert R.class_counts(fr) == [1, 0, 0, 1, 1]
    with pytest.raises(InputError, match="382"):
        R.check_published_counts(fr)


@pytest.mark.parametrize("content, match", [
    (None, "not found"),
    ("{not json", "not valid JSON"),
    ("[1, 2]", "'paper' list"),
    (json.dumps({"papers": []}), "'paper' list"),
    (json.dumps({"paper": [{"id": 1}]}), "no 'review' list"),
    (json.dumps({"paper": [{"id": 1, "review": [{"lan": "es", "text": "hola"}]}]}), "lacks the field"),
    (json.dumps({"paper": [{"id": 1, "review": [{"lan": "es", "text": "hola", "evaluation": "5"}]}]}), "outside -2..2"),
    (json.dumps({"paper": [{"id": 1, "review": [{"lan": "es", "text": "hola", "evaluation": "x"}]}]}), "not an integer"),
    (json.dumps({"paper": [{"id": 1, "review": [{"lan": "en", "text": "hi", "evaluation": "1"}]}]}), "no reviews in"),
])
def test_bad_input_is_one_clear_error(tmp_path, content, match):
    path = tmp_path / "r.json"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=match):
        R.load_reviews(path)


def test_split_is_the_seeded_permutation():
    idx = R.split_indices(20, 12, 4, 4, seed=0)
    perm = np.random.RandomState(0).permutation(20)
    assert np.array_equal(np.concatenate([idx["train"], idx["val"], idx["test"]]), perm)
    assert [len(idx[k]) for k in ("train", "val", "test")] == [12, 4, 4]
    other = R.split_indices(20, 12, 4, 4, seed=1)
    assert not np.array_equal(other["train"], idx["train"])
    with pytest.raises(ConfigError, match="adding up|add up"):
        R.split_indices(20, 12, 4, 5)


def test_encode_pads_and_truncates(small_json):
    from rnnmem.tasks.embeddings import Embedding

    fr = R.load_reviews(small_json)
    words = sorted({w for t in fr["text"] for w in t.split()})
    emb = Embedding(words, np.arange(1, len(words) + 1, dtype=np.float64)[:, None] * np.ones((1, 2)))
    x, last = R.encode_reviews(fr, emb, pad=4)
    assert x.shape == (3, 4, 2) and x.dtype == np.float32
    assert list(last) == [3, 3, 1]                  # 6 words -> truncated; 2 words -> index 1
    first = fr["text"].iloc[0].split()
    assert np.allclose(x[0, :, 0], [emb.index[w] + 1 for w in first[:4]])
    assert np.all(x[2, 2:] == 0)                    # post-padding with zero vectors


def test_layouts_transpose_and_published_reshape():
    N, T, D = 3, 5, 2
    x = np.arange(N * T * D, dtype=np.float32).reshape(N, T, D)
    good = R.to_time_major(x, "rnnmem")
    assert np.array_equal(good[:, 1], x[1])          # sequence 1 is review 1
    bad = R.to_time_major(x, "paper")
    for t in range(T):
        for n in range(N):                           # token (t*N + n) mod T of review (t*N + n) // T
            k = t * N + n
            assert np.array_equal(bad[t, n], x[k // T, k % T])
    assert not np.array_equal(bad[:, 1], x[1])
    with pytest.raises(ConfigError, match="layout"):
        R.to_time_major(x, "keras")


def test_embedding_is_seeded(small_json):
    fr = R.load_reviews(small_json)
    spec = R.EmbeddingSpec(dim=4, window=3, epochs=2, seed=7)
    a, b = R.review_embedding(fr, spec), R.review_embedding(fr, spec)
    c = R.review_embedding(fr, R.EmbeddingSpec(dim=4, window=3, epochs=2, seed=8))
    assert a.words == b.words and np.array_equal(a.vectors, b.vectors)
    assert not np.allclose(a.vectors, c.vectors)
    assert a.dim == 4 and "artículo" in a.index


def test_majority_baseline_counts():
    import pandas as pd

    fr = pd.DataFrame({"label": [4, 4, 4, 0, 1, 4, 0, 0]})
    idx = {"train": np.array([0, 1, 3]), "val": np.array([4]), "test": np.array([5, 6, 7])}
    base = R.majority_baseline(fr, idx)
    assert base["whole_set_rate"] == pytest.approx(4 / 8)
    assert base["train_majority_class"] == 4
    assert base["test_accuracy"] == pytest.approx(1 / 3)


def test_published_counts_on_the_shared_file(shared_data):
    path = shared_data / "zhao2020" / "reviews.json"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    fr = R.load_reviews(path)
    assert len(fr) == 382
    assert R.class_counts(fr) == [85, 58, 59, 81, 99]
    R.check_published_counts(fr)
    idx = R.split_indices(len(fr), *R.PAPER_SPLIT)
    assert [len(idx[k]) for k in ("train", "val", "test")] == [282, 50, 50]
    assert R.majority_baseline(fr, idx)["whole_set_rate"] == pytest.approx(0.259, abs=5e-4)   # the paper's 25.9 %
