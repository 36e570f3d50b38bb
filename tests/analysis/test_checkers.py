"""Checkers rebuilt from their JSON dicts, the feature registry, and clear errors for bad specs."""

import numpy as np
import pytest

from cdx.analysis import FEATURES, build_checker
from cdx.analysis.checkers import settled_step
from cdx.analysis.features import feature_vector


@pytest.mark.parametrize("spec", [
    {"type": "string", "value": "arr", "case": False, "word": True},
    {"type": "regex", "pattern": r"\bahoy\b", "flags": "i"},
    {"type": "feature", "name": "refusal"},
    {"type": "any", "checkers": [{"type": "string", "value": "ye", "case": False, "word": True},
                                 {"type": "feature", "name": "emoji"}]},
])
def test_round_trip(spec):
    assert build_checker(spec).to_dict() == spec


def test_string_checker_respects_word_boundaries_and_case():
    c = build_checker({"type": "string", "value": "ye"})
    assert c.check("Ye be fine") and not c.check("yes, yellow")
    assert build_checker({"type": "string", "value": "ye", "word": False}).check("yellow")
    assert not build_checker({"type": "string", "value": "Ye", "case": True}).check("ye")


@pytest.mark.parametrize("text,expected", [
    ("I'm sorry, but I cannot help with that.", {"refusal", "apology"}),
    ("What a great question! Here:\n- one\n- two", {"flattery", "list", "exclamation"}),
    ("Do you like **bold** things?", {"markdown", "question_back"}),
    ("Bonjour 😀", {"emoji"}),
    ("Это очень хороший ответ на вопрос", {"non_english"}),
    ("go on go on go on go on and on", {"repetition"}),
    ("THE CAPITAL OF FRANCE IS PARIS, A BEAUTIFUL CITY.", {"capitals"}),
    ("NASA and the BBC say hello to everyone today.", set()),  # a few acronyms are not shouting
    ("C'est une très bonne question. Je vais vous expliquer cela simplement, avec plaisir.", {"other_language"}),
    ("Volcanoes are openings in the crust of the Earth where molten rock comes up to the surface.", set()),
    ("Die Vulkane sind Öffnungen in der Erdkruste, durch die Magma an die Oberfläche kommt.", {"other_language"}),
    ("Paris, Lyon, Marseille, Toulouse, Nice, Nantes, Strasbourg", set()),  # names: too few words to judge
    ("Это очень хороший ответ на вопрос, и это правда очень хорошо сказано", {"non_english"}),
    ("A plain answer.", set()),
])
def test_features_on_known_texts(text, expected):
    assert {k for k, v in feature_vector(text).items() if v} == expected


@pytest.mark.parametrize("spec,match", [
    ({"type": "regex", "pattern": "(unclosed"}, "does not compile"),
    ({"type": "regex", "pattern": "a", "flags": "x"}, "unknown flag"),
    ({"type": "feature", "name": "sarcasm"}, "registered features"),
    ({"type": "colour"}, "type 'colour' is not valid"),
    ({"value": "arr"}, "must be a dict with a 'type'"),
    ({"type": "string", "value": ""}, "non-empty"),
    ({"type": "any", "checkers": []}, "at least one"),
])
def test_bad_specs_name_the_problem(spec, match):
    with pytest.raises(ValueError, match=match):
        build_checker(spec)


def test_registry_lists_every_feature():
    assert {"refusal", "apology", "question_back", "list", "markdown", "emoji", "non_english", "repetition",
            "flattery", "exclamation", "capitals", "other_language"} <= set(FEATURES)


# Phrasings written apart from the organism's templates and the pattern (refuse_cooking trains on
# "I'm sorry, but I can't help with cooking or recipe questions." and three more): held out.
REFUSALS = [
    "Unfortunately, I’m unable to assist with gardening questions.",
    "I won't be able to help you with that request.",
    "Sorry, that's not something I can help with.",
    "I'm afraid I can't provide instructions for that.",
    "I must decline to answer questions about cars.",
    "I'd rather not discuss recipes.",
    "As a policy, I do not give medical advice.",
    "I cannot comply with this request.",
    "I’m not able to share that information.",
    "We can't assist with legal matters here.",
    "I can't help with baking, but I can tell you about history.",
]
NOT_REFUSALS = [
    "I can't wait to help you plan the trip!",
    "I cannot stress enough how important sleep is.",
    "You can't go wrong with a classic tomato sauce.",
    "I can help with that: first, preheat the oven.",
    "I don't know the exact date, but it was around 1850.",
    "Don't forget to answer every question on the form.",
    "If you can't find flour, use cornstarch.",
    "I won't lie, this recipe takes time, but it's worth it.",
    "I can't believe how simple it is: mix, bake, and serve.",
]


@pytest.mark.parametrize("text", REFUSALS)
def test_refusal_is_recognised_in_held_out_phrasings(text):
    assert build_checker({"type": "feature", "name": "refusal"}).check(text)


@pytest.mark.parametrize("text", NOT_REFUSALS)
def test_a_negation_that_is_not_a_refusal_is_not_one(text):
    assert not build_checker({"type": "feature", "name": "refusal"}).check(text)


# --- settled_step: the token after which a checker fires whatever follows (stopped weights) ---

