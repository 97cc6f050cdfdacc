"""`firebreak sandbox`: the sandbox platforms in the foreground."""

from __future__ import annotations

import argparse

from firebreak.cli._common import get_playbook


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    s = subparsers.add_parser("sandbox", help="serve the sandbox platforms in the foreground")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8700)
    s.add_argument("--scenario", default="default")
    s.add_argument("--playbook")
    s.add_argument("--storm-in", type=float, default=10.0, help="minutes until the storm starts")
    s.add_argument("--speed", type=float, default=1.0, help="platform time runs this many times faster")
    s.set_defaults(func=cmd_sandbox)


def cmd_sandbox(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from firebreak.clock import VirtualClock
    from firebreak.sandbox.scenario import load_scenario
    from firebreak.sandbox.server import SandboxServer
    from firebreak.sandbox.state import SandboxState
    from firebreak.domain import utcnow

    pb = get_playbook(args.playbook)
    t0 = utcnow() + timedelta(minutes=args.storm_in)
    scen = load_scenario(args.scenario, t0)
    clock = VirtualClock(utcnow(), compression=args.speed, auto_advance=False)
    state = SandboxState(clock, brand_handle={p: a.handle for p, a in pb.brand.accounts.items()})
    state.load(scen.mentions, scen.scheduled, scen.brand_posts)
    srv = SandboxServer(state, host=args.host, port=args.port)
    print(f"sandbox platforms on {srv.url} (scenario {scen.name}: {len(scen.mentions)} mentions, storm at {t0.isoformat()}, "
          f"time ×{args.speed}); set FIREBREAK_SANDBOX_URL={srv.url}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0
