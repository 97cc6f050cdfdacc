"""Records every HTTP exchange the sandbox serves, for contract checks across a whole test run.

The sandbox's own request log (`SandboxState.requests`) keeps what a drill report needs:
method, path, query, body, status. A contract check needs more: the request headers
(LinkedIn's versioning headers, the caller's User-Agent) and the response body (checked
against the OpenAPI response schema). `ExchangeRecorder` is a pure ASGI middleware that tees
both without changing anything the app sees or sends.

Recording is off unless a sink is active (`start()`; tests/contract.py does it for a pytest
session), so a drill or `firebreak sandbox` pays one attribute check per request and keeps
nothing.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl

if TYPE_CHECKING:
    from fastapi import FastAPI
    from firebreak.sandbox.state import SandboxState

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

PLATFORMS = ("x", "facebook", "instagram", "linkedin", "mastodon", "bluesky")
MAX_BODY = 2_000_000  # bigger bodies are not kept (none of the sandbox's answers come close)
# Headers never kept: the contract checks that they are present, not what they say.
_SECRET_HEADERS = frozenset({"authorization", "cookie", "proxy-authorization"})


@dataclass
class Exchange:
    platform: str
    method: str
    path: str  # as sent, without the /{platform} prefix, still percent-encoded
    query: list[tuple[str, str]]
    headers: dict[str, str]  # lower-case names; credentials replaced by "<present>"
    body: Any  # parsed JSON, a form/plain string, or None
    status: int = 0
    response_type: str = ""
    response_raw: bytes = b""
    state: SandboxState | None = None
    test: str = ""  # which test made it (set by the contract plugin)

    @property
    def user_agent(self) -> str:
        return self.headers.get("user-agent", "")

    def response_json(self) -> Any:
        if "json" not in self.response_type or not self.response_raw:
            return None
        try:
            return json.loads(self.response_raw)
        except ValueError:
            return None


@dataclass
class Sink:
    exchanges: list[Exchange] = field(default_factory=list)
    current_test: str = ""
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, ex: Exchange) -> None:
        with self.lock:
            ex.test = self.current_test
            self.exchanges.append(ex)

    def take(self) -> list[Exchange]:
        with self.lock:
            out, self.exchanges = self.exchanges, []
        return out


_sink: Sink | None = None


def start() -> Sink:
    global _sink
    _sink = Sink()
    return _sink


def stop() -> None:
    global _sink
    _sink = None


def active() -> Sink | None:
    return _sink


def _parse_body(raw: bytes, ctype: str) -> Any:
    if not raw:
        return None
    if "json" in ctype:
        try:
            return json.loads(raw)
        except ValueError:
            return raw.decode("utf-8", "replace")
    return raw.decode("utf-8", "replace")


class ExchangeRecorder:
    """ASGI middleware: `app.add_middleware(ExchangeRecorder, state=state)`."""

    def __init__(self, app: Callable[[Scope, Receive, Send], Awaitable[None]], state: SandboxState | None = None):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        sink = _sink
        if sink is None or scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope.get("raw_path", b"").decode("latin-1") or scope.get("path", "")
        path = path.split("?", 1)[0]
        first, _, rest = path.lstrip("/").partition("/")
        if first not in PLATFORMS:
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", [])}
        for name in _SECRET_HEADERS & headers.keys():
            headers[name] = "<present>"
        req_chunks: list[bytes] = []
        resp_chunks: list[bytes] = []
        ex = Exchange(first, scope["method"], "/" + rest,
                      parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True),
                      headers, None, state=self.state)

        complete = {"request": scope["method"] in ("GET", "HEAD", "DELETE", "OPTIONS")}

        async def tee_receive() -> Message:
            msg = await receive()
            if msg.get("type") == "http.request":
                req_chunks.append(msg.get("body", b""))
                if not msg.get("more_body", False):
                    complete["request"] = True
            return msg

        async def tee_send(msg: Message) -> None:
            if msg.get("type") == "http.response.start":
                ex.status = int(msg["status"])
                for k, v in msg.get("headers", []):
                    if k.lower() == b"content-type":
                        ex.response_type = v.decode("latin-1")
            elif msg.get("type") == "http.response.body" and sum(map(len, resp_chunks)) < MAX_BODY:
                resp_chunks.append(msg.get("body", b""))
            await send(msg)

        try:
            await self.app(scope, tee_receive, tee_send)
        finally:
            # Recorded even when the app failed mid-answer (a fault-injected reset): the
            # request was made and must fit the spec all the same.
            ex.body = _parse_body(b"".join(req_chunks), headers.get("content-type", ""))
            ex.response_raw = b"".join(resp_chunks)
            expected = int(headers.get("content-length", "0") or 0)
            # A client that died mid-send (the crash tests kill processes) leaves a fragment of
            # a request, not a request the connector made: it is not judged.
            if complete["request"] or sum(map(len, req_chunks)) >= expected:
                sink.add(ex)


def install(app: FastAPI, state: SandboxState) -> None:
    """Add the recorder to a sandbox app once (idempotent)."""
    if getattr(app.state, "exchange_recorder", False):
        return
    app.state.exchange_recorder = True
    app.add_middleware(ExchangeRecorder, state=state)
