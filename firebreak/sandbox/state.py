"""What the sandbox knows: the scenario's mentions, the brand's posts, scheduled posts,
hidden replies, and a log of every request (for contract tests and drill reports).

Time comes from a Clock, so a drill can play a three-hour storm in a minute. Scheduled
posts whose time has come are published lazily whenever the sandbox is observed (any
request or `tick()`), stamped with the time they were due: a post the freeze missed shows
up as published during the freeze.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from firebreak.clock import Clock
from firebreak.domain import Platform

if TYPE_CHECKING:
    from firebreak.sandbox.faults import FaultInjector

BRAND_DID = "did:plc:fjelloutdoor000000000000"
# Never repeats within a process: caches keyed by it cannot mistake one loaded world for another.
_GENERATIONS = itertools.count(1)


@dataclass
class SandboxMention:
    platform: Platform
    id: str
    author: str
    text: str
    created_at: datetime
    kind: str = "mention"  # mention | comment | reply
    lang: str = ""
    followers: int = 0
    likes: int = 0
    reposts: int = 0
    reply_to: str = ""  # id of the brand post it answers / comments on
    author_id: str = ""


@dataclass
class SandboxPost:
    """A post by the brand: published through the API, or a scheduled post that went out."""

    platform: Platform
    id: str
    text: str
    created_at: datetime
    source: str = "api"  # api | scheduled | scenario
    idempotency_key: str = ""
    reply_to: str = ""
    media: list[str] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class SandboxScheduled:
    platform: Platform
    id: str
    text: str
    scheduled_at: datetime
    media: list[str] = field(default_factory=list)
    state: str = "scheduled"  # scheduled | held | published | cancelled
    history: list[dict[str, Any]] = field(default_factory=list)


class SandboxState:
    def __init__(self, clock: Clock, *, brand_handle: dict[Platform, str] | None = None):
        self.clock = clock
        self.lock = threading.RLock()
        self.generation = next(_GENERATIONS)  # bumped whenever the mentions change
        self.brand_handle = brand_handle or {}
        self.mentions: dict[Platform, list[SandboxMention]] = {p: [] for p in Platform}
        self.posts: dict[Platform, list[SandboxPost]] = {p: [] for p in Platform}
        self.scheduled: dict[Platform, dict[str, SandboxScheduled]] = {p: {} for p in Platform}
        self.hidden: dict[Platform, set[str]] = {p: set() for p in Platform}
        self.requests: list[dict[str, Any]] = []
        # Requests being served per platform, and the most seen at once: how a benchmark checks
        # that per-platform concurrency limits hold across workers.
        self.in_flight: dict[str, int] = {}
        self.peak_in_flight: dict[str, int] = {}
        self.request_log_limit = 200_000
        self._ids = itertools.count(1)
        self.idempotency: dict[tuple[Platform, str], SandboxPost] = {}
        # Hooks a fault profile can use (issue: fault injection); empty by default.
        self.faults: dict[Platform, Any] = {}
        # Random fault profiles per platform, with their seeded schedule and counters
        # (faults.py; `install_faults`). None: every request is served as asked.
        self.fault_injector: FaultInjector | None = None

    # -- ids -------------------------------------------------------------------------------
    def new_id(self, platform: Platform) -> str:
        return make_id(platform, 900_000 + next(self._ids))

    # -- loading ---------------------------------------------------------------------------
    def load(self, mentions: list[SandboxMention], scheduled: list[SandboxScheduled], posts: list[SandboxPost]) -> None:
        with self.lock:
            self.generation = next(_GENERATIONS)
            for m in mentions:
                self.mentions[m.platform].append(m)
            for p in self.mentions:
                self.mentions[p].sort(key=lambda m: (m.created_at, m.id))
            for s in scheduled:
                self.scheduled[s.platform][s.id] = s
            for post in posts:
                self.posts[post.platform].append(post)

    # -- time ------------------------------------------------------------------------------
    def now(self) -> datetime:
        return self.clock.now()

    def tick(self) -> list[SandboxPost]:
        """Publish every scheduled post whose time has come (unless held or cancelled)."""
        now = self.now()
        out: list[SandboxPost] = []
        with self.lock:
            for platform, items in self.scheduled.items():
                for s in items.values():
                    if s.state == "scheduled" and s.scheduled_at <= now:
                        s.state = "published"
                        s.history.append({"at": s.scheduled_at.isoformat(), "action": "published"})
                        post = SandboxPost(platform, s.id, s.text, s.scheduled_at, source="scheduled", media=list(s.media))
                        self.posts[platform].append(post)
                        out.append(post)
        return out

    # -- queries used by the platform routers ----------------------------------------------
    def visible_mentions(self, platform: Platform, kinds: tuple[str, ...] | None = None) -> list[SandboxMention]:
        """Mentions that exist by now (created_at <= clock), oldest first."""
        now = self.now()
        with self.lock:
            items = self.mentions[platform]
            # Kept sorted by time (load): cut at "now" instead of scanning a storm's worth per page.
            upto = bisect.bisect_right(items, now, key=lambda m: m.created_at)
            return items[:upto] if kinds is None else [m for m in items[:upto] if m.kind in kinds]

    def add_post(self, platform: Platform, text: str, *, idempotency_key: str = "", reply_to: str = "",
                 media: list[str] | None = None, post_id: str | None = None, **extra: Any) -> tuple[SandboxPost, bool]:
        """Record a brand post. Returns (post, created); a repeated idempotency key returns the first post."""
        with self.lock:
            if idempotency_key:
                seen = self.idempotency.get((platform, idempotency_key))
                if seen is not None:
                    return seen, False
            post = SandboxPost(platform, post_id or self.new_id(platform), text, self.now(), "api",
                               idempotency_key, reply_to, list(media or []), dict(extra))
            self.posts[platform].append(post)
            if idempotency_key:
                self.idempotency[(platform, idempotency_key)] = post
            return post, True

    def find_post(self, platform: Platform, post_id: str) -> SandboxPost | None:
        with self.lock:
            for p in self.posts[platform]:
                if p.id == post_id:
                    return p
        return None

    def remove_post(self, platform: Platform, post_id: str) -> bool:
        with self.lock:
            before = len(self.posts[platform])
            self.posts[platform] = [p for p in self.posts[platform] if p.id != post_id]
            return len(self.posts[platform]) < before

    def request_started(self, platform: str) -> None:
        with self.lock:
            n = self.in_flight.get(platform, 0) + 1
            self.in_flight[platform] = n
            self.peak_in_flight[platform] = max(self.peak_in_flight.get(platform, 0), n)

    def request_finished(self, platform: str) -> None:
        with self.lock:
            self.in_flight[platform] = self.in_flight.get(platform, 1) - 1

    def concurrency(self, *, reset: bool = False) -> dict[str, dict[str, int]]:
        with self.lock:
            out = {"in_flight": dict(self.in_flight), "peak": dict(self.peak_in_flight)}
            if reset:
                self.peak_in_flight = {p: n for p, n in self.in_flight.items() if n}
            return out

    def record_request(self, platform: str, method: str, path: str, query: str, body: Any = None, status: int = 0) -> None:
        with self.lock:
            if len(self.requests) < self.request_log_limit:
                self.requests.append({"platform": platform, "method": method, "path": path, "query": query,
                                      "body": body, "status": status, "at": self.now().isoformat()})

    # -- reporting -------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "now": self.now().isoformat(),
                "mentions": {p.value: len(v) for p, v in self.mentions.items()},
                "posts": {p.value: [_ser(asdict(x)) for x in v] for p, v in self.posts.items()},
                "scheduled": {p.value: [_ser(asdict(x)) for x in v.values()] for p, v in self.scheduled.items()},
                "hidden": {p.value: sorted(v) for p, v in self.hidden.items()},
                "requests": len(self.requests),
            }


def _ser(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in d.items()}


def make_id(platform: Platform, n: int) -> str:
    """Ids shaped like each platform's own."""
    if platform in (Platform.X, Platform.MASTODON):
        return str(1_800_000_000_000_000_000 + n)
    if platform is Platform.FACEBOOK:
        return f"100000000000001_{700000000000 + n}"
    if platform is Platform.INSTAGRAM:
        return str(17_900_000_000_000_000 + n)
    if platform is Platform.LINKEDIN:
        return f"urn:li:share:{7_000_000_000_000_000_000 + n}"
    if platform is Platform.BLUESKY:
        return f"3l{n:011d}"  # record key (TID-like); at-uri built by the router
    raise ValueError(platform)
