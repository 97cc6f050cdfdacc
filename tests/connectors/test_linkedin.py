"""LinkedIn connector against the live sandbox: comment drain with cursors and high-water,
publish exactly once (little-text escaping), draft "scheduling" hold/release/cancel, no
hiding, the daily-limit 429, and the versioning headers on every request."""

from __future__ import annotations

import time
from datetime import timedelta

import httpx
import pytest
from pydantic import SecretStr

from firebreak.connectors.linkedin import (
    API_VERSION,
    LinkedInConnector,
    escape_little_text,
    unescape_little_text,
)
from firebreak.connectors.ratelimit import next_midnight_utc
from firebreak.sandbox.state import SandboxMention, SandboxPost, SandboxScheduled
from firebreak.domain import Platform
from firebreak.errors import AuthError, NotSupported, RateLimited, RejectedRequest, TransientError

P = Platform.LINKEDIN
ORG = "urn:li:organization:1000001"


@pytest.fixture
def li_settings(sandbox_settings):  # type: ignore[no-untyped-def]
    return sandbox_settings.platform(P).model_copy(update={"token": SecretStr("li-token")})


def make(settings, transport: httpx.BaseTransport | None = None) -> LinkedInConnector:  # type: ignore[no-untyped-def]
    return LinkedInConnector(settings, handle="fjell-outdoor", account_id=ORG, keywords=["fjell"], transport=transport)


def comment(n: int, post: str, at) -> SandboxMention:  # type: ignore[no-untyped-def]
    return SandboxMention(P, f"urn:li:share:{6_000_000 + n}", f"member{n}", f"li comment {n} (fjell)", at,
                          kind="comment", reply_to=post, likes=n % 3, author_id=f"urn:li:person:abc{n}")


def load(state, clock, n_a: int = 35, n_b: int = 20) -> tuple[set[str], str, str]:  # type: ignore[no-untyped-def]
    now = clock.now()
    post_a, post_b = "urn:li:share:7000000000000000100", "urn:li:share:7000000000000000200"
    posts = [SandboxPost(P, post_a, "We are hiring: product safety engineer", now - timedelta(hours=8), source="scenario")]
    mentions = [comment(i, post_a, now - timedelta(minutes=400 - i)) for i in range(n_a)]
    mentions += [comment(1000 + i, post_b, now - timedelta(minutes=300 - 4 * i)) for i in range(n_b)]
    state.load(mentions, [], posts)
    urn = {m.id: f"urn:li:comment:({m.reply_to},{m.id.rsplit(':', 1)[-1]})" for m in mentions}
    return set(urn.values()), post_a, post_b


def drain(conn, since: str | None, limit: int = 20):  # type: ignore[no-untyped-def]
    out, cursor, pages = [], None, 0
    while True:
        page = conn.fetch_mentions("comments", since=since, cursor=cursor, limit=limit)
        pages += 1
        out.extend(page.mentions)
        if page.next_cursor is None:
            return out, page.high_water, pages
        cursor = page.next_cursor


def test_comment_drain_survives_crash_and_high_water(sandbox_state, clock, li_settings):  # type: ignore[no-untyped-def]
    expected, post_a, post_b = load(sandbox_state, clock)
    conn = make(li_settings)
    page = conn.fetch_mentions("comments", since=None, cursor=None, limit=10)
    seen = list(page.mentions)
    page = conn.fetch_mentions("comments", since=None, cursor=page.next_cursor, limit=10)
    seen += page.mentions
    saved = page.next_cursor
    conn.close()
    conn = make(li_settings)
    cursor = saved
    while cursor:
        page = conn.fetch_mentions("comments", since=None, cursor=cursor, limit=10)
        seen += page.mentions
        cursor = page.next_cursor
    assert sorted(m.platform_id for m in seen) == sorted(expected)
    m = next(x for x in seen if x.reply_to == post_b)
    assert m.author.startswith("urn:li:person:") and m.text.endswith("(fjell)") and m.kind == "comment"
    hw = page.high_water
    assert hw and len(hw) <= 256
    assert drain(conn, hw)[0] == []

    clock.advance(1200)
    late = comment(5000, post_a, clock.now() - timedelta(minutes=25))
    fresh = [comment(6000 + i, post_b, clock.now() - timedelta(seconds=30 * i)) for i in range(4)]
    sandbox_state.load([late, *fresh], [], [])
    new, hw2, _ = drain(conn, hw)
    assert len(new) == 5 and {x.platform_id.rsplit(",", 1)[-1].rstrip(")") for x in new} == \
        {x.id.rsplit(":", 1)[-1] for x in (late, *fresh)}
    assert drain(conn, hw2)[0] == []
    # The organization's own reply is not a mention.
    conn.publish("Thanks, we are on it.", idempotency_key="r", reply_to=post_a)
    clock.advance(60)
    assert drain(conn, hw2)[0] == []
    conn.close()


