"""Sign-off by hand: `firebreak drafts`, `approve` and `reject` with a personal key. An answer
goes through the same rules and audit as one from the approval pages."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from firebreak.errors import FirebreakError


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    dr = subparsers.add_parser("drafts", help="drafts waiting for sign-off")
    dr.add_argument("--show", action="store_true", help="print every platform variant")
    dr.add_argument("--json", action="store_true", help="one JSON object per draft")
    dr.set_defaults(func=cmd_drafts)
    for verb in ("approve", "reject"):
        ap = subparsers.add_parser(verb, help=f"{verb} a draft with your personal key (FIREBREAK_APPROVER_KEY)")
        ap.add_argument("draft", type=int)
        ap.add_argument("--as", dest="person", required=True)
        ap.add_argument("--comment", default="")
        ap.add_argument("--revision", default="", help="reject: the text you suggest instead (or @FILE)")
        ap.set_defaults(func=cmd_answer)


def cmd_drafts(args: argparse.Namespace) -> int:
    drafts = list_drafts()
    if args.json:
        for d in drafts:
            print(json.dumps(d, ensure_ascii=False))
        return 0
    if not drafts:
        print("no draft is waiting for sign-off")
    for d in drafts:
        signed = ", ".join(f"{role} by {who}" for role, who in d["signed"].items()) or "nobody yet"
        print(f"draft {d['id']}  incident #{d['incident']}  {d['kind']} v{d['version']}  sha256 {d['sha256']}\n"
              f"  signed: {signed}  still needed: {', '.join(d['missing_roles']) or 'nothing'}")
        if args.show:
            for platform, parts in d["variants"].items():
                print(f"  [{platform}]\n    " + "\n    ".join("\n".join(parts).splitlines()))
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    decision = "approve" if args.command == "approve" else "reject"
    if decision == "reject" and not (args.comment or "").strip():
        raise FirebreakError("reject needs --comment saying what to change")
    revision = args.revision or ""
    if revision.startswith("@"):
        revision = Path(revision[1:]).read_text(encoding="utf-8")
    if revision and decision != "reject":
        raise FirebreakError("--revision goes with reject: suggest the text you would approve")
    print(answer_draft(args.draft, args.person, decision, args.comment or "", revision=revision))
    return 0


def list_drafts() -> list[dict[str, Any]]:
    from firebreak.tasks import approve as approve_mod
    from firebreak.flows.runtime import get_runtime

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
    from sqlalchemy import select

    from firebreak.errors import ApprovalError
    from firebreak.store.models import Approval, AuditEvent, Draft
    from firebreak.tasks import codes as codes_mod
    from firebreak.flows.approval import resume_paused
    from firebreak.flows.runtime import get_runtime

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
    from sqlalchemy import select

    from firebreak.store.models import AuditEvent

    with rt.db.session() as s:
        return s.scalar(select(AuditEvent.seq).order_by(AuditEvent.seq.desc()).limit(1)) or 0
