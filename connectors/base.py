"""One interface for every platform. One small module per platform implements it.

Capabilities a platform lacks raise NotSupported (X has no scheduled posts). Nothing here
can delete a third party's content: `delete_own` only removes the brand's own records.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar

import httpx

from firebreak.config.settings import PlatformSettings
from firebreak.connectors.http import ApiClient
from firebreak.domain import MentionPage, Platform, PublishResult, ScheduledPost
from firebreak.errors import NotSupported


class Connector(ABC):
    platform: ClassVar[Platform]
    # Mention streams this platform offers, each with its own persisted cursor.
    streams: ClassVar[tuple[str, ...]] = ("mentions",)
    supports_scheduling: ClassVar[bool] = False
    supports_hiding: ClassVar[bool] = False
    # Character budget for one post; `count_graphemes` for Bluesky.
    max_length: ClassVar[int] = 280
    count_graphemes: ClassVar[bool] = False

    def __init__(
        self,
        settings: PlatformSettings,
        *,
        handle: str,
        account_id: str,
        keywords: list[str],
        transport: httpx.BaseTransport | None = None,
    ):
        self.settings = settings
        self.handle = handle
        self.account_id = settings.account_id or account_id
        self.keywords = keywords
        self.http = ApiClient(
            self.platform.value,
            settings.base_url,
            timeout_s=settings.timeout_s,
            auth=self.auth_headers,
            refresh_auth=self.refresh_auth,
            default_headers=self.default_headers(),
            transport=transport,
        )

    # -- auth ------------------------------------------------------------------------------
    def auth_headers(self) -> dict[str, str]:
        token = self.settings.token.get_secret_value()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def refresh_auth(self) -> None:
        """Called once after a 401. Platforms with refreshable sessions override it."""
        from firebreak.errors import AuthError

        raise AuthError(self.platform.value, "credentials refused and this platform has no refresh")

    def default_headers(self) -> dict[str, str]:
        return {"User-Agent": "firebreak/0.1"}

    # -- listening -------------------------------------------------------------------------
    @abstractmethod
    def fetch_mentions(self, stream: str, *, since: str | None, cursor: str | None, limit: int = 100) -> MentionPage:
        """One page of mentions newer than `since` (a high-water mark from an earlier drain).

        `cursor` continues a drain in progress. The last page of a drain has next_cursor None
        and carries the new high-water mark.
        """

    # -- publishing ------------------------------------------------------------------------
    @abstractmethod
    def publish(self, text: str, *, idempotency_key: str, reply_to: str | None = None) -> PublishResult:
        """Post `text` as the brand. Uses the platform's idempotency mechanism where it has one."""

    @abstractmethod
    def find_published(self, text: str, *, idempotency_key: str, since: datetime) -> PublishResult | None:
        """After a crash or an ambiguous failure: did a post with this key/text go out?"""

    # -- moderation ------------------------------------------------------------------------
    def hide(self, platform_id: str) -> None:
        """Hide a reply/comment (reversible). Deleting third-party content is not offered."""
        raise NotSupported(self.platform.value, "hiding replies is not supported")

    # -- scheduled posts -------------------------------------------------------------------
    def list_scheduled(self) -> list[ScheduledPost]:
        raise NotSupported(self.platform.value, "no scheduled posts on this platform")

    def hold_scheduled(self, post: ScheduledPost) -> None:
        """Stop a scheduled post from going out, keeping it restorable."""
        raise NotSupported(self.platform.value, "no scheduled posts on this platform")

    def release_scheduled(self, post: ScheduledPost, when: datetime) -> ScheduledPost:
        """Put a held post back on the schedule at `when` (now or later). Returns the new record."""
        raise NotSupported(self.platform.value, "no scheduled posts on this platform")

    def cancel_scheduled(self, post: ScheduledPost) -> None:
        raise NotSupported(self.platform.value, "no scheduled posts on this platform")

    def delete_own(self, platform_id: str) -> None:
        """Remove one of the brand's own posts (e.g. a post made by a compromised account).
        Implementations must refuse anything that is not the brand's own."""
        raise NotSupported(self.platform.value, "deleting own posts is not supported")

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> "Connector":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
