"""Online storm detection on one mention series (a brand, or a brand × topic).

`Detector.update` is fed one bucket at a time and decides from earlier buckets only.

Baseline. Counts are kept per absolute time bucket for ``cfg.history_days``. With
``cfg.seasonal`` and at least `_SEASONAL_MIN_DAYS` of history, the expected count is the
median of the same time of day (± a few buckets) over past days — and of the same weekday
only, once two or more weeks are available — rescaled by the median ratio of recent
counts to their own seasonal expectation, which follows level shifts within a day.
Without enough history it is the median of recent buckets. Medians keep spikes out of the
baseline, and every stored count is winsorised at the alert level before it enters
history, so a storm cannot lift its own baseline quickly; a real level shift still moves
the median within about half a day.

Spread. Counts are over-dispersed, so the scale is the larger of the robust spread
(1.4826 × MAD of recent residuals), a Poisson floor ``sqrt(baseline)`` and a tail scale
(a high quantile of past residuals in normal-equivalent units, so a given z is about as
rare on every series); the volume signal is the robust z-score. A second channel averages
the last two hours, scaled by the tail of its own history, so a slow climb that never
spikes in one bucket still counts. That history only holds residuals taken against the
baseline in use: the early non-seasonal baseline follows the series closely and leaves
small residuals, so a scale learnt from them would make the first seasonal day look like
a storm. Until enough seasonal residuals exist (a day, at 5-minute buckets) the sustained
channel waits; the single-bucket tail keeps all residuals, since it measures how bursty
the series is rather than how good the baseline is.

Evidence. The two channels also combine, Stouffer-style, into
``(z + w·z_sustained) / sqrt(1 + w²)`` with ``w = 0.5`` (the two-hour mean contains the
current bucket, so it is down-weighted): a fairly high bucket inside two raised hours is a
storm even when neither channel alone reaches the threshold, which lets the threshold sit
higher and pass over lone moderate spikes. The alert score is the largest of the three.

Storms and the scales. The two-hour channel's tail leaves out the buckets of storms (every
bucket that could alert, and those after an alert until the storm has subsided): counted,
one storm would be the measure of how far the series usually strays for the whole history,
and a second wave a day later would have to outgrow the first to be seen (`firebreak
backtest --storms --second-wave` measures this). The single-bucket tail keeps them: bursty series have
after-shocks, lone spikes that follow a big one, and that tail is what passes over them.

Alerts. Volume z ≥ ``cfg.volume_threshold`` with at least ``cfg.min_volume`` mentions; or
a milder rise (half the threshold) with a negative share ≥
``cfg.negative_share_threshold`` and ≥ ``cfg.min_negative`` negatives; or that milder rise
with high reach: the bucket's negative mentions come from authors with ≥
``cfg.reach_followers`` followers in all, and ≥ 10 times the median of the past day's
buckets (an influential critic, not the brand's everyday audience). After an alert the
detector stays quiet for ``cfg.cooldown_minutes`` *and* until the storm has subsided
(z below 1 for one bucket), so one storm is one alert. ``cfg.quiet_windows`` suppress
alerts (the decision still carries its score). In a ``heightened`` window (the hours after
a crisis was declared over, ``resolve.heightened_alert_hours``) the milder rise alerts on
its own: a crisis that flares up again is caught before it grows to a new storm's size.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

import numpy as np

from firebreak.config.playbook import Detection, QuietWindow
from firebreak.domain import as_utc
from firebreak.errors import ConfigError, FirebreakError

_MAD_TO_SIGMA = 1.4826
_SEASONAL_MIN_DAYS = 3
_WEEKLY_MIN_WEEKS = 2
_TOD_HALF_WIDTH = 2  # buckets either side of the same time of day
_RECENT_MINUTES = 24 * 60  # window for the level ratio and the MAD
_FALLBACK_MINUTES = 120  # window for the non-seasonal baseline: short, so it follows the daily cycle
_MIN_HISTORY_BUCKETS = 12  # no alert before this much history: nothing to compare with
_SUSTAINED_MINUTES = 120
_SUSTAINED_WEIGHT = 0.5  # weight of the sustained channel in the combined evidence
_SUBSIDED_Z = 1.0
_REACH_RATIO = 10.0  # negative reach this many times the past day's median counts as high
# Signals that corroborate a rise: (factor on 1 − score, alerts on a milder rise on its own).
_CORROBORATION = {"negative_share": (0.5, True), "reach": (0.5, True), "spread": (0.8, False)}
_TAIL_Q = 0.999
_TAIL_REFRESH_MINUTES = 60
_TAIL_MIN_SAMPLES = 288
_Z_OF_Q = {0.9: 1.2816, 0.95: 1.6449, 0.98: 2.0537, 0.99: 2.3263, 0.995: 2.5758, 0.999: 3.0902}


@dataclass(frozen=True, slots=True)
class Decision:
    at: datetime
    volume: int
    baseline: float
    score: float  # in [0, 1]; 0.5 at the alert threshold
    ratio: float  # volume / max(baseline, 1)
    alert: bool
    reasons: tuple[str, ...]  # e.g. ("volume", "negative_share", "reach", "spread")
    z: float = 0.0  # robust z-score of the volume (diagnostics)


def _median(a: np.ndarray) -> float:
    """``np.median`` of a non-empty array without NaNs, the same value at a quarter of the
    cost on the few dozen values the detector takes it of, several times per bucket."""
    k = a.size // 2
    if a.size % 2:
        return float(np.partition(a, k)[k])
    p = np.partition(a, (k - 1, k))
    return float((p[k - 1] + p[k]) / 2)


def _epoch_minutes(at: datetime) -> float:
    return as_utc(at).timestamp() / 60.0


def bucketize(timestamps: Iterable[datetime], bucket_minutes: int) -> list[tuple[datetime, int]]:
    """Count timestamps per bucket, gaps included as zero. Each bucket is labelled by its end."""
    if bucket_minutes < 1:
        raise ConfigError("bucket_minutes must be at least 1")
    ids = sorted(int(_epoch_minutes(t) // bucket_minutes) for t in timestamps)
    if not ids:
        return []
    counts = np.bincount(np.asarray(ids) - ids[0])
    start = datetime.fromtimestamp(0, tz=timezone.utc) + timedelta(minutes=(ids[0] + 1) * bucket_minutes)
    step = timedelta(minutes=bucket_minutes)
    return [(start + i * step, int(c)) for i, c in enumerate(counts)]


class Detector:
    """Online detector for one series. Not thread-safe: one instance per series."""

    def __init__(
        self,
        cfg: Detection,
        *,
        bucket_minutes: int | None = None,
        platform: str | None = None,
        heightened: Sequence[tuple[datetime, datetime]] = (),
    ) -> None:
        self.cfg = cfg
        self.bucket_minutes = int(bucket_minutes or cfg.bucket_minutes)
        if self.bucket_minutes < 1:
            raise ConfigError("bucket_minutes must be at least 1")
        # A quiet window restricted to some platforms silences only series of those
        # platforms; the cross-platform aggregate (platform=None) is silenced only by
        # windows that cover all platforms.
        self.platform = platform
        self._per_day = max(1, round(24 * 60 / self.bucket_minutes))
        self._cap = max(self._per_day * cfg.history_days, self._per_day)
        self._vals = np.full(self._cap, np.nan)  # winsorised counts
        self._exp = np.full(self._cap, np.nan)  # seasonal expectation at the time
        self._neg_reach = np.full(self._cap, np.nan)  # followers of each bucket's negative mentions
        self._ids = np.full(self._cap, -1, dtype=np.int64)
        self._first_id: int | None = None
        self._last_id: int | None = None
        self._seen = 0
        self._recent = max(1, _RECENT_MINUTES // self.bucket_minutes)
        self._fallback = max(1, _FALLBACK_MINUTES // self.bucket_minutes)
        self._sustain = max(1, _SUSTAINED_MINUTES // self.bucket_minutes)
        self._resid = np.full(self._cap, np.nan)  # raw (not winsorised) residuals
        self._tail_scale = 0.0
        self._resid_mean = np.full(self._cap, np.nan)  # mean residual over the sustained window
        self._seasonal_resid = np.zeros(self._cap, dtype=bool)  # taken against the seasonal baseline
        self._storm = np.zeros(self._cap, dtype=bool)  # the bucket was part of a storm
        self._used_seasonal = False  # the baseline of the current bucket is seasonal
        self._tail_mode: bool | None = None
        self._tail_scale_mean = 0.0
        self._tail_at: int | None = None
        self._tail_refresh = max(1, _TAIL_REFRESH_MINUTES // self.bucket_minutes)
        self._raw_recent: list[float] = []  # residuals of the sustained window
        self._last_alert_id: int | None = None
        self._in_storm = False
        self._quiet: list[QuietWindow] = [
            w for w in cfg.quiet_windows if not w.platforms or (platform is not None and platform in w.platforms)
        ]
        # Heightened alert (the hours after a crisis was declared over): a milder rise alerts
        # on its own, without the corroboration it needs otherwise.
        self._heightened = [(as_utc(a), as_utc(b)) for a, b in heightened]

    # -- history -------------------------------------------------------------------
    def _get(self, ids: np.ndarray, arr: np.ndarray) -> np.ndarray:
        slots = ids % self._cap
        ok = self._ids[slots] == ids
        return arr[slots[ok]]

    def _put(self, bid: int, value: float, expected: float) -> None:
        slot = bid % self._cap
        self._ids[slot] = bid
        self._vals[slot] = value
        self._exp[slot] = expected

    def _seasonal_expectation(self, bid: int) -> float | None:
        if not self.cfg.seasonal or self._first_id is None:
            return None
        days = (bid - self._first_id) // self._per_day
        if days < _SEASONAL_MIN_DAYS:
            return None
        max_days = min(days, self.cfg.history_days)
        weeks = max_days // 7
        if weeks >= _WEEKLY_MIN_WEEKS:
            back = np.arange(1, weeks + 1) * 7
        else:
            back = np.arange(1, max_days + 1)
        offs = np.arange(-_TOD_HALF_WIDTH, _TOD_HALF_WIDTH + 1)
        ids = (bid - back[:, None] * self._per_day + offs[None, :]).ravel()
        vals = self._get(ids, self._vals)
        vals = vals[~np.isnan(vals)]
        if vals.size < 3:
            return None
        return _median(vals)

    def _seasonal_ready(self, bid: int) -> bool:
        return bool(
            self.cfg.seasonal
            and self._first_id is not None
            and (bid - self._first_id) // self._per_day >= _SEASONAL_MIN_DAYS
        )

    def _baseline(self, bid: int) -> tuple[float, float, float]:
        """(baseline, sigma, seasonal expectation or nan) for bucket ``bid`` from earlier buckets."""
        self._used_seasonal = False
        seasonal = self._seasonal_expectation(bid)
        ids = np.arange(bid - self._recent, bid)
        slots = ids % self._cap
        ok = self._ids[slots] == ids
        recent_vals = self._vals[slots[ok]]
        if seasonal is not None:
            recent_exp = self._exp[slots[ok]]
            good = ~np.isnan(recent_exp)
            if good.sum() >= self._fallback // 2:
                # Ratio of level now to the seasonal expectation then: follows level shifts.
                ratio = _median((recent_vals[good] + 1.0) / (recent_exp[good] + 1.0))
                base = max(0.0, (seasonal + 1.0) * ratio - 1.0)
                resid = recent_vals[good] - np.maximum(recent_exp[good] * ratio, 0.0)
                self._used_seasonal = True
                return base, self._sigma(base, resid), seasonal
        tail = recent_vals[-self._fallback :]
        base = _median(tail) if tail.size else 0.0
        return base, self._sigma(base, tail - base), float("nan") if seasonal is None else seasonal

    def _sigma(self, base: float, resid: np.ndarray) -> float:
        mad = _median(np.abs(resid - _median(resid))) if resid.size else 0.0
        return max(_MAD_TO_SIGMA * mad, math.sqrt(max(base, 1.0)), self._tail_scale)

    def _refresh_tail(self, bid: int) -> None:
        # Series differ in how bursty they are; the MAD only sees the body of the
        # distribution. Scale by a high quantile of past residuals, expressed in
        # normal-equivalent units, so "z = 4" means equally rare on every series.
        # The sustained channel's tail only counts residuals taken against the baseline in
        # use now (seasonal or not): refresh at once when the baseline switches.
        mode = self._seasonal_ready(bid)
        if self._tail_at is not None and bid - self._tail_at < self._tail_refresh and mode == self._tail_mode:
            return
        self._tail_at = bid
        self._tail_mode = mode
        # A storm is not how far the series usually strays over two hours: were its buckets
        # counted, one storm would set this scale for the whole history, and a second wave
        # would have to outgrow the first to be seen.
        m = self._resid_mean[~np.isnan(self._resid_mean) & (self._seasonal_resid == mode) & ~self._storm]
        self._tail_scale_mean = (
            max(0.0, float(np.quantile(m, _TAIL_Q))) / _Z_OF_Q[_TAIL_Q] if m.size >= _TAIL_MIN_SAMPLES else 0.0
        )
        r = self._resid[~np.isnan(self._resid)]
        if r.size < _TAIL_MIN_SAMPLES:
            return
        self._tail_scale = max(0.0, float(np.quantile(r, _TAIL_Q))) / _Z_OF_Q[_TAIL_Q]

    def _high_reach(self, bid: int, negative_reach: int) -> bool:
        """Negative mentions from authors with many followers, far more than usual here."""
        if negative_reach < self.cfg.reach_followers:
            return False
        past = self._get(np.arange(bid - self._recent, bid), self._neg_reach)
        return not past.size or negative_reach >= _REACH_RATIO * _median(past)

    def _quiet_at(self, at: datetime) -> bool:
        return any(as_utc(w.start) <= at < as_utc(w.end) for w in self._quiet)

    def _heightened_at(self, at: datetime) -> bool:
        return any(a < at <= b for a, b in self._heightened)

    # -- the decision --------------------------------------------------------------
    def update(
        self,
        at: datetime,
        volume: int,
        *,
        negative: int = 0,
        platforms: int = 1,
        negative_reach: int = 0,
    ) -> Decision:
        """The decision for the bucket ending at ``at``: ``volume`` mentions, ``negative`` of
        them negative, on ``platforms`` platforms; ``negative_reach``: the followers of the
        negative ones' authors, summed."""
        if volume < 0 or negative < 0 or negative_reach < 0:
            raise FirebreakError("volume, negative and negative_reach must be non-negative")
        at = as_utc(at)
        bid = int(_epoch_minutes(at) // self.bucket_minutes)
        if self._last_id is not None and bid <= self._last_id:
            raise FirebreakError(f"bucket at {at.isoformat()} is not after the previous one")
        cfg = self.cfg
        thr = cfg.volume_threshold
        if self._first_id is None:
            self._first_id = bid
        self._refresh_tail(bid)
        base, sigma, seasonal = self._baseline(bid)
        z = (volume - base) / sigma

        # Sustained channel: mean residual over the last window, scaled by the tail of its
        # own history (baseline errors are correlated in time, so sqrt(n) would overstate it).
        self._raw_recent.append(float(volume - base))
        if len(self._raw_recent) > self._sustain:
            self._raw_recent.pop(0)
        mean_resid = sum(self._raw_recent) / len(self._raw_recent)
        z_eff = z
        if len(self._raw_recent) == self._sustain and self._tail_scale_mean > 0:
            sigma_mean = max(self._tail_scale_mean, math.sqrt(max(base, 1.0) / self._sustain))
            z_sus = mean_resid / sigma_mean
            # Evidence adds up: a high bucket inside two raised hours beats either alone.
            # The sustained channel is down-weighted, since it contains this bucket too.
            w = _SUSTAINED_WEIGHT
            z_both = (max(z, 0.0) + w * max(z_sus, 0.0)) / math.sqrt(1.0 + w * w)
            z_eff = max(z, z_sus, z_both)

        warm = self._seen >= _MIN_HISTORY_BUCKETS
        # A rise above half the threshold (a full one is one too) lets the other signals count.
        raised = warm and volume >= cfg.min_volume and z_eff >= thr / 2
        vol_hit = raised and z_eff >= thr
        share = negative / volume if volume else 0.0
        evidence = {
            "negative_share": negative >= cfg.min_negative and share >= cfg.negative_share_threshold,
            "reach": raised and self._high_reach(bid, negative_reach),
            "spread": platforms >= cfg.spread_min_platforms > 1,
        }
        corroborating = [name for name, hit in evidence.items() if hit and raised]
        heightened = raised and not vol_hit and bool(self._heightened) and self._heightened_at(at)
        reasons = ["volume"] * vol_hit + corroborating + ["heightened"] * heightened

        # Score: logistic in z around the threshold, nudged by the corroborating signals.
        score = 1.0 / (1.0 + math.exp(-(z_eff - thr)))
        for name in corroborating:
            score = 1.0 - (1.0 - score) * _CORROBORATION[name][0]
        if not warm:
            score = 0.0
        candidate = vol_hit or heightened or any(_CORROBORATION[name][1] for name in corroborating)

        # One storm, one alert: cool-down elapsed and the previous storm has subsided.
        if self._in_storm and z_eff < _SUBSIDED_Z:
            self._in_storm = False
        cooling = self._last_alert_id is not None and (
            self._in_storm or (bid - self._last_alert_id) * self.bucket_minutes < cfg.cooldown_minutes
        )
        alert = candidate and not cooling and not self._quiet_at(at)
        if alert:
            self._last_alert_id = bid
            self._in_storm = True
        elif candidate and self._last_alert_id is not None:
            self._in_storm = True

        # Winsorise before storing so the storm does not lift its own baseline.
        cap = base + thr * sigma
        self._put(bid, min(float(volume), cap), seasonal)
        self._neg_reach[bid % self._cap] = negative_reach
        self._resid[bid % self._cap] = volume - base
        self._seasonal_resid[bid % self._cap] = self._used_seasonal
        self._storm[bid % self._cap] = self._in_storm or candidate
        if len(self._raw_recent) == self._sustain:
            self._resid_mean[bid % self._cap] = mean_resid
        self._last_id = bid
        self._seen += 1
        return Decision(
            at=at,
            volume=int(volume),
            baseline=base,
            score=float(score),
            ratio=volume / max(base, 1.0),
            alert=alert,
            reasons=tuple(reasons),
            z=float(z_eff),
        )

    def fork(self) -> Detector:
        """An independent copy of this detector's state (the settings are shared, not copied):
        what-if replays from a point in a series without replaying what came before."""
        return copy.deepcopy(self, memo={id(self.cfg): self.cfg})

    def run(self, series: Sequence[tuple[datetime, int]]) -> list[Decision]:
        """Convenience: feed a whole (timestamp, volume) series in order."""
        return [self.update(at, v) for at, v in series]
