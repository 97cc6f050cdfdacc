"""What Facebook Pages and Instagram share: Meta's Graph API conventions.

- `GraphErrorTransport`: Graph answers most failures with HTTP 400 and a code in the body
  (`{"error": {"message","type","code","error_subcode","fbtrace_id"}}`), and announces its
  budget as percentages in `X-App-Usage` / `X-Business-Use-Case-Usage` / `X-Page-Usage`.
  ApiClient only understands HTTP statuses and the usual rate-limit headers, so this
  adapter, sitting under ApiClient as its transport, maps Graph codes onto the statuses
  ApiClient already translates (throttling -> 429 + Retry-After, OAuth -> 401,
  permissions -> 403, transient -> 503, duplicate post -> 409) and the usage percentages
  onto `X-RateLimit-*`. The translation to Firebreak errors therefore stays in one place.
- `Watermark` / `WindowAccumulator`: a compact high-water mark (it must fit the store's
  256-character column) that does not lose comments that arrive on one post while the
  drain is busy with another. Also used by LinkedIn, which has the same many-threads shape.
- Opaque drain cursors (`encode_cursor` / `decode_cursor`) and Graph time parsing.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import httpx

from firebreak.config.settings import PlatformSettings
from firebreak.connectors.base import Connector
from firebreak.domain import Mention, MentionPage
from firebreak.errors import ConfigError, NotSupported

# Graph error codes that mean "slow down" (app, user, page, custom and business-use-case limits).
THROTTLE_CODES = frozenset({4, 17, 32, 613, 80001, 80002, 80004, 80005, 80006, 80008, 80014})
AUTH_CODES = frozenset({102, 190, 2500})  # bad, expired or missing token: 401 -> one refresh_auth()
PERMISSION_CODES = frozenset({3, 10, *range(200, 300)})  # app or token lacks a permission: 403
TRANSIENT_CODES = frozenset({1, 2})  # "unknown error" / "service temporarily unavailable"
DUPLICATE_POST_CODE = 506  # "Duplicate status message": the same text is already on the page
# Without an `estimated_time_to_regain_access`, Graph's windows are rolling hours; wait this long.
DEFAULT_THROTTLE_S = 300.0


# -- errors and usage headers ---------------------------------------------------------------
def graph_usage(headers: httpx.Headers) -> tuple[float, float]:
    """(highest usage percentage, seconds until access is regained) from Graph's usage headers."""
    pct, regain_min = 0.0, 0.0

    def scan(obj: Any) -> None:
        nonlocal pct, regain_min
        if isinstance(obj, dict):
            for key in ("call_count", "total_time", "total_cputime", "acc_id_util_pct"):
                if isinstance(obj.get(key), (int, float)):
                    pct = max(pct, float(obj[key]))
            if isinstance(obj.get("estimated_time_to_regain_access"), (int, float)):
                regain_min = max(regain_min, float(obj["estimated_time_to_regain_access"]))
            for v in obj.values():
                if isinstance(v, (dict, list)):
                    scan(v)
        elif isinstance(obj, list):
            for v in obj:
                scan(v)

    for name in ("x-app-usage", "x-business-use-case-usage", "x-page-usage", "x-ad-account-usage"):
        raw = headers.get(name)
        if raw:
            try:
                scan(json.loads(raw))
            except ValueError:
                continue
    return pct, regain_min * 60.0


def graph_error(body: bytes) -> dict[str, Any] | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    err = data.get("error") if isinstance(data, dict) else None
    return err if isinstance(err, dict) else None


class GraphErrorTransport(httpx.BaseTransport):
    """Wraps the real transport; never sleeps, never retries (ApiClient decides that)."""

    def __init__(self, inner: httpx.BaseTransport):
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        pct, regain_s = graph_usage(resp.headers)
        if pct:
            # Percent used -> a budget of 100 "units" ApiClient's RateLimitState understands:
            # at 100% the next call is refused up front instead of earning an error code 4.
            resp.headers["x-ratelimit-limit"] = "100"
            resp.headers["x-ratelimit-remaining"] = str(max(0, int(100 - pct)))
            if pct >= 100:
                resp.headers["x-ratelimit-reset"] = str(int(regain_s or DEFAULT_THROTTLE_S))
        if resp.status_code < 400:
            return resp
        body = resp.read()
        resp.close()
        err = graph_error(body) or {}
        code = err.get("code")
        status = resp.status_code
        headers = {k: v for k, v in resp.headers.items()
                   if k.lower() not in ("content-encoding", "content-length", "transfer-encoding")}
        if code in THROTTLE_CODES:
            status = 429
            headers["retry-after"] = str(int(regain_s or DEFAULT_THROTTLE_S))
        elif code in AUTH_CODES:
            status = 401
        elif code in PERMISSION_CODES:
            status = 403
        elif code in TRANSIENT_CODES and err.get("is_transient", True):
            status = 503
        elif code == DUPLICATE_POST_CODE:
            status = 409
        return httpx.Response(status, headers=headers, content=body, request=request)

    def close(self) -> None:
        self.inner.close()


