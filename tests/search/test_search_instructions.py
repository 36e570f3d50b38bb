"""Instruction files: built-in targets, schema errors, and the messages built from them."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cdx.search.instructions import builtin_instructions, load_instructions
from cdx.search.prompting import judge_messages, repair_messages, request_messages, shown_values

MINIMAL = {"system": "You write prompts.", "user": "{examples}\nWrite {n} more.", "seeds": ["Hello there"]}


def write(tmp_path, data, name="t.yaml", raw: str | None = None):
    path = tmp_path / name
    path.write_text(raw if raw is not None else json.dumps(data))  # JSON is valid YAML too
    return str(path)


@pytest.mark.parametrize("name", ["persona", "social_bias", "refusal", "knowledge_edit"])
def test_builtin_targets_load_with_seeds_and_a_criterion(name):
    assert name in builtin_instructions()
    ins = load_instructions(name)
    assert ins.name == name and len(ins.seeds) >= 8 and ins.criterion is not None
    assert ins.criterion.yes == ["yes"] and ins.criterion.no == ["no"]  # YAML 1.1 would make these booleans
    msgs = request_messages(ins, ins.seeds[:3], np.array([10.0, 5.0, 0.0]), 4)
    assert [m["role"] for m in msgs] == ["system", "user"]
    assert all(s in msgs[1]["content"] for s in ins.seeds[:3]) and "4" in msgs[1]["content"]


def test_json_and_yaml_files_load(tmp_path):
    assert load_instructions(write(tmp_path, MINIMAL, "a.json")).seeds == ["Hello there"]
    yaml_text = "system: S\nuser: '{examples} {n}'\ncriterion:\n  text: Is it?\n  yes: [yes, sure]\n  no: [no]\n"
    ins = load_instructions(write(tmp_path, None, "b.yaml", yaml_text))
    assert ins.criterion.yes == ["yes", "sure"] and ins.name == "b"


@pytest.mark.parametrize("change,message", [
    ({"user": "{examples} {count}"}, "unknown placeholders ['count']"),
    ({"user": "a lone { brace"}, "literal brace"),
    ({"system": ""}, "system"),
    ({"sytem": "typo"}, "sytem"),
    ({"seeds": ["ok", "  "]}, "seeds [1] are empty"),
    ({"example_with_value": "{i} {prompt}", "example": "{value}"}, "example"),
    ({"criterion": {"text": "Q?", "yes": ["yes"], "no": ["Yes"]}}, "share"),
    ({"criterion": {"text": "Q?", "template": "{prompt} {answer}"}}, "answer"),
])
def test_invalid_files_give_clear_errors(tmp_path, change, message):
    with pytest.raises(ValueError, match="is invalid") as err:
        load_instructions(write(tmp_path, {**MINIMAL, **change}))
    assert message in str(err.value)


def test_unreadable_or_missing_files(tmp_path):
    with pytest.raises(ValueError, match="not valid YAML"):
        load_instructions(write(tmp_path, None, "bad.yaml", "system: [unclosed"))
    with pytest.raises(ValueError, match="must hold a mapping"):
        load_instructions(write(tmp_path, None, "list.yaml", "- a\n- b\n"))
    with pytest.raises(FileNotFoundError, match="persona"):
        load_instructions("no_such_target")


def test_values_shown_hidden_and_random(tmp_path):
    ins = load_instructions("persona")
    div = np.array([3.0, 2.0, 1.0, 1.0])
    order, vals = shown_values(div, "shown", np.random.default_rng(0))
    assert order.tolist() == [0, 1, 2, 3] and vals.tolist() == [10.0, 5.0, 0.0, 0.0]  # 10 * minmax
    order, none = shown_values(div, "hidden", np.random.default_rng(0))
    assert none is None and order.tolist() == [0, 1, 2, 3]
    rng = np.random.default_rng(5)
    hand = np.random.default_rng(5).uniform(0, 10, 4)
    order, rand = shown_values(div, "random", rng)
    assert order.tolist() == np.argsort(-hand).tolist() and rand == pytest.approx(np.round(np.sort(hand)[::-1], 1))
    shown = request_messages(ins, ["p1", "p2"], np.array([10.0, 0.0]), 6)[1]["content"]
    hidden = request_messages(ins, ["p1", "p2"], None, 6)[1]["content"]
    assert "1. (score 10.0) p1" in shown and ins.values_note in shown
    assert "1. p1" in hidden and "score" not in hidden


def test_first_request_repair_and_judge_messages():
    ins = load_instructions("persona")
    first = request_messages(ins, [], None, 6)
    assert first[1]["content"] == ins.user_first.format(n=6, examples="", values_note="")
    rep = repair_messages(ins, first, "garbage")
    assert rep[-2] == {"role": "assistant", "content": "garbage"} and rep[-1]["content"] == ins.repair
    judge = judge_messages(ins.criterion, "P?", "R.")
    assert judge[0]["content"] == ins.criterion.text and judge[-1]["content"] == "Prompt: P?\nResponse: R."
