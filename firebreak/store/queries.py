"""The questions several stages ask the store, asked one way.

"Does this brand have an open incident?" decides whether a storm or an alert opens a crisis
or joins the one under way (one storm, one incident), whether publishing is locked down,
and whether Firebreak's own queue may post: one query answers it everywhere.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select, text
from sqlalchemy.orm import Session

from firebreak.errors import FirebreakError
from firebreak.store.db import Database
from firebreak.store.models import Incident, IncidentStatus, IncidentSummary, StageTimes

__all__ = ["IncidentStatus", "get_incident", "lock_brand", "mark", "open_incident_for", "open_incidents",
           "recent_incidents", "record_stage", "update_summary"]


def open_incidents(brand: str | None = None) -> Select[tuple[Incident]]:
    """Incidents not yet resolved (open or waiting for the all-clear), oldest first."""
    q = select(Incident).where(Incident.status != IncidentStatus.RESOLVED)
    if brand is not None:
        q = q.where(Incident.brand == brand)
    return q.order_by(Incident.id)


def recent_incidents(db: Database, *, brand: str | None = None, limit: int = 50) -> list[Incident]:
    """Incidents, newest first."""
    q = select(Incident).order_by(Incident.id.desc()).limit(limit)
    if brand is not None:
        q = q.where(Incident.brand == brand)
    with db.session() as s:
        return list(s.scalars(q))


def open_incident_for(s: Session, brand: str) -> Incident | None:
    """The brand's incident under way, if any: the one a new storm or alert joins."""
    return s.scalars(open_incidents(brand).limit(1)).first()


def lock_brand(s: Session, brand: str) -> None:
    """Serialise "is there an open incident? if not, open one" per brand across processes,
    until the session's transaction ends. SQLite needs nothing: a write transaction there
    already holds the database's one write lock from its first statement (BEGIN IMMEDIATE)."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(text("SELECT pg_advisory_xact_lock(727276, hashtext(:brand))"), {"brand": brand})


def get_incident(db: Database, incident_id: int) -> Incident:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise FirebreakError(f"no incident {incident_id}")
        return inc


def mark(db: Database, incident_id: int, **fields: Any) -> None:
    """Set columns of an incident (status, resolved_at, flow_run_id, …)."""
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise FirebreakError(f"no incident {incident_id}")
        for k, v in fields.items():
            if k == "summary" or not hasattr(Incident, k):
                raise FirebreakError(f"incident has no column {k!r}" + (" (use update_summary)" if k == "summary" else ""))
            setattr(inc, k, v)


def update_summary(db: Database, incident_id: int, **entries: Any) -> IncidentSummary:
    """Set fields of the incident's summary; a field IncidentSummary does not declare fails."""
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise FirebreakError(f"no incident {incident_id}")
        inc.summary = IncidentSummary.model_validate({**inc.summary.model_dump(), **entries})
        return inc.summary


def record_stage(db: Database, incident_id: int, name: str, times: StageTimes) -> None:
    """A stage's times on the incident. A stage that runs again (a retry, a second round)
    keeps its first start and takes the latest end."""
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise FirebreakError(f"no incident {incident_id}")
        prev = inc.summary.stages.get(name)
        if prev is not None:
            times = times.model_copy(update={"started_at": prev.started_at,
                                             "platform_started_at": prev.platform_started_at})
        inc.summary = inc.summary.model_copy(update={"stages": {**inc.summary.stages, name: times}})
