"""Post-mortem charts as real PNG images (matplotlib, headless Agg backend)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from typing import Any


def _mpl() -> tuple[Any, Any]:
    """pyplot and matplotlib.dates, imported on first use: they cost about half a second, and
    every monitor run (a new process per run on a work pool) imports this module's callers."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.dates as mdates
    import matplotlib.pyplot as plt

    return plt, mdates


@dataclass(frozen=True)
class BucketStats:
    at: datetime
    total: int
    negative: int
    neutral: int
    positive: int
    needing_answer: int  # cumulative: mentions so far that need an answer
    handled: int  # cumulative: of those, answered / moved private / skipped / hidden by then


def _axes(title: str, ylabel: str):  # type: ignore[no-untyped-def]
    plt, mdates = _mpl()
    fig, ax = plt.subplots(figsize=(9, 3.2), dpi=100)
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_ylabel(ylabel)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M"))
    ax.grid(alpha=0.3)
    return fig, ax


def _save(fig, path: Path) -> Path:  # type: ignore[no-untyped-def]
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png")
    _mpl()[0].close(fig)
    return path


def volume_chart(series: list[BucketStats], detected_at: datetime | None, path: Path) -> Path:
    fig, ax = _axes("Mention volume per bucket", "mentions")
    xs = [b.at for b in series]
    ax.plot(xs, [b.total for b in series], color="#1f77b4", label="all")
    ax.plot(xs, [b.negative for b in series], color="#d62728", label="negative")
    if detected_at is not None:
        ax.axvline(detected_at, color="black", linestyle="--", linewidth=1)
        ax.annotate("detected", (detected_at, ax.get_ylim()[1] * 0.9), xytext=(4, 0), textcoords="offset points")
    ax.legend(loc="upper right")
    return _save(fig, path)


def sentiment_chart(series: list[BucketStats], path: Path) -> Path:
    fig, ax = _axes("Sentiment share per bucket", "share")
    xs = [b.at for b in series]
    totals = [max(b.total, 1) for b in series]
    neg = [b.negative / t for b, t in zip(series, totals)]
    neu = [b.neutral / t for b, t in zip(series, totals)]
    pos = [b.positive / t for b, t in zip(series, totals)]
    ax.stackplot(xs, neg, neu, pos, labels=["negative", "neutral", "positive"],
                 colors=["#d62728", "#bbbbbb", "#2ca02c"], alpha=0.85)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper right")
    return _save(fig, path)


def answered_chart(series: list[BucketStats], path: Path) -> Path:
    fig, ax = _axes("Share of mentions needing an answer that were handled", "share")
    xs = [b.at for b in series]
    ax.plot(xs, [b.handled / b.needing_answer if b.needing_answer else 1.0 for b in series], color="#9467bd")
    ax.set_ylim(0, 1.05)
    return _save(fig, path)