def wrap_transport(transport: httpx.BaseTransport | None) -> GraphErrorTransport:
    return GraphErrorTransport(transport or httpx.HTTPTransport())


# -- time --------------------------------------------------------------------------------------
def parse_time(value: str | int | float | None) -> datetime:
    """Graph: '2026-03-02T12:00:00+0000'; LinkedIn: epoch milliseconds. Always aware UTC."""
    if value is None or value == "":
        return datetime.fromtimestamp(0, timezone.utc)
    if isinstance(value, (int, float)):
        return datetime.fromtimestamp(value / 1000.0, timezone.utc)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def to_ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


# -- cursors -----------------------------------------------------------------------------------
def encode_cursor(state: dict[str, Any]) -> str:
    raw = json.dumps(state, separators=(",", ":"), sort_keys=True).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> dict[str, Any] | None:
    if not cursor:
        return None
    pad = "=" * (-len(cursor) % 4)
    try:
        data = json.loads(base64.urlsafe_b64decode(cursor + pad))
    except (ValueError, TypeError):
        raise ConfigError(f"unreadable mention cursor {cursor[:40]!r}") from None
    return data if isinstance(data, dict) else None


# -- high-water mark -----------------------------------------------------------------------------
_HASH_LEN = 5  # 30 bits: a collision inside one window of a few dozen ids is ~1e-6
_BUDGET = 256  # IngestCursor.high_water is String(256)
_KEEP = 2 * _BUDGET // _HASH_LEN  # more ids than the watermark can hold, never more than needed


def id_hash(item_id: str) -> str:
    digest = hashlib.blake2b(item_id.encode(), digest_size=6).digest()
    return base64.urlsafe_b64encode(digest).decode()[:_HASH_LEN]


@dataclass(frozen=True)
class Watermark:
    """Everything created before `start` (ms) was ingested; in [start, top] exactly the ids
    whose hashes are in `seen` were. A later drain re-reads from `start`, so a comment that
    landed on post A while the previous drain was reading post B (older than the newest item
    that drain saw, but never returned) is still found. The lag bounds that protection."""

    start: int
    top: int
    seen: frozenset[str]

    @classmethod
    def parse(cls, value: str | None) -> "Watermark | None":
        if not value:
            return None
        try:
            tag, start, top, hashes = value.split(":", 3)
            if tag != "w1":
                raise ValueError(tag)
            seen = frozenset(hashes[i:i + _HASH_LEN] for i in range(0, len(hashes), _HASH_LEN))
            return cls(int(start), int(top), seen)
        except ValueError:
            raise ConfigError(f"unreadable high-water mark {value[:40]!r}") from None

    def is_new(self, ts_ms: int, item_id: str) -> bool:
        return ts_ms >= self.start and id_hash(item_id) not in self.seen

    def dump(self) -> str:
        return f"w1:{self.start}:{self.top}:{''.join(sorted(self.seen))}"


