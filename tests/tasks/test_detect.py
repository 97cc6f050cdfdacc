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
from firebreak.tasks.detect import detect
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
    from firebreak.tasks.detect import buckets, floor_time, scope_buckets

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
            e = expected.setdefault(floor_time(at, 5) + step, [0, 0, 0, set(), 0])
            e[0] += 1
            e[1] += i % 3 == 0
            e[2] += followers
            e[3].add(p.value)
            e[4] += followers if i % 3 == 0 else 0
    other = [Mention(Platform.X, f"o{i}", "text", start + timedelta(minutes=i)) for i in range(30)]
    with db.session() as s:
        store_mentions(s, "fjell", ms)
        store_mentions(s, "other-brand", other)
        s.execute(update(MentionRow).where(MentionRow.brand == "fjell").values(sentiment="neutral"))
        negative = [f"b{i}" for i in range(600) if i % 3 == 0]
        s.execute(update(MentionRow).where(MentionRow.platform_id.in_(negative)).values(sentiment="negative"))
    got = buckets(db, "fjell", start, end, 5)
    assert len(got) == 6 * 12 and got[0].end == start + step and got[-1].end == end
    assert {b.end: [b.volume, b.negative, b.reach, set(b.platforms), b.negative_reach] for b in got if b.volume} == expected
    assert sum(b.volume for b in got) == sum(v[0] for v in expected.values()) > 400

    # Each platform's and each crisis type's series, counted with the brand's in one query.
    tags = {f"b{i}": [[], ["recall"], ["recall", "leak"], ["leak"]][i % 4] for i in range(600) if i % 5}
    with db.session() as s:
        for pid, t in tags.items():
            s.execute(update(MentionRow).where(MentionRow.platform_id == pid).values(crisis_types=t))
    watched = ["all", "platform:x", "platform:bluesky", "topic:recall", "topic:leak", "topic:nothing"]
    series = scope_buckets(db, "fjell", watched, start, end, 5)
    assert list(series) == watched and series["all"] == got
    for scope in watched[1:]:
        want: dict = {}
        for i, m in enumerate(ms):
            if start <= m.created_at < end and (m.platform.value == scope.split(":")[1] if scope.startswith("platform:")
                                                else scope.split(":")[1] in tags.get(m.platform_id, [])):
                e = want.setdefault(floor_time(m.created_at, 5) + step, [0, 0, 0, set(), 0])
                e[0] += 1
                e[1] += i % 3 == 0
                e[2] += m.author_followers
                e[3].add(m.platform.value)
                e[4] += m.author_followers if i % 3 == 0 else 0
        assert [b.end for b in series[scope]] == [b.end for b in got]
        assert {b.end: [b.volume, b.negative, b.reach, set(b.platforms), b.negative_reach] for b in series[scope] if b.volume} == want
        assert (sum(b.volume for b in series[scope]) > 50) == (scope != "topic:nothing")


def _busy_brand(db, storm_platform: Platform | None, storm_types: list[str] | None) -> None:  # type: ignore[no-untyped-def]
    """A day of chatter at about 60 mentions per 5 minutes over every platform, then half an
    hour with 20 more per bucket: on one platform, or tagged with crisis types."""
    from sqlalchemy import update

    from firebreak.store.models import Mention as MentionRow

    rng = random.Random(9)
    platforms = list(Platform)
    ms = [Mention(rng.choice(platforms), f"c{i}", rng.choice(CHATTER), T0 + timedelta(seconds=rng.randrange(-86400, 1800)))
          for i in range(60 * 12 * 24 + 60 * 6)]
    ms += [Mention(storm_platform or rng.choice(platforms), f"s{i}", rng.choice(STORM), T0 + timedelta(seconds=15 * i))
           for i in range(20 * 6)]
    with db.session() as s:
        store_mentions(s, "fjell", ms)
        s.execute(update(MentionRow).values(sentiment="neutral", crisis_types=[]))
        if storm_types:
            s.execute(update(MentionRow).where(MentionRow.platform_id.like("s%")).values(crisis_types=storm_types))


def _one_day(playbook):  # type: ignore[no-untyped-def]
    """The default playbook, with a day of history (all the busy brand has) and no seasonality."""
    return playbook.model_copy(update={"detection": playbook.detection.model_copy(update={"history_days": 1, "seasonal": False})})


SETTLED = T0 - timedelta(minutes=5)  # the detect stage has seen every bucket up to here


def _monitored_until(db, at) -> None:  # type: ignore[no-untyped-def]
    """As if monitor runs had evaluated every bucket up to ``at``."""
    from firebreak.store.models import IngestCursor
    from firebreak.tasks.detect import DETECT_STREAM

    with db.session() as s:
        s.add(IngestCursor(brand="fjell", platform=DETECT_STREAM[0], stream=DETECT_STREAM[1], high_water=at.isoformat(),
                           updated_at=at))


def _series(db, playbook, now):  # type: ignore[no-untyped-def]
    from firebreak.tasks.detect import scope_buckets, scopes

    cfg = playbook.detection
    return scope_buckets(db, "fjell", scopes(playbook), now - timedelta(days=cfg.history_days), now, cfg.bucket_minutes)


