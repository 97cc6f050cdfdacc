"""The resources a process's stages share: settings, playbook, database, audit log, clock,
connectors and notifiers. Built once per process; Prefect tasks take ids as parameters
and look the heavy objects up here, so nothing unpicklable crosses a task boundary.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from firebreak.audit import AuditLog
from firebreak.clock import Clock, SystemClock
from firebreak.config.logging import configure_logging, get_logger
from firebreak.config.playbook import Playbook, load_playbook
from firebreak.config.settings import Settings, get_settings
from firebreak.connectors import build_connector
from firebreak.connectors.base import Connector
from firebreak.domain import Platform
from firebreak.store.db import Database, get_database

if TYPE_CHECKING:
    import httpx

    from firebreak.connectors.llm import TextProvider
    from firebreak.connectors.notify import Notifier
    from firebreak.tasks.triage import Triage


@dataclass
class Runtime:
    settings: Settings
    playbook: Playbook
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    drill: bool = False
    transport: "httpx.BaseTransport | None" = None
    _connectors: dict[Platform, Connector] = field(default_factory=dict)
    _notifiers: "dict[str, Notifier] | None" = None
    _triage: "Triage | None" = None
    _llm: "TextProvider | None" = None
    _llm_built: bool = False
    _lock: threading.Lock = field(default_factory=threading.Lock)
    extras: dict[str, Any] = field(default_factory=dict)

    @property
    def audit(self) -> AuditLog:
        return AuditLog(self.db)

    @property
    def brand(self) -> str:
        return self.playbook.brand.id

    def connector(self, platform: Platform | str) -> Connector:
        p = Platform(platform)
        with self._lock:
            conn = self._connectors.get(p)
            if conn is None:
                conn = build_connector(p, self.settings, self.playbook, transport=self.transport)
                self._connectors[p] = conn
            return conn

    def notifiers(self) -> "dict[str, Notifier]":
        from firebreak.connectors.notify import build_notifiers

        with self._lock:
            if self._notifiers is None:
                self._notifiers = build_notifiers(self.settings)
            return self._notifiers

    def llm(self) -> "TextProvider | None":
        """The optional LLM provider, one per process: its circuit breaker must see every
        draft's failures to skip a provider that keeps failing."""
        from firebreak.connectors.llm import build_llm

        with self._lock:
            if not self._llm_built:
                self._llm = build_llm(self.settings.llm)
                self._llm_built = True
            return self._llm

    def triage(self) -> "Triage":
        from firebreak.tasks.triage import load_triage

        with self._lock:
            if self._triage is None:
                self._triage = load_triage(self.playbook)
            return self._triage

    def count(self, name: str, n: int = 1) -> None:
        """Process-wide counters a drill or benchmark reads (mentions received, …)."""
        with self._lock:
            self.extras[name] = self.extras.get(name, 0) + n

    def close(self) -> None:
        for conn in self._connectors.values():
            conn.close()
        self._connectors.clear()
        for n in (self._notifiers or {}).values():
            n.close()
        self._notifiers = None


_current: Runtime | None = None
_current_lock = threading.Lock()


def set_runtime(rt: Runtime | None) -> None:
    global _current
    with _current_lock:
        _current = rt


def get_runtime() -> Runtime:
    """The process runtime; built from settings (FIREBREAK_*) on first use."""
    global _current
    with _current_lock:
        if _current is None:
            settings = get_settings()
            configure_logging(settings.log_level, settings.log_format)
            playbook = load_playbook(settings.playbook)
            _current = Runtime(settings=settings, playbook=playbook, db=get_database(settings.resolved_database_url))
        return _current


def rename_run(name: str) -> None:
    """Give the current flow run a name that says what it is about. A name is a courtesy: a
    server that refuses it is logged, never a reason to stop a response."""
    from prefect.client.orchestration import get_client
    from prefect.context import FlowRunContext

    ctx = FlowRunContext.get()
    if ctx is None or ctx.flow_run is None:
        return
    try:
        with get_client(sync_client=True) as client:
            client.update_flow_run(ctx.flow_run.id, name=name)
    except Exception as exc:  # noqa: BLE001 - any client failure: the run goes on under its old name
        get_logger("firebreak.flows.runtime").warning(f"Could not rename run {ctx.flow_run.name!r}: {exc}")
