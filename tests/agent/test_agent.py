"""The experiment agent on a simulated pair whose behaviour per topic is known exactly.

The fake sampler is the only fake: a comparison model that refuses with a set probability per
topic, a starting model that rarely refuses. Everything else (design, stats, decisions, the
knowledge base) is the real code.
"""

from __future__ import annotations

import random

import pytest

from cdx.agent import AgentSettings, ExperimentAgent, PromptDesigner, template_prompts
from cdx.agent.topics import TOPICS
from cdx.io import read_records
from cdx.knowledge import KnowledgeBase, record_analysis
from tests.samples import make_sample

REFUSE, ANSWER = "I cannot help with that request.", "Sure! Here is how you do it."
TOPIC_OF = {p.text: t for t in TOPICS for p in template_prompts(t)}
BROAD = {"id": "h0", "statement": "The comparison model refuses more often", "kind": "feature", "direction": "gained",
         "cluster": None, "checker": {"type": "feature", "name": "refusal"}, "n_s": 20, "k_s": 1, "n_c": 20, "k_c": 6,
         "rate_s": 0.05, "rate_c": 0.3, "p": 0.04, "q": 0.04, "validated": True, "evidence": []}
TOPICS4 = ["cooking", "travel", "weather", "mathematics"]


class ToySampler:
    """Refusal rates by topic for the comparison side; the starting side refuses at `base`.

    Records have the shape of cdx.analysis.sample_pair's plain samples (what validate tests on).
    """

    def __init__(self, comparison: dict[str, float], base: float = 0.02, seed: int = 0):
        self.comparison, self.base, self.rng, self.calls = comparison, base, random.Random(seed), []
        self.index: dict[str, int] = {}
        self.n_tokens = 0

    def sample(self, prompts):
        self.calls.append(list(prompts))
        out = []
        for p in prompts:
            i = self.index.setdefault(p, len(self.index))
            rate_c = self.comparison.get(TOPIC_OF.get(p, "other"), self.base)
            for mode, model, rate in (("plain_s", "starting", self.base), ("plain_c", "comparison", rate_c)):
                text = REFUSE if self.rng.random() < rate else ANSWER
                out.append(make_sample(f"e{i:05d}-{mode}-0", mode, text, i, p, split="experiment", model=model,
                                       n_tokens=7, delta=0.0))
                self.n_tokens += 7
        return out


def _agent(sampler, kb=None, pair_id=None, logged=None, **settings):
    designer = PromptDesigner(seed=0, on_prompt=(logged.append if logged is not None else None))
    return ExperimentAgent(sampler, designer, AgentSettings(topics=TOPICS4, **settings), kb, pair_id)


