"""The sandbox: one loopback HTTP app that emulates all six platforms' endpoints.

Each platform lives under its own prefix (/x, /facebook, /instagram, /linkedin, /mastodon,
/bluesky) so that a connector pointed at `{sandbox}/{platform}` sees the same paths as on
the real host. Paths and shapes follow ../shared/specs. `/_sandbox/*` is the drill's
control panel: state, clock, request log. `/hooks/slack` is a Slack-style webhook sink.
"""

from __future__ import annotations

import html
import importlib
import json
from datetime import datetime
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from firebreak.sandbox.faults import FaultMiddleware
from firebreak.sandbox.recorder import install as install_recorder
from firebreak.sandbox.state import SandboxState
from firebreak.domain import Platform

# platform -> module under firebreak.sandbox exposing `router(state) -> APIRouter`
PLATFORM_MODULES: dict[Platform, str] = {
    Platform.X: "x",
    Platform.FACEBOOK: "facebook",
    Platform.INSTAGRAM: "instagram",
    Platform.LINKEDIN: "linkedin",
    Platform.MASTODON: "mastodon",
    Platform.BLUESKY: "bluesky",
}


_PLATFORMS = frozenset(p.value for p in Platform)


def create_app(state: SandboxState) -> FastAPI:
    app = FastAPI(title="Firebreak sandbox platforms", docs_url=None, redoc_url=None)
    app.state.sandbox = state
    webhooks: list[dict[str, Any]] = []
    app.state.webhooks = webhooks

    @app.middleware("http")
    async def observe(request: Request, call_next):  # type: ignore[no-untyped-def]
        # Scheduled posts go live lazily: every observation first publishes what is due.
        state.tick()
        body: Any = None
        if request.method in ("POST", "PUT", "PATCH"):
            raw = await request.body()
            ctype = request.headers.get("content-type", "")
            if raw and "json" in ctype:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode("utf-8", "replace")
            elif raw:
                body = raw.decode("utf-8", "replace")
        first = request.url.path.strip("/").split("/", 1)[0]
        platform = first if first in _PLATFORMS else None
        if platform is None:
            return await call_next(request)
        state.request_started(platform)
        try:
            response = await call_next(request)
        finally:
            state.request_finished(platform)
        state.record_request(platform, request.method, request.url.path, request.url.query, body, response.status_code)
        return response

    for platform, module in PLATFORM_MODULES.items():
        try:
            mod = importlib.import_module(f"firebreak.sandbox.{module}")
        except ModuleNotFoundError as exc:
            if exc.name != f"firebreak.sandbox.{module}":
                raise
            continue  # platform not emulated yet
        app.include_router(mod.router(state), prefix=f"/{platform.value}")

    # Outermost of the app's own middleware (added last): a fault is injected before the
    # request is observed, and a write's answer is lost only after the write happened.
    app.add_middleware(FaultMiddleware, state=state)
    # Outermost, so the contract recorder (idle unless a test session switches it on) sees
    # what the connectors really sent, injected faults included.
    install_recorder(app, state)

    @app.get("/_sandbox/state")
    def sandbox_state() -> dict[str, Any]:
        return state.snapshot()

    @app.get("/_sandbox/concurrency")
    def sandbox_concurrency(reset: bool = False) -> dict[str, dict[str, int]]:
        """Requests in flight per platform now, and the peak since the last reset."""
        return state.concurrency(reset=reset)

    @app.get("/_sandbox/requests")
    def sandbox_requests(offset: int = 0) -> list[dict[str, Any]]:
        with state.lock:
            return state.requests[offset:]

    @app.post("/_sandbox/clock")
    async def sandbox_clock(request: Request) -> dict[str, str]:
        body = await request.json()
        clock = state.clock
        if "now" in body and hasattr(clock, "set"):
            clock.set(datetime.fromisoformat(body["now"]))
        if "advance_s" in body and hasattr(clock, "advance"):
            clock.advance(float(body["advance_s"]))
        state.tick()
        return {"now": state.now().isoformat()}

    @app.post("/hooks/slack")
    async def slack_hook(request: Request) -> PlainTextResponse:
        try:
            payload = await request.json()
        except ValueError:
            return PlainTextResponse("invalid_payload", status_code=400)
        if not isinstance(payload, dict) or not payload.get("text"):
            return PlainTextResponse("no_text", status_code=400)
        webhooks.append({"payload": payload, "idempotency_key": request.headers.get("idempotency-key", ""),
                         "at": state.now().isoformat()})
        return PlainTextResponse("ok")

    @app.get("/hooks/slack")
    def slack_messages() -> JSONResponse:
        return JSONResponse(webhooks)

    # Where a person reads what Firebreak sent while it runs on the sandbox: the Slack sink's
    # messages and, when one is attached (`app.state.mailbox`, as `firebreak up --sandbox`
    # does), the loopback mailbox. Newest first; JSON with ?format=json.
    app.state.mailbox = None

    @app.get("/_sandbox/inbox")
    def inbox(format: str = "html") -> Any:
        items = [{"channel": "slack", "to": "#slack", "at": w["at"], "subject": "",
                  "body": str(w["payload"].get("text", ""))} for w in webhooks]
        box = app.state.mailbox
        if box is not None:
            items += [{"channel": "email", "to": ", ".join(m.rcpt_tos), "at": m.received_at, "subject": m.subject,
                       "body": m.body} for m in box.messages]
        items.sort(key=lambda i: i["at"], reverse=True)
        if format == "json":
            return JSONResponse(items)
        rows = "".join(
            f"<article><header><b>{html.escape(i['channel'])}</b> to {html.escape(i['to'])} · "
            f"{html.escape(i['at'])}</header>" + (f"<h2>{html.escape(i['subject'])}</h2>" if i["subject"] else "")
            + f"<pre>{html.escape(i['body'])}</pre></article>" for i in items)
        return HTMLResponse(
            '<!doctype html><html lang="en"><head><meta charset="utf-8"><meta http-equiv="refresh" content="10">'
            "<title>Sandbox inbox</title><style>body{font-family:system-ui,sans-serif;max-width:48rem;margin:0 auto;"
            "padding:1rem}article{border-bottom:1px solid #ddd;padding:.5rem 0}h2{font-size:1rem;margin:.3rem 0}"
            "pre{white-space:pre-wrap;background:#f4f6f8;padding:.5rem}</style></head><body>"
            f"<h1>Sandbox inbox</h1><p>{len(items)} message(s) Firebreak sent: pages, codes, links, briefings. "
            "Refreshes every 10 s.</p>" + (rows or "<p>Nothing yet.</p>") + "</body></html>")

    return app
