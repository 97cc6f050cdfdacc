"""The shared base of the Apprise-backed notifiers (Teams, SMS through Twilio, PagerDuty,
Opsgenie): each vendor adapter only says how its Apprise URL is built from settings and the
target. Apprise reports only success or failure, so a failed send is a TransientError; the
Apprise URL holds the credentials, so its secret parts are registered with the log scrubber
and it never appears in our logs or errors. Apprise itself is imported on first use.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import ClassVar
from urllib.parse import urlsplit

from firebreak.config.logging import register_secret
from firebreak.connectors.notify.base import Delivery, Message, Notifier, log
from firebreak.errors import ConfigError, RejectedRequest, TransientError

_apprise_lock = threading.Lock()


class AppriseNotifier(Notifier):
    """One adapter per vendor on top of Apprise (a Prefect dependency), each with its Apprise
    URL built from settings. Apprise reports only success or failure, so a failed send is a
    TransientError (the escalation engine repeats or moves to the next level); a URL Apprise
    cannot parse is a ConfigError at construction, naming the setting but never quoting it.

    Apprise spaces calls to one service by sleeping (`request_rate_per_sec`) inside its
    plugin. That would be a sleep the orchestrator cannot see, so each send uses a fresh
    Apprise object with that pacing set to 0; pacing pages is the escalation policy's job.
    The Apprise URL holds the credentials: it is registered with the log scrubber (Apprise
    and requests log URLs at DEBUG) and never appears in our logs or errors.
    """

    setting: ClassVar[str] = ""

    def __init__(self, url_for: Callable[[str], str]):
        self._url_for = url_for
        probe = url_for("")
        if not self._valid(probe):
            raise ConfigError(f"the {self.channel} settings ({self.setting}) do not form a usable Apprise URL")

    @staticmethod
    def _valid(url: str) -> bool:
        import apprise

        return apprise.Apprise().add(url)

    def _target_url(self, target: str) -> str:
        return self._url_for(target)

    def send(self, target: str, message: Message) -> Delivery:
        import apprise

        url = self._target_url(target)
        for part in _secret_parts(url):
            register_secret(part)
        ap = apprise.Apprise()
        if not ap.add(url):
            raise RejectedRequest(self.channel, f"target {self._log_target(target)!r} does not form a valid address")
        for server in ap:
            server.request_rate_per_sec = 0  # no sleeping inside the client (see the class doc)
        with _apprise_lock:  # Apprise's plugins share module state (throttle clocks, logging)
            ok = ap.notify(body=message.body, title=message.subject)
        if not ok:
            log.warning(f"{self.channel} notification not delivered", channel=self.channel, target=self._log_target(target),
                        idempotency_key=message.idempotency_key, error="apprise_send_failed")
            raise TransientError(self.channel, f"{self._log_target(target)}: the service did not accept the message")
        return self._delivered(target, message, log_target=self._log_target(target))

    def _log_target(self, target: str) -> str:
        return target


def _secret_parts(url: str) -> list[str]:
    """Userinfo, path and query of an Apprise URL: where its services keep their keys."""
    parts = urlsplit(url)
    out = [p for p in (parts.username, parts.password, parts.netloc, parts.path.strip("/"), parts.query) if p]
    out += [seg for seg in parts.path.split("/") if len(seg) >= 8]
    return [p for p in out if len(p) >= 8]
