"""Optional LLM provider: an OpenAI-compatible `POST {base_url}/v1/chat/completions`.

It only *proposes* text. The drafting stage checks every proposal with the same rules as
template output and falls back to the template when the provider is absent, slow, failing
or wrong (tasks/draft.py `propose_statement`), so nothing here needs to be clever about
recovery: one attempt, a short timeout, and a ConnectorError when anything is off.

The API key is a SecretStr that is turned into a header only inside the request; the
shared ApiClient scrubs it from error messages, and nothing here logs it.
"""

from __future__ import annotations

from typing import Any, Protocol

import httpx

from firebreak.config.logging import get_logger
from firebreak.config.settings import LLMSettings
from firebreak.connectors.http import ApiClient, CircuitBreaker
from firebreak.errors import ConnectorError

__all__ = ["ChatCompletionsProvider", "TextProvider", "build_llm"]

log = get_logger("firebreak.connectors.llm")
NAME = "llm"


class TextProvider(Protocol):
    """What drafting needs from a language model: one prompt in, one text out."""

    model: str

    def complete(self, system: str, user: str, *, max_tokens: int = 800) -> str: ...

    def close(self) -> None: ...


class ChatCompletionsProvider:
    def __init__(self, settings: LLMSettings, *, transport: httpx.BaseTransport | None = None):
        self.model = settings.model
        self._key = settings.api_key
        self._client = ApiClient(
            NAME,
            settings.base_url,
            timeout_s=settings.timeout_s,
            auth=self._auth if settings.api_key.get_secret_value() else None,
            transport=transport,
            # One attempt: a retry doubles the wait for text the template can give now.
            max_attempts=1,
            # A provider that keeps failing is skipped for a while instead of costing every
            # draft its full timeout before the fallback.
            breaker=CircuitBreaker(threshold=3, cooldown_s=60.0),
            max_concurrency=2,
        )

    def _auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key.get_secret_value()}"}

    def complete(self, system: str, user: str, *, max_tokens: int = 800) -> str:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
            # Low temperature: a crisis statement should be sober and reproducible.
            "temperature": 0.2,
            "max_tokens": max_tokens,
        }
        # Idempotent in effect (no side effect on the provider), but the client must not
        # retry it anyway (max_attempts=1); flagging it lets a 5xx surface as TransientError.
        resp = self._client.request("POST", "/v1/chat/completions", json=body, idempotent=True)
        try:
            data = resp.json()
            text = data["choices"][0]["message"]["content"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise ConnectorError(NAME, f"unexpected chat completion response ({exc.__class__.__name__})") from exc
        if not isinstance(text, str) or not text.strip():
            raise ConnectorError(NAME, "empty chat completion")
        log.debug(f"LLM proposed {len(text)} characters", model=self.model)
        return text.strip()

    def close(self) -> None:
        self._client.close()


def build_llm(settings: LLMSettings, *, transport: httpx.BaseTransport | None = None) -> TextProvider | None:
    """The configured provider, or None when no endpoint is set."""
    if not settings.enabled:
        return None
    return ChatCompletionsProvider(settings, transport=transport)
