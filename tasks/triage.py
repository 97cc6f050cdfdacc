"""Per-mention labels: language, sentiment, offensive/spam (hide), complaint, crisis types.

Models are linear (logistic regression) over hashed word 1–2-grams, hashed character
2–5-grams and a few lexicon sums (AFINN for en/fr/pl/sv/da/fi and emoticons, VADER's
English lexicon), trained by ``scripts/train_triage.py`` and stored in ``tasks/models/``
as float16 weight vectors — no vocabulary, no pickled estimator, so nothing depends on
the scikit-learn version that trained them and nothing is downloaded at run time.
Hashing keeps the feature space shared across languages, which is what lets the
sentiment model say something about languages it has no labelled tweets for.

Speed. A crisis brings tens of thousands of mentions, so a whole batch is featurised at
once with numpy: the batch becomes one array of code points, n-grams are rolling
polynomial hashes over it (no Python object per n-gram), and language identification
walks py3langid's own byte-n-gram automaton for every text of the batch in lock-step —
the same model and the same scores as ``py3langid.rank``, without a Python loop per byte.

``Labels.sentiment_score`` is a signed score in [-1, 1]: P(positive) − P(negative).
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
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
FEATURE_VERSION = 2  # bump when the featuriser changes: stored models must match it

_WORD_BITS = 18
_CHAR_BITS = 18
_N_WORD = 1 << _WORD_BITS
_N_CHAR = 1 << _CHAR_BITS
LEXICONS: tuple[str, ...] = ("afinn", "vader")
_N_LEX = 2 * len(LEXICONS)  # positive and negative sum per lexicon
_N_FEATURES = _N_WORD + _N_CHAR + _N_LEX

_URL = re.compile(r"https?://\S+|www\.\S+|\bURL\b")
_USER = re.compile(r"@\w+|\bUSER\b|@anonymized_account")
_REPEAT = re.compile(r"(.)\1\1\1+")
_HTTP = re.compile(r"https?://\S+")
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


_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "ß": "ss", "đ": "d", "’": "'", "‘": "'"})
_COMBINING = re.compile(r"[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f]+")


def fold(text: str) -> str:
    """Case- and accent-insensitive form for keyword matching (é→e, ł→l, ö→o)."""
    text = text.translate(_FOLD).casefold()
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


def _mix(h: np.ndarray, bits: int) -> np.ndarray:
    """Fold a 64-bit polynomial hash into ``bits`` bits (multiplicative hashing)."""
    h = h ^ (h >> np.uint64(29))
    return ((h * _MIX) >> np.uint64(64 - bits)).astype(np.int64)


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


def _char_ngrams(cp: np.ndarray, doc: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Hashed char n-grams in text order (doc ids non-decreasing): (doc id, bucket) per n-gram."""
    seps = np.concatenate([[0], np.cumsum(cp == 0)])
    size = cp.size
    hashes = np.zeros((size, len(_CHAR_N)), dtype=np.uint64)
    valid = np.zeros((size, len(_CHAR_N)), dtype=bool)
    h = cp.astype(np.uint64)
    p = np.uint64(_P)
    k = 0
    for n in range(2, max(_CHAR_N) + 1):
        h = h[:-1] * p + cp[n - 1 :].astype(np.uint64)
        if n in _CHAR_N:
            hashes[: h.size, k] = h + np.uint64(n)
            valid[: h.size, k] = seps[n : n + h.size] == seps[: h.size]  # no separator inside
            k += 1
    # Row-major flattening keeps n-grams in position order, so rows come out grouped by doc.
    flat = valid.ravel()
    return np.repeat(doc, len(_CHAR_N))[flat], _mix(hashes.ravel()[flat], _CHAR_BITS)


def _block(rows: np.ndarray, cols: np.ndarray, n_docs: int, n_cols: int) -> sp.csr_matrix:
    """CSR straight from doc-grouped (row, col) pairs, each occurrence weighted 1/sqrt(n in doc).

    Repeated n-grams stay separate entries (a product sums them) and the norm counts every
    occurrence as its own feature: no sort, no de-duplication, ~unit length rows.
    """
    counts = np.bincount(rows, minlength=n_docs)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    data = (1.0 / np.sqrt(np.maximum(counts, 1))).astype(np.float32)[rows]
    return sp.csr_matrix((data, cols.astype(np.int32), indptr), shape=(n_docs, n_cols))


def lexicon_buckets(words: Sequence[str]) -> np.ndarray:
    """Word-space bucket of each single-token word (−1 for multi-token entries)."""
    out = np.full(len(words), -1, dtype=np.int64)
    cp, doc = _codepoints(normalise_batch(words))
    hashes, tdoc, _ = _tokens(cp, doc)
    counts = np.bincount(tdoc, minlength=len(words))
    first = np.searchsorted(tdoc, np.arange(len(words)))
    idx = np.flatnonzero(counts == 1)
    out[idx] = _mix(hashes[first[idx]], _WORD_BITS)
    return out


