"""Bluesky / AT Protocol emulation: a PDS plus the app view, under /xrpc/<nsid>
(lexicons in ../shared/specs/bluesky-lexicons).

Sessions: com.atproto.server.createSession / refreshSession issue opaque access and
refresh tokens; an expired access token answers 401 ExpiredToken (fault
`expire_sessions`). Reads: app.bsky.feed.searchPosts, app.bsky.notification.listNotifications,
app.bsky.feed.getPostThread, com.atproto.repo.getRecord/listRecords. Writes, only to the
caller's own repo: com.atproto.repo.createRecord (an existing rkey fails, which is what
makes a deterministic rkey an idempotency key), putRecord (threadgates: `hiddenReplies`
drive `state.hidden`), deleteRecord.

`state.hidden[bluesky]` holds the sandbox ids (record keys) of hidden mentions, like the
other platforms' ids. Cursors are keyset (time + rkey), so new posts never shift a page.
"""

from __future__ import annotations

import base64
import hashlib
import re
import secrets
from typing import Any

import grapheme
from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from firebreak.sandbox._common_social import (
    Abort,
    Ctx,
    PlatformApi,
    bluesky_headers,
    iso_z,
    json_response,
    parse_time,
    text_matches,
)
from firebreak.sandbox.state import BRAND_DID, SandboxMention, SandboxPost, SandboxState
from firebreak.domain import Platform

P = Platform.BLUESKY
POST = "app.bsky.feed.post"
THREADGATE = "app.bsky.feed.threadgate"
MAX_GRAPHEMES = 300
MAX_BYTES = 3000
TID_RE = re.compile(r"^[234567abcdefghij][234567abcdefghijklmnopqrstuvwxyz]{12}$")
RKEY_RE = re.compile(r"^[A-Za-z0-9._:~-]{1,512}$")
ERROR_NAMES = {400: "InvalidRequest", 401: "AuthenticationRequired", 404: "NotFound", 429: "RateLimitExceeded"}


def _error_body(status: int, message: str) -> dict[str, Any]:
    return {"error": ERROR_NAMES.get(status, "InternalServerError"), "message": message}


def xrpc_error(status: int, name: str, message: str) -> Abort:
    return Abort(JSONResponse({"error": name, "message": message}, status_code=status))


def did_of(author: str) -> str:
    digest = base64.b32encode(hashlib.sha256(author.encode()).digest()).decode().lower()
    return "did:plc:" + digest[:24]


def cid_of(*parts: str) -> str:
    digest = base64.b32encode(hashlib.sha256("\x00".join(parts).encode()).digest()).decode().lower().rstrip("=")
    return "bafyrei" + digest[:52]


def split_uri(uri: str) -> tuple[str, str, str] | None:
    m = re.fullmatch(r"at://([^/]+)/([^/]+)/([^/]+)", uri or "")
    return (m.group(1), m.group(2), m.group(3)) if m else None


