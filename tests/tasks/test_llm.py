"""The optional LLM provider against a fake OpenAI-compatible endpoint on loopback: a good
answer is used; slow, failing or non-compliant answers fall back to the template; the API
key never shows up in logs, errors or settings output."""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from pydantic import SecretStr
from structlog.testing import capture_logs

from firebreak.config.playbook import Playbook
from firebreak.config.settings import LLMSettings, Settings
from firebreak.connectors.llm import build_llm
from firebreak.errors import TransientError
from firebreak.tasks.draft import StatementFacts, draft_statement, propose_statement

API_KEY = "sk-test-7f3a9c2e5b1d4e8f"
FACTS = StatementFacts(crisis_type="product_safety", severity=1, topic="ember stove burns",
                       known=("Some Ember stoves overheated",), next_update_minutes=30)
GOOD = ("We are sorry: some Ember stoves overheated and we are looking into it. Please stop using yours "
        "for now. Next update in 30 minutes: https://fjell.example/status")


class FakeLLM:
    """A tiny OpenAI-compatible server. `reply(request_body) -> (status, text, delay_s)`."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.auth: list[str] = []
        self.status = 200
        self.text = GOOD
        self.delay_s = 0.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append({"path": self.path, "body": body})
                fake.auth.append(self.headers.get("Authorization", ""))
                time.sleep(fake.delay_s)
                if fake.status != 200:
                    # Echo the key, as a careless proxy might: it must still not leak.
                    payload = {"error": {"message": f"internal error for {self.headers.get('Authorization')}"}}
                else:
                    payload = {"id": "c1", "object": "chat.completion",
                               "choices": [{"index": 0, "message": {"role": "assistant", "content": fake.text},
                                            "finish_reason": "stop"}]}
                data = json.dumps(payload).encode()
                try:
                    self.send_response(fake.status)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test): nothing left to answer

            def log_message(self, *args: Any) -> None:
                pass  # keep the test output clean

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake() -> Iterator[FakeLLM]:
    f = FakeLLM()
    yield f
    f.close()


def _settings(fake: FakeLLM, timeout_s: float = 2.0) -> LLMSettings:
    return LLMSettings(base_url=fake.url, api_key=SecretStr(API_KEY), model="fake-1", timeout_s=timeout_s)


def _propose(playbook: Playbook, fake: FakeLLM, **kw: Any):  # type: ignore[no-untyped-def]
    llm = build_llm(_settings(fake, **kw))
    assert llm is not None
    try:
        return propose_statement(playbook, "holding", FACTS, llm)
    finally:
        llm.close()


def test_absent_provider_uses_the_template(playbook: Playbook) -> None:
    assert build_llm(LLMSettings()) is None
    p = propose_statement(playbook, "holding", FACTS, None)
    assert p.source == "template" and p.variants == draft_statement(playbook, "holding", FACTS)


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FIREBREAK_LLM__BASE_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("FIREBREAK_LLM__API_KEY", API_KEY)
    monkeypatch.setenv("FIREBREAK_LLM__MODEL", "m")
    monkeypatch.setenv("FIREBREAK_LLM__TIMEOUT_S", "3.5")
    s = Settings()
    assert s.llm.enabled and s.llm.model == "m" and s.llm.timeout_s == 3.5
    assert s.llm.api_key.get_secret_value() == API_KEY
    assert API_KEY not in repr(s) and API_KEY not in s.model_dump_json()


def test_good_answer_is_used(playbook: Playbook, fake: FakeLLM) -> None:
    p = _propose(playbook, fake)
    assert p.source == "llm", p.fallback_reason
    assert set(p.variants) == {pl.value for pl in playbook.publish_order}
    assert all(parts == [GOOD] for parts in p.variants.values())
    # One request per platform variant, to the OpenAI path, with the key and the facts.
    assert len(fake.requests) == len(playbook.publish_order)
    assert {r["path"] for r in fake.requests} == {"/v1/chat/completions"}
    assert set(fake.auth) == {f"Bearer {API_KEY}"}
    prompt = fake.requests[0]["body"]["messages"]
    assert "Some Ember stoves overheated" in prompt[1]["content"]
    assert "280" in prompt[0]["content"] and "apologise" in prompt[0]["content"]
    assert fake.requests[0]["body"]["model"] == "fake-1"


def test_slow_provider_falls_back(playbook: Playbook, fake: FakeLLM) -> None:
    fake.delay_s = 1.5
    t0 = time.monotonic()
    p = _propose(playbook, fake, timeout_s=0.4)
    assert p.source == "template" and "timed out" in p.fallback_reason
    assert p.variants == draft_statement(playbook, "holding", FACTS)
    # The first timeout ends the attempt: we do not wait once per platform.
    assert time.monotonic() - t0 < 1.4


def test_server_error_falls_back_without_leaking_the_key(playbook: Playbook, fake: FakeLLM,
                                                         caplog: pytest.LogCaptureFixture) -> None:
    fake.status = 500
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        p = _propose(playbook, fake)
    assert p.source == "template" and "500" in p.fallback_reason
    assert len(fake.requests) == 1  # no retry: the template is ready now
    assert API_KEY not in p.fallback_reason
    assert API_KEY not in json.dumps(logs, default=str)
    assert API_KEY not in caplog.text


@pytest.mark.parametrize("text,why", [
    (GOOD + " This is fake news.", "banned phrase"),
    ("We are sorry. " + "We are looking into reports about the Ember stove. " * 12, "limit"),
    ("We are sorry: 14 people were hurt by Ember stoves on 3 March.", "not in the facts"),
    ("We are sorry. We guarantee a fix within 2 days.", "unconfirmed promise"),
    ("Some Ember stoves overheated; we are looking into it.", "no apology"),
    ("We are sorry. Details at https://evil.example/phish", "not in the facts"),
])
def test_non_compliant_text_falls_back(playbook: Playbook, fake: FakeLLM, text: str, why: str) -> None:
    fake.text = text
    p = _propose(playbook, fake)
    assert p.source == "template"
    assert why in p.fallback_reason
    assert p.variants == draft_statement(playbook, "holding", FACTS)


def test_malformed_answer_falls_back(playbook: Playbook, fake: FakeLLM) -> None:
    fake.text = ""
    p = _propose(playbook, fake)
    assert p.source == "template" and "empty" in p.fallback_reason


def test_open_circuit_skips_a_failing_provider(playbook: Playbook, fake: FakeLLM) -> None:
    fake.status = 503
    llm = build_llm(_settings(fake))
    assert llm is not None
    try:
        for _ in range(4):
            assert propose_statement(playbook, "holding", FACTS, llm).source == "template"
    finally:
        llm.close()
    assert len(fake.requests) == 3  # the fourth draft did not wait on a provider known to be down


def test_provider_errors_are_firebreak_errors(fake: FakeLLM) -> None:
    fake.status = 502
    llm = build_llm(_settings(fake))
    assert llm is not None
    with pytest.raises(TransientError) as info:
        llm.complete("system", "user")
    llm.close()
    assert API_KEY not in str(info.value)
