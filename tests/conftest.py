"""Shared fixtures. Integration tests start real things (sandbox on loopback, Prefect's
test server, PostgreSQL, SMTP); unit tests stay fast."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "firebreak")

from firebreak.clock import VirtualClock  # noqa: E402
from firebreak.config.playbook import Playbook, load_playbook  # noqa: E402
from firebreak.config.settings import DEFAULT_PLAYBOOK, Settings  # noqa: E402
from firebreak.sandbox.server import SandboxServer  # noqa: E402
from firebreak.sandbox.state import SandboxState  # noqa: E402

# Every request a connector makes anywhere in the suite is checked against its platform's spec.
pytest_plugins = ["tests.contract"]

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)

# `make test` runs the chaos, crash and benchmark tests (marked `slow`) with small counts, so
# the suite stays quick; `make test-all` (FIREBREAK_TEST_FULL=1, run by CI) with full counts.
FULL = os.environ.get("FIREBREAK_TEST_FULL", "").strip() == "1"


def scaled(quick: int, full: int) -> int:
    """How many trials a slow test runs: `quick` in `make test`, `full` in `make test-all`."""
    return full if FULL else quick


@pytest.fixture(scope="session")
def playbook() -> Playbook:
    return load_playbook(DEFAULT_PLAYBOOK)


@pytest.fixture
def clock() -> VirtualClock:
    """Virtual time that stands still unless a test advances it."""
    return VirtualClock(T0, compression=0.0)


@pytest.fixture
def sandbox_state(clock: VirtualClock) -> SandboxState:
    return SandboxState(clock)


@pytest.fixture
def sandbox(sandbox_state: SandboxState) -> Iterator[SandboxServer]:
    with SandboxServer(sandbox_state) as srv:
        yield srv


@pytest.fixture
def sandbox_settings(sandbox: SandboxServer, tmp_path) -> Settings:  # type: ignore[no-untyped-def]
    """Settings pointing every connector at the live sandbox, with credentials it accepts."""
    from pydantic import SecretStr

    creds = {"token": SecretStr("test-token"), "password": SecretStr("test-app-password")}
    return Settings(sandbox_url=sandbox.url, data_dir=tmp_path,
                    **{p: getattr(Settings(), p).model_copy(update=creds) for p in
                       ("x", "facebook", "instagram", "linkedin", "mastodon", "bluesky")})


@pytest.fixture(scope="session")
def prefect_server() -> Iterator[str]:
    """A Prefect test server (it takes 8-15 s to start); its API URL. One for the session, but
    the tests that use it run last (see pytest_collection_modifyitems): while it runs, every
    flow in the process talks to it, and its services keep a core busy."""
    from prefect.settings import PREFECT_API_URL
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield str(PREFECT_API_URL.value())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The tests that need the Prefect test server run together, at the end, so it starts once
    and nothing else runs beside it."""
    items.sort(key=lambda item: "prefect_server" in getattr(item, "fixturenames", ()))


# -- databases: every store test runs on SQLite and, where a server answers, PostgreSQL ----------

