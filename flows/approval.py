"""Human sign-off as a real Prefect pause: the run waits for input whose form the UI builds
from ApprovalInput's schema, with the draft (every platform variant, the hash, the diff)
in the form's description.

The self-hosted UI proves no identity, so an answer counts only with proof: the one-time
code Firebreak sent to that approver's own channel, the signed link it sent them (the
approval page resumes the run with it), or a CLI proof made with their personal key. The
same rules then apply whoever answers (tasks/approve.py), and every answer, accepted or
refused, is audited with the channel it came through.
"""

from __future__ import annotations

import threading
import time

import httpx
from typing import Any, Literal

from prefect import get_run_logger
from prefect.client.orchestration import get_client
from prefect.context import get_run_context
from prefect.exceptions import NotPausedError, ObjectNotFound
from prefect.flow_runs import pause_flow_run, resume_flow_run
from prefect.artifacts import create_markdown_artifact
from prefect.input import RunInput
from pydantic import Field, create_model

from firebreak.config.logging import get_logger
from firebreak.domain import utcnow
from firebreak.errors import ApprovalError, FirebreakError, OrchestratorUnavailable
from firebreak.store.models import Draft
from firebreak.tasks import approve as approve_mod
from firebreak.tasks import codes as codes_mod
from firebreak.tasks.reminders import send_reminders
from firebreak.flows.runtime import Runtime, get_runtime


class ApprovalInput(RunInput):
    approver: str = Field(description="your person id in the playbook, e.g. maria")
    code: str = Field(description="the one-time code Firebreak sent you for this draft")
    decision: Literal["approve", "reject"] = "approve"
    sha256: str = Field(description="the hash shown above: you approve exactly this text")
    comment: str = ""
    revision: str = Field("", description="to reject with a rewrite: your suggested text (one text, split per platform)")


class ResolveInput(RunInput):
    confirmer: str = Field(description="your person id in the playbook, e.g. maria")
    confirm: bool = Field(True, description="off: not yet (the run asks again)")
    note: str = Field("", description="for the post-mortem: why now, or why not yet")


def _remind_until(rt: Runtime, draft_id: int, stop: threading.Event) -> None:
    """Remind approvers who have not answered; `send_reminders` decides what is due, and its
    idempotency keys make a repeat harmless. Wall clock: drafts are stamped in wall time."""
    while not stop.wait(30):
        try:
            send_reminders(rt.db, rt.audit, rt.playbook, rt.notifiers(), draft_id, utcnow())
        except FirebreakError as exc:  # a reminder that fails must not take the sign-off down
            get_logger("firebreak.flows.approval").warning(f"Reminders for draft {draft_id} failed: {exc}")


