"""X (Twitter) API v2 connector.

Streams: "search" (GET /2/tweets/search/recent, the brand keywords) and "mentions"
(GET /2/users/{id}/mentions). Both return newest first and page backwards, so the newest
id of the first page is the next high-water mark: it rides inside the opaque cursor
through every page and is handed out on the last one.

Publishing: POST /2/tweets. X has no idempotency key, so a timed-out write is never
resent here; `find_published` looks the brand's own recent posts up
(GET /2/users/{id}/tweets) and matches the text. Hiding: PUT /2/tweets/{id}/hidden.
No scheduled posts on X (NotSupported from the base class).

Field names follow the supplied spec (X API v2.167), which calls tweets "posts":
`post.fields`, the `referenced_posts` expansion. Older names are still read from payloads.
"""

from __future__ import annotations

import html
import re
from datetime import datetime, timezone
from typing import Any, ClassVar

from firebreak.connectors.base import Connector
from firebreak.connectors._wire import decode_cursor, encode_cursor as _enc, parse_time as _time
from firebreak.domain import Mention, MentionPage, Platform, PublishResult
from firebreak.errors import RejectedRequest

POST_FIELDS = "created_at,lang,public_metrics,conversation_id"
EXPANSIONS = "author_id,in_reply_to_user_id,referenced_posts"
USER_FIELDS = "public_metrics,username"
MAX_QUERY = 512  # the Basic/Pro tier query length limit; the spec allows 4096
FIND_PAGES = 5  # find_published looks at most this many pages of own posts back

_URL = re.compile(r"https?://\S+")
_SPACE = re.compile(r"\s+")


def _newer(a: str | None, b: str | None) -> str | None:
    """The larger of two numeric ids (X ids are time-ordered snowflakes)."""
    if not a:
        return b
    if not b:
        return a
    return a if int(a) >= int(b) else b


def normalize_text(text: str) -> str:
    """What survives X's rendering: it escapes &<> and rewrites every URL to t.co."""
    return _SPACE.sub(" ", _URL.sub("<url>", html.unescape(text))).strip()


def build_query(keywords: list[str], username: str) -> str:
    """`(k1 OR "k 2" OR @h) -from:brand -is:retweet`, trimmed to the tier's length limit."""
    terms: list[str] = []
    for k in keywords:
        k = k.strip()
        if k:
            terms.append(f'"{k}"' if " " in k else k)
    suffix = f" -from:{username} -is:retweet" if username else " -is:retweet"
    while terms and len("(" + " OR ".join(terms) + ")" + suffix) > MAX_QUERY:
        terms.pop()
    return "(" + " OR ".join(terms) + ")" + suffix


