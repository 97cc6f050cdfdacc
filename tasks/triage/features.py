"""The vectorised hashing featuriser and its constants. A whole batch becomes one numpy array
of code points; word 1–2-grams and character 2–5-grams are rolling polynomial hashes over
it (no Python object per n-gram) folded into hashed spaces shared across languages, next
to a few lexicon sums over word buckets and the pooled static word vectors
(``WordVectors``, keyed by the featuriser's own token hash, which put translations side
by side). Also here: the feature-space constants a stored model must match
(``FEATURE_VERSION``, ``EMBEDDING_DIM``, ``LEXICONS``, block sizes) and the token hashes
and strings that training uses to build vocabularies and lexicons.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import scipy.sparse as sp

from firebreak.errors import ConfigError
from firebreak.tasks.triage.folding import normalise, normalise_batch

FEATURE_VERSION = 4  # bump when the featuriser changes: stored models must match it

_WORD_BITS = 18
_CHAR_BITS = 18
_N_WORD = 1 << _WORD_BITS
_N_CHAR = 1 << _CHAR_BITS
LEXICONS: tuple[str, ...] = ("afinn", "vader", "profanity")
_N_LEX = 2 * len(LEXICONS)  # positive and negative sum per lexicon
EMBEDDING_DIM = 64  # static word vectors (see WordVectors)
_N_FEATURES = _N_WORD + _N_CHAR + _N_LEX + EMBEDDING_DIM


_P = 0x100000001B3  # odd, so invertible mod 2**64: substring hashes from prefix sums
_P_INV = pow(_P, -1, 1 << 64)
_MIX = np.uint64(0x9E3779B97F4A7C15)
_BIGRAM_SALT = np.uint64(0x5BD1E9955BD1E995)
_CHAR_N = (2, 3, 4, 5)
_CLASS_TABLE_SIZE = 0x3000  # code points below this get their class from a table
_SPACE, _WORD, _PUNCT = 0, 1, 2


def _mix(h: np.ndarray, bits: int, dtype: type = np.int64) -> np.ndarray:
    """Fold a 64-bit polynomial hash into ``bits`` bits (multiplicative hashing)."""
    h = h ^ (h >> np.uint64(29))
    h *= _MIX
    h >>= np.uint64(64 - bits)
    return h.astype(dtype)


def _char_class(c: str) -> int:
    if c.isspace() or c == "\x00":
        return _SPACE
    return _WORD if (c.isalnum() or c in "_@#'") else _PUNCT


@lru_cache(maxsize=1)
def _class_table() -> np.ndarray:
    return np.array([_char_class(chr(i)) for i in range(_CLASS_TABLE_SIZE)], dtype=np.int8)


@lru_cache(maxsize=4)
def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """P**i and P**-i mod 2**64 for i < n (numpy uint64 arithmetic wraps, which is the modulus)."""
    one = np.ones(1, dtype=np.uint64)
    fwd = np.concatenate([one, np.cumprod(np.full(n - 1, _P, dtype=np.uint64))])
    inv = np.concatenate([one, np.cumprod(np.full(n - 1, _P_INV, dtype=np.uint64))])
    return fwd, inv


def _codepoints(texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """The batch as one code-point array, texts padded by a space and separated by NUL; doc id per position."""
    big = "\x00".join(f" {t} " for t in texts) + "\x00"
    cp = np.frombuffer(big.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    lens = np.fromiter((len(t) + 3 for t in texts), dtype=np.int64, count=len(texts))
    return cp, np.repeat(np.arange(len(texts)), lens)


def _tokens(cp: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Word tokens (runs of word characters, @ and # included) and punctuation/emoji runs:
    (64-bit hash, doc id, is-word) per token, in text order."""
    table = _class_table()
    cls = table[np.minimum(cp, _CLASS_TABLE_SIZE - 1)]
    high = np.flatnonzero(cp >= _CLASS_TABLE_SIZE)
    if high.size:  # emoji, CJK…: classify each distinct code point once
        uniq, inv = np.unique(cp[high], return_inverse=True)
        cls[high] = np.array([_char_class(chr(int(u))) for u in uniq], dtype=np.int8)[inv]
    prev = np.concatenate([[_SPACE], cls[:-1]])
    nxt = np.concatenate([cls[1:], [_SPACE]])
    starts = np.flatnonzero((cls != _SPACE) & (cls != prev))
    ends = np.flatnonzero((cls != _SPACE) & (cls != nxt)) + 1
    fwd, inv = _powers(cp.size + 1)
    prefix = np.concatenate([np.zeros(1, dtype=np.uint64), np.cumsum(cp.astype(np.uint64) * inv[: cp.size])])
    hashes = (prefix[ends] - prefix[starts]) * fwd[starts]  # position-independent hash of cp[s:e]
    return hashes, doc[starts], cls[starts] == _WORD


