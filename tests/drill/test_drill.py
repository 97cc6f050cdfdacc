"""The drill end to end, as a user runs it: `firebreak drill --report PATH` in its own process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def drill(tmp_path_factory, test_databases) -> tuple[dict, subprocess.CompletedProcess, str]:  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("drill")
    report = work / "report.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK_", "PREFECT_"))}
    env["FIREBREAK_DATA_DIR"] = str(work / "data")
    if test_databases.kind == "postgresql":  # honoured by firebreak/drill/run.py (else SQLite under the data dir)
        env["FIREBREAK_DRILL_DATABASE_URL"] = test_databases.url(work, "drill")
    proc = subprocess.run([str(Path(sys.executable).with_name("firebreak")), "drill", "--report", str(report)],
                          cwd=work, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return json.loads(report.read_text()), proc, str(work / "data")


def _processes_with_env(marker: str) -> list[int]:
    """Processes (the drill's children included) still carrying the drill's environment."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            env = Path(f"/proc/{pid}/environ").read_bytes()
        except OSError:
            continue
        if f"FIREBREAK_DATA_DIR={marker}".encode() in env:
            found.append(int(pid))
    return found


def test_report_is_true(drill) -> None:  # type: ignore[no-untyped-def]
    r, *_ = drill
    assert r["mentions"]["unique"] == r["mentions"]["expected"] > 500
    assert r["mentions"]["ingested"] >= r["mentions"]["unique"]
    sp = r["scheduled_posts"]
    assert sp["found"] == sp["frozen"] == sp["resumed"] >= 8 and sp["published_during_freeze"] == 0
    holding = [p for p in r["publications"] if p["kind"] == "holding"]
    assert {p["platform"] for p in holding} == {"x", "facebook", "instagram", "linkedin", "mastodon", "bluesky"}
    assert holding[0]["platform"] == r["incident"]["origin_platform"]
    assert r["publications_duplicated"] == 0
    assert all(p["approved"] and p["matches_approved_text"] for p in r["publications"])
    assert r["audit"]["verified"] and r["audit"]["events"] > 50
    assert r["follow_ups"] >= 1
    for stage in ("monitor", "detect", "classify", "escalate", "freeze", "draft", "approve", "publish", "follow_up",
                  "resolve", "resume", "postmortem"):
        assert r["stages"][stage]["started_at"] and r["stages"][stage]["finished_at"], stage


def test_incident_matches_the_scenario(drill) -> None:  # type: ignore[no-untyped-def]
    r, *_ = drill
    inc = r["incident"]
    assert inc["type"] == inc["expected"]["type"] == "product_safety"
    assert inc["severity"] == 1 and inc["origin_platform"] == "mastodon"
    assert {"en", "sv"} <= set(inc["languages"])


def test_severity_one_needs_two_people_in_two_roles(drill) -> None:  # type: ignore[no-untyped-def]
    r, *_ = drill
    holding = [a for a in r["approvals"] if a["draft_kind"] == "holding"]
    assert {(a["approver"], a["role"]) for a in holding} == {("maria", "comms"), ("ingrid", "legal")}
    assert all(a["channel"] == "drill" for a in r["approvals"])


def test_artifacts_exist(drill) -> None:  # type: ignore[no-untyped-def]
    r, *_ = drill
    pm = Path(r["artifacts"]["postmortem_html"])
    page = Path(r["artifacts"]["crisis_page_html"])
    assert pm.exists() and page.exists()
    html = pm.read_text()
    assert html.count("data:image/png;base64,") == 3  # volume, sentiment, answered share
    assert "Questions for the team" in html
    assert "Resolved" in page.read_text()
    assert r["engagement"]["answered_share"] > 0.9


def test_escalation_reached_level_two(drill) -> None:  # type: ignore[no-untyped-def]
    r, *_ = drill
    pages = [n for n in r["notifications"] if n["kind"] == "page"]
    assert {n["level"] for n in pages} == {1, 2} and all(n["status"] == "delivered" for n in pages)
    assert r["incident"]["acknowledged_by"] in {"dewi", "ingrid"}


def test_speed_targets(drill) -> None:  # type: ignore[no-untyped-def]
    r, *_ = drill
    lat = r["latency_s"]
    assert lat["detect_to_first_notification"] < 10
    assert lat["detect_to_all_frozen"] < 30
    assert lat["detect_to_draft_ready"] < 30
    assert lat["approval_to_origin_published"] < 5
    assert r["wall_clock_s"] < 180


@pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")
def test_leaves_no_process_behind(drill) -> None:  # type: ignore[no-untyped-def]
    *_, marker = drill
    assert _processes_with_env(marker) == []


def test_no_traceback_noise(drill) -> None:  # type: ignore[no-untyped-def]
    _, proc, _ = drill
    assert "Traceback" not in proc.stderr and "Traceback" not in proc.stdout
    assert "holding statement order: mastodon" in proc.stdout
