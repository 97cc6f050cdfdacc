"""Sign-off rules: roles per severity, author ≠ approver, one person one role, bound to the hash."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firebreak.domain import utcnow
from firebreak.errors import ApprovalError, PolicyViolation
from firebreak.store.models import Approval, AuditEvent
from firebreak.tasks.approve import (
    approval_status,
    create_draft,
    diff_variants,
    ensure_publishable,
    record_decision,
    review_markdown,
)
from tests.fakes import make_incident

VARIANTS = {"x": ["We are aware of reports. More soon."], "linkedin": ["We are aware of reports.\nMore soon."]}


def _draft(db, audit, playbook, severity=1):  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook, severity=severity)
    return create_draft(db, audit, inc.id, "holding", 0, "en", VARIANTS)


def test_severity_one_needs_comms_and_legal(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d = _draft(db, audit, playbook)
    record_decision(db, audit, playbook, d.id, "maria", "approve", "cli", d.sha256)
    st = approval_status(db, playbook, d.id)
    assert st.filled == {"comms": "maria"} and st.missing_roles == ["legal"] and not st.satisfied
    with pytest.raises(PolicyViolation):
        ensure_publishable(db, playbook, d.id)
    record_decision(db, audit, playbook, d.id, "ingrid", "approve", "link", d.sha256)
    assert approval_status(db, playbook, d.id).satisfied


def test_severity_three_needs_comms_only(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d = _draft(db, audit, playbook, severity=3)
    record_decision(db, audit, playbook, d.id, "tomas", "approve", "ui", d.sha256)
    assert approval_status(db, playbook, d.id).satisfied


def test_one_person_cannot_fill_two_roles(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d = _draft(db, audit, playbook)
    record_decision(db, audit, playbook, d.id, "maria", "approve", "cli", d.sha256)
    with pytest.raises(ApprovalError, match="already answered"):
        record_decision(db, audit, playbook, d.id, "maria", "approve", "cli", d.sha256)
    with pytest.raises(ApprovalError, match="none of the roles"):
        record_decision(db, audit, playbook, d.id, "tomas", "approve", "cli", d.sha256)  # comms again


def test_author_cannot_approve(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook)
    d = create_draft(db, audit, inc.id, "holding", 0, "en", VARIANTS, author="maria", source="human")
    with pytest.raises(ApprovalError, match="wrote this draft"):
        record_decision(db, audit, playbook, d.id, "maria", "approve", "ui", d.sha256)


def test_approval_is_bound_to_the_exact_text(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d = _draft(db, audit, playbook)
    edited = {**VARIANTS, "x": ["We are aware of reports. More soon!"]}
    d2 = create_draft(db, audit, d.incident_id, "holding", 0, "en", edited)
    assert d2.version == 2 and d2.sha256 != d.sha256
    with pytest.raises(ApprovalError, match="does not match"):
        record_decision(db, audit, playbook, d2.id, "maria", "approve", "cli", d.sha256)
    assert "More soon!" in diff_variants(d.variants, d2.variants)


def test_expired_approvals_do_not_count(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d = _draft(db, audit, playbook, severity=3)
    record_decision(db, audit, playbook, d.id, "maria", "approve", "cli", d.sha256)
    with db.session() as s:
        a = s.query(Approval).one()
        a.expires_at = utcnow() - timedelta(seconds=1)
    assert not approval_status(db, playbook, d.id).satisfied


def test_every_answer_is_audited_with_its_channel(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d = _draft(db, audit, playbook)
    record_decision(db, audit, playbook, d.id, "maria", "approve", "link", d.sha256)
    with pytest.raises(ApprovalError):
        record_decision(db, audit, playbook, d.id, "nobody", "approve", "ui", d.sha256)
    record_decision(db, audit, playbook, d.id, "ingrid", "reject", "cli", d.sha256, comment="say less")
    with db.session() as s:
        events = [(e.actor, e.action, e.payload.get("channel")) for e in s.query(AuditEvent).order_by(AuditEvent.seq)]
    assert ("maria", "approval.approve", "link") in events
    assert ("nobody", "approval.refused", "ui") in events
    assert ("ingrid", "approval.reject", "cli") in events


def test_review_shows_variants_hash_and_roles(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    d = _draft(db, audit, playbook)
    md = review_markdown(db, playbook, d)
    assert d.sha256 in md and "legal" in md and "### linkedin" in md


def test_no_sequence_of_rejections_and_revisions_makes_a_draft_unsignable(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    """Whoever rejects with suggested text becomes the author of the next version; after any
    sequence of such rejections, the people left can still sign the draft it ends in."""
    import random

    from firebreak.config.playbook import assign_roles
    from firebreak.tasks.approve import next_version

    rng = random.Random(7)
    reviewers = [p.id for p in playbook.people if {"comms", "legal"} & set(p.roles)]
    for sequence in range(6):
        d = _draft(db, audit, playbook, severity=1)
        for step in range(rng.randint(1, 4)):
            who = rng.choice([r for r in reviewers if r != d.author])
            record_decision(db, audit, playbook, d.id, who, "reject", "cli", d.sha256, comment="shorter")
            d = next_version(db, audit, playbook, d, who, "shorter",
                             revision=f"We are looking into reports about the Ember stove ({sequence}.{step}).")
            assert d.author == who  # the reviser wrote it
        holders = {p.id: set(p.roles) for p in playbook.people if p.id != d.author}
        for role, person in assign_roles(["comms", "legal"], holders).items():
            record_decision(db, audit, playbook, d.id, person, "approve", "cli", d.sha256, role=role)
        assert approval_status(db, playbook, d.id).satisfied, (sequence, d.author)


def test_the_sign_off_message_carries_the_text_and_both_ways_to_sign(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.approve import send_codes
    from tests.fakes import FakeNotifier

    d = _draft(db, audit, playbook)
    email = FakeNotifier("email")
    sent = send_codes(db, audit, playbook, {"email": email}, b"k" * 32, "https://firebreak.example", d,
                      ui_url="http://ui.example/runs/flow-run/abc")
    assert set(sent) == {"maria", "tomas", "ingrid", "lena"}
    body = next(m.body for target, m in email.sent if target == "ingrid@fjell.example")
    assert "as legal" in body and "We are aware of reports." in body  # the text itself
    assert "- x (1 post, 35 characters)" in body and "- linkedin (1 post, 35 characters)" in body
    assert "Sign in the Prefect UI (http://ui.example/runs/flow-run/abc) with your one-time code: " in body
    assert "Or open: https://firebreak.example/approve/" in body and f"firebreak approve {d.id} --as ingrid" in body


def test_the_ui_form_shows_the_text_whole_and_why_an_answer_was_refused(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.approve import sign_off_form

    d = _draft(db, audit, playbook)
    description, text = sign_off_form(db, playbook, d, full_text="draft-1")
    assert "Still needed: **comms, legal**" in description and d.sha256[:16] in description
    assert "artifact *draft-1*" in description and len(description.splitlines()) <= 3  # the UI's box is small
    assert "We are aware of reports." in text and "More soon." in text and "x: 35 chars" in text
    refused, _ = sign_off_form(db, playbook, d, refused="wrong code for maria")
    assert refused.splitlines()[0] == "**⚠ Your last answer was not accepted: wrong code for maria**"
