"""X API v2 emulation (paths and shapes from ../shared/specs/x-api-v2-openapi.json).

GET  /2/tweets/search/recent     keyword search, newest first, since_id/until_id, next_token
GET  /2/users/{id}/mentions      posts addressed to the brand (every scenario mention)
GET  /2/users/{id}/tweets        the brand's own posts (find_published after a lost response)
POST /2/tweets                   create a post (no idempotency key on X)
PUT  /2/tweets/{tweet_id}/hidden hide/unhide a reply

Pagination tokens are keyset (the id to continue below), so posts arriving mid-drain never
shift a page. Errors use X's problem shape.
"""

from __future__ import annotations

import base64
import re
from datetime import datetime
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response

from firebreak.sandbox._common_social import (
    Ctx,
    PlatformApi,
    iso_z,
    json_response,
    parse_time,
    public_id,
    sandbox_id_of,
    text_matches,
    x_headers,
)
from firebreak.sandbox.state import SandboxMention, SandboxPost, SandboxState
from firebreak.domain import Platform

P = Platform.X
BRAND_ID = "1400000000000000001"
BRAND_USERNAME = "fjelloutdoor"
MAX_CHARS = 280
URL_RE = re.compile(r"https?://\S+")


def _error_body(status: int, message: str) -> dict[str, Any]:
    if status == 400:
        return {"errors": [{"message": message}], "title": "Invalid Request", "detail": message,
                "type": "https://api.x.com/2/problems/invalid-request", "status": 400}
    if status == 404:
        return {"title": "Not Found Error", "detail": message, "status": 404,
                "type": "https://api.x.com/2/problems/resource-not-found"}
    if status == 429:
        return {"title": "Too Many Requests", "detail": "Too Many Requests", "type": "about:blank", "status": 429}
    return {"title": "Unauthorized" if status == 401 else "Error", "type": "about:blank", "status": status,
            "detail": message}


def _token(pid: str) -> str:
    # X tokens are opaque base32hex strings; ours encode the id to continue below.
    return base64.b32hexencode(pid.encode()).decode().rstrip("=").lower()


