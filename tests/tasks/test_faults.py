"""The chain under random faults: 200+ seeded fault schedules against a live sandbox.

Each schedule draws its own per-platform fault profile (every rate uniform between zero and
the `storm` profile's, plus 429 storms for LinkedIn too) and its own seed, loads a small
slice of the default scenario, and drives the real stage functions through the real
connectors: ingest (every stream, pages of 10 so listings repeat and reorder across
pages), freeze (every scheduled post) and publish (an approved statement, a two-part
thread on X). A Prefect task retry is emulated by calling the stage again on TransientError
or RateLimited, as the task wrappers in flows/steps.py do. Each schedule asserts: every
scenario mention stored exactly once, every scheduled post held on its platform, every
approved text published exactly once per platform.

Two waits are shortened so 200 schedules fit in about a minute, without changing anything
that is sent: the client's backoff sleeps (tenacity) are capped at 5 ms, and a task retry
after a 429 storm or an open circuit waits until the sandbox's storm is over and then uses a
fresh connector (as after the real wait: the connector's remembered budget and breaker
have expired). A Graph 429 asks for a minute and LinkedIn's bare 429 for the rest of the
day; real tasks wait those out (flows/steps.py `honour_retry_after`).

Run alone: `.venv/bin/python -m pytest tests/tasks/test_faults.py -q -s` (prints the figures).
"""

from __future__ import annotations

import functools
import os
import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVar

import httpx
import pytest
from firebreak.config.playbook import Playbook
from firebreak.config.settings import Settings
from firebreak.connectors import build_connector
from firebreak.connectors import http as http_mod
from firebreak.connectors.base import Connector
from firebreak.sandbox.faults import (
    STORM,
    FaultInjector,
    FaultProfile,
    install_faults,
)
from firebreak.sandbox.scenario import Scenario, load_scenario
from firebreak.sandbox.server import SandboxServer
from firebreak.sandbox.state import SandboxScheduled, SandboxState
from firebreak.tasks.approve import create_draft, record_decision
from firebreak.tasks.freeze import freeze_all
from firebreak.tasks.ingest import drain_stream
from firebreak.tasks.publish import publish_draft
from pydantic import SecretStr
from sqlalchemy import select

from firebreak.audit import AuditLog
from firebreak.clock import VirtualClock
from firebreak.domain import Platform, utcnow
from firebreak.errors import CircuitOpen, RateLimited, TransientError
from firebreak.store.db import Database
from firebreak.store.models import FreezeRecord, Mention
from tests.conftest import scaled
from tests.fakes import make_incident

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# At least 200 in `make test-all`; a quick 16 in `make test` (every fault kind still lands on every platform).
SCHEDULES = int(os.environ.get("FIREBREAK_FAULT_SCHEDULES", scaled(16, 200)))
MENTIONS_PER_PLATFORM = 11
PAGE_SIZE = 10
MAX_TASK_ATTEMPTS = 40  # far more than any schedule needs; a loop means a stuck chain
SCHEDULING = (Platform.FACEBOOK, Platform.MASTODON, Platform.LINKEDIN)
T = TypeVar("T")


@dataclass
class Figures:
    schedules: int = 0
    faults: Counter[str] = field(default_factory=Counter)
    faults_by_platform: Counter[str] = field(default_factory=Counter)
    task_retries: Counter[str] = field(default_factory=Counter)
    mentions: int = 0
    holds: int = 0
    publications: int = 0

    def add(self, inj: FaultInjector) -> None:
        summary = inj.summary()
        self.faults.update(summary["by_kind"])
        for platform, kinds in summary["by_platform"].items():
            self.faults_by_platform[platform] += sum(kinds.values())


def random_profile(rng: random.Random, platform: Platform) -> FaultProfile:
    """Every rate uniform in [0, storm's]; short 429 storms for every platform."""
    def u(x: float) -> float:
        return rng.uniform(0, x)

    return FaultProfile(error_rate=u(STORM.error_rate), rate_limit_rate=u(0.03), rate_limit_s=(0.02, 0.15),
                        latency_rate=u(STORM.latency_rate), latency_s=(0.001, 0.01), reset_rate=u(STORM.reset_rate),
                        write_timeout_rate=u(0.4), duplicate_rate=u(0.6), shuffle_rate=u(0.6))


