"""The local Prefect server's process (flows/server.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="the parent-death signal is Linux's")
def test_a_child_started_so_does_not_outlive_its_parent_killed_by_sigkill() -> None:
    parent = subprocess.Popen([sys.executable, "-c", (
        "import os, subprocess, sys, time\n"
        "from firebreak.flows.server import _die_with\n"
        "child = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'], start_new_session=True,"
        " preexec_fn=_die_with(os.getpid()))\n"
        "print(child.pid, flush=True)\n"
        "time.sleep(120)\n")], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    child = int(parent.stdout.readline())
    os.kill(child, 0)  # running, in a session of its own (a Ctrl-C's group signal would not reach it)
    parent.send_signal(signal.SIGKILL)
    parent.wait()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.kill(child, signal.SIGKILL)
    pytest.fail("the child outlived its parent")


@pytest.mark.integration
def test_concurrent_writers_on_the_local_server_wait_their_turn_instead_of_failing(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Twelve clients creating runs and moving them through their states at once (the UI, the
    runner, the pages and the monitors all write): every answer is a success. Prefect's own
    server on SQLite answers most of them 503 or drops the connection ("database is locked"):
    80 failed writes in 24 runs over 12 s of this test; over 45 s of the same load, 3 runs completed against 313
    with writers that wait (flows/server.py: sqlite_writes_wait_their_turn)."""
    import asyncio
    import uuid

    import httpx

    from firebreak.flows.server import free_port, start_prefect_server, stop_process_group

    port = free_port()
    with (tmp_path / "server.log").open("ab") as log:
        proc = start_prefect_server("127.0.0.1", port, tmp_path / "prefect", log=log)  # type: ignore[arg-type]
        try:
            api = f"http://127.0.0.1:{port}/api"
            failures: list[str] = []

            async def writer(client: httpx.AsyncClient, flow_id: str, stop: float) -> int:
                done = 0
                while time.monotonic() < stop:
                    try:
                        r = await client.post(f"{api}/flow_runs/", json={"flow_id": flow_id, "name": uuid.uuid4().hex[:8]})
                        if r.status_code >= 300:
                            failures.append(f"create: {r.status_code}")
                            continue
                        for state in ("PENDING", "RUNNING", "COMPLETED"):
                            q = await client.post(f"{api}/flow_runs/{r.json()['id']}/set_state",
                                                  json={"state": {"type": state}, "force": False})
                            if q.status_code >= 300:
                                failures.append(f"{state}: {q.status_code}")
                    except httpx.HTTPError as exc:
                        failures.append(type(exc).__name__)
                    done += 1
                return done

            async def main() -> int:
                async with httpx.AsyncClient(timeout=120) as client:
                    flow_id = (await client.post(f"{api}/flows/", json={"name": "writers"})).json()["id"]
                    stop = time.monotonic() + 6
                    return sum(await asyncio.gather(*(writer(client, flow_id, stop) for _ in range(12))))

            runs = asyncio.run(main())
        finally:
            stop_process_group(proc)
    assert not failures, f"{len(failures)} failed writes of {runs} runs: {failures[:5]}"
    assert runs > 5
