"""Per-mention labels: language, sentiment, offensive/spam (hide), complaint, crisis types.

Models are linear (logistic regression) over hashed word 1–2-grams, hashed character
2–5-grams, a few lexicon sums (AFINN for en/fr/pl/sv/da/fi and emoticons, VADER's
English lexicon, the per-word weights of alt-profanity-check's English model) and the
sum of static word vectors distilled from a multilingual sentence encoder
(`WordVectors`), trained by ``scripts/train_triage.py`` and stored in
``tasks/triage/models/`` as float16 weights and int8 vectors keyed by token hash — no word
list, no pickled estimator, so nothing depends on the scikit-learn version that trained
them and nothing is downloaded at run time. Hashing keeps the n-gram space shared across
languages and the word vectors put translations side by side, which is what lets the
heads say something about words and languages they have no labelled tweets for.

Speed. A crisis brings tens of thousands of mentions, so a whole batch is featurised at
once with numpy: the batch becomes one array of code points, n-grams are rolling
polynomial hashes over it (no Python object per n-gram), and language identification
walks py3langid's own byte-n-gram automaton for every text of the batch in lock-step —
the same model and the same scores as ``py3langid.rank``, without a Python loop per byte.
Keyword matching and the spam rule also run once per batch, over the joined texts: a
trie regex of all crisis terms is tried only where numpy found a word token that can
start one, so the Python work grows with the hits, not with the texts.

``Labels.sentiment_score`` is a signed score in [-1, 1]: P(positive) − P(negative). A
mention is offensive when its score reaches the head's threshold for its language; spam
and the playbook's ``offensive_terms`` (in the mention's own language) score at least 0.99.
"""

from __future__ import annotations

import bisect
import itertools
import math
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np
import scipy.sparse as sp
from py3langid import langid

from firebreak.errors import ConfigError

if TYPE_CHECKING:
    from firebreak.config.playbook import CrisisType, Playbook

MODEL_DIR = Path(__file__).with_name("models")
MODEL_FILE = MODEL_DIR / "triage.joblib"
SUPPORTED_LANGS: tuple[str, ...] = ("en", "nl", "sv", "fr", "pl", "id", "de", "es", "it", "pt")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
_HINT_PRIOR = 4.0  # the platform's own language tag multiplies that language's probability
FEATURE_VERSION = 4  # bump when the featuriser changes: stored models must match it

_WORD_BITS = 18
_CHAR_BITS = 18
_N_WORD = 1 << _WORD_BITS
_N_CHAR = 1 << _CHAR_BITS
LEXICONS: tuple[str, ...] = ("afinn", "vader", "profanity")
_N_LEX = 2 * len(LEXICONS)  # positive and negative sum per lexicon
EMBEDDING_DIM = 64  # static word vectors (see WordVectors)
_N_FEATURES = _N_WORD + _N_CHAR + _N_LEX + EMBEDDING_DIM

_URL = re.compile(r"https?://\S+|www\.\S+|\bURL\b")
_USER = re.compile(r"@\w+|\bUSER\b|@anonymized_account")
_REPEAT = re.compile(r"(.)\1\1\1+")
_HTTP = re.compile(r"https?://\S+")
_LINK = re.compile(r"https?://\S")
_AT = re.compile(r"@\w+")
_UNI_ESC = re.compile(r"\\u([0-9a-fA-F]{4})")
_SEP = "\n\x01\n"  # \S+, \w+ and (.)\1{3,} cannot cross it; whitespace folding keeps the \x01


def _clean(text: str) -> str:
    if "\\u" in text:  # XLM-T stores emoji as escaped UTF-16 surrogate pairs
        text = _UNI_ESC.sub(lambda m: chr(int(m.group(1), 16)), text)
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    if "www." in text or "URL" in text or "USER" in text:  # rare: corpus placeholders, bare links
        text = _USER.sub(" @user ", _URL.sub(" httpurl ", text))
    return text.replace("\x01", " ")


