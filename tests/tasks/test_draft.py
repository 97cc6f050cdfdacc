"""Statement drafting: every crisis type x language x kind x platform renders, fits and
passes the checks; apologies only where the playbook says so; nothing beyond the facts."""

from __future__ import annotations

import re

import pytest

from firebreak.config.playbook import Playbook
from firebreak.domain import Platform, variants_sha256
from firebreak.errors import ConfigError, PolicyViolation
from firebreak.tasks import draft as draft_mod
from firebreak.tasks.draft import (
    StatementFacts,
    check_statement,
    draft_statement,
    platform_limit,
    split_thread,
    template_languages,
    text_length,
)

REQUIRED_LANGS = ("en", "nl", "sv", "fr", "pl", "id")
LANGS = tuple(sorted(set(REQUIRED_LANGS) | set(template_languages())))
TYPES = ("offensive_post", "product_safety", "service_outage", "data_breach", "employee_misconduct", "external_disaster")
KINDS = ("holding", "update", "final")

# Words that make a sentence an apology, per language. Condolence words that double as
# apologies ("beklagar", "lamentamos", "bedauern") are in the lists on purpose: the
# templates must not use them for sympathy either.
APOLOGY = {
    "en": ("sorry", "apologi"),
    "nl": ("spijt", "excuses", "verontschuldig"),
    "sv": ("ursäkt", "beklagar"),
    "fr": ("excuse", "désolé", "pardon"),
    "pl": ("przeprasz", "przeprosin", "przykro"),
    "id": ("maaf",),
    "de": ("entschuldig", "tut uns leid", "leid tut", "bedauern"),
    "es": ("disculpa", "perdón", "lamentamos", "sentimos"),
    "it": ("scus", "dispiac"),
    "pt": ("desculpa", "lamentamos", "sentimos muito"),
}
# Phrases that would state a cause; a holding statement without known facts has none.
CAUSE = {
    "en": ("caused by", "because", "due to", "the cause is"),
    "nl": ("veroorzaakt door", "omdat", "de oorzaak is", "komt door"),
    "sv": ("orsakades av", "eftersom", "orsaken är", "beror på"),
    "fr": ("causé par", "parce que", "est due à", "la cause est"),
    "pl": ("spowodowane przez", "ponieważ", "przyczyną jest", "z powodu"),
    "id": ("disebabkan oleh", "karena", "penyebabnya adalah"),
    "de": ("verursacht durch", "weil", "die ursache ist", "aufgrund"),
    "es": ("causado por", "porque", "la causa es", "debido a"),
    "it": ("causato da", "perché", "la causa è", "dovuto a"),
    "pt": ("causado por", "porque", "a causa é", "devido a"),
}

FULL = StatementFacts(
    crisis_type="product_safety",
    severity=1,
    topic="camping stove burns",
    origin_platform="x",
    known=(
        "Reports concern the Fjell Trail 2 stove sold since March",
        "Three customers have reported minor burns",
        "No other products are affected according to our tests so far",
    ),
    actions=("We have stopped sales of the Trail 2 stove", "Our safety team is testing returned units"),
    update_number=3,
    next_update_minutes=30,
    resolved_summary="The faulty valve has been replaced in all stores",
)
BARE = StatementFacts(crisis_type="product_safety", severity=3)


def _facts(base: StatementFacts, crisis_type: str) -> StatementFacts:
    return StatementFacts(**{**base.__dict__, "crisis_type": crisis_type})


def _text(variants: dict[str, list[str]], platform: str) -> str:
    return " ".join(re.sub(r" \(\d+/\d+\)$", "", p) for p in variants[platform])


def _with_types(playbook: Playbook, **apology: bool) -> Playbook:
    types = [t.model_copy(update={"apology": apology.get(t.id, t.apology)}) for t in playbook.crisis_types]
    return playbook.model_copy(update={"crisis_types": types})