def router(state: SandboxState) -> APIRouter:
    handle = state.brand_handle.get(P, "fjell.bsky.example").lstrip("@").lower()
    access: dict[str, str] = {}  # access token -> did
    refresh: dict[str, str] = {}  # refresh token -> did
    expired: set[str] = set()
    threadgates: dict[str, dict[str, Any]] = {}  # root rkey -> threadgate record

    def check_auth(ctx: Ctx) -> bool:
        with state.lock:
            f = api.faults()
            if f.pop("expire_sessions", False):
                expired.update(access)
                access.clear()
            if ctx.token in expired:
                raise xrpc_error(401, "ExpiredToken", "Token has expired")
            return ctx.token in access

    api = PlatformApi(state, P, bluesky_headers, _error_body, check_auth=check_auth)

    # -- views -----------------------------------------------------------------------------
    def mention_uri(m: SandboxMention) -> str:
        return f"at://{did_of(m.author)}/{POST}/{m.id}"

    def post_uri(p: SandboxPost) -> str:
        return f"at://{BRAND_DID}/{POST}/{p.id}"

    def brand_record(p: SandboxPost) -> dict[str, Any]:
        rec = p.extra.get("record")
        if isinstance(rec, dict):
            return rec
        return {"$type": POST, "text": p.text, "createdAt": iso_z(p.created_at)}

    def ref_of(sid: str) -> dict[str, str] | None:
        """strongRef (uri + cid) of a brand post or mention by sandbox id."""
        p = state.find_post(P, sid)
        if p is not None:
            return {"uri": post_uri(p), "cid": cid_of(post_uri(p), p.text)}
        for m in state.mentions[P]:
            if m.id == sid:
                return {"uri": mention_uri(m), "cid": cid_of(mention_uri(m), m.text)}
        return None

    def mention_record(m: SandboxMention) -> dict[str, Any]:
        rec: dict[str, Any] = {"$type": POST, "text": m.text, "createdAt": iso_z(m.created_at)}
        if m.lang:
            rec["langs"] = [m.lang]
        parent = ref_of(m.reply_to) if m.reply_to else None
        if parent:
            root = parent
            p = state.find_post(P, m.reply_to)
            if p is not None and isinstance(brand_record(p).get("reply"), dict):
                root = brand_record(p)["reply"]["root"]
            rec["reply"] = {"root": root, "parent": parent}
        at = m.text.lower().find("@" + handle)
        if at >= 0:
            start = len(m.text[:at].encode())
            rec["facets"] = [{"index": {"byteStart": start, "byteEnd": start + len(handle.encode()) + 1},
                              "features": [{"$type": "app.bsky.richtext.facet#mention", "did": BRAND_DID}]}]
        return rec

    def author_of(m: SandboxMention) -> dict[str, Any]:
        return {"did": did_of(m.author), "handle": f"{m.author.lower()}.bsky.social", "displayName": m.author,
                "labels": []}

    def brand_author() -> dict[str, Any]:
        return {"did": BRAND_DID, "handle": handle, "displayName": "Fjell Outdoor", "labels": []}

    def mention_view(m: SandboxMention) -> dict[str, Any]:
        uri = mention_uri(m)
        return {"uri": uri, "cid": cid_of(uri, m.text), "author": author_of(m), "record": mention_record(m),
                "replyCount": 0, "repostCount": m.reposts, "likeCount": m.likes, "quoteCount": 0,
                "indexedAt": iso_z(m.created_at), "labels": []}

    def post_view(p: SandboxPost) -> dict[str, Any]:
        uri = post_uri(p)
        view = {"uri": uri, "cid": cid_of(uri, p.text), "author": brand_author(), "record": brand_record(p),
                "replyCount": 0, "repostCount": 0, "likeCount": 0, "quoteCount": 0,
                "indexedAt": iso_z(p.created_at), "labels": []}
        gate = threadgate_view(p.id)
        if gate:
            view["threadgate"] = gate
        return view

    def threadgate_view(rkey: str) -> dict[str, Any] | None:
        rec = threadgates.get(rkey)
        if rec is None:
            return None
        uri = f"at://{BRAND_DID}/{THREADGATE}/{rkey}"
        return {"uri": uri, "cid": cid_of(uri, str(rec)), "record": rec, "lists": []}

    def find_by_uri(uri: str) -> SandboxMention | SandboxPost | None:
        parts = split_uri(uri)
        if not parts or parts[1] != POST:
            return None
        did, _, rkey = parts
        now = state.now()
        if did == BRAND_DID:
            p = state.find_post(P, rkey)
            return p if p is not None and p.created_at <= now else None
        with state.lock:
            for m in state.mentions[P]:
                if m.id == rkey and m.created_at <= now and did_of(m.author) == did:
                    return m
        return None

    # -- paging ----------------------------------------------------------------------------
    def limit_of(ctx: Ctx, default: int) -> int:
        raw = ctx.query.get("limit", str(default))
        if not raw.isdigit() or not 1 <= int(raw) <= 100:
            raise api.error(400, "limit must be an integer between 1 and 100")
        return int(raw)

    def keyset(items: list[SandboxMention], ctx: Ctx, limit: int) -> tuple[list[SandboxMention], str | None]:
        rows = sorted(items, key=lambda m: (m.created_at, m.id), reverse=True)
        cur = ctx.query.get("cursor")
        if cur:
            ts, _, rk = cur.partition("::")
            try:
                key = (float(ts), rk)
            except ValueError:
                raise api.error(400, "invalid cursor") from None
            rows = [m for m in rows if (m.created_at.timestamp(), m.id) < key]
        chunk = rows[:limit]
        more = len(rows) > limit
        return chunk, (f"{chunk[-1].created_at.timestamp():.6f}::{chunk[-1].id}" if more and chunk else None)

    # -- sessions --------------------------------------------------------------------------
    def issue(did: str) -> dict[str, Any]:
        a, r = "sbx-acc-" + secrets.token_hex(16), "sbx-ref-" + secrets.token_hex(16)
        with state.lock:
            access[a], refresh[r] = did, did
        return {"accessJwt": a, "refreshJwt": r, "handle": handle, "did": did, "active": True}

    @api.route("POST", "/xrpc/com.atproto.server.createSession", auth=False)
    def create_session(ctx: Ctx) -> Response:
        body = ctx.json()
        if not isinstance(body, dict) or not body.get("identifier") or not body.get("password"):
            raise api.error(400, "identifier and password are required")
        ident = str(body["identifier"]).lstrip("@").lower()
        bad = api.faults().get("bad_passwords", ())
        if ident not in (handle, BRAND_DID) or body["password"] in bad:
            raise xrpc_error(401, "AuthenticationRequired", "Invalid identifier or password")
        return json_response(issue(BRAND_DID))

    @api.route("POST", "/xrpc/com.atproto.server.refreshSession", auth=False)
    def refresh_session(ctx: Ctx) -> Response:
        scheme, _, token = ctx.request.headers.get("authorization", "").partition(" ")
        with state.lock:
            did = refresh.pop(token.strip(), None) if scheme.lower() == "bearer" else None
        if did is None:
            raise xrpc_error(401, "ExpiredToken", "Token has been revoked")
        return json_response(issue(did))

    def caller_did(ctx: Ctx) -> str:
        return access.get(ctx.token, "")

    # -- reads -----------------------------------------------------------------------------
    @api.route("GET", "/xrpc/app.bsky.feed.searchPosts")
    def search_posts(ctx: Ctx) -> Response:
        q = ctx.query.get("q", "").strip()
        if not q:
            raise xrpc_error(400, "BadQueryString", "q is required")
        terms = [t.strip().strip('"') for t in q.split("|")]
        since = parse_time(ctx.query["since"]) if ctx.query.get("since") else None
        until = parse_time(ctx.query["until"]) if ctx.query.get("until") else None
        lang = ctx.query.get("lang")
        hits = [m for m in state.visible_mentions(P, ("mention", "reply"))
                if text_matches(m.text, terms) and (since is None or m.created_at >= since)
                and (until is None or m.created_at < until) and (not lang or m.lang == lang)]
        chunk, cursor = keyset(hits, ctx, limit_of(ctx, 25))
        body: dict[str, Any] = {"posts": [mention_view(m) for m in chunk], "hitsTotal": len(hits)}
        if cursor:
            body["cursor"] = cursor
        return json_response(body)

    @api.route("GET", "/xrpc/app.bsky.notification.listNotifications")
    def list_notifications(ctx: Ctx) -> Response:
        reasons = set(ctx.query.getlist("reasons"))
        rows: list[tuple[SandboxMention, str]] = []
        for m in state.visible_mentions(P, ("mention", "reply")):
            reason = "reply" if m.reply_to else ("mention" if "@" + handle in m.text.lower() else "")
            if reason and (not reasons or reason in reasons):
                rows.append((m, reason))
        reason_of = {m.id: r for m, r in rows}
        chunk, cursor = keyset([m for m, _ in rows], ctx, limit_of(ctx, 50))
        items = []
        for m in chunk:
            view = mention_view(m)
            item = {"uri": view["uri"], "cid": view["cid"], "author": view["author"], "reason": reason_of[m.id],
                    "record": view["record"], "isRead": False, "indexedAt": view["indexedAt"], "labels": []}
            if reason_of[m.id] == "reply":
                item["reasonSubject"] = view["record"]["reply"]["parent"]["uri"]
            items.append(item)
        body: dict[str, Any] = {"notifications": items}
        if cursor:
            body["cursor"] = cursor
        return json_response(body)

    @api.route("GET", "/xrpc/app.bsky.feed.getPostThread")
    def get_post_thread(ctx: Ctx) -> Response:
        uri = ctx.query.get("uri", "")
        item = find_by_uri(uri)
        if item is None:
            raise xrpc_error(400, "NotFound", f"Post not found: {uri}")
        if isinstance(item, SandboxPost):
            body: dict[str, Any] = {"thread": {"$type": "app.bsky.feed.defs#threadViewPost", "post": post_view(item),
                                               "replies": []}}
            gate = threadgate_view(item.id)
            if gate:
                body["threadgate"] = gate
            return json_response(body)
        return json_response({"thread": {"$type": "app.bsky.feed.defs#threadViewPost", "post": mention_view(item),
                                         "replies": []}})

    def record_of(did: str, collection: str, rkey: str) -> tuple[str, dict[str, Any]] | None:
        if did != BRAND_DID:
            return None
        if collection == THREADGATE:
            view = threadgate_view(rkey)
            return (view["cid"], view["record"]) if view else None
        if collection == POST:
            p = state.find_post(P, rkey)
            if p is not None and p.created_at <= state.now():
                return cid_of(post_uri(p), p.text), brand_record(p)
        return None

    @api.route("GET", "/xrpc/com.atproto.repo.getRecord", auth=False)
    def get_record(ctx: Ctx) -> Response:
        q = ctx.query
        repo, collection, rkey = q.get("repo", ""), q.get("collection", ""), q.get("rkey", "")
        if not (repo and collection and rkey):
            raise api.error(400, "repo, collection and rkey are required")
        found = record_of(BRAND_DID if repo.lstrip("@").lower() == handle else repo, collection, rkey)
        if found is None:
            raise xrpc_error(400, "RecordNotFound", f"Could not locate record: at://{repo}/{collection}/{rkey}")
        return json_response({"uri": f"at://{BRAND_DID}/{collection}/{rkey}", "cid": found[0], "value": found[1]})

    @api.route("GET", "/xrpc/com.atproto.repo.listRecords", auth=False)
    def list_records(ctx: Ctx) -> Response:
        q = ctx.query
        repo, collection = q.get("repo", ""), q.get("collection", "")
        if repo.lstrip("@").lower() == handle:
            repo = BRAND_DID
        limit = limit_of(ctx, 50)
        if repo != BRAND_DID:
            return json_response({"records": []})
        if collection == POST:
            with state.lock:
                keys = [p.id for p in state.posts[P] if p.created_at <= state.now()]
        elif collection == THREADGATE:
            keys = list(threadgates)
        else:
            keys = []
        keys.sort(reverse=q.get("reverse") != "true")
        if q.get("cursor"):
            c = q["cursor"]
            keys = [k for k in keys if (k < c if q.get("reverse") != "true" else k > c)]
        chunk = keys[:limit]
        records = []
        for k in chunk:
            found = record_of(BRAND_DID, collection, k)
            if found:
                records.append({"uri": f"at://{BRAND_DID}/{collection}/{k}", "cid": found[0], "value": found[1]})
        body: dict[str, Any] = {"records": records}
        if len(keys) > limit:
            body["cursor"] = chunk[-1]
        return json_response(body)

    # -- writes ----------------------------------------------------------------------------
    def own_repo(ctx: Ctx, body: Any) -> dict[str, Any]:
        if not isinstance(body, dict):
            raise api.error(400, "Input must be a JSON object")
        repo = str(body.get("repo", "")).lstrip("@").lower()
        if repo == handle:
            repo = BRAND_DID
        if not repo or repo != caller_did(ctx):
            raise xrpc_error(400, "InvalidRequest", "Can only write to your own repo")
        return body

    def check_post(rec: Any) -> str:
        """Validate an app.bsky.feed.post record; returns the sandbox id it replies to."""
        if not isinstance(rec, dict) or rec.get("$type") != POST:
            raise api.error(400, "Invalid app.bsky.feed.post record: $type must be app.bsky.feed.post")
        text = rec.get("text")
        created = rec.get("createdAt")
        if not isinstance(text, str) or not isinstance(created, str) or parse_time(created) is None:
            raise api.error(400, "Invalid app.bsky.feed.post record: text and createdAt are required")
        if grapheme.length(text) > MAX_GRAPHEMES or len(text.encode()) > MAX_BYTES:
            raise api.error(400, f"Invalid app.bsky.feed.post record: Record/text must not be longer than "
                                 f"{MAX_GRAPHEMES} graphemes")
        if len(rec.get("langs") or []) > 3:
            raise api.error(400, "Invalid app.bsky.feed.post record: langs must not have more than 3 elements")
        size = len(text.encode())
        for f in rec.get("facets") or []:
            idx = f.get("index") if isinstance(f, dict) else None
            if not (isinstance(idx, dict) and 0 <= idx.get("byteStart", -1) <= idx.get("byteEnd", -1) <= size):
                raise api.error(400, "Invalid app.bsky.feed.post record: facet byte range out of bounds")
        reply = rec.get("reply")
        if reply is None:
            return ""
        try:
            parent, root = reply["parent"], reply["root"]
            refs_ok = all(isinstance(r["uri"], str) and isinstance(r["cid"], str) for r in (parent, root))
        except (KeyError, TypeError):
            refs_ok = False
        if not refs_ok:
            raise api.error(400, "Invalid app.bsky.feed.post record: reply must have root and parent strongRefs")
        target = find_by_uri(parent["uri"])
        if target is None:
            raise api.error(400, "Invalid app.bsky.feed.post record: reply parent not found")
        return target.id

    @api.route("POST", "/xrpc/com.atproto.repo.createRecord")
    def create_record(ctx: Ctx) -> Response:
        body = own_repo(ctx, ctx.json())
        if body.get("collection") != POST:
            raise api.error(400, "Only app.bsky.feed.post records can be created in the sandbox")
        rkey = str(body.get("rkey") or "")
        if rkey and not TID_RE.match(rkey):
            raise api.error(400, "Invalid record key: app.bsky.feed.post keys must be TIDs")
        rec: dict[str, Any] = body.get("record")  # type: ignore[assignment]  # check_post: a dict
        reply_sid = check_post(rec)
        with state.lock:
            if rkey and state.find_post(P, rkey) is not None:
                raise api.error(400, f"Record already exists: at://{BRAND_DID}/{POST}/{rkey}")
            post, _ = state.add_post(P, rec["text"], reply_to=reply_sid, post_id=rkey or None, record=rec)
        uri = post_uri(post)
        return json_response({"uri": uri, "cid": cid_of(uri, post.text), "validationStatus": "valid"})

    def sync_hidden() -> None:
        """state.hidden = every mention named in a threadgate's hiddenReplies."""
        hidden: set[str] = set()
        for rec in threadgates.values():
            for uri in rec.get("hiddenReplies") or []:
                item = find_by_uri(uri)
                if isinstance(item, SandboxMention):
                    hidden.add(item.id)
        state.hidden[P] = hidden

    @api.route("POST", "/xrpc/com.atproto.repo.putRecord")
    def put_record(ctx: Ctx) -> Response:
        body = own_repo(ctx, ctx.json())
        if body.get("collection") != THREADGATE:
            raise api.error(400, "Only app.bsky.feed.threadgate records can be put in the sandbox")
        rkey, rec = str(body.get("rkey") or ""), body.get("record")
        root = state.find_post(P, rkey)
        if root is None:
            raise api.error(400, "A threadgate's rkey must match a post in the same repo")
        if not isinstance(rec, dict) or rec.get("$type") != THREADGATE or rec.get("post") != post_uri(root) \
                or not isinstance(rec.get("createdAt"), str):
            raise api.error(400, "Invalid app.bsky.feed.threadgate record: $type, post (the root) and createdAt")
        hidden = rec.get("hiddenReplies") or []
        if not isinstance(hidden, list) or len(hidden) > 300:
            raise api.error(400, "Invalid app.bsky.feed.threadgate record: hiddenReplies must have at most 300 uris")
        with state.lock:
            current = threadgate_view(rkey)
            swap = body.get("swapRecord")
            if swap is not None and (current is None or current["cid"] != swap):
                raise xrpc_error(400, "InvalidSwap", "Record was at a different cid")
            threadgates[rkey] = rec
            sync_hidden()
            view = threadgate_view(rkey)
        assert view is not None
        return json_response({"uri": view["uri"], "cid": view["cid"], "validationStatus": "valid"})

    @api.route("POST", "/xrpc/com.atproto.repo.deleteRecord")
    def delete_record(ctx: Ctx) -> Response:
        body = own_repo(ctx, ctx.json())
        rkey = str(body.get("rkey") or "")
        with state.lock:
            if body.get("collection") == POST:
                state.remove_post(P, rkey)
            elif body.get("collection") == THREADGATE:
                threadgates.pop(rkey, None)
                sync_hidden()
        return json_response({})

    return api.router
