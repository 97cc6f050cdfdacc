"""Starting and stopping `firebreak up` as a user does, for the tests that run the whole stack."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from firebreak.flows.server import free_port

__all__ = ["free_port", "start_up", "stop_up"]


def start_up(args: list[str], data_dir: Path, cwd: Path, **env: str) -> subprocess.Popen[str]:
    """`firebreak up ARGS` in a clean environment (no FIREBREAK_ or PREFECT_ variable of the
    test's own) with its data in ``data_dir``."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("FIREBREAK_", "PREFECT_"))}
    clean.update(FIREBREAK_DATA_DIR=str(data_dir), **env)
    exe = str(Path(sys.executable).with_name("firebreak"))
    return subprocess.Popen([exe, "up", *args], env=clean, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def stop_up(proc: subprocess.Popen[str], timeout_s: float) -> tuple[str, str]:
    """SIGTERM (what `docker stop` and Kubernetes send); its output. Fails the test when the
    stack has not stopped within ``timeout_s``."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        _, err = proc.communicate()
        pytest.fail(f"firebreak up did not stop within {timeout_s:.0f} s of SIGTERM: {err[-2000:]}")
