"""Plumbing shared by the Facebook and Instagram sandbox routers: Meta's Graph API conventions.

- Auth: a token as `Authorization: Bearer|OAuth …` or `access_token=` (query or form), as
  Graph accepts. No token -> 400 code 2500; a token listed in
  `state.faults[platform]["revoked_tokens"]` -> 401 code 190 (OAuthException).
- Errors: `{"error": {"message", "type", "code", "error_subcode", "fbtrace_id"}}`.
- Paging: `{"data": [...], "paging": {"cursors": {"before", "after"}, "next"}}`; cursors are
  opaque and anchored on an item id, so items that arrive while a client pages do not shift
  the pages it has not read yet. `next` is left out on the last page, as Graph does.
- Faults, read from `state.faults[platform]` when it is a dict (same keys as the other
  platforms' routers where they mean the same thing):
  `{"rate_limited": seconds, "rate_limited_times": n}` -> Graph's throttle error (code 4 or
  `"graph_throttle_code"`) with `X-App-Usage` at 100% and `X-Business-Use-Case-Usage`
  carrying `estimated_time_to_regain_access` (minutes); `{"app_usage": pct}` -> that usage in
  `X-App-Usage` on every answer; `{"revoked_tokens": [...]}`.
- Brand posts: the platform's own posts (`state.posts`, api/scheduled/scenario) plus, for
  comments whose parent post was never loaded, a stand-in post with that id (empty text,
  created with its first comment). Tests and scenarios may load parent posts but need not.
- Deleting third-party content is refused (`(#200)`), so a connector bug cannot do it
  silently even in a drill.
"""

from __future__ import annotations

import base64
import json
import math
import secrets
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl

from fastapi import Request
from fastapi.responses import JSONResponse

from firebreak.sandbox.state import SandboxMention, SandboxPost, SandboxState
from firebreak.domain import Platform

COMMENT_KINDS = ("comment", "reply")


def gtime(dt: datetime) -> str:
    return dt.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S+0000")


def parse_gtime(value: str) -> datetime | None:
    """Graph accepts Unix seconds or an ISO/strtotime-like time for since/until and schedules."""
    try:
        return datetime.fromtimestamp(float(value), timezone.utc)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def graph_error(status: int, message: str, *, code: int = 100, type_: str = "OAuthException",
                subcode: int | None = None, headers: dict[str, str] | None = None) -> JSONResponse:
    err: dict[str, Any] = {"message": message, "type": type_, "code": code, "fbtrace_id": secrets.token_urlsafe(9)}
    if subcode is not None:
        err["error_subcode"] = subcode
    return JSONResponse({"error": err}, status_code=status, headers=headers)


def bad_param(message: str) -> JSONResponse:
    return graph_error(400, f"(#100) {message}")


def truthy(value: str | None) -> bool:
    return str(value).lower() in ("1", "true", "yes")


