"""Drafting statements (holding, update, final) from Jinja2 templates.

One template per language in ``config/templates/statements/{lang}.j2``. Each holds a
per-crisis-type sentence table, so a translator sees a whole language in one file and a
new crisis type without an entry falls back to neutral wording instead of failing.
The template picks a ``short`` form (X, Bluesky, Mastodon) or a ``long`` form (LinkedIn,
Facebook, Instagram); this module lays the text out, splits it into numbered thread parts
where a platform needs it, and checks the result before anyone is asked to approve it.

Layout rule the templates rely on (keeps their source readable): the short form becomes
one paragraph; in the long form paragraphs are separated by a blank line; lines inside a paragraph are joined with one space, except a line that
starts with ``- `` (bullet) or ``— `` (signature), which keeps its own line.

Rendering is a pure function of (playbook, kind, facts, language, platforms): approvals
bind to the SHA-256 of the exact text, so the same facts must give the same bytes.
"""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Literal, get_args

import grapheme
import jinja2

import firebreak.config as _config_pkg
from firebreak.config.logging import get_logger
from firebreak.config.playbook import Playbook
from firebreak.connectors.llm import TextProvider
from firebreak.domain import Platform
from firebreak.errors import ConfigError, ConnectorError, PolicyViolation
from firebreak.store.models import Incident

__all__ = [
    "Kind",
    "Proposal",
    "StatementFacts",
    "check_statement",
    "draft_statement",
    "propose_statement",
    "revise_variants",
    "platform_limit",
    "split_thread",
    "template_languages",
    "text_length",
]

Kind = Literal["holding", "update", "final"]
Form = Literal["short", "long"]

log = get_logger("firebreak.tasks.draft")

TEMPLATE_DIR = Path(_config_pkg.__file__).resolve().parent / "templates" / "statements"

# (limit, counts graphemes). X counts weighted code points (see _x_length), Bluesky
# graphemes (app.bsky.feed.post: maxGraphemes 300), the others code points.
_LIMITS: dict[Platform, tuple[int, bool]] = {
    Platform.X: (280, False),
    Platform.BLUESKY: (300, True),
    Platform.MASTODON: (500, False),
    Platform.LINKEDIN: (3000, False),
    Platform.FACEBOOK: (63206, False),
    Platform.INSTAGRAM: (2200, False),
}
# Bluesky also caps the UTF-8 size of a post (lexicon maxLength 3000 bytes).
_BLUESKY_MAX_BYTES = 3000
SHORT_FORM: frozenset[Platform] = frozenset({Platform.X, Platform.BLUESKY, Platform.MASTODON})
# Platforms where a reply chain reads as a thread; elsewhere an overlong text is an error.
THREADED: frozenset[Platform] = SHORT_FORM


@dataclass(frozen=True)
class StatementFacts:
    crisis_type: str  # playbook crisis type id
    severity: int  # 1 worst .. 4
    topic: str = ""  # from the storm's dominant terms, e.g. "camping stove burns"
    origin_platform: str = ""
    known: tuple[str, ...] = ()  # confirmed facts: the only things a statement may assert
    actions: tuple[str, ...] = ()  # what the brand is doing
    update_number: int = 0  # for kind="update"
    next_update_minutes: int | None = None
    resolved_summary: str = ""  # for kind="final"


def facts_for(playbook: Playbook, incident: Incident, *, update_number: int = 0,
              next_update_minutes: int | None = None) -> StatementFacts:
    """What a statement about ``incident`` may say, as classification recorded it. The closing
    of a final statement is the template's own sentence, in the statement's language."""
    return StatementFacts(crisis_type=incident.type or playbook.crisis_types[0].id, severity=incident.severity or 3,
                          topic=incident.summary.topic, origin_platform=incident.origin_platform or "",
                          update_number=update_number, next_update_minutes=next_update_minutes)


# --------------------------------------------------------------------------- lengths


def platform_limit(platform: Platform) -> tuple[int, bool]:
    """(limit, counts_graphemes) for one post on ``platform``."""
    return _LIMITS[Platform(platform)]


