"""Approvers who have not answered a waiting draft are reminded, at most once per interval."""

from __future__ import annotations

from datetime import datetime, timedelta

from firebreak.store.models import Draft, Notification
from firebreak.tasks.approve import create_draft, record_decision
from firebreak.tasks.reminders import due_reminders, remind_interval, send_reminders
from tests.fakes import FakeNotifier, make_incident


VARIANTS = {"mastodon": ["We are looking into reports about the Ember stove."]}


def _draft(db, audit, playbook, severity: int = 1, author: str = "firebreak"):  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook, severity=severity)
    d = create_draft(db, audit, inc.id, "update", 1, "en", VARIANTS, author=author)
    return d, d.ready_at


def _notifiers() -> dict[str, FakeNotifier]:
    return {c: FakeNotifier(c) for c in ("email", "slack", "sms", "teams", "webhook")}


def _reminders(db) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    with db.session() as s:
        return sorted((n.person or "", n.idempotency_key) for n in s.query(Notification).filter_by(kind="reminder"))


def test_interval_defaults_to_ten_minutes_when_the_playbook_has_none(playbook) -> None:  # type: ignore[no-untyped-def]
    expected = getattr(playbook.approval, "remind_every_minutes", None) or 10
    assert remind_interval(playbook) == timedelta(minutes=expected)


def test_nobody_before_the_first_interval_then_everyone_who_could_sign(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d, ready = _draft(db, audit, playbook, severity=1)  # comms + legal
    every = remind_interval(playbook)
    assert due_reminders(db, playbook, d.id, ready + every - timedelta(seconds=1)) == []
    assert due_reminders(db, playbook, d.id, ready + every) == ["maria", "tomas", "ingrid", "lena"]


def test_only_those_who_have_not_answered_for_a_missing_role(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d, ready = _draft(db, audit, playbook, severity=1)
    record_decision(db, audit, playbook, d.id, "maria", "approve", "cli", d.sha256)
    # comms is filled by maria: tomas need not sign; ingrid (legal) still must.
    assert due_reminders(db, playbook, d.id, ready + remind_interval(playbook)) == ["ingrid", "lena"]
    record_decision(db, audit, playbook, d.id, "ingrid", "approve", "cli", d.sha256)
    assert due_reminders(db, playbook, d.id, ready + 5 * remind_interval(playbook)) == []


def test_author_and_rejected_or_finished_drafts_get_no_reminders(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d, ready = _draft(db, audit, playbook, severity=3, author="maria")  # comms only; maria wrote it
    later = ready + remind_interval(playbook)
    assert due_reminders(db, playbook, d.id, later) == ["tomas"]
    record_decision(db, audit, playbook, d.id, "tomas", "reject", "cli", d.sha256, comment="too vague")
    assert due_reminders(db, playbook, d.id, later) == []
    d2, ready2 = _draft(db, audit, playbook, severity=3)
    with db.session() as s:
        row = s.get(Draft, d2.id)
        assert row is not None
        row.status = "published"
    assert due_reminders(db, playbook, d2.id, ready2 + remind_interval(playbook)) == []


def test_at_most_one_reminder_per_interval_and_no_burst_after_a_long_wait(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d, ready = _draft(db, audit, playbook, severity=3)  # comms: maria and tomas
    every = remind_interval(playbook)
    notifiers = _notifiers()
    t1 = ready + every + timedelta(seconds=5)
    assert send_reminders(db, audit, playbook, notifiers, d.id, t1) == ["maria", "tomas"]
    # Checking again within the same interval (a restarted run, a quick re-check) sends nothing.
    assert send_reminders(db, audit, playbook, notifiers, d.id, t1 + every / 2) == []
    # A check that comes five intervals late sends one reminder, not the four it "missed".
    t5 = ready + 5 * every + timedelta(seconds=1)
    assert send_reminders(db, audit, playbook, notifiers, d.id, t5) == ["maria", "tomas"]
    assert send_reminders(db, audit, playbook, notifiers, d.id, t5 + timedelta(seconds=30)) == []
    assert _reminders(db) == [("maria", f"remind:{d.id}:maria:1"), ("maria", f"remind:{d.id}:maria:5"),
                              ("tomas", f"remind:{d.id}:tomas:1"), ("tomas", f"remind:{d.id}:tomas:5")]
    sent = [m for n in notifiers.values() for _, m in n.sent]
    assert len(sent) == 4 and all(f"#{d.id}" in m.body and "sign-off" in m.body for m in sent)


def test_a_failed_reminder_is_retried_with_the_same_key(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d, ready = _draft(db, audit, playbook, severity=3)
    t1 = ready + remind_interval(playbook)
    down = {c: FakeNotifier(c, fail=True) for c in ("email", "slack", "sms", "teams", "webhook")}
    send_reminders(db, audit, playbook, down, d.id, t1)
    with db.session() as s:
        assert {n.status for n in s.query(Notification).filter_by(kind="reminder")} == {"failed"}
    # Still in the same slot: the undelivered reminder is retried under its own key, once.
    up = _notifiers()
    assert send_reminders(db, audit, playbook, up, d.id, t1 + timedelta(seconds=30)) == ["maria", "tomas"]
    assert send_reminders(db, audit, playbook, up, d.id, t1 + timedelta(seconds=60)) == []
    with db.session() as s:
        assert {(n.idempotency_key.rsplit(":", 1)[1], n.status) for n in s.query(Notification)
                .filter_by(kind="reminder")} == {("1", "done")}
    assert sum(len(n.sent) for n in up.values()) == 2


def test_unknown_draft_reminds_nobody(db, playbook) -> None:  # type: ignore[no-untyped-def]
    assert due_reminders(db, playbook, 98765, datetime.now().astimezone()) == []
