"""What Facebook Pages and Instagram share: Meta's Graph API conventions.

- `GraphErrorTransport`: Graph answers most failures with HTTP 400 and a code in the body
  (`{"error": {"message","type","code","error_subcode","fbtrace_id"}}`), and announces its
  budget as percentages in `X-App-Usage` / `X-Business-Use-Case-Usage` / `X-Page-Usage`.
  ApiClient only understands HTTP statuses and the usual rate-limit headers, so this
  adapter, sitting under ApiClient as its transport, maps Graph codes onto the statuses
  ApiClient already translates (throttling -> 429 + Retry-After, OAuth -> 401,
  permissions -> 403, transient -> 503, duplicate post -> 409) and the usage percentages
  onto `X-RateLimit-*`. The translation to Firebreak errors therefore stays in one place.
- `GraphConnector`: the comments drain is the shared own-posts -> comments walk
  (`_comments.CommentsPager`, also used by LinkedIn, which has the same many-threads shape);
  this module supplies Graph's side of it (edges, fields, `paging.cursors.after`). The
  mentions drain reads one edge with the same high-water window (`Watermark`,
  `WindowAccumulator`, which live in `_comments` and are re-exported here).
- Graph time parsing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timezone
from typing import Any

import httpx

from firebreak.config.settings import PlatformSettings
from firebreak.connectors._comments import (
    CommentsPage,
    CommentsPager,
    PostsPage,
    Position,
    Watermark as Watermark,
    WindowAccumulator as WindowAccumulator,
    decode_cursor as decode_cursor,
    encode_cursor as encode_cursor,
)
from firebreak.connectors.base import Connector
from firebreak.domain import Mention, MentionPage
from firebreak.errors import NotSupported

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


# -- the drain both Graph connectors share ------------------------------------------------------
class GraphConnector(Connector):
    """Facebook Page and Instagram: comments are threads under the brand's own posts, so a
    comments drain is the shared walk (`CommentsPager`) over the newest `max_posts` posts
    (newest first) and each post's comments; a mentions drain walks one edge, newest first.
    One fetch_mentions call makes at most `max_calls` requests and returns as soon as it has
    something, so a crash costs at most one page (the cursor after each page is enough to resume)."""

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
            return self._comments_pager().fetch(wm, cursor, limit)
        return self._drain_edge(wm, decode_cursor(cursor), limit)

    def _item_key(self, item: dict[str, Any]) -> tuple[int, str]:
        return to_ms(self.item_time(item)), str(item["id"])

    def _accept(self, wm: Watermark | None, acc: WindowAccumulator, item: dict[str, Any]) -> bool:
        ts, item_id = self._item_key(item)
        acc.add(ts, item_id)
        return wm is None or wm.is_new(ts, item_id)

    # Graph's side of the own-posts -> comments walk ------------------------------------------
    def _comments_pager(self) -> CommentsPager:
        return CommentsPager(posts_page=self._own_posts_page, comments_page=self._post_comments_page,
                             comment_key=self._item_key, to_mention=self.map_comment,
                             max_posts=self.max_posts, max_calls=self.max_calls, lag_ms=self.lag_ms,
                             newest_first=self.comments_newest_first)

    def _own_posts_page(self, after: Position, room: int) -> PostsPage:
        """A page of the account's posts; only the first `room` are read (and count)."""
        params: dict[str, Any] = {"fields": ",".join(self.post_fields), "limit": 25}
        if after:
            params["after"] = after
        page = self.http.get_json(f"{self.account_id}/{self.posts_edge}", params=params)
        ids = [str(p["id"]) for p in page.get("data", [])][:room]
        return PostsPage(ids, _next_after(page), counted=len(ids))

    def _post_comments_page(self, post_id: str, after: Position, limit: int,
                            since: Watermark | None) -> CommentsPage:
        params: dict[str, Any] = {"fields": ",".join(self.comment_fields), "limit": limit,
                                  **self.comment_params(since)}
        if after:
            params["after"] = after
        page = self.http.get_json(f"{post_id}/comments", params=params)
        return CommentsPage(page.get("data", []), _next_after(page))

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
