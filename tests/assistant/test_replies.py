"""parse_prompts on many reply shapes (and garbage); parse_yes_no."""

from __future__ import annotations

import json
import random
import string

import pytest

from cdx.assistant.replies import MAX_CHARS, clean_prompt, parse_prompts, parse_yes_no

A, B, C = "What is your favourite food?", "Tell me about the sea.", "Describe your ship"

SHAPES = {
    "numbered": f"1. {A}\n2. {B}\n3. {C}",
    "numbered_paren": f"1) {A}\n2) {B}\n(3) {C}",
    "bullets": f"- {A}\n* {B}\n\u2022 {C}",
    "prose_around": f"Sure! Here are three prompts:\n\n1. {A}\n2. {B}\n3. {C}\n\nI hope these help!",
    "bold_and_quotes": f'1. **{A}**\n2. "{B}"\n3. \u201c{C}\u201d',
    "labels": f"Prompt 1: {A}\nPrompt 2: {B}\nQuestion 3: {C}",
    "echoed_values": f"1. (score 7.5) {A}\n2. (divergence 3): {B}\n3. (9.0) {C}",
    "upstream_line_format": f"input text 1: {A}\ninput text 2: {B}\ninput text 3: {C}",
    "json_object": json.dumps({"prompt 1": A, "prompt 2": B, "prompt 3": C}),
    "json_object_unordered_keys": json.dumps({"prompt 3": C, "prompt 1": A, "prompt 2": B}),
    "json_list": json.dumps([A, B, C]),
    "json_list_of_objects": json.dumps([{"prompt": A}, {"prompt": B, "why": "x"}, {"prompt": C}]),
    "json_nested": json.dumps({"prompts": [A, B, C]}),
    "json_key_without_digit": json.dumps({"prompt": A, "prompt 2": B, "prompt 3": C}),
    "json_response_keys": json.dumps({"response 1": A, "response 2": B, "response 3": C}),
    "json_in_fence": "```json\n" + json.dumps({"prompt 1": A, "prompt 2": B, "prompt 3": C}, indent=2) + "\n```",
    "json_after_prose": "Here you go: " + json.dumps([A, B, C]) + " Enjoy.",
    "json_trailing_comma": f'{{"prompt 1": "{A}", "prompt 2": "{B}", "prompt 3": "{C}",}}',
    "broken_json_lines": f'{{\n"prompt 1": "{A}",\n"prompt 2": "{B}",\n"prompt 3": "{C}",\n',
    "fenced_list": f"```\n1. {A}\n2. {B}\n3. {C}\n```",
    "value_prefixed": f"Sure.\n(score 1.0) {A}\n(score 9) {B}\n(score 3.5) {C}",
    "questions_only": f"{A}\nWhy is the sky blue?\nI like this one.",
}


@pytest.mark.parametrize("shape", sorted(SHAPES))
def test_every_shape_yields_the_prompts_in_order(shape):
    got = parse_prompts(SHAPES[shape])
    if shape == "questions_only":
        assert got == [A, "Why is the sky blue?"]  # a prose line without '?' is not a prompt
    else:
        assert got == [A, B, C]


def test_limit_and_repeats_within_a_reply():
    assert parse_prompts(f"1. {A}\n2. {A.upper()}\n3. {B}\n4. {C}", limit=2) == [A, B]


@pytest.mark.parametrize("reply", [
    "", "   ", "I cannot help with that.", "Here are some prompts:", "{}", "[]", "[1, 2, 3]", '{"a": 1}',
    "1.\n2.\n3.", "```\n```", "{" * 500, "[" * 500 + "]" * 3, "\x00\x01\x02", "1. 42\n2. ?!", None, b"1. bytes", 17,
    {"prompt 1": "a dict, not text"},
])
def test_garbage_gives_no_prompts_and_never_raises(reply):
    assert parse_prompts(reply) == []


def test_random_garbage_never_raises():
    rng = random.Random(0)
    alphabet = string.printable + "{}[]\"'`*\u2022\u201c\u201d\u00e9\u4e2d"
    for _ in range(500):
        text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 300)))
        out = parse_prompts(text)
        assert isinstance(out, list) and all(isinstance(p, str) and 3 <= len(p) <= MAX_CHARS for p in out)


def test_clean_prompt_drops_headings_numbers_and_overlong_items():
    assert clean_prompt("Here are the prompts:") == ""
    assert clean_prompt("12345") == ""
    assert clean_prompt("x" * (MAX_CHARS + 1)) == ""
    assert clean_prompt('  "Text-based games are fun",  ') == "Text-based games are fun"


@pytest.mark.parametrize("reply,verdict", [
    ("Yes", True), ("yes.", True), ("No", False), ("NO, it does not.", False), ("Yes, but no.", True),
    ("No - yes would be wrong", False), ("Maybe", None), ("", None), (None, None), ("nobody knows", None),
    ("The answer is yes", True), ("yesterday", None),
])
def test_yes_no_first_whole_word_decides(reply, verdict):
    assert parse_yes_no(reply, ["yes"], ["no"]) is verdict


def test_yes_no_custom_vocabulary():
    assert parse_yes_no("Oui, bien sûr", ["oui", "sure"], ["non"]) is True
    assert parse_yes_no("It is safe", ["unsafe"], ["safe"]) is False


@pytest.mark.parametrize("reply,expected", [
    # the exact line the search put into a bank verbatim (issue 12, item 15)
    ("[1. (score 9.0) Why do you enjoy building relationships?", ["Why do you enjoy building relationships?"]),
    # two fully bracketed prompt lines, which were dropped
    ("Here are two prompts:\n[What is your favourite colour?]\n[Describe your ideal weekend.]",
     ["What is your favourite colour?", "Describe your ideal weekend."]),
    ("[1. (score 9.0) Why do you enjoy building relationships?]\n[2. (score 3) Tell me about the sea.]",
     ["Why do you enjoy building relationships?", "Tell me about the sea."]),
    (f"1. [{A}]\n2. [{B}]\n3. {C}]", [A, B, C]),
])
def test_bracketed_lines_are_prompts_without_their_brackets(reply, expected):
    assert parse_prompts(reply) == expected


@pytest.mark.parametrize("reply", ["<|im_end|>", "{not json}", "See [the docs](http://x.y)", "[1, 2, 3]", "[]", "[ ]"])
def test_other_bracketed_lines_are_not_prompts(reply):
    assert parse_prompts(reply) == []
