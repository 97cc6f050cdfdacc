"""`firebreak bench`: benchmarks, printed as medians over repeated runs."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from firebreak.cli._common import get_playbook
from firebreak.errors import FirebreakError


def register(subparsers) -> None:  # type: ignore[no-untyped-def]
    be = subparsers.add_parser("bench", help="benchmarks (medians over repeated runs)")
    be.add_argument("target", nargs="?", default="drill", help="drill | ingest | detect | triage | approval | all")
    be.add_argument("--runs", type=int, default=5)
    be.add_argument("--mentions", type=int, default=5000, help="ingest: mentions per platform")
    be.add_argument("--detect-mentions", type=int, default=200_000, help="detect: mentions in the history window")
    be.add_argument("--database-url", default=None, help="detect: database to fill (default: a scratch SQLite file)")
    be.add_argument("--data", default="../shared/data", help="triage: folder with the shared data")
    be.set_defaults(func=cmd_bench)


def cmd_bench(args: argparse.Namespace) -> int:
    """Benchmarks print medians over repeated runs (never timed tests)."""
    targets = ("drill", "ingest", "detect", "triage", "approval") if args.target == "all" else (args.target,)
    for target in targets:
        if target == "drill":
            _bench_drill(args.runs)
        elif target == "ingest":
            from firebreak.bench.ingest import bench_ingest, format_report

            print(format_report(bench_ingest(None, args.mentions, args.runs)))
        elif target == "detect":
            from firebreak.bench.detect import bench_detect
            from firebreak.bench.detect import format_report as format_detect

            print(format_detect(bench_detect(get_playbook(), args.detect_mentions, args.runs, args.database_url)))
        elif target == "approval":
            from firebreak.bench.approval import bench_approval_page

            r = bench_approval_page()
            print(f"approval page over {r['loads']} loads on loopback: median {r['median_ms']} ms, "
                  f"p95 {r['p95_ms']} ms, max {r['max_ms']} ms (goal: under 200 ms)")
        elif target == "triage":
            from firebreak.bench.triage import bench_triage, print_bench_triage, sample_texts

            print_bench_triage(bench_triage(sample_texts(Path(args.data)), runs=args.runs))
        else:
            raise FirebreakError(f"unknown benchmark {target!r}; available: drill, ingest, detect, triage, approval, all")
    return 0


def _bench_drill(n_runs: int) -> None:
    import statistics
    import subprocess
    import tempfile

    runs: list[dict] = []
    tracebacks = 0
    exe = Path(sys.argv[0]).resolve()
    for i in range(n_runs):
        with tempfile.TemporaryDirectory() as tmp:
            report = Path(tmp) / "report.json"
            env = {**os.environ, "FIREBREAK_DATA_DIR": str(Path(tmp) / "data")}
            proc = subprocess.run([str(exe), "drill", "--quiet", "--report", str(report)], env=env, cwd=tmp,
                                  capture_output=True, text=True)
            if proc.returncode != 0:
                raise FirebreakError(f"drill run {i + 1} failed: {proc.stderr[-2000:]}")
            runs.append(json.loads(report.read_text()))
            # Every log the run wrote: its own output and its Prefect server's.
            server_log = Path(tmp) / "data" / "drill" / "prefect" / "server.log"
            logs = proc.stdout + proc.stderr + (server_log.read_text(errors="replace") if server_log.exists() else "")
            tracebacks += logs.count("Traceback (most recent call last)")
        print(f"run {i + 1}/{n_runs}: {runs[-1]['wall_clock_s']:.1f}s, {tracebacks} traceback(s) in the logs so far",
              file=sys.stderr)
    keys = list(runs[0]["latency_s"])
    print(f"drill latencies over {len(runs)} runs (wall-clock seconds; median [min-max])")
    for k in keys:
        vals = [r["latency_s"][k] for r in runs]
        print(f"  {k:<32} {statistics.median(vals):8.3f}  [{min(vals):.3f}-{max(vals):.3f}]")
    walls = [r["wall_clock_s"] for r in runs]
    print(f"  {'drill wall clock':<32} {statistics.median(walls):8.1f}  [{min(walls):.1f}-{max(walls):.1f}]")
    print(f"  {'tracebacks in any log':<32} {tracebacks:8d}")
