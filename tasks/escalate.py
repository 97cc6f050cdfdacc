"""Escalate stage: page people level by level until someone acknowledges.

The policy comes from the incident's snapshot (the playbook as it was when the incident
opened). Each level pages its people on its channels, then waits its acknowledgement
timeout on the run's clock; nobody answering moves to the next level; the whole ladder is
walked again `repeat` times. Acknowledging (signed link, CLI, Prefect UI, drill) stops it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from firebreak.audit import AuditLog
from firebreak.clock import Clock
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Escalation, Playbook
from firebreak.connectors.notify import Notifier
from firebreak.domain import utcnow
from firebreak.store.db import Database
from firebreak.store.models import Incident
from firebreak.store.queries import IncidentStatus
from firebreak.tasks.ack import AckLinks, ack_code
from firebreak.tasks.lockdown import rotation_notice
from firebreak.tasks.notify import Outgoing, send_once

log = get_logger("firebreak.tasks.escalate")


@dataclass
class EscalationResult:
    acknowledged_by: str | None = None
    pages: list[dict] = field(default_factory=list)
    exhausted: bool = False
    resolved: bool = False  # the incident was resolved before anyone acknowledged: paging stopped


def page_text(inc: Incident, playbook: Playbook, level: int, *, person: str | None = None,
              ack_link: str | None = None, ack_code: str | None = None) -> tuple[str, str]:
    """Subject and body of a page. With `person`, the ways to acknowledge are that person's own:
    their signed link, their code for the Prefect UI form, the CLI with their id."""
    ctype = playbook.crisis_type(inc.type).name if inc.type else "unclassified"
    subject = f"[Firebreak] Severity {inc.severity} crisis for {playbook.brand.name}: {ctype} (level {level})"
    body = (
        f"Incident #{inc.id} ({'DRILL' if inc.drill else 'LIVE'})\n"
        f"Type: {ctype}\nSeverity: {inc.severity} (1 worst)\nStarted on: {inc.origin_platform}\n"
        f"Languages: {', '.join(inc.languages or [])}\nTopic: {', '.join((inc.topics or [])[:5])}\n"
        f"All scheduled posts are being frozen. A holding statement is being drafted for approval.\n"
        + _ack_lines(inc.id, person, ack_link, ack_code)
    )
    if inc.type and playbook.crisis_type(inc.type).lockdown:
        body = rotation_notice(playbook) + "\n\n" + body
    return subject, body


def _ack_lines(incident_id: int, person: str | None, link: str | None, code: str | None) -> str:
    lines = []
    if link:
        lines.append(f"Acknowledge (one tap): {link}")
    if code and person:
        lines.append(f"Or in the Prefect UI, run 'acknowledge_incident' with incident {incident_id}, "
                     f"person {person}, code {code}")
    lines.append(f"Or: firebreak ack {incident_id} --as {person or 'YOUR_ID'}")
    return "\n".join(lines)


def is_acknowledged(db: Database, incident_id: int) -> str | None:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        return inc.acknowledged_by if inc else None


def _settled(db: Database, audit: AuditLog, incident_id: int, result: EscalationResult) -> bool:
    """Paging stops once someone acknowledged or the incident is over (then nobody need be woken)."""
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        by, over = (inc.acknowledged_by, inc.status == IncidentStatus.RESOLVED) if inc else (None, True)
    if by:
        result.acknowledged_by = by
        return True
    if over:
        result.resolved = True
        audit.append("firebreak", "escalation.stopped", f"incident:{incident_id}",
                     {"reason": "incident resolved before anyone acknowledged", "pages": len(result.pages)})
        return True
    return False


def acknowledge(db: Database, audit: AuditLog, incident_id: int, person: str, channel: str) -> bool:
    """Returns False if someone acknowledged first (the first acknowledgement counts)."""
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None or inc.acknowledged_by:
            first = False
        else:
            inc.acknowledged_by, inc.acknowledged_at, first = person, utcnow(), True
    audit.append(person, "incident.acknowledged" if first else "incident.acknowledge_ignored",
                 f"incident:{incident_id}", {"channel": channel})
    return first


def run_escalation(db: Database, audit: AuditLog, playbook: Playbook, notifiers: dict[str, Notifier], clock: Clock,
                   incident_id: int, *, poll_s: float = 15.0, ack: AckLinks | None = None) -> EscalationResult:
    """Walk the ladder. With `ack` (signing key and public URL), each page carries the paged
    person's own signed acknowledgement link and UI code; without it, only the CLI line."""
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
    policy_cfg = Escalation.model_validate(inc.policy_snapshot["escalation"])
    groups: dict[str, list[str]] = inc.policy_snapshot.get("groups", {})
    sev = policy_cfg.by_severity[inc.severity or playbook.severity.default]
    policy = policy_cfg.policies[sev.policy]
    result = EscalationResult()
    for rnd in range(policy.repeat + 1):
        for idx in range(sev.start_level - 1, len(policy.levels)):
            level_no = idx + 1
            lvl = policy.levels[idx]
            if _settled(db, audit, incident_id, result):
                return result
            people = []
            for t in lvl.targets:
                for pid in groups.get(t, [t]):
                    if pid not in people:
                        people.append(pid)
            for pid in people:
                person = playbook.person(pid)
                # Per person: the link and code prove who answers. The text of a key already
                # sent is not re-read by send_once, so a rerun (new link expiry) sends nothing twice.
                subject, body = page_text(
                    inc, playbook, level_no, person=pid,
                    ack_link=ack.link(incident_id, pid) if ack else None,
                    ack_code=ack_code(ack.key, incident_id, pid, rnd) if ack else None)
                for ch in lvl.channels:
                    target = person.channels.get(ch)
                    if not target:
                        continue
                    row = send_once(db, audit, notifiers, incident_id, Outgoing(
                        key=f"page:{incident_id}:{rnd}:{level_no}:{pid}:{ch}", kind="page", channel=ch,
                        target=target, subject=subject, body=body, person=pid, level=level_no, round=rnd))
                    result.pages.append({"level": level_no, "round": rnd, "person": pid, "channel": ch,
                                         "status": row.status})
            log.info(f"Paged level {level_no} (round {rnd + 1}): {', '.join(people)}", incident=incident_id)
            # Wait the acknowledgement timeout in short steps so an ack stops the ladder promptly.
            waited, timeout = 0.0, lvl.ack_timeout_minutes * 60
            while waited < timeout:
                step = min(poll_s, timeout - waited)
                clock.sleep(step)
                waited += step
                if _settled(db, audit, incident_id, result):
                    return result
    result.exhausted = True
    audit.append("firebreak", "escalation.exhausted", f"incident:{incident_id}", {"pages": len(result.pages)})
    return result


