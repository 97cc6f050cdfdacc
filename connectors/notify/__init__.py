"""Notifiers: escalation pages, staff briefings and one-time approval codes.

One small base class for the capability, one adapter per vendor (Netflix Dispatch style).
Every adapter raises only ConnectorError subclasses, so the escalation engine can tell
"retry later" (TransientError / NotSent) from "this will never work" (RejectedRequest,
AuthError) without knowing the vendor.

Secrets: a webhook URL *is* the credential (anyone holding it can post), and message
bodies may carry one-time approval codes. Neither is ever logged or put in an error
message: logs name the channel, the target and the idempotency key only.
"""

from __future__ import annotations

import hashlib
import ipaddress
import logging
import smtplib
import ssl
import threading
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import formatdate
from collections.abc import Callable
from typing import Any, ClassVar, NoReturn, Self
from urllib.parse import urlsplit

import httpx
from pydantic import SecretStr

from firebreak.config.logging import get_logger
from firebreak.config.settings import Settings, SmtpSettings
from firebreak.connectors.http import ApiClient
from firebreak.errors import (
    AuthError,
    ConfigError,
    ConnectorError,
    NotSent,
    RejectedRequest,
    TransientError,
)

log = get_logger("firebreak.connectors.notify")

REDACTED = "<redacted>"


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
        log.info("notification_sent", channel=self.channel, target=log_target or target,
                 idempotency_key=message.idempotency_key, remote_id=remote_id)
        return Delivery(self.channel, target, datetime.now(UTC), remote_id)


# -- secret scrubbing ---------------------------------------------------------------------------
class _SecretScrubber(logging.Filter):
    """httpx logs every request URL at INFO; for webhooks the URL is the credential.

    Installed once on the "httpx" logger; rewrites any record that contains a registered
    secret (path+query of a webhook URL) instead of dropping it, so request logs still exist.
    """

    def __init__(self) -> None:
        super().__init__("")
        self._secrets: set[str] = set()
        self._lock = threading.Lock()

    def add(self, secret: str) -> None:
        with self._lock:
            self._secrets.add(secret)

    def scrub(self, text: str) -> str:
        with self._lock:
            secrets = sorted(self._secrets, key=len, reverse=True)  # longest first: no partial leftovers
        for s in secrets:
            text = text.replace(s, REDACTED)
        return text

    def filter(self, record: logging.LogRecord) -> bool:
        msg = record.getMessage()
        clean = self.scrub(msg)
        if clean != msg:
            record.msg, record.args = clean, None
        return True


_scrubber = _SecretScrubber()
# httpx (our client) and Apprise + urllib3 (the Apprise adapters) log request URLs.
for _name in ("httpx", "apprise", "urllib3.connectionpool"):
    logging.getLogger(_name).addFilter(_scrubber)


def _secret_part(url: str) -> str:
    """The part of a webhook URL that grants access: path and query (the host is public)."""
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def _register_secret(url: str) -> None:
    secret = _secret_part(url)
    # A bare "/" or a short path is not a credential, and scrubbing it would mangle every log line.
    if len(secret) >= 8:
        _scrubber.add(secret)


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