class XConnector(Connector):
    platform: ClassVar[Platform] = Platform.X
    streams: ClassVar[tuple[str, ...]] = ("search", "mentions")
    supports_hiding: ClassVar[bool] = True
    max_length: ClassVar[int] = 280
    # OAuth 2.0 user context (the spec's securitySchemes): refresh_token grant, Basic client auth.
    oauth_token_url: ClassVar[str] = "/2/oauth2/token"
    oauth_basic_auth: ClassVar[bool] = True

    @property
    def username(self) -> str:
        return self.handle.lstrip("@")

    # -- listening -------------------------------------------------------------------------
    def fetch_mentions(self, stream: str, *, since: str | None, cursor: str | None, limit: int = 100) -> MentionPage:
        if stream not in self.streams:
            raise RejectedRequest(self.platform.value, f"unknown stream {stream!r}")
        st = _dec(cursor) if cursor else {"since": since, "hw": None, "tok": None}
        params: dict[str, Any] = {
            "max_results": min(max(limit, 10), 100),
            "post.fields": POST_FIELDS,
            "expansions": EXPANSIONS,
            "user.fields": USER_FIELDS,
        }
        if st.get("since"):
            params["since_id"] = st["since"]
        if stream == "search":
            params["query"] = build_query(self.keywords, self.username)
            if st.get("tok"):
                params["next_token"] = st["tok"]
            body = self.http.get_json("/2/tweets/search/recent", params=params)
        else:
            if st.get("tok"):
                params["pagination_token"] = st["tok"]
            body = self.http.get_json(f"/2/users/{self.account_id}/mentions", params=params)

        meta = body.get("meta") or {}
        users = {u.get("id"): u for u in (body.get("includes") or {}).get("users", [])}
        mentions = [self._mention(t, users) for t in body.get("data") or []
                    if t.get("author_id") != self.account_id]
        newest = meta.get("newest_id") or max((t["id"] for t in body.get("data") or []), key=int, default=None)
        hw = _newer(st.get("hw"), newest)
        token = meta.get("next_token")
        if token:
            return MentionPage(mentions, _enc({"since": st.get("since"), "hw": hw, "tok": token}), None)
        return MentionPage(mentions, None, hw or st.get("since"))

    def _mention(self, t: dict[str, Any], users: dict[str, dict[str, Any]]) -> Mention:
        user = users.get(t.get("author_id", ""), {})
        username = user.get("username", "")
        refs = t.get("referenced_posts") or t.get("referenced_tweets") or []
        parent = next((r.get("id", "") for r in refs if r.get("type") == "replied_to"), "")
        kind = "reply" if parent and t.get("in_reply_to_user_id") == self.account_id else "mention"
        pm = t.get("public_metrics") or {}
        engagement = sum(int(pm.get(k, 0) or 0) for k in
                         ("like_count", "repost_count", "retweet_count", "reply_count", "quote_count"))
        return Mention(
            platform=self.platform,
            platform_id=t["id"],
            text=html.unescape(t.get("text", "")),
            created_at=_time(t.get("created_at")),
            author=username,
            kind=kind,
            url=f"https://x.com/{username or 'i'}/status/{t['id']}",
            lang_hint="" if t.get("lang") in (None, "und", "qme", "zxx") else t["lang"],
            reply_to=parent,
            author_followers=int((user.get("public_metrics") or {}).get("followers_count", 0) or 0),
            engagement=engagement,
        )

    # -- publishing ------------------------------------------------------------------------
    def publish(self, text: str, *, idempotency_key: str, reply_to: str | None = None) -> PublishResult:
        # X has no idempotency key: the caller runs find_published before any retry, and
        # ApiClient never resends this POST unless the connection provably failed.
        payload: dict[str, Any] = {"text": text}
        if reply_to:
            payload["reply"] = {"in_reply_to_tweet_id": reply_to}
        data = self.http.request("POST", "/2/tweets", json=payload).json().get("data") or {}
        if not data.get("id"):
            raise RejectedRequest(self.platform.value, "POST /2/tweets answered without an id")
        return self._result(data["id"], None)

    def find_published(self, text: str, *, idempotency_key: str, since: datetime) -> PublishResult | None:
        want = normalize_text(text)
        params: dict[str, Any] = {
            "max_results": 100,
            "start_time": since.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "post.fields": "created_at",
        }
        for _ in range(FIND_PAGES):
            body = self.http.get_json(f"/2/users/{self.account_id}/tweets", params=params)
            for t in body.get("data") or []:
                if normalize_text(t.get("text", "")) == want:
                    return self._result(t["id"], t.get("created_at"))
            token = (body.get("meta") or {}).get("next_token")
            if not token:
                return None
            params["pagination_token"] = token
        return None

    def _result(self, post_id: str, created_at: str | None) -> PublishResult:
        url = f"https://x.com/{self.username}/status/{post_id}"
        return PublishResult(self.platform, post_id, url, _time(created_at))

    # -- moderation ------------------------------------------------------------------------
    def hide(self, platform_id: str) -> None:
        """Hide a reply in one of the brand's conversations (X allows nothing else)."""
        body = self.http.request("PUT", f"/2/tweets/{platform_id}/hidden", json={"hidden": True}).json()
        if not (body.get("data") or {}).get("hidden"):
            raise RejectedRequest(self.platform.value, f"reply {platform_id} was not hidden")


def _dec(cursor: str) -> dict[str, Any]:
    return decode_cursor("x", cursor)
