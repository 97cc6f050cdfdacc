"""Sign-off through a signed link, in a real headless Chromium: open the link, approve, see
the paused run resume; a reused or expired link is refused. Also the Prefect-form path with
a one-time code (wrong and reused codes refused)."""

from __future__ import annotations

import re
import shutil
import threading
import time
from datetime import timedelta
from pathlib import Path

import pytest
import uvicorn

pytestmark = pytest.mark.integration

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def prefect_server():  # type: ignore[no-untyped-def]
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def runtime(tmp_path, playbook, prefect_server):  # type: ignore[no-untyped-def]
    from firebreak.clock import SystemClock
    from firebreak.config.settings import Settings, SmtpSettings
    from firebreak.connectors.mailbox import Mailbox
    from firebreak.connectors.sandbox.server import free_port
    from firebreak.store.db import Database
    from firebreak.tasks.runtime import Runtime, set_runtime

    port = free_port()
    with Mailbox() as mailbox:
        settings = Settings(data_dir=tmp_path, smtp=SmtpSettings(host=mailbox.host, port=mailbox.port),
                            public_url=f"http://127.0.0.1:{port}", web_port=port)
        db = Database(f"sqlite:///{tmp_path / 'web.db'}")
        db.migrate()
        rt = Runtime(settings=settings, playbook=playbook, db=db, clock=SystemClock())
        rt.extras["mailbox"] = mailbox
        set_runtime(rt)
        yield rt
        set_runtime(None)
        rt.close()
        db.dispose()


def _start_signoff(rt, severity: int):  # type: ignore[no-untyped-def]
    from prefect import flow

    from firebreak.flows.approval import await_sign_off
    from firebreak.tasks.approve import create_draft
    from tests.fakes import make_incident

    inc = make_incident(rt.db, rt.playbook, severity=severity)
    draft = create_draft(rt.db, rt.audit, inc.id, "holding", 0, "en",
                         {"x": ["We are aware of reports about the Ember stove."],
                          "linkedin": ["We are aware of reports about the Ember stove.\n\nMore soon."]})
    result: dict = {}

    @flow(name="signoff-test")
    def signoff(incident_id: int, draft_id: int) -> int:
        return await_sign_off(incident_id, draft_id)

    t = threading.Thread(target=lambda: result.setdefault("approved", signoff(inc.id, draft.id)), daemon=True)
    t.start()
    return draft, t, result


def _mail_for(rt, address: str, draft_id: int, timeout: float = 20.0) -> str:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for m in rt.extras["mailbox"].to(address):
            if f"#{draft_id} " in m.body:
                return m.body
        time.sleep(0.1)
    raise AssertionError(f"no sign-off mail for {address}")


def _paused(run_id: str | None) -> bool:
    from prefect.client.orchestration import get_client

    if not run_id:
        return False
    with get_client(sync_client=True) as c:
        st = c.read_flow_run(run_id).state
    return bool(st and st.is_paused())


