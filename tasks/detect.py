"""Detect stage: run the online detector over the brand's stored mention buckets.

The brand's volume is one series; each crisis type of the playbook (a topic: mentions the
classify stage tagged with it) and, when the brand has several, each platform is another,
each with its own detector. A topic storm is seen on its own series while it is still
small beside a busy brand's everyday chatter, and a storm confined to one platform is
seen against that platform's own baseline.

The detectors are replayed over the playbook's history window on each run (cheap: a few
thousand buckets) and only buckets completed since the last run can raise a signal, so
two monitor runs never report the same bucket and a restart loses none. A series with no
new bucket of at least ``min_volume`` mentions cannot alert, so it is not replayed: most
runs replay few series or none. Of the series that alert, the earliest bucket wins (the
brand, then topics, then platforms on a tie); the signal names its series (``scope``)
and also carries the brand's own figures at that bucket, which severity rules are
written against. Whether the signal opens an incident or joins the one under way is decided
in one place for every source of signals (tasks/incident.py: one storm, one incident).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlalchemy.orm import Session
from sqlalchemy import BigInteger, ColumnElement, Integer, String, case, cast, extract, func, literal, select

from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook
from firebreak.domain import utcnow
from firebreak.store.db import Database
from firebreak.store.models import Incident, IncidentStatus, IngestCursor, Mention, Signal
from firebreak.tasks.detection.detector import Decision, Detector

log = get_logger("firebreak.tasks.detect")
DETECT_STREAM = ("*", "detect")
ALL = "all"
TOPIC = "topic:"
PLATFORM = "platform:"


@dataclass
class Bucket:
    end: datetime
    volume: int = 0
    negative: int = 0
    reach: int = 0  # followers of the authors, summed
    platforms: frozenset[str] = frozenset()
    negative_reach: int = 0  # followers of the negative mentions' authors, summed


def floor_time(t: datetime, minutes: int) -> datetime:
    epoch = int(t.timestamp())
    step = minutes * 60
    return datetime.fromtimestamp(epoch - epoch % step, tz=t.tzinfo)


def _epoch_seconds(dialect: str) -> ColumnElement[int]:
    """Whole seconds since the epoch of `Mention.created_at`, stored as UTC by both dialects."""
    if dialect == "postgresql":
        return cast(func.floor(extract("epoch", Mention.created_at)), BigInteger)
    return cast(func.strftime("%s", Mention.created_at), Integer)


def scopes(playbook: Playbook) -> list[str]:
    """The series the detect stage watches, in tie-break order: the brand, each crisis type,
    and each platform when the brand has more than one (else it is the brand's series)."""
    out = [ALL, *(TOPIC + t.id for t in playbook.crisis_types)]
    platforms = [p.value for p in playbook.brand.accounts]
    return out + ([PLATFORM + p for p in platforms] if len(platforms) > 1 else [])


def _codes(values: tuple, distinct: list) -> np.ndarray:
    """Each value's position in ``distinct``."""
    code = {v: k for k, v in enumerate(distinct)}
    return np.fromiter((code[v] for v in values), dtype=np.int64, count=len(values))


def scope_buckets(db: Database, brand: str, watched: list[str], start: datetime, end: datetime,
                  minutes: int) -> dict[str, list[Bucket]]:
    """Complete buckets in [start, end) of each watched scope, every one present (empty ones
    count as zero).

    Counted by the database, per bucket, platform and set of crisis types (there are few
    distinct sets): a busy brand has hundreds of thousands of mentions in the history
    window, and every monitor run reads it. The groups are then summed per scope with numpy.
    """
    start, end = floor_time(start, minutes), floor_time(end, minutes)
    step = timedelta(minutes=minutes)
    seconds = minutes * 60
    by_topic = any(s.startswith(TOPIC) for s in watched)
    with db.session() as s:
        index = (_epoch_seconds(db.dialect) // literal(seconds, Integer)).label("bucket")
        types = cast(Mention.crisis_types, String) if by_topic else literal(None, String)
        keys = (index, Mention.platform, types) if by_topic else (index, Mention.platform)
        rows = s.execute(
            select(index, Mention.platform, types, func.count(),
                   func.coalesce(func.sum(case((Mention.sentiment == "negative", 1), else_=0)), 0),
                   func.coalesce(func.sum(func.coalesce(Mention.author_followers, 0)), 0),
                   func.coalesce(func.sum(case((Mention.sentiment == "negative", func.coalesce(Mention.author_followers, 0)),
                                               else_=0)), 0))
            .where(Mention.brand == brand, Mention.created_at >= start, Mention.created_at < end)
            .group_by(*keys)
        ).all()
    n = int((end - start) / step)
    ends = [start + (i + 1) * step for i in range(n)]
    cols = list(zip(*rows)) if rows else [()] * 7
    idx = np.asarray(cols[0], dtype=np.int64) - int(start.timestamp()) // seconds
    counts = [np.asarray(c, dtype=np.float64) for c in cols[3:7]]  # volume, negative, followers, negative followers
    names = sorted(set(cols[1]))
    pcode = _codes(cols[1], names)
    tag_sets = sorted(set(cols[2]), key=str)
    tcode = _codes(cols[2], tag_sets)
    topics_of = [{TOPIC + t for t in json.loads(tagged or "[]") or []} for tagged in tag_sets]
    platform_sets: dict[int, frozenset[str]] = {}

    def series(mask: np.ndarray) -> list[Bucket]:
        vol, neg, reach, neg_reach = (np.bincount(idx[mask], weights=c[mask], minlength=n).astype(np.int64).tolist() for c in counts)
        bits = np.zeros(n, dtype=np.int64)
        np.bitwise_or.at(bits, idx[mask], np.left_shift(1, pcode[mask]))
        out = []
        for i, b in enumerate(bits.tolist()):
            if b not in platform_sets:
                platform_sets[b] = frozenset(p for k, p in enumerate(names) if b >> k & 1)
            out.append(Bucket(ends[i], vol[i], neg[i], reach[i], platform_sets[b], neg_reach[i]))
        return out

    out: dict[str, list[Bucket]] = {}
    for scope in watched:
        if scope == ALL:
            mask = np.ones(idx.size, dtype=bool)
        elif scope.startswith(PLATFORM):
            p = scope.removeprefix(PLATFORM)
            mask = pcode == (names.index(p) if p in names else -1)  # no mention there yet: all zeros
        else:
            mask = np.isin(tcode, [k for k, topics in enumerate(topics_of) if scope in topics])
        out[scope] = series(mask)
    return out


def buckets(db: Database, brand: str, start: datetime, end: datetime, minutes: int) -> list[Bucket]:
    """The brand's own series: complete buckets in [start, end), empty ones as zero."""
    return scope_buckets(db, brand, [ALL], start, end, minutes)[ALL]


def replay(playbook: Playbook, series: list[Bucket], scope: str = ALL,
           heightened: list[tuple[datetime, datetime]] | None = None) -> list[Decision]:
    # A platform's series is silenced by quiet windows for that platform too.
    det = Detector(playbook.detection, platform=scope.removeprefix(PLATFORM) if scope.startswith(PLATFORM) else None,
                   heightened=heightened or ())
    return [det.update(b.end, b.volume, negative=b.negative, platforms=len(b.platforms), negative_reach=b.negative_reach)
            for b in series]


@dataclass(frozen=True)
class Alert:
    scope: str
    bucket: Bucket
    decision: Decision


def first_alerts(playbook: Playbook, series: dict[str, list[Bucket]], after: datetime | None,
                 *, prune: bool = True, replayed: dict[str, list[Decision]] | None = None,
                 heightened: list[tuple[datetime, datetime]] | None = None) -> list[Alert]:
    """Each scope's first alert in a bucket ending after ``after``, earliest first (ties in
    ``series`` order). ``prune`` skips scopes that cannot alert: the same result, less work.
    The decisions of every scope replayed are left in ``replayed``."""
    found: list[tuple[datetime, int, Alert]] = []
    replayed = {} if replayed is None else replayed
    for order, (scope, ser) in enumerate(series.items()):
        new = [i for i, b in enumerate(ser) if after is None or b.end > after]
        if prune and not any(ser[i].volume >= playbook.detection.min_volume for i in new):
            continue  # every alert needs min_volume mentions in its bucket
        decisions = replayed[scope] = replay(playbook, ser, scope, heightened)
        hit = next((i for i in new if decisions[i].alert), None)
        if hit is not None:
            found.append((ser[hit].end, order, Alert(scope, ser[hit], decisions[hit])))
    return [a for _, _, a in sorted(found, key=lambda f: f[:2])]


@dataclass(frozen=True)
class SeriesScore:
    """How close one series came to alerting in the buckets a run scored: the bucket with the
    highest score, against the alert threshold (a score of ``THRESHOLD``)."""
    scope: str
    buckets: int  # complete buckets scored in this run
    at: datetime | None = None  # the bucket that came closest
    volume: int = 0
    baseline: float | None = None  # None: not replayed (no new bucket reached min_volume)
    score: float | None = None
    alert: bool = False

    THRESHOLD = 0.5  # a Decision's score is 0.5 at the alert threshold

    def verdict(self, min_volume: int) -> str:
        if self.buckets == 0:
            return "no complete bucket since the last run"
        if self.alert:
            return "alert"
        if self.score is None:
            return f"quiet: at most {self.volume} mentions a bucket, alerts need {min_volume}"
        return f"{self.score / self.THRESHOLD:.0%} of the way to an alert"


def _scores(series: dict[str, list[Bucket]], after: datetime | None,
            replayed: dict[str, list[Decision]]) -> list[SeriesScore]:
    out = []
    for scope, ser in series.items():
        new = [i for i, b in enumerate(ser) if after is None or b.end > after]
        if not new:
            out.append(SeriesScore(scope, 0))
        elif scope not in replayed:
            out.append(SeriesScore(scope, len(new), volume=max(ser[i].volume for i in new)))
        else:
            i = max(new, key=lambda j: (replayed[scope][j].alert, replayed[scope][j].score))
            d = replayed[scope][i]
            out.append(SeriesScore(scope, len(new), d.at, d.volume, d.baseline, d.score, d.alert))
    return out


def detect(db: Database, playbook: Playbook, now: datetime, *, scores: list[SeriesScore] | None = None) -> Signal | None:
    """Evaluate buckets completed since the last run; store and return a new signal, if any.
    ``scores``, when given, receives how close every series came (monitor shows it as a table)."""
    brand = playbook.brand.id
    cfg = playbook.detection
    start = now - timedelta(days=cfg.history_days)
    series = scope_buckets(db, brand, scopes(playbook), start, now, cfg.bucket_minutes)
    with db.session() as s:
        mark = s.get(IngestCursor, (brand, *DETECT_STREAM))
        last = datetime.fromisoformat(mark.high_water) if mark and mark.high_water else None
        replayed: dict[str, list[Decision]] = {}
        alerts = first_alerts(playbook, series, last, replayed=replayed, heightened=heightened_windows(s, playbook, start))
        fired = alerts[0] if alerts else None
        if scores is not None:
            scores.extend(_scores(series, last, replayed))
        if series[ALL]:
            newest = series[ALL][-1].end if fired is None else fired.bucket.end
            if mark is None:
                mark = IngestCursor(brand=brand, platform=DETECT_STREAM[0], stream=DETECT_STREAM[1], updated_at=utcnow())
                s.add(mark)
            mark.high_water = newest.isoformat()
            mark.updated_at = utcnow()
        if fired is None:
            return None
        b, d = fired.bucket, fired.decision
        sig = Signal(
            brand=brand, scope=fired.scope, at=b.end, kind="+".join(d.reasons) or "volume", score=d.score,
            volume=b.volume, baseline=d.baseline, negative_share=(b.negative / b.volume) if b.volume else 0.0,
            platforms=sorted(b.platforms),
            details={"ratio": d.ratio, "reach": b.reach, "negative_reach": b.negative_reach, "reasons": list(d.reasons),
                     "scopes": [a.scope for a in alerts if a.bucket.end == b.end],
                     # Every series is part of the brand's, so its replay was not skipped.
                     "brand": _brand_figures(replayed[ALL], fired)},
            detected_at=utcnow(),
        )
        s.add(sig)
    log.info(f"Signal on {fired.scope} at {b.end.isoformat()}: {b.volume} mentions against a baseline of "
             f"{d.baseline:.1f} ({', '.join(d.reasons)})", brand=brand)
    return sig


def heightened_windows(s: Session, playbook: Playbook, since: datetime) -> list[tuple[datetime, datetime]]:
    """The heightened-alert windows of the brand's incidents resolved since ``since``: from
    the all-clear to ``resolve.heightened_alert_hours`` later, in platform time (the resolve
    flow records the end on the incident)."""
    hours = timedelta(hours=playbook.resolve.heightened_alert_hours)
    rows = s.scalars(select(Incident).where(Incident.brand == playbook.brand.id,
                                            Incident.status == IncidentStatus.RESOLVED, Incident.resolved_at >= since))
    ends = [inc.summary.heightened_alert_until for inc in rows]
    return [(end - hours, end) for end in ends if end is not None and hours]


def _brand_figures(brand_decisions: list[Decision], fired: Alert) -> dict[str, float]:
    """The brand's volume, baseline and ratio in the bucket that fired (severity rules speak
    of the brand's volume, whatever series saw the storm first)."""
    d = next(x for x in brand_decisions if x.at == fired.bucket.end)
    return {"volume": d.volume, "baseline": d.baseline, "ratio": d.ratio}


def baseline_ratio(db: Database, playbook: Playbook, now: datetime, window_buckets: int = 3) -> tuple[float, list[Decision]]:
    """Current volume / baseline over the last few buckets (follow-up cadence, all-clear)."""
    cfg = playbook.detection
    series = buckets(db, playbook.brand.id, now - timedelta(days=cfg.history_days), now, cfg.bucket_minutes)
    decisions = replay(playbook, series)
    recent = decisions[-window_buckets:]
    if not recent:
        return 0.0, decisions
    vol = sum(d.volume for d in recent) / len(recent)
    base = sum(d.baseline for d in recent) / len(recent)
    return vol / max(base, 1.0), decisions
