import math
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest

from firebreak.cli import main
from firebreak.config.playbook import Detection
from firebreak.errors import FirebreakError
from firebreak.tasks.detection.backtest import Series
from firebreak.tasks.detection.storms import SHAPES, StormShape, format_report, storm_drill, storm_profile, storm_starts, usual_level

T0 = datetime(2024, 3, 4, tzinfo=timezone.utc)
DAY = 288


def _series(days: int = 12, level: float = 60.0, seed: int = 3) -> Series:
    rng = np.random.default_rng(seed)
    i = np.arange(days * DAY)
    values = rng.poisson(level * (1 + 0.5 * np.sin(2 * np.pi * i / DAY)))
    return Series([T0 + timedelta(minutes=5 * int(k)) for k in i], [int(v) for v in values])


def test_storm_profile_rises_holds_and_falls() -> None:
    sudden = storm_profile(StormShape("s", 5, 60), 5)
    assert sudden.tolist() == [1.0] * 13
    gradual = storm_profile(StormShape("g", 60, 120), 5)
    assert gradual.size == 12 + 24 + 11
    assert gradual[0] == pytest.approx(1 / 12) and gradual.max() == 1.0 and gradual[-1] == pytest.approx(1 / 12)
    assert np.all(np.diff(gradual[:12]) > 0) and np.all(np.diff(gradual[36:]) < 0)


def test_usual_level_is_the_median_at_that_time_of_day_over_the_past_week() -> None:
    values = np.zeros(10 * DAY)
    values[np.arange(10) * DAY + 100] = 50.0  # busy at bucket 100 of each day only
    values[9 * DAY + 99 : 9 * DAY + 102] = 50.0
    assert usual_level(values, 9 * DAY + 100, DAY) == 1.0  # one busy bucket in seven: the median is 0, floored at 1
    values[np.arange(9) * DAY + 99] = 50.0
    values[np.arange(9) * DAY + 101] = 50.0
    values[np.arange(9) * DAY + 98] = 50.0
    values[np.arange(9) * DAY + 102] = 50.0
    assert usual_level(values, 9 * DAY + 100, DAY) == 50.0


def test_storm_starts_skip_the_warm_up_and_keep_clear_of_spans() -> None:
    starts = storm_starts(20 * DAY, DAY, 47, [(10 * DAY, 11 * DAY)], seed=1)
    assert starts == storm_starts(20 * DAY, DAY, 47, [(10 * DAY, 11 * DAY)], seed=1)  # seeded
    assert min(starts) >= 5 * DAY
    for s in starts:  # the storm, and the day before it (a second wave's first), clear by half a day
        assert s + 47 + DAY // 2 < 10 * DAY or s - DAY - DAY // 2 > 11 * DAY
    assert len(starts) >= 10


def test_big_storms_are_caught_at_once_and_small_ones_not() -> None:
    report = storm_drill(_series(), Detection(), sizes=(1.2, 16.0))
    by = {(o.shape.name, o.size): o for o in report.outcomes}
    (n,) = {o.storms for o in report.outcomes}  # the same moments for every kind of storm
    assert n >= 6
    sudden_big = by[("sudden", 16.0)]
    assert sudden_big.caught == sudden_big.storms and sudden_big.median_delay == 0
    assert by[("gradual", 16.0)].caught == by[("gradual", 16.0)].storms
    assert by[("gradual", 16.0)].median_delay <= 60  # within the hour's ramp
    assert by[("sudden", 1.2)].caught == 0  # within the series' own noise
    assert report.alerts == 0 and report.weeks == pytest.approx((12 * DAY - int(0.15 * 12 * DAY)) * 5 / (7 * 24 * 60))  # past the probation
    assert report.usual_level == pytest.approx(60, rel=0.1)


def test_second_wave_and_merge_and_format() -> None:
    series = _series()
    one = storm_drill(series, Detection(), sizes=(16.0,), second_wave=True, seed=2)
    n = one.outcomes[0].storms
    assert one.second_wave and n >= 6 and all(o.storms == n for o in one.outcomes)
    assert one.outcomes[0].caught >= n - 1  # the first storm does not hide the second
    both = one.merge(one)
    assert both.outcomes[0].storms == 2 * n and both.alerts == 2 * one.alerts and math.isnan(both.usual_level)
    text = format_report(one, "s.csv")
    assert "second wave" in text and "sudden (5+60 min), 16x" in text and "usual volume" in text
    assert "usual volume" not in format_report(both, "two")


def test_sizes_must_exceed_the_usual_volume() -> None:
    with pytest.raises(FirebreakError, match="above 1"):
        storm_drill(_series(days=6), Detection(), sizes=(1.0,))


def test_cli_storm_drill_on_a_series_and_a_nab_folder(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    series = _series(days=7)
    lines = ["timestamp,value"] + [f"{t:%Y-%m-%d %H:%M:%S},{v}" for t, v in zip(series.timestamps, series.values)]
    (tmp_path / "s.csv").write_text("\n".join(lines) + "\n")
    assert main(["backtest", str(tmp_path / "s.csv"), "--storms"]) == 0
    out = capsys.readouterr().out
    assert out.count(" min), ") == len(SHAPES) * 4  # one row per shape and size
    (tmp_path / "windows.json").write_text('{"s.csv": [["2024-03-09 00:00:00", "2024-03-09 06:00:00"]]}')
    assert main(["backtest", "--nab", str(tmp_path), "--storms", "--second-wave"]) == 0
    out = capsys.readouterr().out
    assert "labelled windows excluded" in out and "second wave" in out