def _x_weight(ch: str) -> int:
    # twitter-text v3: these ranges (Latin, Cyrillic, general punctuation...) weigh 1,
    # everything else (CJK, emoji, "…") weighs 2 against the 280 budget.
    cp = ord(ch)
    if cp <= 4351 or 8192 <= cp <= 8205 or 8208 <= cp <= 8223 or 8242 <= cp <= 8247:
        return 1
    return 2


def _x_length(text: str) -> int:
    # t.co shortens every URL to 23, but we count URLs at full length on purpose: the
    # result is never below len(text), so a part that fits here fits any X counter.
    return sum(_x_weight(ch) for ch in unicodedata.normalize("NFC", text))


def text_length(text: str, platform: Platform) -> int:
    """Length of ``text`` as ``platform`` counts it against its limit."""
    platform = Platform(platform)
    if platform is Platform.X:
        return _x_length(text)
    if _LIMITS[platform][1]:
        return int(grapheme.length(text))
    return len(text)


# --------------------------------------------------------------------------- threads

# A sentence ends at . ! ? … (optionally followed by a closing quote or bracket) and
# whitespace; a line break is always a boundary.
_SENTENCE_END = re.compile(r"(?:(?<=[.!?…])|(?<=[.!?…][\"'”’»)]))[ \t]+|[ \t]*\n+[ \t]*")


def _segments(text: str) -> list[tuple[str, str]]:
    """(sentence, separator that followed it) pairs, so a part can be rejoined as written."""
    out: list[tuple[str, str]] = []
    pos = 0
    for m in _SENTENCE_END.finditer(text):
        if m.start() > pos:
            out.append((text[pos : m.start()], "\n" if "\n" in m.group() else " "))
        pos = m.end()
    if pos < len(text):
        out.append((text[pos:], ""))
    return out


def _hard_pieces(sentence: str, budget: int, platform: Platform) -> list[str]:
    """Break one sentence that does not fit: at spaces, and inside a word only if one word
    alone is too long (a long URL)."""
    pieces: list[str] = []
    cur = ""
    for word in sentence.split(" "):
        cand = f"{cur} {word}" if cur else word
        if text_length(cand, platform) <= budget:
            cur = cand
            continue
        if cur:
            pieces.append(cur)
        cur = ""
        while text_length(word, platform) > budget:
            clusters = list(grapheme.graphemes(word))
            n = 0
            while text_length("".join(clusters[: n + 1]), platform) <= budget:
                n += 1
            n = max(n, 1)  # always make progress, even if one cluster exceeds a tiny budget
            pieces.append("".join(clusters[:n]))
            word = "".join(clusters[n:])
        cur = word
    if cur:
        pieces.append(cur)
    return pieces


def _pack(text: str, budget: int, platform: Platform) -> list[str]:
    parts: list[str] = []
    cur = ""
    sep = ""
    for sentence, next_sep in _segments(text):
        cand = f"{cur}{sep}{sentence}" if cur else sentence
        if text_length(cand, platform) <= budget:
            cur, sep = cand, next_sep
            continue
        if cur:
            parts.append(cur.strip())
        if text_length(sentence, platform) <= budget:
            cur = sentence
        else:
            *full, cur = _hard_pieces(sentence, budget, platform)
            parts.extend(full)
        sep = next_sep
    if cur.strip():
        parts.append(cur.strip())
    return parts


