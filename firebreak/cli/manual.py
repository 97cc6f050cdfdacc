"""What people do by hand, from the CLI: answer a draft, list drafts, freeze and unfreeze,
serve the web pages. Each goes through the same rules and audit as the automated path."""

from __future__ import annotations

import time
from typing import Any

import uvicorn
from sqlalchemy import select

from firebreak.errors import ApprovalError, FirebreakError
from firebreak.store.models import Approval, AuditEvent, Draft
from firebreak.tasks import approve as approve_mod
from firebreak.tasks import codes as codes_mod
from firebreak.tasks import freeze as freeze_mod
from firebreak.flows.approval import resume_paused
from firebreak.flows.runtime import get_runtime


def list_drafts() -> list[dict[str, Any]]:
    rt = get_runtime()
    out = []
    for d in approve_mod.latest_pending(rt.db):
        st = approve_mod.approval_status(rt.db, rt.playbook, d.id)
        out.append({"id": d.id, "incident": d.incident_id, "kind": d.kind, "version": d.version, "sha256": d.sha256,
                    "missing_roles": st.missing_roles, "signed": st.filled, "variants": d.variants})
    return out


def answer_draft(draft_id: int, person: str, decision: str, comment: str = "", wait_s: float = 15.0,
                 revision: str = "") -> str:
    """`firebreak approve|reject DRAFT --as NAME`: proof from NAME's personal key (settings)."""
    rt = get_runtime()
    rt.playbook.person(person)  # a clear KeyError → message below
    key = codes_mod.signing_key(rt.settings)
    personal = rt.settings.approver_key.get_secret_value()
    if not personal:
        raise ApprovalError("set FIREBREAK_APPROVER_KEY to your personal key (ask an admin: firebreak keys issue NAME)")
    with rt.db.session() as s:
        d = s.get(Draft, draft_id)
    if d is None:
        raise ApprovalError(f"no draft {draft_id}")
    proof = codes_mod.cli_proof(personal, d.id, d.sha256)
    if proof != codes_mod.cli_proof(codes_mod.personal_key(key, person), d.id, d.sha256):
        rt.audit.append(person, "approval.refused", f"draft:{draft_id}", {"channel": "cli", "reason": "wrong personal key"})
        raise ApprovalError(f"FIREBREAK_APPROVER_KEY does not belong to {person}")
    before = _last_audit_seq(rt)
    resume_paused(d.flow_run_id, {"approver": person, "decision": decision, "sha256": d.sha256, "code": proof,
                                  "comment": comment, "revision": revision})
    deadline = time.monotonic() + wait_s
    while time.monotonic() < deadline:
        with rt.db.session() as s:
            got = s.scalars(select(Approval).where(Approval.draft_id == d.id, Approval.approver == person)).first()
            refused = s.scalars(select(AuditEvent).where(AuditEvent.seq > before, AuditEvent.actor == person,
                                                         AuditEvent.action == "approval.refused")).first()
        if got is not None:
            return f"{got.decision} recorded for draft {d.id} v{d.version} as {got.role}"
        if refused is not None:
            raise ApprovalError(f"refused: {refused.payload.get('reason')}")
        time.sleep(0.1)
    return "answer handed to the response; not yet recorded"


def _last_audit_seq(rt) -> int:  # type: ignore[no-untyped-def]
    with rt.db.session() as s:
        return s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0


def manual_freeze(reason: str, actor: str) -> freeze_mod.FreezeResult:
    rt = get_runtime()
    if not reason.strip():
        raise FirebreakError("a freeze needs a reason")
    conns = {p: rt.connector(p) for p in rt.playbook.brand.accounts}
    return freeze_mod.freeze_all(rt.db, rt.audit, rt.playbook, conns, None, reason, actor=actor)


def manual_unfreeze(reason: str, actor: str) -> freeze_mod.ResumeResult:
    rt = get_runtime()
    if not reason.strip():
        raise FirebreakError("lifting a freeze needs a reason")
    rt.audit.append(actor, "freeze.lift_requested", "manual", {"reason": reason})
    conns = {p: rt.connector(p) for p in rt.playbook.brand.accounts}
    return freeze_mod.resume_all(rt.db, rt.audit, rt.playbook, conns, None, rt.clock.now(), actor=actor)


def serve_web() -> None:
    from firebreak.web.app import create_app

    rt = get_runtime()
    uvicorn.run(create_app(), host=rt.settings.web_host, port=rt.settings.web_port, log_level="warning")
