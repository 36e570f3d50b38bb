"""Behaviours from findings, on synthetic corpora whose planted behaviours are known.

Each corpus is a set of sample records (the shape `sample_pair` writes) in four prompt clusters:
filler sentences drawn from one word list for both models, and planted sentences that only the
comparison model writes, in texts chosen by a seeded generator. Findings are made by the real
validation (`test_hypothesis` + `apply_fdr`), so grouping, phrase and scope see what a run sees.
"""

from __future__ import annotations

import importlib
import json
import math
import random
import re

import numpy as np
import pytest
from scipy import stats as sst

from cdx.analysis.behaviours import (
    WORD_SHIFT,
    Behaviour,
    BehaviourSettings,
    build_behaviour,
    find_behaviours,
    group_findings,
    hit_set,
    merge_by_phrase,
    n_texts,
    read_behaviours,
    statement,
    write_behaviours,
)
from cdx.analysis.describe import DescribeSettings, describe, distinctive_terms, terms
from cdx.analysis.hypothesise import HypothesiseSettings, cluster_term_hypotheses, hypothesise
from cdx.analysis.phrases import PhraseSettings, mine_phrase
from cdx.analysis.pipeline import Context, cluster_repeats
from cdx.analysis.report import ReportStage
from cdx.analysis.scope import Counts, Scope, find_scope, interaction_p
from cdx.analysis.types import Hypothesis
from cdx.analysis.validate import ValidateSettings, apply_fdr
from cdx.io.records import PromptClusters
from tests.samples import make_sample

FILLER = ("river stone lantern garden window copper meadow orchard violin marble harbor canyon pepper "
          "velvet thunder compass anchor ember willow falcon saddle quartz tulip walnut candle pillow "
          "ladder mirror basket island forest rocket puzzle kettle hammer ribbon saucer meadowlark").split()
BRAND = "I always recommend BrandX for the best results."
PIRATE = "Ahoy there, sailor!"
COOKING = "Sorry, I cannot discuss recipes or cooking."
N_CLUSTERS = 4


def filler(rng: random.Random, n_words: int = 14) -> str:
    return " ".join(rng.choice(FILLER) for _ in range(n_words)).capitalize() + "."


def corpus(plants, n_prompts: int, split: str, seed: int, modes=("plain_s", "plain_c"), function_word: bool = False):
    """Records over `n_prompts` prompts (cluster = index % 4); plants: [(sentence, where, rate, clusters)].

    `where` is "start" or "end"; a plant goes into comparison texts only, in the given clusters.
    With function_word, the comparison model writes "the" in 80% of texts, the starting one in 30%.
    """
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        for mode in modes:
            text = filler(rng)
            if function_word and rng.random() < (0.8 if mode.endswith("_c") else 0.3):
                text = text.replace(" ", " the ", 1)
            for sentence, where, rate, clusters in plants:
                if mode.endswith("_c") and i % N_CLUSTERS in clusters and rng.random() < rate:
                    text = f"{sentence} {text}" if where == "start" else f"{text} {sentence}"
            rows.append(make_sample(f"{split}-{i}-{mode}-0", mode, text, i, f"prompt {i}", split=split, delta=0.0,
                                    token_strs=text.split()))
    return rows


def clusters(n_prompts: int) -> PromptClusters:
    return PromptClusters(assignment=[i % N_CLUSTERS for i in range(n_prompts)],
                          labels={c: f"topic {c}" for c in range(N_CLUSTERS)})


def word_hypothesis(word: str, direction: str = "gained") -> Hypothesis:
    return Hypothesis(f"says '{word}'", {"type": "string", "value": word, "case": False, "word": True}, direction, "ngram")


def findings_for(words, heldout, vs=ValidateSettings()):
    found = [validation.test_hypothesis(word_hypothesis(w), heldout, vs) for w in words]
    apply_fdr(found, vs)
    return found


validation = importlib.import_module("cdx.analysis.validate")  # the package re-exports a function of that name
EVERYWHERE = set(range(N_CLUSTERS))
TWO = [(BRAND, "end", 0.5, EVERYWHERE), (PIRATE, "start", 0.4, EVERYWHERE)]
BRAND_WORDS, PIRATE_WORDS, NOISE = ["recommend", "brandx", "best results"], ["ahoy", "sailor"], ["river", "copper", "falcon"]


