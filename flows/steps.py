"""Thin Prefect @task wrappers around the stage functions.

Each task is a batch (a platform's whole drain, every pending mention, every scheduled
post): the unit worth retrying and seeing in the UI. Tasks take ids, never heavy objects,
and find the process's resources in the Runtime. Retries happen here (Prefect, visible)
only for errors that are safe to repeat; the HTTP client retries single calls.
"""

from __future__ import annotations

import functools
import re
import time
from contextlib import contextmanager
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Any, ParamSpec, TypeVar

import structlog
from prefect import get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.context import TaskRunContext

from firebreak.config.logging import get_logger
from firebreak.domain import Platform, utcnow
from firebreak.errors import CircuitOpen, RateLimited, TransientError
from firebreak.store.models import Draft, Incident, StageTimes
from firebreak.store.queries import record_stage
from firebreak.tasks import approve as approve_mod
from firebreak.tasks import classify as classify_mod
from firebreak.tasks import codes as codes_mod
from firebreak.tasks import crisis_page as crisis_page_mod
from firebreak.tasks import engage as engage_mod
from firebreak.tasks import escalate as escalate_mod
from firebreak.tasks import freeze as freeze_mod
from firebreak.tasks import ingest as ingest_mod
from firebreak.tasks import postmortem as postmortem_mod
from firebreak.tasks import publish as publish_mod
from firebreak.tasks import detect as detect_mod
from firebreak.tasks.draft import facts_for, propose_statement
from firebreak.tasks.ack import AckLinks
from firebreak.tasks.incident import apply_assessment, open_or_join
from firebreak.flows.limits import platform_slot
from firebreak.flows.runtime import get_runtime

log = get_logger("firebreak.flows.steps")

P = ParamSpec("P")
R = TypeVar("R")


# A platform's "retry after" longer than this is not sat out by a task: the run fails and
# says why (a LinkedIn daily limit lasts until midnight UTC; a flow should not sleep on it).
MAX_RATE_LIMIT_WAIT_S = 180.0


def _transient(task: Any, run: Any, state: Any) -> bool:
    try:
        state.result()
    except RateLimited as exc:
        return exc.retry_after <= MAX_RATE_LIMIT_WAIT_S
    except TransientError:
        return True
    except BaseException:
        return False
    return False


# An open circuit (connectors/http.py CircuitBreaker) refuses calls for its cooldown, 30 s by
# default; the error does not say how long is left, so a task waits the whole cooldown.
CIRCUIT_WAIT_S = 30.0


def honour_retry_after(fn: Callable[P, R]) -> Callable[P, R]:
    """Prefect's retry delays are fixed per attempt; a platform's reset time is not. A task
    that hits RateLimited (or an open circuit) waits out whatever of `retry_after` (or of the
    breaker's cooldown) its next fixed delay does not cover, logged on the task run so the
    wait shows in Prefect right before the retry it precedes, then re-raises for Prefect's own
    retry. Without this a task retried 1 s into a 60 s throttle or a 30 s open circuit and
    burnt its retries on refusals. The HTTP client itself never sleeps on either."""

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (RateLimited, CircuitOpen) as exc:
            wait_for = exc.retry_after if isinstance(exc, RateLimited) else CIRCUIT_WAIT_S
            ctx = TaskRunContext.get()
            if ctx is not None and wait_for <= MAX_RATE_LIMIT_WAIT_S:
                done = max(ctx.task_run.run_count - 1, 0)  # retries already used
                if done < ctx.task.retries:
                    delays = ctx.task.retry_delay_seconds
                    fixed = (delays[min(done, len(delays) - 1)] if isinstance(delays, list) else delays) or 0
                    wait = wait_for - float(fixed)
                    get_run_logger().warning("%s: %s; waiting %.1fs, then Prefect's %ss retry delay", exc.platform,
                                             "rate limited" if isinstance(exc, RateLimited) else "circuit open",
                                             max(wait, 0.0), fixed)
                    if wait > 0:
                        time.sleep(wait)
            raise

    return wrapper


@contextmanager
def stage(incident_id: int | None, name: str) -> Iterator[None]:
    """Record a stage's wall-clock start and end on the incident (the drill report reads them)."""
    rt = get_runtime()
    started, v_started = utcnow(), rt.clock.now()
    try:
        with structlog.contextvars.bound_contextvars(stage=name, incident_id=incident_id):
            yield
    finally:
        # Also when the attempt fails: a stage starts with its first attempt, and what that
        # attempt did (a post it released before its answer was lost) happened inside the
        # stage. Recorded only on success, a retried resume looked as if it began after the
        # post it had released went out, i.e. as if that post went out during the freeze.
        _record_stage(incident_id, name, started, v_started)