def _char_block(cp: np.ndarray, doc: np.ndarray, n_docs: int) -> sp.csr_matrix:
    """Hashed char n-grams as CSR, each occurrence weighted 1/sqrt(n-grams in its text).

    Every position holds one entry per order, row-major, so entries come out grouped by
    text with no compaction pass; an n-gram that would cross a text's end is an explicit
    zero (its bucket is irrelevant) and does not count in the norm.
    """
    size = cp.size
    k = len(_CHAR_N)
    seps = np.concatenate([[0], np.cumsum(cp == 0)])
    hashes = np.zeros((size, k), dtype=np.uint64)
    valid = np.zeros((size, k), dtype=bool)
    c64 = cp.astype(np.uint64)
    h = c64
    p = np.uint64(_P)
    j = 0
    for n in range(2, max(_CHAR_N) + 1):
        h = h[:-1] * p + c64[n - 1 :]
        if n in _CHAR_N:
            hashes[: h.size, j] = h + np.uint64(n)
            valid[: h.size, j] = seps[n : n + h.size] == seps[: h.size]  # no separator inside
            j += 1
    indptr = k * np.searchsorted(doc, np.arange(n_docs + 1))  # every text has >= 3 positions
    counts = np.add.reduceat(valid.view(np.uint8).ravel(), indptr[:-1], dtype=np.int64)
    scale = (1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32)
    data = (scale[doc][:, None] * valid).ravel()
    return sp.csr_matrix((data, _mix(hashes.ravel(), _CHAR_BITS, np.int32), indptr), shape=(n_docs, _N_CHAR))


def _block(rows: np.ndarray, cols: np.ndarray, n_docs: int, n_cols: int) -> sp.csr_matrix:
    """CSR straight from doc-grouped (row, col) pairs, each occurrence weighted 1/sqrt(n in doc).

    Repeated n-grams stay separate entries (a product sums them) and the norm counts every
    occurrence as its own feature: no sort, no de-duplication, ~unit length rows.
    """
    counts = np.bincount(rows, minlength=n_docs)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    data = (1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32)[rows]
    return sp.csr_matrix((data, cols.astype(np.int32), indptr), shape=(n_docs, n_cols))


def token_hashes(words: Sequence[str]) -> np.ndarray:
    """The featuriser's 64-bit hash of each entry that normalises to exactly one token (0 otherwise)."""
    out = np.zeros(len(words), dtype=np.uint64)
    cp, doc = _codepoints(normalise_batch(words))
    hashes, tdoc, _ = _tokens(cp, doc)
    counts = np.bincount(tdoc, minlength=len(words))
    first = np.searchsorted(tdoc, np.arange(len(words)))
    idx = np.flatnonzero(counts == 1)
    out[idx] = hashes[first[idx]]
    return out


def token_strings(text: str) -> list[str]:
    """The tokens ``_tokens`` hashes, as strings (for building vocabularies; slow, not batched)."""
    return ["".join(g) for cls, g in itertools.groupby(normalise(text), _char_class) if cls != _SPACE]


def lexicon_buckets(words: Sequence[str]) -> np.ndarray:
    """Word-space bucket of each single-token word (−1 for multi-token entries)."""
    h = token_hashes(words)
    return np.where(h != 0, _mix(h, _WORD_BITS), -1)


