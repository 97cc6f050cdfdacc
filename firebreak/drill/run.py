"""A full crisis drill on the embedded defaults: a Prefect server of its own (or the one
PREFECT_API_URL names), SQLite, the sandbox
platforms on loopback, a loopback mailbox and Slack sink.

Time: platform time is virtual. The drill steps it bucket by bucket while it monitors
ordinary chatter; when a crisis is detected it lets time run at wall-clock speed while the
freeze races the posts that are about to go out, then plays the rest of the crisis
`drill.time_compression` times faster. All latencies reported are wall-clock.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from firebreak.clock import VirtualClock
from firebreak.config.logging import configure_logging, get_logger
from firebreak.config.playbook import Playbook, load_playbook
from firebreak.config.settings import PlatformSettings, Settings, SmtpSettings
from firebreak.drill.mailbox import Mailbox
from firebreak.sandbox import APP_PASSWORD as SANDBOX_PASSWORD
from firebreak.sandbox import TOKEN as SANDBOX_TOKEN
from firebreak.sandbox.faults import install_faults
from firebreak.sandbox.scenario import Scenario, load_scenario
from firebreak.sandbox.server import SandboxServer
from firebreak.sandbox.state import SandboxScheduled, SandboxState
from firebreak.domain import Platform, utcnow
from firebreak.errors import FirebreakError
from firebreak.drill.operator import DrillOperator
from firebreak.drill.report import build_report, print_timeline
from firebreak.store.db import Database
from firebreak.store.models import ScheduledPost
from firebreak.store.queries import update_summary
from firebreak.flows.runtime import Runtime, set_runtime
from firebreak.flows.server import prefect_api
from firebreak.tasks.detect import floor_time

log = get_logger("firebreak.drill.run")


@dataclass
class DrillSetup:
    playbook: Playbook
    scenario: Scenario
    state: SandboxState
    clock: VirtualClock
    data_dir: Path
    extras: dict[str, Any] = field(default_factory=dict)


def drill_settings(base: Settings, sandbox_url: str, mailbox: Mailbox, data_dir: Path) -> Settings:
    platform = {p.value: PlatformSettings(base_url="set-by-sandbox-url", token=SecretStr(SANDBOX_TOKEN),
                                          password=SecretStr(SANDBOX_PASSWORD)) for p in Platform}
    return base.model_copy(update={
        # A drill never writes into the production database: only a drill-specific URL is honoured.
        "data_dir": data_dir, "database_url": os.environ.get("FIREBREAK_DRILL_DATABASE_URL")
        or f"sqlite:///{(data_dir / 'firebreak.db').resolve()}",
        "sandbox_url": sandbox_url, "slack_webhook_url": SecretStr(f"{sandbox_url}/hooks/slack"),
        "smtp": SmtpSettings(host=mailbox.host, port=mailbox.port, sender="firebreak@fjell.example"),
        **platform,
    })


def _due_soon(setup: DrillSetup, detected_at: datetime) -> list[SandboxScheduled]:
    """A campaign post due within the next minute when the crisis is detected: the freeze
    must catch it too."""
    soon = SandboxScheduled(Platform.FACEBOOK, setup.state.new_id(Platform.FACEBOOK),
                            "Last chance: our autumn sale ends in one hour! 🍂 #fjell", detected_at + timedelta(seconds=45))
    with setup.state.lock:
        setup.state.scheduled[soon.platform][soon.id] = soon
    return [soon]


def run_drill(report_path: Path | None = None, *, scenario: str = "default", playbook_path: Path | None = None,
              base_settings: Settings | None = None, quiet: bool = False, verbose: bool = False,
              max_ticks: int = 60, faults: str | None = None, fault_seed: int = 0) -> dict[str, Any]:
    """`faults`: a named sandbox fault profile (none, mild, storm; firebreak/sandbox/faults.py)
    for every platform, drawn from `fault_seed`; the report counts what was injected."""
    base = base_settings or Settings()
    # The drill prints its own timeline; stage logs are for --verbose (and Prefect's run logs).
    configure_logging(base.log_level if verbose else "WARNING", base.log_format)
    playbook = load_playbook(playbook_path or base.playbook)
    wall_start = utcnow()
    data_dir = (base.data_dir / "drill").resolve()
    shutil.rmtree(data_dir, ignore_errors=True)
    data_dir.mkdir(parents=True)

    t0 = floor_time(utcnow(), playbook.detection.bucket_minutes)
    scen = load_scenario(scenario, t0)
    clock = VirtualClock(t0 - timedelta(minutes=3 * playbook.detection.bucket_minutes), 0.0, auto_advance=False)
    state = SandboxState(clock, brand_handle={p: a.handle for p, a in playbook.brand.accounts.items()})
    state.load(scen.mentions, scen.scheduled, scen.brand_posts)
    install_faults(state, faults, fault_seed)
    setup = DrillSetup(playbook, scen, state, clock, data_dir)

    prefect_home = data_dir / "prefect"
    prefect_home.mkdir()
    with (prefect_home / "server.log").open("ab") as server_log, \
            prefect_api(prefect_home, log=server_log), SandboxServer(state) as sandbox, Mailbox() as mailbox:  # type: ignore[arg-type]
        settings = drill_settings(base, sandbox.url, mailbox, data_dir)
        db = Database(settings.resolved_database_url)
        db.migrate()
        rt = Runtime(settings=settings, playbook=playbook, db=db, clock=clock, drill=True)
        set_runtime(rt)
        try:
            with db.session() as s:
                for q in scen.own_queue:
                    s.add(ScheduledPost(brand=playbook.brand.id, platform=q.platform.value,
                                        platform_id=f"fbq-{q.platform.value}-{int(q.scheduled_at.timestamp())}",
                                        source="firebreak", text=q.text, media=q.media, scheduled_at=q.scheduled_at,
                                        status="scheduled", updated_at=utcnow()))
            setup.extras["inbox"] = lambda address: [m.body for m in mailbox.to(address)]
            result = _play(setup, rt, max_ticks)
            report = build_report(setup, rt, sandbox, mailbox, result, wall_start)
        finally:
            set_runtime(None)
            rt.close()
            db.dispose()
    if report_path is not None:
        report_path.parent.mkdir(parents=True, exist_ok=True)
        report_path.write_text(json.dumps(report, indent=2, default=str), encoding="utf-8")
    if not quiet:
        print_timeline(report)
    return report


def _play(setup: DrillSetup, rt: Runtime, max_ticks: int) -> dict[str, Any]:
    from firebreak.flows.monitor import monitor
    from firebreak.flows.respond import respond

    pb, clock = setup.playbook, setup.clock
    step = timedelta(minutes=pb.detection.bucket_minutes)
    operator = DrillOperator(rt, clock, pb.drill.time_compression, inbox=setup.extras["inbox"]).start()
    try:
        first = monitor(respond_inline=False)  # drains two days of history
        ticks, incident_id, tick = 0, first["incident_id"], first
        while incident_id is None:
            ticks += 1
            if ticks > max_ticks:
                raise FirebreakError(f"drill: no crisis detected after {max_ticks} buckets")
            clock.advance(step.total_seconds())
            tick = monitor(respond_inline=False)
            incident_id = tick["incident_id"]
        detected_platform_time = clock.now()
        update_summary(rt.db, incident_id, drill_stages=tick["stages"], detected_platform_at=detected_platform_time)
        due_soon = _due_soon(setup, detected_platform_time)
        clock.set_rate(1.0)  # real time while the freeze races the posts about to go out
        response = respond(incident_id)
        # Let the scenario play out, then drain everything it holds.
        clock.set_rate(0.0)
        clock.set(max(clock.now(), setup.scenario.ends_at) + step)
        final = monitor(respond_inline=False)
    finally:
        operator.stop()
    return {"incident_id": incident_id, "ticks": ticks, "response": response, "final": final,
            "detected_platform_at": detected_platform_time, "due_soon": [s.id for s in due_soon],
            "operator_errors": operator.errors, "ingested_first": first}
