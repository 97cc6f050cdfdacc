"""PagerDuty Events API v2 (trigger), on the Apprise base: the routing (integration) key picks
the service, and the target names the component so the incident says who was paged for what.
"""

from __future__ import annotations

from typing import ClassVar

from firebreak.connectors.notify._apprise import AppriseNotifier


class PagerDutyNotifier(AppriseNotifier):
    """PagerDuty Events API v2 (trigger). The routing (integration) key picks the service; the
    target names the component so the incident says who was paged for what."""

    channel: ClassVar[str] = "pagerduty"
    setting: ClassVar[str] = "FIREBREAK_PAGERDUTY_ROUTING_KEY / _API_KEY"

    def __init__(self, routing_key: str, api_key: str, *, source: str = "firebreak"):
        super().__init__(lambda target: f"pagerduty://{routing_key}@{api_key}/{source}/{_slug(target) or 'escalation'}")


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text).strip("-")[:64]
