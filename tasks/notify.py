"""Sending one notification exactly once.

The Notification record (store/effects.py: its idempotency key) is written before the call.
After a crash, a record still `intended` means "maybe sent": it is sent again with the same
idempotency key (webhook header / e-mail Message-ID), which receivers use to drop the repeat.
A record `done` (delivered) is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass

from firebreak.audit import AuditLog
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Person
from firebreak.connectors.notify import Message, Notifier
from firebreak.errors import ConnectorError
from firebreak.store.db import Database
from firebreak.store import effects
from firebreak.store.models import EffectStatus, Notification

log = get_logger("firebreak.tasks.notify")


@dataclass(frozen=True)
class Outgoing:
    key: str
    kind: str  # page | briefing | code | reminder
    channel: str
    target: str
    subject: str
    body: str
    person: str | None = None
    level: int = 0
    round: int = 0


# Where a person's one-time code, link and reminders go: the first channel they have.
PREFERRED_CHANNELS = ("email", "slack", "sms", "teams", "webhook")


def preferred_channel(person: Person) -> str | None:
    return next((c for c in PREFERRED_CHANNELS if c in person.channels), None)


def send_once(db: Database, audit: AuditLog, notifiers: dict[str, Notifier], incident_id: int | None,
              out: Outgoing) -> Notification:
    with db.session() as s:
        row, _ = effects.intend(s, Notification, out.key, incident_id=incident_id, kind=out.kind,
                                channel=out.channel, target=out.target, person=out.person, level=out.level,
                                round=out.round, subject=out.subject, body=out.body)
        if row.status is EffectStatus.DONE:
            return row
        row.attempts += 1
    notifier = notifiers.get(out.channel)
    error, delivered_at = None, None
    if notifier is None:
        error = f"channel {out.channel!r} is not configured"
    else:
        try:
            delivered_at = notifier.send(out.target, Message(out.subject, out.body, out.key)).delivered_at
        except ConnectorError as exc:
            error = str(exc)
    status = EffectStatus.FAILED if error else EffectStatus.DONE
    effects.settle(db, Notification, out.key, status, error=error, at=delivered_at)
    with db.session() as s:
        row = effects.find(s, Notification, out.key) or row
    # The audit action keeps the notification's own words: notify.delivered / notify.failed.
    outcome = "delivered" if status is EffectStatus.DONE else "failed"
    audit.append("firebreak", f"notify.{outcome}", f"incident:{incident_id}" if incident_id else "firebreak",
                  {"kind": out.kind, "channel": out.channel, "target": out.target, "person": out.person,
                   "level": out.level, "round": out.round, "key": out.key, "error": error})
    if error:
        log.warning(f"{out.kind.title()} to {out.person or out.target} via {out.channel} failed: {error}")
    return row
