"""Publishing: origin first, exactly once per platform across lost responses and reruns."""

from __future__ import annotations

import pytest

from firebreak.domain import Platform
from firebreak.errors import PolicyViolation, TransientError
from firebreak.store.models import Publication
from firebreak.tasks.approve import create_draft, record_decision
from firebreak.tasks.publish import publish_draft, run_own_queue
from tests.fakes import FakePlatform, make_incident


def _approved(db, audit, playbook, variants):  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook, origin="bluesky")
    d = create_draft(db, audit, inc.id, "holding", 0, "en", variants)
    record_decision(db, audit, playbook, d.id, "maria", "approve", "cli", d.sha256)
    record_decision(db, audit, playbook, d.id, "ingrid", "approve", "cli", d.sha256)
    return inc, d


def _platforms():  # type: ignore[no-untyped-def]
    return {p: FakePlatform(p) for p in Platform}


def test_origin_first_then_playbook_order(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    variants = {p.value: [f"Statement for {p.value}"] for p in Platform}
    inc, d = _approved(db, audit, playbook, variants)
    out = publish_draft(db, audit, playbook, _platforms(), inc.id, d.id)
    assert [p.platform for p in out] == ["bluesky", "x", "facebook", "instagram", "linkedin", "mastodon"]


def test_unapproved_text_never_goes_out(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook)
    d = create_draft(db, audit, inc.id, "holding", 0, "en", {"x": ["hello"]})
    plats = _platforms()
    with pytest.raises(PolicyViolation):
        publish_draft(db, audit, playbook, plats, inc.id, d.id)
    assert all(not p.posts for p in plats.values())


def test_lost_response_is_looked_up_not_reposted(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    variants = {p.value: [f"Statement for {p.value}"] for p in Platform}
    inc, d = _approved(db, audit, playbook, variants)
    plats = _platforms()
    plats[Platform.X].fail_after_send = 1
    with pytest.raises(TransientError):
        publish_draft(db, audit, playbook, plats, inc.id, d.id)
    publish_draft(db, audit, playbook, plats, inc.id, d.id)  # the task's retry
    publish_draft(db, audit, playbook, plats, inc.id, d.id)  # and a stray rerun
    assert all(len(p.posts) == 1 for p in plats.values())
    with db.session() as s:
        rows = s.query(Publication).all()
    assert len(rows) == 6 and all(r.status == "done" and r.approved_sha256 == d.sha256 for r in rows)


def test_thread_resumes_at_the_missing_part(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc, d = _approved(db, audit, playbook, {"x": ["part one (1/3)", "part two (2/3)", "part three (3/3)"]})
    plats = _platforms()
    x = plats[Platform.X]
    original = x.publish

    def flaky(text, *, idempotency_key, reply_to=None):  # type: ignore[no-untyped-def]
        if text.startswith("part two") and not any(t.startswith("part two") for _, t, _ in x.posts):
            x.posts.append(("x-lost", text, idempotency_key))
            raise TransientError("x", "connection reset after write")
        return original(text, idempotency_key=idempotency_key, reply_to=reply_to)

    x.publish = flaky  # type: ignore[method-assign]
    with pytest.raises(TransientError):
        publish_draft(db, audit, playbook, plats, inc.id, d.id)
    publish_draft(db, audit, playbook, plats, inc.id, d.id)
    assert [t for _, t, _ in x.posts] == ["part one (1/3)", "part two (2/3)", "part three (3/3)"]


def test_own_queue_waits_while_frozen(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    from datetime import timedelta

    from firebreak.domain import utcnow
    from firebreak.store.models import ScheduledPost

    with db.session() as s:
        s.add(ScheduledPost(brand=playbook.brand.id, platform="x", platform_id="q1", source="firebreak", text="Sale!",
                            media=[], scheduled_at=utcnow() - timedelta(minutes=1), status="scheduled", updated_at=utcnow()))
    plats = _platforms()
    inc = make_incident(db, playbook)
    assert run_own_queue(db, audit, playbook.brand.id, plats, utcnow()) == 0
    with db.session() as s:
        s.get(type(inc), inc.id).status = "resolved"
    assert run_own_queue(db, audit, playbook.brand.id, plats, utcnow()) == 1
    assert run_own_queue(db, audit, playbook.brand.id, plats, utcnow()) == 0
    assert len(plats[Platform.X].posts) == 1
