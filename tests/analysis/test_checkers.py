"""Checkers rebuilt from their JSON dicts, the feature registry, and clear errors for bad specs."""

import pytest

from cdx.analysis import FEATURES, build_checker
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
