"""`firebreak up` starts the whole local stack and Ctrl-C stops all of it (integration, bounded)."""

from __future__ import annotations

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from firebreak.cli import up as up_module
from tests.cli.stack import free_port, start_up, stop_up


def _processes_with_env(marker: str) -> list[int]:
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


def _scheduled_monitor_runs(api: str) -> list[dict]:  # type: ignore[type-arg]
    """Runs of the monitor deployment that Prefect's scheduler created (not us)."""
    body = {"deployments": {"name": {"any_": ["monitor"]}}, "flow_runs": {"tags": {"all_": ["auto-scheduled"]}},
            "sort": "EXPECTED_START_TIME_ASC", "limit": 20}
    return list(httpx.post(f"{api}/flow_runs/filter", json=body, timeout=30).json())


@pytest.mark.integration
def test_up_sandbox_runs_the_scheduled_monitor_serves_everything_and_stops_cleanly(tmp_path: Path, test_databases) -> None:  # type: ignore[no-untyped-def]
    """The stack a new user starts: `firebreak up --sandbox`. The pinned dependencies work
    together: the Prefect server's scheduler (not the test) creates a monitor run, which the
    served deployment completes against the sandbox platforms with their credentials, and the
    server log has no traceback. The intake, the web pages and the sandbox inbox answer; SIGTERM
    (what `docker stop` and Kubernetes send; Ctrl-C takes the same path) stops all of it, with
    no traceback, and leaves no process behind."""
    data = str(tmp_path / "data")
    port, intake, web, sandbox = free_port(), free_port(), free_port(), free_port()
    # The server's scheduler looks for deployments to schedule every 60 s by default; every 2 s here.
    env = dict(FIREBREAK_INTAKE_TOKEN="up-test-token", PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS="2")
    if test_databases.kind == "postgresql":
        env["FIREBREAK_DATABASE_URL"] = test_databases.url(tmp_path, "up")
    proc = start_up(["--sandbox", "--port", str(port), "--intake-port", str(intake), "--web-port", str(web),
                     "--sandbox-port", str(sandbox), "--monitor-interval", "5", "--storm-in", "120"],
                    Path(data), tmp_path, **env)
    try:
        deadline = time.monotonic() + 90
        while True:
            assert proc.poll() is None, proc.communicate()[1][-3000:]
            assert time.monotonic() < deadline, "firebreak up did not come up within 90 s"
            try:
                if httpx.get(f"http://127.0.0.1:{intake}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        print(f"up in {time.monotonic() - deadline + 90:.1f} s")
        api = f"http://127.0.0.1:{port}/api"
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=30).status_code == 200  # the UI
        assert httpx.get(f"http://127.0.0.1:{web}/healthz", timeout=30).text == "ok"  # the pages approvers open
        assert httpx.get(f"http://127.0.0.1:{sandbox}/_sandbox/inbox", timeout=30).status_code == 200
        names: set[str] = set()
        while time.monotonic() < deadline and not {"monitor", "respond"} <= names:
            names = {d["name"] for d in httpx.post(f"{api}/deployments/filter", json={}, timeout=30).json()}
            time.sleep(0.3)
        assert {"monitor", "respond"} <= names
        r = httpx.post(f"http://127.0.0.1:{intake}/alerts", headers={"Authorization": "Bearer up-test-token"},
                       content=json.dumps({"source_id": "up-1", "sentiment": "negative"}), timeout=30)
        assert r.status_code == 202

        # The scheduler creates monitor runs; the served deployment runs one to the end.
        started = time.monotonic()
        done: dict = {}  # type: ignore[type-arg]
        while time.monotonic() < started + 90 and not done:
            runs = _scheduled_monitor_runs(api)
            done = next((r for r in runs if r["state_type"] in ("COMPLETED", "FAILED", "CRASHED")), {})
            time.sleep(1)
        assert done, f"no scheduler-created monitor run finished within 90 s: {_scheduled_monitor_runs(api)}"
        print(f"a scheduled monitor run finished {time.monotonic() - started:.1f} s after the stack was up")
        assert done["state_type"] == "COMPLETED", done["state"]
        from firebreak.store.db import Database
        from firebreak.store.models import Mention

        db = Database(env.get("FIREBREAK_DATABASE_URL") or f"sqlite:///{tmp_path / 'data' / 'firebreak.db'}")
        with db.session() as s:
            stored = {p for (p,) in s.query(Mention.platform).distinct()}
        db.dispose()
        assert stored == {"x", "facebook", "instagram", "linkedin", "mastodon", "bluesky"}  # credentials accepted
    finally:
        t_stop = time.monotonic()
        out, err = stop_up(proc, 30)
    print(f"stopped in {time.monotonic() - t_stop:.1f} s")
    assert proc.returncode == 0, err[-3000:]
    assert "Firebreak is up" in out and "stopped." in out and "inbox" in out
    assert "Traceback" not in err, err[-3000:]
    server_log = (tmp_path / "data" / "prefect" / "server.log").read_text(errors="replace")
    assert "Traceback" not in server_log, server_log[-3000:]
    time.sleep(0.5)
    assert _processes_with_env(data) == [], "processes left behind"


