"""Freeze stage: hold every scheduled post on every platform and in Firebreak's own queue,
recording exactly what was held; resume them by the playbook's rule at the all-clear.

Exactly-once: each hold/resume has a FreezeRecord (idempotency key) written `intended`
before the platform call and `done` after. Holding is idempotent on every platform, so an
`intended` hold found after a crash is simply done again. A resume that may have been
sent is checked against the platform's schedule before anything is sent twice.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select

from firebreak.audit import AuditLog
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook
from firebreak.connectors.base import Connector
from firebreak.domain import Platform, ScheduledPost, utcnow
from firebreak.errors import (
    CircuitOpen,
    ConnectorError,
    FirebreakError,
    RateLimited,
    RejectedRequest,
    TransientError,
)
from firebreak.store.db import Database
from firebreak.store.models import EffectStatus, FreezeRecord, Incident
from firebreak.store.models import ScheduledPost as PostRow

log = get_logger("firebreak.tasks.freeze")


@dataclass
class FreezeResult:
    found: int = 0
    held: int = 0
    already_out: list[str] = field(default_factory=list)  # went out before the hold landed
    failed: list[str] = field(default_factory=list)


def _snapshot(p: ScheduledPost) -> dict:
    return {"platform": p.platform.value, "platform_id": p.platform_id, "text": p.text,
            "media": list(p.media), "scheduled_at": p.scheduled_at.isoformat(), "source": p.source}


def _post_of(platform: Platform, snap: dict) -> ScheduledPost:
    """The post as a hold record's snapshot has it (what was scheduled before any hold)."""
    return ScheduledPost(platform, snap["platform_id"], snap["text"], datetime.fromisoformat(snap["scheduled_at"]),
                         tuple(snap.get("media") or ()), snap.get("source", "platform"))


def _upsert(s, brand: str, p: ScheduledPost) -> PostRow:  # type: ignore[no-untyped-def]
    row = s.scalars(select(PostRow).where(PostRow.platform == p.platform.value, PostRow.platform_id == p.platform_id)).first()
    if row is None:
        row = PostRow(brand=brand, platform=p.platform.value, platform_id=p.platform_id, source=p.source, text=p.text,
                      media=list(p.media), scheduled_at=p.scheduled_at, status="scheduled", updated_at=utcnow())
        s.add(row)
        s.flush()
    elif row.status not in ("held",):
        row.text, row.media, row.scheduled_at, row.updated_at = p.text, list(p.media), p.scheduled_at, utcnow()
    return row


