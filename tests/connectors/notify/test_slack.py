"""Slack-style webhook notifier against httpx.MockTransport and a real loopback receiver."""

from __future__ import annotations

import json
import logging

import httpx
import pytest
from structlog.testing import capture_logs

from firebreak.connectors.notify.slack import SlackWebhookNotifier
from firebreak.errors import AuthError, ConfigError, RateLimited, RejectedRequest, TransientError
from tests.connectors.notify.helpers import MSG, SLACK_SECRET, SLACK_URL, Receiver, mock, ours, replies


def test_slack_posts_text_channel_and_idempotency_key() -> None:
    transport, seen = mock(replies(httpx.Response(200, text="ok")))
    delivery = SlackWebhookNotifier(SLACK_URL, transport=transport).send("#crisis-room", MSG)
    [req] = seen
    assert str(req.url) == SLACK_URL  # no trailing slash or other mangling of the webhook path
    body = json.loads(req.content)
    assert body == {"text": "*SEV2 incident: outage*\nApprove with code 424242", "channel": "#crisis-room"}
    assert req.headers["Idempotency-Key"] == MSG.idempotency_key
    assert (delivery.channel, delivery.target) == ("slack", "#crisis-room")


def test_slack_5xx_on_a_post_is_not_retried() -> None:
    # The post may have landed: ApiClient resends a write only when it provably never left.
    transport, seen = mock(replies(httpx.Response(500, text="oops"), httpx.Response(200, text="ok")))
    with pytest.raises(TransientError) as exc:
        SlackWebhookNotifier(SLACK_URL, transport=transport).send("#crisis-room", MSG)
    assert exc.value.status == 500 and len(seen) == 1
    assert SLACK_SECRET not in str(exc.value) and "<redacted>" in str(exc.value)


def test_slack_connect_error_is_retried() -> None:
    transport, seen = mock(replies(httpx.ConnectError("refused"), httpx.Response(200, text="ok")))
    SlackWebhookNotifier(SLACK_URL, transport=transport).send("#crisis-room", MSG)
    assert len(seen) == 2


@pytest.mark.parametrize(("response", "error"), [
    (httpx.Response(404, text="channel_not_found"), RejectedRequest),
    (httpx.Response(400, text="invalid_payload"), RejectedRequest),
    (httpx.Response(403, text="invalid_token"), AuthError),
    (httpx.Response(429, headers={"Retry-After": "30"}, text="rate_limited"), RateLimited),
    (httpx.Response(200, text="<html>proxy login</html>"), RejectedRequest),  # 2xx but not "ok"
])
def test_slack_failures_are_typed_and_scrubbed(response: httpx.Response, error: type[Exception]) -> None:
    transport, seen = mock(replies(response))
    with pytest.raises(error) as exc:
        SlackWebhookNotifier(SLACK_URL, transport=transport).send("#crisis-room", MSG)
    assert SLACK_SECRET not in str(exc.value)
    assert len(seen) == 1


def test_slack_bad_url_is_config_error_without_quoting_it() -> None:
    with pytest.raises(ConfigError) as exc:
        SlackWebhookNotifier("hooks.slack.example/services/" + SLACK_SECRET)
    assert SLACK_SECRET not in str(exc.value)


def test_slack_real_loopback_receiver_and_no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)  # includes httpx's own "HTTP Request: POST <url>" lines
    with Receiver() as rx, capture_logs() as events:
        notifier = SlackWebhookNotifier(f"{rx.url}/services/{SLACK_SECRET}")
        notifier.send("@ana", MSG)
        notifier.close()
    [(path, headers, body)] = rx.requests
    assert path == f"/services/{SLACK_SECRET}"
    assert body["channel"] == "@ana" and headers["Idempotency-Key"] == MSG.idempotency_key
    assert any("delivered" in e["event"] and e["target"] == "@ana" for e in events)
    assert "HTTP Request: POST" in caplog.text  # the scrubber rewrites, it does not swallow
    logged = repr(events) + ours(caplog)
    assert SLACK_SECRET not in logged
    assert "424242" not in logged
