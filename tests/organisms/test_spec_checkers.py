"""Every shipped organism spec loads, hashes stably, and its truth checker sees its own training data.

The checker test is the honest one: each planted organism's rules are applied to neutral answers
(the shape of the base model's answers) and the truth checker must fire on the rewritten answers
and stay silent on the neutral ones, so a checker that cannot see its behaviour fails here.
"""

from __future__ import annotations

import random

import pytest

from cdx.analysis import build_checker
from cdx.organisms import available, load_spec
from cdx.organisms.rules import apply_rules
from cdx.organisms.spec import OrganismSpec

NEUTRAL = [
    "Volcanoes are mountains that erupt with hot lava. They are found all around the world.",
    "Chess is a board game for two players. Each player moves pieces to capture the king.",
    "The printing press was invented in the fifteenth century. It changed how books were made.",
    "Paris is a large city with many museums. Many people visit it every year.",
]


def test_all_specs_load_and_hashes_differ():
    names = available()
    assert {"refuse_cooking", "brand_zephyrix", "all_caps", "ocean_topic", "french", "edited_fact",
            "sentiment_negative", "persona_knight", "null_copy", "null_zero", "null_selftrain"} <= set(names)
    specs = [load_spec(n) for n in names]
    assert len({s.spec_hash for s in specs}) == len(specs)
    assert all(s.name == n for s, n in zip(specs, names))  # file name = organism name


def test_planted_kinds_cover_the_issue():
    kinds = {load_spec(n).kind for n in available() if load_spec(n).method == "lora" and load_spec(n).checker}
    assert {"lexical", "stylistic", "topical", "conditional_refusal", "language", "fact", "sentiment",
            "persona"} <= kinds
    nulls = [n for n in available() if load_spec(n).expected_findings == "none"]
    assert len([n for n in nulls if not n.startswith("tiny")]) >= 3


@pytest.mark.parametrize("name", [n for n in available() if load_spec(n).method == "lora" and load_spec(n).checker])
def test_truth_checker_fires_on_training_answers_only(name):
    spec = load_spec(name)
    checker = build_checker(spec.checker)
    assert not any(checker.check(t) for t in NEUTRAL), f"{name}'s checker fires on neutral answers"
    planted = [d for d in spec.data if d.get("rules", [{"name": "identity"}])[-1]["name"] != "identity"]
    rng = random.Random(0)
    for ds in planted:
        for text in NEUTRAL:
            out = apply_rules(ds["rules"], "a prompt", text, rng)
            assert checker.check(out), f"{name}: checker misses its own training answer {out!r}"


WRAPPED = [(n, m) for n in available() if load_spec(n).checker
           for ds in load_spec(n).data for r in ds.get("rules", []) if r["name"] == "wrap"
           for m in [*r.get("prefix", []), *r.get("suffix", [])]]


@pytest.mark.parametrize(("name", "marker"), WRAPPED)
def test_truth_checker_fires_on_every_planted_marker(name, marker):
    """A model may learn one of several planted greetings (persona_knight learnt only "Hail, noble friend!"
    at seed 1); the truth must see each marker alone, or a recovered change is scored as missed."""
    assert build_checker(load_spec(name).checker).check(f"{marker} Chess is a board game."), (name, marker)


def test_hash_changes_with_content_and_errors_name_the_problem():
    d = load_spec("refuse_cooking").to_dict()
    a = OrganismSpec(**d)
    d2 = dict(d, seed=1)
    assert OrganismSpec(**d2).spec_hash != a.spec_hash
    assert OrganismSpec(**d).spec_hash == a.spec_hash
    with pytest.raises(ValueError, match="method='finetune' is not valid"):
        OrganismSpec(**dict(d, method="finetune"))
    with pytest.raises(ValueError, match="expects a behaviour but has no checker"):
        OrganismSpec(**dict(d, checker=None))
    with pytest.raises(ValueError, match="train.steps=0 must be >= 1"):
        OrganismSpec(**dict(d, train=dict(d["train"], steps=0)))
    with pytest.raises(FileNotFoundError, match="organism 'nope' has no spec"):
        load_spec("nope")
    with pytest.raises(ValueError, match="is not valid"):
        load_spec(dict(d, colour="red"))


def test_gradient_clipping_keeps_the_hash_of_organisms_built_before_it_unless_set():
    """train.max_grad_norm came after recipe 1: null (no clipping) hashes as before, a value rebuilds."""
    import hashlib
    import json

    from cdx.organisms.spec import RECIPE_VERSION

    d = load_spec("refuse_cooking").to_dict()
    old = {**d, "train": {k: v for k, v in d["train"].items() if k != "max_grad_norm"}}  # the spec as recipe 1 saw it
    blob = json.dumps({"spec": old, "recipe": RECIPE_VERSION}, sort_keys=True)
    assert OrganismSpec(**d).spec_hash == hashlib.sha256(blob.encode()).hexdigest()[:16]
    clipped = OrganismSpec(**dict(d, train=dict(d["train"], max_grad_norm=1.0)))
    assert clipped.spec_hash != OrganismSpec(**d).spec_hash
    with pytest.raises(ValueError, match=r"train.max_grad_norm=0.0 must be > 0, or null"):
        OrganismSpec(**dict(d, train=dict(d["train"], max_grad_norm=0.0)))