def normalise_batch(texts: Sequence[str]) -> list[str]:
    """The same cleaning at training and at inference: corpora anonymise differently.

    One pass of each (literal-prefixed, hence fast) regex over the joined batch, with a
    separator none of them can cross, instead of one pass per text.
    """
    big = _SEP.join([_clean(t) for t in texts])
    big = _AT.sub(" @user ", _HTTP.sub(" httpurl ", big))
    big = " ".join(_REPEAT.sub(r"\1\1\1", big.lower()).split())
    return [t.strip() for t in big.split("\x01")]


def normalise(text: str) -> str:
    return normalise_batch([text])[0]


# Letters that NFKD does not decompose; str.replace per pair is far faster than translate.
_FOLD_PAIRS = (("ł", "l"), ("Ł", "L"), ("ø", "o"), ("Ø", "O"), ("æ", "ae"), ("ß", "ss"), ("đ", "d"), ("’", "'"), ("‘", "'"))
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def fold(text: str) -> str:
    """Case- and accent-insensitive form for keyword matching (é→e, ł→l, ö→o)."""
    for a, b in _FOLD_PAIRS:
        if a in text:
            text = text.replace(a, b)
    text = text.casefold()
    if text.isascii():
        return text
    return _COMBINING.sub("", unicodedata.normalize("NFKD", text))


# -- vectorised hashing featuriser -----------------------------------------------------

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


# -- language identification -----------------------------------------------------------


_LOG1P = np.log1p(np.arange(64, dtype=np.float32))  # log1p of small counts, by table


class _BatchLangId:
    """py3langid's naive Bayes, scored for a whole batch at once.

    py3langid walks an Aho–Corasick automaton over the UTF-8 bytes of one text in a
    Python loop; here every text of the batch advances one byte per numpy step. Same
    model, same features (log1p counts), same length-tempered softmax.
    """

    _CHUNK = 2048

    def __init__(self, languages: Sequence[str]) -> None:
        ident = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)
        ident.set_languages(list(languages))
        self.classes: tuple[str, ...] = tuple(ident.nb_classes)
        if len(set(self.classes)) != len(self.classes):
            raise ConfigError("language set contains aliased labels; choose distinct languages")
        self._ptc = np.ascontiguousarray(ident.nb_ptc, dtype=np.float32)  # rows are gathered: C order
        self._pc = np.asarray(ident.nb_pc, dtype=np.float32)
        self._next = np.frombuffer(ident.tk_nextmove, dtype=np.uint32)
        self._rowbase = np.asarray(ident.tk_row, dtype=np.int64) << 8
        self._out = np.asarray(ident.tk_output, dtype=np.int64)
        self._encode = ident._encode  # lower-cases all-caps text, NFC, UTF-8: keep it identical

    def proba(self, texts: Sequence[str]) -> np.ndarray:
        out = np.zeros((len(texts), len(self.classes)), dtype=np.float32)
        for lo in range(0, len(texts), self._CHUNK):
            out[lo : lo + self._CHUNK] = self._proba(texts[lo : lo + self._CHUNK])
        return out

    def _proba(self, texts: Sequence[str]) -> np.ndarray:
        enc = [self._encode(t) for t in texts]
        n = len(enc)
        n_feat, n_cls = self._ptc.shape
        lens = np.fromiter((len(b) for b in enc), dtype=np.int64, count=n)
        order = np.argsort(-lens, kind="stable")
        slens = lens[order]
        starts = np.cumsum(slens) - slens
        flat = np.frombuffer(b"".join([enc[i] for i in order]), dtype=np.uint8)
        states = np.zeros(flat.size, dtype=np.uint32)
        state = np.zeros(n, dtype=np.int64)
        # Texts sorted longest first: at byte ``pos`` the first ``alive[pos]`` are still going.
        width = int(slens[0]) if n else 0
        alive = n - np.searchsorted(slens[::-1], np.arange(width), side="right")
        nxt, rowbase = self._next, self._rowbase
        for pos in range(width):
            a = alive[pos]
            idx = starts[:a] + pos
            s = nxt[rowbase[state[:a]] + flat[idx]]
            state[:a] = s
            states[idx] = s
        feats = self._out[states]
        keep = feats >= 0
        doc = np.repeat(np.arange(n, dtype=np.int64), slens)[keep]
        # Count each (text, feature) pair: sort the combined keys, then runs of equal keys.
        keys = np.sort(doc * n_feat + feats[keep])
        first = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1]))) if keys.size else np.zeros(0, np.int64)
        counts = np.diff(np.append(first, keys.size))
        ukeys = keys[first]
        udoc = ukeys // n_feat
        indptr = np.concatenate(([0], np.cumsum(np.bincount(udoc, minlength=n))))
        weights = _LOG1P[np.minimum(counts, _LOG1P.size - 1)]
        big = counts >= _LOG1P.size
        if big.any():
            weights[big] = np.log1p(counts[big])
        x = sp.csr_matrix((weights, (ukeys - udoc * n_feat).astype(np.int32), indptr), shape=(n, n_feat))
        scores = np.asarray(x @ self._ptc) + self._pc
        scores[indptr[1:] == indptr[:-1]] = 0.0
        # A text with no feature at all keeps 0 everywhere: uniform, as py3langid.
        scores *= (1.0 / np.sqrt(np.maximum(slens, 1)))[:, None]
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        result = np.empty_like(scores)
        result[order] = scores
        return result


