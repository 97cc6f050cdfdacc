"""The Prefect wrappers around the stages (flows/steps.py)."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

import pytest


@pytest.mark.integration
def test_detect_leaves_a_table_of_every_series_against_its_threshold(prefect_server: str, playbook,
                                                                     tmp_path: Path) -> None:
    """A run that finds nothing still shows, in the UI's Artifacts tab, how close each series came."""
    from prefect import flow

    from firebreak.config.settings import Settings
    from firebreak.flows import steps
    from firebreak.flows.runtime import Runtime, set_runtime
    from firebreak.store.db import Database
    from firebreak.tasks.detect import scopes

    db = Database(f"sqlite:///{tmp_path / 'detect.db'}")
    db.migrate()
    set_runtime(Runtime(settings=Settings(data_dir=tmp_path), playbook=playbook, db=db))

    @flow(name="detect-table-test")
    def run() -> int | None:
        return steps.detect()

    try:
        assert run() is None
    finally:
        set_runtime(None)
        db.dispose()
    found = httpx.post(f"{prefect_server.rstrip('/')}/artifacts/filter", timeout=30, json={
        "artifacts": {"key": {"any_": ["detection-fjell"]}}, "sort": "CREATED_DESC", "limit": 1}).json()
    assert found and found[0]["type"] == "table"
    table = found[0]["data"] if isinstance(found[0]["data"], list) else json.loads(found[0]["data"])
    assert [row["series"] for row in table] == scopes(playbook)
    assert {row["alert at"] for row in table} == {"0.50"}
