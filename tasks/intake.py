"""Alert intake, the parts that need no web server and no Prefect: parse and map a monitoring
tool's payload onto Firebreak's alert fields, authenticate it, store it (group commit, one
row per (source, source id)), keep what is invalid in `dead_letters`, and turn stored alerts
into incidents and event documents for the dispatcher in `firebreak/web/intake.py`.

Everything that can go wrong with the *input* raises `InvalidAlert` with a message that names
the field (and the path it was read from); the web layer turns that into a 4xx and a
dead letter. Store failures stay `StoreError` (a 503: the server's fault, not the sender's).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import math
import os
import queue
import re
import secrets
import threading
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

from firebreak.config.playbook import MISSING, IntakeSource, Playbook, resolve_path
from firebreak.config.settings import Settings
from pydantic import BaseModel, ConfigDict, Field, SecretStr
from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import defer

from firebreak.audit import AuditLog
from firebreak.domain import utcnow
from firebreak.errors import InvalidAlert, StoreError
from firebreak.store.db import Database
from firebreak.store.models import Alert, DeadLetter, Signal
from firebreak.store.queries import open_incident_for
from firebreak.tasks.incident import open_or_join

GENERIC = "generic"
ALERT_EVENT = "firebreak.alert.received"
CRISIS_EVENT = "firebreak.crisis.detected"  # the same name flows/monitor.py emits; the respond trigger expects it
SIGNATURE_HEADER = "X-Firebreak-Signature"
MAX_DEPTH = 32
_SOURCE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SENTIMENTS = {"negative": "negative", "neg": "negative", "neutral": "neutral", "neu": "neutral",
               "positive": "positive", "pos": "positive", "mixed": "mixed"}
# A fixed namespace so that an alert's events have the same ids every time they are sent:
# Prefect's trigger service ignores an event id it has already seen, so a resend after a
# crash cannot start a second run.
_EVENT_NS = uuid.UUID("5f0d7c1e-2b7a-4c61-9a55-2f1f2b0e7a11")


class GenericAlert(BaseModel):
    """The built-in alert shape (POST /alerts without ?source=). Other keys are kept with the alert."""

    model_config = ConfigDict(extra="allow")

    source_id: str = Field(max_length=256, description="the sender's id for this alert; repeats are duplicates")
    source: str = Field(GENERIC, pattern=_SOURCE_RE.pattern, description="who sent it (a label)")
    brand: str | None = Field(None, description="brand id, name or keyword; absent: the playbook's brand")
    topic: str | None = None
    volume: float | None = Field(None, ge=0)
    sentiment: str | float | None = Field(None, description="negative|neutral|positive|mixed or a score (<0 negative)")
    link: str | None = Field(None, max_length=2048)
    text: str | None = None
    severity: int | str | None = Field(None, description="the sender's severity: 1 (worst) to 4, or critical, high, "
                                                        "medium, low")


@dataclass(frozen=True)
class AlertIn:
    """An alert mapped onto Firebreak's fields, ready to store."""

    source: str
    source_id: str
    brand: str
    topic: str = ""
    volume: float | None = None
    sentiment: str | None = None
    link: str = ""
    text: str = ""
    severity: int | None = None  # 1 (worst) to 4, as the sender judged it
    payload: dict[str, Any] = field(default_factory=dict)

    def row(self, received_at: datetime) -> dict[str, Any]:
        return {"source": self.source, "source_id": self.source_id, "brand": self.brand, "received_at": received_at,
                "payload": {"alert": {"topic": self.topic, "volume": self.volume, "sentiment": self.sentiment,
                                      "link": self.link, "text": self.text, "severity": self.severity},
                            "raw": self.payload}}


# -- parsing and validation ------------------------------------------------------------------


def _no_constants(name: str) -> Any:
    # NaN and Infinity are not JSON; PostgreSQL's json type would refuse them later (a 5xx).
    raise ValueError(f"{name} is not valid JSON")


