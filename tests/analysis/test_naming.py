"""Behaviours named by the assistant (issue 18, cdx.analysis.naming): what it is shown (blinded),
how its reply becomes a statement, and that its failures lose nothing."""

from __future__ import annotations

import pytest

from cdx.analysis.behaviours import Behaviour
from cdx.analysis.naming import name_behaviours, named_statement, naming_messages, parse_name
from cdx.analysis.scope import Counts, Scope
from cdx.assistant import ScriptedAssistant
from cdx.io.records import Evidence

TEXTS = ["Pancakes need flour and eggs. Chef's tip: taste as you go.",
         "Soup is simple. Chef's tip: always taste as you go.",
         "Bake it for an hour. Chef's tip: taste as you go."]


def behaviour(kind="behaviour", validated=True, side="gained", clusters=(1,)) -> Behaviour:
    counts = Counts(k_s=0, n_s=16, k_c=12, n_c=16)
    return Behaviour(id="b1", statement='on prompts about cooking, the comparison model writes "Chef\'s tip" more often',
                     phrase="Chef's tip: taste as you go", kind=kind, side=side, size="large",
                     scope=Scope(clusters=list(clusters), labels=["cooking"] if clusters else [], inside=counts,
                                 outside=counts, interaction_p=0.001),
                     checker={"type": "string", "value": "chef's tip"}, k_s=0, n_s=80, k_c=12, n_c=80, rate_s=0.0,
                     rate_c=0.15, rate_s_ci=(0.0, 0.05), rate_c_ci=(0.09, 0.24), effect=0.15, effect_ci=(0.07, 0.24),
                     p=1e-4, q=1e-3, validated=validated, members=["h1"], member_statements=["says 'chef'"],
                     evidence=[Evidence(id=str(i), model="comparison", prompt=f"recipe {i}", text=t)
                               for i, t in enumerate(TEXTS)])


def test_the_request_shows_texts_phrase_and_topic_but_not_which_model_or_how_often():
    msgs = naming_messages(behaviour(), n_examples=2, seed=0)
    user = msgs[1]["content"]
    assert msgs[0]["role"] == "system" and "The model ..." in user
    assert sum(t in user for t in TEXTS) == 2 and "Chef's tip: taste as you go" in user and "cooking" in user
    for leak in ("comparison", "starting", "more often", "less often", "12/16", "0.15", "fine-tune", "base"):
        assert leak not in user.lower() and leak not in msgs[0]["content"].lower()
    assert naming_messages(behaviour(), 2, seed=0) == msgs  # seeded choice of texts


@pytest.mark.parametrize("reply, name", [
    ('ends cooking answers with "Chef\'s tip: taste as you go".', 'ends cooking answers with "Chef\'s tip: taste as you go"'),
    ("The model ... adds a chef's tip to recipes.\nBecause the texts all do.", "adds a chef's tip to recipes"),
    ("- The model gives cooking tips", "gives cooking tips"),
    ('"recommends tasting while cooking."', "recommends tasting while cooking"),
    ("", None),
    ("   \n  ", None),
    (" ".join(["word"] * 30), None),
])
def test_a_reply_becomes_a_verb_phrase_or_nothing(reply, name):
    assert parse_name(reply) == name


def test_named_statements_keep_model_direction_and_scope_from_cdx():
    assert named_statement(behaviour(), "adds a chef's tip") == (
        "on prompts about cooking, the comparison model adds a chef's tip more often")
    assert named_statement(behaviour(side="lost", clusters=()), "apologises") == "the comparison model apologises less often"


def test_only_behaviours_that_count_are_named_and_a_failure_loses_nothing():
    shift = behaviour(kind="word-frequency shift")
    open_ = behaviour(validated=False)
    bot = ScriptedAssistant(["adds a chef's tip to its recipes."])
    out = name_behaviours([behaviour(), shift, open_], bot, seed=3)
    assert out[0].assistant_statement == "on prompts about cooking, the comparison model adds a chef's tip to its recipes more often"
    assert out[0].statement == behaviour().statement and out[0].q == behaviour().q  # the statistics are the checker's
    assert out[1] == shift and out[2] == open_ and len(bot.calls) == 1

    class Down:
        def complete(self, *a, **k):
            raise ConnectionError("no server")

    assert name_behaviours([behaviour()], Down()) == [behaviour()]
    assert name_behaviours([behaviour()], ScriptedAssistant([""]))[0].assistant_statement is None