@dataclass(frozen=True, slots=True, eq=False)
class WordVectors:
    """Static word vectors, looked up by the featuriser's own token hash.

    Distilled once, by ``scripts/train_triage.py``, from a multilingual sentence encoder
    run on each vocabulary word alone; each row already carries its word's weight (rare
    words count more), so a text's vector is the plain sum of its tokens' rows, L2-
    normalised. Words the vocabulary does not hold add nothing. Related words in any of
    the encoder's languages sit close together, so what the heads learn from one
    language's labelled tweets carries to words and languages they never saw. Texts in
    a language the encoder was not trained on (not in ``languages``) get no vector: its
    neighbours there are accidents of spelling (with them, Swedish sentiment lost 3.5
    points of macro-F1 and Indonesian abuse 2.5).
    """

    keys: np.ndarray  # uint64 token hashes, sorted
    rows: np.ndarray  # float32 (len(keys), EMBEDDING_DIM)
    scale: float = 1.0  # weight of this block against the sparse n-grams in the heads
    languages: frozenset[str] | None = None  # ISO 639-1 codes the vectors are used for (None: all)

    def __post_init__(self) -> None:
        if self.rows.shape != (self.keys.size, EMBEDDING_DIM):
            raise ConfigError(f"word vectors: {self.rows.shape} rows for {self.keys.size} keys of dimension {EMBEDDING_DIM}")
        if self.keys.size > 1 and not bool(np.all(self.keys[1:] > self.keys[:-1])):
            raise ConfigError("word vectors: keys must be sorted and unique")

    def covers(self, langs: Sequence[str]) -> np.ndarray:
        """Per text: are the vectors used for its language?"""
        if self.languages is None:
            return np.ones(len(langs), dtype=bool)
        return np.fromiter((lang in self.languages for lang in langs), dtype=bool, count=len(langs))

    def pool(self, hashes: np.ndarray, tdoc: np.ndarray, n_docs: int) -> np.ndarray:
        """(n_docs, EMBEDDING_DIM): each text's normalised sum of its known tokens' rows."""
        if not self.keys.size or not hashes.size:
            return np.zeros((n_docs, EMBEDDING_DIM), dtype=np.float32)
        pos = np.minimum(np.searchsorted(self.keys, hashes), self.keys.size - 1)
        hit = self.keys[pos] == hashes
        m = sp.csr_matrix(
            (np.ones(int(hit.sum()), dtype=np.float32), (tdoc[hit], pos[hit])), shape=(n_docs, self.keys.size)
        )
        out = np.asarray(m @ self.rows, dtype=np.float32)
        norm = np.linalg.norm(out, axis=1, keepdims=True)
        return out * (self.scale / np.maximum(norm, 1e-12))

    @classmethod
    def from_stored(cls, stored: dict) -> WordVectors:
        """From the model's int8 rows with one float scale per row."""
        q = np.asarray(stored["rows"], dtype=np.float32)
        step = np.asarray(stored["row_step"], dtype=np.float32)[:, None]
        langs = stored.get("languages")
        return cls(
            np.asarray(stored["keys"], dtype=np.uint64),
            q * step,
            float(stored.get("scale", 1.0)),
            None if langs is None else frozenset(langs),
        )


def feature_blocks(
    texts: Sequence[str],
    lexicons: dict[str, np.ndarray] | None = None,
    vectors: WordVectors | None = None,
    langs: Sequence[str] | None = None,
) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]:
    """(word 1–2-grams, char 2–5-grams, lexicon sums, pooled word vectors) for a batch.

    ``lexicons`` maps a name in LEXICONS to a dense valence table over the word space;
    without ``vectors`` the last block is zeros, and so it is for each text whose
    language (``langs``, one per text) the vectors do not cover.
    """
    n = len(texts)
    cp, doc = _codepoints(normalise_batch(texts))
    th, tdoc, _ = _tokens(cp, doc)
    uni = _mix(th, _WORD_BITS)
    # Unigram k then bigram (k, k+1), interleaved so rows stay grouped by doc.
    nxt = np.zeros_like(th)
    nxt[:-1] = th[1:]
    has_bi = np.zeros(th.size, dtype=bool)
    has_bi[:-1] = tdoc[:-1] == tdoc[1:]
    bi = _mix((th * np.uint64(_P) + nxt) ^ _BIGRAM_SALT, _WORD_BITS)
    wcols = np.stack([uni, bi], axis=1).ravel()
    wrows = np.repeat(tdoc, 2)
    keep = np.stack([np.ones_like(has_bi), has_bi], axis=1).ravel()
    words = _block(wrows[keep], wcols[keep], n, _N_WORD)
    chars = _char_block(cp, doc, n)
    lex = np.zeros((n, _N_LEX), dtype=np.float32)
    for k, name in enumerate(LEXICONS):
        table = (lexicons or {}).get(name)
        if table is None:
            continue
        v = table[uni]
        # Squashed sums: a second insult adds less than the first.
        lex[:, 2 * k] = np.tanh(np.bincount(tdoc, weights=np.maximum(v, 0), minlength=n) / 4.0)
        lex[:, 2 * k + 1] = np.tanh(np.bincount(tdoc, weights=np.maximum(-v, 0), minlength=n) / 4.0)
    if vectors is None:
        emb = np.zeros((n, EMBEDDING_DIM), dtype=np.float32)
    elif langs is None:
        emb = vectors.pool(th, tdoc, n)
    else:  # texts in languages the vectors do not cover contribute no tokens: zero rows
        covered = vectors.covers(langs)[tdoc]
        emb = vectors.pool(th[covered], tdoc[covered], n)
    return words, chars, lex, emb


def featurise(
    texts: Sequence[str],
    lexicons: dict[str, np.ndarray] | None = None,
    vectors: WordVectors | None = None,
    langs: Sequence[str] | None = None,
) -> sp.csr_matrix:
    """Sparse (n, _N_FEATURES) matrix: [word 1–2-grams | char 2–5-grams | lexicon sums | word vectors] (for training)."""
    words, chars, lex, emb = feature_blocks(texts, lexicons, vectors, langs)
    return sp.hstack([words, chars, sp.csr_matrix(lex), sp.csr_matrix(emb)], format="csr")