@pytest.fixture(scope="module")
def world(tmp_path_factory, playbook, test_databases) -> Iterator[dict[str, Any]]:  # type: ignore[no-untyped-def]
    work = tmp_path_factory.mktemp("faults")
    # Platform time runs with the wall clock: find_published compares our times with theirs.
    clock = VirtualClock(utcnow(), compression=1.0, auto_advance=False)
    handles = {p: a.handle for p, a in playbook.brand.accounts.items()}
    state = SandboxState(clock, brand_handle=handles)
    template = test_databases.url(work, "template")
    tdb = Database(template)
    tdb.migrate()
    tdb.dispose()  # the last connection closing checkpoints the WAL into the file we copy
    # One scenario, sliced differently per schedule (generating it takes longer than a schedule).
    scenario = load_scenario("default", clock.now() - timedelta(hours=3))
    # One connection pool for every connector: building an httpx client per connector loads the
    # TLS trust store each time, which would dominate the run.
    transport = httpx.HTTPTransport()
    with SandboxServer(state) as srv:
        creds = {"token": SecretStr("test-token"), "password": SecretStr("test-app-password")}
        settings = Settings(sandbox_url=srv.url, data_dir=work,
                            **{p.value: getattr(Settings(), p.value).model_copy(update=creds) for p in Platform})
        conns = {p: build_connector(p, settings, playbook, transport=transport) for p in Platform}
        yield {"state": state, "clock": clock, "handles": handles, "settings": settings, "template": template,
               "work": work, "databases": test_databases, "scenario": scenario, "transport": transport, "conns": conns}
    transport.close()


@pytest.fixture(scope="module", autouse=True)
def quick_thread_switches() -> Iterator[None]:
    """Client and sandbox share one process: each request hands the GIL from one thread to the
    other and back, and the default 5 ms switch interval made that most of a request's time."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.0002)
    yield
    sys.setswitchinterval(before)


@pytest.fixture(autouse=True)
def fast_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cap the client's backoff sleeps (tenacity) at 5 ms: what is sent stays the same."""
    real = http_mod.Retrying
    monkeypatch.setattr(http_mod, "Retrying", functools.partial(real, sleep=lambda s: time.sleep(min(s, 0.005))))


def reset_state(state: SandboxState, clock: VirtualClock, handles: dict[Platform, str]) -> None:
    """A fresh sandbox world on the same server (the routers read `state` attributes per request)."""
    SandboxState.__init__(state, clock, brand_handle=handles)


def load_slice(state: SandboxState, scen: Scenario, rng: random.Random) -> tuple[dict[Platform, int],
                                                                                 list[SandboxScheduled]]:
    now = state.now()
    visible = [m for m in scen.mentions if m.created_at <= now - timedelta(minutes=1)]
    picked = []
    for p in Platform:
        mine = [m for m in visible if m.platform is p]
        picked += rng.sample(mine, min(MENTIONS_PER_PLATFORM, len(mine)))
    # Brand posts only where a picked mention answers one: every other post would only add
    # empty comment pages to each drain.
    parents = {(m.platform, m.reply_to) for m in picked if m.reply_to}
    posts = [b for b in scen.brand_posts if (b.platform, b.id) in parents]
    scheduled = []
    for p in SCHEDULING:
        for i in range(2):
            scheduled.append(SandboxScheduled(p, state.new_id(p), f"Autumn trail tip #{i + 1} 🍂",
                                              now + timedelta(hours=2 + i)))
    state.load(picked, scheduled, posts)
    return Counter(m.platform for m in picked), scheduled


def as_task(fn: Callable[[], T], platforms: set[Platform], rebuild: Callable[[set[Platform]], None],
            inj: FaultInjector, figures: Figures, what: str) -> T:
    """Call a stage like a Prefect task with retries on TransientError / RateLimited."""
    for _ in range(MAX_TASK_ATTEMPTS):
        try:
            return fn()
        except (RateLimited, CircuitOpen) as exc:
            figures.task_retries[f"{what}:{'rate_limited' if isinstance(exc, RateLimited) else 'circuit_open'}"] += 1
            hit = {Platform(p) for p in exc.platform.split(",") if p in {q.value for q in Platform}} or platforms
            # The real task waits `retry_after`; here: until the sandbox's storm is over.
            time.sleep(max((inj.storm_remaining(p) for p in hit), default=0.0) + 0.005)
            rebuild(hit)
        except TransientError:
            figures.task_retries[f"{what}:transient"] += 1
    raise AssertionError(f"{what}: still failing after {MAX_TASK_ATTEMPTS} task attempts")


