"""Follow-up cadence and the all-clear test: plain functions of the playbook and the signal."""

from __future__ import annotations

from collections.abc import Sequence

from firebreak.config.playbook import Playbook
from firebreak.tasks.detection.detector import Decision


def cadence_minutes(playbook: Playbook, severity: int, volume_ratio: float) -> float:
    """The playbook's cadence for the severity, tightened while volume stays high and relaxed
    as it decays back towards the baseline."""
    f = playbook.follow_up
    base = float(f.cadence_minutes[severity])
    if volume_ratio >= f.tighten_above_ratio:
        return base * f.tighten_factor
    if volume_ratio <= f.relax_below_ratio:
        return base * f.relax_factor
    return base


def at_baseline(playbook: Playbook, decisions: Sequence[Decision]) -> bool:
    """True when the last `resolve.baseline_minutes` of buckets sit at the baseline: no alert,
    and mean volume within `relax_below_ratio` of the mean baseline."""
    n = max(1, playbook.resolve.baseline_minutes // playbook.detection.bucket_minutes)
    window = list(decisions[-n:])
    if len(window) < n:
        return False
    vol = sum(d.volume for d in window) / n
    base = sum(d.baseline for d in window) / n
    return vol <= playbook.follow_up.relax_below_ratio * max(base, 1.0)
