"""Mastodon connector against the live sandbox: Link-header paging, high-water,
Idempotency-Key, find_published, scheduled hold/release/cancel, 429, spec."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from firebreak.connectors import build_connector
from firebreak.connectors.mastodon import HOLD_OFFSET, MastodonConnector, html_to_text
from firebreak.sandbox.state import (
    SandboxMention,
    SandboxPost,
    SandboxScheduled,
    make_id,
)
from pydantic import SecretStr

from firebreak.domain import Platform
from firebreak.errors import AuthError, NotSupported, RateLimited, RejectedRequest
from tests.spec_check import check_state_log, specs

from tests.connector_helpers import LossyTransport, drain

P = Platform.MASTODON
HANDLE = "@fjell@mastodon.example"


def connector(settings, playbook, clock, *, token: str = "test-token", transport=None) -> MastodonConnector:  # type: ignore[no-untyped-def]
    cfg = settings.model_copy(update={"mastodon": settings.mastodon.model_copy(update={"token": SecretStr(token)})})
    conn = build_connector(P, cfg, playbook, transport=transport)
    assert isinstance(conn, MastodonConnector)
    return conn  # no clock: only the server's clock decides what "5 minutes ahead" is


def load_mentions(state, t0, n: int, *, start_min: float = -120, step_min: float = 1.0, first: int = 1,
                  text: str = "fjell stove set my tent on fire") -> list[SandboxMention]:  # type: ignore[no-untyped-def]
    items = []
    for i in range(n):
        num = first + (n - i) * 3  # ids not in time order, like generated scenarios
        items.append(SandboxMention(P, make_id(P, num), f"walker{num}", f"{HANDLE} {text} #{num}",
                                    t0 + timedelta(minutes=start_min + i * step_min), lang="sv",
                                    followers=10 + num, likes=2, reposts=1))
    state.load(items, [], [])
    return items


# -- listening -----------------------------------------------------------------------------
def test_notifications_drain_survives_a_crash(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    items = load_mentions(sandbox_state, clock.now(), 25)
    conn = connector(sandbox_settings, playbook, clock)
    first = conn.fetch_mentions("notifications", since=None, cursor=None, limit=10)
    assert len(first.mentions) == 10 and first.next_cursor
    saved = str(first.next_cursor)
    conn.close()  # crash

    resumed = connector(sandbox_settings, playbook, clock)
    rest, hw, pages = drain(resumed, "notifications", None, cursor=saved)
    got = [m.platform_id for m in first.mentions + rest]
    assert len(got) == len(set(got)) == len(items)
    assert pages == 3  # 10 + 10 + 5, then the empty page that ends the drain
    assert hw
    # The connector followed the server's Link headers (rel="prev" carries min_id forward).
    pages_seen = [r for r in sandbox_state.requests if r["path"].endswith("/api/v1/notifications")]
    assert "min_id=0" in pages_seen[0]["query"] and "types%5B%5D=mention" in pages_seen[0]["query"]
    m = first.mentions[-1]  # oldest item of the first forward page = oldest mention overall
    assert m.text.startswith(HANDLE) and m.author.endswith("@social.example") and m.lang_hint == "sv"
    assert m.created_at == items[0].created_at and m.engagement == 3 and m.author_followers > 10


def test_high_water_returns_only_new_mentions(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    load_mentions(sandbox_state, clock.now(), 12, start_min=-30)
    later = load_mentions(sandbox_state, clock.now(), 4, start_min=3, step_min=5, first=500)
    conn = connector(sandbox_settings, playbook, clock)
    hws: dict[str, str | None] = {}
    for stream in conn.streams:
        seen, hws[stream], _ = drain(conn, stream, None)
        assert len(seen) == 12 and hws[stream], stream
        again, hw2, _ = drain(conn, stream, hws[stream])
        assert again == [] and hw2 == hws[stream], stream
    clock.advance(30 * 60)  # the scenario plays on: four more mentions
    for stream in conn.streams:
        new, hw3, _ = drain(conn, stream, hws[stream])
        assert sorted(m.text for m in new) == sorted(m.text for m in later), stream
        assert int(hw3) > int(hws[stream])  # type: ignore[arg-type]


def test_search_covers_every_keyword(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    t0 = clock.now()
    sandbox_state.load([
        SandboxMention(P, make_id(P, 1), "a", "I love fjell boots", t0 - timedelta(minutes=5)),
        SandboxMention(P, make_id(P, 2), "b", "#fjell at the summit", t0 - timedelta(minutes=4)),
        SandboxMention(P, make_id(P, 3), "c", "nothing to see", t0 - timedelta(minutes=3)),
    ], [], [])
    conn = connector(sandbox_settings, playbook, clock)
    got, _, _ = drain(conn, "search", None)
    assert {m.author for m in got} == {"a@social.example", "b@social.example"}
    queries = [dict(parse_qsl(r["query"]))["q"] for r in sandbox_state.requests if "search" in r["path"]]
    assert queries == list(playbook.brand.keywords)


# -- publishing ----------------------------------------------------------------------------
def test_publish_is_idempotent_when_the_answer_is_lost(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    load_mentions(sandbox_state, clock.now(), 2)
    lossy = LossyTransport("POST /mastodon/api/v1/statuses")
    conn = connector(sandbox_settings, playbook, clock, transport=lossy)
    target = conn.fetch_mentions("notifications", since=None, cursor=None).mentions[0]
    text = "We're sorry. Stop using the Ember stove & see https://fjell.example/status"
    # First answer lost; the client resends with the same Idempotency-Key: one status.
    first = conn.publish(text, idempotency_key="stmt-1", reply_to=target.platform_id)
    again = conn.publish(text, idempotency_key="stmt-1", reply_to=target.platform_id)
    assert lossy.drops == 0 and first.remote_id == again.remote_id
    assert len(sandbox_state.posts[P]) == 1
    post = sandbox_state.posts[P][0]
    assert post.idempotency_key == "stmt-1" and post.reply_to == sandbox_state.mentions[P][-1].id
    assert first.url.endswith(first.remote_id)

    found = conn.find_published(text, idempotency_key="stmt-1", since=clock.now() - timedelta(minutes=5))
    assert found is not None and found.remote_id == first.remote_id
    assert conn.find_published("other", idempotency_key="x", since=clock.now() - timedelta(minutes=5)) is None


def test_publish_rejects_over_long_text(sandbox, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook, clock)
    with pytest.raises(RejectedRequest) as err:
        conn.publish("x" * 501, idempotency_key="long")
    assert err.value.status == 422 and "500" in str(err.value)


def test_html_content_to_text():
    assert html_to_text("<p>Hi &amp; bye<br />line</p><p>para <a href=\"x\"><span>https://</span>"
                        "<span>fjell.example</span></a></p>") == "Hi & bye\nline\n\npara https://fjell.example"


# -- scheduled posts -----------------------------------------------------------------------
def test_scheduled_hold_release_cancel(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    t0 = clock.now()
    sched = [SandboxScheduled(P, make_id(P, 700 + i), f"Autumn sale {i}!", t0 + timedelta(minutes=30 * (i + 1)),
                              media=[f"https://fjell.example/img/{i}.jpg"]) for i in range(3)]
    sandbox_state.load([], sched, [])
    conn = connector(sandbox_settings, playbook, clock)
    listed = sorted(conn.list_scheduled(), key=lambda s: s.scheduled_at)
    assert [(s.platform_id, s.text, s.scheduled_at) for s in listed] == [(s.id, s.text, s.scheduled_at) for s in sched]
    assert listed[0].media == ("https://fjell.example/img/0.jpg",)

    for s in listed[:2]:
        conn.hold_scheduled(s)
        conn.hold_scheduled(s)  # idempotent: a re-run freeze writes the same value
    conn.cancel_scheduled(listed[2])
    assert [s.state for s in sched] == ["held", "held", "cancelled"]
    assert conn.is_held(listed[0].platform_id)

    # A held post still lists at its original time, so a crashed freeze can redo its record.
    relisted = sorted(conn.list_scheduled(), key=lambda s: s.scheduled_at)
    assert [(s.platform_id, s.scheduled_at) for s in relisted] == [(s.platform_id, s.scheduled_at) for s in listed[:2]]
    puts = [r for r in sandbox_state.requests if r["method"] == "PUT"]
    assert puts[0]["body"]["scheduled_at"].startswith(str((listed[0].scheduled_at + HOLD_OFFSET).year))

    # Time passes beyond every original time: nothing held goes out.
    clock.advance(3 * 3600)
    sandbox_state.tick()
    assert sandbox_state.posts[P] == [] and [s.state for s in sched] == ["held", "held", "cancelled"]

    # Release one "now": Mastodon needs 5 minutes' lead, so it goes out just after.
    n = len(sandbox_state.requests)
    released = conn.release_scheduled(listed[0], clock.now())
    assert [r["status"] for r in sandbox_state.requests[n:]] == [422, 200]
    assert sched[0].state == "scheduled" and released.platform_id == listed[0].platform_id
    assert timedelta(minutes=5) <= released.scheduled_at - clock.now() <= timedelta(minutes=6)
    later = conn.release_scheduled(listed[1], clock.now() + timedelta(hours=2))
    assert later.scheduled_at == clock.now() + timedelta(hours=2)
    clock.advance(6 * 60)
    sandbox_state.tick()
    assert [p.text for p in sandbox_state.posts[P]] == ["Autumn sale 0!"]
    assert sched[0].state == "published" and sched[1].state == "scheduled"
    with pytest.raises(RejectedRequest):
        conn.cancel_scheduled(listed[0])  # already published: 404


def test_hide_is_not_supported(sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook, clock)
    assert not conn.supports_hiding
    with pytest.raises(NotSupported):
        conn.hide("123")


# -- errors --------------------------------------------------------------------------------
def test_rate_limit_429_with_iso_reset(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook, clock)
    conn.list_scheduled()
    assert (conn.http.rate.info.remaining or 0) > 1000
    sandbox_state.faults[P] = {"rate_limited": 45}
    with pytest.raises(RateLimited) as err:
        conn.fetch_mentions("notifications", since=None, cursor=None)
    assert 43 <= err.value.retry_after <= 46


def test_missing_token_is_refused(sandbox, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    with pytest.raises(AuthError):
        connector(sandbox_settings, playbook, clock, token="").list_scheduled()


def test_every_request_matches_the_spec(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    load_mentions(sandbox_state, clock.now(), 15)
    sandbox_state.load([], [SandboxScheduled(P, make_id(P, 900), "Sale", clock.now() + timedelta(hours=1))],
                       [SandboxPost(P, make_id(P, 901), "Hello", clock.now() - timedelta(days=1))])
    conn = connector(sandbox_settings, playbook, clock)
    for stream in conn.streams:
        drain(conn, stream, None)
    m = conn.fetch_mentions("notifications", since=None, cursor=None).mentions[0]
    conn.publish("We're on it.", idempotency_key="s", reply_to=m.platform_id)
    conn.find_published("nothing", idempotency_key="n", since=clock.now() - timedelta(days=2))
    s = conn.list_scheduled()[0]
    conn.hold_scheduled(s)
    conn.is_held(s.platform_id)
    conn.release_scheduled(s, clock.now() + timedelta(minutes=10))
    conn.cancel_scheduled(s)
    reqs = [r for r in sandbox_state.requests if r["platform"] == "mastodon"]
    checked, problems = check_state_log(sandbox_state, "mastodon")
    assert not problems and checked == len(reqs) >= 10, problems
    assert all(r["status"] < 400 for r in reqs)


def test_sandbox_responses_fit_the_spec(sandbox, sandbox_state, clock):  # type: ignore[no-untyped-def]
    def errors(name: str, body: Any) -> list[str]:
        return specs.mastodon.schema_errors({"$ref": f"#/components/schemas/{name}"}, body, name)

    load_mentions(sandbox_state, clock.now(), 5)
    sandbox_state.load([], [SandboxScheduled(P, make_id(P, 900), "Sale", clock.now() + timedelta(hours=1),
                                             media=["https://fjell.example/a.jpg"])], [])
    with httpx.Client(base_url=f"{sandbox.url}/mastodon", headers={"Authorization": "Bearer t"}) as c:
        notes = c.get("/api/v1/notifications", params={"types[]": "mention", "limit": 2})
        assert 'rel="next"' in notes.headers["link"] and 'rel="prev"' in notes.headers["link"]
        assert all(not errors("Notification", n) and not errors("Status", n["status"]) for n in notes.json())
        assert not errors("Search", c.get("/api/v2/search", params={"q": "fjell", "type": "statuses"}).json())
        status = c.post("/api/v1/statuses", json={"status": "hello"}, headers={"Idempotency-Key": "r1"}).json()
        assert not errors("Status", status)
        sched = c.get("/api/v1/scheduled_statuses").json()
        assert sched and not errors("ScheduledStatus", sched[0])
        assert not errors("Error", c.post("/api/v1/statuses", json={"status": "x" * 501}).json())


def test_a_release_refused_as_too_soon_gets_a_later_time_even_when_the_clock_runs_fast(  # type: ignore[no-untyped-def]
        sandbox, sandbox_state, sandbox_settings, playbook, clock):
    """At a drill's 600× speed, 5 minutes of platform time pass in half a second: the second try
    can be too soon again. The resume must still land, later, not fail."""
    t0 = clock.now()
    sched = [SandboxScheduled(P, make_id(P, 750), "Autumn sale!", t0 + timedelta(minutes=30))]
    sandbox_state.load([], sched, [])
    conn = connector(sandbox_settings, playbook, clock)
    post = conn.list_scheduled()[0]
    conn.hold_scheduled(post)
    # Every request reaches the platform 7 minutes of its time after it was sent.
    conn.http._http.event_hooks["request"].append(lambda request: clock.advance(7 * 60))  # type: ignore[attr-defined]
    n = len(sandbox_state.requests)
    released = conn.release_scheduled(post, clock.now())
    statuses = [r["status"] for r in sandbox_state.requests[n:]]
    assert statuses[-1] == 200 and 422 in statuses, statuses
    assert released.scheduled_at > clock.now() and sched[0].state == "scheduled"
