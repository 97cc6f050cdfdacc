"""Time sources. Production uses the system clock; a drill runs a virtual clock that moves
`compression` times faster than the wall clock, so a three-hour crisis plays in minutes
while every wall-clock latency stays real."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta
from typing import Protocol

from firebreak.domain import utcnow


class Clock(Protocol):
    def now(self) -> datetime: ...

    def sleep(self, seconds: float) -> None:
        """Wait `seconds` of this clock's time."""


class SystemClock:
    compression = 1.0

    def now(self) -> datetime:
        return utcnow()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)


class VirtualClock:
    """now() = start + compression × (wall time since creation) + explicit advances."""

    def __init__(self, start: datetime, compression: float = 1.0):
        self._start = start
        self._t0 = time.monotonic()
        self._offset = timedelta(0)
        self.compression = compression
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            elapsed = (time.monotonic() - self._t0) * self.compression
            return self._start + self._offset + timedelta(seconds=elapsed)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._offset += timedelta(seconds=seconds)

    def set(self, when: datetime) -> None:
        with self._lock:
            elapsed = (time.monotonic() - self._t0) * self.compression
            self._offset = when - self._start - timedelta(seconds=elapsed)

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds / self.compression)
