"""Microsoft Teams through a Workflows (Power Automate) webhook, on the Apprise base. The
webhook URL is the credential and decides the channel; the target is informational and is
put in front of the message so the right person sees it addressed.
"""

from __future__ import annotations

from typing import ClassVar

from firebreak.connectors.notify._apprise import AppriseNotifier
from firebreak.connectors.notify.base import Delivery, Message, _is_http_url
from firebreak.errors import ConfigError


class TeamsNotifier(AppriseNotifier):
    """Microsoft Teams through a Workflows (Power Automate) webhook, Teams' supported way since
    Office 365 connectors were retired. The target is informational (the webhook decides the
    channel); it is put in front of the message so the right person sees it addressed."""

    channel: ClassVar[str] = "teams"
    setting: ClassVar[str] = "FIREBREAK_TEAMS_WEBHOOK_URL"

    def __init__(self, webhook_url: str):
        if not _is_http_url(webhook_url):
            raise ConfigError("the Teams webhook URL (FIREBREAK_TEAMS_WEBHOOK_URL) is not an http(s) URL")
        super().__init__(lambda _target: webhook_url)  # Apprise understands the native Workflows URL

    def send(self, target: str, message: Message) -> Delivery:
        addressed = Message(message.subject, f"{target}: {message.body}" if target else message.body,
                            message.idempotency_key)
        return super().send(target, addressed)

    def _log_target(self, target: str) -> str:
        return target or "teams"
