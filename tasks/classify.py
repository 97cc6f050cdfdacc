"""Classify stage: label mentions in batches (language, sentiment, offensive, complaint, crisis
types) and assess an incident: type, severity, origin platform and first post, languages,
topics. The per-mention model lives in tasks/triage/model.py; this module applies it and reasons
about the storm as a whole.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import urlsplit

from sqlalchemy import select, update

from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook, SeverityCondition
from firebreak.store.db import Database
from firebreak.store.models import Incident, Mention, Signal
from firebreak.tasks.triage import Triage, crisis_types_in, dominant_terms

log = get_logger("firebreak.tasks.classify")


def needs_answer(text: str, complaint: bool, offensive: bool) -> bool:
    return not offensive and (complaint or "?" in text)


def label_pending(db: Database, triage: Triage, brand: str, *, batch: int = 2000) -> int:
    """Label every stored mention that has no labels yet. Returns how many were labelled."""
    done = 0
    while True:
        with db.session() as s:
            rows = s.execute(
                select(Mention.id, Mention.text, Mention.lang_hint)
                .where(Mention.brand == brand, Mention.lang.is_(None)).limit(batch)
            ).all()
            if not rows:
                return done
            # The platform's own language tag is a prior for language identification.
            labels = triage.label_batch([r.text for r in rows], lang_hints=[r.lang_hint for r in rows])
            s.execute(
                update(Mention),
                [
                    {
                        "id": r.id, "lang": lab.lang, "sentiment": lab.sentiment,
                        "sentiment_score": lab.sentiment_score, "offensive": lab.offensive,
                        "offensive_score": lab.offensive_score, "complaint": lab.complaint,
                        "complaint_score": lab.complaint_score, "crisis_types": list(lab.crisis_types),
                        "answer_status": "open" if needs_answer(r.text, lab.complaint, lab.offensive) else "none",
                    }
                    for r, lab in zip(rows, labels)
                ],
            )
        done += len(rows)


@dataclass
class Assessment:
    type: str
    severity: int
    origin_platform: str
    first_mention_id: int | None
    languages: list[str]
    topics: list[str]
    figures: dict[str, float] = field(default_factory=dict)
    topic: str = ""  # the phrase statements use


def _matches(cond: SeverityCondition, ctype: str, figures: dict[str, float]) -> bool:
    return (
        (not cond.types or ctype in cond.types)
        and figures["volume_ratio"] >= cond.min_volume_ratio
        and figures["negative_share"] >= cond.min_negative_share
        and figures["platforms"] >= cond.min_platforms
        and figures["reach"] >= cond.min_reach
    )


def severity_for(playbook: Playbook, ctype: str | None, figures: dict[str, float]) -> int:
    """First matching rule; else the crisis type's default; else the playbook default."""
    for rule in playbook.severity.rules:
        if _matches(rule.when, ctype or "", figures):
            return rule.severity
    return playbook.crisis_type(ctype).default_severity if ctype else playbook.severity.default


