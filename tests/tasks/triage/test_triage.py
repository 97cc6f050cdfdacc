import time
from pathlib import Path

import pytest

from firebreak.config.playbook import load_playbook
import numpy as np
from py3langid import langid

from firebreak.tasks.triage import (
    EMBEDDING_DIM,
    SENTIMENTS,
    SUPPORTED_LANGS,
    Labels,
    Triage,
    WordVectors,
    dominant_terms,
    featurise,
    fold,
    fold_batch,
    load_triage,
    normalise,
    normalise_batch,
    token_hashes,
    token_strings,
)
from firebreak.tasks.triage.features import _codepoints, _tokens
from firebreak.tasks.triage.keywords import _KeywordMatcher
from firebreak.tasks.triage.langid import _BatchLangId
from firebreak.errors import ConfigError

PLAYBOOK = Path(__file__).resolve().parents[3] / "config" / "playbook.default.yaml"


@pytest.fixture(scope="module")
def tri() -> Triage:
    return load_triage(load_playbook(PLAYBOOK))


def test_language_with_and_without_hint(tri: Triage) -> None:
    got = [l.lang for l in tri.label_batch([
        "The app has not worked all morning, this is ridiculous",
        "Jullie app werkt al de hele ochtend niet, belachelijk",
        "Appen har inte fungerat på hela morgonen, helt galet",
        "L'application ne fonctionne pas depuis ce matin",
        "Aplikacja nie działa od rana, to jest skandal",
        "Aplikasinya tidak bisa dibuka dari pagi, parah banget",
    ])]
    assert got == ["en", "nl", "sv", "fr", "pl", "id"]
    assert tri.label("ok", lang_hint="sv").lang == "sv"


def test_sentiment_offensive_complaint(tri: Triage) -> None:
    neg, pos, off, cmp_ = tri.label_batch([
        "This is the worst service ever, I hate it, terrible and awful",
        "I love it, thank you so much, amazing and wonderful!",
        "You are a fucking idiot, shut up you stupid bitch",
        "@FjellHelp my order never arrived and nobody answers my emails. Still waiting for a refund",
    ])
    assert neg.sentiment == "negative" and neg.sentiment_score < 0
    assert pos.sentiment == "positive" and pos.sentiment_score > 0
    assert off.offensive and off.offensive_score > 0.5 and not pos.offensive
    assert cmp_.complaint and cmp_.complaint_score > pos.complaint_score
    assert -1 <= neg.sentiment_score <= 1
    d = neg.as_dict()
    assert set(d) == set(Labels.__slots__) and isinstance(d["crisis_types"], list)


def test_crisis_keywords_multilingual(tri: Triage) -> None:
    got = [l.crisis_types for l in tri.label_batch([
        "My jacket zipper SNAPPED and I was injured",
        "De site werkt niet, weer een storing",
        "Wyciek danych? Moje dane i hasło w sieci",
        "Le produit est DEFECTUEUX et dangereux",  # accent-tolerant: défectueux
        "Downloading the update now",  # 'down' only as a whole word
        "Ini gangguan lagi, aplikasi tidak bisa login",
    ])]
    assert got[0] == ("product_safety",)
    assert "service_outage" in got[1]
    assert "data_breach" in got[2]
    assert "product_safety" in got[3]
    assert got[4] == ()
    assert "service_outage" in got[5]


def test_fold() -> None:
    assert fold("Défectueux ŁÓDŹ Återkallelse") == "defectueux lodz aterkallelse"


def test_throughput(tri: Triage) -> None:
    texts = [f"@fjell your jacket broke after {i} days, not happy at all #fail" for i in range(2000)]
    t = time.perf_counter()
    assert len(tri.label_batch(texts)) == 2000
    assert 2000 / (time.perf_counter() - t) > 1000  # several thousand/s on a normal core


def test_load_triage_is_cached() -> None:
    pb = load_playbook(PLAYBOOK)
    assert load_triage(pb) is load_triage(pb)
    assert Triage().label("hello").crisis_types == ()


def test_dominant_terms() -> None:
    storm = [f"the fjell stove exploded at camp {i}, stove recall now" for i in range(20)] + ["nice jacket"] * 3
    background = [f"love my fjell jacket {i}" for i in range(50)] + ["fjell stove works fine"] * 3
    terms = dominant_terms(storm, background, k=5)
    assert terms and any("stove" in t or "exploded" in t or "recall" in t for t in terms[:3])
    assert "fjell" not in terms[:2]
    assert dominant_terms([]) == []


MIXED = [
    "The app has not worked all morning, this is ridiculous http://t.co/x @FjellHelp",
    "ÉNORME PROBLÈME AVEC LA LIVRAISON",
    "Aplikacja nie działa od rana 😡😡😡",
    "",
    "😀",
    "sooooo good!!!!!!",
    "USER kenapa aplikasinya error terus URL",
]


