import pytest

from firebreak.bench.detect import bench_detect, format_report
from tests.conftest import scaled

pytestmark = pytest.mark.slow


def test_bench_detect_times_both_ways_and_checks_they_agree(playbook) -> None:  # type: ignore[no-untyped-def]
    n, runs = scaled(1500, 20_000), scaled(2, 3)
    r = bench_detect(playbook, n_mentions=n, runs=runs)
    assert r["mentions"] == n and r["runs"] == runs and r["database"] == "sqlite"
    assert r["buckets"] == playbook.detection.history_days * 24 * 60 // playbook.detection.bucket_minutes
    assert all(v > 0 for v in r["median_s"].values())
    ratio = r["median_s"]["rows"] / r["median_s"]["sql"]  # from the rounded medians: a loose match
    assert abs(r["ratio_rows_over_sql"] - ratio) <= 0.1 * ratio + 0.05
    assert r["scopes"] == 1 + len(playbook.crisis_types) + len(playbook.brand.accounts)
    assert set(r["median_s"]) == {"sql", "rows", "replay", "scopes_sql", "replay_every_scope", "stage"}
    assert "buckets counted by the database" in format_report(r) and "only those that could alert" in format_report(r)
