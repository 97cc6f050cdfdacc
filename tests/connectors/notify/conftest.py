"""Fixtures of the notifier tests: a real SMTP mailbox, and a loopback receiver for the
vendor hosts the Apprise adapters post to."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from firebreak.drill.mailbox import Mailbox
from tests.connectors.notify.helpers import RawReceiver


@pytest.fixture
def mailbox() -> Iterator[Mailbox]:
    with Mailbox() as box:
        yield box


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[RawReceiver]:
    """Apprise's plugins post to fixed vendor hosts (https://api.twilio.com, events.pagerduty.com,
    api.opsgenie.com, the Workflows host) with `requests.post`. The seam: every such post is
    sent for real, over HTTP, to this loopback receiver, with the vendor host kept in a header."""
    import requests

    rx = RawReceiver()
    real_post = requests.Session.post

    def to_loopback(url: str, *args: Any, **kwargs: Any) -> Any:
        from urllib.parse import urlsplit

        parts = urlsplit(url)
        headers = dict(kwargs.pop("headers", None) or {})
        headers["X-Original-Host"] = parts.netloc
        kwargs.pop("verify", None)
        local = rx.base + parts.path + (f"?{parts.query}" if parts.query else "")
        with requests.Session() as s:
            return real_post(s, local, *args, headers=headers, **kwargs)

    monkeypatch.setattr(requests, "post", to_loopback)
    yield rx
    rx.close()
