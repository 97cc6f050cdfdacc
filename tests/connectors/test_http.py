"""The shared client's rules, one test per rule, on httpx.MockTransport: retries and their
limits, writes never blindly repeated, rate-limit headers, proactive pacing, bounded
concurrency, the circuit breaker, auth refresh (OAuth 2) and secrets kept out of errors and
logs (the last one against the live sandbox, every platform)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from firebreak.config.settings import PlatformSettings
from firebreak.connectors.http import ApiClient, CircuitBreaker
from firebreak.connectors.ratelimit import RateLimitState, parse_rate_limit
from firebreak.connectors.x import XConnector
from firebreak.errors import (
    AuthError,
    CircuitOpen,
    ConnectorError,
    NotSent,
    RateLimited,
    RejectedRequest,
    TransientError,
)

Handler = Callable[[httpx.Request], httpx.Response]


def client(handler: Handler, **kw) -> tuple[ApiClient, list[httpx.Request]]:  # type: ignore[no-untyped-def]
    seen: list[httpx.Request] = []

    def wrapped(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return handler(req)

    kw.setdefault("backoff_initial_s", 0.001)
    kw.setdefault("backoff_max_s", 0.005)
    platform = kw.pop("platform", f"test{id(seen)}")  # own concurrency pool per test
    return ApiClient(platform, "https://api.example", transport=httpx.MockTransport(wrapped), **kw), seen


def sequence(*items: httpx.Response | Exception) -> Handler:
    queue = list(items)

    def handler(req: httpx.Request) -> httpx.Response:
        item = queue.pop(0) if len(queue) > 1 else queue[0]
        if isinstance(item, Exception):
            raise item
        return item

    return handler


OK = httpx.Response(200, json={"ok": True})


# -- retries ------------------------------------------------------------------------------------
@pytest.mark.parametrize("status", [500, 502, 503, 504, 408])
def test_5xx_and_408_are_retried_with_backoff(status: int) -> None:
    http, seen = client(sequence(httpx.Response(status), httpx.Response(status), OK))
    assert http.get_json("/v1/x") == {"ok": True}
    assert len(seen) == 3


def test_retries_stop_after_max_attempts() -> None:
    http, seen = client(sequence(httpx.Response(503)), max_attempts=3)
    with pytest.raises(TransientError) as err:
        http.get_json("/v1/x")
    assert err.value.status == 503 and len(seen) == 3


def test_network_errors_are_retried() -> None:
    def boom(kind: type[Exception]) -> Exception:
        return kind("down", request=httpx.Request("GET", "https://api.example"))  # type: ignore[call-arg]

    http, seen = client(sequence(boom(httpx.ConnectError), boom(httpx.ReadTimeout), boom(httpx.RemoteProtocolError), OK))
    assert http.get_json("/v1/x") == {"ok": True}
    assert len(seen) == 4


@pytest.mark.parametrize("status", [400, 403, 404, 409, 410, 422])
def test_other_4xx_are_not_retried(status: int) -> None:
    http, seen = client(sequence(httpx.Response(status, json={"error": "nope"}), OK))
    with pytest.raises(RejectedRequest) as err:
        http.get_json("/v1/x")
    assert err.value.status == status and len(seen) == 1


def test_short_429_is_retried_long_429_surfaces() -> None:
    http, seen = client(sequence(httpx.Response(429, headers={"Retry-After": "0"}), OK))
    assert http.get_json("/v1/x") == {"ok": True} and len(seen) == 2

    http, seen = client(sequence(httpx.Response(429, headers={"Retry-After": "120"}), OK))
    with pytest.raises(RateLimited) as err:
        http.get_json("/v1/x")
    assert 119 <= err.value.retry_after <= 120 and len(seen) == 1  # no sleep, no second call


def test_backoff_is_exponential_with_jitter() -> None:
    http, _ = client(sequence(OK), backoff_initial_s=0.1, backoff_max_s=5.0)

    class _State:  # the slice of tenacity's RetryCallState the wait strategy reads
        def __init__(self, n: int) -> None:
            self.attempt_number, self.outcome = n, None

    waits = {n: [http._wait_for(_State(n)) for _ in range(50)] for n in (1, 3, 6)}  # type: ignore[arg-type]
    assert all(0.1 <= w <= 0.2 for w in waits[1])
    assert all(0.4 <= w <= 0.5 for w in waits[3])
    assert all(w <= 5.0 for w in waits[6])
    assert len({round(w, 6) for w in waits[1]}) > 10  # jittered, not a fixed ladder


# -- writes ---------------------------------------------------------------------------------------
def test_a_post_whose_response_is_lost_is_not_resent() -> None:
    def lost(req: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("response lost", request=req)

    http, seen = client(lost)
    with pytest.raises(TransientError) as err:
        http.request("POST", "/2/tweets", json={"text": "We are sorry"})
    assert not isinstance(err.value, NotSent)
    assert len(seen) == 1  # the server may have posted it: the caller must look it up


def test_a_post_answered_with_5xx_is_not_resent() -> None:
    http, seen = client(sequence(httpx.Response(503), OK))
    with pytest.raises(TransientError):
        http.request("POST", "/2/tweets", json={"text": "x"})
    assert len(seen) == 1


def test_a_post_that_never_left_or_was_refused_with_429_is_resent() -> None:
    refused = httpx.ConnectError("refused", request=httpx.Request("POST", "https://api.example"))
    http, seen = client(sequence(refused, httpx.Response(429, headers={"Retry-After": "0"}), OK))
    assert http.request("POST", "/2/tweets", json={"text": "x"}).json() == {"ok": True}
    assert len(seen) == 3  # neither attempt was performed by the server


def test_idempotent_writes_are_retried_on_5xx() -> None:
    http, seen = client(sequence(httpx.Response(502), OK))
    http.request("PUT", "/2/tweets/1/hidden", json={"hidden": True})
    assert len(seen) == 2


# -- rate-limit headers ---------------------------------------------------------------------------
def test_every_rate_limit_header_family_is_read_in_one_place() -> None:
    now = time.time()
    x = parse_rate_limit({"x-rate-limit-limit": "900", "x-rate-limit-remaining": "3",
                          "x-rate-limit-reset": str(int(now + 60))})
    assert (x.limit, x.remaining) == (900, 3) and 58 <= x.retry_after_s(0) <= 61
    iso = datetime.fromtimestamp(now + 300, UTC).isoformat().replace("+00:00", "Z")
    masto = parse_rate_limit({"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": iso})
    assert masto.remaining == 0 and 298 <= masto.retry_after_s(0) <= 301
    bsky = parse_rate_limit({"RateLimit-Limit": "3000", "RateLimit-Remaining": "10", "RateLimit-Reset": "30",
                             "RateLimit-Policy": "3000;w=300"})
    assert bsky.limit == 3000 and 29 <= bsky.retry_after_s(0) <= 31  # delta seconds (IETF draft)
    bsky_epoch = parse_rate_limit({"RateLimit-Remaining": "0", "RateLimit-Reset": str(int(now + 90))})
    assert 88 <= bsky_epoch.retry_after_s(0) <= 91
    assert parse_rate_limit({"Retry-After": "17"}).retry_after_s(0) == 17
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=45), usegmt=True)
    assert 43 <= parse_rate_limit({"Retry-After": date}).retry_after_s(0) <= 46
    # Retry-After wins over a reset time when both are given.
    both = parse_rate_limit({"x-rate-limit-remaining": "0", "x-rate-limit-reset": str(int(now + 900)),
                             "retry-after": "5"})
    assert both.retry_after_s(0) == 5
    assert parse_rate_limit({}).retry_after_s(7.0) == 7.0
    assert parse_rate_limit({"Retry-After": "garbage"}).retry_after_s(3.0) == 3.0


def test_exhausted_budget_is_refused_up_front() -> None:
    reset = str(int(time.time() + 40))
    http, seen = client(sequence(httpx.Response(200, json={}, headers={
        "x-rate-limit-limit": "100", "x-rate-limit-remaining": "0", "x-rate-limit-reset": reset})))
    http.get_json("/v1/x")
    with pytest.raises(RateLimited) as err:
        http.get_json("/v1/x")
    assert 38 <= err.value.retry_after <= 41 and len(seen) == 1


def test_low_budget_is_paced_until_the_reset() -> None:
    # 4 calls left for the next 40 s: one call per 10 s, the early one refused with its wait.
    reset = str(int(time.time() + 40))
    http, seen = client(sequence(httpx.Response(200, json={}, headers={
        "x-rate-limit-limit": "900", "x-rate-limit-remaining": "4", "x-rate-limit-reset": reset})))
    http.get_json("/v1/x")
    with pytest.raises(RateLimited) as err:
        http.get_json("/v1/x")
    assert 8 <= err.value.retry_after <= 11 and "pacing" in str(err.value)
    assert len(seen) == 1


def test_plenty_of_budget_is_not_paced() -> None:
    state = RateLimitState()
    state.update(parse_rate_limit({"x-rate-limit-limit": "900", "x-rate-limit-remaining": "500",
                                   "x-rate-limit-reset": str(int(time.time() + 600))}))
    assert all(state.acquire() == 0 for _ in range(300))  # counted locally between answers
    fresh = RateLimitState()  # nothing sent yet by this client
    fresh.update(parse_rate_limit({"x-rate-limit-limit": "900", "x-rate-limit-remaining": "1",
                                   "x-rate-limit-reset": str(int(time.time() + 600))}))
    assert fresh.acquire() == 0 and fresh.acquire() > 590  # the last unit is spent once


# -- concurrency ----------------------------------------------------------------------------------
def test_concurrency_per_platform_is_bounded() -> None:
    inside, release = threading.Event(), threading.Event()
    peak = {"now": 0, "max": 0}
    lock = threading.Lock()

    def slow(req: httpx.Request) -> httpx.Response:
        with lock:
            peak["now"] += 1
            peak["max"] = max(peak["max"], peak["now"])
        inside.set()
        release.wait(5)
        with lock:
            peak["now"] -= 1
        return OK

    a, _ = client(slow, platform="bounded", max_concurrency=2, slot_wait_s=0.05)
    b, _ = client(slow, platform="bounded", max_concurrency=2, slot_wait_s=0.05)  # same platform: same pool
    threads = [threading.Thread(target=c.get_json, args=("/v1/x",)) for c in (a, b)]
    for t in threads:
        t.start()
    inside.wait(5)
    time.sleep(0.05)
    t0 = time.monotonic()
    with pytest.raises(RateLimited) as err:
        ApiClient("bounded", "https://api.example", transport=httpx.MockTransport(slow), max_concurrency=2,
                  slot_wait_s=0.05, max_attempts=1).get_json("/v1/x")
    assert time.monotonic() - t0 < 1.0 and "slots" in str(err.value)  # a brief wait, then a visible refusal
    release.set()
    for t in threads:
        t.join(5)
    assert peak["max"] == 2


# -- circuit breaker ------------------------------------------------------------------------------
def test_circuit_opens_says_so_and_half_opens() -> None:
    breaker = CircuitBreaker(threshold=3, cooldown_s=60)
    http, seen = client(sequence(httpx.Response(503)), breaker=breaker, max_attempts=1, platform="mastodon")
    with capture_logs() as logs:
        for _ in range(3):
            with pytest.raises(TransientError):
                http.get_json("/v1/x")
        with pytest.raises(CircuitOpen) as err:
            http.get_json("/v1/x")
    assert len(seen) == 3  # the open circuit did not call out
    msg = str(err.value)
    assert "mastodon looks down" in msg and "UTC" in msg and "in 60s" in msg
    events = [e["event"] for e in logs]
    assert any("circuit opened" in e for e in events) and any("circuit open)" in e for e in events)
    opened = next(e for e in logs if "circuit opened" in e["event"])
    assert opened["platform"] == "mastodon" and opened["log_level"] == "warning"

    breaker.opened_at = time.monotonic() - 61  # the cooldown is over: one probe goes through
    http._http._transport = httpx.MockTransport(lambda r: OK)  # the platform is back
    assert http.get_json("/v1/x") == {"ok": True} and breaker.failures == 0


# -- auth -----------------------------------------------------------------------------------------
class OAuthSettings(PlatformSettings):
    """What the proposed Settings fields look like (see the report): optional OAuth 2 refresh."""

    refresh_token: SecretStr = SecretStr("")
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")


def test_401_without_refresh_gives_a_clear_auth_error() -> None:
    http, seen = client(sequence(httpx.Response(401, json={"title": "Unauthorized"})),
                        auth=lambda: {"Authorization": "Bearer abcdef123"})
    with pytest.raises(AuthError) as err:
        http.get_json("/v1/x")
    assert "credentials refused" in str(err.value) and len(seen) == 1


def test_401_triggers_one_oauth_refresh_then_succeeds() -> None:
    calls: list[str] = []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(f"{req.method} {req.url.path} {req.headers.get('authorization', '')}")
        if req.url.path == "/2/oauth2/token":
            form = dict(httpx.QueryParams(req.content.decode()))
            assert form == {"grant_type": "refresh_token", "refresh_token": "rt-1", "client_id": "cid"}
            return httpx.Response(200, json={"access_token": "at-2", "refresh_token": "rt-2", "expires_in": 7200})
        if req.headers["authorization"] != "Bearer at-2":
            return httpx.Response(401, json={"title": "Unauthorized"})
        return httpx.Response(200, json={"data": [], "meta": {"result_count": 0}})

    settings = OAuthSettings(base_url="https://api.x.test", token=SecretStr("at-1"), refresh_token=SecretStr("rt-1"),
                             client_id="cid", client_secret=SecretStr("csecret"))
    conn = XConnector(settings, handle="@brand", account_id="1", keywords=["brand"],
                      transport=httpx.MockTransport(handler))
    assert conn.fetch_mentions("mentions", since=None, cursor=None).mentions == []
    assert [c.split(" ")[1] for c in calls] == ["/2/users/1/mentions", "/2/oauth2/token", "/2/users/1/mentions"]
    assert calls[1].endswith("Basic Y2lkOmNzZWNyZXQ=")  # X: confidential client by HTTP Basic
    assert conn._refresh_token == "rt-2"  # rotated


def test_refresh_refused_or_401_again_is_one_clear_auth_error() -> None:
    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/2/oauth2/token":
            return httpx.Response(400, json={"error": "invalid_request", "error_description": "token revoked"})
        return httpx.Response(401, json={"title": "Unauthorized"})

    settings = OAuthSettings(base_url="https://api.x.test", token=SecretStr("at-1"), refresh_token=SecretStr("rt-1"),
                             client_id="cid")
    conn = XConnector(settings, handle="@brand", account_id="1", keywords=[], transport=httpx.MockTransport(handler))
    with pytest.raises(AuthError) as err:
        conn.fetch_mentions("mentions", since=None, cursor=None)
    assert "re-authorise" in str(err.value) and "rt-1" not in str(err.value)

    ok_refresh = {"n": 0}

    def handler2(req: httpx.Request) -> httpx.Response:
        if req.url.path == "/2/oauth2/token":
            ok_refresh["n"] += 1
            return httpx.Response(200, json={"access_token": "at-2"})
        return httpx.Response(401, json={"title": "Unauthorized"})

    conn = XConnector(settings, handle="@brand", account_id="1", keywords=[], transport=httpx.MockTransport(handler2))
    with pytest.raises(AuthError) as err:
        conn.fetch_mentions("mentions", since=None, cursor=None)
    assert ok_refresh["n"] == 1 and "after one credential refresh" in str(err.value)


def test_a_server_echoing_the_token_does_not_put_it_in_the_error() -> None:
    token = "SENTINEL-echoed-token-6f1c"
    http, _ = client(sequence(httpx.Response(403, json={"error": f"invalid token {token} for scope"})),
                     auth=lambda: {"Authorization": f"Bearer {token}"})
    with pytest.raises(AuthError) as err:
        http.get_json("/v1/x")
    assert token not in str(err.value) and token not in repr(err.value.args) and "<redacted>" in str(err.value)


# -- no secret in any log line or error, across a full exercise against the sandbox ---------------
SENTINEL = "SENTINEL-5ecret-7a3f9e"


def test_sentinel_secrets_never_reach_logs_or_errors(sandbox, sandbox_state, sandbox_settings, playbook, clock,  # type: ignore[no-untyped-def]
                                                     caplog: pytest.LogCaptureFixture) -> None:
    from firebreak.connectors import build_connector
    from firebreak.sandbox.state import SandboxMention, make_id
    from firebreak.domain import Platform

    creds = {"token": SecretStr(SENTINEL + "-token"), "password": SecretStr(SENTINEL + "-password")}
    cfg = sandbox_settings.model_copy(update={p.value: sandbox_settings.platform(p).model_copy(update=creds)
                                              for p in Platform})
    cfg = cfg.model_copy(update={"sandbox_url": ""})
    sandbox_state.load([SandboxMention(p, make_id(p, 1), "ann", "fjell stove on fire", clock.now() - timedelta(minutes=5))
                        for p in Platform], [], [])
    caplog.set_level(logging.DEBUG)  # every logger: ours, httpx, httpcore, uvicorn
    errors: list[str] = []
    firebreak_log = logging.getLogger("firebreak")
    firebreak_log.addHandler(caplog.handler)  # in case logging was configured (it stops propagation)
    try:
        with capture_logs() as events:  # structlog events as dicts, every key and value
            for p in Platform:
                with build_connector(p, cfg, playbook) as conn:
                    for stream in conn.streams:
                        conn.fetch_mentions(stream, since=None, cursor=None, limit=10)
                    conn.publish("We are looking into it.", idempotency_key=f"sentinel-{p.value}")
            # Refused credentials: the errors must not quote them either.
            for p in Platform:
                sandbox_state.faults[p] = {"revoked_tokens": [SENTINEL + "-token"], "bad_passwords": [SENTINEL + "-password"]}
                with build_connector(p, cfg, playbook) as conn:
                    try:
                        conn.fetch_mentions(conn.streams[0], since=None, cursor=None)
                    except AuthError as exc:
                        errors.append(f"{exc} {exc.args!r} {exc.__cause__!r} {exc.__context__!r}")
    finally:
        firebreak_log.removeHandler(caplog.handler)
    assert len(errors) == 6, errors
    assert len(events) > 0 and any(r.name.startswith("httpx") for r in caplog.records)
    text = "\n".join([*(str(e) for e in events), *(r.getMessage() for r in caplog.records),
                      *(str(r.__dict__) for r in caplog.records), *errors])
    assert SENTINEL not in text


# -- vendor errors stop at the edge ---------------------------------------------------------------

BROKEN = {
    "an HTML page with a 200": lambda req: httpx.Response(200, text="<html>proxy says hi</html>",
                                                          headers={"content-type": "text/html"}),
    "a redirect": lambda req: httpx.Response(302, headers={"location": "https://login.example/"}),
    "an undecodable body": lambda req: (_ for _ in ()).throw(httpx.DecodingError("bad gzip", request=req)),
    "a protocol error": lambda req: (_ for _ in ()).throw(httpx.RemoteProtocolError("eh", request=req)),
}


@pytest.mark.parametrize("answer", list(BROKEN))
def test_a_broken_answer_is_a_connector_error(answer: str) -> None:
    c, _ = client(BROKEN[answer], max_attempts=1)
    with pytest.raises(ConnectorError) as err:
        c.request("GET", "/thing").json()
    assert not isinstance(err.value.__cause__, ConnectorError)  # translated here, from the vendor's


@pytest.mark.parametrize("platform", ["x", "facebook", "instagram", "linkedin", "mastodon", "bluesky"])
@pytest.mark.parametrize("answer", list(BROKEN))
def test_no_connector_lets_a_vendor_error_through(platform: str, answer: str, playbook) -> None:  # type: ignore[no-untyped-def]
    """Whatever a platform answers, a stage sees a Firebreak error, never httpx's or a bare
    ValueError from reading JSON that is not there."""
    from firebreak.config.settings import Settings
    from firebreak.connectors import build_connector

    creds = {"token": SecretStr("t0ken-value"), "password": SecretStr("app-password"), "base_url": "https://api.example"}
    settings = Settings(**{platform: getattr(Settings(), platform).model_copy(update=creds)})
    conn = build_connector(platform, settings, playbook, transport=httpx.MockTransport(BROKEN[answer]))
    conn.http.max_attempts = 1  # type: ignore[attr-defined]
    calls = [lambda: conn.fetch_mentions("mentions", since=None, cursor=None),
             lambda: conn.publish("We are looking into it.", idempotency_key="k1"),
             lambda: conn.find_published("We are looking into it.", idempotency_key="k1", since=datetime.now(UTC))]
    for call in calls:
        with pytest.raises(ConnectorError):
            call()
