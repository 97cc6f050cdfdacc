"""Detect and classify over stored mentions: one storm gives one signal and one incident,
with the right type, origin platform and topic."""

from __future__ import annotations

import random
from datetime import timedelta

from firebreak.audit import AuditLog
from firebreak.domain import Mention, Platform
from firebreak.tasks.classify import assess, label_pending
from firebreak.tasks.incident import open_incident
from firebreak.tasks.ingest import store_mentions
from firebreak.tasks.signals import detect
from firebreak.tasks.triage import load_triage
from tests.conftest import T0

CHATTER = ["Love my new fjell jacket", "fjell boots are comfy", "Where is the fjell store in Oslo?", "fjell tent review"]
STORM = ["My fjell Ember stove caught fire and burned my hand, dangerous!",
         "fjell Ember stove valve leaks, unsafe, recall it now",
         "Mitt Fjell Ember-kök fattade eld, farlig produkt, återkallelse nu!"]


def _fill(db, origin: Platform) -> None:  # type: ignore[no-untyped-def]
    rng = random.Random(4)
    ms: list[Mention] = []
    n = 0
    for minute in range(-3 * 24 * 60, 0, 7):  # three days of chatter, ~8/hour over all platforms
        p = rng.choice(list(Platform))
        ms.append(Mention(p, f"c{n}", rng.choice(CHATTER), T0 + timedelta(minutes=minute)))
        n += 1
    for i in range(240):  # the storm: origin first, then everywhere
        minute = i * 0.25
        p = origin if minute < 10 else rng.choice(list(Platform))
        ms.append(Mention(p, f"s{i}", rng.choice(STORM), T0 + timedelta(minutes=minute)))
    with db.session() as s:
        store_mentions(s, "fjell", ms)


def test_one_storm_one_signal_right_type_and_origin(db, playbook) -> None:  # type: ignore[no-untyped-def]
    _fill(db, Platform.BLUESKY)
    label_pending(db, load_triage(playbook), "fjell")
    assert detect(db, playbook, T0 - timedelta(minutes=5)) is None  # chatter alone is not a crisis
    signals = [detect(db, playbook, T0 + timedelta(minutes=m)) for m in range(5, 65, 5)]
    fired = [s for s in signals if s is not None and s.incident_id is None]
    assert len(fired) == 1  # cool-down: one storm, one signal
    inc = open_incident(db, AuditLog(db), playbook, fired[0].id)
    a = assess(db, playbook, inc.id, T0 + timedelta(minutes=60))
    assert a.type == "product_safety" and a.origin_platform == "bluesky" and a.severity == 1
    assert "en" in a.languages and "ember" in " ".join(a.topics).lower()


def test_buckets_counted_by_the_database_match_a_plain_count(db) -> None:  # type: ignore[no-untyped-def]
    """Every mention lands in the bucket that ends after it, on both dialects: times on a
    bucket edge, fractions of a second, other brands and times outside the window."""
    from sqlalchemy import update

    from firebreak.store.models import Mention as MentionRow
    from firebreak.tasks.signals import buckets, floor_time

    rng = random.Random(7)
    step = timedelta(minutes=5)
    start, end = T0 - timedelta(hours=6), T0
    ms, expected = [], {}
    for i in range(600):
        at = start + timedelta(seconds=rng.randrange(-900, 6 * 3600 + 900), microseconds=rng.choice([0, 999_999]))
        if i % 50 == 0:
            at = floor_time(start, 5) + (i // 50) * step  # exactly on an edge
        p, followers = rng.choice(list(Platform)), rng.randrange(0, 5000)
        ms.append(Mention(p, f"b{i}", "text", at, author_followers=followers))
        if start <= at < end:
            e = expected.setdefault(floor_time(at, 5) + step, [0, 0, 0, set()])
            e[0] += 1
            e[1] += i % 3 == 0
            e[2] += followers
            e[3].add(p.value)
    other = [Mention(Platform.X, f"o{i}", "text", start + timedelta(minutes=i)) for i in range(30)]
    with db.session() as s:
        store_mentions(s, "fjell", ms)
        store_mentions(s, "other-brand", other)
        s.execute(update(MentionRow).where(MentionRow.brand == "fjell").values(sentiment="neutral"))
        negative = [f"b{i}" for i in range(600) if i % 3 == 0]
        s.execute(update(MentionRow).where(MentionRow.platform_id.in_(negative)).values(sentiment="negative"))
    got = buckets(db, "fjell", start, end, 5)
    assert len(got) == 6 * 12 and got[0].end == start + step and got[-1].end == end
    assert {b.end: [b.volume, b.negative, b.reach, set(b.platforms)] for b in got if b.volume} == expected
    assert sum(b.volume for b in got) == sum(v[0] for v in expected.values()) > 400
