"""Plumbing shared by the X, Mastodon and Bluesky sandbox routers.

Each router builds a `PlatformApi` and declares its routes through it. Every request then
gets, in one place: fault injection, the platform's auth check, its rate-limit headers
(a generous budget by default) and errors in the platform's own shape.

Faults (issue: fault injection) are read from `state.faults[platform]` when it is a dict:
- `{"rate_limited": 30.0}` -> the next request gets a 429 whose headers say "retry in
  30 s" in the platform's style; `"rate_limited_times": n` repeats it n times (default 1).
- `{"expire_sessions": True}` -> Bluesky: every issued access token now answers 401
  ExpiredToken (refresh tokens stay valid), as after a real token lifetime.

Rate-limit windows are wall-clock (not the scenario clock): the connector computes its
wait from `time.time()`, so the numbers must be in the same time base.

Ids: X and Mastodon ids are time-ordered snowflakes and clients rely on that (since_id,
min_id). Scenario ids are numbered in generation order, not time order, so the routers
present `snowflake(created_at, n)` and map back through the low bits (`sandbox_n`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from firebreak.sandbox.state import SandboxState, make_id
from firebreak.domain import Platform

SEQ_BITS = 22
SEQ_MASK = (1 << SEQ_BITS) - 1
X_EPOCH_MS = 1288834974657  # the Twitter snowflake epoch


def snowflake(created_at: datetime, n: int) -> str:
    """A time-ordered id whose low bits carry the sandbox's own number."""
    ms = int(created_at.timestamp() * 1000) - X_EPOCH_MS
    return str((max(ms, 0) << SEQ_BITS) | (n & SEQ_MASK))


def sandbox_n(sandbox_id: str) -> int:
    """The counter inside a make_id() id of X/Mastodon shape."""
    return int(sandbox_id) - int(make_id(Platform.X, 0))


def public_id(created_at: datetime, sandbox_id: str) -> str:
    return snowflake(created_at, sandbox_n(sandbox_id))


def sandbox_id_of(platform: Platform, public: str) -> str | None:
    try:
        return make_id(platform, int(public) & SEQ_MASK)
    except ValueError:
        return None


def iso_z(dt: datetime) -> str:
    """RFC 3339 with milliseconds and Z, as all three platforms print times."""
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def parse_time(value: str) -> datetime | None:
    try:
        if len(value) == 10:  # YYYY-MM-DD (Bluesky since/until)
            return datetime.fromisoformat(value).replace(tzinfo=timezone.utc)
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def text_matches(text: str, terms: list[str]) -> bool:
    low = text.lower()
    return any(t and t.lower() in low for t in terms)


class Abort(Exception):
    """Raised inside a handler to answer with `response` (an error in the platform's shape)."""

    def __init__(self, response: Response):
        self.response = response


@dataclass
class Ctx:
    request: Request
    body: bytes
    token: str = ""

    @property
    def query(self) -> Any:
        return self.request.query_params

    def json(self) -> Any:
        if not self.body:
            return {}
        ctype = self.request.headers.get("content-type", "")
        if "json" in ctype:
            try:
                return json.loads(self.body)
            except ValueError:
                return None
        if "x-www-form-urlencoded" in ctype:
            from urllib.parse import parse_qsl

            return dict(parse_qsl(self.body.decode("utf-8", "replace"), keep_blank_values=True))
        return None


@dataclass
class Budget:
    """A fixed-window request budget in wall-clock time."""

    limit: int = 50_000
    window_s: int = 900
    _used: dict[int, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def take(self) -> tuple[int, int, int]:
        """Count one request; returns (limit, remaining, reset epoch seconds)."""
        now = int(time.time())
        start = now - now % self.window_s
        with self._lock:
            used = self._used.get(start, 0) + 1
            self._used = {start: used}
        return self.limit, max(self.limit - used, 0), start + self.window_s


# (limit, remaining, reset_epoch, retry_after or None) -> headers, per platform style
HeaderStyle = Callable[[int, int, int, "float | None"], dict[str, str]]


def x_headers(limit: int, remaining: int, reset: int, retry_after: float | None) -> dict[str, str]:
    return {"x-rate-limit-limit": str(limit), "x-rate-limit-remaining": str(remaining),
            "x-rate-limit-reset": str(reset)}


def mastodon_headers(limit: int, remaining: int, reset: int, retry_after: float | None) -> dict[str, str]:
    when = datetime.fromtimestamp(reset, timezone.utc)
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining), "X-RateLimit-Reset": iso_z(when)}


def bluesky_headers(limit: int, remaining: int, reset: int, retry_after: float | None) -> dict[str, str]:
    out = {"RateLimit-Limit": str(limit), "RateLimit-Remaining": str(remaining), "RateLimit-Reset": str(reset),
           "RateLimit-Policy": f"{limit};w=900"}
    if retry_after is not None:
        out["Retry-After"] = str(round(retry_after))
    return out


@dataclass
class PlatformApi:
    """One platform's request pipeline inside the sandbox."""

    state: SandboxState
    platform: Platform
    headers: HeaderStyle
    # (status, message) -> an error response body in the platform's shape
    error_body: Callable[[int, str], Any]
    # Ctx -> token accepted? (sets ctx.token); None = any non-empty bearer
    check_auth: Callable[[Ctx], bool] | None = None
    budget: Budget = field(default_factory=Budget)
    router: APIRouter = field(default_factory=APIRouter)

    def error(self, status: int, message: str) -> Abort:
        return Abort(JSONResponse(self.error_body(status, message), status_code=status))

    def faults(self) -> dict[str, Any]:
        f = self.state.faults.get(self.platform)
        return f if isinstance(f, dict) else {}

    def _rate_fault(self) -> float | None:
        with self.state.lock:
            f = self.faults()
            wait = f.get("rate_limited")
            if not wait:
                return None
            times = int(f.get("rate_limited_times", 1)) - 1
            if times <= 0:
                f.pop("rate_limited", None)
                f.pop("rate_limited_times", None)
            else:
                f["rate_limited_times"] = times
            return float(wait)

    def route(self, method: str, path: str, *, auth: bool = True) -> Callable[[Callable[[Ctx], Response]], Any]:
        def deco(fn: Callable[[Ctx], Response]) -> Any:
            async def endpoint(request: Request) -> Response:
                body = await request.body() if request.method in ("POST", "PUT", "PATCH") else b""
                ctx = Ctx(request, body)
                limit, remaining, reset = self.budget.take()
                wait = self._rate_fault()
                if wait is not None:
                    reset_at = int(time.time() + wait)
                    resp: Response = JSONResponse(self.error_body(429, "Too Many Requests"), status_code=429)
                    resp.headers.update(self.headers(limit, 0, reset_at, wait))
                    return resp
                try:
                    if auth and not self._authorized(ctx):
                        raise self.error(401, "Unauthorized")
                    resp = fn(ctx)
                except Abort as exc:
                    resp = exc.response
                resp.headers.update(self.headers(limit, remaining, reset, None))
                return resp

            # Not functools.wraps: FastAPI must see `endpoint`'s own signature (request only).
            endpoint.__name__ = endpoint.__qualname__ = fn.__name__
            self.router.add_api_route(path, endpoint, methods=[method])
            return fn

        return deco

    def _authorized(self, ctx: Ctx) -> bool:
        header = ctx.request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return False
        ctx.token = token.strip()
        if self.check_auth is not None:
            return self.check_auth(ctx)
        return ctx.token not in self.faults().get("revoked_tokens", ())


def json_response(body: Any, status: int = 200) -> JSONResponse:
    return JSONResponse(body, status_code=status)
