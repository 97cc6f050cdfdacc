"""Engage stage: a reply queue so every mention that needs an answer gets one, or a deliberate,
recorded skip; offensive content is hidden per policy; criticism is never hidden or deleted.

Replies use the playbook's pre-approved templates (no new sign-off needed); each is
addressed to its author, so its text is unique and a crash can be checked against the
platform (`find_published`) before anything is sent twice. Hiding goes through one guard,
`may_hide`, which refuses anything not labelled offensive: a negative but civil comment has
no path to being hidden, and nothing here can delete a third party's content.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import or_, select

from firebreak.audit import AuditLog
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook
from firebreak.connectors.base import Connector
from firebreak.domain import Platform, utcnow
from firebreak.errors import ConnectorError, NotSupported, PolicyViolation
from firebreak.store.db import Database
from firebreak.store import effects
from firebreak.store.models import EffectStatus, Engagement, Incident, Mention

log = get_logger("firebreak.tasks.engage")


@dataclass
class EngageResult:
    answered: int = 0
    private: int = 0
    hidden: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)


def may_hide(m: Mention, playbook: Playbook) -> None:
    """Raise unless this mention may be hidden: abusive, hateful or spam, never mere criticism."""
    if not playbook.engagement.hide_offensive:
        raise PolicyViolation("the playbook does not hide offensive content")
    if not m.offensive or (m.offensive_score or 0.0) < playbook.engagement.hide_threshold:
        raise PolicyViolation(f"mention {m.id} is not offensive: criticism is never hidden")


def reply_text(playbook: Playbook, template: str, m: Mention) -> str:
    lang = m.lang if m.lang in playbook.engagement.reply_templates.get(template, {}) else playbook.brand.default_language
    body = playbook.engagement.reply_templates[template][lang].format(
        page=playbook.brand.crisis_page_url or playbook.brand.website, contact=playbook.brand.contact)
    # Addressed to the author: people see who is answered, and the text is unique per mention.
    who = m.author if m.platform in (Platform.FACEBOOK.value, Platform.INSTAGRAM.value, Platform.LINKEDIN.value) \
        else f"@{m.author.lstrip('@')}"
    return f"{who} {body}"


def decide(m: Mention, playbook: Playbook) -> tuple[str, str]:
    """(action, reason) for one mention: hide | private | reply | skip."""
    if m.offensive:
        try:
            may_hide(m, playbook)
            return "hide", "offensive content (abuse, hate or spam)"
        except PolicyViolation as exc:
            return "skip", str(exc)
    if m.complaint:
        return "private", "complaint: invite to a private channel"
    return "reply", "question: point to the statement"


@dataclass
class _Item:
    mention: Mention
    action: str
    reason: str
    key: str
    text: str | None = None
    template: str | None = None
    attempts: int = 0
    done: bool = False
    remote_id: str | None = None
    outcome: str = ""  # mention status once handled
    error: str = ""  # why the platform call failed (the record stays open: tried again next pass)


def engage(db: Database, audit: AuditLog, playbook: Playbook, connectors: dict[Platform, Connector],
           incident_id: int, *, limit: int = 2000) -> EngageResult:
    """Work the reply queue in batches: intents in one transaction before any platform call,
    outcomes in one transaction after, one audit event per batch listing every action."""
    res = EngageResult()
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        since = inc.started_at - timedelta(hours=1)
        queue = list(s.scalars(
            select(Mention).where(Mention.brand == inc.brand, Mention.created_at >= since,
                                  or_(Mention.answer_status == "open",
                                      (Mention.offensive.is_(True)) & (Mention.answer_status.not_in(("hidden", "skipped")))))
            .order_by(Mention.created_at).limit(limit)))
        items: list[_Item] = []
        lockdown = inc.type is not None and playbook.crisis_type(inc.type).lockdown
        for m in queue:
            action, reason = decide(m, playbook)
            if lockdown and action in ("private", "reply"):
                continue  # account lockdown: only approved crisis statements go out; the reply waits
            if Platform(m.platform) not in connectors:
                action, reason = "skip", f"no connector for {m.platform}"
            it = _Item(m, action, reason, f"engage:{m.id}")
            if action in ("private", "reply"):
                it.template = "private" if action == "private" else "answer"
                it.text = reply_text(playbook, it.template, m)
            row, _ = effects.intend(s, Engagement, it.key, mention_id=m.id, incident_id=incident_id, action=action,
                                    template=it.template, text=it.text, reason=reason)
            it.attempts, it.done, it.remote_id = row.attempts, row.status == EffectStatus.DONE, row.remote_id
            if action in ("private", "reply", "hide") and not it.done:
                row.attempts += 1  # committed before the call: a crash after it means "maybe sent"
            items.append(it)
    for it in items:
        m = it.mention
        if it.done or it.action == "skip":
            it.outcome = {"skip": "skipped", "hide": "hidden", "private": "private", "reply": "answered"}[it.action]
            continue
        conn = connectors[Platform(m.platform)]
        try:
            if it.action == "hide":
                conn.hide(m.platform_id)  # idempotent on every platform
                it.outcome = "hidden"
            else:
                found = None
                if it.attempts > 0:  # outcome of an earlier attempt unknown: ask before sending again
                    found = conn.find_published(it.text or "", idempotency_key=it.key, since=since)
                if found is None:
                    found = conn.publish(it.text or "", idempotency_key=it.key, reply_to=m.platform_id)
                it.remote_id = found.remote_id
                it.outcome = "private" if it.action == "private" else "answered"
        except NotSupported as exc:
            it.action, it.reason, it.outcome = "skip", f"{it.action}: {exc}", "skipped"
        except ConnectorError as exc:
            # NotSent included: nothing went out; the next pass (or the task's retry) tries again.
            it.error = str(exc)
            res.failed.append(f"{m.platform}:{m.platform_id}: {exc}")
    if res.failed:
        # One line per pass, not per mention: a platform outage must not flood the logs.
        log.warning(f"Reply queue: {len(res.failed)} action(s) failed, tried again next pass; first: {res.failed[0]}")
    handled = [it for it in items if it.outcome]
    now = utcnow()
    with db.session() as s:
        for it in items:
            if it.error:
                effects.find(s, Engagement, it.key).error = it.error[:2000]  # type: ignore[union-attr]
        for it in handled:
            row = s.scalars(select(Engagement).where(Engagement.idempotency_key == it.key)).one()
            row.status, row.action, row.reason, row.remote_id, row.done_at = (EffectStatus.DONE, it.action, it.reason,
                                                                              it.remote_id, now)
            row.error = None
            mention = s.get(Mention, it.mention.id)
            assert mention is not None
            if mention.answer_status != it.outcome:
                mention.answer_status, mention.answered_at = it.outcome, now
    for it in handled:
        res.answered += it.outcome == "answered"
        res.private += it.outcome == "private"
        res.hidden += it.outcome == "hidden"
        res.skipped += it.outcome == "skipped"
    if handled:
        audit.append("firebreak", "engage.batch", f"incident:{incident_id}", {
            "answered": res.answered, "private": res.private, "hidden": res.hidden, "skipped": res.skipped,
            "actions": [{"mention": f"{it.mention.platform}:{it.mention.platform_id}", "action": it.action,
                         "reason": it.reason, "remote_id": it.remote_id} for it in handled],
            "failed": res.failed})
    return res


def coverage(db: Database, brand: str, since: datetime) -> tuple[int, int]:
    """(handled, needing an answer) since a time: "answer everything", measured."""
    with db.session() as s:
        rows = s.execute(select(Mention.answer_status).where(Mention.brand == brand, Mention.created_at >= since,
                                                             Mention.answer_status.not_in(("none",)))).all()
    needing = [r[0] for r in rows if r[0] is not None]
    return sum(1 for r in needing if r != "open"), len(needing)
