"""The judge path: hypotheses written by an assistant, and checked by it blinded (scripted and real client)."""

import pytest

from cdx.analysis import Hypothesis, validate
from cdx.analysis.checkers import build_checker
from cdx.analysis.hypothesise import HypothesiseSettings, assistant_hypotheses, parse_assistant_hypotheses
from cdx.analysis.judge import Judge
from cdx.assistant import ScriptedAssistant
from tests.samples import make_sample


def sample(i, mode, text):
    return make_sample(f"v{i:05d}-{mode}-0", mode, text, i, f"prompt {i}",
                       model="comparison" if mode == "plain_c" else "starting", delta=0.0, n_tokens=3)


def pirate_judge(messages, seed):
    text = messages[-1]["content"].split("<<<")[1].split(">>>")[0]
    return "Yes." if "arr" in text.lower() else "No, it does not."


def held_out(n=30):
    return [s for i in range(n) for s in (sample(i, "plain_s", f"Hello number {i}."),
                                          sample(i, "plain_c", f"Arr, number {i} be fine." if i % 3 else f"Hi {i}."))]


def test_scripted_judge_validates_a_natural_language_hypothesis_blinded():
    assistant = ScriptedAssistant(replies=pirate_judge)
    judge = Judge(assistant, seed=3)
    h = Hypothesis("talks like a pirate", {"type": "judge", "question": "Does the text talk like a pirate?"})
    f = validate(None, [h], samples=held_out(), judge=judge)[0]
    assert (f.k_s, f.k_c, f.n_c) == (0, 20, 30) and f.validated
    assert judge.calls == 60 and judge.unparsed == 0
    for call in assistant.calls:  # blinded: one text, never who wrote it
        body = " ".join(m["content"] for m in call["messages"]).lower()
        assert "starting" not in body and "comparison" not in body and body.count("<<<") == 1
    judged = [c["messages"][-1]["content"].split("<<<")[1].split(">>>")[0].strip() for c in assistant.calls]
    in_sample_order = [s.text for s in held_out()]
    assert sorted(judged) == sorted(in_sample_order) and judged != in_sample_order  # randomised order


def test_unparsed_verdicts_count_as_no_and_are_counted():
    judge = Judge(ScriptedAssistant(replies=["maybe"], loop=True))
    assert judge.checker("Is it long?").check("text") is False and judge.unparsed == 1


def test_judge_checker_needs_a_judge():
    with pytest.raises(ValueError, match="needs an assistant as judge"):
        build_checker({"type": "judge", "question": "pirate?"})


REPLY = """Here you go:
```json
[{"statement": "B talks like a pirate", "direction": "gained", "keywords": ["arr", "matey"]},
 {"statement": "B is rude to the user", "direction": "gained", "keywords": []},
 {"statement": "x", "direction": "sideways"}]
```"""


def test_assistant_hypotheses_follow_the_schema():
    samples = [sample(i, m, f"text {i}") for i in range(8) for m in ("plain_s", "plain_c", "amp_c", "amp_s")]
    a = ScriptedAssistant(replies=[REPLY])
    hyps = assistant_hypotheses(a, samples, HypothesiseSettings(use_assistant=True), seed=0)
    assert [h.statement for h in hyps] == ["the comparison model talks like a pirate", "the comparison model is rude to the user"]
    assert hyps[0].checker["type"] == "any" and build_checker(hyps[0].checker).check("Arr!")
    assert hyps[1].checker["type"] == "judge" and all(h.kind == "assistant" for h in hyps)
    prompt = a.calls[0]["messages"][-1]["content"]
    assert "generator A" in prompt and "comparison" not in prompt  # blinded labels


def test_unstructured_replies_fall_back_to_lines():
    got = parse_assistant_hypotheses("1. B says arr a lot more\n2. B asks more questions back")
    assert [g.statement for g in got] == ["B says arr a lot more", "B asks more questions back"]
    assert parse_assistant_hypotheses("") == []


@pytest.mark.slow
def test_judge_with_the_real_openai_client_on_loopback(served):
    from cdx.assistant import OpenAIAssistant

    url, model = served
    judge = Judge(OpenAIAssistant(model=model, base_url=url, api_key_env=None, timeout=120, max_retries=1),
                  max_tokens=4)
    checker = judge.checker("Does the text mention the sea?")
    verdicts = [checker.check("The sea was calm and blue."), checker.check("I like bread.")]
    assert all(isinstance(v, bool) for v in verdicts) and judge.calls == 2
