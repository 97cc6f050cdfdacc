"""Ingest benchmark: connector -> store, per platform, against the sandbox on loopback.

`bench_ingest(platforms, n_mentions, runs)` loads `n_mentions` mentions per platform into a
fresh sandbox, then drains every stream of each platform through its real connector into a
SQLite file with `ingest_platform` (the monitor stage's own code path: pages, cursors,
dedupe), and reports unique mentions stored per second (median of `runs`) and the growth of
peak RSS over the whole benchmark (memory should stay flat: the drain holds one page).

Shapes follow each platform: X, Mastodon and Bluesky get keyword mentions (found by both of
their streams, so half the reads are duplicates the store absorbs); Facebook, Instagram and
LinkedIn get comments spread over the brand's 40 newest posts (their comment drains walk
posts, then comments). The wired command is `firebreak bench ingest`.
"""

from __future__ import annotations

import gc
import resource
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from firebreak.domain import Platform

POSTS = 40  # below the Graph/LinkedIn drains' 50-post horizon, so every comment is reachable
GOAL_PER_S = 2000.0
T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)


@dataclass
class PlatformResult:
    platform: str
    mentions: int
    stored: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    pages: int = 0

    @property
    def rates(self) -> list[float]:
        return [s / t if t > 0 else 0.0 for s, t in zip(self.stored, self.seconds, strict=True)]

    @property
    def median_rate(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "rates": [round(r, 1) for r in self.rates],
                "median_per_s": round(self.median_rate, 1), "meets_goal": self.median_rate >= GOAL_PER_S}


def _peak_rss_mb() -> float:
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024  # bytes on macOS, KiB on Linux


def _mentions(platform: Platform, n: int, account: str) -> tuple[list[Any], list[Any]]:
    from firebreak.sandbox.state import SandboxMention, SandboxPost, make_id

    start = T0 - timedelta(hours=6)
    step = timedelta(hours=6) / max(n, 1)
    posts: list[Any] = []
    comments = platform in (Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN)
    if comments:
        for i in range(POSTS):
            pid = (f"{account}_{100 + i}" if platform is Platform.FACEBOOK
                   else make_id(platform, 100 + i))
            posts.append(SandboxPost(platform, pid, f"Brand post {i}", start - timedelta(hours=1, minutes=i),
                                     source="scenario"))
    items = []
    for i in range(n):
        if platform is Platform.FACEBOOK:
            mid = f"{account}_5{i:011d}"
        elif platform is Platform.INSTAGRAM:
            mid = f"18{i:015d}"
        elif platform is Platform.LINKEDIN:
            mid = f"urn:li:share:{6_000_000 + i}"
        else:
            mid = make_id(platform, 10_000 + i)
        items.append(SandboxMention(
            platform, mid, f"user{i}", f"my fjell stove {i} caught fire on the trail",
            start + step * i, kind="comment" if comments else "mention", lang="en", followers=i % 1000,
            likes=i % 7, reposts=i % 3, reply_to=posts[i % POSTS].id if comments else "",
            author_id=f"urn:li:person:p{i}" if platform is Platform.LINKEDIN else str(50_000 + i)))
    return items, posts


def _serve_sandbox(platforms: list[str], n: int, port: int) -> None:
    """Child process: a sandbox holding `n` mentions per platform. The platforms are remote
    in production, so the emulator must not share the client's interpreter (and its GIL)."""
    from firebreak.clock import VirtualClock
    from firebreak.config.playbook import load_playbook
    from firebreak.config.settings import DEFAULT_PLAYBOOK
    from firebreak.sandbox.server import SandboxServer
    from firebreak.sandbox.state import SandboxState

    playbook = load_playbook(DEFAULT_PLAYBOOK)
    state = SandboxState(VirtualClock(T0, compression=0.0),
                         brand_handle={p: a.handle for p, a in playbook.brand.accounts.items()})
    state.request_log_limit = 0  # benchmarks make far more requests than a drill
    for name in platforms:
        p = Platform(name)
        items, posts = _mentions(p, n, playbook.brand.accounts[p].id)
        state.load(items, [], posts)
    SandboxServer(state, port=port).serve_forever()


