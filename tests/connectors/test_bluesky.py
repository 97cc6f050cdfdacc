"""Bluesky connector against the live sandbox: sessions and refresh, cursors, high-water,
rkey idempotency, replies and facets, threadgate hiding, own-repo guard, 429, lexicons."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from firebreak.connectors import build_connector
from firebreak.connectors.bluesky import BlueskyConnector, facets_for, tid_for_key
from firebreak.sandbox.state import (
    BRAND_DID,
    SandboxMention,
    SandboxPost,
    make_id,
)
from pydantic import SecretStr

from firebreak.domain import Platform
from firebreak.errors import (
    AuthError,
    NotSupported,
    PolicyViolation,
    RateLimited,
    RejectedRequest,
)
from tests.spec_check import check_state_log, specs

from tests.connector_helpers import LossyTransport, drain

P = Platform.BLUESKY
HANDLE = "@fjell.bsky.example"


def connector(settings, playbook, clock, *, password: str = "app-pass-1234", transport=None) -> BlueskyConnector:  # type: ignore[no-untyped-def]
    cfg = settings.model_copy(update={"bluesky": settings.bluesky.model_copy(update={"password": SecretStr(password)})})
    conn = build_connector(P, cfg, playbook, transport=transport)
    assert isinstance(conn, BlueskyConnector)
    conn.clock = clock
    return conn


def brand_post(state, t0) -> SandboxPost:  # type: ignore[no-untyped-def]
    post = SandboxPost(P, make_id(P, 5000), "New trail guide for the Kungsleden is out.", t0 - timedelta(days=2),
                       source="scenario")
    state.load([], [], [post])
    return post


def load_mentions(state, t0, n: int, *, start_min: float = -120, step_min: float = 1.0, first: int = 1,
                  reply_to: str = "", text: str = "fjell stove exploded") -> list[SandboxMention]:  # type: ignore[no-untyped-def]
    items = []
    for i in range(n):
        num = first + i
        replying = bool(reply_to) and i % 2 == 0
        items.append(SandboxMention(P, make_id(P, num), f"skier{num}", f"{HANDLE} {text} {num}",
                                    t0 + timedelta(minutes=start_min + i * step_min), lang="nl",
                                    kind="reply" if replying else "mention",
                                    reply_to=reply_to if replying else "", likes=3, reposts=1))
    state.load(items, [], [])
    return items


# -- listening -----------------------------------------------------------------------------
def test_notifications_drain_survives_a_crash(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    root = brand_post(sandbox_state, clock.now())
    items = load_mentions(sandbox_state, clock.now(), 23, reply_to=root.id)
    conn = connector(sandbox_settings, playbook, clock)
    first = conn.fetch_mentions("notifications", since=None, cursor=None, limit=10)
    assert len(first.mentions) == 10 and first.next_cursor and first.high_water is None
    saved = str(first.next_cursor)
    conn.close()

    resumed = connector(sandbox_settings, playbook, clock)
    rest, hw, pages = drain(resumed, "notifications", None, cursor=saved)
    got = [m.platform_id for m in first.mentions + rest]
    assert len(got) == len(set(got)) == len(items) and pages == 2
    assert hw and json.loads(hw)["u"] == [first.mentions[0].platform_id]

    newest = first.mentions[0]
    assert newest.platform_id.startswith("at://did:plc:") and newest.text.endswith("exploded 23")
    assert newest.created_at == items[-1].created_at and newest.lang_hint == "nl" and newest.engagement == 0
    replies = [m for m in first.mentions + rest if m.kind == "reply"]
    assert len(replies) == 12 and all(m.reply_to == f"at://{BRAND_DID}/app.bsky.feed.post/{root.id}" for m in replies)
    assert newest.url == f"https://bsky.app/profile/{newest.author}/post/{items[-1].id}"


def test_high_water_returns_only_new_mentions(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    # Two mentions share the boundary instant: `since` is inclusive, neither may repeat or be lost.
    load_mentions(sandbox_state, clock.now(), 11, start_min=-30)
    load_mentions(sandbox_state, clock.now(), 1, start_min=-20, first=400)
    later = load_mentions(sandbox_state, clock.now(), 5, start_min=2, step_min=5, first=1000)
    conn = connector(sandbox_settings, playbook, clock)
    hws: dict[str, str | None] = {}
    for stream in conn.streams:
        seen, hws[stream], _ = drain(conn, stream, None)
        assert len(seen) == 12, stream
        again, hw2, _ = drain(conn, stream, hws[stream])
        assert again == [] and hw2 == hws[stream], stream
    clock.advance(30 * 60)
    for stream in conn.streams:
        new, _, _ = drain(conn, stream, hws[stream], limit=2)
        assert sorted(m.text for m in new) == sorted(m.text for m in later), stream
    since = [dict(parse_qsl(r["query"])).get("since") for r in sandbox_state.requests if "searchPosts" in r["path"]]
    assert since[-1] == json.loads(hws["search"])["t"]  # type: ignore[arg-type]


# -- publishing ----------------------------------------------------------------------------
def test_publish_is_idempotent_by_record_key(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    lossy = LossyTransport("com.atproto.repo.createRecord")
    conn = connector(sandbox_settings, playbook, clock, transport=lossy)
    since = clock.now() - timedelta(minutes=1)
    assert conn.find_published("Statement", idempotency_key="stmt-1", since=since) is None
    # The first answer is lost; the client retries, the PDS refuses the known rkey, the
    # connector reads the record back: one post.
    first = conn.publish("Statement", idempotency_key="stmt-1")
    again = conn.publish("Statement", idempotency_key="stmt-1")
    assert lossy.drops == 0 and first.remote_id == again.remote_id
    assert len(sandbox_state.posts[P]) == 1 and sandbox_state.posts[P][0].id == tid_for_key("stmt-1")
    assert first.remote_id == f"at://{BRAND_DID}/app.bsky.feed.post/{tid_for_key('stmt-1')}"
    assert first.published_at == clock.now()

    found = conn.find_published("Statement", idempotency_key="stmt-1", since=since)
    assert found is not None and found.remote_id == first.remote_id
    other = conn.publish("Update 1", idempotency_key="upd-1")
    assert other.remote_id != first.remote_id and len(sandbox_state.posts[P]) == 2


def test_record_keys_are_valid_tids():
    keys = {tid_for_key(f"key-{i}") for i in range(200)}
    assert len(keys) == 200
    assert all(len(k) == 13 and k[0] in "234567abcdefghij" and set(k) <= set("234567abcdefghijklmnopqrstuvwxyz")
               for k in keys)
    assert tid_for_key("same") == tid_for_key("same")


def test_reply_has_strong_refs_and_byte_offset_facets(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    root = brand_post(sandbox_state, clock.now())
    load_mentions(sandbox_state, clock.now(), 1, reply_to=root.id)
    conn = connector(sandbox_settings, playbook, clock)
    target = conn.fetch_mentions("notifications", since=None, cursor=None).mentions[0]
    text = f"@{target.author} Beklager – läs mer på https://fjell.example/status #fjellember"
    conn.publish(text, idempotency_key="reply-1", reply_to=target.platform_id)
    rec = sandbox_state.posts[P][-1].extra["record"]
    assert rec["reply"]["parent"]["uri"] == target.platform_id
    assert rec["reply"]["root"]["uri"] == f"at://{BRAND_DID}/app.bsky.feed.post/{root.id}"
    raw = text.encode()
    spans = {f["features"][0]["$type"].rsplit("#", 1)[1]: raw[f["index"]["byteStart"]:f["index"]["byteEnd"]].decode()
             for f in rec["facets"]}
    assert spans == {"mention": f"@{target.author}", "link": "https://fjell.example/status", "tag": "#fjellember"}
    assert sandbox_state.posts[P][-1].reply_to == sandbox_state.mentions[P][0].id


def test_facets_for_plain_text():
    assert facets_for("no links here", {}) == []
    f = facets_for("ö https://a.example/x.", {})
    assert f[0]["index"] == {"byteStart": 3, "byteEnd": 22} and f[0]["features"][0]["uri"] == "https://a.example/x"


def test_publish_rejects_over_300_graphemes(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook, clock)
    conn.publish("👍🏽" * 300, idempotency_key="ok")  # 300 graphemes, 2400 bytes: fine
    with pytest.raises(RejectedRequest) as err:
        conn.publish("a" * 301, idempotency_key="long")
    # Refused before sending: a record that does not fit the lexicon never leaves.
    assert err.value.status == 400 and "300" in str(err.value)
    assert len(sandbox_state.posts[P]) == 1
    assert not [r for r in sandbox_state.requests if r["status"] >= 400]


# -- moderation ----------------------------------------------------------------------------
def test_hide_replies_through_the_threadgate(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    root = brand_post(sandbox_state, clock.now())
    items = load_mentions(sandbox_state, clock.now(), 4, reply_to=root.id, text="you are all idiots")
    conn = connector(sandbox_settings, playbook, clock)
    got, _, _ = drain(conn, "notifications", None)
    replies = [m for m in got if m.kind == "reply"]
    assert len(replies) == 2
    for m in replies:
        conn.hide(m.platform_id)
    conn.hide(replies[0].platform_id)  # already hidden: no write
    assert sandbox_state.hidden[P] == {items[0].id, items[2].id}
    puts = [r for r in sandbox_state.requests if r["path"].endswith("putRecord")]
    assert len(puts) == 2
    gate = puts[-1]["body"]
    assert gate["rkey"] == root.id and gate["record"]["post"] == f"at://{BRAND_DID}/app.bsky.feed.post/{root.id}"
    assert gate["record"]["hiddenReplies"] == [m.platform_id for m in replies] and "allow" not in gate["record"]
    assert "swapRecord" in gate  # the second write is a compare-and-swap on the first

    plain = next(m for m in got if m.kind == "mention")
    with pytest.raises(NotSupported):
        conn.hide(plain.platform_id)


def test_delete_only_own_records(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    load_mentions(sandbox_state, clock.now(), 1)
    conn = connector(sandbox_settings, playbook, clock)
    theirs = conn.fetch_mentions("notifications", since=None, cursor=None).mentions[0]
    with pytest.raises(PolicyViolation):
        conn.delete_own(theirs.platform_id)
    mine = conn.publish("Oops, wrong account", idempotency_key="oops")
    conn.delete_own(mine.remote_id)
    assert sandbox_state.posts[P] == [] and len(sandbox_state.mentions[P]) == 1
    assert not any(r["path"].endswith("deleteRecord") and theirs.platform_id.split("/")[2] in str(r["body"])
                   for r in sandbox_state.requests)


# -- auth and errors -----------------------------------------------------------------------
def test_session_refresh_after_401(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    load_mentions(sandbox_state, clock.now(), 3)
    conn = connector(sandbox_settings, playbook, clock)
    conn.fetch_mentions("notifications", since=None, cursor=None)
    sandbox_state.faults[P] = {"expire_sessions": True}
    page = conn.fetch_mentions("notifications", since=None, cursor=None)
    assert len(page.mentions) == 3
    trail = [(r["path"].rsplit(".", 1)[-1], r["status"]) for r in sandbox_state.requests]
    assert trail == [("createSession", 200), ("listNotifications", 200), ("listNotifications", 401),
                     ("refreshSession", 200), ("listNotifications", 200)]


def test_expired_refresh_token_logs_in_again(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook, clock)
    conn.fetch_mentions("notifications", since=None, cursor=None)
    conn._session["refreshJwt"] = "revoked"  # type: ignore[index]
    sandbox_state.faults[P] = {"expire_sessions": True}
    conn.fetch_mentions("notifications", since=None, cursor=None)
    names = [r["path"].rsplit(".", 1)[-1] for r in sandbox_state.requests]
    assert names[-3:] == ["refreshSession", "createSession", "listNotifications"]


def test_400_expired_token_from_a_real_pds_refreshes_too(playbook, clock):  # type: ignore[no-untyped-def]
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        nsid = request.url.path.rsplit("/", 1)[-1]
        calls.append(nsid)
        if nsid in ("com.atproto.server.createSession", "com.atproto.server.refreshSession"):
            n = len(calls)
            return httpx.Response(200, json={"accessJwt": f"a{n}", "refreshJwt": f"r{n}", "handle": "h",
                                             "did": BRAND_DID})
        if request.headers["authorization"] == "Bearer a1":
            return httpx.Response(400, json={"error": "ExpiredToken", "message": "Token has expired"})
        return httpx.Response(200, json={"notifications": []})

    from firebreak.config.settings import PlatformSettings

    settings = PlatformSettings(base_url="https://pds.example", password=SecretStr("pw"))
    conn = BlueskyConnector(settings, handle="fjell.bsky.example", account_id=BRAND_DID, keywords=["fjell"],
                            transport=httpx.MockTransport(handler))
    assert conn.fetch_mentions("notifications", since=None, cursor=None).mentions == []
    assert calls == ["com.atproto.server.createSession", "app.bsky.notification.listNotifications",
                     "com.atproto.server.refreshSession", "app.bsky.notification.listNotifications"]


def test_wrong_or_missing_password(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    with pytest.raises(AuthError):
        connector(sandbox_settings, playbook, clock, password="").fetch_mentions("search", since=None, cursor=None)
    assert sandbox_state.requests == []  # refused before sending anything
    sandbox_state.faults[P] = {"bad_passwords": ["wrong"]}
    with pytest.raises(AuthError):
        connector(sandbox_settings, playbook, clock, password="wrong").fetch_mentions("search", since=None, cursor=None)


def test_rate_limit_429_with_retry_after(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    conn = connector(sandbox_settings, playbook, clock)
    conn.fetch_mentions("notifications", since=None, cursor=None)
    assert (conn.http.rate.info.remaining or 0) > 1000
    sandbox_state.faults[P] = {"rate_limited": 20}
    with pytest.raises(RateLimited) as err:
        conn.fetch_mentions("search", since=None, cursor=None)
    assert err.value.retry_after == 20  # Retry-After wins over RateLimit-Reset


def test_every_request_matches_the_lexicons(sandbox, sandbox_state, sandbox_settings, playbook, clock):  # type: ignore[no-untyped-def]
    root = brand_post(sandbox_state, clock.now())
    load_mentions(sandbox_state, clock.now(), 12, reply_to=root.id)
    conn = connector(sandbox_settings, playbook, clock)
    got: list[Any] = []
    for stream in conn.streams:
        got += drain(conn, stream, None)[0]
    reply = next(m for m in got if m.kind == "reply")
    conn.publish("Sorry, we are on it", idempotency_key="lx", reply_to=reply.platform_id)
    conn.publish("Sorry, we are on it", idempotency_key="lx", reply_to=reply.platform_id)
    conn.find_published("x", idempotency_key="none", since=clock.now())
    conn.hide(reply.platform_id)
    conn.delete_own(conn.publish("tmp", idempotency_key="tmp").remote_id)
    sandbox_state.faults[P] = {"expire_sessions": True}
    conn.fetch_mentions("search", since=None, cursor=None)
    reqs = [r for r in sandbox_state.requests if r["platform"] == "bluesky"]
    checked, problems = check_state_log(sandbox_state, "bluesky")
    assert not problems and checked == len(reqs) >= 12, problems
    # ...and the checker does catch a record that does not fit app.bsky.feed.post.
    bad = {"repo": BRAND_DID, "collection": "app.bsky.feed.post",
           "record": {"$type": "app.bsky.feed.post", "text": "a" * 301, "langs": "en"}}
    found = specs.lexicons.check_request("POST", "com.atproto.repo.createRecord", [], bad)
    assert any("createdAt" in p for p in found) and any("graphemes" in p for p in found)
    assert any("expected an array" in p for p in found)
