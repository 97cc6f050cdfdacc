"""Answer everything, hide abuse per policy, never hide criticism; exactly once."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firebreak.domain import Platform, utcnow
from firebreak.errors import PolicyViolation
from firebreak.store.models import Engagement, Mention
from firebreak.tasks.engage import coverage, engage, may_hide
from tests.fakes import FakePlatform, make_incident


class HidingPlatform(FakePlatform):
    def __init__(self, platform: Platform):
        super().__init__(platform)
        self.hidden: list[str] = []

    def hide(self, platform_id: str) -> None:
        self.hidden.append(platform_id)


def _mention(db, pid: str, text: str, **labels) -> Mention:  # type: ignore[no-untyped-def]
    with db.session() as s:
        m = Mention(brand="fjell", platform="facebook", platform_id=pid, kind="comment", author=f"user{pid}", text=text,
                    created_at=utcnow() - timedelta(minutes=5), ingested_at=utcnow(), lang="en",
                    sentiment=labels.get("sentiment", "negative"), offensive=labels.get("offensive", False),
                    offensive_score=labels.get("offensive_score", 0.0), complaint=labels.get("complaint", False),
                    answer_status=labels.get("answer_status", "open"))
        s.add(m)
    return m


def test_negative_but_civil_comment_cannot_be_hidden(db, playbook) -> None:  # type: ignore[no-untyped-def]
    m = _mention(db, "c1", "Your stove burned my hand. Very disappointed, I want a refund.", complaint=True)
    with pytest.raises(PolicyViolation, match="criticism is never hidden"):
        may_hide(m, playbook)


def test_queue_is_worked_once(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook)
    with db.session() as s:
        s.get(type(inc), inc.id).started_at = utcnow() - timedelta(minutes=30)
    _mention(db, "c1", "Your stove burned my hand, I want a refund", complaint=True)
    _mention(db, "c2", "Is the Ember stove safe to use?", sentiment="neutral")
    _mention(db, "c3", "you idiots go to hell", offensive=True, offensive_score=0.97, answer_status="none")
    _mention(db, "c4", "disappointed in you", answer_status="none")  # needs no answer: left alone
    fb = HidingPlatform(Platform.FACEBOOK)
    res = engage(db, audit, playbook, {Platform.FACEBOOK: fb}, inc.id)
    assert (res.private, res.answered, res.hidden) == (1, 1, 1)
    assert fb.hidden == ["c3"] and len(fb.posts) == 2
    assert all(t.startswith("userc") for _, t, _ in fb.posts)  # addressed to the author
    engage(db, audit, playbook, {Platform.FACEBOOK: fb}, inc.id)  # a rerun sends nothing twice
    assert len(fb.posts) == 2
    with db.session() as s:
        assert s.query(Engagement).count() == 3
    assert coverage(db, "fjell", utcnow() - timedelta(hours=1)) == (3, 3)


def test_lost_reply_is_looked_up_before_resending(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.errors import TransientError

    inc = make_incident(db, playbook)
    with db.session() as s:
        s.get(type(inc), inc.id).started_at = utcnow() - timedelta(minutes=30)
    _mention(db, "c9", "Is it safe?", sentiment="neutral")
    fb = HidingPlatform(Platform.FACEBOOK)
    fb.fail_after_send = 1
    res = engage(db, audit, playbook, {Platform.FACEBOOK: fb}, inc.id)
    assert res.failed and len(fb.posts) == 1
    engage(db, audit, playbook, {Platform.FACEBOOK: fb}, inc.id)
    assert len(fb.posts) == 1  # found on the platform, not reposted
    assert isinstance(TransientError("x", "y"), Exception)


def test_lockdown_holds_replies_but_still_hides_abuse(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.tasks.escalate import page_text
    from firebreak.tasks.lockdown import locked_down

    inc = make_incident(db, playbook, ctype="data_breach")
    with db.session() as s:
        s.get(type(inc), inc.id).started_at = utcnow() - timedelta(minutes=30)
    _mention(db, "q1", "Was my data leaked?", sentiment="neutral")
    _mention(db, "a1", "you idiots go to hell", offensive=True, offensive_score=0.97, answer_status="none")
    fb = HidingPlatform(Platform.FACEBOOK)
    res = engage(db, audit, playbook, {Platform.FACEBOOK: fb}, inc.id)
    assert locked_down(db, playbook, "fjell") is not None
    assert fb.posts == [] and fb.hidden == ["a1"] and res.answered == 0
    with db.session() as s:
        inc_row = s.get(type(inc), inc.id)
        assert "Rotate these credentials" in page_text(inc_row, playbook, 1)[1]