def test_a_topic_storm_fires_on_its_topic_while_the_brand_total_stays_calm(db, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.detect import ALL, first_alerts
    playbook = _one_day(playbook)

    _busy_brand(db, None, ["data_breach", "service_outage"])
    now = T0 + timedelta(minutes=30)
    series = _series(db, playbook, now)
    assert sum(b.volume for b in series["topic:data_breach"]) == 20 * 6 == sum(b.volume for b in series["topic:service_outage"])
    assert first_alerts(playbook, {ALL: series[ALL]}, SETTLED) == []  # the brand's total alone: no storm
    _monitored_until(db, SETTLED)
    sig = detect(db, playbook, now)
    # Both topics alert in the same bucket; the playbook lists service_outage first.
    assert sig is not None and sig.scope == "topic:service_outage" and T0 < sig.at <= T0 + timedelta(minutes=10)
    assert sig.details["scopes"] == ["topic:service_outage", "topic:data_breach"]
    assert sig.volume >= 15 and sig.details["ratio"] > 10  # against the topic's own baseline
    brand = sig.details["brand"]
    assert brand["volume"] > 60 and brand["baseline"] > 50 and brand["ratio"] < 2
    assert detect(db, playbook, now) is None  # the same buckets are not reported twice

    # Severity speaks of the brand's volume, not of the topic's surge over its own near-zero.
    audit = AuditLog(db)
    inc = open_incident(db, audit, playbook, sig.id)
    assert assess(db, playbook, inc.id, now).figures["volume_ratio"] < 3
    opened = [e for e in audit.events() if e.action == "incident.opened"]
    assert len(opened) == 1 and opened[0].payload["scope"] == "topic:service_outage"


def test_a_storm_on_one_platform_fires_on_that_platform_unless_a_quiet_window_covers_it(db, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.config.playbook import QuietWindow
    playbook = _one_day(playbook)
    from firebreak.tasks.detect import ALL, first_alerts

    _busy_brand(db, Platform.MASTODON, None)
    now = T0 + timedelta(minutes=30)
    assert first_alerts(playbook, {ALL: _series(db, playbook, now)[ALL]}, SETTLED) == []
    launch = QuietWindow(start=T0 - timedelta(hours=1), end=T0 + timedelta(hours=1), reason="launch", platforms=["mastodon"])
    quiet = playbook.model_copy(update={"detection": playbook.detection.model_copy(update={"quiet_windows": [launch]})})
    assert first_alerts(quiet, _series(db, quiet, now), SETTLED) == []
    _monitored_until(db, SETTLED)
    sig = detect(db, playbook, now)
    assert sig is not None and sig.scope == "platform:mastodon" and sig.platforms == ["mastodon"]
    assert sig.details["scopes"] == ["platform:mastodon"]


def test_skipping_series_that_cannot_alert_changes_no_result(db, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.detect import first_alerts
    playbook = _one_day(playbook)

    _busy_brand(db, Platform.X, ["product_safety"])
    series = _series(db, playbook, T0 + timedelta(minutes=40))
    for after in [None, *(T0 + timedelta(minutes=m) for m in range(-60, 40, 5))]:
        assert first_alerts(playbook, series, after) == first_alerts(playbook, series, after, prune=False)
    assert [a.scope for a in first_alerts(playbook, series, SETTLED)] == ["topic:product_safety", "platform:x"]


def test_the_watched_series(playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.detect import scopes

    assert scopes(playbook) == ["all", *(f"topic:{t.id}" for t in playbook.crisis_types),
                                *(f"platform:{p.value}" for p in playbook.brand.accounts)]
    one = next(iter(playbook.brand.accounts))
    single = playbook.model_copy(update={"brand": playbook.brand.model_copy(
        update={"accounts": {one: playbook.brand.accounts[one]}})})
    assert not any(s.startswith("platform:") for s in scopes(single))  # one platform: the brand's series


def test_every_series_reports_how_close_it_came(db, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.detect import SeriesScore, scopes
    playbook = _one_day(playbook)

    _busy_brand(db, Platform.MASTODON, None)
    _monitored_until(db, SETTLED)
    scores: list[SeriesScore] = []
    sig = detect(db, playbook, T0 + timedelta(minutes=30), scores=scores)
    assert sig is not None and [s.scope for s in scores] == scopes(playbook)
    by = {s.scope: s for s in scores}
    mastodon, brand = by["platform:mastodon"], by["all"]
    assert mastodon.alert and mastodon.verdict(15) == "alert" and mastodon.score is not None and mastodon.score >= 0.5
    # The brand's total is busy but within its usual range: scored, and short of the threshold.
    assert not brand.alert and brand.score is not None and brand.score < 0.5 and brand.baseline and brand.baseline > 40
    assert brand.verdict(15).endswith("of the way to an alert") and brand.buckets == 7
    # A topic nobody mentions is not replayed: its verdict says why it cannot alert.
    quiet = by["topic:data_breach"]
    assert quiet.score is None and quiet.verdict(15) == "quiet: at most 0 mentions a bucket, alerts need 15"
    # The cursor stops at the bucket that fired; once it has caught up, nothing new is scored.
    later: list[SeriesScore] = []
    detect(db, playbook, T0 + timedelta(minutes=30), scores=later)
    later_all = next(s for s in later if s.scope == "all")
    assert later_all.buckets < brand.buckets
    assert detect(db, playbook, T0 + timedelta(minutes=30), scores=(again := [])) is None
    assert all(s.buckets == 0 and s.verdict(15) == "no complete bucket since the last run" for s in again)