def _record_stage(incident_id: int | None, name: str, started: datetime, v_started: datetime) -> None:
    rt = get_runtime()
    if incident_id is not None:
        # Wall-clock times for latencies; platform (virtual) times to compare with posts.
        record_stage(rt.db, incident_id, name, StageTimes(started_at=started, finished_at=utcnow(),
                                                          platform_started_at=v_started,
                                                          platform_finished_at=rt.clock.now()))


def connectors() -> dict[Platform, Any]:
    rt = get_runtime()
    return {p: rt.connector(p) for p in rt.playbook.brand.accounts}


# Retries resume from the cursor saved after the last stored page, so they are cheap; under
# a storm (5xx, resets, 429 storms on a long drain) three were not always enough.
@task(name="ingest", task_run_name="ingest {platform}", retries=6, retry_delay_seconds=[1, 2, 5, 10, 15], retry_condition_fn=_transient)
@honour_retry_after
def ingest(platform: str) -> dict[str, Any]:
    rt = get_runtime()
    with structlog.contextvars.bound_contextvars(platform=platform), \
            platform_slot(platform, enabled=rt.settings.platform_limits, timeout_s=rt.settings.platform_limit_timeout_s):
        st = ingest_mod.ingest_platform(rt.db, rt.connector(platform), rt.brand)
    rt.count("mentions_received", st.received)
    return {"platform": platform, "pages": st.pages, "received": st.received, "stored": st.stored}


@task(name="label")
def label() -> int:
    rt = get_runtime()
    return classify_mod.label_pending(rt.db, rt.triage(), rt.brand)


@task(name="detect")
def detect() -> int | None:
    rt = get_runtime()
    scores: list[detect_mod.SeriesScore] = []
    sig = detect_mod.detect(rt.db, rt.playbook, rt.clock.now(), scores=scores)
    _score_table(rt.brand, scores, rt.playbook.detection.min_volume)
    if sig is None:
        return None
    inc, opened = open_or_join(rt.db, rt.audit, rt.playbook, sig.id, drill=rt.drill)
    return inc.id if opened else None


def _score_table(brand: str, scores: list[detect_mod.SeriesScore], min_volume: int) -> None:
    """The run's table of every series against its threshold: a run that finds nothing still
    shows how close each series came."""
    rows = [{"series": s.scope, "buckets scored": s.buckets,
             "closest bucket": f"{s.at:%Y-%m-%d %H:%M}" if s.at else "",
             "mentions": s.volume, "baseline": "" if s.baseline is None else f"{s.baseline:.1f}",
             "score": "" if s.score is None else f"{s.score:.2f}", "alert at": f"{s.THRESHOLD:.2f}",
             "verdict": s.verdict(min_volume)} for s in scores]
    create_table_artifact(table=rows, key=f"detection-{re.sub(r'[^a-z0-9-]+', '-', brand.lower())}",
                          description=f"How close each of {brand}'s series came to an alert in the buckets completed "
                                      "since the last run (a score of 0.50 alerts).")
    closest = max((s for s in scores if s.score is not None), key=lambda s: s.score or 0.0, default=None)
    if closest is not None and not closest.alert:
        log.info(
            f"No alert: closest was {closest.scope} at {closest.score:.2f} of {closest.THRESHOLD:.2f} "
            f"({closest.volume} mentions against a baseline of {closest.baseline or 0.0:.1f})", brand=brand)


@task(name="own-queue", retries=2, retry_delay_seconds=5, retry_condition_fn=_transient)
@honour_retry_after
def own_queue() -> int:
    rt = get_runtime()
    return publish_mod.run_own_queue(rt.db, rt.audit, rt.brand, connectors(), rt.clock.now())


@task(name="classify", task_run_name="classify #{incident_id}")
def classify(incident_id: int) -> dict[str, Any]:
    rt = get_runtime()
    with stage(incident_id, "classify"):
        a = classify_mod.assess(rt.db, rt.playbook, incident_id, rt.clock.now())
        apply_assessment(rt.db, rt.audit, incident_id, a)
    return {"type": a.type, "severity": a.severity, "origin_platform": a.origin_platform, "languages": a.languages,
            "topics": a.topics}


@task(name="escalate", task_run_name="escalate #{incident_id}")
def escalate(incident_id: int) -> dict[str, Any]:
    rt = get_runtime()
    with stage(incident_id, "escalate"):
        res = escalate_mod.run_escalation(rt.db, rt.audit, rt.playbook, rt.notifiers(), rt.clock, incident_id,
                                          poll_s=5.0, ack=AckLinks(codes_mod.signing_key(rt.settings), rt.settings.public_url))
    return {"acknowledged_by": res.acknowledged_by, "pages": len(res.pages), "exhausted": res.exhausted,
            "resolved": res.resolved}


