"""X connector against the live sandbox: cursors, high-water, publish/find, hide, 429, spec."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import httpx
import pytest
from firebreak.connectors import build_connector
from firebreak.sandbox.state import SandboxMention, SandboxPost, make_id
from firebreak.connectors.x import XConnector, build_query
from pydantic import SecretStr

from firebreak.domain import Platform
from firebreak.errors import (
    AuthError,
    NotSupported,
    RateLimited,
    RejectedRequest,
    TransientError,
)
from tests.spec_check import check_state_log, specs

from tests.connector_helpers import LossyTransport, drain

P = Platform.X


# -- helpers -------------------------------------------------------------------------------

def connector(settings, playbook, *, token: str = "test-token", transport=None) -> XConnector:  # type: ignore[no-untyped-def]
    cfg = settings.model_copy(update={"x": settings.x.model_copy(update={"token": SecretStr(token)})})
    conn = build_connector(P, cfg, playbook, transport=transport)
    assert isinstance(conn, XConnector)
    return conn


def load_mentions(state, t0, n: int, *, start_min: float = -120, step_min: float = 1.0, first: int = 1,
                  text: str = "my fjell stove caught fire") -> list[SandboxMention]:  # type: ignore[no-untyped-def]
    """n mentions, one per `step_min`, ids deliberately NOT in time order (like scenarios)."""
    items = []
    for i in range(n):
        num = first + (n - i) * 7  # reversed numbering: the sandbox must still order by time
        items.append(SandboxMention(P, make_id(P, num), f"hiker{num}", f"{text} #{num}",
                                    t0 + timedelta(minutes=start_min + i * step_min), lang="en",
                                    followers=100 + num, likes=num % 5, reposts=1, author_id=str(5000 + num)))
    state.load(items, [], [])
    return items


# -- listening -----------------------------------------------------------------------------
def test_drain_survives_a_crash_between_pages(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    items = load_mentions(sandbox_state, clock.now(), 35)
    conn = connector(sandbox_settings, playbook)
    first = conn.fetch_mentions("search", since=None, cursor=None, limit=10)
    assert len(first.mentions) == 10 and first.next_cursor and first.high_water is None
    saved = str(first.next_cursor)
    conn.close()  # crash: only the cursor string survives

    resumed = connector(sandbox_settings, playbook)
    rest, high_water, pages = drain_from(resumed, saved)
    got = [m.platform_id for m in first.mentions + rest]
    assert len(got) == len(set(got)) == len(items)
    assert pages == 4  # 35 mentions, 10 a page
    # The high-water mark is the newest id seen on the *first* page, carried through.
    assert high_water == max(got, key=int) == first.mentions[0].platform_id
    newest = first.mentions[0]
    assert newest.text.startswith("my fjell stove") and newest.created_at.tzinfo is not None
    assert newest.author.startswith("hiker") and newest.author_followers > 100 and newest.engagement >= 1
    assert newest.url == f"https://x.com/{newest.author}/status/{newest.platform_id}"
    assert newest.lang_hint == "en" and newest.kind == "mention"


def drain_from(conn: XConnector, cursor: str) -> tuple[list[Any], str | None, int]:
    out, pages = [], 1
    while True:
        page = conn.fetch_mentions("search", since=None, cursor=cursor, limit=10)
        out.extend(page.mentions)
        pages += 1
        if page.next_cursor is None:
            return out, page.high_water, pages
        cursor = page.next_cursor


def test_high_water_returns_only_new_mentions(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    # 20 already posted, 6 more in the next 30 minutes of the scenario.
    load_mentions(sandbox_state, clock.now(), 20, start_min=-40)
    later = load_mentions(sandbox_state, clock.now(), 6, start_min=5, step_min=4, first=1000)
    conn = connector(sandbox_settings, playbook)
    seen, hw, _ = drain(conn, "search", None)
    assert len(seen) == 20 and hw

    again, hw2, pages = drain(conn, "search", hw)
    assert again == [] and hw2 == hw and pages == 1

    clock.advance(30 * 60)
    new, hw3, _ = drain(conn, "search", hw)
    assert sorted(m.text for m in new) == sorted(m.text for m in later)
    assert int(hw3) > int(hw)  # type: ignore[arg-type]


def test_mentions_stream_and_replies(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    t0 = clock.now()
    brand = SandboxPost(P, make_id(P, 50), "Our new stove is out", t0 - timedelta(days=1), source="scenario")
    sandbox_state.load([
        SandboxMention(P, make_id(P, 1), "ann", "@fjelloutdoor my stove broke", t0 - timedelta(minutes=3)),
        SandboxMention(P, make_id(P, 2), "bob", "it burned my tent", t0 - timedelta(minutes=2), kind="reply",
                       reply_to=brand.id),
        SandboxMention(P, make_id(P, 3), "cid", "fjell is a nice word", t0 - timedelta(minutes=1)),
    ], [], [brand])
    conn = connector(sandbox_settings, playbook)
    got, _, _ = drain(conn, "mentions", None)
    assert [m.author for m in got] == ["cid", "bob", "ann"]  # newest first
    reply = got[1]
    assert reply.kind == "reply" and reply.reply_to and reply.reply_to != reply.platform_id
    assert got[2].kind == "mention" and got[2].reply_to == ""
    searched, _, _ = drain(conn, "search", None)  # keyword search: "fjell" or "@fjelloutdoor"
    assert [m.author for m in searched] == ["cid", "ann"]
    with pytest.raises(RejectedRequest):
        conn.fetch_mentions("nope", since=None, cursor=None)


def test_search_query_from_keywords(playbook):  # type: ignore[no-untyped-def]
    q = build_query(list(playbook.brand.keywords), "fjelloutdoor")
    assert q == '(fjell OR "fjell outdoor" OR @fjelloutdoor OR #fjell) -from:fjelloutdoor -is:retweet'
    assert len(build_query([f"keyword{i}" for i in range(200)], "b")) <= 512


# -- publishing ----------------------------------------------------------------------------
def test_publish_reply_and_find_it_after_a_lost_response(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    load_mentions(sandbox_state, clock.now(), 3)
    lossy = LossyTransport("POST /x/2/tweets")
    conn = connector(sandbox_settings, playbook, transport=lossy)
    target = conn.fetch_mentions("search", since=None, cursor=None, limit=10).mentions[0]
    text = "We are sorry & we are on it. Updates: https://fjell.example/status"
    since = clock.now() - timedelta(minutes=1)
    assert conn.find_published(text, idempotency_key="k1", since=since) is None

    # The post goes out but the answer is lost: a write is not resent blindly.
    with pytest.raises(TransientError):
        conn.publish(text, idempotency_key="k1", reply_to=target.platform_id)
    assert len(sandbox_state.posts[P]) == 1

    found = conn.find_published(text, idempotency_key="k1", since=since)
    assert found is not None and found.platform is P
    assert found.url == f"https://x.com/fjelloutdoor/status/{found.remote_id}"
    assert conn.find_published("another text", idempotency_key="k2", since=since) is None
    # The recovery protocol (look up, then publish only if absent) leaves exactly one post.
    post = sandbox_state.posts[P][0]
    assert post.text == text and post.reply_to == sandbox_state.mentions[P][-1].id

    result = conn.publish("Second update", idempotency_key="k2")
    assert result.remote_id != found.remote_id and len(sandbox_state.posts[P]) == 2


def test_publish_rejects_over_long_text(sandbox, sandbox_settings, playbook):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook)
    with pytest.raises(RejectedRequest) as err:
        conn.publish("x" * 281, idempotency_key="long")
    assert err.value.status == 400 and "too long" in str(err.value)
    # URLs count 23 characters each, whatever their length.
    conn.publish("y" * 250 + " https://fjell.example/" + "a" * 100, idempotency_key="url")


# -- moderation, scheduling, errors --------------------------------------------------------
def test_hide_reply(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    items = load_mentions(sandbox_state, clock.now(), 2, text="fjell you are all idiots")
    conn = connector(sandbox_settings, playbook)
    m = conn.fetch_mentions("search", since=None, cursor=None).mentions[0]
    conn.hide(m.platform_id)
    conn.hide(m.platform_id)  # idempotent
    assert sandbox_state.hidden[P] == {items[-1].id}
    with pytest.raises(RejectedRequest):
        conn.hide("1234")


def test_no_scheduled_posts_on_x(sandbox_settings, playbook):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook)
    assert not conn.supports_scheduling
    with pytest.raises(NotSupported):
        conn.list_scheduled()


def test_rate_limit_429_gives_retry_after(sandbox, sandbox_state, sandbox_settings, playbook):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook)
    conn.fetch_mentions("mentions", since=None, cursor=None)
    assert conn.http.rate.info.remaining and conn.http.rate.info.remaining > 1000  # generous budget
    sandbox_state.faults[P] = {"rate_limited": 30}
    with pytest.raises(RateLimited) as err:
        conn.fetch_mentions("mentions", since=None, cursor=None)
    assert 28 <= err.value.retry_after <= 31
    last = sandbox_state.requests[-1]
    assert last["status"] == 429


def test_missing_or_bad_token_is_refused(sandbox, sandbox_state, sandbox_settings, playbook):  # type: ignore[no-untyped-def]
    with pytest.raises(AuthError):
        connector(sandbox_settings, playbook, token="").fetch_mentions("search", since=None, cursor=None)
    sandbox_state.faults[P] = {"revoked_tokens": ["old-token"]}
    with pytest.raises(AuthError):
        connector(sandbox_settings, playbook, token="old-token").fetch_mentions("search", since=None, cursor=None)
    assert sandbox_state.requests[-1]["status"] == 401


def test_every_request_matches_the_spec(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    load_mentions(sandbox_state, clock.now(), 25)
    conn = connector(sandbox_settings, playbook)
    for stream in conn.streams:
        drain(conn, stream, None)
    m = conn.fetch_mentions("search", since=None, cursor=None).mentions[0]
    conn.publish("We are looking into it.", idempotency_key="s1", reply_to=m.platform_id)
    conn.find_published("We are looking into it.", idempotency_key="s1", since=clock.now() - timedelta(hours=1))
    conn.hide(m.platform_id)
    reqs = [r for r in sandbox_state.requests if r["platform"] == "x"]
    checked, problems = check_state_log(sandbox_state, "x")
    assert not problems and checked == len(reqs) >= 8, problems
    assert all(r["status"] < 400 for r in reqs)


def test_sandbox_responses_fit_the_spec(sandbox, sandbox_state, clock):  # type: ignore[no-untyped-def]
    def errors(name: str, body: Any) -> list[str]:
        return specs.x.schema_errors({"$ref": f"#/components/schemas/{name}"}, body, name)

    load_mentions(sandbox_state, clock.now(), 12)
    fields = {"post.fields": "created_at,lang,public_metrics,conversation_id", "expansions": "author_id",
              "user.fields": "public_metrics,username", "max_results": 10}
    with httpx.Client(base_url=f"{sandbox.url}/x", headers={"Authorization": "Bearer t"}) as c:
        search = c.get("/2/tweets/search/recent", params={"query": "fjell", **fields}).json()
        assert search["meta"]["next_token"] and not errors("SearchPostsRecentResponse", search)
        mentions = c.get("/2/users/1400000000000000001/mentions", params=fields).json()
        assert not errors("GetUsersMentionsResponse", mentions)
        created = c.post("/2/tweets", json={"text": "hello"}).json()
        assert not errors("CreatePostsResponse", created)
        hidden = c.put(f"/2/tweets/{search['data'][0]['id']}/hidden", json={"hidden": True}).json()
        assert not errors("HidePostsReplyResponse", hidden)
        own = c.get("/2/users/1400000000000000001/tweets", params={"post.fields": "created_at"}).json()
        assert own["data"][0]["id"] == created["data"]["id"] and not errors("GetUsersPostsResponse", own)
