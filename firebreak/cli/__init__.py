"""`firebreak` command line. The top of the layer stack: it may import flows, which import
tasks, which import connectors and the store, which import config."""

from __future__ import annotations

import argparse
import os
import sys

# Before Prefect is imported anywhere: no telemetry (no network here) and our logger in run logs.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "firebreak")
# The embedded server's SQLite waits for its lock instead of failing when the machine is busy.
os.environ.setdefault("PREFECT_SERVER_DATABASE_TIMEOUT", "60")

from firebreak.cli import (  # noqa: E402
    admin, audit, bench, detection, drill, freeze, incidents, monitor, sandbox, signoff, triage, up, web,
)
from firebreak.errors import FirebreakError, PlaybookError  # noqa: E402


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="firebreak", description="Crisis-response automation for brands on social media")
    sub = p.add_subparsers(dest="command", required=True)
    # The order here is the order of the commands in `firebreak --help`.
    drill.register(sub)
    sandbox.register(sub)
    audit.register(sub)
    admin.register(sub)  # db, limits, playbook
    detection.register(sub)  # backtest
    triage.register(sub)  # classify
    monitor.register(sub)  # monitor
    incidents.register(sub)
    bench.register(sub)
    signoff.register(sub)  # drafts, approve, reject
    admin.register_keys(sub)  # keys
    freeze.register(sub)  # freeze, unfreeze
    web.register(sub)
    monitor.register_ack(sub)  # ack
    up.register(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except PlaybookError as exc:
        print(f"firebreak: {exc}", file=sys.stderr)
        return 2
    except FirebreakError as exc:
        print(f"firebreak: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
