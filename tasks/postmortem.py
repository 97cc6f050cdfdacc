"""Post-mortem: what happened, how fast Firebreak and the team responded, and questions for
the team. Written as a standalone HTML file (inline SVG chart, no external assets) and a
Markdown summary for the Prefect artifact."""

from __future__ import annotations

import base64
import html
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import select

from firebreak.config.playbook import Playbook
from firebreak.store.db import Database
from firebreak.tasks import charts
from firebreak.tasks.charts import BucketStats
from firebreak.store.models import (
    Approval,
    Draft,
    EffectStatus,
    FreezeRecord,
    Incident,
    Mention,
    Notification,
    Publication,
    Signal,
)


@dataclass
class PostMortem:
    incident: dict[str, Any]
    figures: dict[str, float | None]
    timeline: list[tuple[str, str]]  # (iso time, what)
    volume: list[tuple[str, int, int]]  # (bucket iso, mentions, negative)
    held: list[dict[str, Any]] = field(default_factory=list)
    approvals: list[dict[str, Any]] = field(default_factory=list)
    series: list[BucketStats] = field(default_factory=list)
    detected_platform_at: datetime | None = None


HANDLED = ("answered", "private", "skipped", "hidden")


def bucket_stats(rows: list, minutes: int) -> list[BucketStats]:  # type: ignore[type-arg]
    """Per bucket: volume by sentiment, and the share of mentions needing an answer that had
    been handled by then (so the chart shows how fast the queue was worked)."""
    step = minutes * 60
    if not rows:
        return []
    keys = [int(r.created_at.timestamp()) // step for r in rows]
    lo, hi = min(keys), max(keys)
    counts = {k: Counter() for k in range(lo, hi + 1)}  # type: ignore[var-annotated]
    for k, r in zip(keys, rows):
        counts[k][r.sentiment or "neutral"] += 1
    needs = sorted(((r.created_at, r.answered_at if r.answer_status in HANDLED else None)
                    for r in rows if r.answer_status not in (None, "none")), key=lambda t: t[0])
    out = []
    for k in range(lo, hi + 1):
        end = datetime.fromtimestamp((k + 1) * step, tz=rows[0].created_at.tzinfo)
        due = [a for c, a in needs if c < end]
        done = sum(1 for a in due if a is not None and a <= end)
        c = counts[k]
        out.append(BucketStats(end, sum(c.values()), c["negative"], c["neutral"], c["positive"], len(due), done))
    return out


def _secs(a: datetime | None, b: datetime | None) -> float | None:
    return round((b - a).total_seconds(), 3) if a and b else None


def gather(db: Database, playbook: Playbook, incident_id: int) -> PostMortem:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        sig = s.scalars(select(Signal).where(Signal.incident_id == incident_id).order_by(Signal.at)).first()
        first = s.get(Mention, inc.first_mention_id) if inc.first_mention_id else None
        notes = list(s.scalars(select(Notification).where(Notification.incident_id == incident_id).order_by(Notification.id)))
        freezes = list(s.scalars(select(FreezeRecord).where(FreezeRecord.incident_id == incident_id).order_by(FreezeRecord.id)))
        drafts = list(s.scalars(select(Draft).where(Draft.incident_id == incident_id).order_by(Draft.id)))
        approvals = list(s.scalars(select(Approval).where(Approval.draft_id.in_([d.id for d in drafts])).order_by(Approval.at)))
        pubs = list(s.scalars(select(Publication).where(Publication.incident_id == incident_id).order_by(Publication.id)))
        start = (first.created_at if first else inc.started_at) - timedelta(hours=2)
        rows = s.execute(select(Mention.created_at, Mention.sentiment, Mention.answer_status, Mention.answered_at)
                         .where(Mention.brand == inc.brand, Mention.created_at >= start)).all()
    series = bucket_stats(rows, playbook.detection.bucket_minutes)
    volume = [(b.at.isoformat(), b.total, b.negative) for b in series]
    needs = [r for r in rows if r.answer_status not in (None, "none")]
    handled = [r for r in needs if r.answer_status in HANDLED]
    delivered = [n for n in notes if n.status == EffectStatus.DONE and n.kind == "page"]
    holds = [f for f in freezes if f.action == "hold" and f.status == EffectStatus.DONE]
    published = [p for p in pubs if p.status == EffectStatus.DONE]
    figures: dict[str, float | None] = {
        "time_to_detect_s (platform time, first post to signal)": _secs(first.created_at if first else None, sig.at if sig else None),
        "detect_to_first_notification_s": _secs(inc.detected_at, min((n.done_at for n in delivered), default=None)),
        "detect_to_all_frozen_s": _secs(inc.detected_at, max((f.done_at for f in holds), default=None)),
        "detect_to_first_statement_s": _secs(inc.detected_at, min((p.done_at for p in published if p.done_at), default=None)),
        "answer_coverage": round(len(handled) / len(needs), 3) if needs else None,
        "mentions_needing_answer": float(len(needs)),
        "statements_published": float(len({p.draft_id for p in published})),
        "posts_held": float(len(holds)),
        "posts_resumed": float(len([f for f in freezes if f.action == "resume" and f.status == EffectStatus.DONE])),
    }
    timeline: list[tuple[str, str]] = []
    if first:
        timeline.append((first.created_at.isoformat(), f"first post on {first.platform} (platform time)"))
    if sig:
        timeline.append((sig.at.isoformat(), f"signal: {sig.volume} mentions vs baseline {sig.baseline:.1f} (platform time)"))
    timeline.append((inc.detected_at.isoformat(), "incident opened"))
    timeline += [(n.done_at.isoformat(), f"paged {n.person or n.target} via {n.channel} (level {n.level})")
                 for n in delivered if n.done_at]
    timeline += [(f.done_at.isoformat(), f"{f.action} {f.snapshot['platform']} post {f.snapshot['platform_id']}"
                  + (f" ({f.outcome})" if f.outcome else "")) for f in freezes if f.done_at]
    timeline += [(d.created_at.isoformat(), f"draft {d.kind} #{d.sequence} v{d.version} ready") for d in drafts]
    timeline += [(a.at.isoformat(), f"{a.decision} by {a.approver} as {a.role} via {a.channel}") for a in approvals]
    timeline += [(p.done_at.isoformat(), f"published on {p.platform}") for p in published if p.done_at]
    if inc.resolved_at:
        timeline.append((inc.resolved_at.isoformat(), "resolved"))
    timeline.sort()
    draft_by_id = {d.id: d for d in drafts}
    return PostMortem(
        incident={"id": inc.id, "brand": playbook.brand.name, "type": inc.type, "severity": inc.severity,
                  "origin_platform": inc.origin_platform, "languages": inc.languages, "topics": inc.topics,
                  "drill": inc.drill, "acknowledged_by": inc.acknowledged_by},
        figures=figures, timeline=timeline, volume=volume, series=series,
        detected_platform_at=sig.at if sig else None,
        held=[{**f.snapshot, "outcome": next((r.outcome for r in freezes if r.action == "resume"
                                              and r.scheduled_post_id == f.scheduled_post_id), "still held")}
              for f in holds],
        approvals=[{"draft": f"{draft_by_id[a.draft_id].kind} v{draft_by_id[a.draft_id].version}", "approver": a.approver,
                    "role": a.role, "channel": a.channel, "decision": a.decision,
                    "turnaround_s": _secs(draft_by_id[a.draft_id].ready_at, a.at)} for a in approvals],
    )


QUESTIONS = [
    "What worked: which step saved the most time, and would we keep the holding statement as it was?",
    "What did not: where did we wait (detection, paging, approval, publishing), and why?",
    "Were the crisis type and severity right? Which keywords or thresholds in the playbook should change?",
    "Did the right people get paged at the right level? Should the escalation timeouts change?",
    "Which held posts should not have been resumed as they were? Does the freeze rule still fit?",
    "Which mentions went unanswered, and what reply templates would have helped?",
]


def _svg(volume: list[tuple[str, int, int]], width: int = 720, height: int = 200) -> str:
    if not volume:
        return "<p>No mentions recorded.</p>"
    peak = max(v for _, v, _ in volume) or 1
    n = len(volume)
    def pts(idx: int) -> str:
        return " ".join(f"{i * (width - 40) / max(n - 1, 1) + 30:.1f},{height - 20 - row[idx] * (height - 40) / peak:.1f}"
                        for i, row in enumerate(volume))
    return (f'<svg role="img" aria-label="Mentions per bucket" viewBox="0 0 {width} {height}" width="100%">'
            f'<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{pts(1)}"/>'
            f'<polyline fill="none" stroke="#d62728" stroke-width="2" points="{pts(2)}"/>'
            f'<text x="30" y="14" font-size="12">peak {peak} mentions per bucket; blue: all, red: negative</text></svg>')


def write_charts(pm: PostMortem, folder: Path, stem: str) -> dict[str, Path]:
    return {
        "volume": charts.volume_chart(pm.series, pm.detected_platform_at, folder / f"{stem}-volume.png"),
        "sentiment": charts.sentiment_chart(pm.series, folder / f"{stem}-sentiment.png"),
        "answered": charts.answered_chart(pm.series, folder / f"{stem}-answered.png"),
    }


def _img(path: Path, alt: str) -> str:
    data = base64.b64encode(path.read_bytes()).decode()
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}" style="max-width:100%">'


