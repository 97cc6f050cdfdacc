import pytest

from firebreak.bench.triage import bench_triage, print_bench_triage
from firebreak.tasks.triage import Triage

pytestmark = pytest.mark.slow


def test_bench_triage_reports_both_rates_and_ratio(capsys) -> None:  # type: ignore[no-untyped-def]
    texts = ["the app is down again, terrible service", "Aplikacja nie działa od rana", "merci, super équipe !"] * 100
    r = bench_triage(texts, runs=2, triage=Triage())
    assert r["texts"] == r["labelled"] == 300 and r["runs"] == 2 and r["threads"] == 1
    assert len(r["triage_rates"]) == len(r["vader_rates"]) == 2
    assert r["triage_median"] > 0 and r["vader_median"] > 0
    assert abs(r["ratio"] - r["triage_median"] / r["vader_median"]) < 0.01
    print_bench_triage(r)
    assert "ratio triage / VADER" in capsys.readouterr().out
