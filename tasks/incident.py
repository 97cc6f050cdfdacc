"""Opening an incident from a signal, and recording what classification found."""

from __future__ import annotations

import hashlib
import json

from sqlalchemy import select

from firebreak.audit import AuditLog
from firebreak.config.playbook import Playbook
from firebreak.errors import FirebreakError
from firebreak.store.db import Database
from firebreak.store.models import Incident, Signal
from firebreak.tasks.classify import Assessment


def playbook_hash(playbook: Playbook) -> str:
    return hashlib.sha256(json.dumps(playbook.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()


def open_incident(db: Database, audit: AuditLog, playbook: Playbook, signal_id: int, *, drill: bool = False) -> Incident:
    """One storm, one incident: returns the brand's open incident if there is one."""
    with db.session() as s:
        sig = s.get(Signal, signal_id)
        assert sig is not None, signal_id
        existing = s.scalars(select(Incident).where(Incident.brand == sig.brand, Incident.status != "resolved")).first()
        if existing is not None:
            sig.incident_id = existing.id
            return existing
        storm_start = sig.at
        inc = Incident(
            brand=sig.brand, status="open", started_at=storm_start, detected_at=sig.detected_at, drill=drill,
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
    return inc


def apply_assessment(db: Database, audit: AuditLog, incident_id: int, a: Assessment) -> Incident:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        inc.type, inc.severity, inc.origin_platform = a.type, a.severity, a.origin_platform
        inc.first_mention_id, inc.languages, inc.topics = a.first_mention_id, a.languages, a.topics
        inc.summary = {**(inc.summary or {}), "figures": a.figures, "topic": a.topic}
    audit.append("firebreak", "incident.classified", f"incident:{incident_id}",
                 {"type": a.type, "severity": a.severity, "origin_platform": a.origin_platform,
                  "first_mention_id": a.first_mention_id, "languages": a.languages, "topics": a.topics, "topic": a.topic,
                  "figures": a.figures})
    return inc


def get_incident(db: Database, incident_id: int) -> Incident:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise FirebreakError(f"no incident {incident_id}")
        return inc


def mark(db: Database, incident_id: int, **fields: object) -> None:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        for k, v in fields.items():
            setattr(inc, k, v)


def update_summary(db: Database, incident_id: int, **entries: object) -> None:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        inc.summary = {**(inc.summary or {}), **entries}
