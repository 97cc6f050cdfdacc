"""The page behind each page's acknowledgement link: readable on a phone, one button.

GET only shows the page (link previews in chat apps and mail scanners fetch links, and
must not acknowledge on someone's behalf); the button POSTs. The token names the person
and the incident and is signed with the approval signing key (tasks/ack.py), so the answer
is recorded as that person's, channel "link". A refused token is audited.
"""

from __future__ import annotations

import html

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import HTMLResponse

from firebreak.errors import PolicyViolation
from firebreak.web.pages import page
from firebreak.store.models import Incident
from firebreak.tasks import codes as codes_mod
from firebreak.tasks.ack import AckClaim, read_ack_link
from firebreak.tasks.escalate import acknowledge
from firebreak.flows.runtime import get_runtime


STYLE = """body{font-family:system-ui,sans-serif;max-width:32rem;margin:0 auto;padding:1rem;line-height:1.45}
h1{font-size:1.3rem}.error{color:#c0392b}.ok{color:#1e8449}
button{font-size:1.2rem;padding:.9rem 1.4rem;border-radius:6px;border:0;background:#1e8449;color:#fff;width:100%}"""


def _page(title: str, body: str, status: int = 200) -> HTMLResponse:
    return page(title, body, STYLE, status)


def _claim(token: str) -> tuple[AckClaim, Incident]:
    rt = get_runtime()
    claim = read_ack_link(codes_mod.signing_key(rt.settings), token)
    with rt.db.session() as s:
        inc = s.get(Incident, claim.incident_id)
    if inc is None:
        raise PolicyViolation(f"incident {claim.incident_id} is not known here")
    return claim, inc


def _refused(token: str, exc: PolicyViolation) -> HTMLResponse:
    # Who tried cannot be trusted from a bad token: audit the reason and a token prefix only.
    get_runtime().audit.append("unknown", "incident.acknowledge_refused", "incident:?",
                               {"channel": "link", "reason": str(exc), "token_prefix": token[:16]})
    return _page("Link refused", f'<h1>Link refused</h1><p class="error">{html.escape(str(exc))}</p>', 410)


def _show(token: str) -> HTMLResponse:
    try:
        claim, inc = _claim(token)
    except PolicyViolation as exc:
        return _refused(token, exc)
    who = get_runtime().playbook.person(claim.person).name
    head = (f"<h1>Incident #{inc.id}: severity {inc.severity}</h1>"
            f"<p>{'DRILL' if inc.drill else 'LIVE'} · type {html.escape(inc.type or 'unclassified')} · "
            f"started on {html.escape(inc.origin_platform or '?')}</p>")
    if inc.acknowledged_by:
        return _page("Already acknowledged", head + f'<p class="ok">Already acknowledged by '
                     f"{html.escape(inc.acknowledged_by)}.</p>")
    return _page("Acknowledge page", head + f"<p>For <b>{html.escape(who)}</b>. Acknowledging stops the paging "
                 'and tells the team you are on it.</p><form method="post"><button>Acknowledge</button></form>')


def _ack(token: str) -> HTMLResponse:
    rt = get_runtime()
    try:
        claim, inc = _claim(token)
    except PolicyViolation as exc:
        return _refused(token, exc)
    first = acknowledge(rt.db, rt.audit, inc.id, claim.person, channel="link")
    if first:
        return _page("Acknowledged", f'<h1 class="ok">Acknowledged</h1><p>Thank you. Incident #{inc.id} is yours; '
                     "paging has stopped.</p>")
    with rt.db.session() as s:
        by = (s.get(Incident, inc.id) or inc).acknowledged_by
    return _page("Already acknowledged", f"<h1>Already acknowledged</h1><p>Incident #{inc.id} was acknowledged by "
                 f"{html.escape(by or '?')} first.</p>")


def router() -> APIRouter:
    r = APIRouter()

    # Database work runs in the thread pool: the store is synchronous.
    @r.get("/ack/{token}", response_class=HTMLResponse)
    async def ack_page(token: str) -> HTMLResponse:
        return await run_in_threadpool(_show, token)

    @r.post("/ack/{token}", response_class=HTMLResponse)
    async def ack_post(token: str) -> HTMLResponse:
        return await run_in_threadpool(_ack, token)

    return r
