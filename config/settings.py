"""Runtime settings from the environment (prefix FIREBREAK_) and an optional .env file.

Nested groups use a double underscore: FIREBREAK_X__BASE_URL, FIREBREAK_SMTP__HOST.
Secrets are SecretStr so that printing settings, logging them or putting them in an
audit payload never reveals them.
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import BaseModel, Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from firebreak.domain import Platform

DEFAULT_PLAYBOOK = Path(__file__).with_name("playbook.default.yaml")


class PlatformSettings(BaseModel):
    base_url: str
    token: SecretStr = SecretStr("")
    account_id: str = ""  # page id, IG user id, org URN, handle…
    password: SecretStr = SecretStr("")  # Bluesky app password
    # OAuth 2 refresh (X, LinkedIn): used once after a 401.
    refresh_token: SecretStr = SecretStr("")
    client_id: str = ""
    client_secret: SecretStr = SecretStr("")
    token_url: str = ""
    timeout_s: float = 10.0
    max_concurrency: int = 4


# One class per platform so that setting one field from the environment
# (FIREBREAK_X__TOKEN) keeps the others' defaults.
class XSettings(PlatformSettings):
    base_url: str = "https://api.x.com"


class FacebookSettings(PlatformSettings):
    base_url: str = "https://graph.facebook.com/v21.0"


class InstagramSettings(PlatformSettings):
    base_url: str = "https://graph.facebook.com/v21.0"


class LinkedInSettings(PlatformSettings):
    base_url: str = "https://api.linkedin.com"


class MastodonSettings(PlatformSettings):
    base_url: str = "https://mastodon.social"


class BlueskySettings(PlatformSettings):
    base_url: str = "https://bsky.social"


class SmtpSettings(BaseModel):
    host: str = "127.0.0.1"
    port: int = 25
    username: str = ""
    password: SecretStr = SecretStr("")
    sender: str = "firebreak@localhost"
    starttls: bool = False
    timeout_s: float = 10.0


class LLMSettings(BaseModel):
    """An optional OpenAI-compatible endpoint that proposes statement text. Empty base_url:
    no provider, templates only (the default: nothing leaves for a third party unasked)."""

    base_url: str = ""
    api_key: SecretStr = SecretStr("")
    model: str = "gpt-4o-mini"
    # Short on purpose: a statement is due within minutes and the template is ready now.
    timeout_s: float = 8.0

    @property
    def enabled(self) -> bool:
        return bool(self.base_url.strip())


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="FIREBREAK_",
        env_nested_delimiter="__",
        env_file=".env",
        extra="ignore",
    )

    data_dir: Path = Path(".firebreak")
    database_url: str = ""  # empty: SQLite file in data_dir
    playbook: Path = DEFAULT_PLAYBOOK

    # When set, every platform connector talks to this sandbox instead of the real hosts.
    sandbox_url: str = ""

    x: XSettings = Field(default_factory=XSettings)
    facebook: FacebookSettings = Field(default_factory=FacebookSettings)
    instagram: InstagramSettings = Field(default_factory=InstagramSettings)
    linkedin: LinkedInSettings = Field(default_factory=LinkedInSettings)
    mastodon: MastodonSettings = Field(default_factory=MastodonSettings)
    bluesky: BlueskySettings = Field(default_factory=BlueskySettings)

    llm: LLMSettings = Field(default_factory=LLMSettings)

    slack_webhook_url: SecretStr = SecretStr("")
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    # Other paging channels (through Apprise); a channel with no credentials is not offered.
    teams_webhook_url: SecretStr = SecretStr("")
    twilio_account_sid: str = ""
    twilio_auth_token: SecretStr = SecretStr("")
    twilio_from_number: str = ""
    pagerduty_routing_key: SecretStr = SecretStr("")
    pagerduty_api_key: SecretStr = SecretStr("")
    opsgenie_api_key: SecretStr = SecretStr("")
    # Alert intake (`POST /alerts`): bearer token and HMAC key.
    intake_token: SecretStr = SecretStr("")
    intake_hmac_key: SecretStr = SecretStr("")

    # Signs approval links and one-time codes. Empty: a random key is generated and kept in data_dir.
    signing_key: SecretStr = SecretStr("")
    # The CLI approver's personal key (`firebreak approve --as NAME`), issued by `firebreak keys issue NAME`.
    approver_key: SecretStr = SecretStr("")
    # Where approvers reach Firebreak's web pages (approval links, crisis page).
    public_url: str = "http://127.0.0.1:8788"
    web_host: str = "127.0.0.1"
    web_port: int = 8788

    # Take a slot of the Prefect global concurrency limit `platform-<name>` around each
    # platform drain, so a platform's limits hold across every worker (flows/limits.py).
    # Needs the limits on the server (`firebreak limits apply`); off for the embedded server.
    platform_limits: bool = False
    platform_limit_timeout_s: float = 600.0

    log_format: str = "auto"  # auto | json | console
    log_level: str = "INFO"

    def platform(self, platform: Platform | str) -> PlatformSettings:
        p = Platform(platform)
        cfg: PlatformSettings = getattr(self, p.value)
        if self.sandbox_url:
            cfg = cfg.model_copy(update={"base_url": f"{self.sandbox_url.rstrip('/')}/{p.value}"})
        return cfg

    @property
    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{(self.data_dir / 'firebreak.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
