"""The crisis page and the post-mortem render for real: a page a phone can read (checked in
headless Chromium, screenshot in test-output/) and charts that are real PNG images."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest

from firebreak.domain import Platform, utcnow
from firebreak.store.models import Mention
from firebreak.tasks import crisis_page, postmortem
from firebreak.tasks.approve import create_draft, record_decision
from firebreak.tasks.publish import publish_draft
from tests.fakes import FakePlatform, make_incident

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _published_incident(db, audit, playbook):  # type: ignore[no-untyped-def]
    inc = make_incident(db, playbook, severity=3)
    now = utcnow()
    with db.session() as s:
        for i in range(60):
            s.add(Mention(brand="fjell", platform="x", platform_id=f"m{i}", text=f"stove fire {i}?",
                          created_at=now - timedelta(minutes=60 - i), ingested_at=now, lang="en",
                          sentiment=("negative", "neutral", "positive")[i % 3],
                          answer_status="answered" if i % 2 else "open",
                          answered_at=now - timedelta(minutes=30 - i / 2) if i % 2 else None))
    plats = {p: FakePlatform(p) for p in Platform}
    for kind, seq, text in (("holding", 0, "We are aware of reports about the Ember stove."),
                            ("update", 1, "Update 1: we are still investigating.")):
        d = create_draft(db, audit, inc.id, kind, seq, "en", {"x": [text], "linkedin": [text + "\n\nMore soon."]})
        record_decision(db, audit, playbook, d.id, "maria", "approve", "cli", d.sha256)
        publish_draft(db, audit, playbook, plats, inc.id, d.id)
    return inc


def test_postmortem_charts_are_real_pngs(db, audit, playbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inc = _published_incident(db, audit, playbook)
    path, md = postmortem.write(db, playbook, inc.id, tmp_path)
    for name in ("volume", "sentiment", "answered"):
        png = tmp_path / f"postmortem-incident-{inc.id}-{name}.png"
        data = png.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5_000, name
    html = path.read_text()
    assert html.count("data:image/png;base64,") == 3 and "Questions for the team" in html
    assert "answer_coverage" in md


def test_crisis_page_has_statement_faq_and_timeline(db, audit, playbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    inc = _published_incident(db, audit, playbook)
    page = crisis_page.write(db, playbook, inc.id, tmp_path)
    html = page.read_text()
    assert "Update 1: we are still investigating." in html  # the current statement
    assert "Is it safe to keep using the product?" in html  # FAQ for product safety
    assert html.index("update") < html.index("holding")  # newest first
    assert not list(tmp_path.glob(".index-*"))  # written atomically


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium")
def test_crisis_page_in_chromium(db, audit, playbook, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from playwright.sync_api import sync_playwright

    inc = _published_incident(db, audit, playbook)
    page_path = crisis_page.write(db, playbook, inc.id, tmp_path)
    out = Path("test-output")
    out.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync"])
        page = browser.new_page(viewport={"width": 390, "height": 844})
        page.goto(page_path.as_uri())
        assert page.locator("h1").inner_text().startswith("Fjell Outdoor")
        page.click("summary")  # the FAQ opens
        assert page.locator("details[open] p").first.is_visible()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 390  # no sideways scrolling on a phone
        page.screenshot(path=str(out / "crisis-page.png"), full_page=True)
        browser.close()
