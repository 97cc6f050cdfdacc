"""Append-only, hash-chained audit log.

Each event's hash covers its sequence number, time, actor, action, subject, payload and
the previous event's hash, so `verify` finds any edited, deleted, inserted or reordered
event: the first event whose stored hash, link or sequence does not add up is named.
Truncating the tail leaves a valid shorter chain; `verify(expect_head=…)` catches that when
the caller kept the last head hash (the drill report and post-mortem record it).
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import SecretStr
from sqlalchemy import select, text
from sqlalchemy.exc import IntegrityError

from firebreak.domain import utcnow
from firebreak.errors import AuditChainBroken, StoreError
from firebreak.store.db import Database
from firebreak.store.models import AuditEvent

GENESIS = "0" * 64
_local_lock = threading.Lock()


def _jsonable(value: Any) -> Any:
    if isinstance(value, SecretStr):
        return "**********"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def event_hash(seq: int, at: str, actor: str, action: str, subject: str, payload: Any, prev_hash: str) -> str:
    body = json.dumps(
        {"seq": seq, "at": at, "actor": actor, "action": action, "subject": subject, "payload": payload, "prev": prev_hash},
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
    )
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events: int
    head: str
    bad_seq: int | None = None
    reason: str = ""


class AuditLog:
    def __init__(self, db: Database):
        self.db = db

    def append(self, actor: str, action: str, subject: str, payload: dict[str, Any] | None = None) -> AuditEvent:
        clean = _jsonable(payload or {})
        for attempt in range(20):
            with _local_lock:
                try:
                    with self.db.session() as s:
                        if self.db.dialect == "postgresql":
                            # Serialise appenders across processes; released at commit.
                            s.execute(text("SELECT pg_advisory_xact_lock(727274)"))
                        last = s.execute(select(AuditEvent.seq, AuditEvent.hash).order_by(AuditEvent.seq.desc()).limit(1)).first()
                        seq, prev = (last[0] + 1, last[1]) if last else (1, GENESIS)
                        at = utcnow().isoformat(timespec="microseconds")
                        ev = AuditEvent(
                            seq=seq, at=at, actor=actor, action=action, subject=subject, payload=clean, prev_hash=prev,
                            hash=event_hash(seq, at, actor, action, subject, clean, prev),
                        )
                        s.add(ev)
                    return ev
                except IntegrityError:
                    continue  # another process took this sequence number; read the new head
        raise StoreError("audit append kept colliding with concurrent writers")

    def events(self) -> list[AuditEvent]:
        with self.db.session() as s:
            return list(s.scalars(select(AuditEvent).order_by(AuditEvent.seq)))

    def count(self) -> int:
        with self.db.session() as s:
            return len(s.execute(select(AuditEvent.seq)).all())

    def verify(self, expect_head: str | None = None) -> VerifyResult:
        prev = GENESIS
        n = 0
        with self.db.session() as s:
            for ev in s.scalars(select(AuditEvent).order_by(AuditEvent.seq)).yield_per(1000):
                n += 1
                if ev.seq != n:
                    return VerifyResult(False, n - 1, prev, ev.seq, f"sequence jumps from {n - 1} to {ev.seq} (event deleted or inserted)")
                if ev.prev_hash != prev:
                    return VerifyResult(False, n - 1, prev, ev.seq, "link to previous event does not match (event deleted, inserted or reordered)")
                if event_hash(ev.seq, ev.at, ev.actor, ev.action, ev.subject, ev.payload, ev.prev_hash) != ev.hash:
                    return VerifyResult(False, n - 1, prev, ev.seq, "content does not match its hash (event edited)")
                prev = ev.hash
        if expect_head is not None and expect_head != prev:
            return VerifyResult(False, n, prev, n, "chain head differs from the expected head (events removed from the end)")
        return VerifyResult(True, n, prev)

    def check(self) -> VerifyResult:
        result = self.verify()
        if not result.ok:
            raise AuditChainBroken(result.bad_seq or 0, result.reason)
        return result
