"""The triage model and its use. ``Triage`` labels a batch of mentions with the linear heads
stored in ``models/triage.joblib`` as float16 weights and int8 vectors keyed by token hash
(no word list, no pickled estimator, so nothing depends on the scikit-learn version that
trained them and nothing is downloaded at run time); ``load_triage`` builds one per
playbook and caches it. ``Labels.sentiment_score`` is a signed score in [-1, 1]:
P(positive) − P(negative). A mention is offensive when its score reaches the head's
threshold for its language; spam (the model's phrase pattern or many links, checked once
per batch over the joined texts) and the playbook's ``offensive_terms`` (in the mention's
own language) score at least 0.99.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import joblib
import numpy as np
import scipy.sparse as sp

from firebreak.errors import ConfigError
from firebreak.tasks.triage.features import (
    _N_CHAR,
    _N_FEATURES,
    _N_LEX,
    _N_WORD,
    FEATURE_VERSION,
    WordVectors,
    feature_blocks,
)
from firebreak.tasks.triage.keywords import TermList, _KeywordMatcher, fold_batch
from firebreak.tasks.triage.langid import _BatchLangId

if TYPE_CHECKING:
    from firebreak.config.playbook import CrisisType, Playbook

MODEL_DIR = Path(__file__).with_name("models")
MODEL_FILE = MODEL_DIR / "triage.joblib"
SUPPORTED_LANGS: tuple[str, ...] = ("en", "nl", "sv", "fr", "pl", "id", "de", "es", "it", "pt")
SENTIMENTS: tuple[str, ...] = ("negative", "neutral", "positive")
_HINT_PRIOR = 4.0  # the platform's own language tag multiplies that language's probability
_LINK = re.compile(r"https?://\S")


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
