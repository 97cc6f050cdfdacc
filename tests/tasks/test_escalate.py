"""Escalation walks the levels until someone acknowledges; pages go out once."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from firebreak.clock import VirtualClock
from firebreak.store.models import Notification
from firebreak.tasks.escalate import acknowledge, brief_staff, run_escalation
from tests.fakes import FakeNotifier, make_incident


def test_level_two_paged_after_level_one_times_out(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook, severity=1)
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=timezone.utc))  # frozen: sleeps jump ahead

    class AckingSlack(FakeNotifier):
        """Dewi answers the moment her page arrives (no thread racing a clock that jumps)."""

        def send(self, target, message):  # type: ignore[no-untyped-def]
            delivery = super().send(target, message)
            if target == "@dewi":
                acknowledge(db, audit, inc.id, "dewi", "cli")
            return delivery

    notifiers = {"slack": AckingSlack("slack"), "email": FakeNotifier("email")}
    res = run_escalation(db, audit, playbook, notifiers, clock, inc.id, poll_s=60)
    assert res.acknowledged_by == "dewi"
    assert {p["level"] for p in res.pages} == {1, 2}
    assert {t for t, _ in notifiers["slack"].sent} >= {"@maria", "@tomas", "@dewi", "@ingrid"}
    # Nobody acknowledged level 1, so level 2 came only after level 1's timeout.
    assert clock.now() - datetime(2026, 1, 1, tzinfo=timezone.utc) >= timedelta(
        minutes=playbook.escalation.policies["standard"].levels[0].ack_timeout_minutes)


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


def test_paging_stops_when_the_incident_is_resolved_before_anyone_acknowledges(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    """Nobody acknowledged, but the crisis is over: the ladder stops at its next check instead
    of waking people (and keeping the response run open) for a crisis that has ended."""
    from firebreak.store.queries import IncidentStatus, mark

    inc = make_incident(db, playbook, severity=1)
    notifiers = {"slack": FakeNotifier("slack"), "email": FakeNotifier("email")}

    class ResolvesDuringTheWait(VirtualClock):
        def sleep(self, seconds: float) -> None:
            super().sleep(seconds)
            mark(db, inc.id, status=IncidentStatus.RESOLVED)

    res = run_escalation(db, audit, playbook, notifiers, ResolvesDuringTheWait(datetime(2026, 1, 1, tzinfo=timezone.utc)),
                         inc.id)
    assert res.resolved and not res.exhausted and res.acknowledged_by is None
    assert {p["level"] for p in res.pages} == {1}  # level 2 was never paged
    with db.session() as s:
        from firebreak.store.models import AuditEvent

        assert s.query(AuditEvent).filter_by(action="escalation.stopped").count() == 1
