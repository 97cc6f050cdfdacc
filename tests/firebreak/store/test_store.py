"""The store: migrations match the models, mentions deduplicate, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select

from firebreak.domain import Mention, Platform, utcnow
from firebreak.store.models import Base
from firebreak.store.models import Mention as MentionRow
from firebreak.tasks.ingest import store_mentions


def test_migration_matches_models(db) -> None:  # type: ignore[no-untyped-def]
    with db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    # Type affinity differences between dialects are not schema drift; tables, columns, indexes are.
    structural = [d for d in diff if not (isinstance(d, list) or d[0] in ("modify_type",))]
    assert structural == []


def test_mentions_deduplicate_by_platform_and_id(db) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    batch = [Mention(Platform.X, f"id{i}", f"text {i}", now - timedelta(minutes=i)) for i in range(50)]
    with db.session() as s:
        assert store_mentions(s, "fjell", batch) == 50
    with db.session() as s:
        again = batch[:10] + [Mention(Platform.MASTODON, "id1", "same id, other platform", now)]
        assert store_mentions(s, "fjell", again) == 1
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(MentionRow)) == 51


def test_times_come_back_aware_utc(db) -> None:  # type: ignore[no-untyped-def]
    now = utcnow()
    with db.session() as s:
        store_mentions(s, "fjell", [Mention(Platform.X, "t1", "x", now)])
    with db.session() as s:
        got = s.scalars(select(MentionRow.created_at)).one()
    assert got.tzinfo is not None and abs((got - now).total_seconds()) < 1e-3


def _insert(conn, table: str, **values):  # type: ignore[no-untyped-def]
    """A row in a table as an older revision made it: every NOT NULL column gets a plain value."""
    import sqlalchemy as sa

    t = sa.Table(table, sa.MetaData(), autoload_with=conn)
    filler = {sa.Integer: 0, sa.String: "x", sa.Text: "x", sa.JSON: {}, sa.Boolean: False, sa.Float: 0.0,
              sa.DateTime: utcnow()}
    row = {}
    for col in t.columns:
        if col.name in values or col.nullable or col.primary_key:
            continue
        row[col.name] = next((v for k, v in filler.items() if isinstance(col.type, k)), "x")
    return conn.execute(t.insert().values(**row, **values)).inserted_primary_key[0]


def test_upgrading_to_one_side_effect_record_keeps_every_outcome(test_databases, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Migration 0005: notifications said pending/delivered (delivered_at), publications
    published (published_at); after it every side effect says intended/done/failed and done_at."""
    import sqlalchemy as sa

    from firebreak.store.db import Database
    from firebreak.store.models import EffectStatus, Notification, Publication

    url = test_databases.url(tmp_path, "upgrade")
    database = Database(url)
    try:
        database.migrate("0004")
        when = utcnow()
        with database.engine.begin() as c:
            inc = _insert(c, "incidents", status="open")
            draft = _insert(c, "drafts", incident_id=inc)
            for key, status, at in [("n-sent", "delivered", when), ("n-open", "pending", None), ("n-bad", "failed", None)]:
                _insert(c, "notifications", idempotency_key=key, status=status, delivered_at=at)
            _insert(c, "publications", incident_id=inc, draft_id=draft, idempotency_key="p-done", status="published",
                    published_at=when, attempts=1)
            _insert(c, "publications", incident_id=inc, draft_id=draft, idempotency_key="p-open", status="intended", platform="y",
                    attempts=1)
        database.migrate()
        with database.session() as s:
            notes = {n.idempotency_key: (n.status, n.done_at is not None) for n in s.scalars(sa.select(Notification))}
            pubs = {p.idempotency_key: (p.status, p.done_at is not None) for p in s.scalars(sa.select(Publication))}
        assert notes == {"n-sent": (EffectStatus.DONE, True), "n-open": (EffectStatus.INTENDED, False),
                         "n-bad": (EffectStatus.FAILED, False)}
        assert pubs == {"p-done": (EffectStatus.DONE, True), "p-open": (EffectStatus.INTENDED, False)}
    finally:
        database.dispose()
        test_databases.drop(url)
