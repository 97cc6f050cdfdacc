"""Fault injection for the sandbox platforms: what a crisis tool meets on a bad day.

One pure ASGI middleware (`FaultMiddleware`, installed by `create_app`) decides, per request
to a platform path, whether to inject a fault; the routers know nothing about it. With no
injector on the state (`state.fault_injector is None`, the default) it passes every request
through untouched.

Fault kinds (counted per platform and kind in `FaultInjector.counts`):
- `rate_limit`: a 429 storm. A request starts one with `rate_limit_rate`; for the storm's
  length (wall clock, the time base of every rate-limit header) every request to that
  platform is refused in the platform's own style: X `x-rate-limit-*` (reset in Unix
  seconds), Mastodon `X-RateLimit-*` (reset as an ISO time), Bluesky `RateLimit-*` plus
  `Retry-After`, Graph (Facebook, Instagram) HTTP 400 with error code 4, 17 or 32 and the
  usage headers (`estimated_time_to_regain_access` is in whole minutes, as Graph sends it),
  LinkedIn a bare 429 (its budgets are daily; no headers).
- `error_5xx`: 500/502/503 before the handler runs (nothing applied).
- `latency`: the answer is delayed.
- `reset`: the connection is dropped before the handler runs (nothing applied). ASGI has no
  "close the socket" message, so the middleware starts a response that announces a body and
  returns without sending it; uvicorn then closes the connection and the client sees a
  truncated answer (httpx: RemoteProtocolError), which is what a reset looks like to it.
- `timeout_after_write`: a write (POST/PUT/PATCH/DELETE) is applied to the state, then its
  answer is lost: dropped half-way (`write_timeout_delay_s` None) or held back that many
  seconds, past the client's timeout.
- `duplicate` / `out_of_order`: mention listings only. A continuation page (the request
  carries the listing's cursor) repeats items of the page served before it; any page may
  come out of order. Cursors and paging metadata stay the server's own, so a client that
  pages by the server's cursor loses nothing; one that derives its cursor from the last
  item it got, or stops at the first item it has seen, is caught. Offset-paged LinkedIn
  gets duplicates only where the page has room below `count` (a real offset page never
  holds more than `count`; more would shift the client past items it never got).

Reproducible: each platform draws from its own `random.Random` seeded with (seed, platform),
so a platform's fault schedule depends only on the order of its own requests.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qsl

from firebreak.domain import Platform
from firebreak.errors import ConfigError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

KINDS = ("rate_limit", "error_5xx", "latency", "reset", "timeout_after_write", "duplicate", "out_of_order")
WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
GRAPH = frozenset({Platform.FACEBOOK, Platform.INSTAGRAM})
GRAPH_THROTTLE_CODES = (4, 17, 32)  # application, user and page request limits


@dataclass(frozen=True)
class FaultProfile:
    """How one platform misbehaves. Rates are per request (listing faults: per listing page)."""

    error_rate: float = 0.0
    rate_limit_rate: float = 0.0
    rate_limit_s: tuple[float, float] = (1.0, 3.0)  # storm length, wall-clock seconds
    latency_rate: float = 0.0
    latency_s: tuple[float, float] = (0.05, 0.3)
    reset_rate: float = 0.0
    write_timeout_rate: float = 0.0
    write_timeout_delay_s: float | None = None  # None: drop the answer; else hold it this long
    duplicate_rate: float = 0.0
    shuffle_rate: float = 0.0

    @property
    def active(self) -> bool:
        return any((self.error_rate, self.rate_limit_rate, self.latency_rate, self.reset_rate,
                    self.write_timeout_rate, self.duplicate_rate, self.shuffle_rate))


MILD = FaultProfile(error_rate=0.02, rate_limit_rate=0.003, rate_limit_s=(0.5, 1.5), latency_rate=0.05,
                    latency_s=(0.02, 0.2), reset_rate=0.01, write_timeout_rate=0.05, duplicate_rate=0.1,
                    shuffle_rate=0.1)
STORM = FaultProfile(error_rate=0.08, rate_limit_rate=0.01, rate_limit_s=(1.0, 3.0), latency_rate=0.15,
                     latency_s=(0.05, 0.5), reset_rate=0.04, write_timeout_rate=0.25, duplicate_rate=0.3,
                     shuffle_rate=0.3)
PROFILES: dict[str, FaultProfile] = {"none": FaultProfile(), "mild": MILD, "storm": STORM}


def profile_plan(name: str) -> dict[Platform, FaultProfile]:
    """The named profile for every platform.

    Two platforms cannot say "wait a second or two":
    - Graph's throttle answer says "regain access in N whole minutes", so one Graph 429 storm
      costs a client at least a minute however short it is: Graph platforms get a fifth of
      the others' storm rate, so a drill under `storm` stays within minutes.
    - LinkedIn's bare 429 means the application's *daily* budget is spent (until midnight
      UTC, and the connector reads it so): one would end LinkedIn for the day, which no
      drill can sit out. Named profiles leave it out; a custom FaultProfile can turn it on
      (the unit tests do).
    """
    try:
        base = PROFILES[name]
    except KeyError:
        raise ConfigError(f"unknown fault profile {name!r}; known: {', '.join(PROFILES)}") from None
    plan: dict[Platform, FaultProfile] = {}
    for p in Platform:
        if p in GRAPH:
            plan[p] = replace(base, rate_limit_rate=base.rate_limit_rate / 5)
        elif p is Platform.LINKEDIN:
            plan[p] = replace(base, rate_limit_rate=0.0)
        else:
            plan[p] = base
    return plan


@dataclass(frozen=True)
class Listing:
    """A mention listing: where its items are and which query parameters page it."""

    pattern: re.Pattern[str]
    items_key: str | None  # None: the body itself is the list (Mastodon notifications)
    cursor_params: tuple[str, ...]
    limit_param: str
    default_limit: int
    offset_paged: bool = False


def _l(pattern: str, items_key: str | None, cursors: tuple[str, ...], limit: str, default: int,
       offset: bool = False) -> Listing:
    return Listing(re.compile(pattern), items_key, cursors, limit, default, offset)


LISTINGS: dict[Platform, tuple[Listing, ...]] = {
    Platform.X: (_l(r"^/2/(tweets/search/recent|users/[^/]+/mentions)$", "data", ("next_token", "pagination_token"),
                    "max_results", 10),),
    Platform.FACEBOOK: (_l(r"^/[^/]+/(comments|tagged)$", "data", ("after",), "limit", 25),),
    Platform.INSTAGRAM: (_l(r"^/[^/]+/(comments|tags|replies)$", "data", ("after",), "limit", 25),),
    Platform.LINKEDIN: (_l(r"^/rest/socialActions/[^/]+/comments$", "elements", ("start",), "count", 10, True),),
    Platform.MASTODON: (_l(r"^/api/v1/notifications$", None, ("max_id", "min_id", "since_id"), "limit", 40),
                        _l(r"^/api/v2/search$", "statuses", ("max_id",), "limit", 20)),
    Platform.BLUESKY: (_l(r"^/xrpc/app\.bsky\.feed\.searchPosts$", "posts", ("cursor",), "limit", 25),
                       _l(r"^/xrpc/app\.bsky\.notification\.listNotifications$", "notifications", ("cursor",),
                          "limit", 50)),
}


@dataclass
class Decision:
    latency_s: float = 0.0
    rate_limited_s: float | None = None  # seconds until the storm ends
    error_status: int | None = None
    reset: bool = False
    timeout_after_write: bool = False
    duplicate: int = 0  # how many earlier items to repeat (listings)
    shuffle: bool = False


@dataclass
class _PageMemory:
    items: list[Any]
    users: dict[str, Any] = field(default_factory=dict)  # X: includes.users by id


class FaultInjector:
    """Per-platform profiles, seeded draws, storm windows, listing memory and counters."""

    def __init__(self, profiles: dict[Platform, FaultProfile], seed: int = 0, *,
                 clock: Callable[[], float] = time.time, name: str = "custom"):
        self.profiles = dict(profiles)
        self.seed = seed
        self.name = name
        self.clock = clock  # wall clock: rate-limit headers speak Unix time
        self._rngs = {p: random.Random(f"{seed}:{p.value}") for p in Platform}
        self._storm_until: dict[Platform, float] = {}
        self._pages: dict[tuple[Any, ...], _PageMemory] = {}
        self._lock = threading.Lock()
        self.counts: Counter[tuple[str, str]] = Counter()  # (platform, kind) -> n

    @classmethod
    def named(cls, name: str, seed: int = 0) -> FaultInjector:
        return cls(profile_plan(name), seed, name=name)

    # -- bookkeeping ---------------------------------------------------------------------------
    def count(self, platform: Platform, kind: str, n: int = 1) -> None:
        with self._lock:
            self.counts[(platform.value, kind)] += n

    def summary(self) -> dict[str, Any]:
        """{"total", "by_kind", "by_platform": {platform: {kind: n}}} of what was injected."""
        with self._lock:
            counts = dict(self.counts)
        by_platform: dict[str, dict[str, int]] = {}
        by_kind: Counter[str] = Counter()
        for (platform, kind), n in sorted(counts.items()):
            by_platform.setdefault(platform, {})[kind] = n
            by_kind[kind] += n
        return {"total": sum(by_kind.values()), "by_kind": dict(sorted(by_kind.items())), "by_platform": by_platform}

    def storm_remaining(self, platform: Platform) -> float:
        with self._lock:
            return max(self._storm_until.get(platform, 0.0) - self.clock(), 0.0)

    # -- decisions -----------------------------------------------------------------------------
    def decide(self, platform: Platform, method: str, listing: bool) -> Decision:
        prof = self.profiles.get(platform)
        d = Decision()
        if prof is None or not prof.active:
            return d
        now = self.clock()
        with self._lock:
            rng = self._rngs[platform]
            until = self._storm_until.get(platform, 0.0)
            if until <= now and rng.random() < prof.rate_limit_rate:
                until = now + rng.uniform(*prof.rate_limit_s)
                self._storm_until[platform] = until
            if until > now:
                d.rate_limited_s = until - now
                return d
            if rng.random() < prof.latency_rate:
                d.latency_s = rng.uniform(*prof.latency_s)
            if rng.random() < prof.error_rate:
                d.error_status = rng.choice((500, 502, 503))
                return d
            if rng.random() < prof.reset_rate:
                d.reset = True
                return d
            if method in WRITE_METHODS and rng.random() < prof.write_timeout_rate:
                d.timeout_after_write = True
            if listing:
                if rng.random() < prof.duplicate_rate:
                    d.duplicate = rng.randint(1, 2)
                d.shuffle = rng.random() < prof.shuffle_rate
        return d

    # -- listings ------------------------------------------------------------------------------
    def perturb(self, platform: Platform, listing: Listing, key: tuple[Any, ...], continuation: bool, limit: int,
                body: Any, d: Decision) -> Any:
        """Duplicates from the previous page and/or a shuffled page; remembers this page."""
        items = body if listing.items_key is None else (body.get(listing.items_key) if isinstance(body, dict) else None)
        if not isinstance(items, list):
            return body
        original = list(items)
        users = {}
        if platform is Platform.X and isinstance(body, dict):
            users = {u.get("id"): u for u in (body.get("includes") or {}).get("users", []) if isinstance(u, dict)}
        with self._lock:
            prev = self._pages.get(key)
            self._pages[key] = _PageMemory(original, users)
            rng = self._rngs[platform]
            out = list(items)
            # Never into an empty page: several APIs end a drain on one.
            if d.duplicate and continuation and prev is not None and prev.items and out:
                room = d.duplicate if not listing.offset_paged else min(d.duplicate, limit - len(out))
                picks = rng.sample(prev.items, min(room, len(prev.items))) if room > 0 else []
                for item in picks:
                    out.insert(rng.randint(0, len(out)), item)
                if picks:
                    self.counts[(platform.value, "duplicate")] += len(picks)
                    if platform is Platform.X and isinstance(body, dict):
                        extra = [prev.users[i["author_id"]] for i in picks
                                 if isinstance(i, dict) and i.get("author_id") in prev.users
                                 and i["author_id"] not in users]
                        if extra:
                            inc = dict(body.get("includes") or {})
                            inc["users"] = list(inc.get("users", [])) + extra
                            body = {**body, "includes": inc}
            if d.shuffle and len(out) > 1:
                before = list(out)
                rng.shuffle(out)
                if out != before:
                    self.counts[(platform.value, "out_of_order")] += 1
        if listing.items_key is None:
            return out
        return {**body, listing.items_key: out}


# -- platform-style 429s ---------------------------------------------------------------------------
def _json_headers(body: bytes, extra: dict[str, str]) -> list[tuple[bytes, bytes]]:
    hdrs = {"content-type": "application/json", "content-length": str(len(body)), **extra}
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in hdrs.items()]


def rate_limit_answer(platform: Platform, wait_s: float, now: float, rng: random.Random) -> tuple[int, dict[str, str], Any]:
    """(status, headers, body) of a throttled answer in the platform's own style."""
    reset = math.ceil(now + wait_s)
    if platform is Platform.X:
        return 429, {"x-rate-limit-limit": "450", "x-rate-limit-remaining": "0", "x-rate-limit-reset": str(reset)}, \
            {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
    if platform is Platform.MASTODON:
        when = datetime.fromtimestamp(reset, UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return 429, {"X-RateLimit-Limit": "300", "X-RateLimit-Remaining": "0", "X-RateLimit-Reset": when}, \
            {"error": "Too many requests"}
    if platform is Platform.BLUESKY:
        return 429, {"RateLimit-Limit": "3000", "RateLimit-Remaining": "0", "RateLimit-Reset": str(reset),
                     "RateLimit-Policy": "3000;w=300", "Retry-After": str(max(1, math.ceil(wait_s)))}, \
            {"error": "RateLimitExceeded", "message": "Rate Limit Exceeded"}
    if platform in GRAPH:
        code = rng.choice(GRAPH_THROTTLE_CODES)
        minutes = max(1, math.ceil(wait_s / 60))  # Graph's unit; a real storm is never "0 minutes"
        usage = {"call_count": 100, "total_time": 40, "total_cputime": 30}
        headers = {"X-App-Usage": json.dumps(usage),
                   "X-Business-Use-Case-Usage": json.dumps({"100000000000001": [{
                       "type": "pages", "call_count": 100, "total_cputime": 30, "total_time": 40,
                       "estimated_time_to_regain_access": minutes}]})}
        if code == 32:
            headers["X-Page-Usage"] = json.dumps(usage)
        messages = {4: "(#4) Application request limit reached", 17: "(#17) User request limit reached",
                    32: "(#32) Page request limit reached"}
        return 400, headers, {"error": {"message": messages[code], "type": "OAuthException", "code": code,
                                        "fbtrace_id": f"Afault{rng.randrange(10**9):09d}"}}
    # LinkedIn: a bare 429; its application and member budgets are daily.
    return 429, {}, {"status": 429, "message": "Resource level throttle APPLICATION DAY limit for calls to this "
                                                "resource is reached."}


def error_answer(platform: Platform, status: int) -> Any:
    if platform is Platform.X:
        return {"title": "Service Unavailable", "detail": "Service Unavailable", "type": "about:blank", "status": status}
    if platform is Platform.MASTODON:
        return {"error": "Service Unavailable"}
    if platform is Platform.BLUESKY:
        return {"error": "InternalServerError", "message": "Internal Server Error"}
    if platform in GRAPH:
        return {"error": {"message": "An unexpected error has occurred. Please retry your request later.",
                          "type": "OAuthException", "code": 2, "is_transient": True, "fbtrace_id": "Afault"}}
    return {"status": status, "message": "Internal Server Error"}


class _DeliberateDrop(logging.Filter):
    """uvicorn logs an error when an app returns mid-answer; for an injected reset that is the
    point, and the injector has counted it, so the line is noise (any other such line stays)."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not (_dropping.is_set() and record.getMessage() == "ASGI callable returned without completing response.")


_dropping = threading.Event()  # set once any injector has dropped a connection on purpose
logging.getLogger("uvicorn.error").addFilter(_DeliberateDrop())


# -- the middleware --------------------------------------------------------------------------------
class FaultMiddleware:
    """Pure ASGI; reads `state.fault_injector` per request, so faults can be switched on and
    off while the sandbox runs."""

    def __init__(self, app: ASGIApp, state: Any):
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        injector: FaultInjector | None = getattr(self.state, "fault_injector", None)
        if injector is None or scope.get("type") != "http":
            await self.app(scope, receive, send)
            return
        first, _, rest = scope.get("path", "").lstrip("/").partition("/")
        try:
            platform = Platform(first)
        except ValueError:
            await self.app(scope, receive, send)  # control panel, hooks: never faulted
            return
        path = "/" + rest
        method = scope.get("method", "GET")
        listing = next((li for li in LISTINGS.get(platform, ()) if li.pattern.search(path)), None) \
            if method == "GET" else None
        d = injector.decide(platform, method, listing is not None)
        if d.rate_limited_s is not None or d.error_status is not None or d.reset:
            # Answered without the app: read the request first, as a server does (and so that
            # middleware outside this one, like the contract recorder, sees the body it sent).
            await _drain(receive)
        if d.latency_s:
            injector.count(platform, "latency")
            await asyncio.sleep(d.latency_s)
        if d.rate_limited_s is not None:
            injector.count(platform, "rate_limit")
            with injector._lock:
                status, headers, body = rate_limit_answer(platform, d.rate_limited_s, injector.clock(),
                                                          injector._rngs[platform])
            await _answer(send, status, headers, body)
            return
        if d.error_status is not None:
            injector.count(platform, "error_5xx")
            await _answer(send, d.error_status, {}, error_answer(platform, d.error_status))
            return
        if d.reset:
            injector.count(platform, "reset")
            await _drop(send)
            return
        if d.timeout_after_write:
            await self._write_then_lose(scope, receive, send, injector, platform)
            return
        if listing is not None:
            # Every page goes through here, perturbed or not: the next page may repeat it.
            await self._perturbed_listing(scope, receive, send, injector, platform, path, listing, d)
            return
        await self.app(scope, receive, send)

    async def _write_then_lose(self, scope: Scope, receive: Receive, send: Send, injector: FaultInjector,
                               platform: Platform) -> None:
        messages: list[Message] = []

        async def keep(msg: Message) -> None:
            messages.append(msg)

        await self.app(scope, receive, keep)  # the write happens
        status = next((int(m["status"]) for m in messages if m.get("type") == "http.response.start"), 500)
        if status >= 400:
            # Refused anyway: nothing was written, so losing the answer would be a plain reset.
            for m in messages:
                await send(m)
            return
        injector.count(platform, "timeout_after_write")
        prof = injector.profiles.get(platform)
        delay = prof.write_timeout_delay_s if prof else None
        if delay is not None:
            await asyncio.sleep(delay)  # past the client's timeout; it has given up by now
            for m in messages:
                await send(m)
            return
        await _drop(send, next((m for m in messages if m.get("type") == "http.response.start"), None))

    async def _perturbed_listing(self, scope: Scope, receive: Receive, send: Send, injector: FaultInjector,
                                 platform: Platform, path: str, listing: Listing, d: Decision) -> None:
        messages: list[Message] = []

        async def keep(msg: Message) -> None:
            messages.append(msg)

        await self.app(scope, receive, keep)
        start = next((m for m in messages if m.get("type") == "http.response.start"), None)
        raw = b"".join(m.get("body", b"") for m in messages if m.get("type") == "http.response.body")
        try:
            body = json.loads(raw) if start is not None and 200 <= int(start["status"]) < 300 else None
        except ValueError:
            body = None
        if start is None or body is None:
            for m in messages:
                await send(m)
            return
        query = parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        continuation = any(k in listing.cursor_params and v not in ("", "0") for k, v in query)
        key = (platform.value, path, tuple(sorted((k, v) for k, v in query if k not in listing.cursor_params)))
        try:
            limit = int(dict(query).get(listing.limit_param, listing.default_limit))
        except ValueError:
            limit = listing.default_limit
        new_body = injector.perturb(platform, listing, key, continuation, limit, body, d)
        out = json.dumps(new_body, separators=(",", ":")).encode() if new_body is not body else raw
        headers = [(k, v) for k, v in start.get("headers", []) if k.lower() != b"content-length"]
        headers.append((b"content-length", str(len(out)).encode()))
        await send({"type": "http.response.start", "status": start["status"], "headers": headers})
        await send({"type": "http.response.body", "body": out, "more_body": False})


async def _drain(receive: Receive) -> None:
    while True:
        msg = await receive()
        if msg.get("type") != "http.request" or not msg.get("more_body", False):
            return


async def _answer(send: Send, status: int, headers: dict[str, str], body: Any) -> None:
    raw = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status, "headers": _json_headers(raw, headers)})
    await send({"type": "http.response.body", "body": raw, "more_body": False})


async def _drop(send: Send, start: Message | None = None) -> None:
    """Announce an answer, send none of its body, return: uvicorn closes the connection."""
    _dropping.set()
    headers = [(k, v) for k, v in (start or {}).get("headers", []) if k.lower() != b"content-length"]
    headers.append((b"content-length", b"4096"))
    await send({"type": "http.response.start", "status": int((start or {}).get("status", 200)), "headers": headers})
    # Returning now, with the body owed: uvicorn logs it and closes the transport.


def install_faults(state: Any, profile: str | dict[Platform, FaultProfile] | None, seed: int = 0) -> FaultInjector | None:
    """Switch faults on (a profile name or per-platform profiles) or off (None / "none")."""
    if profile is None or profile == "none":
        state.fault_injector = None
        return None
    injector = FaultInjector.named(profile, seed) if isinstance(profile, str) else FaultInjector(profile, seed)
    state.fault_injector = injector
    return injector