def _balance(text: str, parts: list[str], budget: int, platform: Platform) -> list[str]:
    """Greedy packing leaves a stub last part ("Updates: <url> (2/2)"); the smallest budget
    that still gives the same number of parts spreads the sentences evenly instead."""
    n = len(parts)
    # n parts of at most b each hold at most n*b + (n-1) separators: a lower bound for b.
    lo, hi = max(1, (text_length(text, platform) - (n - 1)) // n), budget
    while lo < hi:
        mid = (lo + hi) // 2
        if len(_pack(text, mid, platform)) <= n:
            hi = mid
        else:
            lo = mid + 1
    even = _pack(text, lo, platform)
    return even if len(even) == n else parts


def split_thread(text: str, platform: Platform) -> list[str]:
    """One part when ``text`` fits; otherwise parts split at sentence boundaries, each
    ending in " (i/n)", the numbering counted within the platform's limit."""
    platform = Platform(platform)
    limit, _ = platform_limit(platform)
    if text_length(text, platform) <= limit:
        return [text]
    # Reserve room for the widest suffix; widen if the part count gains a digit.
    for width in range(1, 4):
        reserve = len(" (/)") + 2 * width
        parts = _pack(text, limit - reserve, platform)
        if len(parts) < 10**width:
            parts = _balance(text, parts, limit - reserve, platform)
            n = len(parts)
            return [f"{p} ({i}/{n})" for i, p in enumerate(parts, 1)]
    raise PolicyViolation(f"{platform.value}: statement would need 1,000 or more thread parts")


# --------------------------------------------------------------------------- rendering


def _sentence(text: str) -> str:
    """A fact or action as a sentence: whitespace collapsed, capitalised, terminated."""
    s = " ".join(text.split())
    if not s:
        return ""
    s = s[0].upper() + s[1:]
    return s if s[-1] in ".!?…" else s + "."


def _layout(raw: str) -> str:
    """Apply the layout rule described in the module docstring."""
    paragraphs: list[str] = []
    for block in re.split(r"\n[ \t]*\n", raw):
        lines: list[str] = []
        for line in (ln.strip() for ln in block.splitlines()):
            if not line:
                continue
            if lines and not line.startswith(("- ", "— ")):
                lines[-1] = f"{lines[-1]} {line}"
            else:
                lines.append(line)
        if lines:
            paragraphs.append("\n".join(re.sub(r"[ \t]{2,}", " ", ln) for ln in lines))
    return "\n\n".join(paragraphs)


@lru_cache(maxsize=1)
def _env() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATE_DIR),
        undefined=jinja2.StrictUndefined,
        autoescape=False,  # plain text for social platforms, not HTML
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
    )
    env.filters["sentence"] = _sentence
    return env


def template_languages() -> tuple[str, ...]:
    """Languages that have a statement template."""
    return tuple(sorted(p.stem for p in TEMPLATE_DIR.glob("*.j2") if not p.stem.startswith("_")))


def _language(playbook: Playbook, language: str | None) -> str:
    lang = (language or playbook.brand.default_language).replace("_", "-").split("-")[0].lower()
    if lang not in template_languages():
        raise ConfigError(f"no statement template for language {lang!r}; available: {list(template_languages())}")
    return lang


def _render(playbook: Playbook, kind: Kind, form: Form, facts: StatementFacts, lang: str) -> str:
    try:
        ctype = playbook.crisis_type(facts.crisis_type)
    except KeyError:
        raise ConfigError(f"unknown crisis type {facts.crisis_type!r}") from None
    brand = playbook.brand
    ctx: dict[str, Any] = {
        "kind": kind,
        "form": form,
        "type_id": ctype.id,
        "apology": ctype.apology,
        "origin": ctype.origin,
        "lockdown": ctype.lockdown,
        "severity": facts.severity,
        "topic": " ".join(facts.topic.split()),
        "origin_platform": facts.origin_platform,
        "known": [s for s in map(_sentence, facts.known) if s],
        "actions": [s for s in map(_sentence, facts.actions) if s],
        "update_number": facts.update_number,
        "next_update_minutes": facts.next_update_minutes,
        "resolved_summary": _sentence(facts.resolved_summary),
        "brand_name": brand.name,
        "contact": brand.contact,
        "crisis_page_url": brand.crisis_page_url or brand.website,
        "spokesperson_name": brand.spokesperson.name,
        "spokesperson_title": brand.spokesperson.title,
    }
    try:
        raw = _env().get_template(f"{lang}.j2").render(ctx)
    except jinja2.TemplateError as exc:
        raise ConfigError(f"statement template {lang}.j2: {exc}") from exc
    # The short form is one paragraph: line breaks cost characters and break thread packing.
    return " ".join(raw.split()) if form == "short" else _layout(raw)