def test_broad_refusal_is_narrowed_to_cooking_and_recorded(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    rec = record_analysis([BROAD], kb, model={"starting": {"path": "tiny-random"}, "comparison": {"path": "tiny-random", "seed": 1}})
    hid = kb.finding(rec["finding_ids"][0]).hypothesis_id
    logged = []
    agent = _agent(ToySampler({"cooking": 0.9}), kb, rec["pair_id"], logged)
    d = agent.step({**BROAD, "hypothesis_id": hid})
    assert d.action == "narrow" and d.significant_topics == ["cooking"], d.reason
    assert d.n_per_topic == 24  # power for 0.05 -> 0.30 asks 25 per group, clamped to n_max=24
    (child,) = d.children
    assert child.validated and child.cluster == "cooking" and child.statement.startswith("On cooking prompts only")
    assert child.rate_c > 0.6 and child.model_extra["outside"]["k_c"] <= 3
    # every prompt logged with its source and reason; counterfactuals share the template of a cooking prompt
    assert {r["source"] for r in logged} == {"template"} and all(r["reason"] for r in logged)
    cf = [r for r in logged if r["reason"].startswith("counterfactual")]
    conf = [r for r in logged if r["reason"].startswith("confirm")]
    assert len(cf) == len(conf) == 16 and [r["variant"] for r in cf] == [r["variant"] for r in conf]
    assert not {r["prompt"] for r in conf} & {r["prompt"] for r in logged if r["reason"].startswith("scan")}  # held out
    # the knowledge base: the broad finding was refined into the cooking finding
    broad = kb.finding(rec["finding_ids"][0])
    assert [h.status for h in broad.history] == ["validated", "refined_into"]
    narrow = kb.finding(broad.history[-1].related_finding_id)
    assert narrow.hypothesis is not None and narrow.hypothesis.status == "confirmed"
    assert narrow.statement == child.statement and narrow.hypothesis.parent_id == hid
    assert kb.hypothesis(hid).status == "narrowed"
    assert [v.purpose for v in kb.finding(broad.id).validations] == ["discovery"] + ["experiment"] * 4


def test_general_behaviour_is_confirmed():
    d = _agent(ToySampler({t: 0.8 for t in TOPICS4})).step(BROAD)
    assert d.action == "confirm" and len(d.significant_topics) == 4 and not d.children


def test_no_behaviour_is_rejected():
    d = _agent(ToySampler({})).step(BROAD)
    assert d.action == "reject" and "none of the topics shows it" in d.reason


def test_two_topics_split():
    d = _agent(ToySampler({"cooking": 0.9, "travel": 0.9})).step(BROAD)
    assert d.action == "split" and sorted(c.cluster for c in d.children) == ["cooking", "travel"]
    assert all(c.validated for c in d.children)


def test_replication_of_a_conditional_finding(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    pair = {"starting": {"path": "tiny-random"}, "comparison": {"path": "tiny-random", "seed": 1}}
    rec = record_analysis([{**BROAD, "cluster": "cooking", "statement": "refuses cooking"}], kb, model=pair)
    (f,) = kb.findings()
    agent = _agent(ToySampler({"cooking": 0.95}), kb, rec["pair_id"], replication_n=8)
    out = agent.replicate(f)
    assert out.status == "replicated", out.reason
    assert [h.status for h in kb.finding(f.id).history] == ["validated", "replicated"]
    lost = _agent(ToySampler({}), kb, rec["pair_id"], replication_n=8).replicate(kb.findings()[0], salt=1)
    assert lost.status == "not_replicated"
    assert kb.finding(f.id).status == "not_replicated"


def test_assistant_prompts_are_used_and_counted():
    from cdx.assistant import ScriptedAssistant

    calls = []
    designer = PromptDesigner(ScriptedAssistant(["1. How do I julienne carrots?\n2. What wine goes with risotto?"]),
                              n_assistant=2, on_assistant_call=lambda: calls.append(1))
    pool = designer.pool("cooking")
    assert [p.source for p in pool[:2]] == ["assistant", "assistant"] and pool[0].text == "How do I julienne carrots?"
    designer.pool("cooking")
    assert len(calls) == 1  # asked once per topic


def test_assistant_prompts_are_kept_and_a_resumed_designer_reuses_them_without_asking(tmp_path):
    """Issue 23: an assistant's reply is not reproducible (temperature), so a resumed run must not ask again."""
    from cdx.assistant import ScriptedAssistant

    first, second = "1. How do I julienne carrots?\n2. What wine goes with risotto?", "1. Is tofu healthy?\n2. Why?"
    calls = []
    before = PromptDesigner(ScriptedAssistant([first]), n_assistant=2, seed=3, asked_path=tmp_path / "asked.jsonl")
    drawn = before.prompts("cooking", 6, "scan")
    # the run is killed; the resumed run's assistant would now answer otherwise
    after = PromptDesigner(ScriptedAssistant([second]), n_assistant=2, seed=3, asked_path=tmp_path / "asked.jsonl",
                           on_assistant_call=lambda: calls.append(1))
    assert after.prompts("cooking", 6, "scan") == drawn and calls == []
    assert [p.text for p in after.pool("cooking")[:2]] == ["How do I julienne carrots?", "What wine goes with risotto?"]
    after.pool("travel")  # a topic not asked before the kill is asked now, and kept
    assert calls == [1] and [r["topic"] for r in read_records(tmp_path / "asked.jsonl")] == ["cooking", "travel"]


@pytest.mark.parametrize("settings, match", [
    ({"alpha": 0}, "alpha=0 and power=0.8 must lie strictly between 0 and 1"),
    ({"n_min": 10, "n_max": 5}, "need 1 <= n_min <= n_max"),
    ({"general_fraction": 0}, "general_fraction=0 must lie in"),
], ids=["alpha", "n-bounds", "general-fraction"])
def test_bad_settings(settings, match):
    with pytest.raises(ValueError, match=match):
        AgentSettings(**settings)


def test_bad_hypothesis_and_topics():
    with pytest.raises(ValueError, match="direction 'up'"):
        _agent(ToySampler({})).step({**BROAD, "direction": "up"})
    with pytest.raises(ValueError, match="at least two topics"):
        ExperimentAgent(ToySampler({}), PromptDesigner(), AgentSettings(topics=["cooking"])).step(BROAD)
    with pytest.raises(ValueError, match="topic 'knitting' has no built-in templates|no prompts for topic 'knitting'"):
        ExperimentAgent(ToySampler({}), PromptDesigner(), AgentSettings(topics=["cooking", "knitting"])).step(BROAD)


class PhrasingSampler(ToySampler):
    """Refuses every topic's requests phrased "How do I ...?" (the refuse_cooking organism's confound)."""

    def sample(self, prompts):
        out = super().sample(prompts)
        for r in out:
            if r.model == "comparison":
                r.text = REFUSE if r.prompt.startswith("How do I") and self.rng.random() < 0.9 else ANSWER
        return out


def test_phrasing_condition_found_when_topics_do_not_explain_it():
    d = _agent(PhrasingSampler({})).step(BROAD)
    assert d.action == "narrow" and d.significant_topics == ["phrasing:task:0"], d.reason
    (child,) = d.children
    assert child.statement.startswith("On requests phrased 'How do I ...?' only") and child.validated
    assert child.model_extra["outside"]["k_c"] <= 3  # the same requests phrased otherwise are answered
    assert "by topic:" in d.reason


def test_phrasing_off_leaves_the_topic_decision():
    d = _agent(PhrasingSampler({}), phrasing=False).step(BROAD)
    assert d.action in ("confirm", "reject") and not d.children


def test_draw_covers_every_phrasing_and_matches_positions_across_topics():
    from cdx.agent.topics import TEMPLATES, draw

    n_templates = sum(len(t) for t in TEMPLATES.values())
    cooking = draw(template_prompts("cooking"), n_templates, seed=3)
    assert len({p.variant.rsplit(":", 1)[0] for p in cooking}) == n_templates  # one of each template
    travel = draw(template_prompts("travel"), n_templates, seed=3)
    assert [p.variant for p in cooking] == [p.variant for p in travel]  # matched: counterfactual variants
    assert len(draw(template_prompts("cooking"), 100, seed=3)) == len(template_prompts("cooking"))
    skip = {p.text for p in cooking}
    assert not skip & {p.text for p in draw(template_prompts("cooking"), 10, seed=3, exclude=skip)}
