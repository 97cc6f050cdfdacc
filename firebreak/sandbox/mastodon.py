"""Mastodon 4.x REST emulation (paths and shapes from ../shared/specs/mastodon-openapi.json).

GET  /api/v2/search                        statuses matching `q`, newest first, min_id/max_id
GET  /api/v1/notifications                 `mention` notifications; min_id pages forward
GET  /api/v1/accounts/{id}/statuses        the brand's own statuses
POST /api/v1/statuses                      create (or schedule) a status; Idempotency-Key
GET  /api/v1/scheduled_statuses[/{id}]     list / show scheduled statuses
PUT  /api/v1/scheduled_statuses/{id}       move it (`scheduled_at` >= 5 minutes ahead)
DELETE /api/v1/scheduled_statuses/{id}     cancel it

Pagination is Mastodon's own: max_id/since_id are bounds, min_id returns the results
immediately newer than it, and every list answers with a Link header (rel next = older,
rel prev = newer). Errors are `{"error": ...}` with 401/404/422.

Holding: Mastodon has no "pause". A client holds a scheduled status by moving it far into
the future; the sandbox records that as state "held" (the drill report's view), keeps the
original time on the record and answers GETs with the time the client asked for.
"""

from __future__ import annotations

import html
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fastapi import APIRouter
from fastapi.responses import Response

from firebreak.sandbox._common_social import (
    Ctx,
    PlatformApi,
    iso_z,
    json_response,
    mastodon_headers,
    parse_time,
    public_id,
    sandbox_id_of,
    text_matches,
)
from firebreak.sandbox.state import SandboxMention, SandboxPost, SandboxScheduled, SandboxState
from firebreak.domain import Platform

P = Platform.MASTODON
BRAND_ID = "110000000000000001"
BRAND_USERNAME = "fjell"
INSTANCE = "mastodon.example"
MAX_CHARS = 500
MIN_LEAD = timedelta(minutes=5)
# A move this far ahead is a hold, not a real schedule (see the module docstring).
HOLD_HORIZON = timedelta(days=365 * 100)
NOTIFICATION_BIT = 1 << 21  # notification ids differ from status ids, in the same order


def _error_body(status: int, message: str) -> dict[str, Any]:
    if status == 401:
        return {"error": "The access token is invalid"}
    if status == 429:
        return {"error": "Too many requests"}
    return {"error": message}


def _content(text: str) -> str:
    paras = [p for p in text.split("\n\n")]
    return "".join("<p>" + html.escape(p).replace("\n", "<br />") + "</p>" for p in paras)


def _int(ctx: Ctx, name: str, default: int, hi: int) -> int:
    try:
        return max(1, min(int(ctx.query.get(name, default)), hi))
    except ValueError:
        return default


def _bounded(rows: list[tuple[int, Any]], ctx: Ctx, limit: int, *,
             min_id_forward: bool = True) -> list[tuple[int, Any]]:
    """Mastodon's paginate_by_id: max_id/since_id bound; min_id = immediately newer.

    Search applies min_id as a plain lower bound on its newest-first hits instead."""
    q = ctx.query
    out = sorted(rows, key=lambda r: r[0], reverse=True)
    for name, keep in (("max_id", lambda i, v: i < v), ("since_id", lambda i, v: i > v),
                       ("min_id", lambda i, v: i > v)):
        if q.get(name, "").isdigit():
            v = int(q[name])
            out = [r for r in out if keep(r[0], v)]
    if min_id_forward and q.get("min_id", "").isdigit():
        return list(reversed(sorted(out, key=lambda r: r[0])[:limit]))
    return out[:limit]


def _link(ctx: Ctx, page: list[tuple[int, Any]]) -> dict[str, str]:
    if not page:
        return {}
    base = str(ctx.request.url).split("?", 1)[0]
    keep = [(k, v) for k, v in ctx.query.multi_items() if k not in ("max_id", "min_id", "since_id")]
    nxt = urlencode(keep + [("max_id", str(page[-1][0]))])
    prev = urlencode(keep + [("min_id", str(page[0][0]))])
    return {"Link": f'<{base}?{nxt}>; rel="next", <{base}?{prev}>; rel="prev"'}


