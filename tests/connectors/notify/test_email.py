"""Email notifier against a real SMTP server on loopback (aiosmtpd)."""

from __future__ import annotations

import logging
import socket

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from firebreak.config.settings import SmtpSettings
from firebreak.connectors.notify.base import Message
from firebreak.connectors.notify.email import EmailNotifier, message_id_for
from firebreak.drill.mailbox import Mailbox
from firebreak.errors import AuthError, NotSent, RejectedRequest, TransientError
from tests.connectors.notify.helpers import MSG, SMTP_PASSWORD, closed_port, ours, smtp_for


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
    assert any("delivered" in e["event"] and e["channel"] == "email" for e in events)
    assert SMTP_PASSWORD not in logged
    assert "424242" not in logged  # message bodies (approval codes) are never logged
