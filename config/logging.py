"""structlog, configured once per process; context is bound per unit of work.

Records go through stdlib logging under the "firebreak" logger so that Prefect (with
PREFECT_LOGGING_EXTRA_LOGGERS=firebreak) shows them in the run logs. JSON when stderr is
not a terminal. A redaction processor masks anything that looks like a credential, as a
second line of defence behind SecretStr. Secrets that only the caller can recognise (a webhook
URL *is* the credential) are registered with `register_secret`; a filter installed once on the
loggers of the HTTP clients (httpx, Apprise, urllib3) rewrites any record quoting one into
`REDACTED` instead of dropping it, so request logs still exist. `scrub` applies the same rewrite
to any text.
"""

from __future__ import annotations

import logging
import re
import sys
import threading
from typing import Any

import structlog

_configured = False
_SECRET_KEYS = re.compile(r"(token|password|secret|authorization|api[_-]?key|signature|code)$", re.I)
_BEARER = re.compile(r"(Bearer\s+)[A-Za-z0-9._~+/=-]+")

REDACTED = "<redacted>"
# A bare "/" or a short path is not a credential, and scrubbing it would mangle every log line.
_MIN_SECRET_LEN = 8
# httpx (the connectors' client) and Apprise + urllib3 (the Apprise notifiers) log request URLs.
_SCRUBBED_LOGGERS = ("httpx", "apprise", "urllib3.connectionpool")


def _redact(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    for key, value in list(event.items()):
        if key != "event" and _SECRET_KEYS.search(key) and value not in (None, ""):
            event[key] = "**********"
        elif isinstance(value, str) and "Bearer" in value:
            event[key] = _BEARER.sub(r"\1**********", value)
    return event


# -- secret scrubbing ---------------------------------------------------------------------------
class _SecretScrubber(logging.Filter):
    """httpx logs every request URL at INFO; for webhooks the URL is the credential.

    Installed once on the HTTP clients' loggers; rewrites any record that contains a registered
    secret instead of dropping it, so request logs still exist.
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


# Installed once, at import (addFilter ignores a filter already present).
_scrubber = _SecretScrubber()
for _name in _SCRUBBED_LOGGERS:
    logging.getLogger(_name).addFilter(_scrubber)


def register_secret(secret: str) -> None:
    """Never let `secret` reach a log line of the HTTP clients: it is rewritten to REDACTED.

    Strings shorter than 8 characters are ignored: they are not credentials, and replacing them
    would mangle every log line.
    """
    if len(secret) >= _MIN_SECRET_LEN:
        _scrubber.add(secret)


def scrub(text: str) -> str:
    """`text` with every registered secret replaced by REDACTED (longest first)."""
    return _scrubber.scrub(text)


_META = {"event", "level", "logger", "timestamp", "_record", "_from_structlog"}


class _Event(dict):  # type: ignore[type-arg]
    """An event as our own handler renders it (JSON or console), and as a sentence for every
    other handler reading the record's message: Prefect's, which ships it to the run logs in
    the UI, shows "Paged level 1: maria, tomas (incident_id=1)", not a dict."""

    def __str__(self) -> str:
        ctx = ", ".join(f"{k}={v}" for k, v in self.items() if k not in _META)
        return f"{self.get('event', '')}" + (f" ({ctx})" if ctx else "")


def _sentence(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    return _Event(event)


def configure_logging(level: str = "INFO", fmt: str = "auto") -> None:
    global _configured
    if _configured:
        return
    _configured = True
    json_out = fmt == "json" or (fmt == "auto" and not sys.stderr.isatty())
    shared = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _redact,
    ]
    structlog.configure(
        processors=[*shared, _sentence, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    renderer = structlog.processors.JSONRenderer() if json_out else structlog.dev.ConsoleRenderer(colors=False)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, renderer],
            foreign_pre_chain=shared,
        )
    )
    handler.set_name("firebreak-stderr")
    root = logging.getLogger("firebreak")
    # Keep handlers Prefect attached (PREFECT_LOGGING_EXTRA_LOGGERS=firebreak ships records to
    # the run logs in the UI); replace only our own.
    root.handlers[:] = [h for h in root.handlers if h.get_name() != "firebreak-stderr"] + [handler]
    root.setLevel(level.upper())
    root.propagate = False


def get_logger(name: str = "firebreak", **context: Any) -> structlog.stdlib.BoundLogger:
    if not name.startswith("firebreak"):
        name = f"firebreak.{name}"
    # Stay a lazy proxy: binding here, at import time, would freeze structlog's default
    # configuration (print everything) into module-level loggers before configure_logging runs.
    logger = structlog.get_logger(name)
    return logger.bind(**context) if context else logger  # type: ignore[no-any-return]
