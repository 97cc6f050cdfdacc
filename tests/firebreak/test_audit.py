"""The audit chain finds an edited, deleted, inserted or reordered event."""

from __future__ import annotations

import sqlalchemy as sa

from firebreak.audit import AuditLog, event_hash
from firebreak.cli import main
from firebreak.store.models import AuditEvent


def _tamper(db):  # type: ignore[no-untyped-def]
    """A session that edits the log the way an attacker with database superuser rights
    would: on PostgreSQL the append-only trigger is bypassed first."""
    from contextlib import contextmanager

    @contextmanager
    def cm():  # type: ignore[no-untyped-def]
        with db.session() as s:
            if db.dialect == "postgresql":
                s.execute(sa.text("SET LOCAL session_replication_role = replica"))
            yield s

    return cm()


def _fill(audit: AuditLog, n: int = 5) -> None:
    for i in range(n):
        audit.append("tester", "thing.done", f"thing:{i}", {"i": i, "note": "é ✓"})


def test_intact_chain_verifies(audit: AuditLog) -> None:
    _fill(audit)
    res = audit.verify()
    assert res.ok and res.events == 5 and len(res.head) == 64


def test_edited_event_is_named(db, audit: AuditLog) -> None:  # type: ignore[no-untyped-def]
    _fill(audit)
    with _tamper(db) as s:
        ev = s.get(AuditEvent, 3)
        ev.payload = {"i": 99, "note": "é ✓"}
    res = audit.verify()
    assert not res.ok and res.bad_seq == 3 and "edited" in res.reason


def test_deleted_event_is_named(db, audit: AuditLog) -> None:  # type: ignore[no-untyped-def]
    _fill(audit)
    with _tamper(db) as s:
        s.execute(sa.delete(AuditEvent).where(AuditEvent.seq == 2))
    res = audit.verify()
    assert not res.ok and res.bad_seq == 3


def test_inserted_event_is_named(db, audit: AuditLog) -> None:  # type: ignore[no-untyped-def]
    """A forger renumbers the tail to make room and inserts a well-formed event at 3."""
    _fill(audit)
    with _tamper(db) as s:
        for seq in (5, 4, 3):
            s.execute(sa.update(AuditEvent).where(AuditEvent.seq == seq).values(seq=seq + 1))
        prev = s.get(AuditEvent, 2).hash
        payload = {"forged": True}
        s.add(AuditEvent(seq=3, at="2026-01-01T00:00:00+00:00", actor="mallory", action="approval.approve",
                         subject="draft:1", payload=payload, prev_hash=prev,
                         hash=event_hash(3, "2026-01-01T00:00:00+00:00", "mallory", "approval.approve", "draft:1",
                                         payload, prev)))
    res = audit.verify()
    assert not res.ok and res.bad_seq == 4  # the renumbered original no longer fits its new place


def test_reordered_events_are_named(db, audit: AuditLog) -> None:  # type: ignore[no-untyped-def]
    _fill(audit)
    with _tamper(db) as s:
        s.execute(sa.update(AuditEvent).where(AuditEvent.seq == 2).values(seq=-2))
        s.execute(sa.update(AuditEvent).where(AuditEvent.seq == 4).values(seq=2))
        s.execute(sa.update(AuditEvent).where(AuditEvent.seq == -2).values(seq=4))
    res = audit.verify()
    assert not res.ok and res.bad_seq == 2


def test_truncated_tail_needs_the_expected_head(db, audit: AuditLog) -> None:  # type: ignore[no-untyped-def]
    _fill(audit)
    head = audit.verify().head
    with _tamper(db) as s:
        s.execute(sa.delete(AuditEvent).where(AuditEvent.seq == 5))
    assert audit.verify().ok  # a shorter chain is still a chain…
    assert not audit.verify(expect_head=head).ok  # …but not the one we recorded


def test_secrets_are_masked_in_payloads(audit: AuditLog) -> None:
    from pydantic import SecretStr

    ev = audit.append("x", "y", "z", {"token": SecretStr("sentinel-secret-123")})
    assert "sentinel-secret-123" not in str(ev.payload)


def test_cli_verify_exit_codes(db, audit: AuditLog, capsys) -> None:  # type: ignore[no-untyped-def]
    _fill(audit)
    url = db.engine.url.render_as_string(hide_password=False)
    assert main(["audit", "verify", "--database", url]) == 0
    with _tamper(db) as s:
        s.get(AuditEvent, 4).actor = "someone-else"
    assert main(["audit", "verify", "--database", url]) == 1
    assert "event 4" in capsys.readouterr().err
