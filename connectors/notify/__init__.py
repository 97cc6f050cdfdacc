"""Notifiers: escalation pages, staff briefings and one-time approval codes.

One small base class for the capability (`base`), one module per channel: `email`, `slack`,
`webhook`, and `teams`, `sms`, `pagerduty`, `opsgenie` on a shared Apprise adapter
(`_apprise`). Every adapter raises only ConnectorError subclasses, so the escalation engine
can tell "retry later" (TransientError / NotSent) from "this will never work"
(RejectedRequest, AuthError) without knowing the vendor.

Secrets: a webhook URL *is* the credential (anyone holding it can post), and message bodies
may carry one-time approval codes. Neither is ever logged or put in an error message: logs
name the channel, the target and the idempotency key only, and the HTTP clients' own request
logs go through the secret scrubber of `firebreak.config.logging`.
"""

from __future__ import annotations

import httpx
from pydantic import SecretStr

from firebreak.config.settings import Settings
from firebreak.connectors.notify._apprise import AppriseNotifier
from firebreak.connectors.notify.base import Delivery, Message, Notifier, log
from firebreak.connectors.notify.email import EmailNotifier, message_id_for
from firebreak.connectors.notify.opsgenie import OpsgenieNotifier
from firebreak.connectors.notify.pagerduty import PagerDutyNotifier
from firebreak.connectors.notify.slack import SlackWebhookNotifier
from firebreak.connectors.notify.sms import TwilioSmsNotifier
from firebreak.connectors.notify.teams import TeamsNotifier
from firebreak.connectors.notify.webhook import WebhookNotifier


def _setting(settings: Settings, name: str) -> str:
    value = getattr(settings, name, None)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value or "")


def build_notifiers(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> dict[str, Notifier]:
    """Channel name -> notifier, for the channels this deployment can use.

    Email is always present (defaults to 127.0.0.1:25). The generic webhook needs no settings:
    each person's target is the URL. Slack, Teams, SMS, PagerDuty and Opsgenie only when their
    settings are configured; callers see a missing channel and fall back.
    """
    notifiers: dict[str, Notifier] = {
        EmailNotifier.channel: EmailNotifier(settings.smtp),
        WebhookNotifier.channel: WebhookNotifier(transport=transport),
    }
    slack_url = settings.slack_webhook_url.get_secret_value()
    if slack_url:
        notifiers[SlackWebhookNotifier.channel] = SlackWebhookNotifier(slack_url, transport=transport)
    # Apprise-backed channels, each present only when its settings are (fields proposed for
    # Settings; read with getattr so this works before and after they exist).
    teams = _setting(settings, "teams_webhook_url")
    if teams:
        notifiers[TeamsNotifier.channel] = TeamsNotifier(teams)
    sid, token, sender = (_setting(settings, f"twilio_{k}") for k in ("account_sid", "auth_token", "from_number"))
    if sid and token and sender:
        notifiers[TwilioSmsNotifier.channel] = TwilioSmsNotifier(sid, token, sender)
    routing, pd_key = _setting(settings, "pagerduty_routing_key"), _setting(settings, "pagerduty_api_key")
    if routing and pd_key:
        notifiers[PagerDutyNotifier.channel] = PagerDutyNotifier(routing, pd_key)
    opsgenie = _setting(settings, "opsgenie_api_key")
    if opsgenie:
        notifiers[OpsgenieNotifier.channel] = OpsgenieNotifier(opsgenie)
    log.info(f"Notification channels ready: {', '.join(sorted(notifiers)) or 'none'}")
    return notifiers


__all__ = [
    "AppriseNotifier",
    "Delivery",
    "EmailNotifier",
    "Message",
    "Notifier",
    "OpsgenieNotifier",
    "PagerDutyNotifier",
    "SlackWebhookNotifier",
    "TeamsNotifier",
    "TwilioSmsNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "message_id_for",
]
