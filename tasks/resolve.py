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


def at_baseline(playbook: Playbook, decisions: Sequence[Decision], since: datetime | None = None) -> bool:
    """True when the last `resolve.baseline_minutes` of buckets sit at the baseline (mean
    volume within `relax_below_ratio` of the mean baseline), all of them after `since` (the
    incident's start): calm before the crisis began says nothing about it being over."""
    n = max(1, playbook.resolve.baseline_minutes // playbook.detection.bucket_minutes)
    window = [d for d in decisions[-n:] if since is None or d.at > since]
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


def calm_since(playbook: Playbook, decisions: Sequence[Decision], since: datetime | None = None) -> datetime | None:
    """Since when the mention volume has been at baseline, bucket by bucket (after `since`);
    None when the latest bucket is not."""
    start = None
    for d in reversed(decisions):
        if (since is not None and d.at <= since) or d.volume > playbook.follow_up.relax_below_ratio * max(d.baseline, 1.0):
            break
        start = d.at - timedelta(minutes=playbook.detection.bucket_minutes)
    return start


def question(playbook: Playbook, incident_id: int, decisions: Sequence[Decision], since: datetime | None) -> str:
    """What the person confirming the all-clear is asked (Markdown), with the measured facts."""
    calm = calm_since(playbook, decisions, since)
    last = decisions[-1] if decisions else None
    if calm is not None and last is not None:
        minutes = int((last.at - calm).total_seconds() // 60)
        fact = (f"Mentions have been at baseline for {minutes} minutes (since {calm:%H:%M} UTC; the latest "
                f"{playbook.detection.bucket_minutes}-minute bucket had {last.volume} against a usual {last.baseline:.0f}).")
    elif last is not None:
        fact = (f"Mentions are not at baseline: the latest {playbook.detection.bucket_minutes}-minute bucket had "
                f"{last.volume} against a usual {last.baseline:.0f}.")
    else:
        fact = "There are no mention figures to go on."
    return (f"## All-clear for incident #{incident_id}?\n{fact} Confirm to lift the freeze"
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
