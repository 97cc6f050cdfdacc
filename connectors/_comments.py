"""The walk over the brand's own recent posts and the comments under each, for platforms
where comments are threads under the brand's posts (several connectors share it).

- `CommentsPager`: lists the account's newest posts (at most `max_posts`), then pages
  through each post's comments. One `fetch` makes at most `max_calls` requests and returns
  as soon as it has something, so a crash costs at most one page: the cursor returned after
  each page is enough to resume exactly there. The platform supplies four small functions
  (one page of posts, one page of a post's comments, an item's time and id, an item's
  Mention) and never sees the walk's state; the pager never sees a URL or a payload shape.
- `Watermark` / `WindowAccumulator`: a compact high-water mark (it must fit the store's
  256-character column) that does not lose comments that arrive on one post while the
  walk is busy with another.
- Opaque cursors (`encode_cursor` / `decode_cursor`): JSON, URL-safe base64.

Cursor layout (JSON object, keys sorted): `acc` (the WindowAccumulator), `posts_after`
(where the next page of posts starts, in the platform's own terms: a token or an offset),
`posts_done`, `queue` (posts still to read), `scanned` (the `max_posts` budget used so far),
`post` (the post being read, or null) and `after` (where its next page of comments starts).
A connector whose stored cursors predate this layout passes an `upgrade` function.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from firebreak.domain import Mention, MentionPage
from firebreak.errors import ConfigError

# A position in one of the platform's paged lists, as the platform understands it (an opaque
# token, an offset); None is "from the beginning". Must survive a JSON round trip.
Position = str | int | None


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


# -- the walk ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PostsPage:
    """One page of the account's own posts, as the platform's lister returns it."""

    ids: list[str]  # posts whose comments are to be read, in this order
    next: Position  # where the next page of posts starts; None: there is none
    counted: int  # how much of the `max_posts` budget this page used


@dataclass(frozen=True)
class CommentsPage:
    """One page of a post's comments, as the platform's lister returns it."""

    items: list[dict[str, Any]]  # raw items, handed back to `comment_key` and `to_mention`
    next: Position  # where the post's next page of comments starts; None: there is none


@dataclass(frozen=True)
class CommentsPager:
    """Own posts -> their comments. Build one per fetch from the connector's own functions:

    - `posts_page(at, room)`: the page of the account's posts (newest first) starting at `at`;
      `room` is what is left of the `max_posts` budget, for a platform that trims to it.
    - `comments_page(post_id, at, limit, since)`: the page of the post's comments starting at
      `at`, at most `limit` items; `since` for a platform that can filter by time itself.
    - `comment_key(item)`: (creation time in epoch ms, id) of a comment.
    - `to_mention(item, post_id)`: the Mention, or None for items that are not mentions (the
      brand's own replies); every item still counts towards the high-water window.

    `newest_first`: the comments come newest first, so the first one older than the window
    ends that post. `upgrade`: turns a stored cursor of an earlier layout into this one."""

    posts_page: Callable[[Position, int], PostsPage]
    comments_page: Callable[[str, Position, int, Watermark | None], CommentsPage]
    comment_key: Callable[[dict[str, Any]], tuple[int, str]]
    to_mention: Callable[[dict[str, Any], str], Mention | None]
    max_posts: int
    max_calls: int
    lag_ms: int
    newest_first: bool = False
    upgrade: Callable[[dict[str, Any]], dict[str, Any]] | None = None

    def fetch(self, since: Watermark | None, cursor: str | None, limit: int) -> MentionPage:
        st = decode_cursor(cursor)
        if st is None:
            st = {"acc": WindowAccumulator.start_for(since, self.lag_ms).to_json(), "posts_after": None,
                  "posts_done": False, "queue": [], "scanned": 0, "post": None, "after": None}
        elif self.upgrade is not None:
            st = self.upgrade(st)
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
                posts = self.posts_page(st["posts_after"], self.max_posts - st["scanned"])
                calls += 1
                st["queue"].extend(posts.ids)
                st["scanned"] += posts.counted
                st["posts_after"] = posts.next
                st["posts_done"] = posts.next is None or st["scanned"] >= self.max_posts
                continue
            page = self.comments_page(st["post"], st["after"], limit, since)
            calls += 1
            older_reached = False
            for item in page.items:
                ts, item_id = self.comment_key(item)
                acc.add(ts, item_id)
                if since is None or since.is_new(ts, item_id):
                    m = self.to_mention(item, st["post"])
                    if m is not None:
                        out.append(m)
                elif self.newest_first and ts < since.start:
                    older_reached = True
            st["after"] = None if older_reached else page.next
            if st["after"] is None:
                st["post"] = None
        if st["post"] is None and not st["queue"] and st["posts_done"]:
            return MentionPage(out, None, acc.result(since))
        st["acc"] = acc.to_json()
        return MentionPage(out, encode_cursor(st))