def _validate(kind: str, facts: StatementFacts) -> None:
    if kind not in get_args(Kind):
        raise ConfigError(f"unknown statement kind {kind!r}; expected one of {list(get_args(Kind))}")
    if not 1 <= facts.severity <= 4:
        raise ConfigError(f"severity must be 1..4, got {facts.severity}")
    if facts.update_number < 0:
        raise ConfigError("update_number must not be negative")
    if facts.next_update_minutes is not None and facts.next_update_minutes <= 0:
        raise ConfigError("next_update_minutes must be positive")


def draft_statement(
    playbook: Playbook,
    kind: Kind,
    facts: StatementFacts,
    *,
    language: str | None = None,
    platforms: Sequence[Platform] | None = None,
) -> dict[str, list[str]]:
    """Platform value -> thread parts (one element unless the text must be a thread).

    Raises PolicyViolation when the rendered text fails ``check_statement`` (e.g. a fact or
    action carries a banned phrase or an unconfirmed promise), ConfigError for an unknown
    crisis type, kind or language.
    """
    _validate(kind, facts)
    lang = _language(playbook, language)
    targets = [Platform(p) for p in (platforms if platforms is not None else playbook.publish_order)]
    texts: dict[Form, str] = {}
    variants: dict[str, list[str]] = {}
    for platform in targets:
        form: Form = "short" if platform in SHORT_FORM else "long"
        if form not in texts:
            texts[form] = _render(playbook, kind, form, facts, lang)
        text = texts[form]
        variants[platform.value] = split_thread(text, platform) if platform in THREADED else [text]
    problems = check_statement(playbook, variants, known=facts.known + (facts.resolved_summary,))
    if problems:
        raise PolicyViolation(f"drafted {kind} statement ({lang}) fails checks: " + "; ".join(problems))
    return variants


# --------------------------------------------------------------------------- checks

# Promises a crisis statement must not make unless the fact is confirmed (then it is in
# `known`, and the matched words appear there). Patterns cover every template language,
# since a statement may quote facts in another language. The templates' own "next update"
# sentence uses the plain "in N minutes" form on purpose, which none of these match.
_DURATION = (
    r"\d+\s*(?:min(?:ute)?s?|minuten|minuter|minuti|minutos?|minut|menit|h|hrs?|hours?|uur|uren|timm(?:e|ar)"
    r"|heures?|godzin[ya]?|jam|stunden?|horas?|or[ae]|days?|dagen|dag|dagar|jours?|dni|dnia|hari|tage?n?|d[ií]as?"
    r"|giorni|dias?|weeks?|weken|veckor|semaines?|tygodni|minggu|wochen?|semanas?|settimane?)\b"
)
_PROMISES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (label, re.compile(rx, re.IGNORECASE))
    for label, rx in (
        ("guarantee", r"\bguarant\w*|\bgaran(?:tie|der|deer|ter|tis|ti[mr])\w*|\bgwarant\w*|\bjamin\w*|\bmenjamin\w*"),
        ("guarantee", r"\bgarant(?:iz|i[ae]|ir)\w*|\bgarantier\w*"),
        ("100%", r"\b100\s?%"),
        ("promise", r"\bwe promise\b|\bwij beloven\b|\bwe beloven\b|\bvi lovar\b|\bnous promettons\b|\bobiecujemy\b"
         r"|\bkami berjanji\b|\bwir versprechen\b|\bprometemos\b|\bpromettiamo\b"),
        ("timeline", r"\bwithin\s+(?:the\s+next\s+)?" + _DURATION),
        ("timeline", r"\b(?:binnen|inom|w\s+ciągu|w\s+przeciągu|dalam(?:\s+waktu)?|innerhalb(?:\s+von)?|binnen"
         r"|d'ici|sous|en\s+moins\s+de|en\s+un\s+plazo\s+de|en\s+menos\s+de|entro|no\s+prazo\s+de|em\s+até)\s+"
         + _DURATION),
        ("timeline", r"\bwill\s+be\s+(?:fully\s+)?(?:fixed|resolved|restored|repaired|solved|back)\s+"
         r"(?:by|before|within|tomorrow|today|tonight)\b"),
        ("timeline", r"\b(?:uiterlijk|senast|au\s+plus\s+tard|najpóźniej|paling\s+lambat|spätestens|a\s+más\s+tardar"
         r"|al\s+più\s+tardi|o\s+mais\s+tardar)\b"),
        ("absolute safety", r"\b(?:completely|totally|perfectly|entirely|100%)\s+safe\b|\bno\s+risk\b"
         r"|\bvolkomen\s+veilig\b|\bhelemaal\s+veilig\b|\bhelt\s+säker\w*|\btotalement\s+sûr\w*|\bsans\s+(?:aucun\s+)?risque\b"
         r"|\bcałkowicie\s+bezpieczn\w*|\bsepenuhnya\s+aman\b|\bvöllig\s+sicher\w*|\btotalmente\s+segur\w*"
         r"|\bcompletamente\s+sicur\w*"),
        ("never again", r"\bnever\s+(?:happen|occur)\s+again\b|\bnooit\s+meer\s+(?:gebeuren|voorkomen)\b"
         r"|\baldrig\s+(?:att\s+)?hända\s+igen\b|\bne\s+se\s+reproduira\s+(?:plus|jamais)\b|\bsię\s+nie\s+powtórzy\b"
         r"|\btidak\s+akan\s+terulang\b|\bnie\s+wieder\s+vorkommen\b|\bno\s+volverá\s+a\s+(?:pasar|ocurrir)\b"
         r"|\bnon\s+succederà\s+più\b|\bnunca\s+mais\s+(?:vai\s+)?acontecer\b"),
    )
)
# Jinja syntax, printf/format placeholders and our own "<topic>"-style slots: anything that
# shows a template did not render completely.
_THREAD_NUMBER = re.compile(r" \(\d+/\d+\)$")
_MARKER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}|%s\b|%\(\w+\)s|\{\w*\}|<(?:topic|brand|name|url|date|time)>|\bUndefined\b")


