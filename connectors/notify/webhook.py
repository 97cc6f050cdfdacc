"""Generic JSON webhooks: the target is the receiver's URL (Teams/PagerDuty-like relays, chat
bridges). The idempotency key travels in the body and in the `Idempotency-Key` header so a
receiver can dedupe resends; each origin gets its own ApiClient (and circuit breaker), and
targets are logged by origin only because the path may hold a token.
"""

from __future__ import annotations

import threading
from typing import ClassVar

import httpx

from firebreak.connectors.http import ApiClient
from firebreak.connectors.notify.base import (
    Delivery,
    Message,
    Notifier,
    _client,
    _is_http_url,
    _origin,
    _register_secret,
    _relative,
    _remote_id,
    _reraise_scrubbed,
    _text,
    log,
)
from firebreak.errors import ConnectorError, RejectedRequest


class WebhookNotifier(Notifier):
    """Generic JSON webhook; the target is the URL (Teams/PagerDuty-like relays, chat bridges).

    The body carries the idempotency key and so does the `Idempotency-Key` header, so a receiver
    can dedupe resends. Targets are logged by origin only: the path may hold a token.
    """

    channel: ClassVar[str] = "webhook"

    def __init__(self, *, transport: httpx.BaseTransport | None = None, timeout_s: float = 10.0):
        self._transport = transport
        self._timeout_s = timeout_s
        # One ApiClient (and so one circuit breaker) per origin: one dead receiver must not
        # trip the breaker for everybody else's.
        self._clients: dict[str, ApiClient] = {}
        self._lock = threading.Lock()

    def _client_for(self, url: str) -> tuple[ApiClient, str]:
        origin = _origin(url)
        with self._lock:
            client = self._clients.get(origin)
            if client is None:
                client = self._clients[origin] = _client(self.channel, url, self._transport, self._timeout_s)[0]
        return client, _relative(url)

    def send(self, target: str, message: Message) -> Delivery:
        if not _is_http_url(target):
            raise RejectedRequest(self.channel, "target is not an http(s) URL")
        _register_secret(target)
        http, path = self._client_for(target)
        payload = {
            "subject": message.subject,
            "body": message.body,
            "text": _text(message),  # what Teams/Slack-compatible receivers render
            "idempotency_key": message.idempotency_key,
        }
        try:
            resp = http.request("POST", path, json=payload, headers={"Idempotency-Key": message.idempotency_key})
        except ConnectorError as exc:
            log.warning(f"{self.channel} notification not delivered", channel=self.channel, target=_origin(target),
                        idempotency_key=message.idempotency_key, error=exc.__class__.__name__, status=exc.status)
            _reraise_scrubbed(exc, target)
        return self._delivered(target, message, _remote_id(resp), log_target=_origin(target))

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()
