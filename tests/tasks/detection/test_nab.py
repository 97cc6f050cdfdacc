import math
from datetime import datetime, timedelta

import pytest

from firebreak.errors import FirebreakError
from firebreak.tasks.detection.nab import PROFILES, normalise, probationary_length, scaled_sigmoid, score_alerts, window_indices

STD = PROFILES["standard"]
N = 1000  # probation: 150 rows
WIN = [(400, 499)]  # width 100


def alerts_at(*rows: int, n: int = N) -> list[int]:
    a = [0] * n
    for r in rows:
        a[r] = 1
    return a


def test_scaled_sigmoid_matches_nab() -> None:
    assert scaled_sigmoid(0.0) == pytest.approx(0.0)
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)
    assert scaled_sigmoid(3.5) == -1.0
    assert scaled_sigmoid(1.0) == pytest.approx(2 / (1 + math.exp(5)) - 1)


def test_probationary_length() -> None:
    assert probationary_length(1000) == 150
    assert probationary_length(15800) == 750


def test_early_alert_scores_one() -> None:
    s = score_alerts(alerts_at(400), WIN, STD)
    assert s.score == pytest.approx(1.0) and s.tp == 1 and s.fp == 0


def test_late_alert_scores_little_and_only_earliest_counts() -> None:
    mid = score_alerts(alerts_at(450, 460), WIN, STD)
    assert mid.score == pytest.approx(scaled_sigmoid(-50 / 100) / scaled_sigmoid(-1.0))
    edge = score_alerts(alerts_at(499), WIN, STD)
    assert 0 < edge.score < 0.03  # NAB: the right edge is -1/width, nearly 0


def test_missed_window_costs_fn_weight() -> None:
    assert score_alerts(alerts_at(), WIN, STD).score == -1.0
    assert score_alerts(alerts_at(), WIN, PROFILES["reward_low_FN_rate"]).score == -2.0


def test_false_alerts_before_and_after_a_window() -> None:
    before = score_alerts(alerts_at(300, 400), WIN, STD)
    assert before.fp == 1 and before.score == pytest.approx(1.0 - 0.11)
    just_after = score_alerts(alerts_at(400, 500), WIN, STD)
    # one row past the right edge: sigmoid(1/99) is close to 0, so almost free
    assert just_after.score == pytest.approx(1.0 + 0.11 * scaled_sigmoid(1 / 99))
    far_after = score_alerts(alerts_at(400, 900), WIN, PROFILES["reward_low_FP_rate"])
    assert far_after.score == pytest.approx(1.0 - 0.22)


def test_probationary_rows_are_not_scored() -> None:
    s = score_alerts(alerts_at(10, 149), WIN, STD)
    assert s.fp == 0 and s.score == -1.0


def test_normalise() -> None:
    assert normalise(-3.0, 3, STD) == 0.0
    assert normalise(3.0, 3, STD) == 100.0
    assert normalise(0.0, 4, STD) == 50.0


def test_window_indices() -> None:
    t0 = datetime(2015, 1, 1)
    ts = [t0 + timedelta(minutes=5 * i) for i in range(100)]
    assert window_indices(ts, [(ts[10], ts[20])]) == [(10, 20)]
    with pytest.raises(FirebreakError):
        window_indices(ts, [(ts[10], ts[20]), (ts[15], ts[30])])