def _untoken(tok: str) -> str | None:
    try:
        raw = base64.b32hexdecode(tok.upper() + "=" * (-len(tok) % 8)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    return raw if raw.isdigit() else None


def weighted_length(text: str) -> int:
    """X counts every URL as 23 characters."""
    return len(URL_RE.sub("x" * 23, text))


def router(state: SandboxState) -> APIRouter:
    api = PlatformApi(state, P, x_headers, _error_body)

    def pid_of(created_at: datetime, sid: str) -> str:
        return public_id(created_at, sid)

    def user_of(m: SandboxMention) -> dict[str, Any]:
        uid = m.author_id if m.author_id.isdigit() else str(abs(hash(m.author)) % 10**12)
        return {"id": uid, "name": m.author, "username": m.author,
                "public_metrics": {"followers_count": m.followers, "following_count": 0, "post_count": 0,
                                   "listed_count": 0}}

    def find_post_pid(sid: str) -> str | None:
        post = state.find_post(P, sid)
        if post is not None:
            return pid_of(post.created_at, post.id)
        for m in state.mentions[P]:
            if m.id == sid:
                return pid_of(m.created_at, m.id)
        return None

    def post_obj(m: SandboxMention, fields: set[str], expansions: set[str]) -> dict[str, Any]:
        pid = pid_of(m.created_at, m.id)
        out: dict[str, Any] = {"id": pid, "text": m.text, "edit_history_post_ids": [pid]}
        if "author_id" in expansions:
            out["author_id"] = user_of(m)["id"]
        if "created_at" in fields:
            out["created_at"] = iso_z(m.created_at)
        if "lang" in fields and m.lang:
            out["lang"] = m.lang
        if "public_metrics" in fields:
            out["public_metrics"] = {"repost_count": m.reposts, "reply_count": 0, "like_count": m.likes,
                                     "quote_count": 0, "bookmark_count": 0, "impression_count": m.likes * 20}
        parent = find_post_pid(m.reply_to) if m.reply_to else None
        if "conversation_id" in fields:
            out["conversation_id"] = parent or pid
        if parent:
            if "in_reply_to_user_id" in expansions or "referenced_posts" in expansions:
                out["in_reply_to_user_id"] = BRAND_ID
            if "referenced_posts" in expansions:
                out["referenced_posts"] = [{"type": "replied_to", "id": parent}]
        return out

    def page(ctx: Ctx, items: list[tuple[str, Any]], *, lo: int, hi: int,
             token_param: str) -> tuple[list[Any], dict[str, Any]]:
        """items: (public id, payload) in any order -> newest-first page plus `meta`."""
        q = ctx.query
        try:
            limit = int(q.get("max_results", "10"))
        except ValueError:
            raise api.error(400, "max_results must be an integer") from None
        if not lo <= limit <= hi:
            raise api.error(400, f"The `max_results` query parameter value [{limit}] is not between {lo} and {hi}")
        since = q.get("since_id")
        until = q.get("until_id")
        below: str | None = None
        if q.get(token_param):
            below = _untoken(q[token_param])
            if below is None:
                raise api.error(400, f"The `{token_param}` query parameter value is not valid")
        start = parse_time(q["start_time"]) if q.get("start_time") else None
        for name, val in (("since_id", since), ("until_id", until)):
            if val is not None and not val.isdigit():
                raise api.error(400, f"The `{name}` query parameter value [{val}] is not valid")
        rows = sorted(items, key=lambda r: int(r[0]), reverse=True)
        rows = [r for r in rows
                if (since is None or int(r[0]) > int(since))
                and (until is None or int(r[0]) < int(until))
                and (below is None or int(r[0]) < int(below))
                and (start is None or r[1][1] >= start)]
        chunk = rows[:limit]
        meta: dict[str, Any] = {"result_count": len(chunk)}
        if chunk:
            meta["newest_id"], meta["oldest_id"] = chunk[0][0], chunk[-1][0]
        if len(rows) > limit:
            meta["next_token"] = _token(chunk[-1][0])
        return [r[1][0] for r in chunk], meta

    search_cache: dict[tuple[str, int, int], list[SandboxMention]] = {}

    def mentions_response(ctx: Ctx, found: list[SandboxMention]) -> Response:
        fields = set(filter(None, ctx.query.get("post.fields", "").split(",")))
        expansions = set(filter(None, ctx.query.get("expansions", "").split(",")))
        items = [(pid_of(m.created_at, m.id), (m, m.created_at)) for m in found]
        chunk, meta = page(ctx, items, lo=10 if ctx.request.url.path.endswith("recent") else 5, hi=100,
                           token_param="next_token" if "next_token" in ctx.query else "pagination_token")
        body: dict[str, Any] = {"meta": meta}
        if chunk:
            body["data"] = [post_obj(m, fields, expansions) for m in chunk]
            if "author_id" in expansions:
                users = {u["id"]: u for u in (user_of(m) for m in chunk)}
                body["includes"] = {"users": list(users.values())}
        return json_response(body)

    def search_terms(query: str) -> tuple[list[str], list[str]]:
        """Positive terms (OR'ed) and excluded authors of an X search query."""
        excluded = [m.lower() for m in re.findall(r"-from:(\w+)", query)]
        rest = re.sub(r"-\S+", " ", query).replace("(", " ").replace(")", " ")
        terms = [t.strip().strip('"') for t in re.split(r"\s+OR\s+", rest) if t.strip()]
        return terms, excluded

    @api.route("GET", "/2/tweets/search/recent")
    def search_recent(ctx: Ctx) -> Response:
        query = ctx.query.get("query", "")
        if not query or len(query) > 4096:
            raise api.error(400, "The `query` query parameter can not be empty")
        terms, excluded = search_terms(query)
        visible = state.visible_mentions(P, ("mention", "reply"))
        key = (query, len(visible), state.generation)
        found = search_cache.get(key)
        if found is None:  # a drain pages through the same hits: match them once
            if len(search_cache) > 32:
                search_cache.clear()
            found = search_cache[key] = [m for m in visible
                                         if text_matches(m.text, terms) and m.author.lower() not in excluded]
        return mentions_response(ctx, found)

    @api.route("GET", "/2/users/{id}/mentions")
    def user_mentions(ctx: Ctx) -> Response:
        if ctx.request.path_params["id"] != BRAND_ID:
            return json_response({"meta": {"result_count": 0}})
        # Scenarios write X mentions without the @handle (natural text for search), so every
        # scenario mention counts as addressed to the brand here.
        return mentions_response(ctx, state.visible_mentions(P, ("mention", "reply")))

    @api.route("GET", "/2/users/{id}/tweets")
    def user_tweets(ctx: Ctx) -> Response:
        if ctx.request.path_params["id"] != BRAND_ID:
            return json_response({"meta": {"result_count": 0}})
        now = state.now()
        with state.lock:
            posts = [p for p in state.posts[P] if p.created_at <= now]
        fields = set(filter(None, ctx.query.get("post.fields", "").split(",")))
        items = []
        for p in posts:
            pid = pid_of(p.created_at, p.id)
            obj: dict[str, Any] = {"id": pid, "text": p.text, "edit_history_post_ids": [pid]}
            if "created_at" in fields:
                obj["created_at"] = iso_z(p.created_at)
            items.append((pid, (obj, p.created_at)))
        chunk, meta = page(ctx, items, lo=5, hi=100, token_param="pagination_token")
        return json_response({"data": chunk, "meta": meta} if chunk else {"meta": meta})

    @api.route("POST", "/2/tweets")
    def create_tweet(ctx: Ctx) -> Response:
        body = ctx.json()
        if not isinstance(body, dict) or not isinstance(body.get("text"), str):
            raise api.error(400, "The request body must be a JSON object with `text`")
        unknown = set(body) - {"text", "reply", "quote_tweet_id", "reply_settings", "media", "poll", "nullcast"}
        if unknown:
            raise api.error(400, f"Unknown field(s): {', '.join(sorted(unknown))}")
        text = body["text"]
        if not text.strip():
            raise api.error(400, "Post text must not be empty")
        if weighted_length(text) > MAX_CHARS:
            raise api.error(400, "Your Post text is too long.")
        reply_sid = ""
        reply = body.get("reply")
        if reply is not None:
            target = str(reply.get("in_reply_to_tweet_id", "")) if isinstance(reply, dict) else ""
            reply_sid = _resolve(target) or ""
            if not reply_sid:
                raise api.error(400, "The post you are replying to is deleted or not visible to you.")
        post, _ = state.add_post(P, text, reply_to=reply_sid)
        pid = pid_of(post.created_at, post.id)
        return json_response({"data": {"id": pid, "text": post.text, "edit_history_post_ids": [pid]}}, 201)

    def _resolve(pid: str) -> str | None:
        """Public id -> sandbox id of a visible mention or brand post."""
        if not pid.isdigit():
            return None
        sid = sandbox_id_of(P, pid)
        now = state.now()
        with state.lock:
            for m in state.mentions[P]:
                if m.id == sid and m.created_at <= now and pid_of(m.created_at, m.id) == pid:
                    return m.id
            post: SandboxPost | None = state.find_post(P, sid or "")
        if post is not None and pid_of(post.created_at, post.id) == pid:
            return post.id
        return None

    @api.route("PUT", "/2/tweets/{tweet_id}/hidden")
    def hide_reply(ctx: Ctx) -> Response:
        body = ctx.json()
        if not isinstance(body, dict) or not isinstance(body.get("hidden"), bool) or set(body) - {"hidden"}:
            raise api.error(400, "The request body must be {\"hidden\": true|false}")
        sid = _resolve(ctx.request.path_params["tweet_id"])
        if sid is None or state.find_post(P, sid) is not None:
            raise api.error(404, "Could not find a reply with that id")
        with state.lock:
            if body["hidden"]:
                state.hidden[P].add(sid)
            else:
                state.hidden[P].discard(sid)
        return json_response({"data": {"hidden": body["hidden"]}})

    return api.router
