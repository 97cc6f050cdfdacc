from __future__ import annotations

from datetime import datetime, timezone

from firebreak.tasks.detection.detector import Decision
from firebreak.tasks.follow_up import cadence_minutes
from firebreak.tasks.resolve import at_baseline


def _d(volume: int, baseline: float) -> Decision:
    return Decision(at=datetime(2026, 1, 1, tzinfo=timezone.utc), volume=volume, baseline=baseline, score=0.0,
                    ratio=volume / max(baseline, 1), alert=False, reasons=())


def test_cadence_tightens_and_relaxes(playbook) -> None:  # type: ignore[no-untyped-def]
    assert cadence_minutes(playbook, 1, 10.0) == 15
    assert cadence_minutes(playbook, 1, 2.0) == 30
    assert cadence_minutes(playbook, 1, 1.0) == 60
    assert cadence_minutes(playbook, 3, 2.0) == 120


def test_at_baseline_needs_the_whole_period(playbook) -> None:  # type: ignore[no-untyped-def]
    n = playbook.resolve.baseline_minutes // playbook.detection.bucket_minutes
    calm = [_d(1, 1.0)] * n
    assert at_baseline(playbook, calm)
    assert not at_baseline(playbook, calm[:-1])
    assert not at_baseline(playbook, calm[:-3] + [_d(30, 1.0)] * 3)
