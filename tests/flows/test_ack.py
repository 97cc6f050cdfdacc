"""Acknowledging a page by its signed link (web router) and by the Prefect UI flow's code."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from firebreak.clock import VirtualClock
from firebreak.config.playbook import Playbook
from firebreak.config.settings import Settings
from firebreak.connectors.notify import Delivery, Message
from firebreak.errors import PolicyViolation
from firebreak.flows.ack import acknowledge_with_code
from firebreak.web.ack import router
from firebreak.store.models import AuditEvent, Incident
from firebreak.tasks import codes as codes_mod
from firebreak.tasks.ack import AckLinks, ack_code, issue_ack_link, read_ack_link
from firebreak.tasks.escalate import run_escalation
from firebreak.flows.runtime import Runtime, set_runtime
from tests.fakes import FakeNotifier, make_incident


LINK = re.compile(r"https?://\S+/ack/(\S+)")


@pytest.fixture
def rt(db, playbook: Playbook, tmp_path) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    runtime = Runtime(settings=Settings(data_dir=tmp_path, public_url="http://firebreak.test"), playbook=playbook, db=db)
    set_runtime(runtime)
    yield runtime
    set_runtime(None)


@pytest.fixture
def client(rt: Runtime) -> TestClient:
    app = FastAPI()
    app.include_router(router())
    return TestClient(app)


def _key(rt: Runtime) -> bytes:
    return codes_mod.signing_key(rt.settings)


def _acked(rt: Runtime, incident_id: int) -> str | None:
    with rt.db.session() as s:
        inc = s.get(Incident, incident_id)
        assert inc is not None
        return inc.acknowledged_by


def _actions(rt: Runtime) -> list[tuple[str, str, dict]]:
    with rt.db.session() as s:
        return [(e.actor, e.action, e.payload) for e in s.query(AuditEvent).order_by(AuditEvent.seq)]


def test_the_link_in_a_page_stops_the_ladder(rt: Runtime, client: TestClient) -> None:
    inc = make_incident(rt.db, rt.playbook, severity=1)
    taps: list[int] = []

    class TappingSlack(FakeNotifier):
        """Maria taps the link in her level-1 page the moment it arrives."""

        def send(self, target: str, message: Message) -> Delivery:
            delivery = super().send(target, message)
            if target == "@maria":
                token = LINK.search(message.body)
                assert token, message.body
                assert client.get(f"/ack/{token.group(1)}").status_code == 200  # showing it acknowledges nothing
                assert _acked(rt, inc.id) is None
                taps.append(client.post(f"/ack/{token.group(1)}").status_code)
            return delivery

    notifiers = {"slack": TappingSlack("slack"), "email": FakeNotifier("email")}
    clock = VirtualClock(datetime(2026, 1, 1, tzinfo=UTC))
    res = run_escalation(rt.db, rt.audit, rt.playbook, notifiers, clock, inc.id, poll_s=60,
                         ack=AckLinks(_key(rt), rt.settings.public_url))
    assert taps == [200]
    assert res.acknowledged_by == "maria" and not res.exhausted
    assert {p["level"] for p in res.pages} == {1}  # level 2 was never paged
    assert _acked(rt, inc.id) == "maria"
    assert ("maria", "incident.acknowledged", {"channel": "link"}) in _actions(rt)
    # Each person's page carries their own link and UI code.
    bodies = {t: m.body for t, m in notifiers["slack"].sent}
    tomas = LINK.search(bodies["@tomas"])
    assert tomas and read_ack_link(_key(rt), tomas.group(1)).person == "tomas"
    assert f"code {ack_code(_key(rt), inc.id, 'tomas', 0)}" in bodies["@tomas"]


def test_second_tap_and_other_people_are_told_who_acknowledged(rt: Runtime, client: TestClient) -> None:
    inc = make_incident(rt.db, rt.playbook)
    key = _key(rt)
    assert client.post(f"/ack/{issue_ack_link(key, inc.id, 'maria')}").status_code == 200
    again = client.post(f"/ack/{issue_ack_link(key, inc.id, 'tomas')}")
    assert again.status_code == 200 and "acknowledged by maria" in again.text
    assert _acked(rt, inc.id) == "maria"


@pytest.mark.parametrize("how", ["expired", "bad-signature", "other-person", "other-key", "garbage", "no-incident"])
def test_wrong_or_expired_links_are_refused(rt: Runtime, client: TestClient, how: str) -> None:
    inc = make_incident(rt.db, rt.playbook)
    key = _key(rt)
    good = issue_ack_link(key, inc.id, "maria")
    body, sig = good.rsplit(".", 1)
    token = {
        "expired": issue_ack_link(key, inc.id, "maria", timedelta(minutes=5),
                                  now=datetime.now(UTC) - timedelta(hours=1)),
        "bad-signature": f"{body}.{'0' * len(sig)}",
        # Swapping the person inside a signed body breaks the signature.
        "other-person": issue_ack_link(key, inc.id, "tomas").rsplit(".", 1)[0] + "." + sig,
        "other-key": issue_ack_link(b"not-the-key", inc.id, "maria"),
        "garbage": "nonsense",
        "no-incident": issue_ack_link(key, inc.id + 999, "maria"),
    }[how]
    for method in (client.get, client.post):
        r = method(f"/ack/{token}")
        assert r.status_code == 410 and "refused" in r.text.lower()
    assert _acked(rt, inc.id) is None
    assert any(a == "incident.acknowledge_refused" for _, a, _ in _actions(rt))


def test_ui_flow_accepts_the_persons_code_from_any_round(rt: Runtime) -> None:
    inc = make_incident(rt.db, rt.playbook, severity=1)  # standard policy: repeat 1 → rounds 0 and 1
    code = ack_code(_key(rt), inc.id, "tomas", 1)
    out = acknowledge_with_code(inc.id, "tomas", code.upper())
    assert out == {"incident_id": inc.id, "acknowledged_by": "tomas", "first": True}
    assert ("tomas", "incident.acknowledged", {"channel": "ui"}) in _actions(rt)


@pytest.mark.parametrize("how", ["someone-elses", "made-up", "later-round"])
def test_ui_flow_refuses_a_wrong_code(rt: Runtime, how: str) -> None:
    inc = make_incident(rt.db, rt.playbook, severity=3)  # low policy: no repeat → round 0 only
    key = _key(rt)
    code = {"someone-elses": ack_code(key, inc.id, "maria", 0), "made-up": "12345678",
            "later-round": ack_code(key, inc.id, "tomas", 5)}[how]
    with pytest.raises(PolicyViolation, match="wrong acknowledgement code"):
        acknowledge_with_code(inc.id, "tomas", code)
    assert _acked(rt, inc.id) is None
    assert ("tomas", "incident.acknowledge_refused") in [(a, b) for a, b, _ in _actions(rt)]


def test_ui_flow_refuses_an_unknown_incident(rt: Runtime) -> None:
    with pytest.raises(PolicyViolation, match="not known"):
        acknowledge_with_code(4242, "tomas", ack_code(_key(rt), 4242, "tomas", 0))


def test_the_flow_object_is_registered_for_the_ui() -> None:
    from firebreak.flows.ack import acknowledge_incident

    assert acknowledge_incident.name == "acknowledge_incident"
    assert list(acknowledge_incident.parameters.properties) == ["incident_id", "person", "code"]
