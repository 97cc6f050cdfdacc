"""resolve: propose the all-clear (signal at baseline for the playbook's period), wait for a
person to confirm, lift the freeze, send the closing statement, write the post-mortem."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.context import get_run_context
from prefect.flow_runs import pause_flow_run

from firebreak.flows import steps
from firebreak.flows.approval import ResolveInput, await_sign_off
from firebreak.flows.runtime import get_runtime
from firebreak.flows.steps import stage
from firebreak.store.queries import get_incident
from firebreak.tasks import crisis_page
from firebreak.tasks import detect as detect_mod
from firebreak.tasks import resolve as resolve_mod


@flow(name="resolve", flow_run_name="resolve #{incident_id}")
def resolve(incident_id: int) -> dict[str, Any]:
    rt = get_runtime()
    log = get_run_logger()
    pb = rt.playbook
    with stage(incident_id, "resolve"):
        resolve_mod.propose(rt.db, rt.audit, pb, incident_id, str(get_run_context().flow_run.id))
        _, decisions = detect_mod.baseline_ratio(rt.db, pb, rt.clock.now())
        started = get_incident(rt.db, incident_id).started_at
        while True:
            answer = pause_flow_run(
                wait_for_input=ResolveInput.with_initial_data(
                    description=resolve_mod.question(pb, incident_id, decisions, started), confirm=True),
                timeout=pb.approval.pause_timeout_minutes * 60, poll_interval=1, key=f"resolve-{incident_id}")
            verdict = resolve_mod.judge(rt.db, rt.audit, pb, incident_id, answer.confirmer, answer.confirm, answer.note,
                                        channel="drill" if rt.drill else "ui")
            if verdict == "confirmed":
                break
    resumed = steps.resume(incident_id)
    closing: list[dict[str, Any]] = []
    if pb.resolve.closing_statement:
        draft_id = steps.draft(incident_id, "final", 0)
        approved = await_sign_off(incident_id, draft_id)
        closing = steps.publish(incident_id, approved)
    resolve_mod.close(rt.db, rt.audit, pb, incident_id, answer.confirmer, resumed, rt.clock.now())
    # The page now says "resolved" beside the closing statement.
    crisis_page.write(rt.db, pb, incident_id, rt.settings.data_dir / "crisis-page")
    pm = steps.postmortem(incident_id)
    log.info("Incident #%s resolved; post-mortem at %s", incident_id, pm["html"])
    return {"resumed": resumed, "closing_statement": closing, "postmortem_html": pm["html"],
            "postmortem_markdown": pm["markdown"]}
