"""resolve: propose the all-clear (signal at baseline for the playbook's period), wait for a
person to confirm, lift the freeze, send the closing statement, write the post-mortem."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.flow_runs import pause_flow_run

from firebreak.domain import utcnow
from firebreak.flows.approval import ResolveInput, await_sign_off
from firebreak.flows import steps
from firebreak.tasks import crisis_page
from firebreak.store.queries import IncidentStatus, mark, update_summary
from firebreak.flows.runtime import get_runtime
from firebreak.flows.steps import stage


@flow(name="resolve")
def resolve(incident_id: int) -> dict[str, Any]:
    rt = get_runtime()
    log = get_run_logger()
    pb = rt.playbook
    with stage(incident_id, "resolve"):
        rt.audit.append("firebreak", "resolve.proposed", f"incident:{incident_id}",
                        {"baseline_minutes": pb.resolve.baseline_minutes})
        mark(rt.db, incident_id, status=IncidentStatus.RESOLVING)
        update_summary(rt.db, incident_id, resolve_run_id=str(get_run_context().flow_run.id))
        while True:
            answer = pause_flow_run(
                wait_for_input=ResolveInput.with_initial_data(
                    description=f"## All-clear for incident #{incident_id}?\nMentions have been at baseline for "
                                f"{pb.resolve.baseline_minutes} minutes. Confirm to lift the freeze"
                                + (", publish the closing statement" if pb.resolve.closing_statement else "")
                                + " and write the post-mortem.", confirm=True),
                timeout=pb.approval.pause_timeout_minutes * 60, poll_interval=1, key=f"resolve-{incident_id}")
            known = {p.id for p in pb.people}
            if answer.confirmer in known and answer.confirm:
                break
            rt.audit.append(answer.confirmer, "resolve.declined" if answer.confirmer in known else "resolve.refused",
                            f"incident:{incident_id}", {"note": answer.note})
        rt.audit.append(answer.confirmer, "resolve.confirmed", f"incident:{incident_id}",
                        {"note": answer.note, "channel": "drill" if rt.drill else "ui"})
    resumed = steps.resume(incident_id)
    closing: list[dict[str, Any]] = []
    if pb.resolve.closing_statement:
        draft_id = steps.draft(incident_id, "final", 0)
        approved = await_sign_off(incident_id, draft_id)
        closing = steps.publish(incident_id, approved)
    now = utcnow()
    mark(rt.db, incident_id, status=IncidentStatus.RESOLVED, resolved_at=now)
    # The page now says "resolved" beside the closing statement.
    crisis_page.write(rt.db, pb, incident_id, rt.settings.data_dir / "crisis-page")
    update_summary(rt.db, incident_id, heightened_alert_until=(
        rt.clock.now() + timedelta(hours=pb.resolve.heightened_alert_hours)))
    rt.audit.append(answer.confirmer, "incident.resolved", f"incident:{incident_id}", {"resumed": resumed})
    pm = steps.postmortem(incident_id)
    log.info("Incident #%s resolved; post-mortem at %s", incident_id, pm["html"])
    return {"resumed": resumed, "closing_statement": closing, "postmortem_html": pm["html"],
            "postmortem_markdown": pm["markdown"]}
