"""What the notifier tests share: the test message and secrets, an httpx.MockTransport
recorder, real loopback receivers (http.server) for the webhook and the Apprise adapters, and
helpers for the SMTP tests. Fixtures built on them live in this folder's conftest.py."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import httpx
import pytest

from firebreak.config.settings import SmtpSettings
from firebreak.connectors.notify import Message
from firebreak.drill.mailbox import Mailbox

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


def smtp_for(box: Mailbox, **kw: Any) -> SmtpSettings:
    return SmtpSettings(host=box.host, port=box.port, sender="Firebreak <firebreak@acme.example>", timeout_s=5, **kw)


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


TWILIO_SID = "AC" + "0123456789abcdef" * 2
TWILIO_TOKEN = "SENTINEL" + "f" * 24
PD_ROUTING = "SENTINELroutingkey0123456789abcd"
PD_API = "SENTINELpdapikey0123"
OPSGENIE_KEY = "SENTINEL-0psg-3n1e-key0-123456789abc"
TEAMS_URL = ("https://prod-42.westeurope.logic.azure.com:443/workflows/0123456789abcdef0123456789abcdef"
             "/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0"
             "&sig=SENTINELsigSENTINELsigSENTINELsig12345678")
