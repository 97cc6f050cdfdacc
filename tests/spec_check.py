"""Check requests and responses against the platforms' published specs (../shared/specs).

One module for every platform, used by the per-platform tests and by the suite-wide
contract plugin (tests/contract.py):

- `OpenApiSpec` (X API v2, Mastodon): path template + method, declared query parameters
  and their values (enums, ranges; X's comma-separated arrays, Rails' `name[]`), the JSON
  body against the request-body schema, and a JSON response against the response schema
  of its status code.
- `Lexicons` (Bluesky): XRPC method id, GET for queries / POST for procedures, declared and
  required parameters, the input body, and the *record* inside create/putRecord against the
  collection's record lexicon (`$type`, required fields, types, length limits, refs).
- `check_graph` (Facebook, Instagram): Meta's own per-node-type specs (`GraphSpec`): edge,
  parameter and field names.
- `check_linkedin`: LinkedIn's documented paths, parameters, body fields and the versioning
  headers (LinkedIn publishes no machine-readable spec).

Every checker returns a list of problems; [] means the exchange fits.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote

from firebreak.sandbox._graph import GraphSpec
from jsonschema import Draft202012Validator

if TYPE_CHECKING:
    from firebreak.sandbox.recorder import Exchange

from tests.specs import spec_path  # noqa: E402 - the one place specs are found

HTTP_METHODS = ("get", "post", "put", "delete", "patch")
Pairs = list[tuple[str, str]]


# -- OpenAPI -----------------------------------------------------------------------------------
class _Op:
    def __init__(self, spec: OpenApiSpec, template: str, method: str, item: dict[str, Any], op: dict[str, Any]):
        self.template = template
        self.method = method.upper()
        # Literal segments beat parameters when two templates match (/2/tweets/search/recent
        # vs /2/tweets/{id}): sort by the number of literal characters.
        self.literal = len(re.sub(r"\{[^/]+?\}", "", template))
        self.rx = re.compile("^" + re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)) + "$")
        params = [spec.resolve(p) for p in item.get("parameters", [])] + \
                 [spec.resolve(p) for p in op.get("parameters", [])]
        self.query: dict[str, dict[str, Any]] = {p["name"]: p for p in params if p.get("in") == "query"}
        self.required = {p["name"] for p in params if p.get("in") == "query" and p.get("required")}
        content = (spec.resolve(op.get("requestBody", {})).get("content") or {})
        self.body_schema = (content.get("application/json") or {}).get("schema")
        self.responses: dict[str, Any] = {}
        for code, resp in (op.get("responses") or {}).items():
            schema = ((spec.resolve(resp).get("content") or {}).get("application/json") or {}).get("schema")
            if schema is not None:
                self.responses[str(code)] = schema


class OpenApiSpec:
    def __init__(self, path: Path):
        self.path = path
        self.doc: dict[str, Any] = json.loads(path.read_text())
        self.ops = sorted(
            (_Op(self, t, m, item, op) for t, item in self.doc["paths"].items()
             for m, op in item.items() if m in HTTP_METHODS),
            key=lambda o: -o.literal,
        )
        self._validators: dict[str, Draft202012Validator] = {}

    def resolve(self, obj: dict[str, Any]) -> dict[str, Any]:
        while isinstance(obj, dict) and "$ref" in obj:
            node: Any = self.doc
            for part in obj["$ref"].lstrip("#/").split("/"):
                node = node[part]
            obj = node
        return obj

    def validator(self, schema: dict[str, Any]) -> Draft202012Validator:
        key = json.dumps(schema, sort_keys=True)
        v = self._validators.get(key)
        if v is None:
            # The whole document minus paths as the root, so every #/components/... resolves.
            root = {k: val for k, val in self.doc.items() if k != "paths"}
            v = self._validators[key] = Draft202012Validator({**root, **schema})
        return v

    def schema_errors(self, schema: dict[str, Any], value: Any, where: str, limit: int = 3) -> list[str]:
        errs = sorted(self.validator(schema).iter_errors(value), key=lambda e: list(e.path))
        return [f"{where}: {'/'.join(map(str, e.path)) or '(root)'}: {e.message[:200]}" for e in errs[:limit]]

    def operation(self, method: str, path: str) -> tuple[_Op | None, list[str]]:
        on_path = [o for o in self.ops if o.rx.match(path)]
        if not on_path:
            return None, [f"{method} {path}: no such path in {self.path.name}"]
        for o in on_path:
            if o.method == method:
                return o, []
        return None, [f"{method} {path}: method not declared for {on_path[0].template}"]

    def check_request(self, method: str, path: str, query: Pairs, body: Any) -> list[str]:
        op, problems = self.operation(method, path)
        if op is None:
            return problems
        where = f"{method} {op.template}"
        values: dict[str, list[str]] = {}
        for k, v in query:
            values.setdefault(k.removesuffix("[]"), []).append(v)  # Rails' array spelling
        for name, vals in values.items():
            param = op.query.get(name)
            if param is None:
                problems.append(f"{where}: undeclared query parameter {name!r}")
                continue
            schema = self.resolve(param.get("schema") or {})
            problems += self.schema_errors(schema, _coerce(schema, vals, self), f"{where} ?{name}")
        for name in op.required - set(values):
            problems.append(f"{where}: required query parameter {name!r} missing")
        if body is not None and op.body_schema is not None:
            if not isinstance(body, (dict, list)):
                problems.append(f"{where}: body is not JSON")
            else:
                problems += self.schema_errors(op.body_schema, body, f"{where} body")
                declared = _declared_properties(self, op.body_schema)
                if isinstance(body, dict) and declared is not None:
                    extra = set(body) - declared
                    if extra:
                        problems.append(f"{where}: undeclared body fields {sorted(extra)}")
        elif body is not None and op.body_schema is None and method in ("POST", "PUT", "PATCH") and body != {}:
            # A body where the spec declares none (X's PUT .../hidden declares one; fine).
            problems.append(f"{where}: body sent but the spec declares none")
        return problems

    def check_response(self, method: str, path: str, status: int, body: Any) -> tuple[bool, list[str]]:
        """(checked?, problems): checked is False when the spec has no schema for this status."""
        op, _ = self.operation(method, path)
        if op is None:
            return False, []
        schema = op.responses.get(str(status)) or op.responses.get(f"{str(status)[0]}XX")
        if schema is None and 200 <= status < 300:
            schema = op.responses.get("default")
        if schema is None:
            return False, []
        return True, self.schema_errors(schema, body, f"{method} {op.template} -> {status}")


def _coerce(schema: dict[str, Any], vals: list[str], spec: OpenApiSpec) -> Any:
    """Query strings are strings; give the validator the types the schema declares."""
    if schema.get("type") == "array":
        items = spec.resolve(schema.get("items") or {})
        flat = [p for v in vals for p in (v.split(",") if "," in v else [v])]  # X: comma-separated
        return [_scalar(items, p) for p in flat]
    return _scalar(schema, vals[-1])


def _scalar(schema: dict[str, Any], v: str) -> Any:
    t = schema.get("type")
    types = t if isinstance(t, list) else [t]
    if "integer" in types:
        try:
            return int(v)
        except ValueError:
            return v
    if "number" in types:
        try:
            return float(v)
        except ValueError:
            return v
    if "boolean" in types and v in ("true", "false"):
        return v == "true"
    return v


def _declared_properties(spec: OpenApiSpec, schema: dict[str, Any]) -> set[str] | None:
    """Top-level property names a body may carry (union over oneOf/anyOf/allOf); None = open."""
    schema = spec.resolve(schema)
    if "properties" in schema and not any(k in schema for k in ("oneOf", "anyOf")):
        return set(schema["properties"])
    out: set[str] = set(schema.get("properties", {}))
    parts = [spec.resolve(s) for k in ("oneOf", "anyOf", "allOf") for s in schema.get(k, [])]
    if not parts:
        return out or None
    for p in parts:
        sub = _declared_properties(spec, p)
        if sub is None:
            return None
        out |= sub
    return out


@lru_cache(maxsize=4)
def openapi(path: Path) -> OpenApiSpec:
    return OpenApiSpec(path)


# -- Bluesky lexicons ----------------------------------------------------------------------------
# com.atproto.repo.getRecord is a real, stable XRPC query that the supplied lexicon subset
# lacks; its parameters per https://docs.bsky.app/docs/api/com-atproto-repo-get-record.
EXTRA_LEXICONS: dict[str, dict[str, Any]] = {"com.atproto.repo.getRecord": {"defs": {"main": {
    "type": "query", "parameters": {"type": "params", "required": ["repo", "collection", "rkey"],
                                    "properties": {"repo": {"type": "string"}, "collection": {"type": "string"},
                                                   "rkey": {"type": "string"}, "cid": {"type": "string"}}}}}}}
RECORD_WRITES = ("com.atproto.repo.createRecord", "com.atproto.repo.putRecord")


class Lexicons:
    def __init__(self, root: Path, extra: Mapping[str, dict[str, Any]] = EXTRA_LEXICONS):
        self.root = root
        self.extra = dict(extra)
        self._docs: dict[str, dict[str, Any] | None] = {}

    def doc(self, nsid: str) -> dict[str, Any] | None:
        if nsid not in self._docs:
            path = self.root.joinpath(*nsid.split(".")).with_suffix(".json")
            self._docs[nsid] = self.extra.get(nsid) or (json.loads(path.read_text()) if path.exists() else None)
        return self._docs[nsid]

    def def_(self, ref: str, context: str) -> tuple[dict[str, Any] | None, str]:
        """A definition by ref (`#name`, `nsid`, `nsid#name`); returns it and its document's nsid."""
        nsid, _, name = ref.partition("#")
        nsid = nsid or context
        doc = self.doc(nsid)
        if doc is None:
            return None, nsid
        return doc["defs"].get(name or "main"), nsid

    def check_request(self, method: str, nsid: str, query: Pairs, body: Any) -> list[str]:
        lex, _ = self.def_(nsid, nsid)
        if lex is None:
            return [f"{nsid}: no such lexicon"]
        problems: list[str] = []
        want = "GET" if lex["type"] == "query" else "POST"
        if method != want:
            problems.append(f"{nsid}: {lex['type']} must be {want}, was {method}")
        params = lex.get("parameters") or {}
        declared = params.get("properties", {})
        got: dict[str, list[str]] = {}
        for k, v in query:
            got.setdefault(k, []).append(v)
        for name, vals in got.items():
            if name not in declared:
                problems.append(f"{nsid}: undeclared parameter {name!r}")
                continue
            p = declared[name]
            if p.get("type") != "array" and len(vals) > 1:
                problems.append(f"{nsid}: parameter {name!r} repeated but not an array")
            if p.get("type") == "integer":
                for v in vals:
                    if not v.lstrip("-").isdigit() or not p.get("minimum", -10**18) <= int(v) <= p.get("maximum", 10**18):
                        problems.append(f"{nsid}: parameter {name!r}={v!r} out of range")
            items = p.get("items", {}) if p.get("type") == "array" else p
            if "knownValues" not in items and "enum" in items:
                bad = [v for v in vals if v not in items["enum"]]
                if bad:
                    problems.append(f"{nsid}: parameter {name!r} values {bad} not allowed")
        for name in params.get("required", []):
            if name not in got:
                problems.append(f"{nsid}: required parameter {name!r} missing")
        schema = (lex.get("input") or {}).get("schema")
        if isinstance(body, dict):
            if schema is None:
                problems.append(f"{nsid}: input sent but the lexicon declares none")
            else:
                problems += self.check_value(schema, body, nsid, f"{nsid} input")
            if nsid in RECORD_WRITES and isinstance(body.get("record"), dict):
                problems += self.check_record(str(body.get("collection", "")), body["record"], f"{nsid} record")
        elif schema is not None and (body is not None or schema.get("required")):
            problems.append(f"{nsid}: JSON input required")
        return problems

    def check_record(self, collection: str, record: dict[str, Any], where: str) -> list[str]:
        rtype = record.get("$type")
        if rtype != collection:
            return [f"{where}: $type {rtype!r} is not the collection {collection!r}"]
        lex, _ = self.def_(collection, collection)
        if lex is None or lex.get("type") != "record":
            return [f"{where}: {collection} is not a record lexicon"]
        return self.check_value(lex["record"], record, collection, where)

    def check_value(self, schema: dict[str, Any], value: Any, ctx: str, where: str) -> list[str]:
        """A small lexicon validator: types, required, unknown fields, lengths, refs, unions."""
        t = schema.get("type")
        if t == "ref":
            target, nsid = self.def_(schema["ref"], ctx)
            if target is None:
                return []  # a lexicon outside the supplied subset: cannot judge
            return self.check_value(target, value, nsid, where)
        if t == "union":
            if not isinstance(value, dict) or "$type" not in value:
                return [f"{where}: union value needs a $type"]
            full = {(ctx + r if r.startswith("#") else r) for r in schema.get("refs", [])}
            vt = value["$type"]
            # Lexicon unions are open to future types, but a client must only send known ones.
            if vt not in full and vt.removesuffix("#main") not in full:
                return [f"{where}: $type {vt!r} not one of {sorted(full)}"]
            target, nsid = self.def_(vt, ctx)
            return self.check_value(target, value, nsid, where) if target else []
        if t in ("object", "params"):
            if not isinstance(value, dict):
                return [f"{where}: expected an object"]
            props = schema.get("properties", {})
            problems = [f"{where}: required field {r!r} missing" for r in schema.get("required", []) if r not in value]
            for k, v in value.items():
                if k == "$type":
                    continue
                if k not in props:
                    problems.append(f"{where}: undeclared field {k!r}")
                else:
                    problems += self.check_value(props[k], v, ctx, f"{where}.{k}")
            return problems
        if t == "record":
            return self.check_value(schema["record"], value, ctx, where)
        if t == "array":
            if not isinstance(value, list):
                return [f"{where}: expected an array"]
            problems = []
            if "maxLength" in schema and len(value) > schema["maxLength"]:
                problems.append(f"{where}: more than {schema['maxLength']} items")
            for i, item in enumerate(value):
                problems += self.check_value(schema.get("items", {}), item, ctx, f"{where}[{i}]")
            return problems
        if t == "string":
            if not isinstance(value, str):
                return [f"{where}: expected a string"]
            problems = []
            if "maxLength" in schema and len(value.encode()) > schema["maxLength"]:
                problems.append(f"{where}: longer than {schema['maxLength']} bytes")
            if "maxGraphemes" in schema and _graphemes(value) > schema["maxGraphemes"]:
                problems.append(f"{where}: longer than {schema['maxGraphemes']} graphemes")
            if schema.get("format") == "datetime" and not _DATETIME.match(value):
                problems.append(f"{where}: not an RFC 3339 datetime: {value!r}")
            if schema.get("format") == "at-uri" and not value.startswith("at://"):
                problems.append(f"{where}: not an at:// uri")
            if schema.get("format") == "did" and not value.startswith("did:"):
                problems.append(f"{where}: not a DID")
            if "const" in schema and value != schema["const"]:
                problems.append(f"{where}: must be {schema['const']!r}")
            return problems
        if t == "integer":
            if not isinstance(value, int) or isinstance(value, bool):
                return [f"{where}: expected an integer"]
            if value < schema.get("minimum", value) or value > schema.get("maximum", value):
                return [f"{where}: {value} out of range"]
            return []
        if t == "boolean":
            return [] if isinstance(value, bool) else [f"{where}: expected a boolean"]
        return []  # unknown, cid-link, blob, bytes: not judged here


