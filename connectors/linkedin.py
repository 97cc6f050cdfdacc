"""LinkedIn organization connector (REST API, `/rest/*`, versioned).

LinkedIn publishes no machine-readable spec; this follows its documented Posts and Social
Actions APIs (Community Management). Every request carries `LinkedIn-Version: YYYYMM` and
`X-Restli-Protocol-Version: 2.0.0`; URNs in paths and query strings are URL-encoded.

Endpoints:
- comments on the organization's posts: `GET /rest/posts?q=author&author={org}` (newest
  first, offset paging), then `GET /rest/socialActions/{post-urn}/comments` (offset paging,
  no `since`: the high-water window filters here);
- publish: `POST /rest/posts` (`author`, `commentary`, `visibility`, `distribution`,
  `lifecycleState: PUBLISHED`); the new URN comes back in the `x-restli-id` header. Replies:
  `POST /rest/socialActions/{urn}/comments`. No idempotency key: `find_published` matches the
  commentary among the organization's posts. `commentary` is "little text": reserved
  characters are backslash-escaped on the way out and unescaped when matching;
- hiding comments: LinkedIn offers an organization no way to hide other members' comments
  (only deletion, which Firebreak never does to third-party content) -> NotSupported.

Scheduling: LinkedIn itself has no scheduled posts. Scheduling tools keep a DRAFT post
(`lifecycleState: DRAFT`) and publish it at the time *they* store. Firebreak models that
tool's record as `SCHEDULE_FIELD` on the draft (`{"publishAt": epoch-ms, "state":
"SCHEDULED"|"HELD"}`), which the sandbox emulates beside LinkedIn's own fields and updates
through LinkedIn's `PARTIAL_UPDATE`. Against production LinkedIn this field does not exist:
there these operations must go to the scheduling tool's API (or Firebreak's own queue);
drafts without a schedule record are ignored because nothing publishes them on its own.
- hold: `$set` the record to HELD (time kept, so release can restore it exactly);
- release: `$set` SCHEDULED at the new time; the scheduler publishes it when due (a time
  already past means its next pass), so no clock on this side has to agree with the server's;
- cancel: `DELETE /rest/posts/{urn}` of the organization's own draft only.

Rate limits are daily and reset at midnight UTC; LinkedIn answers a spent budget with a bare
429, which `DailyLimitTransport` turns into a Retry-After until the next UTC midnight.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any, ClassVar
from urllib.parse import quote

import httpx
from firebreak.config.settings import PlatformSettings
from firebreak.connectors._comments import CommentsPage, CommentsPager, PostsPage, Position, Watermark
from firebreak.connectors._graph import parse_time, to_ms
from firebreak.connectors.base import Connector
from firebreak.connectors.ratelimit import next_midnight_utc

from firebreak.domain import (
    Mention,
    MentionPage,
    Platform,
    PublishResult,
    ScheduledPost,
)
from firebreak.errors import NotSupported, RejectedRequest, TransientError

API_VERSION = "202504"
SCHEDULE_FIELD = "x-schedule"
_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
_ESCAPED = re.compile(r"\\([\\|{}@\[\]()<>#*_~])")


def escape_little_text(text: str) -> str:
    return _RESERVED.sub(r"\\\1", text)


def unescape_little_text(text: str) -> str:
    return _ESCAPED.sub(r"\1", text)


_POST_URN = re.compile(r"^urn:li:(share|ugcPost):\d+$")


def _require_post_urn(urn: str) -> None:
    """Only share/ugcPost URNs address /rest/posts; a comment URN is refused before any request."""
    if not _POST_URN.match(urn):
        raise RejectedRequest("linkedin", f"{urn} is not a post URN; Firebreak only deletes or reschedules "
                                          "the organization's own posts")


def enc(urn: str) -> str:
    return quote(urn, safe="")


def _unnamed(platform: str, what: str, status: int) -> TransientError:
    """A 2xx that names no created entity: whether it was created is unknown, so the caller
    looks it up before sending again (never a success with an empty id)."""
    return TransientError(platform, f"LinkedIn answered {status} but named no {what} (no x-restli-id): "
                          "look it up before sending again", status=status)


class DailyLimitTransport(httpx.BaseTransport):
    """A 429 without any rate-limit header means the daily budget is spent until midnight UTC."""

    def __init__(self, inner: httpx.BaseTransport):
        self.inner = inner

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = self.inner.handle_request(request)
        if resp.status_code == 429:
            names = {k.lower() for k in resp.headers}
            if "retry-after" not in names and not any("ratelimit" in n or "rate-limit" in n for n in names):
                midnight = next_midnight_utc()
                resp.headers["retry-after"] = str(max(1, int(midnight - time.time())))
                # ...and an empty budget until then, so ApiClient refuses further calls up front.
                resp.headers["x-ratelimit-remaining"] = "0"
                resp.headers["x-ratelimit-reset"] = str(int(midnight))
        return resp

    def close(self) -> None:
        self.inner.close()


def _comment_key(item: dict[str, Any]) -> tuple[int, str]:
    """(creation time in epoch ms, comment URN) of a comment element."""
    return int((item.get("created") or {}).get("time") or 0), item.get("commentUrn") or str(item.get("id"))


def _upgrade_cursor(st: dict[str, Any]) -> dict[str, Any]:
    """Comment cursors stored before the shared pager kept the offsets as `posts_start` (which
    was also the `max_posts` budget used) and `start`; they resume exactly where they were."""
    if "posts_start" not in st:
        return st
    return {"acc": st["acc"], "posts_after": st["posts_start"], "posts_done": st["posts_done"],
            "queue": st["queue"], "scanned": st["posts_start"], "post": st["post"],
            "after": st["start"] if st["post"] is not None else None}


class LinkedInConnector(Connector):
    platform: ClassVar[Platform] = Platform.LINKEDIN
    streams: ClassVar[tuple[str, ...]] = ("comments",)
    supports_scheduling: ClassVar[bool] = True
    supports_hiding: ClassVar[bool] = False
    max_length: ClassVar[int] = 3000
    # LinkedIn's programmatic refresh (3-legged OAuth, refresh tokens for approved partners).
    oauth_token_url: ClassVar[str] = "https://www.linkedin.com/oauth/v2/accessToken"

    lag_ms: int = 15 * 60 * 1000
    max_posts: int = 50
    max_calls: int = 8
    posts_page: int = 25

    def __init__(self, settings: PlatformSettings, *, handle: str, account_id: str, keywords: list[str],
                 transport: httpx.BaseTransport | None = None):
        super().__init__(settings, handle=handle, account_id=account_id, keywords=keywords,
                         transport=DailyLimitTransport(transport or httpx.HTTPTransport()))

    def default_headers(self) -> dict[str, str]:
        return {**super().default_headers(), "LinkedIn-Version": API_VERSION,
                "X-Restli-Protocol-Version": "2.0.0"}

    # -- listening -------------------------------------------------------------------------
    def fetch_mentions(self, stream: str, *, since: str | None, cursor: str | None, limit: int = 100) -> MentionPage:
        if stream not in self.streams:
            raise NotSupported(self.platform.value, f"no mention stream {stream!r}; streams: {self.streams}")
        wm = Watermark.parse(since)
        limit = max(1, min(limit, 100))
        return self._comments_pager().fetch(wm, cursor, limit)

    # LinkedIn's side of the own-posts -> comments walk (offset paging throughout) ----------
    def _comments_pager(self) -> CommentsPager:
        return CommentsPager(posts_page=self._own_posts_page, comments_page=self._post_comments_page,
                             comment_key=_comment_key, to_mention=self._map_comment,
                             max_posts=self.max_posts, max_calls=self.max_calls, lag_ms=self.lag_ms,
                             upgrade=_upgrade_cursor)

    def _own_posts_page(self, start: Position, room: int) -> PostsPage:
        """A whole page of the organization's posts: every listed post (drafts too) counts
        against `max_posts`, only the published ones are read, and `room` trims nothing."""
        offset = int(start or 0)
        elements = self._posts_page(offset, self.posts_page)
        published = [e["id"] for e in elements if e.get("lifecycleState") == "PUBLISHED"]
        more = len(elements) >= self.posts_page
        return PostsPage(published, offset + len(elements) if more else None, counted=len(elements))

    def _post_comments_page(self, post_urn: str, start: Position, limit: int,
                            since: Watermark | None) -> CommentsPage:
        """No `since` on this endpoint: the pager's window filters. A short page, or the
        reported total reached, is the last one."""
        offset = int(start or 0)
        page = self.http.get_json(f"rest/socialActions/{enc(post_urn)}/comments",
                                  params={"start": offset, "count": limit})
        elements = page.get("elements", [])
        offset += len(elements)
        total = (page.get("paging") or {}).get("total")
        last = len(elements) < limit or (total is not None and offset >= int(total))
        return CommentsPage(elements, None if last else offset)

    def _posts_page(self, start: int, count: int) -> list[dict[str, Any]]:
        page = self.http.get_json("rest/posts", params={"q": "author", "author": self.account_id,
                                                        "start": start, "count": count, "sortBy": "CREATED"})
        return list(page.get("elements", []))

    def _iter_posts(self, max_pages: int = 20) -> Iterable[dict[str, Any]]:
        start = 0
        for _ in range(max_pages):
            elements = self._posts_page(start, self.posts_page)
            yield from elements
            if len(elements) < self.posts_page:
                return
            start += len(elements)

    def _map_comment(self, item: dict[str, Any], post_urn: str) -> Mention | None:
        actor = str(item.get("actor", ""))
        if actor == self.account_id:
            return None  # the organization's own replies
        _, cid = _comment_key(item)
        likes = int((item.get("likesSummary") or {}).get("totalLikes") or 0)
        replies = int((item.get("commentsSummary") or {}).get("aggregatedTotalComments") or 0)
        return Mention(
            platform=self.platform,
            platform_id=cid,
            text=str((item.get("message") or {}).get("text", "")),  # comments are plain text, not little text
            created_at=parse_time(int((item.get("created") or {}).get("time") or 0)),
            author=actor,  # member names need r_member lookups the org token does not have
            kind="comment",
            url=f"https://www.linkedin.com/feed/update/{post_urn}/?commentUrn={enc(cid)}",
            reply_to=post_urn,
            engagement=likes + replies,
        )

    # -- publishing ------------------------------------------------------------------------
    def publish(self, text: str, *, idempotency_key: str, reply_to: str | None = None) -> PublishResult:
        if reply_to:
            resp = self.http.request("POST", f"rest/socialActions/{enc(reply_to)}/comments",
                                     json={"actor": self.account_id, "object": reply_to,
                                           "message": {"text": text}})
            body = resp.json() if resp.content else {}
            remote = resp.headers.get("x-restli-id") or body.get("commentUrn") or str(body.get("id", ""))
            if not remote:
                raise _unnamed(self.platform, "comment", resp.status_code)
            return PublishResult(self.platform, remote)
        resp = self.http.request("POST", "rest/posts", json={
            "author": self.account_id,
            "commentary": escape_little_text(text),
            "visibility": "PUBLIC",
            "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                             "thirdPartyDistributionChannels": []},
            "lifecycleState": "PUBLISHED",
            "isReshareDisabledByAuthor": False,
        })
        urn = resp.headers.get("x-restli-id", "")
        if not urn:
            raise _unnamed(self.platform, "post", resp.status_code)
        return PublishResult(self.platform, urn, f"https://www.linkedin.com/feed/update/{urn}/")

    def find_published(self, text: str, *, idempotency_key: str, since: datetime) -> PublishResult | None:
        for post in self._iter_posts():
            created = parse_time(int(post.get("publishedAt") or post.get("createdAt") or 0))
            if created < since:
                return None  # sorted by creation, newest first
            if post.get("lifecycleState") == "PUBLISHED" and unescape_little_text(post.get("commentary", "")) == text:
                urn = str(post["id"])
                return PublishResult(self.platform, urn, f"https://www.linkedin.com/feed/update/{urn}/", created)
        return None

    # -- moderation ------------------------------------------------------------------------
    def hide(self, platform_id: str) -> None:
        raise NotSupported(self.platform.value,
                           "LinkedIn lets an organization delete but not hide members' comments; "
                           "Firebreak never deletes third-party content")

    # -- scheduled posts (drafts + the scheduling tool's record) ---------------------------
    def list_scheduled(self) -> list[ScheduledPost]:
        out = []
        for post in self._iter_posts():
            sched = post.get(SCHEDULE_FIELD)
            if post.get("lifecycleState") != "DRAFT" or not isinstance(sched, dict):
                continue
            if sched.get("state") != "SCHEDULED":
                continue  # held ones cannot go out; plain drafts have no schedule
            out.append(ScheduledPost(self.platform, str(post["id"]), unescape_little_text(post.get("commentary", "")),
                                     parse_time(int(sched["publishAt"]))))
        return out

    def hold_scheduled(self, post: ScheduledPost) -> None:
        self._check_own_draft(post.platform_id)
        self._set(post.platform_id, {SCHEDULE_FIELD: {"publishAt": to_ms(post.scheduled_at), "state": "HELD"}})

    def release_scheduled(self, post: ScheduledPost, when: datetime) -> ScheduledPost:
        self._check_own_draft(post.platform_id)
        self._set(post.platform_id, {SCHEDULE_FIELD: {"publishAt": to_ms(when), "state": "SCHEDULED"}})
        return ScheduledPost(self.platform, post.platform_id, post.text, when, post.media, post.source)

    def cancel_scheduled(self, post: ScheduledPost) -> None:
        self._check_own_draft(post.platform_id)
        self.http.request("DELETE", f"rest/posts/{enc(post.platform_id)}")

    def delete_own(self, platform_id: str) -> None:
        """Delete one of the organization's own posts; the author is checked first."""
        _require_post_urn(platform_id)
        post = self.http.get_json(f"rest/posts/{enc(platform_id)}")
        if post.get("author") != self.account_id:
            raise RejectedRequest(self.platform.value, f"{platform_id} is not the organization's own; Firebreak "
                                                       "never deletes third-party content")
        self.http.request("DELETE", f"rest/posts/{enc(platform_id)}")

    def _set(self, urn: str, fields: dict[str, Any]) -> None:
        # PARTIAL_UPDATE is idempotent ($set of the same values), so retries are safe.
        self.http.request("POST", f"rest/posts/{enc(urn)}", json={"patch": {"$set": fields}},
                          headers={"X-RestLi-Method": "PARTIAL_UPDATE"}, idempotent=True)

    def _check_own_draft(self, urn: str) -> None:
        """Only the organization's own drafts; one published meanwhile is a per-post failure."""
        _require_post_urn(urn)
        post = self.http.get_json(f"rest/posts/{enc(urn)}")
        if post.get("author") != self.account_id or post.get("lifecycleState") != "DRAFT":
            raise RejectedRequest(self.platform.value, f"{urn} is not a draft of {self.account_id}")
