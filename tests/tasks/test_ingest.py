"""Ingest through a real connector and sandbox: cursors persist, a crash loses nothing,
and duplicates across streams are absorbed by the store."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import func, select

from firebreak.connectors import build_connector
from firebreak.sandbox.state import SandboxMention, make_id
from firebreak.domain import Platform
from firebreak.errors import TransientError
from firebreak.store.models import Mention
from firebreak.tasks.ingest import cursors, drain_stream, ingest_platform
from tests.conftest import T0


def _load(state, n: int, start_minutes: int = -600) -> None:  # type: ignore[no-untyped-def]
    state.load([SandboxMention(Platform.X, make_id(Platform.X, i), f"user{i}", f"fjell tent number {i} @fjelloutdoor",
                               T0 + timedelta(minutes=start_minutes + i)) for i in range(n)], [], [])


def _count(db) -> int:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return s.scalar(select(func.count()).select_from(Mention)) or 0


def test_two_streams_one_row_each(db, sandbox_state, sandbox_settings, playbook) -> None:  # type: ignore[no-untyped-def]
    _load(sandbox_state, 250)
    conn = build_connector(Platform.X, sandbox_settings, playbook)
    stats = ingest_platform(db, conn, "fjell")
    # The same tweets come from search and from the mentions timeline; the store keeps one each.
    assert stats.received >= 250 and _count(db) == 250
    assert {c.stream for c in cursors(db, "fjell")} == set(conn.streams)
    assert ingest_platform(db, conn, "fjell").stored == 0


def test_crash_mid_drain_resumes_without_loss(db, sandbox_state, sandbox_settings, playbook, clock) -> None:  # type: ignore[no-untyped-def]
    _load(sandbox_state, 230)
    conn = build_connector(Platform.X, sandbox_settings, playbook)
    real = conn.fetch_mentions
    calls = {"n": 0}

    def crash_on_third(*a, **kw):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise TransientError("x", "connection reset")
        return real(*a, **kw)

    conn.fetch_mentions = crash_on_third  # type: ignore[method-assign]
    try:
        drain_stream(db, conn, "fjell", "search")
    except TransientError:
        pass
    fresh = build_connector(Platform.X, sandbox_settings, playbook)  # a new process after the crash
    drain_stream(db, fresh, "fjell", "search")
    assert _count(db) == 230
    clock.advance(3600)  # later mentions appear; the high-water keeps old ones out
    sandbox_state.load([SandboxMention(Platform.X, make_id(Platform.X, 9999), "late", "fjell late one", T0 + timedelta(minutes=30))], [], [])
    assert drain_stream(db, fresh, "fjell", "search").stored == 1