_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")


def _graphemes(text: str) -> int:
    import grapheme

    return int(grapheme.length(text))


# -- Meta Graph ---------------------------------------------------------------------------------
@lru_cache(maxsize=1)
def graph_spec() -> GraphSpec:
    return GraphSpec(spec_path("meta-graph"))


def check_graph(node_types: Iterable[str], method: str, edge: str | None, params: Mapping[str, str]) -> list[str]:
    """Fits if it fits one of the node types the node may be (the sandbox's knowledge decides
    which: a known comment is a Comment, a known post a PagePost, an unknown id any of them)."""
    spec = graph_spec()
    first: list[str] | None = None
    for t in node_types:
        problems = spec.check(t, method, edge, dict(params))
        if not problems:
            return []
        first = first if first is not None else problems
    return first or [f"{method} {edge}: no candidate node type"]


# -- LinkedIn -------------------------------------------------------------------------------------
# From LinkedIn's Posts API and Social Actions (Comments) API documentation (Community
# Management, versioned `/rest`). Query params per finder; body fields per operation.
LI_VERSION = re.compile(r"^20\d{4}$")
LI_POST_FIELDS = {"author", "commentary", "visibility", "distribution", "lifecycleState", "isReshareDisabledByAuthor",
                  "content", "contentLandingPage", "contentCallToActionLabel", "reshareContext", "adContext",
                  "container", "lifecycleStateInfo"}