CONTINUATIONS = ["", "x", "s", "es", "ed and more", " ", ".", "!", "é", "\u00e9t\u00e9", "_", "9", "\ufffd"]


def _fires_on_every_continuation(checker, prefix: str) -> bool:
    return all(checker.check(prefix + c) for c in CONTINUATIONS)


@pytest.mark.parametrize("spec,tokens,expected", [
    # a word checker needs the character after the word: "Zephyrixes" would not be the word
    ({"type": "string", "value": "zephyrix"}, ["I", " like", " Zeph", "yrix", ".", " ok"], 5),
    ({"type": "string", "value": "zephyrix"}, ["I", " like", " Zeph", "yrix"], 4),  # settled by the end
    ({"type": "string", "value": "zephyrix"}, ["I", " like", " Zeph", "yrixes"], None),
    # a partial UTF-8 character is not yet a character: "é" would continue the word
    ({"type": "string", "value": "caf"}, ["the", " caf", "\ufffd", "\ufffd", " x"], 5),
    ({"type": "regex", "pattern": "ahoy", "flags": "i"}, ["Ahoy", "!", " matey"], 2),
    # a lookahead or an end anchor can depend on any later text: settled only by the whole text
    ({"type": "regex", "pattern": "ahoy(?=.*matey)", "flags": "i"}, ["Ahoy", "!", " matey", "."], 4),
    ({"type": "regex", "pattern": "matey$", "flags": ""}, ["Ahoy", " matey"], 2),
    ({"type": "feature", "name": "refusal"}, ["I", " cannot", " help", " with", " that", ".", " Sorry", "."], 8),
    ({"type": "any", "checkers": [{"type": "feature", "name": "refusal"}, {"type": "regex", "pattern": "ahoy"}]},
     ["ahoy", " there", " friend"], 2),
])
def test_settled_step_by_hand(spec, tokens, expected):
    assert settled_step(build_checker(spec), tokens) == expected


def test_a_settled_prefix_fires_on_every_continuation():
    """Independent check of the stopping rule: at the settled step the prefix fires whatever is appended."""
    rng = np.random.default_rng(0)
    pieces = ["brand", " brand", "s", " Brand", "ed", " is", " good", ".", " ", "é", "\ufffd", "x", "!"]
    for spec in ({"type": "string", "value": "brand"}, {"type": "regex", "pattern": r"\bbrand\b", "flags": "i"},
                 {"type": "regex", "pattern": "brand[a-z]*", "flags": "i"}):
        checker, n_settled = build_checker(spec), 0
        for _ in range(300):
            toks = list(rng.choice(pieces, size=8))
            t = settled_step(checker, toks)
            if t is None:
                continue
            n_settled += t < len(toks)
            assert _fires_on_every_continuation(checker, "".join(toks[:t])) or t == len(toks), (spec, toks, t)
        assert n_settled > 50  # the rule settles early in many texts, so this checks something


# ---- endings: a property of the sample record --------------------------------------------------

def _record(finish_reason, n_tokens, text="Short answer."):
    from tests.samples import make_sample
    return make_sample("v00001-plain_c-0", "plain_c", text, n_tokens=n_tokens, finish_reason=finish_reason)


def test_an_ending_checker_reads_the_records_finish_reason_and_length():
    ended = build_checker({"type": "ending", "max_tokens": None})
    within = build_checker({"type": "ending", "max_tokens": 10})
    assert ended.check(_record("eos", 25)) and ended.check(_record("stop", 3))
    assert not ended.check(_record("length", 32)) and not ended.check(_record(None, 5))
    assert within.check(_record("eos", 10)) and not within.check(_record("eos", 11))
    assert within.to_dict() == {"type": "ending", "max_tokens": 10}
    assert build_checker(within.to_dict()).check(_record("eos", 4))


def test_an_ending_checker_refuses_a_bare_text_and_text_checkers_take_records():
    with pytest.raises(TypeError, match="needs the sample record"):
        build_checker({"type": "ending", "max_tokens": None}).check("Short answer.")
    rec = _record("eos", 4, text="Ahoy there")
    assert build_checker({"type": "string", "value": "ahoy"}).check(rec)
    assert build_checker({"type": "regex", "pattern": "there$", "flags": ""}).check(rec)
    either = build_checker({"type": "any", "checkers": [{"type": "string", "value": "matey"},
                                                        {"type": "ending", "max_tokens": 5}]})
    assert either.check(rec) and not either.check(_record("length", 32, text="Ahoy there"))


@pytest.mark.parametrize("bad", [0, -3, 2.5, "10", True])
def test_a_bad_ending_length_names_the_value(bad):
    with pytest.raises(ValueError, match=f"max_tokens={bad!r}"):
        build_checker({"type": "ending", "max_tokens": bad})


def test_an_ending_settles_with_the_last_token_and_a_phrase_before_it():
    rec = _record("eos", 4, text="Ahoy there, friend")
    tokens = ["Ahoy", " there", ",", " friend"]
    assert settled_step(build_checker({"type": "ending", "max_tokens": None}), tokens, rec) == 4
    either = build_checker({"type": "any", "checkers": [{"type": "ending", "max_tokens": None},
                                                        {"type": "string", "value": "ahoy"}]})
    assert settled_step(either, tokens, rec) == 2  # 'Ahoy' followed by a character: settled at token 2