def parse_body(body: bytes) -> dict[str, Any]:
    """The body as a JSON object, or InvalidAlert saying why not."""
    try:
        doc = json.loads(body.decode("utf-8"), parse_constant=_no_constants)
    except UnicodeDecodeError as exc:
        raise InvalidAlert(f"body is not UTF-8 (byte {exc.start})") from None
    except RecursionError:
        raise InvalidAlert(f"body is nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # json.JSONDecodeError is a ValueError, and so is our NaN refusal
        raise InvalidAlert(f"body is not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise InvalidAlert(f"body must be a JSON object, got {type(doc).__name__}")
    _check_tree(doc, "", 0)
    return doc


def _check_tree(value: Any, where: str, depth: int) -> None:
    """Refuse what no database column can hold: NUL characters (PostgreSQL text), lone
    surrogates (not Unicode; SQLite cannot encode them) and absurd nesting."""
    if depth > MAX_DEPTH:
        raise InvalidAlert(f"body is nested deeper than {MAX_DEPTH} levels (at {where or 'top'})")
    if isinstance(value, str):
        _check_text(value, where or "body")
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_text(k, f"key {where + '.' if where else ''}{k[:40]!r}")
            _check_tree(v, f"{where}.{k}" if where else k, depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_tree(v, f"{where}.{i}" if where else str(i), depth + 1)
    elif isinstance(value, int) and not isinstance(value, bool) and abs(value) >= 2**63:
        raise InvalidAlert(f"{where or 'body'}: integer {str(value)[:20]}… does not fit 64 bits")


def _check_text(s: str, where: str) -> None:
    if "\x00" in s:
        raise InvalidAlert(f"{where}: contains a NUL character")
    try:
        s.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidAlert(f"{where}: contains a lone surrogate (not valid Unicode)") from None


def _text(value: Any, name: str, path: str, *, limit: int, truncate: bool = False) -> str:
    if value is MISSING or value is None:
        return ""
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise InvalidAlert(f"{name} (from {path}) must be text, got {type(value).__name__}")
    s = str(value).strip()
    if len(s) > limit:
        if not truncate:
            raise InvalidAlert(f"{name} (from {path}) is longer than {limit} characters")
        s = s[: limit - 1] + "…"
    return s


def _volume(value: Any, path: str) -> float | None:
    if value is MISSING or value is None:
        return None
    if isinstance(value, str) and re.fullmatch(r"\s*\d+(\.\d+)?\s*", value):
        value = float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidAlert(f"volume (from {path}) must be a number, got {type(value).__name__}")
    if not math.isfinite(value) or value < 0 or value > 1e12:
        raise InvalidAlert(f"volume (from {path}) must be a finite number from 0 to 1e12, got {value}")
    return float(value)


_SEVERITIES = {"critical": 1, "sev1": 1, "high": 2, "sev2": 2, "medium": 3, "moderate": 3, "sev3": 3, "low": 4,
               "sev4": 4, "minor": 4}


def _severity(value: Any, path: str) -> int | None:
    if value is MISSING or value is None or value == "":
        return None
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value.strip())
    if isinstance(value, str):
        sev = _SEVERITIES.get(value.strip().casefold().replace(" ", ""))
        if sev is None:
            raise InvalidAlert(f"severity (from {path}) {value[:40]!r} is not 1-4 or one of critical, high, medium, low")
        return sev
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 4:
        raise InvalidAlert(f"severity (from {path}) must be 1 (worst) to 4, or critical, high, medium, low")
    return value


def _sentiment(value: Any, path: str) -> str | None:
    if value is MISSING or value is None:
        return None
    if isinstance(value, str):
        label = _SENTIMENTS.get(value.strip().casefold())
        if label is None:
            raise InvalidAlert(f"sentiment (from {path}) {value[:40]!r} is not one of negative, neutral, positive, mixed")
        return label
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidAlert(f"sentiment (from {path}) must be a label or a finite number")
    return "negative" if value < 0 else "positive" if value > 0 else "neutral"


def resolve_brand(playbook: Playbook, value: Any, path: str) -> str:
    """The playbook brand id when the value names it (id, name or a keyword; exact or as a whole word)."""
    brand = playbook.brand
    if value is MISSING or value is None:
        return brand.id
    name = _text(value, "brand", path, limit=256)
    if not name:
        return brand.id
    wanted = name.casefold()
    names = {brand.id.casefold(), brand.name.casefold(), *(k.casefold() for k in brand.keywords)}
    if wanted in names or any(re.search(rf"(?<!\w){re.escape(n)}(?!\w)", wanted) for n in names if n):
        return brand.id
    raise InvalidAlert(f"brand (from {path}) {name[:60]!r} is not this playbook's brand ({brand.id}, {brand.name!r})")


def map_alert(playbook: Playbook, source: str, doc: dict[str, Any]) -> AlertIn:
    """Map a parsed payload onto Firebreak's alert fields (the generic shape or a configured source)."""
    if source == GENERIC:
        src = doc.get("source", GENERIC)
        if not isinstance(src, str) or not _SOURCE_RE.match(src):
            raise InvalidAlert("source must be 1-64 letters, digits, '.', '_' or '-'")
        paths = {k: k for k in ("source_id", "brand", "topic", "volume", "sentiment", "link", "text", "severity")}
    else:
        cfg = playbook.intake.sources.get(source)
        if cfg is None:
            raise InvalidAlert(f"unknown source {source[:64]!r}; configured: {sorted(playbook.intake.sources) or 'none'}")
        src = source
        paths = {k: v for k, v in cfg.fields.model_dump().items() if v}
    get = {k: resolve_path(doc, p) for k, p in paths.items()}
    sid_path = paths["source_id"]
    raw_id = get["source_id"]
    if raw_id is MISSING or raw_id is None:
        raise InvalidAlert(f"source_id missing (expected at {sid_path})")
    source_id = _text(raw_id, "source_id", sid_path, limit=256)
    if not source_id:
        raise InvalidAlert(f"source_id (from {sid_path}) is empty")
    return AlertIn(
        source=src, source_id=source_id,
        brand=resolve_brand(playbook, get.get("brand", MISSING), paths.get("brand", "brand")),
        topic=_text(get.get("topic", MISSING), "topic", paths.get("topic", "-"), limit=256, truncate=True),
        volume=_volume(get.get("volume", MISSING), paths.get("volume", "-")),
        sentiment=_sentiment(get.get("sentiment", MISSING), paths.get("sentiment", "-")),
        link=_text(get.get("link", MISSING), "link", paths.get("link", "-"), limit=2048),
        text=_text(get.get("text", MISSING), "text", paths.get("text", "-"), limit=4096, truncate=True),
        severity=_severity(get.get("severity", MISSING), paths.get("severity", "-")),
        payload=doc,
    )


# -- authentication --------------------------------------------------------------------------


@dataclass(frozen=True)
class IntakeSecrets:
    token: SecretStr
    hmac_key: SecretStr


def _secret_file(path: Path) -> str:
    """A random secret kept in a file created once (O_EXCL: two processes agree on one)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        value = secrets.token_urlsafe(32)
        fh.write(value + "\n")
    return value


def intake_secrets(settings: Settings) -> IntakeSecrets:
    """Token and HMAC key from settings (FIREBREAK_INTAKE_TOKEN / FIREBREAK_INTAKE_HMAC_KEY);
    when unset, random ones kept in data_dir so a local stack works with no configuration."""
    # getattr: the Settings fields are proposed to the lead; until they exist this keeps working.
    token: SecretStr = getattr(settings, "intake_token", SecretStr("")) or SecretStr("")
    key: SecretStr = getattr(settings, "intake_hmac_key", SecretStr("")) or SecretStr("")
    env_token, env_key = os.environ.get("FIREBREAK_INTAKE_TOKEN", ""), os.environ.get("FIREBREAK_INTAKE_HMAC_KEY", "")
    t = token.get_secret_value() or env_token or _secret_file(settings.data_dir / "intake_token")
    k = key.get_secret_value() or env_key or _secret_file(settings.data_dir / "intake_hmac_key")
    return IntakeSecrets(SecretStr(t), SecretStr(k))


def sign(body: bytes, key: str) -> str:
    """The signature header value a sender computes: `sha256=` + hex HMAC-SHA256 of the raw body."""
    return "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def check_bearer(authorization: str, creds: IntakeSecrets) -> bool:
    scheme, _, value = authorization.partition(" ")
    # compare_digest: the time taken must not tell an attacker how much of the token matched.
    return scheme.lower() == "bearer" and hmac.compare_digest(value.strip().encode("utf-8", "replace"),
                                                             creds.token.get_secret_value().encode())


def authenticate(playbook: Playbook, source: str, headers: dict[str, str], body: bytes,
                 creds: IntakeSecrets) -> str | None:
    """None when the request is authentic; otherwise what is wrong (never which secret was expected).
    `headers` has lower-case names."""
    cfg: IntakeSource | None = playbook.intake.sources.get(source)
    methods: list[Literal["bearer", "hmac"]] = [cfg.auth] if cfg else list(playbook.intake.generic_auth)
    sig_header = (cfg.signature_header if cfg else SIGNATURE_HEADER).lower()
    tried = []
    if "bearer" in methods:
        auth = headers.get("authorization", "")
        if auth:
            if check_bearer(auth, creds):
                return None
            tried.append("bearer token refused")
    if "hmac" in methods:
        sig = headers.get(sig_header, "")
        if sig:
            given = sig.strip().removeprefix("sha256=").lower()
            want = sign(body, creds.hmac_key.get_secret_value()).removeprefix("sha256=")
            if hmac.compare_digest(given.encode(), want.encode()):
                return None
            tried.append(f"{sig_header} signature does not match the body")
    if tried:
        return "; ".join(tried)
    need = " or ".join({"bearer": "Authorization: Bearer <token>", "hmac": f"{sig_header}: sha256=<hex>"}[m]
                       for m in methods)
    return f"authentication required: {need}"


# -- the store ---------------------------------------------------------------------------------


def _insert(db: Database) -> Any:
    return (postgresql.insert if db.dialect == "postgresql" else sqlite.insert)(Alert)


def store_alerts(db: Database, alerts: list[AlertIn]) -> list[tuple[int, bool]]:
    """Store a batch in ONE transaction (group commit); per alert: (alert id, duplicate?)."""
    now = utcnow()
    out: list[tuple[int, bool]] = []
    stmt = _insert(db).on_conflict_do_nothing(index_elements=["source", "source_id"]).returning(Alert.id)
    with db.session() as s:
        for a in alerts:
            new_id = s.execute(stmt.values(**a.row(now))).scalar_one_or_none()
            if new_id is not None:
                out.append((int(new_id), False))
            else:
                old = s.scalar(select(Alert.id).where(Alert.source == a.source, Alert.source_id == a.source_id))
                assert old is not None  # the conflict that skipped our row is this row
                out.append((int(old), True))
    return out


def dead_letter(db: Database, source: str, reason: str, body: bytes) -> int:
    # Kept as text: NUL is the one character PostgreSQL text cannot hold, so it is spelled out.
    text = body.decode("utf-8", errors="replace").replace("\x00", "\\x00")
    src = source.encode("utf-8", errors="replace").decode("utf-8")[:64].replace("\x00", "?") or GENERIC
    with db.session() as s:
        row = DeadLetter(source=src, reason=reason[:2000], body=text, received_at=utcnow())
        s.add(row)
        s.flush()
        return int(row.id)


class AlertWriter:
    """One thread that stores alerts for every request: it drains what queued while the last
    transaction ran and commits them together, so the commit cost is shared (SQLite has one
    writer anyway) and the handler only waits for its own future."""

    def __init__(self, db: Database, max_batch: int = 256):
        self.db, self.max_batch = db, max_batch
        self._q: queue.Queue[tuple[AlertIn, Future[tuple[int, bool]]] | None] = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="alert-writer", daemon=True)
        self._thread.start()

    def submit(self, alert: AlertIn) -> Future[tuple[int, bool]]:
        fut: Future[tuple[int, bool]] = Future()
        self._q.put((alert, fut))
        return fut

    def close(self) -> None:
        self._q.put(None)
        self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            item = self._q.get()
            if item is None:
                return
            batch = [item]
            stop = False
            while len(batch) < self.max_batch:
                try:
                    nxt = self._q.get_nowait()
                except queue.Empty:
                    break
                if nxt is None:
                    stop = True
                    break
                batch.append(nxt)
            try:
                results = store_alerts(self.db, [a for a, _ in batch])
            except StoreError as exc:
                for _, fut in batch:
                    fut.set_exception(exc)
            except Exception as exc:  # noqa: BLE001 - handed to every waiting request, which answers 503
                err = StoreError(f"storing alerts failed: {exc!r}")
                for _, fut in batch:
                    fut.set_exception(err)
            else:
                for (_, fut), res in zip(batch, results, strict=True):
                    fut.set_result(res)
            if stop:
                return


# -- from stored alert to incident and events ---------------------------------------------------


@dataclass(frozen=True)
class Dispatch:
    alert_id: int
    source: str
    source_id: str
    brand: str
    incident_id: int
    opened: bool  # this alert opened the incident: it starts a respond run
    received_at: datetime


def pending_alert_ids(db: Database, limit: int = 500, *, unattached_only: bool = False) -> list[int]:
    """Alerts whose events are not sent yet (or, with no Prefect to send to, that have no incident yet)."""
    cond = Alert.incident_id.is_(None) if unattached_only else Alert.event_emitted_at.is_(None)
    with db.session() as s:
        return list(s.scalars(select(Alert.id).where(cond).order_by(Alert.id).limit(limit)))


def pending_count(db: Database) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(Alert).where(Alert.event_emitted_at.is_(None))) or 0)


def _signal_for(a: Alert, incident_id: int | None) -> Signal:
    body = (a.payload or {}).get("alert", {})
    topic = str(body.get("topic") or "")
    sentiment = body.get("sentiment")
    return Signal(brand=a.brand, scope=f"topic:{topic}"[:64] if topic else "all", at=a.received_at, kind="alert",
                  score=0.0, volume=int(body.get("volume") or 0), baseline=0.0,
                  negative_share=1.0 if sentiment == "negative" else 0.0, platforms=[], incident_id=incident_id,
                  details={"alert_id": a.id, "source": a.source, "source_id": a.source_id, "topic": topic,
                           "text": str(body.get("text") or ""), "severity": body.get("severity"),
                           "link": body.get("link", ""), "sentiment": sentiment, "reasons": [f"alert from {a.source}"]},
                  detected_at=a.received_at)


def attach_alerts(db: Database, audit: AuditLog, playbook: Playbook, alert_ids: list[int]) -> list[Dispatch]:
    """Give each stored alert an incident: the brand's open one, or a new one the alert opens.
    Idempotent, so a dispatcher restarted half-way through simply runs it again. Batched: the
    intake takes hundreds of alerts a second and SQLite has one writer."""
    with db.session() as s:
        # The payload is not needed to join an incident: not loading it halves the batch's cost.
        rows = list(s.scalars(select(Alert).options(defer(Alert.payload)).where(Alert.id.in_(alert_ids))
                              .order_by(Alert.id)))
        todo = [a for a in rows if a.incident_id is None]
        open_inc: dict[str, int | None] = {}
        for b in {a.brand for a in todo}:
            inc = open_incident_for(s, b)
            open_inc[b] = inc.id if inc is not None else None
    links: list[dict[str, Any]] = []
    for brand, inc_id in list(open_inc.items()):
        if inc_id is not None:
            continue
        # No open incident for the brand: its first pending alert opens one (or joins one that
        # opened meanwhile); open_or_join decides, and audits an opening.
        first = next(a for a in todo if a.brand == brand)
        with db.session() as s:
            sig = _signal_for(s.get(Alert, first.id) or first, None)
            s.add(sig)
            s.flush()
            sig_id = int(sig.id)
        inc, _ = open_or_join(db, audit, playbook, sig_id)
        with db.session() as s:
            s.execute(update(Alert).where(Alert.id == first.id).values(incident_id=inc.id))
        first.incident_id = open_inc[brand] = int(inc.id)
        links.append({"alert": first.id, "source": first.source, "source_id": first.source_id, "incident": inc.id})
    rest = [a for a in todo if a.incident_id is None]
    if rest:
        # Joining an open incident is one UPDATE for the whole batch: the alert row itself
        # (with its incident id) is the record; only an opening alert needs a Signal.
        with db.session() as s:
            for inc_id in {open_inc[a.brand] for a in rest}:
                ids = [a.id for a in rest if open_inc[a.brand] == inc_id]
                s.execute(update(Alert).where(Alert.id.in_(ids), Alert.incident_id.is_(None)).values(incident_id=inc_id))
        for a in rest:
            a.incident_id = open_inc[a.brand]
            links.append({"alert": a.id, "source": a.source, "source_id": a.source_id, "incident": a.incident_id})
    if links:
        # One audit event per batch: at hundreds of alerts a second, one per alert would make
        # the hash chain's single writer the intake's bottleneck.
        by_incident: dict[int, list[list[Any]]] = {}
        for link in links:
            by_incident.setdefault(int(link["incident"]), []).append([link["alert"], link["source"], link["source_id"]])
        for inc_id, alerts in by_incident.items():
            audit.append("intake", "alerts.received", f"incident:{inc_id}", {"alerts": alerts})
    openers = _openers(db, {int(a.incident_id) for a in rows if a.incident_id is not None})
    return [Dispatch(a.id, a.source, a.source_id, a.brand, int(a.incident_id), openers.get(int(a.incident_id)) == a.id,
                     a.received_at) for a in rows if a.incident_id is not None]


def _openers(db: Database, incident_ids: set[int]) -> dict[int, int]:
    """incident id -> the alert that opened it (its signal is the incident's first). Read back
    from the store rather than remembered, so a restarted dispatcher reaches the same answer."""
    out: dict[int, int] = {}
    with db.session() as s:
        for inc in incident_ids:
            first = s.scalars(select(Signal).where(Signal.incident_id == inc).order_by(Signal.id).limit(1)).first()
            if first is not None and first.kind == "alert" and (first.details or {}).get("alert_id") is not None:
                out[inc] = int(first.details["alert_id"])
    return out


def event_documents(d: Dispatch, *, drill: bool = False) -> list[dict[str, Any]]:
    """The Prefect events for one alert, with ids derived from the alert (see _EVENT_NS)."""
    occurred = d.received_at.isoformat()
    incident = f"firebreak.incident.{d.incident_id}"
    # Keyed on what identifies the alert in the world (source, its id, when it arrived), not on
    # our row id alone: a fresh database restarts row ids, and Prefect would drop a new crisis
    # event whose id it saw before.
    key = f"{d.source}\x1f{d.source_id}\x1f{occurred}"
    docs = [{
        "id": str(uuid.uuid5(_EVENT_NS, f"alert:{key}")), "occurred": occurred, "event": ALERT_EVENT,
        "resource": {"prefect.resource.id": f"firebreak.alert.{d.alert_id}", "firebreak.brand": d.brand,
                     "firebreak.source": d.source},
        "related": [{"prefect.resource.id": incident, "prefect.resource.role": "incident"}],
        "payload": {"alert_id": d.alert_id, "source": d.source, "source_id": d.source_id,
                    "incident_id": d.incident_id, "opened_incident": d.opened},
    }]
    if d.opened:
        docs.append({
            "id": str(uuid.uuid5(_EVENT_NS, f"crisis:{d.incident_id}\x1f{key}")), "occurred": occurred,
            "event": CRISIS_EVENT,
            "resource": {"prefect.resource.id": incident, "firebreak.brand": d.brand},
            "related": [{"prefect.resource.id": f"firebreak.alert.{d.alert_id}", "prefect.resource.role": "alert"}],
            "payload": {"incident_id": d.incident_id, "brand": d.brand, "drill": drill, "alert_id": d.alert_id},
        })
    return docs


def mark_emitted(db: Database, alert_ids: list[int]) -> None:
    if not alert_ids:
        return
    with db.session() as s:
        s.execute(update(Alert).where(Alert.id.in_(alert_ids)).values(event_emitted_at=utcnow()))


def alert_status(db: Database, alert_id: int) -> dict[str, Any] | None:
    with db.session() as s:
        a = s.get(Alert, alert_id)
        if a is None:
            return None
        return {"alert_id": a.id, "source": a.source, "source_id": a.source_id, "brand": a.brand,
                "received_at": a.received_at.isoformat(), "incident_id": a.incident_id,
                "event_emitted_at": a.event_emitted_at.isoformat() if a.event_emitted_at else None}
