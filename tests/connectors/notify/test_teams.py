"""Teams Workflows webhook (Apprise), posted for real to a loopback receiver standing in for the Workflows host."""

from __future__ import annotations

import json
import logging

import pytest
from structlog.testing import capture_logs

from tests.connectors.notify.helpers import MSG, TEAMS_URL, RawReceiver, ours


def test_teams_workflow_through_apprise(receiver: RawReceiver, caplog: pytest.LogCaptureFixture) -> None:
    from firebreak.connectors.notify import TeamsNotifier

    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        TeamsNotifier(TEAMS_URL).send("Ana (comms lead)", MSG)
    [(host, path, headers, body)] = receiver.requests
    assert host.startswith("prod-42.westeurope.logic.azure.com")
    assert path.startswith("/workflows/0123456789abcdef0123456789abcdef/triggers/manual/paths/invoke?")
    card = json.dumps(json.loads(body))
    assert "SEV2 incident" in card and "Ana (comms lead)" in card and "424242" in card
    assert "SENTINEL" not in str(events) + ours(caplog)
