"""Sandbox Instagram professional account (Instagram Graph API paths under /instagram;
specs/meta-graph/IGUser.json, IGMedia.json, IGComment.json).

Nodes: the brand's IG user (any id that is not a known object), its media (`state.posts`
plus stand-ins for parents of loaded comments), comments (scenario mentions of kind
comment/reply whose `reply_to` is the media), media that tag the brand (kind mention, served
by `/{ig-user}/tags`) and publishing containers.

Edges: `GET|POST /{ig-user}/media` (POST creates a container: `image_url` or `video_url`,
`caption`), `POST /{ig-user}/media_publish` (`creation_id`), `GET /{ig-user}/tags`,
`GET|POST /{media}/comments`, `GET|POST /{comment}/replies`, `GET|POST|DELETE /{node}`
(`POST /{comment}` takes `hide`). There is no scheduling edge to emulate: IGUser.json only
declares a read-only `scheduled_media` and nothing to create, move or pause one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from firebreak.sandbox._graph import COMMENT_KINDS, GraphApi, bad_param, graph_error, gtime, truthy
from firebreak.sandbox.state import SandboxMention, SandboxPost, SandboxState
from firebreak.domain import Platform

P = Platform.INSTAGRAM
IG_USER = "17841400000000001"
USERNAME = "fjelloutdoor"


@dataclass
class Container:
    id: str
    caption: str
    media_url: str
    published_id: str = ""


def media_json(p: SandboxPost, comments: int) -> dict[str, Any]:
    return {"id": p.id, "caption": p.text, "timestamp": gtime(p.created_at), "media_type": "IMAGE",
            "media_url": p.media[0] if p.media else "", "permalink": f"https://www.instagram.com/p/{p.id}/",
            "username": USERNAME, "owner": {"id": IG_USER}, "like_count": 0, "comments_count": comments}


def comment_json(m: SandboxMention, hidden: bool) -> dict[str, Any]:
    return {"id": m.id, "text": m.text, "timestamp": gtime(m.created_at), "username": m.author,
            "from": {"id": m.author_id or str(abs(hash(m.author)) % 10**15), "username": m.author},
            "like_count": m.likes, "hidden": hidden, "media": {"id": m.reply_to}}


def own_comment_json(p: SandboxPost, parent_is_comment: bool) -> dict[str, Any]:
    out = {"id": p.id, "text": p.text, "timestamp": gtime(p.created_at), "username": USERNAME,
           "from": {"id": IG_USER, "username": USERNAME}, "like_count": 0, "hidden": False}
    if parent_is_comment:
        out["parent_id"] = p.reply_to
    return out


def tag_json(m: SandboxMention) -> dict[str, Any]:
    return {"id": m.id, "caption": m.text, "timestamp": gtime(m.created_at), "username": m.author,
            "media_type": "IMAGE", "permalink": f"https://www.instagram.com/p/{m.id}/",
            "like_count": m.likes, "comments_count": 0}


def router(state: SandboxState) -> APIRouter:
    api = GraphApi(state, P)
    r = APIRouter()
    containers: dict[str, Container] = {}

    def hidden() -> set[str]:
        with state.lock:
            return set(state.hidden[P])

    def media_items() -> list[dict[str, Any]]:
        out = []
        for p in api.brand_posts():
            out.append(media_json(p, len(api.comments_on(p.id))))
        return out

    def comments_of(media_id: str) -> list[dict[str, Any]]:
        h = hidden()
        items = [(m.created_at, m.id, comment_json(m, m.id in h)) for m in api.comments_on(media_id)]
        items += [(p.created_at, p.id, own_comment_json(p, False)) for p in api.brand_replies({media_id})]
        items.sort(key=lambda i: (i[0], i[1]), reverse=True)  # newest first
        return [i[2] for i in items]

    def is_user(node_id: str) -> bool:
        return (node_id.isdigit() and api.find_brand_post(node_id) is None and api.find_mention(node_id) is None
                and node_id not in containers and state.find_post(P, node_id) is None)

    def unknown(node_id: str) -> JSONResponse:
        return graph_error(400, f"Unsupported request. Object with ID '{node_id}' does not exist, cannot be loaded "
                                "due to missing permissions, or does not support this operation", code=100, subcode=33,
                           type_="GraphMethodException")

    @r.api_route("/{node_id}/{edge}", methods=["GET", "POST"])
    async def edge(node_id: str, edge: str, request: Request) -> JSONResponse:
        params = await api.params(request)
        if (denied := api.gate(request, params)) is not None:
            return denied
        get = request.method == "GET"
        if is_user(node_id):
            if get and edge == "media":
                return api.respond(api.page(media_items(), request, params))
            if get and edge == "tags":
                tags = sorted(state.visible_mentions(P, ("mention",)), key=lambda m: (m.created_at, m.id), reverse=True)
                return api.respond(api.page([tag_json(m) for m in tags], request, params))
            if not get and edge == "media":
                url = params.get("image_url") or params.get("video_url")
                if not url:
                    return bad_param("The parameter image_url is required.")
                c = Container(state.new_id(P), params.get("caption", ""), url)
                containers[c.id] = c
                return api.respond({"id": c.id})
            if not get and edge == "media_publish":
                c = containers.get(params.get("creation_id", ""))
                if c is None:
                    return graph_error(400, "(#100) The media container cannot be found.", code=100, subcode=2207006)
                if c.published_id:
                    return graph_error(400, "(#100) The media container has already been published.", code=100,
                                       subcode=2207008)
                post, _ = state.add_post(P, c.caption, media=[c.media_url])
                c.published_id = post.id
                return api.respond({"id": post.id})
            return bad_param(f"Tried accessing nonexisting field ({edge}) on node type (IGUser)")
        media = api.find_brand_post(node_id)
        comment = api.find_mention(node_id, COMMENT_KINDS)
        own = state.find_post(P, node_id)
        if edge == "comments" and (media is not None or api.find_mention(node_id, ("mention",)) is not None):
            if get:
                return api.respond(api.page(comments_of(node_id), request, params))
            return reply(node_id, params)
        if edge == "replies" and (comment is not None or (own is not None and own.reply_to)):
            if get:
                items = [own_comment_json(p, True) for p in api.brand_replies({node_id})]
                return api.respond(api.page(items, request, params))
            return reply(node_id, params)
        if media is None and comment is None and own is None:
            return unknown(node_id)
        return bad_param(f"Tried accessing nonexisting field ({edge})")

    def reply(parent: str, params: dict[str, str]) -> JSONResponse:
        text = params.get("message", "")
        if not text:
            return bad_param("The parameter message is required.")
        post, _ = state.add_post(P, text, reply_to=parent)
        return api.respond({"id": post.id})

    @r.api_route("/{node_id}", methods=["GET", "POST", "DELETE"])
    async def node(node_id: str, request: Request) -> JSONResponse:
        params = await api.params(request)
        if (denied := api.gate(request, params)) is not None:
            return denied
        media = api.find_brand_post(node_id)
        comment = api.find_mention(node_id, COMMENT_KINDS)
        own = state.find_post(P, node_id)
        if request.method == "GET":
            if media is not None:
                return api.respond(api.node(media_json(media, len(api.comments_on(node_id))), params))
            if comment is not None:
                return api.respond(api.node(comment_json(comment, comment.id in hidden()), params))
            if own is not None and own.reply_to:
                return api.respond(api.node(own_comment_json(own, state.find_post(P, own.reply_to) is None), params))
            if node_id in containers:
                c = containers[node_id]
                return api.respond(api.node({"id": c.id, "status_code": "PUBLISHED" if c.published_id else "FINISHED"},
                                            params))
            if (m := api.find_mention(node_id, ("mention",))) is not None:
                return api.respond(api.node(tag_json(m), params))
            if is_user(node_id):
                return api.respond(api.node({"id": node_id, "username": USERNAME, "followers_count": 52000,
                                             "media_count": len(api.brand_posts())}, params))
            return unknown(node_id)
        if request.method == "DELETE":
            if own is not None:
                state.remove_post(P, node_id)
                return api.respond({"success": True})
            if comment is not None or api.find_mention(node_id) is not None:
                return graph_error(403, "(#200) The sandbox refuses to delete third-party content", code=200)
            return unknown(node_id)
        # POST /{ig-comment-id} hide=true|false: only comments on the brand's media.
        if comment is not None:
            if "hide" not in params:
                return bad_param("The parameter hide is required.")
            if api.find_brand_post(comment.reply_to) is None:
                return graph_error(403, "(#200) Only comments on your own media can be hidden", code=200)
            with state.lock:
                if truthy(params["hide"]):
                    state.hidden[P].add(comment.id)
                else:
                    state.hidden[P].discard(comment.id)
            return api.respond({"success": True})
        if media is not None and "comment_enabled" in params:
            return api.respond({"success": True})
        return unknown(node_id)

    return r
