"""Facebook Page connector against the live sandbox: drain with cursors and high-water,
publish exactly once, hide, scheduled-post hold/release/cancel, limits, and every request
checked against Meta's own spec files."""

from __future__ import annotations

import functools

from datetime import timedelta
from urllib.parse import parse_qsl

import httpx
import pytest
from firebreak.connectors.facebook import FacebookConnector
from firebreak.sandbox.state import (
    SandboxMention,
    SandboxPost,
    SandboxScheduled,
)
from pydantic import SecretStr

from firebreak.domain import Platform, ScheduledPost
from firebreak.errors import AuthError, RateLimited, RejectedRequest, TransientError
from tests.spec_check import check_state_log

from tests.specs import spec_path
from tests.connector_helpers import drain as _drain

# Graph comment pages hold more items than the social streams.
drain = functools.partial(_drain, limit=20)

P = Platform.FACEBOOK
PAGE = "100000000000001"


@pytest.fixture
def fb_settings(sandbox_settings):  # type: ignore[no-untyped-def]
    return sandbox_settings.platform(P).model_copy(update={"token": SecretStr("fb-page-token")})


def make(settings, transport: httpx.BaseTransport | None = None) -> FacebookConnector:  # type: ignore[no-untyped-def]
    return FacebookConnector(settings, handle="fjelloutdoor", account_id=PAGE, keywords=["fjell"], transport=transport)


def comment(n: int, post: str, at, text: str = "") -> SandboxMention:  # type: ignore[no-untyped-def]
    return SandboxMention(P, f"{PAGE}_5{n:011d}", f"user{n}", text or f"comment {n} about fjell", at,
                          kind="comment", reply_to=post, likes=n % 7, author_id=str(10_000 + n))


def load_threads(state, clock, n_a: int = 45, n_b: int = 30) -> tuple[set[str], str, str]:  # type: ignore[no-untyped-def]
    """Two brand posts (one loaded, one only referenced by its comments) and their comments."""
    now = clock.now()
    post_a, post_b = f"{PAGE}_100", f"{PAGE}_200"
    posts = [SandboxPost(P, post_a, "Autumn is here", now - timedelta(hours=5), source="scenario")]
    mentions = [comment(i, post_a, now - timedelta(minutes=200 - i)) for i in range(n_a)]
    mentions += [comment(1000 + i, post_b, now - timedelta(minutes=150 - 2 * i)) for i in range(n_b)]
    mentions += [SandboxMention(P, f"{PAGE}_9{i:05d}", f"tagger{i}", f"@Fjell Outdoor my stove {i}",
                                now - timedelta(minutes=90 - i), kind="mention", reposts=i) for i in range(12)]
    state.load(mentions, [], posts)
    return {m.id for m in mentions if m.kind == "comment"}, post_a, post_b




def test_drain_pages_survive_a_crash_and_high_water_returns_only_new(sandbox_state, clock, fb_settings):  # type: ignore[no-untyped-def]
    expected, post_a, post_b = load_threads(sandbox_state, clock)
    conn = make(fb_settings)
    seen: list = []  # type: ignore[type-arg]
    page = conn.fetch_mentions("comments", since=None, cursor=None, limit=10)
    seen += page.mentions
    page = conn.fetch_mentions("comments", since=None, cursor=page.next_cursor, limit=10)
    seen += page.mentions
    saved = page.next_cursor
    assert saved and page.high_water is None  # mid-drain: no high-water yet
    conn.close()  # crash: only the cursor string survives

    conn = make(fb_settings)
    cursor = saved
    pages = 2
    while cursor is not None:
        page = conn.fetch_mentions("comments", since=None, cursor=cursor, limit=10)
        pages += 1
        seen += page.mentions
        cursor = page.next_cursor
    hw = page.high_water
    assert pages > 5
    assert {m.platform_id for m in seen} == expected  # nothing lost across the restart
    assert len(seen) == len(expected)  # and nothing twice
    m = next(x for x in seen if x.reply_to == post_b)
    assert m.kind == "comment" and m.created_at.tzinfo is not None and m.author.startswith("user")
    assert hw is not None and len(hw) <= 256

    # Nothing new: a second drain returns nothing.
    again, hw2, _ = drain(conn, "comments", hw)
    assert again == [] and hw2 == hw

    # New comments after the clock moves, plus one that became visible late with a time
    # older than the newest comment already seen (it landed on post A while the drain read B).
    now = clock.now()
    late = comment(5000, post_a, now - timedelta(minutes=3))
    fresh = [comment(6000 + i, post_b if i % 2 else post_a, now + timedelta(minutes=1 + i)) for i in range(5)]
    sandbox_state.load([late, *fresh], [], [])
    clock.advance(600)
    new, hw3, _ = drain(conn, "comments", hw)
    assert {m.platform_id for m in new} == {late.id} | {f.id for f in fresh}
    assert hw3 != hw
    assert drain(conn, "comments", hw3)[0] == []
    conn.close()


