"""Administration: `firebreak db upgrade`, `limits apply`, `playbook check` and `keys issue`."""

from __future__ import annotations

import argparse
from pathlib import Path

from firebreak.cli._common import get_playbook, get_settings


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    """`db`, `limits` and `playbook`; `keys` comes later in the command list (`register_keys`)."""
    db = subparsers.add_parser("db", help="database")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="migrate to the latest schema").set_defaults(func=cmd_db_upgrade)

    li = subparsers.add_parser("limits", help="Prefect global concurrency limits per platform")
    lisub = li.add_subparsers(dest="limits_command", required=True)
    la = lisub.add_parser("apply", help="create or update them on the server in PREFECT_API_URL (idempotent)")
    la.add_argument("--file", type=Path, default=None, help="limits file (default deploy/concurrency-limits.yaml)")
    la.set_defaults(func=cmd_limits_apply)

    pb = subparsers.add_parser("playbook", help="the crisis playbook")
    pbsub = pb.add_subparsers(dest="playbook_command", required=True)
    chk = pbsub.add_parser("check", help="validate a playbook file")
    chk.add_argument("path", nargs="?")
    chk.set_defaults(func=cmd_playbook_check)


def register_keys(subparsers) -> None:  # type: ignore[no-untyped-def]
    ky = subparsers.add_parser("keys", help="approver keys")
    kysub = ky.add_subparsers(dest="keys_command", required=True)
    ki = kysub.add_parser("issue", help="print a person's personal CLI key")
    ki.add_argument("person")
    ki.set_defaults(func=cmd_keys)


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from firebreak.store.db import Database

    db = Database(get_settings().resolved_database_url)
    db.migrate()
    print(f"database at head: {db.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_limits_apply(args: argparse.Namespace) -> int:
    from firebreak.flows.limits import apply_limits_now, load_limits

    limits = load_limits(args.file)
    for name, what in apply_limits_now(limits).items():
        print(f"{name}: limit {limits[name]} ({what})")
    return 0


def cmd_playbook_check(args: argparse.Namespace) -> int:
    pb = get_playbook(args.path)
    print(f"playbook OK: {pb.brand.name}, {len(pb.crisis_types)} crisis types, {len(pb.people)} people, "
          f"platforms {', '.join(p.value for p in pb.publish_order)}")
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from firebreak.tasks import codes
    from firebreak.flows.runtime import get_runtime

    rt = get_runtime()
    rt.playbook.person(args.person)
    rt.audit.append("admin", "keys.issued", f"person:{args.person}", {})
    print(codes.personal_key(codes.signing_key(rt.settings), args.person))
    return 0
