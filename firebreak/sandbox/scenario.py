"""Crisis scenarios for the sandbox: ordinary chatter, brand posts, scheduled posts and a storm.

A scenario file is YAML. Times are minutes relative to T0 (the storm's start), chosen by
whoever loads it, so the same file plays at any date. Mentions are generated from text
pools with a seeded RNG: the same file and seed always give the same mentions.
"""

from __future__ import annotations

import hashlib
import math
import random
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import yaml

from firebreak.sandbox.state import SandboxMention, SandboxPost, SandboxScheduled, make_id
from firebreak.domain import ALL_PLATFORMS, Platform
from firebreak.errors import ConfigError

SCENARIOS = Path(__file__).with_name("scenarios")
COMMENT_PLATFORMS = (Platform.FACEBOOK, Platform.INSTAGRAM, Platform.LINKEDIN)


@dataclass
class QueuedPost:
    """A post in Firebreak's own publishing queue (platforms without native scheduling)."""

    platform: Platform
    text: str
    scheduled_at: datetime
    media: list[str] = field(default_factory=list)


@dataclass
class Scenario:
    name: str
    description: str
    t0: datetime
    mentions: list[SandboxMention]
    brand_posts: list[SandboxPost]
    scheduled: list[SandboxScheduled]
    own_queue: list[QueuedPost]
    expect: dict[str, Any]
    starts_at: datetime  # earliest mention
    ends_at: datetime  # latest mention

    @property
    def expected_mentions(self) -> int:
        return len(self.mentions)


def scenario_path(name_or_path: str | Path) -> Path:
    p = Path(name_or_path)
    if p.suffix in (".yaml", ".yml") and p.exists():
        return p
    candidate = SCENARIOS / f"{name_or_path}.yaml"
    if candidate.exists():
        return candidate
    raise ConfigError(f"scenario {name_or_path!r} not found (looked for {p} and {candidate})")


def _platforms(spec: Any) -> list[Platform]:
    if spec in ("all", ["all"]):
        return list(ALL_PLATFORMS)
    return [Platform(p) for p in spec]


def _pick_lang(rng: random.Random, mix: dict[str, float]) -> str:
    langs, weights = zip(*mix.items())
    return rng.choices(langs, weights=weights)[0]


