"""The all-clear: proposed only once the mentions have been calm for the playbook's period after
the incident began, and asked with the figures measured."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from firebreak.tasks.detection.detector import Decision
from firebreak.tasks.resolve import at_baseline, calm_since, question

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=timezone.utc)


def _series(volumes: list[int], baseline: float = 10.0) -> list[Decision]:
    return [Decision(at=T0 + timedelta(minutes=5 * (i + 1)), volume=v, baseline=baseline, score=0.0,
                     ratio=v / baseline, alert=False, reasons=()) for i, v in enumerate(volumes)]


def test_calm_before_the_incident_began_is_not_an_all_clear(playbook) -> None:  # type: ignore[no-untyped-def]
    """An alert can open an incident while the mentions are calm: those calm buckets are from
    before it began and say nothing about it being over."""
    n = playbook.resolve.baseline_minutes // playbook.detection.bucket_minutes
    calm = _series([10] * (2 * n))
    started = calm[-3].at  # the alert came three buckets ago
    assert at_baseline(playbook, calm)  # without a start, it looks over
    assert not at_baseline(playbook, calm, started)
    # The series goes on calm for the whole period after the start.
    later = calm + [Decision(at=calm[-1].at + timedelta(minutes=5 * (i + 1)), volume=10, baseline=10.0, score=0.0,
                             ratio=1.0, alert=False, reasons=()) for i in range(n)]
    assert at_baseline(playbook, later, started)


def test_the_question_states_what_was_measured(playbook) -> None:  # type: ignore[no-untyped-def]
    storm_then_calm = _series([10] * 6 + [80] * 6 + [11] * 14)
    started = storm_then_calm[5].at
    since = calm_since(playbook, storm_then_calm, started)
    assert since == storm_then_calm[12].at - timedelta(minutes=5)
    q = question(playbook, 7, storm_then_calm, started)
    assert "incident #7" in q and "at baseline for 70 minutes" in q and "had 11 against a usual 10" in q
    flare = _series([10] * 6 + [80] * 6 + [11] * 13 + [90])
    assert "not at baseline" in question(playbook, 7, flare, started) and "had 90" in question(playbook, 7, flare, started)
