"""Human sign-off as a real Prefect pause: the run waits for input whose form the UI builds
from ApprovalInput's schema, with the draft (every platform variant, the hash, the diff)
in the form's description. The same rules apply whoever answers (tasks/approve.py)."""

from __future__ import annotations

from typing import Literal

from prefect import get_run_logger
from prefect.context import get_run_context
from prefect.flow_runs import pause_flow_run
from prefect.input import RunInput

from firebreak.errors import ApprovalError
from firebreak.store.models import Draft
from firebreak.tasks import approve as approve_mod
from firebreak.tasks.runtime import get_runtime


class ApprovalInput(RunInput):
    approver: str  # person id from the playbook
    decision: Literal["approve", "reject"] = "approve"
    sha256: str  # the hash shown above: you approve exactly this text
    comment: str = ""


class ResolveInput(RunInput):
    confirmer: str
    confirm: bool = True
    note: str = ""


def await_sign_off(incident_id: int, draft_id: int) -> int:
    """Pause until the draft has every required sign-off; returns the approved draft id.

    A rejection produces a new version (comments kept) that goes through sign-off again.
    """
    rt = get_runtime()
    log = get_run_logger()
    channel = "drill" if rt.drill else "ui"
    run_id = str(get_run_context().flow_run.id)
    timeout = rt.playbook.approval.pause_timeout_minutes * 60
    attempt = 0
    while True:
        attempt += 1
        with rt.db.session() as s:
            d = s.get(Draft, draft_id)
            assert d is not None
            d.flow_run_id = run_id
        status = approve_mod.approval_status(rt.db, rt.playbook, draft_id)
        if status.satisfied:
            return draft_id
        description = approve_mod.review_markdown(rt.db, rt.playbook, d)
        answer = pause_flow_run(
            wait_for_input=ApprovalInput.with_initial_data(description=description, sha256=d.sha256, decision="approve"),
            timeout=timeout, poll_interval=1, key=f"draft-{draft_id}-{attempt}",  # unique: a reused key skips the pause
        )
        try:
            approve_mod.record_decision(rt.db, rt.audit, rt.playbook, draft_id, answer.approver, answer.decision,
                                        channel, answer.sha256, comment=answer.comment or None)
        except ApprovalError as exc:
            log.warning("Sign-off refused: %s", exc)
            continue
        if answer.decision == "reject":
            new = approve_mod.create_draft(rt.db, rt.audit, incident_id, d.kind, d.sequence, d.language, d.variants,
                                           author=d.author, source=d.source, comments=answer.comment)
            draft_id = new.id
