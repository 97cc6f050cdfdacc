"""Monitor stage: drain each platform's mention streams from the saved cursors into the store.

Never lose one across retries or restarts: the cursor is saved after each page is stored
(the page's mentions and the new cursor commit in one transaction), and the store ignores
duplicates by (platform, platform_id), so replaying a page after a crash is harmless.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from firebreak.config.logging import get_logger
from firebreak.connectors.base import Connector
from firebreak.domain import Mention, utcnow
from firebreak.store.db import Database
from firebreak.store.models import IngestCursor
from firebreak.store.models import Mention as MentionRow

log = get_logger("firebreak.tasks.ingest")


@dataclass
class IngestStats:
    platform: str
    pages: int = 0
    received: int = 0
    stored: int = 0  # new rows; received - stored were duplicates

    def merge(self, other: "IngestStats") -> None:
        self.pages += other.pages
        self.received += other.received
        self.stored += other.stored


def store_mentions(session: Session, brand: str, mentions: list[Mention]) -> int:
    """Insert, ignoring ones already stored. Returns how many were new."""
    if not mentions:
        return 0
    now = utcnow()
    rows = [
        {
            "brand": brand, "platform": m.platform.value, "platform_id": m.platform_id, "kind": m.kind,
            "author": m.author[:256], "text": m.text, "url": m.url[:512], "reply_to": m.reply_to,
            "author_followers": m.author_followers, "engagement": m.engagement, "lang_hint": m.lang_hint[:16],
            "created_at": m.created_at, "ingested_at": now, "lang": None,
        }
        for m in mentions
    ]
    dialect = session.get_bind().dialect.name
    ins = pg_insert(MentionRow) if dialect == "postgresql" else sqlite_insert(MentionRow)
    stmt = ins.on_conflict_do_nothing(index_elements=["platform", "platform_id"]).returning(MentionRow.id)
    # executemany of one cached statement (not a fresh multi-row VALUES per page); RETURNING
    # counts what was really inserted, where rowcount is unreliable.
    return len(session.execute(stmt, rows).all())


def _cursor(session: Session, brand: str, platform: str, stream: str) -> IngestCursor:
    cur = session.get(IngestCursor, (brand, platform, stream))
    if cur is None:
        cur = IngestCursor(brand=brand, platform=platform, stream=stream, high_water=None, page_cursor=None,
                           updated_at=utcnow())
        session.add(cur)
        session.flush()
    return cur


def drain_stream(db: Database, connector: Connector, brand: str, stream: str, *, max_pages: int = 1000,
                 page_size: int = 100) -> IngestStats:
    platform = connector.platform.value
    stats = IngestStats(platform)
    with db.session() as s:
        cur = _cursor(s, brand, platform, stream)
        since, page_cursor = cur.high_water, cur.page_cursor
    for _ in range(max_pages):
        page = connector.fetch_mentions(stream, since=since, cursor=page_cursor, limit=page_size)
        with db.session() as s:
            new = store_mentions(s, brand, page.mentions)
            cur = _cursor(s, brand, platform, stream)
            cur.page_cursor = page.next_cursor
            if page.next_cursor is None and page.high_water:
                cur.high_water = page.high_water
            cur.updated_at = utcnow()
        stats.pages += 1
        stats.received += len(page.mentions)
        stats.stored += new
        if page.next_cursor is None:
            break
        page_cursor = page.next_cursor
    log.info(f"{platform} {stream}: {stats.received} received, {stats.stored} new, in {stats.pages} page(s)")
    return stats


def ingest_platform(db: Database, connector: Connector, brand: str) -> IngestStats:
    total = IngestStats(connector.platform.value)
    for stream in connector.streams:
        total.merge(drain_stream(db, connector, brand, stream))
    return total


def cursors(db: Database, brand: str) -> list[IngestCursor]:
    with db.session() as s:
        return list(s.scalars(select(IngestCursor).where(IngestCursor.brand == brand)))
