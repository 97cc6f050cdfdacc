"""Resolve stage, the plain parts: when to propose the all-clear, who may confirm it, and
closing the incident (resolved, then heightened alert for the playbook's hours). The flow
(flows/resolve.py) pauses for the confirmation and runs the resume, the closing statement
and the post-mortem in between."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Literal

from firebreak.audit import AuditLog
from firebreak.config.playbook import Playbook
from firebreak.domain import utcnow
from firebreak.store.db import Database
from firebreak.store.queries import IncidentStatus, mark, update_summary
from firebreak.tasks.detection.detector import Decision


def at_baseline(playbook: Playbook, decisions: Sequence[Decision]) -> bool:
    """True when the last `resolve.baseline_minutes` of buckets sit at the baseline: no alert,
    and mean volume within `relax_below_ratio` of the mean baseline."""
    n = max(1, playbook.resolve.baseline_minutes // playbook.detection.bucket_minutes)
    window = list(decisions[-n:])
    if len(window) < n:
        return False
    vol = sum(d.volume for d in window) / n
    base = sum(d.baseline for d in window) / n
    return vol <= playbook.follow_up.relax_below_ratio * max(base, 1.0)


def propose(db: Database, audit: AuditLog, playbook: Playbook, incident_id: int, run_id: str) -> None:
    """The all-clear is proposed: the incident waits for a person (in run `run_id`)."""
    audit.append("firebreak", "resolve.proposed", f"incident:{incident_id}",
                 {"baseline_minutes": playbook.resolve.baseline_minutes})
    mark(db, incident_id, status=IncidentStatus.RESOLVING)
    update_summary(db, incident_id, resolve_run_id=run_id)


def question(playbook: Playbook, incident_id: int) -> str:
    """What the person confirming the all-clear is asked (Markdown)."""
    return (f"## All-clear for incident #{incident_id}?\nMentions have been at baseline for "
            f"{playbook.resolve.baseline_minutes} minutes. Confirm to lift the freeze"
            + (", publish the closing statement" if playbook.resolve.closing_statement else "")
            + " and write the post-mortem.")


def judge(db: Database, audit: AuditLog, playbook: Playbook, incident_id: int, confirmer: str, confirm: bool,
          note: str, *, channel: str) -> Literal["confirmed", "declined", "refused"]:
    """A person's answer to the all-clear, audited: only a playbook person can confirm it."""
    known = {p.id for p in playbook.people}
    if confirmer not in known:
        audit.append(confirmer, "resolve.refused", f"incident:{incident_id}", {"note": note})
        return "refused"
    if not confirm:
        audit.append(confirmer, "resolve.declined", f"incident:{incident_id}", {"note": note})
        return "declined"
    audit.append(confirmer, "resolve.confirmed", f"incident:{incident_id}", {"note": note, "channel": channel})
    return "confirmed"


def close(db: Database, audit: AuditLog, playbook: Playbook, incident_id: int, confirmer: str, resumed: object,
          platform_now: datetime) -> None:
    """The incident is resolved; detection stays on heightened alert for the playbook's hours
    (platform time: the detector reads it against mention buckets)."""
    mark(db, incident_id, status=IncidentStatus.RESOLVED, resolved_at=utcnow())
    update_summary(db, incident_id,
                   heightened_alert_until=platform_now + timedelta(hours=playbook.resolve.heightened_alert_hours))
    audit.append(confirmer, "incident.resolved", f"incident:{incident_id}", {"resumed": resumed})
