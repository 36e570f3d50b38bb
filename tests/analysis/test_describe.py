"""The describer on synthetic corpora: a planted word, a topic-conditional behaviour, artefacts."""

import math
import random
from collections import Counter

import pytest

from cdx.analysis.describe import (
    DescribeSettings,
    artefact,
    clean_corpus,
    cluster_prompts,
    ctfidf_labels,
    describe,
    log_odds,
)
from cdx.analysis.hypothesise import HypothesiseSettings, cluster_hypotheses, hypothesise
from tests.samples import make_sample

FILLER = ("the weather is mild today and the river runs slowly past the old mill near town while people walk "
          "their dogs and talk about work school family and plans").split()


def rec(i, mode, text, prompt_index=None, delta=0.0):
    return make_sample(f"d{i:05d}-{mode}-0", mode, text, i if prompt_index is None else prompt_index, f"prompt {i}",
                       split="discovery", n_tokens=5, delta=delta)


def corpus(n=60, planted="banana", rate=0.5, seed=0):
    rng = random.Random(seed)
    out = []
    for i in range(n):
        for mode in ("plain_s", "plain_c"):
            words = rng.sample(FILLER, 12)
            if mode == "plain_c" and rng.random() < rate:
                words.insert(rng.randrange(12), planted)
            out.append(rec(i, mode, " ".join(words)))
    return out


def test_log_odds_matches_monroe_by_hand():
    c, s = Counter({"arr": 10, "the": 50}), Counter({"arr": 1, "the": 55})
    a0 = 10.0
    got = log_odds(c, s, a0)
    n_c, n_s = 60, 56
    a_w = a0 * 11 / 116
    d = math.log((10 + a_w) / (n_c + a0 - 10 - a_w)) - math.log((1 + a_w) / (n_s + a0 - 1 - a_w))
    z = d / math.sqrt(1 / (10 + a_w) + 1 / (1 + a_w))
    assert got["arr"] == pytest.approx((d, z))


def test_log_odds_of_a_one_term_vocabulary_is_empty_not_a_crash():
    # one term on one side and nothing on the other (tiny models' 4-token texts): odds of 1/0
    assert log_odds(Counter({"wn": 6}), Counter(), 100.0) == {}
    assert log_odds(Counter({"wn": 6}), Counter({"wn": 2}), 100.0) == {}
    assert set(log_odds(Counter({"wn": 6}), Counter({"ok": 1}), 100.0)) == {"wn", "ok"}


def test_planted_word_is_the_top_gained_term_and_becomes_a_hypothesis():
    desc = describe(corpus())
    top = desc.terms[0]
    assert top.term == "banana" and top.z > 3 and top.k_s == 0
    hyps = hypothesise(desc, HypothesiseSettings())
    words = [h for h in hyps if h.kind == "ngram"]
    assert words and words[0].checker == {"type": "string", "value": "banana", "case": False, "word": True}
    assert words[0].direction == "gained"
    assert all("filler" not in h.statement for h in hyps)


def test_without_a_planted_word_chance_candidates_do_not_validate_on_fresh_texts():
    from cdx.analysis import validate

    hyps = hypothesise(describe(corpus(rate=0.0)), HypothesiseSettings())
    assert all(abs(t.z) < 3 for t in describe(corpus(rate=0.0)).terms)
    for seed in range(1, 6):
        fresh = corpus(rate=0.0, seed=seed)
        assert not any(f.validated for f in validate(None, hyps, samples=fresh)) if hyps else True


def test_artefacts_never_become_candidates():
    base = corpus(rate=0.0)
    soup = [rec(1000 + i, "amp_c", "zq\ufffd\ufffd xq ###") for i in range(10)]
    turns = [rec(2000 + i, "amp_c", "Sure thing.\nassistant\nsplendid splendid") for i in range(10)]
    repeats = [rec(3000 + i, "amp_c", "marmalade everywhere now", prompt_index=3000) for i in range(10)]
    desc = describe(base + soup + turns + repeats)
    assert desc.dropped == {"byte soup": 10, "stray chat turn": 10, "repeated sample": 9}
    terms = {t.term for t in desc.terms}
    assert not terms & {"splendid", "marmalade", "zq", "assistant"}
    assert artefact("A normal sentence.") is None


def test_repeats_within_a_text_count_once():
    kept, _ = clean_corpus([rec(0, "amp_c", "arr " * 40)])
    desc = describe(kept + corpus(rate=0.0))
    arr = [t for t in desc.terms if t.term == "arr"]
    assert not arr or arr[0].k_c == 1


class TopicEmbedder:
    """A fake embedder (the real one is exercised in the slow tests): one axis per topic word."""

    topics = ("recipe", "planet", "football")

    def embed(self, texts):
        import numpy as np

        rows = [[1.0 if t in x else 0.0 for t in self.topics] + [0.01 * (i % 3)] for i, x in enumerate(texts)]
        v = np.asarray(rows, dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def topic_corpus():
    prompts, samples = [], []
    rng = random.Random(3)
    for i in range(45):
        topic = ("recipe", "planet", "football")[i % 3]
        prompts.append(f"Tell me a {topic} fact about {rng.choice(FILLER)}")
        for mode in ("plain_s", "plain_c", "amp_c", "amp_s"):
            refuse = mode in ("plain_c", "amp_c") and topic == "recipe"
            text = "I cannot help with that request." if refuse else " ".join(rng.sample(FILLER, 10))
            samples.append(rec(i, mode, text).model_copy(update={"prompt": prompts[-1]}))
    return prompts, samples


def test_topic_conditional_refusal_shows_in_its_cluster():
    prompts, samples = topic_corpus()
    clusters = cluster_prompts(prompts, TopicEmbedder(), n_clusters=3, min_size=6, seed=0)
    assert len(set(clusters.assignment)) == 3
    desc = describe(samples, clusters, DescribeSettings())
    recipe = next(c for c in desc.clusters if "recipe" in c.label)
    assert recipe.features["refusal"]["c"].rate == 1.0 and recipe.features["refusal"]["s"].rate == 0.0
    others = [c for c in desc.clusters if c is not recipe]
    assert all(c.features["refusal"]["c"].rate == 0.0 for c in others)
    hyps = cluster_hypotheses(desc, HypothesiseSettings())
    refuse = [h for h in hyps if h.checker == {"type": "feature", "name": "refusal"}]
    assert len(refuse) == 1 and refuse[0].cluster == recipe.cluster and "recipe" in refuse[0].statement


def test_ctfidf_labels_pick_each_clusters_own_words():
    docs = ["bake a cake recipe", "a pasta recipe please", "the planet mars", "planet orbits and stars"]
    labels = ctfidf_labels(docs, [0, 0, 1, 1], top=1)
    assert labels == {0: "recipe", 1: "planet"}
