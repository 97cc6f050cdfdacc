"""Every platform's rate-limit headers, read in one place.

X: x-rate-limit-limit/remaining/reset (reset = Unix seconds). Mastodon: X-RateLimit-*
(reset = ISO 8601 time). Bluesky: RateLimit-Limit/Remaining/Reset (Unix seconds) and
RateLimit-Policy. Any: Retry-After (delta seconds or an HTTP date). LinkedIn: daily
limits that reset at midnight UTC with a bare 429.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from collections.abc import Mapping


@dataclass(frozen=True, slots=True)
class RateLimitInfo:
    limit: int | None = None
    remaining: int | None = None
    reset_at: float | None = None  # Unix seconds
    retry_after: float | None = None  # seconds from now

    def retry_after_s(self, default: float) -> float:
        if self.retry_after is not None:
            return max(self.retry_after, 0.0)
        if self.reset_at is not None:
            return max(self.reset_at - time.time(), 0.0)
        return default


def _int(v: str | None) -> int | None:
    try:
        return int(float(v)) if v is not None else None
    except ValueError:
        return None


def _reset(v: str | None) -> float | None:
    if v is None:
        return None
    try:
        num = float(v)
    except ValueError:
        try:
            return datetime.fromisoformat(v.replace("Z", "+00:00")).timestamp()
        except ValueError:
            return None
    # Small numbers are delta-seconds (IETF draft RateLimit-Reset); large ones are epochs.
    return time.time() + num if num < 10**8 else num


def _retry_after(v: str | None) -> float | None:
    if v is None:
        return None
    try:
        return max(float(v), 0.0)
    except ValueError:
        try:
            return max((parsedate_to_datetime(v) - datetime.now(timezone.utc)).total_seconds(), 0.0)
        except (TypeError, ValueError):
            return None


def parse_rate_limit(headers: Mapping[str, str]) -> RateLimitInfo:
    h = {k.lower(): v for k, v in headers.items()}
    for prefix in ("x-rate-limit-", "x-ratelimit-", "ratelimit-"):
        if prefix + "remaining" in h or prefix + "limit" in h:
            return RateLimitInfo(
                limit=_int(h.get(prefix + "limit")),
                remaining=_int(h.get(prefix + "remaining")),
                reset_at=_reset(h.get(prefix + "reset")),
                retry_after=_retry_after(h.get("retry-after")),
            )
    return RateLimitInfo(retry_after=_retry_after(h.get("retry-after")))


def next_midnight_utc() -> float:
    now = datetime.now(timezone.utc)
    return (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp()


class RateLimitState:
    """The last budget a platform announced. With nothing left before the reset, the next
    call is refused up front (RateLimited) instead of burning a request on a sure 429."""

    def __init__(self) -> None:
        self._info = RateLimitInfo()
        self._lock = threading.Lock()

    def update(self, info: RateLimitInfo) -> None:
        if info.remaining is not None or info.reset_at is not None:
            with self._lock:
                self._info = info

    @property
    def info(self) -> RateLimitInfo:
        return self._info

    def wait_needed(self) -> float:
        with self._lock:
            info = self._info
        if info.remaining is None or info.remaining > 0 or info.reset_at is None:
            return 0.0
        return max(info.reset_at - time.time(), 0.0)
