"""The drill report (JSON) and the readable timeline printed at the end of a drill.

Figures come from the store and, where a claim is about the outside world (what the
platforms received, what was scheduled there), from the sandbox's own records, so the
report checks Firebreak rather than repeating what Firebreak believes.
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from firebreak.drill.mailbox import Mailbox
from firebreak.sandbox.server import SandboxServer
from firebreak.domain import parts_sha256
from firebreak.store.models import (Approval, Draft, EffectStatus, FreezeRecord, Incident, Mention, Notification,
                                    Publication)
from firebreak.store.models import ScheduledPost as PostRow
from firebreak.flows.runtime import Runtime

if TYPE_CHECKING:
    from firebreak.drill.run import DrillSetup

STAGES = ["monitor", "detect", "classify", "escalate", "freeze", "draft", "approve", "publish", "follow_up",
          "resolve", "resume", "postmortem"]


# The report speaks of notifications in their own words, as it always has.
_NOTIFICATION_STATUS = {EffectStatus.INTENDED: "pending", EffectStatus.DONE: "delivered", EffectStatus.FAILED: "failed"}


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def _secs(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


def build_report(setup: "DrillSetup", rt: Runtime, sandbox: SandboxServer, mailbox: Mailbox, result: dict[str, Any],
                 wall_start: datetime) -> dict[str, Any]:
    db, state = rt.db, setup.state
    incident_id = result["incident_id"]
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        unique = s.scalar(select(func.count()).select_from(Mention)) or 0
        notes = list(s.scalars(select(Notification).where(Notification.incident_id == incident_id).order_by(Notification.id)))
        drafts = list(s.scalars(select(Draft).where(Draft.incident_id == incident_id).order_by(Draft.id)))
        approvals = list(s.scalars(select(Approval).where(Approval.draft_id.in_([d.id for d in drafts])).order_by(Approval.at)))
        pubs = list(s.scalars(select(Publication).where(Publication.incident_id == incident_id,
                                                        Publication.status == EffectStatus.DONE).order_by(Publication.done_at)))
        freezes = list(s.scalars(select(FreezeRecord).where(FreezeRecord.incident_id == incident_id)))
        own = list(s.scalars(select(PostRow).where(PostRow.source == "firebreak")))
    stages_rec = {**inc.summary.drill_stages, **inc.summary.stages}
    stages = {name: {"started_at": _iso(stages_rec[name].started_at) if name in stages_rec else None,
                     "finished_at": _iso(stages_rec[name].finished_at) if name in stages_rec else None}
              for name in STAGES}

    # Scheduled posts: ground truth from the sandbox (platform schedules) and the own queue.
    detected_pt = result["detected_platform_at"]
    resume_pt = stages_rec["resume"].platform_started_at if "resume" in stages_rec else None
    native = [sp for items in state.scheduled.values() for sp in items.values()
              if sp.scheduled_at > detected_pt or sp.state in ("held", "cancelled")
              or any(h.get("action") == "held" for h in sp.history)]
    waiting_own = [p for p in own if p.scheduled_at > detected_pt or p.status != "published"]
    found = len({(sp.platform.value, sp.id) for sp in native}) + len(waiting_own)
    holds = [f for f in freezes if f.action == "hold" and f.status == EffectStatus.DONE]
    resumes = [f for f in freezes if f.action == "resume" and f.status == EffectStatus.DONE]
    during = [p for posts in state.posts.values() for p in posts if p.source == "scheduled"
              and p.created_at >= detected_pt and (resume_pt is None or p.created_at < resume_pt)]
    during += [p for p in own if p.published_at and inc.detected_at <= p.published_at
               and (resume_pt is None or p.published_at < stages_rec["resume"].started_at)]

    # Publications: what the platforms actually received, compared with what was approved.
    received: Counter[tuple[str, str]] = Counter()
    for platform, posts in state.posts.items():
        for p in posts:
            if p.source == "api":
                received[(platform.value, p.text)] += 1
    approved_hashes = {a.sha256 for a in approvals if a.decision == "approve"}
    drafts_by_id = {d.id: d for d in drafts}
    origin_pub = next((p for p in pubs if p.platform == inc.origin_platform
                       and drafts_by_id[p.draft_id].kind == "holding"), None)
    holding = next((d for d in drafts if d.kind == "holding" and d.status in ("approved", "published")), None)
    first_page = min((n.done_at for n in notes if n.kind == "page" and n.status == EffectStatus.DONE), default=None)
    holding_draft_first = next((d for d in drafts if d.kind == "holding"), None)
    verify = rt.audit.verify()
    report = {
        "scenario": setup.scenario.name,
        "wall_clock_s": _secs(wall_start, datetime.now(wall_start.tzinfo)),
        "stages": stages,
        "incident": {"id": inc.id, "type": inc.type, "severity": inc.severity, "origin_platform": inc.origin_platform,
                     "languages": inc.languages, "topics": inc.topics, "acknowledged_by": inc.acknowledged_by,
                     "expected": setup.scenario.expect},
        "mentions": {"expected": setup.scenario.expected_mentions, "ingested": rt.extras.get("mentions_received", 0),
                     "unique": unique},
        "notifications": [{"channel": n.channel, "target": n.target, "level": n.level, "round": n.round, "kind": n.kind,
                           "person": n.person, "status": _NOTIFICATION_STATUS[n.status],
                           "delivered_at": _iso(n.done_at) if n.status == EffectStatus.DONE else None} for n in notes],
        "scheduled_posts": {"found": found, "frozen": len(holds), "resumed": len(resumes),
                            "resume_outcomes": dict(Counter(f.outcome for f in resumes)),
                            "published_during_freeze": len(during)},
        "drafts": [{"id": d.id, "version": d.version, "kind": d.kind, "sequence": d.sequence, "sha256": d.sha256,
                    "status": d.status} for d in drafts],
        "approvals": [{"draft_version": drafts_by_id[a.draft_id].version, "draft_kind": drafts_by_id[a.draft_id].kind,
                       "approver": a.approver, "role": a.role, "channel": a.channel, "decision": a.decision,
                       "sha256": a.sha256, "at": _iso(a.at)} for a in approvals],
        "publications": [{"platform": p.platform, "kind": drafts_by_id[p.draft_id].kind, "sha256": p.sha256,
                          "approved_sha256": p.approved_sha256, "approved": p.approved_sha256 in approved_hashes,
                          "remote_id": p.remote_id, "at": _iso(p.done_at)} for p in pubs],
        "publications_duplicated": sum(n - 1 for n in received.values() if n > 1),
        # Which platforms received the same text more than once, and how many extra times.
        "publications_duplicated_by_platform": dict(Counter({p: n - 1 for (p, _), n in received.items() if n > 1})),
        "faults_injected": _faults(state),
        "follow_ups": sum(1 for d in drafts if d.kind == "update" and d.status == "published"),
        "audit": {"events": verify.events, "verified": verify.ok, "head": verify.head},
        "latency_s": {
            "detect_to_first_notification": _secs(inc.detected_at, first_page),
            "detect_to_all_frozen": _secs(inc.detected_at, max((f.done_at for f in holds), default=None)),
            "detect_to_draft_ready": _secs(inc.detected_at, holding_draft_first.ready_at if holding_draft_first else None),
            "approval_to_origin_published": _secs(holding.approved_at if holding else None,
                                                  origin_pub.done_at if origin_pub else None),
        },
        "artifacts": {"postmortem_html": result["response"].get("postmortem_html"),
                      "crisis_page_html": str(rt.settings.data_dir / "crisis-page" / "index.html")},
        "engagement": {"answered_share": _answered_share(db, inc)},
        "deliveries": {"emails_received": len(mailbox.messages), "slack_messages": len(sandbox.app.state.webhooks)},
        "operator_errors": result["operator_errors"],
    }
    # Each published text must be exactly one approved variant.
    for p in report["publications"]:
        d = next(d for d in drafts if d.sha256 == p["approved_sha256"])
        p["matches_approved_text"] = parts_sha256(list(d.variants[p["platform"]])) == p["sha256"]
    return report


def _faults(state: Any) -> dict[str, Any]:
    """What the sandbox's fault injector did (total, by kind, by platform); zeros without one."""
    inj = state.fault_injector
    if inj is None:
        return {"profile": None, "seed": None, "total": 0, "by_kind": {}, "by_platform": {}}
    return {"profile": inj.name, "seed": inj.seed, **inj.summary()}


