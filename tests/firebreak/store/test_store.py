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
