"""The crisis plan: one YAML file, validated by this schema, documented in docs/PLAYBOOK.md.

Unknown keys are errors (a typo in a playbook must not silently disable a rule). A bad file
raises PlaybookError naming the file, the field and what is wrong.
"""

from __future__ import annotations

from datetime import datetime
from itertools import permutations
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from firebreak.domain import Platform
from firebreak.errors import PlaybookError

Severity = Annotated[int, Field(ge=1, le=4)]
Role = str
LANGS = ("en", "nl", "sv", "fr", "pl", "id", "de", "es", "it", "pt")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Spokesperson(_Model):
    name: str
    title: str


class Account(_Model):
    handle: str
    id: str = ""


class Brand(_Model):
    id: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    name: str
    keywords: list[str] = Field(min_length=1, description="search terms that find mentions")
    languages: list[str] = Field(min_length=1)
    default_language: str = "en"
    website: str = ""
    crisis_page_url: str = ""
    contact: str
    spokesperson: Spokesperson
    accounts: dict[Platform, Account]

    @model_validator(mode="after")
    def _default_language_listed(self) -> "Brand":
        if self.default_language not in self.languages:
            raise ValueError(f"default_language {self.default_language!r} is not in languages")
        return self


class QuietWindow(_Model):
    start: datetime
    end: datetime
    reason: str
    platforms: list[Platform] = Field(default_factory=list, description="empty: all platforms")

    @model_validator(mode="after")
    def _ordered(self) -> "QuietWindow":
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class Detection(_Model):
    bucket_minutes: int = Field(5, ge=1, le=60)
    seasonal: bool = True
    history_days: int = Field(14, ge=1, le=90)
    volume_threshold: float = Field(4.5, gt=0, description="robust z-score of volume over baseline")
    min_volume: int = Field(15, ge=1, description="mentions per bucket before volume can alert")
    negative_share_threshold: float = Field(0.4, ge=0, le=1)
    min_negative: int = Field(8, ge=1)
    reach_followers: int = Field(
        50_000, ge=1, description="followers of a bucket's negative mentions' authors, summed, that count as high "
        "reach: with a milder rise in volume it alerts (and must also be 10 times the past day's usual)")
    spread_min_platforms: int = Field(2, ge=1, le=6)
    cooldown_minutes: int = Field(120, ge=0)
    quiet_windows: list[QuietWindow] = Field(default_factory=list)


def _check_languages(by_lang: dict[str, list[str]]) -> None:
    unknown = sorted(set(by_lang) - set(LANGS))
    if unknown:
        raise ValueError(f"unknown language code(s) {unknown}; known: {list(LANGS)}")


