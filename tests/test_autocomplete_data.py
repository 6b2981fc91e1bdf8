"""Autocomplete data pipeline (rnnmem.tasks.autocomplete) and the synthetic corpora."""

from __future__ import annotations

import numpy as np
import pytest

from rnnmem.errors import ConfigError, InputError
from rnnmem.tasks.autocomplete import (
    CHARS, build_dataset, dependency_positions, known_characters, observations_from_words, pack_observations,
    split_indices,
)
from rnnmem.tasks.synthetic_text import (
    invented_vocabulary, planted_dependency_text, write_zipf_text8, zipf_probabilities,
)

TINY = " the cat sat on the mat and the dog ran"


def _ids(text: str) -> list[int]:
    return [CHARS.index(c) for c in text]


@pytest.fixture
def tiny(tmp_path):
    path = tmp_path / "tiny.txt"
    path.write_text(TINY)
    return path


def test_tiny_corpus_observations_by_hand(tiny, tmp_path):
    # counts: the 3, all others 1 -> with vocab_size 2: "the", then "and" (ties alphabetical)
    data = build_dataset(tiny, vocab_size=2, max_length=12, cache_dir=tmp_path / "c", chunk_bytes=7)
    assert data.words == ["<eos>", "<unknown>", "the", "and"]
    the, unk, and_ = 2, 1, 3
    expected = [
        (" the cat sat", [the] * 4 + [unk] * 4 + [unk] * 4),
        (" on the mat", [unk] * 3 + [the] * 4 + [unk] * 4),
        (" and the dog", [and_] * 4 + [the] * 4 + [unk] * 4),
        (" ran", [unk] * 4),
    ]
    assert len(data.chars) == len(expected)
    for row, (text, targets) in enumerate(expected):
        n = len(text)
        assert data.lengths[row] == n
        assert data.chars[row, :n].tolist() == _ids(text)
        assert data.chars[row, n:].tolist() == [0] * (12 - n)
        assert data.targets[row, :n].tolist() == targets
        assert data.targets[row, n:].tolist() == [0] * (12 - n)
        assert data.decode(row) == text
    assert data.first_word.tolist() == [0, 3, 6, 9]
    assert data.config["corpus_words"] == 10 and data.config["unique_words"] == 8


def test_streaming_equals_in_memory_reference(tmp_path):
    corpus = planted_dependency_text(n_words=3000, vocab_size=200, seed=3)
    path, _ = corpus.save(tmp_path / "syn.txt")
    ref_vocab = None
    results = []
    for chunk in (97, 1000, 1 << 20):  # words straddle chunk borders in the small ones
        data = build_dataset(path, vocab_size=50, max_length=40, cache=False, chunk_bytes=chunk)
        ref_vocab = data.words
        results.append(data)
    ref = observations_from_words(corpus.words, ref_vocab, max_length=40)
    for data in results:
        for key in ("chars", "targets", "lengths", "first_word"):
            np.testing.assert_array_equal(np.asarray(getattr(data, key)), ref[key])
    assert (results[0].targets == 1).any(), "vocab_size 50 must leave unknown words"