def check_statement(
    playbook: Playbook, variants: dict[str, list[str]], *, known: Sequence[str] = ()
) -> list[str]:
    """Problems with drafted ``variants`` (platform value -> thread parts); empty when fine.

    ``known`` are the confirmed facts: a promise-like phrase (guarantee, deadline, "100%")
    is accepted only when the same words appear in one of them.
    """
    problems: list[str] = []
    known_lower = [" ".join(k.split()).lower() for k in known]
    banned = [b.lower() for b in playbook.banned_phrases if b.strip()]
    for key in sorted(variants):
        parts = variants[key]
        try:
            platform = Platform(key)
        except ValueError:
            problems.append(f"{key}: unknown platform")
            continue
        if not parts:
            problems.append(f"{key}: no text")
            continue
        limit, graphemes = platform_limit(platform)
        unit = "graphemes" if graphemes else "characters"
        for i, part in enumerate(parts, 1):
            where = key if len(parts) == 1 else f"{key} part {i}/{len(parts)}"
            if not part.strip():
                problems.append(f"{where}: empty")
                continue
            n = text_length(part, platform)
            if n > limit:
                problems.append(f"{where}: {n} {unit}, limit {limit}")
            if platform is Platform.BLUESKY and len(part.encode("utf-8")) > _BLUESKY_MAX_BYTES:
                problems.append(f"{where}: over {_BLUESKY_MAX_BYTES} bytes")
            marker = _MARKER.search(part)
            if marker:
                problems.append(f"{where}: unrendered template marker {marker.group()!r}")
        # Wording checks run on the whole text, so a phrase split across parts is still found.
        low = " ".join(_THREAD_NUMBER.sub("", p) for p in parts)
        low = " ".join(low.split()).lower()
        for phrase in banned:
            if " ".join(phrase.split()) in low:
                problems.append(f"{key}: banned phrase {phrase!r}")
        for label, rx in _PROMISES:
            for hit in rx.finditer(low):
                said = " ".join(hit.group().split())
                if not any(said in k for k in known_lower):
                    problems.append(f"{key}: unconfirmed promise ({label}) {hit.group()!r}")
    return problems


