from __future__ import annotations

import pytest

from firebreak.config.settings import Settings
from firebreak.domain import Platform


def test_env_prefix_nesting_and_secrets(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("FIREBREAK_X__TOKEN", "sentinel-token-xyz")
    monkeypatch.setenv("FIREBREAK_SMTP__PORT", "2525")
    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(tmp_path))
    s = Settings()
    assert s.x.token.get_secret_value() == "sentinel-token-xyz"
    assert "sentinel-token-xyz" not in repr(s) and "sentinel-token-xyz" not in s.model_dump_json()
    assert s.smtp.port == 2525
    assert s.resolved_database_url.endswith("firebreak.db")


def test_sandbox_url_redirects_every_platform() -> None:
    s = Settings(sandbox_url="http://127.0.0.1:9999/")
    assert s.platform(Platform.MASTODON).base_url == "http://127.0.0.1:9999/mastodon"
    assert Settings().platform("x").base_url == "https://api.x.com"