def freeze_all(db: Database, audit: AuditLog, playbook: Playbook, connectors: dict[Platform, Connector],
               incident_id: int | None, reason: str, *, actor: str = "firebreak") -> FreezeResult:
    brand = playbook.brand.id
    res = FreezeResult()
    errors: list[ConnectorError] = []

    def hold(conn: Connector, post: ScheduledPost, key: str) -> None:
        try:
            conn.hold_scheduled(post)
        except ConnectorError as exc:
            _finish(db, key, EffectStatus.FAILED, str(exc))
            res.failed.append(f"{post.platform.value}:{post.platform_id}: {exc}")
            errors.append(exc)
            return
        _finish(db, key, EffectStatus.DONE, None, post_status="held")
        res.held += 1
        audit.append(actor, "freeze.held", f"post:{post.platform.value}:{post.platform_id}",
                     {"incident": incident_id, "reason": reason, "snapshot": _snapshot(post)})

    for platform in playbook.freeze.platforms:
        conn = connectors.get(platform)
        if conn is None or not conn.supports_scheduling:
            continue
        try:
            posts = conn.list_scheduled()
        except ConnectorError as exc:
            # One platform down must not delay holding the others' posts (they race the clock);
            # this one is retried with the rest of the failures below.
            res.failed.append(f"{platform.value}: listing scheduled posts: {exc}")
            errors.append(exc)
            continue
        listed: set[str] = set()
        for post in posts:
            res.found += 1
            listed.add(post.platform_id)
            key = f"hold:{incident_id or 'manual'}:{platform.value}:{post.platform_id}"
            with db.session() as s:
                rec = s.scalars(select(FreezeRecord).where(FreezeRecord.idempotency_key == key)).first()
                if rec is not None and rec.status == EffectStatus.DONE:
                    res.held += 1
                    continue
                if rec is None:
                    row = _upsert(s, brand, post)
                    rec = FreezeRecord(incident_id=incident_id, scheduled_post_id=row.id, idempotency_key=key,
                                       action="hold", reason=reason, snapshot=_snapshot(post), status=EffectStatus.INTENDED,
                                       created_at=utcnow())
                    s.add(rec)
                else:
                    # An earlier attempt wrote this record and may have held the post before it
                    # died: the listing may now show the hold itself (Facebook: a time weeks
                    # ahead), not the post as it was scheduled. The record's snapshot is what was
                    # scheduled: hold and audit that, and leave the post row as recorded.
                    post = _post_of(platform, dict(rec.snapshot))
            hold(conn, post, key)
        # Holds an earlier attempt sent without learning the outcome (answer lost, timeout)
        # whose post is no longer listed: some platforms stop listing a held post as scheduled
        # (LinkedIn), so the hold may well have landed. Holding is idempotent: send it again
        # from the snapshot; a post that went out meanwhile fails here as it should.
        prefix = f"hold:{incident_id or 'manual'}:{platform.value}:"
        with db.session() as s:
            open_holds = [(r.idempotency_key, dict(r.snapshot)) for r in s.scalars(
                select(FreezeRecord).where(FreezeRecord.idempotency_key.startswith(prefix),
                                           FreezeRecord.status.in_((EffectStatus.INTENDED, EffectStatus.FAILED))))]
        for key, snap in open_holds:
            if snap["platform_id"] in listed:
                continue
            res.found += 1
            hold(conn, _post_of(platform, snap), key)
    if playbook.freeze.include_own_queue:
        held_now: list[dict] = []
        with db.session() as s:
            own = list(s.scalars(select(PostRow).where(PostRow.brand == brand, PostRow.source == "firebreak",
                                                       PostRow.status.in_(("scheduled", "held")))))
            for row in own:
                res.found += 1
                key = f"hold:{incident_id or 'manual'}:{row.platform}:{row.platform_id}"
                if s.scalars(select(FreezeRecord).where(FreezeRecord.idempotency_key == key)).first() is None:
                    snap = {"platform": row.platform, "platform_id": row.platform_id, "text": row.text,
                            "media": row.media, "scheduled_at": row.scheduled_at.isoformat(), "source": "firebreak"}
                    s.add(FreezeRecord(incident_id=incident_id, scheduled_post_id=row.id, idempotency_key=key,
                                       action="hold", reason=reason, snapshot=snap, status=EffectStatus.DONE,
                                       created_at=utcnow(), done_at=utcnow()))
                    held_now.append(snap)
                row.status, row.updated_at = "held", utcnow()
                res.held += 1
        # Audited after the commit: the audit log writes in its own transaction.
        for snap in held_now:
            audit.append(actor, "freeze.held", f"post:{snap['platform']}:{snap['platform_id']}",
                         {"incident": incident_id, "reason": reason, "snapshot": snap})
    if res.failed:
        log.error(f"Freeze incomplete: {len(res.failed)} post(s) not held yet: {'; '.join(res.failed)}")
        message = f"freeze incomplete, {len(res.failed)} post(s) not held: {'; '.join(res.failed)}"
        if all(isinstance(e, TransientError) for e in errors):
            # Every failure is worth retrying (5xx, timeout, rate limit): say so with a
            # retryable error, so the task retries the freeze (holds are idempotent and done
            # ones are skipped) instead of giving up on the first storm. A rate limit carries
            # the longest wait the platforms asked for.
            limited = [e for e in errors if isinstance(e, RateLimited)]
            where = ",".join(sorted({e.platform for e in errors}))
            if limited:
                raise RateLimited(where, max(e.retry_after for e in limited), message)
            if any(isinstance(e, CircuitOpen) for e in errors):
                raise CircuitOpen(where, message)  # the task waits out the breaker's cooldown
            raise TransientError(where, message)
        raise FirebreakError(message)
    return res


def _finish(db: Database, key: str, status: EffectStatus, error: str | None, *, post_status: str | None = None,
            outcome: str | None = None, new_time: datetime | None = None) -> None:
    """Settle a hold or resume and move its post, in one transaction."""
    with db.session() as s:
        rec = s.scalars(select(FreezeRecord).where(FreezeRecord.idempotency_key == key)).one()
        rec.status, rec.done_at, rec.error = status, utcnow(), error[:2000] if error else None
        if outcome:
            rec.outcome, rec.new_time = outcome, new_time
        if post_status:
            post = s.get(PostRow, rec.scheduled_post_id)
            assert post is not None
            post.status, post.updated_at = post_status, utcnow()
            if new_time is not None:
                post.scheduled_at = new_time


def _fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.lower()) if not unicodedata.combining(c))


def crisis_terms(playbook: Playbook, incident: Incident) -> list[str]:
    terms: list[str] = []
    if incident.type:
        for words in playbook.crisis_type(incident.type).keywords.values():
            terms.extend(words)
    terms.extend(t for t in (incident.topics or []) if len(t) > 3)
    return sorted({_fold(t) for t in terms if t.strip()})


def mentions_crisis(text: str, terms: list[str]) -> list[str]:
    folded = _fold(text)
    return [t for t in terms if re.search(rf"(?<!\w){re.escape(t)}(?!\w)", folded)]


@dataclass
class ResumeResult:
    resumed: int = 0
    published_now: int = 0
    rescheduled: int = 0
    dropped: int = 0
    needs_approval: list[str] = field(default_factory=list)


