"""The one HTTP client every connector and notifier uses.

- Retries (tenacity, exponential backoff with full jitter) on 5xx, 408, short 429s and
  network errors; never on other 4xx. A write that is not idempotent is retried only when
  it provably was not performed: the connection never opened (NotSent), or the server
  refused it with a short 429 or our own pacing refused it before sending. A timeout or a
  5xx after a write raises TransientError; the caller looks the write up before retrying.
- Nothing here sleeps on a rate limit: a 429 with a long reset, an exhausted budget, or a
  call that proactive pacing spaces out raises RateLimited(retry_after=…) so the task
  reschedules where Prefect can show it. Only short waits are absorbed inline: a backoff
  between retries (bounded by backoff_max_s) and a 429 whose reset is ≤ 1 s away.
- Bounded concurrency per platform: all clients of one platform and host share a
  semaphore sized by `PlatformSettings.max_concurrency`. A call waits for a slot at most
  `slot_wait_s` (default 0.5 s: short enough to stay invisible, long enough to ride out the
  normal churn of a full pool); then it raises RateLimited(1 s) instead of queueing
  unboundedly inside the client.
- Rate-limit headers of every platform are read in one place (ratelimit.py).
- A circuit breaker per client stops hammering an API that keeps failing, and says so: a
  warning log line when it opens and a CircuitOpen error naming the platform and when it
  will try again.
- Vendor/library errors become Firebreak errors here, at the edge. Credentials in the
  request headers are scrubbed from every error message.
- `transport=` is the test seam (httpx.MockTransport or a sandbox on loopback).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
from firebreak.config.logging import get_logger
from firebreak.connectors.ratelimit import RateLimitState, parse_rate_limit
from tenacity import (
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    wait_exponential_jitter,
)

from firebreak.errors import (
    AuthError,
    CircuitOpen,
    ConnectorError,
    NotSent,
    RateLimited,
    RejectedRequest,
    TransientError,
    UnreadableAnswer,
)

log = get_logger("firebreak.connectors.http")

RETRY_STATUSES = frozenset({408, 500, 502, 503, 504})
# A 403 is a credentials problem only when it says so; otherwise (duplicate content, a reply
# that cannot be hidden) the request itself was refused.
_CREDENTIALS = re.compile(r"token|auth|credential|scope|permission|unauthori[sz]ed|oauth", re.IGNORECASE)
# A 429 whose reset is this close is absorbed by one backoff retry; longer ones surface.
INLINE_RATE_LIMIT_S = 1.0


class CircuitBreaker:
    def __init__(self, threshold: int = 5, cooldown_s: float = 30.0):
        self.threshold = threshold
        self.cooldown_s = cooldown_s
        self.failures = 0
        self.opened_at: float | None = None
        self._lock = threading.Lock()

    def before(self, platform: str) -> None:
        with self._lock:
            if self.opened_at is None:
                return
            remaining = self.cooldown_s - (time.monotonic() - self.opened_at)
            if remaining > 0:
                retry_at = datetime.now(UTC) + timedelta(seconds=remaining)
                msg = (f"{platform} looks down ({self.failures} consecutive failures): circuit open, "
                       f"not calling it until {retry_at:%H:%M:%S} UTC (in {remaining:.0f}s)")
                log.warning(f"{platform}: call refused, the platform looks down (circuit open)", platform=platform, failures=self.failures,
                            retry_in_s=round(remaining, 1))
                raise CircuitOpen(platform, msg, retry_after=remaining)
            self.opened_at = None  # half-open: let one request through

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None

    def failure(self, platform: str = "") -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold and self.opened_at is None:
                self.opened_at = time.monotonic()
                log.warning(f"{platform}: circuit opened after {self.failures} consecutive failures", platform=platform, failures=self.failures,
                            cooldown_s=self.cooldown_s,
                            message=f"{platform} looks down after {self.failures} consecutive failures; "
                                    f"pausing calls for {self.cooldown_s:.0f}s")
            elif self.opened_at is not None:
                self.opened_at = time.monotonic()  # the half-open probe failed: another full cooldown


# -- per-platform concurrency -------------------------------------------------------------------
_slots: dict[tuple[str, str, int], threading.BoundedSemaphore] = {}
_slots_lock = threading.Lock()


def platform_slots(platform: str, base_url: str, size: int) -> threading.BoundedSemaphore:
    """One semaphore per (platform, host, size), shared by every client of that platform."""
    key = (platform, httpx.URL(base_url).host or base_url, size)
    with _slots_lock:
        sem = _slots.get(key)
        if sem is None:
            sem = _slots[key] = threading.BoundedSemaphore(size)
        return sem


def _retryable(exc: BaseException) -> bool:
    """Idempotent calls: every transient failure, but a long rate limit surfaces."""
    if isinstance(exc, RateLimited):
        return exc.retry_after <= INLINE_RATE_LIMIT_S
    return isinstance(exc, TransientError) and not isinstance(exc, CircuitOpen)


def _not_performed(exc: BaseException) -> bool:
    """Writes: only when the server provably did nothing (never reached, or refused with 429)."""
    if isinstance(exc, RateLimited):
        return exc.retry_after <= INLINE_RATE_LIMIT_S
    return isinstance(exc, NotSent)


class ApiClient:
    """A small synchronous client bound to one platform's base URL."""

    def __init__(
        self,
        platform: str,
        base_url: str,
        *,
        timeout_s: float = 10.0,
        auth: Callable[[], Mapping[str, str]] | None = None,
        refresh_auth: Callable[[], None] | None = None,
        default_headers: Mapping[str, str] | None = None,
        transport: httpx.BaseTransport | None = None,
        max_attempts: int = 4,
        backoff_initial_s: float = 0.2,
        backoff_max_s: float = 5.0,
        breaker: CircuitBreaker | None = None,
        max_concurrency: int = 4,
        slot_wait_s: float = 0.5,
    ):
        self.platform = platform
        self._auth = auth
        self._refresh_auth = refresh_auth
        self._http = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            timeout=httpx.Timeout(timeout_s, connect=min(timeout_s, 5.0)),
            headers=dict(default_headers or {}),
            transport=transport,
            follow_redirects=False,
        )
        self.max_attempts = max_attempts
        self._wait = wait_exponential_jitter(multiplier=backoff_initial_s, max=backoff_max_s, jitter=backoff_initial_s)
        self.breaker = breaker or CircuitBreaker()
        self.rate = RateLimitState()
        self.requests_sent = 0
        self.slots = platform_slots(platform, base_url, max(1, max_concurrency))
        self.slot_wait_s = slot_wait_s

    def close(self) -> None:
        self._http.close()

    # -- public -----------------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        data: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        idempotent: bool | None = None,
        authenticated: bool = True,
    ) -> httpx.Response:
        """Send with retries; returns a 2xx response or raises a ConnectorError subclass."""
        if idempotent is None:
            idempotent = method.upper() in ("GET", "HEAD", "PUT", "DELETE", "OPTIONS")
        retry = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            wait=self._wait_for,
            # A write whose fate is unknown (timeout, 5xx) must be looked up, not resent.
            retry=retry_if_exception(_retryable if idempotent else _not_performed),
            reraise=True,
        )
        for attempt in retry:
            with attempt:
                return self._send_once(method, path, params, json, data, headers, idempotent, authenticated)
        raise AssertionError("unreachable")  # pragma: no cover

    def get_json(self, path: str, **kw: Any) -> Any:
        return self.request("GET", path, **kw).json()

    # -- internals --------------------------------------------------------------------------
    def _wait_for(self, state: Any) -> float:
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, RateLimited):
            return max(exc.retry_after, 0.0)
        return self._wait(state)

    def _send_once(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
                   data: Mapping[str, Any] | None, headers: Mapping[str, str] | None, idempotent: bool,
                   authenticated: bool) -> httpx.Response:
        self.breaker.before(self.platform)
        wait = self.rate.acquire()
        if wait > 0:
            raise RateLimited(self.platform, wait, "rate-limit budget low: pacing calls until the reset")
        if not self.slots.acquire(timeout=self.slot_wait_s):
            raise RateLimited(self.platform, 1.0, "all concurrent request slots for this platform are busy")
        try:
            return self._exchange(method, path, params, json, data, headers, authenticated)
        finally:
            self.slots.release()

    def _exchange(self, method: str, path: str, params: Mapping[str, Any] | None, json: Any,
                  data: Mapping[str, Any] | None, headers: Mapping[str, str] | None,
                  authenticated: bool) -> httpx.Response:
        refreshed = False
        while True:
            hdrs = dict(headers or {})
            if authenticated and self._auth is not None:
                hdrs.update(self._auth())
            secrets = _credentials(hdrs)
            try:
                self.requests_sent += 1
                resp = self._http.request(method, path.lstrip("/"), params=params, json=json, data=data, headers=hdrs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Never reached the server: safe to retry even a write.
                self.breaker.failure(self.platform)
                raise NotSent(self.platform, f"{method} {path}: cannot connect ({exc.__class__.__name__})") from exc
            except httpx.TimeoutException as exc:
                self.breaker.failure(self.platform)
                raise TransientError(self.platform, f"{method} {path}: timed out ({exc.__class__.__name__})") from exc
            except httpx.TransportError as exc:
                self.breaker.failure(self.platform)
                raise TransientError(self.platform, f"{method} {path}: connection failed ({exc.__class__.__name__})") from exc
            except httpx.HTTPError as exc:  # the answer could not be read (decoding, protocol)
                self.breaker.failure(self.platform)
                raise TransientError(self.platform, f"{method} {path}: unreadable answer ({exc.__class__.__name__})") from exc
            except httpx.InvalidURL as exc:
                raise RejectedRequest(self.platform, f"{method} {path}: invalid URL ({exc})") from exc

            info = parse_rate_limit(resp.headers)
            self.rate.update(info)
            status = resp.status_code
            if status < 300:
                self.breaker.success()
                _json_at_the_edge(resp, self.platform, f"{method} {path}")
                return resp
            if status < 400:  # redirects are not followed: an API does not send one (a login page, a proxy)
                self.breaker.success()
                raise RejectedRequest(self.platform, f"{method} {path}: {status} redirect to "
                                      f"{resp.headers.get('location', '?')!r}", status=status)
            if status == 401 and authenticated and self._refresh_auth is not None and not refreshed:
                refreshed = True
                log.info(f"{self.platform}: credentials refused once, refreshing them")
                self._refresh_auth()
                continue
            detail = _scrub(_error_detail(resp), secrets)
            if status == 401 or (status == 403 and _CREDENTIALS.search(detail)):
                self.breaker.success()
                hint = " after one credential refresh" if refreshed else ""
                raise AuthError(self.platform, f"{method} {path}: credentials refused{hint} ({status} {detail})",
                                status=status)
            if status == 429:
                raise RateLimited(self.platform, info.retry_after_s(default=5.0), f"{method} {path}: 429 {detail}")
            if status in RETRY_STATUSES or status >= 500:
                self.breaker.failure(self.platform)
                raise TransientError(self.platform, f"{method} {path}: {status} {detail}", status=status)
            self.breaker.success()
            raise RejectedRequest(self.platform, f"{method} {path}: {status} {detail}", status=status)


def _json_at_the_edge(resp: httpx.Response, platform: str, what: str) -> None:
    """Connectors read answers with `resp.json()`; an answer that is not JSON (a proxy's HTML
    error page with a 200) raises a Firebreak error there instead of a bare ValueError."""
    parse = resp.json

    def json(**kwargs: Any) -> Any:
        try:
            return parse(**kwargs)
        except ValueError as exc:
            ctype = resp.headers.get("content-type", "?")
            raise UnreadableAnswer(platform, f"{what}: the answer is not JSON ({ctype}, {len(resp.content)} bytes)",
                                   status=resp.status_code) from exc

    resp.json = json  # type: ignore[method-assign]


def _credentials(headers: Mapping[str, str]) -> list[str]:
    """The secret parts of the auth headers we send (a server may echo them in an error)."""
    out = []
    for name, value in headers.items():
        if name.lower() in ("authorization", "x-api-key", "api-key", "x-auth-token") and value:
            _, _, token = value.partition(" ")
            out.append(token or value)
    return [s for s in out if len(s) >= 6]


def _scrub(text: str, secrets: list[str]) -> str:
    for s in secrets:
        text = text.replace(s, "<redacted>")
    return text


def _error_detail(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:200]
    if isinstance(body, dict):
        # Platforms split the error over fields (Bluesky: error code + message): keep every part.
        parts: list[str] = []
        for key in ("error", "detail", "error_description", "message", "title"):
            val = body.get(key)
            if isinstance(val, dict) and isinstance(val.get("message"), str):
                val = val["message"]
            if isinstance(val, str) and val not in parts:
                parts.append(val)
        if parts:
            return ": ".join(parts)[:300]
        if isinstance(body.get("errors"), list) and body["errors"]:
            first = body["errors"][0]
            if isinstance(first, dict):
                return str(first.get("message") or first.get("detail") or first)[:200]
    return str(body)[:200]


__all__ = ["ApiClient", "CircuitBreaker", "ConnectorError"]
