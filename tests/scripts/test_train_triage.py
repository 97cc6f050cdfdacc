"""Pieces of scripts/train_triage.py that turn third-party models into lexicons."""

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))

import train_triage as tt  # noqa: E402
from profanity_check import profanity_check  # noqa: E402


def test_profanity_weights_reproduce_the_package_decision() -> None:
    words, weights = tt.profanity_weights()
    vec = profanity_check.vectorizer
    assert words == sorted(vec.vocabulary_, key=vec.vocabulary_.__getitem__)
    texts = [
        "you are a fucking idiot",
        "shut up bitch",
        "this is bullshit and you know it",
        "thanks for the quick reply, the parcel arrived today",
        "the train was late again this morning",
        "lovely weather for a walk in the park",
        "what a stupid decision by the council",
        "I hate waiting on hold for an hour",
    ]
    # The weights carry the IDF, and the package's input is TF-IDF: dividing it back out
    # gives the package's averaged linear decision on each text.
    ours = vec.transform(texts) @ (np.asarray(weights) / vec.idf_)
    theirs = profanity_check.predict_prob(texts)
    assert np.array_equal(np.argsort(ours), np.argsort(theirs))
    # Its calibration puts the 0.5 line at a decision of about 1.15, on our scale 0.0115.
    assert min(ours[:3]) > 0.1 and max(ours[3:6]) < 0.0115


def test_profanity_weights_are_on_the_lexicon_scale() -> None:
    words, weights = tt.profanity_weights()
    w = dict(zip(words, weights))
    assert len(words) > 10_000 and len(set(words)) == len(words)
    assert 0.8 < w["fuck"] < 3 and w["idiot"] > 0.5 and abs(w["weather"]) < 0.3
    assert np.percentile(np.abs(weights), 90) < 0.4


def test_macro_ci_brackets_sklearns_figure_and_narrows_with_more_texts() -> None:
    rng = np.random.default_rng(3)

    def sample(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = rng.integers(0, 3, n)
        return y, np.where(rng.random(n) < 0.7, y, rng.integers(0, 3, n))

    def parse(text: str) -> tuple[float, float, float]:
        point, rest = text.split(" [")
        lo, hi = rest.rstrip("]").split("–")
        return float(point), float(lo), float(hi)

    small, large = parse(tt.macro_ci(*sample(300))), parse(tt.macro_ci(*sample(3000)))
    for point, lo, hi in (small, large):
        assert lo < point < hi
    assert large[2] - large[1] < (small[2] - small[1]) / 2
    y, p = sample(300)
    assert tt.macro_ci(y, p) == tt.macro_ci(y, p)  # fixed seed
    # Binary sets labelled 0/2 (sv/pl) average over those two labels only, as sklearn does.
    y2, p2 = np.where(y[:200] > 0, 2, 0), np.where(p[:200] > 0, 2, 0)
    assert parse(tt.macro_ci(y2, p2))[0] == tt.macro(y2, p2)
