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
from datetime import timedelta
from typing import Literal

from prefect import get_run_logger
from prefect.context import get_run_context
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput
from pydantic import Field

from firebreak.config.logging import get_logger
from firebreak.domain import utcnow
from firebreak.errors import ApprovalError, FirebreakError, PolicyViolation
from firebreak.store.models import Draft, Incident
from firebreak.tasks import approve as approve_mod
from firebreak.tasks import codes as codes_mod
from firebreak.tasks import draft as draft_mod
from firebreak.tasks.notify import Outgoing, preferred_channel, send_once
from firebreak.tasks.reminders import send_reminders
from firebreak.flows.runtime import Runtime, get_runtime


class ApprovalInput(RunInput):
    approver: str = Field(description="your person id in the playbook, e.g. maria")
    decision: Literal["approve", "reject"] = "approve"
    sha256: str = Field(description="the hash shown above: you approve exactly this text")
    code: str = Field("", description="the one-time code Firebreak sent you for this draft")
    comment: str = ""
    revision: str = Field("", description="to reject with a rewrite: your suggested text (one text, split per platform)")


class ResolveInput(RunInput):
    confirmer: str
    confirm: bool = True
    note: str = ""


def send_codes(rt: Runtime, draft: Draft) -> list[str]:
    """One code and one signed link per possible approver, on their own channel, once per draft."""
    status = approve_mod.approval_status(rt.db, rt.playbook, draft.id)
    key = codes_mod.signing_key(rt.settings)
    ttl = timedelta(minutes=rt.playbook.approval.expiry_minutes)
    sent = []
    for person in rt.playbook.people:
        if person.id == draft.author or not set(person.roles) & set(status.required_roles):
            continue
        channel = preferred_channel(person)
        if channel is None:
            continue
        issued = codes_mod.issue(rt.db, key, draft.id, person.id, ttl)
        link = f"{rt.settings.public_url.rstrip('/')}/approve/{issued.link_token}"
        body = (f"Draft {draft.kind} statement #{draft.id} v{draft.version} needs your sign-off "
                f"(hash {draft.sha256[:12]}…).\nYour one-time code: {issued.code}\nOr open: {link}\n"
                f"Valid for {rt.playbook.approval.expiry_minutes} minutes.")
        send_once(rt.db, rt.audit, rt.notifiers(), draft.incident_id, Outgoing(
            key=f"code:{draft.id}:{person.id}", kind="code", channel=channel, target=person.channels[channel],
            subject=f"[Firebreak] Sign-off needed: {draft.kind} statement v{draft.version}", body=body,
            person=person.id))
        sent.append(person.id)
    return sent


def check_answer(rt: Runtime, draft: Draft, answer: ApprovalInput) -> str:
    """Verify the proof; returns the channel to record."""
    if not answer.code:
        raise ApprovalError("no code: use the one-time code Firebreak sent you, your approval link, or the CLI")
    kind = codes_mod.consume(rt.db, codes_mod.signing_key(rt.settings), draft.id, answer.approver, answer.code,
                             answer.sha256)
    if rt.drill:
        return "drill"
    return {"code": "ui", "link": "link", "cli": "cli"}[kind]


def _remind_until(rt: Runtime, draft_id: int, stop: threading.Event) -> None:
    """Remind approvers who have not answered; `send_reminders` decides what is due, and its
    idempotency keys make a repeat harmless. Wall clock: drafts are stamped in wall time."""
    while not stop.wait(30):
        try:
            send_reminders(rt.db, rt.audit, rt.playbook, rt.notifiers(), draft_id, utcnow())
        except FirebreakError as exc:  # a reminder that fails must not take the sign-off down
            get_logger("firebreak.flows.approval").warning("reminder_failed", draft=draft_id, error=str(exc))


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
            send_codes(rt, d)
            coded.add(draft_id)
        description = approve_mod.review_markdown(rt.db, rt.playbook, d)
        # Reminders come from a side thread: re-pausing after a pause timeout is refused by the
        # server (the run is still Paused), so one pause waits the whole time.
        stop = threading.Event()
        threading.Thread(target=_remind_until, args=(rt, draft_id, stop), daemon=True, name=f"remind-{draft_id}").start()
        try:
            answer = pause_flow_run(
                wait_for_input=ApprovalInput.with_initial_data(description=description, sha256=d.sha256, decision="approve"),
                timeout=timeout, poll_interval=1, key=f"draft-{draft_id}-{attempt}",  # unique: a reused key skips the pause
            )
        finally:
            stop.set()
        try:
            channel = check_answer(rt, d, answer)
        except ApprovalError as exc:
            rt.audit.append(answer.approver, "approval.refused", f"draft:{draft_id}",
                            {"channel": "unverified", "decision": answer.decision, "reason": str(exc)})
            log.warning("Sign-off refused: %s", exc)
            continue
        try:
            approve_mod.record_decision(rt.db, rt.audit, rt.playbook, draft_id, answer.approver, answer.decision,
                                        channel, answer.sha256, comment=answer.comment or None)
        except ApprovalError as exc:
            log.warning("Sign-off refused: %s", exc)
            continue
        if answer.decision == "reject":
            draft_id = next_version(rt, d, answer).id


def next_version(rt: Runtime, draft: Draft, answer: ApprovalInput) -> Draft:
    """The version that follows a rejection. With suggested text, the rejecter becomes its
    author (so the author rule stops them approving their own words) and the reviewers see
    the diff; text that fails the statement checks is not offered for sign-off: the next
    version keeps the previous text and the comments say why the suggestion was refused."""
    comments = answer.comment
    if answer.revision.strip():
        try:
            variants = revised_variants(rt, draft, answer.revision)
        except PolicyViolation as exc:
            rt.audit.append(answer.approver, "draft.revision_refused", f"draft:{draft.id}", {"reason": str(exc)})
            get_run_logger().warning("Suggested text refused: %s", exc)
            comments = f"{comments}\n\n[suggested text refused: {exc}]".strip()
        else:
            return approve_mod.create_draft(rt.db, rt.audit, draft.incident_id, draft.kind, draft.sequence,
                                            draft.language, variants, author=answer.approver, source="revision",
                                            comments=comments)
    return approve_mod.create_draft(rt.db, rt.audit, draft.incident_id, draft.kind, draft.sequence, draft.language,
                                    draft.variants, author=draft.author, source=draft.source, comments=comments)


def revised_variants(rt: Runtime, draft: Draft, text: str) -> dict[str, list[str]]:
    """Re-split a reviewer's text for the draft's platforms and run the statement checks."""
    variants = draft_mod.revise_variants(text, list(draft.variants))
    problems = draft_mod.check_statement(rt.playbook, variants)
    if problems:
        raise PolicyViolation("; ".join(problems))
    return variants


def incident_of(rt: Runtime, draft_id: int) -> Incident:
    with rt.db.session() as s:
        d = s.get(Draft, draft_id)
        assert d is not None
        inc = s.get(Incident, d.incident_id)
        assert inc is not None
        return inc