def test_required_languages_have_templates() -> None:
    assert set(REQUIRED_LANGS) <= set(template_languages())


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("ctype", TYPES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_combination_renders_fits_and_passes_checks(playbook: Playbook, lang: str, ctype: str, kind: str) -> None:
    for base in (FULL, BARE):
        facts = _facts(base, ctype)
        variants = draft_statement(playbook, kind, facts, language=lang, platforms=list(Platform))  # type: ignore[arg-type]
        assert set(variants) == {p.value for p in Platform}
        assert check_statement(playbook, variants, known=facts.known + (facts.resolved_summary,)) == []
        for key, parts in variants.items():
            platform = Platform(key)
            limit, _ = platform_limit(platform)
            assert parts and all(p.strip() for p in parts)
            assert all(text_length(p, platform) <= limit for p in parts), (key, parts)
            text = _text(variants, key)
            assert "{" not in text and "%s" not in text and "  " not in text
            if platform in draft_mod.SHORT_FORM:
                assert "\n" not in text
            else:
                assert len(parts) == 1
                # The long form carries the crisis page, press contact and signature.
                assert playbook.brand.crisis_page_url in text
                assert playbook.brand.contact in text
                assert playbook.brand.spokesperson.name in text
                assert playbook.brand.spokesperson.title in text
        # Same sentences in every form: the short form is contained in the long one.
        short = _text(variants, "x").split(". ")[0]
        assert short in variants["linkedin"][0].replace("\n", " ")


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("ctype", TYPES)
def test_apology_only_where_the_playbook_says(playbook: Playbook, lang: str, ctype: str) -> None:
    apologises = playbook.crisis_type(ctype).apology
    for kind in KINDS:
        variants = draft_statement(playbook, kind, _facts(BARE, ctype), language=lang)  # type: ignore[arg-type]
        for key in variants:
            text = _text(variants, key).lower()
            found = [w for w in APOLOGY[lang] if w in text]
            assert bool(found) == apologises, (lang, ctype, kind, key, found, text)


@pytest.mark.parametrize("lang", LANGS)
def test_apology_follows_the_flag_not_the_type(playbook: Playbook, lang: str) -> None:
    changed = _with_types(playbook, service_outage=False, external_disaster=True)
    out = draft_statement(changed, "holding", _facts(BARE, "service_outage"), language=lang)
    assert not any(w in _text(out, "x").lower() for w in APOLOGY[lang])
    out = draft_statement(changed, "holding", _facts(BARE, "external_disaster"), language=lang)
    assert any(w in _text(out, "x").lower() for w in APOLOGY[lang])


@pytest.mark.parametrize("lang", LANGS)
@pytest.mark.parametrize("ctype", TYPES)
def test_holding_says_only_what_is_known(playbook: Playbook, lang: str, ctype: str) -> None:
    bare = draft_statement(playbook, "holding", _facts(BARE, ctype), language=lang)
    for key in bare:
        text = _text(bare, key).lower()
        assert not [c for c in CAUSE[lang] if c in text], (key, text)
        assert "camping" not in text and "trail 2" not in text
    facts = StatementFacts(ctype, 2, topic="camping stove burns", known=("the cause is a faulty valve",))
    told = draft_statement(playbook, "holding", facts, language=lang)
    for key in told:
        text = _text(told, key)
        assert "camping stove burns" in text
        assert "The cause is a faulty valve." in text


def test_unknown_type_uses_neutral_wording(playbook: Playbook) -> None:
    extra = playbook.crisis_types[0].model_copy(update={"id": "supplier_scandal", "apology": False})
    pb = playbook.model_copy(update={"crisis_types": [*playbook.crisis_types, extra]})
    for lang in LANGS:
        out = draft_statement(pb, "holding", StatementFacts("supplier_scandal", 3), language=lang)
        assert check_statement(pb, out) == []


def test_deterministic(playbook: Playbook) -> None:
    first = draft_statement(playbook, "update", FULL, language="pl")
    draft_mod._env.cache_clear()  # a fresh environment, as in another worker process
    second = draft_statement(playbook, "update", FULL, language="pl")
    assert first == second
    assert variants_sha256(first) == variants_sha256(second)


def test_defaults_language_and_platforms(playbook: Playbook) -> None:
    out = draft_statement(playbook, "holding", BARE)
    assert list(out) == [p.value for p in playbook.publish_order]
    assert out == draft_statement(playbook, "holding", BARE, language=playbook.brand.default_language)
    only = draft_statement(playbook, "holding", BARE, language="sv-SE", platforms=[Platform.MASTODON])
    assert list(only) == ["mastodon"] and "Vi känner till" in only["mastodon"][0]


def test_bad_inputs_raise_config_errors(playbook: Playbook) -> None:
    with pytest.raises(ConfigError, match="language"):
        draft_statement(playbook, "holding", BARE, language="xx")
    with pytest.raises(ConfigError, match="crisis type"):
        draft_statement(playbook, "holding", StatementFacts("alien_invasion", 1))
    with pytest.raises(ConfigError, match="kind"):
        draft_statement(playbook, "apology", BARE)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="severity"):
        draft_statement(playbook, "holding", StatementFacts("product_safety", 0))


