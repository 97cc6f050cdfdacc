"""Run the sandbox app with uvicorn on loopback: in a thread (tests, drills) or in the
foreground (`firebreak sandbox`)."""

from __future__ import annotations

import socket
import threading
import time

import uvicorn

from firebreak.sandbox.app import create_app
from firebreak.sandbox.state import SandboxState
from firebreak.errors import FirebreakError


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class SandboxServer:
    """`with SandboxServer(state) as srv: srv.url` — a live sandbox on 127.0.0.1."""

    def __init__(self, state: SandboxState, host: str = "127.0.0.1", port: int = 0):
        self.state = state
        self.host = host
        self.port = port or free_port(host)
        self.app = create_app(state)
        config = uvicorn.Config(self.app, host=host, port=self.port, log_level="warning", access_log=False,
                                lifespan="off", timeout_keep_alive=30)
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 10.0) -> "SandboxServer":
        self._thread = threading.Thread(target=self._server.run, name="sandbox", daemon=True)
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise FirebreakError(f"sandbox did not start on {self.url}")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)

    def serve_forever(self) -> None:
        self._server.run()

    def __enter__(self) -> "SandboxServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
