"""Storm drill on a recorded series: what would the detector catch on this history, and how fast?

A series' own alerts say how often it cries wolf, not which storms it would miss. So synthetic
storms are laid over the real history, one at a time, at many moments: the volume rises to
``size`` times the usual volume at that time of day (the median of the same time over the
past week), holds, and falls back, with Poisson noise. For each shape and size the drill
reports how many storms the production detector caught while they lasted and how many
minutes after the rise began.

Each storm is judged on its own: the detector runs once over the series as recorded, its state
is forked where a storm begins, and only the storm's buckets are replayed from that fork. A
storm therefore never sees another injected storm, and the drill costs one pass plus the
storms. With ``second_wave`` the same storm also comes a day earlier, and only the second is
judged: whatever the detector learns from a storm must not hide the next one.

Storms start at least four days in (the seasonal baseline needs three), a day apart with a
seeded random time of day, and away from the ``exclude`` spans (labelled windows) and the
series' own alerts, so that a real storm nearby is not counted as catching a synthetic one.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from firebreak.config.playbook import Detection
from firebreak.errors import FirebreakError
from firebreak.tasks.detection.backtest import Series, bucket_minutes_of
from firebreak.tasks.detection.detector import Detector

_WARMUP_DAYS = 4
_LEVEL_DAYS = 7  # the usual volume: median of the same time of day over this many past days
_LEVEL_HALF_WIDTH = 3  # buckets either side of the same time of day


@dataclass(frozen=True, slots=True)
class StormShape:
    name: str
    ramp_minutes: int  # from the usual volume to the peak, and back down
    hold_minutes: int  # at the peak


SHAPES = (StormShape("sudden", 5, 60), StormShape("gradual", 60, 120))
SIZES = (2.0, 4.0, 8.0, 16.0)  # peak volume as a multiple of the usual


@dataclass(slots=True)
class StormOutcome:
    shape: StormShape
    size: float
    delays: list[int | None] = field(default_factory=list)  # minutes from the rise to the alert; None: missed

    @property
    def storms(self) -> int:
        return len(self.delays)

    @property
    def caught(self) -> int:
        return sum(d is not None for d in self.delays)

    @property
    def median_delay(self) -> float | None:
        seen = [d for d in self.delays if d is not None]
        return statistics.median(seen) if seen else None


@dataclass(slots=True)
class DrillReport:
    outcomes: list[StormOutcome]
    usual_level: float  # median per-bucket volume of the series (nan for several)
    alerts: int  # on the series as recorded, past NAB's probationary rows and outside ``exclude``
    weeks: float  # length of the series those were counted over
    second_wave: bool

    @property
    def alerts_per_week(self) -> float:
        return self.alerts / self.weeks if self.weeks else 0.0

    def merge(self, other: DrillReport) -> DrillReport:
        """The report of two series together (their storms and alerts summed)."""
        outcomes = [
            StormOutcome(a.shape, a.size, a.delays + b.delays) for a, b in zip(self.outcomes, other.outcomes, strict=True)
        ]
        return DrillReport(
            outcomes,
            float("nan"),  # no one usual volume for several series
            self.alerts + other.alerts,
            self.weeks + other.weeks,
            self.second_wave,
        )


def storm_profile(shape: StormShape, bucket_minutes: int) -> np.ndarray:
    """Per bucket of the storm, the fraction of the peak's extra volume: up, hold, down."""
    ramp = max(1, round(shape.ramp_minutes / bucket_minutes))
    hold = max(1, round(shape.hold_minutes / bucket_minutes))
    up = np.arange(1, ramp + 1) / ramp
    return np.concatenate([up, np.ones(hold), up[::-1][1:]])


def usual_level(values: np.ndarray, at: int, per_day: int) -> float:
    """Median volume at this time of day over the past week (at least 1)."""
    rows = [
        values[max(0, at - k * per_day - _LEVEL_HALF_WIDTH) : max(0, at - k * per_day + _LEVEL_HALF_WIDTH + 1)]
        for k in range(1, _LEVEL_DAYS + 1)
    ]
    past = np.concatenate(rows) if rows else np.empty(0)
    return max(float(np.median(past)) if past.size else 0.0, 1.0)


def storm_starts(n: int, per_day: int, length: int, avoid: Sequence[tuple[int, int]], seed: int) -> list[int]:
    """One start a day at a seeded time of day, after the warm-up, with the storm (and, for
    a second wave, the day before it) clear of every ``avoid`` span by half a day."""
    return _clear_of(_daily_starts(n, per_day, seed), n, per_day, length, avoid)


