"""Small wire helpers every platform module shares: opaque resumable cursors and ISO times."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timezone
from typing import Any

from firebreak.errors import RejectedRequest


def encode_cursor(state: dict[str, Any]) -> str:
    """A drain's resume point as an opaque, URL-safe string the ingest task can persist."""
    return base64.urlsafe_b64encode(json.dumps(state, separators=(",", ":")).encode()).decode().rstrip("=")


def decode_cursor(platform: str, cursor: str) -> dict[str, Any]:
    try:
        state = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except ValueError as exc:
        raise RejectedRequest(platform, f"unreadable cursor: {exc}") from exc
    if not isinstance(state, dict):
        raise RejectedRequest(platform, "unreadable cursor")
    return state


def parse_time(value: str | None) -> datetime:
    """ISO 8601 (with Z) to an aware UTC datetime; a missing time means now."""
    if not value:
        return datetime.now(timezone.utc)
    dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return dt.replace(tzinfo=timezone.utc) if dt.tzinfo is None else dt.astimezone(timezone.utc)
