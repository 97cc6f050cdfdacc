"""Approve stage: the sign-off rules, one rule set for every channel (Prefect UI form, signed
link, CLI, drill).

- Required roles per severity come from the incident's policy snapshot.
- The author cannot approve; one person cannot fill two required roles.
- An approval is bound to the SHA-256 of the exact text of every platform variant; any
  edit makes a new version whose hash no earlier approval matches.
- Approvals expire after the playbook's time.
- A rejection carries comments and leads to a new version.
Every answer, accepted or refused, is written to the audit log with its channel.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select

from firebreak.audit import AuditLog
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook, assign_roles
from firebreak.domain import utcnow, variants_sha256
from firebreak.errors import ApprovalError, PolicyViolation
from firebreak.connectors.notify import Notifier
from firebreak.store.db import Database
from firebreak.store.models import Approval, Draft, Incident
from firebreak.tasks import codes as codes_mod
from firebreak.tasks import draft as draft_mod
from firebreak.tasks.notify import Outgoing, preferred_channel, send_once

log = get_logger("firebreak.tasks.approve")
CHANNELS = ("ui", "link", "cli", "drill")


@dataclass
class ApprovalStatus:
    required_roles: list[str]
    filled: dict[str, str] = field(default_factory=dict)  # role -> person id
    rejected_by: str | None = None

    @property
    def missing_roles(self) -> list[str]:
        return [r for r in self.required_roles if r not in self.filled]

    @property
    def satisfied(self) -> bool:
        return self.rejected_by is None and not self.missing_roles


def required_roles(playbook: Playbook, incident: Incident) -> list[str]:
    snap = (incident.policy_snapshot or {}).get("approval")
    sev = incident.severity or playbook.severity.default
    if snap:
        roles = snap["required_roles"].get(str(sev)) or snap["required_roles"].get(sev)
        if roles:
            return list(roles)
    return list(playbook.approval.required_roles[sev])


def approval_status(db: Database, playbook: Playbook, draft_id: int) -> ApprovalStatus:
    now = utcnow()
    with db.session() as s:
        draft = s.get(Draft, draft_id)
        assert draft is not None
        inc = s.get(Incident, draft.incident_id)
        assert inc is not None
        rows = list(s.scalars(select(Approval).where(Approval.draft_id == draft_id).order_by(Approval.at)))
    st = ApprovalStatus(required_roles(playbook, inc))
    valid: dict[str, set[str]] = {}
    for a in rows:
        if a.sha256 != draft.sha256:
            continue
        if a.decision == "reject":
            st.rejected_by = a.approver
            continue
        if a.expires_at is not None and a.expires_at < now:
            continue
        roles = set(playbook.person(a.approver).roles) if a.approver in {p.id for p in playbook.people} else set()
        valid.setdefault(a.approver, set()).update(roles & {a.role})
    st.filled = assign_roles(st.required_roles, valid)
    return st


def record_decision(db: Database, audit: AuditLog, playbook: Playbook, draft_id: int, approver: str, decision: str,
                    channel: str, sha256: str, *, comment: str | None = None, role: str | None = None) -> Approval:
    """Validate and store one answer. Raises ApprovalError (and audits the refusal) when a rule says no."""
    try:
        return _record(db, audit, playbook, draft_id, approver, decision, channel, sha256, comment, role)
    except ApprovalError as exc:
        audit.append(approver, "approval.refused", f"draft:{draft_id}",
                     {"channel": channel, "decision": decision, "sha256": sha256, "reason": str(exc)})
        raise


def _record(db, audit, playbook, draft_id, approver, decision, channel, sha256, comment, role) -> Approval:  # type: ignore[no-untyped-def]
    if decision not in ("approve", "reject"):
        raise ApprovalError(f"decision must be approve or reject, not {decision!r}")
    if channel not in CHANNELS:
        raise ApprovalError(f"unknown approval channel {channel!r}")
    try:
        person = playbook.person(approver)
    except KeyError:
        raise ApprovalError(f"{approver!r} is not a person in the playbook") from None
    with db.session() as s:
        draft = s.get(Draft, draft_id)
        if draft is None:
            raise ApprovalError(f"no draft {draft_id}")
        if draft.status != "pending":
            raise ApprovalError(f"draft {draft_id} v{draft.version} is {draft.status}, not awaiting sign-off")
        if sha256 != draft.sha256:
            raise ApprovalError(f"hash {sha256[:12]}… does not match draft {draft_id} v{draft.version} "
                                f"({draft.sha256[:12]}…): the text changed")
        if approver == draft.author:
            raise ApprovalError(f"{approver} wrote this draft and cannot approve it")
        inc = s.get(Incident, draft.incident_id)
        assert inc is not None
        already = s.scalars(select(Approval).where(Approval.draft_id == draft_id, Approval.approver == approver,
                                                   Approval.sha256 == sha256)).first()
        if already is not None:
            raise ApprovalError(f"{approver} already answered draft {draft_id} v{draft.version}; "
                                "one person cannot fill two roles")
    status = approval_status(db, playbook, draft_id)
    if decision == "approve":
        open_roles = [r for r in status.missing_roles if r in person.roles]
        if role is not None:
            if role not in person.roles:
                raise ApprovalError(f"{approver} does not hold role {role!r}")
            if role not in status.missing_roles:
                raise ApprovalError(f"role {role!r} is not needed (needed: {status.missing_roles})")
        elif not open_roles:
            raise ApprovalError(f"{approver} holds none of the roles still needed: {status.missing_roles}")
        role = role or open_roles[0]
    else:
        role = role or (person.roles[0] if person.roles else "none")
    now = utcnow()
    with db.session() as s:
        a = Approval(draft_id=draft_id, approver=approver, role=role, decision=decision, sha256=sha256,
                     channel=channel, comment=comment, at=now,
                     expires_at=now + timedelta(minutes=playbook.approval.expiry_minutes))
        s.add(a)
        draft = s.get(Draft, draft_id)
        assert draft is not None
        if decision == "reject":
            draft.status, draft.comments = "rejected", comment
    audit.append(approver, f"approval.{decision}", f"draft:{draft_id}",
                 {"channel": channel, "role": role, "sha256": sha256, "version": draft.version, "comment": comment,
                  "drill": channel == "drill"})
    after = approval_status(db, playbook, draft_id)
    if decision == "approve" and after.satisfied:
        with db.session() as s:
            d = s.get(Draft, draft_id)
            assert d is not None
            d.status, d.approved_at = "approved", utcnow()
        audit.append("firebreak", "draft.approved", f"draft:{draft_id}",
                     {"sha256": sha256, "roles": after.filled})
    return a


# -- drafts and versions ----------------------------------------------------------------------

def create_draft(db: Database, audit: AuditLog, incident_id: int, kind: str, sequence: int, language: str,
                 variants: dict[str, list[str]], *, author: str = "firebreak", source: str = "template",
                 comments: str | None = None) -> Draft:
    with db.session() as s:
        version = (s.scalar(select(func.max(Draft.version)).where(
            Draft.incident_id == incident_id, Draft.kind == kind, Draft.sequence == sequence)) or 0) + 1
        now = utcnow()
        d = Draft(incident_id=incident_id, kind=kind, sequence=sequence, version=version, language=language,
                  variants=variants, sha256=variants_sha256(variants), author=author, source=source, status="pending",
                  comments=comments, created_at=now, ready_at=now)
        s.add(d)
    audit.append(author, "draft.created", f"draft:{d.id}",
                 {"incident": incident_id, "kind": kind, "sequence": sequence, "version": version, "sha256": d.sha256,
                  "source": source, "language": language})
    return d


def previous_version(db: Database, draft: Draft) -> Draft | None:
    with db.session() as s:
        return s.scalars(select(Draft).where(Draft.incident_id == draft.incident_id, Draft.kind == draft.kind,
                                             Draft.sequence == draft.sequence, Draft.version < draft.version)
                         .order_by(Draft.version.desc())).first()


def diff_variants(old: dict[str, list[str]] | None, new: dict[str, list[str]]) -> str:
    if not old:
        return ""
    out = []
    for platform in sorted(new):
        a = "\n".join(old.get(platform, [])).splitlines()
        b = "\n".join(new[platform]).splitlines()
        if a != b:
            out.extend(difflib.unified_diff(a, b, f"{platform} (previous)", f"{platform} (this version)", lineterm=""))
    return "\n".join(out)


def review_markdown(db: Database, playbook: Playbook, draft: Draft) -> str:
    """What an approver sees: every platform variant, the hash they sign, the diff to the last version."""
    with db.session() as s:
        inc = s.get(Incident, draft.incident_id)
        assert inc is not None
    status = approval_status(db, playbook, draft.id)
    lines = [
        f"## {draft.kind.title()} statement, incident #{inc.id}, version {draft.version}",
        f"**Crisis:** {playbook.crisis_type(inc.type).name if inc.type else '?'} · **severity** {inc.severity} · "
        f"**started on** {inc.origin_platform}",
        f"**Needs sign-off from:** {', '.join(status.required_roles)} (still missing: {', '.join(status.missing_roles) or 'none'})",
        f"**SHA-256 you approve:** `{draft.sha256}`", "",
    ]
    for platform, parts in draft.variants.items():
        label = f"{platform} ({len(parts)} posts, thread)" if len(parts) > 1 else platform
        lines.append(f"### {label}")
        lines.extend(f"> {line}" if line else ">" for part in parts for line in (part.splitlines() + [""]))
        lines.append("")
    diff = diff_variants(previous_version(db, draft).variants if previous_version(db, draft) else None, draft.variants)
    if diff:
        lines += ["### Changes since the previous version", "```diff", diff, "```"]
    return "\n".join(lines)


def sign_off_form(db: Database, playbook: Playbook, draft: Draft, *, refused: str = "",
                  full_text: str = "") -> tuple[str, str]:
    """What the Prefect UI's sign-off form shows, as (description, text). The UI puts the
    description in a short scroll box above the form, so it holds only the essentials: the last
    answer's refusal when there was one, what is asked and of whom, the hash. The text itself
    goes where the form shows it whole: the first field's help (`text`). One variant in full
    (the others are the same words cut to each platform's length) and what each platform gets;
    every variant and the changes since the previous version are in `full_text` (an artifact)."""
    with db.session() as s:
        inc = s.get(Incident, draft.incident_id)
        assert inc is not None
    status = approval_status(db, playbook, draft.id)
    # The variant to show: the longest single post (Facebook, LinkedIn carry the whole text).
    shown_platform, parts = max(draft.variants.items(), key=lambda kv: (len(kv[1]) == 1, len("".join(kv[1]))))
    others = []
    for platform, ps in draft.variants.items():
        n = len("\n".join(ps))
        others.append(f"{platform}: {len(ps)}-post thread, {n} chars" if len(ps) > 1 else f"{platform}: {n} chars")
    crisis = playbook.crisis_type(inc.type).name if inc.type else "unclassified"
    lines = []
    if refused:
        lines += [f"**⚠ Your last answer was not accepted: {refused}**", ""]
    lines.append(f"**{draft.kind.title()} statement v{draft.version}** · incident #{inc.id} · {crisis} · severity "
                 f"{inc.severity}. Still needed: **{', '.join(status.missing_roles) or 'nobody'}**. "
                 f"sha256 `{draft.sha256[:16]}…`")
    if full_text:
        lines.append(f"Every platform's text in full{' and the changes' if previous_version(db, draft) else ''}: "
                     f"the run's artifact *{full_text}*.")
    paragraphs = [line for line in "\n".join(parts).splitlines() if line.strip()]
    text = (f"**You approve exactly this text** (as on {shown_platform}; {'; '.join(others)}):\n\n"
            + "\n\n".join(paragraphs))
    return "\n".join(lines), text


def latest_pending(db: Database, incident_id: int | None = None) -> list[Draft]:
    with db.session() as s:
        q = select(Draft).where(Draft.status == "pending")
        if incident_id is not None:
            q = q.where(Draft.incident_id == incident_id)
        return list(s.scalars(q.order_by(Draft.id)))


def ensure_publishable(db: Database, playbook: Playbook, draft_id: int) -> None:
    st = approval_status(db, playbook, draft_id)
    if not st.satisfied:
        raise PolicyViolation(f"draft {draft_id} lacks sign-off from {st.missing_roles}")


# -- proof of who answers, and what follows a rejection ----------------------------------------

def preview(draft: Draft, lines: int = 4) -> str:
    """What an approver is asked to sign, readable in a message: every platform's variant with
    its length and its first lines."""
    out = []
    for platform, parts in draft.variants.items():
        text = "\n".join(parts)
        body = [line for line in text.splitlines() if line.strip()]
        shown = "\n".join(f"    {line}" for line in body[:lines]) + ("\n    …" if len(body) > lines else "")
        posts = f"{len(parts)} posts, thread" if len(parts) > 1 else "1 post"
        out.append(f"- {platform} ({posts}, {len(text)} characters):\n{shown}")
    return "\n".join(out)


def send_codes(db: Database, audit: AuditLog, playbook: Playbook, notifiers: dict[str, Notifier], key: bytes,
               public_url: str, draft: Draft, *, ui_url: str | None = None) -> list[str]:
    """One code and one signed link per possible approver, on their own channel, once per draft.
    The message carries the text to sign and both ways to sign it: the Prefect UI form (`ui_url`,
    with the code) and the approval page behind the link."""
    status = approval_status(db, playbook, draft.id)
    ttl = timedelta(minutes=playbook.approval.expiry_minutes)
    sent = []
    for person in playbook.people:
        if person.id == draft.author or not set(person.roles) & set(status.required_roles):
            continue
        channel = preferred_channel(person)
        if channel is None:
            continue
        issued = codes_mod.issue(db, key, draft.id, person.id, ttl)
        link = f"{public_url.rstrip('/')}/approve/{issued.link_token}"
        roles = ", ".join(r for r in person.roles if r in status.required_roles)
        ui = f"Sign in the Prefect UI ({ui_url}) with your one-time code: {issued.code}" if ui_url else \
            f"Your one-time code: {issued.code} (for the sign-off form of the run in the Prefect UI)"
        body = (f"Draft {draft.kind} statement #{draft.id} v{draft.version} needs your sign-off as {roles} "
                f"(hash {draft.sha256[:12]}…).\n\nWhat you sign:\n{preview(draft)}\n\n"
                f"{ui}\nOr open: {link}\n(on your phone; the link is your proof, no code needed)\n"
                f"Both are valid for {playbook.approval.expiry_minutes} minutes. "
                f"Or from a terminal: firebreak approve {draft.id} --as {person.id}")
        send_once(db, audit, notifiers, draft.incident_id, Outgoing(
            key=f"code:{draft.id}:{person.id}", kind="code", channel=channel, target=person.channels[channel],
            subject=f"[Firebreak] Sign-off needed: {draft.kind} statement v{draft.version}", body=body,
            person=person.id))
        sent.append(person.id)
    return sent


def check_proof(db: Database, key: bytes, draft: Draft, approver: str, code: str, sha256: str, *,
                drill: bool = False) -> str:
    """Verify the proof that came with an answer (one-time code, signed link or CLI proof);
    returns the channel to record. Raises ApprovalError."""
    if not code:
        raise ApprovalError("no code: use the one-time code Firebreak sent you, your approval link, or the CLI")
    kind = codes_mod.consume(db, key, draft.id, approver, code, sha256)
    if drill:
        return "drill"
    return {"code": "ui", "link": "link", "cli": "cli"}[kind]


def next_version(db: Database, audit: AuditLog, playbook: Playbook, draft: Draft, approver: str, comment: str,
                 revision: str = "") -> Draft:
    """The version that follows a rejection. With suggested text, the rejecter becomes its
    author (so the author rule stops them approving their own words) and the reviewers see
    the diff; text that fails the statement checks is not offered for sign-off: the next
    version keeps the previous text and the comments say why the suggestion was refused."""
    comments = comment
    if revision.strip() and not playbook.approval.allow_revisions:
        audit.append(approver, "draft.revision_refused", f"draft:{draft.id}", {"reason": "revisions are off"})
        comments = f"{comments}\n\n[suggested text not used: the playbook does not allow revisions]".strip()
    elif revision.strip():
        try:
            variants = revised_variants(playbook, draft, revision)
        except PolicyViolation as exc:
            audit.append(approver, "draft.revision_refused", f"draft:{draft.id}", {"reason": str(exc)})
            log.warning(f"Suggested text refused: {exc}", draft=draft.id)
            comments = f"{comments}\n\n[suggested text refused: {exc}]".strip()
        else:
            return create_draft(db, audit, draft.incident_id, draft.kind, draft.sequence, draft.language, variants,
                                author=approver, source="revision", comments=comments)
    return create_draft(db, audit, draft.incident_id, draft.kind, draft.sequence, draft.language, draft.variants,
                        author=draft.author, source=draft.source, comments=comments)


def revised_variants(playbook: Playbook, draft: Draft, text: str) -> dict[str, list[str]]:
    """Re-split a reviewer's text for the draft's platforms and run the statement checks."""
    variants = draft_mod.revise_variants(text, list(draft.variants))
    problems = draft_mod.check_statement(playbook, variants)
    if problems:
        raise PolicyViolation("; ".join(problems))
    return variants
