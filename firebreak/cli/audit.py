"""`firebreak audit verify`: check the audit log's hash chain."""

from __future__ import annotations

import argparse
import sys

from firebreak.cli._common import get_settings


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    a = subparsers.add_parser("audit", help="the audit log")
    asub = a.add_subparsers(dest="audit_command", required=True)
    v = asub.add_parser("verify", help="exit 0 only when the hash chain is intact")
    v.add_argument("--database", help="database URL (default: settings)")
    v.add_argument("--expect-head", help="the head hash recorded earlier, to detect truncation")
    v.set_defaults(func=cmd_audit_verify)


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from firebreak.audit import AuditLog
    from firebreak.store.db import get_database

    db = get_database(args.database or get_settings().resolved_database_url)
    res = AuditLog(db).verify(expect_head=args.expect_head)
    if res.ok:
        print(f"audit chain intact: {res.events} events, head {res.head}")
        return 0
    print(f"audit chain BROKEN at event {res.bad_seq}: {res.reason} ({res.events} events verified before it)",
          file=sys.stderr)
    return 1