def test_tagged_stream_and_own_replies_are_not_mentions(sandbox_state, clock, fb_settings):  # type: ignore[no-untyped-def]
    expected, post_a, _ = load_threads(sandbox_state, clock, n_a=3, n_b=0)
    with make(fb_settings) as conn:
        tagged, hw, pages = drain(conn, "tagged", None, limit=5)
        assert len(tagged) == 12 and pages == 3 and all(m.kind == "mention" for m in tagged)
        assert {m.engagement for m in tagged} == set(range(12))
        # The page answers a comment: its own reply is not ingested as a mention.
        first = sorted(expected)[0]
        conn.publish("Thanks, we are looking into it.", idempotency_key="r1", reply_to=first)
        got, _, _ = drain(conn, "comments", None)
        assert {m.platform_id for m in got} == expected
        clock.advance(60)
        sandbox_state.load([SandboxMention(P, f"{PAGE}_999999", "late", "new tag", clock.now(), kind="mention")], [], [])
        new, _, _ = drain(conn, "tagged", hw)
        assert [m.platform_id for m in new] == [f"{PAGE}_999999"]


class LoseResponse(httpx.BaseTransport):
    """Delivers the request, then pretends the connection dropped before the answer came."""

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


def test_publish_once_and_find_after_lost_response(sandbox_state, clock, fb_settings):  # type: ignore[no-untyped-def]
    text = "We are investigating reports about the Ember stove. Please stop using it."
    since = clock.now() - timedelta(minutes=5)
    with make(fb_settings, transport=LoseResponse()) as conn:
        with pytest.raises(TransientError):
            conn.publish(text, idempotency_key="inc1:facebook", reply_to=None)
        found = conn.find_published(text, idempotency_key="inc1:facebook", since=since)
        assert found is not None and found.remote_id.startswith(PAGE + "_")
        # A blind resend is refused by Graph as a duplicate and answered with the same post.
        again = conn.publish(text, idempotency_key="inc1:facebook")
        assert again.remote_id == found.remote_id
        assert conn.find_published("some other text", idempotency_key="x", since=since) is None
        # Posts older than `since` do not count.
        assert conn.find_published(text, idempotency_key="x", since=clock.now() + timedelta(minutes=1)) is None
    assert [p.text for p in sandbox_state.posts[P]].count(text) == 1


def test_hide_comment_and_nothing_deletes_third_party_content(sandbox_state, clock, fb_settings):  # type: ignore[no-untyped-def]
    expected, _, _ = load_threads(sandbox_state, clock, n_a=2, n_b=1)
    victim = sorted(expected)[0]
    with make(fb_settings) as conn:
        conn.hide(victim)
        assert victim in sandbox_state.hidden[P]
        got, _, _ = drain(conn, "comments", None)
        assert victim in {m.platform_id for m in got}  # hidden, not gone
        # The only deleting operations check authorship first and refuse someone else's comment.
        assert [n for n in dir(conn) if "delete" in n.lower() or "remove" in n.lower()] == ["delete_own"]
        with pytest.raises(RejectedRequest):
            conn.delete_own(victim)
        with pytest.raises(RejectedRequest):
            conn.cancel_scheduled(ScheduledPost(P, victim, "", clock.now()))
        assert not [r for r in sandbox_state.requests if r["method"] == "DELETE"]
        # The page's own post (say, from a compromised account) can go.
        own = conn.publish("Unauthorised post", idempotency_key="oops")
        conn.delete_own(own.remote_id)
    assert sandbox_state.find_post(P, own.remote_id) is None
    assert [r["path"] for r in sandbox_state.requests if r["method"] == "DELETE"] == [f"/facebook/{own.remote_id}"]
    assert {m.id for m in sandbox_state.mentions[P]} >= expected


