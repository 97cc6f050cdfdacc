"""PostgreSQL for real: the database itself refuses to change or remove audit events, and
Alembic upgrades from an empty database, from the initial schema (0001) and from the previous
revision (0002)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from firebreak.audit import AuditLog
from firebreak.store.db import Database
from firebreak.store.models import AuditEvent, Base

pytestmark = pytest.mark.postgres
HEAD = "0005"


def _empty(database: Database) -> None:
    with database.engine.begin() as c:
        for table in reversed(Base.metadata.sorted_tables):
            c.execute(sa.text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
        c.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))


@pytest.fixture
def pg(postgres_url: str) -> Iterator[Database]:
    database = Database(postgres_url)
    _empty(database)
    yield database
    database.dispose()


def _version(database: Database) -> str:
    with database.engine.connect() as c:
        return str(c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one())


def _triggers(database: Database) -> set[str]:
    with database.engine.connect() as c:
        return set(c.execute(sa.text("SELECT tgname FROM pg_trigger WHERE tgrelid = 'audit_events'::regclass "
                                     "AND NOT tgisinternal")).scalars())


def test_upgrade_from_empty_database(pg: Database) -> None:
    pg.migrate()
    assert _version(pg) == HEAD
    assert _triggers(pg) == {"audit_events_append_only", "audit_events_no_truncate"}


@pytest.mark.parametrize("start", ["0001", "0002"])
def test_upgrade_from_an_earlier_revision_keeps_data(pg: Database, start: str) -> None:
    pg.migrate(start)
    assert _version(pg) == start and _triggers(pg) == set()
    AuditLog(pg).append("tester", "before.upgrade", "x:1", {"n": 1})
    pg.migrate()
    assert _version(pg) == HEAD
    assert AuditLog(pg).verify().ok and AuditLog(pg).count() == 1


def test_downgrade_removes_the_triggers(pg: Database) -> None:
    from alembic import command

    pg.migrate()
    command.downgrade(pg.alembic_config(), "0002")
    assert _triggers(pg) == set()


@pytest.mark.parametrize("statement", [
    sa.update(AuditEvent).where(AuditEvent.seq == 1).values(actor="mallory"),
    sa.delete(AuditEvent).where(AuditEvent.seq == 1),
    sa.text("TRUNCATE audit_events"),
], ids=["update", "delete", "truncate"])
def test_database_refuses_to_change_audit_events(pg: Database, statement: sa.Executable) -> None:
    pg.migrate()
    log = AuditLog(pg)
    log.append("tester", "thing.done", "thing:1", {"i": 1})
    log.append("tester", "thing.done", "thing:2", {"i": 2})
    with pytest.raises(DBAPIError, match="append-only"), pg.engine.begin() as c:
        c.execute(statement)
    assert log.verify().ok and log.count() == 2  # nothing changed
    log.append("tester", "thing.done", "thing:3", {"i": 3})  # appending still works
    assert log.verify().ok
