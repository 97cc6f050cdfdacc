"""Opsgenie alerts (Apprise), posted for real to a loopback receiver standing in for api.opsgenie.com."""

from __future__ import annotations

import json
import logging

import pytest
from structlog.testing import capture_logs

from tests.connectors.notify.helpers import MSG, OPSGENIE_KEY, RawReceiver, ours


def test_opsgenie_alert_through_apprise(receiver: RawReceiver, caplog: pytest.LogCaptureFixture) -> None:
    from firebreak.connectors.notify import OpsgenieNotifier

    caplog.set_level(logging.DEBUG)
    receiver.status, receiver.reply = 202, b'{"result": "Request will be processed", "requestId": "r-1"}'
    with capture_logs() as events:
        OpsgenieNotifier(OPSGENIE_KEY).send("ana@acme.example", MSG)
    [(host, path, headers, body)] = receiver.requests
    assert host == "api.opsgenie.com" and path == "/v2/alerts"
    alert = json.loads(body)
    assert headers["Authorization"] == f"GenieKey {OPSGENIE_KEY}"
    assert "SEV2 incident" in alert["message"] and "424242" in alert["description"]
    assert {"username": "ana@acme.example", "type": "user"} in alert.get("responders", [])
    assert "SENTINEL" not in str(events) + ours(caplog)
