"""Acknowledging a page from the Prefect UI: a tiny flow whose parameter form ops fill in.

The self-hosted UI proves no identity, so the form's `person` counts only with the code
that person's page carried (tasks/ack.py derives it from the signing key, the incident,
the person and the paging round). A wrong code fails the run and is audited.
"""

from __future__ import annotations

from prefect import flow

from firebreak.config.playbook import Escalation
from firebreak.errors import PolicyViolation
from firebreak.store.models import Incident
from firebreak.tasks import codes as codes_mod
from firebreak.tasks.ack import verify_ack_code
from firebreak.tasks.escalate import acknowledge
from firebreak.flows.runtime import Runtime, get_runtime


def ladder_rounds(rt: Runtime, inc: Incident) -> int:
    """How many times the incident's (snapshotted) policy walks its ladder: repeat + 1."""
    snap = inc.policy_snapshot or {}
    if "escalation" not in snap:
        return 1
    cfg = Escalation.model_validate(snap["escalation"])
    sev = cfg.by_severity.get(inc.severity or rt.playbook.severity.default)  # type: ignore[call-overload]
    if sev is None or sev.policy not in cfg.policies:
        return 1
    return cfg.policies[sev.policy].repeat + 1


def acknowledge_with_code(incident_id: int, person: str, code: str) -> dict[str, object]:
    """The flow's body as a plain function (tests call it without a Prefect server)."""
    rt = get_runtime()
    with rt.db.session() as s:
        inc = s.get(Incident, incident_id)
        if inc is None:
            raise PolicyViolation(f"incident {incident_id} is not known")
        rounds = ladder_rounds(rt, inc)
    try:
        verify_ack_code(codes_mod.signing_key(rt.settings), incident_id, person, code, rounds)
    except PolicyViolation as exc:
        rt.audit.append(person, "incident.acknowledge_refused", f"incident:{incident_id}",
                        {"channel": "ui", "reason": str(exc)})
        raise
    first = acknowledge(rt.db, rt.audit, incident_id, person, channel="ui")
    with rt.db.session() as s:
        by = (s.get(Incident, incident_id) or inc).acknowledged_by
    return {"incident_id": incident_id, "acknowledged_by": by, "first": first}


@flow(name="acknowledge_incident", flow_run_name="acknowledge #{incident_id} as {person}", log_prints=True)
def acknowledge_incident(incident_id: int, person: str, code: str) -> dict[str, object]:
    """Acknowledge incident INCIDENT_ID's page as PERSON, with the code from your page."""
    out = acknowledge_with_code(incident_id, person, code)
    print("acknowledged" if out["first"] else f"already acknowledged by {out['acknowledged_by']}")
    return out