def test_scheduled_hold_release_cancel(sandbox_state, clock, fb_settings):  # type: ignore[no-untyped-def]
    now = clock.now()
    sale = SandboxScheduled(P, f"{PAGE}_801", "Flash sale: 30% off stoves!", now + timedelta(minutes=25),
                            media=["https://fjell.example/img/stove-sale.jpg"])
    ambassadors = SandboxScheduled(P, f"{PAGE}_802", "Meet our trail ambassadors", now + timedelta(minutes=240))
    guide = SandboxScheduled(P, f"{PAGE}_803", "Autumn trail guide", now + timedelta(minutes=60))
    sandbox_state.load([], [sale, ambassadors, guide], [])
    with make(fb_settings) as conn:
        listed = {p.platform_id: p for p in conn.list_scheduled()}
        assert set(listed) == {sale.id, ambassadors.id, guide.id}
        assert listed[sale.id].scheduled_at == sale.scheduled_at and listed[sale.id].text == sale.text
        assert listed[sale.id].media == tuple(sale.media)
        conn.hold_scheduled(listed[sale.id])
        conn.hold_scheduled(listed[guide.id])
        conn.cancel_scheduled(listed[ambassadors.id])

        clock.advance(5 * 3600)  # well past every original time
        sandbox_state.tick()
        published = {p.id for p in sandbox_state.posts[P]}
        assert not published & {sale.id, ambassadors.id, guide.id}
        assert sandbox_state.scheduled[P][ambassadors.id].state == "cancelled"

        # Release one later (kept id, text and media), the other "now" (too close for Graph to schedule).
        later = clock.now() + timedelta(hours=1)
        released = conn.release_scheduled(listed[sale.id], later)
        assert released.platform_id == sale.id and released.scheduled_at == later
        assert sandbox_state.scheduled[P][sale.id].scheduled_at == later
        conn.release_scheduled(listed[guide.id], clock.now())
        assert sandbox_state.find_post(P, guide.id) is not None
        clock.advance(3601)
        sandbox_state.tick()
        post = sandbox_state.find_post(P, sale.id)
        assert post is not None and post.media == sale.media and post.text == sale.text


def test_rate_limits_and_auth_translate(sandbox_state, clock, fb_settings):  # type: ignore[no-untyped-def]
    load_threads(sandbox_state, clock, n_a=1, n_b=0)
    sandbox_state.faults[P] = {"rate_limited": 120}
    with make(fb_settings) as conn:
        with pytest.raises(RateLimited) as info:
            conn.fetch_mentions("tagged", since=None, cursor=None)
        assert info.value.retry_after >= 60
    # A budget announced as 100% used: the next call is refused without reaching Graph.
    sandbox_state.faults[P] = {"app_usage": 100}
    with make(fb_settings) as conn:
        conn.fetch_mentions("tagged", since=None, cursor=None)
        sent = len(sandbox_state.requests)
        with pytest.raises(RateLimited):
            conn.fetch_mentions("tagged", since=None, cursor=None)
        assert len(sandbox_state.requests) == sent
    sandbox_state.faults[P] = {"revoked_tokens": ["fb-page-token"]}
    with make(fb_settings) as conn, pytest.raises(AuthError):
        conn.fetch_mentions("tagged", since=None, cursor=None)
    sandbox_state.faults[P] = {}
    with make(fb_settings.model_copy(update={"token": SecretStr("")})) as conn, pytest.raises(AuthError):
        conn.list_scheduled()


def test_every_request_fits_metas_spec(sandbox_state, clock, fb_settings):  # type: ignore[no-untyped-def]
    spec_path("meta-graph")  # the contract plugin checks every request against it
    expected, post_a, _ = load_threads(sandbox_state, clock, n_a=30, n_b=5)
    sandbox_state.load([], [SandboxScheduled(P, f"{PAGE}_801", "sale", clock.now() + timedelta(hours=1)),
                            SandboxScheduled(P, f"{PAGE}_802", "guide", clock.now() + timedelta(hours=2))], [])
    with make(fb_settings) as conn:
        hw = drain(conn, "comments", None)[1]
        drain(conn, "comments", hw)
        drain(conn, "tagged", None)
        conn.hide(sorted(expected)[0])
        res = conn.publish("Statement", idempotency_key="k")
        conn.publish("Sorry to hear that", idempotency_key="k2", reply_to=sorted(expected)[1])
        conn.find_published("Statement", idempotency_key="k", since=clock.now() - timedelta(hours=1))
        posts = conn.list_scheduled()
        conn.hold_scheduled(posts[0])
        conn.release_scheduled(posts[0], clock.now() + timedelta(hours=3))
        conn.release_scheduled(posts[0], clock.now())
        conn.cancel_scheduled(posts[1])
        conn.delete_own(res.remote_id)
    checked, problems = check_state_log(sandbox_state, "facebook")
    refused = [dict(parse_qsl(r["body"] if isinstance(r["body"], str) else ""))
               for r in sandbox_state.requests if r["platform"] == "facebook" and r["status"] >= 400]
    assert checked >= 15 and not problems, problems
    # The only refusal: "now" is too close for Graph to schedule, so the connector published instead.
    assert [list(p) for p in refused] == [["scheduled_publish_time"]]
    assert res.remote_id


