"""Reminding approvers who have not answered a draft that is waiting for them.

Who: every playbook person (not the author) holding a role the draft still lacks, with no
answer of their own on this draft yet. A rejected draft reminds nobody: a new version
follows, with its own codes. When: reminders fall in slots of `approval.remind_every_minutes`
counted from when the draft became ready: slot n (n >= 1) starts at ready + n × interval.
At most one reminder per person per slot, and only in a slot later than their last one, so
however the caller's checks are timed (a pause that timed out late, a restarted run) no
one gets two reminders within one interval and missed slots are not sent in a burst.

The slot number is the idempotency key's last part, `remind:{draft}:{person}:{n}`, so a
crash between deciding and sending resends the same reminder (send_once), never a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import select

from firebreak.audit import AuditLog
from firebreak.config.playbook import Playbook
from firebreak.connectors.notify import Notifier
from firebreak.store.db import Database
from firebreak.store.models import Approval, Draft, EffectStatus, Notification
from firebreak.tasks import approve as approve_mod
from firebreak.tasks.notify import Outgoing, preferred_channel, send_once


def remind_interval(playbook: Playbook) -> timedelta:
    return timedelta(minutes=playbook.approval.remind_every_minutes)


def _key_prefix(draft_id: int, person: str) -> str:
    return f"remind:{draft_id}:{person}:"


def _last_slot(db: Database, draft_id: int, person: str) -> tuple[int, bool]:
    """The slot of the person's latest reminder (0: none) and whether it was delivered."""
    prefix = _key_prefix(draft_id, person)
    with db.session() as s:
        rows = s.execute(select(Notification.idempotency_key, Notification.status)
                         .where(Notification.idempotency_key.startswith(prefix))).all()
    last = max(((int(k.removeprefix(prefix)), st == EffectStatus.DONE) for k, st in rows), default=(0, True))
    return last


def _slot(draft: Draft, interval: timedelta, now: datetime) -> int:
    ready = draft.ready_at or draft.created_at
    return int((now - ready) / interval) if now >= ready else 0


def waiting_on(db: Database, playbook: Playbook, draft_id: int) -> list[str]:
    """People who could still fill a missing role and have not answered this draft."""
    with db.session() as s:
        draft = s.get(Draft, draft_id)
        if draft is None or draft.status != "pending":
            return []
        author = draft.author
        answered = set(s.scalars(select(Approval.approver).where(Approval.draft_id == draft_id)))
    status = approve_mod.approval_status(db, playbook, draft_id)
    if status.rejected_by is not None or status.satisfied:
        return []
    missing = set(status.missing_roles)
    return [p.id for p in playbook.people
            if p.id != author and p.id not in answered and missing & set(p.roles)]


def due_reminders(db: Database, playbook: Playbook, draft_id: int, now: datetime) -> list[str]:
    """Who should be reminded now (see the module docstring for the rule)."""
    with db.session() as s:
        draft = s.get(Draft, draft_id)
        if draft is None:
            return []
        slot = _slot(draft, remind_interval(playbook), now)
    if slot < 1:
        return []
    out = []
    for pid in waiting_on(db, playbook, draft_id):
        last, delivered = _last_slot(db, draft_id, pid)
        # This slot's reminder not delivered yet (a crash mid-send, a channel down): send it
        # again under the same key, which send_once turns into a retry, never a duplicate.
        if last < slot or (last == slot and not delivered):
            out.append(pid)
    return out


def send_reminders(db: Database, audit: AuditLog, playbook: Playbook, notifiers: dict[str, Notifier], draft_id: int,
                   now: datetime) -> list[str]:
    """Send the due reminders once each; returns who was reminded (delivered or not: a
    failed one is recorded and retried with the same key on a later check in its slot)."""
    people = due_reminders(db, playbook, draft_id, now)
    if not people:
        return []
    with db.session() as s:
        draft = s.get(Draft, draft_id)
        assert draft is not None  # due_reminders found it
        slot = _slot(draft, remind_interval(playbook), now)
        incident_id, kind, version, sha = draft.incident_id, draft.kind, draft.version, draft.sha256
        waited = now - (draft.ready_at or draft.created_at)
    out = []
    for pid in people:
        person = playbook.person(pid)
        # Where the code went (same preference), so the reminder arrives beside it.
        channel = preferred_channel(person)
        if channel is None:
            continue  # nowhere to reach them; the code message had the same problem
        body = (f"Reminder: {kind} statement #{draft_id} v{version} (hash {sha[:12]}…) has waited "
                f"{int(waited.total_seconds() // 60)} minutes for your sign-off.\n"
                "Use the one-time code or the link in the sign-off message Firebreak sent you, "
                f"or: firebreak approve {draft_id} --as {pid}")
        send_once(db, audit, notifiers, incident_id, Outgoing(
            key=f"{_key_prefix(draft_id, pid)}{slot}", kind="reminder", channel=channel,
            target=person.channels[channel], subject=f"[Firebreak] Reminder: sign-off needed ({kind} v{version})",
            body=body, person=pid, round=slot))
        out.append(pid)
    return out
