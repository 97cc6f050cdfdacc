import csv
import json
import math
import random
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from firebreak.config.playbook import Detection, QuietWindow
from firebreak.errors import FirebreakError
from firebreak.tasks.detection.backtest import backtest_file, backtest_nab
from firebreak.tasks.detection.detector import Detector, bucketize

T0 = datetime(2024, 3, 4, tzinfo=timezone.utc)
STEP = timedelta(minutes=5)


def daily(i: int, level: float = 40.0) -> float:
    return level * (1 + 0.5 * math.sin(2 * math.pi * i / 288))


def series(days: int = 4, storm_at: int | None = None, seed: int = 1) -> list[tuple[datetime, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(days * 288):
        lam = daily(i)
        if storm_at is not None and storm_at <= i < storm_at + 36:
            lam *= 12
        out.append((T0 + i * STEP, max(0, int(rng.gauss(lam, math.sqrt(lam))))))
    return out


def test_storm_gives_one_alert_and_quiet_series_none() -> None:
    storm = 3 * 288 + 100
    decisions = Detector(Detection()).run(series(storm_at=storm))
    alerts = [i for i, d in enumerate(decisions) if d.alert]
    assert len(alerts) == 1 and storm <= alerts[0] <= storm + 3
    d = decisions[alerts[0]]
    assert "volume" in d.reasons and d.score > 0.5 and d.ratio > 3
    assert not any(d.alert for d in Detector(Detection()).run(series(seed=2)))


def test_online_decisions_ignore_the_future() -> None:
    s = series(storm_at=3 * 288 + 100)
    full = Detector(Detection()).run(s)
    prefix = Detector(Detection()).run(s[: 3 * 288 + 50])
    assert [d.score for d in prefix] == [d.score for d in full[: len(prefix)]]


def test_min_volume_and_quiet_windows() -> None:
    storm = 3 * 288 + 100
    quiet = QuietWindow(start=T0 + (storm - 5) * STEP, end=T0 + (storm + 40) * STEP, reason="launch")
    assert not any(d.alert for d in Detector(Detection(quiet_windows=[quiet])).run(series(storm_at=storm)))
    assert not any(d.alert for d in Detector(Detection(min_volume=10_000)).run(series(storm_at=storm)))


def test_negative_share_and_spread_reasons() -> None:
    det = Detector(Detection())
    for at, v in series(days=1):
        det.update(at, v)
    at = T0 + 288 * STEP
    d = det.update(at, int(daily(288) * 4), negative=int(daily(288) * 3), platforms=3)
    assert d.alert and {"volume", "negative_share", "spread"} <= set(d.reasons)


def test_a_milder_rise_alerts_when_prominent_critics_drive_it() -> None:
    import copy

    def after_a_day(usual_reach: int) -> Detector:
        det = Detector(Detection())
        for at, v in series(days=1):
            det.update(at, v, negative=2, negative_reach=usual_reach)
        return det

    at = T0 + 288 * STEP
    det = after_a_day(800)
    # A rise above half the volume threshold but short of it: no alert on volume alone.
    v = next(v for v in range(40, 400) if copy.deepcopy(det).update(at, v).z >= 0.6 * Detection().volume_threshold)
    assert not copy.deepcopy(det).update(at, v, negative=3, negative_reach=40_000).alert  # under reach_followers
    d = copy.deepcopy(det).update(at, v, negative=3, negative_reach=60_000)
    assert d.alert and d.reasons == ("reach",) and d.score > 0.5
    # The same followers are nothing special where critics are routinely that prominent.
    assert not after_a_day(20_000).update(at, v, negative=3, negative_reach=60_000).alert
    assert not copy.deepcopy(det).update(at, 14, negative=3, negative_reach=10**6).alert  # below min_volume


def test_out_of_order_bucket_is_an_error() -> None:
    det = Detector(Detection())
    det.update(T0, 1)
    with pytest.raises(FirebreakError):
        det.update(T0, 2)


def test_bucketize() -> None:
    ts = [T0, T0 + timedelta(minutes=1), T0 + timedelta(minutes=11)]
    assert bucketize(ts, 5) == [(T0 + STEP, 2), (T0 + 2 * STEP, 0), (T0 + 3 * STEP, 1)]


def _write(path: Path, rows: list[tuple[datetime, int]]) -> None:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value"])
        for at, v in rows:
            w.writerow([at.strftime("%Y-%m-%d %H:%M:%S"), v])


def test_backtest_file_and_nab(tmp_path: Path) -> None:
    storm = 3 * 288 + 100
    rows = series(storm_at=storm)
    _write(tmp_path / "s.csv", rows)
    n = backtest_file(tmp_path / "s.csv", tmp_path / "out.csv", Detection())
    out = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert n == 1 and len(out) == len(rows) and set(out[0]) == {"timestamp", "value", "alert", "score"}
    fmt = "%Y-%m-%d %H:%M:%S"
    win = [rows[storm - 60][0].strftime(fmt), rows[storm + 60][0].strftime(fmt)]
    (tmp_path / "windows.json").write_text(json.dumps({"s.csv": [win]}))
    seen = []
    result = backtest_nab(tmp_path, Detection(), progress=lambda i, n: seen.append((i, n)))
    assert seen == [(1, 1)] and result["windows"] == 1
    assert result["corpus"]["standard"] > 90
    assert result["files"]["s.csv"]["standard"]["tp"] == 1


def test_platform_quiet_window_silences_only_that_platform() -> None:
    storm = 3 * 288 + 100
    quiet = QuietWindow(start=T0 + (storm - 5) * STEP, end=T0 + (storm + 40) * STEP, reason="launch", platforms=["x"])
    cfg = Detection(quiet_windows=[quiet])
    rows = series(storm_at=storm)
    assert not any(d.alert for d in Detector(cfg, platform="x").run(rows))
    assert sum(d.alert for d in Detector(cfg, platform="bluesky").run(rows)) == 1
    assert sum(d.alert for d in Detector(cfg).run(rows)) == 1  # the all-platform series is not silenced


def test_busier_day_when_the_baseline_turns_seasonal_is_not_a_storm() -> None:
    # Day 4 is the first with a seasonal baseline; its residuals are larger than those of the
    # short non-seasonal baseline before it, so the sustained channel must not judge them by
    # a scale learnt on the early residuals. A 1.5x busier day is a level shift, not a storm.
    for seed in (1, 2, 3):
        rng = random.Random(seed)
        rows = []
        for i in range(5 * 288):
            lam = daily(i) * (1.5 if i >= 3 * 288 else 1.0)
            rows.append((T0 + i * STEP, max(0, int(rng.gauss(lam, math.sqrt(lam))))))
        assert not any(d.alert for d in Detector(Detection()).run(rows)), seed



def test_leave_one_out_judges_each_series_with_the_setting_that_won_on_the_others(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.detection import backtest as bt
    from firebreak.tasks.detection.nab import PROFILES

    # Raw scores per (series, threshold), one window each: 3.0 wins on B and C together, 5.0
    # would win on A itself. A must be judged at 3.0, B and C at what wins on the other two.
    raw = {("a.csv", 3.0): -0.5, ("a.csv", 5.0): 0.9, ("b.csv", 3.0): 0.8, ("b.csv", 5.0): 0.1,
           ("c.csv", 3.0): 0.7, ("c.csv", 5.0): 0.6}
    def fake_score(series, windows, cfg):  # type: ignore[no-untyped-def]
        return {"windows": 1, **{p: {"raw": raw[(series, cfg.volume_threshold)], "normalised": None} for p in PROFILES}}

    # Each series stands for itself, its name.
    monkeypatch.setattr(bt, "nab_series", lambda folder: [(n, n, []) for n in ("a.csv", "b.csv", "c.csv")])
    monkeypatch.setattr(bt, "_score_file", fake_score)
    loo = bt.backtest_nab_leave_one_out(tmp_path, Detection(), thresholds=(3.0, 5.0))
    assert loo["grid"] == 2
    chosen = {n: per["standard"]["threshold"] for n, per in loo["files"].items()}
    # a: B+C → 3.0 (1.5 vs 0.7); b: A+C → 5.0 (1.5 vs 0.2); c: A+B → 5.0 (1.0 vs 0.3).
    assert chosen == {"a.csv": 3.0, "b.csv": 5.0, "c.csv": 5.0}
    held_out_raw = raw[("a.csv", 3.0)] + raw[("b.csv", 5.0)] + raw[("c.csv", 5.0)]
    assert loo["corpus"]["standard"] == pytest.approx(bt.normalise(held_out_raw, 3, PROFILES["standard"]))


def test_leave_one_out_on_real_series(tmp_path: Path) -> None:
    from firebreak.tasks.detection.backtest import backtest_nab_leave_one_out

    storm = 3 * 288 + 100
    fmt = "%Y-%m-%d %H:%M:%S"
    windows = {}
    for name, seed in (("one.csv", 1), ("two.csv", 2)):
        rows = series(storm_at=storm, seed=seed)
        _write(tmp_path / name, rows)
        windows[name] = [[rows[storm - 60][0].strftime(fmt), rows[storm + 60][0].strftime(fmt)]]
    (tmp_path / "windows.json").write_text(json.dumps(windows))
    seen = []
    loo = backtest_nab_leave_one_out(tmp_path, Detection(), thresholds=(4.5, 60.0),
                                     progress=lambda i, n: seen.append((i, n)))
    assert seen[-1] == (2, 2)
    # 60 catches nothing, so each series is judged at 4.5, chosen on the other; the storm is caught.
    assert {per["standard"]["threshold"] for per in loo["files"].values()} == {4.5}
    assert loo["corpus"]["standard"] > 90


def test_the_fast_median_is_numpys_to_the_bit() -> None:
    import numpy as np

    from firebreak.tasks.detection.detector import _median

    rng = np.random.default_rng(3)
    for n in [1, 2, 3, 4, 5, 24, 25, 288, 289]:
        for a in (rng.normal(size=n), rng.integers(0, 4, size=n).astype(float), (rng.random(n) + 1) / 3):
            assert _median(a) == float(np.median(a))
            assert isinstance(_median(a), float)


def test_a_second_wave_a_day_later_is_seen_like_the_first() -> None:
    # Two hours at five times the usual volume, and the same again a day later. The first
    # storm must not become the measure of how far this series usually strays, or the
    # second would have to outgrow it to be seen.
    rng = random.Random(7)
    first, second = 15 * 288 + 60, 16 * 288 + 60
    det = Detector(Detection(), bucket_minutes=5)
    alerts = []
    for i in range(17 * 288):
        lam = daily(i) * (5 if first <= i < first + 24 or second <= i < second + 24 else 1)
        if det.update(T0 + i * STEP, max(0, int(rng.gauss(lam, 2 * math.sqrt(lam))))).alert:
            alerts.append(i)
    assert [a for a in alerts if first <= a < first + 24]
    assert [a for a in alerts if second <= a < second + 24]
    assert not [a for a in alerts if 4 * 288 <= a < first]  # and no false alert in the days before


def test_a_fork_decides_like_the_original_and_apart_from_it() -> None:
    rows = series(days=4, storm_at=3 * 288 + 100)
    det = Detector(Detection(), bucket_minutes=5)
    for at, v in rows[:500]:
        det.update(at, v)
    fork = det.fork()
    assert fork.cfg is det.cfg
    rest_a = [det.update(at, v) for at, v in rows[500:]]
    rest_b = [fork.update(at, v) for at, v in rows[500:]]
    assert rest_a == rest_b
    fresh = det.fork()
    fresh.update(rows[-1][0] + STEP, 10_000)  # the fork's state is its own
    assert det.update(rows[-1][0] + STEP, 10).volume == 10 and not det.update(rows[-1][0] + 2 * STEP, 10).alert


def test_a_milder_rise_alerts_on_its_own_only_on_heightened_alert() -> None:
    """After the all-clear (a heightened-alert window) the milder rise that otherwise needs a
    negative turn or high reach is enough: a flare-up is caught before it is a new storm."""
    base = series(days=4, seed=3)
    # Find a rise that is "raised" (z between half the threshold and the threshold): scale
    # one bucket until the plain detector sees a rise but does not alert.
    at_i = 3 * 288 + 100
    for factor in [x / 10 for x in range(12, 40)]:
        rows = list(base)
        rows[at_i] = (rows[at_i][0], int(daily(at_i) * factor))
        plain = Detector(Detection()).run(rows)[at_i]
        if Detection().volume_threshold / 2 <= plain.z < Detection().volume_threshold:
            break
    else:  # pragma: no cover - the series above always has such a rise
        raise AssertionError("no milder rise found")
    assert not plain.alert
    window = [(rows[at_i - 10][0], rows[at_i + 10][0])]
    heightened = Detector(Detection(), heightened=window).run(rows)
    assert heightened[at_i].alert and "heightened" in heightened[at_i].reasons
    before = [(rows[at_i + 1][0], rows[at_i + 20][0])]  # the window has not begun at the rise
    assert not Detector(Detection(), heightened=before).run(rows)[at_i].alert
    assert [d.alert for d in heightened[:at_i]] == [d.alert for d in Detector(Detection()).run(rows)[:at_i]]
