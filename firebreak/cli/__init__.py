"""`firebreak` command line. The top of the layer stack: it may import flows, which import
tasks, which import connectors and the store, which import config."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Before Prefect is imported anywhere: no telemetry (no network here) and our logger in run logs.
os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
os.environ.setdefault("PREFECT_LOGGING_EXTRA_LOGGERS", "firebreak")
# The embedded server's SQLite waits for its lock instead of failing when the machine is busy.
os.environ.setdefault("PREFECT_SERVER_DATABASE_TIMEOUT", "60")

from firebreak.errors import FirebreakError, PlaybookError  # noqa: E402


def _settings():  # type: ignore[no-untyped-def]
    from firebreak.config.settings import get_settings

    return get_settings()


def _playbook(path: str | None = None):  # type: ignore[no-untyped-def]
    from firebreak.config.playbook import load_playbook

    return load_playbook(path or _settings().playbook)


def cmd_drill(args: argparse.Namespace) -> int:
    os.environ.setdefault("PREFECT_LOGGING_LEVEL", "WARNING" if not args.verbose else "INFO")
    # The drill's embedded Prefect server (a child process writing to this terminal) logs a
    # traceback when its SQLite answers "database is locked", then answers 503 and the client
    # retries: noise to a user. A failure that matters shows in the drill's own report.
    os.environ.setdefault("PREFECT_SERVER_LOGGING_LEVEL", "WARNING" if args.verbose else "CRITICAL")
    _playbook(args.playbook)  # fail fast, before Prefect starts
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


def cmd_sandbox(args: argparse.Namespace) -> int:
    from datetime import timedelta

    from firebreak.clock import VirtualClock
    from firebreak.sandbox.scenario import load_scenario
    from firebreak.sandbox.server import SandboxServer
    from firebreak.sandbox.state import SandboxState
    from firebreak.domain import utcnow

    pb = _playbook(args.playbook)
    t0 = utcnow() + timedelta(minutes=args.storm_in)
    scen = load_scenario(args.scenario, t0)
    clock = VirtualClock(utcnow(), compression=args.speed, auto_advance=False)
    state = SandboxState(clock, brand_handle={p: a.handle for p, a in pb.brand.accounts.items()})
    state.load(scen.mentions, scen.scheduled, scen.brand_posts)
    srv = SandboxServer(state, host=args.host, port=args.port)
    print(f"sandbox platforms on {srv.url} (scenario {scen.name}: {len(scen.mentions)} mentions, storm at {t0.isoformat()}, "
          f"time ×{args.speed}); set FIREBREAK_SANDBOX_URL={srv.url}", flush=True)
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass
    return 0


def cmd_audit_verify(args: argparse.Namespace) -> int:
    from firebreak.audit import AuditLog
    from firebreak.store.db import get_database

    db = get_database(args.database or _settings().resolved_database_url)
    res = AuditLog(db).verify(expect_head=args.expect_head)
    if res.ok:
        print(f"audit chain intact: {res.events} events, head {res.head}")
        return 0
    print(f"audit chain BROKEN at event {res.bad_seq}: {res.reason} ({res.events} events verified before it)",
          file=sys.stderr)
    return 1


def cmd_limits_apply(args: argparse.Namespace) -> int:
    from firebreak.flows.limits import apply_limits_now, load_limits

    limits = load_limits(args.file)
    for name, what in apply_limits_now(limits).items():
        print(f"{name}: limit {limits[name]} ({what})")
    return 0


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from firebreak.store.db import Database

    db = Database(_settings().resolved_database_url)
    db.migrate()
    print(f"database at head: {db.engine.url.render_as_string(hide_password=True)}")
    return 0


def cmd_playbook_check(args: argparse.Namespace) -> int:
    pb = _playbook(args.path)
    print(f"playbook OK: {pb.brand.name}, {len(pb.crisis_types)} crisis types, {len(pb.people)} people, "
          f"platforms {', '.join(p.value for p in pb.publish_order)}")
    return 0


def cmd_backtest(args: argparse.Namespace) -> int:
    from firebreak.tasks.detection.backtest import backtest_file, backtest_nab

    cfg = _playbook(args.playbook).detection
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


def cmd_classify(args: argparse.Namespace) -> int:
    from firebreak.tasks.triage import load_triage

    pb = _playbook(args.playbook)
    triage = load_triage(pb)
    lines = Path(args.inp).read_text(encoding="utf-8").splitlines()
    out = Path(args.out)
    with out.open("w", encoding="utf-8") as fh:
        for i in range(0, len(lines), 2000):
            for lab in triage.label_batch(lines[i:i + 2000]):
                fh.write(json.dumps(lab.as_dict(), ensure_ascii=False) + "\n")
    print(f"{len(lines)} line(s) labelled into {out}")
    return 0


def cmd_monitor(args: argparse.Namespace) -> int:
    _playbook()
    from firebreak.flows.monitor import monitor

    result = monitor(respond_inline=not args.no_respond)
    print(json.dumps({k: v for k, v in result.items() if k != "respond"}, indent=2, default=str))
    return 0


def cmd_ack(args: argparse.Namespace) -> int:
    from firebreak.tasks.escalate import acknowledge
    from firebreak.flows.runtime import get_runtime

    rt = get_runtime()
    rt.playbook.person(args.person)
    first = acknowledge(rt.db, rt.audit, args.incident, args.person, "cli")
    print("acknowledged" if first else "already acknowledged")
    return 0


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

            print(format_detect(bench_detect(_playbook(), args.detect_mentions, args.runs, args.database_url)))
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
        print(f"run {i + 1}/{n_runs}: {runs[-1]['wall_clock_s']:.1f}s", file=sys.stderr)
    keys = list(runs[0]["latency_s"])
    print(f"drill latencies over {len(runs)} runs (wall-clock seconds; median [min-max])")
    for k in keys:
        vals = [r["latency_s"][k] for r in runs]
        print(f"  {k:<32} {statistics.median(vals):8.3f}  [{min(vals):.3f}-{max(vals):.3f}]")
    walls = [r["wall_clock_s"] for r in runs]
    print(f"  {'drill wall clock':<32} {statistics.median(walls):8.1f}  [{min(walls):.1f}-{max(walls):.1f}]")


def cmd_up(args: argparse.Namespace) -> int:
    """The local ops stack in the foreground (issue #7): Prefect server + UI, deployments, intake."""
    _playbook()  # fail fast, before the Prefect server starts
    from firebreak.cli.up import UpConfig, run_up

    return run_up(UpConfig(host=args.host, port=args.port, intake_host=args.intake_host,
                           intake_port=args.intake_port, sandbox=args.sandbox, sandbox_port=args.sandbox_port,
                           monitor_interval_s=args.monitor_interval))


def cmd_drafts(args: argparse.Namespace) -> int:
    from firebreak.cli.manual import list_drafts

    drafts = list_drafts()
    if not drafts:
        print("no draft is waiting for sign-off")
    for d in drafts:
        print(f"draft {d['id']}  incident #{d['incident']}  {d['kind']} v{d['version']}  sha256 {d['sha256']}\n"
              f"  signed: {d['signed'] or '-'}  still needed: {', '.join(d['missing_roles']) or '-'}")
        if args.show:
            for platform, parts in d["variants"].items():
                print(f"  [{platform}]\n    " + "\n    ".join("\n".join(parts).splitlines()))
    return 0


def cmd_answer(args: argparse.Namespace) -> int:
    from firebreak.cli.manual import answer_draft

    decision = "approve" if args.command == "approve" else "reject"
    if decision == "reject" and not (args.comment or "").strip():
        raise FirebreakError("reject needs --comment saying what to change")
    revision = args.revision or ""
    if revision.startswith("@"):
        revision = Path(revision[1:]).read_text(encoding="utf-8")
    if revision and decision != "reject":
        raise FirebreakError("--revision goes with reject: suggest the text you would approve")
    print(answer_draft(args.draft, args.person, decision, args.comment or "", revision=revision))
    return 0


def cmd_keys(args: argparse.Namespace) -> int:
    from firebreak.tasks import codes
    from firebreak.flows.runtime import get_runtime

    rt = get_runtime()
    rt.playbook.person(args.person)
    rt.audit.append("admin", "keys.issued", f"person:{args.person}", {})
    print(codes.personal_key(codes.signing_key(rt.settings), args.person))
    return 0


def cmd_freeze(args: argparse.Namespace) -> int:
    from firebreak.cli.manual import manual_freeze, manual_unfreeze

    if args.command == "freeze":
        res = manual_freeze(args.reason, args.actor)
        print(f"{res.held} of {res.found} scheduled post(s) held")
    else:
        out = manual_unfreeze(args.reason, args.actor)
        print(f"{out.resumed} post(s) resumed ({out.rescheduled} rescheduled, {out.published_now} published now, "
              f"{out.dropped} dropped, {len(out.needs_approval)} sent back for approval)")
    return 0


def cmd_web(args: argparse.Namespace) -> int:
    from firebreak.cli.manual import serve_web

    serve_web()
    return 0


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="firebreak", description="Crisis-response automation for brands on social media")
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("drill", help="run a full crisis drill on the embedded defaults")
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

    s = sub.add_parser("sandbox", help="serve the sandbox platforms in the foreground")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8700)
    s.add_argument("--scenario", default="default")
    s.add_argument("--playbook")
    s.add_argument("--storm-in", type=float, default=10.0, help="minutes until the storm starts")
    s.add_argument("--speed", type=float, default=1.0, help="platform time runs this many times faster")
    s.set_defaults(func=cmd_sandbox)

    a = sub.add_parser("audit", help="the audit log")
    asub = a.add_subparsers(dest="audit_command", required=True)
    v = asub.add_parser("verify", help="exit 0 only when the hash chain is intact")
    v.add_argument("--database", help="database URL (default: settings)")
    v.add_argument("--expect-head", help="the head hash recorded earlier, to detect truncation")
    v.set_defaults(func=cmd_audit_verify)

    db = sub.add_parser("db", help="database")
    dbsub = db.add_subparsers(dest="db_command", required=True)
    dbsub.add_parser("upgrade", help="migrate to the latest schema").set_defaults(func=cmd_db_upgrade)

    li = sub.add_parser("limits", help="Prefect global concurrency limits per platform")
    lisub = li.add_subparsers(dest="limits_command", required=True)
    la = lisub.add_parser("apply", help="create or update them on the server in PREFECT_API_URL (idempotent)")
    la.add_argument("--file", type=Path, default=None, help="limits file (default deploy/concurrency-limits.yaml)")
    la.set_defaults(func=cmd_limits_apply)

    pb = sub.add_parser("playbook", help="the crisis playbook")
    pbsub = pb.add_subparsers(dest="playbook_command", required=True)
    chk = pbsub.add_parser("check", help="validate a playbook file")
    chk.add_argument("path", nargs="?")
    chk.set_defaults(func=cmd_playbook_check)

    b = sub.add_parser("backtest", help="run the production detector over a series")
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

    c = sub.add_parser("classify", help="label one text per line")
    c.add_argument("--in", dest="inp", required=True)
    c.add_argument("--out", required=True)
    c.add_argument("--playbook")
    c.set_defaults(func=cmd_classify)

    m = sub.add_parser("monitor", help="run one monitor pass now")
    m.add_argument("--no-respond", action="store_true", help="only open the incident; do not start respond")
    m.set_defaults(func=cmd_monitor)

    be = sub.add_parser("bench", help="benchmarks (medians over repeated runs)")
    be.add_argument("target", nargs="?", default="drill", help="drill | ingest | detect | triage | approval | all")
    be.add_argument("--runs", type=int, default=5)
    be.add_argument("--mentions", type=int, default=5000, help="ingest: mentions per platform")
    be.add_argument("--detect-mentions", type=int, default=200_000, help="detect: mentions in the history window")
    be.add_argument("--database-url", default=None, help="detect: database to fill (default: a scratch SQLite file)")
    be.add_argument("--data", default="../shared/data", help="triage: folder with the shared data")
    be.set_defaults(func=cmd_bench)

    dr = sub.add_parser("drafts", help="drafts waiting for sign-off")
    dr.add_argument("--show", action="store_true", help="print every platform variant")
    dr.set_defaults(func=cmd_drafts)
    for verb in ("approve", "reject"):
        ap = sub.add_parser(verb, help=f"{verb} a draft with your personal key (FIREBREAK_APPROVER_KEY)")
        ap.add_argument("draft", type=int)
        ap.add_argument("--as", dest="person", required=True)
        ap.add_argument("--comment", default="")
        ap.add_argument("--revision", default="", help="reject: the text you suggest instead (or @FILE)")
        ap.set_defaults(func=cmd_answer)
    ky = sub.add_parser("keys", help="approver keys")
    kysub = ky.add_subparsers(dest="keys_command", required=True)
    ki = kysub.add_parser("issue", help="print a person's personal CLI key")
    ki.add_argument("person")
    ki.set_defaults(func=cmd_keys)
    for verb in ("freeze", "unfreeze"):
        fz = sub.add_parser(verb, help=f"{verb} every scheduled post by hand")
        fz.add_argument("--reason", required=True)
        fz.add_argument("--as", dest="actor", default=os.environ.get("USER", "operator"))
        fz.set_defaults(func=cmd_freeze)
    web = sub.add_parser("web", help="serve the approval pages and the crisis page")
    web.set_defaults(func=cmd_web)

    k = sub.add_parser("ack", help="acknowledge an incident's page")
    k.add_argument("incident", type=int)
    k.add_argument("--as", dest="person", required=True)
    k.set_defaults(func=cmd_ack)

    up = sub.add_parser("up", help="run the local ops stack: Prefect UI, deployments, alert intake (Ctrl-C stops)")
    up.add_argument("--host", default="127.0.0.1", help="Prefect server host")
    up.add_argument("--port", type=int, default=4200, help="Prefect server (UI and API) port")
    up.add_argument("--intake-host", default="127.0.0.1")
    up.add_argument("--intake-port", type=int, default=8787)
    up.add_argument("--sandbox", action="store_true", help="also serve the sandbox platforms and use them")
    up.add_argument("--sandbox-port", type=int, default=8700)
    up.add_argument("--monitor-interval", type=int, default=300, help="seconds between monitor runs")
    up.set_defaults(func=cmd_up)
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