def test_topic_and_numbers_in_headers(playbook: Playbook) -> None:
    out = draft_statement(playbook, "update", FULL, platforms=[Platform.LINKEDIN])
    assert out["linkedin"][0].startswith("Update 3 on camping stove burns:")
    out = draft_statement(playbook, "update", StatementFacts("service_outage", 3, update_number=1), platforms=[Platform.X])
    assert out["x"][0].startswith("Update 1:")
    final = draft_statement(playbook, "final", FULL, platforms=[Platform.FACEBOOK])
    assert final["facebook"][0].startswith("The faulty valve has been replaced in all stores.")


@pytest.mark.parametrize(
    ("lang", "minutes", "expected"),
    [
        ("en", 30, "in 30 minutes"),
        ("en", 60, "in 1 hour"),
        ("en", 120, "in 2 hours"),
        ("en", 90, "in 90 minutes"),
        ("pl", 22, "za 22 minuty"),
        ("pl", 12, "za 12 minut"),
        ("pl", 60, "za 1 godzinę"),
        ("pl", 240, "za 4 godziny"),
        ("pl", 300, "za 5 godzin"),
        ("nl", 120, "over 2 uur"),
        ("sv", 60, "om 1 timme"),
        ("fr", 45, "dans 45 minutes"),
        ("id", 30, "30 menit lagi"),
        ("de", 60, "in 1 Stunde"),
        ("es", 120, "dentro de 2 horas"),
        ("it", 30, "tra 30 minuti"),
        ("pt", 60, "daqui a 1 hora"),
    ],
)
def test_next_update_wording(playbook: Playbook, lang: str, minutes: int, expected: str) -> None:
    facts = StatementFacts("service_outage", 3, next_update_minutes=minutes)
    out = draft_statement(playbook, "holding", facts, language=lang, platforms=[Platform.FACEBOOK])
    assert expected in out["facebook"][0]


# ---------------------------------------------------------------- lengths and threads


def test_platform_limits() -> None:
    assert platform_limit(Platform.X) == (280, False)
    assert platform_limit(Platform.BLUESKY) == (300, True)
    assert platform_limit(Platform.MASTODON) == (500, False)
    assert platform_limit(Platform.LINKEDIN) == (3000, False)
    assert platform_limit(Platform.FACEBOOK) == (63206, False)
    assert platform_limit(Platform.INSTAGRAM) == (2200, False)


def test_text_length_counts_like_the_platform() -> None:
    family = "👨‍👩‍👧"  # one grapheme, five code points
    assert text_length(family, Platform.BLUESKY) == 1
    assert text_length(family, Platform.MASTODON) == 5
    assert text_length("abc", Platform.X) == 3
    assert text_length("😀", Platform.X) == 2  # X weighs emoji double
    assert text_length("e\u0301", Platform.X) == 1  # NFC: é is one character
    assert text_length("zażółć", Platform.X) == 6