# Short delays: the freeze races posts that are about to go out; holds are idempotent.
@task(name="freeze", task_run_name="freeze #{incident_id}", retries=6, retry_delay_seconds=[0.5, 1, 2, 3, 5], retry_condition_fn=_transient)
@honour_retry_after
def freeze(incident_id: int) -> dict[str, Any]:
    rt = get_runtime()
    with stage(incident_id, "freeze"):
        res = freeze_mod.freeze_all(rt.db, rt.audit, rt.playbook, connectors(), incident_id,
                                    reason=f"crisis freeze for incident #{incident_id}")
    return {"found": res.found, "held": res.held}


@task(name="draft", task_run_name="draft {kind} #{incident_id}")
def draft(incident_id: int, kind: str, sequence: int, update_number: int = 0,
          next_update_minutes: int | None = None) -> int:
    rt = get_runtime()
    pb = rt.playbook
    with stage(incident_id, "draft" if kind == "holding" else f"draft_{kind}"):
        with rt.db.session() as s:
            inc = s.get(Incident, incident_id)
            assert inc is not None
        facts = facts_for(pb, inc, update_number=update_number, next_update_minutes=next_update_minutes)
        # The LLM (if configured) only proposes; propose_statement checks its text like a
        # template's and falls back to the template, so a draft is always ready in time.
        llm = rt.llm()
        proposal = propose_statement(pb, kind, facts, llm)  # type: ignore[arg-type]
        d = approve_mod.create_draft(rt.db, rt.audit, incident_id, kind, sequence, pb.brand.default_language,
                                     proposal.variants, source=proposal.source)
        if proposal.fallback_reason and llm is not None:
            rt.audit.append("firebreak", "draft.llm_fallback", f"draft:{d.id}", {"reason": proposal.fallback_reason[:2000]})
    return d.id


# Each retry asks the platform (find_published) before resending a part whose fate is
# unknown, so retrying is safe; a storm needs more than three.
@task(name="publish", task_run_name="publish draft {draft_id}", retries=6, retry_delay_seconds=[1, 2, 3, 5, 10], retry_condition_fn=_transient)
@honour_retry_after
def publish(incident_id: int, draft_id: int) -> list[dict[str, Any]]:
    rt = get_runtime()
    with stage(incident_id, "publish"):
        out = publish_mod.publish_draft(rt.db, rt.audit, rt.playbook, connectors(), incident_id, draft_id)
        # The crisis page follows every publication, so it never says less than the channels.
        crisis_page_mod.write(rt.db, rt.playbook, incident_id, rt.settings.data_dir / "crisis-page")
    return [{"platform": p.platform, "remote_id": p.remote_id, "sha256": p.sha256, "at": p.at.isoformat()} for p in out]


@task(name="engage", task_run_name="engage #{incident_id}", retries=3, retry_delay_seconds=[1, 3, 10], retry_condition_fn=_transient)
def engage(incident_id: int) -> dict[str, Any]:
    rt = get_runtime()
    with stage(incident_id, "engage"):
        res = engage_mod.engage(rt.db, rt.audit, rt.playbook, connectors(), incident_id)
    return {"answered": res.answered, "private": res.private, "hidden": res.hidden, "skipped": res.skipped,
            "failed": len(res.failed)}


@task(name="brief-staff", task_run_name="brief staff #{incident_id}")
def brief_staff(incident_id: int, draft_id: int) -> list[str]:
    rt = get_runtime()
    with rt.db.session() as s:
        d = s.get(Draft, draft_id)
        assert d is not None
    text = "\n".join(d.variants.get("linkedin") or next(iter(d.variants.values())))
    return escalate_mod.brief_staff(rt.db, rt.audit, rt.playbook, rt.notifiers(), incident_id, text)


@task(name="resume", task_run_name="resume posts #{incident_id}", retries=6, retry_delay_seconds=[1, 2, 3, 5, 10], retry_condition_fn=_transient)
@honour_retry_after
def resume(incident_id: int) -> dict[str, Any]:
    rt = get_runtime()
    with stage(incident_id, "resume"):
        res = freeze_mod.resume_all(rt.db, rt.audit, rt.playbook, connectors(), incident_id, rt.clock.now())
    return {"resumed": res.resumed, "rescheduled": res.rescheduled, "published_now": res.published_now,
            "dropped": res.dropped, "needs_approval": res.needs_approval}


@task(name="postmortem", task_run_name="post-mortem #{incident_id}")
def postmortem(incident_id: int) -> dict[str, str]:
    rt = get_runtime()
    with stage(incident_id, "postmortem"):
        path, md = postmortem_mod.write(rt.db, rt.playbook, incident_id, rt.settings.data_dir / "reports")
    return {"html": str(path), "markdown": md}
