"""SMS through Twilio, on the Apprise base: the target is the person's phone number (E.164),
the account SID, auth token and sender number come from settings. A phone number is personal
data, so logs show only its last four digits.
"""

from __future__ import annotations

from typing import ClassVar

from firebreak.connectors.notify._apprise import AppriseNotifier
from firebreak.errors import RejectedRequest


class TwilioSmsNotifier(AppriseNotifier):
    """SMS through Twilio; the target is the person's phone number (E.164)."""

    channel: ClassVar[str] = "sms"
    setting: ClassVar[str] = "FIREBREAK_TWILIO_ACCOUNT_SID / _AUTH_TOKEN / _FROM_NUMBER"

    def __init__(self, account_sid: str, auth_token: str, from_number: str):
        digits = "".join(ch for ch in from_number if ch.isdigit())
        super().__init__(lambda to: f"twilio://{account_sid}:{auth_token}@{digits}/{_phone(to) or digits}")

    def _target_url(self, target: str) -> str:
        if not _phone(target):
            raise RejectedRequest(self.channel, "target is not a phone number")
        return super()._target_url(target)

    def _log_target(self, target: str) -> str:
        digits = _phone(target)
        return f"+…{digits[-4:]}" if digits else "sms"  # a phone number is personal data: last digits only


def _phone(target: str) -> str:
    digits = "".join(ch for ch in target if ch.isdigit())
    return digits if 8 <= len(digits) <= 15 and not any(c.isalpha() for c in target) else ""
