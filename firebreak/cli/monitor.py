"""`firebreak monitor` (one monitor pass now) and `firebreak ack` (acknowledge an incident's page)."""

from __future__ import annotations

import argparse
import json

from firebreak.cli._common import get_playbook


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    """`monitor`; `ack` comes later in the command list (`register_ack`)."""
    m = subparsers.add_parser("monitor", help="run one monitor pass now")
    m.add_argument("--no-respond", action="store_true", help="only open the incident; do not start respond")
    m.add_argument("--json", action="store_true", help="the pass's figures as JSON")
    m.set_defaults(func=cmd_monitor)


def register_ack(subparsers) -> None:  # type: ignore[no-untyped-def]
    k = subparsers.add_parser("ack", help="acknowledge an incident's page")
    k.add_argument("incident", type=int)
    k.add_argument("--as", dest="person", required=True)
    k.set_defaults(func=cmd_ack)


def cmd_monitor(args: argparse.Namespace) -> int:
    get_playbook()
    from firebreak.flows.monitor import monitor

    result = monitor(respond_inline=not args.no_respond)
    if args.json:
        print(json.dumps({k: v for k, v in result.items() if k != "respond"}, indent=2, default=str))
        return 0
    per = ", ".join(f"{i['platform']} {i['received']}" for i in result["ingested"])
    print(f"received {sum(i['received'] for i in result['ingested'])} mention(s) ({per}), "
          f"stored {sum(i['stored'] for i in result['ingested'])} new; labelled {result['labelled']}; "
          f"own queue published {result['own_queue_published']}")
    inc = result["incident_id"]
    print(f"crisis detected: incident #{inc}" if inc is not None else "no crisis detected")
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    from firebreak.tasks.escalate import acknowledge
    from firebreak.flows.runtime import get_runtime

    rt = get_runtime()
    rt.playbook.person(args.person)
    first = acknowledge(rt.db, rt.audit, args.incident, args.person, "cli")
    print("acknowledged" if first else "already acknowledged")
    return 0