class CrisisType(_Model):
    # Also names the type's own detection series, "topic:<id>", stored in 64 characters.
    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=58)
    name: str
    origin: Literal["internal", "external"]
    apology: bool = Field(description="the brand is at fault: statements apologise")
    default_severity: Severity = 3
    keywords: dict[str, list[str]] = Field(description="language -> terms that point to this type")
    lockdown: bool = Field(False, description="account compromise: stop all non-crisis publishing")

    @field_validator("keywords")
    @classmethod
    def _known_languages(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        _check_languages(v)
        if not any(v.values()):
            raise ValueError("at least one keyword is required")
        return v


class SeverityCondition(_Model):
    types: list[str] = Field(default_factory=list, description="any of these crisis types")
    min_volume_ratio: float = Field(0, ge=0, description="peak volume / baseline")
    min_negative_share: float = Field(0, ge=0, le=1)
    min_platforms: int = Field(0, ge=0, le=6)
    min_reach: int = Field(0, ge=0, description="summed followers of authors in the storm")


class SeverityRule(_Model):
    severity: Severity
    when: SeverityCondition


class SeverityPolicy(_Model):
    rules: list[SeverityRule] = Field(description="first matching rule wins")
    default: Severity = 3


class Person(_Model):
    id: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    name: str
    roles: list[Role] = Field(default_factory=list)
    channels: dict[Literal["email", "slack", "sms", "teams", "pagerduty", "webhook"], str]


class EscalationLevel(_Model):
    targets: list[str] = Field(min_length=1, description="person ids or group names")
    channels: list[Literal["email", "slack", "sms", "teams", "pagerduty", "webhook"]] = Field(min_length=1)
    ack_timeout_minutes: float = Field(gt=0)


class EscalationPolicy(_Model):
    levels: list[EscalationLevel] = Field(min_length=1)
    repeat: int = Field(1, ge=0, description="times to walk the levels again when nobody acknowledges")


class SeverityEscalation(_Model):
    policy: str
    start_level: int = Field(1, ge=1)


class Briefing(_Model):
    channel: Literal["email", "slack", "webhook"] = "email"
    targets: list[str] = Field(min_length=1)


class Escalation(_Model):
    policies: dict[str, EscalationPolicy]
    by_severity: dict[Severity, SeverityEscalation]
    staff_briefing: Briefing


class Approval(_Model):
    required_roles: dict[Severity, list[Role]] = Field(description="roles that must each sign, per severity")
    allow_revisions: bool = Field(True, description="a reviewer may reject with suggested text; they become its "
                                  "author and may not sign it, so every required role needs another holder")
    expiry_minutes: int = Field(60, ge=1)
    pause_timeout_minutes: int = Field(240, ge=1, description="how long a run waits for sign-off")
    remind_every_minutes: float = Field(10, gt=0, description="remind approvers who have not answered this often")


class FollowUp(_Model):
    cadence_minutes: dict[Severity, float]
    tighten_factor: float = Field(0.5, gt=0, le=1, description="multiplies the cadence while volume stays high")
    tighten_above_ratio: float = Field(3.0, gt=1)
    relax_factor: float = Field(2.0, ge=1)
    relax_below_ratio: float = Field(1.5, ge=1)
    max_updates: int = Field(12, ge=0)


class Freeze(_Model):
    platforms: list[Platform] = Field(default_factory=lambda: list(Platform))
    include_own_queue: bool = True
    due_within_seconds: int = Field(60, ge=0, description="posts due this soon are caught too")
    overdue_rule: Literal["publish_now", "reschedule_by_freeze", "drop", "reapprove"] = "reschedule_by_freeze"
    recheck_terms: bool = True


class Resolve(_Model):
    baseline_minutes: int = Field(60, ge=1, description="signal at baseline this long: propose all-clear")
    closing_statement: bool = True
    heightened_alert_hours: int = Field(48, ge=0)


DEFAULT_REPLIES: dict[str, dict[str, str]] = {
    # Pre-approved: used without a new sign-off. {page} and {contact} come from the brand.
    "private": {
        "en": "We're sorry to hear this. Please send us a direct message with your details so we can help you personally. Updates: {page}",
        "nl": "Wat vervelend om te horen. Stuur ons een privébericht met je gegevens, dan helpen we je persoonlijk. Updates: {page}",
        "sv": "Vi beklagar att höra detta. Skicka ett direktmeddelande med dina uppgifter så hjälper vi dig personligen. Uppdateringar: {page}",
        "fr": "Nous sommes désolés. Envoyez-nous un message privé avec vos coordonnées pour que nous puissions vous aider. Infos : {page}",
        "pl": "Przykro nam to słyszeć. Napisz do nas wiadomość prywatną ze szczegółami, pomożemy osobiście. Aktualizacje: {page}",
        "id": "Kami mohon maaf. Silakan kirim pesan langsung berisi detail Anda agar kami dapat membantu. Info terbaru: {page}",
        "de": "Das tut uns leid. Bitte schreib uns eine Direktnachricht mit deinen Angaben, damit wir persönlich helfen können. Updates: {page}",
    },
    "answer": {
        "en": "Thank you for asking. Our latest statement and answers to common questions are here: {page}",
        "nl": "Bedankt voor je vraag. Onze laatste verklaring en antwoorden op veelgestelde vragen staan hier: {page}",
        "sv": "Tack för din fråga. Vårt senaste uttalande och svar på vanliga frågor finns här: {page}",
        "fr": "Merci pour votre question. Notre dernière déclaration et les réponses aux questions fréquentes sont ici : {page}",
        "pl": "Dziękujemy za pytanie. Nasze najnowsze oświadczenie i odpowiedzi na częste pytania są tutaj: {page}",
        "id": "Terima kasih atas pertanyaannya. Pernyataan terbaru dan jawaban atas pertanyaan umum ada di sini: {page}",
        "de": "Danke für deine Frage. Unsere aktuelle Stellungnahme und Antworten auf häufige Fragen findest du hier: {page}",
    },
}


class Engagement(_Model):
    hide_offensive: bool = True
    hide_threshold: float = Field(0.8, ge=0.5, le=1, description="offensive score needed before anything is hidden")
    offensive_terms: dict[str, list[str]] = Field(
        default_factory=dict,
        description="language -> insults and slurs that make a mention offensive whatever the model says")
    reply_templates: dict[Literal["private", "answer"], dict[str, str]] = Field(
        default_factory=lambda: {k: dict(v) for k, v in DEFAULT_REPLIES.items()},
        description="pre-approved replies per kind and language")

    @field_validator("offensive_terms")
    @classmethod
    def _term_languages(cls, v: dict[str, list[str]]) -> dict[str, list[str]]:
        _check_languages(v)
        blank = sorted(lang for lang, terms in v.items() if any(not t.strip() for t in terms))
        if blank:
            raise ValueError(f"blank term in {blank}: a blank term would match nothing, or everything")
        return v

    @field_validator("reply_templates")
    @classmethod
    def _default_language_present(cls, v: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for kind in ("private", "answer"):
            if not v.get(kind, {}).get("en"):
                raise ValueError(f"reply_templates.{kind} needs at least an 'en' text")
        return v


class AccountSecurity(_Model):
    rotate_credentials: list[str] = Field(
        default_factory=list, description="credentials to rotate when a crisis type orders a lockdown")


class DrillConfig(_Model):
    approvers: list[str] = Field(min_length=1, description="person ids who sign drafts in a drill")
    acknowledge_level: int = Field(2, ge=1, description="the drill acknowledges at this level")
    time_compression: float = Field(600, gt=0, description="drill-minutes per wall-clock minute")


class IntakeFields(_Model):
    """Where a monitoring tool's payload keeps each alert field: dot paths, list items by index
    (`results.0.url`). Only `source_id` is required: without an id, duplicates cannot be told apart."""

    source_id: str = Field(min_length=1, description="path to the tool's own id for this alert")
    brand: str | None = Field(None, description="path to the brand or query name; absent: the playbook's brand")
    topic: str | None = None
    volume: str | None = None
    sentiment: str | None = None
    link: str | None = None
    text: str | None = Field(None, description="path to a summary or the triggering mention's text")
    severity: str | None = Field(None, description="path to the tool's severity (1-4, or critical/high/medium/low)")


MISSING: Any = object()


def resolve_path(doc: Any, path: str) -> Any:
    """The value at a dot path (`a.b.0.c`: a number indexes a list), or MISSING."""
    cur = doc
    for part in path.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return MISSING
    return cur


class IntakeSource(_Model):
    auth: Literal["bearer", "hmac"] = "bearer"
    signature_header: str = Field("X-Firebreak-Signature",
                                  description="header carrying the HMAC-SHA256 of the body (hex, optional sha256= prefix)")
    fields: IntakeFields
    example: dict[str, Any] | None = Field(None, description="a sample payload; its source_id path must resolve")

    @model_validator(mode="after")
    def _example_maps(self) -> "IntakeSource":
        # Catch a mistyped path when the playbook loads, not when the first real alert arrives.
        if self.example is not None and resolve_path(self.example, self.fields.source_id) is MISSING:
            raise ValueError(f"fields.source_id: path {self.fields.source_id!r} is not in the example payload")
        return self


class Intake(_Model):
    """The alert intake (`POST /alerts`): per-source payload mappings. Secrets live in settings."""

    max_body_bytes: int = Field(262_144, ge=1024, le=16 * 1024 * 1024)
    generic_auth: list[Literal["bearer", "hmac"]] = Field(
        default_factory=lambda: ["bearer", "hmac"], min_length=1,
        description="auth accepted for the generic alert shape (no ?source=)")
    sources: dict[Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]*$", max_length=64)], IntakeSource] = Field(
        default_factory=dict)

    @field_validator("sources")
    @classmethod
    def _generic_reserved(cls, v: dict[str, IntakeSource]) -> dict[str, IntakeSource]:
        if "generic" in v:
            raise ValueError("'generic' is the built-in alert shape; pick another source name")
        return v


class Playbook(_Model):
    version: Literal[1] = 1
    brand: Brand
    publish_order: list[Platform]
    detection: Detection = Field(default_factory=Detection)
    crisis_types: list[CrisisType] = Field(min_length=1)
    severity: SeverityPolicy
    people: list[Person] = Field(min_length=1)
    groups: dict[str, list[str]] = Field(default_factory=dict)
    escalation: Escalation
    approval: Approval
    follow_up: FollowUp
    freeze: Freeze = Field(default_factory=Freeze)
    resolve: Resolve = Field(default_factory=Resolve)
    engagement: Engagement = Field(default_factory=Engagement)
    banned_phrases: list[str] = Field(default_factory=list)
    account_security: AccountSecurity = Field(default_factory=AccountSecurity)
    drill: DrillConfig
    intake: Intake = Field(default_factory=Intake)

    @model_validator(mode="after")
    def _references(self) -> "Playbook":
        people = {p.id for p in self.people}
        roles = {r for p in self.people for r in p.roles}
        for g, members in self.groups.items():
            missing = sorted(set(members) - people)
            if missing:
                raise ValueError(f"groups.{g}: unknown person id(s) {missing}")
        targets = people | set(self.groups)
        for name, pol in self.escalation.policies.items():
            for i, lvl in enumerate(pol.levels):
                missing = sorted(set(lvl.targets) - targets)
                if missing:
                    raise ValueError(f"escalation.policies.{name}.levels.{i}.targets: unknown {missing}")
        for sev in range(1, 5):
            esc = self.escalation.by_severity.get(sev)
            if esc is None:
                raise ValueError(f"escalation.by_severity: no entry for severity {sev}")
            pol = self.escalation.policies.get(esc.policy)
            if pol is None:
                raise ValueError(f"escalation.by_severity.{sev}.policy: unknown policy {esc.policy!r}")
            if esc.start_level > len(pol.levels):
                raise ValueError(f"escalation.by_severity.{sev}.start_level: policy has {len(pol.levels)} levels")
            req = self.approval.required_roles.get(sev)
            if not req:
                raise ValueError(f"approval.required_roles: no roles for severity {sev}")
            unknown = sorted(set(req) - roles)
            if unknown:
                raise ValueError(f"approval.required_roles.{sev}: nobody holds role(s) {unknown}")
            self._signable(sev, list(req))
            if sev not in self.follow_up.cadence_minutes:
                raise ValueError(f"follow_up.cadence_minutes: no cadence for severity {sev}")
        if sorted(set(self.publish_order)) != sorted(set(self.brand.accounts)):
            raise ValueError("publish_order must list exactly the platforms in brand.accounts")
        types = {t.id for t in self.crisis_types}
        if len(types) != len(self.crisis_types):
            raise ValueError("crisis_types: duplicate id")
        for i, rule in enumerate(self.severity.rules):
            unknown = sorted(set(rule.when.types) - types)
            if unknown:
                raise ValueError(f"severity.rules.{i}.when.types: unknown crisis type(s) {unknown}")
        missing = sorted(set(self.drill.approvers) - people)
        if missing:
            raise ValueError(f"drill.approvers: unknown person id(s) {missing}")
        return self

    def _signable(self, sev: int, req: list[str]) -> None:
        """Distinct people can fill every required role, also when the draft's author is one of
        them (a reviewer who rejected with suggested text wrote it and may not sign it)."""
        holders = {p.id: set(p.roles) for p in self.people}
        if len(assign_roles(req, holders)) < len(req):
            raise ValueError(f"approval.required_roles.{sev}: {req} need {len(req)} different people; "
                             "one person cannot fill two roles")
        if not self.approval.allow_revisions:
            return
        for author in [p for p in self.people if set(p.roles) & set(req)]:
            rest = {pid: roles for pid, roles in holders.items() if pid != author.id}
            filled = assign_roles(req, rest)
            if len(filled) < len(req):
                missing = [r for r in req if r not in filled]
                raise ValueError(
                    f"approval.required_roles.{sev}: when {author.id} rejects a draft with suggested text, they "
                    f"become its author and may not sign it, and nobody else can fill {missing}: give each "
                    "required role a second person, or set approval.allow_revisions: false")

    # Convenience look-ups used by the stages.
    def person(self, pid: str) -> Person:
        for p in self.people:
            if p.id == pid:
                return p
        raise KeyError(pid)

    def crisis_type(self, tid: str) -> CrisisType:
        for t in self.crisis_types:
            if t.id == tid:
                return t
        raise KeyError(tid)

    def expand_targets(self, targets: list[str]) -> list[Person]:
        out: list[Person] = []
        for t in targets:
            for pid in self.groups.get(t, [t]):
                p = self.person(pid)
                if p not in out:
                    out.append(p)
        return out

    def publishing_order(self, origin: Platform | None) -> list[Platform]:
        order = list(self.publish_order)
        if origin in order:
            order.remove(origin)
            order.insert(0, origin)
        return order


def assign_roles(required: list[str], holders: dict[str, set[str]]) -> dict[str, str]:
    """The largest assignment of distinct people to required roles (role -> person id), from
    who holds which role. Small sets: brute force over permutations is exact and cheap."""
    people = list(holders)
    for k in range(min(len(people), len(required)), 0, -1):
        for chosen in permutations(people, k):
            for roles in permutations(required, k):
                if all(r in holders[p] for p, r in zip(chosen, roles)):
                    return dict(zip(roles, chosen))
    return {}


def _loc(loc: tuple) -> str:
    return ".".join(str(p) for p in loc) or "(top level)"


def load_playbook(path: str | Path) -> Playbook:
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlaybookError(str(path), [("(file)", "not found")]) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "(file)"
        raise PlaybookError(str(path), [(where, f"not valid YAML: {getattr(exc, 'problem', exc)}")]) from None
    if not isinstance(raw, dict):
        raise PlaybookError(str(path), [("(top level)", "must be a mapping of fields")])
    try:
        return Playbook.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            msg = err["msg"].removeprefix("Value error, ")
            problems.append((_loc(err["loc"]), msg))
        raise PlaybookError(str(path), problems) from None
