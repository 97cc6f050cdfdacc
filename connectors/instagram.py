"""Instagram connector (Instagram Graph API; specs/meta-graph/IGUser.json, IGMedia.json, IGComment.json).

Endpoints:
- comments on the brand's media: `GET /{ig-user-id}/media` (newest first), then
  `GET /{ig-media-id}/comments` (the edge takes no `since`, so the window filter runs here);
- mentions: `GET /{ig-user-id}/tags` (media in which others tagged the brand). Caption and
  comment @mentions are only delivered by webhook (`mentioned_media` / `mentioned_comment`
  need the media/comment id the webhook carries), so polling cannot list them;
- publish: container `POST /{ig-user-id}/media` (`image_url`, `caption`), then
  `POST /{ig-user-id}/media_publish` (`creation_id`); replies `POST /{ig-comment-id}/replies`.
  No idempotency key: `find_published` matches the caption in `GET /{ig-user-id}/media`;
- hide a comment: `POST /{ig-comment-id}` `hide=true` (reversible; never DELETE).

Scheduling: IGUser.json declares only a read edge (`GET scheduled_media`, whose return type is
not in the spec) and no way to create, move or pause a scheduled media. Hold/release are
therefore impossible through the API and every scheduled-post operation raises NotSupported;
Instagram scheduling goes through Firebreak's own queue.

A statement on Instagram needs an image: the connector publishes a "statement card" at
`statement_image_url`, by default `DEFAULT_STATEMENT_CARD` (the demo brand's site). This is a
stop-gap constant: the playbook should carry the card URL (see the report to the lead).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, ClassVar

import httpx
from firebreak.config.settings import PlatformSettings
from firebreak.connectors._graph import GraphConnector, parse_time

from firebreak.domain import Mention, Platform, PublishResult
from firebreak.errors import ConnectorError, RejectedRequest

DEFAULT_STATEMENT_CARD = "https://fjell.example/statement.png"


class InstagramConnector(GraphConnector):
    platform: ClassVar[Platform] = Platform.INSTAGRAM
    streams: ClassVar[tuple[str, ...]] = ("comments", "tags")
    supports_scheduling: ClassVar[bool] = False
    supports_hiding: ClassVar[bool] = True
    max_length: ClassVar[int] = 2200  # caption limit

    posts_edge = "media"
    post_fields = ("id", "timestamp", "permalink")
    comment_fields = ("id", "text", "timestamp", "username", "from", "like_count", "parent_id", "hidden")
    mention_edge = "tags"
    mention_fields = ("id", "caption", "timestamp", "username", "permalink", "like_count", "comments_count")

    def __init__(self, settings: PlatformSettings, *, handle: str, account_id: str, keywords: list[str],
                 transport: httpx.BaseTransport | None = None, statement_image_url: str = DEFAULT_STATEMENT_CARD):
        super().__init__(settings, handle=handle, account_id=account_id, keywords=keywords, transport=transport)
        self.statement_image_url = statement_image_url

    # -- listening -------------------------------------------------------------------------
    def map_comment(self, item: dict[str, Any], post_id: str) -> Mention | None:
        author = item.get("from") or {}
        if str(author.get("id", "")) == self.account_id or item.get("username") == self.handle:
            return None  # the brand's own replies
        return Mention(
            platform=self.platform,
            platform_id=str(item["id"]),
            text=item.get("text", ""),
            created_at=parse_time(item.get("timestamp")),
            author=item.get("username") or author.get("username") or str(author.get("id", "")),
            kind="comment",
            # Instagram has no comment permalinks; the media's is the closest a human can open.
            url="",
            reply_to=post_id,
            engagement=int(item.get("like_count") or 0),
        )

    def map_mention(self, item: dict[str, Any]) -> Mention | None:
        return Mention(
            platform=self.platform,
            platform_id=str(item["id"]),
            text=item.get("caption", ""),
            created_at=parse_time(item.get("timestamp")),
            author=item.get("username", ""),
            kind="mention",
            url=item.get("permalink", ""),
            engagement=int(item.get("like_count") or 0) + int(item.get("comments_count") or 0),
        )

    # -- publishing ------------------------------------------------------------------------
    def publish(self, text: str, *, idempotency_key: str, reply_to: str | None = None) -> PublishResult:
        if reply_to:
            body = self.http.request("POST", f"{reply_to}/replies", data={"message": text}).json()
            return PublishResult(self.platform, str(body["id"]))
        # A container that never gets published is harmless (it expires after 24 h), so the
        # container step may be repeated; only media_publish makes the post visible.
        container = self.http.request("POST", f"{self.account_id}/media",
                                      data={"image_url": self.statement_image_url, "caption": text}).json()
        media = self.http.request("POST", f"{self.account_id}/media_publish",
                                  data={"creation_id": str(container["id"])}).json()
        media_id = str(media["id"])
        permalink = ""
        try:
            permalink = self.http.get_json(media_id, params={"fields": "permalink"}).get("permalink", "")
        except ConnectorError:  # the post is out: a missing permalink must not turn success into failure
            permalink = ""
        return PublishResult(self.platform, media_id, permalink)

    def find_published(self, text: str, *, idempotency_key: str, since: datetime) -> PublishResult | None:
        for media in self.iter_edge(f"{self.account_id}/media", ("id", "caption", "timestamp", "permalink")):
            created = parse_time(media.get("timestamp"))
            if created < since:
                return None
            if media.get("caption") == text:
                return PublishResult(self.platform, str(media["id"]), media.get("permalink", ""), created)
        return None

    # -- moderation ------------------------------------------------------------------------
    def hide(self, platform_id: str) -> None:
        self.http.request("POST", platform_id, data={"hide": "true"}, idempotent=True)  # setting a value: safe to retry

    def delete_own(self, platform_id: str) -> None:
        """Delete one of the brand's own media. The owner is checked first; comments, including
        other people's, are never deleted (hide them instead)."""
        # Looked up among the account's own media instead of asking the node for `owner`:
        # the id may be a comment, which has no `owner` field (Graph error #100).
        if not any(str(m.get("id")) == platform_id for m in self.iter_edge(f"{self.account_id}/media", ("id",))):
            raise RejectedRequest(self.platform.value, f"{platform_id} is not the brand's own media; Firebreak "
                                                       "never deletes third-party content")
        self.http.request("DELETE", platform_id)
