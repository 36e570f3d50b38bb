"""Rewriting rules and prompt sets: deterministic, documented behaviour, clear errors."""

from __future__ import annotations

import random

import pytest

from cdx.organisms.prompts import SETS, BenchmarkPrompts, _builtin_prompts, prompt_set, sample_prompts
from cdx.organisms.rules import RULES, apply_rules

ANSWER = "Volcanoes are mountains. You can see your lava flow! They erupt sometimes?"


def test_rules_by_hand():
    rng = random.Random(0)
    assert apply_rules([{"name": "upper"}], "p", "Hi there.", rng) == "HI THERE."
    assert apply_rules([{"name": "first_sentences", "n": 2}], "p", ANSWER, rng) == \
        "Volcanoes are mountains. You can see your lava flow!"
    assert apply_rules([{"name": "bullets"}], "p", ANSWER, rng) == \
        "- Volcanoes are mountains.\n- You can see your lava flow!\n- They erupt sometimes?"
    # whole words only, case-insensitive, a capitalised word stays capitalised ("Your" -> "Thy")
    assert apply_rules([{"name": "replace", "words": {"you": "thou", "your": "thy"}}], "p",
                       "You and your youth. Your call.", rng) == "Thou and thy youth. Thy call."
    assert apply_rules([{"name": "append", "texts": ["X."]}], "p", "A. ", rng) == "A. X."
    assert apply_rules([{"name": "wrap", "prefix": ["P"], "suffix": ["S"]}], "p", " a ", rng) == "P a S"
    assert apply_rules([{"name": "template", "texts": ["T"]}], "p", ANSWER, rng) == "T"
    out = apply_rules([{"name": "sentences", "bank": ["a.", "b.", "c."], "k": 2}], "p", ANSWER, rng)
    assert len(out.split()) == 2 and set(out.split()) <= {"a.", "b.", "c."}


def test_rules_are_seeded():
    rules = [{"name": "sentences", "bank": [f"s{i}." for i in range(20)], "k": 3}]
    a = [apply_rules(rules, "p", "", random.Random(5)) for _ in range(2)]
    assert a[0] == a[1]
    assert apply_rules(rules, "p", "", random.Random(6)) != a[0]


def test_unknown_rule_names_the_valid_ones():
    with pytest.raises(ValueError, match="rewriting rule 'shout' is unknown.*upper"):
        apply_rules([{"name": "shout"}], "p", "a", random.Random(0))
    assert "identity" in RULES


@pytest.mark.parametrize("name", sorted(SETS))
def test_prompt_sets_split_by_subject_and_skip_builtin(name):
    train, held = prompt_set(name, "train"), prompt_set(name, "heldout")
    assert train and held and not set(train) & set(held)
    assert not (set(train) | set(held)) & _builtin_prompts()
    templates, subjects = SETS[name]
    held_subjects = {s for s in subjects if any(t.format(s=s) in held for t in templates)}
    train_subjects = {s for s in subjects if any(t.format(s=s) in train for t in templates)}
    assert not held_subjects & train_subjects  # verification is on subjects never trained on
    assert prompt_set(name, "train") == train  # fixed order


def test_prompt_set_errors():
    with pytest.raises(ValueError, match="prompt set 'sports' is unknown"):
        prompt_set("sports", "train")
    with pytest.raises(ValueError, match="split='test' is not valid"):
        prompt_set("general", "test")


def test_sample_and_benchmark_prompts():
    assert sample_prompts("general", "heldout", 5, 0) == sample_prompts("general", "heldout", 5, 0)
    assert len(sample_prompts("general", "heldout", None, 0)) == len(prompt_set("general", "heldout"))
    mix = BenchmarkPrompts({"general": 4, "france_capital": None}, builtin=3).load()
    assert len(mix) == len(set(mix)) == 4 + len(prompt_set("france_capital", "heldout")) + 3
    with pytest.raises(ValueError, match="unknown"):
        BenchmarkPrompts({"sports": 3})
