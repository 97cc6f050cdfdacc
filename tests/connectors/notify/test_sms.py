"""SMS through Twilio (Apprise), posted for real to a loopback receiver standing in for api.twilio.com."""

from __future__ import annotations

import logging

import pytest
from structlog.testing import capture_logs

from firebreak.errors import RejectedRequest
from tests.connectors.notify.helpers import MSG, TWILIO_SID, TWILIO_TOKEN, RawReceiver, ours


def test_twilio_sms_through_apprise(receiver: RawReceiver, caplog: pytest.LogCaptureFixture) -> None:
    from urllib.parse import parse_qs

    from firebreak.connectors.notify import TwilioSmsNotifier

    caplog.set_level(logging.DEBUG)
    sms = TwilioSmsNotifier(TWILIO_SID, TWILIO_TOKEN, "+1 555 000 1111")
    with capture_logs() as events:
        delivery = sms.send("+46 70 123 45 67", MSG)
    [(host, path, headers, body)] = receiver.requests
    assert host == "api.twilio.com" and path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    form = parse_qs(body.decode())
    assert form["To"] == ["+46701234567"] and form["From"] == ["+15550001111"]
    assert "424242" in form["Body"][0] and "SEV2 incident" in form["Body"][0]
    assert headers["Authorization"].startswith("Basic ")
    assert delivery.channel == "sms"
    logged = str(events) + ours(caplog)
    assert "SENTINEL" not in logged and "46701234567" not in logged  # no token, no full phone number
    with pytest.raises(RejectedRequest):
        sms.send("ana@acme.example", MSG)