@pytest.mark.parametrize("platform", [Platform.X, Platform.BLUESKY, Platform.MASTODON])
def test_thread_split_at_sentences_with_numbering_inside_the_limit(platform: Platform) -> None:
    sentences = [f"Sentence number {i} says something reasonably long about the matter at hand." for i in range(40)]
    text = " ".join(sentences)
    parts = split_thread(text, platform)
    limit, _ = platform_limit(platform)
    n = len(parts)
    assert n > 1
    for i, part in enumerate(parts, 1):
        assert part.endswith(f" ({i}/{n})")
        assert text_length(part, platform) <= limit
        body = part.removesuffix(f" ({i}/{n})")
        assert body.endswith(".")  # split at a sentence boundary
    assert " ".join(p.rsplit(" (", 1)[0] for p in parts) == text


def test_thread_fits_exactly_without_numbering() -> None:
    text = "a" * 279 + "."
    assert split_thread(text, Platform.X) == [text]
    assert len(split_thread(text + " b.", Platform.X)) == 2


def test_thread_numbering_width_grows_with_part_count() -> None:
    text = " ".join(f"{'x' * 250}{i}." for i in range(12))  # 12 parts: "(10/12)" is wider
    parts = split_thread(text, Platform.X)
    assert len(parts) == 12
    assert all(text_length(p, Platform.X) <= 280 for p in parts)
    assert parts[-1].endswith(" (12/12)")


def test_overlong_sentence_and_word_are_broken_up() -> None:
    words = " ".join(["word"] * 200)  # one 999-character sentence, no full stop inside
    url = "https://example.com/" + "p" * 600
    for text in (words, url):
        for platform in (Platform.X, Platform.BLUESKY):
            parts = split_thread(text, platform)
            assert all(text_length(p, platform) <= platform_limit(platform)[0] for p in parts)
            assert "".join(re.sub(r" \(\d+/\d+\)$", "", p) for p in parts).replace(" ", "") == text.replace(" ", "")


def test_emoji_runs_split_without_hanging() -> None:
    text = "😀" * 400  # X weighs each 2: no spaces, no sentence ends
    parts = split_thread(text, Platform.X)
    assert all(text_length(p, Platform.X) <= 280 for p in parts)
    assert "".join(re.sub(r" \(\d+/\d+\)$", "", p) for p in parts) == text


def test_bluesky_counts_graphemes_when_splitting() -> None:
    text = " ".join(["Wir sind für euch da 👨‍👩‍👧."] * 30)
    parts = split_thread(text, Platform.BLUESKY)
    assert all(text_length(p, Platform.BLUESKY) <= 300 for p in parts)
    assert len(parts) < len(split_thread(text, Platform.X)) + 2


# ---------------------------------------------------------------- checks


def test_check_flags_banned_phrases_case_insensitively(playbook: Playbook) -> None:
    problems = check_statement(playbook, {"x": ["We have NO   comment at this time."]})
    assert any("banned phrase 'no comment'" in p for p in problems)
    # A phrase split over two thread parts is still found.
    problems = check_statement(playbook, {"x": ["This is fake (1/2)", "news. (2/2)"]})
    assert any("fake news" in p for p in problems)


def test_banned_phrase_in_facts_blocks_the_draft(playbook: Playbook) -> None:
    facts = StatementFacts("product_safety", 1, known=("The video is fake news",))
    with pytest.raises(PolicyViolation, match="fake news"):
        draft_statement(playbook, "holding", facts)


