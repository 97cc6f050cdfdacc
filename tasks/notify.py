"""Sending one notification exactly once.

The Notification row (with its idempotency key) is written before the call. After a crash,
a row still `pending` means "maybe sent": it is sent again with the same idempotency key
(webhook header / e-mail Message-ID), which receivers use to drop the repeat. A row
`delivered` is never sent again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select

from firebreak.audit import AuditLog
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Person
from firebreak.connectors.notify import Message, Notifier
from firebreak.domain import utcnow
from firebreak.errors import ConnectorError
from firebreak.store.db import Database
from firebreak.store.models import Notification

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
        row = s.scalars(select(Notification).where(Notification.idempotency_key == out.key)).first()
        if row is not None and row.status == "delivered":
            return row
        if row is None:
            row = Notification(incident_id=incident_id, idempotency_key=out.key, kind=out.kind, channel=out.channel,
                               target=out.target, person=out.person, level=out.level, round=out.round,
                               subject=out.subject, body=out.body, status="pending", created_at=utcnow())
            s.add(row)
    notifier = notifiers.get(out.channel)
    status, error, delivered_at = "failed", None, None
    if notifier is None:
        error = f"channel {out.channel!r} is not configured"
    else:
        try:
            delivery = notifier.send(out.target, Message(out.subject, out.body, out.key))
            status, delivered_at = "delivered", delivery.delivered_at
        except ConnectorError as exc:
            error = str(exc)
    with db.session() as s:
        row = s.scalars(select(Notification).where(Notification.idempotency_key == out.key)).one()
        row.status, row.error, row.delivered_at = status, error, delivered_at
    audit.append("firebreak", f"notify.{status}", f"incident:{incident_id}" if incident_id else "firebreak",
                  {"kind": out.kind, "channel": out.channel, "target": out.target, "person": out.person,
                   "level": out.level, "round": out.round, "key": out.key, "error": error})
    if error:
        log.warning("notification_failed", channel=out.channel, target=out.target, error=error)
    return row
