"""The crisis page and the team's list of incidents (web/status.py), and the same list in the CLI."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from firebreak.config.playbook import Playbook
from firebreak.config.settings import Settings
from firebreak.flows.runtime import Runtime, set_runtime
from firebreak.store.queries import IncidentStatus, mark
from tests.fakes import make_incident


@pytest.fixture
def rt(db, playbook: Playbook, tmp_path) -> Iterator[Runtime]:  # type: ignore[no-untyped-def]
    runtime = Runtime(settings=Settings(data_dir=tmp_path), playbook=playbook, db=db)
    set_runtime(runtime)
    yield runtime
    set_runtime(None)


def test_the_incidents_page_and_command_list_every_incident_newest_first(rt: Runtime, capsys) -> None:  # type: ignore[no-untyped-def]
    from firebreak.cli import main
    from firebreak.web.app import create_app

    first = make_incident(rt.db, rt.playbook, severity=2, origin="x", ctype="service_outage")
    second = make_incident(rt.db, rt.playbook, severity=1)
    mark(rt.db, first.id, status=IncidentStatus.RESOLVED)
    client = TestClient(create_app())
    page = client.get("/incidents")
    assert page.status_code == 200
    assert page.text.index(f"<td>#{second.id}</td>") < page.text.index(f"<td>#{first.id}</td>")
    assert "service_outage" in page.text and "resolved" in page.text and "product_safety" in page.text
    assert client.get("/status").status_code == 404  # no crisis page written yet: says so

    assert main(["incidents"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split()[:3] == ["#", "status", "type"]
    assert out[1].split()[:2] == [str(second.id), "open"] and out[2].split()[:2] == [str(first.id), "resolved"]
    assert "None" not in "\n".join(out) and "{" not in "\n".join(out)  # sentences and tables, not reprs
    assert main(["incidents", "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [r["id"] for r in rows] == [second.id, first.id] and rows[1]["status"] == "resolved"