LI_POST_REQUIRED = {"author", "commentary", "visibility", "distribution", "lifecycleState"}
LI_COMMENT_FIELDS = {"actor", "object", "message", "parentComment", "content"}
# The scheduling tool's record (see connectors/linkedin.py): not a LinkedIn field, emulated by
# the sandbox beside LinkedIn's own and carried by the documented PARTIAL_UPDATE. Allowed here
# by name so that nothing else can slip through the same door.
LI_EXTENSION_FIELDS = {"x-schedule"}
_LI_OPS: list[tuple[str, re.Pattern[str], set[str], str]] = [
    ("GET", re.compile(r"^/rest/posts$"), {"q", "author", "start", "count", "sortBy", "viewContext"}, "finder"),
    ("POST", re.compile(r"^/rest/posts$"), set(), "create"),
    ("GET", re.compile(r"^/rest/posts/urn%3Ali%3A(share|ugcPost)%3A\d+$"), {"viewContext"}, "get"),
    ("POST", re.compile(r"^/rest/posts/urn%3Ali%3A(share|ugcPost)%3A\d+$"), set(), "update"),
    ("DELETE", re.compile(r"^/rest/posts/urn%3Ali%3A(share|ugcPost)%3A\d+$"), set(), "delete"),
    ("GET", re.compile(r"^/rest/socialActions/urn%3Ali%3A[A-Za-z]+%3A[^/]+/comments$"), {"start", "count"}, "comments"),
    ("POST", re.compile(r"^/rest/socialActions/urn%3Ali%3A[A-Za-z]+%3A[^/]+/comments$"), set(), "comment"),
]


