"""The Prefect server a local stack runs on: `firebreak up` and the drill start one, in its own
process group (a Ctrl-C in the terminal reaches the parent, which stops it last), and it
never outlives its parent: on Linux the kernel kills it when the parent dies, even by SIGKILL
(a SIGTERM could land while the server is still starting and be lost; its SQLite store is safe
against a kill). Elsewhere a killed parent leaves it to be stopped by hand."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any, TextIO

from firebreak.errors import FirebreakError

_PR_SET_PDEATHSIG = 1


def _die_with(parent: int) -> Callable[[], None] | None:
    """A preexec function: the child gets SIGKILL when ``parent`` dies (Linux prctl)."""
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGKILL)

    return preexec


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def start_prefect_server(host: str, port: int, home: Path, timeout_s: float = 90.0,
                         log: TextIO | None = None) -> subprocess.Popen[bytes]:
    """`prefect server start` (with `sqlite_writes_wait_their_turn`) in its own process group,
    waited for until /api/health answers."""
    import httpx

    if not _port_free(host, port):
        raise FirebreakError(f"port {host}:{port} is in use (a Prefect server already running?); "
                             "stop it or pass --port")
    home.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_HOME": str(home), "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
           "PREFECT_UI_API_URL": f"http://{host}:{port}/api"}
    env.pop("PREFECT_API_URL", None)  # the server must not try to talk to another one
    out = log if log is not None else subprocess.DEVNULL
    # Its own session: Ctrl-C in the terminal reaches only `firebreak up`, which then stops the
    # server after the things that talk to it, instead of all of them racing to exit.
    proc = subprocess.Popen([sys.executable, "-m", "firebreak.flows.server", "server", "start", "--host", host, "--port", str(port)],
                            env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                            preexec_fn=_die_with(os.getpid()))
    deadline = time.monotonic() + timeout_s
    url = f"http://{host}:{port}/api/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise FirebreakError(f"prefect server exited with {proc.returncode} (log: {home / 'server.log'})")
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return proc
        except httpx.HTTPError:
            pass  # still starting
        time.sleep(0.2)
    stop_process_group(proc)
    raise FirebreakError(f"prefect server did not answer {url} within {timeout_s:.0f} s")


def stop_process_group(proc: subprocess.Popen[bytes], timeout_s: float = 15.0, sig: int = signal.SIGTERM) -> None:
    """`sig` to the group we started (the server and its uvicorn child), SIGKILL if it lingers."""
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, sig)
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


@contextmanager
def prefect_api(home: Path, log: TextIO | None = None) -> Iterator[str]:
    """The Prefect API this process's flows talk to: the one configured (``PREFECT_API_URL``),
    else a server started here for as long as the block runs, on a free loopback port with its
    state under ``home`` (instead of Prefect's own throwaway server, which a killed parent
    leaves running)."""
    from prefect.settings import PREFECT_API_URL, temporary_settings

    configured = os.environ.get("PREFECT_API_URL")
    if configured:
        yield configured
        return
    port = free_port()
    proc = start_prefect_server("127.0.0.1", port, home, log=log)
    url = f"http://127.0.0.1:{port}/api"
    os.environ["PREFECT_API_URL"] = url  # for the runs and clients this process starts
    try:
        with temporary_settings({PREFECT_API_URL: url}):
            yield url
    finally:
        os.environ.pop("PREFECT_API_URL", None)
        stop_process_group(proc)


def sqlite_writes_wait_their_turn() -> None:
    """Prefect's server on SQLite begins its write transactions DEFERRED. One that has read
    and then writes after another connection committed fails at once with "database is
    locked" (SQLite cannot wait there without risking a deadlock): the server logs a traceback
    and answers the client "retry", and a click in the UI can fail. Beginning them IMMEDIATE
    takes the write lock at BEGIN, where SQLite's busy timeout (60 s in Prefect) makes a writer
    wait its turn. Reads outside transactions are unchanged. PostgreSQL is not affected."""
    from prefect.server.database.configurations import AioSqliteConfiguration

    original = AioSqliteConfiguration.begin_transaction
    if getattr(original, "_firebreak_immediate", False):
        return

    @asynccontextmanager
    async def begin_transaction(self: Any, session: Any, with_for_update: bool = False) -> AsyncIterator[Any]:
        async with original(self, session, with_for_update=True) as transaction:
            yield transaction

    begin_transaction._firebreak_immediate = True  # type: ignore[attr-defined]
    AioSqliteConfiguration.begin_transaction = begin_transaction  # type: ignore[method-assign]


if __name__ == "__main__":
    # `python -m firebreak.flows.server server start …`: Prefect's own command, on SQLite with
    # writers that wait their turn.
    sqlite_writes_wait_their_turn()
    from prefect.cli import app

    app()
