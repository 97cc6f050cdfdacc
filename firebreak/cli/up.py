"""`firebreak up`: the local ops stack in the foreground.

* a Prefect server with its UI (127.0.0.1:4200 unless configured), its state kept in
  `<data_dir>/prefect` so Firebreak's stack does not share ~/.prefect with anything else;
* the deployments served from this process (monitor on its schedule; respond started by the
  `firebreak.crisis.detected` trigger) — `flows/deployments.py` —, with the per-platform
  global concurrency limits created on the server and taken by the monitors' platform drains;
* the alert intake (127.0.0.1:8787 unless configured), sending its events to that server;
* with `sandbox=True`, the sandbox platforms, and every connector pointed at them.

Ctrl-C (or SIGTERM, as `docker stop` and Kubernetes send) stops everything, in reverse order:
the served deployments, the intake (its unsent events stay in the store and go out on the
next start), the sandbox, then the Prefect server's process group — the one this process
started, by its id.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
from contextlib import ExitStack
from dataclasses import dataclass
from types import FrameType
from typing import TYPE_CHECKING, TextIO

from firebreak.cli._common import get_playbook
from firebreak.flows.server import start_prefect_server, stop_process_group

if TYPE_CHECKING:
    from firebreak.drill.mailbox import Mailbox


@dataclass(frozen=True)
class UpConfig:
    host: str = "127.0.0.1"
    port: int = 4200
    intake_host: str = "127.0.0.1"
    intake_port: int = 8787
    sandbox: bool = False
    sandbox_port: int = 8700
    storm_in_minutes: float = 10.0  # with the sandbox: when its scenario's storm begins
    storm_speed: float = 1.0  # and how many times faster than the scenario says it unfolds
    web_host: str | None = None  # None: the settings' (FIREBREAK_WEB_HOST, FIREBREAK_WEB_PORT)
    web_port: int | None = None
    monitor_interval_s: int = 300
    server_timeout_s: float = 90.0


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    up = subparsers.add_parser("up", help="run the local ops stack: Prefect UI, deployments, alert intake (Ctrl-C stops)")
    up.add_argument("--host", default="127.0.0.1", help="Prefect server host")
    up.add_argument("--port", type=int, default=4200, help="Prefect server (UI and API) port")
    up.add_argument("--intake-host", default="127.0.0.1")
    up.add_argument("--intake-port", type=int, default=8787)
    up.add_argument("--sandbox", action="store_true", help="also serve the sandbox platforms and use them")
    up.add_argument("--sandbox-port", type=int, default=8700)
    up.add_argument("--storm-in", type=float, default=10.0,
                    help="with --sandbox: minutes until the scenario's storm begins (e.g. 1 to see a crisis soon)")
    up.add_argument("--storm-speed", type=float, default=1.0,
                    help="with --sandbox: the storm unfolds this many times faster (its mentions closer together; "
                         "5 shows a crisis within minutes)")
    up.add_argument("--web-host", default=None, help="the approval, acknowledgement and status pages "
                    "(default FIREBREAK_WEB_HOST or 127.0.0.1)")
    up.add_argument("--web-port", type=int, default=None, help="default FIREBREAK_WEB_PORT or 8788")
    up.add_argument("--monitor-interval", type=int, default=300, help="seconds between monitor runs")
    up.set_defaults(func=cmd_up)


def cmd_up(args: argparse.Namespace) -> int:
    """The local ops stack in the foreground (issue #7): Prefect server + UI, deployments, intake."""
    get_playbook()  # fail fast, before the Prefect server starts
    return run_up(UpConfig(host=args.host, port=args.port, intake_host=args.intake_host,
                           intake_port=args.intake_port, sandbox=args.sandbox, sandbox_port=args.sandbox_port,
                           storm_in_minutes=args.storm_in, storm_speed=args.storm_speed, web_host=args.web_host,
                           web_port=args.web_port,
                           monitor_interval_s=args.monitor_interval))


def _sigterm_as_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _cancelled_on_stop(record: logging.LogRecord) -> bool:
    """False (drop) for asyncio's report of a task cancelled while the stack stops."""
    exc = record.exc_info[1] if record.exc_info else None
    return not isinstance(exc, asyncio.CancelledError)


def run_up(cfg: UpConfig | None = None, *, out: TextIO = sys.stdout) -> int:
    """Run the stack until Ctrl-C / SIGTERM; returns the exit code (0 on a clean stop)."""
    cfg = cfg or UpConfig()
    from firebreak.config.settings import get_settings

    settings = get_settings()
    data_dir = settings.data_dir.resolve()
    prefect_home = data_dir / "prefect"
    signal.signal(signal.SIGTERM, _sigterm_as_interrupt)
    with ExitStack() as stack:
        stack.callback(_restore_environment, dict(os.environ))  # what the stack set is for its runs only
        prefect_home.mkdir(parents=True, exist_ok=True)
        server_log = stack.enter_context((prefect_home / "server.log").open("ab"))
        print(f"starting Prefect server on http://{cfg.host}:{cfg.port} …", file=out, flush=True)
        server = start_prefect_server(cfg.host, cfg.port, prefect_home, cfg.server_timeout_s,
                                      log=server_log)  # type: ignore[arg-type]
        stack.callback(stop_process_group, server)
        api_url = f"http://{cfg.host}:{cfg.port}/api"
        # Before anything reads Prefect's settings in this process: every client here talks to it.
        os.environ["PREFECT_API_URL"] = api_url
        _apply_platform_limits()

        sandbox_url = ""
        if cfg.sandbox:
            # Every connector on the sandbox with its credentials; Slack pages to its sink and
            # mail to a loopback mailbox, both readable on the sandbox's inbox page. The runs
            # served from here inherit this environment.
            sandbox_url, mailbox = _start_sandbox(stack, cfg)
            os.environ.update(_sandbox_environment(sandbox_url, mailbox))
        web_host = cfg.web_host or get_settings().web_host
        web_port = cfg.web_port or get_settings().web_port
        os.environ.update(FIREBREAK_WEB_HOST=web_host, FIREBREAK_WEB_PORT=str(web_port))
        if cfg.web_host or cfg.web_port or "FIREBREAK_PUBLIC_URL" not in os.environ:
            # The links in pages and codes point at the pages this stack serves.
            os.environ["FIREBREAK_PUBLIC_URL"] = f"http://{web_host}:{web_port}"
        get_settings.cache_clear()  # the runtime reads settings afresh

        from firebreak.flows.deployments import deployments
        from firebreak.web.intake import create_app, running_app
        from firebreak.tasks.intake import intake_secrets

        intake_secrets(get_settings())  # creates the token file now, so the banner can point at it
        stack.enter_context(running_app(create_app(), cfg.intake_host, cfg.intake_port))
        from firebreak.web.app import create_app as create_web_app

        stack.enter_context(running_app(create_web_app(), web_host, web_port, what="web pages"))
        token_hint = ("FIREBREAK_INTAKE_TOKEN" if os.environ.get("FIREBREAK_INTAKE_TOKEN")
                      or getattr(get_settings(), "intake_token", None) else str(data_dir / "intake_token"))
        print(f"Firebreak is up:\n"
              f"  Prefect UI      http://{cfg.host}:{cfg.port}\n"
              f"  alert intake    http://{cfg.intake_host}:{cfg.intake_port}/alerts  (docs: /docs; token: {token_hint})\n"
              f"  web pages       {get_settings().public_url}  (approval and acknowledgement links, /status)\n"
              + (f"  sandbox         {sandbox_url}  (storm in {cfg.storm_in_minutes:g} min, "
                 f"{cfg.storm_speed:g}x speed)\n"
                 f"  inbox           {sandbox_url}/_sandbox/inbox  (pages, codes and links Firebreak sent)\n"
                 if sandbox_url else "")
              + f"  deployments     monitor (every {cfg.monitor_interval_s} s), respond (on firebreak.crisis.detected)\n"
              "Ctrl-C stops everything.", file=out, flush=True)

        from prefect import serve
        from prefect.runner.runner import Runner

        # serve()'s runner replaces the SIGTERM handler with one that exits from inside its
        # event loop (tracebacks, and none of the clean stop below); SIGTERM here is Ctrl-C.
        Runner.handle_sigterm = staticmethod(_sigterm_as_interrupt)  # type: ignore[method-assign,assignment]
        # Stopping while a run's control connection is open cancels its reader, and asyncio logs
        # that as an error with a traceback: the expected end of a connection, not a fault.
        logging.getLogger("asyncio").addFilter(_cancelled_on_stop)

        # serve() returns on KeyboardInterrupt (and pauses the schedules, so nothing piles up
        # while the stack is down); the ExitStack then stops the rest in reverse order.
        # query_seconds=2: the runner looks for runs to start every 2 s instead of 10, so a
        # triggered respond run starts within seconds of the alert (a local API call is cheap).
        try:
            serve(*deployments(cfg.monitor_interval_s), print_starting_message=False, query_seconds=2)
        except KeyboardInterrupt:
            # serve() registers the deployments before its own Ctrl-C handling starts; a
            # Ctrl-C in that window is the same clean stop.
            pass
        print("stopping …", file=out, flush=True)
    print("stopped.", file=out, flush=True)
    return 0


def _restore_environment(saved: dict[str, str]) -> None:
    from firebreak.config.settings import get_settings

    os.environ.clear()
    os.environ.update(saved)
    get_settings.cache_clear()


def _apply_platform_limits() -> None:
    """The per-platform global concurrency limits on this server, and every run served from
    here taking their slots (the runs inherit this process's environment)."""
    from firebreak.config.settings import get_settings
    from firebreak.flows.limits import apply_limits_now, load_limits

    apply_limits_now(load_limits())
    os.environ["FIREBREAK_PLATFORM_LIMITS"] = "true"
    get_settings.cache_clear()


def _sandbox_environment(sandbox_url: str, mailbox: "Mailbox") -> dict[str, str]:
    from firebreak.sandbox import connector_environment

    return {**connector_environment(sandbox_url), "FIREBREAK_SLACK_WEBHOOK_URL": f"{sandbox_url}/hooks/slack",
            "FIREBREAK_SMTP__HOST": mailbox.host, "FIREBREAK_SMTP__PORT": str(mailbox.port)}


def _start_sandbox(stack: ExitStack, cfg: UpConfig) -> tuple[str, "Mailbox"]:
    from datetime import timedelta

    from firebreak.config.playbook import load_playbook
    from firebreak.config.settings import get_settings
    from firebreak.sandbox.scenario import load_scenario
    from firebreak.sandbox.server import SandboxServer
    from firebreak.sandbox.state import SandboxState

    from firebreak.clock import VirtualClock
    from firebreak.domain import utcnow

    from firebreak.drill.mailbox import Mailbox

    pb = load_playbook(get_settings().playbook)
    scen = load_scenario("default", utcnow() + timedelta(minutes=cfg.storm_in_minutes), pace=cfg.storm_speed)
    state = SandboxState(VirtualClock(utcnow(), compression=1.0, auto_advance=False),
                         brand_handle={p: a.handle for p, a in pb.brand.accounts.items()})
    state.load(scen.mentions, scen.scheduled, scen.brand_posts)
    srv = stack.enter_context(SandboxServer(state, host=cfg.host, port=cfg.sandbox_port))
    mailbox = stack.enter_context(Mailbox(cfg.host))
    srv.app.state.mailbox = mailbox
    return str(srv.url), mailbox