def _account(aid: str, username: str, host: str, *, local: bool, display: str, followers: int,
             statuses: int) -> dict[str, Any]:
    """An Account entity with every field the spec requires."""
    avatar = f"https://{host}/avatars/original/missing.png"
    return {"id": aid, "username": username, "acct": username if local else f"{username}@{host}",
            "display_name": display, "url": f"https://{host}/@{username}", "uri": f"https://{host}/users/{username}",
            "avatar": avatar, "avatar_static": avatar, "header": avatar, "header_static": avatar,
            "followers_count": followers, "following_count": 0, "statuses_count": statuses, "bot": False,
            "group": False, "locked": False, "indexable": True, "note": "", "emojis": [], "fields": [],
            "created_at": "2022-11-01T00:00:00.000Z"}


def router(state: SandboxState) -> APIRouter:
    api = PlatformApi(state, P, mastodon_headers, _error_body)
    handle = state.brand_handle.get(P, f"@{BRAND_USERNAME}@{INSTANCE}").lower()
    # Idempotency-Key -> scheduled status id (statuses use state.add_post's own table).
    scheduled_keys: dict[str, str] = {}
    # Held scheduled status id -> the far-future time the client moved it to.
    held_until: dict[str, datetime] = {}

    def brand_account() -> dict[str, Any]:
        return _account(BRAND_ID, BRAND_USERNAME, INSTANCE, local=True, display="Fjell Outdoor", followers=12000,
                        statuses=len(state.posts[P]))

    def account(m: SandboxMention) -> dict[str, Any]:
        return _account(m.author_id or str(abs(hash(m.author)) % 10**12), m.author, "social.example", local=False,
                        display=m.author, followers=m.followers, statuses=0)

    search_cache: dict[tuple[str, int, int], list[tuple[int, Any]]] = {}

    def sid_public(created_at: datetime, sid: str) -> str:
        return public_id(created_at, sid)

    def parent_public(sid: str) -> str | None:
        post = state.find_post(P, sid)
        if post is not None:
            return sid_public(post.created_at, post.id)
        for m in state.mentions[P]:
            if m.id == sid:
                return sid_public(m.created_at, m.id)
        return None

    def status_of_mention(m: SandboxMention) -> dict[str, Any]:
        pid = sid_public(m.created_at, m.id)
        parent = parent_public(m.reply_to) if m.reply_to else None
        acct = account(m)
        return _status(pid, m.text, m.created_at, acct, lang=m.lang, in_reply_to=parent,
                       in_reply_to_account=BRAND_ID if parent else None, likes=m.likes, boosts=m.reposts)

    def status_of_post(p: SandboxPost) -> dict[str, Any]:
        pid = sid_public(p.created_at, p.id)
        parent = parent_public(p.reply_to) if p.reply_to else None
        return _status(pid, p.text, p.created_at, brand_account(), lang=str(p.extra.get("language") or "") or None,
                       in_reply_to=parent, in_reply_to_account=None, likes=0, boosts=0,
                       visibility=str(p.extra.get("visibility") or "public"))

    def _status(pid: str, text: str, created: datetime, acct: dict[str, Any], *, lang: str | None,
                in_reply_to: str | None, in_reply_to_account: str | None, likes: int, boosts: int,
                visibility: str = "public") -> dict[str, Any]:
        host = INSTANCE if acct["id"] == BRAND_ID else "social.example"
        return {"id": pid, "created_at": iso_z(created), "in_reply_to_id": in_reply_to,
                "in_reply_to_account_id": in_reply_to_account, "sensitive": False, "spoiler_text": "",
                "visibility": visibility, "language": lang or None,
                "uri": f"https://{host}/users/{acct['username']}/statuses/{pid}",
                "url": f"https://{host}/@{acct['username']}/{pid}", "replies_count": 0,
                "reblogs_count": boosts, "favourites_count": likes, "edited_at": None, "content": _content(text),
                "reblog": None, "application": None, "account": acct, "media_attachments": [], "mentions": [],
                "tags": [], "emojis": [], "card": None, "poll": None}

    def resolve_status(pid: str) -> str | None:
        """Public status id -> sandbox id of a visible mention or brand post."""
        if not pid.isdigit():
            return None
        sid = sandbox_id_of(P, pid) or ""
        now = state.now()
        with state.lock:
            for m in state.mentions[P]:
                if m.id == sid and m.created_at <= now and sid_public(m.created_at, m.id) == pid:
                    return m.id
        post = state.find_post(P, sid)
        return post.id if post is not None and sid_public(post.created_at, post.id) == pid else None

    @api.route("GET", "/api/v2/search")
    def search(ctx: Ctx) -> Response:
        q = ctx.query.get("q", "").strip()
        if not q:
            raise api.error(400, "q is required")
        kind = ctx.query.get("type")
        empty: dict[str, list[Any]] = {"accounts": [], "hashtags": [], "statuses": []}
        if kind not in (None, "statuses"):
            return json_response(empty)
        terms = [q.strip('"')]
        visible = state.visible_mentions(P, ("mention", "reply"))
        # A drain pages through the same hits: match and id them once per (query, what exists).
        key = (q, len(visible), state.generation)
        rows = search_cache.get(key)
        if rows is None:
            if len(search_cache) > 32:
                search_cache.clear()
            rows = search_cache[key] = sorted(
                ((int(sid_public(m.created_at, m.id)), m) for m in visible if text_matches(m.text, terms)),
                key=lambda r: r[0], reverse=True)
        limit = _int(ctx, "limit", 20, 40)
        raw_offset = ctx.query.get("offset", "")
        offset = int(raw_offset) if raw_offset.isdigit() and kind else 0  # only with `type`, as Mastodon
        page = _bounded(rows, ctx, limit + offset, min_id_forward=False)[offset:]
        resp = json_response({**empty, "statuses": [status_of_mention(m) for _, m in page]})
        resp.headers.update(_link(ctx, page))
        return resp

    @api.route("GET", "/api/v1/notifications")
    def notifications(ctx: Ctx) -> Response:
        q = ctx.query
        types = set(q.getlist("types[]") + q.getlist("types"))
        excluded = set(q.getlist("exclude_types[]") + q.getlist("exclude_types"))
        if (types and "mention" not in types) or "mention" in excluded:
            return json_response([])
        rows = []
        for m in state.visible_mentions(P, ("mention", "reply")):
            if m.kind == "reply" or m.reply_to or handle in m.text.lower():
                rows.append((int(sid_public(m.created_at, m.id)) | NOTIFICATION_BIT, m))
        page = _bounded(rows, ctx, _int(ctx, "limit", 40, 80))
        body = [{"id": str(nid), "type": "mention", "group_key": f"ungrouped-{nid}", "created_at": iso_z(m.created_at),
                 "account": account(m), "status": status_of_mention(m)} for nid, m in page]
        resp = json_response(body)
        resp.headers.update(_link(ctx, page))
        return resp

    @api.route("GET", "/api/v1/accounts/{id}/statuses")
    def account_statuses(ctx: Ctx) -> Response:
        if ctx.request.path_params["id"] != BRAND_ID:
            raise api.error(404, "Record not found")
        now = state.now()
        with state.lock:
            posts = [p for p in state.posts[P] if p.created_at <= now]
        rows = [(int(sid_public(p.created_at, p.id)), p) for p in posts]
        page = _bounded(rows, ctx, _int(ctx, "limit", 20, 40))
        resp = json_response([status_of_post(p) for _, p in page])
        resp.headers.update(_link(ctx, page))
        return resp

    @api.route("POST", "/api/v1/statuses")
    def create_status(ctx: Ctx) -> Response:
        body = ctx.json()
        if not isinstance(body, dict):
            raise api.error(422, "Validation failed: malformed request body")
        text = str(body.get("status") or "")
        if not text.strip():
            raise api.error(422, "Validation failed: Text can't be blank")
        if len(text) > MAX_CHARS:
            raise api.error(422, f"Validation failed: Text character limit of {MAX_CHARS} exceeded")
        visibility = str(body.get("visibility") or "public")
        if visibility not in ("public", "unlisted", "private", "direct"):
            raise api.error(422, "Validation failed: Visibility is not included in the list")
        reply_sid = ""
        if body.get("in_reply_to_id"):
            reply_sid = resolve_status(str(body["in_reply_to_id"])) or ""
            if not reply_sid:
                raise api.error(404, "Record not found")
        key = ctx.request.headers.get("idempotency-key", "")
        if body.get("scheduled_at"):
            return schedule(text, body, key, visibility, reply_sid)
        post, _ = state.add_post(P, text, idempotency_key=key, reply_to=reply_sid, visibility=visibility,
                                 language=str(body.get("language") or ""))
        return json_response(status_of_post(post))

    def schedule(text: str, body: dict[str, Any], key: str, visibility: str, reply_sid: str) -> Response:
        when = parse_time(str(body["scheduled_at"]))
        if when is None:
            raise api.error(422, "Validation failed: Scheduled at is invalid")
        with state.lock:
            if key and key in scheduled_keys:
                return json_response(scheduled_obj(state.scheduled[P][scheduled_keys[key]]))
            if when < state.now() + MIN_LEAD:
                raise api.error(422, "Validation failed: Scheduled at The scheduled date must be in the future")
            s = SandboxScheduled(P, state.new_id(P), text, when)
            s.history.append({"at": state.now().isoformat(), "action": "scheduled", "visibility": visibility,
                              "language": body.get("language"), "in_reply_to": reply_sid})
            state.scheduled[P][s.id] = s
            if key:
                scheduled_keys[key] = s.id
        return json_response(scheduled_obj(s))

    def scheduled_obj(s: SandboxScheduled) -> dict[str, Any]:
        first = s.history[0] if s.history else {}
        when = held_until.get(s.id, s.scheduled_at)
        return {"id": s.id, "scheduled_at": iso_z(when),
                "params": {"text": s.text, "visibility": first.get("visibility") or "public",
                           "language": first.get("language"), "in_reply_to_id": None, "media_ids": None,
                           "poll": None, "sensitive": None, "spoiler_text": None, "scheduled_at": None,
                           "idempotency": None, "application_id": 1, "with_rate_limit": False},
                "media_attachments": [{"id": str(i + 1), "type": "image", "url": u, "preview_url": u}
                                      for i, u in enumerate(s.media)]}

    def pending(sid: str) -> SandboxScheduled:
        s = state.scheduled[P].get(sid)
        if s is None or s.state not in ("scheduled", "held"):
            raise api.error(404, "Record not found")
        return s

    @api.route("GET", "/api/v1/scheduled_statuses")
    def list_scheduled(ctx: Ctx) -> Response:
        with state.lock:
            rows = [(int(s.id), s) for s in state.scheduled[P].values() if s.state in ("scheduled", "held")]
        page = _bounded(rows, ctx, _int(ctx, "limit", 20, 40))
        resp = json_response([scheduled_obj(s) for _, s in page])
        resp.headers.update(_link(ctx, page))
        return resp

    @api.route("GET", "/api/v1/scheduled_statuses/{id}")
    def show_scheduled(ctx: Ctx) -> Response:
        with state.lock:
            return json_response(scheduled_obj(pending(ctx.request.path_params["id"])))

    @api.route("PUT", "/api/v1/scheduled_statuses/{id}")
    def move_scheduled(ctx: Ctx) -> Response:
        body = ctx.json()
        when = parse_time(str(body.get("scheduled_at") or "")) if isinstance(body, dict) else None
        with state.lock:
            s = pending(ctx.request.path_params["id"])
            if when is None:
                return json_response(scheduled_obj(s))
            now = state.now()
            if when < now + MIN_LEAD:
                raise api.error(422, "Validation failed: Scheduled at The scheduled date must be in the future")
            if when > now + HOLD_HORIZON:
                s.state = "held"
                held_until[s.id] = when
                s.history.append({"at": now.isoformat(), "action": "held", "until": when.isoformat()})
            else:
                s.state = "scheduled"
                held_until.pop(s.id, None)
                s.history.append({"at": now.isoformat(), "action": "rescheduled", "from": s.scheduled_at.isoformat(),
                                  "to": when.isoformat()})
                s.scheduled_at = when
            return json_response(scheduled_obj(s))

    @api.route("DELETE", "/api/v1/scheduled_statuses/{id}")
    def delete_scheduled(ctx: Ctx) -> Response:
        with state.lock:
            s = pending(ctx.request.path_params["id"])
            s.state = "cancelled"
            held_until.pop(s.id, None)
            s.history.append({"at": state.now().isoformat(), "action": "cancelled"})
        return json_response({})

    return api.router