class GraphApi:
    """One Graph-flavoured platform inside the sandbox (facebook or instagram)."""

    def __init__(self, state: SandboxState, platform: Platform):
        self.state = state
        self.platform = platform

    # -- request plumbing --------------------------------------------------------------------
    async def params(self, request: Request) -> dict[str, str]:
        """Query parameters merged with a form or JSON body (Graph accepts all three)."""
        out = dict(request.query_params)
        if request.method in ("POST", "DELETE"):
            raw = await request.body()
            ctype = request.headers.get("content-type", "")
            if raw and "json" in ctype:
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = {}
                if isinstance(body, dict):
                    out.update({k: v if isinstance(v, str) else json.dumps(v) for k, v in body.items()})
            elif raw:
                out.update(dict(parse_qsl(raw.decode("utf-8", "replace"), keep_blank_values=True)))
        return out

    def faults(self) -> dict[str, Any]:
        f = self.state.faults.get(self.platform)
        return f if isinstance(f, dict) else {}

    def gate(self, request: Request, params: dict[str, str]) -> JSONResponse | None:
        """Faults and auth, before any handler runs. None = go ahead."""
        with self.state.lock:
            f = self.faults()
            wait = f.get("rate_limited")
            if wait:
                times = int(f.get("rate_limited_times", 1)) - 1
                if times <= 0:
                    f.pop("rate_limited", None)
                    f.pop("rate_limited_times", None)
                else:
                    f["rate_limited_times"] = times
        if wait:
            minutes = max(1, math.ceil(float(wait) / 60))
            headers = {
                "X-App-Usage": json.dumps({"call_count": 100, "total_time": 40, "total_cputime": 30}),
                "X-Business-Use-Case-Usage": json.dumps({"100000000000001": [{
                    "type": "pages", "call_count": 100, "total_cputime": 30, "total_time": 40,
                    "estimated_time_to_regain_access": minutes}]}),
            }
            code = int(f.get("graph_throttle_code", 4))
            return graph_error(400, f"(#{code}) Application request limit reached", code=code,
                               type_="OAuthException", headers=headers)
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        token = token.strip() if scheme.lower() in ("bearer", "oauth") else ""
        token = token or params.get("access_token", "")
        if not token:
            return graph_error(400, "An active access token must be used to query information about the current user.",
                               code=2500)
        if token in f.get("revoked_tokens", ()):
            return graph_error(401, "Error validating access token: The session has been invalidated.", code=190,
                               subcode=466, headers={"WWW-Authenticate": 'OAuth "Facebook Platform" "invalid_token"'})
        return None

    def usage_headers(self) -> dict[str, str]:
        pct = self.faults().get("app_usage")
        if pct is None:
            return {}
        return {"X-App-Usage": json.dumps({"call_count": int(pct), "total_time": int(pct) // 2, "total_cputime": int(pct) // 2})}

    def respond(self, body: Any, status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=self.usage_headers())

    # -- paging and fields ---------------------------------------------------------------------
    def page(self, items: list[dict[str, Any]], request: Request, params: dict[str, str],
             default_limit: int = 25) -> dict[str, Any]:
        try:
            limit = max(1, min(int(params.get("limit", default_limit)), 100))
        except ValueError:
            limit = default_limit
        ids = [str(i["id"]) for i in items]
        start = 0
        if params.get("after"):
            anchor = _uncursor(params["after"])
            start = ids.index(anchor) + 1 if anchor in ids else len(ids)
        elif params.get("before"):
            anchor = _uncursor(params["before"])
            end = ids.index(anchor) if anchor in ids else 0
            start = max(0, end - limit)
        chunk = items[start:start + limit]
        paging: dict[str, Any] = {}
        if chunk:
            paging["cursors"] = {"before": _cursor(str(chunk[0]["id"])), "after": _cursor(str(chunk[-1]["id"]))}
            if start + limit < len(items):
                paging["next"] = str(request.url.remove_query_params(["before", "after"]).include_query_params(
                    after=paging["cursors"]["after"]))
            if start > 0:
                paging["previous"] = str(request.url.remove_query_params(["before", "after"]).include_query_params(
                    before=paging["cursors"]["before"]))
        fields = _fields(params)
        return {"data": [_select(i, fields) for i in chunk], "paging": paging}

    def node(self, item: dict[str, Any], params: dict[str, str]) -> dict[str, Any]:
        return _select(item, _fields(params))

    # -- the brand's posts and their comments -----------------------------------------------------
    def brand_posts(self) -> list[SandboxPost]:
        """Top-level brand posts visible now, newest first, with stand-ins for unloaded parents."""
        now = self.state.now()
        with self.state.lock:
            posts = [p for p in self.state.posts[self.platform] if not p.reply_to and p.created_at <= now]
        known = {p.id for p in posts}
        comments = self.state.visible_mentions(self.platform, COMMENT_KINDS)
        comment_ids = {m.id for m in comments}
        for m in comments:  # oldest first: the first comment dates the stand-in
            if m.reply_to and m.reply_to not in known and m.reply_to not in comment_ids:
                known.add(m.reply_to)
                posts.append(SandboxPost(self.platform, m.reply_to, "", m.created_at, source="standin"))
        posts.sort(key=lambda p: (p.created_at, p.id), reverse=True)
        return posts

    def find_brand_post(self, post_id: str) -> SandboxPost | None:
        for p in self.brand_posts():
            if p.id == post_id:
                return p
        return None

    def comments_on(self, post_id: str) -> list[SandboxMention]:
        return [m for m in self.state.visible_mentions(self.platform, COMMENT_KINDS) if m.reply_to == post_id]

    def find_mention(self, item_id: str, kinds: tuple[str, ...] | None = None) -> SandboxMention | None:
        for m in self.state.visible_mentions(self.platform, kinds):
            if m.id == item_id:
                return m
        return None

    def brand_replies(self, parent_ids: set[str]) -> list[SandboxPost]:
        now = self.state.now()
        with self.state.lock:
            return [p for p in self.state.posts[self.platform] if p.reply_to in parent_ids and p.created_at <= now]


def since_filter(params: dict[str, str]) -> Callable[[datetime], bool]:
    since = parse_gtime(params["since"]) if params.get("since") else None
    until = parse_gtime(params["until"]) if params.get("until") else None
    return lambda dt: (since is None or dt >= since) and (until is None or dt <= until)


def _cursor(item_id: str) -> str:
    return base64.urlsafe_b64encode(item_id.encode()).decode().rstrip("=")


def _uncursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return ""


def _fields(params: dict[str, str]) -> set[str] | None:
    raw = params.get("fields")
    if not raw:
        return None
    # `from{id,name}` -> from (sub-selections are served whole)
    out, depth, cur = set(), 0, ""
    for ch in raw:
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
        elif ch == "," and depth == 0:
            out.add(cur.strip())
            cur = ""
        elif depth == 0:
            cur += ch
    out.add(cur.strip())
    return {f for f in out if f}


def _select(item: dict[str, Any], fields: set[str] | None) -> dict[str, Any]:
    """Graph returns the id plus the requested fields (a few defaults when none are asked)."""
    if fields is None:
        fields = {"id", "message", "created_time", "text", "timestamp", "caption"}
    return {k: v for k, v in item.items() if k == "id" or k in fields}


# -- contract checking against Meta's machine-readable specs (tests, drill reports) ----------
# Paging and field selection are Graph-wide, so the per-edge specs do not repeat them.
GENERIC_PARAMS = frozenset({"fields", "limit", "after", "before", "access_token"})


class GraphSpec:
    """Meta's spec files (specs/meta-graph/*.json): each has `apis` (method, endpoint or none
    for the node itself, return type, params) and `fields` of the node type."""

    def __init__(self, spec_dir: Path | str):
        self.dir = Path(spec_dir)
        self._types: dict[str, dict[str, Any]] = {}

    def load(self, type_name: str) -> dict[str, Any] | None:
        if type_name not in self._types:
            path = self.dir / f"{type_name}.json"
            self._types[type_name] = json.loads(path.read_text()) if path.exists() else {}
        return self._types[type_name] or None

    def check(self, node_type: str, method: str, edge: str | None, params: dict[str, str]) -> list[str]:
        """Problems with one request: undeclared edge, parameter or field. [] = fits the spec."""
        spec = self.load(node_type)
        if spec is None:
            return [f"no spec for node type {node_type}"]
        api = next((a for a in spec["apis"] if a["method"] == method and a.get("endpoint") == edge), None)
        where = f"{method} {node_type}/{edge or ''}"
        if api is None:
            return [f"{where}: not declared"]
        problems = []
        declared = {p["name"] for p in api["params"]}
        for name in params:
            if name not in declared and name not in GENERIC_PARAMS:
                problems.append(f"{where}: parameter {name!r} not declared")
        for p in api["params"]:
            if p["required"] and p["name"] not in params:
                problems.append(f"{where}: required parameter {p['name']!r} missing")
        if "fields" in params:
            ret = api.get("return") if edge is not None else node_type
            ret_spec = self.load(ret) if ret else None
            if ret_spec is not None:
                known = {f["name"] for f in ret_spec["fields"]}
                for f in _fields(params) or ():
                    if f not in known:
                        problems.append(f"{where}: field {f!r} not a field of {ret}")
        return problems