class LoseResponse(httpx.BaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport()
        self.armed = True

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        if self.armed and request.method == "POST":
            self.armed = False
            resp.read()
            raise httpx.ReadTimeout("response lost", request=request)
        return resp


def test_publish_escapes_little_text_and_find_after_lost_response(sandbox_state, clock, li_settings):  # type: ignore[no-untyped-def]
    text = "Update (12:00): we're recalling the Ember stove #safety - details @ fjell.example/status [FAQ]"
    assert unescape_little_text(escape_little_text(text)) == text
    with make(li_settings, transport=LoseResponse()) as conn:
        with pytest.raises(TransientError):
            conn.publish(text, idempotency_key="inc:li")
        found = conn.find_published(text, idempotency_key="inc:li", since=clock.now() - timedelta(minutes=5))
        assert found is not None and found.remote_id.startswith("urn:li:share:")
        assert conn.find_published(text, idempotency_key="inc:li", since=clock.now() + timedelta(minutes=1)) is None
    posts = [p for p in sandbox_state.posts[P] if p.text == text]
    assert len(posts) == 1 and posts[0].id == found.remote_id
    body = next(r["body"] for r in sandbox_state.requests if r["method"] == "POST" and r["path"].endswith("/rest/posts"))
    assert body["commentary"] == escape_little_text(text) and body["author"] == ORG
    assert body["lifecycleState"] == "PUBLISHED" and body["visibility"] == "PUBLIC" and body["distribution"]


def test_drafts_hold_release_cancel(sandbox_state, clock, li_settings):  # type: ignore[no-untyped-def]
    now = clock.now()
    record = SandboxScheduled(P, "urn:li:share:7000000000000000901", "Record quarter in cookware sales!",
                              now + timedelta(minutes=60))
    event = SandboxScheduled(P, "urn:li:share:7000000000000000902", "Join us at the Outdoor Expo",
                             now + timedelta(minutes=90))
    sandbox_state.load([], [record, event], [SandboxPost(P, "urn:li:share:1", "old post", now - timedelta(days=1))])
    with make(li_settings) as conn:
        listed = {p.platform_id: p for p in conn.list_scheduled()}
        assert set(listed) == {record.id, event.id}
        assert listed[record.id].scheduled_at == record.scheduled_at and listed[record.id].text == record.text
        conn.hold_scheduled(listed[record.id])
        conn.cancel_scheduled(listed[event.id])
        assert conn.list_scheduled() == []  # held drafts cannot go out, so nothing is left to freeze
        clock.advance(3 * 3600)
        sandbox_state.tick()
        assert sandbox_state.find_post(P, record.id) is None and sandbox_state.find_post(P, event.id) is None
        assert sandbox_state.scheduled[P][event.id].state == "cancelled"
        # Release: back on the schedule at a new time, published by the scheduler when due.
        later = clock.now() + timedelta(minutes=30)
        rel = conn.release_scheduled(listed[record.id], later)
        assert rel.scheduled_at == later and sandbox_state.scheduled[P][record.id].state == "scheduled"
        clock.advance(1801)
        sandbox_state.tick()
        assert sandbox_state.find_post(P, record.id).text == record.text
        # Published posts and other authors' content are not drafts: refused before any write.
        with pytest.raises(RejectedRequest):
            conn.cancel_scheduled(listed[record.id])
    assert [r["method"] for r in sandbox_state.requests].count("DELETE") == 1


def test_no_hiding_and_no_deletion_of_comments(sandbox_state, clock, li_settings):  # type: ignore[no-untyped-def]
    expected, _, _ = load(sandbox_state, clock, n_a=2, n_b=0)
    with make(li_settings) as conn:
        assert not conn.supports_hiding
        with pytest.raises(NotSupported):
            conn.hide(sorted(expected)[0])
        assert [n for n in dir(conn) if "delete" in n.lower() or "remove" in n.lower()] == ["delete_own"]
        with pytest.raises(RejectedRequest):
            conn.delete_own(sorted(expected)[0])
        assert not [r for r in sandbox_state.requests if r["method"] == "DELETE"]
        own = conn.publish("Unauthorised post", idempotency_key="oops")
        conn.delete_own(own.remote_id)
    assert sandbox_state.find_post(P, own.remote_id) is None
    assert [r["method"] for r in sandbox_state.requests].count("DELETE") == 1


def test_daily_limit_429_waits_until_midnight_utc(sandbox_state, clock, li_settings):  # type: ignore[no-untyped-def]
    load(sandbox_state, clock, n_a=1, n_b=0)
    sandbox_state.faults[P] = {"daily_limit": 1}
    with make(li_settings) as conn:
        conn.list_scheduled()
        with pytest.raises(RateLimited) as info:
            conn.list_scheduled()
        sent = len(sandbox_state.requests)
        with pytest.raises(RateLimited):  # refused up front: the budget is spent until midnight
            conn.fetch_mentions("comments", since=None, cursor=None)
        assert len(sandbox_state.requests) == sent
    expected = next_midnight_utc() - time.time()
    assert abs(info.value.retry_after - expected) < 5
    sandbox_state.faults[P] = {"revoked_tokens": ["li-token"]}
    with make(li_settings) as conn, pytest.raises(AuthError):
        conn.fetch_mentions("comments", since=None, cursor=None)


def test_every_request_carries_version_headers(sandbox_state, sandbox, clock, li_settings):  # type: ignore[no-untyped-def]
    expected, post_a, _ = load(sandbox_state, clock, n_a=12, n_b=3)
    sandbox_state.load([], [SandboxScheduled(P, "urn:li:share:7000000000000000901", "draft", clock.now() + timedelta(hours=1))], [])
    with make(li_settings) as conn:
        hw = drain(conn, None, limit=5)[1]
        drain(conn, hw)
        conn.publish("Statement", idempotency_key="k")
        conn.publish("Reply", idempotency_key="k2", reply_to=post_a)
        conn.find_published("Statement", idempotency_key="k", since=clock.now() - timedelta(hours=1))
        [draft] = conn.list_scheduled()
        conn.hold_scheduled(draft)
        conn.release_scheduled(draft, clock.now() + timedelta(hours=2))
        assert conn.http._http.headers["LinkedIn-Version"] == API_VERSION
    ours = [r for r in sandbox_state.requests if r["platform"] == "linkedin"]
    assert len(ours) >= 12 and all(r["status"] < 400 for r in ours), [r for r in ours if r["status"] >= 400]
    assert {r["path"].split("/")[3] for r in ours} == {"posts", "socialActions"}
    # URNs travel URL-encoded in the query, as Rest.li 2.0 requires.
    assert any("author=urn%3Ali%3Aorganization%3A1000001" in r["query"] for r in ours)
    # The sandbox refuses requests without the headers, so every 2xx above carried them.
    base = f"{sandbox.url}/linkedin/rest/posts?q=author&author=urn%3Ali%3Aorganization%3A1000001"
    auth = {"Authorization": "Bearer li-token"}
    assert httpx.get(base, headers=auth).json()["code"] == "VERSION_MISSING"
    assert httpx.get(base, headers={**auth, "LinkedIn-Version": API_VERSION}).status_code == 400
    ok = httpx.get(base, headers={**auth, "LinkedIn-Version": API_VERSION, "X-Restli-Protocol-Version": "2.0.0"})
    assert ok.status_code == 200 and set(ok.json()["paging"]) >= {"start", "count"}


# Cursors the connector stored before the comments walk was shared with the Graph connectors
# (offsets kept as `posts_start` / `start`), written after the first and the second page of
# `load()` at limit 10 (the first in the middle of a post, the second between posts). A
# deployed system resumes from cursors like these after an upgrade.
OLD_CURSORS = [
    (1, ("eyJhY2MiOnsiY3V0IjowLCJmbG9vciI6MCwiaXRlbXMiOltbMTc3MjQzNjk2MDAwMCwiQTQxM1IiXSxbMTc3MjQzNjcyMDAw"
        "MCwiUVNsT2YiXSxbMTc3MjQzNjQ4MDAwMCwiM2VDUFUiXSxbMTc3MjQzNjI0MDAwMCwiV0g4ZDQiXV0sImxhZyI6OTAwMDAw"
        "LCJ0b3AiOjE3NzI0MzY5NjAwMDB9LCJwb3N0IjoidXJuOmxpOnNoYXJlOjcwMDAwMDAwMDAwMDAwMDAyMDAiLCJwb3N0c19k"
        "b25lIjp0cnVlLCJwb3N0c19zdGFydCI6MiwicXVldWUiOlsidXJuOmxpOnNoYXJlOjcwMDAwMDAwMDAwMDAwMDAxMDAiXSwi"
        "c3RhcnQiOjEwfQ")),
    (2, ("eyJhY2MiOnsiY3V0IjowLCJmbG9vciI6MCwiaXRlbXMiOltbMTc3MjQzOTM2MDAwMCwiVG1sY04iXSxbMTc3MjQzOTEyMDAw"
        "MCwidmEtckkiXSxbMTc3MjQzODg4MDAwMCwiT2hNc24iXSxbMTc3MjQzODY0MDAwMCwibFRrbGEiXV0sImxhZyI6OTAwMDAw"
        "LCJ0b3AiOjE3NzI0MzkzNjAwMDB9LCJwb3N0IjpudWxsLCJwb3N0c19kb25lIjp0cnVlLCJwb3N0c19zdGFydCI6MiwicXVl"
        "dWUiOlsidXJuOmxpOnNoYXJlOjcwMDAwMDAwMDAwMDAwMDAxMDAiXSwic3RhcnQiOjIwfQ")),
]


@pytest.mark.parametrize("pages_before, old_cursor", OLD_CURSORS)
def test_resumes_from_a_cursor_stored_by_the_previous_version(pages_before, old_cursor, sandbox_state, clock,  # type: ignore[no-untyped-def]
                                                              li_settings):
    from firebreak.connectors._comments import decode_cursor

    assert "posts_start" in decode_cursor(old_cursor)  # really the old layout
    expected, _, _ = load(sandbox_state, clock)
    with make(li_settings) as conn:
        # The reference: a whole drain by the current code, noting where each page ended.
        pages, cursor, marks = [], None, []
        while True:
            page = conn.fetch_mentions("comments", since=None, cursor=cursor, limit=10)
            pages.append(page)
            marks.append(len(sandbox_state.requests))
            if page.next_cursor is None:
                break
            cursor = page.next_cursor
        reference = [m.platform_id for p in pages for m in p.mentions]
        assert sorted(reference) == sorted(expected)
        done = len(sandbox_state.requests)

        rest, hw, _ = drain_from(conn, old_cursor)
    before = [m.platform_id for p in pages[:pages_before] for m in p.mentions]
    # Nothing lost, nothing twice, the same high-water mark...
    assert before + [m.platform_id for m in rest] == reference
    assert hw == pages[-1].high_water
    # ...and exactly the requests the uninterrupted drain made after that page.
    strip = [{k: r[k] for k in ("method", "path", "query")} for r in sandbox_state.requests]
    assert strip[done:] == strip[marks[pages_before - 1]:done]


def drain_from(conn, cursor: str, limit: int = 10):  # type: ignore[no-untyped-def]
    out, pages = [], 0
    while True:
        page = conn.fetch_mentions("comments", since=None, cursor=cursor, limit=limit)
        pages += 1
        out.extend(page.mentions)
        if page.next_cursor is None:
            return out, page.high_water, pages
        cursor = page.next_cursor
