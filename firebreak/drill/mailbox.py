"""A tiny in-process SMTP mailbox (aiosmtpd) for drills and tests.

The drill points settings.smtp at it (host 127.0.0.1, port `mailbox.port`) so escalation
pages and approval codes land somewhere inspectable instead of in real inboxes.

    with Mailbox() as box:
        settings.smtp = SmtpSettings(host=box.host, port=box.port)
        ...
        box.wait_for(1)
        box.messages[0].subject
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, Self

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from firebreak.errors import TransientError


@dataclass(frozen=True, slots=True)
class ReceivedMail:
    mail_from: str
    rcpt_tos: tuple[str, ...]
    subject: str
    message_id: str
    body: str
    raw: bytes
    received_at: str = ""  # ISO 8601 UTC


class _Handler:
    def __init__(self, box: Mailbox):
        self.box = box

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str,
                          rcpt_options: list[str]) -> str:
        # Lets a drill rehearse a bouncing address ("550 5.1.1 no such user") or greylisting ("451 …").
        reply = self.box.refuse.get(address)
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or envelope.content
        assert isinstance(raw, bytes)  # decode_data=False (the default) keeps bytes
        msg = message_from_bytes(raw, policy=policy.default)
        assert isinstance(msg, EmailMessage)
        part = msg.get_body(preferencelist=("plain",))
        # SMTP lines end in CRLF; drills and tests compare against Python strings.
        body = part.get_content().replace("\r\n", "\n") if isinstance(part, EmailMessage) else ""
        self.box._add(ReceivedMail(
            mail_from=envelope.mail_from or "",
            rcpt_tos=tuple(envelope.rcpt_tos),
            subject=str(msg.get("Subject", "")),
            message_id=str(msg.get("Message-ID", "")),
            body=body,
            raw=raw,
            received_at=datetime.now(UTC).isoformat(timespec="seconds"),
        ))
        return "250 Message accepted for delivery"


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on right now (aiosmtpd's Controller cannot bind port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Mailbox:
    """SMTP server on loopback collecting messages in a thread-safe list.

    `credentials=(user, password)` makes it offer AUTH (LOGIN/PLAIN) without TLS, which is
    acceptable only because it listens on loopback; a wrong login gets 535. `refuse` maps a recipient to the SMTP
    reply it gets instead of acceptance.
    """

    def __init__(self, host: str = "127.0.0.1", *, credentials: tuple[str, str] | None = None,
                 refuse: Mapping[str, str] | None = None):
        self.host = host
        self.port = 0
        self.credentials = credentials
        self.refuse: dict[str, str] = dict(refuse or {})
        self._messages: list[ReceivedMail] = []
        self._cond = threading.Condition()
        self._controller: Controller | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self) -> Self:
        if self._controller is not None:
            return self
        kwargs: dict[str, Any] = {}
        if self.credentials is not None:
            # AUTH offered without TLS (fine on loopback); not *required*, which aiosmtpd warns
            # about on every connection. A client that has credentials logs in regardless.
            kwargs.update(authenticator=self._authenticate, auth_require_tls=False)
        last: BaseException | None = None
        # free_port() then bind is racy (another process may take the port in between): retry.
        for _ in range(5):
            port = free_port(self.host)
            controller = Controller(_Handler(self), hostname=self.host, port=port, **kwargs)
            try:
                controller.start()
            except (OSError, RuntimeError) as exc:
                last = exc
                continue
            self._controller, self.port = controller, port
            return self
        raise TransientError("email", f"mailbox could not bind on {self.host}: {last}")

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- contents ----------------------------------------------------------------------------
    @property
    def messages(self) -> list[ReceivedMail]:
        with self._cond:
            return list(self._messages)

    def to(self, address: str) -> list[ReceivedMail]:
        return [m for m in self.messages if address in m.rcpt_tos]

    def clear(self) -> None:
        with self._cond:
            self._messages.clear()

    def wait_for(self, count: int, timeout_s: float = 5.0) -> list[ReceivedMail]:
        """Block until at least `count` messages arrived; returns them (possibly fewer on timeout)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while len(self._messages) < count:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    break
                self._cond.wait(remaining)
            return list(self._messages)

    def _add(self, mail: ReceivedMail) -> None:
        with self._cond:
            self._messages.append(mail)
            self._cond.notify_all()

    def _authenticate(self, server: SMTP, session: Session, envelope: Envelope, mechanism: str,
                      auth_data: Any) -> AuthResult:
        ok = (self.credentials is not None and isinstance(auth_data, LoginPassword)
              and (auth_data.login.decode(), auth_data.password.decode()) == self.credentials)
        # handled=False: let aiosmtpd send the 235/535 reply itself.
        return AuthResult(success=ok, handled=False)


__all__ = ["Mailbox", "ReceivedMail", "free_port"]