# -- Slack --------------------------------------------------------------------------------------
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
            log.warning("notification_failed", channel=self.channel, target=target,
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


# -- generic webhook ----------------------------------------------------------------------------
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
            log.warning("notification_failed", channel=self.channel, target=_origin(target),
                        idempotency_key=message.idempotency_key, error=exc.__class__.__name__, status=exc.status)
            _reraise_scrubbed(exc, target)
        return self._delivered(target, message, _remote_id(resp), log_target=_origin(target))

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for c in clients:
            c.close()


def _remote_id(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return ""
    if isinstance(body, dict):
        for key in ("id", "dedup_key", "message_id"):
            if isinstance(body.get(key), (str, int)):
                return str(body[key])
    return ""


# -- email --------------------------------------------------------------------------------------
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
            log.warning("smtp_auth_without_tls", host=smtp.host, port=smtp.port)

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
            log.warning("notification_failed", channel=self.channel, target=target,
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


# -- Apprise: Teams, SMS (Twilio), PagerDuty, Opsgenie -----------------------------------------
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
            _scrubber.add(part)
        ap = apprise.Apprise()
        if not ap.add(url):
            raise RejectedRequest(self.channel, f"target {self._log_target(target)!r} does not form a valid address")
        for server in ap:
            server.request_rate_per_sec = 0  # no sleeping inside the client (see the class doc)
        with _apprise_lock:  # Apprise's plugins share module state (throttle clocks, logging)
            ok = ap.notify(body=message.body, title=message.subject)
        if not ok:
            log.warning("notification_failed", channel=self.channel, target=self._log_target(target),
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


class TeamsNotifier(AppriseNotifier):
    """Microsoft Teams through a Workflows (Power Automate) webhook, Teams' supported way since
    Office 365 connectors were retired. The target is informational (the webhook decides the
    channel); it is put in front of the message so the right person sees it addressed."""

    channel: ClassVar[str] = "teams"
    setting: ClassVar[str] = "FIREBREAK_TEAMS_WEBHOOK_URL"

    def __init__(self, webhook_url: str):
        if not _is_http_url(webhook_url):
            raise ConfigError("the Teams webhook URL (FIREBREAK_TEAMS_WEBHOOK_URL) is not an http(s) URL")
        super().__init__(lambda _target: webhook_url)  # Apprise understands the native Workflows URL

    def send(self, target: str, message: Message) -> Delivery:
        addressed = Message(message.subject, f"{target}: {message.body}" if target else message.body,
                            message.idempotency_key)
        return super().send(target, addressed)

    def _log_target(self, target: str) -> str:
        return target or "teams"


class TwilioSmsNotifier(AppriseNotifier):
    """SMS through Twilio; the target is the person's phone number (E.164)."""

    channel: ClassVar[str] = "sms"
    setting: ClassVar[str] = "FIREBREAK_TWILIO_ACCOUNT_SID / _AUTH_TOKEN / _FROM_NUMBER"

    def __init__(self, account_sid: str, auth_token: str, from_number: str):
        digits = "".join(ch for ch in from_number if ch.isdigit())
        super().__init__(lambda to: f"twilio://{account_sid}:{auth_token}@{digits}/{_phone(to) or digits}")

    def _target_url(self, target: str) -> str:
        if not _phone(target):
            raise RejectedRequest(self.channel, "target is not a phone number")
        return super()._target_url(target)

    def _log_target(self, target: str) -> str:
        digits = _phone(target)
        return f"+…{digits[-4:]}" if digits else "sms"  # a phone number is personal data: last digits only


def _phone(target: str) -> str:
    digits = "".join(ch for ch in target if ch.isdigit())
    return digits if 8 <= len(digits) <= 15 and not any(c.isalpha() for c in target) else ""


class PagerDutyNotifier(AppriseNotifier):
    """PagerDuty Events API v2 (trigger). The routing (integration) key picks the service; the
    target names the component so the incident says who was paged for what."""

    channel: ClassVar[str] = "pagerduty"
    setting: ClassVar[str] = "FIREBREAK_PAGERDUTY_ROUTING_KEY / _API_KEY"

    def __init__(self, routing_key: str, api_key: str, *, source: str = "firebreak"):
        super().__init__(lambda target: f"pagerduty://{routing_key}@{api_key}/{source}/{_slug(target) or 'escalation'}")


class OpsgenieNotifier(AppriseNotifier):
    """Opsgenie alerts API; the target is an Opsgenie user (email/username) or `#team`."""

    channel: ClassVar[str] = "opsgenie"
    setting: ClassVar[str] = "FIREBREAK_OPSGENIE_API_KEY"

    def __init__(self, api_key: str, *, region: str = "us"):
        super().__init__(lambda target: f"opsgenie://{api_key}/{_opsgenie_target(target)}?region={region}&action=new")


def _opsgenie_target(target: str) -> str:
    if not target:
        return ""
    return target if target.startswith(("#", "@", "*", "^")) else f"@{target}"


def _slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text).strip("-")[:64]


# -- wiring -------------------------------------------------------------------------------------
def _setting(settings: Settings, name: str) -> str:
    value = getattr(settings, name, None)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return str(value or "")


def build_notifiers(settings: Settings, *, transport: httpx.BaseTransport | None = None) -> dict[str, Notifier]:
    """Channel name -> notifier, for the channels this deployment can use.

    Email is always present (defaults to 127.0.0.1:25). The generic webhook needs no settings:
    each person's target is the URL. Slack, Teams, SMS, PagerDuty and Opsgenie only when their
    settings are configured; callers see a missing channel and fall back.
    """
    notifiers: dict[str, Notifier] = {
        EmailNotifier.channel: EmailNotifier(settings.smtp),
        WebhookNotifier.channel: WebhookNotifier(transport=transport),
    }
    slack_url = settings.slack_webhook_url.get_secret_value()
    if slack_url:
        notifiers[SlackWebhookNotifier.channel] = SlackWebhookNotifier(slack_url, transport=transport)
    # Apprise-backed channels, each present only when its settings are (fields proposed for
    # Settings; read with getattr so this works before and after they exist).
    teams = _setting(settings, "teams_webhook_url")
    if teams:
        notifiers[TeamsNotifier.channel] = TeamsNotifier(teams)
    sid, token, sender = (_setting(settings, f"twilio_{k}") for k in ("account_sid", "auth_token", "from_number"))
    if sid and token and sender:
        notifiers[TwilioSmsNotifier.channel] = TwilioSmsNotifier(sid, token, sender)
    routing, pd_key = _setting(settings, "pagerduty_routing_key"), _setting(settings, "pagerduty_api_key")
    if routing and pd_key:
        notifiers[PagerDutyNotifier.channel] = PagerDutyNotifier(routing, pd_key)
    opsgenie = _setting(settings, "opsgenie_api_key")
    if opsgenie:
        notifiers[OpsgenieNotifier.channel] = OpsgenieNotifier(opsgenie)
    log.info("notifiers_ready", channels=sorted(notifiers))
    return notifiers


__all__ = [
    "AppriseNotifier",
    "Delivery",
    "EmailNotifier",
    "Message",
    "Notifier",
    "OpsgenieNotifier",
    "PagerDutyNotifier",
    "SlackWebhookNotifier",
    "TeamsNotifier",
    "TwilioSmsNotifier",
    "WebhookNotifier",
    "build_notifiers",
    "message_id_for",
]
