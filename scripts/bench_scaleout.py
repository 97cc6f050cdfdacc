"""Scale-out benchmark: the `monitor` flow for N brands on a Prefect process work pool, run
with 1 worker and then with 2, against one sandbox process. Loopback only, bounded in time.

    .venv/bin/python scripts/bench_scaleout.py --brands 100 --time-bound 300

What it starts (all children of this process, all stopped at the end):
* `prefect server start` on a free 127.0.0.1 port (its own PREFECT_HOME in a scratch dir);
* `firebreak sandbox` on a free port: one sandbox process serving every brand's platforms;
* the workers: `prefect worker start --pool firebreak-bench --type process --limit L`.

What it creates on that server: the process work pool, one global concurrency limit per
platform from deploy/concurrency-limits.yaml (or `--platform-limit N` for all), taken by every
monitor's platform drains (FIREBREAK_PLATFORM_LIMITS=true), and one deployment `monitor-<brand>` of
flows/monitor.py:monitor per brand, whose job variables point FIREBREAK_PLAYBOOK at a
generated playbook for that brand (the default playbook with another brand id).

Each phase (1 worker, then 2) gets a fresh Firebreak database (PostgreSQL when one answers on
127.0.0.1:5432, else SQLite) so both ingest the same mentions, creates one monitor run per
deployment, starts its workers and waits until every run is final (or the time bound). It
reports brand-monitor runs per minute and mentions ingested per second (the `received`
counts the runs return: every brand drains the same sandbox streams), the speed-up, and the
peak number of requests in flight per platform at the sandbox (it must not exceed the limit).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import yaml

from firebreak.sandbox.server import free_port
from firebreak.flows.server import stop_process_group

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
POOL = "firebreak-bench"
PLATFORMS = ("x", "facebook", "instagram", "linkedin", "mastodon", "bluesky")
PG_ADMIN = os.environ.get("FIREBREAK_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=1):
            return True
    except OSError:
        return False


def _base_env(prefect_home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK_", "PREFECT_"))}
    env.update(PREFECT_HOME=str(prefect_home), PREFECT_SERVER_ANALYTICS_ENABLED="false",
               PREFECT_LOGGING_EXTRA_LOGGERS="firebreak", PREFECT_LOGGING_LEVEL="WARNING")
    return env


class Children:
    """Child processes, each in its own process group, stopped (TERM, then KILL) in reverse order."""

    def __init__(self, logdir: Path) -> None:
        self.logdir = logdir
        self.procs: list[tuple[str, subprocess.Popen[bytes]]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.logdir / f"{name}.log", "wb")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(argv, env=env, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        self.procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
        stop_process_group(proc, timeout)

    def close(self) -> None:
        for _, proc in reversed(self.procs):
            self.stop(proc)


def wait_http(url: str, deadline_s: float, proc: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{what} did not answer at {url} within {deadline_s:.0f} s")


def wait_line(path: Path, marker: str, deadline_s: float, proc: subprocess.Popen[bytes], what: str) -> str:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}: {path.read_text()[-2000:]}")
        for line in path.read_text(errors="replace").splitlines():
            if marker in line:
                return line
        time.sleep(0.2)
    raise TimeoutError(f"{what} did not print {marker!r} within {deadline_s:.0f} s")


def write_playbooks(n: int, out: Path) -> list[tuple[str, Path]]:
    base = yaml.safe_load((REPO / "config" / "playbook.default.yaml").read_text())
    out.mkdir(parents=True, exist_ok=True)
    brands = []
    for i in range(n):
        doc = json.loads(json.dumps(base))
        brand = f"bench{i:03d}"
        doc["brand"]["id"] = brand
        doc["brand"]["name"] = f"Bench Brand {i:03d}"
        path = out / f"{brand}.yaml"
        path.write_text(yaml.safe_dump(doc, sort_keys=False, allow_unicode=True))
        brands.append((brand, path))
    return brands


class FirebreakDatabases:
    """A fresh, migrated Firebreak database per phase; PostgreSQL when it answers, else SQLite."""

    def __init__(self, work: Path, kind: str) -> None:
        self.work, self.kind = work, kind
        self.created: list[str] = []

    def empty_postgres(self, name: str) -> str:
        import sqlalchemy as sa

        from firebreak.store.db import normalise_url

        db_name = f"firebreak_bench_{os.getpid()}_{name}"
        admin = sa.create_engine(normalise_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
            c.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
        admin.dispose()
        self.created.append(db_name)
        return f"{PG_ADMIN.rsplit('/', 1)[0]}/{db_name}"

    def new(self, name: str) -> str:
        from firebreak.store.db import Database

        url = f"sqlite:///{self.work / (name + '.db')}" if self.kind == "sqlite" else self.empty_postgres(name)
        db = Database(url)
        db.migrate()
        db.dispose()
        return url

    def count_mentions(self, url: str) -> int:
        import sqlalchemy as sa

        from firebreak.store.db import Database

        db = Database(url)
        try:
            with db.engine.connect() as c:
                return int(c.execute(sa.text("SELECT count(*) FROM mentions")).scalar_one())
        finally:
            db.dispose()

    def close(self) -> None:
        if not self.created:
            return
        import sqlalchemy as sa

        from firebreak.store.db import normalise_url

        admin = sa.create_engine(normalise_url(PG_ADMIN), isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            for name in self.created:
                c.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def job_variables(run_env: dict[str, str], playbook: Path, supervisor: bool) -> dict[str, Any]:
    """A brand's job: its playbook, and (unless `supervisor`) the engine command set explicitly.
    With no command, Prefect 3.8's process worker starts a workspace supervisor process that
    then starts the engine: two Python processes, two Prefect imports per run. With a command,
    the worker starts the engine directly, and the engine runs the deployment's pull steps."""
    jv: dict[str, Any] = {"env": {**run_env, "FIREBREAK_PLAYBOOK": str(playbook)}}
    if not supervisor:
        jv["command"] = f"{sys.executable} -m prefect.engine"
    return jv


