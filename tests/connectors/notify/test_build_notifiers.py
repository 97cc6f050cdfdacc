"""build_notifiers: only the channels a deployment's settings configure."""

from __future__ import annotations

import httpx
import pytest
from pydantic import SecretStr

from firebreak.config.settings import Settings
from firebreak.connectors.notify import EmailNotifier, build_notifiers
from firebreak.errors import ConfigError
from tests.connectors.notify.helpers import (
    MSG,
    OPSGENIE_KEY,
    PD_API,
    PD_ROUTING,
    SLACK_URL,
    TEAMS_URL,
    TWILIO_SID,
    TWILIO_TOKEN,
    mock,
    replies,
)


def test_build_notifiers_only_configured_channels() -> None:
    bare = build_notifiers(Settings(_env_file=None))  # type: ignore[call-arg]
    assert sorted(bare) == ["email", "webhook"]
    assert isinstance(bare["email"], EmailNotifier) and bare["email"].smtp.port == 25

    transport, seen = mock(replies(httpx.Response(200, text="ok")))
    full = build_notifiers(Settings(_env_file=None, slack_webhook_url=SecretStr(SLACK_URL)), transport=transport)  # type: ignore[call-arg]
    assert sorted(full) == ["email", "slack", "webhook"]
    full["slack"].send("#crisis-room", MSG)
    assert len(seen) == 1  # the transport seam reaches the adapters
    for n in (*bare.values(), *full.values()):
        n.close()


def test_apprise_channels_built_from_settings_only_when_configured() -> None:
    from firebreak.connectors.notify import OpsgenieNotifier, PagerDutyNotifier, TeamsNotifier, TwilioSmsNotifier

    class WithApprise(Settings):  # the Settings fields proposed for the lead
        teams_webhook_url: SecretStr = SecretStr("")
        twilio_account_sid: str = ""
        twilio_auth_token: SecretStr = SecretStr("")
        twilio_from_number: str = ""
        pagerduty_routing_key: SecretStr = SecretStr("")
        pagerduty_api_key: SecretStr = SecretStr("")
        opsgenie_api_key: SecretStr = SecretStr("")

    assert set(build_notifiers(WithApprise())) == {"email", "webhook"}
    full = WithApprise(teams_webhook_url=SecretStr(TEAMS_URL), twilio_account_sid=TWILIO_SID,
                       twilio_auth_token=SecretStr(TWILIO_TOKEN), twilio_from_number="+15550001111",
                       pagerduty_routing_key=SecretStr(PD_ROUTING), pagerduty_api_key=SecretStr(PD_API),
                       opsgenie_api_key=SecretStr(OPSGENIE_KEY))
    built = build_notifiers(full)
    assert isinstance(built["teams"], TeamsNotifier) and isinstance(built["sms"], TwilioSmsNotifier)
    assert isinstance(built["pagerduty"], PagerDutyNotifier) and isinstance(built["opsgenie"], OpsgenieNotifier)
    with pytest.raises(ConfigError) as err:
        TwilioSmsNotifier("not-a-sid", TWILIO_TOKEN, "+15550001111")
    assert "SENTINEL" not in str(err.value)
