"""Helpers the per-platform connector tests share."""

from __future__ import annotations

from typing import Any

import httpx


class LossyTransport(httpx.HTTPTransport):
    """Delivers the request, then 'loses' the response of the first `drops` calls whose
    "METHOD /path" ends with `match` (a path suffix, or a method and path)."""

    def __init__(self, match: str, drops: int = 1):
        super().__init__()
        self.match, self.drops = match, drops

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = super().handle_request(request)
        if self.drops and f"{request.method} {request.url.path}".endswith(self.match):
            self.drops -= 1
            resp.read()
            resp.close()
            raise httpx.ReadTimeout("response lost", request=request)
        return resp


def drain(conn: Any, stream: str, since: str | None, limit: int = 10,
          cursor: str | None = None) -> tuple[list[Any], str | None, int]:
    """Read a stream to its end: (mentions, new high-water mark, pages read)."""
    out: list[Any] = []
    pages = 0
    while True:
        page = conn.fetch_mentions(stream, since=since, cursor=cursor, limit=limit)
        out.extend(page.mentions)
        pages += 1
        if page.next_cursor is None:
            return out, page.high_water, pages
        cursor = page.next_cursor
