"""follow_up: keep followers updated on the playbook's cadence until the signal is back at
baseline: each update is drafted, signed off and published like the first statement."""

from __future__ import annotations

from prefect import flow, get_run_logger

from firebreak.flows.approval import await_sign_off
from firebreak.store.models import Incident
from firebreak.tasks import detect as detect_mod
from firebreak.flows import steps
from firebreak.tasks.follow_up import cadence_minutes, promised_minutes
from firebreak.tasks.resolve import at_baseline
from firebreak.flows.runtime import get_runtime
from firebreak.flows.steps import stage


def refresh(incident_id: int) -> None:
    """Fresh data before deciding: drain the platforms, label what came in, work the reply queue."""
    rt = get_runtime()
    for p in rt.playbook.brand.accounts:
        steps.ingest(p.value)
    steps.label()
    steps.engage(incident_id)


@flow(name="follow_up", flow_run_name="follow-ups #{incident_id}")
def follow_up(incident_id: int) -> int:
    rt = get_runtime()
    log = get_run_logger()
    pb = rt.playbook
    with rt.db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        severity = inc.severity or pb.severity.default
        started = inc.started_at
    sent = 0
    with stage(incident_id, "follow_up"):
        refresh(incident_id)
        ratio, decisions = detect_mod.baseline_ratio(rt.db, pb, rt.clock.now())
        while sent < pb.follow_up.max_updates and not at_baseline(pb, decisions, started):
            wait = cadence_minutes(pb, severity, ratio)
            log.info("Next update in %.0f minutes (volume %.1f× baseline)", wait, ratio)
            rt.clock.sleep(wait * 60)
            refresh(incident_id)
            ratio, decisions = detect_mod.baseline_ratio(rt.db, pb, rt.clock.now())
            if at_baseline(pb, decisions, started):
                break
            nxt = promised_minutes(pb, severity, ratio)
            draft_id = steps.draft(incident_id, "update", sent + 1, update_number=sent + 1, next_update_minutes=nxt)
            approved = await_sign_off(incident_id, draft_id)
            steps.publish(incident_id, approved)
            sent += 1
    log.info("%s follow-up update(s) sent; signal back at baseline", sent)
    return sent
