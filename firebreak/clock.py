"""Time sources.

Production uses the system clock. A drill runs a virtual clock driven by one authority
(the drill): it can stand still, step, run at wall-clock speed (while the freeze races a
post that is about to go out) or run `compression` times faster (so a three-hour crisis
plays in a minute). Every wall-clock latency Firebreak reports stays real either way.
"""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Protocol

from firebreak.domain import utcnow


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None:
        """Wait until `seconds` of this clock's time have passed."""


class SystemClock:
    def now(self) -> datetime:
        return utcnow()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """now() = anchor + rate × (wall time since the anchor was set).

    With `auto_advance` (unit tests) a sleep on a stopped clock jumps time forward instead
    of waiting for a driver that does not exist.
    """

    def __init__(self, start: datetime, compression: float = 0.0, *, auto_advance: bool | None = None):
        self._anchor = start
        self._t0 = time.monotonic()
        self._rate = compression
        self.auto_advance = compression <= 0 if auto_advance is None else auto_advance
        self._cond = threading.Condition()

    @property
    def compression(self) -> float:
        return self._rate

    def _now_locked(self) -> datetime:
        return self._anchor + timedelta(seconds=(time.monotonic() - self._t0) * self._rate)

    def now(self) -> datetime:
        with self._cond:
            return self._now_locked()

    def set_rate(self, rate: float) -> None:
        with self._cond:
            self._anchor = self._now_locked()
            self._t0 = time.monotonic()
            self._rate = rate
            self._cond.notify_all()

    def advance(self, seconds: float) -> None:
        with self._cond:
            self._anchor = self._now_locked() + timedelta(seconds=seconds)
            self._t0 = time.monotonic()
            self._cond.notify_all()

    def set(self, when: datetime) -> None:
        with self._cond:
            self._anchor = when
            self._t0 = time.monotonic()
            self._cond.notify_all()

    def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        with self._cond:
            target = self._now_locked() + timedelta(seconds=seconds)
            if self._rate <= 0 and self.auto_advance:
                self._anchor, self._t0 = target, time.monotonic()
                self._cond.notify_all()
                return
            while True:
                left = (target - self._now_locked()).total_seconds()
                if left <= 0:
                    return
                # Wake on rate changes and steps; otherwise at the projected moment.
                self._cond.wait(timeout=min(left / self._rate, 0.25) if self._rate > 0 else 0.25)

    def wait_until(self, when: datetime) -> None:
        self.sleep((when - self.now()).total_seconds())
