"""Facebook Page connector (Graph API, specs/meta-graph/Page.json, PagePost.json, Comment.json).

Endpoints:
- comments on the page's posts: `GET /{page-id}/published_posts` (newest first), then
  `GET /{post-id}/comments?filter=stream&order=reverse_chronological&since=…` (replies included);
- page mentions: `GET /{page-id}/tagged` (posts by others that tag the page);
- publish: `POST /{page-id}/feed` (`message`), replies `POST /{object-id}/comments`;
  Graph has no idempotency key, so `find_published` looks for the exact text in
  `GET /{page-id}/published_posts`, and a "Duplicate status message" (code 506) on a
  resend is answered with the post that is already there;
- hide a comment: `POST /{comment-id}` `is_hidden=true` (reversible; never DELETE);
- scheduled posts: `GET /{page-id}/scheduled_posts`; hold/release through `POST /{post-id}`
  with `scheduled_publish_time` / `is_published` (the two updatable fields PagePost.json
  declares for this); cancel `DELETE /{post-id}` only after checking the post is the
  page's own unpublished post.

Hold design: Graph has no "pause". A held post is moved to `scheduled_publish_time = now +
HOLD_DAYS` (Meta accepts up to ~30 days ahead), so it cannot go out during the crisis and
keeps its id, text and media; the original time is in the ScheduledPost the freeze records,
and `release_scheduled` puts it back at the time resolve chooses (or publishes it now when
that time is too close for Graph to schedule). The residual risk: a hold nobody releases
goes out after HOLD_DAYS; the freeze record makes that visible.

The token travels as a bearer header (Graph accepts it), never as `access_token=` in a URL
that would land in request logs.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from firebreak.connectors._graph import GraphConnector, Watermark, parse_time

from firebreak.domain import Mention, Platform, PublishResult, ScheduledPost, utcnow
from firebreak.errors import RejectedRequest

HOLD_DAYS = 29


class FacebookConnector(GraphConnector):
    platform: ClassVar[Platform] = Platform.FACEBOOK
    streams: ClassVar[tuple[str, ...]] = ("comments", "tagged")
    supports_scheduling: ClassVar[bool] = True
    supports_hiding: ClassVar[bool] = True
    max_length: ClassVar[int] = 63206

    posts_edge = "published_posts"
    post_fields = ("id", "created_time", "permalink_url")
    comment_fields = ("id", "message", "created_time", "from", "like_count", "comment_count",
                      "permalink_url", "parent", "is_hidden")
    mention_edge = "tagged"
    mention_fields = ("id", "message", "created_time", "from", "permalink_url", "shares")
    comments_newest_first = True
    scheduled_fields = ("id", "message", "scheduled_publish_time", "created_time", "is_published", "full_picture")

    # -- listening -------------------------------------------------------------------------
    def comment_params(self, since: Watermark | None) -> dict[str, Any]:
        params: dict[str, Any] = {"filter": "stream", "order": "reverse_chronological"}
        if since is not None:
            params["since"] = since.start // 1000  # Graph takes Unix seconds; the window re-checks
        return params

    def map_comment(self, item: dict[str, Any], post_id: str) -> Mention | None:
        engagement = int(item.get("like_count") or 0) + int(item.get("comment_count") or 0)
        return self._mention(item, "comment", engagement, reply_to=post_id)

    def map_mention(self, item: dict[str, Any]) -> Mention | None:
        return self._mention(item, "mention", int((item.get("shares") or {}).get("count") or 0))

    def _mention(self, item: dict[str, Any], kind: str, engagement: int, *, reply_to: str = "") -> Mention | None:
        author = item.get("from") or {}
        if str(author.get("id", "")) == self.account_id:
            return None  # the page's own posts and replies are not mentions
        return Mention(
            platform=self.platform,
            platform_id=str(item["id"]),
            text=item.get("message", ""),
            created_at=parse_time(item.get("created_time")),
            author=author.get("name") or str(author.get("id", "")),
            kind=kind,
            url=item.get("permalink_url") or f"https://www.facebook.com/{item['id']}",
            reply_to=reply_to,
            engagement=engagement,
        )

    # -- publishing ------------------------------------------------------------------------
    def publish(self, text: str, *, idempotency_key: str, reply_to: str | None = None) -> PublishResult:
        path = f"{reply_to}/comments" if reply_to else f"{self.account_id}/feed"
        try:
            body = self.http.request("POST", path, data={"message": text}).json()
        except RejectedRequest as exc:
            # 506 "Duplicate status message" (mapped to 409): an earlier attempt got through.
            # Graph only refuses duplicates of recent posts, so the newest match is the one;
            # no `since` from our clock, which need not agree with the server's (drills).
            if exc.status == 409 and not reply_to:
                found = self._find_text(text, since=None, max_pages=2)
                if found is not None:
                    return found
            raise
        remote_id = str(body["id"])
        return PublishResult(self.platform, remote_id, f"https://www.facebook.com/{remote_id}")

    def find_published(self, text: str, *, idempotency_key: str, since: datetime) -> PublishResult | None:
        return self._find_text(text, since=since)

    def _find_text(self, text: str, *, since: datetime | None, max_pages: int = 20) -> PublishResult | None:
        for post in self.iter_edge(f"{self.account_id}/published_posts",
                                   ("id", "message", "created_time", "permalink_url"), max_pages=max_pages):
            created = parse_time(post.get("created_time"))
            if since is not None and created < since:
                return None  # newest first: nothing older can match
            if post.get("message") == text:
                return PublishResult(self.platform, str(post["id"]),
                                     post.get("permalink_url") or f"https://www.facebook.com/{post['id']}", created)
        return None

    # -- moderation ------------------------------------------------------------------------
    def hide(self, platform_id: str) -> None:
        # Setting a value is idempotent, so a lost answer may simply be retried.
        self.http.request("POST", platform_id, data={"is_hidden": "true"}, idempotent=True)

    # -- scheduled posts -------------------------------------------------------------------
    def list_scheduled(self) -> list[ScheduledPost]:
        out = []
        for item in self.iter_edge(f"{self.account_id}/scheduled_posts", self.scheduled_fields):
            when = item.get("scheduled_publish_time")
            out.append(ScheduledPost(
                platform=self.platform,
                platform_id=str(item["id"]),
                text=item.get("message", ""),
                scheduled_at=datetime.fromtimestamp(float(when), UTC) if when else parse_time(None),
                media=(item["full_picture"],) if item.get("full_picture") else (),
            ))
        return out

    def hold_scheduled(self, post: ScheduledPost) -> None:
        self._check_own_unpublished(post.platform_id)
        until = int((utcnow() + timedelta(days=HOLD_DAYS)).timestamp())
        self.http.request("POST", post.platform_id, data={"scheduled_publish_time": str(until)}, idempotent=True)

    def release_scheduled(self, post: ScheduledPost, when: datetime) -> ScheduledPost:
        self._check_own_unpublished(post.platform_id)
        try:
            self.http.request("POST", post.platform_id,
                              data={"scheduled_publish_time": str(int(when.timestamp()))}, idempotent=True)
            return ScheduledPost(self.platform, post.platform_id, post.text, when, post.media, post.source)
        except RejectedRequest as exc:
            # Graph schedules no closer than ~10 minutes ahead (by its own clock, not ours):
            # a time it refuses as too soon or past means "now".
            if "scheduled publish time" not in str(exc).lower():
                raise
        self.http.request("POST", post.platform_id, data={"is_published": "true"})
        return ScheduledPost(self.platform, post.platform_id, post.text, when, post.media, post.source)

    def cancel_scheduled(self, post: ScheduledPost) -> None:
        self._check_own_unpublished(post.platform_id)
        self.http.request("DELETE", post.platform_id)

    def delete_own(self, platform_id: str) -> None:
        """Delete one of the page's own posts or replies (e.g. made by a compromised account).
        The author is checked first, so a third party's content can never be deleted."""
        node = self.http.get_json(platform_id, params={"fields": "id,from"})
        if str((node.get("from") or {}).get("id", "")) != self.account_id:
            raise RejectedRequest(self.platform.value, f"{platform_id} is not the page's own; Firebreak never "
                                                       "deletes third-party content")
        self.http.request("DELETE", platform_id)

    def _check_own_unpublished(self, post_id: str) -> None:
        """Scheduled-post operations touch only the page's own unpublished posts, so that a
        mistaken id can never reschedule or delete anyone else's content. A post that went
        out between listing and holding lands here too: a per-post failure the freeze
        records (RejectedRequest is a ConnectorError), not a crash."""
        # Looked up on the page's own scheduled_posts edge rather than by asking the node for
        # `is_published`: the id may be a comment, and a Comment has no such field (Graph
        # answers that with error #100, and the request would not fit Meta's spec).
        for item in self.iter_edge(f"{self.account_id}/scheduled_posts", ("id",)):
            if str(item.get("id")) == post_id:
                return
        raise RejectedRequest(self.platform.value, f"{post_id} is not an unpublished post of page {self.account_id}")
