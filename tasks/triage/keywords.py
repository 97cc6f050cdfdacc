"""Crisis-keyword and offensive-term matching: word-boundary, case- and accent-insensitive
matching of multi-language term lists (a playbook's crisis types, or ``TermList``). It runs
once per batch over the folded, joined texts (``fold_batch``): a trie regex of all terms is
tried only where numpy found a word token that can start one, so the Python work grows
with the hits, not with the texts.
"""

from __future__ import annotations

import bisect
import itertools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from firebreak.tasks.triage.folding import fold

if TYPE_CHECKING:
    from firebreak.config.playbook import CrisisType

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


def crisis_types_in(crisis_types: Sequence[CrisisType | TermList], text: str) -> tuple[str, ...]:
    """The crisis types whose keywords occur in one text (an alert's topic and summary), by the
    same rule as a mention's."""
    return _KeywordMatcher(crisis_types).match_batch([text])[0] if text.strip() else ()
