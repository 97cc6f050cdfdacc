"""Storm topic terms: ``dominant_terms`` names what a storm is about by its most distinctive
words and two-word phrases against a background (weighted log-odds with an informative
Dirichlet prior), and the stop words of the supported languages it leaves out.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Sequence

from firebreak.tasks.triage.folding import normalise

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
