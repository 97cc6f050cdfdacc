"""Proof of who is answering: one-time codes and signed approval links.

The self-hosted Prefect UI has no user identity: anyone who reaches it can fill a form. So
when a draft becomes ready, Firebreak sends each possible approver a one-time code on their
own channel, and a signed link to a small approval page. The form (or page) answer is only
accepted with a valid, unused, unexpired code or link for that person and that draft.

Only HMACs of codes are stored; links are HMAC-signed and carry their expiry; both are
single-use (the row is marked used in the same transaction that accepts the answer).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from firebreak.config.settings import Settings
from firebreak.domain import utcnow
from firebreak.errors import ApprovalError, PolicyViolation
from firebreak.store.db import Database
from firebreak.store.models import ApprovalCode


def signing_key(settings: Settings) -> bytes:
    """The configured key, or one generated once and kept (mode 0600) in the data dir."""
    configured = settings.signing_key.get_secret_value()
    if configured:
        return configured.encode()
    path = Path(settings.data_dir) / "signing.key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return path.read_text().strip().encode()


def _mac(key: bytes, *parts: object) -> str:
    return hmac.new(key, "\x1f".join(str(p) for p in parts).encode(), hashlib.sha256).hexdigest()


def sign(key: bytes, label: str, payload: dict) -> str:  # type: ignore[type-arg]
    """A token `body.signature`: the body is readable, the MAC (with a per-purpose label, so
    a token made for one purpose never passes for another) makes it unforgeable."""
    body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")
    return f"{body}.{_mac(key, label, body)}"


def unsign(key: bytes, label: str, token: str, *, what: str,
           error: type[PolicyViolation] = PolicyViolation) -> dict:  # type: ignore[type-arg]
    """The payload of a token made by `sign`, or `error` naming `what` was wrong with it."""
    try:
        body, sig = token.rsplit(".", 1)
    except ValueError:
        raise error(f"malformed {what}") from None
    if not hmac.compare_digest(sig, _mac(key, label, body)):
        raise error(f"{what} signature is not valid")
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except ValueError:
        raise error(f"{what} payload is not readable") from None
    if not isinstance(payload, dict):
        raise error(f"{what} payload is not readable")
    return payload


@dataclass(frozen=True)
class Issued:
    person: str
    code: str  # shown once, in the message to the person; never stored
    link_token: str


def issue(db: Database, key: bytes, draft_id: int, person: str, ttl: timedelta) -> Issued:
    """A fresh code and link for one person and one draft version."""
    code = f"{secrets.randbelow(10**6):06d}"
    nonce = secrets.token_urlsafe(12)
    expires = utcnow() + ttl
    token = sign(key, "link", {"d": draft_id, "p": person, "n": nonce, "e": int(expires.timestamp())})
    with db.session() as s:
        s.add(ApprovalCode(draft_id=draft_id, person=person, kind="code", secret_hash=_mac(key, "code", draft_id, person, code),
                           created_at=utcnow(), expires_at=expires))
        s.add(ApprovalCode(draft_id=draft_id, person=person, kind="link", secret_hash=_mac(key, "nonce", nonce),
                           created_at=utcnow(), expires_at=expires))
    return Issued(person, code, token)


@dataclass(frozen=True)
class LinkClaim:
    draft_id: int
    person: str
    nonce: str
    expires_at: datetime


def read_link(key: bytes, token: str) -> LinkClaim:
    """Check the signature and expiry of a link (not its use: see `consume`)."""
    payload = unsign(key, "link", token, what="approval link", error=ApprovalError)
    try:
        claim = LinkClaim(int(payload["d"]), str(payload["p"]), str(payload["n"]),
                          datetime.fromtimestamp(int(payload["e"]), tz=utcnow().tzinfo))
    except (ValueError, KeyError, TypeError):
        raise ApprovalError("approval link payload is not readable") from None
    if claim.expires_at < utcnow():
        raise ApprovalError("approval link has expired")
    return claim


def personal_key(key: bytes, person: str) -> str:
    """An approver's own CLI key (`firebreak keys issue NAME`), derived so none is stored."""
    return _mac(key, "approver", person)


def cli_proof(personal: str, draft_id: int, sha256: str) -> str:
    """What `firebreak approve` sends: proof that the holder of NAME's key saw this exact hash."""
    return "cli:" + _mac(personal.encode(), "cli", draft_id, sha256)


def consume(db: Database, key: bytes, draft_id: int, person: str, proof: str, sha256: str = "") -> str:
    """Accept a one-time code, a link token or a CLI proof. Returns which it was.

    Codes and links work once; a CLI proof is bound to the draft's hash, and the approval
    rules refuse a second answer from the same person for the same hash."""
    if proof.startswith("cli:"):
        if not hmac.compare_digest(proof, cli_proof(personal_key(key, person), draft_id, sha256)):
            raise ApprovalError(f"CLI key does not belong to {person}")
        return "cli"
    if "." in proof:
        claim = read_link(key, proof)
        if claim.draft_id != draft_id or claim.person != person:
            raise ApprovalError("approval link was issued for another draft or person")
        kind, secret_hash = "link", _mac(key, "nonce", claim.nonce)
    else:
        kind, secret_hash = "code", _mac(key, "code", draft_id, person, proof.strip())
    with db.session() as s:
        row = s.scalars(select(ApprovalCode).where(ApprovalCode.draft_id == draft_id, ApprovalCode.person == person,
                                                   ApprovalCode.kind == kind, ApprovalCode.secret_hash == secret_hash)).first()
        if row is None:
            raise ApprovalError(f"wrong {kind} for {person} on draft {draft_id}")
        if row.used_at is not None:
            raise ApprovalError(f"this {kind} was already used")
        if row.expires_at < utcnow():
            raise ApprovalError(f"this {kind} has expired")
        row.used_at = utcnow()
    return kind