def assess(db: Database, playbook: Playbook, incident_id: int, now: datetime) -> Assessment:
    """What the storm is about, how bad, and where it began, from the stored mentions."""
    with db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None, incident_id
        sig = s.scalars(select(Signal).where(Signal.incident_id == incident_id).order_by(Signal.at)).first()
        lookback = timedelta(minutes=playbook.detection.bucket_minutes * 6)
        storm_start = inc.started_at - lookback
        storm = s.execute(
            select(Mention.id, Mention.platform, Mention.created_at, Mention.text, Mention.lang, Mention.sentiment,
                   Mention.crisis_types, Mention.author_followers, Mention.offensive)
            .where(Mention.brand == inc.brand, Mention.created_at >= storm_start, Mention.created_at <= now)
            .order_by(Mention.created_at, Mention.id)
        ).all()
        background = s.scalars(
            select(Mention.text).where(Mention.brand == inc.brand, Mention.created_at < storm_start)
            .order_by(Mention.created_at.desc()).limit(2000)
        ).all()
    negative = [m for m in storm if m.sentiment == "negative"]
    alert = AlertSays.of(sig, playbook)
    votes: Counter[str] = Counter()
    for m in storm:
        for t in m.crisis_types or []:
            votes[t] += 2 if m.sentiment == "negative" else 1
    for t in alert.types:
        # The alert that opened the incident is a person's or a tool's judgement of the whole
        # storm: it outweighs any number of mentions that do not name a type.
        votes[t] += ALERT_WEIGHT + max(votes.values(), default=0)
    ctype = votes.most_common(1)[0][0] if votes else playbook.crisis_types[0].id
    # The origin is where the first on-topic mention appeared, not where volume peaked.
    on_topic = [m for m in storm if ctype in (m.crisis_types or []) and not m.offensive]
    first = on_topic[0] if on_topic else (negative[0] if negative else (storm[0] if storm else None))
    langs = Counter(m.lang for m in storm if m.lang)
    total = sum(langs.values()) or 1
    languages = [lang for lang, n in langs.most_common() if n / total >= 0.03]
    figures = {
        "volume_ratio": _brand_figure(sig, "ratio") if sig else 0.0,
        "negative_share": len(negative) / len(storm) if storm else 0.0,
        "platforms": float(len({m.platform for m in on_topic or storm})),
        "reach": float(sum(m.author_followers or 0 for m in on_topic or storm)),
        "mentions": float(len(storm)),
    }
    if sig is not None:
        # Severity looks at the storm's peak so far, not only the bucket that fired.
        figures["volume_ratio"] = max(figures["volume_ratio"], _peak_ratio(storm, sig, playbook))
    if alert.negative and not storm:
        figures["negative_share"] = 1.0  # the alert's own sentiment is all there is to go on
    severity = severity_for(playbook, ctype if votes else None, figures)
    if alert.severity is not None:
        severity = min(severity, alert.severity)  # a hint can make it worse, never milder than the rules
    storm_texts = [m.text for m in on_topic or negative]
    topics = dominant_terms(storm_texts, background, k=8)
    topic = alert.topic or topic_phrase(topics, storm_texts)
    origin = first.platform if first else alert.platform
    return Assessment(ctype, severity, origin, first.id if first else None, languages,
                      topics or ([alert.topic] if alert.topic else []), figures, topic=topic)


ALERT_WEIGHT = 10
_PLATFORM_HOSTS = {"x.com": "x", "twitter.com": "x", "facebook.com": "facebook", "fb.com": "facebook",
                   "instagram.com": "instagram", "linkedin.com": "linkedin", "bsky.app": "bluesky"}


@dataclass(frozen=True)
class AlertSays:
    """What the alert that opened an incident says about it (nothing, for a detector's signal)."""

    types: tuple[str, ...] = ()
    topic: str = ""
    platform: str = ""
    severity: int | None = None
    negative: bool = False

    @classmethod
    def of(cls, sig: Signal | None, playbook: Playbook) -> AlertSays:
        if sig is None or sig.kind != "alert":
            return cls()
        d = sig.details or {}
        topic, text = str(d.get("topic") or "").strip(), str(d.get("text") or "")
        host = (urlsplit(str(d.get("link") or "")).hostname or "").removeprefix("www.").removeprefix("mobile.")
        sev = d.get("severity")
        return cls(types=crisis_types_in(playbook.crisis_types, f"{topic}\n{text}"), topic=topic,
                   platform=_PLATFORM_HOSTS.get(host, ""), severity=int(sev) if sev else None,
                   negative=d.get("sentiment") == "negative")


def topic_phrase(terms: list[str], texts: list[str]) -> str:
    """A readable name for what the storm is about: the first dominant term, widened to a
    longer top phrase that contains it, in the casing people used most."""
    if not terms:
        return ""
    best = terms[0]
    for t in terms[1:4]:
        if best in t and len(t) > len(best):
            best = t
    forms: Counter[str] = Counter()
    pattern = re.compile(rf"(?<!\w){re.escape(best)}(?!\w)", re.IGNORECASE)
    for text in texts[:500]:
        forms.update(m.group(0) for m in pattern.finditer(text))
    return forms.most_common(1)[0][0] if forms else best


def _brand_figure(sig: Signal, name: str) -> float:
    """The brand's ``ratio`` or ``baseline`` at the signal, whichever series fired it (older
    signals and intake alerts carry only their own)."""
    own = {"ratio": sig.details.get("ratio", 0.0), "baseline": sig.baseline}[name]
    return float((sig.details.get("brand") or {}).get(name, own))


def _peak_ratio(storm: list, sig: Signal, playbook: Playbook) -> float:
    minutes = playbook.detection.bucket_minutes
    per_bucket: Counter[int] = Counter(int(m.created_at.timestamp()) // (minutes * 60) for m in storm)
    peak = max(per_bucket.values()) if per_bucket else 0
    return peak / max(_brand_figure(sig, "baseline"), 1.0)
