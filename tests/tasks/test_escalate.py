"""Escalation walks the levels until someone acknowledges; pages go out once."""

from __future__ import annotations

import threading
from datetime import datetime, timezone

from firebreak.clock import VirtualClock
from firebreak.store.models import Notification
from firebreak.tasks.escalate import acknowledge, brief_staff, run_escalation
from tests.fakes import FakeNotifier, make_incident


def test_level_two_paged_after_level_one_times_out(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook, severity=1)
    notifiers = {"slack": FakeNotifier("slack"), "email": FakeNotifier("email")}
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))  # frozen: sleeps jump ahead

    def ack_when_leadership_paged() -> None:
        while not any(t == "@dewi" for t, _ in notifiers["slack"].sent):
            threading.Event().wait(0.01)
        acknowledge(db, audit, inc.id, "dewi", "cli")

    t = threading.Thread(target=ack_when_leadership_paged)
    t.start()
    res = run_escalation(db, audit, playbook, notifiers, clock, inc.id, poll_s=60)
    t.join()
    assert res.acknowledged_by == "dewi"
    levels = {p["level"] for p in res.pages}
    assert levels == {1, 2}
    assert {t for t, _ in notifiers["slack"].sent} >= {"@maria", "@tomas", "@dewi", "@ingrid"}


def test_pages_are_not_sent_twice_after_a_rerun(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook, severity=3)  # low policy: one level, no repeat
    notifiers = {"slack": FakeNotifier("slack"), "email": FakeNotifier("email")}
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))
    run_escalation(db, audit, playbook, notifiers, clock, inc.id)
    run_escalation(db, audit, playbook, notifiers, clock, inc.id)
    assert len(notifiers["slack"].sent) == 2  # maria and tomas, once each


def test_unconfigured_channel_is_recorded_not_fatal(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook, severity=3)
    res = run_escalation(db, audit, playbook, {}, VirtualClock(datetime(2026, 1, 1, tzinfo=timezone.utc)), inc.id)
    assert res.exhausted and all(p["status"] == "failed" for p in res.pages)
    with db.session() as s:
        assert all("not configured" in (n.error or "") for n in s.query(Notification))


def test_first_acknowledgement_wins(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook)
    assert acknowledge(db, audit, inc.id, "maria", "link") is True
    assert acknowledge(db, audit, inc.id, "tomas", "cli") is False


def test_staff_briefing_has_statement_and_qa(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook)
    email = FakeNotifier("email")
    brief_staff(db, audit, playbook, {"email": email}, inc.id, "We are aware of reports.")
    (target, msg), = email.sent
    assert target == "staff@fjell.example" and "We are aware of reports." in msg.body and "Q&A" in msg.body
