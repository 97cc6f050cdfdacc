"""Instagram connector against the live sandbox: comment and tag drains with cursors and
high-water, container publishing exactly once, hiding, no scheduling, limits, and every
request checked against Meta's IG spec files."""

from __future__ import annotations

import functools

from datetime import timedelta

import httpx
import pytest
from firebreak.connectors.instagram import DEFAULT_STATEMENT_CARD, InstagramConnector
from firebreak.sandbox.state import SandboxMention, SandboxPost
from pydantic import SecretStr

from firebreak.domain import Platform, ScheduledPost
from firebreak.errors import (
    AuthError,
    NotSupported,
    RateLimited,
    RejectedRequest,
    TransientError,
)
from tests.spec_check import check_state_log

from tests.specs import spec_path
from tests.connector_helpers import drain as _drain

# Graph comment pages hold more items than the social streams.
drain = functools.partial(_drain, limit=20)

P = Platform.INSTAGRAM
USER = "17841400000000001"


@pytest.fixture
def ig_settings(sandbox_settings):  # type: ignore[no-untyped-def]
    return sandbox_settings.platform(P).model_copy(update={"token": SecretStr("ig-token")})


def make(settings, transport: httpx.BaseTransport | None = None) -> InstagramConnector:  # type: ignore[no-untyped-def]
    return InstagramConnector(settings, handle="fjelloutdoor", account_id=USER, keywords=["fjell"], transport=transport)


def comment(n: int, media: str, at) -> SandboxMention:  # type: ignore[no-untyped-def]
    return SandboxMention(P, f"18{n:015d}", f"hiker{n}", f"ig comment {n}", at, kind="comment",
                          reply_to=media, likes=n % 5, author_id=str(20_000 + n))


def load(state, clock, n_a: int = 40, n_b: int = 25) -> tuple[set[str], str, str]:  # type: ignore[no-untyped-def]
    now = clock.now()
    media_a, media_b = "17900000000000100", "17900000000000200"
    posts = [SandboxPost(P, media_a, "Golden hour at Kebnekaise", now - timedelta(hours=6), source="scenario",
                         media=["https://fjell.example/img/kebnekaise.jpg"])]
    mentions = [comment(i, media_a, now - timedelta(minutes=300 - i)) for i in range(n_a)]
    mentions += [comment(1000 + i, media_b, now - timedelta(minutes=200 - 3 * i)) for i in range(n_b)]
    mentions += [SandboxMention(P, f"17800000000{i:06d}", f"tagger{i}", f"Tagged @fjelloutdoor {i}",
                                now - timedelta(minutes=50 - i), kind="mention", likes=i) for i in range(9)]
    state.load(mentions, [], posts)
    return {m.id for m in mentions if m.kind == "comment"}, media_a, media_b




def test_comment_drain_resumes_after_crash_and_high_water(sandbox_state, clock, ig_settings):  # type: ignore[no-untyped-def]
    expected, media_a, media_b = load(sandbox_state, clock)
    conn = make(ig_settings)
    first = conn.fetch_mentions("comments", since=None, cursor=None, limit=15)
    seen = list(first.mentions)
    conn.close()  # crash after the first page

    conn = make(ig_settings)
    cursor = first.next_cursor
    while cursor:
        page = conn.fetch_mentions("comments", since=None, cursor=cursor, limit=15)
        seen += page.mentions
        cursor = page.next_cursor
    assert sorted(m.platform_id for m in seen) == sorted(expected)
    hw = page.high_water
    m = next(x for x in seen if x.reply_to == media_b)
    assert m.kind == "comment" and m.author.startswith("hiker") and m.created_at.tzinfo is not None

    assert drain(conn, "comments", hw)[0] == []
    clock.advance(900)
    late = comment(7000, media_b, clock.now() - timedelta(minutes=20))  # older than the newest seen, shown late
    fresh = [comment(8000 + i, media_a, clock.now() - timedelta(minutes=i)) for i in range(3)]
    sandbox_state.load([late, *fresh], [], [])
    new, hw2, _ = drain(conn, "comments", hw)
    assert {x.platform_id for x in new} == {late.id, *(f.id for f in fresh)}
    assert drain(conn, "comments", hw2)[0] == []

    tags, thw, pages = drain(conn, "tags", None, limit=4)
    assert len(tags) == 9 and pages == 3 and {t.kind for t in tags} == {"mention"}
    assert drain(conn, "tags", thw)[0] == []
    conn.close()


class LoseResponse(httpx.BaseTransport):
    def __init__(self, path_part: str) -> None:
        self.inner = httpx.HTTPTransport()
        self.path_part = path_part

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        if self.path_part and self.path_part in request.url.path:
            self.path_part = ""
            resp.read()
            raise httpx.ReadTimeout("response lost", request=request)
        return resp


