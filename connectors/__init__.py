"""Platform connectors, notifiers, the shared HTTP client and the sandbox.

The stages ask `build_connector(platform, settings, playbook)` for a platform and see only
the Connector interface (connectors/base.py); vendor shapes never leave this package.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

import httpx

from firebreak.domain import Platform

if TYPE_CHECKING:
    from firebreak.config.playbook import Playbook
    from firebreak.config.settings import Settings
    from firebreak.connectors.base import Connector

# platform -> "module:Class" under firebreak.connectors
REGISTRY: dict[Platform, str] = {
    Platform.X: "x:XConnector",
    Platform.FACEBOOK: "facebook:FacebookConnector",
    Platform.INSTAGRAM: "instagram:InstagramConnector",
    Platform.LINKEDIN: "linkedin:LinkedInConnector",
    Platform.MASTODON: "mastodon:MastodonConnector",
    Platform.BLUESKY: "bluesky:BlueskyConnector",
}


def connector_class(platform: Platform | str) -> type["Connector"]:
    module, cls = REGISTRY[Platform(platform)].split(":")
    return getattr(importlib.import_module(f"firebreak.connectors.{module}"), cls)


def build_connector(platform: Platform | str, settings: "Settings", playbook: "Playbook", *,
                    transport: httpx.BaseTransport | None = None) -> "Connector":
    p = Platform(platform)
    account = playbook.brand.accounts[p]
    return connector_class(p)(
        settings.platform(p),
        handle=account.handle,
        account_id=account.id,
        keywords=list(playbook.brand.keywords),
        transport=transport,
    )