def feature_blocks(
    texts: Sequence[str], lexicons: dict[str, np.ndarray] | None = None
) -> tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]:
    """(word 1–2-grams, char 2–5-grams, lexicon sums) for a batch.

    ``lexicons`` maps a name in LEXICONS to a dense valence table over the word space.
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
    crow, ccol = _char_ngrams(cp, doc)
    chars = _block(crow, ccol, n, _N_CHAR)
    lex = np.zeros((n, _N_LEX), dtype=np.float32)
    for k, name in enumerate(LEXICONS):
        table = (lexicons or {}).get(name)
        if table is None:
            continue
        v = table[uni]
        # Squashed sums: a second insult adds less than the first.
        lex[:, 2 * k] = np.tanh(np.bincount(tdoc, weights=np.maximum(v, 0), minlength=n) / 4.0)
        lex[:, 2 * k + 1] = np.tanh(np.bincount(tdoc, weights=np.maximum(-v, 0), minlength=n) / 4.0)
    return words, chars, lex


def featurise(texts: Sequence[str], lexicons: dict[str, np.ndarray] | None = None) -> sp.csr_matrix:
    """Sparse (n, _N_FEATURES) matrix: [word 1–2-grams | char 2–5-grams | lexicon sums] (for training)."""
    words, chars, lex = feature_blocks(texts, lexicons)
    return sp.hstack([words, chars, sp.csr_matrix(lex)], format="csr")


# -- language identification -----------------------------------------------------------


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
        self._ptc = np.asarray(ident.nb_ptc, dtype=np.float32)
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
        lens = np.fromiter((len(b) for b in enc), dtype=np.int64, count=n)
        order = np.argsort(-lens, kind="stable")
        slens = lens[order]
        width = int(slens[0]) if n else 0
        buf = np.zeros((n, max(width, 1)), dtype=np.int64)
        flat = np.frombuffer(b"".join(enc[i] for i in order), dtype=np.uint8)
        rows = np.repeat(np.arange(n), slens)
        cols = np.arange(flat.size) - np.repeat(np.cumsum(slens) - slens, slens)
        buf[rows, cols] = flat
        feats = np.full((n, max(width, 1)), -1, dtype=np.int64)
        state = np.zeros(n, dtype=np.int64)
        alive = n
        for pos in range(width):
            while alive and slens[alive - 1] <= pos:  # sorted by length: finished texts drop off the end
                alive -= 1
            s = self._next[self._rowbase[state[:alive]] + buf[:alive, pos]].astype(np.int64)
            state[:alive] = s
            feats[:alive, pos] = self._out[s]
        r, c = np.nonzero(feats >= 0)
        counts = sp.csr_matrix((np.ones(r.size, dtype=np.float32), (r, feats[r, c])), shape=(n, self._ptc.shape[0]))
        counts.sum_duplicates()
        np.log1p(counts.data, out=counts.data)
        scores = np.asarray(counts @ self._ptc) + self._pc
        has = np.diff(counts.indptr) > 0
        scores[~has] = 0.0  # no feature at all: uniform, as py3langid
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
        self.sentiment_classes: tuple[str, ...] = tuple(specs["sentiment"]["classes"])

    def proba(self, blocks: tuple[sp.csr_matrix, sp.csr_matrix, np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        words, chars, lex = blocks
        w = self.coef
        logits = words @ w[:_N_WORD] + chars @ w[_N_WORD : _N_WORD + _N_CHAR] + lex @ w[_N_WORD + _N_CHAR :] + self.bias
        p_off = 1.0 / (1.0 + np.exp(-logits[:, 0]))
        p_cmp = 1.0 / (1.0 + np.exp(-logits[:, 1]))
        s = logits[:, 2:5]
        s = np.exp(s - s.max(axis=1, keepdims=True))
        return p_off, p_cmp, s / s.sum(axis=1, keepdims=True)


_KW_TOKEN = re.compile(r"[@#]*\w+")


class _KeywordMatcher:
    """Word-boundary, case- and accent-insensitive matching of multi-language keyword lists.

    Most terms are one token: those are set look-ups on the text's tokens. A type's full
    regex runs only when a text holds the first token of one of its multi-word terms.
    """

    def __init__(self, crisis_types: Sequence[CrisisType]) -> None:
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        self._single: dict[str, set[str]] = {}  # token -> type ids
        self._multi: dict[str, set[str]] = {}  # first token of a longer term -> type ids
        self._always: set[str] = set()  # types with a term that has no word token at all
        for ct in crisis_types:
            terms = sorted({fold(t).strip() for ts in ct.keywords.values() for t in ts if t.strip()}, key=len, reverse=True)
            if not terms:
                continue
            alts = "|".join(r"\s+".join(re.escape(p) for p in term.split()) for term in terms)
            # Terms may start or end with a non-word char (@brand, #tag): only require a
            # boundary on the sides that are word characters.
            self._rules.append((ct.id, re.compile(rf"(?<![\w@#])(?:{alts})(?!\w)")))
            for term in terms:
                toks = _KW_TOKEN.findall(term)
                if len(toks) == 1 and toks[0] == term:
                    self._single.setdefault(term, set()).add(ct.id)
                elif toks:
                    self._multi.setdefault(toks[0], set()).add(ct.id)
                else:
                    self._always.add(ct.id)
        self._regex = dict(self._rules)

    def match(self, folded: str) -> tuple[str, ...]:
        if not self._rules:
            return ()
        toks = set(_KW_TOKEN.findall(folded))
        hits: set[str] = set()
        for t in toks.intersection(self._single):
            hits |= self._single[t]
        check = set(self._always)
        for t in toks.intersection(self._multi):
            check |= self._multi[t]
        hits |= {tid for tid in check - hits if self._regex[tid].search(folded)}
        return tuple(tid for tid, _ in self._rules if tid in hits)

    def match_exact(self, folded: str) -> tuple[str, ...]:
        """Reference: every type's full pattern (tests compare match() with it)."""
        return tuple(tid for tid, rx in self._rules if rx.search(folded))


