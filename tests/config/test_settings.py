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


def test_logs_are_sentences_for_every_handler_and_never_show_secrets() -> None:
    """Our own handler writes JSON (or console lines); any other handler on the `firebreak`
    logger, Prefect's run-log handler among them, reads a sentence with its context, not a
    Python dict, and a secret in either is masked."""
    import io
    import logging

    from firebreak.config.logging import configure_logging, get_logger

    configure_logging("INFO", "json")
    buf = io.StringIO()
    other = logging.StreamHandler(buf)
    other.setFormatter(logging.Formatter("%(message)s"))
    root = logging.getLogger("firebreak")
    root.addHandler(other)
    try:
        get_logger("firebreak.tasks.escalate").info("Paged level 1 (round 1): maria, tomas", incident_id=4,
                                                    token="s3cret-t0ken")
    finally:
        root.removeHandler(other)
    line = buf.getvalue().strip()
    assert line == "Paged level 1 (round 1): maria, tomas (incident_id=4, token=**********)"
    assert "{" not in line and "s3cret" not in line