PG_ADMIN_URL = os.environ.get("FIREBREAK_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _postgres_available() -> bool:
    import socket
    from urllib.parse import urlparse

    u = urlparse(PG_ADMIN_URL)
    try:
        with socket.create_connection((u.hostname or "127.0.0.1", u.port or 5432), timeout=1):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A throwaway PostgreSQL database for this test session (skips when no server answers)."""
    if not _postgres_available():
        if TEST_DATABASE == "postgresql":
            pytest.fail(f"FIREBREAK_TEST_DATABASE=postgresql but no PostgreSQL server at {PG_ADMIN_URL}")
        pytest.skip(f"no PostgreSQL server at {PG_ADMIN_URL}")
    import sqlalchemy as sa

    from firebreak.store.db import normalise_url

    name = f"firebreak_test_{os.getpid()}"
    admin = sa.create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        c.execute(sa.text(f'CREATE DATABASE "{name}"'))
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    yield f"{base}/{name}"
    with admin.connect() as c:
        c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file migrated to head once per session; each test gets a copy."""
    from firebreak.store.db import Database

    path = tmp_path_factory.mktemp("schema") / "template.db"
    database = Database(f"sqlite:///{path}")
    database.migrate()
    database.dispose()  # checkpoints the WAL: the file alone is the whole database
    return path


def _head_revision() -> str:
    from alembic.script import ScriptDirectory

    from firebreak.store.db import MIGRATIONS

    return str(ScriptDirectory(str(MIGRATIONS)).get_current_head())


def _reset_postgres(database: Any) -> None:
    """Empty every table of a database migrated earlier in the session (a TRUNCATE, not a new
    schema); migrate afresh when the schema is not at head (a test dropped or downgraded it)."""
    import sqlalchemy as sa

    from firebreak.store.models import Base

    with database.engine.begin() as c:
        at_head = c.execute(sa.text("SELECT to_regclass('alembic_version') IS NOT NULL")).scalar() and \
            c.execute(sa.text("SELECT version_num FROM alembic_version")).scalar() == _head_revision()
        triggers = c.execute(sa.text("SELECT count(*) FROM pg_trigger WHERE NOT tgisinternal "
                                     "AND tgname LIKE 'audit_events_%'")).scalar() if at_head else 0
        if at_head and triggers == 2:
            # The audit log's triggers refuse TRUNCATE; a test database may be emptied anyway.
            c.execute(sa.text("SET LOCAL session_replication_role = replica"))
            tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
            c.execute(sa.text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            return
        for table in reversed(Base.metadata.sorted_tables):
            c.execute(sa.text(f'DROP TABLE IF EXISTS "{table.name}" CASCADE'))
        c.execute(sa.text("DROP TABLE IF EXISTS alembic_version"))
    database.migrate()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db(request, tmp_path):  # type: ignore[no-untyped-def]
    """A migrated, empty database of each kind. The schema is built once per session; each
    test starts from a copy of it (SQLite) or from emptied tables (PostgreSQL)."""
    from firebreak.store.db import Database

    if request.param == "sqlite":
        path = tmp_path / "test.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        database = Database(f"sqlite:///{path}")
    else:
        database = Database(request.getfixturevalue("postgres_url"))
        _reset_postgres(database)
    yield database
    database.dispose()


@pytest.fixture
def audit(db):  # type: ignore[no-untyped-def]
    from firebreak.audit import AuditLog

    return AuditLog(db)


# -- the whole suite on PostgreSQL: FIREBREAK_TEST_DATABASE=postgresql (make test-postgres) -------

TEST_DATABASE = os.environ.get("FIREBREAK_TEST_DATABASE", "sqlite").strip().lower() or "sqlite"
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise pytest.UsageError(f"FIREBREAK_TEST_DATABASE must be sqlite or postgresql, not {TEST_DATABASE!r}")


class TestDatabases:
    """Hands out fresh, empty databases of the kind `FIREBREAK_TEST_DATABASE` names: a file in
    the test's directory for SQLite, a new database on the server for PostgreSQL. Tests that
    build their own `Database(...)` (or start a process that does) take their URL from here."""

    __test__ = False  # not a test class, whatever its name

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._created: list[str] = []
        self._admin: Any = None
        self._count = 0

    def _admin_engine(self) -> Any:
        if self._admin is None:
            import sqlalchemy as sa

            from firebreak.store.db import normalise_url

            if not _postgres_available():
                raise RuntimeError(f"FIREBREAK_TEST_DATABASE=postgresql but no server answers at {PG_ADMIN_URL}")
            self._admin = sa.create_engine(normalise_url(PG_ADMIN_URL), isolation_level="AUTOCOMMIT")
        return self._admin

    def url(self, directory: Path, name: str, *, template: str | None = None) -> str:
        """A new database. `template`: a URL this object handed out before, whose content is
        copied (it must have no open connection)."""
        if self.kind == "sqlite":
            path = directory / f"{name}.db"
            if template is not None:
                shutil.copy(template.removeprefix("sqlite:///"), path)
            return f"sqlite:///{path}"
        import sqlalchemy as sa

        self._count += 1
        db_name = f"firebreak_t{os.getpid()}_{self._count}_{''.join(c for c in name if c.isalnum())[:20].lower()}"
        clause = f' TEMPLATE "{template.rsplit("/", 1)[1]}"' if template is not None else ""
        with self._admin_engine().connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}"'))
            c.execute(sa.text(f'CREATE DATABASE "{db_name}"{clause}'))
        url = f"{PG_ADMIN_URL.rsplit('/', 1)[0]}/{db_name}"
        self._created.append(url)
        return url

    def drop(self, url: str) -> None:
        """Removes a database handed out by `url` (no open connection may remain)."""
        if self.kind == "sqlite":
            Path(url.removeprefix("sqlite:///")).unlink(missing_ok=True)
            return
        import sqlalchemy as sa

        with self._admin_engine().connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)'))
        if url in self._created:
            self._created.remove(url)

    def close(self) -> None:
        for url in list(self._created):
            self.drop(url)
        if self._admin is not None:
            self._admin.dispose()


@pytest.fixture(scope="session")
def test_databases() -> Iterator[TestDatabases]:
    dbs = TestDatabases(TEST_DATABASE)
    yield dbs
    dbs.close()


def pytest_report_header(config: pytest.Config) -> str:
    return f"firebreak test database: {TEST_DATABASE}"