@dataclass(frozen=True, slots=True)
class Labels:
    lang: str  # ISO 639-1
    sentiment: str  # "negative" | "neutral" | "positive"
    sentiment_score: float  # signed, [-1, 1]: P(positive) - P(negative)
    offensive: bool  # hide-worthy: abusive, hateful, sexist, racist, spam
    offensive_score: float  # [0, 1]
    complaint: bool
    complaint_score: float  # [0, 1]
    crisis_types: tuple[str, ...]  # playbook crisis type ids whose keywords match

    def as_dict(self) -> dict:
        d = asdict(self)
        d["crisis_types"] = list(self.crisis_types)
        return d


class _Heads:
    """All stored logistic-regression heads as one weight matrix: one sparse product per batch."""

    def __init__(self, model: dict) -> None:
        specs = {name: model[name] for name in ("offensive", "complaint", "sentiment")}
        self.coef = np.vstack([np.asarray(s["coef"], dtype=np.float32) for s in specs.values()]).T.copy()
        self.bias = np.concatenate([np.asarray(s["bias"], dtype=np.float32) for s in specs.values()])
        self.thresholds = {name: float(s.get("threshold", 0.5)) for name, s in specs.items()}
        # Per-language thresholds where a language's own labelled data chose one.
        self.lang_thresholds = {name: {k: float(v) for k, v in s.get("lang_thresholds", {}).items()} for name, s in specs.items()}
        self.sentiment_classes: tuple[str, ...] = tuple(specs["sentiment"]["classes"])

    def threshold(self, name: str, langs: Sequence[str]) -> np.ndarray:
        """Each text's decision threshold for head ``name``, by its language."""
        default, per_lang = self.thresholds[name], self.lang_thresholds[name]
        return np.fromiter((per_lang.get(lang, default) for lang in langs), dtype=np.float64, count=len(langs))

    def proba(
        self, blocks: tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        words, chars, lex, emb = blocks
        w = self.coef
        c, e = _N_WORD + _N_CHAR, _N_WORD + _N_CHAR + _N_LEX
        logits = words @ w[:_N_WORD] + chars @ w[_N_WORD:c] + lex @ w[c:e] + emb @ w[e:] + self.bias
        p_off = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        p_cmp = 1.0 / (1.0 + np.exp(-logits[:, 1]))
        s = logits[:, 2:5]
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return p_off, p_cmp, s / s.sum(axis=1, keepdims=True)


_WORDCHAR = re.compile(r"\w")
_DOC_SEP = "\x01"  # not \w, not whitespace, not @/#: no keyword match can include or straddle it


def fold_batch(texts: Sequence[str]) -> str | None:
    """``fold`` of every text, joined by ``_DOC_SEP`` (None if a text contains it).

    One translate/casefold/NFKD pass over the batch: decomposition and the stripping of
    combining marks never act across the separator, so this is ``_DOC_SEP.join(map(fold, texts))``.
    """
    big = _DOC_SEP.join(texts)
    if big.count(_DOC_SEP) != len(texts) - 1:
        return None
    return fold(big)


_WORD_RUN = re.compile(r"\w+")


@lru_cache(maxsize=1)
def _word_table() -> np.ndarray:
    """Whether each BMP code point is a regex word character (\\w: alphanumeric or _)."""
    return np.array([chr(i).isalnum() or i == 0x5F for i in range(0x10000)], dtype=bool)


def _run_keys(cp: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """20-bit hash of each run cp[s:e] from its length and first, second and last code points."""
    a = cp[starts].astype(np.uint64)
    b = cp[np.minimum(starts + 1, ends - 1)].astype(np.uint64)
    c = cp[ends - 1].astype(np.uint64)
    n = (ends - starts).astype(np.uint64)
    h = n * np.uint64(0x9E3779B97F4A7C15) ^ a * np.uint64(0xC2B2AE3D27D4EB4F) ^ b * np.uint64(0x165667B19E3779F9) ^ c * np.uint64(0x27D4EB2F165667C5)
    h ^= h >> np.uint64(31)
    h *= np.uint64(0x94D049BB133111EB)
    return (h >> np.uint64(44)).astype(np.int64)


def _trie_pattern(terms: Sequence[str]) -> str:
    """A regex matching exactly the given (space-normalised) terms, as a character trie.

    Branches differ in their first character and a term's end is an optional group, so
    the match at a position is the longest term there that the caller's boundary accepts.
    """
    trie: dict = {}
    for term in terms:
        node = trie
        for ch in term:
            node = node.setdefault(ch, {})
        node[""] = {}

    def emit(node: dict) -> str:
        alts = [(r"\s+" if ch == " " else re.escape(ch)) + emit(node[ch]) for ch in sorted(k for k in node if k)]
        if not alts:
            return ""
        body = alts[0] if len(alts) == 1 else "(?:" + "|".join(alts) + ")"
        return f"(?:{body})?" if "" in node else body

    return emit(trie)


@dataclass(frozen=True, slots=True)
class TermList:
    """Terms per language under one id, matched like a crisis type's keywords."""

    id: str
    keywords: Mapping[str, Sequence[str]]


class _KeywordMatcher:
    """Word-boundary, case- and accent-insensitive matching of multi-language keyword lists.

    A type matches a text when one of its terms occurs with no word character (nor @/#)
    before it and no word character after it, whitespace inside a term matching any run
    of whitespace — ``match_exact`` is that rule written as one regex per type. For a
    batch, one trie regex of all terms runs over the folded, joined texts: at each position
    it finds the longest term, and the terms that are word-boundary prefixes of that one
    (precomputed) match there too. Searching again from the next character after every
    hit keeps overlapping occurrences.
    """

    def __init__(self, crisis_types: Sequence[CrisisType | TermList]) -> None:
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        owners: dict[str, set[str]] = {}  # space-normalised folded term -> type ids
        for ct in crisis_types:
            terms = sorted({" ".join(fold(t).split()) for ts in ct.keywords.values() for t in ts if t.strip()}, key=len, reverse=True)
            if not terms:
                continue
            alts = "|".join(r"\s+".join(re.escape(p) for p in term.split(" ")) for term in terms)
            # Terms may start or end with a non-word char (@brand, #tag): only require a
            # boundary on the sides that are word characters.
            self._rules.append((ct.id, re.compile(rf"(?<![\w@#])(?:{alts})(?!\w)")))
            for term in terms:
                owners.setdefault(term, set()).add(ct.id)
        self._order = {tid: k for k, (tid, _) in enumerate(self._rules)}
        # A hit on term T also means a hit on every term that is a prefix of T ending at a boundary.
        self._hit_types: dict[str, frozenset[str]] = {}
        for term in owners:
            ids: set[str] = set()
            for k in range(1, len(term) + 1):
                if term[:k] in owners and (k == len(term) or not _WORDCHAR.match(term[k])):
                    ids |= owners[term[:k]]
            self._hit_types[term] = frozenset(ids)
        self._any = re.compile(rf"(?<![\w@#])(?:{_trie_pattern(list(owners))})(?!\w)") if owners else None
        # Where can a term start? A term that starts with a word character starts on a word
        # token equal to its first run of word characters: tokens are found with numpy and
        # filtered by a hash of (length, first, second, last character); the regex confirms.
        # Terms starting with another character (#tag, @brand) get a regex scan of their own.
        lead = [t for t in owners if _WORDCHAR.match(t)]
        others = [t for t in owners if not _WORDCHAR.match(t)]
        self._lead_keys = np.zeros(1 << 20, dtype=bool)
        for term in lead:
            run = np.array([ord(c) for c in _WORD_RUN.match(term).group()], dtype=np.uint32)
            self._lead_keys[_run_keys(run, np.array([0]), np.array([run.size]))] = True
        self._others = re.compile(rf"(?<![\w@#])(?:{_trie_pattern(others)})(?!\w)") if others else None

    def match(self, folded: str) -> tuple[str, ...]:
        """Types whose terms occur in one folded text."""
        return self._scan(folded, None, 1)[0]

    @property
    def empty(self) -> bool:
        return self._any is None

    def match_batch(self, texts: Sequence[str]) -> list[tuple[str, ...]]:
        """Types per text (texts as given, folded here)."""
        if self._any is None or not texts:
            return [()] * len(texts)
        return self.match_folded(texts, fold_batch(texts))

    def match_folded(self, texts: Sequence[str], big: str | None) -> list[tuple[str, ...]]:
        """``match_batch`` given ``fold_batch(texts)``: matchers of one batch share the fold."""
        if self._any is None or not texts:
            return [()] * len(texts)
        if big is None:  # a text holds the separator: one by one
            return [self.match(fold(t)) for t in texts]
        return self._scan(big, _DOC_SEP, len(texts))

    def _scan(self, big: str, sep: str | None, n: int) -> list[tuple[str, ...]]:
        """Types per text of ``n`` folded texts joined by ``sep`` (one text if ``sep`` is None)."""
        out: list[tuple[str, ...]] = [()] * n
        if self._any is None:
            return out
        found: list[re.Match[str]] = []
        match = self._any.match
        for p in self._lead_positions(big):
            m = match(big, p)
            if m is not None:
                found.append(m)
        if self._others is not None:
            m = self._others.search(big)
            while m is not None:
                found.append(m)
                m = self._others.search(big, m.start() + 1)
        if not found:
            return out
        ends = list(itertools.accumulate(len(p) + 1 for p in big.split(sep))) if sep is not None else [len(big) + 1]
        hits: dict[int, set[str]] = {}
        for m in found:
            doc = bisect.bisect_right(ends, m.start())
            hits.setdefault(doc, set()).update(self._hit_types[" ".join(m.group().split())])
        order = self._order
        for doc, ids in hits.items():
            out[doc] = tuple(sorted(ids, key=order.__getitem__))
        return out

    def _lead_positions(self, big: str) -> list[int]:
        """Start of every word token whose (length, characters) hash is that of a term's first run."""
        if not big:
            return []
        cp = np.frombuffer(big.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        word = _word_table()[np.minimum(cp, 0xFFFF)]
        high = np.flatnonzero(cp > 0xFFFF)
        if high.size:  # outside the BMP (emoji…): classify each distinct code point once
            uniq, inv = np.unique(cp[high], return_inverse=True)
            word[high] = np.array([_WORDCHAR.match(chr(int(u))) is not None for u in uniq], dtype=bool)[inv]
        edge = np.diff(word.astype(np.int8), prepend=0, append=0)
        starts = np.flatnonzero(edge == 1)
        ends = np.flatnonzero(edge == -1)
        return starts[self._lead_keys[_run_keys(cp, starts, ends)]].tolist()

    def match_exact(self, folded: str) -> tuple[str, ...]:
        """Reference: every type's full pattern (tests compare match() with it)."""
        return tuple(tid for tid, rx in self._rules if rx.search(folded))


class Triage:
    def __init__(
        self,
        crisis_types: Sequence[CrisisType] = (),
        languages: Sequence[str] | None = None,
        offensive_terms: Mapping[str, Sequence[str]] | None = None,
    ) -> None:
        langs = [lang for lang in (languages or SUPPORTED_LANGS)]
        unknown = sorted(set(langs) - set(SUPPORTED_LANGS))
        if unknown:
            raise ConfigError(f"unsupported language(s) {unknown}; supported: {list(SUPPORTED_LANGS)}")
        self.languages = tuple(langs)
        model = _load_model()
        self._heads = _Heads(model)
        self._lexicons = _lexicon_tables(model)
        self._vectors = _word_vectors()
        self._spam = re.compile(model.get("spam_pattern", r"$^"))
        self._spam_links = int(model.get("spam_min_links", 0))  # this many links or more: spam (0: no such rule)
        self._langid = _lang_identifier(self.languages)
        self._keywords = _KeywordMatcher(crisis_types)
        # The playbook's own insults and slurs: the model has no labelled abuse in most
        # languages (Dutch, French and German insults score well under its threshold). A
        # term counts only in a text of its own language, since hiding is public and words
        # cross languages with other meanings (Swedish "hora" is Spanish for "hour").
        self._offensive_terms = _KeywordMatcher([TermList(lang, {lang: terms}) for lang, terms in (offensive_terms or {}).items()])
        self._default_lang = "en" if "en" in self.languages else self.languages[0]

    def _langs(self, texts: Sequence[str], hints: Sequence[str | None] | None) -> list[str]:
        probs = self._langid.proba(texts)
        classes = self._langid.classes
        best = [classes[i] for i in probs.argmax(axis=1).tolist()]
        isalpha = str.isalpha
        if hints is None:  # emoji-only or empty: nothing to identify
            default = self._default_lang
            return [b if any(map(isalpha, t)) else default for t, b in zip(texts, best)]
        out: list[str] = []
        for i, text in enumerate(texts):
            hint = hints[i]
            if hint:
                hint = hint.lower().split("-")[0].split("_")[0]
            if not any(map(isalpha, text)):  # emoji-only or empty: nothing to identify
                out.append(hint if hint in self.languages else self._default_lang)
            elif hint in self.languages:
                # The platform's tag is a prior, not the answer: short texts fool both.
                if len(text.split()) < 3:
                    out.append(hint)
                else:
                    p = probs[i].copy()
                    p[classes.index(hint)] *= _HINT_PRIOR
                    out.append(classes[int(p.argmax())])
            else:
                out.append(best[i])
        return out

    def _spam_flags(self, texts: Sequence[str]) -> list[bool]:
        """Spam rule per text: the model's phrase pattern (lower-cased text), or many links.

        The pattern runs once over the batch joined by newlines (it never matches a
        newline, so no match straddles two texts); each hit is confirmed on its own text.
        """
        n = len(texts)
        low = [t.lower() for t in texts]
        big = "\n".join(low)
        ends = list(itertools.accumulate(len(t) + 1 for t in low))
        flags = [False] * n
        search = self._spam.search
        m = search(big)
        while m is not None:
            doc = bisect.bisect_right(ends, m.start())
            flags[doc] = bool(search(low[doc]))
            m = search(big, ends[doc]) if doc + 1 < n else None
        if self._spam_links and "://" in big:
            starts = np.fromiter((m.start() for m in _LINK.finditer(big)), dtype=np.int64)
            many = np.bincount(np.searchsorted(ends, starts, side="right"), minlength=n)[:n] >= self._spam_links
            for doc in np.flatnonzero(many).tolist():
                flags[doc] = True
        return flags

    def label_batch(self, texts: Sequence[str], lang_hints: Sequence[str] | None = None) -> list[Labels]:
        texts = list(texts)
        if lang_hints is not None and len(lang_hints) != len(texts):
            raise ConfigError("lang_hints must be as long as texts")
        if not texts:
            return []
        langs = self._langs(texts, lang_hints)
        p_off, p_cmp, p_sent = self._heads.proba(feature_blocks(texts, self._lexicons, self._vectors, langs))
        order = [self._heads.sentiment_classes.index(c) for c in SENTIMENTS]
        p_sent = p_sent[:, order]
        sent_idx = p_sent.argmax(axis=1).tolist()
        sent_score = np.round(p_sent[:, 2] - p_sent[:, 0], 4).tolist()
        # One accent- and case-folded copy of the batch for both keyword matchers.
        folded = None if self._keywords.empty and self._offensive_terms.empty else fold_batch(texts)
        flagged = np.array(self._spam_flags(texts), dtype=bool)
        if not self._offensive_terms.empty:
            hits = self._offensive_terms.match_folded(texts, folded)
            flagged |= np.fromiter((lang in hit for lang, hit in zip(langs, hits)), dtype=bool, count=len(texts))
        off = np.where(flagged, np.maximum(p_off, 0.99), p_off)
        off_flag = (off >= self._heads.threshold("offensive", langs)).tolist()
        cmp_flag = (p_cmp >= self._heads.threshold("complaint", langs)).tolist()
        off_score = np.round(off, 4).tolist()
        cmp_score = np.round(p_cmp, 4).tolist()
        types = self._keywords.match_folded(texts, folded)
        return [
            Labels(
                lang=langs[i],
                sentiment=SENTIMENTS[sent_idx[i]],
                sentiment_score=sent_score[i],
                offensive=off_flag[i],
                offensive_score=off_score[i],
                complaint=cmp_flag[i],
                complaint_score=cmp_score[i],
                crisis_types=types[i],
            )
            for i in range(len(texts))
        ]

    def label(self, text: str, lang_hint: str | None = None) -> Labels:
        return self.label_batch([text], None if lang_hint is None else [lang_hint])[0]


@lru_cache(maxsize=1)
def _load_model() -> dict:
    try:
        model = joblib.load(MODEL_FILE)
    except FileNotFoundError:
        raise ConfigError(f"triage model {MODEL_FILE} is missing; run scripts/train_triage.py") from None
    if model.get("n_features") != _N_FEATURES or model.get("feature_version") != FEATURE_VERSION:
        raise ConfigError(f"triage model {MODEL_FILE} was trained with another feature space; retrain it")
    return model


def lexicon_tables(stored: dict[str, tuple[np.ndarray, np.ndarray]]) -> dict[str, np.ndarray]:
    """Dense valence tables over the word space from stored (bucket, valence) pairs."""
    tables = {}
    for name, (buckets, values) in stored.items():
        t = np.zeros(_N_WORD, dtype=np.float32)
        t[np.asarray(buckets, dtype=np.int64)] = np.asarray(values, dtype=np.float32)
        tables[name] = t
    return tables


def _lexicon_tables(model: dict) -> dict[str, np.ndarray]:
    return lexicon_tables(model.get("lexicons", {}))


@lru_cache(maxsize=1)
def _word_vectors() -> WordVectors:
    try:
        return WordVectors.from_stored(_load_model()["word_vectors"])
    except KeyError:
        raise ConfigError(f"triage model {MODEL_FILE} has no word vectors; retrain it") from None


@lru_cache(maxsize=8)
def _lang_identifier(languages: tuple[str, ...]) -> _BatchLangId:
    return _BatchLangId(languages)


_TRIAGE_CACHE: dict[tuple, Triage] = {}


def load_triage(playbook: Playbook | None = None) -> Triage:
    """A Triage for this playbook's crisis types and offensive terms; built once per playbook."""
    terms: Mapping[str, Sequence[str]] = {}
    if playbook is None:
        key: tuple = ()
        types: Sequence[CrisisType] = ()
        langs: Sequence[str] | None = None
    else:
        types = playbook.crisis_types
        # Mentions arrive in languages the brand does not list: identify over the whole
        # supported set rather than forcing them into the brand's languages.
        langs = None
        terms = playbook.engagement.offensive_terms
        key = (playbook.model_dump_json(include={"crisis_types": True, "engagement": {"offensive_terms"}}),)
    tri = _TRIAGE_CACHE.get(key)
    if tri is None:
        tri = _TRIAGE_CACHE[key] = Triage(types, langs, terms)
    return tri


# -- storm topics ---------------------------------------------------------------------

_STOP = set(
    """
a an the and or but if of to in on at for from by with about as is are was were be been being it its this that these those
i me my we our you your he she they them their his her not no so do does did have has had will would can could should
just get got im i'm dont don't rt via amp httpurl @user what when who how why all any more very too than then there here
de het een en of maar in op te van voor met dat die dit is zijn was niet geen ik je jij we wij jullie ze hij zij er ook al
och att det som en ett är var inte jag du vi ni de han hon med för på av till om men så har kan ska
le la les un une des et ou mais de du au aux en dans sur pour par avec que qui ce cette est sont pas ne je tu il elle nous vous ils
i w z na do nie to jest się że co jak ale lub o od po za dla ten ta te jestem są być mi mnie ja ty my wy oni
yang dan di ke dari ini itu tidak ga gak aku saya kamu kami kita dengan untuk ada juga sudah akan pada atau karena
der die das und oder aber ist sind nicht ich du wir ihr sie er es mit für auf zu von den dem ein eine
el los las y o pero es son no yo tú nosotros con para por que del al un una
il lo gli e ma è sono non io tu noi con per che di da un una
o os as e ou mas é são não eu você nós com para por que do da um uma
""".split()
)
_TOKEN = re.compile(r"[#@]?\w[\w'-]*\w|\w")


def _terms(text: str) -> list[str]:
    toks = [t for t in _TOKEN.findall(normalise(text)) if not t.isdigit()]
    grams = [t for t in toks if t not in _STOP and len(t) > 1]
    grams += [f"{a} {b}" for a, b in zip(toks, toks[1:]) if a not in _STOP and b not in _STOP and len(a) > 1 and len(b) > 1]
    return grams


def dominant_terms(texts: Sequence[str], background: Sequence[str] = (), k: int = 10) -> list[str]:
    """The storm's distinctive terms and phrases, most distinctive first.

    Weighted log-odds with an informative Dirichlet prior (Monroe et al., 2008) of the
    storm against the background; without a background, against a flat prior, which
    reduces to ranking by frequency. Counts are per document so one repetitive post
    cannot name the storm; a unigram already covered by a chosen phrase is skipped.
    """
    fg: Counter[str] = Counter()
    for t in texts:
        fg.update(set(_terms(t)))
    if not fg:
        return []
    bg: Counter[str] = Counter()
    for t in background:
        bg.update(set(_terms(t)))
    n_fg, n_bg = sum(fg.values()), sum(bg.values())
    prior = fg + bg
    a0 = 0.5 * sum(prior.values())  # prior strength: half the pooled counts
    scores: dict[str, float] = {}
    for term, c in fg.items():
        if c < 2 and len(texts) > 3:
            continue
        a = 0.5 * prior[term] if bg else 1.0
        cb = bg.get(term, 0)
        l_fg = math.log((c + a) / (n_fg + a0 - c - a)) if bg else math.log(c + a)
        if bg:
            l_bg = math.log((cb + a) / (n_bg + a0 - cb - a))
            var = 1.0 / (c + a) + 1.0 / (cb + a)
            scores[term] = (l_fg - l_bg) / math.sqrt(var)
        else:
            scores[term] = l_fg + 0.01 * term.count(" ")  # phrases win ties
    ranked = sorted(scores, key=lambda t: (-scores[t], t))
    out: list[str] = []
    for term in ranked:
        if len(out) >= k:
            break
        if " " not in term and any(term in o.split() for o in out):
            continue
        out.append(term)
    return out