def test_watermark_exactly_once_in_a_storm_with_ties():
    """The high-water window (shared by FB, IG, LinkedIn) under load: thousands of items,
    many sharing a millisecond, drained in batches; each is returned exactly once and the
    mark always fits the store's 256-character column."""
    import random

    from firebreak.connectors._graph import Watermark, WindowAccumulator

    rng = random.Random(7)
    lag = 15 * 60 * 1000
    items = [(1_000_000 + rng.randrange(0, 3_000_000) // 1000 * 1000, f"c{i}") for i in range(3000)]
    items.sort()
    mark: str | None = None
    returned: list[str] = []
    for cut in range(0, len(items) + 250, 250):  # each drain sees everything created so far
        visible = items[:cut]
        wm = Watermark.parse(mark)
        acc = WindowAccumulator.start_for(wm, lag)
        for ts, iid in reversed(visible):  # Graph order: newest first
            if ts < (wm.start if wm else 0):
                continue  # the `since` filter
            acc.add(ts, iid)
            if wm is None or wm.is_new(ts, iid):
                returned.append(iid)
        mark = acc.result(wm)
        assert mark is None or len(mark) <= 256
    assert sorted(returned) == sorted(i for _, i in items)


# A cursor the connector stored before the comments walk was shared with LinkedIn, written
# after the second page of `load_threads()` at limit 10 (in the middle of a post). The layout
# did not change; this keeps it that way for cursors already in the store.
OLD_CURSOR_AFTER_2_PAGES = ("eyJhY2MiOnsiY3V0IjowLCJmbG9vciI6MCwiaXRlbXMiOltbMTc3MjQ0NzI4MDAwMCwic1QyVE8iXSxbMTc3MjQ0NzE2MDAw"
    "MCwiTkFnVUYiXSxbMTc3MjQ0NzA0MDAwMCwiUHdSS0oiXSxbMTc3MjQ0NjkyMDAwMCwiNEVPaGIiXSxbMTc3MjQ0NjgwMDAw"
    "MCwiTG5NX2siXSxbMTc3MjQ0NjY4MDAwMCwiMEpkZVoiXSxbMTc3MjQ0NjU2MDAwMCwiTG5YZmgiXSxbMTc3MjQ0NjQ0MDAw"
    "MCwiNzVVengiXV0sImxhZyI6OTAwMDAwLCJ0b3AiOjE3NzI0NDcyODAwMDB9LCJhZnRlciI6Ik1UQXdNREF3TURBd01EQXdN"
    "REF4WHpVd01EQXdNREF3TVRBeE1BIiwicG9zdCI6IjEwMDAwMDAwMDAwMDAwMV8yMDAiLCJwb3N0c19hZnRlciI6bnVsbCwi"
    "cG9zdHNfZG9uZSI6dHJ1ZSwicXVldWUiOlsiMTAwMDAwMDAwMDAwMDAxXzEwMCJdLCJzY2FubmVkIjoyfQ")


def test_resumes_from_a_cursor_stored_by_the_previous_version(sandbox_state, clock, fb_settings):  # type: ignore[no-untyped-def]
    expected, _, _ = load_threads(sandbox_state, clock)
    with make(fb_settings) as conn:
        page = conn.fetch_mentions("comments", since=None, cursor=None, limit=10)
        first = list(page.mentions)
        page = conn.fetch_mentions("comments", since=None, cursor=page.next_cursor, limit=10)
        first += page.mentions
        assert page.next_cursor == OLD_CURSOR_AFTER_2_PAGES  # the same bytes as before
        mark = len(sandbox_state.requests)
        rest, hw, _ = drain(conn, "comments", None, limit=10, cursor=page.next_cursor)
        done = len(sandbox_state.requests)

        resumed, hw_old, _ = drain(conn, "comments", None, limit=10, cursor=OLD_CURSOR_AFTER_2_PAGES)
    ids = [m.platform_id for m in first + rest]
    assert sorted(ids) == sorted(expected) and len(ids) == len(set(ids))
    assert [m.platform_id for m in resumed] == [m.platform_id for m in rest] and hw_old == hw
    strip = [{k: r[k] for k in ("method", "path", "query")} for r in sandbox_state.requests]
    assert strip[done:] == strip[mark:done]
