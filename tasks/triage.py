"""Per-mention labels: language, sentiment, offensive/spam (hide), complaint, crisis types.

Models are linear (logistic regression) over hashed word 1–2-grams and character 2–5-grams,
trained by ``scripts/train_triage.py`` and stored in ``tasks/models/`` as float16
weight vectors — no vocabulary, no pickled estimator, so nothing depends on the
scikit-learn version that trained them and nothing is downloaded at run time.
Hashing keeps the feature space shared across languages, which is what lets the
sentiment model say something about languages it has no labelled tweets for.

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
from py3langid import langid
from sklearn.feature_extraction.text import HashingVectorizer

from firebreak.errors import ConfigError

if TYPE_CHECKING:
    from firebreak.config.playbook import CrisisType, Playbook

MODEL_DIR = Path(__file__).with_name("models")
MODEL_FILE = MODEL_DIR / "triage.joblib"
SUPPORTED_LANGS: tuple[str, ...] = ("en", "nl", "sv", "fr", "pl", "id", "de", "es", "it", "pt")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
_HINT_PRIOR = 4.0  # the platform's own language tag multiplies that language's probability
_N_FEATURES = 2**18

_URL = re.compile(r"https?://\S+|www\.\S+|\bURL\b")
_USER = re.compile(r"@\w+|\bUSER\b|@anonymized_account")
_REPEAT = re.compile(r"(.)\1{3,}")
_WS = re.compile(r"\s+")
_UNI_ESC = re.compile(r"\\u([0-9a-fA-F]{4})")


def normalise(text: str) -> str:
    """The same cleaning at training and at inference: corpora anonymise differently."""
    if "\\u" in text:  # XLM-T stores emoji as escaped UTF-16 surrogate pairs
        text = _UNI_ESC.sub(lambda m: chr(int(m.group(1), 16)), text)
        text = text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")
    text = _URL.sub(" httpurl ", text)
    text = _USER.sub(" @user ", text)
    text = _REPEAT.sub(r"\1\1\1", text.lower())
    return _WS.sub(" ", text).strip()


_FOLD = str.maketrans({"ł": "l", "Ł": "L", "ø": "o", "Ø": "O", "æ": "ae", "ß": "ss", "đ": "d", "’": "'", "‘": "'"})


def fold(text: str) -> str:
    """Case- and accent-insensitive form for keyword matching (é→e, ł→l, ö→o)."""
    text = unicodedata.normalize("NFKD", text.translate(_FOLD).casefold())
    return "".join(c for c in text if not unicodedata.combining(c))


def make_vectorizers() -> tuple[HashingVectorizer, HashingVectorizer]:
    common = dict(n_features=_N_FEATURES, alternate_sign=False, norm="l2", lowercase=False, dtype=np.float32)
    words = HashingVectorizer(analyzer="word", ngram_range=(1, 2), token_pattern=r"(?u)[@#]?\w+|[^\w\s]{1,3}", **common)
    chars = HashingVectorizer(analyzer="char_wb", ngram_range=(2, 5), **common)
    return words, chars


def featurise(texts: Sequence[str], vecs: tuple[HashingVectorizer, HashingVectorizer] | None = None):  # noqa: ANN201
    """Sparse (n, 2**18) matrix: word and char features hashed into one space, summed."""
    words, chars = vecs or make_vectorizers()
    clean = [normalise(t) for t in texts]
    return words.transform(clean) + chars.transform(clean)


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


class _Linear:
    """One stored logistic-regression head: weights (k, n_features) float16, bias (k,)."""

    def __init__(self, spec: dict) -> None:
        self.classes: tuple[str, ...] = tuple(spec["classes"])
        self.coef = np.asarray(spec["coef"], dtype=np.float32)
        self.bias = np.asarray(spec["bias"], dtype=np.float32)
        self.threshold = float(spec.get("threshold", 0.5))

    def proba(self, X) -> np.ndarray:  # noqa: ANN001 - scipy sparse
        logits = np.asarray(X @ self.coef.T) + self.bias
        if logits.shape[1] == 1:  # binary head: P(positive class)
            return 1.0 / (1.0 + np.exp(-logits[:, 0]))
        logits -= logits.max(axis=1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(axis=1, keepdims=True)


class _KeywordMatcher:
    """Word-boundary, case- and accent-insensitive matching of multi-language keyword lists."""

    def __init__(self, crisis_types: Sequence[CrisisType]) -> None:
        self._rules: list[tuple[str, re.Pattern[str]]] = []
        for ct in crisis_types:
            terms = sorted({fold(t).strip() for ts in ct.keywords.values() for t in ts if t.strip()}, key=len, reverse=True)
            if not terms:
                continue
            alts = "|".join(r"\s+".join(re.escape(p) for p in term.split()) for term in terms)
            # Terms may start or end with a non-word char (@brand, #tag): only require a
            # boundary on the sides that are word characters.
            self._rules.append((ct.id, re.compile(rf"(?<![\w@#])(?:{alts})(?!\w)")))

    def match(self, folded: str) -> tuple[str, ...]:
        return tuple(tid for tid, rx in self._rules if rx.search(folded))


class Triage:
    def __init__(self, crisis_types: Sequence[CrisisType] = (), languages: Sequence[str] | None = None) -> None:
        langs = [lang for lang in (languages or SUPPORTED_LANGS)]
        unknown = sorted(set(langs) - set(SUPPORTED_LANGS))
        if unknown:
            raise ConfigError(f"unsupported language(s) {unknown}; supported: {list(SUPPORTED_LANGS)}")
        self.languages = tuple(langs)
        model = _load_model()
        self._offensive = _Linear(model["offensive"])
        self._complaint = _Linear(model["complaint"])
        self._sentiment = _Linear(model["sentiment"])
        self._spam = re.compile(model.get("spam_pattern", r"$^"))
        self._vecs = make_vectorizers()
        self._langid = _lang_identifier(self.languages)
        self._keywords = _KeywordMatcher(crisis_types)

    def _lang(self, text: str, hint: str | None) -> str:
        if hint:
            hint = hint.lower().split("-")[0].split("_")[0]
        if not any(c.isalpha() for c in text):  # emoji-only or empty: nothing to identify
            return hint if hint in self.languages else ("en" if "en" in self.languages else self.languages[0])
        ranked = self._langid.rank(text)
        if hint in self.languages:
            # The platform's tag is a prior, not the answer: short texts fool both.
            ranked = [(lang, p * _HINT_PRIOR if lang == hint else p) for lang, p in ranked]
            if len(text.split()) < 3:
                return hint
        return max(ranked, key=lambda lp: lp[1])[0]

    def label_batch(self, texts: Sequence[str], lang_hints: Sequence[str] | None = None) -> list[Labels]:
        texts = list(texts)
        if lang_hints is not None and len(lang_hints) != len(texts):
            raise ConfigError("lang_hints must be as long as texts")
        if not texts:
            return []
        X = featurise(texts, self._vecs)
        p_off = self._offensive.proba(X)
        p_cmp = self._complaint.proba(X)
        p_sent = self._sentiment.proba(X)
        neg, neu, pos = (self._sentiment.classes.index(c) for c in SENTIMENTS)
        out: list[Labels] = []
        for i, text in enumerate(texts):
            hint = lang_hints[i] if lang_hints is not None else None
            spam = bool(self._spam.search(text.lower()))
            off = max(float(p_off[i]), 0.99 if spam else 0.0)
            ps = p_sent[i]
            out.append(
                Labels(
                    lang=self._lang(text, hint),
                    sentiment=SENTIMENTS[int(np.argmax([ps[neg], ps[neu], ps[pos]]))],
                    sentiment_score=round(float(ps[pos] - ps[neg]), 4),
                    offensive=off >= self._offensive.threshold,
                    offensive_score=round(off, 4),
                    complaint=bool(p_cmp[i] >= self._complaint.threshold),
                    complaint_score=round(float(p_cmp[i]), 4),
                    crisis_types=self._keywords.match(fold(text)),
                )
            )
        return out

    def label(self, text: str, lang_hint: str | None = None) -> Labels:
        return self.label_batch([text], None if lang_hint is None else [lang_hint])[0]


@lru_cache(maxsize=1)
def _load_model() -> dict:
    try:
        model = joblib.load(MODEL_FILE)
    except FileNotFoundError:
        raise ConfigError(f"triage model {MODEL_FILE} is missing; run scripts/train_triage.py") from None
    if model.get("n_features") != _N_FEATURES:
        raise ConfigError(f"triage model {MODEL_FILE} was trained with another feature space; retrain it")
    return model


@lru_cache(maxsize=8)
def _lang_identifier(languages: tuple[str, ...]) -> langid.LanguageIdentifier:
    ident = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)
    ident.set_languages(list(languages))
    return ident


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
