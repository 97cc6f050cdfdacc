"""SQLAlchemy 2 models. The schema is created by Alembic (firebreak/store/migrations), never by
create_all in production code; tests/store/test_migrations.py checks the two agree.

Conventions: times are timezone-aware UTC in Python and stored as UTC; every side effect
(a notification, a hold or resume, a publication, an engagement) is one kind of record,
`SideEffect`: a unique `idempotency_key` written *before* the external call, with a `status`
that tells after a crash whether the call is known to have happened.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator

from firebreak.domain import as_utc


class UTCDateTime(TypeDecorator):
    """Stores UTC, always returns aware datetimes (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        value = as_utc(value)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else as_utc(value)


BigId = BigInteger().with_variant(Integer, "sqlite")  # SQLite autoincrement needs INTEGER


def _enum(cls: type[StrEnum], length: int = 16) -> Enum:
    """A Python enum stored as its value in a plain VARCHAR (no database enum type, no CHECK):
    adding a member needs no migration, and reading an unknown value fails loudly."""
    return Enum(cls, native_enum=False, create_constraint=False, length=length,
                values_callable=lambda e: [m.value for m in e], validate_strings=True)


class IncidentStatus(StrEnum):
    OPEN = "open"  # the response runs
    RESOLVING = "resolving"  # the all-clear was proposed; waiting for a person to confirm
    RESOLVED = "resolved"


class StageTimes(BaseModel):
    """When a stage ran: wall clock (latencies) and platform time (compared with posts)."""

    model_config = ConfigDict(extra="forbid")
    started_at: datetime
    finished_at: datetime
    platform_started_at: datetime | None = None
    platform_finished_at: datetime | None = None


class IncidentSummary(BaseModel):
    """What the stages record on an incident beside its columns. Every key is declared here:
    writing an unknown one fails instead of adding to an untyped bag. Frozen: a change is a new
    summary assigned to the incident (queries.update_summary), which the session then saves."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    stages: dict[str, StageTimes] = Field(default_factory=dict)
    figures: dict[str, Any] = Field(default_factory=dict)  # classify: volumes and shares behind the severity
    topic: str = ""  # classify: what the storm is about, in a few words
    resolve_run_id: str | None = None  # the run paused for the all-clear
    heightened_alert_until: datetime | None = None  # after the all-clear: detection stays sensitive until then
    # A drill's own records: the monitor pass that detected the storm, and when in platform time.
    drill_stages: dict[str, StageTimes] = Field(default_factory=dict)
    detected_platform_at: datetime | None = None


class SummaryJSON(TypeDecorator):
    """IncidentSummary in a JSON column."""

    impl = JSON
    cache_ok = True

    def process_bind_param(self, value: IncidentSummary | dict[str, Any] | None, dialect: Any) -> dict[str, Any]:
        if value is None:
            value = IncidentSummary()
        elif isinstance(value, dict):
            value = IncidentSummary.model_validate(value)
        return value.model_dump(mode="json", exclude_defaults=True)

    def process_result_value(self, value: dict[str, Any] | None, dialect: Any) -> IncidentSummary:
        return IncidentSummary.model_validate(value or {})


class EffectStatus(StrEnum):
    INTENDED = "intended"  # recorded before the call; while it stays so, the call may or may not have happened
    DONE = "done"  # the call is known to have happened (or, for a deliberate skip, was settled)
    FAILED = "failed"  # the call was refused or could not be made; a later attempt may try again


class SideEffect:
    """What every "intended → done | failed" record has: the key written before the call,
    the outcome after it, and how many attempts were made (an attempt > 0 that is not done
    may have reached the platform: look it up before sending again)."""

    idempotency_key: Mapped[str] = mapped_column(String(128), unique=True)
    status: Mapped[EffectStatus] = mapped_column(_enum(EffectStatus), default=EffectStatus.INTENDED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    done_at: Mapped[datetime | None]


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Mention(Base):
    __tablename__ = "mentions"
    __table_args__ = (
        UniqueConstraint("platform", "platform_id", name="uq_mentions_platform_id"),
        Index("ix_mentions_brand_created", "brand", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(16))
    platform_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(16), default="mention")
    author: Mapped[str] = mapped_column(String(256), default="")
    text: Mapped[str] = mapped_column(Text)
    url: Mapped[str] = mapped_column(String(512), default="")
    reply_to: Mapped[str] = mapped_column(String(128), default="")
    author_followers: Mapped[int] = mapped_column(Integer, default=0)
    engagement: Mapped[int] = mapped_column(Integer, default=0)
    lang_hint: Mapped[str] = mapped_column(String(16), default="", server_default="")  # the platform's own tag
    created_at: Mapped[datetime]
    ingested_at: Mapped[datetime]
    # Triage labels, filled by the classify stage (NULL until then).
    lang: Mapped[str | None] = mapped_column(String(8))
    sentiment: Mapped[str | None] = mapped_column(String(8))
    sentiment_score: Mapped[float | None] = mapped_column(Float)
    offensive: Mapped[bool | None] = mapped_column(Boolean)
    offensive_score: Mapped[float | None] = mapped_column(Float)
    complaint: Mapped[bool | None] = mapped_column(Boolean)
    complaint_score: Mapped[float | None] = mapped_column(Float)
    crisis_types: Mapped[list[Any] | None] = mapped_column(JSON)
    # Engagement: open | answered | private | skipped | hidden | none (needs no answer)
    answer_status: Mapped[str | None] = mapped_column(String(16))
    answered_at: Mapped[datetime | None]  # when it was answered, moved private, skipped or hidden
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))


class IngestCursor(Base):
    __tablename__ = "ingest_cursors"

    brand: Mapped[str] = mapped_column(String(64), primary_key=True)
    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    stream: Mapped[str] = mapped_column(String(32), primary_key=True)
    high_water: Mapped[str | None] = mapped_column(String(256))  # newest item fully ingested
    page_cursor: Mapped[str | None] = mapped_column(Text)  # mid-stream pagination token
    updated_at: Mapped[datetime]


class Signal(Base):
    __tablename__ = "signals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    scope: Mapped[str] = mapped_column(String(64), default="all")  # all | platform:x | topic:…
    at: Mapped[datetime]  # end of the bucket that fired
    kind: Mapped[str] = mapped_column(String(32))  # volume | negative_share | spread | alert
    score: Mapped[float] = mapped_column(Float)
    volume: Mapped[int] = mapped_column(Integer)
    baseline: Mapped[float] = mapped_column(Float)
    negative_share: Mapped[float] = mapped_column(Float, default=0.0)
    platforms: Mapped[list[Any]] = mapped_column(JSON, default=list)
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    detected_at: Mapped[datetime]  # wall clock when Firebreak noticed
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))


class Incident(Base):
    __tablename__ = "incidents"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    status: Mapped[IncidentStatus] = mapped_column(_enum(IncidentStatus), default=IncidentStatus.OPEN)
    type: Mapped[str | None] = mapped_column(String(64))
    severity: Mapped[int | None] = mapped_column(Integer)
    origin_platform: Mapped[str | None] = mapped_column(String(16))
    first_mention_id: Mapped[int | None] = mapped_column(BigId)
    languages: Mapped[list[Any]] = mapped_column(JSON, default=list)
    topics: Mapped[list[Any]] = mapped_column(JSON, default=list)
    summary: Mapped[IncidentSummary] = mapped_column(SummaryJSON, default=IncidentSummary)
    # The escalation policy and playbook hash in force when the incident opened.
    policy_snapshot: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    started_at: Mapped[datetime]  # first storm bucket (platform time)
    detected_at: Mapped[datetime]  # wall clock
    acknowledged_by: Mapped[str | None] = mapped_column(String(64))
    acknowledged_at: Mapped[datetime | None]
    resolved_at: Mapped[datetime | None]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))
    drill: Mapped[bool] = mapped_column(Boolean, default=False)


class Notification(SideEffect, Base):
    """A page, briefing, one-time code or reminder; done = delivered to the channel."""

    __tablename__ = "notifications"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(16), default="page")  # page | briefing | code | reminder
    channel: Mapped[str] = mapped_column(String(16))
    target: Mapped[str] = mapped_column(String(256))
    person: Mapped[str | None] = mapped_column(String(64))
    level: Mapped[int] = mapped_column(Integer, default=0)
    round: Mapped[int] = mapped_column(Integer, default=0)
    subject: Mapped[str] = mapped_column(String(256), default="")
    body: Mapped[str] = mapped_column(Text, default="")


class ScheduledPost(Base):
    __tablename__ = "scheduled_posts"
    __table_args__ = (UniqueConstraint("platform", "platform_id", name="uq_scheduled_platform_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    brand: Mapped[str] = mapped_column(String(64))
    platform: Mapped[str] = mapped_column(String(16))
    platform_id: Mapped[str] = mapped_column(String(128))
    source: Mapped[str] = mapped_column(String(16), default="platform")  # platform | firebreak
    text: Mapped[str] = mapped_column(Text)
    media: Mapped[list[Any]] = mapped_column(JSON, default=list)
    scheduled_at: Mapped[datetime]
    # scheduled | held | publishing | published | dropped | needs_approval
    status: Mapped[str] = mapped_column(String(16), default="scheduled")
    remote_id: Mapped[str | None] = mapped_column(String(256))  # own queue: the post once published
    published_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class FreezeRecord(SideEffect, Base):
    """Holding or resuming one scheduled post."""

    __tablename__ = "freeze_records"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    scheduled_post_id: Mapped[int] = mapped_column(ForeignKey("scheduled_posts.id"))
    action: Mapped[str] = mapped_column(String(16))  # hold | resume
    reason: Mapped[str] = mapped_column(Text)
    # Exactly what was held: text, media, time, platform id, as recorded before the hold.
    snapshot: Mapped[dict[str, Any]] = mapped_column(JSON)
    outcome: Mapped[str | None] = mapped_column(String(32))  # resume: rescheduled | published | dropped …
    new_time: Mapped[datetime | None]


class Draft(Base):
    __tablename__ = "drafts"
    __table_args__ = (UniqueConstraint("incident_id", "kind", "sequence", "version", name="uq_draft_version"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    kind: Mapped[str] = mapped_column(String(16))  # holding | update | final
    sequence: Mapped[int] = mapped_column(Integer, default=0)  # n-th statement of this kind
    version: Mapped[int] = mapped_column(Integer, default=1)  # bumps on every rejection/edit
    language: Mapped[str] = mapped_column(String(8))
    variants: Mapped[dict[str, Any]] = mapped_column(JSON)  # platform -> exact text
    sha256: Mapped[str] = mapped_column(String(64))
    author: Mapped[str] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="template")  # template | llm | human
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending | approved | rejected | published
    comments: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    ready_at: Mapped[datetime | None]
    approved_at: Mapped[datetime | None]
    flow_run_id: Mapped[str | None] = mapped_column(String(64))  # the run paused for this draft


class Approval(Base):
    __tablename__ = "approvals"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id"))
    approver: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    decision: Mapped[str] = mapped_column(String(16))  # approve | reject
    sha256: Mapped[str] = mapped_column(String(64))
    channel: Mapped[str] = mapped_column(String(16))  # ui | link | cli | drill
    comment: Mapped[str | None] = mapped_column(Text)
    at: Mapped[datetime]
    expires_at: Mapped[datetime | None]


class Publication(SideEffect, Base):
    """One approved statement on one platform (a thread: every part); done = published."""

    __tablename__ = "publications"
    __table_args__ = (UniqueConstraint("draft_id", "platform", name="uq_publication_draft_platform"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    incident_id: Mapped[int] = mapped_column(ForeignKey("incidents.id"))
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id"))
    platform: Mapped[str] = mapped_column(String(16))
    sha256: Mapped[str] = mapped_column(String(64))  # of the exact text posted on this platform
    approved_sha256: Mapped[str] = mapped_column(String(64))  # the draft hash the approvals bind
    remote_id: Mapped[str | None] = mapped_column(String(256))  # first post (the thread's root)
    url: Mapped[str | None] = mapped_column(String(512))
    part_ids: Mapped[list[Any]] = mapped_column(JSON, default=list)  # remote id per thread part, as posted


class AuditEvent(Base):
    __tablename__ = "audit_events"

    seq: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=False)
    at: Mapped[str] = mapped_column(String(40))  # ISO 8601 UTC exactly as hashed
    actor: Mapped[str] = mapped_column(String(128))
    action: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(256))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class DeadLetter(Base):
    """Input that failed validation (alerts, webhooks). Kept, never dropped."""

    __tablename__ = "dead_letters"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime]


class Alert(Base):
    """An accepted external alert (monitoring tool), stored before it becomes an event."""

    __tablename__ = "alerts"
    __table_args__ = (UniqueConstraint("source", "source_id", name="uq_alert_source_id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    source: Mapped[str] = mapped_column(String(64))
    source_id: Mapped[str] = mapped_column(String(256))
    brand: Mapped[str] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime]
    event_emitted_at: Mapped[datetime | None]
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))


class Engagement(SideEffect, Base):
    """One action on one mention (a reply, moving it to a private channel, hiding abuse, a
    deliberate skip), exactly once: the key is written before the platform call."""

    __tablename__ = "engagements"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    mention_id: Mapped[int] = mapped_column(ForeignKey("mentions.id"))
    incident_id: Mapped[int | None] = mapped_column(ForeignKey("incidents.id"))
    action: Mapped[str] = mapped_column(String(16))  # reply | private | hide | skip
    template: Mapped[str | None] = mapped_column(String(64))
    text: Mapped[str | None] = mapped_column(Text)
    reason: Mapped[str] = mapped_column(Text, default="")
    remote_id: Mapped[str | None] = mapped_column(String(256))


class ApprovalCode(Base):
    """A one-time code or signed-link nonce sent to one approver for one draft (HMAC only)."""

    __tablename__ = "approval_codes"
    __table_args__ = (Index("ix_approval_codes_lookup", "draft_id", "person", "kind"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id"))
    person: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(8))  # code | link
    secret_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