def _answered_share(db, inc: Incident) -> float | None:  # type: ignore[no-untyped-def]
    """Of the storm's mentions that needed an answer, the share answered, moved private,
    hidden or deliberately skipped by the end of the drill."""
    from firebreak.tasks.engage import coverage

    handled, needing = coverage(db, inc.brand, inc.started_at - timedelta(hours=1))
    return round(handled / needing, 3) if needing else None


def _latency(key: str, seconds: float | None) -> str:
    """`detect → first notification 1.20 s`"""
    what = key.replace("_to_", " → ").replace("_", " ")
    return f"{what} {seconds:.2f} s" if isinstance(seconds, (int, float)) else f"{what}: not reached"


def print_timeline(report: dict[str, Any]) -> None:
    inc = report["incident"]
    t0 = report["stages"]["detect"]["finished_at"]
    base = datetime.fromisoformat(t0) if t0 else None

    def rel(iso: str | None) -> str:
        if not iso or base is None:
            return "      -"
        return f"{(datetime.fromisoformat(iso) - base).total_seconds():+7.1f}s"

    print(f"\nFirebreak drill: {report['scenario']}  (wall clock {report['wall_clock_s']:.0f}s)")
    print(f"Incident #{inc['id']}: {inc['type']}, severity {inc['severity']}, started on {inc['origin_platform']}, "
          f"languages {', '.join(inc['languages'])}; topic: {', '.join(inc['topics'][:5])}")
    print("\n  stage        start     end      (relative to detection)")
    for name, st in report["stages"].items():
        print(f"  {name:<11} {rel(st['started_at'])}  {rel(st['finished_at'])}")
    m = report["mentions"]
    sp = report["scheduled_posts"]
    print(f"\n  mentions: {m['expected']} in scenario, {m['ingested']} received, {m['unique']} stored")
    pages = [n for n in report["notifications"] if n["kind"] == "page"]
    print(f"  escalation: {len(pages)} pages, levels {sorted({n['level'] for n in pages})}, "
          f"acknowledged by {inc['acknowledged_by']}")
    outcomes = ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sp["resume_outcomes"].items())
    print(f"  scheduled posts: {sp['found']} found, {sp['frozen']} frozen, {sp['resumed']} resumed"
          + (f" ({outcomes})" if outcomes else "") + f", {sp['published_during_freeze']} published during the freeze")
    print(f"  statements: {len(report['drafts'])} drafts, {len(report['approvals'])} sign-offs, "
          f"{len(report['publications'])} publications, {report['follow_ups']} follow-up update(s), "
          f"{report['publications_duplicated']} duplicated")
    order = [p["platform"] for p in report["publications"] if p["kind"] == "holding"]
    print(f"  holding statement order: {' → '.join(order)}")
    lat = report["latency_s"]
    print("  latency: " + ", ".join(_latency(k, v) for k, v in lat.items()))
    print(f"  audit: {report['audit']['events']} events, chain {'intact' if report['audit']['verified'] else 'BROKEN'}")
    fi = report.get("faults_injected") or {}
    if fi.get("total"):
        print(f"  faults injected ({fi['profile']}, seed {fi['seed']}): {fi['total']} — "
              + ", ".join(f"{k} {v}" for k, v in fi["by_kind"].items()))
    print(f"  answer coverage: {report['engagement']['answered_share']}")
    if report["artifacts"].get("postmortem_html"):
        print(f"  post-mortem: {report['artifacts']['postmortem_html']}")
        print(f"  crisis page: {report['artifacts']['crisis_page_html']}")
    if report["operator_errors"]:
        print(f"  drill operator errors: {report['operator_errors'][:3]}")
    print()