def run_schedule(seed: int, world: dict[str, Any], playbook: Playbook, figures: Figures, db_url: str,
                 drop_later: Callable[[str], None]) -> None:
    rng = random.Random(seed)
    state, clock = world["state"], world["clock"]
    reset_state(state, clock, world["handles"])
    expected, scheduled = load_slice(state, world["scenario"], rng)
    inj = install_faults(state, {p: random_profile(rng, p) for p in Platform}, seed=seed)
    assert inj is not None
    db = Database(db_url)
    audit = AuditLog(db)
    # The same connectors serve every schedule, like a long-running worker's; after a 429
    # storm or an open circuit a platform's is replaced (see the module docstring). Not
    # closed: they share the transport.
    conns: dict[Platform, Connector] = world["conns"]

    def rebuild(which: set[Platform]) -> None:
        for p in which:
            conns[p] = build_connector(p, world["settings"], playbook, transport=world["transport"])
    brand = playbook.brand.id
    try:
        # -- ingest: every stream of every platform, small pages ---------------------------------
        for p in Platform:
            for stream in type(conns[p]).streams:
                as_task(lambda p=p, stream=stream: drain_stream(db, conns[p], brand, stream, page_size=PAGE_SIZE),
                        {p}, rebuild, inj, figures, "ingest")
        with db.session() as s:
            stored = Counter(Platform(r) for r in s.scalars(select(Mention.platform)))
            ids = list(s.execute(select(Mention.platform, Mention.platform_id)))
        assert len(ids) == len(set(ids))
        assert stored == expected, f"seed {seed}: stored {dict(stored)} expected {dict(expected)}"

        # -- freeze: every scheduled post held on its platform ----------------------------------------
        inc = make_incident(db, playbook, origin="mastodon")
        as_task(lambda: freeze_all(db, audit, playbook, conns, inc.id, "fault schedule"), set(SCHEDULING), rebuild,
                inj, figures, "freeze")
        # Held on the platform: Mastodon and LinkedIn mark it; Facebook's hold moves it far ahead.
        far = state.now() + timedelta(days=1)
        states = {(s.platform, s.id): "held" if s.state == "held" or (s.state == "scheduled" and s.scheduled_at > far)
                  else s.state for s in scheduled}
        assert set(states.values()) == {"held"}, f"seed {seed}: {states}"
        with db.session() as s:
            done = s.scalars(select(FreezeRecord).where(FreezeRecord.action == "hold",
                                                        FreezeRecord.status == "done")).all()
        assert {(Platform(r.snapshot["platform"]), r.snapshot["platform_id"]) for r in done} == set(states)

        # -- publish: an approved statement exactly once per platform -----------------------------------
        variants = {p.value: [f"Schedule {seed}: we are looking into reports about the Ember stove on {p.value}."]
                    for p in Platform}
        variants["x"] = [f"Schedule {seed}: about the Ember stove (1/2)", f"Schedule {seed}: stop using it (2/2)"]
        d = create_draft(db, audit, inc.id, "holding", 0, "en", variants)
        record_decision(db, audit, playbook, d.id, "maria", "approve", "cli", d.sha256)
        record_decision(db, audit, playbook, d.id, "ingrid", "approve", "cli", d.sha256)
        as_task(lambda: publish_draft(db, audit, playbook, conns, inc.id, d.id), set(Platform), rebuild, inj,
                figures, "publish")
        for p in Platform:
            got = Counter(post.text for post in state.posts[p] if post.source == "api")
            assert got == Counter(variants[p.value]), f"seed {seed} {p.value}: received {dict(got)}"
    finally:
        install_faults(state, None)
        db.dispose()
        drop_later(db_url)
    figures.schedules += 1
    figures.add(inj)
    figures.mentions += sum(expected.values())
    figures.holds += len(scheduled)
    figures.publications += sum(len(v) for v in variants.values())


def test_chain_loses_and_repeats_nothing_under_random_fault_schedules(world, playbook) -> None:  # type: ignore[no-untyped-def]
    figures = Figures()
    started = time.monotonic()
    dbs = world["databases"]

    def new_db(seed: int) -> str:
        return str(dbs.url(world["work"], f"s{seed}", template=world["template"]))

    # Each schedule's database is made (and dropped) in the background while the one before
    # runs: on PostgreSQL a CREATE DATABASE from the template takes ~0.1 s.
    dropped: list[Future[None]] = []
    with ThreadPoolExecutor(1) as background:
        def drop_later(url: str) -> None:
            dropped.append(background.submit(dbs.drop, url))

        upcoming = background.submit(new_db, 0)
        for seed in range(SCHEDULES):
            db_url = upcoming.result()
            if seed + 1 < SCHEDULES:
                upcoming = background.submit(new_db, seed + 1)
            run_schedule(seed, world, playbook, figures, db_url, drop_later)
        for done in dropped:
            done.result()  # a failed drop is an error, not a leftover
    took = time.monotonic() - started
    print(f"\nfault schedules: {figures.schedules} in {took:.1f}s; faults injected {sum(figures.faults.values())}: "
          f"{dict(sorted(figures.faults.items()))}; by platform {dict(sorted(figures.faults_by_platform.items()))}; "
          f"task retries {dict(sorted(figures.task_retries.items()))}; verified: {figures.mentions} mentions stored "
          f"once, {figures.holds} scheduled posts held, {figures.publications} texts published once")
    assert figures.schedules == SCHEDULES
    # Every kind of fault was exercised, on every platform.
    assert set(figures.faults) == {"rate_limit", "error_5xx", "latency", "reset", "timeout_after_write", "duplicate",
                                   "out_of_order"}
    assert set(figures.faults_by_platform) == {p.value for p in Platform}
