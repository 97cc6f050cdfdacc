"""`firebreak freeze` and `unfreeze`: every scheduled post held or resumed by hand, through the
same rules and audit as the automated freeze."""

from __future__ import annotations

import argparse
import os
from typing import TYPE_CHECKING

from firebreak.errors import FirebreakError

if TYPE_CHECKING:
    from firebreak.tasks import freeze as freeze_mod


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    for verb in ("freeze", "unfreeze"):
        fz = subparsers.add_parser(verb, help=f"{verb} every scheduled post by hand")
        fz.add_argument("--reason", required=True)
        fz.add_argument("--as", dest="actor", default=os.environ.get("USER", "operator"))
        fz.set_defaults(func=cmd_freeze)


def cmd_freeze(args: argparse.Namespace) -> int:
    if args.command == "freeze":
        res = manual_freeze(args.reason, args.actor)
        print(f"{res.held} of {res.found} scheduled post(s) held")
    else:
        out = manual_unfreeze(args.reason, args.actor)
        print(f"{out.resumed} post(s) resumed ({out.rescheduled} rescheduled, {out.published_now} published now, "
              f"{out.dropped} dropped, {len(out.needs_approval)} sent back for approval)")
    return 0


def manual_freeze(reason: str, actor: str) -> freeze_mod.FreezeResult:
    from firebreak.tasks import freeze as freeze_mod
    from firebreak.flows.runtime import get_runtime

    rt = get_runtime()
    if not reason.strip():
        raise FirebreakError("a freeze needs a reason")
    conns = {p: rt.connector(p) for p in rt.playbook.brand.accounts}
    return freeze_mod.freeze_all(rt.db, rt.audit, rt.playbook, conns, None, reason, actor=actor)


def manual_unfreeze(reason: str, actor: str) -> freeze_mod.ResumeResult:
    from firebreak.tasks import freeze as freeze_mod
    from firebreak.flows.runtime import get_runtime

    rt = get_runtime()
    if not reason.strip():
        raise FirebreakError("lifting a freeze needs a reason")
    rt.audit.append(actor, "freeze.lift_requested", "manual", {"reason": reason})
    conns = {p: rt.connector(p) for p in rt.playbook.brand.accounts}
    return freeze_mod.resume_all(rt.db, rt.audit, rt.playbook, conns, None, rt.clock.now(), actor=actor)
