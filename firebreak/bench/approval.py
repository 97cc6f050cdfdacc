"""Benchmark: how fast the approval page behind a signed link loads on loopback.

A real server (uvicorn) serves the page for a real draft with six platform variants and a
previous version to diff against; a client in a second process fetches it over keep-alive
and reports the median and p95 of many loads (goal: under 200 ms)."""

from __future__ import annotations

import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

CLIENT = """
import sys, time, httpx
url, n = sys.argv[1], int(sys.argv[2])
with httpx.Client() as c:
    c.get(url)  # warm the connection
    out = []
    for _ in range(n):
        t = time.perf_counter(); r = c.get(url); out.append(time.perf_counter() - t)
        assert r.status_code == 200, r.status_code
print(" ".join(f"{x:.6f}" for x in out))
"""


def bench_approval_page(loads: int = 200) -> dict[str, Any]:
    import uvicorn

    from firebreak.clock import SystemClock
    from firebreak.config.playbook import load_playbook
    from firebreak.config.settings import DEFAULT_PLAYBOOK, Settings
    from firebreak.sandbox.server import free_port
    from firebreak.domain import Platform, utcnow
    from firebreak.web.app import create_app
    from firebreak.store.db import Database
    from firebreak.store.models import Incident
    from firebreak.tasks import codes
    from firebreak.tasks.approve import create_draft
    from firebreak.flows.runtime import Runtime, set_runtime

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        settings = Settings(data_dir=Path(tmp), web_port=port)
        db = Database(f"sqlite:///{Path(tmp) / 'bench.db'}")
        db.migrate()
        playbook = load_playbook(DEFAULT_PLAYBOOK)
        rt = Runtime(settings=settings, playbook=playbook, db=db, clock=SystemClock())
        set_runtime(rt)
        with db.session() as s:
            inc = Incident(brand="fjell", status="open", type="product_safety", severity=1, origin_platform="mastodon",
                           started_at=utcnow(), detected_at=utcnow(), languages=["en"], topics=[], summary={},
                           policy_snapshot={})
            s.add(inc)
        text = "We are aware of reports about the Ember stove. We are looking into it with the highest priority."
        variants = {p.value: [text] for p in Platform}
        create_draft(db, rt.audit, inc.id, "holding", 0, "en", variants)
        d = create_draft(db, rt.audit, inc.id, "holding", 0, "en", {**variants, "x": [text + " More soon."]})
        token = codes.issue(db, codes.signing_key(settings), d.id, "maria", timedelta(hours=1)).link_token
        server = uvicorn.Server(uvicorn.Config(create_app(), host="127.0.0.1", port=port, log_level="warning"))
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        while not server.started:
            time.sleep(0.02)
        try:
            out = subprocess.run([sys.executable, "-c", CLIENT, f"http://127.0.0.1:{port}/approve/{token}", str(loads)],
                                 capture_output=True, text=True, check=True).stdout
        finally:
            server.should_exit = True
            thread.join(timeout=10)
            set_runtime(None)
            db.dispose()
    times = sorted(float(x) * 1000 for x in out.split())
    return {"loads": len(times), "median_ms": round(statistics.median(times), 2),
            "p95_ms": round(times[int(0.95 * (len(times) - 1))], 2), "max_ms": round(times[-1], 2)}
