from __future__ import annotations

from datetime import datetime, timezone

from firebreak.tasks.detection.detector import Decision
from firebreak.tasks.follow_up import cadence_minutes, promised_minutes
from firebreak.tasks.resolve import at_baseline


def _d(volume: int, baseline: float) -> Decision:
    return Decision(at=datetime(2026, 1, 1, tzinfo=timezone.utc), volume=volume, baseline=baseline, score=0.0,
                    ratio=volume / max(baseline, 1), alert=False, reasons=())


def test_cadence_tightens_and_relaxes(playbook) -> None:  # type: ignore[no-untyped-def]
    assert cadence_minutes(playbook, 1, 10.0) == 15
    assert cadence_minutes(playbook, 1, 2.0) == 30
    assert cadence_minutes(playbook, 1, 1.0) == 60
    assert cadence_minutes(playbook, 3, 2.0) == 120


def test_a_short_cadence_still_promises_a_whole_minute(playbook) -> None:  # type: ignore[no-untyped-def]
    """A one-minute cadence, halved while volume is high, waits 30 s and promises "1 minute"
    (it once promised 0, which the drafting refused, and the follow-ups failed)."""
    fast = playbook.model_copy(update={"follow_up": playbook.follow_up.model_copy(
        update={"cadence_minutes": {1: 1, 2: 1, 3: 1, 4: 1}})})
    assert cadence_minutes(fast, 1, 44.0) == 0.5 and promised_minutes(fast, 1, 44.0) == 1
    assert promised_minutes(playbook, 1, 10.0) == 15
    odd = playbook.model_copy(update={"follow_up": playbook.follow_up.model_copy(update={"tighten_factor": 0.3})})
    assert promised_minutes(odd, 1, 10.0) == 9  # 30 × 0.3 = 9.0 minutes
    assert promised_minutes(odd, 2, 10.0) == 18


def test_at_baseline_needs_the_whole_period(playbook) -> None:  # type: ignore[no-untyped-def]
    n = playbook.resolve.baseline_minutes // playbook.detection.bucket_minutes
    calm = [_d(1, 1.0)] * n
    assert at_baseline(playbook, calm)
    assert not at_baseline(playbook, calm[:-1])
    assert not at_baseline(playbook, calm[:-3] + [_d(30, 1.0)] * 3)
