"""The notifier capability every channel implements, and what the channels share.

`Message` is what to say, `Delivery` the receipt and `Notifier` the base class: one `send`
per target that returns a Delivery or raises a ConnectorError subclass, so the escalation
engine can tell "retry later" from "this will never work" without knowing the vendor. The
helpers here are the HTTP plumbing of the webhook-style channels: an ApiClient bound to a
URL's origin, the secret part of a webhook URL (registered with the log scrubber, removed
from error messages) and the text a chat receiver renders.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import ClassVar, NoReturn, Self
from urllib.parse import urlsplit

import httpx

from firebreak.config.logging import REDACTED, get_logger, register_secret
from firebreak.connectors.http import ApiClient
from firebreak.errors import ConnectorError

log = get_logger("firebreak.connectors.notify")


# -- values -----------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class Message:
    subject: str
    body: str  # plain text / markdown
    # Stable per (incident, level, round, person, channel): receivers that dedupe use it.
    idempotency_key: str


@dataclass(frozen=True, slots=True)
class Delivery:
    channel: str
    target: str
    delivered_at: datetime
    remote_id: str = ""


class Notifier(ABC):
    channel: ClassVar[str]

    @abstractmethod
    def send(self, target: str, message: Message) -> Delivery:
        """Deliver `message` to `target`; raises a ConnectorError subclass on failure."""

    def close(self) -> None:  # noqa: B027 - optional hook, most adapters hold nothing
        """Release connections. Safe to call twice."""

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _delivered(self, target: str, message: Message, remote_id: str = "", *, log_target: str | None = None) -> Delivery:
        log.info(f"{self.channel} notification delivered", channel=self.channel, target=log_target or target,
                 idempotency_key=message.idempotency_key, remote_id=remote_id)
        return Delivery(self.channel, target, datetime.now(UTC), remote_id)


# -- webhook URLs: the URL is the credential ----------------------------------------------------
def _secret_part(url: str) -> str:
    """The part of a webhook URL that grants access: path and query (the host is public)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _register_secret(url: str) -> None:
    """Have the log scrubber rewrite the webhook URL's secret part wherever a client logs it."""
    register_secret(_secret_part(url))  # too short to be a credential: ignored there


def _reraise_scrubbed(exc: ConnectorError, url: str) -> NoReturn:
    """ApiClient errors quote the request path; remove the secret and keep the error's type."""
    secret = _secret_part(url)
    if len(secret) >= 8:
        exc.args = tuple(a.replace(secret.lstrip("/"), REDACTED) if isinstance(a, str) else a for a in exc.args)
    raise exc


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rsplit('@', 1)[-1]}"  # userinfo would be a secret too


def _is_http_url(url: str) -> bool:
    # Callers never quote a bad URL in their error: it may be a credential with a typo in it.
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _text(message: Message) -> str:
    return f"*{message.subject}*\n{message.body}" if message.subject else message.body


def _client(channel: str, url: str, transport: httpx.BaseTransport | None, timeout_s: float) -> tuple[ApiClient, str]:
    """An ApiClient bound to the URL's origin and the relative path (with query) to post to."""
    client = ApiClient(
        channel, _origin(url), timeout_s=timeout_s, transport=transport,
        default_headers={"User-Agent": "firebreak/0.1"},
    )
    return client, _relative(url)


def _relative(url: str) -> str:
    return _secret_part(url).lstrip("/")


def _remote_id(resp: httpx.Response) -> str:
    """The receiver's id for what it accepted, when its JSON reply names one."""
    try:
        body = resp.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("id", "dedup_key", "message_id"):
            if isinstance(body.get(key), (str, int)):
                return str(body[key])
    return ""
