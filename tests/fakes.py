"""In-memory stand-ins for a platform and a notifier, for stage tests without HTTP."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from firebreak.connectors.notify import Delivery, Message, Notifier
from firebreak.domain import MentionPage, Platform, PublishResult, ScheduledPost
from firebreak.errors import TransientError


class FakePlatform:
    """Implements the Connector interface's behaviour in memory, with crash points."""

    def __init__(self, platform: Platform, *, scheduling: bool = True):
        self.platform = platform
        self.supports_scheduling = scheduling
        self.streams = ("mentions",)
        self.posts: list[tuple[str, str, str]] = []  # (remote id, text, key)
        self.scheduled: dict[str, ScheduledPost] = {}
        self.held: set[str] = set()
        self.released: dict[str, datetime] = {}
        self.cancelled: set[str] = set()
        self.fail_after_send = 0  # publish: post, then raise as if the response was lost
        self.calls = 0

    def fetch_mentions(self, stream, *, since, cursor, limit=100):  # type: ignore[no-untyped-def]
        return MentionPage([], None, since)

    def publish(self, text: str, *, idempotency_key: str, reply_to: str | None = None) -> PublishResult:
        self.calls += 1
        rid = f"{self.platform.value}-{len(self.posts) + 1}"
        self.posts.append((rid, text, idempotency_key))
        if self.fail_after_send:
            self.fail_after_send -= 1
            raise TransientError(self.platform.value, "timed out after the write")
        return PublishResult(self.platform, rid)

    def find_published(self, text: str, *, idempotency_key: str, since: datetime) -> PublishResult | None:
        for rid, t, _key in self.posts:
            if t == text:
                return PublishResult(self.platform, rid)
        return None

    def list_scheduled(self) -> list[ScheduledPost]:
        return [p for pid, p in self.scheduled.items() if pid not in self.cancelled]

    def hold_scheduled(self, post: ScheduledPost) -> None:
        self.held.add(post.platform_id)

    def release_scheduled(self, post: ScheduledPost, when: datetime) -> ScheduledPost:
        self.held.discard(post.platform_id)
        self.released[post.platform_id] = when
        return post

    def cancel_scheduled(self, post: ScheduledPost) -> None:
        self.cancelled.add(post.platform_id)

    def close(self) -> None:
        pass


def scheduled(platform: Platform, pid: str, text: str, minutes: float, now: datetime | None = None) -> ScheduledPost:
    now = now or datetime.now(timezone.utc)
    return ScheduledPost(platform, pid, text, now + timedelta(minutes=minutes), ("https://img.example/a.jpg",))


class FakeNotifier(Notifier):
    def __init__(self, channel: str, fail: bool = False):
        self.channel = channel  # type: ignore[misc]
        self.sent: list[tuple[str, Message]] = []
        self.fail = fail

    def send(self, target: str, message: Message) -> Delivery:
        if self.fail:
            raise TransientError(self.channel, "down")
        self.sent.append((target, message))
        return Delivery(self.channel, target, datetime.now(timezone.utc))


def make_incident(db, playbook, *, severity: int = 1, origin: str = "mastodon", ctype: str = "product_safety"):  # type: ignore[no-untyped-def]
    from firebreak.store.models import Incident
    from firebreak.tasks.incident import playbook_hash

    now = datetime.now(timezone.utc)
    with db.session() as s:
        inc = Incident(brand=playbook.brand.id, status="open", type=ctype, severity=severity, origin_platform=origin,
                       languages=["en"], topics=["ember stove"], started_at=now, detected_at=now,
                       policy_snapshot={"playbook_sha256": playbook_hash(playbook),
                                        "escalation": playbook.escalation.model_dump(mode="json"),
                                        "approval": playbook.approval.model_dump(mode="json"),
                                        "groups": playbook.groups})
        s.add(inc)
    return inc