@pytest.mark.parametrize(
    "text",
    [
        "We will replace every stove within 24 hours.",
        "The app will be fixed by Friday.",
        "Our stoves are 100% safe.",
        "We guarantee this will not recur.",
        "It will never happen again.",
        "Het probleem is binnen 2 uur opgelost.",
        "Vi garanterar att allt fungerar.",
        "Nous réglerons cela d'ici 24 heures.",
        "Gwarantujemy pełne bezpieczeństwo.",
        "Masalah akan selesai dalam 24 jam.",
    ],
)
def test_check_flags_unconfirmed_promises(playbook: Playbook, text: str) -> None:
    problems = check_statement(playbook, {"facebook": [text]})
    assert any("unconfirmed promise" in p for p in problems), problems
    # Once the same words are a confirmed fact, they may be said.
    assert not [p for p in check_statement(playbook, {"facebook": [text]}, known=[text]) if "promise" in p]


def test_promise_in_actions_blocks_draft_unless_known(playbook: Playbook) -> None:
    action = "We will replace every stove within 48 hours"
    with pytest.raises(PolicyViolation, match="promise"):
        draft_statement(playbook, "holding", StatementFacts("product_safety", 1, actions=(action,)))
    ok = StatementFacts("product_safety", 1, known=(action,), actions=(action,))
    assert draft_statement(playbook, "holding", ok)


def test_next_update_time_is_not_a_promise(playbook: Playbook) -> None:
    for lang in LANGS:
        for minutes in (1, 15, 30, 60, 120, 240):
            facts = StatementFacts("service_outage", 1, next_update_minutes=minutes)
            draft_statement(playbook, "holding", facts, language=lang)


def test_check_flags_limits_empty_parts_markers_and_unknown_platforms(playbook: Playbook) -> None:
    problems = check_statement(
        playbook,
        {
            "x": ["a" * 281],
            "bluesky": ["ok (1/2)", "   "],
            "mastodon": ["We are aware of reports about {{ topic }}."],
            "linkedin": ["Update %s: still looking."],
            "myspace": ["hello"],
            "facebook": [],
        },
    )
    joined = "\n".join(problems)
    assert "x: 281 characters, limit 280" in joined
    assert "bluesky part 2/2: empty" in joined
    assert "mastodon: unrendered template marker '{{'" in joined
    assert "linkedin: unrendered template marker '%s'" in joined
    assert "myspace: unknown platform" in joined
    assert "facebook: no text" in joined
    assert check_statement(playbook, {"x": ["We are looking into it."]}) == []


def test_bluesky_limit_is_graphemes(playbook: Playbook) -> None:
    text = "e\u0301" * 300  # 300 graphemes, 600 code points
    assert check_statement(playbook, {"bluesky": [text]}) == []
    assert check_statement(playbook, {"bluesky": [text + "!"]}) != []
    # The lexicon's 3,000-byte cap applies too: 300 family emoji are 5,400 bytes.
    assert check_statement(playbook, {"bluesky": ["👨‍👩‍👧" * 300]}) == ["bluesky: over 3000 bytes"]


@pytest.mark.parametrize("lang", [lang for lang in LANGS if lang != "en"])
def test_a_final_statement_closes_in_its_own_language(playbook: Playbook, lang: str) -> None:
    """The facts a final statement is drafted from carry no closing sentence of their own:
    the template's, in the statement's language, closes it (no English sentence opens a
    German statement)."""
    from datetime import UTC, datetime

    from firebreak.store.models import Incident, IncidentSummary
    from firebreak.tasks.draft import facts_for

    now = datetime.now(UTC)
    inc = Incident(brand="fjell", type="product_safety", severity=2, origin_platform="mastodon",
                   summary=IncidentSummary(topic="ember stove"), started_at=now, detected_at=now)
    facts = facts_for(playbook, inc)
    english = draft_statement(playbook, "final", facts, language="en", platforms=[Platform.FACEBOOK])
    text = "\n".join(draft_statement(playbook, "final", facts, language=lang, platforms=[Platform.FACEBOOK])["facebook"])
    opening = text.splitlines()[0]
    assert opening and opening not in "\n".join(english["facebook"]), text
    assert "The situation is resolved" not in text
