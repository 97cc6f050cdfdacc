"""Opening an incident from a signal (or joining the one under way), and recording what
classification found."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select

from firebreak.audit import AuditLog
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook
from firebreak.store.db import Database
from firebreak.store.models import Incident, IncidentStatus, Signal
from firebreak.store.queries import lock_brand, open_incident_for, update_summary
from firebreak.tasks.classify import Assessment

log = get_logger("firebreak.tasks.incident")


def playbook_hash(playbook: Playbook) -> str:
    return hashlib.sha256(json.dumps(playbook.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def open_or_join(db: Database, audit: AuditLog, playbook: Playbook, signal_id: int, *,
                 drill: bool = False) -> tuple[Incident, bool]:
    """One storm, one incident: the signal joins the brand's incident under way, or opens a
    new one. Returns the incident and whether this signal opened it (only then does a
    response start). Decided here for every source of signals, the detector's and the
    alert intake's, under a per-brand lock so two of them cannot both open one."""
    with db.session() as s:
        sig = s.get(Signal, signal_id)
        assert sig is not None, signal_id
        if sig.incident_id is not None:  # asked again (a retried task): the same answer
            inc = s.get(Incident, sig.incident_id)
            assert inc is not None
            first = s.scalar(select(Signal.id).where(Signal.incident_id == inc.id).order_by(Signal.id).limit(1))
            return inc, first == signal_id
        lock_brand(s, sig.brand)
        existing = open_incident_for(s, sig.brand)
        if existing is not None:
            sig.incident_id = existing.id
            log.info(f"Signal at {sig.at.isoformat()} ({sig.scope}) joins incident #{existing.id}",
                     brand=sig.brand, signal=signal_id)
            return existing, False
        inc = Incident(
            brand=sig.brand, status=IncidentStatus.OPEN, started_at=sig.at, detected_at=sig.detected_at, drill=drill,
            # The policy in force when the incident opened stays its policy, whatever edits follow.
            policy_snapshot={
                "playbook_sha256": playbook_hash(playbook),
                "escalation": playbook.escalation.model_dump(mode="json"),
                "approval": playbook.approval.model_dump(mode="json"),
                "groups": playbook.groups,
            },
        )
        s.add(inc)
        s.flush()
        sig.incident_id = inc.id
    audit.append("firebreak", "incident.opened", f"incident:{inc.id}",
                 {"signal": signal_id, "scope": sig.scope, "at": sig.at, "volume": sig.volume, "baseline": sig.baseline,
                  "reasons": sig.details.get("reasons", []), "drill": drill})
    return inc, True


def open_incident(db: Database, audit: AuditLog, playbook: Playbook, signal_id: int, *, drill: bool = False) -> Incident:
    """The incident the signal belongs to, opened by it if none was under way."""
    return open_or_join(db, audit, playbook, signal_id, drill=drill)[0]


def apply_assessment(db: Database, audit: AuditLog, incident_id: int, a: Assessment) -> Incident:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        inc.type, inc.severity, inc.origin_platform = a.type, a.severity, a.origin_platform
        inc.first_mention_id, inc.languages, inc.topics = a.first_mention_id, a.languages, a.topics
    update_summary(db, incident_id, figures=a.figures, topic=a.topic)
    audit.append("firebreak", "incident.classified", f"incident:{incident_id}",
                 {"type": a.type, "severity": a.severity, "origin_platform": a.origin_platform,
                  "first_mention_id": a.first_mention_id, "languages": a.languages, "topics": a.topics, "topic": a.topic,
                  "figures": a.figures})
    return inc