def _daily_starts(n: int, per_day: int, seed: int) -> list[int]:
    rng = np.random.default_rng(seed)
    return [day * per_day + int(rng.integers(0, per_day)) for day in range(_WARMUP_DAYS + 1, n // per_day)]


def _clear_of(starts: list[int], n: int, per_day: int, length: int, avoid: Sequence[tuple[int, int]]) -> list[int]:
    margin = per_day // 2
    return [
        s for s in starts
        if s + length + margin < n and all(s + length + margin < a or s - per_day - margin > b for a, b in avoid)
    ]


def storm_drill(
    series: Series,
    cfg: Detection,
    *,
    shapes: Sequence[StormShape] = SHAPES,
    sizes: Sequence[float] = SIZES,
    exclude: Sequence[tuple[int, int]] = (),
    second_wave: bool = False,
    seed: int = 0,
) -> DrillReport:
    """Lay each shape × size of storm over ``series`` at many moments; see the module docstring.

    ``exclude``: (first, last) row spans to keep storms away from and not to count false
    alerts in (a NAB file's labelled windows).
    """
    if any(s <= 1 for s in sizes):
        raise FirebreakError("storm sizes are multiples of the usual volume and must be above 1")
    bucket = bucket_minutes_of(series.timestamps) or cfg.bucket_minutes
    per_day = max(1, round(24 * 60 / bucket))
    values = np.asarray(series.values, dtype=float)
    n = values.size
    profiles = {s.name: storm_profile(s, bucket) for s in shapes}
    longest = max(p.size for p in profiles.values())
    lead = per_day if second_wave else 0  # a second wave replays from the first one's start

    # One pass over the series as recorded: its own alerts (which storms keep clear of, so
    # known only at the end) and the detector's state at every moment a replay may start.
    candidates = _daily_starts(n, per_day, seed)
    wanted = {s - lead for s in candidates}
    forks: dict[int, Detector] = {}
    det = Detector(cfg, bucket_minutes=bucket)
    alerts = np.zeros(n, dtype=bool)
    for i, (t, v) in enumerate(zip(series.timestamps, series.values)):
        if i in wanted:
            forks[i] = det.fork()
        alerts[i] = det.update(t, int(v)).alert
    own = [(int(i), int(i)) for i in np.flatnonzero(alerts)]
    starts = _clear_of(candidates, n, per_day, longest, [*exclude, *own])
    levels = {s: usual_level(values, s, per_day) for s in starts}

    rng = np.random.default_rng(seed)
    outcomes = []
    for shape in shapes:
        prof = profiles[shape.name]
        for size in sizes:
            outcome = StormOutcome(shape, float(size))
            for s in starts:
                extra = rng.poisson((size - 1.0) * levels[s] * prof)
                # The replayed span: the storm, and for a second wave the day before it.
                x = values[s - lead : s + prof.size].copy()
                x[lead:] += extra
                if second_wave:
                    x[: prof.size] += extra
                delay = _first_alert(forks[s - lead].fork(), series.timestamps[s - lead : s + prof.size], x, lead)
                outcome.delays.append(None if delay is None else delay * bucket)
            outcomes.append(outcome)

    # The series' own alerts past NAB's probationary rows, outside ``exclude``: with labelled
    # windows excluded, these are its false alerts.
    start = min(int(0.15 * n), 750)
    scored = np.ones(n, dtype=bool)
    scored[:start] = False
    for a, b in exclude:
        scored[a : b + 1] = False
    weeks = scored.sum() * bucket / (7 * 24 * 60)
    return DrillReport(outcomes, float(np.median(values)), int(alerts[scored].sum()), float(weeks), second_wave)


def _first_alert(det: Detector, timestamps: Sequence[datetime], x: np.ndarray, judged_from: int) -> int | None:
    """Buckets from ``judged_from`` to the first alert at or after it, or None."""
    for j, (at, v) in enumerate(zip(timestamps, x.tolist())):
        if det.update(at, int(v)).alert and j >= judged_from:
            return j - judged_from
    return None


def format_report(report: DrillReport, title: str, *, excluded: bool = False) -> str:
    n = report.outcomes[0].storms if report.outcomes else 0
    usual = "" if np.isnan(report.usual_level) else f"usual volume {report.usual_level:g} a bucket (median); "
    lines = [
        f"storm drill: {title}",
        f"{usual}{n} storms of each kind" + (", each a day after the same storm (second wave)" if report.second_wave else ""),
        f"alerts on the series as recorded{' (outside the excluded spans)' if excluded else ''}: "
        f"{report.alerts_per_week:.2f} a week ({report.alerts} in {report.weeks:.1f} weeks)",
        "",
        f"{'storm':<28} {'caught':>9} {'median delay':>13}",
    ]
    for o in report.outcomes:
        kind = f"{o.shape.name} ({o.shape.ramp_minutes}+{o.shape.hold_minutes} min), {o.size:g}x"
        delay = "-" if o.median_delay is None else f"{o.median_delay:g} min"
        lines.append(f"{kind:<28} {f'{o.caught}/{o.storms}':>9} {delay:>13}")
    return "\n".join(lines)
