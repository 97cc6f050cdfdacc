"""Assessing an incident that an alert opened: what the alert says counts (type, topic, origin,
severity), with or without mentions behind it."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firebreak.audit import AuditLog
from firebreak.domain import utcnow
from firebreak.tasks.classify import assess
from firebreak.tasks.draft import draft_statement, facts_for
from firebreak.tasks.incident import apply_assessment
from firebreak.tasks.intake import attach_alerts, map_alert, store_alerts


def _open_from_alert(db, playbook, doc):  # type: ignore[no-untyped-def]
    audit = AuditLog(db)
    [(alert_id, _)] = store_alerts(db, [map_alert(playbook, "generic", doc)])
    [dispatch] = attach_alerts(db, audit, playbook, [alert_id])
    assert dispatch.opened
    a = assess(db, playbook, dispatch.incident_id, utcnow() + timedelta(minutes=1))
    return dispatch.incident_id, a


def test_the_documented_example_alert_is_a_product_recall(db, playbook) -> None:  # type: ignore[no-untyped-def]
    """docs/DEPLOY.md's example: {"source": "manual", "source_id": "test-1", "topic": "recall",
    "sentiment": "negative"}. No mention behind it: the alert alone says what the crisis is."""
    incident_id, a = _open_from_alert(db, playbook, {"source": "manual", "source_id": "test-1", "topic": "recall",
                                                     "sentiment": "negative"})
    assert a.type == "product_safety" and a.topic == "recall"
    assert a.severity == playbook.crisis_type("product_safety").default_severity
    inc = apply_assessment(db, AuditLog(db), incident_id, a)
    with db.session() as s:
        from firebreak.store.models import Incident

        inc = s.get(Incident, incident_id)
    text = "\n".join(draft_statement(playbook, "holding", facts_for(playbook, inc), language="en")["linkedin"])
    assert "recall" in text.lower() and "offensive" not in text.lower()


@pytest.mark.parametrize("doc, expect", [
    ({"source_id": "a1", "topic": "site down", "severity": "critical"}, {"type": "service_outage", "severity": 1}),
    ({"source_id": "a2", "text": "Customers say their card data leaked", "severity": 2},
     {"type": "data_breach", "severity": 1}),  # the rules already say 1: a milder hint does not soften it
    ({"source_id": "a3", "topic": "recall", "link": "https://x.com/someone/status/1"},
     {"type": "product_safety", "origin_platform": "x"}),
])
def test_an_alert_s_topic_text_link_and_severity_count(db, playbook, doc, expect) -> None:  # type: ignore[no-untyped-def]
    _, a = _open_from_alert(db, playbook, doc)
    got = {"type": a.type, "severity": a.severity, "origin_platform": a.origin_platform}
    assert {k: got[k] for k in expect} == expect
