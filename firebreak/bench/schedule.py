"""How late the Prefect scheduler's monitor runs start: for every scheduler-created run of the
`monitor` deployment on a server, its start time minus its slot (expected start time).

    firebreak up --sandbox --storm-in 600 --monitor-interval 60     # leave it up an hour
    python -m firebreak.bench.schedule --api http://127.0.0.1:4200/api
"""

from __future__ import annotations

import argparse
import statistics
from datetime import datetime
from typing import Any

import httpx


def _runs(api: str, deployment: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    while True:
        page = httpx.post(f"{api}/flow_runs/filter", timeout=30, json={
            "deployments": {"name": {"any_": [deployment]}}, "flow_runs": {"tags": {"all_": ["auto-scheduled"]}},
            "sort": "EXPECTED_START_TIME_ASC", "limit": 200, "offset": len(runs)}).json()
        runs += page
        if len(page) < 200:
            return runs


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--api", default="http://127.0.0.1:4200/api")
    ap.add_argument("--deployment", default="monitor")
    args = ap.parse_args()
    runs = _runs(args.api.rstrip("/"), args.deployment)
    started = [r for r in runs if r.get("start_time")]
    if not started:
        raise SystemExit(f"no scheduler-created {args.deployment} run has started on {args.api}")
    late = sorted((_at(r["start_time"]) - _at(r["expected_start_time"])).total_seconds() for r in started)
    states: dict[str, int] = {}
    for r in runs:
        states[r["state_type"]] = states.get(r["state_type"], 0) + 1
    took = [r["total_run_time"] for r in started if r["state_type"] == "COMPLETED"]
    p95 = late[min(len(late) - 1, int(0.95 * len(late)))]
    print(f"{len(started)} runs started between {started[0]['expected_start_time'][:19]} and "
          f"{started[-1]['expected_start_time'][:19]} ({', '.join(f'{n} {s.lower()}' for s, n in sorted(states.items()))})")
    print(f"start after its slot: median {statistics.median(late):.2f} s, p95 {p95:.2f} s, max {late[-1]:.2f} s")
    if took:
        print(f"run time: median {statistics.median(took):.2f} s")


if __name__ == "__main__":
    main()
