"""Publish stage: approved statements go out origin platform first, then the playbook's
order, exactly once per platform across retries and crashes. Also runs Firebreak's own
publishing queue (scheduled posts for platforms without native scheduling).

Exactly-once: the Publication record (store/effects.py: idempotency key, the hash of the
exact text, the approved draft hash) is committed *before* the call and `attempts` is bumped
first. On a rerun, a record with attempts > 0 that is not `done` may or may not have gone out:
the platform is asked (`find_published`) before anything is sent again. Thread parts are
recorded one by one, so a crash mid-thread resumes at the missing part.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select

from firebreak.audit import AuditLog
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook
from firebreak.connectors.base import Connector
from firebreak.domain import Platform, PublishResult, parts_sha256, utcnow, variants_sha256
from firebreak.errors import ConnectorError, NotSent, PolicyViolation
from firebreak.store.db import Database
from firebreak.store.queries import open_incident_for
from firebreak.store import effects
from firebreak.store.models import Draft, EffectStatus, Incident, Publication
from firebreak.store.models import ScheduledPost as PostRow
from firebreak.tasks.approve import approval_status

log = get_logger("firebreak.tasks.publish")


@dataclass
class Published:
    platform: str
    remote_id: str
    sha256: str
    at: datetime
    already: bool = False


def _ensure_row(db: Database, incident_id: int, draft: Draft, platform: Platform, parts: list[str]) -> Publication:
    with db.session() as s:
        row, _ = effects.intend(s, Publication, f"pub:{draft.id}:{platform.value}", incident_id=incident_id,
                                draft_id=draft.id, platform=platform.value, sha256=parts_sha256(parts),
                                approved_sha256=draft.sha256, part_ids=[])
        return row


def _update(db: Database, key: str, **fields: object) -> None:
    effects.update(db, Publication, key, **fields)


def publish_to(db: Database, audit: AuditLog, conn: Connector, incident_id: int, draft: Draft, parts: list[str]) -> Published:
    row = _ensure_row(db, incident_id, draft, conn.platform, parts)
    key = row.idempotency_key
    if row.status == EffectStatus.DONE:
        return Published(row.platform, row.remote_id or "", row.sha256, row.done_at or utcnow(), already=True)
    part_ids: list[str] = list(row.part_ids or [])
    if row.attempts > 0 and len(part_ids) < len(parts):
        # The last attempt's outcome is unknown: ask the platform before sending again.
        i = len(part_ids)
        found = conn.find_published(parts[i], idempotency_key=f"{key}:{i}", since=row.created_at - timedelta(minutes=5))
        if found is not None:
            part_ids.append(found.remote_id)
            _update(db, key, part_ids=part_ids)
            audit.append("firebreak", "publish.recovered", f"publication:{key}", {"part": i, "remote_id": found.remote_id})
    first: PublishResult | None = None
    while len(part_ids) < len(parts):
        i = len(part_ids)
        _update(db, key, attempts=row.attempts + 1)
        row.attempts += 1
        try:
            result = conn.publish(parts[i], idempotency_key=f"{key}:{i}", reply_to=part_ids[-1] if part_ids else None)
        except NotSent:
            raise  # provably not sent: the task retry will send it
        except ConnectorError as exc:
            _update(db, key, error=str(exc)[:2000])
            raise
        part_ids.append(result.remote_id)
        first = first or result
        _update(db, key, part_ids=part_ids)
    at = utcnow()
    effects.settle(db, Publication, key, EffectStatus.DONE, at=at, remote_id=part_ids[0], url=first.url if first else None)
    audit.append("firebreak", "publish.published", f"incident:{incident_id}",
                 {"platform": conn.platform.value, "draft": draft.id, "version": draft.version, "kind": draft.kind,
                  "sha256": row.sha256, "approved_sha256": draft.sha256, "remote_ids": part_ids})
    log.info(f"Published draft {draft.id} on {conn.platform.value}", remote_id=part_ids[0], parts=len(parts))
    return Published(conn.platform.value, part_ids[0], row.sha256, at)


def publish_draft(db: Database, audit: AuditLog, playbook: Playbook, connectors: dict[Platform, Connector],
                  incident_id: int, draft_id: int) -> list[Published]:
    """Publish an approved draft everywhere, origin first. Refuses text nobody approved."""
    with db.session() as s:
        draft = s.get(Draft, draft_id)
        inc = s.get(Incident, incident_id)
        assert draft is not None and inc is not None
    status = approval_status(db, playbook, draft_id)
    if not status.satisfied:
        raise PolicyViolation(f"draft {draft_id} v{draft.version} is not approved: missing {status.missing_roles}")
    if variants_sha256(draft.variants) != draft.sha256:
        raise PolicyViolation(f"draft {draft_id} text changed after it was hashed; approvals void")
    origin = Platform(inc.origin_platform) if inc.origin_platform else None
    out = []
    for platform in playbook.publishing_order(origin):
        parts = draft.variants.get(platform.value)
        if not parts:
            continue
        out.append(publish_to(db, audit, connectors[platform], incident_id, draft, list(parts)))
    with db.session() as s:
        d = s.get(Draft, draft_id)
        assert d is not None
        d.status = "published"
    return out


def frozen(db: Database, brand: str) -> bool:
    """Is the brand's publishing on hold (an open incident)? Own-queue posts wait while it is."""
    with db.session() as s:
        return open_incident_for(s, brand) is not None


def run_own_queue(db: Database, audit: AuditLog, brand: str, connectors: dict[Platform, Connector], now: datetime) -> int:
    """Publish Firebreak-queued posts that are due. Never while the brand is frozen."""
    if frozen(db, brand):
        return 0
    sent = 0
    with db.session() as s:
        due = list(s.scalars(select(PostRow).where(PostRow.brand == brand, PostRow.source == "firebreak",
                                                   PostRow.status.in_(("scheduled", "publishing")),
                                                   PostRow.scheduled_at <= now)))
    for post in due:
        conn = connectors[Platform(post.platform)]
        key = f"queue:{post.id}"
        result = None
        if post.status == "publishing":
            result = conn.find_published(post.text, idempotency_key=key, since=post.scheduled_at - timedelta(minutes=5))
        if result is None:
            with db.session() as s:
                row = s.get(PostRow, post.id)
                assert row is not None
                row.status, row.updated_at = "publishing", utcnow()
            try:
                result = conn.publish(post.text, idempotency_key=key)
            except ConnectorError as exc:
                log.warning(f"Queued post {post.id} not published on {post.platform} yet: {exc}")
                continue
        with db.session() as s:
            row = s.get(PostRow, post.id)
            assert row is not None
            row.status, row.remote_id, row.published_at, row.updated_at = "published", result.remote_id, utcnow(), utcnow()
        audit.append("firebreak", "queue.published", f"post:{post.platform}:{post.platform_id}",
                     {"remote_id": result.remote_id, "scheduled_at": post.scheduled_at})
        sent += 1
    return sent
