"""Slack-style incoming webhooks (Slack, Mattermost, Rocket.Chat…): one POST of the message
text per target, where the target is "#channel" or "@user". The webhook URL is the
credential: it is registered with the log scrubber and never quoted in an error; only a
plain "ok" reply counts as delivered.
"""

from __future__ import annotations

from typing import Any, ClassVar

import httpx

from firebreak.connectors.notify.base import (
    Delivery,
    Message,
    Notifier,
    _client,
    _is_http_url,
    _register_secret,
    _reraise_scrubbed,
    _text,
    log,
)
from firebreak.errors import ConfigError, ConnectorError, RejectedRequest


class SlackWebhookNotifier(Notifier):
    """Slack-style incoming webhook (Slack, Mattermost, Rocket.Chat…); target is "#channel" or "@user".

    Slack ignores the channel override on modern app webhooks, but compatible receivers honour
    it. A webhook post is not idempotent, so ApiClient resends it only when it provably never
    left (NotSent); a 5xx or timeout raises TransientError and the caller decides.
    """

    channel: ClassVar[str] = "slack"

    def __init__(self, webhook_url: str, *, transport: httpx.BaseTransport | None = None, timeout_s: float = 10.0):
        if not _is_http_url(webhook_url):
            raise ConfigError("the Slack webhook URL (FIREBREAK_SLACK_WEBHOOK_URL) is not an http(s) URL")
        self._url = webhook_url
        _register_secret(webhook_url)
        self._http, self._path = _client(self.channel, webhook_url, transport, timeout_s)

    def send(self, target: str, message: Message) -> Delivery:
        payload: dict[str, Any] = {"text": _text(message), "channel": target}
        try:
            resp = self._http.request(
                "POST", self._path, json=payload, headers={"Idempotency-Key": message.idempotency_key},
            )
        except ConnectorError as exc:
            log.warning(f"{self.channel} notification not delivered", channel=self.channel, target=target,
                        idempotency_key=message.idempotency_key, error=exc.__class__.__name__, status=exc.status)
            _reraise_scrubbed(exc, self._url)
        # Slack answers a plain "ok"; anything else on a 2xx (an HTML login page from a proxy,
        # a JSON error from a look-alike) means the message was not posted and won't be on retry.
        if resp.text.strip() != "ok":
            raise RejectedRequest(self.channel, f"unexpected reply {resp.status_code}: {resp.text[:80]!r}",
                                  status=resp.status_code)
        return self._delivered(target, message)

    def close(self) -> None:
        self._http.close()
