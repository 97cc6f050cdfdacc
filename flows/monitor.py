"""monitor: ingest every platform → label → detect. A detected crisis opens an incident and
starts `respond`: through a Prefect event that a deployment trigger turns into a run when
a server runs the deployments, or directly (a subflow) when none does."""

from __future__ import annotations

from typing import Any

from prefect import flow, get_run_logger
from prefect.events import emit_event

from firebreak.domain import utcnow
from firebreak.flows import steps
from firebreak.flows.runtime import get_runtime

CRISIS_EVENT = "firebreak.crisis.detected"


def _run_name() -> str:
    """`monitor fjell 14:05`: the brand and the minute, so a list of runs reads as a timeline."""
    return f"monitor {get_runtime().brand} {utcnow():%H:%M}"


@flow(name="monitor", flow_run_name=_run_name, log_prints=False)
def monitor(respond_inline: bool = True) -> dict[str, Any]:
    rt = get_runtime()
    log = get_run_logger()
    t_monitor = utcnow()
    futures = [steps.ingest.submit(p.value) for p in rt.playbook.brand.accounts]
    ingested = [f.result() for f in futures]
    queued = steps.own_queue()
    labelled = steps.label()
    t_detect = utcnow()
    incident_id = steps.detect()
    t_end = utcnow()
    result: dict[str, Any] = {
        "ingested": ingested, "labelled": labelled, "own_queue_published": queued, "incident_id": incident_id,
        "stages": {"monitor": {"started_at": t_monitor.isoformat(), "finished_at": t_detect.isoformat()},
                   "detect": {"started_at": t_detect.isoformat(), "finished_at": t_end.isoformat()}},
    }
    if incident_id is not None:
        log.warning("Crisis detected for %s: incident #%s", rt.brand, incident_id)
        emit_event(event=CRISIS_EVENT, resource={"prefect.resource.id": f"firebreak.incident.{incident_id}",
                                                 "firebreak.brand": rt.brand},
                   payload={"incident_id": incident_id, "brand": rt.brand, "drill": rt.drill})
        if respond_inline:
            from firebreak.flows.respond import respond

            result["respond"] = respond(incident_id)
    return result
