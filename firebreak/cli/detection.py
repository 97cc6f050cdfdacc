"""`firebreak backtest`: the production detector over recorded series, and the storm drill."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from firebreak.cli._common import get_playbook
from firebreak.errors import FirebreakError


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    b = subparsers.add_parser("backtest", help="run the production detector over a series")
    b.add_argument("series", nargs="?")
    b.add_argument("--out")
    b.add_argument("--nab", help="folder of NAB-style series with windows.json")
    b.add_argument("--leave-one-out", action="store_true",
                   help="with --nab: score each series with the threshold and cool-down that do best on the others")
    b.add_argument("--storms", action="store_true",
                   help="storm drill: lay synthetic storms over the series one at a time and report "
                        "which the detector catches, and how fast")
    b.add_argument("--second-wave", action="store_true",
                   help="with --storms: each storm comes a day after the same storm; only the second is judged")
    b.add_argument("--seed", type=int, default=0, help="with --storms: where storms start and their noise")
    b.add_argument("--playbook")
    b.set_defaults(func=cmd_backtest)


def cmd_backtest(args: argparse.Namespace) -> int:
    from firebreak.tasks.detection.backtest import backtest_file, backtest_nab

    cfg = get_playbook(args.playbook).detection
    if args.storms:
        return _storm_drill(args, cfg)
    if args.nab:
        from firebreak.cli.progress import progress_bar

        if args.leave_one_out:
            from firebreak.tasks.detection.backtest import backtest_nab_leave_one_out

            with progress_bar("leave-one-out grid") as bar:
                loo = backtest_nab_leave_one_out(Path(args.nab), cfg, progress=bar)
            for name, per in loo["files"].items():
                chosen = ", ".join(f"{p} {v['normalised']:.1f} (threshold {v['threshold']}, cool-down "
                                   f"{v['cooldown_minutes']} min)" for p, v in per.items() if v["normalised"] is not None)
                print(f"{name}: {chosen}")
            print(json.dumps(loo["corpus"], indent=2))
            return 0
        with progress_bar("backtest") as bar:
            result = backtest_nab(Path(args.nab), cfg, progress=bar)
        corpus = result.get("corpus", result)
        print(json.dumps(corpus, indent=2))
        return 0
    if not args.series or not args.out:
        raise FirebreakError("backtest needs SERIES.csv and --out ALERTS.csv (or --nab DIR)")
    n = backtest_file(Path(args.series), Path(args.out), cfg)
    print(f"{n} alert(s) written to {args.out}")
    return 0


def _storm_drill(args: argparse.Namespace, cfg) -> int:  # type: ignore[no-untyped-def]
    from firebreak.tasks.detection.backtest import nab_series, read_series
    from firebreak.tasks.detection.storms import format_report, storm_drill

    opts = {"second_wave": args.second_wave, "seed": args.seed}
    if args.series and not args.nab:
        report = storm_drill(read_series(Path(args.series)), cfg, **opts)
        print(format_report(report, args.series))
        return 0
    if not args.nab:
        raise FirebreakError("backtest --storms needs SERIES.csv or --nab DIR")
    from firebreak.cli.progress import progress_bar

    total = None
    nab = nab_series(Path(args.nab))
    with progress_bar("storm drill") as bar:
        for k, (name, series, windows) in enumerate(nab):
            report = storm_drill(series, cfg, exclude=windows, **opts)
            total = report if total is None else total.merge(report)
            bar(k + 1, len(nab))
    assert total is not None  # nab_series raises on a folder without series
    print(format_report(total, f"{len(nab)} series in {args.nab}, labelled windows excluded", excluded=True))
    return 0
