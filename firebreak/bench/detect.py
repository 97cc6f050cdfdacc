"""Detect-stage benchmark: what one monitor run pays to read the history window and replay
the detector, for a brand with many stored mentions.

`bench_detect(n_mentions, runs, url)` stores `n_mentions` mentions spread over the playbook's
history window (14 days) in a fresh database (SQLite file unless `url` names another), then
times, in one process and alternating so drift hits both alike:

* **sql**: `signals.buckets`, counted by the database per bucket and platform (what runs);
* **rows**: the baseline it replaced, every mention's row read and counted in Python;
* **replay**: the detector over the resulting buckets (the same for both);
* **scopes_sql**: `signals.scope_buckets`, every series the stage watches (the brand, each
  crisis type, each platform) counted in one query;
* **replay_every_scope**: the detector over each of those series, the most a run can cost;
* **stage**: what a monitor run does after the counting when only its newest bucket is
  new: `signals.first_alerts`, which replays only series that could alert.

One mention in eight carries a crisis type (one in 40 two), as the classify stage leaves
them. Reports medians over `runs` and the ratio rows / sql. The wired command is
`firebreak bench detect`.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from firebreak.config.playbook import Playbook
from firebreak.domain import Mention, Platform
from firebreak.store.db import Database
from firebreak.store.models import Mention as MentionRow
from firebreak.tasks.ingest import store_mentions
from firebreak.tasks.detect import (
    Bucket,
    buckets,
    first_alerts,
    floor_time,
    replay,
    scope_buckets,
    scopes,
)

NOW = datetime(2026, 3, 16, 12, 0, tzinfo=UTC)


def _fill(db: Database, brand: str, n: int, days: int, types: list[str]) -> None:
    rng = random.Random(11)
    platforms = list(Platform)
    span = days * 86400
    batch: list[Mention] = []
    for i in range(n):
        at = NOW - timedelta(seconds=rng.randrange(span))
        batch.append(Mention(platforms[i % 6], f"m{i}", "about the brand", at, author_followers=rng.randrange(10_000)))
        if len(batch) == 5000:
            with db.session() as s:
                store_mentions(s, brand, batch)
            batch = []
    if batch:
        with db.session() as s:
            store_mentions(s, brand, batch)
    with db.session() as s:  # a third negative, as the classify stage would leave them
        s.execute(MentionRow.__table__.update().where(MentionRow.id % 3 == 0).values(sentiment="negative"))
        s.execute(MentionRow.__table__.update().values(crisis_types=[]))
        for k, t in enumerate(types):
            s.execute(MentionRow.__table__.update().where(MentionRow.id % (8 * len(types)) == k).values(crisis_types=[t]))
            s.execute(MentionRow.__table__.update().where(MentionRow.id % (40 * len(types)) == k + 1)
                      .values(crisis_types=[t, types[(k + 1) % len(types)]]))


def buckets_from_rows(db: Database, brand: str, start: datetime, end: datetime, minutes: int) -> list[Bucket]:
    """The baseline: every row in the window read and counted in Python."""
    start, end = floor_time(start, minutes), floor_time(end, minutes)
    step = timedelta(minutes=minutes)
    counts: dict[datetime, list] = defaultdict(lambda: [0, 0, 0, set(), 0])
    with db.session() as s:
        rows = s.execute(select(MentionRow.created_at, MentionRow.sentiment, MentionRow.platform,
                                MentionRow.author_followers)
                         .where(MentionRow.brand == brand, MentionRow.created_at >= start, MentionRow.created_at < end))
        for created, sentiment, platform, followers in rows:
            c = counts[floor_time(created, minutes) + step]
            c[0] += 1
            c[1] += sentiment == "negative"
            c[2] += followers or 0
            c[3].add(platform)
            c[4] += (followers or 0) if sentiment == "negative" else 0
    out = []
    t = start + step
    while t <= end:
        c = counts.get(t)
        out.append(Bucket(t, c[0], c[1], c[2], frozenset(c[3]), c[4]) if c else Bucket(t))
        t += step
    return out


def bench_detect(playbook: Playbook, n_mentions: int = 200_000, runs: int = 5, url: str | None = None) -> dict[str, Any]:
    cfg = playbook.detection
    brand = playbook.brand.id
    with tempfile.TemporaryDirectory() as tmp:
        db = Database(url or f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        _fill(db, brand, n_mentions, cfg.history_days, [t.id for t in playbook.crisis_types])
        start = NOW - timedelta(days=cfg.history_days)
        watched = scopes(playbook)
        times: dict[str, list[float]] = {k: [] for k in ("sql", "rows", "replay", "scopes_sql", "replay_every_scope", "stage")}
        for _ in range(runs):
            t = time.perf_counter()
            sql = buckets(db, brand, start, NOW, cfg.bucket_minutes)
            times["sql"].append(time.perf_counter() - t)
            t = time.perf_counter()
            rows = buckets_from_rows(db, brand, start, NOW, cfg.bucket_minutes)
            times["rows"].append(time.perf_counter() - t)
            if sql != rows:
                raise AssertionError("the database's bucket counts differ from the row-by-row count")
            t = time.perf_counter()
            replay(playbook, sql)
            times["replay"].append(time.perf_counter() - t)
            t = time.perf_counter()
            series = scope_buckets(db, brand, watched, start, NOW, cfg.bucket_minutes)
            times["scopes_sql"].append(time.perf_counter() - t)
            if series["all"] != sql:
                raise AssertionError("the brand's series differs when counted with the other scopes")
            t = time.perf_counter()
            every = first_alerts(playbook, series, NOW - timedelta(minutes=cfg.bucket_minutes), prune=False)
            times["replay_every_scope"].append(time.perf_counter() - t)
            t = time.perf_counter()
            if first_alerts(playbook, series, NOW - timedelta(minutes=cfg.bucket_minutes)) != every:
                raise AssertionError("skipping series that cannot alert changed the result")
            times["stage"].append(time.perf_counter() - t)
        dialect = db.dialect
        db.dispose()
    med = {k: statistics.median(v) for k, v in times.items()}
    return {"mentions": n_mentions, "buckets": len(sql), "scopes": len(watched), "runs": runs, "database": dialect,
            "median_s": {k: round(v, 4) for k, v in med.items()}, "ratio_rows_over_sql": round(med["rows"] / med["sql"], 1)}


def format_report(r: dict[str, Any]) -> str:
    m = r["median_s"]
    return (f"detect over {r['mentions']:,} mentions in {r['buckets']:,} buckets ({r['database']}, median of "
            f"{r['runs']}): buckets counted by the database {m['sql'] * 1000:.0f} ms, rows counted in Python "
            f"{m['rows'] * 1000:.0f} ms (x{r['ratio_rows_over_sql']}); detector replay {m['replay'] * 1000:.0f} ms\n"
            f"all {r['scopes']} series (brand, crisis types, platforms) counted in {m['scopes_sql'] * 1000:.0f} ms; "
            f"replaying every one {m['replay_every_scope'] * 1000:.0f} ms, only those that could alert "
            f"{m['stage'] * 1000:.1f} ms")
