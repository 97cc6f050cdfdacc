"""The one HTTP client every connector and notifier uses.

- Retries (tenacity, exponential backoff with jitter) on 5xx, 408 and network errors.
  Writes that are not idempotent are retried only when the request provably never left
  (connect errors); otherwise the caller gets TransientError and must look the write up
  before trying again. Nothing here sleeps on a rate limit: a 429 or an exhausted budget
  raises RateLimited(retry_after=…) so the task reschedules where Prefect can show it.
- Rate-limit headers of every platform are read in one place (ratelimit.py).
- A circuit breaker per client stops hammering an API that keeps failing.
- Vendor/library errors become Firebreak errors here, at the edge.
- `transport=` is the test seam (httpx.MockTransport or a sandbox on loopback).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

import httpx
from tenacity import Retrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from firebreak.config.logging import get_logger
from firebreak.connectors.ratelimit import RateLimitState, parse_rate_limit
from firebreak.errors import (
    AuthError,
    CircuitOpen,
    ConnectorError,
    NotSent,
    RateLimited,
    RejectedRequest,
    TransientError,
)

log = get_logger("firebreak.connectors.http")

RETRY_STATUSES = frozenset({408, 500, 502, 503, 504})
# A 403 is a credentials problem only when it says so; otherwise (duplicate content, a reply
# that cannot be hidden) the request itself was refused.
_CREDENTIALS = re.compile(r"token|auth|credential|scope|permission|unauthori[sz]ed|oauth", re.I)
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
                raise CircuitOpen(platform, f"circuit open after {self.failures} consecutive failures; "
                                            f"next try in {remaining:.0f}s")
            self.opened_at = None  # half-open: let one request through

    def success(self) -> None:
        with self._lock:
            self.failures = 0
            self.opened_at = None

    def failure(self) -> None:
        with self._lock:
            self.failures += 1
            if self.failures >= self.threshold:
                self.opened_at = time.monotonic()


def _retryable(exc: BaseException) -> bool:
    if isinstance(exc, RateLimited):
        return exc.retry_after <= INLINE_RATE_LIMIT_S
    return isinstance(exc, TransientError) and not isinstance(exc, CircuitOpen)


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
            retry=retry_if_exception(_retryable if idempotent else lambda e: isinstance(e, NotSent)),
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

    def _send_once(self, method, path, params, json, data, headers, idempotent, authenticated) -> httpx.Response:  # type: ignore[no-untyped-def]
        self.breaker.before(self.platform)
        wait = self.rate.wait_needed()
        if wait > 0:
            raise RateLimited(self.platform, wait, "rate-limit budget exhausted")
        refreshed = False
        while True:
            hdrs = dict(headers or {})
            if authenticated and self._auth is not None:
                hdrs.update(self._auth())
            try:
                self.requests_sent += 1
                resp = self._http.request(method, path.lstrip("/"), params=params, json=json, data=data, headers=hdrs)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                # Never reached the server: safe to retry even a write.
                self.breaker.failure()
                raise NotSent(self.platform, f"{method} {path}: cannot connect ({exc.__class__.__name__})") from exc
            except httpx.TimeoutException as exc:
                self.breaker.failure()
                raise TransientError(self.platform, f"{method} {path}: timed out ({exc.__class__.__name__})") from exc
            except httpx.TransportError as exc:
                self.breaker.failure()
                raise TransientError(self.platform, f"{method} {path}: connection failed ({exc.__class__.__name__})") from exc

            self.rate.update(parse_rate_limit(resp.headers))
            status = resp.status_code
            if status < 400:
                self.breaker.success()
                return resp
            if status == 401 and authenticated and self._refresh_auth is not None and not refreshed:
                refreshed = True
                log.info("auth_refresh", platform=self.platform)
                self._refresh_auth()
                continue
            detail = _error_detail(resp)
            if status == 401 or (status == 403 and _CREDENTIALS.search(detail)):
                self.breaker.success()
                raise AuthError(self.platform, f"{method} {path}: {status} {detail}", status=status)
            if status == 429:
                info = parse_rate_limit(resp.headers)
                raise RateLimited(self.platform, info.retry_after_s(default=5.0), f"{method} {path}: 429 {detail}")
            if status in RETRY_STATUSES or status >= 500:
                self.breaker.failure()
                raise TransientError(self.platform, f"{method} {path}: {status} {detail}", status=status)
            self.breaker.success()
            raise RejectedRequest(self.platform, f"{method} {path}: {status} {detail}", status=status)


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
