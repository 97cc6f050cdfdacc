"""`firebreak bench triage`: full triage against VADER's `polarity_scores`, same texts, one core.

VADER gives English sentiment only; the triage gives language, sentiment, offensive,
complaint and crisis types for every supported language. Both run in this process, on
one thread (BLAS/OpenMP pools limited to one), alternating over ``runs`` repetitions so
that drift in machine load hits both alike; the medians and their ratio are reported.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from pathlib import Path

from threadpoolctl import threadpool_limits

from firebreak.errors import ConfigError
from firebreak.tasks.triage import Triage, load_triage

DEFAULT_SAMPLE = 5000
_XLMT = ("english", "french", "german", "spanish", "italian", "portuguese")


def sample_texts(data_dir: Path, n: int = DEFAULT_SAMPLE) -> list[str]:
    """A fixed, mixed-language sample: TweetEval offensive val, XLM-T val (6 languages),
    then the complaints set, interleaved so every slice mixes languages; the first ``n``."""
    data_dir = Path(data_dir)
    pools: list[list[str]] = []
    try:
        pools.append(_lines(data_dir / "tweeteval-offensive" / "val_text.txt"))
        pools += [_lines(data_dir / "xlmt-sentiment" / lang / "val_text.txt") for lang in _XLMT]
        complaints = data_dir / "complaints" / "complaints-dev.csv"
        if complaints.is_file():
            import csv

            with complaints.open(encoding="utf-8", newline="") as fh:
                pools.append([r["text"] for r in csv.DictReader(fh)])
    except FileNotFoundError as exc:
        raise ConfigError(f"bench sample: {exc.filename} is missing (expected the shared data layout)") from None
    out: list[str] = []
    for i in range(max(len(p) for p in pools)):
        out += [p[i] for p in pools if i < len(p)]
    if not out:
        raise ConfigError(f"bench sample: no texts under {data_dir}")
    return out[:n]


def _lines(path: Path) -> list[str]:
    return [t for t in path.read_text(encoding="utf-8").splitlines() if t.strip()]


def bench_triage(
    texts: Sequence[str], runs: int = 5, *, triage: Triage | None = None, batch: int = 2000
) -> dict:
    """Texts per second of the full triage and of VADER on the same texts, one core.

    The triage is timed the way the classify stage calls it (``label_batch`` in batches of
    ``batch``); VADER one text at a time, which is its only API. Model loading is outside
    the timing for both. Returns rates per run, medians, and ``ratio`` = triage / VADER.
    """
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    texts = list(texts)
    if not texts:
        raise ConfigError("bench_triage needs at least one text")
    if runs < 1:
        raise ConfigError("runs must be at least 1")
    with threadpool_limits(limits=1):
        tri = triage if triage is not None else _default_triage()
        vader = SentimentIntensityAnalyzer()
        tri.label_batch(texts[:50])  # warm caches (code-point tables, powers) outside the timing
        vader.polarity_scores(texts[0])
        tri_rates: list[float] = []
        vader_rates: list[float] = []
        labelled = 0
        for _ in range(runs):
            t0 = time.perf_counter()
            labelled = sum(len(tri.label_batch(texts[i : i + batch])) for i in range(0, len(texts), batch))
            tri_rates.append(len(texts) / (time.perf_counter() - t0))
            t0 = time.perf_counter()
            for text in texts:
                vader.polarity_scores(text)
            vader_rates.append(len(texts) / (time.perf_counter() - t0))
    tri_med = statistics.median(tri_rates)
    vader_med = statistics.median(vader_rates)
    return {
        "texts": len(texts),
        "labelled": labelled,
        "runs": runs,
        "threads": 1,
        "triage_rates": [round(r, 1) for r in tri_rates],
        "vader_rates": [round(r, 1) for r in vader_rates],
        "triage_median": round(tri_med, 1),
        "vader_median": round(vader_med, 1),
        "ratio": round(tri_med / vader_med, 3),
    }


def _default_triage() -> Triage:
    from firebreak.config.playbook import load_playbook
    from firebreak.config.settings import get_settings

    # The playbook's crisis types: keyword matching is part of the full triage.
    return load_triage(load_playbook(get_settings().playbook))


def print_bench_triage(result: dict) -> None:
    print(f"bench triage: {result['texts']} texts, {result['runs']} runs, {result['threads']} thread")
    print(f"  triage (lang, sentiment, offensive, complaint, crisis types): {result['triage_median']:,.0f} texts/s (median)")
    print(f"  VADER polarity_scores (English sentiment only):             {result['vader_median']:,.0f} texts/s (median)")
    print(f"  ratio triage / VADER: {result['ratio']:.2f}")