class _Builder:
    def __init__(self, spec: dict[str, Any], t0: datetime, pace: float = 1.0):
        self.spec = spec
        self.t0 = t0
        self.pace = pace
        self.rng = random.Random(spec.get("seed", 1))
        self.n = 0
        self.handles = {Platform(k): v for k, v in spec.get("handles", {}).items()}
        self.brand_post_ids: dict[Platform, list[str]] = {}

    def at(self, minutes: float) -> datetime:
        # From T0 on, the scenario plays `pace` times faster: the same storm, sooner.
        return self.t0 + timedelta(minutes=minutes if minutes <= 0 else minutes / self.pace)

    def next_id(self, platform: Platform) -> str:
        self.n += 1
        return make_id(platform, self.n)

    def brand_posts(self) -> list[SandboxPost]:
        out = []
        for item in self.spec.get("brand_posts", []):
            p = Platform(item["platform"])
            post = SandboxPost(p, self.next_id(p), item["text"], self.at(item["at"]), source="scenario",
                               media=list(item.get("media", [])))
            self.brand_post_ids.setdefault(p, []).append(post.id)
            out.append(post)
        return out

    def mention(self, platform: Platform, minutes: float, text: str, lang: str, *, followers: int, likes: int) -> SandboxMention:
        kind = "mention"
        reply_to = ""
        if platform in COMMENT_PLATFORMS and self.brand_post_ids.get(platform):
            kind = "comment"
            # Comments land on the brand's latest post.
            reply_to = self.brand_post_ids[platform][-1]
        elif platform is Platform.BLUESKY and self.rng.random() < 0.3 and self.brand_post_ids.get(platform):
            kind, reply_to = "reply", self.brand_post_ids[platform][-1]
        handle = self.handles.get(platform, "")
        if kind == "mention" and handle and handle.lower() not in text.lower() and platform is not Platform.X:
            text = f"{handle} {text}"
        user = f"user{self.rng.randrange(10_000, 99_999)}"
        return SandboxMention(platform=platform, id=self.next_id(platform), author=user, text=text,
                              created_at=self.at(minutes), kind=kind, lang=lang, followers=followers,
                              likes=likes, reply_to=reply_to,
                              author_id=str(int(hashlib.sha256(user.encode()).hexdigest()[:12], 16)))

    def fill(self, pool: dict[str, list[str]], lang: str) -> str:
        texts = pool.get(lang) or pool["en"]
        text = self.rng.choice(texts)
        extras = self.spec.get("suffixes", [""])
        return (text + self.rng.choice(extras)).strip()

    def chatter(self) -> list[SandboxMention]:
        c = self.spec["chatter"]
        out: list[SandboxMention] = []
        amp = float(c.get("daily_cycle", 0.5))
        for pname, per_hour in c["per_hour"].items():
            p = Platform(pname)
            minute = float(c["from"])
            while minute < c["to"]:
                hour = (self.at(minute).hour + self.at(minute).minute / 60)
                rate = per_hour * (1 + amp * math.sin((hour - 9) / 24 * 2 * math.pi)) / 60  # per minute
                minute += self.rng.expovariate(max(rate, 1e-3))
                if minute >= c["to"]:
                    break
                lang = _pick_lang(self.rng, c["languages"])
                out.append(self.mention(p, minute, self.fill(c["texts"], lang), lang,
                                        followers=int(self.rng.lognormvariate(5, 1.2)), likes=self.rng.randrange(0, 20)))
        return out

    def storm(self) -> list[SandboxMention]:
        s = self.spec["storm"]
        out: list[SandboxMention] = []
        first = True
        for phase in s["phases"]:
            for p in _platforms(phase["platforms"]):
                minute = float(phase["from"])
                span = phase["to"] - phase["from"]
                while True:
                    frac = (minute - phase["from"]) / span
                    rate = phase["per_minute"] * (math.exp(-3 * frac) if phase.get("decay") else 1.0)
                    minute += self.rng.expovariate(max(rate, 1e-3))
                    if minute >= phase["to"]:
                        break
                    offensive = self.rng.random() < s.get("offensive_share", 0.0)
                    lang = _pick_lang(self.rng, s["languages"])
                    pool = s["offensive_texts"] if offensive else s["texts"]
                    followers = int(self.rng.lognormvariate(6, 1.5))
                    if first and p is Platform(s["origin"]):
                        followers, first = 48_000, False  # the post that started it
                    out.append(self.mention(p, minute, self.fill(pool, lang), lang, followers=followers,
                                            likes=self.rng.randrange(5, 400)))
        return out

    def scheduled(self) -> tuple[list[SandboxScheduled], list[QueuedPost]]:
        native: list[SandboxScheduled] = []
        queued: list[QueuedPost] = []
        for item in self.spec.get("scheduled_posts", []):
            p = Platform(item["platform"])
            when = self.at(item["at"])
            media = list(item.get("media", []))
            if item.get("queue") == "firebreak":
                queued.append(QueuedPost(p, item["text"], when, media))
            else:
                native.append(SandboxScheduled(p, self.next_id(p), item["text"], when, media))
        return native, queued


def load_scenario(name_or_path: str | Path, t0: datetime, *, pace: float = 1.0) -> Scenario:
    """The scenario with its storm starting at `t0`; `pace` > 1 plays everything from `t0` on
    that many times faster (the same mentions, closer together)."""
    if pace <= 0:
        raise ConfigError(f"scenario pace must be positive, not {pace}")
    path = scenario_path(name_or_path)
    try:
        spec = yaml.safe_load(path.read_text(encoding="utf-8"))
        b = _Builder(spec, t0, pace)
        posts = b.brand_posts()
        mentions = b.chatter() + b.storm()
        native, queued = b.scheduled()
    except (KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise ConfigError(f"scenario {path}: {exc.__class__.__name__}: {exc}") from exc
    mentions.sort(key=lambda m: m.created_at)
    return Scenario(
        name=spec.get("name", path.stem), description=spec.get("description", ""), t0=t0,
        mentions=mentions, brand_posts=posts, scheduled=native, own_queue=queued,
        expect=dict(spec.get("expect", {})),
        starts_at=mentions[0].created_at if mentions else t0,
        ends_at=mentions[-1].created_at if mentions else t0,
    )
