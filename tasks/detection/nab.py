"""The Numenta Anomaly Benchmark (NAB) scoring method, for binary alerts.

Follows NAB's `nab/sweeper.py` (v1.1) for one fixed threshold:

* probationary rows: the first ``min(floor(0.15 * n), 0.15 * 5000)`` rows are not scored;
* inside a window, a row at index ``i`` scores
  ``scaled_sigmoid(-(right - i + 1) / width) / scaled_sigmoid(-1)`` — 1.0 at the left
  edge, falling towards 0 at the right edge (exactly NAB: the right edge itself gives a
  small positive value, ``2/(1+e^(-5/width)) - 1`` normalised); only the earliest
  alert in each window counts, times ``tp_weight``;
* a window with no alert costs ``-fn_weight``;
* an alert outside every window scores ``scaled_sigmoid(|i - prev_right| / (prev_width - 1))``
  (−1 when no window precedes it) times ``fp_weight``;
* ``scaled_sigmoid(y) = 2 / (1 + e^(5y)) - 1`` for ``y <= 3``, else −1.

The corpus score is normalised ``100 * (S - S_null) / (S_perfect - S_null)`` with
``S_null = -fn_weight * windows`` and ``S_perfect = tp_weight * windows``.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from firebreak.errors import FirebreakError

PROBATION_PERCENT = 0.15


@dataclass(frozen=True, slots=True)
class Profile:
    name: str
    tp_weight: float
    fn_weight: float
    fp_weight: float


PROFILES: dict[str, Profile] = {
    "standard": Profile("standard", 1.0, 1.0, 0.11),
    "reward_low_FP_rate": Profile("reward_low_FP_rate", 1.0, 1.0, 0.22),
    "reward_low_FN_rate": Profile("reward_low_FN_rate", 1.0, 2.0, 0.11),
}


@dataclass(slots=True)
class FileScore:
    """Raw (un-normalised) NAB score of one series under one profile."""

    score: float = 0.0
    tp: int = 0  # windows caught
    fn: int = 0  # windows missed
    fp: int = 0  # scored alerts outside every window
    windows: int = 0
    tp_scores: list[float] = field(default_factory=list)


def scaled_sigmoid(y: float) -> float:
    if y > 3.0:
        return -1.0
    # NAB: 2 * sigmoid(-5y) - 1; written in a form that cannot overflow.
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def probationary_length(n_rows: int) -> int:
    return int(min(math.floor(PROBATION_PERCENT * n_rows), PROBATION_PERCENT * 5000))


def window_indices(timestamps: Sequence[datetime], windows: Sequence[tuple[datetime, datetime]]) -> list[tuple[int, int]]:
    """Map window limits to row indices (first row >= start, last row <= end).

    NAB's labels sit exactly on row timestamps; the search only matters for hand-made windows.
    """
    out: list[tuple[int, int]] = []
    for start, end in sorted(windows):
        lo = bisect.bisect_left(timestamps, start)
        hi = bisect.bisect_right(timestamps, end) - 1
        if hi < lo:
            raise FirebreakError(f"anomaly window {start}..{end} contains no rows")
        out.append((lo, hi))
    for (_, r), (l2, _) in zip(out, out[1:]):
        if l2 <= r:
            raise FirebreakError("anomaly windows overlap")
    return out


def row_weights(n_rows: int, windows: Sequence[tuple[int, int]]) -> tuple[list[float], list[int]]:
    """NAB's unweighted score for an alert on each row, and the window id of each row (−1: none)."""
    max_tp = scaled_sigmoid(-1.0)
    scores = [-1.0] * n_rows
    window_of = [-1] * n_rows
    prev_right: int | None = None
    prev_width = 0.0
    wi = 0
    i = 0
    while i < n_rows:
        if wi < len(windows) and i == windows[wi][0]:
            left, right = windows[wi]
            width = float(right - left + 1)
            for j in range(left, right + 1):
                scores[j] = scaled_sigmoid(-(right - j + 1) / width) / max_tp
                window_of[j] = wi
            prev_right, prev_width = right, width
            wi += 1
            i = right + 1
            continue
        if prev_right is not None:
            # A one-row window would divide by zero in NAB too; treat it as width 2.
            scores[i] = scaled_sigmoid(abs(prev_right - i) / max(prev_width - 1.0, 1.0))
        i += 1
    return scores, window_of


def score_alerts(
    alerts: Sequence[bool | int],
    windows: Sequence[tuple[int, int]],
    profile: Profile,
) -> FileScore:
    """Score binary alerts on one series. ``windows`` are inclusive row-index pairs."""
    n = len(alerts)
    weights, window_of = row_weights(n, windows)
    probation = probationary_length(n)
    result = FileScore(windows=len(windows))
    caught: set[int] = set()
    for i in range(probation, n):
        if not alerts[i]:
            continue
        w = window_of[i]
        if w < 0:
            result.fp += 1
            result.score += weights[i] * profile.fp_weight
        elif w not in caught:
            caught.add(w)
            tp = weights[i] * profile.tp_weight
            result.tp_scores.append(tp)
            result.score += tp
    result.tp = len(caught)
    result.fn = len(windows) - len(caught)
    result.score -= profile.fn_weight * result.fn
    return result


def normalise(raw_total: float, n_windows: int, profile: Profile) -> float:
    null = -profile.fn_weight * n_windows
    perfect = profile.tp_weight * n_windows
    if perfect == null:
        raise FirebreakError("cannot normalise a NAB score over zero windows")
    return 100.0 * (raw_total - null) / (perfect - null)
