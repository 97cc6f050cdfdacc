"""What a process's runs share (flows/runtime.py)."""

from __future__ import annotations

import pytest


@pytest.mark.integration
def test_a_run_renames_itself_to_say_what_it_is_about(prefect_server) -> None:  # type: ignore[no-untyped-def]
    from prefect import flow
    from prefect.client.orchestration import get_client
    from prefect.context import get_run_context

    from firebreak.flows.runtime import rename_run

    @flow(name="rename-test", flow_run_name="respond #{incident_id}")
    def respond_like(incident_id: int) -> str:
        rename_run(f"fjell #{incident_id} · product_safety · severity 1")
        return str(get_run_context().flow_run.id)  # type: ignore[union-attr]

    run_id = respond_like(7)
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(run_id).name == "fjell #7 · product_safety · severity 1"
    rename_run("outside any run: nothing to rename")  # no error
