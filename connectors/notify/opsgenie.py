"""Opsgenie alerts API, on the Apprise base: the target is an Opsgenie user (email or
username, taken as `@user`) or a `#team`, `*schedule` or `^escalation` as Apprise spells them.
"""

from __future__ import annotations

from typing import ClassVar

from firebreak.connectors.notify._apprise import AppriseNotifier


class OpsgenieNotifier(AppriseNotifier):
    """Opsgenie alerts API; the target is an Opsgenie user (email/username) or `#team`."""

    channel: ClassVar[str] = "opsgenie"
    setting: ClassVar[str] = "FIREBREAK_OPSGENIE_API_KEY"

    def __init__(self, api_key: str, *, region: str = "us"):
        super().__init__(lambda target: f"opsgenie://{api_key}/{_opsgenie_target(target)}?region={region}&action=new")


def _opsgenie_target(target: str) -> str:
    if not target:
        return ""
    return target if target.startswith(("#", "@", "*", "^")) else f"@{target}"
