"""Deployment definitions: monitor on a schedule; respond triggered by the crisis event.

`python -m firebreak.flows.deployments` serves them against the Prefect server in
PREFECT_API_URL (e.g. `prefect server start`, UI on :4200). deploy/prefect.yaml holds the
same deployments for work pools.
"""

from __future__ import annotations

from prefect import serve
from prefect.events import DeploymentEventTrigger

from firebreak.flows.ack import acknowledge_incident
from firebreak.flows.monitor import CRISIS_EVENT, monitor
from firebreak.flows.respond import respond


def deployments(interval_s: int = 300):  # type: ignore[no-untyped-def]
    return [
        monitor.to_deployment(name="monitor", interval=interval_s, parameters={"respond_inline": False},
                              description="Pull mentions, label, detect; emits firebreak.crisis.detected"),
        respond.to_deployment(
            name="respond",
            triggers=[DeploymentEventTrigger(expect={CRISIS_EVENT}, match={"prefect.resource.id": "firebreak.incident.*"},
                                             parameters={"incident_id": "{{ event.payload.incident_id }}"})],
            description="The crisis response for one incident",
        ),
        # Run by hand from the UI form: acknowledging a page needs the code the page carried.
        acknowledge_incident.to_deployment(name="acknowledge", description="Acknowledge an incident's page "
                                           "(incident id, your person id, the code from your page)"),
    ]


if __name__ == "__main__":  # pragma: no cover - run by operators
    serve(*deployments())