class Triage:
    def __init__(self, crisis_types: Sequence[CrisisType] = (), languages: Sequence[str] | None = None) -> None:
        langs = [lang for lang in (languages or SUPPORTED_LANGS)]
        unknown = sorted(set(langs) - set(SUPPORTED_LANGS))
        if unknown:
            raise ConfigError(f"unsupported language(s) {unknown}; supported: {list(SUPPORTED_LANGS)}")
        self.languages = tuple(langs)
        model = _load_model()
        self._heads = _Heads(model)
        self._lexicons = _lexicon_tables(model)
        self._spam = re.compile(model.get("spam_pattern", r"$^"))
        self._langid = _lang_identifier(self.languages)
        self._keywords = _KeywordMatcher(crisis_types)
        self._default_lang = "en" if "en" in self.languages else self.languages[0]

    def _langs(self, texts: Sequence[str], hints: Sequence[str | None]) -> list[str]:
        probs = self._langid.proba(texts)
        classes = self._langid.classes
        best = [classes[i] for i in probs.argmax(axis=1)]
        out: list[str] = []
        for i, text in enumerate(texts):
            hint = hints[i]
            if hint:
                hint = hint.lower().split("-")[0].split("_")[0]
            if not any(c.isalpha() for c in text):  # emoji-only or empty: nothing to identify
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

    def label_batch(self, texts: Sequence[str], lang_hints: Sequence[str] | None = None) -> list[Labels]:
        texts = list(texts)
        if lang_hints is not None and len(lang_hints) != len(texts):
            raise ConfigError("lang_hints must be as long as texts")
        if not texts:
            return []
        p_off, p_cmp, p_sent = self._heads.proba(feature_blocks(texts, self._lexicons))
        order = [self._heads.sentiment_classes.index(c) for c in SENTIMENTS]
        p_sent = p_sent[:, order]
        sent_idx = p_sent.argmax(axis=1).tolist()
        sent_score = np.round(p_sent[:, 2] - p_sent[:, 0], 4).tolist()
        spam = [bool(self._spam.search(t.lower())) for t in texts]
        off = np.where(spam, np.maximum(p_off, 0.99), p_off)
        off_flag = (off >= self._heads.thresholds["offensive"]).tolist()
        cmp_flag = (p_cmp >= self._heads.thresholds["complaint"]).tolist()
        off_score = np.round(off, 4).tolist()
        cmp_score = np.round(p_cmp, 4).tolist()
        langs = self._langs(texts, lang_hints if lang_hints is not None else [None] * len(texts))
        kw = self._keywords
        types = [kw.match(fold(t)) for t in texts] if kw._rules else [()] * len(texts)
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


@lru_cache(maxsize=8)
def _lang_identifier(languages: tuple[str, ...]) -> _BatchLangId:
    return _BatchLangId(languages)


_TRIAGE_CACHE: dict[tuple, Triage] = {}


def load_triage(playbook: Playbook | None = None) -> Triage:
    """A Triage for this playbook's crisis types and languages; built once per playbook."""
    if playbook is None:
        key: tuple = ()
        types: Sequence[CrisisType] = ()
        langs: Sequence[str] | None = None
    else:
        types = playbook.crisis_types
        # Mentions arrive in languages the brand does not list: identify over the whole
        # supported set rather than forcing them into the brand's languages.
        langs = None
        key = (playbook.model_dump_json(include={"crisis_types"}),)
    tri = _TRIAGE_CACHE.get(key)
    if tri is None:
        tri = _TRIAGE_CACHE[key] = Triage(types, langs)
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