def check_linkedin(method: str, raw_path: str, query: Pairs, headers: Mapping[str, str], body: Any) -> list[str]:
    """`raw_path` as sent (URNs percent-encoded, as Rest.li 2.0 requires)."""
    where = f"{method} {raw_path}"
    problems: list[str] = []
    h = {k.lower(): v for k, v in headers.items()}
    if not LI_VERSION.match(h.get("linkedin-version", "")):
        problems.append(f"{where}: LinkedIn-Version header missing or not YYYYMM")
    if h.get("x-restli-protocol-version") != "2.0.0":
        problems.append(f"{where}: X-Restli-Protocol-Version 2.0.0 missing")
    op = next((o for o in _LI_OPS if o[0] == method and o[1].match(raw_path)), None)
    if op is None:
        return problems + [f"{where}: not a documented LinkedIn endpoint (or URN not encoded)"]
    _, _, allowed, kind = op
    names = {k for k, _ in query}
    if names - allowed:
        problems.append(f"{where}: undeclared query parameters {sorted(names - allowed)}")
    q = dict(query)
    if kind == "finder":
        if q.get("q") != "author" or not q.get("author", "").startswith("urn:li:organization:"):
            problems.append(f"{where}: the posts finder needs q=author&author=<organization urn>")
        if q.get("sortBy", "CREATED") not in ("CREATED", "LAST_MODIFIED"):
            problems.append(f"{where}: sortBy must be CREATED or LAST_MODIFIED")
    if kind in ("finder", "comments") and "count" in q and not (q["count"].isdigit() and 1 <= int(q["count"]) <= 100):
        problems.append(f"{where}: count must be 1..100")
    if kind == "create":
        if not isinstance(body, dict):
            return problems + [f"{where}: JSON body required"]
        if set(body) - LI_POST_FIELDS:
            problems.append(f"{where}: undeclared body fields {sorted(set(body) - LI_POST_FIELDS)}")
        if LI_POST_REQUIRED - set(body):
            problems.append(f"{where}: missing body fields {sorted(LI_POST_REQUIRED - set(body))}")
        if body.get("lifecycleState") not in ("PUBLISHED", "DRAFT"):
            problems.append(f"{where}: lifecycleState must be PUBLISHED or DRAFT")
        if body.get("visibility") not in ("PUBLIC", "CONNECTIONS", "LOGGED_IN", "CONTAINER"):
            problems.append(f"{where}: visibility not one of LinkedIn's values")
        if not str(body.get("author", "")).startswith(("urn:li:organization:", "urn:li:person:")):
            problems.append(f"{where}: author must be an organization or person URN")
    elif kind == "update":
        if h.get("x-restli-method", "").upper() != "PARTIAL_UPDATE":
            problems.append(f"{where}: a post update is a PARTIAL_UPDATE (X-RestLi-Method header)")
        patch = (body or {}).get("patch") if isinstance(body, dict) else None
        if not isinstance(patch, dict) or set(patch) - {"$set", "$delete"}:
            problems.append(f"{where}: body must be {{'patch': {{'$set': ...}}}}")
        else:
            fields = set(patch.get("$set", {}))
            bad = fields - LI_POST_FIELDS - LI_EXTENSION_FIELDS
            if bad:
                problems.append(f"{where}: $set of undeclared fields {sorted(bad)}")
    elif kind == "comment":
        if not isinstance(body, dict):
            return problems + [f"{where}: JSON body required"]
        if set(body) - LI_COMMENT_FIELDS:
            problems.append(f"{where}: undeclared comment fields {sorted(set(body) - LI_COMMENT_FIELDS)}")
        if not {"actor", "object", "message"} <= set(body) or not isinstance(body.get("message"), dict) \
                or "text" not in body["message"]:
            problems.append(f"{where}: a comment needs actor, object and message.text")
    return problems