def resume_all(db: Database, audit: AuditLog, playbook: Playbook, connectors: dict[Platform, Connector],
               incident_id: int | None, now: datetime, *, actor: str = "firebreak") -> ResumeResult:
    """Lift the freeze: every held post goes back by the playbook's rule for overdue ones."""
    res = ResumeResult()
    with db.session() as s:
        holds = list(s.scalars(select(FreezeRecord).where(FreezeRecord.action == "hold", FreezeRecord.status == EffectStatus.DONE,
                                                          FreezeRecord.incident_id.is_(incident_id) if incident_id is None
                                                          else FreezeRecord.incident_id == incident_id)
                               .order_by(FreezeRecord.id)))
        inc = s.get(Incident, incident_id) if incident_id else None
    if not holds:
        return res
    freeze_started = min(h.created_at for h in holds)
    freeze_length = now - freeze_started
    terms = crisis_terms(playbook, inc) if (inc is not None and playbook.freeze.recheck_terms) else []
    rule = playbook.freeze.overdue_rule
    for hold in holds:
        snap = hold.snapshot
        key = f"resume:{incident_id or 'manual'}:{snap['platform']}:{snap['platform_id']}"
        with db.session() as s:
            done = s.scalars(select(FreezeRecord).where(FreezeRecord.idempotency_key == key)).first()
            if done is not None and done.status == EffectStatus.DONE:
                res.resumed += 1
                continue
            # An earlier attempt may have reached the platform and lost its answer.
            maybe_sent = done is not None
            if done is None:
                s.add(FreezeRecord(incident_id=incident_id, scheduled_post_id=hold.scheduled_post_id, idempotency_key=key,
                                   action="resume", reason="all-clear", snapshot=snap, status=EffectStatus.INTENDED, created_at=utcnow()))
        original = datetime.fromisoformat(snap["scheduled_at"])
        hits = mentions_crisis(snap["text"], terms)
        if hits:
            # A cheerful post that touches the crisis topic must not go out unseen.
            _finish(db, key, EffectStatus.DONE, None, post_status="needs_approval", outcome="needs_approval")
            res.needs_approval.append(f"{snap['platform']}:{snap['platform_id']}")
            res.resumed += 1
            audit.append(actor, "resume.needs_approval", f"post:{snap['platform']}:{snap['platform_id']}",
                         {"incident": incident_id, "matched_terms": hits})
            continue
        if original > now:
            when, outcome = original, "rescheduled"
        elif rule == "publish_now":
            when, outcome = now, "published_now"
        elif rule == "reschedule_by_freeze":
            when = original + freeze_length
            when, outcome = (when, "rescheduled") if when > now else (now + timedelta(minutes=5), "rescheduled")
        elif rule == "drop":
            when, outcome = None, "dropped"
        else:  # reapprove
            _finish(db, key, EffectStatus.DONE, None, post_status="needs_approval", outcome="needs_approval")
            res.needs_approval.append(f"{snap['platform']}:{snap['platform_id']}")
            res.resumed += 1
            continue
        post = ScheduledPost(Platform(snap["platform"]), snap["platform_id"], snap["text"], original,
                             tuple(snap.get("media") or ()), snap.get("source", "platform"))
        try:
            if snap.get("source") == "firebreak":
                new_status = "dropped" if when is None else "scheduled"
            else:
                conn = connectors[post.platform]
                if when is None:
                    conn.cancel_scheduled(post)
                    new_status = "dropped"
                else:
                    conn.release_scheduled(post, when)
                    new_status = "published" if outcome == "published_now" else "scheduled"
        except RejectedRequest as exc:
            if not maybe_sent:
                _finish(db, key, EffectStatus.FAILED, str(exc))
                raise
            # The platform refuses because the post is no longer held there (Facebook: not an
            # unpublished post; LinkedIn: not a draft; Mastodon: no such scheduled status).
            # Only this resume releases it, so the earlier attempt whose answer was lost landed
            # and the post went out or was dropped as asked: done, not a failure to repeat.
            new_status = "dropped" if when is None else ("published" if outcome == "published_now" else "scheduled")
            audit.append(actor, "resume.recovered", f"post:{snap['platform']}:{snap['platform_id']}",
                         {"incident": incident_id, "outcome": outcome, "platform_said": str(exc)[:300]})
        except ConnectorError as exc:
            _finish(db, key, EffectStatus.FAILED, str(exc))
            raise
        _finish(db, key, EffectStatus.DONE, None, post_status=new_status, outcome=outcome, new_time=when)
        res.resumed += 1
        res.published_now += outcome == "published_now"
        res.rescheduled += outcome == "rescheduled"
        res.dropped += outcome == "dropped"
        audit.append(actor, f"resume.{outcome}", f"post:{snap['platform']}:{snap['platform_id']}",
                     {"incident": incident_id, "original": snap["scheduled_at"],
                      "new_time": when.isoformat() if when else None, "rule": rule})
    return res
