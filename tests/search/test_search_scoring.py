"""Prompt-score alignment: each prompt keeps its own score, whatever order generations come back in."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from cdx.decoding import ContrastiveDecoder, Generation, ProbDiff
from cdx.decoding.engine import TOKEN_KEYS
from cdx.models.tiny import tiny_tokenizer
from cdx.search.scoring import TEXT_METRICS, PromptScorer


class ShuffledDecoder:
    """Generations whose kl_sc is 10 * prompt length + sample index, yielded in a scrambled order."""

    def __init__(self, generations_per_prefix: int = 3, batch_size: int = 2):
        self.pair = SimpleNamespace(tokenizer=tiny_tokenizer())
        self.generations_per_prefix, self.batch_size, self.seed = generations_per_prefix, batch_size, 0
        self.calls = []

    def generate(self, prompts, skip_batches=0, seed=None):
        self.calls.append((list(prompts), self.seed if seed is None else seed))
        batches = []
        for start in range(0, len(prompts), self.batch_size):
            batch = []
            for i in range(start, min(start + self.batch_size, len(prompts))):
                for j in range(self.generations_per_prefix):
                    v = 10.0 * len(prompts[i]) + j
                    tokens = {k: [v, v] for k in TOKEN_KEYS}
                    tokens["js"] = [-v, -v]
                    batch.append(Generation(i, j, prompts[i], [5, 6], tokens, "length"))
            batches.append(batch[::-1])  # samples and prompts reversed within a batch
        yield from batches[::-1]  # and batches reversed


def test_each_prompt_keeps_its_own_score_and_generation_mean():
    prompts = ["a", "bbbb", "cc", "ddddddd", "eee"]
    dec = ShuffledDecoder()
    scored = PromptScorer(dec, "kl_sc_mean").score(prompts, seed=7)
    for p, s in zip(prompts, scored):
        assert s.sample_divergences == [10.0 * len(p) + j for j in range(3)]
        assert s.divergence == pytest.approx(10.0 * len(p) + 1.0)  # mean of +0, +1, +2
        assert len(s.responses) == 3
    assert dec.calls == [(prompts, 7)]  # one generate call for all prompts, seeded by the cycle


def test_metric_is_configurable_and_checked():
    scored = PromptScorer(ShuffledDecoder(1), "js_mean").score(["ab"], seed=0)
    assert scored[0].divergence == -20.0
    assert "kl_cs_mean" in TEXT_METRICS and "js_max" in TEXT_METRICS
    with pytest.raises(ValueError, match="per-text metric"):
        PromptScorer(ShuffledDecoder(), "kl")
    assert PromptScorer(ShuffledDecoder(), "kl_sc_mean").score([], seed=0) == []


def test_batched_scores_equal_one_at_a_time_scores_on_a_real_pair(tiny_pair):
    """Greedy decoding is deterministic: a prompt's score must not depend on its batch or position."""
    dec = ContrastiveDecoder(tiny_pair, ProbDiff(1.0, -1.0), strategy="greedy", generations_per_prefix=1,
                             max_new_tokens=5, batch_size=2)
    prompts = ["The quick brown fox", "Hi", "What is the capital of France?", "Ahoy matey", "I think"]
    together = PromptScorer(dec, "kl_sc_mean").score(prompts, seed=0)
    alone = [PromptScorer(dec, "kl_sc_mean").score([p], seed=0)[0] for p in prompts]
    assert len({round(s.divergence, 4) for s in together}) == len(prompts)  # distinct: a swap would show
    for t, a in zip(together, alone):
        assert t.divergence == pytest.approx(a.divergence, rel=1e-4, abs=1e-5)
        assert t.responses == a.responses