def test_newlines_and_repeated_spaces_are_separators(tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text(" aa bb cc dd\n")
    b.write_text("aa  bb\ncc dd")
    da = build_dataset(a, max_length=10, cache=False)
    db = build_dataset(b, max_length=10, cache=False)
    np.testing.assert_array_equal(da.chars, db.chars)
    assert da.decode(0) == " aa bb cc"


def test_overlong_word_is_skipped_and_closes_observation():
    starts, stops, skipped = pack_observations(np.array([3, 4, 11, 2, 2]), max_length=6)
    assert starts.tolist() == [0, 1, 3] and stops.tolist() == [1, 2, 5] and skipped.tolist() == [2]
    obs = observations_from_words(["ab", "abcdefghijkl", "cd"], ["<eos>", "<unknown>", "ab", "cd"], max_length=6)
    assert obs["skipped"].tolist() == [1]
    assert obs["lengths"].tolist() == [3, 3]
    assert obs["first_word"].tolist() == [0, 2]


def test_split_is_seeded_disjoint_and_floor_sized():
    a, b, c = split_indices(1001, 5), split_indices(1001, 5), split_indices(1001, 6)
    for name in ("train", "valid", "test"):
        np.testing.assert_array_equal(a[name], b[name])
    assert not np.array_equal(a["train"], c["train"])
    assert [len(a[n]) for n in ("train", "valid", "test")] == [900, 50, 51]
    allidx = np.concatenate([a["train"], a["valid"], a["test"]])
    assert sorted(allidx.tolist()) == list(range(1001))


def test_dataset_split_determinism(tmp_path):
    path, _ = planted_dependency_text(n_words=4000, vocab_size=100, seed=1).save(tmp_path / "s.txt")
    d1 = build_dataset(path, max_length=50, seed=7, cache=False)
    d2 = build_dataset(path, max_length=50, seed=7, cache=False)
    d3 = build_dataset(path, max_length=50, seed=8, cache=False)
    np.testing.assert_array_equal(d1.split("test")[0], d2.split("test")[0])
    assert not np.array_equal(d1.split_index("test"), d3.split_index("test"))
    with pytest.raises(ConfigError):
        d1.split("dev")


def test_cache_hit_miss_and_content_key(tiny, tmp_path):
    cache = tmp_path / "cache"
    first = build_dataset(tiny, max_length=12, cache_dir=cache)
    assert not first.cache_hit and first.cache_path.is_dir()
    second = build_dataset(tiny, max_length=12, cache_dir=cache)
    assert second.cache_hit
    for key in ("chars", "targets", "lengths", "first_word"):
        np.testing.assert_array_equal(np.asarray(getattr(first, key)), np.asarray(getattr(second, key)))
    assert second.words == first.words and second.config["corpus_sha256"] == first.config["corpus_sha256"]
    assert not build_dataset(tiny, max_length=13, cache_dir=cache).cache_hit  # other options: other entry
    tiny.write_text(TINY + " cat")  # other content: other entry
    changed = build_dataset(tiny, max_length=12, cache_dir=cache)
    assert not changed.cache_hit and changed.config["corpus_words"] == 11
    assert len(list(cache.iterdir())) == 3


@pytest.mark.parametrize("content, match", [
    (" the Cat", r"b'C' at offset 5"),
    (" one 2 three", r"b'2' at offset 5"),
    (" caf\u00e9 au lait", r"offset 4"),
    (" tab\there", r"offset 4"),
])
def test_non_text8_characters_are_rejected(tmp_path, content, match):
    path = tmp_path / "bad.txt"
    path.write_bytes(content.encode("utf-8"))
    with pytest.raises(InputError, match=match):
        build_dataset(path, cache=False)


def test_missing_empty_and_blank_corpus(tmp_path):
    with pytest.raises(InputError, match="not found"):
        build_dataset(tmp_path / "nope.txt", cache=False)
    with pytest.raises(InputError, match="not a file"):
        build_dataset(tmp_path, cache=False)
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(InputError, match="empty"):
        build_dataset(tmp_path / "empty.txt", cache=False)
    (tmp_path / "blank.txt").write_text("   \n  ")
    with pytest.raises(InputError, match="no words"):
        build_dataset(tmp_path / "blank.txt", cache=False)


def test_bad_options(tiny):
    with pytest.raises(ConfigError):
        build_dataset(tiny, vocab_size=0)
    with pytest.raises(ConfigError):
        build_dataset(tiny, max_length=1)
    with pytest.raises(ConfigError):
        build_dataset(tiny, split=(0.5, 0.5, 0.5))


def test_known_characters_by_hand():
    chars = np.array([_ids(" ab cde") + [0, 0]])
    assert known_characters(chars).tolist() == [[0, 1, 2, 0, 1, 2, 3, 4, 5]]


def test_synthetic_corpus_is_seeded_and_records_true_distances():
    a = planted_dependency_text(n_words=5000, seed=4, kind="agreement", distances=(3, 7), rate=0.05)
    b = planted_dependency_text(n_words=5000, seed=4, kind="agreement", distances=(3, 7), rate=0.05)
    c = planted_dependency_text(n_words=5000, seed=5, kind="agreement", distances=(3, 7), rate=0.05)
    assert a.text == b.text and a.text != c.text
    words = a.words
    deps = a.dependencies
    assert len(deps) > 50 and set(deps["gap_words"]) == {3, 7}
    pairs = dict(zip(a.config["keys"], a.config["responses"]))
    starts = np.cumsum([0] + [len(w) + 1 for w in words])
    for rec in deps.itertuples():
        assert words[rec.key_index] == rec.key and words[rec.response_index] == rec.response
        assert pairs[rec.key] == rec.response != rec.key  # agreement: a fixed pairing, not a copy
        assert words[rec.key_index - 1] == "remember" and words[rec.response_index - 1] == "recall"
        assert rec.distance_words == rec.gap_words + 2
        assert rec.distance_chars == starts[rec.response_index] - starts[rec.key_index]
    filler = set(w for i, w in enumerate(words) if i not in set(deps["key_index"]) | set(deps["response_index"]))
    assert not filler & set(a.config["keys"]) and not filler & set(a.config["responses"])
    with pytest.raises(ConfigError):
        planted_dependency_text(kind="nope")
    with pytest.raises(ConfigError):
        planted_dependency_text(n_keys=1)


def test_dependency_positions_point_at_the_response(tmp_path):
    corpus = planted_dependency_text(n_words=6000, vocab_size=100, seed=2, distances=(2, 4), rate=0.05)
    path, _ = corpus.save(tmp_path / "s.txt")
    data = build_dataset(path, max_length=60, cache=False)
    pos = dependency_positions(data, corpus.dependencies, "test")
    assert len(pos) > 0
    test_rows = set(data.split_index("test").tolist())
    for rec in pos.itertuples():
        assert rec.row in test_rows
        assert data.chars[rec.row, rec.position] == CHARS.index(" ")
        assert data.words[data.targets[rec.row, rec.position]] == rec.response
        key_pos = rec.position - rec.distance_chars
        assert data.words[data.targets[rec.row, key_pos]] == rec.key


def test_zipf_writer_and_vocabulary(tmp_path):
    p = zipf_probabilities(1000)
    assert abs(p.sum() - 1) < 1e-12 and np.all(np.diff(p) < 0)
    vocab = invented_vocabulary(20_000)
    assert len(set(vocab)) == 20_000 and all(w.isalpha() and w.islower() for w in vocab)
    info = write_zipf_text8(tmp_path / "z.txt", 200_000, vocab_size=5000, seed=1, chunk_words=10_000)
    raw = (tmp_path / "z.txt").read_bytes()
    assert len(raw) == info["bytes"] <= 200_000 and len(raw) > 199_000
    assert raw.startswith(b" ") and b"  " not in raw and raw.count(b" ") == info["words"]
    data = build_dataset(tmp_path / "z.txt", vocab_size=100, cache=False)
    assert data.config["corpus_words"] == info["words"]
    assert data.lengths.max() <= 200 and (data.targets == 1).any()