def test_batched_language_id_is_py3langid() -> None:
    ref = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)
    ref.set_languages(list(SUPPORTED_LANGS))
    got = _BatchLangId(SUPPORTED_LANGS).proba(MIXED)
    want = np.array([ref._decide(t) for t in MIXED])
    assert np.abs(got - want).max() < 1e-4


def test_batch_normalisation_matches_one_by_one() -> None:
    assert normalise_batch(MIXED) == [normalise(t) for t in MIXED]
    assert normalise("Sooooo GOOD @Brand_x see https://x.y/z") == "sooo good @user see httpurl"
    assert normalise("USER mention URL") == "@user mention httpurl"


def test_features_do_not_depend_on_the_batch() -> None:
    whole = featurise(MIXED).toarray()
    alone = np.vstack([featurise([t]).toarray() for t in MIXED])
    assert np.allclose(whole, alone)


def test_fast_keyword_matching_equals_the_full_patterns(tri: Triage) -> None:
    texts = ["De site werkt niet, weer een storing", "Downloading the update now", "Le produit est DÉFECTUEUX",
             "nothing here", "", "zipper snapped, I was injured", "Wyciek danych? hasło", "#down again", "data breach!",
             "gangguan lagi", "product recall: the stove caught fire"]
    kw = tri._keywords
    folded = [fold(t) for t in texts]
    assert [kw.match(f) for f in folded] == [kw.match_exact(f) for f in folded]
    assert any(kw.match(f) for f in folded)


def test_batch_keyword_matching_equals_the_full_patterns_on_overlaps() -> None:
    from firebreak.config.playbook import CrisisType

    def ct(tid: str, keywords: dict) -> CrisisType:
        return CrisisType(id=tid, name=tid, origin="internal", apology=False, keywords=keywords)

    types = [
        ct("a", {"en": ["my data", "down", "site is down", "can't log in"]}),
        ct("b", {"id": ["data saya", "down under"], "en": ["#fail", "@brand"]}),
        ct("c", {"en": ["down"]}),
    ]
    kw = _KeywordMatcher(types)
    texts = ["my data saya bocor", "going down under", "down's", "site is  down!", "the site\tis down", "a#fail", "#fail",
             "x@brand", "@brand hi", "cant log in", "can't   log in", "DOWN", "", "nothing", "sitе is down", "my\x01data"]
    got = kw.match_batch(texts)
    assert got == [kw.match_exact(fold(t)) for t in texts]
    assert got[0] == ("a", "b") and got[1] == ("a", "b", "c") and got[6] == ("b",) and got[5] == ()
    assert fold_batch(texts[:-1]) == "\x01".join(fold(t) for t in texts[:-1])
    assert fold_batch(texts) is None  # a text holds the separator: match_batch goes one by one


def test_spam_rule(tri: Triage) -> None:
    texts = ["Get FREE FOLLOWERS now", "see http://a.b http://c.d and http://e.f", "one link http://a.b", "click\nhere"]
    assert tri._spam_flags(texts) == [True, True, False, False]
    assert [l.offensive for l in tri.label_batch(texts[:2])] == [True, True]


def test_batched_language_id_is_py3langid_across_lengths() -> None:
    ref = langid.LanguageIdentifier.from_model_file(langid.MODEL_FILE, norm_probs=True)
    ref.set_languages(list(SUPPORTED_LANGS))
    words = "the app nie działa från morgonen werkt niet ne marche pas tidak bisa 😡 !!! aaaa".split()
    texts = [" ".join(words[(i * 7) % len(words) :][: i % 23]) * (1 + i % 4) for i in range(120)] + MIXED
    got = _BatchLangId(SUPPORTED_LANGS).proba(texts)
    want = np.array([ref._decide(t) for t in texts])
    assert np.abs(got - want).max() < 1e-4


TRICKY = [
    "Worst. Service. EVER!!!! @bob #fail http://x.co/a",
    "l'appli ne marche pas 😡😡😡😡 c'est nul…",
    "Zażółć gęślą jaźń — dlaczego?!",
    "  ok  ",
    "emoji-only 👍🏽",
    "",
]


def test_token_strings_are_the_tokens_the_featuriser_hashes() -> None:
    for text in TRICKY:
        cp, doc = _codepoints(normalise_batch([text]))
        hashes, _, _ = _tokens(cp, doc)
        strings = token_strings(text)
        assert token_hashes(strings).tolist() == hashes.tolist(), text


def _unit(i: int) -> np.ndarray:
    v = np.zeros(EMBEDDING_DIM, dtype=np.float32)
    v[i] = 1.0
    return v


def _vectors(scale: float = 1.0, languages: frozenset[str] | None = None) -> WordVectors:
    keys = token_hashes(["good", "bad"])
    order = np.argsort(keys)
    rows = np.vstack([_unit(0), _unit(1)])[order]
    return WordVectors(keys[order], rows, scale, languages)