class _Cached:
    """Lazily loaded, shared spec objects (loading the two OpenAPI files takes ~0.3 s)."""

    @cached_property
    def x(self) -> OpenApiSpec:
        return openapi(spec_path("x-api-v2-openapi.json"))

    @cached_property
    def mastodon(self) -> OpenApiSpec:
        return openapi(spec_path("mastodon-openapi.json"))

    @cached_property
    def lexicons(self) -> Lexicons:
        return Lexicons(spec_path("bluesky-lexicons"))


specs = _Cached()


# -- one exchange, any platform ------------------------------------------------------------------
def _graph_node_types(ex: Exchange, node: str) -> list[str]:
    """Which Graph node type `node` is, as far as the sandbox knows."""
    fb = ex.platform == "facebook"
    if fb and "_" not in node:
        return ["Page"]
    state = ex.state
    comment, post = ("Comment", "PagePost") if fb else ("IGComment", "IGMedia")
    unknown = ["PagePost", "Comment", "Post"] if fb else ["IGUser", "IGMedia", "IGComment"]
    if state is None:
        return unknown
    from firebreak.domain import Platform

    p = Platform(ex.platform)
    with state.lock:
        for m in state.mentions[p]:
            if m.id == node:
                return [comment] if m.kind in ("comment", "reply") else [post]
        for bp in state.posts[p]:
            if bp.id == node:
                return [comment] if bp.reply_to else [post]
        if node in state.scheduled[p]:
            return [post]
    return unknown


