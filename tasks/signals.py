"""Detect stage: run the online detector over the brand's stored mention buckets.

The detector is replayed over the playbook's history window on each run (cheap: a few
thousand buckets) and only buckets completed since the last run can raise a signal, so
two monitor runs never report the same bucket and a restart loses none. An open incident
absorbs further signals (one storm, one incident).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import BigInteger, ColumnElement, Integer, case, cast, extract, func, literal, select

from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook
from firebreak.domain import utcnow
from firebreak.store.db import Database
from firebreak.store.models import Incident, IngestCursor, Mention, Signal
from firebreak.tasks.detect import Decision, Detector

log = get_logger("firebreak.tasks.signals")
DETECT_STREAM = ("*", "detect")


@dataclass
class Bucket:
    end: datetime
    volume: int = 0
    negative: int = 0
    reach: int = 0
    platforms: frozenset[str] = frozenset()


def floor_time(t: datetime, minutes: int) -> datetime:
    epoch = int(t.timestamp())
    step = minutes * 60
    return datetime.fromtimestamp(epoch - epoch % step, tz=t.tzinfo)


def _epoch_seconds(dialect: str) -> ColumnElement[int]:
    """Whole seconds since the epoch of `Mention.created_at`, stored as UTC by both dialects."""
    if dialect == "postgresql":
        return cast(func.floor(extract("epoch", Mention.created_at)), BigInteger)
    return cast(func.strftime("%s", Mention.created_at), Integer)


def buckets(db: Database, brand: str, start: datetime, end: datetime, minutes: int) -> list[Bucket]:
    """Complete buckets in [start, end), every one present (empty ones count as zero).

    Counted by the database, per bucket and platform: a busy brand has hundreds of
    thousands of mentions in the history window, and every monitor run reads it.
    """
    start, end = floor_time(start, minutes), floor_time(end, minutes)
    step = timedelta(minutes=minutes)
    seconds = minutes * 60
    counts: dict[datetime, list] = defaultdict(lambda: [0, 0, 0, set()])
    with db.session() as s:
        index = (_epoch_seconds(db.dialect) // literal(seconds, Integer)).label("bucket")
        rows = s.execute(
            select(index, Mention.platform, func.count(),
                   func.sum(case((Mention.sentiment == "negative", 1), else_=0)),
                   func.sum(func.coalesce(Mention.author_followers, 0)))
            .where(Mention.brand == brand, Mention.created_at >= start, Mention.created_at < end)
            .group_by(index, Mention.platform)
        )
        for bucket, platform, volume, negative, followers in rows:
            c = counts[datetime.fromtimestamp(int(bucket) * seconds, tz=timezone.utc) + step]
            c[0] += int(volume)
            c[1] += int(negative or 0)
            c[2] += int(followers or 0)
            c[3].add(platform)
    return series_from_counts(counts, start, end, step)


def series_from_counts(counts: dict[datetime, list], start: datetime, end: datetime, step: timedelta) -> list[Bucket]:
    """Every bucket ending in (start, end], from ``{bucket end: [volume, negative, reach,
    platforms]}``; a bucket with no entry counts as zero."""
    out = []
    t = start + step
    while t <= end:
        c = counts.get(t)
        out.append(Bucket(t, c[0], c[1], c[2], frozenset(c[3])) if c else Bucket(t))
        t += step
    return out


def replay(playbook: Playbook, series: list[Bucket]) -> list[Decision]:
    det = Detector(playbook.detection)
    return [det.update(b.end, b.volume, negative=b.negative, platforms=len(b.platforms), reach=b.reach) for b in series]


def detect(db: Database, playbook: Playbook, now: datetime) -> Signal | None:
    """Evaluate buckets completed since the last run; store and return a new signal, if any."""
    brand = playbook.brand.id
    cfg = playbook.detection
    series = buckets(db, brand, now - timedelta(days=cfg.history_days), now, cfg.bucket_minutes)
    decisions = replay(playbook, series)
    with db.session() as s:
        mark = s.get(IngestCursor, (brand, *DETECT_STREAM))
        last = datetime.fromisoformat(mark.high_water) if mark and mark.high_water else None
        fired: tuple[Bucket, Decision] | None = None
        for b, d in zip(series, decisions):
            if last is not None and b.end <= last:
                continue
            if d.alert:
                fired = (b, d)
                break
        if series:
            newest = series[-1].end if fired is None else fired[0].end
            if mark is None:
                mark = IngestCursor(brand=brand, platform=DETECT_STREAM[0], stream=DETECT_STREAM[1], updated_at=utcnow())
                s.add(mark)
            mark.high_water = newest.isoformat()
            mark.updated_at = utcnow()
        if fired is None:
            return None
        b, d = fired
        sig = Signal(
            brand=brand, scope="all", at=b.end, kind="+".join(d.reasons) or "volume", score=d.score,
            volume=b.volume, baseline=d.baseline, negative_share=(b.negative / b.volume) if b.volume else 0.0,
            platforms=sorted(b.platforms), details={"ratio": d.ratio, "reach": b.reach, "reasons": list(d.reasons)},
            detected_at=utcnow(),
        )
        open_incident = s.scalars(select(Incident).where(Incident.brand == brand, Incident.status != "resolved")).first()
        if open_incident is not None:
            sig.incident_id = open_incident.id
        s.add(sig)
    log.info("signal", brand=brand, at=b.end.isoformat(), volume=b.volume, baseline=round(d.baseline, 2),
             reasons=list(d.reasons), absorbed=sig.incident_id is not None)
    return sig


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