def _run_once(platforms: list[Platform], n: int, workdir: Path, run: int,
              results: dict[Platform, PlatformResult]) -> None:
    import multiprocessing

    import httpx
    from pydantic import SecretStr

    from firebreak.config.playbook import load_playbook
    from firebreak.config.settings import DEFAULT_PLAYBOOK, Settings
    from firebreak.connectors import build_connector
    from firebreak.sandbox.server import free_port
    from firebreak.errors import FirebreakError
    from firebreak.store.db import Database
    from firebreak.tasks.ingest import ingest_platform

    playbook = load_playbook(DEFAULT_PLAYBOOK)
    port = free_port()
    child = multiprocessing.get_context("spawn").Process(
        target=_serve_sandbox, args=([p.value for p in platforms], n, port), daemon=True)
    child.start()
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{url}/_sandbox/state", timeout=2).status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or not child.is_alive():
            child.kill()
            raise FirebreakError("benchmark sandbox did not start")
        time.sleep(0.1)
    creds = {"token": SecretStr("bench-token"), "password": SecretStr("bench-password")}
    try:
        settings = Settings(sandbox_url=url, data_dir=workdir,
                            **{p.value: getattr(Settings(), p.value).model_copy(update=creds) for p in Platform})
        for p in platforms:
            db = Database(f"sqlite:///{workdir / f'bench-{p.value}-{run}.db'}")
            db.migrate()
            try:
                with build_connector(p, settings, playbook) as conn:
                    t = time.perf_counter()
                    stats = ingest_platform(db, conn, playbook.brand.id)
                    elapsed = time.perf_counter() - t
            finally:
                db.dispose()
            r = results[p]
            r.stored.append(stats.stored)
            r.seconds.append(elapsed)
            r.pages = stats.pages
            gc.collect()
    finally:
        child.terminate()
        child.join(timeout=10)


def bench_ingest(platforms: list[Platform | str] | None = None, n_mentions: int = 5000, runs: int = 3,
                 workdir: Path | None = None) -> dict[str, Any]:
    """Mentions/s per platform (median of `runs`) and peak-RSS growth; see the module doc."""
    chosen = [Platform(p) for p in (platforms or list(Platform))]
    results = {p: PlatformResult(p.value, n_mentions) for p in chosen}
    rss_before = _peak_rss_mb()
    with tempfile.TemporaryDirectory(prefix="firebreak-bench-") as tmp:
        base = Path(workdir) if workdir else Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        for run in range(runs):
            _run_once(chosen, n_mentions, base, run, results)
    rss_after = _peak_rss_mb()
    out = {
        "n_mentions": n_mentions,
        "runs": runs,
        "goal_per_s": GOAL_PER_S,
        "platforms": {p.value: results[p].as_dict() for p in chosen},
        "peak_rss_mb_before": round(rss_before, 1),
        "peak_rss_mb_after": round(rss_after, 1),
        "peak_rss_growth_mb": round(rss_after - rss_before, 1),
    }
    out["all_meet_goal"] = all(v["meets_goal"] for v in out["platforms"].values())
    return out


def format_report(report: dict[str, Any]) -> str:
    lines = [f"ingest benchmark: {report['n_mentions']} mentions per platform, median of {report['runs']} runs"]
    for name, r in report["platforms"].items():
        mark = "ok" if r["meets_goal"] else "BELOW GOAL"
        lines.append(f"  {name:<10} {r['median_per_s']:>9.0f} mentions/s  stored {r['stored'][-1]:>6}  "
                     f"pages {r['pages']:>4}  [{mark}]")
    lines.append(f"  peak RSS {report['peak_rss_mb_before']:.0f} MB -> {report['peak_rss_mb_after']:.0f} MB "
                 f"(+{report['peak_rss_growth_mb']:.0f} MB)")
    return "\n".join(lines)


if __name__ == "__main__":  # python -m firebreak.bench.ingest [N] [RUNS] [platform ...]
    args = sys.argv[1:]
    n = int(args[0]) if args else 5000
    runs = int(args[1]) if len(args) > 1 else 3
    print(format_report(bench_ingest(args[2:] or None, n, runs)))
