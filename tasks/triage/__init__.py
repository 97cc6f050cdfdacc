"""Per-mention labels: language, sentiment, offensive/spam (hide), complaint, crisis types.

Models are linear (logistic regression) over hashed word 1–2-grams, hashed character
2–5-grams, a few lexicon sums (AFINN for en/fr/pl/sv/da/fi and emoticons, VADER's
English lexicon, the per-word weights of alt-profanity-check's English model) and the
sum of static word vectors distilled from a multilingual sentence encoder, trained by
``scripts/train_triage.py`` and stored in ``tasks/triage/models/``. Hashing keeps the
n-gram space shared across languages and the word vectors put translations side by
side, which is what lets the heads say something about words and languages they have no
labelled tweets for. A crisis brings tens of thousands of mentions, so every stage works
on a whole batch at once with numpy.

The package: ``folding`` (text cleaning and accent folding), ``features`` (the hashing
featuriser and word vectors), ``langid`` (batched language identification),
``keywords`` (crisis-keyword and offensive-term matching), ``model`` (``Triage``,
``Labels``, model loading, ``load_triage``) and ``topics`` (storm topic terms).
"""

from firebreak.tasks.triage.folding import fold, normalise, normalise_batch
from firebreak.tasks.triage.features import (
    EMBEDDING_DIM,
    FEATURE_VERSION,
    LEXICONS,
    WordVectors,
    feature_blocks,
    featurise,
    lexicon_buckets,
    token_hashes,
    token_strings,
)
from firebreak.tasks.triage.keywords import TermList, crisis_types_in, fold_batch
from firebreak.tasks.triage.model import (
    MODEL_DIR,
    MODEL_FILE,
    SENTIMENTS,
    SUPPORTED_LANGS,
    Labels,
    Triage,
    lexicon_tables,
    load_triage,
)
from firebreak.tasks.triage.topics import dominant_terms

__all__ = [
    "EMBEDDING_DIM",
    "FEATURE_VERSION",
    "LEXICONS",
    "MODEL_DIR",
    "MODEL_FILE",
    "SENTIMENTS",
    "SUPPORTED_LANGS",
    "Labels",
    "TermList",
    "Triage",
    "WordVectors",
    "crisis_types_in",
    "dominant_terms",
    "feature_blocks",
    "featurise",
    "fold",
    "fold_batch",
    "lexicon_buckets",
    "lexicon_tables",
    "load_triage",
    "normalise",
    "normalise_batch",
    "token_hashes",
    "token_strings",
]