def test_ctrl_c_while_serve_registers_the_deployments_is_a_clean_stop(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """prefect.serve() registers deployments before its own Ctrl-C handling starts (seen in CI:
    exit 130 when Ctrl-C came between two registrations); that window must stop cleanly too."""
    import contextlib

    import prefect

    from firebreak.config.settings import get_settings

    monkeypatch.setenv("FIREBREAK_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("FIREBREAK_INTAKE_TOKEN", "t")
    get_settings.cache_clear()
    server = subprocess.Popen(["sleep", "60"], start_new_session=True)
    monkeypatch.setattr(up_module, "start_prefect_server", lambda *a, **k: server)
    monkeypatch.setattr(up_module, "_apply_platform_limits", lambda: None)
    monkeypatch.setattr("firebreak.web.intake.running_app", lambda *a, **k: contextlib.nullcontext())
    monkeypatch.setattr("firebreak.web.intake.create_app", lambda *a, **k: None)
    monkeypatch.setattr("firebreak.flows.deployments.deployments", lambda interval: [])

    def interrupted_serve(*args, **kwargs):  # type: ignore[no-untyped-def]
        raise KeyboardInterrupt  # as the signal handler raises it inside runner.add_deployment

    monkeypatch.setattr(prefect, "serve", interrupted_serve)
    monkeypatch.delenv("PREFECT_API_URL", raising=False)
    out = io.StringIO()
    sigterm = signal.getsignal(signal.SIGTERM)  # run_up turns SIGTERM into Ctrl-C for itself
    try:
        assert up_module.run_up(up_module.UpConfig(port=free_port()), out=out) == 0
    finally:
        signal.signal(signal.SIGTERM, sigterm)
        get_settings.cache_clear()
    assert "stopped." in out.getvalue()
    assert server.poll() is not None, "the Prefect server's process group was not stopped"


def test_web_without_a_prefect_server_says_so_instead_of_starting_one(tmp_path: Path) -> None:
    """`firebreak web` answers runs paused on a Prefect server: with none to reach, it says how
    to give it one and exits, instead of starting a throwaway server no run is waiting on."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK_", "PREFECT_"))}
    env.update(FIREBREAK_DATA_DIR=str(tmp_path / "data"), PREFECT_API_URL=f"http://127.0.0.1:{free_port()}/api")
    exe = str(Path(sys.executable).with_name("firebreak"))
    proc = subprocess.run([exe, "web", "--port", str(free_port())], env=env, cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 1
    assert "does not answer" in proc.stderr and "PREFECT_API_URL" in proc.stderr
    assert "Traceback" not in proc.stderr
