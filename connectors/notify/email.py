"""Email over SMTP (smtplib), one connection per message: pages are rare, and a fresh
connection cannot be a half-dead one left over from an hour ago. SMTP replies map onto the
connector errors (4xx: TransientError, 5xx: RejectedRequest, never connected: NotSent), and
`message_id_for` gives a resend of the same page the same Message-ID so mail clients and
dedupe rules collapse it.
"""

from __future__ import annotations

import hashlib
import ipaddress
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import ClassVar, NoReturn

from firebreak.config.settings import SmtpSettings
from firebreak.connectors.notify.base import Delivery, Message, Notifier, log
from firebreak.errors import AuthError, ConnectorError, NotSent, RejectedRequest, TransientError


def message_id_for(idempotency_key: str, sender: str) -> str:
    """Deterministic Message-ID: a resend of the same page carries the same id, so mail
    clients and dedupe rules collapse it. Hashed so the key's content is not exposed."""
    digest = hashlib.sha256(idempotency_key.encode()).hexdigest()[:32]
    domain = sender.rsplit("@", 1)[-1].strip("<> ") or "firebreak.invalid"
    return f"<{digest}@{domain}>"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class EmailNotifier(Notifier):
    """SMTP via smtplib; one connection per message (pages are rare, and a fresh connection
    cannot be a half-dead one left over from an hour ago)."""

    channel: ClassVar[str] = "email"

    def __init__(self, smtp: SmtpSettings):
        self.smtp = smtp
        if smtp.username and not smtp.starttls and not _is_loopback(smtp.host):
            log.warning(f"SMTP login to {smtp.host}:{smtp.port} without TLS: the password crosses the network in the clear")

    def build(self, target: str, message: Message) -> EmailMessage:
        if "@" not in target or any(c in target for c in "\r\n,;"):
            raise RejectedRequest(self.channel, f"not a single email address: {target!r}")
        msg = EmailMessage()
        msg["From"] = self.smtp.sender
        msg["To"] = target
        # Subjects are built from incident titles, which quote social posts: fold newlines
        # rather than fail (or, worse, inject headers).
        msg["Subject"] = " ".join(message.subject.split())
        msg["Date"] = formatdate(localtime=False, usegmt=True)
        msg["Message-ID"] = message_id_for(message.idempotency_key, self.smtp.sender)
        msg["X-Firebreak-Idempotency-Key"] = " ".join(message.idempotency_key.split())
        msg.set_content(message.body)
        return msg

    def send(self, target: str, message: Message) -> Delivery:
        msg = self.build(target, message)
        try:
            self._transmit(msg)
        except ConnectorError as exc:
            log.warning(f"{self.channel} notification not delivered", channel=self.channel, target=target,
                        idempotency_key=message.idempotency_key, error=exc.__class__.__name__, status=exc.status)
            raise
        return self._delivered(target, message, str(msg["Message-ID"]))

    def _transmit(self, msg: EmailMessage) -> None:
        cfg = self.smtp
        try:
            conn = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout_s)
        except smtplib.SMTPConnectError as exc:  # the server greeted with a refusal
            _raise_smtp(exc.smtp_code, "greeting refused", exc)
        except (smtplib.SMTPServerDisconnected, OSError) as exc:  # refused, unresolvable, no greeting
            # Nothing of the message was transmitted: safe to resend.
            raise NotSent(self.channel, f"cannot connect to {cfg.host}:{cfg.port} ({exc.__class__.__name__})") from exc
        try:
            if cfg.starttls:
                conn.starttls(context=ssl.create_default_context())
            if cfg.username:
                conn.login(cfg.username, cfg.password.get_secret_value())
            conn.send_message(msg)
            _hang_up(conn)
        except smtplib.SMTPAuthenticationError as exc:
            # smtp_error may echo the challenge; never the password, but keep it short anyway.
            raise AuthError(self.channel, f"login refused ({exc.smtp_code})", status=exc.smtp_code) from exc
        except smtplib.SMTPRecipientsRefused as exc:
            code, reply = next(iter(exc.recipients.values()), (0, b""))
            _raise_smtp(code, f"recipient refused: {_reply(reply)}", exc)
        except smtplib.SMTPResponseException as exc:  # sender refused, data refused, helo…
            _raise_smtp(exc.smtp_code, _reply(exc.smtp_error), exc)
        except smtplib.SMTPNotSupportedError as exc:  # e.g. STARTTLS/AUTH not offered: config issue
            raise RejectedRequest(self.channel, f"server does not support it: {exc}") from exc
        except ssl.SSLError as exc:
            raise TransientError(self.channel, f"TLS failed ({exc.__class__.__name__})") from exc
        except (smtplib.SMTPException, OSError) as exc:  # disconnects, timeouts mid-session
            raise TransientError(self.channel, f"connection failed ({exc.__class__.__name__})") from exc
        finally:
            conn.close()  # after a failure: no polite QUIT that could wait out another timeout


def _hang_up(conn: smtplib.SMTP) -> None:
    # Once the server has accepted the message a failed QUIT must not turn a delivery into
    # an error (the caller would resend a page that arrived), so it is only closed.
    try:
        conn.quit()
    except (smtplib.SMTPException, OSError):
        conn.close()


def _reply(raw: bytes | str) -> str:
    text = raw.decode(errors="replace") if isinstance(raw, bytes) else raw
    return " ".join(text.split())[:200]


def _raise_smtp(code: int, detail: str, exc: BaseException) -> NoReturn:
    # 4xx: try later (greylisting, mailbox full, server busy); 5xx: this will never go through.
    if 400 <= code < 500:
        raise TransientError("email", f"{code} {detail}", status=code) from exc
    if code >= 500:
        raise RejectedRequest("email", f"{code} {detail}", status=code) from exc
    raise TransientError("email", f"unexpected reply {code} {detail}", status=code or None) from exc
