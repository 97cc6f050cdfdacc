"""Notifiers against real loopback servers (aiosmtpd, http.server) and httpx.MockTransport."""

from __future__ import annotations

import json
import logging
import socket
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from firebreak.config.settings import Settings, SmtpSettings
from firebreak.drill.mailbox import Mailbox
from firebreak.connectors.notify import (
    EmailNotifier,
    Message,
    SlackWebhookNotifier,
    WebhookNotifier,
    build_notifiers,
    message_id_for,
)
from firebreak.errors import (
    AuthError,
    ConfigError,
    NotSent,
    RateLimited,
    RejectedRequest,
    TransientError,
)

SLACK_SECRET = "T0001/B0002/s3cr3tW3bh00kT0k3n"
SLACK_URL = f"https://hooks.slack.example/services/{SLACK_SECRET}"
SMTP_PASSWORD = "hunter2-smtp-pa55word"
MSG = Message(subject="SEV2 incident: outage", body="Approve with code 424242", idempotency_key="inc-1:L1:R0:ana:slack")


# -- helpers ------------------------------------------------------------------------------------
Handler = Callable[[httpx.Request], httpx.Response]


def mock(handler: Handler) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def wrapped(req: httpx.Request) -> httpx.Response:
        seen.append(req)
        return handler(req)

    return httpx.MockTransport(wrapped), seen


def replies(*items: httpx.Response | Exception) -> Handler:
    queue = list(items)

    def handler(req: httpx.Request) -> httpx.Response:
        item = queue.pop(0)
        if isinstance(item, Exception):
            raise item
        return item

    return handler