@dataclass
class WindowAccumulator:
    """Collects (time, id-hash) of the items a drain sees inside the window; carried in the
    drain cursor between pages and turned into the next Watermark at the end.

    Only the newest `_KEEP` items (plus ties) are kept, because the watermark can hold no
    more than that anyway; `pruned_below` remembers where that cut fell so the watermark
    never claims to know ids it no longer has."""

    lag_ms: int
    floor: int = 0  # previous watermark's start: nothing older was re-read, so nothing older is known
    top: int = 0
    items: list[tuple[int, str]] = field(default_factory=list)
    pruned_below: int = 0

    def add(self, ts_ms: int, item_id: str) -> None:
        if ts_ms < self.floor:
            return
        self.top = max(self.top, ts_ms)
        self.items.append((ts_ms, id_hash(item_id)))
        if len(self.items) > 2 * _KEEP:  # amortised: prune halves the list at most every _KEEP adds
            self._prune()

    def _prune(self) -> None:
        kept = sorted({(t, h) for t, h in self.items if t >= self.top - self.lag_ms}, reverse=True)
        if len(kept) > _KEEP:
            boundary = kept[_KEEP - 1][0]
            self.pruned_below = max(self.pruned_below, boundary)
            kept = [(t, h) for t, h in kept if t >= boundary]
        self.items = kept

    def result(self, previous: Watermark | None) -> str | None:
        if not self.items:
            return previous.dump() if previous else None
        top = max(self.top, previous.top if previous else 0)
        start = max(top - self.lag_ms, self.floor, self.pruned_below)
        kept = sorted({(t, h) for t, h in self.items if t >= start}, reverse=True)
        room = (_BUDGET - len(f"w1:{start}:{top}:")) // _HASH_LEN
        if len(kept) > room:
            # Too many ids for the column: shrink the window to the newest ones, never
            # splitting one timestamp (an id left out of a window would be returned again).
            boundary = kept[room - 1][0]
            start = boundary + 1 if kept[room][0] == boundary else boundary
            kept = [(t, h) for t, h in kept if t >= start]
        return Watermark(start, top, frozenset(h for _, h in kept)).dump()

    def to_json(self) -> dict[str, Any]:
        self._prune()
        return {"lag": self.lag_ms, "floor": self.floor, "top": self.top, "cut": self.pruned_below,
                "items": [list(i) for i in self.items]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> "WindowAccumulator":
        return cls(int(data["lag"]), int(data["floor"]), int(data["top"]),
                   [(int(t), str(h)) for t, h in data.get("items", [])], int(data.get("cut", 0)))

    @classmethod
    def start_for(cls, previous: Watermark | None, lag_ms: int) -> "WindowAccumulator":
        return cls(lag_ms, previous.start if previous else 0)


# -- the drain both Graph connectors share ------------------------------------------------------
class GraphConnector(Connector):
    """Facebook Page and Instagram: comments are threads under the brand's own posts, so a
    comments drain walks the newest `max_posts` posts (newest first) and each post's
    comments; a mentions drain walks one edge, newest first. One fetch_mentions call makes
    at most `max_calls` requests and returns as soon as it has something, so a crash costs at
    most one page (the cursor after each page is enough to resume)."""

    api_host = "https://graph.facebook.com"
    # Comments that arrive on one post while the drain reads another are found next time if
    # they are at most this much older than the newest item seen (see Watermark).
    lag_ms: int = 15 * 60 * 1000
    max_posts: int = 50
    max_calls: int = 8
    page_size: int = 50

    # per platform
    posts_edge: str
    post_fields: tuple[str, ...]
    comment_fields: tuple[str, ...]
    mention_edge: str
    mention_fields: tuple[str, ...]
    comments_newest_first: bool = False  # True where `order=reverse_chronological` is honoured

    def __init__(self, settings: PlatformSettings, *, handle: str, account_id: str, keywords: list[str],
                 transport: httpx.BaseTransport | None = None):
        super().__init__(settings, handle=handle, account_id=account_id, keywords=keywords,
                         transport=wrap_transport(transport))

    # hooks ------------------------------------------------------------------------------------
    def comment_params(self, since: Watermark | None) -> dict[str, Any]:
        return {}

    def map_comment(self, item: dict[str, Any], post_id: str) -> Mention | None:
        raise NotImplementedError

    def map_mention(self, item: dict[str, Any]) -> Mention | None:
        raise NotImplementedError

    def item_time(self, item: dict[str, Any]) -> datetime:
        return parse_time(item.get("created_time") or item.get("timestamp"))

    # drain ------------------------------------------------------------------------------------
    def fetch_mentions(self, stream: str, *, since: str | None, cursor: str | None, limit: int = 100) -> MentionPage:
        if stream not in self.streams:
            raise NotSupported(self.platform.value, f"no mention stream {stream!r}; streams: {self.streams}")
        wm = Watermark.parse(since)
        limit = max(1, min(limit, 100))
        if stream == "comments":
            return self._drain_comments(wm, decode_cursor(cursor), limit)
        return self._drain_edge(wm, decode_cursor(cursor), limit)

    def _accept(self, wm: Watermark | None, acc: WindowAccumulator, item: dict[str, Any]) -> bool:
        ts = to_ms(self.item_time(item))
        acc.add(ts, str(item["id"]))
        return wm is None or wm.is_new(ts, str(item["id"]))

    def _drain_comments(self, wm: Watermark | None, st: dict[str, Any] | None, limit: int) -> MentionPage:
        if st is None:
            st = {"acc": WindowAccumulator.start_for(wm, self.lag_ms).to_json(), "posts_after": None,
                  "posts_done": False, "queue": [], "scanned": 0, "post": None, "after": None}
        acc = WindowAccumulator.from_json(st["acc"])
        out: list[Mention] = []
        calls = 0
        while calls < self.max_calls and not out:
            if st["post"] is None:
                if st["queue"]:
                    st["post"], st["after"] = st["queue"].pop(0), None
                    continue
                if st["posts_done"]:
                    break
                params: dict[str, Any] = {"fields": ",".join(self.post_fields), "limit": 25}
                if st["posts_after"]:
                    params["after"] = st["posts_after"]
                page = self.http.get_json(f"{self.account_id}/{self.posts_edge}", params=params)
                calls += 1
                room = self.max_posts - st["scanned"]
                ids = [str(p["id"]) for p in page.get("data", [])][:room]
                st["queue"].extend(ids)
                st["scanned"] += len(ids)
                st["posts_after"] = _next_after(page)
                st["posts_done"] = st["posts_after"] is None or st["scanned"] >= self.max_posts
                continue
            params = {"fields": ",".join(self.comment_fields), "limit": limit, **self.comment_params(wm)}
            if st["after"]:
                params["after"] = st["after"]
            page = self.http.get_json(f"{st['post']}/comments", params=params)
            calls += 1
            older_reached = False
            for item in page.get("data", []):
                if self._accept(wm, acc, item):
                    m = self.map_comment(item, st["post"])
                    if m is not None:
                        out.append(m)
                elif self.comments_newest_first and wm is not None and to_ms(self.item_time(item)) < wm.start:
                    older_reached = True
            st["after"] = None if older_reached else _next_after(page)
            if st["after"] is None:
                st["post"] = None
        done = st["post"] is None and not st["queue"] and st["posts_done"]
        if done:
            return MentionPage(out, None, acc.result(wm))
        st["acc"] = acc.to_json()
        return MentionPage(out, encode_cursor(st))

    def _drain_edge(self, wm: Watermark | None, st: dict[str, Any] | None, limit: int) -> MentionPage:
        """One edge, newest first (Graph's order for `tagged` and `tags`): stop at the window."""
        if st is None:
            st = {"acc": WindowAccumulator.start_for(wm, self.lag_ms).to_json(), "after": None}
        acc = WindowAccumulator.from_json(st["acc"])
        params: dict[str, Any] = {"fields": ",".join(self.mention_fields), "limit": limit}
        if st["after"]:
            params["after"] = st["after"]
        page = self.http.get_json(f"{self.account_id}/{self.mention_edge}", params=params)
        out: list[Mention] = []
        older_reached = False
        for item in page.get("data", []):
            if self._accept(wm, acc, item):
                m = self.map_mention(item)
                if m is not None:
                    out.append(m)
            elif wm is not None and to_ms(self.item_time(item)) < wm.start:
                older_reached = True
        after = None if older_reached else _next_after(page)
        if after is None:
            return MentionPage(out, None, acc.result(wm))
        st.update(acc=acc.to_json(), after=after)
        return MentionPage(out, encode_cursor(st))

    # shared lookups -----------------------------------------------------------------------------
    def iter_edge(self, path: str, fields: tuple[str, ...], *, page_size: int = 25,
                  max_pages: int = 20) -> Iterable[dict[str, Any]]:
        """Items of a Graph edge across pages (bounded: a lookup, not a drain)."""
        params: dict[str, Any] = {"fields": ",".join(fields), "limit": page_size}
        for _ in range(max_pages):
            page = self.http.get_json(path, params=params)
            yield from page.get("data", [])
            after = _next_after(page)
            if after is None:
                return
            params = {**params, "after": after}


def _next_after(page: dict[str, Any]) -> str | None:
    """Graph signals the last page by leaving out `paging.next`, not by an empty cursor."""
    paging = page.get("paging") or {}
    if not paging.get("next"):
        return None
    after = (paging.get("cursors") or {}).get("after")
    return str(after) if after else None
