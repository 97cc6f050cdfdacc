"""The crisis page: one static, mobile-friendly HTML page with the current statement, an FAQ
and the timeline of updates. Regenerated on every publication so it never lags the
channels; written to a folder (and served by Firebreak's web service where it runs)."""

from __future__ import annotations

import html
import os
import tempfile
from pathlib import Path

from sqlalchemy import select

from firebreak.config.playbook import Playbook
from firebreak.store.db import Database
from firebreak.store.models import Draft, EffectStatus, Incident, Publication

# What people ask in each kind of crisis. Answers only say what every statement says too.
FAQ: dict[str, list[tuple[str, str]]] = {
    "product_safety": [
        ("Is it safe to keep using the product?", "Please stop using it until we confirm it is safe. We will say so here first."),
        ("I was hurt. What should I do?", "Please seek medical help first, then contact us so we can support you."),
        ("Will there be a recall or refund?", "We will publish any recall or refund details here as soon as they are decided."),
    ],
    "data_breach": [
        ("Is my account affected?", "We are checking which accounts are affected and will contact those people directly."),
        ("Should I change my password?", "As a precaution, yes: change it, and do not reuse it elsewhere."),
        ("Will you ask me for my password?", "Never. Ignore any message that asks for it, even if it looks like it comes from us."),
    ],
    "service_outage": [
        ("When will the service be back?", "We are working on it and will post each update here."),
        ("Is my data safe?", "Nothing we know so far suggests otherwise; we will tell you here if that changes."),
    ],
    "offensive_post": [
        ("What happened?", "We published something that hurt people. We have taken it down and are reviewing how it happened."),
        ("What are you doing about it?", "We are reviewing our processes and will share what we change here."),
    ],
    "employee_misconduct": [
        ("What happened?", "We are aware of the reports and are looking into them carefully."),
        ("What are you doing about it?", "We are investigating and will share the outcome as far as we are able to."),
    ],
    "external_disaster": [
        ("Are your stores and services open?", "We will post any changes to opening hours or deliveries here."),
        ("How can I help?", "Please follow the advice of the local authorities and emergency services."),
    ],
}


def _statement_text(d: Draft) -> str:
    # Long-form platforms carry the full statement; fall back to any variant.
    for p in ("linkedin", "facebook", "instagram"):
        if d.variants.get(p):
            return "\n".join(d.variants[p])
    return "\n".join(next(iter(d.variants.values())))


def render(db: Database, playbook: Playbook, incident_id: int) -> str:
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        rows = s.execute(
            select(Draft, Publication.done_at)
            .join(Publication, Publication.draft_id == Draft.id)
            .where(Draft.incident_id == incident_id, Publication.status == EffectStatus.DONE)
            .order_by(Publication.done_at)
        ).all()
    first_seen: dict[int, tuple[Draft, object]] = {}
    for d, at in rows:
        first_seen.setdefault(d.id, (d, at))
    published = list(first_seen.values())
    e = html.escape
    brand = playbook.brand
    ctype = playbook.crisis_type(inc.type).name if inc.type else "Incident"
    if published:
        current, current_at = published[-1]
        paragraphs = "".join(f"<p>{e(p)}</p>" for p in _statement_text(current).split("\n") if p.strip())
        status = "Resolved" if inc.status == "resolved" else "Ongoing"
        latest = f'<p class="meta">Last updated <time datetime="{e(str(current_at))}">{e(str(current_at))}</time> · {status}</p>'
    else:
        paragraphs, latest = "<p>We are aware of the situation and will post our first statement here.</p>", ""
    faq = "".join(f"<details><summary>{e(q)}</summary><p>{e(a)}</p></details>" for q, a in FAQ.get(inc.type or "", []))
    timeline = "".join(
        f'<li><time datetime="{e(str(at))}">{e(str(at))}</time> <b>{e(d.kind)}</b>'
        f'{f" #{d.sequence}" if d.kind == "update" else ""}: {e(_statement_text(d).splitlines()[0])}</li>'
        for d, at in reversed(published))
    return f"""<!doctype html><html lang="{e(brand.default_language)}"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(brand.name)}: {e(ctype)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:42rem;margin:0 auto;padding:1rem;line-height:1.5;color:#1a1a1a}}
h1{{font-size:1.4rem}}.statement{{background:#f4f6f8;border-left:4px solid #c0392b;padding:.5rem 1rem}}
.meta{{color:#555;font-size:.9rem}}details{{margin:.4rem 0}}summary{{font-weight:600;cursor:pointer}}
li{{margin:.4rem 0}}time{{color:#555;font-size:.85rem}}</style></head><body>
<header><h1>{e(brand.name)}: {e(ctype)}</h1>{latest}</header>
<main><section class="statement" aria-label="Current statement">{paragraphs}</section>
<h2>Questions and answers</h2>{faq or "<p>Answers will appear here.</p>"}
<h2>Updates</h2><ol reversed>{timeline or "<li>No statement yet.</li>"}</ol>
<p class="meta">Press: {e(brand.contact)} · Spokesperson: {e(brand.spokesperson.name)}, {e(brand.spokesperson.title)}</p></main>
</body></html>"""


def write(db: Database, playbook: Playbook, incident_id: int, folder: Path) -> Path:
    """Write atomically (temp file + rename) so a web server never serves half a page."""
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / "index.html"
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".index-", suffix=".html")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(render(db, playbook, incident_id))
    os.replace(tmp, target)
    return target