def ours(caplog: pytest.LogCaptureFixture) -> str:
    """Captured stdlib log text, minus the test SMTP server's own (it echoes DATA lines)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name != "mail.log")


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Receiver:
    """A real HTTP server on loopback that records posts and answers `reply`."""

    def __init__(self, reply: bytes = b"ok", content_type: str = "text/plain"):
        self.requests: list[tuple[str, dict[str, str], Any]] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.path, dict(self.headers), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


def smtp_for(box: Mailbox, **kw: Any) -> SmtpSettings:
    return SmtpSettings(host=box.host, port=box.port, sender="Firebreak <firebreak@acme.example>", timeout_s=5, **kw)


# -- email --------------------------------------------------------------------------------------
def test_email_delivered_to_real_smtp_server(mailbox: Mailbox) -> None:
    notifier = EmailNotifier(smtp_for(mailbox))
    msg = Message(subject="Sign-off needed:\nzażółć \"gęślą\"", body="Kod: 424242\nPrzejdź do panelu.", idempotency_key="k-1")
    delivery = notifier.send("ana@acme.example", msg)

    [mail] = mailbox.wait_for(1)
    assert mail.rcpt_tos == ("ana@acme.example",)
    assert mail.mail_from == "firebreak@acme.example"
    assert mail.subject == 'Sign-off needed: zażółć "gęślą"'  # newline folded, UTF-8 survives
    assert mail.body.strip() == "Kod: 424242\nPrzejdź do panelu."
    assert mail.message_id == message_id_for("k-1", "firebreak@acme.example") == delivery.remote_id
    assert mail.message_id.endswith("@acme.example>")
    assert delivery.channel == "email" and delivery.target == "ana@acme.example"
    assert delivery.delivered_at.tzinfo is not None


def test_email_resend_keeps_message_id(mailbox: Mailbox) -> None:
    notifier = EmailNotifier(smtp_for(mailbox))
    notifier.send("ana@acme.example", MSG)
    notifier.send("ana@acme.example", MSG)
    notifier.send("ana@acme.example", Message("s", "b", "other-key"))
    ids = [m.message_id for m in mailbox.wait_for(3)]
    assert ids[0] == ids[1] != ids[2]


@pytest.mark.parametrize(("reply", "error"), [
    ("550 5.1.1 no such user", RejectedRequest),
    ("451 4.7.1 greylisted, try later", TransientError),
])
def test_email_recipient_refusal_is_typed(reply: str, error: type[Exception]) -> None:
    with Mailbox(refuse={"gone@acme.example": reply}) as box:
        with pytest.raises(error) as exc:
            EmailNotifier(smtp_for(box)).send("gone@acme.example", MSG)
        assert exc.value.status == int(reply[:3])  # type: ignore[attr-defined]
        assert not isinstance(exc.value, RejectedRequest) or not exc.value.retryable  # type: ignore[attr-defined]
        assert box.messages == []


def test_email_connection_refused_is_not_sent() -> None:
    notifier = EmailNotifier(SmtpSettings(host="127.0.0.1", port=closed_port(), timeout_s=2))
    with pytest.raises(NotSent):
        notifier.send("ana@acme.example", MSG)


def test_email_silent_server_times_out_as_transient() -> None:
    with socket.socket() as srv:  # accepts, never greets
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        notifier = EmailNotifier(SmtpSettings(host="127.0.0.1", port=srv.getsockname()[1], timeout_s=0.3))
        with pytest.raises(TransientError):
            notifier.send("ana@acme.example", MSG)


def test_email_rejects_header_injection_in_target(mailbox: Mailbox) -> None:
    notifier = EmailNotifier(smtp_for(mailbox))
    for bad in ("ana@acme.example\r\nBcc: evil@x.example", "a@x.example, b@x.example", "nobody"):
        with pytest.raises(RejectedRequest):
            notifier.send(bad, MSG)
    assert mailbox.messages == []


def test_email_auth_and_no_password_in_logs(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with Mailbox(credentials=("firebreak", SMTP_PASSWORD)) as box, capture_logs() as events:
        EmailNotifier(smtp_for(box, username="firebreak", password=SecretStr(SMTP_PASSWORD))).send("ana@acme.example", MSG)
        assert len(box.wait_for(1)) == 1
        with pytest.raises(AuthError) as exc:
            EmailNotifier(smtp_for(box, username="firebreak", password=SecretStr("wrong"))).send("ana@acme.example", MSG)
        assert exc.value.status == 535
    logged = repr(events) + ours(caplog) + str(exc.value)
    assert any(e["event"] == "notification_sent" and e["channel"] == "email" for e in events)
    assert SMTP_PASSWORD not in logged
    assert "424242" not in logged  # message bodies (approval codes) are never logged


# -- Slack --------------------------------------------------------------------------------------
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
    assert any(e["event"] == "notification_sent" and e["target"] == "@ana" for e in events)
    assert "HTTP Request: POST" in caplog.text  # the scrubber rewrites, it does not swallow
    logged = repr(events) + ours(caplog)
    assert SLACK_SECRET not in logged
    assert "424242" not in logged


# -- generic webhook ----------------------------------------------------------------------------
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
    assert any(e["event"] == "notification_failed" and e["target"] == "https://relay.example" for e in events)


def test_webhook_connect_error_retried_and_key_stable() -> None:
    transport, seen = mock(replies(httpx.ConnectError("refused"), httpx.Response(202)))
    WebhookNotifier(transport=transport).send("https://relay.example/hook/abcdefgh", MSG)
    assert len(seen) == 2
    assert seen[0].headers["Idempotency-Key"] == seen[1].headers["Idempotency-Key"] == MSG.idempotency_key


def test_webhook_rejects_non_http_target() -> None:
    with pytest.raises(RejectedRequest):
        WebhookNotifier().send("mailto:ana@acme.example", MSG)


# -- wiring -------------------------------------------------------------------------------------
def test_build_notifiers_only_configured_channels() -> None:
    bare = build_notifiers(Settings(_env_file=None))  # type: ignore[call-arg]
    assert sorted(bare) == ["email", "webhook"]
    assert isinstance(bare["email"], EmailNotifier) and bare["email"].smtp.port == 25

    transport, seen = mock(replies(httpx.Response(200, text="ok")))
    full = build_notifiers(Settings(_env_file=None, slack_webhook_url=SecretStr(SLACK_URL)), transport=transport)  # type: ignore[call-arg]
    assert sorted(full) == ["email", "slack", "webhook"]
    full["slack"].send("#crisis-room", MSG)
    assert len(seen) == 1  # the transport seam reaches the adapters
    for n in (*bare.values(), *full.values()):
        n.close()


# -- Apprise adapters: Teams, SMS (Twilio), PagerDuty, Opsgenie ---------------------------------
class RawReceiver:
    """Loopback HTTP receiver for the Apprise adapters: records (host the client meant, path,
    headers, raw body) and answers `status` with `reply`."""

    def __init__(self, status: int = 200, reply: bytes = b"{}") -> None:
        self.requests: list[tuple[str, str, dict[str, str], bytes]] = []
        self.status, self.reply = status, reply
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.requests.append((self.headers.get("X-Original-Host", ""), self.path, dict(self.headers), body))
                self.send_response(outer.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(outer.reply)))
                self.end_headers()
                self.wfile.write(outer.reply)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.base = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[RawReceiver]:
    """Apprise's plugins post to fixed vendor hosts (https://api.twilio.com, events.pagerduty.com,
    api.opsgenie.com, the Workflows host) with `requests.post`. The seam: every such post is
    sent for real, over HTTP, to this loopback receiver, with the vendor host kept in a header."""
    import requests

    rx = RawReceiver()
    real_post = requests.Session.post

    def to_loopback(url: str, *args: Any, **kwargs: Any) -> Any:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        headers = dict(kwargs.pop("headers", None) or {})
        headers["X-Original-Host"] = parts.netloc
        kwargs.pop("verify", None)
        local = rx.base + parts.path + (f"?{parts.query}" if parts.query else "")
        with requests.Session() as s:
            return real_post(s, local, *args, headers=headers, **kwargs)

    monkeypatch.setattr(requests, "post", to_loopback)
    yield rx
    rx.close()


TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "SENTINEL" + "f" * 24
PD_ROUTING = "SENTINELroutingkey0123456789abcd"
PD_API = "SENTINELpdapikey0123"
OPSGENIE_KEY = "SENTINEL-0psg-3n1e-key0-123456789abc"
TEAMS_URL = ("https://prod-42.westeurope.logic.azure.com:443/workflows/0123456789abcdef0123456789abcdef"
             "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
             "&sig=SENTINELsigSENTINELsigSENTINELsig12345678")


def test_twilio_sms_through_apprise(receiver: RawReceiver, caplog: pytest.LogCaptureFixture) -> None:
    from urllib.parse import parse_qs

    from firebreak.connectors.notify import TwilioSmsNotifier

    caplog.set_level(logging.DEBUG)
    sms = TwilioSmsNotifier(TWILIO_SID, TWILIO_TOKEN, "+1 555 000 1111")
    with capture_logs() as events:
        delivery = sms.send("+46 70 123 45 67", MSG)
    [(host, path, headers, body)] = receiver.requests
    assert host == "api.twilio.com" and path == f"/2010-04-01/Accounts/{TWILIO_SID}/Messages.json"
    form = parse_qs(body.decode())
    assert form["To"] == ["+46701234567"] and form["From"] == ["+15550001111"]
    assert "424242" in form["Body"][0] and "SEV2 incident" in form["Body"][0]
    assert headers["Authorization"].startswith("Basic ")
    assert delivery.channel == "sms"
    logged = str(events) + ours(caplog)
    assert "SENTINEL" not in logged and "46701234567" not in logged  # no token, no full phone number
    with pytest.raises(RejectedRequest):
        sms.send("ana@acme.example", MSG)


def test_pagerduty_trigger_through_apprise(receiver: RawReceiver, caplog: pytest.LogCaptureFixture) -> None:
    from firebreak.connectors.notify import PagerDutyNotifier

    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        PagerDutyNotifier(PD_ROUTING, PD_API).send("comms-lead", MSG)
    [(host, path, headers, body)] = receiver.requests
    assert host == "events.pagerduty.com" and path == "/v2/enqueue"
    event = json.loads(body)
    assert event["routing_key"] == PD_ROUTING and event["event_action"] == "trigger"
    assert "SEV2 incident" in event["payload"]["summary"] and event["payload"]["component"] == "comms-lead"
    assert "SENTINEL" not in str(events) + ours(caplog)


def test_opsgenie_alert_through_apprise(receiver: RawReceiver, caplog: pytest.LogCaptureFixture) -> None:
    from firebreak.connectors.notify import OpsgenieNotifier

    caplog.set_level(logging.DEBUG)
    receiver.status, receiver.reply = 202, b'{"result": "Request will be processed", "requestId": "r-1"}'
    with capture_logs() as events:
        OpsgenieNotifier(OPSGENIE_KEY).send("ana@acme.example", MSG)
    [(host, path, headers, body)] = receiver.requests
    assert host == "api.opsgenie.com" and path == "/v2/alerts"
    alert = json.loads(body)
    assert headers["Authorization"] == f"GenieKey {OPSGENIE_KEY}"
    assert "SEV2 incident" in alert["message"] and "424242" in alert["description"]
    assert {"username": "ana@acme.example", "type": "user"} in alert.get("responders", [])
    assert "SENTINEL" not in str(events) + ours(caplog)


def test_teams_workflow_through_apprise(receiver: RawReceiver, caplog: pytest.LogCaptureFixture) -> None:
    from firebreak.connectors.notify import TeamsNotifier

    caplog.set_level(logging.DEBUG)
    with capture_logs() as events:
        TeamsNotifier(TEAMS_URL).send("Ana (comms lead)", MSG)
    [(host, path, headers, body)] = receiver.requests
    assert host.startswith("prod-42.westeurope.logic.azure.com")
    assert path.startswith("/workflows/0123456789abcdef0123456789abcdef/triggers/manual/paths/invoke?")
    card = json.dumps(json.loads(body))
    assert "SEV2 incident" in card and "Ana (comms lead)" in card and "424242" in card
    assert "SENTINEL" not in str(events) + ours(caplog)


def test_apprise_failure_is_transient_and_quotes_no_secret(receiver: RawReceiver) -> None:
    from firebreak.connectors.notify import PagerDutyNotifier

    receiver.status = 503
    with capture_logs() as events, pytest.raises(TransientError) as err:
        PagerDutyNotifier(PD_ROUTING, PD_API).send("comms-lead", MSG)
    assert "SENTINEL" not in str(err.value) + str(events)
    assert any(e["event"] == "notification_failed" for e in events)


def test_apprise_channels_built_from_settings_only_when_configured() -> None:
    from firebreak.connectors.notify import OpsgenieNotifier, PagerDutyNotifier, TeamsNotifier, TwilioSmsNotifier

    class WithApprise(Settings):  # the Settings fields proposed for the lead
        teams_webhook_url: SecretStr = SecretStr("")
        twilio_account_sid: str = ""
        twilio_auth_token: SecretStr = SecretStr("")
        twilio_from_number: str = ""
        pagerduty_routing_key: SecretStr = SecretStr("")
        pagerduty_api_key: SecretStr = SecretStr("")
        opsgenie_api_key: SecretStr = SecretStr("")

    assert set(build_notifiers(WithApprise())) == {"email", "webhook"}
    full = WithApprise(teams_webhook_url=SecretStr(TEAMS_URL), twilio_account_sid=TWILIO_SID,
                       twilio_auth_token=SecretStr(TWILIO_TOKEN), twilio_from_number="+15550001111",
                       pagerduty_routing_key=SecretStr(PD_ROUTING), pagerduty_api_key=SecretStr(PD_API),
                       opsgenie_api_key=SecretStr(OPSGENIE_KEY))
    built = build_notifiers(full)
    assert isinstance(built["teams"], TeamsNotifier) and isinstance(built["sms"], TwilioSmsNotifier)
    assert isinstance(built["pagerduty"], PagerDutyNotifier) and isinstance(built["opsgenie"], OpsgenieNotifier)
    with pytest.raises(ConfigError) as err:
        TwilioSmsNotifier("not-a-sid", TWILIO_TOKEN, "+15550001111")
    assert "SENTINEL" not in str(err.value)
