"""The approval page behind each signed link, readable on a phone (`/approve/{token}`).

The page answers through the same door as the Prefect UI form: it resumes the paused run
with the approver's answer and the link as proof; the flow verifies the link, applies the
sign-off rules and audits the answer. A reused or expired link is refused here already.
"""

from __future__ import annotations

import html
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse
from sqlalchemy import select

from firebreak.config.logging import get_logger
from firebreak.errors import ApprovalError, OrchestratorUnavailable
from firebreak.flows.approval import resume_paused
from firebreak.flows.runtime import get_runtime
from firebreak.store.models import Approval, ApprovalCode, Draft
from firebreak.tasks import approve as approve_mod
from firebreak.tasks import codes as codes_mod
from firebreak.web.pages import READING_STYLE as STYLE
from firebreak.web.pages import page

log = get_logger("firebreak.web.approval")

def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return page(title, body, STYLE, status)


def _claim(token: str) -> tuple[codes_mod.LinkClaim, Draft]:
    rt = get_runtime()
    key = codes_mod.signing_key(rt.settings)
    claim = codes_mod.read_link(key, token)
    with rt.db.session() as s:
        draft = s.get(Draft, claim.draft_id)
        row = s.scalars(select(ApprovalCode).where(
            ApprovalCode.draft_id == claim.draft_id, ApprovalCode.person == claim.person, ApprovalCode.kind == "link",
            ApprovalCode.secret_hash == codes_mod._mac(key, "nonce", claim.nonce))).first()
    if draft is None or row is None:
        raise ApprovalError("this approval link is not known")
    if row.used_at is not None:
        raise ApprovalError("this approval link was already used")
    if draft.status != "pending":
        raise ApprovalError(f"this draft is {draft.status}; nothing to sign")
    return claim, draft


def _answered(draft_id: int, person: str) -> Approval | None:
    with get_runtime().db.session() as s:
        return s.scalars(select(Approval).where(Approval.draft_id == draft_id, Approval.approver == person)).first()


def router() -> APIRouter:
    app = APIRouter()

    @app.get("/approve/{token}", response_class=HTMLResponse)
    def approval_page(token: str) -> HTMLResponse:
        rt = get_runtime()
        try:
            claim, draft = _claim(token)
        except ApprovalError as exc:
            return _page("Link refused", f'<h1>Link refused</h1><p class="error">{html.escape(str(exc))}</p>', 410)
        person = rt.playbook.person(claim.person)
        prev = approve_mod.previous_version(rt.db, draft)
        diff = approve_mod.diff_variants(prev.variants if prev else None, draft.variants)
        # The whole text once (the longest single post), then each platform's cut of it folded
        # away: the buttons stay within a thumb's reach on a phone.
        shown, _ = max(draft.variants.items(), key=lambda kv: (len(kv[1]) == 1, len("".join(kv[1]))))

        def variant(p: str, parts: list[str], open_: bool) -> str:
            label = f"{html.escape(p)} ({len(parts)} posts, thread)" if len(parts) > 1 else html.escape(p)
            chars = len("\n".join(parts))
            return (f'<details class="variant"{" open" if open_ else ""}><summary><b>{label}</b>, {chars} characters'
                    "</summary>" + "".join(f"<pre>{html.escape(part)}</pre>" for part in parts) + "</details>")

        variants = variant(shown, draft.variants[shown], True) + "".join(
            variant(p, parts, False) for p, parts in draft.variants.items() if p != shown)
        body = (f"<h1>{html.escape(draft.kind.title())} statement, version {draft.version}</h1>"
                f"<p>For <b>{html.escape(person.name)}</b> ({', '.join(person.roles)}). You approve exactly this text, "
                f"on every platform:</p>{variants}"
                + (f"<h2>Changes since the previous version</h2><pre>{html.escape(diff)}</pre>" if diff else "")
                + '<form method="post">'
                  '<button class="approve" name="decision" value="approve">Approve</button>'
                  '<button class="reject" name="decision" value="reject">Reject</button>'
                  '<label for="comment">Comment (required to reject)</label>'
                  '<textarea id="comment" name="comment"></textarea>'
                  '<label for="revision">Suggest new text (optional, with Reject): one text, split per '
                  'platform; you become its author, so others sign it</label>'
                  '<textarea id="revision" name="revision" class="revision"></textarea></form>'
                + f'<p class="hash">SHA-256 {draft.sha256}</p>')
        return _page("Sign-off needed", body)

    @app.post("/approve/{token}", response_class=HTMLResponse)
    async def answer(token: str, request: Request) -> HTMLResponse:
        # A plain urlencoded form, parsed here rather than pulling in python-multipart.
        form = parse_qs((await request.body()).decode("utf-8", "replace"))
        decision = (form.get("decision") or [""])[0]
        comment = (form.get("comment") or [""])[0]
        revision = (form.get("revision") or [""])[0]
        return await run_in_threadpool(_answer, token, decision, comment, revision)

    def _answer(token: str, decision: str, comment: str, revision: str = "") -> HTMLResponse:
        rt = get_runtime()
        person, subject = "unknown", "draft:?"
        try:
            claim, draft = _claim(token)
            person, subject = claim.person, f"draft:{draft.id}"
            if decision not in ("approve", "reject"):
                raise ApprovalError("decision must be approve or reject")
            if decision == "reject" and not comment.strip():
                raise ApprovalError("a rejection needs a comment saying what to change")
            if decision == "approve" and revision.strip():
                # Approving binds to the text shown; a rewrite is a rejection with new text.
                raise ApprovalError("to change the text, reject with your suggested text")
            _resume(draft, {"approver": claim.person, "decision": decision, "sha256": draft.sha256,
                            "code": token, "comment": comment, "revision": revision})
        except ApprovalError as exc:
            rt.audit.append(person, "approval.refused", subject, {"channel": "link", "reason": str(exc)})
            return _page("Not accepted", f'<h1>Not accepted</h1><p class="error">{html.escape(str(exc))}</p>', 409)
        except OrchestratorUnavailable as exc:
            # Nothing was refused: the answer did not reach the run. The link stays valid.
            log.error(f"Approval link answer not handed over: {exc}", draft=subject, person=person)
            return _page("Not recorded yet", f'<h1>Not recorded yet</h1><p class="error">{html.escape(str(exc))}</p>',
                         503)
        # Wait (briefly) for the run to record the answer, so the page says what happened.
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            got = _answered(draft.id, claim.person)
            if got is not None:
                verb = "approved" if got.decision == "approve" else "rejected"
                return _page("Thank you", f"<h1>Thank you</h1><p>You {verb} version {draft.version} "
                                          f"as {html.escape(got.role)}.</p>")
            time.sleep(0.1)
        return _page("Received", "<h1>Received</h1><p>Your answer was handed to the response; it is being recorded.</p>",
                     202)

    return app


def _resume(draft: Draft, run_input: dict[str, Any]) -> None:
    resume_paused(draft.flow_run_id, run_input)
