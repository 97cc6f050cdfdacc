"""Bluesky (AT Protocol) connector.

Auth: com.atproto.server.createSession with the handle and an app password gives an
access and a refresh token. ApiClient calls `refresh_auth` once after a 401
(com.atproto.server.refreshSession with the refresh token; a new session with the
password if that is refused). A real PDS answers an expired access token with 400
ExpiredToken rather than 401, so `_xrpc` treats that the same way.

Streams (both newest first, cursor paging backwards, high-water inside the cursor):
- "search": app.bsky.feed.searchPosts, sort=latest, since=high-water time, one query per
  brand keyword (the query syntax has no documented OR).
- "notifications": app.bsky.notification.listNotifications, reasons mention + reply;
  there is no `since`, so paging stops at the first item at or below the high-water.
The high-water is a JSON string: the newest sortAt seen and the uris at that instant
(searchPosts' `since` is inclusive; those uris are dropped next time).

Publishing: com.atproto.repo.createRecord of an app.bsky.feed.post with a record key
derived from the idempotency key. A second create with the same key fails on the PDS, so
a retry can never post twice; we then read the record back (com.atproto.repo.getRecord),
which is also `find_published`. Replies carry root+parent strong refs (looked up with
app.bsky.feed.getPostThread); facets mark links, hashtags and the replied-to handle with
UTF-8 byte offsets.

Hiding: a reply in a thread the brand started goes into the root post's
app.bsky.feed.threadgate `hiddenReplies` (putRecord, keeping `allow` and the existing
list, with swapRecord against concurrent edits). Anything else cannot be hidden on
Bluesky: NotSupported. `delete_own` deletes only records in the brand's own repo.
No scheduled posts on Bluesky.
"""

from __future__ import annotations

import hashlib
import json
import re
import threading
from datetime import UTC, datetime
from typing import Any, ClassVar

import grapheme
from firebreak.connectors._wire import decode_cursor
from firebreak.connectors._wire import encode_cursor as _enc
from firebreak.connectors._wire import parse_time as _time
from firebreak.connectors.base import Connector

from firebreak.clock import Clock, SystemClock
from firebreak.domain import Mention, MentionPage, Platform, PublishResult
from firebreak.errors import AuthError, NotSupported, PolicyViolation, RejectedRequest

POST = "app.bsky.feed.post"
THREADGATE = "app.bsky.feed.threadgate"
TID_ALPHABET = "234567abcdefghijklmnopqrstuvwxyz"
# Derived record keys carry a timestamp inside this past year, so they are valid,
# plausible TIDs that never claim to come from the future.
TID_EPOCH_US = 1_672_531_200_000_000  # 2023-01-01
TID_SPAN_US = 365 * 24 * 3600 * 1_000_000
MAX_HIDDEN = 300

