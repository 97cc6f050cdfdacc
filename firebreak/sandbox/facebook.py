"""Sandbox Facebook Page (Graph API v21.0 paths under /facebook; specs/meta-graph).

Nodes: the page (an all-digit id), brand posts and scheduled posts (`{page}_{n}`), comments
(scenario mentions of kind comment/reply; their `reply_to` is the parent post) and posts
that tag the page (scenario mentions of kind mention, served by `/{page}/tagged`).

Edges: `GET /{page}/feed|published_posts|tagged|scheduled_posts`, `POST /{page}/feed`
(`message`; `published=false` + `scheduled_publish_time` schedules), `GET|POST
/{object}/comments` (`filter=toplevel|stream`, `order=chronological|reverse_chronological`,
`since`/`until`), `GET|POST|DELETE /{node}`.

Behaviour worth knowing:
- `POST /{scheduled-post}`: `scheduled_publish_time` must be at least 10 minutes ahead of
  the sandbox clock (Graph's rule; the 30-day upper bound is not enforced because connector
  and sandbox clocks differ in drills); `is_published=true` publishes it now.
- `POST /{page}/feed` with the text of a post from the last 24 h -> `(#506) Duplicate status message`.
- `POST /{comment}` `is_hidden=true|false` hides/unhides a comment on the page's posts.
- `DELETE` works only on the page's own posts and scheduled posts; third-party content -> (#200).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from firebreak.sandbox._graph import (
    COMMENT_KINDS,
    GraphApi,
    bad_param,
    graph_error,
    gtime,
    parse_gtime,
    since_filter,
    truthy,
)
from firebreak.sandbox.state import SandboxMention, SandboxPost, SandboxScheduled, SandboxState
from firebreak.domain import Platform

P = Platform.FACEBOOK
PAGE_ID = "100000000000001"
PAGE_NAME = "Fjell Outdoor"
MIN_SCHEDULE = timedelta(minutes=10)
DUPLICATE_WINDOW = timedelta(hours=24)


def _page_of(object_id: str) -> str:
    return object_id.split("_", 1)[0] if "_" in object_id else PAGE_ID


def _uid(m: SandboxMention) -> str:
    return m.author_id or str(abs(hash(m.author)) % 10**15)


def post_json(p: SandboxPost) -> dict[str, Any]:
    return {"id": p.id, "message": p.text, "created_time": gtime(p.created_at), "is_published": True,
            "is_hidden": False, "from": {"id": _page_of(p.id), "name": PAGE_NAME},
            "permalink_url": f"https://www.facebook.com/{p.id}", "status_type": "mobile_status_update"}


def scheduled_json(s: SandboxScheduled) -> dict[str, Any]:
    out = {"id": s.id, "message": s.text, "scheduled_publish_time": int(s.scheduled_at.timestamp()),
           "is_published": False, "from": {"id": _page_of(s.id), "name": PAGE_NAME},
           "permalink_url": f"https://www.facebook.com/{s.id}"}
    if s.media:
        out["full_picture"] = s.media[0]
    return out


def comment_json(m: SandboxMention, hidden: bool) -> dict[str, Any]:
    return {"id": m.id, "message": m.text, "created_time": gtime(m.created_at),
            "from": {"id": _uid(m), "name": m.author}, "like_count": m.likes, "comment_count": 0,
            "permalink_url": f"https://www.facebook.com/{m.reply_to or m.id}?comment_id={m.id}",
            "is_hidden": hidden, "can_hide": True, "can_remove": True}


def reply_json(p: SandboxPost, parent_is_comment: bool) -> dict[str, Any]:
    out = {"id": p.id, "message": p.text, "created_time": gtime(p.created_at),
           "from": {"id": _page_of(p.id), "name": PAGE_NAME}, "like_count": 0, "comment_count": 0,
           "permalink_url": f"https://www.facebook.com/{p.id}", "is_hidden": False, "can_hide": False}
    if parent_is_comment:
        out["parent"] = {"id": p.reply_to}
    return out


def tagged_json(m: SandboxMention) -> dict[str, Any]:
    return {"id": m.id, "message": m.text, "created_time": gtime(m.created_at),
            "from": {"id": _uid(m), "name": m.author}, "permalink_url": f"https://www.facebook.com/{m.id}",
            "shares": {"count": m.reposts}}


def router(state: SandboxState) -> APIRouter:
    api = GraphApi(state, P)
    r = APIRouter()

    def find_scheduled(post_id: str) -> SandboxScheduled | None:
        s = state.scheduled[P].get(post_id)
        return s if s is not None and s.state in ("scheduled", "held") else None

    def own_post(post_id: str) -> SandboxPost | None:
        p = state.find_post(P, post_id)
        return p if p is not None and p.created_at <= state.now() else None

    def comment_thread(post_id: str, params: dict[str, str]) -> list[dict[str, Any]]:
        comments = api.comments_on(post_id)
        toplevel_ids = {m.id for m in comments}
        stream = params.get("filter", "toplevel") == "stream"
        if stream:
            # replies to comments (a reply's reply_to is its comment) come with the thread
            comments += [m for m in state.visible_mentions(P, COMMENT_KINDS) if m.reply_to in toplevel_ids]
        parents = {post_id} | (toplevel_ids if stream else set())
        replies = api.brand_replies(parents)
        with state.lock:
            hidden = set(state.hidden[P])
        items = [(m.created_at, m.id, comment_json(m, m.id in hidden)) for m in comments]
        items += [(p.created_at, p.id, reply_json(p, p.reply_to != post_id)) for p in replies]
        keep = since_filter(params)
        items = [i for i in items if keep(i[0])]
        items.sort(key=lambda i: (i[0], i[1]), reverse=params.get("order") == "reverse_chronological")
        return [i[2] for i in items]

    @r.api_route("/{node_id}/{edge}", methods=["GET", "POST"])
    async def edge(node_id: str, edge: str, request: Request) -> JSONResponse:
        params = await api.params(request)
        if (denied := api.gate(request, params)) is not None:
            return denied
        get = request.method == "GET"
        if node_id.isdigit():  # the page
            if get and edge in ("feed", "published_posts", "posts"):
                items = [post_json(p) for p in api.brand_posts()]
                return api.respond(api.page(items, request, params))
            if get and edge == "tagged":
                mentions = sorted(state.visible_mentions(P, ("mention",)), key=lambda m: (m.created_at, m.id), reverse=True)
                return api.respond(api.page([tagged_json(m) for m in mentions], request, params))
            if get and edge == "scheduled_posts":
                with state.lock:
                    items = sorted((s for s in state.scheduled[P].values() if s.state == "scheduled"),
                                   key=lambda s: (s.scheduled_at, s.id))
                return api.respond(api.page([scheduled_json(s) for s in items], request, params))
            if not get and edge == "feed":
                return publish(node_id, params)
            return bad_param(f"Tried accessing nonexisting field ({edge}) on node type (Page)")
        if edge != "comments":
            return bad_param(f"Tried accessing nonexisting field ({edge})")
        target = api.find_brand_post(node_id) or api.find_mention(node_id)
        if target is None and own_post(node_id) is None:
            return unknown(node_id)
        if get:
            return api.respond(api.page(comment_thread(node_id, params), request, params))
        text = params.get("message", "")
        if not text:
            return bad_param("The parameter message is required")
        post, _ = state.add_post(P, text, reply_to=node_id)
        return api.respond({"id": post.id})

    def publish(page_id: str, params: dict[str, str]) -> JSONResponse:
        text = params.get("message", "")
        if not text and not params.get("link"):
            return bad_param("The parameter message or link is required")
        now = state.now()
        if params.get("published") is not None and not truthy(params.get("published")):
            when = parse_gtime(params.get("scheduled_publish_time", ""))
            if when is None:
                return bad_param("Unpublished posts other than scheduled ones are not emulated by the sandbox")
            if when < now + MIN_SCHEDULE:
                return bad_param("The specified scheduled publish time is invalid.")
            with state.lock:
                s = SandboxScheduled(P, state.new_id(P), text, when)
                s.history.append({"at": now.isoformat(), "action": "scheduled"})
                state.scheduled[P][s.id] = s
            return api.respond({"id": s.id})
        with state.lock:
            dup = any(p.text == text and not p.reply_to and now - DUPLICATE_WINDOW <= p.created_at <= now
                      for p in state.posts[P])
        if dup:
            return graph_error(400, "(#506) Duplicate status message", code=506)
        post, _ = state.add_post(P, text)
        return api.respond({"id": post.id})

    def unknown(node_id: str) -> JSONResponse:
        return graph_error(400, f"Unsupported request. Object with ID '{node_id}' does not exist, cannot be loaded "
                                "due to missing permissions, or does not support this operation", code=100, subcode=33,
                           type_="GraphMethodException")

    @r.api_route("/{node_id}", methods=["GET", "POST", "DELETE"])
    async def node(node_id: str, request: Request) -> JSONResponse:
        params = await api.params(request)
        if (denied := api.gate(request, params)) is not None:
            return denied
        now = state.now()
        if request.method == "GET":
            if node_id.isdigit():
                return api.respond(api.node({"id": node_id, "name": PAGE_NAME, "username": "fjelloutdoor"}, params))
            if (s := find_scheduled(node_id)) is not None:
                return api.respond(api.node(scheduled_json(s), params))
            if (p := own_post(node_id)) is not None:
                j = reply_json(p, False) if p.reply_to else post_json(p)
                return api.respond(api.node(j, params))
            if (m := api.find_mention(node_id)) is not None:
                with state.lock:
                    hidden = m.id in state.hidden[P]
                j = tagged_json(m) if m.kind == "mention" else comment_json(m, hidden)
                return api.respond(api.node(j, params))
            return unknown(node_id)

        if request.method == "DELETE":
            with state.lock:
                if (s := find_scheduled(node_id)) is not None:
                    s.state = "cancelled"
                    s.history.append({"at": now.isoformat(), "action": "cancelled"})
                    return api.respond({"success": True})
            if own_post(node_id) is not None:
                state.remove_post(P, node_id)
                return api.respond({"success": True})
            if api.find_mention(node_id) is not None:
                return graph_error(403, "(#200) The sandbox refuses to delete third-party content", code=200)
            return unknown(node_id)

        # POST: update
        with state.lock:
            s = find_scheduled(node_id)
            if s is not None:
                if "message" in params:
                    s.text = params["message"]
                if truthy(params.get("is_published")):
                    s.state = "published"
                    s.history.append({"at": now.isoformat(), "action": "published"})
                    state.posts[P].append(SandboxPost(P, s.id, s.text, now, source="scheduled", media=list(s.media)))
                    return api.respond({"success": True})
                if params.get("scheduled_publish_time"):
                    when = parse_gtime(params["scheduled_publish_time"])
                    if when is None or when < now + MIN_SCHEDULE:
                        return bad_param("The specified scheduled publish time is invalid.")
                    s.history.append({"at": now.isoformat(), "action": "rescheduled",
                                      "from": s.scheduled_at.isoformat(), "to": when.isoformat()})
                    s.scheduled_at = when
                    s.state = "scheduled"
                return api.respond({"success": True})
        if (p := own_post(node_id)) is not None:
            if "message" in params:
                p.text = params["message"]
            return api.respond({"success": True})
        m = api.find_mention(node_id, COMMENT_KINDS)
        if m is not None and "is_hidden" in params and set(params) <= {"is_hidden", "access_token"}:
            with state.lock:
                if truthy(params["is_hidden"]):
                    state.hidden[P].add(m.id)
                else:
                    state.hidden[P].discard(m.id)
            return api.respond({"success": True})
        if m is not None or api.find_mention(node_id) is not None:
            return graph_error(403, "(#200) Permissions error: the page can only hide comments made by others", code=200)
        return unknown(node_id)

    return r
