"""`firebreak drill`: a full crisis drill on the embedded defaults, judged by its report."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from firebreak.cli._common import get_playbook


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    d = subparsers.add_parser("drill", help="run a full crisis drill on the embedded defaults")
    d.add_argument("--report", help="write the JSON report here")
    d.add_argument("--scenario", default="default")
    d.add_argument("--playbook")
    d.add_argument("--quiet", action="store_true")
    d.add_argument("--verbose", action="store_true", help="show Prefect's run logs")
    d.add_argument("--faults", choices=["none", "mild", "storm"], default=None,
                   help="sandbox fault profile for every platform (5xx, 429 storms, latency, resets, "
                        "lost write answers, repeated and reordered pages)")
    d.add_argument("--fault-seed", type=int, default=0, help="seed of the fault schedule (reproducible)")
    d.set_defaults(func=cmd_drill)


def cmd_drill(args: argparse.Namespace) -> int:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING" if not args.verbose else "INFO")
    # The drill's Prefect server logs to <data_dir>/drill/prefect/server.log at its own level
    # (warnings and errors): nothing of it is hidden, and none of it is printed here.
    get_playbook(args.playbook)  # fail fast, before Prefect starts
    from firebreak.drill.run import run_drill

    report = run_drill(Path(args.report) if args.report else None, scenario=args.scenario,
                       playbook_path=Path(args.playbook) if args.playbook else None, quiet=args.quiet,
                       verbose=args.verbose, faults=args.faults, fault_seed=args.fault_seed)
    problems = drill_problems(report)
    for p in problems:
        print(f"drill check failed: {p}", file=sys.stderr)
    if args.report:
        print(f"report written to {args.report}")
    return 1 if problems else 0


def drill_problems(r: dict) -> list[str]:
    """The truths a drill report must hold (issue #2); an unmet one fails the drill."""
    out = []
    m, sp = r["mentions"], r["scheduled_posts"]
    if m["unique"] != m["expected"]:
        out.append(f"stored {m['unique']} unique mentions, scenario has {m['expected']}")
    if not (sp["found"] == sp["frozen"] == sp["resumed"]):
        out.append(f"scheduled posts found {sp['found']}, frozen {sp['frozen']}, resumed {sp['resumed']}")
    if sp["published_during_freeze"]:
        out.append(f"{sp['published_during_freeze']} scheduled post(s) published during the freeze")
    holding = [p for p in r["publications"] if p["kind"] == "holding"]
    if len({p["platform"] for p in holding}) != 6:
        out.append(f"holding statement reached {len({p['platform'] for p in holding})} of 6 platforms")
    if holding and holding[0]["platform"] != r["incident"]["origin_platform"]:
        out.append(f"first publication on {holding[0]['platform']}, origin is {r['incident']['origin_platform']}")
    if r["publications_duplicated"]:
        out.append(f"{r['publications_duplicated']} duplicated publication(s)")
    if not all(p["approved"] and p["matches_approved_text"] for p in r["publications"]):
        out.append("a published text does not match an approval")
    if not r["audit"]["verified"]:
        out.append("audit chain broken")
    return out
