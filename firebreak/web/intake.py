"""The alert intake: `POST /alerts` → authenticate → validate/map → STORE → event.

Monitoring tools (Brandwatch, Talkwalker, Meltwater, a Google Alerts forwarder, anything that
can POST JSON) start a response through this service. It lives at the flows layer because it
emits Prefect events; the pure parts (mapping, validation, auth, the store) are in
`tasks/intake.py`.

Two halves, so that the HTTP answer never waits for Prefect:

* the **request path** authenticates, maps and stores the alert (one group-committed row per
  (source, source id)) and answers 202 — or 200 `duplicate: true`, or a 4xx naming the problem
  with the body kept in `dead_letters`;
* the **dispatcher** (one background thread) picks up stored alerts whose `event_emitted_at` is
  empty, gives each an incident (the brand's open one, or a new one the alert opens), posts
  their events to the Prefect API in one batch (`POST /api/events`) and only then sets
  `event_emitted_at`. A crash or restart leaves those rows empty and they are sent on the next
  start: nothing is lost. Event ids are derived from the alert, so a resend is recognised by
  Prefect's trigger service and cannot start a second run.

An alert that opens an incident emits `firebreak.crisis.detected` with the incident id — the
same event the monitor emits — so the `respond` deployment's trigger starts the run. Every
alert also emits `firebreak.alert.received` (for automations and the event feed).

Run it alone with `python -m firebreak.web.intake [--host H] [--port P]`; `firebreak up`
runs it beside the Prefect server and the served deployments.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse
from firebreak.tasks.intake import (
    GENERIC,
    AlertWriter,
    GenericAlert,
    IntakeSecrets,
    alert_status,
    attach_alerts,
    authenticate,
    check_bearer,
    dead_letter,
    event_documents,
    intake_secrets,
    map_alert,
    mark_emitted,
    parse_body,
    pending_alert_ids,
    pending_count,
)
from firebreak.flows.runtime import Runtime, get_runtime
from pydantic import BaseModel
from sqlalchemy import text
from fastapi.concurrency import run_in_threadpool

from firebreak.errors import FirebreakError, InvalidAlert, StoreError

log = logging.getLogger("firebreak.intake")
_DISPATCH_LOCK = 727_275  # PostgreSQL advisory lock key: one dispatcher across intake replicas
DEFAULT_HOST, DEFAULT_PORT = "127.0.0.1", 8787


class AlertAccepted(BaseModel):
    alert_id: int
    duplicate: bool


class AlertProblem(BaseModel):
    error: str
    dead_letter_id: int | None = None


def prefect_api_url() -> str | None:
    from prefect.settings import PREFECT_API_URL

    return PREFECT_API_URL.value() or None


class Dispatcher:
    """Turns stored alerts into incidents and Prefect events, at least once, in batches."""

    def __init__(self, rt: Runtime, api_url: str | None, *, batch: int = 500, idle_s: float = 1.0,
                 gather_s: float = 0.1):
        # gather_s: after a batch, let alerts accumulate this long before the next one. Under
        # load, fewer and bigger batches cost the store far less; 0.1 s is nothing against
        # the 5 s an alert has to become a run.
        self.rt, self.api_url, self.batch, self.idle_s, self.gather_s = rt, api_url, batch, idle_s, gather_s
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._http = httpx.Client(timeout=10.0) if api_url else None
        self.emitted = 0
        self.last_error: str | None = None

    def start(self) -> None:
        if self.api_url is None:
            log.warning("no Prefect API (PREFECT_API_URL): alerts are stored and given incidents; their events are "
                        "sent once the intake runs with a Prefect server")
        self._thread = threading.Thread(target=self._loop, name="alert-dispatcher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
        if self._http is not None:
            self._http.close()

    def run_once(self) -> int:
        """One batch: attach incidents, post events, mark sent. Returns how many alerts it handled."""
        if self.rt.db.dialect != "postgresql":
            return self._run_batch()
        # Several intake replicas share one PostgreSQL: only one dispatches at a time, or two
        # could both see "no open incident" and open one each (two respond runs for one
        # crisis). The HTTP path, where the load is, still runs on every replica.
        with self.rt.db.engine.connect() as conn:
            if not conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": _DISPATCH_LOCK}).scalar():
                return 0
            try:
                return self._run_batch()
            finally:
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _DISPATCH_LOCK})

    def _run_batch(self) -> int:
        # With no Prefect to send to, only new alerts need work (an incident); re-reading the
        # unsent ones on every wake-up would keep the store busy for nothing.
        ids = pending_alert_ids(self.rt.db, self.batch, unattached_only=self.api_url is None)
        if not ids:
            return 0
        dispatches = attach_alerts(self.rt.db, self.rt.audit, self.rt.playbook, ids)
        if self._http is None or self.api_url is None:
            return len(dispatches)
        docs = [doc for d in dispatches for doc in event_documents(d, drill=self.rt.drill)]
        try:
            resp = self._http.post(f"{self.api_url.rstrip('/')}/events", json=docs)
        except httpx.HTTPError as exc:
            raise StoreError(f"Prefect API unreachable at {self.api_url}: {exc!r}") from exc
        if resp.status_code >= 300:
            raise StoreError(f"Prefect API refused {len(docs)} event(s): {resp.status_code} {resp.text[:300]}")
        # Only after the server took them: a crash before this line resends (same event ids).
        mark_emitted(self.rt.db, [d.alert_id for d in dispatches])
        self.emitted += len(dispatches)
        return len(dispatches)

    def _loop(self) -> None:
        backoff = 0.5
        while not self._stop.is_set():
            try:
                sent = self.run_once()
                self.last_error = None
                backoff = 0.5
            except FirebreakError as exc:
                # The alerts stay pending in the store; retry with backoff, visibly.
                self.last_error = str(exc)
                log.error("alert dispatch failed, retrying in %.1fs: %s", backoff, exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            if sent < self.batch:
                self._wake.wait(self.idle_s)
                self._wake.clear()
            self._stop.wait(self.gather_s)


def create_app(rt: Runtime | None = None, *, api_url: str | None | bool = True,
               secrets: IntakeSecrets | None = None, dispatch: bool = True) -> FastAPI:
    """The intake app. `api_url=True` reads PREFECT_API_URL; None disables event emission."""
    state: dict[str, Any] = {}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = rt or get_runtime()
        state["rt"] = runtime
        state["secrets"] = secrets or intake_secrets(runtime.settings)
        state["writer"] = AlertWriter(runtime.db)
        url = prefect_api_url() if api_url is True else (api_url or None)
        state["dispatcher"] = disp = Dispatcher(runtime, url if isinstance(url, str) else None)
        if dispatch:
            disp.start()
        try:
            yield
        finally:
            state["writer"].close()
            if dispatch:
                disp.stop()

    app = FastAPI(title="Firebreak alert intake", version="1",
                  description="Monitoring tools POST alerts here; each new alert is stored, then becomes a Prefect "
                              "event that starts (or joins) a crisis response.", lifespan=lifespan)
    app.state.intake = state

    def _problem(status: int, error: str, dead_letter_id: int | None = None) -> JSONResponse:
        return JSONResponse(AlertProblem(error=error, dead_letter_id=dead_letter_id).model_dump(), status_code=status)

    async def _read(request: Request, limit: int) -> bytes | None:
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    async def _dead(source: str, reason: str, body: bytes) -> int | None:
        try:
            return await run_in_threadpool(dead_letter, state["rt"].db, source, reason, body)
        except StoreError as exc:
            # The sender still gets its 4xx: the input is wrong whether or not we could keep it.
            log.error("could not keep a dead letter (%s): %s", reason, exc)
            return None

    body_schema = {"required": True, "content": {"application/json": {"schema": GenericAlert.model_json_schema()}},
                   "description": "The generic alert; with ?source=NAME, that tool's own payload (mapped by the "
                                  "playbook's intake.sources.NAME.fields)."}
    source_param = {"name": "source", "in": "query", "required": False,
                    "schema": {"type": "string", "maxLength": 64, "default": GENERIC},
                    "description": "a source configured in the playbook's intake.sources"}

    @app.post("/alerts", status_code=202, response_model=AlertAccepted,
              responses={200: {"model": AlertAccepted, "description": "duplicate: already stored, nothing new starts"},
                         400: {"model": AlertProblem}, 401: {"model": AlertProblem}, 404: {"model": AlertProblem},
                         413: {"model": AlertProblem}, 422: {"model": AlertProblem}, 503: {"model": AlertProblem}},
              openapi_extra={"requestBody": body_schema, "parameters": [source_param]})
    async def post_alert(request: Request) -> JSONResponse:
        rt: Runtime = state["rt"]
        pb = rt.playbook
        body = await _read(request, pb.intake.max_body_bytes)
        if body is None:
            return _problem(413, f"body larger than {pb.intake.max_body_bytes} bytes")
        source = request.query_params.get("source", GENERIC)
        headers = {k.lower(): v for k, v in request.headers.items()}
        problem = authenticate(pb, source, headers, body, state["secrets"])
        if problem is not None:
            # Not dead-lettered: storing unauthenticated bodies would let anyone fill the table.
            return _problem(401, problem)
        if source != GENERIC and source not in pb.intake.sources:
            reason = f"unknown source {source[:64]!r}; configured: {sorted(pb.intake.sources) or 'none'}"
            return _problem(404, reason, await _dead(source, reason, body))
        try:
            doc = parse_body(body)
        except InvalidAlert as exc:
            return _problem(400, str(exc), await _dead(source, str(exc), body))
        try:
            alert = map_alert(pb, source, doc)
        except InvalidAlert as exc:
            return _problem(422, str(exc), await _dead(source, str(exc), body))
        try:
            alert_id, duplicate = await asyncio.wrap_future(state["writer"].submit(alert))
        except StoreError as exc:
            log.error("alert not stored: %s", exc)
            return _problem(503, "the alert could not be stored; send it again")
        if not duplicate:
            state["dispatcher"].wake()
        return JSONResponse(AlertAccepted(alert_id=alert_id, duplicate=duplicate).model_dump(),
                            status_code=200 if duplicate else 202)

    @app.get("/alerts/{alert_id}", responses={401: {"model": AlertProblem}, 404: {"model": AlertProblem}})
    async def get_alert(alert_id: int, request: Request) -> JSONResponse:
        if not check_bearer(request.headers.get("authorization", ""), state["secrets"]):
            return _problem(401, "authentication required: Authorization: Bearer <token>")
        found = await run_in_threadpool(alert_status, state["rt"].db, alert_id)
        return JSONResponse(found) if found else _problem(404, f"no alert {alert_id}")

    @app.get("/healthz")
    async def healthz() -> dict[str, Any]:
        disp: Dispatcher = state["dispatcher"]
        pending = await run_in_threadpool(pending_count, state["rt"].db)
        return {"status": "ok", "pending_events": pending, "emitting": disp.api_url is not None,
                "last_dispatch_error": disp.last_error}

    return app


def make_server(app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> uvicorn.Server:
    # access_log off: a line per alert would cost more than storing it under load.
    return uvicorn.Server(uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False,
                                         lifespan="on", timeout_graceful_shutdown=5))


@contextmanager
def running_app(app: FastAPI, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT,
                   timeout_s: float = 20.0, *, what: str = "alert intake") -> Iterator[uvicorn.Server]:
    """An app (the intake, the web pages) in a background thread (firebreak up, tests);
    stopped and joined on exit."""
    server = make_server(app, host, port)
    thread = threading.Thread(target=server.run, name="intake", daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise FirebreakError(f"{what} did not start on {host}:{port} (port in use?)")
        time.sleep(0.02)
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def _short_gil_slices() -> None:
    # The store writer and the dispatcher are threads beside the event loop. Each SQLite call
    # releases the GIL and must win it back; with the default 5 ms switch interval a busy loop
    # makes every hand-back cost up to 5 ms (a "convoy"), which showed as p99 spikes under load.
    sys.setswitchinterval(0.001)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m firebreak.web.intake", description="serve the alert intake")
    p.add_argument("--host", default=DEFAULT_HOST)
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--no-events", action="store_true", help="store and attach alerts, do not post events")
    args = p.parse_args(argv)
    _short_gil_slices()
    app = create_app(api_url=None if args.no_events else True)
    make_server(app, args.host, args.port).run()
    return 0


if __name__ == "__main__":  # pragma: no cover - run by operators and the benchmark
    raise SystemExit(main())
