"""respond: classify → escalate (runs alongside) → freeze → draft → approve → publish origin
first → brief staff → follow-ups → resolve (resume, closing statement, post-mortem)."""

from __future__ import annotations

from typing import Any

import structlog
from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact

from firebreak.flows.approval import await_sign_off
from firebreak.flows.runtime import rename_run
from firebreak.flows.follow_up import follow_up
from firebreak.flows.resolve import resolve
from firebreak.flows import steps
from firebreak.store.queries import mark
from firebreak.flows.runtime import get_runtime
from firebreak.flows.steps import stage


@flow(name="respond", flow_run_name="respond #{incident_id}")
def respond(incident_id: int) -> dict[str, Any]:
    rt = get_runtime()
    log = get_run_logger()
    from prefect.context import get_run_context

    mark(rt.db, incident_id, flow_run_id=str(get_run_context().flow_run.id))
    with structlog.contextvars.bound_contextvars(incident_id=incident_id):
        assessment = steps.classify(incident_id)
        log.warning("Incident #%s: %s, severity %s, started on %s", incident_id, assessment["type"],
                    assessment["severity"], assessment["origin_platform"])
        # The run says what it is about in the UI's list: brand, incident, type, severity.
        rename_run(f"{rt.brand} #{incident_id} · {assessment['type']} · severity {assessment['severity']}")
        escalation = steps.escalate.submit(incident_id)
        try:
            frozen = steps.freeze(incident_id)
            draft_id = steps.draft(incident_id, "holding", 0)
            with stage(incident_id, "approve"):
                approved = await_sign_off(incident_id, draft_id)
            published = steps.publish(incident_id, approved)
            steps.brief_staff(incident_id, approved)
            steps.engage(incident_id)  # replies can now point to the published statement
            updates = follow_up(incident_id)
            closing = resolve(incident_id)
        finally:
            # Paging runs beside the response until someone acknowledges, the ladder ends or the
            # incident is resolved; the run ends with it, also when a stage failed (people must
            # still be reached then), so no task is left running behind a finished run.
            escalation.wait()
        esc = escalation.result()
    create_markdown_artifact(key=f"incident-{incident_id}-summary", markdown=closing.get("postmortem_markdown", ""),
                             description=f"Post-mortem of incident #{incident_id}")
    return {"assessment": assessment, "frozen": frozen, "holding_statement": published, "follow_ups": updates,
            "escalation": esc, **{k: v for k, v in closing.items() if k != "postmortem_markdown"}}
