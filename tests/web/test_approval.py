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


@pytest.fixture
def runtime(tmp_path, playbook, prefect_server, test_databases):  # type: ignore[no-untyped-def]
    from firebreak.clock import SystemClock
    from firebreak.config.settings import Settings, SmtpSettings
    from firebreak.drill.mailbox import Mailbox
    from firebreak.sandbox.server import free_port
    from firebreak.store.db import Database
    from firebreak.flows.runtime import Runtime, set_runtime

    port = free_port()
    with Mailbox() as mailbox:
        settings = Settings(data_dir=tmp_path, smtp=SmtpSettings(host=mailbox.host, port=mailbox.port),
                            public_url=f"http://127.0.0.1:{port}", web_port=port)
        db = Database(test_databases.url(tmp_path, "web"))
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

    from firebreak.web.app import create_app
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

    from firebreak.web.app import create_app
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


def _form_description(run_id: str) -> str:
    """The Markdown the Prefect UI shows above the paused run's form."""
    from prefect.client.orchestration import get_client
    from prefect.input.run_input import keyset_from_paused_state

    with get_client(sync_client=True) as client:
        deadline = time.monotonic() + 10
        while True:
            state = client.read_flow_run(run_id).state
            try:
                return str(client.read_flow_run_input(run_id, keyset_from_paused_state(state)["description"]))
            except Exception:  # noqa: BLE001 - the description is saved just after the pause
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)


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
    run_id = _wait_paused(rt, draft.id)  # refused: the run pauses again, and its form says why
    assert "not accepted" in _form_description(run_id) and "wrong code" in _form_description(run_id)
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
    from firebreak.cli.signoff import answer_draft, list_drafts
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


REVISION = ("We know that some Ember stoves overheated and we are sorry. Please stop using yours until we know more. "
            "We are checking every report with the highest priority and will post each new fact here as soon as it "
            "is confirmed. If you have been hurt, please seek medical help and tell us.\n\nPress: press@fjell.example")


def test_reject_with_suggested_text_makes_a_new_version_with_a_diff(runtime) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from firebreak.web.app import create_app
    from firebreak.store.models import Approval, AuditEvent, Draft
    from firebreak.tasks import approve as approve_mod
    from firebreak.tasks.draft import check_statement, split_thread

    rt = runtime
    client = TestClient(create_app())
    draft, thread, result = _start_signoff(rt, severity=3)
    link = re.search(r"Or open: (\S+)", _mail_for(rt, "maria@fjell.example", draft.id)).group(1)
    path = "/approve/" + link.rsplit("/", 1)[1]
    _wait_paused(rt, draft.id)
    page = client.get(path)
    assert 'name="revision"' in page.text and "Suggest new text" in page.text
    # Approving while suggesting text is refused: an approval binds to the text shown.
    r = client.post(path, content="decision=approve&revision=other+text", headers={
        "Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 409 and "reject with your suggested text" in r.text
    from urllib.parse import urlencode
    r = client.post(path, content=urlencode({"decision": "reject", "comment": "Say what we know, and sorry.",
                                             "revision": REVISION}),
                    headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert r.status_code == 200 and "You rejected version 1" in r.text
    # The run pauses again, on version 2: the rejecter's text, re-split per platform.
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            v2 = s.query(Draft).filter_by(incident_id=draft.incident_id, version=2).first()
        if v2 is not None:
            break
        time.sleep(0.1)
    assert v2 is not None
    run_id = _wait_paused(rt, v2.id)
    assert (v2.author, v2.source, v2.comments) == ("maria", "revision", "Say what we know, and sorry.")
    assert v2.variants["x"] == split_thread(" ".join(REVISION.split()), "x") and len(v2.variants["x"]) == 2
    assert v2.variants["linkedin"] == [REVISION]  # long form: exactly as written
    assert check_statement(rt.playbook, v2.variants) == []
    # Reviewers see the diff: in the Prefect form's description and on the approval page.
    md = approve_mod.review_markdown(rt.db, rt.playbook, v2)
    assert "Changes since the previous version" in md and "+Press: press@fjell.example" in md
    assert "-We are aware of reports about the Ember stove." in md
    # The rejecter wrote version 2: her code is not even issued, and the rule refuses her.
    with pytest.raises(Exception, match="cannot approve"):
        approve_mod.record_decision(rt.db, rt.audit, rt.playbook, v2.id, "maria", "approve", "cli", v2.sha256)
    tomas = _mail_for(rt, "tomas@fjell.example", v2.id)
    assert not any(f"#{v2.id} " in m.body for m in rt.extras["mailbox"].to("maria@fjell.example"))
    page2 = client.get("/approve/" + re.search(r"Or open: (\S+)", tomas).group(1).rsplit("/", 1)[1])
    assert "Changes since the previous version" in page2.text and "+Press: press@fjell.example" in page2.text
    from prefect.flow_runs import resume_flow_run

    code = re.search(r"one-time code: (\d{6})", tomas).group(1)
    resume_flow_run(run_id, run_input={"approver": "tomas", "decision": "approve", "sha256": v2.sha256, "code": code})
    thread.join(timeout=30)
    assert result.get("approved") == v2.id
    with rt.db.session() as s:
        assert [(a.approver, a.decision, a.draft_id) for a in s.query(Approval).order_by(Approval.id)] == [
            ("maria", "reject", draft.id), ("tomas", "approve", v2.id)]
        assert s.query(AuditEvent).filter_by(action="approval.refused").count() >= 1


def test_suggested_text_that_fails_the_checks_is_not_offered(runtime) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.approve import create_draft, next_version
    from tests.fakes import make_incident

    rt = runtime
    inc = make_incident(rt.db, rt.playbook, severity=3)
    d = create_draft(rt.db, rt.audit, inc.id, "holding", 0, "en", {"x": ["We are looking into it."],
                                                                     "linkedin": ["We are looking into it."]})
    new_id = next_version(rt.db, rt.audit, rt.playbook, d, "maria", "shorter",
                          revision="No comment. The stove is guaranteed safe.").id
    from firebreak.store.models import Draft

    with rt.db.session() as s:
        v2 = s.get(Draft, new_id)
    assert v2.variants == d.variants and v2.author == d.author  # the refused text never reaches sign-off
    assert "suggested text refused" in v2.comments and "banned phrase" in v2.comments
