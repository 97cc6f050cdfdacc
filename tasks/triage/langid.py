"""Batched language identification. ``_BatchLangId`` walks py3langid's own byte-n-gram
automaton for every text of a batch in lock-step with numpy: the same model and the same
scores as ``py3langid.rank``, without a Python loop per byte.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp
from py3langid import langid

from firebreak.errors import ConfigError

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
