"""Mastodon 4.x connector.

Streams:
- "notifications": GET /api/v1/notifications?types[]=mention. Pages *forward* with
  min_id (Mastodon returns the items immediately newer than min_id and a Link rel="prev"
  to the next newer page), so the cursor itself is the high-water mark: a crash loses
  nothing and repeats at most one page. The drain ends on an empty page.
- "search": GET /api/v2/search?type=statuses, one query per brand keyword (Mastodon's
  query syntax has no portable OR). Search hits are newest first; we page backwards by
  max_id (Link rel="next") and stop at the previous high-water mark, which rides in the
  cursor. Older-than-since hits are dropped client-side, so this works whether a server
  treats min_id as a bound or as a forward cursor.

Publishing: POST /api/v1/statuses with the Idempotency-Key header (Mastodon returns the
first status for a repeated key for about an hour), so the write is safe to retry.
`find_published` scans GET /api/v1/accounts/{id}/statuses back to `since`.

Scheduled statuses (hold/release design): Mastodon has no pause, and `scheduled_at` must
be at least 5 minutes ahead. Holding moves the status HOLD_OFFSET (~1000 years) into the
future with PUT /api/v1/scheduled_statuses/{id}: same record, so text, media, poll,
visibility and reply target stay exactly as they were, and the original time is still
readable from the held time itself (held - HOLD_OFFSET). Hold is therefore idempotent
and crash-safe: `list_scheduled` shows a held status at its original time, and holding
it again writes the same value. Release moves it back to `when`; if Mastodon refuses that
as less than 5 minutes ahead *by its own clock* (which ours need not match: drills), it is
moved to `when` + 5.5 minutes, i.e. as soon as Mastodon allows. Cancel is DELETE.
Hiding replies does not exist for a Mastodon account (the API has no such call):
NotSupported from the base class.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timedelta, timezone
from typing import Any, ClassVar

import httpx

from firebreak.connectors.base import Connector
from firebreak.connectors._wire import decode_cursor, encode_cursor as _enc, parse_time as _time
from firebreak.domain import Mention, MentionPage, Platform, PublishResult, ScheduledPost
from firebreak.errors import RejectedRequest

NOTIFICATION_LIMIT = 80
SEARCH_LIMIT = 40
STATUS_LIMIT = 40
MIN_LEAD = timedelta(minutes=5, seconds=30)  # Mastodon's 5 minutes plus clock-skew margin
RELEASE_RETRIES = 5  # a time refused as too soon is retried 5.5, 11, 22, 44 and 88 minutes later
HOLD_OFFSET = timedelta(days=365_250)  # ~1000 years: unmistakably a hold, exactly reversible
HELD_FROM_YEAR = 2900
FIND_PAGES = 10
SCHEDULED_PAGES = 20

_TAG = re.compile(r"<[^>]+>")
_SPACE = re.compile(r"\s+")


def _iso(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def html_to_text(content: str) -> str:
    """Status `content` is HTML: paragraphs and <br> become newlines, links their text."""
    text = re.sub(r"<br\s*/?>", "\n", content, flags=re.I)
    text = re.sub(r"</p>\s*<p[^>]*>", "\n\n", text, flags=re.I)
    return html.unescape(_TAG.sub("", text)).strip()


def normalize_text(text: str) -> str:
    return _SPACE.sub(" ", text).strip()


def _link_param(resp: httpx.Response, rel: str, name: str) -> str | None:
    """A query parameter of the Link header's `rel` URL (Mastodon's pagination)."""
    link = resp.links.get(rel)
    if not link or "url" not in link:
        return None
    value = httpx.URL(link["url"]).params.get(name)
    return value or None


def _max_id(a: str | None, b: str | None) -> str | None:
    if not a:
        return b
    if not b:
        return a
    return a if int(a) >= int(b) else b


def original_time(scheduled_at: datetime) -> datetime:
    """The time a status was scheduled for before a hold (itself if not held)."""
    return scheduled_at - HOLD_OFFSET if scheduled_at.year >= HELD_FROM_YEAR else scheduled_at


class MastodonConnector(Connector):
    platform: ClassVar[Platform] = Platform.MASTODON
    streams: ClassVar[tuple[str, ...]] = ("search", "notifications")
    supports_scheduling: ClassVar[bool] = True
    max_length: ClassVar[int] = 500

    # -- listening -------------------------------------------------------------------------
    def fetch_mentions(self, stream: str, *, since: str | None, cursor: str | None, limit: int = 100) -> MentionPage:
        if stream == "notifications":
            return self._notifications(since, cursor, limit)
        if stream == "search":
            return self._search(since, cursor, limit)
        raise RejectedRequest(self.platform.value, f"unknown stream {stream!r}")

    def _notifications(self, since: str | None, cursor: str | None, limit: int) -> MentionPage:
        start = _dec(cursor)["min"] if cursor else (since or "0")
        resp = self.http.request("GET", "/api/v1/notifications", params={
            "types[]": ["mention"], "limit": min(max(limit, 1), NOTIFICATION_LIMIT), "min_id": start})
        items = resp.json()
        if not items:
            return MentionPage([], None, None if start == "0" else start)
        newest = _link_param(resp, "prev", "min_id") or max((n["id"] for n in items), key=int)
        mentions = [self._mention(n["status"]) for n in items
                    if n.get("type") == "mention" and n.get("status") and not self._own(n["status"])]
        return MentionPage(mentions, _enc({"min": newest}), None)

    def _search(self, since: str | None, cursor: str | None, limit: int) -> MentionPage:
        terms = [k.strip() for k in self.keywords if k.strip()]
        st: dict[str, Any] = _dec(cursor) if cursor else {"k": 0, "max": None, "since": since, "hw": None}
        if not terms:
            return MentionPage([], None, since)
        k = int(st["k"])
        floor = int(st["since"]) if st.get("since") else 0
        size = min(max(limit, 1), SEARCH_LIMIT)
        params: dict[str, Any] = {"q": terms[k], "type": "statuses", "resolve": "false", "limit": size}
        if st.get("max"):
            params["max_id"] = st["max"]
        # No min_id: servers differ on whether it bounds search hits or pages forward from
        # them; hits at or below the high-water mark are dropped here instead.
        resp = self.http.request("GET", "/api/v2/search", params=params)
        statuses = resp.json().get("statuses") or []
        fresh = [s for s in statuses if int(s["id"]) > floor]
        hw = st.get("hw")
        for s in fresh:
            hw = _max_id(hw, s["id"])
        mentions = [self._mention(s) for s in fresh if not self._own(s)]
        keyword_done = not statuses or len(fresh) < len(statuses) or len(statuses) < size
        if not keyword_done:
            older = _link_param(resp, "next", "max_id") or min((s["id"] for s in statuses), key=int)
            return MentionPage(mentions, _enc({**st, "max": older, "hw": hw}), None)
        if k + 1 < len(terms):
            return MentionPage(mentions, _enc({**st, "k": k + 1, "max": None, "hw": hw}), None)
        return MentionPage(mentions, None, hw or st.get("since"))

    def _own(self, status: dict[str, Any]) -> bool:
        return str((status.get("account") or {}).get("id")) == self.account_id

    def _mention(self, s: dict[str, Any]) -> Mention:
        acct = s.get("account") or {}
        reply = s.get("in_reply_to_account_id") == self.account_id and s.get("in_reply_to_id")
        return Mention(
            platform=self.platform,
            platform_id=str(s["id"]),
            text=html_to_text(s.get("content") or ""),
            created_at=_time(s.get("created_at")),
            author=acct.get("acct", ""),
            kind="reply" if reply else "mention",
            url=s.get("url") or s.get("uri") or "",
            lang_hint=s.get("language") or "",
            reply_to=str(s.get("in_reply_to_id") or ""),
            author_followers=int(acct.get("followers_count") or 0),
            engagement=sum(int(s.get(k) or 0) for k in ("favourites_count", "reblogs_count", "replies_count")),
        )

    # -- publishing ------------------------------------------------------------------------
    def publish(self, text: str, *, idempotency_key: str, reply_to: str | None = None) -> PublishResult:
        payload: dict[str, Any] = {"status": text, "visibility": "public"}
        if reply_to:
            payload["in_reply_to_id"] = reply_to
        # The Idempotency-Key makes this POST safe to resend on a timeout or 5xx.
        s = self.http.request("POST", "/api/v1/statuses", json=payload,
                              headers={"Idempotency-Key": idempotency_key}, idempotent=True).json()
        return PublishResult(self.platform, str(s["id"]), s.get("url") or "", _time(s.get("created_at")))

    def find_published(self, text: str, *, idempotency_key: str, since: datetime) -> PublishResult | None:
        want = normalize_text(text)
        params: dict[str, Any] = {"limit": STATUS_LIMIT, "exclude_reblogs": "true"}
        for _ in range(FIND_PAGES):
            resp = self.http.request("GET", f"/api/v1/accounts/{self.account_id}/statuses", params=params)
            statuses = resp.json()
            for s in statuses:
                if normalize_text(html_to_text(s.get("content") or "")) == want:
                    return PublishResult(self.platform, str(s["id"]), s.get("url") or "", _time(s.get("created_at")))
            older = _link_param(resp, "next", "max_id")
            if not statuses or not older or _time(statuses[-1].get("created_at")) < since:
                return None
            params["max_id"] = older
        return None

    # -- scheduled posts -------------------------------------------------------------------
    def list_scheduled(self) -> list[ScheduledPost]:
        out: list[ScheduledPost] = []
        params: dict[str, Any] = {"limit": STATUS_LIMIT}
        for _ in range(SCHEDULED_PAGES):
            resp = self.http.request("GET", "/api/v1/scheduled_statuses", params=params)
            items = resp.json()
            out.extend(self._scheduled(s) for s in items)
            older = _link_param(resp, "next", "max_id")
            if not items or not older:
                break
            params["max_id"] = older
        return out

    def _scheduled(self, s: dict[str, Any]) -> ScheduledPost:
        media = tuple(m.get("url") or m.get("remote_url") or str(m.get("id")) for m in s.get("media_attachments") or [])
        return ScheduledPost(self.platform, str(s["id"]), (s.get("params") or {}).get("text") or "",
                             original_time(_time(s.get("scheduled_at"))), media)

    def is_held(self, post_id: str) -> bool:
        s = self.http.get_json(f"/api/v1/scheduled_statuses/{post_id}")
        return _time(s.get("scheduled_at")).year >= HELD_FROM_YEAR

    def hold_scheduled(self, post: ScheduledPost) -> None:
        held = original_time(post.scheduled_at) + HOLD_OFFSET
        self.http.request("PUT", f"/api/v1/scheduled_statuses/{post.platform_id}", json={"scheduled_at": _iso(held)})

    def release_scheduled(self, post: ScheduledPost, when: datetime) -> ScheduledPost:
        """Move the post to `when`. Mastodon refuses a time less than 5 minutes ahead of its own
        clock ("must be in the future"); then the post gets a later time, further each try, so a
        slow answer or a fast clock (a drill) never turns a resume into a failure."""
        path = f"/api/v1/scheduled_statuses/{post.platform_id}"
        leads = [timedelta(0), *(MIN_LEAD * 2**k for k in range(RELEASE_RETRIES))]
        for i, lead in enumerate(leads):
            try:
                s = self.http.request("PUT", path, json={"scheduled_at": _iso(when + lead)}).json()
                return self._scheduled(s)
            except RejectedRequest as exc:
                if exc.status != 422 or "future" not in str(exc) or i == len(leads) - 1:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def cancel_scheduled(self, post: ScheduledPost) -> None:
        self.http.request("DELETE", f"/api/v1/scheduled_statuses/{post.platform_id}")


def _dec(cursor: str) -> dict[str, Any]:
    return decode_cursor("mastodon", cursor)
