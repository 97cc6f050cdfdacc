"""Sandbox LinkedIn organization (REST API `/rest/*` under /linkedin).

LinkedIn has no machine-readable spec; this follows its documented Posts and Social Actions
APIs: `GET /rest/posts?q=author&author={org}` (offset paging `start`/`count`), `GET|DELETE
/rest/posts/{urn}`, `POST /rest/posts` (201, new URN in `x-restli-id`), `POST
/rest/posts/{urn}` with `X-RestLi-Method: PARTIAL_UPDATE` and `{"patch": {"$set": {…}}}`
(204), `GET|POST /rest/socialActions/{urn}/comments`. URNs arrive URL-encoded.

Every request must carry `Authorization: Bearer …`, `LinkedIn-Version: YYYYMM` and
`X-Restli-Protocol-Version: 2.0.0`; errors come as `{"status", "code"?, "serviceErrorCode"?,
"message"}`.

Scheduling: LinkedIn has none. Scenario scheduled posts (`state.scheduled[linkedin]`) appear
as DRAFT posts carrying `x-schedule: {"publishAt": epoch-ms, "state": "SCHEDULED"|"HELD"}`,
which stands for the record a scheduling tool keeps (not a LinkedIn field). `state.tick()` plays
the tool: a SCHEDULED draft whose time has come is published. PARTIAL_UPDATE may `$set` that
record, `commentary`, or `lifecycleState: PUBLISHED` (publish a draft now).

Faults (`state.faults["linkedin"]` dict): `{"daily_limit": n}` -> after n requests (this
process), every request gets LinkedIn's bare 429 (no rate-limit headers: the budget is daily
and resets at midnight UTC); `{"rate_limited": s, "rate_limited_times": k}` -> the next k
requests get that bare 429; `{"revoked_tokens": [...]}` -> 401.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from firebreak.sandbox.state import SandboxMention, SandboxPost, SandboxScheduled, SandboxState
from firebreak.domain import Platform

P = Platform.LINKEDIN
ORG = "urn:li:organization:1000001"
SCHEDULE_FIELD = "x-schedule"
_RESERVED = re.compile(r"([\\|{}@\[\]()<>#*_~])")
_ESCAPED = re.compile(r"\\([\\|{}@\[\]()<>#*_~])")
PATCHABLE = {"commentary", "lifecycleState", SCHEDULE_FIELD, "contentCallToActionLabel", "contentLandingPage", "adContext"}
REQUIRED_POST_FIELDS = ("author", "commentary", "visibility", "distribution", "lifecycleState")


def ms(dt: datetime) -> int:
    return int(dt.timestamp() * 1000)


def li_error(status: int, message: str, code: str | None = None, service: int | None = None) -> JSONResponse:
    body: dict[str, Any] = {"status": status, "message": message}
    if code:
        body["code"] = code
    if service:
        body["serviceErrorCode"] = service
    return JSONResponse(body, status_code=status)


def comment_urn(post_urn: str, item_id: str) -> str:
    if item_id.startswith("urn:li:comment:"):
        return item_id
    return f"urn:li:comment:({post_urn},{item_id.rsplit(':', 1)[-1]})"


def router(state: SandboxState) -> APIRouter:
    r = APIRouter()
    counter = {"requests": 0}

    def faults() -> dict[str, Any]:
        f = state.faults.get(P)
        return f if isinstance(f, dict) else {}

    def gate(request: Request) -> Response | None:
        with state.lock:
            f = faults()
            counter["requests"] += 1
            limit = f.get("daily_limit")
            throttled = limit is not None and counter["requests"] > int(limit)
            if f.get("rate_limited"):
                throttled = True
                left = int(f.get("rate_limited_times", 1)) - 1
                if left <= 0:
                    f.pop("rate_limited", None)
                    f.pop("rate_limited_times", None)
                else:
                    f["rate_limited_times"] = left
        if throttled:
            return li_error(429, "Resource level throttle APPLICATION DAY limit for calls to this resource is reached.")
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not token.strip() or token.strip() in f.get("revoked_tokens", ()):
            return li_error(401, "Invalid access token", "INVALID_ACCESS_TOKEN", 65600)
        version = request.headers.get("linkedin-version")
        if not version:
            return li_error(400, "A version must be present. Please specify a version by adding the "
                                 "LinkedIn-Version header.", "VERSION_MISSING")
        if not re.fullmatch(r"20\d{2}(0[1-9]|1[0-2])(\.\d{2})?", version):
            return li_error(426, f"Requested version {version} is not active", "NONEXISTENT_VERSION")
        if request.headers.get("x-restli-protocol-version") != "2.0.0":
            return li_error(400, "X-Restli-Protocol-Version 2.0.0 is required for this resource")
        return None

    def escape(text: str) -> str:
        return _RESERVED.sub(r"\\\1", text)

    def post_el(p: SandboxPost) -> dict[str, Any]:
        t = ms(p.created_at)
        return {"id": p.id, "author": ORG, "commentary": escape(p.text), "visibility": "PUBLIC",
                "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                                 "thirdPartyDistributionChannels": []},
                "lifecycleState": "PUBLISHED", "isReshareDisabledByAuthor": False,
                "createdAt": t, "publishedAt": t, "lastModifiedAt": t,
                "lifecycleStateInfo": {"isEditedByAuthor": False}}

    def draft_created(s: SandboxScheduled) -> datetime:
        return min(state.now(), s.scheduled_at - timedelta(days=1))

    def draft_el(s: SandboxScheduled) -> dict[str, Any]:
        t = ms(draft_created(s))
        return {"id": s.id, "author": ORG, "commentary": escape(s.text), "visibility": "PUBLIC",
                "distribution": {"feedDistribution": "MAIN_FEED", "targetEntities": [],
                                 "thirdPartyDistributionChannels": []},
                "lifecycleState": "DRAFT", "isReshareDisabledByAuthor": False,
                "createdAt": t, "lastModifiedAt": t,
                SCHEDULE_FIELD: {"publishAt": ms(s.scheduled_at), "state": "HELD" if s.state == "held" else "SCHEDULED"}}

    def top_posts() -> list[SandboxPost]:
        now = state.now()
        with state.lock:
            posts = [p for p in state.posts[P] if not p.reply_to and p.created_at <= now]
        known = {p.id for p in posts}
        for m in state.visible_mentions(P, ("comment", "reply")):
            if m.reply_to and m.reply_to not in known and m.reply_to.startswith(("urn:li:share:", "urn:li:ugcPost:")):
                known.add(m.reply_to)
                posts.append(SandboxPost(P, m.reply_to, "", m.created_at, source="standin"))
        return posts

    def drafts() -> list[SandboxScheduled]:
        with state.lock:
            return [s for s in state.scheduled[P].values() if s.state in ("scheduled", "held")]

    def find(urn: str) -> tuple[SandboxPost | None, SandboxScheduled | None]:
        for p in top_posts():
            if p.id == urn:
                return p, None
        with state.lock:
            s = state.scheduled[P].get(urn)
        return None, s if s is not None and s.state in ("scheduled", "held") else None

    def paging(request: Request, start: int, count: int, total: int) -> dict[str, Any]:
        links = []
        if start + count < total:
            links.append({"rel": "next", "type": "application/json",
                          "href": str(request.url.include_query_params(start=start + count, count=count))})
        return {"start": start, "count": count, "total": total, "links": links}

    def window(request: Request) -> tuple[int, int] | Response:
        try:
            start = int(request.query_params.get("start", 0))
            count = int(request.query_params.get("count", 10))
        except ValueError:
            return li_error(400, "start and count must be integers")
        if start < 0 or not 1 <= count <= 100:
            return li_error(400, "count must be between 1 and 100")
        return start, count

    async def body_json(request: Request) -> Any:
        raw = await request.body()
        try:
            return json.loads(raw) if raw else None
        except ValueError:
            return None

    @r.get("/rest/posts")
    async def list_posts(request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        q = request.query_params
        if q.get("q") != "author" or not q.get("author"):
            return li_error(400, "q=author and author are required for this finder", "ILLEGAL_ARGUMENT")
        w = window(request)
        if isinstance(w, Response):
            return w
        start, count = w
        items: list[tuple[datetime, str, dict[str, Any]]] = []
        if q["author"] == ORG:
            items = [(p.created_at, p.id, post_el(p)) for p in top_posts()]
            items += [(draft_created(s), s.id, draft_el(s)) for s in drafts()]
        items.sort(key=lambda i: (i[0], i[1]), reverse=True)
        return JSONResponse({"elements": [i[2] for i in items[start:start + count]],
                             "paging": paging(request, start, count, len(items))})

    @r.post("/rest/posts")
    async def create_post(request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        body = await body_json(request)
        if not isinstance(body, dict):
            return li_error(400, "Request body must be a JSON object")
        missing = [f for f in REQUIRED_POST_FIELDS if f not in body]
        if missing:
            return li_error(422, f"Missing required fields: {', '.join(missing)}", "MISSING_FIELD")
        if body["author"] != ORG:
            return li_error(403, f"Not enough permissions to post as {body['author']}", "ACCESS_DENIED", 100)
        text = _ESCAPED.sub(r"\1", str(body["commentary"]))
        if body["lifecycleState"] == "PUBLISHED":
            post, _ = state.add_post(P, text)
            return Response(status_code=201, headers={"x-restli-id": post.id, "x-linkedin-id": post.id})
        sched = body.get(SCHEDULE_FIELD)
        if body["lifecycleState"] == "DRAFT" and isinstance(sched, dict) and "publishAt" in sched:
            with state.lock:
                s = SandboxScheduled(P, state.new_id(P), text,
                                     datetime.fromtimestamp(int(sched["publishAt"]) / 1000, tz=state.now().tzinfo))
                s.history.append({"at": state.now().isoformat(), "action": "scheduled"})
                state.scheduled[P][s.id] = s
            return Response(status_code=201, headers={"x-restli-id": s.id})
        return li_error(422, "The sandbox emulates PUBLISHED posts and scheduled DRAFTs only", "UNPROCESSABLE_ENTITY")

    @r.get("/rest/posts/{urn}")
    async def get_post(urn: str, request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        post, draft = find(urn)
        if post is not None:
            return JSONResponse(post_el(post))
        if draft is not None:
            return JSONResponse(draft_el(draft))
        return li_error(404, f"Post {urn} not found", "NOT_FOUND")

    @r.post("/rest/posts/{urn}")
    async def update_post(urn: str, request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        if request.headers.get("x-restli-method", "").upper() != "PARTIAL_UPDATE":
            return li_error(400, "X-RestLi-Method: PARTIAL_UPDATE is required to update a post")
        body = await body_json(request)
        fields = (body or {}).get("patch", {}).get("$set") if isinstance(body, dict) else None
        if not isinstance(fields, dict) or not fields:
            return li_error(400, 'Body must be {"patch": {"$set": {...}}}')
        if set(fields) - PATCHABLE:
            return li_error(422, f"Fields not updatable: {sorted(set(fields) - PATCHABLE)}", "UNPROCESSABLE_ENTITY")
        post, draft = find(urn)
        now = state.now()
        if post is not None:
            if set(fields) - {"commentary", "contentCallToActionLabel", "contentLandingPage"}:
                return li_error(422, "A published post can only change its commentary and call to action")
            if "commentary" in fields:
                post.text = _ESCAPED.sub(r"\1", str(fields["commentary"]))
            return Response(status_code=204)
        if draft is None:
            return li_error(404, f"Post {urn} not found", "NOT_FOUND")
        with state.lock:
            if "commentary" in fields:
                draft.text = _ESCAPED.sub(r"\1", str(fields["commentary"]))
            sched = fields.get(SCHEDULE_FIELD)
            if isinstance(sched, dict):
                when = datetime.fromtimestamp(int(sched.get("publishAt", ms(draft.scheduled_at))) / 1000, tz=now.tzinfo)
                new_state = "held" if sched.get("state") == "HELD" else "scheduled"
                draft.history.append({"at": now.isoformat(), "action": "held" if new_state == "held" else "released",
                                      "from": draft.scheduled_at.isoformat(), "to": when.isoformat()})
                draft.scheduled_at, draft.state = when, new_state
            if fields.get("lifecycleState") == "PUBLISHED":
                draft.state = "published"
                draft.history.append({"at": now.isoformat(), "action": "published"})
                state.posts[P].append(SandboxPost(P, draft.id, draft.text, now, source="scheduled", media=list(draft.media)))
            elif "lifecycleState" in fields and fields["lifecycleState"] != "DRAFT":
                return li_error(422, f"lifecycleState {fields['lifecycleState']} cannot be set")
        state.tick()  # a released draft whose time has passed goes out at once, as the tool would
        return Response(status_code=204)

    @r.delete("/rest/posts/{urn}")
    async def delete_post(urn: str, request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        post, draft = find(urn)
        if draft is not None:
            with state.lock:
                draft.state = "cancelled"
                draft.history.append({"at": state.now().isoformat(), "action": "cancelled"})
            return Response(status_code=204)
        if post is not None and post.source != "standin":
            state.remove_post(P, urn)
            return Response(status_code=204)
        return li_error(404, f"Post {urn} not found", "NOT_FOUND")

    def comment_el(m: SandboxMention) -> dict[str, Any]:
        urn = comment_urn(m.reply_to, m.id)
        actor = m.author_id if m.author_id.startswith("urn:li:") else f"urn:li:person:{m.author}"
        t = ms(m.created_at)
        return {"id": urn.rsplit(",", 1)[-1].rstrip(")"), "commentUrn": urn, "$URN": urn, "actor": actor,
                "object": m.reply_to, "message": {"text": m.text, "attributes": []},
                "created": {"actor": actor, "time": t}, "lastModified": {"actor": actor, "time": t},
                "likesSummary": {"totalLikes": m.likes, "likedByCurrentUser": False},
                "commentsSummary": {"aggregatedTotalComments": 0, "totalFirstLevelComments": 0}}

    def own_comment_el(p: SandboxPost) -> dict[str, Any]:
        urn = comment_urn(p.reply_to, p.id)
        t = ms(p.created_at)
        return {"id": urn.rsplit(",", 1)[-1].rstrip(")"), "commentUrn": urn, "$URN": urn, "actor": ORG,
                "object": p.reply_to, "message": {"text": p.text, "attributes": []},
                "created": {"actor": ORG, "time": t}, "lastModified": {"actor": ORG, "time": t},
                "likesSummary": {"totalLikes": 0, "likedByCurrentUser": False},
                "commentsSummary": {"aggregatedTotalComments": 0, "totalFirstLevelComments": 0}}

    @r.get("/rest/socialActions/{urn}/comments")
    async def list_comments(urn: str, request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        w = window(request)
        if isinstance(w, Response):
            return w
        start, count = w
        now = state.now()
        items = [(m.created_at, m.id, comment_el(m)) for m in state.visible_mentions(P, ("comment", "reply"))
                 if m.reply_to == urn]
        with state.lock:
            items += [(p.created_at, p.id, own_comment_el(p)) for p in state.posts[P]
                      if p.reply_to == urn and p.created_at <= now]
        items.sort(key=lambda i: (i[0], i[1]))  # oldest first: new comments append, offsets stay put
        return JSONResponse({"elements": [i[2] for i in items[start:start + count]],
                             "paging": paging(request, start, count, len(items))})

    @r.post("/rest/socialActions/{urn}/comments")
    async def create_comment(urn: str, request: Request) -> Response:
        if (denied := gate(request)) is not None:
            return denied
        body = await body_json(request)
        if not isinstance(body, dict) or not isinstance(body.get("message"), dict) or not body["message"].get("text"):
            return li_error(422, "actor, object and message.text are required", "MISSING_FIELD")
        if body.get("actor") != ORG:
            return li_error(403, f"Not enough permissions to comment as {body.get('actor')}", "ACCESS_DENIED", 100)
        if body.get("object", urn) != urn:
            return li_error(400, "object must match the URN in the path")
        post, _ = state.add_post(P, str(body["message"]["text"]), reply_to=urn)
        el = own_comment_el(post)
        return JSONResponse(el, status_code=201, headers={"x-restli-id": el["commentUrn"]})

    return r