_URL = re.compile(r"https?://[^\s]+")
_TAG = re.compile(r"(?<![\w#])#([^\s#.,;:!?)\]]+)")
_HANDLE = re.compile(r"(?<![\w@])@([a-zA-Z0-9.-]+\.[a-zA-Z]{2,})")


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{dt.microsecond // 1000:03d}Z"


def tid_for_key(idempotency_key: str) -> str:
    """A deterministic, syntactically valid TID record key for an idempotency key."""
    h = int.from_bytes(hashlib.sha256(idempotency_key.encode()).digest()[:8], "big")
    value = ((TID_EPOCH_US + h % TID_SPAN_US) << 10) | (h >> 54)  # 53-bit time, 10-bit clock id
    out = ""
    for _ in range(13):
        out = TID_ALPHABET[value & 31] + out
        value >>= 5
    return out


def split_uri(uri: str) -> tuple[str, str, str]:
    m = re.fullmatch(r"at://([^/]+)/([^/]+)/([^/]+)", uri or "")
    if not m:
        raise RejectedRequest("bluesky", f"not an at:// record uri: {uri!r}")
    return m.group(1), m.group(2), m.group(3)


def facets_for(text: str, dids: dict[str, str]) -> list[dict[str, Any]]:
    """Rich-text facets with UTF-8 byte offsets: links, hashtags, and handles we know."""

    def span(start: int, end: int) -> dict[str, int]:
        return {"byteStart": len(text[:start].encode()), "byteEnd": len(text[:end].encode())}

    out: list[dict[str, Any]] = []
    for m in _URL.finditer(text):
        url = m.group(0).rstrip(".,;:!?)")
        out.append({"index": span(m.start(), m.start() + len(url)),
                    "features": [{"$type": "app.bsky.richtext.facet#link", "uri": url}]})
    for m in _TAG.finditer(text):
        if not any(f["index"]["byteStart"] <= len(text[:m.start()].encode()) < f["index"]["byteEnd"] for f in out):
            out.append({"index": span(m.start(), m.end()),
                        "features": [{"$type": "app.bsky.richtext.facet#tag", "tag": m.group(1)}]})
    for m in _HANDLE.finditer(text):
        did = dids.get(m.group(1).lower())
        if did:
            out.append({"index": span(m.start(), m.end()),
                        "features": [{"$type": "app.bsky.richtext.facet#mention", "did": did}]})
    return sorted(out, key=lambda f: f["index"]["byteStart"])


class BlueskyConnector(Connector):
    platform: ClassVar[Platform] = Platform.BLUESKY
    streams: ClassVar[tuple[str, ...]] = ("search", "notifications")
    supports_hiding: ClassVar[bool] = True
    max_length: ClassVar[int] = 300
    count_graphemes: ClassVar[bool] = True
    # Where createdAt comes from; a drill sets its virtual clock here.
    clock: Clock = SystemClock()

    def __init__(self, *args: Any, **kwargs: Any):
        self._session: dict[str, str] | None = None
        self._session_lock = threading.RLock()
        super().__init__(*args, **kwargs)

    # -- auth ------------------------------------------------------------------------------
    @property
    def identifier(self) -> str:
        return self.handle.lstrip("@")

    @property
    def repo(self) -> str:
        """The brand's DID as the PDS says it is (the session's), else the configured one."""
        return self._ensure_session()["did"] or self.account_id

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._ensure_session()['accessJwt']}"}

    def _ensure_session(self) -> dict[str, str]:
        with self._session_lock:
            if self._session is None:
                self._session = self._create_session()
            return self._session

    def _create_session(self) -> dict[str, str]:
        password = self.settings.password.get_secret_value()
        if not password:
            raise AuthError(self.platform.value, "no app password configured (FIREBREAK_BLUESKY__PASSWORD)")
        body = self.http.request("POST", "/xrpc/com.atproto.server.createSession",
                                 json={"identifier": self.identifier, "password": password},
                                 authenticated=False, idempotent=True).json()
        return self._keep(body)

    def _keep(self, body: dict[str, Any]) -> dict[str, str]:
        return {"accessJwt": str(body["accessJwt"]), "refreshJwt": str(body["refreshJwt"]),
                "did": str(body.get("did") or self.account_id)}

    def refresh_auth(self) -> None:
        with self._session_lock:
            current = self._session
            self._session = None
            if current is not None:
                try:
                    body = self.http.request("POST", "/xrpc/com.atproto.server.refreshSession", authenticated=False,
                                             headers={"Authorization": f"Bearer {current['refreshJwt']}"},
                                             idempotent=True).json()
                    self._session = self._keep(body)
                    return
                except (AuthError, RejectedRequest):
                    pass  # refresh token expired or revoked: log in again below
            self._session = self._create_session()

    def _xrpc(self, method: str, nsid: str, *, params: dict[str, Any] | None = None,
              json: Any = None, idempotent: bool | None = None) -> Any:
        def call() -> Any:
            return self.http.request(method, f"/xrpc/{nsid}", params=params, json=json, idempotent=idempotent).json()

        try:
            return call()
        except RejectedRequest as exc:
            # A real PDS says 400 ExpiredToken, which ApiClient does not treat as auth.
            if exc.status != 400 or "ExpiredToken" not in str(exc):
                raise
            self.refresh_auth()
            return call()

    # -- listening -------------------------------------------------------------------------
    def fetch_mentions(self, stream: str, *, since: str | None, cursor: str | None, limit: int = 100) -> MentionPage:
        if stream not in self.streams:
            raise RejectedRequest(self.platform.value, f"unknown stream {stream!r}")
        st: dict[str, Any] = _dec(cursor) if cursor else {"k": 0, "cur": None, "since": since, "hw": since}
        floor = json.loads(st["since"]) if st.get("since") else None
        size = min(max(limit, 1), 100)
        terms = [k.strip() for k in self.keywords if k.strip()]
        if stream == "search":
            if not terms:
                return MentionPage([], None, since)
            params: dict[str, Any] = {"q": terms[st["k"]], "sort": "latest", "limit": size}
            if floor:
                params["since"] = floor["t"]
            if st.get("cur"):
                params["cursor"] = st["cur"]
            body = self._xrpc("GET", "app.bsky.feed.searchPosts", params=params)
            items = [(p, "") for p in body.get("posts") or []]
        else:
            params = {"reasons": ["mention", "reply"], "limit": size}
            if st.get("cur"):
                params["cursor"] = st["cur"]
            body = self._xrpc("GET", "app.bsky.notification.listNotifications", params=params)
            items = [(n, n.get("reason", "")) for n in body.get("notifications") or []]

        fresh = [(v, r) for v, r in items if self._newer_than(v, floor)]
        hw = st.get("hw")
        for v, _ in fresh:
            hw = self._advance(hw, v)
        mentions = [self._mention(v, r) for v, r in fresh if (v.get("author") or {}).get("did") != self.account_id]
        nxt = body.get("cursor")
        if nxt and items and len(fresh) == len(items):
            return MentionPage(mentions, _enc({**st, "cur": nxt, "hw": hw}), None)
        if stream == "search" and st["k"] + 1 < len(terms):
            return MentionPage(mentions, _enc({**st, "k": st["k"] + 1, "cur": None, "hw": hw}), None)
        return MentionPage(mentions, None, hw)

    @staticmethod
    def _sort_at(view: dict[str, Any]) -> datetime:
        """Bluesky's sortAt: the earlier of the claimed createdAt and indexedAt."""
        indexed = _time(view.get("indexedAt"))
        created = (view.get("record") or {}).get("createdAt")
        return min(indexed, _time(created)) if created else indexed

    def _newer_than(self, view: dict[str, Any], floor: dict[str, Any] | None) -> bool:
        if not floor:
            return True
        at, t = self._sort_at(view), _time(floor["t"])
        return at > t or (at == t and view.get("uri") not in floor["u"])

    def _advance(self, hw: str | None, view: dict[str, Any]) -> str:
        cur = json.loads(hw) if hw else None
        at = self._sort_at(view)
        if cur is None or at > _time(cur["t"]):
            return json.dumps({"t": _iso(at), "u": [view["uri"]]})
        if at == _time(cur["t"]) and view["uri"] not in cur["u"]:
            return json.dumps({"t": cur["t"], "u": cur["u"] + [view["uri"]]})
        return hw  # type: ignore[return-value]

    def _mention(self, v: dict[str, Any], reason: str) -> Mention:
        rec = v.get("record") or {}
        author = v.get("author") or {}
        parent = ((rec.get("reply") or {}).get("parent") or {}).get("uri", "")
        reply = reason == "reply" or parent.startswith(f"at://{self.account_id}/")
        handle = author.get("handle", "")
        langs = rec.get("langs") or []
        return Mention(
            platform=self.platform,
            platform_id=v["uri"],
            text=rec.get("text", ""),
            created_at=_time(rec.get("createdAt") or v.get("indexedAt")),
            author=handle,
            kind="reply" if reply else "mention",
            url=f"https://bsky.app/profile/{handle or author.get('did', '')}/post/{v['uri'].rsplit('/', 1)[-1]}",
            lang_hint=langs[0] if langs else "",
            reply_to=parent,
            author_followers=int(author.get("followersCount") or 0),
            engagement=sum(int(v.get(k) or 0) for k in ("likeCount", "repostCount", "replyCount", "quoteCount")),
        )

    # -- publishing ------------------------------------------------------------------------
    def publish(self, text: str, *, idempotency_key: str, reply_to: str | None = None) -> PublishResult:
        # app.bsky.feed.post allows 300 graphemes / 3000 bytes: refuse here rather than send a
        # record that does not fit the lexicon and let the PDS refuse it.
        if grapheme.length(text) > self.max_length or len(text.encode()) > 3000:
            raise RejectedRequest(self.platform.value, f"post text is {grapheme.length(text)} graphemes; "
                                                       f"app.bsky.feed.post allows {self.max_length}", status=400)
        rkey = tid_for_key(idempotency_key)
        record: dict[str, Any] = {"$type": POST, "text": text, "createdAt": _iso(self.clock.now())}
        dids: dict[str, str] = {}
        if reply_to:
            parent = self._thread(reply_to)["post"]
            root = (parent.get("record") or {}).get("reply", {}).get("root") or {"uri": parent["uri"],
                                                                                   "cid": parent["cid"]}
            record["reply"] = {"root": {"uri": root["uri"], "cid": root["cid"]},
                               "parent": {"uri": parent["uri"], "cid": parent["cid"]}}
            author = parent.get("author") or {}
            if author.get("handle") and author.get("did"):
                dids[author["handle"].lower()] = author["did"]
        facets = facets_for(text, dids)
        if facets:
            record["facets"] = facets
        try:
            # Safe to resend: the second create of this rkey fails instead of posting twice.
            out = self._xrpc("POST", "com.atproto.repo.createRecord", idempotent=True,
                             json={"repo": self.repo, "collection": POST, "rkey": rkey, "record": record})
        except RejectedRequest:
            found = self._get_post(rkey)
            if found is None:
                raise
            return found
        return self._result(out["uri"], record["createdAt"])

    def find_published(self, text: str, *, idempotency_key: str, since: datetime) -> PublishResult | None:
        # The record key *is* the idempotency key: one exact read, no text matching.
        return self._get_post(tid_for_key(idempotency_key))

    def _get_post(self, rkey: str) -> PublishResult | None:
        try:
            out = self._xrpc("GET", "com.atproto.repo.getRecord",
                             params={"repo": self.repo, "collection": POST, "rkey": rkey})
        except RejectedRequest as exc:
            if exc.status in (400, 404) and ("RecordNotFound" in str(exc) or "NotFound" in str(exc)):
                return None
            raise
        return self._result(out["uri"], (out.get("value") or {}).get("createdAt"))

    def _result(self, uri: str, created_at: str | None) -> PublishResult:
        url = f"https://bsky.app/profile/{self.identifier}/post/{uri.rsplit('/', 1)[-1]}"
        return PublishResult(self.platform, uri, url, _time(created_at))

    def _thread(self, uri: str) -> dict[str, Any]:
        body = self._xrpc("GET", "app.bsky.feed.getPostThread", params={"uri": uri, "depth": 0, "parentHeight": 0})
        thread = body.get("thread") or {}
        if "post" not in thread:
            raise RejectedRequest(self.platform.value, f"post {uri} not found or blocked")
        return {**thread, "threadgate": body.get("threadgate")}

    # -- moderation ------------------------------------------------------------------------
    def hide(self, platform_id: str) -> None:
        reply = self._thread(platform_id)["post"]
        root_uri = (((reply.get("record") or {}).get("reply") or {}).get("root") or {}).get("uri", "")
        if not root_uri:
            raise NotSupported(self.platform.value, "only replies can be hidden; this post is not a reply")
        did, collection, rkey = split_uri(root_uri)
        if did != self.repo or collection != POST:
            raise NotSupported(self.platform.value, "only replies in threads the brand started can be hidden")
        gate = self._thread(root_uri).get("threadgate") or {}
        current = gate.get("record") or {}
        hidden = list(current.get("hiddenReplies") or [])
        if platform_id in hidden:
            return
        if len(hidden) >= MAX_HIDDEN:
            raise RejectedRequest(self.platform.value, f"threadgate of {root_uri} already hides {MAX_HIDDEN} replies")
        record: dict[str, Any] = {"$type": THREADGATE, "post": root_uri,
                                  "createdAt": current.get("createdAt") or _iso(self.clock.now()),
                                  "hiddenReplies": hidden + [platform_id]}
        if "allow" in current:  # absent = anyone may reply; [] = nobody: keep exactly what it was
            record["allow"] = current["allow"]
        body: dict[str, Any] = {"repo": self.repo, "collection": THREADGATE, "rkey": rkey, "record": record}
        if gate.get("cid"):
            body["swapRecord"] = gate["cid"]
        self._xrpc("POST", "com.atproto.repo.putRecord", json=body, idempotent=True)

    def delete_own(self, platform_id: str) -> None:
        """Delete one of the brand's own posts. Refuses any other repo: criticism stays."""
        did, collection, rkey = split_uri(platform_id)
        if did != self.repo:
            raise PolicyViolation(f"bluesky: refusing to delete {platform_id}: not the brand's own record")
        self._xrpc("POST", "com.atproto.repo.deleteRecord", json={"repo": self.repo, "collection": collection,
                                                                   "rkey": rkey}, idempotent=True)


def _dec(cursor: str) -> dict[str, Any]:
    return decode_cursor("bluesky", cursor)
