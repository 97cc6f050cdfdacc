"""The people in a drill, played by a thread: the drill approvers sign drafts and confirm the
all-clear through the same resume API a person's answer uses (recorded with channel
"drill"), the on-call person acknowledges at the playbook's drill level, and the drill's
clock is sped up once the freeze has landed."""

from __future__ import annotations

import contextvars
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from prefect.client.orchestration import get_client
from prefect.exceptions import NotPausedError
from prefect.flow_runs import resume_flow_run
from sqlalchemy import select

from firebreak.clock import VirtualClock
from firebreak.config.logging import get_logger
from firebreak.errors import FirebreakError
from firebreak.store.models import Approval, Draft, EffectStatus, Notification
from firebreak.store.queries import IncidentStatus, open_incidents
from firebreak.tasks import approve as approve_mod
from firebreak.tasks.escalate import acknowledge
from firebreak.flows.runtime import Runtime

log = get_logger("firebreak.drill.run")
_CODE = re.compile(r"one-time code: (\d{6})")


@dataclass
class DrillOperator:
    rt: Runtime
    clock: VirtualClock
    compression: float
    # Message bodies delivered to an address: the drill approvers read their one-time codes
    # where a person would, in their own mailbox.
    inbox: Callable[[str], list[str]] = lambda address: []
    interval_s: float = 0.2
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _answered: set[tuple[Any, ...]] = field(default_factory=set)
    _sped_up: set[int] = field(default_factory=set)
    _not_ready: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def start(self) -> "DrillOperator":
        # In the starting thread's context: its Prefect settings (the drill's own server) hold here too.
        ctx = contextvars.copy_context()
        self._thread = threading.Thread(target=ctx.run, args=(self._run,), name="drill-operator", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            try:
                self.step()
            except (FirebreakError, OSError) as exc:  # keep playing; the report will show what failed
                self.errors.append(str(exc))
                log.warning(f"The drill's operator could not act: {exc}")
            except Exception as exc:  # noqa: BLE001 - Prefect client errors are varied; record, never hide
                self.errors.append(f"{exc.__class__.__name__}: {exc}")
                log.warning(f"The drill's operator could not act: {exc!r}")

    def step(self) -> None:
        db, pb = self.rt.db, self.rt.playbook
        with db.session() as s:
            incidents = list(s.scalars(open_incidents()))
            drafts = list(s.scalars(select(Draft).where(Draft.status == "pending", Draft.flow_run_id.is_not(None))))
            pages = list(s.scalars(select(Notification).where(Notification.kind == "page",
                                                              Notification.status == EffectStatus.DONE)))
        for inc in incidents:
            if "freeze" in inc.summary.stages and inc.id not in self._sped_up:
                self._sped_up.add(inc.id)
                self.clock.set_rate(self.compression)  # the freeze landed: play the rest fast
            if not inc.acknowledged_by:
                lvl = pb.drill.acknowledge_level
                at_level = [p for p in pages if p.incident_id == inc.id and p.level == lvl and p.person]
                if at_level:
                    acknowledge(db, self.rt.audit, inc.id, at_level[0].person or "", "drill")
            run_id = inc.summary.resolve_run_id
            if inc.status == IncidentStatus.RESOLVING and run_id and self._paused(run_id):
                self._resume(("resolve", inc.id), run_id, {"confirmer": pb.drill.approvers[0], "confirm": True,
                                                          "note": "drill: signal back at baseline"})
        for d in drafts:
            if not self._paused(d.flow_run_id or ""):
                continue
            status = approve_mod.approval_status(db, pb, d.id)
            with db.session() as s:
                answered = {a.approver for a in s.scalars(select(Approval).where(Approval.draft_id == d.id))}
            for pid in pb.drill.approvers:
                person = pb.person(pid)
                if pid in answered or pid == d.author or not set(person.roles) & set(status.missing_roles):
                    continue
                code = self._code_for(person.channels.get("email", ""), d.id)
                if code is None:
                    continue  # the code has not arrived yet
                self._resume(("draft", d.id, pid), d.flow_run_id or "",
                             {"approver": pid, "decision": "approve", "sha256": d.sha256, "code": code, "comment": ""})
                break

    def _code_for(self, address: str, draft_id: int) -> str | None:
        for body in reversed(self.inbox(address)):
            m = _CODE.search(body)
            if m and f"#{draft_id} " in body:
                return m.group(1)
        return None

    def _paused(self, run_id: str) -> bool:
        with get_client(sync_client=True) as client:
            state = client.read_flow_run(run_id).state
        return bool(state and state.is_paused())

    def _resume(self, key: tuple[Any, ...], run_id: str, run_input: dict[str, Any]) -> None:
        # Each answer is given once; the next one waits until the run has recorded this one.
        if key in self._answered:
            return
        try:
            resume_flow_run(run_id, run_input=run_input)
        except (NotPausedError, RuntimeError) as exc:
            # The run is between "paused" and "input form saved": try again on the next step.
            self._not_ready[key] = self._not_ready.get(key, 0) + 1
            if self._not_ready[key] > 100:
                raise FirebreakError(f"drill could not answer {key}: {exc}") from exc
            return
        self._answered.add(key)
        log.info(f"Drill answer to the {key[0]} pause", run=run_id, **{k: v for k, v in run_input.items() if k not in ("sha256", "code")})