def _graph_params(ex: Exchange) -> dict[str, str]:
    params = dict(ex.query)
    if isinstance(ex.body, str):
        params.update(parse_qsl(ex.body, keep_blank_values=True))
    elif isinstance(ex.body, dict):
        params.update({k: v if isinstance(v, str) else str(v) for k, v in ex.body.items()})
    return params


def check_request(ex: Exchange) -> list[str]:
    body = ex.body if isinstance(ex.body, (dict, list)) else None
    if ex.platform in ("x", "mastodon"):
        spec = specs.x if ex.platform == "x" else specs.mastodon
        raw_body = ex.body if ex.method in ("POST", "PUT", "PATCH") else None
        if isinstance(raw_body, str):
            return [f"{ex.method} {ex.path}: non-JSON body"]
        return spec.check_request(ex.method, unquote(ex.path), ex.query, body if raw_body is not None else None)
    if ex.platform == "bluesky":
        if not ex.path.startswith("/xrpc/"):
            return [f"{ex.method} {ex.path}: not an XRPC path"]
        return specs.lexicons.check_request(ex.method, ex.path.removeprefix("/xrpc/"), ex.query, body)
    if ex.platform in ("facebook", "instagram"):
        parts = [unquote(p) for p in ex.path.strip("/").split("/")]
        if not parts or not parts[0] or len(parts) > 2:
            return [f"{ex.method} {ex.path}: not a Graph node or edge path"]
        node, edge = parts[0], (parts[1] if len(parts) > 1 else None)
        return check_graph(_graph_node_types(ex, node), ex.method, edge, _graph_params(ex))
    if ex.platform == "linkedin":
        return check_linkedin(ex.method, ex.path, ex.query, ex.headers, ex.body)
    return [f"unknown platform {ex.platform!r}"]


def check_response(ex: Exchange) -> tuple[bool, list[str]]:
    if ex.platform not in ("x", "mastodon") or not 200 <= ex.status < 300:
        return False, []
    body = ex.response_json()
    if body is None:
        return False, []
    spec = specs.x if ex.platform == "x" else specs.mastodon
    return spec.check_response(ex.method, unquote(ex.path), ex.status, body)


def check_state_log(state: Any, platform: str) -> tuple[int, list[str]]:
    """Check one SandboxState's request log. Returns (checked, problems). Not for LinkedIn:
    the log has no headers and decoded paths; the contract plugin checks LinkedIn."""
    from firebreak.sandbox.recorder import Exchange

    prefix = f"/{platform}"
    problems: list[str] = []
    checked = 0
    with state.lock:
        log = [r for r in state.requests if r["platform"] == platform]
    for r in log:
        ex = Exchange(platform, r["method"], r["path"][len(prefix):],
                      parse_qsl(r["query"], keep_blank_values=True),
                      {},
                      r["body"], r["status"], state=state)
        problems += check_request(ex)
        checked += 1
    return checked, problems
