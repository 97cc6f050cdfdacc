"""Generic JSON webhook notifier against httpx.MockTransport and a real loopback receiver."""

from __future__ import annotations

import logging

import httpx
import pytest
from structlog.testing import capture_logs

from firebreak.connectors.notify.webhook import WebhookNotifier
from firebreak.errors import RejectedRequest, TransientError
from tests.connectors.notify.helpers import MSG, Receiver, mock, ours, replies


def test_webhook_real_loopback_receiver() -> None:
    with Receiver(reply=b'{"id": "evt-9"}', content_type="application/json") as rx:
        with WebhookNotifier() as notifier:
            delivery = notifier.send(f"{rx.url}/hooks/firebreak?token=abc123xyz", MSG)
    [(path, headers, body)] = rx.requests
    assert path == "/hooks/firebreak?token=abc123xyz"
    assert headers["Idempotency-Key"] == MSG.idempotency_key
    assert body["idempotency_key"] == MSG.idempotency_key
    assert body["subject"] == MSG.subject and body["body"] == MSG.body and "text" in body
    assert delivery.remote_id == "evt-9" and delivery.channel == "webhook"


def test_webhook_5xx_not_retried_and_token_not_leaked(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    transport, seen = mock(replies(httpx.Response(503, json={"error": "down"})))
    target = "https://relay.example/hook?token=sup3rs3cr3t"
    with capture_logs() as events, pytest.raises(TransientError) as exc:
        WebhookNotifier(transport=transport).send(target, MSG)
    assert len(seen) == 1
    logged = repr(events) + ours(caplog) + str(exc.value)
    assert "sup3rs3cr3t" not in logged
    assert any("not delivered" in e["event"] and e["target"] == "https://relay.example" for e in events)


def test_webhook_connect_error_retried_and_key_stable() -> None:
    transport, seen = mock(replies(httpx.ConnectError("refused"), httpx.Response(202)))
    WebhookNotifier(transport=transport).send("https://relay.example/hook/abcdefgh", MSG)
    assert len(seen) == 2
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"] == MSG.idempotency_key


def test_webhook_rejects_non_http_target() -> None:
    with pytest.raises(RejectedRequest):
        WebhookNotifier().send("mailto:ana@acme.example", MSG)
