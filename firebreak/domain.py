"""Vendor-neutral value types shared by connectors, the store and the stages.

Connectors translate each platform's payloads into these; nothing above the connector
layer ever sees a vendor shape.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from enum import StrEnum


class Platform(StrEnum):
    X = "x"
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"
    LINKEDIN = "linkedin"
    MASTODON = "mastodon"
    BLUESKY = "bluesky"


ALL_PLATFORMS: tuple[Platform, ...] = tuple(Platform)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def as_utc(dt: datetime) -> datetime:
    """Databases (SQLite) hand back naive datetimes; everything in Firebreak is UTC."""
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def parts_sha256(parts: list[str]) -> str:
    """Hash of what one platform receives: one post, or the posts of a thread in order."""
    return sha256_text("\x1e".join(parts))


def variants_sha256(variants: dict[str, list[str]]) -> str:
    """One hash over every platform variant (each a list of thread parts), so an edit to
    any of them voids an approval."""
    h = hashlib.sha256()
    for platform in sorted(variants):
        h.update(platform.encode())
        h.update(b"\x00")
        h.update(parts_sha256(list(variants[platform])).encode())
        h.update(b"\x00")
    return h.hexdigest()


@dataclass(frozen=True, slots=True)
class Mention:
    """Something someone else said about or to the brand."""

    platform: Platform
    platform_id: str
    text: str
    created_at: datetime
    author: str = ""
    kind: str = "mention"  # mention | comment | reply
    url: str = ""
    lang_hint: str = ""  # the platform's own language tag, if any
    reply_to: str = ""  # platform id of the post this answers, if any
    author_followers: int = 0
    engagement: int = 0  # likes + shares + replies as the platform reports them


@dataclass(frozen=True, slots=True)
class MentionPage:
    mentions: list[Mention]
    # Opaque resume point: pass it back to continue where this page ended. None = caught up.
    next_cursor: str | None
    # High-water mark to persist once the whole stream is drained (e.g. newest id seen).
    high_water: str | None = None


@dataclass(frozen=True, slots=True)
class ScheduledPost:
    """A post the brand has queued for later, as the platform (or Firebreak's queue) records it."""

    platform: Platform
    platform_id: str
    text: str
    scheduled_at: datetime
    media: tuple[str, ...] = ()
    source: str = "platform"  # platform | firebreak


@dataclass(frozen=True, slots=True)
class PublishResult:
    platform: Platform
    remote_id: str
    url: str = ""
    published_at: datetime = field(default_factory=utcnow)
