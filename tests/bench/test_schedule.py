"""The scheduler lateness report (firebreak/bench/schedule.py) reads the runs a server holds."""

from __future__ import annotations

import sys
from typing import Any

import httpx
import pytest

from firebreak.bench import schedule


def _run(slot: str, started: str | None, state: str, took: float = 4.0) -> dict[str, Any]:
    return {"expected_start_time": slot, "start_time": started, "state_type": state, "total_run_time": took}


def test_lateness_is_start_minus_slot(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    runs = [_run(f"2026-12-02T17:{m:02d}:00Z", f"2026-12-02T17:{m:02d}:0{m % 3}.500000Z", "COMPLETED") for m in range(20)]
    runs.append(_run("2026-12-02T17:30:00Z", None, "SCHEDULED"))
    seen: list[dict[str, Any]] = []

    def post(url: str, json: dict[str, Any], timeout: float) -> httpx.Response:
        seen.append(json)
        assert url.endswith("/flow_runs/filter") and json["flow_runs"] == {"tags": {"all_": ["auto-scheduled"]}}
        return httpx.Response(200, json=runs[json["offset"]:json["offset"] + json["limit"]])

    monkeypatch.setattr(schedule.httpx, "post", post)
    monkeypatch.setattr(sys, "argv", ["schedule", "--api", "http://server/api/"])
    schedule.main()
    out = capsys.readouterr().out
    assert "20 runs started" in out and "1 scheduled" in out and "20 completed" in out
    # Lateness 0.5, 1.5 and 2.5 s in turn: median 1.5, p95 and max 2.5.
    assert "median 1.50 s, p95 2.50 s, max 2.50 s" in out
    assert seen[0]["deployments"] == {"name": {"any_": ["monitor"]}}