# --------------------------------------------------------------------------- LLM proposals

# Things a statement can assert that are easy to spot and dangerous to invent: numbers
# (counts, dates, times, amounts), links, e-mail addresses and handles. Each one in an LLM
# proposal must also appear in what we know (the facts, the template's own text, which
# carries the contact, the crisis page and the next-update time), or the proposal is out.
_CLAIM = re.compile(
    r"https?://[^\s<>\"')\]]+|www\.[^\s<>\"')\]]+|[\w.+-]+@[\w-]+(?:\.[\w-]+)+|(?<!\w)@[\w.]+|\d+(?:[.,:/-]\d+)*"
)
# Apology wording (English; other languages rely on the reviewers): a type that is not the
# brand's fault must not apologise (it reads as admitting fault), one that is must.
_APOLOGY = re.compile(r"\bapologi[sz]e\w*|\bapologies\b|\bwe(?:'re| are) (?:deeply |truly |very )?sorry\b", re.I)


@dataclass(frozen=True)
class Proposal:
    variants: dict[str, list[str]]
    source: Literal["llm", "template"]
    # Why the LLM text was not used (absent, timed out, failed checks…); empty when it was.
    fallback_reason: str = ""
    problems: tuple[str, ...] = field(default=())


def _facts_corpus(facts: StatementFacts, template_variants: dict[str, list[str]]) -> str:
    pieces = [facts.topic, facts.origin_platform, facts.resolved_summary, *facts.known, *facts.actions]
    if facts.update_number:
        pieces.append(str(facts.update_number))
    if facts.next_update_minutes is not None:
        pieces.append(str(facts.next_update_minutes))
    # Thread numbering ("(1/2)") is ours, not a fact the LLM may repeat.
    pieces.extend(_THREAD_NUMBER.sub("", part) for parts in template_variants.values() for part in parts)
    return " ".join(pieces).lower()


def _unsupported_claims(text: str, corpus: str) -> list[str]:
    out = []
    for m in _CLAIM.finditer(text):
        claim = m.group().rstrip(".,;:!?").lower()
        if claim and claim not in corpus and claim not in out:
            out.append(claim)
    return out


def _prompt(playbook: Playbook, kind: Kind, facts: StatementFacts, lang: str, platform: Platform,
            reference: str) -> tuple[str, str]:
    ctype = playbook.crisis_type(facts.crisis_type)
    brand = playbook.brand
    limit, graphemes = platform_limit(platform)
    unit = "graphemes" if graphemes else "characters"
    apology = ("The brand is at fault: apologise sincerely, once." if ctype.apology else
               "The brand is not at fault: express concern, do not apologise or admit fault.")
    system = (
        f"You write the {kind} statement of {brand.name} about a crisis on social media. "
        "Say only what is known: state nothing beyond the facts given, invent no numbers, dates, "
        "causes, names, links or commitments. Make no promises, guarantees or deadlines. "
        f"{apology} Sober, human, brief. Write in language '{lang}'. "
        f"Never use these phrases: {', '.join(repr(b) for b in playbook.banned_phrases)}. "
        f"Answer with the post text only: one post for {platform.value}, at most {limit} {unit}, "
        "no hashtags, no thread numbering, no quotes around it."
    )
    lines = [f"Crisis type: {ctype.name}", f"Severity (1 worst .. 4): {facts.severity}"]
    if facts.topic:
        lines.append(f"Topic: {facts.topic}")
    if facts.origin_platform:
        lines.append(f"Started on: {facts.origin_platform}")
    lines += [f"Known fact: {k}" for k in facts.known] + [f"What we are doing: {a}" for a in facts.actions]
    if kind == "update" and facts.update_number:
        lines.append(f"This is update number {facts.update_number}.")
    if facts.next_update_minutes:
        lines.append(f"Next update in {facts.next_update_minutes} minutes.")
    if facts.resolved_summary:
        lines.append(f"Resolution: {facts.resolved_summary}")
    lines.append(f"Contact: {brand.contact}; updates at {brand.crisis_page_url or brand.website}")
    lines.append(f"Spokesperson: {brand.spokesperson.name}, {brand.spokesperson.title}")
    lines.append(f"Our approved template version, for reference (you may improve its wording only):\n{reference}")
    return system, "\n".join(lines)


