"""The sandbox's fault middleware: each fault kind in the platform's own shape, writes that
happen although their answer is lost, listing pages that repeat and reorder without losing
anything, seeded reproducibility, and nothing at all when no profile is set."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

import httpx
import pytest
from firebreak.connectors.ratelimit import parse_rate_limit
from firebreak.sandbox.faults import (
    FaultInjector,
    FaultProfile,
    install_faults,
    profile_plan,
)
from firebreak.sandbox.state import SandboxMention, make_id

from firebreak.domain import Platform
from firebreak.errors import ConfigError
from tests.conftest import T0

AUTH = {"Authorization": "Bearer test-token"}
LI_HEADERS = {**AUTH, "LinkedIn-Version": "202504", "X-Restli-Protocol-Version": "2.0.0"}
X_BRAND = "1400000000000000001"


def only(platform: Platform, **kw: Any) -> dict[Platform, FaultProfile]:
    return {platform: FaultProfile(**kw)}


def load_x(state, n: int) -> None:  # type: ignore[no-untyped-def]
    state.load([SandboxMention(Platform.X, make_id(Platform.X, i + 1), f"user{i}", f"fjell stove {i}",
                               T0 - timedelta(minutes=n - i), author_id=str(5000 + i)) for i in range(n)], [], [])


def test_no_profile_changes_nothing(sandbox, sandbox_state) -> None:  # type: ignore[no-untyped-def]
    load_x(sandbox_state, 30)
    assert sandbox_state.fault_injector is None
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c:
        r = c.get(f"/x/2/users/{X_BRAND}/mentions", params={"max_results": 10})
    assert r.status_code == 200 and len(r.json()["data"]) == 10
    assert install_faults(sandbox_state, "none") is None and sandbox_state.fault_injector is None


@pytest.mark.parametrize("platform,path,status", [
    (Platform.X, f"/x/2/users/{X_BRAND}/mentions?max_results=10", 429),
    (Platform.MASTODON, "/mastodon/api/v1/notifications", 429),
    (Platform.BLUESKY, "/bluesky/xrpc/app.bsky.feed.searchPosts?q=fjell", 429),
    (Platform.FACEBOOK, "/facebook/100000000000001/tagged", 400),
    (Platform.INSTAGRAM, "/instagram/17841400000000001/tags", 400),
    (Platform.LINKEDIN, "/linkedin/rest/posts?q=author&author=urn:li:organization:1000001", 429),
])
def test_rate_limit_storm_in_platform_style(sandbox, sandbox_state, platform, path, status) -> None:  # type: ignore[no-untyped-def]
    inj = install_faults(sandbox_state, only(platform, rate_limit_rate=1.0, rate_limit_s=(5.0, 5.0)))
    assert inj is not None
    with httpx.Client(base_url=sandbox.url, headers=LI_HEADERS) as c:
        answers = [c.get(path) for _ in range(3)]  # one storm: every request inside it refused
    assert [a.status_code for a in answers] == [status] * 3
    r = answers[0]
    h = {k.lower() for k in r.headers}
    info = parse_rate_limit(r.headers)
    if platform is Platform.X:
        assert {"x-rate-limit-limit", "x-rate-limit-remaining", "x-rate-limit-reset"} <= h
        assert r.headers["x-rate-limit-reset"].isdigit() and 3 < info.retry_after_s(0) <= 6.5
    elif platform is Platform.MASTODON:
        assert "T" in r.headers["X-RateLimit-Reset"] and 3 < info.retry_after_s(0) <= 6.5
    elif platform is Platform.BLUESKY:
        assert {"ratelimit-limit", "ratelimit-remaining", "ratelimit-reset", "retry-after"} <= h
        assert r.json()["error"] == "RateLimitExceeded" and int(r.headers["retry-after"]) == 5
    elif platform in (Platform.FACEBOOK, Platform.INSTAGRAM):
        err = r.json()["error"]
        assert err["code"] in (4, 17, 32) and err["type"] == "OAuthException"
        assert '"estimated_time_to_regain_access": 1' in r.headers["x-business-use-case-usage"]
    else:
        assert not any("rate" in k or k == "retry-after" for k in h)  # LinkedIn: bare
    assert inj.summary()["by_platform"] == {platform.value: {"rate_limit": 3}}
    # Only that platform storms.
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c:
        other = "/mastodon/api/v1/notifications" if platform is not Platform.MASTODON else \
            f"/x/2/users/{X_BRAND}/mentions?max_results=10"
        assert c.get(other).status_code == 200


def test_storm_ends(sandbox, sandbox_state) -> None:  # type: ignore[no-untyped-def]
    inj = install_faults(sandbox_state, only(Platform.X, rate_limit_rate=1.0, rate_limit_s=(0.3, 0.3)))
    assert inj is not None
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c:
        assert c.get(f"/x/2/users/{X_BRAND}/mentions").status_code == 429
        inj.profiles[Platform.X] = FaultProfile()  # no new storm after this one
        time.sleep(0.35)
        assert c.get(f"/x/2/users/{X_BRAND}/mentions").status_code == 200


def test_5xx_and_latency(sandbox, sandbox_state) -> None:  # type: ignore[no-untyped-def]
    install_faults(sandbox_state, only(Platform.MASTODON, error_rate=1.0))
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c:
        r = c.get("/mastodon/api/v1/notifications")
        assert r.status_code in (500, 502, 503) and "error" in r.json()
        inj = install_faults(sandbox_state, only(Platform.MASTODON, latency_rate=1.0, latency_s=(0.25, 0.25)))
        t = time.monotonic()
        assert c.get("/mastodon/api/v1/notifications").status_code == 200
        assert time.monotonic() - t >= 0.25
    assert inj is not None and inj.summary()["by_kind"] == {"latency": 1}


def test_reset_before_a_write_applies_nothing(sandbox, sandbox_state) -> None:  # type: ignore[no-untyped-def]
    inj = install_faults(sandbox_state, only(Platform.MASTODON, reset_rate=1.0))
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # how a reset surfaces varies with timing
        c.post("/mastodon/api/v1/statuses", json={"status": "hello"})
    assert sandbox_state.posts[Platform.MASTODON] == []
    assert inj is not None and inj.summary()["total"] == 1
    # The sandbox itself is fine: the next request (faults off) is served.
    install_faults(sandbox_state, None)
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c:
        assert c.post("/mastodon/api/v1/statuses", json={"status": "hello"}).status_code == 200


def test_timeout_after_write_applies_the_write(sandbox, sandbox_state) -> None:  # type: ignore[no-untyped-def]
    install_faults(sandbox_state, only(Platform.X, write_timeout_rate=1.0))
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c, pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # how a reset surfaces varies with timing
        c.post("/x/2/tweets", json={"text": "statement one"})  # the answer is dropped half-way
    assert [p.text for p in sandbox_state.posts[Platform.X]] == ["statement one"]

    install_faults(sandbox_state, only(Platform.X, write_timeout_rate=1.0, write_timeout_delay_s=0.8))
    with httpx.Client(base_url=sandbox.url, headers=AUTH, timeout=0.3) as c, pytest.raises(httpx.ReadTimeout):
        c.post("/x/2/tweets", json={"text": "statement two"})  # held back past the client's timeout
    assert [p.text for p in sandbox_state.posts[Platform.X]] == ["statement one", "statement two"]
    # A refused write has nothing to lose: its error comes through.
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c:
        assert c.post("/x/2/tweets", json={"text": ""}).status_code == 400
    assert sandbox_state.fault_injector.summary()["by_kind"] == {"timeout_after_write": 1}


def test_x_pages_repeat_and_reorder_but_lose_nothing(sandbox, sandbox_state) -> None:  # type: ignore[no-untyped-def]
    load_x(sandbox_state, 95)
    inj = install_faults(sandbox_state, only(Platform.X, duplicate_rate=1.0, shuffle_rate=1.0), seed=3)
    seen: list[str] = []
    pages = 0
    params: dict[str, Any] = {"max_results": 10, "expansions": "author_id"}
    with httpx.Client(base_url=sandbox.url, headers=AUTH) as c:
        while True:
            body = c.get(f"/x/2/users/{X_BRAND}/mentions", params=params).json()
            pages += 1
            ids = [t["id"] for t in body.get("data", [])]
            users = {u["id"] for u in body.get("includes", {}).get("users", [])}
            assert all(t["author_id"] in users for t in body["data"])  # repeated items keep their author
            if pages == 1:
                assert len(ids) == 10  # a first page has nothing to repeat
            seen += ids
            if "next_token" not in body["meta"]:
                break
            params["pagination_token"] = body["meta"]["next_token"]
    assert len(set(seen)) == 95 and len(seen) > 95  # everything, some of it twice
    kinds = inj.summary()["by_kind"] if inj else {}
    assert kinds["duplicate"] == len(seen) - 95 and kinds["out_of_order"] >= pages - 1


def test_linkedin_offset_pages_never_exceed_count(sandbox, sandbox_state) -> None:  # type: ignore[no-untyped-def]
    post = "urn:li:share:7000000000000000001"
    sandbox_state.load([SandboxMention(Platform.LINKEDIN, f"urn:li:comment:({post},{i})", f"m{i}", f"fjell {i}",
                                       T0 - timedelta(minutes=30 - i), kind="comment", reply_to=post)
                        for i in range(25)], [], [])
    install_faults(sandbox_state, only(Platform.LINKEDIN, duplicate_rate=1.0, shuffle_rate=1.0))
    start, seen = 0, []
    with httpx.Client(base_url=sandbox.url, headers=LI_HEADERS) as c:
        while True:
            body = c.get(f"/linkedin/rest/socialActions/{post.replace(':', '%3A')}/comments",
                         params={"start": start, "count": 10}).json()
            els = body["elements"]
            assert len(els) <= 10
            seen += [e["commentUrn"] for e in els]
            start += len(els)
            if len(els) < 10 or start >= body["paging"]["total"]:
                break
    assert len(set(seen)) == 25


def test_seeded_schedule_is_reproducible() -> None:
    plan = profile_plan("storm")

    def schedule(seed: int) -> list[Any]:
        inj = FaultInjector(plan, seed, clock=lambda: 1_000.0)  # frozen time: storms last forever
        return [(p.value, vars(inj.decide(p, "POST", True)).copy()) for p in Platform for _ in range(40)]

    assert schedule(7) == schedule(7)
    assert schedule(7) != schedule(8)


def test_named_profiles() -> None:
    storm, mild = profile_plan("storm"), profile_plan("mild")
    assert all(p.active for p in storm.values()) and storm[Platform.X].error_rate > mild[Platform.X].error_rate
    assert storm[Platform.LINKEDIN].rate_limit_rate == 0  # a bare 429 ends LinkedIn for the day
    assert storm[Platform.FACEBOOK].rate_limit_rate < storm[Platform.X].rate_limit_rate
    assert not any(p.active for p in profile_plan("none").values())
    with pytest.raises(ConfigError):
        profile_plan("hurricane")


def test_control_panel_is_never_faulted(sandbox, sandbox_state) -> None:  # type: ignore[no-untyped-def]
    install_faults(sandbox_state, {p: FaultProfile(error_rate=1.0) for p in Platform})
    with httpx.Client(base_url=sandbox.url) as c:
        assert c.get("/_sandbox/state").status_code == 200
        assert c.post("/hooks/slack", json={"text": "hi"}).status_code == 200
