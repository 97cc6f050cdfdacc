"""Follow-up cadence: how long until the next update, from the playbook and the signal."""

from __future__ import annotations

import math

from firebreak.config.playbook import Playbook


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


def promised_minutes(playbook: Playbook, severity: int, volume_ratio: float) -> int:
    """The "next update in N minutes" a statement promises: whole minutes, never fewer than
    the wait (rounded up) and never zero, however short the playbook's cadence."""
    return max(1, math.ceil(cadence_minutes(playbook, severity, volume_ratio)))