def _clean(text: str) -> str:
    text = text.strip()
    # Models like to wrap a post in quotes; strip one matching pair, nothing else.
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "\"'“”":
        text = text[1:-1].strip()
    return text


def propose_statement(
    playbook: Playbook,
    kind: Kind,
    facts: StatementFacts,
    llm: TextProvider | None = None,
    *,
    language: str | None = None,
    platforms: Sequence[Platform] | None = None,
    deadline_s: float = 20.0,
) -> Proposal:
    """Variants proposed by ``llm`` when it answers in time with text that passes every
    check; otherwise the template's (``draft_statement``). All or nothing: mixing LLM and
    template wording across platforms would make one statement read like two.

    Template output is rendered first, always: it is the fallback and the reference for
    what may be said. Raises what ``draft_statement`` raises (the template itself is bad).
    """
    template = draft_statement(playbook, kind, facts, language=language, platforms=platforms)
    if llm is None:
        return Proposal(template, "template", "no LLM provider configured")
    lang = _language(playbook, language)
    ctype = playbook.crisis_type(facts.crisis_type)
    corpus = _facts_corpus(facts, template)
    known = facts.known + (facts.resolved_summary,)
    started = time.monotonic()
    variants: dict[str, list[str]] = {}
    problems: list[str] = []
    for key, ref_parts in template.items():
        platform = Platform(key)
        if time.monotonic() - started > deadline_s:
            return _fallback(template, f"LLM too slow (over {deadline_s:.0f}s for all platforms)")
        system, user = _prompt(playbook, kind, facts, lang, platform, " ".join(_THREAD_NUMBER.sub("", p) for p in ref_parts))
        try:
            text = _clean(llm.complete(system, user))
        except ConnectorError as exc:
            # Timeouts, 5xx, refused credentials, malformed answers: all end in the template.
            return _fallback(template, f"LLM unavailable: {exc}")
        # One post per platform: a proposal that needs a thread is too long by definition.
        variants[key] = [text]
        problems += [f"{key}: states something not in the facts: {c!r}" for c in _unsupported_claims(text, corpus)]
        if lang == "en":
            said_sorry = bool(_APOLOGY.search(text))
            if said_sorry and not ctype.apology:
                problems.append(f"{key}: apologises although {ctype.id} is not the brand's fault")
            elif ctype.apology and not said_sorry:
                problems.append(f"{key}: no apology although {ctype.id} is the brand's fault")
    problems = check_statement(playbook, variants, known=known) + problems
    if problems:
        return _fallback(template, "LLM text failed checks: " + "; ".join(problems), tuple(problems))
    log.info(f"The {kind} statement uses the LLM's wording", model=getattr(llm, "model", ""))
    return Proposal(variants, "llm")


def _fallback(template: dict[str, list[str]], reason: str, problems: tuple[str, ...] = ()) -> Proposal:
    log.warning(f"The LLM's wording was not used, the template's is: {reason[:500]}")
    return Proposal(template, "template", reason, problems)


def revise_variants(text: str, platforms: Sequence[str]) -> dict[str, list[str]]:
    """Variants from one text a reviewer wrote: threaded platforms get it split into numbered
    parts within their limit, long-form platforms get it exactly as written."""
    text = text.replace("\r\n", "\n").strip()
    if not text:
        raise PolicyViolation("the suggested text is empty")
    out: dict[str, list[str]] = {}
    for key in platforms:
        platform = Platform(key)
        if platform in THREADED:
            # Short-form platforms read as one paragraph, as the templates' short form does.
            out[key] = split_thread(" ".join(text.split()), platform)
        else:
            out[key] = [text]
    return out
