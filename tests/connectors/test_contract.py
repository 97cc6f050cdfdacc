"""The contract checker itself: bad exchanges are caught, hand-made ones are not judged."""

from __future__ import annotations

import json

from firebreak.sandbox.recorder import Exchange
from tests.contract import Tally, check

UA = {"user-agent": "firebreak/0.1"}


def ex(platform: str, method: str, path: str, query: list[tuple[str, str]] | None = None, body=None,  # type: ignore[no-untyped-def]
       headers: dict[str, str] | None = None, status: int = 200, response: object = None) -> Exchange:
    raw = json.dumps(response).encode() if response is not None else b""
    return Exchange(platform, method, path, query or [], headers if headers is not None else dict(UA), body, status,
                    "application/json" if raw else "", raw)


def test_violations_are_caught_per_platform() -> None:
    tally = Tally()
    check([
        ex("x", "GET", "/2/tweets/search/recent", [("query", "fjell"), ("tweet.fields", "created_at")]),
        ex("x", "GET", "/2/tweets/search/recent", [("query", "fjell"), ("max_results", "500")]),
        ex("x", "POST", "/2/tweets", body={"text": "hi", "colour": "red"}),
        ex("mastodon", "GET", "/api/v1/notifications", [("types[]", "mention"), ("limit", "80")]),  # fits
        ex("mastodon", "PATCH", "/api/v1/statuses", body={"status": "x"}),
        ex("bluesky", "GET", "/xrpc/com.atproto.repo.createRecord"),
        ex("bluesky", "POST", "/xrpc/com.atproto.repo.createRecord",
           body={"repo": "did:plc:a", "collection": "app.bsky.feed.post", "record": {"$type": "app.bsky.feed.post"}}),
        ex("facebook", "GET", "/100000000000001/feed", [("fields", "id,nonsense")]),
        ex("linkedin", "GET", "/rest/posts", [("q", "author"), ("author", "urn:li:organization:1")], headers=UA),
        ex("x", "GET", "/2/users/1/mentions", status=200, response={"data": "not a list"}),
        # made by a test by hand: request not judged, but its answer is
        ex("x", "GET", "/nowhere", headers={"user-agent": "python-httpx/0.28"}, status=404),
    ], tally)
    problems = "\n".join(p for _, _, p in tally.violations)
    assert "undeclared query parameter 'tweet.fields'" in problems
    assert "?max_results" in problems and "undeclared body fields ['colour']" in problems
    assert "method not declared" in problems
    assert "procedure must be POST" in problems and "required field 'text' missing" in problems
    assert "field 'nonsense' not a field" in problems
    assert "LinkedIn-Version header missing" in problems
    assert "response GET /2/users/{id}/mentions -> 200" in problems
    assert "/nowhere" not in problems and tally.foreign["x"] == 1
    assert tally.requests == {"x": 4, "mastodon": 2, "bluesky": 2, "facebook": 1, "linkedin": 1}
    assert not [p for p in problems.splitlines() if "/api/v1/notifications" in p]
