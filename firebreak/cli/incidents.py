"""`firebreak incidents`: every incident, newest first, as a table (or JSON for scripts)."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from typing import Any


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    p = subparsers.add_parser("incidents", help="list incidents, newest first")
    p.add_argument("--limit", type=int, default=20)
    p.add_argument("--json", action="store_true", help="one JSON object per incident")
    p.set_defaults(func=cmd_incidents)


def _when(dt: datetime | None) -> str:
    return dt.strftime("%Y-%m-%d %H:%M") if dt else "-"


def incident_rows(limit: int = 20) -> list[dict[str, Any]]:
    from firebreak.flows.runtime import get_runtime
    from firebreak.store.queries import recent_incidents

    rt = get_runtime()
    return [{"id": i.id, "brand": i.brand, "status": str(i.status), "type": i.type, "severity": i.severity,
             "origin_platform": i.origin_platform, "started_at": i.started_at, "detected_at": i.detected_at,
             "acknowledged_by": i.acknowledged_by, "resolved_at": i.resolved_at, "drill": i.drill}
            for i in recent_incidents(rt.db, limit=limit)]


def cmd_incidents(args: argparse.Namespace) -> int:
    rows = incident_rows(args.limit)
    if args.json:
        for r in rows:
            print(json.dumps(r, default=lambda v: v.isoformat() if isinstance(v, datetime) else str(v)))
        return 0
    if not rows:
        print("no incidents")
        return 0
    print(f"{'#':>4}  {'status':<9} {'type':<20} {'sev':>3}  {'origin':<9} {'detected':<16}  {'acknowledged':<12} resolved")
    for r in rows:
        print(f"{r['id']:>4}  {r['status']:<9} {(r['type'] or 'unclassified'):<20} {r['severity'] or '-':>3}  "
              f"{(r['origin_platform'] or '-'):<9} {_when(r['detected_at']):<16}  {(r['acknowledged_by'] or '-'):<12} "
              f"{_when(r['resolved_at'])}{'  (drill)' if r['drill'] else ''}")
    return 0