def test_word_vectors_pool_known_tokens_per_text() -> None:
    vec = _vectors(scale=2.0)
    emb = featurise(["Good good BAD xyz", "nothing known", "", "bad"], vectors=vec).toarray()[:, -EMBEDDING_DIM:]
    expected = 2.0 * (2 * _unit(0) + _unit(1)) / np.sqrt(5.0)
    assert np.allclose(emb[0], expected)
    assert not emb[1].any() and not emb[2].any()
    assert np.allclose(emb[3], 2.0 * _unit(1))
    alone = np.vstack([featurise([t], vectors=vec).toarray()[:, -EMBEDDING_DIM:] for t in ["Good good BAD xyz", "bad"]])
    assert np.allclose(alone, emb[[0, 3]])


def test_word_vectors_only_for_the_languages_they_cover() -> None:
    vec = _vectors(languages=frozenset({"en", "nl"}))
    emb = featurise(["good", "good", "good"], vectors=vec, langs=["en", "sv", "nl"]).toarray()[:, -EMBEDDING_DIM:]
    assert emb[0].any() and not emb[1].any() and np.array_equal(emb[0], emb[2])
    assert featurise(["good"], vectors=vec).toarray()[:, -EMBEDDING_DIM:].any()  # no languages given: used


def test_word_vectors_refuse_a_malformed_table() -> None:
    keys = token_hashes(["good", "bad"])
    with pytest.raises(ConfigError, match="sorted"):
        WordVectors(np.sort(keys)[::-1].copy(), np.zeros((2, EMBEDDING_DIM), dtype=np.float32))
    with pytest.raises(ConfigError, match="dimension"):
        WordVectors(np.sort(keys), np.zeros((2, 3), dtype=np.float32))


def test_shipped_word_vectors_carry_meaning_across_languages(tri: Triage) -> None:
    vec = tri._vectors
    assert vec.keys.size > 50_000
    assert vec.languages is not None and {"en", "nl", "fr", "pl"} <= vec.languages
    assert not {"sv", "id"} & vec.languages  # the teacher was not trained on these
    e = featurise(["love", "liefde", "miłość", "hate", "odio", "benci"], vectors=vec).toarray()[:, -EMBEDDING_DIM:]
    e /= np.linalg.norm(e, axis=1, keepdims=True)
    sim = e @ e.T
    # Dutch and Polish "love" sit closer to "love" than "hate" does; Spanish and Indonesian "hate" to "hate".
    assert min(sim[0, 1], sim[0, 2]) > sim[0, 3]
    assert min(sim[3, 4], sim[3, 5]) > sim[3, 0]


def test_a_language_with_its_own_threshold_uses_it(tri: Triage) -> None:
    heads = tri._heads
    model = {
        name: {"classes": ["x"], "coef": np.zeros((1, 1)), "bias": np.zeros(1), "threshold": 0.5}
        for name in ("offensive", "complaint")
    }
    model["sentiment"] = {"classes": list(SENTIMENTS), "coef": np.zeros((3, 1)), "bias": np.zeros(3)}
    model["offensive"]["lang_thresholds"] = {"pl": 0.7}
    got = type(heads)(model)
    assert got.threshold("offensive", ["en", "pl", "sv"]).tolist() == [0.5, 0.7, 0.5]
    assert got.threshold("complaint", ["pl"]).tolist() == [0.5]


def test_shipped_offensive_head_has_per_language_thresholds(tri: Triage) -> None:
    # The trainer picks one for each language with labelled abuse data (id, pl).
    assert set(tri._heads.lang_thresholds["offensive"]) == {"id", "pl"}


def test_playbook_offensive_terms_count_only_in_their_language() -> None:
    tri = Triage(offensive_terms={"fr": ["connard", "fils de pute"], "sv": ["hora"]})
    fr, accents, phrase, es, clean = tri.label_batch([
        "Bande de connards, vous êtes des CONNARDS",  # plural is its own term: no hit
        "Quel CONNÂRD ce service client",  # case and accents do not matter
        "Espèce de fils   de pute, rendez-moi mon argent",
        "¿A qué hora abre la tienda? Llevo una hora esperando",  # Swedish term, Spanish word
        "Merci pour votre aide, le connardisme n'est pas un mot",  # whole words only
    ], ["fr", "fr", "fr", "es", "fr"])
    assert accents.offensive and accents.offensive_score >= 0.99
    assert phrase.offensive and phrase.offensive_score >= 0.99
    assert fr.offensive_score < 0.99 and es.offensive_score < 0.99 and clean.offensive_score < 0.99
    assert [lab.lang for lab in (accents, phrase, es)] == ["fr", "fr", "es"]


def test_load_triage_rebuilds_when_offensive_terms_change() -> None:
    pb = load_playbook(PLAYBOOK)
    other = pb.model_copy(update={"engagement": pb.engagement.model_copy(update={"offensive_terms": {"nl": ["klootzak"]}})})
    assert load_triage(pb) is load_triage(pb)
    assert load_triage(other) is not load_triage(pb)
    assert load_triage(other).label("Wat een klootzak ben jij", "nl").offensive
