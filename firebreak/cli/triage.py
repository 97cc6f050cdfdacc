"""`firebreak classify`: triage labels for one text per line."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from firebreak.cli._common import get_playbook


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    c = subparsers.add_parser("classify", help="label one text per line")
    c.add_argument("--in", dest="inp", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--playbook")
    c.set_defaults(func=cmd_classify)


def cmd_classify(args: argparse.Namespace) -> int:
    from firebreak.tasks.triage import load_triage

    pb = get_playbook(args.playbook)
    triage = load_triage(pb)
    lines = Path(args.inp).read_text(encoding="utf-8").splitlines()
    out = Path(args.out)
    with out.open("w", encoding="utf-8") as fh:
        for i in range(0, len(lines), 2000):
            for lab in triage.label_batch(lines[i:i + 2000]):
                fh.write(json.dumps(lab.as_dict(), ensure_ascii=False) + "\n")
    print(f"{len(lines)} line(s) labelled into {out}")
    return 0