async def set_up_server(brands: list[tuple[str, Path]], run_env: dict[str, str],
                        limits: dict[str, int], supervisor: bool) -> dict[str, uuid.UUID]:
    """Work pool, per-platform global concurrency limits and one deployment per brand."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.actions import WorkPoolCreate
    from prefect.workers.process import ProcessWorker

    from firebreak.flows.limits import apply_limits

    async with get_client() as client:
        template = ProcessWorker.get_default_base_job_template()
        await client.create_work_pool(WorkPoolCreate(name=POOL, type="process", base_job_template=template))
        await apply_limits(client, limits)
        flow_id = await client.create_flow_from_name("monitor")
        ids: dict[str, uuid.UUID] = {}
        for brand, playbook in brands:
            ids[brand] = await client.create_deployment(
                flow_id=flow_id, name=f"monitor-{brand}", entrypoint="flows/monitor.py:monitor",
                work_pool_name=POOL, parameters={"respond_inline": False}, tags=["firebreak", "monitor", f"brand:{brand}"],
                pull_steps=[{"prefect.deployments.steps.set_working_directory": {"directory": str(REPO)}}],
                job_variables=job_variables(run_env, playbook, supervisor),
                concurrency_limit=1)
    return ids


async def run_phase(workers: int, worker_limit: int, deployments: dict[str, uuid.UUID], brands: list[tuple[str, Path]],
                    run_env: dict[str, str], children: Children, env: dict[str, str], time_bound_s: float,
                    logname: str, sandbox_url: str, supervisor: bool) -> dict[str, Any]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    playbooks = dict(brands)
    async with get_client() as client:
        run_ids = []
        for brand, dep in deployments.items():
            fr = await client.create_flow_run_from_deployment(
                dep, parameters={"respond_inline": False},
                job_variables=job_variables(run_env, playbooks[brand], supervisor))
            run_ids.append(fr.id)
        httpx.get(f"{sandbox_url}/_sandbox/concurrency", params={"reset": "true"}, timeout=10)
        t0 = time.monotonic()
        procs = [children.start(f"{logname}-worker{i}",
                                [str(BIN / "prefect"), "worker", "start", "--pool", POOL, "--type", "process",
                                 "--limit", str(worker_limit), "--name", f"{logname}-w{i}"], env)
                 for i in range(workers)]
        final: dict[uuid.UUID, Any] = {}
        deadline = t0 + time_bound_s
        while time.monotonic() < deadline and len(final) < len(run_ids):
            runs = await client.read_flow_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=run_ids)),
                                               limit=len(run_ids), sort="ID_DESC")
            for r in runs:
                if r.state is not None and r.state.is_final() and r.id not in final:
                    final[r.id] = r
            await asyncio.sleep(0.5)
        elapsed = time.monotonic() - t0
        for p in procs:
            children.stop(p)
        peak = httpx.get(f"{sandbox_url}/_sandbox/concurrency", timeout=10).json()["peak"]
        completed = [r for r in final.values() if r.state is not None and r.state.is_completed()]
        # Time inside the flow run (Prefect's start → end) against the whole slot a run takes:
        # the rest is the worker starting a Python process and the engine loading.
        in_run = sorted((r.end_time - r.start_time).total_seconds() for r in completed if r.start_time and r.end_time)
        received = 0
        unread = 0
        for r in completed:
            try:
                result = await r.state.result(raise_on_failure=False)
            except (ValueError, OSError, KeyError) as e:  # result not persisted / not readable
                unread += 1
                print(f"  result of {r.name} unreadable: {e}", file=sys.stderr)
                continue
            if isinstance(result, dict):
                received += sum(int(i.get("received", 0)) for i in result.get("ingested", []))
        return {"workers": workers, "worker_limit": worker_limit, "runs": len(run_ids), "completed": len(completed),
                "failed": len(final) - len(completed), "unfinished": len(run_ids) - len(final),
                "elapsed_s": round(elapsed, 2), "runs_per_min": round(len(completed) / elapsed * 60, 1),
                "mentions_received": received, "mentions_per_s": round(received / elapsed, 1),
                "results_unreadable": unread, "peak_in_flight": peak,
                "flow_run_s_median": round(in_run[len(in_run) // 2], 2) if in_run else None}


def _sigterm(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt  # so the ExitStack stops every child and drops the databases


def main(argv: list[str] | None = None) -> int:
    signal.signal(signal.SIGTERM, _sigterm)
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--brands", type=int, default=100)
    ap.add_argument("--workers", default="1,2", help="worker counts, one phase each (default 1,2)")
    ap.add_argument("--worker-limit", type=int, default=2, help="concurrent flow runs per worker (prefect worker --limit)")
    ap.add_argument("--time-bound", type=float, default=300.0, help="seconds for the whole benchmark, set-up included")
    ap.add_argument("--platform-limit", type=int, default=None,
                    help="one global concurrency limit for every platform (default: deploy/concurrency-limits.yaml)")
    ap.add_argument("--supervisor", action="store_true",
                    help="leave the job command unset, so the worker starts Prefect's workspace supervisor per run")
    ap.add_argument("--no-platform-limits", action="store_true", help="runs take no slots (to measure their cost)")
    ap.add_argument("--database", choices=["auto", "postgresql", "sqlite"], default="auto")
    ap.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    ap.add_argument("--json", type=Path, help="also write the figures here")
    args = ap.parse_args(argv)
    started = time.monotonic()
    phases = [int(w) for w in args.workers.split(",")]
    kind = args.database
    if kind == "auto":
        kind = "postgresql" if _port_open("127.0.0.1", 5432) else "sqlite"

    work = Path(tempfile.mkdtemp(prefix="fb-scaleout-"))
    (work / "logs").mkdir()
    env = _base_env(work / "prefect")
    children = Children(work / "logs")
    dbs = FirebreakDatabases(work, kind)
    report: dict[str, Any] = {"brands": args.brands, "database": kind, "cpus": os.cpu_count(), "phases": []}
    with ExitStack() as stack:
        stack.callback(lambda: None if args.keep else shutil.rmtree(work, ignore_errors=True))
        stack.callback(dbs.close)
        stack.callback(children.close)
        port = free_port()
        api = f"http://127.0.0.1:{port}/api"
        server_env = dict(env)
        if kind == "postgresql":
            # As in deploy/: a SQLite-backed Prefect server answers concurrent writes (task
            # states, concurrency slots) with 503 "database is locked" and clients back off ~2 s.
            server_env["PREFECT_API_DATABASE_CONNECTION_URL"] = (
                dbs.empty_postgres("prefect").replace("postgresql://", "postgresql+asyncpg://", 1))
        report["prefect_database"] = kind
        server = children.start("server", [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1",
                                           "--port", str(port)], server_env)
        env["PREFECT_API_URL"] = api
        env["PREFECT_WORKER_QUERY_SECONDS"] = "1"
        env["PREFECT_WORKER_PREFETCH_SECONDS"] = "5"
        os.environ.update({k: env[k] for k in ("PREFECT_API_URL", "PREFECT_HOME", "PREFECT_SERVER_ANALYTICS_ENABLED")})
        wait_http(f"{api}/health", 90, server, "prefect server")

        sport = free_port()
        brands = write_playbooks(args.brands, work / "playbooks")
        sandbox = children.start("sandbox", [str(BIN / "firebreak"), "sandbox", "--port", str(sport),
                                             "--playbook", str(brands[0][1]), "--storm-in", "600"], env)
        wait_line(work / "logs" / "sandbox.log", "sandbox platforms on", 60, sandbox, "sandbox")
        run_env = {"FIREBREAK_SANDBOX_URL": f"http://127.0.0.1:{sport}", "FIREBREAK_LOG_LEVEL": "WARNING",
                   "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
                   "PREFECT_LOCAL_STORAGE_PATH": str(work / "results")}
        for p in PLATFORMS:
            run_env[f"FIREBREAK_{p.upper()}__TOKEN"] = "bench-token"
            run_env[f"FIREBREAK_{p.upper()}__PASSWORD"] = "bench-app-password"
        os.environ["PREFECT_LOCAL_STORAGE_PATH"] = str(work / "results")
        from firebreak.flows.limits import load_limits

        limits = load_limits()
        if args.platform_limit:
            limits = {name: args.platform_limit for name in limits}
        report["limits"] = limits
        # every platform drain takes a slot of its limit
        run_env["FIREBREAK_PLATFORM_LIMITS"] = "false" if args.no_platform_limits else "true"
        deployments = asyncio.run(set_up_server(brands, run_env, limits, args.supervisor))
        report["engine_command"] = "prefect default (workspace supervisor)" if args.supervisor else "set explicitly"
        report["setup_s"] = round(time.monotonic() - started, 1)
        print(f"set up in {report['setup_s']} s: server {api}, sandbox :{sport}, {len(deployments)} deployments, "
              f"database {kind}", flush=True)
        for i, workers in enumerate(phases):
            remaining = args.time_bound - (time.monotonic() - started) - 10
            share = remaining / (len(phases) - i)
            if share < 10:
                print(f"time bound reached before the {workers}-worker phase", file=sys.stderr)
                break
            url = dbs.new(f"p{i}")
            phase_env = {**run_env, "FIREBREAK_DATABASE_URL": url}
            res = asyncio.run(run_phase(workers, args.worker_limit, deployments, brands, phase_env, children, env,
                                        share, f"phase{i}", f"http://127.0.0.1:{sport}", args.supervisor))
            res["mentions_stored"] = dbs.count_mentions(url)
            report["phases"].append(res)
            print(json.dumps(res), flush=True)
    ph = report["phases"]
    if len(ph) >= 2 and ph[0]["runs_per_min"]:
        report["speedup_runs"] = round(ph[1]["runs_per_min"] / ph[0]["runs_per_min"], 2)
    report["total_s"] = round(time.monotonic() - started, 1)
    print(json.dumps(report, indent=2))
    if args.json:
        args.json.write_text(json.dumps(report, indent=2))
    # The limits held when no platform ever had more requests in flight than its limit allows
    # (each platform drain makes one request at a time and holds one slot).
    over = {f"phase{i}:{plat}": n for i, p in enumerate(ph) for plat, n in p["peak_in_flight"].items()
            if not args.no_platform_limits and n > report["limits"].get(f"platform-{plat}", n)}
    if over:
        print(f"per-platform limits exceeded: {over}", file=sys.stderr)
    return 0 if ph and not over and all(p["unfinished"] == 0 and p["failed"] == 0 for p in ph) else 1


if __name__ == "__main__":
    sys.exit(main())
