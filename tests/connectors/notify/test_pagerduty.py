"""PagerDuty Events API v2 (Apprise), posted for real to a loopback receiver standing in for events.pagerduty.com."""

from __future__ import annotations

import json
import logging

import pytest
from structlog.testing import capture_logs

from tests.connectors.notify.helpers import MSG, PD_API, PD_ROUTING, RawReceiver, ours


def test_pagerduty_trigger_through_apprise(receiver: RawReceiver, caplog: pytest.LogCaptureFixture) -> None:
    from firebreak.connectors.notify import PagerDutyNotifier

    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        PagerDutyNotifier(PD_ROUTING, PD_API).send("comms-lead", MSG)
    [(host, path, headers, body)] = receiver.requests
    assert host == "events.pagerduty.com" and path == "/v2/enqueue"
    event = json.loads(body)
    assert event["routing_key"] == PD_ROUTING and event["event_action"] == "trigger"
    assert "SEV2 incident" in event["payload"]["summary"] and event["payload"]["component"] == "comms-lead"
    assert "SENTINEL" not in str(events) + ours(caplog)