def _wait_paused(rt, draft_id: int) -> str:  # type: ignore[no-untyped-def]
    from firebreak.store.models import Draft

    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            run_id = s.get(Draft, draft_id).flow_run_id
        if _paused(run_id):
            return run_id  # type: ignore[return-value]
        time.sleep(0.1)
    raise AssertionError("the run never paused")


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_signed_link_in_chromium(runtime, tmp_path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    from firebreak.flows.approval_web import create_app
    from firebreak.store.models import Approval, AuditEvent

    rt = runtime
    app = create_app()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=rt.settings.web_port, log_level="warning"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    try:
        draft, thread, result = _start_signoff(rt, severity=3)  # comms alone signs severity 3
        body = _mail_for(rt, "maria@fjell.example", draft.id)
        link = re.search(r"Or open: (\S+)", body).group(1)
        _wait_paused(rt, draft.id)
        out = Path("test-output")
        out.mkdir(exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=[
                "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                "--disable-background-networking", "--disable-component-update", "--disable-sync"])
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            page.goto(link)
            assert "You approve exactly this text" in page.content()
            assert draft.sha256 in page.content()
            page.screenshot(path=str(out / "approval-page.png"), full_page=True)
            page.click("button.approve")
            page.wait_for_selector("text=Thank you", timeout=15000)
            thread.join(timeout=30)
            assert result.get("approved") == draft.id  # the paused run resumed and finished
            page.goto(link)  # the same link again
            assert "already used" in page.content() or "nothing to sign" in page.content()
            browser.close()
        with rt.db.session() as s:
            (a,) = s.query(Approval).filter_by(draft_id=draft.id).all()
            assert (a.approver, a.role, a.channel) == ("maria", "comms", "link")
            assert s.query(AuditEvent).filter_by(action="approval.approve").count() == 1
    finally:
        server.should_exit = True


def test_expired_link_is_refused(runtime) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from firebreak.flows.approval_web import create_app
    from firebreak.tasks import codes
    from firebreak.tasks.approve import create_draft
    from tests.fakes import make_incident

    rt = runtime
    inc = make_incident(rt.db, rt.playbook, severity=3)
    d = create_draft(rt.db, rt.audit, inc.id, "holding", 0, "en", {"x": ["text"]})
    issued = codes.issue(rt.db, codes.signing_key(rt.settings), d.id, "maria", timedelta(seconds=-1))
    client = TestClient(create_app())
    r = client.get(f"/approve/{issued.link_token}")
    assert r.status_code == 410 and "expired" in r.text
    tampered = issued.link_token[:-2] + ("aa" if not issued.link_token.endswith("aa") else "bb")
    assert "signature" in client.get(f"/approve/{tampered}").text


def test_ui_form_needs_the_one_time_code(runtime) -> None:  # type: ignore[no-untyped-def]
    from prefect.flow_runs import resume_flow_run

    from firebreak.store.models import Approval, AuditEvent

    rt = runtime
    draft, thread, result = _start_signoff(rt, severity=3)
    body = _mail_for(rt, "maria@fjell.example", draft.id)
    code = re.search(r"one-time code: (\d{6})", body).group(1)
    run_id = _wait_paused(rt, draft.id)
    wrong = "000000" if code != "000000" else "111111"
    resume_flow_run(run_id, run_input={"approver": "maria", "decision": "approve", "sha256": draft.sha256, "code": wrong})
    time.sleep(0.5)
    run_id = _wait_paused(rt, draft.id)  # refused: the run pauses again
    resume_flow_run(run_id, run_input={"approver": "maria", "decision": "approve", "sha256": draft.sha256, "code": code})
    thread.join(timeout=30)
    assert result.get("approved") == draft.id
    with rt.db.session() as s:
        (a,) = s.query(Approval).filter_by(draft_id=draft.id).all()
        assert a.channel == "ui"
        refused = s.query(AuditEvent).filter_by(action="approval.refused").all()
        assert any("wrong code" in e.payload["reason"] for e in refused)


def test_cli_approve_and_wrong_key(runtime) -> None:  # type: ignore[no-untyped-def]
    from pydantic import SecretStr

    from firebreak.errors import ApprovalError
    from firebreak.flows.manual import answer_draft, list_drafts
    from firebreak.store.models import Approval
    from firebreak.tasks import codes

    rt = runtime
    draft, thread, result = _start_signoff(rt, severity=3)
    _wait_paused(rt, draft.id)
    assert [d["id"] for d in list_drafts()] == [draft.id]
    key = codes.signing_key(rt.settings)
    rt.settings = rt.settings.model_copy(update={"approver_key": SecretStr(codes.personal_key(key, "tomas"))})
    with pytest.raises(ApprovalError, match="does not belong to maria"):
        answer_draft(draft.id, "maria", "approve")  # tomas's key cannot speak for maria
    assert "approve recorded" in answer_draft(draft.id, "tomas", "approve")
    thread.join(timeout=30)
    assert result.get("approved") == draft.id
    with rt.db.session() as s:
        (a,) = s.query(Approval).filter_by(draft_id=draft.id).all()
        assert (a.approver, a.channel) == ("tomas", "cli")
