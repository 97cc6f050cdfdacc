"""One interface for every platform. One small module per platform implements it.

Capabilities a platform lacks raise NotSupported (X has no scheduled posts). Nothing here
can delete a third party's content: `delete_own` only removes the brand's own records.
"""

from __future__ import annotations

import base64
from abc import ABC, abstractmethod
from datetime import datetime
from typing import ClassVar

import httpx
from pydantic import SecretStr

from firebreak.config.settings import PlatformSettings
from firebreak.connectors.http import ApiClient
from firebreak.domain import MentionPage, Platform, PublishResult, ScheduledPost
from firebreak.config.logging import get_logger
from firebreak.errors import AuthError, NotSupported, RejectedRequest

log = get_logger("firebreak.connectors")


def _secret(settings: PlatformSettings, name: str) -> str:
    """An optional SecretStr field of the settings ('' when the field does not exist)."""
    value = getattr(settings, name, None)
    if isinstance(value, SecretStr):
        return value.get_secret_value()
    return ""


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
        # Refreshed OAuth 2 credentials live here, in memory only; settings stay as loaded.
        self._access_token: str | None = None
        self._refresh_token: str | None = None
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
            max_concurrency=settings.max_concurrency,
        )

    # -- auth ------------------------------------------------------------------------------
    # OAuth 2 refresh endpoint (refresh_token grant); "" = this platform has none. Relative
    # URLs are on the platform's base URL; `token_url` in the settings overrides it.
    oauth_token_url: ClassVar[str] = ""
    # RFC 6749 §2.3.1 allows the client secret in the body or as HTTP Basic; X wants Basic.
    oauth_basic_auth: ClassVar[bool] = False

    def auth_headers(self) -> dict[str, str]:
        token = self._access_token or self.settings.token.get_secret_value()
        return {"Authorization": f"Bearer {token}"} if token else {}

    def refresh_auth(self) -> None:
        """Called once after a 401: an OAuth 2 refresh when the settings carry a refresh token
        (optional fields `refresh_token`, `client_id`, `client_secret`, `token_url`).
        Platforms with their own sessions (Bluesky) override it."""
        refresh = self._refresh_token or _secret(self.settings, "refresh_token")
        client_id = str(getattr(self.settings, "client_id", "") or "")
        url = str(getattr(self.settings, "token_url", "") or "") or self.oauth_token_url
        if not (refresh and client_id and url):
            raise AuthError(self.platform.value, "credentials refused and no OAuth refresh token is configured")
        data = {"grant_type": "refresh_token", "refresh_token": refresh, "client_id": client_id}
        headers: dict[str, str] = {}
        secret = _secret(self.settings, "client_secret")
        if secret and self.oauth_basic_auth:
            raw = base64.b64encode(f"{client_id}:{secret}".encode()).decode()
            headers["Authorization"] = f"Basic {raw}"
        elif secret:
            data["client_secret"] = secret
        try:
            # Not idempotent: refresh tokens rotate, so a lost answer is not resent (it would
            # present a spent token); the next 401 starts over.
            body = self.http.request("POST", url, data=data, headers=headers, authenticated=False).json()
        except (AuthError, RejectedRequest) as exc:
            raise AuthError(self.platform.value, f"OAuth refresh refused ({exc.status}); re-authorise the app",
                            status=exc.status) from None  # `from None`: the cause may quote the form
        token = body.get("access_token") if isinstance(body, dict) else None
        if not isinstance(token, str) or not token:
            raise AuthError(self.platform.value, "OAuth refresh answered without an access_token")
        self._access_token = token
        if isinstance(body.get("refresh_token"), str) and body["refresh_token"]:
            self._refresh_token = body["refresh_token"]  # rotated: the old one is spent
        log.info(f"{self.platform.value}: access token refreshed", expires_in=body.get("expires_in"))

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