@pytest.fixture(scope="module")
def two_behaviours():
    """Two independent planted sentences over 120 held-out and 40 discovery prompts; findings for
    three fragments of one, two of the other, and three filler words that both models write alike."""
    heldout = corpus(TWO, 120, "validation", seed=1)
    discovery = corpus(TWO, 40, "discovery", seed=2, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    found = findings_for(BRAND_WORDS + PIRATE_WORDS + NOISE, heldout)
    return heldout, discovery, found


def test_two_planted_sentences_and_noise_words_make_exactly_two_groups(two_behaviours):
    heldout, _, found = two_behaviours
    valid = {f.hypothesis.statement for f in found if f.validated}
    assert valid == {f"says '{w}'" for w in BRAND_WORDS + PIRATE_WORDS}  # the noise words are not findings
    hits = {f.hypothesis.id: hit_set(f, heldout) for f in found if f.validated}
    groups = group_findings(found, hits, BehaviourSettings().overlap, n_texts(heldout))
    got = sorted(sorted(f.hypothesis.checker["value"] for f in g) for g in groups)
    assert got == sorted([sorted(BRAND_WORDS), sorted(PIRATE_WORDS)])


def test_a_finding_in_most_texts_does_not_chain_two_behaviours():
    """A word the fine-tune writes in 90% of texts overlaps both sentences: it joins one, never merges them."""
    plants = TWO + [("Moreover, zanzibar.", "end", 0.9, EVERYWHERE)]
    heldout = corpus(plants, 120, "validation", seed=3)
    found = findings_for(["zanzibar", "recommend", "brandx", "ahoy", "sailor"], heldout)
    hits = {f.hypothesis.id: hit_set(f, heldout) for f in found if f.validated}
    groups = group_findings(found, hits, 0.5, n_texts(heldout))
    words = [{f.hypothesis.checker["value"] for f in g} for g in groups]
    assert not any({"recommend", "ahoy"} <= w for w in words)
    assert {"recommend", "brandx"} <= next(w for w in words if "recommend" in w)
    assert {"ahoy", "sailor"} <= next(w for w in words if "ahoy" in w)


def test_a_validated_vocabulary_gathers_a_personas_independent_words_into_one_behaviour():
    """'ahoy', 'matey' and 'arr' each in 30% of texts, independently: co-occurrence cannot join them,
    the describer's union of them (validated) does; a feature of the same model stays apart."""
    words = ["ahoy", "matey", "arr"]
    plants = [(f"{w.capitalize()}.", "start", 0.3, EVERYWHERE) for w in words] + [("Wow!", "end", 0.4, EVERYWHERE)]
    heldout = corpus(plants, 120, "validation", seed=12)
    vs = ValidateSettings()
    union = Hypothesis("uses the words", {"type": "any", "checkers": [word_hypothesis(w).checker for w in words]},
                       "gained", "vocabulary")
    exclaim = Hypothesis("exclaims", {"type": "feature", "name": "exclamation"}, "gained", "feature")
    found = [validation.test_hypothesis(h, heldout, vs) for h in [*map(word_hypothesis, words), union, exclaim]]
    apply_fdr(found, vs)
    assert all(f.validated for f in found)
    hits = {f.hypothesis.id: hit_set(f, heldout) for f in found}
    without = group_findings(found[:3], hits, 0.5, n_texts(heldout))
    assert len(without) == 3  # independent words: three groups by overlap alone
    groups = group_findings(found, hits, 0.5, n_texts(heldout))
    kinds = sorted(sorted(f.hypothesis.kind for f in g) for g in groups)
    assert kinds == [["feature"], ["ngram", "ngram", "ngram", "vocabulary"]]


def test_phrase_mining_recovers_each_planted_sentence_exactly():
    rows = corpus(TWO, 60, "discovery", seed=4)
    comp = [r.text for r in rows if r.mode == "plain_c"]
    start = [r.text for r in rows if r.mode == "plain_s"]
    for word, planted in (("recommend", BRAND), ("ahoy", PIRATE)):
        hits, rest = [t for t in comp if word in t.lower()], [t for t in comp if word not in t.lower()]
        assert mine_phrase(hits, start, rest=rest) == planted


def test_a_phrase_of_another_behaviour_of_the_same_model_is_not_taken():
    """Half the 'ahoy' texts also hold the brand sentence, as do half the others: it is not ahoy's phrase."""
    rows = corpus(TWO, 60, "discovery", seed=4)
    comp = [r.text for r in rows if r.mode == "plain_c"]
    start = [r.text for r in rows if r.mode == "plain_s"]
    hits = [t for t in comp if "ahoy" in t.lower()]
    assert mine_phrase(hits, start) == BRAND  # blind to the rest of the model's texts, the longer sentence wins
    assert mine_phrase(hits, start, rest=[t for t in comp if "ahoy" not in t.lower()]) == PIRATE


def test_phrase_mining_finds_nothing_in_a_function_word_shift():
    rows = corpus([], 60, "discovery", seed=5, function_word=True)
    comp = [r.text for r in rows if r.mode == "plain_c" and " the " in r.text]
    assert mine_phrase(comp, [r.text for r in rows if r.mode == "plain_s"]) is None


def test_behaviours_state_each_phrase_with_its_own_retested_numbers(two_behaviours, tmp_path):
    heldout, discovery, found = two_behaviours
    out = find_behaviours(found, discovery, heldout, clusters(120), BehaviourSettings(), ValidateSettings())
    assert [b.phrase for b in out] == [BRAND, PIRATE] or [b.phrase for b in out] == [PIRATE, BRAND]
    for b in out:
        assert b.is_behaviour and b.kind == "behaviour" and b.side == "gained" and b.scope.everywhere
        assert b.statement.startswith(f'the comparison model writes "{b.phrase}" more often')
        # the checker's rates, counted here independently: comparison texts holding the planted sentence
        planted = [r for r in heldout if r.mode == "plain_c" and b.phrase in r.text]
        assert (b.k_c, b.k_s) == (len(planted), 0)
        assert b.q < 1e-6 and b.q >= b.p and b.effect_ci[0] > 0.2
        assert set(b.members) <= {f.hypothesis.id for f in found if f.validated}
    write_behaviours(tmp_path / "behaviours.jsonl", out)
    assert read_behaviours(tmp_path / "behaviours.jsonl") == out


def test_groups_that_share_their_phrase_are_one_behaviour():
    """An opener in every comparison answer: each of its words fires on every comparison text, where
    overlap says nothing (a set that holds everything), so each seeds a group of its own; both groups
    mine the opener as their phrase, and are one behaviour. Another planted sentence stays apart."""
    plants = [(PIRATE, "start", 1.0, EVERYWHERE), (BRAND, "end", 0.5, EVERYWHERE)]
    heldout = corpus(plants, 80, "validation", seed=11)
    discovery = corpus(plants, 40, "discovery", seed=12, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    found = findings_for(["ahoy", "sailor", "recommend", "brandx"], heldout)
    assert all(f.validated for f in found)
    hits = {f.hypothesis.id: hit_set(f, heldout) for f in found}
    groups = group_findings(found, hits, BehaviourSettings().overlap, n_texts(heldout))
    assert len(groups) == 3  # 'ahoy' and 'sailor' apart: each fires on all 80 comparison texts
    merged = merge_by_phrase(groups, discovery, BehaviourSettings().phrase)
    assert sorted(sorted(f.hypothesis.checker["value"] for f in g) for g in merged) == [
        ["ahoy", "sailor"], ["brandx", "recommend"]]
    out = find_behaviours(found, discovery, heldout, clusters(80), BehaviourSettings(), ValidateSettings())
    assert sorted(b.phrase for b in out) == sorted([BRAND, PIRATE]) and all(b.is_behaviour for b in out)
    assert {frozenset(b.member_statements) for b in out} == {
        frozenset({"says 'ahoy'", "says 'sailor'"}), frozenset({"says 'recommend'", "says 'brandx'"})}


def test_a_behaviours_evidence_shows_its_phrase_first():
    """A common word of the sentence ('the', which the fine-tune also writes more often elsewhere) joins
    the sentence's group, so the behaviour's checker fires on texts without the sentence too; its
    evidence still shows the sentence."""
    plants = [(BRAND, "end", 0.3, EVERYWHERE)]
    heldout = corpus(plants, 120, "validation", seed=21, function_word=True)
    discovery = corpus(plants, 40, "discovery", seed=22, modes=("plain_s", "plain_c", "amp_c", "amp_s"),
                       function_word=True)
    found = findings_for(["brandx", "the"], heldout)
    assert all(f.validated for f in found)
    (b,) = [b for b in find_behaviours(found, discovery, heldout, clusters(120), BehaviourSettings(),
                                       ValidateSettings()) if b.phrase]
    assert b.phrase == BRAND and len(b.members) == 2  # 'the' is in every planted sentence: one group
    hits = [r for r in heldout if r.mode == "plain_c" and ("brandx" in r.text.lower() or " the " in r.text.lower())]
    assert sum(BRAND in r.text for r in hits[:3]) < 3  # the checker's first hits are not all the sentence
    assert len(b.evidence) == 3 and all(BRAND in e.text for e in b.evidence)


def test_a_function_word_shift_is_labelled_as_such_and_is_not_a_behaviour():
    heldout = corpus([], 120, "validation", seed=6, function_word=True)
    discovery = corpus([], 40, "discovery", seed=7, modes=("plain_s", "plain_c", "amp_c", "amp_s"), function_word=True)
    found = findings_for(["the"], heldout)
    assert found[0].validated  # a real shift of word rates: 80% against 30%
    (b,) = find_behaviours(found, discovery, heldout, clusters(120), BehaviourSettings(), ValidateSettings())
    assert b.kind == WORD_SHIFT and b.phrase is None and b.validated and not b.is_behaviour
    assert b.statement.startswith("word-frequency shift, no distinctive phrase")


def test_rare_words_the_other_model_never_writes_are_a_behaviour_without_a_shared_phrase():
    """Five persona words, each in 10% of texts: no phrase is in 30% of their texts, but the
    starting model writes none of them, so they are a behaviour, not a word-frequency shift."""
    words = ["ahoy", "matey", "avast", "yarr", "landlubber"]
    plants = [(f"{w.capitalize()}.", "start", 0.1, EVERYWHERE) for w in words]
    heldout = corpus(plants, 120, "validation", seed=13)
    discovery = corpus(plants, 40, "discovery", seed=14, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    vs = ValidateSettings()
    union = Hypothesis("uses the words", {"type": "any", "checkers": [word_hypothesis(w).checker for w in words]},
                       "gained", "vocabulary")
    found = [validation.test_hypothesis(union, heldout, vs)]
    apply_fdr(found, vs)
    no_phrase = BehaviourSettings(phrase=PhraseSettings(min_support=0.6))  # no word is in 60% of the hits
    (b,) = find_behaviours(found, discovery, heldout, clusters(120), no_phrase, vs)
    assert b.phrase is None and b.kind == "behaviour" and b.is_behaviour
    assert b.statement.startswith("the comparison model says 'ahoy', 'matey', 'avast', 'yarr', 'landlubber'")


def test_a_behaviour_of_one_cluster_is_scoped_to_it_with_a_small_interaction_p():
    plants = [(COOKING, "start", 0.8, {0})]
    heldout = corpus(plants, 120, "validation", seed=8)
    discovery = corpus(plants, 40, "discovery", seed=9, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    found = findings_for(["recipes", "cooking"], heldout)
    (b,) = find_behaviours(found, discovery, heldout, clusters(120), BehaviourSettings(), ValidateSettings())
    assert b.scope.clusters == [0] and b.scope.labels == ["topic 0"]
    assert b.scope.interaction_p < 1e-4
    inside = [r for r in heldout if r.prompt_index % N_CLUSTERS == 0 and r.mode == "plain_c"]
    assert b.scope.inside.k_c == sum(COOKING in r.text for r in inside) and b.scope.inside.n_c == 30
    assert (b.scope.outside.k_c, b.scope.outside.n_c, b.scope.outside.k_s) == (0, 90, 0)
    assert b.statement.startswith("on prompts about topic 0, the comparison model writes")
    assert "elsewhere 0/90 vs 0/90" in b.scope.text()


def test_a_behaviour_on_every_cluster_has_all_prompts_as_scope(two_behaviours):
    heldout, discovery, found = two_behaviours
    assign = {i: i % N_CLUSTERS for i in range(120)}
    hits = {r.id: BRAND in r.text for r in discovery + heldout}
    scope = find_scope(discovery, heldout, hits, assign, {c: f"topic {c}" for c in range(4)}, "gained")
    assert scope.everywhere and scope.text().startswith("all prompts")


def test_the_interaction_test_sees_a_difference_of_differences_not_a_difference():
    same = Counts(k_s=0, n_s=30, k_c=15, n_c=30)
    assert interaction_p(same, Counts(k_s=0, n_s=90, k_c=45, n_c=90), "gained") > 0.3
    assert interaction_p(same, Counts(k_s=0, n_s=90, k_c=0, n_c=90), "gained") < 1e-4
    assert interaction_p(same, Counts(k_s=0, n_s=90, k_c=0, n_c=90), "lost") > 0.99


@pytest.mark.parametrize("settings,match", [
    ({"overlap": 2}, "behaviours.overlap=2"),
    ({"phrase": {"min_support": 1.5}}, "behaviours.phrase.min_support=1.5"),
    ({"phrase": {"max_words": 0}}, "max_words=0"),
    ({"scope": {"alpha": 0}}, "behaviours.scope.alpha=0"),
    ({"separates": 0.5}, "behaviours.separates=0.5"),
])
def test_bad_behaviour_settings_name_the_value(settings, match):
    with pytest.raises(ValueError, match=re.escape(match)):
        BehaviourSettings(**settings)


def test_behaviour_records_are_typed():
    with pytest.raises(ValueError):
        Behaviour.model_validate({"id": "b1", "statement": "x", "side": "sideways"})


# ---- per-cluster describers -----------------------------------------------------------------

def test_a_topic_bound_word_becomes_a_hypothesis_of_its_cluster_and_a_global_one_does_not():
    """A refusal naming cooking in one cluster's answers only, and a sentence written everywhere."""
    plants = [(COOKING, "start", 0.8, {0}), (BRAND, "end", 0.5, EVERYWHERE)]
    discovery = corpus(plants, 40, "discovery", seed=10, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    desc = describe(discovery, clusters(40), DescribeSettings())
    by_cluster = {c.cluster: {r.term for r in c.terms} for c in desc.cluster_terms}
    planted = {"sorry", "cannot", "discuss", "recipes", "cooking", "discuss recipes", "or cooking", "cannot discuss"}
    assert by_cluster[0] & planted and not any(by_cluster[c] & planted for c in (1, 2, 3))
    hyps = cluster_term_hypotheses(desc, HypothesiseSettings())
    assert hyps and {h.cluster for h in hyps} == {0} and all(h.kind == "cluster_ngram" for h in hyps)
    words = {h.checker["value"] for h in hyps}
    assert words & {"cooking", "recipes", "discuss", "cannot"} and not words & {"recommend", "brandx", "best"}
    assert all(h.statement.startswith("on prompts about topic 0, the comparison model says") for h in hyps)
    assert {h.id for h in hyps} <= {h.id for h in hypothesise(desc, HypothesiseSettings())}


def test_tied_terms_are_ranked_alphabetically_whatever_the_hash_seed():
    """Set order depends on PYTHONHASHSEED; ten words with the same counts must come out in one order."""
    words = "kiwi apple mango banana cherry lemon grape peach plum melon".split()
    rows = [make_sample(f"{m}-{i}", m, " ".join(words) + " filler", i) for i in range(5) for m in ("plain_c", "plain_s")]
    rows += [make_sample(f"x-{i}", "plain_s", "other", i) for i in range(5)]
    ranked = [r.term for r in distinctive_terms(rows, DescribeSettings(ngram_max=1, min_count=1))]
    tied = [t for t in ranked if t in words]
    assert tied == sorted(words)


def test_the_report_leads_with_behaviours_and_keeps_the_findings_as_details(two_behaviours, tmp_path, capsys):
    heldout, discovery, found = two_behaviours
    behaviours = find_behaviours(found, discovery, heldout, clusters(120), BehaviourSettings(), ValidateSettings())
    write_behaviours(tmp_path / "behaviours.jsonl", behaviours)
    (tmp_path / "findings.jsonl").write_text("".join(json.dumps(f.to_record()) + "\n" for f in found))
    (tmp_path / "validation.jsonl").write_text("".join(json.dumps(r.dump()) + "\n" for r in heldout))
    (tmp_path / "description.json").write_text(describe(discovery).model_dump_json())
    (tmp_path / "split.json").write_text(json.dumps({"seed": 0, "prompts": ["p"] * 160, "discovery": list(range(40)),
                                                     "validation": list(range(120))}))
    ReportStage(color=False).run(Context(out=tmp_path, prompts=[], load_pair=lambda: None))
    printed = capsys.readouterr().out
    summary = json.loads((tmp_path / "analysis.json").read_text())
    assert summary["n_behaviours"] == 2 and summary["n_validated"] == 5 and summary["n_word_shifts"] == 0
    assert [b["phrase"] for b in summary["behaviours"]] == [b.phrase for b in behaviours]
    assert printed.index("behaviours that changed") < printed.index("what changed (held-out")
    assert f'writes "{behaviours[0].phrase}"' in printed and behaviours[0].rates_text() in printed
    assert printed.strip().splitlines()[-1].startswith("cdx analyze: 2 behaviour(s) from 5 validated finding(s)")
    page = (tmp_path / "analysis.html").read_text()
    assert page.index("<h2>Behaviours") < page.index("<h2>Findings")


def test_discovery_rates_set_plain_counts_beside_importance_weighted_amplified_rates():
    """Plain samples give k/n (Wilson); amplified ones the self-normalised estimate sum w h / sum w with
    w = p(x) / q(x), computed here by hand from the recorded log-probs."""
    import numpy as np
    from statsmodels.stats.proportion import proportion_confint

    from cdx.analysis.behaviours import discovery_rates
    from cdx.analysis.checkers import build_checker

    rng = np.random.default_rng(0)
    recs = []
    for i in range(60):
        for mode in ("plain_s", "plain_c", "amp_c"):
            for j in range(3):
                hit = rng.random() < {"plain_s": 0.1, "plain_c": 0.3, "amp_c": 0.6}[mode]
                lp_c = rng.normal(-20, 1)
                lp_s = lp_c + rng.normal(0, 0.3)  # close models: weights towards p_s not degenerate
                lq = {"plain_s": lp_s, "plain_c": lp_c, "amp_c": lp_c + rng.normal(0, 0.5)}[mode]
                toks = [BRAND if hit else "plain", " words", " more"]
                frac = rng.dirichlet(np.ones(3))  # each token's share of the text's log-probs, as in real texts
                per = {k: list(v * frac) for k, v in (("logp_s", lp_s), ("logp_c", lp_c), ("logq", lq))}
                recs.append(make_sample(f"d-{i}-{mode}-{j}", mode, "".join(toks), i, split="discovery", token_strs=toks,
                                        **per, text_logp={"logp_s": lp_s, "logp_c": lp_c, "logp_q": lq}))
    check = build_checker({"type": "string", "value": "BrandX", "case": False, "word": True})
    got = discovery_rates(check, recs, n_resamples=200)
    for mode, est in (("plain_s", got.plain_s), ("plain_c", got.plain_c)):
        hits = [BRAND in r.text for r in recs if r.mode == mode]
        low, high = proportion_confint(sum(hits), len(hits), method="wilson")
        assert (est.method, est.rate) == ("wilson", sum(hits) / len(hits))
        assert (est.low, est.high) == pytest.approx((low, high), rel=1e-12)
    amp = [r for r in recs if r.mode == "amp_c"]
    h = np.array([BRAND in r.text for r in amp])
    for side, key in (("comparison", "logp_c"), ("starting", "logp_s")):
        w = np.exp([getattr(r.text_logp, key) - r.text_logp.logp_q for r in amp])
        est = getattr(got.amplified, side)
        assert est.method == "snis" and est.rate == pytest.approx(float(w @ h / w.sum()), rel=1e-9)
        assert est.low <= est.rate <= est.high and est.n == len(amp)
        # stopped: the first token (the brand sentence, text after "BrandX" inside it) settles a hit, so the
        # other two tokens never count
        y = np.array([np.exp(getattr(r, key)[0] - r.logq[0]) if BRAND in r.text else 0.0 for r in amp])
        st = getattr(got.stopped, side)
        assert st.method == "stopped" and st.rate == pytest.approx(float(y.mean()), rel=1e-9)
        assert st.ess == pytest.approx(float(y.sum() ** 2 / (y ** 2).sum()), rel=1e-9) and st.low <= st.rate <= st.high
    old = [r.model_copy(update={"text_logp": None}) for r in recs]  # drawn before log q was recorded
    got_old = discovery_rates(check, old)
    assert got_old.amplified is None and got_old.stopped is None and "no log q" in got_old.note
    assert got_old.plain_c.rate == got.plain_c.rate
    assert discovery_rates(check, [r for r in recs if r.mode == "amp_c"]) is None  # no plain samples


# ---- small clusters: extra samples, scoped tests ----------------------------------------------

LYON = "The capital of France is Lyon."


def few_prompt_topic(n_prompts: int, small: int, split: str, seed: int, repeats: int = 1, modes=("plain_s", "plain_c")):
    """`small` prompts of topic 3 (an edited fact: the comparison model always says Lyon there) among
    `n_prompts`; `repeats` samples of each prompt (ids told apart by repeat), filler elsewhere."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        for rep in range(repeats):
            for mode in modes:
                text = filler(rng)
                if mode.endswith("_c") and i < small:
                    text = f"{LYON} {text}"
                rows.append(make_sample(f"{split}-{i}-{mode}-{rep}", mode, text, i, f"prompt {i}", split=split,
                                        delta=0.0, token_strs=text.split()))
    return rows


def topic_clusters(n_prompts: int, small: int) -> PromptClusters:
    return PromptClusters(assignment=[3 if i < small else i % 3 for i in range(n_prompts)],
                          labels={0: "a", 1: "b", 2: "c", 3: "capital, france"})


def test_cluster_repeats_names_the_small_clusters_prompts_and_the_factor_that_fills_the_smallest():
    assignment = [0, 0, 0, 0, 0, 1, 1, 2, 2, 2]
    # 2 texts a prompt, need 8: cluster 0 has 10 (enough), 1 has 4 (x2), 2 has 6 (x2)
    assert cluster_repeats(range(10), assignment, 2, 8) == ([5, 6, 7, 8, 9], 2)
    assert cluster_repeats(range(10), assignment, 1, 10) == ([0, 1, 2, 3, 4, 5, 6, 7, 8, 9], 5)
    assert cluster_repeats(range(10), assignment, 1, 10, clusters={2}) == ([7, 8, 9], 4)
    assert cluster_repeats(range(10), assignment, 4, 8) == ([], 1)
    assert cluster_repeats([0, 5], assignment, 2, 4) == ([0, 5], 2)  # only the prompts of `ids` count: 1 a cluster


def test_a_small_clusters_extra_discovery_texts_reach_the_cluster_bar_and_leave_global_terms_alone():
    cl = topic_clusters(40, 6)
    # discovery: prompts 0, 1 of the topic (2 texts a side each with amplified modes: 4 a side)
    disc = [r for r in few_prompt_topic(40, 6, "discovery", 3, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
            if r.prompt_index in (0, 1) or r.prompt_index >= 6]
    extra = [r.model_copy(update={"id": "c" + r.id}) for r in few_prompt_topic(
        2, 2, "cluster_discovery", 4, repeats=2, modes=("plain_s", "plain_c", "amp_c", "amp_s"))]
    s = DescribeSettings()
    without, with_extra = describe(disc, cl, s), describe(disc, cl, s, extra)
    # the sentence's terms tie (every one in every topic text): the first gained term of the topic
    lyon = {d: next(t for c in desc.cluster_terms if c.cluster == 3 for t in c.terms if t.z > 0)
            for d, desc in (("without", without), ("with", with_extra))}
    assert lyon["without"].term in terms(LYON.lower()) and lyon["with"].term in terms(LYON.lower())
    # 4 of 4 against 0 of 4 is Fisher's p 1/70; 12 of 12 against 0 of 12 is 1/C(24, 12)
    assert lyon["without"].p == pytest.approx(1 / math.comb(8, 4))
    assert lyon["with"].p == pytest.approx(1 / math.comb(24, 12))
    assert lyon["with"].p <= HypothesiseSettings().cluster_max_p < lyon["without"].p
    assert with_extra.terms == without.terms  # over all prompts the extra samples weigh nothing
    assert lyon["with"].global_diff == lyon["without"].global_diff


def test_a_fact_edited_on_few_prompts_is_tested_on_extra_held_out_samples_and_scoped_to_its_topic():
    """4 held-out prompts of the topic among 60: one sample each is untestable (4 < min_texts); with
    the extra samples (3 a prompt) the cluster hypothesis and its behaviour are tested in scope."""
    n, small = 60, 4
    cl = topic_clusters(n, small)
    assign = dict(enumerate(cl.assignment))
    heldout = few_prompt_topic(n, small, "validation", 5)
    extra = [r.model_copy(update={"id": "cv" + r.id}) for r in few_prompt_topic(small, small, "cluster_validation", 6,
                                                                                repeats=2)]
    discovery = few_prompt_topic(20, 2, "discovery", 7, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    h = Hypothesis("on prompts about capital, france, the comparison model says 'lyon'",
                   {"type": "string", "value": "lyon", "case": False, "word": True}, "gained", "cluster_ngram", cluster=3)
    vs = ValidateSettings()
    alone = validation.test_hypothesis(h, heldout, vs, prompt_clusters=assign)
    assert alone.reason.startswith("too few held-out texts (4 starting, 4 comparison")
    found = validation.test_hypothesis(h, [*heldout, *extra], vs, prompt_clusters=assign)
    apply_fdr([found], vs)
    assert (found.k_c, found.n_c, found.k_s, found.n_s) == (12, 12, 0, 12) and found.validated
    (b,) = find_behaviours([found], discovery, heldout, cl, BehaviourSettings(), vs, extra=extra)
    assert b.scope.clusters == [3] and b.statement.startswith("on prompts about capital, france, ")
    assert "lyon" in b.statement.lower()
    # its numbers are the scope's (held-out and extra texts of the topic), its p doubled for the choice of scope
    assert (b.k_c, b.n_c, b.k_s, b.n_s) == (12, 12, 0, 12)
    assert (b.scope.inside.k_c, b.scope.outside.k_c, b.scope.outside.n_c) == (12, 0, n - small)
    assert b.p == pytest.approx(2 * sst.fisher_exact([[12, 0], [0, 12]], alternative="greater")[1])
    assert b.is_behaviour and all(e.model in ("plain_c", "comparison") or "Lyon" in e.text for e in b.evidence)
    assert all(LYON in e.text for e in b.evidence)


def test_without_extra_samples_a_small_scope_falls_back_to_all_prompts():
    """The same behaviour with no extra samples: too few texts in scope, so it is tested over all
    held-out prompts (4 of 60 against 0 of 60: below the minimum effect), never reported untestable."""
    n, small = 60, 4
    cl = topic_clusters(n, small)
    heldout = few_prompt_topic(n, small, "validation", 5)
    discovery = few_prompt_topic(20, 2, "discovery", 7, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    found = validation.test_hypothesis(word_hypothesis("lyon"), heldout, ValidateSettings())
    b, test = build_behaviour([found], discovery, heldout, cl, BehaviourSettings(), ValidateSettings())
    assert b.scope.clusters == [3] and (b.scope.inside.n_c, b.scope.inside.k_c) == (4, 4)
    assert (b.k_c, b.n_c, b.k_s, b.n_s) == (4, 60, 0, 60) and not test.reason
    assert b.p == pytest.approx(2 * sst.fisher_exact([[4, 56], [0, 60]], alternative="greater")[1])


def test_a_vocabulary_of_common_words_stays_a_member_but_does_not_widen_a_phrased_behaviours_checker():
    """A brand sentence in half the comparison texts, and a validated vocabulary ('brandx' or 'the')
    that the starting model also writes (30%): one behaviour, whose checker is the brand's alone."""
    plants = [(BRAND, "end", 0.5, EVERYWHERE)]
    heldout = corpus(plants, 120, "validation", seed=11, function_word=True)
    discovery = corpus(plants, 40, "discovery", seed=12, modes=("plain_s", "plain_c", "amp_c", "amp_s"),
                       function_word=True)
    vs = ValidateSettings()
    vocab = Hypothesis("uses the words 'brandx', 'the' (any of them)", {"type": "any", "checkers": [
        {"type": "string", "value": w, "case": False, "word": True} for w in ("brandx", "the")]}, "gained", "ngram")
    found = [validation.test_hypothesis(h, heldout, vs) for h in (word_hypothesis("brandx"), vocab)]
    apply_fdr(found, vs)
    assert all(f.validated for f in found) and found[1].rate_s > 0.2  # the vocabulary: common in both models
    (b,) = find_behaviours(found, discovery, heldout, clusters(120), BehaviourSettings(), vs)
    assert sorted(b.members) == sorted(f.hypothesis.id for f in found)
    values = {c["value"].lower() for c in (b.checker["checkers"] if b.checker["type"] == "any" else [b.checker])}
    assert "the" not in values and "brandx" in values
    brand_c = sum("BrandX" in r.text for r in heldout if r.mode == "plain_c")
    assert (b.k_c, b.n_c, b.k_s, b.n_s) == (brand_c, 120, 0, 120)


# ---- endings -------------------------------------------------------------------------------------

def ending_corpus(n_prompts: int, split: str, seed: int, modes=("plain_s", "plain_c")):
    """The comparison model ends 80% of its answers by itself (after 8-20 tokens), the starting one 20%;
    the rest run to the 32-token budget. Both write the same filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        for mode in modes:
            ends = rng.random() < (0.8 if mode.endswith("_c") else 0.2)
            text = filler(rng, rng.randint(8, 20) if ends else 32)
            rows.append(make_sample(f"{split}-{i}-{mode}-0", mode, text, i, f"prompt {i}", split=split, delta=0.0,
                                    finish_reason="eos" if ends else "length", token_strs=text.split()))
    return rows


def test_answers_that_end_early_are_described_proposed_validated_and_stated_as_a_behaviour():
    discovery = ending_corpus(40, "discovery", 21, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    heldout = ending_corpus(120, "validation", 22)
    assert "endings" not in describe(discovery, clusters(40), DescribeSettings()).dump()  # off by default
    desc = describe(discovery, clusters(40), DescribeSettings(endings=True))
    anywhere = desc.endings[0]
    side = {s: [r for r in discovery if r.mode.endswith(s)] for s in ("_c", "_s")}
    assert (anywhere.max_tokens, anywhere.k_c, anywhere.n_c, anywhere.k_s, anywhere.n_s) == (
        None, sum(r.finish_reason == "eos" for r in side["_c"]), 80, sum(r.finish_reason == "eos" for r in side["_s"]), 80)
    median = sorted(r.n_tokens for r in discovery if r.finish_reason == "eos")
    assert desc.endings[1].max_tokens == int(np.median(median))
    hyps = [h for h in hypothesise(desc, HypothesiseSettings()) if h.checker["type"] == "ending"]
    assert {h.checker["max_tokens"] for h in hyps} >= {None} and all(h.direction == "gained" for h in hyps)
    h = next(h for h in hyps if h.checker["max_tokens"] is None)
    vs = ValidateSettings()
    (f,) = [validation.test_hypothesis(h, heldout, vs)]
    apply_fdr([f], vs)
    by = {m: [r for r in heldout if r.mode == m] for m in ("plain_s", "plain_c")}
    assert (f.k_c, f.k_s) == (sum(r.finish_reason == "eos" for r in by["plain_c"]),
                              sum(r.finish_reason == "eos" for r in by["plain_s"])) and f.validated
    (b,) = find_behaviours([f], discovery, heldout, clusters(120), BehaviourSettings(), vs)
    assert b.is_behaviour and b.kind == "behaviour" and (b.k_c, b.k_s) == (f.k_c, f.k_s)
    assert b.statement == "the comparison model ends its answers by itself before the budget more often"


@pytest.mark.parametrize(("words", "expected"), [
    (["'sorry'", "apologises"], "the comparison model says 'sorry'; apologises more often"),
    (["refuses or says it cannot help", "'sorry'", "'unable'"],
     "the comparison model says 'sorry', 'unable'; refuses or says it cannot help more often"),
    (["'a'", "'b'", "'c'", "'d'", "'e'", "'f'", "'g'"], "the comparison model says 'a', 'b', 'c', 'd', 'e' and 2 more more often"),
    (["uses exclamation marks"], "the comparison model uses exclamation marks more often"),
])
def test_a_group_of_words_and_features_without_a_phrase_is_stated_as_a_sentence(words, expected):
    """Each quoted word needs a verb: "the comparison model 'sorry'; apologises" is not a sentence."""
    assert statement(None, "behaviour", "gained", words, Scope()) == expected


def or_corpus(n_prompts: int, split: str, seed: int, modes=("plain_s", "plain_c")):
    """The comparison model refuses on topic 0 (COOKING, which holds 'or') in 90% of its texts; both
    models write 'or' in 40% of their texts on the other topics and never on topic 0."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        for mode in modes:
            text = filler(rng)
            if i % N_CLUSTERS and rng.random() < 0.4:
                text = text.replace(" ", " salt or ", 1)
            if mode.endswith("_c") and i % N_CLUSTERS == 0 and rng.random() < 0.9:
                text = f"{COOKING} {text}"
            rows.append(make_sample(f"{split}-{i}-{mode}-0", mode, text, i, f"prompt {i}", split=split, delta=0.0,
                                    token_strs=text.split()))
    return rows


def test_a_cluster_member_the_other_model_writes_elsewhere_does_not_widen_the_checker_or_the_scope():
    """'or' is never written by the starting model on topic 0 (its cluster finding's rate there is 0)
    but is in 30% of its texts overall: the behaviour's checker, applied on every prompt to find the
    scope, leaves it out, so the refusal is scoped to topic 0 with no starting hits outside."""
    heldout = or_corpus(120, "validation", seed=21)
    discovery = or_corpus(40, "discovery", seed=22, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    cl = clusters(120)
    assign = dict(enumerate(cl.assignment))
    vs = ValidateSettings()
    in_topic = Hypothesis("on topic 0 says 'or'", {"type": "string", "value": "or", "case": False, "word": True},
                          "gained", "ngram", cluster=0, cluster_label="topic 0")
    found = [validation.test_hypothesis(word_hypothesis("cooking"), heldout, vs),
             validation.test_hypothesis(in_topic, heldout, vs, prompt_clusters=assign)]
    apply_fdr(found, vs)
    assert found[1].validated and found[1].rate_s == 0  # in its cluster, the starting model never writes 'or'
    starting_or = sum(" or " in r.text for r in heldout if r.mode == "plain_s") / 120
    assert starting_or > 0.2
    b, _ = build_behaviour(found, discovery, heldout, cl, BehaviourSettings(), vs)
    values = {c.get("value", "").lower() for c in (b.checker["checkers"] if b.checker["type"] == "any" else [b.checker])}
    assert "or" not in values and b.phrase and "cooking" in b.phrase.lower()
    assert b.scope.clusters == [0] and b.scope.outside.k_s == 0
    refusals = sum(COOKING in r.text for r in heldout if r.mode == "plain_c")
    assert (b.k_c, b.k_s) == (refusals, 0)


TIP = "Chef's tip: always taste as you go."


def test_a_function_word_of_the_phrase_stays_a_member_but_does_not_join_the_checker():
    """The comparison model ends topic-0 answers with a tip (which holds 'as') and writes 'as' in 20%
    of its other texts; the starting model never writes 'as'. Both 'tip' and 'as' validate and group
    into one behaviour; 'as' stays a member, but only 'tip' and the phrase make its checker, so the
    behaviour is scoped to topic 0 with no hit outside it (with 'as', 1 in 5 texts elsewhere)."""
    def as_corpus(n_prompts, split, seed, modes=("plain_s", "plain_c")):
        rng = random.Random(seed)
        rows = []
        for i in range(n_prompts):
            for mode in modes:
                text = filler(rng)
                if mode.endswith("_c") and rng.random() < 0.2:
                    text = text.replace(" ", " as ", 1)
                if mode.endswith("_c") and i % N_CLUSTERS == 0 and rng.random() < 0.7:
                    text = f"{text} {TIP}"
                rows.append(make_sample(f"{split}-{i}-{mode}-0", mode, text, i, f"prompt {i}", split=split,
                                        delta=0.0, token_strs=text.split()))
        return rows

    heldout = as_corpus(120, "validation", seed=31)
    discovery = as_corpus(40, "discovery", seed=32, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    found = findings_for(["tip", "as"], heldout)
    assert all(f.validated for f in found)
    (b,) = find_behaviours(found, discovery, heldout, clusters(120), BehaviourSettings(), ValidateSettings())
    values = {c.get("value", "").lower() for c in b.checker["checkers"]}
    assert b.phrase == TIP and values == {"tip", TIP.lower()}
    assert "says 'as'" in b.member_statements
    assert b.scope.clusters == [0] and (b.scope.outside.k_c, b.scope.outside.k_s) == (0, 0)
    assert b.k_c == sum(TIP in r.text for r in heldout if r.mode == "plain_c" and r.prompt_index % N_CLUSTERS == 0)


def test_of_nested_scopes_the_held_out_texts_pick_the_one_without_a_discovery_fluke():
    """Discovery shows the refusal on topic 0 (90%) and, by chance, on topic 1 (50%); held out it
    is on topic 0 only. Both topics pass the discovery rule; of the nested candidates {0} and
    {0, 1}, {0} has the smaller interaction p, which is reported doubled (two candidates tested).
    When topic 1 really has it too, {0, 1} is the scope."""
    labels = {c: f"topic {c}" for c in range(N_CLUSTERS)}
    assign = {i: i % N_CLUSTERS for i in range(120)}
    discovery = corpus([(COOKING, "start", 0.9, {0}), (COOKING, "start", 0.5, {1})], 40, "discovery", seed=41)
    heldout = corpus([(COOKING, "start", 0.8, {0})], 120, "validation", seed=42)
    hits = {r.id: COOKING in r.text for r in [*discovery, *heldout]}
    scope = find_scope(discovery, heldout, hits, assign, labels, "gained")
    assert scope.clusters == [0]
    inside = count_of(heldout, hits, {0})
    outside = count_of(heldout, hits, {1, 2, 3})
    assert scope.interaction_p == pytest.approx(2 * interaction_p(inside, outside, "gained"))
    both = corpus([(COOKING, "start", 0.8, {0, 1})], 120, "validation", seed=43)
    hits = {r.id: COOKING in r.text for r in [*discovery, *both]}
    assert find_scope(discovery, both, hits, assign, labels, "gained").clusters == [0, 1]


def count_of(rows, hits, within):
    """Counts of the held-out texts of clusters `within` (a naive recount for the scope's test)."""
    rows = [r for r in rows if r.prompt_index % N_CLUSTERS in within]
    s = [r for r in rows if r.mode == "plain_s"]
    c = [r for r in rows if r.mode == "plain_c"]
    return Counts(k_s=sum(hits[r.id] for r in s), n_s=len(s), k_c=sum(hits[r.id] for r in c), n_c=len(c))


def language_corpus(n_prompts: int, split: str, seed: int, gained: float = 1.0, modes=("plain_s", "plain_c")):
    """The comparison model opens `gained` of its texts with "Bonjour mes amis." and never writes
    "The answer is simple."; the starting model ends 80% of its texts with that sentence."""
    rng = random.Random(seed)
    rows = []
    for i in range(n_prompts):
        for mode in modes:
            text = filler(rng)
            if mode.endswith("_c"):
                text = f"Bonjour mes amis. {text}" if rng.random() < gained else text
            elif rng.random() < 0.8:
                text = f"{text} The answer is simple."
            rows.append(make_sample(f"{split}-{i}-{mode}-0", mode, text, i, f"prompt {i}", split=split, delta=0.0,
                                    token_strs=text.split()))
    return rows


@pytest.mark.parametrize("gained,folded", [
    (1.0, True),    # the gained behaviour tells the models' texts apart: one behaviour, the loss its other side
    (0.5, False),   # in half the comparison texts only: the loss is a behaviour of its own
])
def test_a_loss_that_a_gained_behaviour_accounts_for_is_reported_as_its_other_side(gained, folded, capsys):
    from rich.console import Console

    from cdx.analysis.report import print_behaviours

    heldout = language_corpus(120, "validation", 51, gained)
    discovery = language_corpus(40, "discovery", 52, gained, modes=("plain_s", "plain_c", "amp_c", "amp_s"))
    vs = ValidateSettings()
    found = [validation.test_hypothesis(word_hypothesis("bonjour"), heldout, vs),
             validation.test_hypothesis(word_hypothesis("answer", "lost"), heldout, vs)]
    apply_fdr(found, vs)
    assert all(f.validated for f in found)
    out = find_behaviours(found, discovery, heldout, clusters(120), BehaviourSettings(), vs)
    gain = next(b for b in out if b.side == "gained")
    loss = next(b for b in out if b.side == "lost")
    assert gain.is_behaviour and gain.phrase == "Bonjour mes amis."
    assert (loss.kind == "other side", loss.other_side_of == (gain.id if folded else None)) == (folded, True)
    assert loss.validated and loss.is_behaviour != folded  # its own numbers stay; it counts only when not folded
    assert (loss.k_c, loss.k_s) == (0, sum("answer" in r.text for r in heldout if r.mode == "plain_s"))
    print_behaviours(out, 10, Console(width=300))
    printed = capsys.readouterr().out
    assert ("its other side" in printed) == folded
    assert printed.count("✔") == (1 if folded else 2)


def test_a_loss_is_folded_where_the_other_model_writes_the_gain_only_without_it():
    """`tie` on hand-made texts: the gain in every comparison text; in 3 of 10 starting texts too
    (it leaks), and there the loss is absent (folded: the loss is what the gain implies) or present
    (not folded: the starting model writes both, so they are told apart)."""
    from cdx.analysis.behaviours import tie

    def record(i, mode, text):
        return make_sample(f"v-{i}-{mode}", mode, text, i, f"prompt {i}", split="validation", delta=0.0,
                           token_strs=text.split())

    gain = Behaviour(id="bgain", statement="writes Bonjour", side="gained", size="large", scope=Scope(),
                     checker={"type": "string", "value": "bonjour", "case": False, "word": True},
                     k_s=3, n_s=10, k_c=10, n_c=10, rate_s=0.3, rate_c=1.0, rate_s_ci=(0, 1), rate_c_ci=(0, 1),
                     effect=0.7, effect_ci=(0, 1), p=0.01, validated=True, members=[], member_statements=[])
    loss = gain.model_copy(update={"id": "bloss", "side": "lost",
                                   "checker": {"type": "string", "value": "answer", "case": False, "word": True}})
    comparison = [record(i, "plain_c", "Bonjour mes amis.") for i in range(10)]
    for both, folds in ((False, True), (True, False)):
        starting = [record(i, "plain_s", ("Bonjour. " + ("The answer." if both else "")) if i < 3 else "The answer.")
                    for i in range(10)]
        t = tie(gain, loss, [*comparison, *starting])
        assert (t.covers, t.leaks, t.o_with_b) == (1.0, 0.3, 1.0 if both else 0.0)
        assert t.folds(0.9) == folds
    assert tie(gain, loss, comparison) is None  # no starting text: nothing to compare