def brief_staff(db: Database, audit: AuditLog, playbook: Playbook, notifiers: dict[str, Notifier],
                incident_id: int, statement: str) -> list[str]:
    """Internal briefing: what happened, what we say, and a short Q&A for staff."""
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
    ctype = playbook.crisis_type(inc.type).name if inc.type else "an incident"
    sp = playbook.brand.spokesperson
    body = (
        f"What happened: we are handling {ctype.lower()} (severity {inc.severity}), which started on "
        f"{inc.origin_platform}. Topic: {', '.join((inc.topics or [])[:5])}.\n\n"
        f"What we say publicly (approved):\n{statement}\n\n"
        "Q&A for staff:\n"
        f"- Can I comment on social media? No. Refer every question to {sp.name} ({sp.title}), {playbook.brand.contact}.\n"
        "- A customer asks me directly? Thank them, say we take it seriously, point to our official statement"
        + (f" and {playbook.brand.crisis_page_url}" if playbook.brand.crisis_page_url else "") + ".\n"
        "- Are scheduled campaigns going out? No, every scheduled post is on hold until the all-clear.\n"
    )
    subject = f"[Internal] {playbook.brand.name}: what happened and what we say (incident #{incident_id})"
    out = []
    b = playbook.escalation.staff_briefing
    for target in b.targets:
        row = send_once(db, audit, notifiers, incident_id, Outgoing(
            key=f"briefing:{incident_id}:{target}", kind="briefing", channel=b.channel, target=target,
            subject=subject, body=body))
        out.append(row.status)
    return out
