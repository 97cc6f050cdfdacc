"""The shared Apprise adapter: a failed send is transient and quotes no secret."""

from __future__ import annotations

import pytest
from structlog.testing import capture_logs

from firebreak.errors import TransientError
from tests.connectors.notify.helpers import MSG, PD_API, PD_ROUTING, RawReceiver


def test_apprise_failure_is_transient_and_quotes_no_secret(receiver: RawReceiver) -> None:
    from firebreak.connectors.notify import PagerDutyNotifier

    receiver.status = 503
    with capture_logs() as events, pytest.raises(TransientError) as err:
        PagerDutyNotifier(PD_ROUTING, PD_API).send("comms-lead", MSG)
    assert "SENTINEL" not in str(err.value) + str(events)
    assert any("not delivered" in e["event"] for e in events)
