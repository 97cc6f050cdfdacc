"""Handing an answer to a paused run: what the approval page, the CLI and the drill's operator
share (flows/approval.resume_paused)."""

from __future__ import annotations

import socket
import uuid

import pytest

from firebreak.errors import ApprovalError, OrchestratorUnavailable
from firebreak.flows.approval import resume_paused


def _dead_api() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/api"


def test_an_unreachable_prefect_server_is_said_plainly_not_a_500() -> None:
    from prefect.settings import PREFECT_API_URL, temporary_settings

    with temporary_settings({PREFECT_API_URL: _dead_api()}), pytest.raises(OrchestratorUnavailable) as err:
        resume_paused(str(uuid.uuid4()), {"approver": "maria"}, wait_s=1)
    assert "cannot be reached" in str(err.value) and "not recorded" in str(err.value)


def test_no_run_is_an_approval_error() -> None:
    with pytest.raises(ApprovalError, match="no run is waiting"):
        resume_paused(None, {})
