"""Load benchmark of the alert intake: the intake in one process, a bounded load generator in a
second process, loopback only.

    .venv/bin/python -m firebreak.bench.intake --count 20000 --concurrency 32
    .venv/bin/python -m firebreak.bench.intake --prefect   # events go to a real Prefect server too

The generator (raw asyncio HTTP/1.1, see _generate) keeps N keep-alive connections busy until it has sent `count` alerts or the
time bound passes, records each request's latency, and prints JSON. The parent then waits for
the dispatcher to give every alert its incident (and, with --prefect, to send its events) and
counts the rows: `lost` is accepted alerts missing from the store. Performance is measured
here, never in timed tests (see docs/BENCHMARKS.md).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import func, select

from firebreak.errors import FirebreakError
from firebreak.store.db import Database
from firebreak.store.models import Alert

TOKEN = "bench-intake-token"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    i = min(len(sorted_values) - 1, max(0, round(q * (len(sorted_values) - 1))))
    return sorted_values[i]


async def _generate(url: str, count: int, concurrency: int, time_bound_s: float, run: str) -> dict[str, Any]:
    """N keep-alive HTTP/1.1 connections on raw asyncio streams. Not httpx.AsyncClient: its
    connection pool costs more CPU per request than the server under test, so with 16+
    connections the generator, not the intake, set the figures."""
    from urllib.parse import urlsplit

    u = urlsplit(url)
    host, port = u.hostname or "127.0.0.1", u.port or 80
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    errors = 0
    next_i = 0
    deadline = time.monotonic() + time_bound_s

    async def worker() -> None:
        nonlocal next_i, errors
        reader, writer = await asyncio.open_connection(host, port)
        try:
            while time.monotonic() < deadline and next_i < count:
                i = next_i
                next_i += 1
                body = json.dumps({"source": "bench", "source_id": f"{run}-{i}", "brand": "fjell", "topic": "load",
                                   "volume": i % 500, "sentiment": "negative",
                                   "link": f"https://bench.example/{i}"}).encode()
                head = (f"POST /alerts HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: Bearer {TOKEN}\r\n"
                        f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n").encode()
                t = time.perf_counter()
                try:
                    writer.write(head + body)
                    resp = await reader.readuntil(b"\r\n\r\n")
                    lines = resp.split(b"\r\n")
                    status = int(lines[0].split()[1])
                    length = next(int(line.split(b":", 1)[1]) for line in lines
                                  if line.lower().startswith(b"content-length:"))
                    await reader.readexactly(length)
                except (OSError, asyncio.IncompleteReadError, ValueError, StopIteration):
                    errors += 1
                    writer.close()
                    reader, writer = await asyncio.open_connection(host, port)
                    continue
                latencies.append(time.perf_counter() - t)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    latencies.sort()
    return {"sent": len(latencies) + errors, "statuses": statuses, "errors": errors, "wall_s": wall,
            "alerts_per_s": len(latencies) / wall if wall else 0.0,
            "p50_ms": _percentile(latencies, 0.50) * 1000, "p99_ms": _percentile(latencies, 0.99) * 1000,
            "max_ms": (latencies[-1] * 1000) if latencies else float("nan"), "accepted": statuses.get(202, 0)}


def _wait_http(url: str, timeout_s: float, what: str, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FirebreakError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass  # not listening yet
        time.sleep(0.1)
    raise FirebreakError(f"{what} did not answer {url} within {timeout_s:.0f} s")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_bench(count: int = 20000, concurrency: int = 16, time_bound_s: float = 120.0, *, prefect: bool = False,
              drain_timeout_s: float = 120.0, database_url: str = "") -> dict[str, Any]:
    """Intake and generator in separate processes; returns the figures (and `lost`)."""
    with tempfile.TemporaryDirectory(prefix="firebreak-bench-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK_", "PREFECT_API_URL"))}
        env.update(FIREBREAK_DATA_DIR=str(Path(tmp) / "data"), FIREBREAK_INTAKE_TOKEN=TOKEN,
                   FIREBREAK_LOG_LEVEL="WARNING", PREFECT_SERVER_ANALYTICS_ENABLED="false")
        if database_url:
            env["FIREBREAK_DATABASE_URL"] = database_url
        db_url = database_url or f"sqlite:///{Path(tmp) / 'data' / 'firebreak.db'}"
        procs: list[subprocess.Popen[bytes]] = []
        try:
            if prefect:
                pport = _free_port()
                server_env = {**env, "PREFECT_HOME": str(Path(tmp) / "prefect"), "PREFECT_UI_ENABLED": "false"}
                procs.append(subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                               "--port", str(pport)], env=server_env,
                                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
                _wait_http(f"http://127.0.0.1:{pport}/api/health", 90, "prefect server", procs[-1])
                env["PREFECT_API_URL"] = f"http://127.0.0.1:{pport}/api"
            iport = _free_port()
            args = [sys.executable, "-m", "firebreak.web.intake", "--port", str(iport)]
            procs.append(subprocess.Popen(args + ([] if prefect else ["--no-events"]), env=env))
            url = f"http://127.0.0.1:{iport}"
            _wait_http(f"{url}/healthz", 60, "intake", procs[-1])
            gen = subprocess.run([sys.executable, "-m", "firebreak.bench.intake", "--generate", url,
                                  "--count", str(count), "--concurrency", str(concurrency),
                                  "--time-bound", str(time_bound_s)], check=False, env=env, capture_output=True,
                                 text=True,
                                 timeout=time_bound_s + 60)
            if gen.returncode != 0:
                raise FirebreakError(f"load generator failed: {gen.stderr[-2000:]}")
            result: dict[str, Any] = json.loads(gen.stdout)
            # Drain: every alert gets its incident (and its events, with --prefect).
            t_drain = time.monotonic()
            while time.monotonic() - t_drain < drain_timeout_s:
                health = httpx.get(f"{url}/healthz", timeout=5).json()
                if not prefect:
                    break
                if health["pending_events"] == 0:
                    break
                time.sleep(0.2)
            result["drain_s"] = time.monotonic() - t_drain
            result["pending_events_after_drain"] = httpx.get(f"{url}/healthz", timeout=5).json()["pending_events"]
        finally:
            for p in reversed(procs):
                _stop(p)
        db = Database(db_url)
        with db.session() as s:
            stored = int(s.scalar(select(func.count()).select_from(Alert).where(Alert.source == "bench")) or 0)
        db.dispose()
    result.update(stored=stored, lost=result["accepted"] - stored, concurrency=concurrency, count=count,
                  with_prefect=prefect, cpus=os.cpu_count())
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--count", type=int, default=20000)
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--time-bound", type=float, default=120.0)
    p.add_argument("--prefect", action="store_true", help="also send every alert's events to a Prefect server")
    p.add_argument("--database-url", default="", help="default: a fresh SQLite file")
    p.add_argument("--generate", metavar="URL", help=argparse.SUPPRESS)  # the generator process
    args = p.parse_args(argv)
    if args.generate:
        run = f"r{os.getpid()}"
        print(json.dumps(asyncio.run(_generate(args.generate, args.count, args.concurrency, args.time_bound, run))))
        return 0
    res = run_bench(args.count, args.concurrency, args.time_bound, prefect=args.prefect,
                    database_url=args.database_url)
    print(json.dumps(res, indent=2))
    ok = res["alerts_per_s"] >= 500 and res["p99_ms"] < 100 and res["lost"] == 0
    print(f"intake: {res['alerts_per_s']:.0f} alerts/s, p50 {res['p50_ms']:.1f} ms, p99 {res['p99_ms']:.1f} ms, "
          f"lost {res['lost']} of {res['accepted']} — {'OK' if ok else 'BELOW TARGET'} (≥500/s, p99 <100 ms, none lost)",
          file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
