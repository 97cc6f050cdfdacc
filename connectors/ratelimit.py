"""Every platform's rate-limit headers, read in one place.

X: x-rate-limit-limit/remaining/reset (reset = Unix seconds). Mastodon: X-RateLimit-*
(reset = ISO 8601 time). Bluesky: RateLimit-Limit/Remaining/Reset (Unix seconds) and
RateLimit-Policy. Any: Retry-After (delta seconds or an HTTP date). LinkedIn: daily
limits that reset at midnight UTC with a bare 429.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime


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
            return max((parsedate_to_datetime(v) - datetime.now(UTC)).total_seconds(), 0.0)
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
    now = datetime.now(UTC)
    return (now.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)).timestamp()


# Below this share of the announced limit (and never fewer than PACE_MIN_REMAINING calls),
# the remaining budget is spread evenly over the time left until the reset.
PACE_BELOW_SHARE = 0.1
PACE_MIN_REMAINING = 5


class RateLimitState:
    """The last budget a platform announced, and proactive pacing against it.

    - Nothing left before the reset: the next call is refused up front (the caller raises
      RateLimited) instead of burning a request on a sure 429.
    - Little left (under 10% of the limit, or under 5 calls): calls are spaced so that the
      rest of the budget lasts until the reset, i.e. one call per (reset - now) / remaining.
      A call that comes too early is refused with the time until its slot, never slept on
      here, so the task or flow reschedules where Prefect shows it.
    Calls between two answers are counted locally, so concurrent callers cannot all spend
    the same last unit.
    """

    def __init__(self) -> None:
        self._info = RateLimitInfo()
        self._spent = 0  # calls sent since the last announced budget
        self._last_sent = 0.0
        self._lock = threading.Lock()

    def update(self, info: RateLimitInfo) -> None:
        if info.remaining is not None or info.reset_at is not None:
            with self._lock:
                self._info = info
                self._spent = 0

    @property
    def info(self) -> RateLimitInfo:
        return self._info

    def wait_needed(self) -> float:
        """Seconds until the next call may go out (0 = now), without reserving it."""
        with self._lock:
            return self._wait(time.time())

    def acquire(self) -> float:
        """Reserve one call: 0.0 when it may go out now (and it is counted), else the wait."""
        with self._lock:
            now = time.time()
            wait = self._wait(now)
            if wait <= 0:
                self._spent += 1
                self._last_sent = now
            return wait

    def _wait(self, now: float) -> float:
        info = self._info
        if info.remaining is None or info.reset_at is None:
            return 0.0
        left = info.remaining - self._spent
        until_reset = info.reset_at - now
        if until_reset <= 0:
            return 0.0  # the window has rolled over; the next answer announces the new budget
        if left <= 0:
            return until_reset
        low = max(PACE_MIN_REMAINING, int((info.limit or 0) * PACE_BELOW_SHARE))
        if left > low:
            return 0.0
        interval = until_reset / left
        return max(0.0, self._last_sent + interval - now)