def await_sign_off(incident_id: int, draft_id: int) -> int:
    """Pause until the draft has every required sign-off; returns the approved draft id.

    A rejection produces a new version (comments kept) that goes through sign-off again.
    """
    rt = get_runtime()
    log = get_run_logger()
    run_id = str(get_run_context().flow_run.id)
    timeout = rt.playbook.approval.pause_timeout_minutes * 60
    attempt = 0
    coded: set[int] = set()
    documented: set[int] = set()
    refused = ""  # why the last answer was not accepted: shown on the form that comes back
    while True:
        attempt += 1
        with rt.db.session() as s:
            d = s.get(Draft, draft_id)
            assert d is not None
            d.flow_run_id = run_id
        status = approve_mod.approval_status(rt.db, rt.playbook, draft_id)
        if status.satisfied:
            return draft_id
        if draft_id not in coded:
            approve_mod.send_codes(rt.db, rt.audit, rt.playbook, rt.notifiers(), codes_mod.signing_key(rt.settings),
                                   rt.settings.public_url, d, ui_url=_run_url(run_id))
            coded.add(draft_id)
        artifact = f"draft-{draft_id}"
        if draft_id not in documented:
            documented.add(draft_id)
            create_markdown_artifact(key=artifact, markdown=approve_mod.review_markdown(rt.db, rt.playbook, d),
                                     description=f"Draft {draft_id}: every platform's text, the hash, the changes")
        description, text = approve_mod.sign_off_form(rt.db, rt.playbook, d, refused=refused, full_text=artifact)
        # Reminders come from a side thread: re-pausing after a pause timeout is refused by the
        # server (the run is still Paused), so one pause waits the whole time.
        stop = threading.Event()
        threading.Thread(target=_remind_until, args=(rt, draft_id, stop), daemon=True, name=f"remind-{draft_id}").start()
        try:
            answer = pause_flow_run(
                wait_for_input=_form_for(d, text).with_initial_data(description=description, sha256=d.sha256,
                                                                    decision="approve"),
                timeout=timeout, poll_interval=1, key=f"draft-{draft_id}-{attempt}",  # unique: a reused key skips the pause
            )
        finally:
            stop.set()
        try:
            channel = approve_mod.check_proof(rt.db, codes_mod.signing_key(rt.settings), d, answer.approver,
                                              answer.code, answer.sha256, drill=rt.drill)
        except ApprovalError as exc:
            rt.audit.append(answer.approver, "approval.refused", f"draft:{draft_id}",
                            {"channel": "unverified", "decision": answer.decision, "reason": str(exc)})
            log.warning("Sign-off refused: %s", exc)
            refused = str(exc)
            continue
        try:
            approve_mod.record_decision(rt.db, rt.audit, rt.playbook, draft_id, answer.approver, answer.decision,
                                        channel, answer.sha256, comment=answer.comment or None)
        except ApprovalError as exc:
            log.warning("Sign-off refused: %s", exc)
            refused = str(exc)
            continue
        refused = ""
        if answer.decision == "reject":
            draft_id = approve_mod.next_version(rt.db, rt.audit, rt.playbook, d, answer.approver, answer.comment,
                                                answer.revision).id


def _form_for(draft: Draft, text: str) -> type[ApprovalInput]:
    """The sign-off form for one draft: the text to sign is the first field's help, the one
    place the Prefect UI shows a long text whole (the description above the form scrolls)."""
    return create_model(f"SignOffDraft{draft.id}v{draft.version}", __base__=ApprovalInput,
                        approver=(str, Field(description=f"{text}\n\nYour person id in the playbook, e.g. maria")))


def _run_url(run_id: str) -> str | None:
    """The run's page in the Prefect UI, where its sign-off form is (None: no UI to point at)."""
    from prefect.settings import PREFECT_UI_URL

    ui = PREFECT_UI_URL.value()
    return f"{ui.rstrip('/')}/runs/flow-run/{run_id}" if ui else None


def resume_paused(run_id: str | None, run_input: dict[str, Any], wait_s: float = 10.0) -> None:
    """Hand an answer to the run paused for it (the same API the Prefect UI form uses): the
    approval page, the CLI and the drill's operator all answer through here."""
    if not run_id:
        raise ApprovalError("no run is waiting for this draft")
    deadline = time.monotonic() + wait_s
    while True:
        try:
            with get_client(sync_client=True) as client:
                state = client.read_flow_run(run_id).state
            if state is not None and state.is_paused():
                try:
                    resume_flow_run(run_id, run_input=run_input)
                    return
                except (NotPausedError, RuntimeError):
                    pass  # between "paused" and "input form saved": try again
        except ObjectNotFound:
            raise ApprovalError("the run waiting for this answer no longer exists") from None
        except httpx.HTTPError as exc:
            raise OrchestratorUnavailable(f"the Prefect server cannot be reached ({exc.__class__.__name__}); "
                                          "the answer was not recorded: try again in a minute") from exc
        if time.monotonic() > deadline:
            raise ApprovalError("the response is not waiting for sign-off right now; try again in a moment")
        time.sleep(0.1)