def test_publish_with_statement_card_and_find_after_lost_response(sandbox_state, clock, ig_settings):  # type: ignore[no-untyped-def]
    load(sandbox_state, clock, n_a=1, n_b=0)
    text = "We are investigating reports about the Ember stove. Stop using it until we know more."
    with make(ig_settings, transport=LoseResponse("media_publish")) as conn:
        with pytest.raises(TransientError):
            conn.publish(text, idempotency_key="inc:ig")
        found = conn.find_published(text, idempotency_key="inc:ig", since=clock.now() - timedelta(minutes=5))
        assert found is not None
        post = sandbox_state.find_post(P, found.remote_id)
        assert post is not None and post.media == [DEFAULT_STATEMENT_CARD]
        assert conn.find_published(text, idempotency_key="inc:ig", since=clock.now() + timedelta(seconds=1)) is None
    with make(ig_settings) as conn:
        res = conn.publish("Update: recall details at fjell.example/status", idempotency_key="u1")
        assert res.url.endswith(f"/{res.remote_id}/")
    assert [p.text for p in sandbox_state.posts[P]].count(text) == 1


def test_hide_and_no_scheduling_and_no_deletion(sandbox_state, clock, ig_settings):  # type: ignore[no-untyped-def]
    expected, media_a, _ = load(sandbox_state, clock, n_a=3, n_b=0)
    victim = sorted(expected)[0]
    with make(ig_settings) as conn:
        conn.hide(victim)
        assert victim in sandbox_state.hidden[P]
        reply = conn.publish("Please DM us", idempotency_key="r", reply_to=sorted(expected)[1])
        assert sandbox_state.find_post(P, reply.remote_id).reply_to == sorted(expected)[1]
        assert not conn.supports_scheduling
        post = ScheduledPost(P, "1", "x", clock.now())
        for op in (conn.list_scheduled, lambda: conn.hold_scheduled(post),
                   lambda: conn.release_scheduled(post, clock.now()), lambda: conn.cancel_scheduled(post)):
            with pytest.raises(NotSupported):
                op()
        assert [n for n in dir(conn) if "delete" in n.lower() or "remove" in n.lower()] == ["delete_own"]
        for not_ours in (victim, reply.remote_id):  # comments are never deleted, not even the brand's
            with pytest.raises(RejectedRequest):
                conn.delete_own(not_ours)
        got, _, _ = drain(conn, "comments", None)
        assert {m.platform_id for m in got} == expected  # the brand's reply is not a mention
        assert not [r for r in sandbox_state.requests if r["method"] == "DELETE"]
        own = conn.publish("Unauthorised post", idempotency_key="oops")
        conn.delete_own(own.remote_id)
    assert [r["path"] for r in sandbox_state.requests if r["method"] == "DELETE"] == [f"/instagram/{own.remote_id}"]


def test_limits_and_auth(sandbox_state, clock, ig_settings):  # type: ignore[no-untyped-def]
    load(sandbox_state, clock, n_a=1, n_b=0)
    sandbox_state.faults[P] = {"rate_limited": 30, "graph_throttle_code": 80002}  # IG business-use-case limit
    with make(ig_settings) as conn, pytest.raises(RateLimited) as info:
        conn.fetch_mentions("tags", since=None, cursor=None)
    assert info.value.retry_after >= 30
    sandbox_state.faults[P] = {"revoked_tokens": ["ig-token"]}
    with make(ig_settings) as conn, pytest.raises(AuthError):
        conn.fetch_mentions("comments", since=None, cursor=None)


def test_every_request_fits_metas_spec(sandbox_state, clock, ig_settings):  # type: ignore[no-untyped-def]
    spec_path("meta-graph")  # the contract plugin checks every request against it
    expected, media_a, _ = load(sandbox_state, clock, n_a=25, n_b=5)
    with make(ig_settings) as conn:
        hw = drain(conn, "comments", None)[1]
        drain(conn, "comments", hw)
        drain(conn, "tags", None, limit=3)
        conn.hide(sorted(expected)[0])
        conn.publish("Statement", idempotency_key="k")
        conn.publish("We hear you", idempotency_key="k2", reply_to=sorted(expected)[1])
        found = conn.find_published("Statement", idempotency_key="k", since=clock.now() - timedelta(hours=1))
        conn.delete_own(found.remote_id)
    checked, problems = check_state_log(sandbox_state, "instagram")
    assert all(r["status"] < 400 for r in sandbox_state.requests), sandbox_state.requests
    assert checked >= 10 and not problems, problems