def render_html(pm: PostMortem, images: dict[str, Path] | None = None) -> str:
    e = html.escape
    inc = pm.incident
    rows = "".join(f"<tr><th>{e(k)}</th><td>{'' if v is None else e(str(v))}</td></tr>" for k, v in pm.figures.items())
    tl = "".join(f"<li><time>{e(t)}</time> {e(w)}</li>" for t, w in pm.timeline)
    held = "".join(f"<tr><td>{e(h['platform'])}</td><td>{e(h['scheduled_at'])}</td><td>{e(h['text'])}</td>"
                   f"<td>{e(str(h['outcome']))}</td></tr>" for h in pm.held)
    appr = "".join(f"<tr><td>{e(a['draft'])}</td><td>{e(a['approver'])}</td><td>{e(a['role'])}</td><td>{e(a['channel'])}</td>"
                   f"<td>{e(a['decision'])}</td><td>{e(str(a['turnaround_s']))}</td></tr>" for a in pm.approvals)
    qs = "".join(f"<li>{e(q)}</li>" for q in QUESTIONS)
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Post-mortem: incident #{inc['id']} ({e(inc['brand'])})</title>
<style>body{{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}}
table{{border-collapse:collapse;width:100%}}td,th{{border:1px solid #ccc;padding:.3rem .5rem;text-align:left;vertical-align:top}}
time{{font-family:monospace;color:#555}}</style></head><body>
<h1>Post-mortem: incident #{inc['id']}{' (drill)' if inc['drill'] else ''}</h1>
<p><b>{e(inc['brand'])}</b> · type <b>{e(str(inc['type']))}</b> · severity <b>{inc['severity']}</b> ·
started on <b>{e(str(inc['origin_platform']))}</b> · languages {e(', '.join(inc['languages'] or []))} ·
topic {e(', '.join((inc['topics'] or [])[:6]))} · acknowledged by {e(str(inc['acknowledged_by']))}</p>
<h2>Mention volume</h2>{_img(images["volume"], "Mention volume with the detection point") if images else _svg(pm.volume)}
{"<h2>Sentiment</h2>" + _img(images["sentiment"], "Sentiment share over time") if images else ""}
{"<h2>Answer coverage</h2>" + _img(images["answered"], "Answered share over time") if images else ""}
<h2>Figures</h2><table>{rows}</table>
<h2>Timeline</h2><ol>{tl}</ol>
<h2>Scheduled posts held and resumed</h2><table><tr><th>platform</th><th>was due</th><th>text</th><th>outcome</th></tr>{held}</table>
<h2>Approvals</h2><table><tr><th>draft</th><th>who</th><th>role</th><th>channel</th><th>decision</th><th>turnaround (s)</th></tr>{appr}</table>
<h2>Questions for the team</h2><ul>{qs}</ul>
</body></html>"""


def render_markdown(pm: PostMortem, html_path: Path | None = None) -> str:
    inc = pm.incident
    lines = [f"# Post-mortem: incident #{inc['id']}", "",
             f"**{inc['type']}**, severity {inc['severity']}, started on {inc['origin_platform']}; "
             f"languages {', '.join(inc['languages'] or [])}", "", "| figure | value |", "|---|---|"]
    lines += [f"| {k} | {'' if v is None else v} |" for k, v in pm.figures.items()]
    lines += ["", "## Questions for the team", *[f"- {q}" for q in QUESTIONS]]
    if html_path:
        lines += ["", f"Full report: `{html_path}`"]
    return "\n".join(lines)


def write(db: Database, playbook: Playbook, incident_id: int, folder: Path) -> tuple[Path, str]:
    pm = gather(db, playbook, incident_id)
    folder.mkdir(parents=True, exist_ok=True)
    stem = f"postmortem-incident-{incident_id}"
    images = write_charts(pm, folder, stem)  # real PNGs beside the report, and inlined into it
    path = folder / f"{stem}.html"
    path.write_text(render_html(pm, images), encoding="utf-8")
    return path, render_markdown(pm, path)
