"""The freeze holds everything, exactly as recorded, and resume follows the playbook's rule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from firebreak.domain import Platform, utcnow
from firebreak.errors import FirebreakError
from firebreak.store.models import FreezeRecord
from firebreak.store.models import ScheduledPost as PostRow
from firebreak.tasks.freeze import freeze_all, mentions_crisis, resume_all
from tests.fakes import FakePlatform, make_incident, scheduled


def _setup(db, playbook):  # type: ignore[no-untyped-def]
    plats = {p: FakePlatform(p, scheduling=p in (Platform.FACEBOOK, Platform.MASTODON, Platform.LINKEDIN))
             for p in Platform}
    now = utcnow()
    plats[Platform.FACEBOOK].scheduled = {"f1": scheduled(Platform.FACEBOOK, "f1", "Autumn sale!", 0.5, now),
                                          "f2": scheduled(Platform.FACEBOOK, "f2", "Trail guide", 600, now)}
    plats[Platform.MASTODON].scheduled = {"m1": scheduled(Platform.MASTODON, "m1", "Cook with the Ember stove", 30, now)}
    with db.session() as s:
        s.add(PostRow(brand=playbook.brand.id, platform="x", platform_id="q1", source="firebreak", text="Flash sale",
                      media=[], scheduled_at=now + timedelta(minutes=20), status="scheduled", updated_at=now))
    return plats


def test_everything_held_with_snapshot_and_idempotent(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    plats = _setup(db, playbook)
    inc = make_incident(db, playbook)
    res = freeze_all(db, audit, playbook, plats, inc.id, "test")
    assert (res.found, res.held) == (4, 4)  # including the post due in 30 seconds
    assert plats[Platform.FACEBOOK].held == {"f1", "f2"} and plats[Platform.MASTODON].held == {"m1"}
    again = freeze_all(db, audit, playbook, plats, inc.id, "test")  # a retry holds nothing twice
    assert again.held == 4
    with db.session() as s:
        recs = s.query(FreezeRecord).all()
        assert len(recs) == 4
        snap = next(r.snapshot for r in recs if r.snapshot["platform_id"] == "f1")
    assert snap["text"] == "Autumn sale!" and snap["media"] == ["https://img.example/a.jpg"]


def test_a_failed_hold_fails_the_stage_loudly(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    from firebreak.errors import TransientError

    plats = _setup(db, playbook)

    def boom(post):  # type: ignore[no-untyped-def]
        raise TransientError("facebook", "503")

    plats[Platform.FACEBOOK].hold_scheduled = boom  # type: ignore[method-assign]
    with pytest.raises(FirebreakError, match="freeze incomplete"):
        freeze_all(db, audit, playbook, plats, make_incident(db, playbook).id, "test")


def test_resume_reschedules_overdue_and_rechecks_crisis_terms(db, audit, playbook) -> None:  # type: ignore[no-untyped-def]
    plats = _setup(db, playbook)
    inc = make_incident(db, playbook)
    freeze_all(db, audit, playbook, plats, inc.id, "test")
    later = utcnow() + timedelta(hours=2)
    res = resume_all(db, audit, playbook, plats, inc.id, later)
    # f1 was due during the freeze: moved by the freeze's length; f2 keeps its time; the
    # Ember stove post names the crisis topic and goes back for approval; q1 is requeued.
    assert plats[Platform.FACEBOOK].released["f1"] > later - timedelta(minutes=1)
    assert plats[Platform.FACEBOOK].released["f2"] == plats[Platform.FACEBOOK].scheduled["f2"].scheduled_at
    assert "m1" not in plats[Platform.MASTODON].released
    assert res.needs_approval == ["mastodon:m1"]
    assert resume_all(db, audit, playbook, plats, inc.id, later).resumed == res.resumed  # exactly once


def test_term_matching_is_accent_and_word_aware() -> None:
    assert mentions_crisis("Nouveau réchaud: Brûlé?", ["brule"]) == ["brule"]
    assert mentions_crisis("stoves on sale", ["stove"]) == []
