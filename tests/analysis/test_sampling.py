"""Stage 1: the seeded split, and all modes in one batch equal each mode decoded on its own."""

import pytest

from cdx.analysis.sampling import MODES, RowwiseRule, SampleSettings, mode_rule, sample_pair, split_prompts
from cdx.decoding import ContrastiveDecoder

PROMPTS = ["Tell me a story.", "What is rain?", "Name a colour.", "Why is the sky blue?", "Count to three."]


def test_split_is_seeded_disjoint_and_complete():
    prompts = [f"prompt {i}" for i in range(40)]
    d1, v1 = split_prompts(prompts, 0.25, seed=0)
    d2, v2 = split_prompts(prompts, 0.25, seed=0)
    d3, _ = split_prompts(prompts, 0.25, seed=1)
    assert (d1, v1) == (d2, v2) and d1 != d3
    assert len(d1) == 10 and not set(d1) & set(v1) and sorted(d1 + v1) == list(range(40))


@pytest.mark.parametrize("bad,match", [(["a", "a", "b", "c"], "duplicates"), (["a", "b"], "too few")])
def test_split_rejects_bad_prompt_sets(bad, match):
    with pytest.raises(ValueError, match=match):
        split_prompts(bad, 0.5, seed=0)
    with pytest.raises(ValueError, match="discovery_fraction=1.0"):
        split_prompts(PROMPTS, 1.0, seed=0)


def greedy(pair, rule, per):
    dec = ContrastiveDecoder(pair, rule, strategy="greedy", generations_per_prefix=per, max_new_tokens=6,
                             batch_size=8, stop_at_eos=False)
    return [g for batch in dec.generate(PROMPTS) for g in batch]


def test_rowwise_rule_equals_each_rule_decoded_alone(tiny_pair):
    s = SampleSettings(alpha=1.5)
    together = greedy(tiny_pair, RowwiseRule([mode_rule(m, s) for m in MODES], len(MODES)), len(MODES))
    for k, mode in enumerate(MODES):
        alone = greedy(tiny_pair, mode_rule(mode, s), 1)
        mine = [g for g in together if g.sample_index == k]
        assert [g.token_ids for g in mine] == [g.token_ids for g in alone], mode
        for a, b in zip(mine, alone):
            assert a.tokens["logp_c"] == pytest.approx(b.tokens["logp_c"], abs=1e-5)


def test_plain_modes_differ_on_a_real_pair_and_records_carry_both_logps(tiny_pair):
    recs = sample_pair(tiny_pair, PROMPTS, SampleSettings(max_new_tokens=5, samples_per_prompt=2), modes=MODES,
                       prompt_ids=[10, 11, 12, 13, 14], split="discovery")
    assert len(recs) == len(PROMPTS) * len(MODES) * 2
    assert {r.mode for r in recs} == set(MODES) and {r.prompt_index for r in recs} == set(range(10, 15))
    assert len({r.id for r in recs}) == len(recs)
    for r in recs:
        assert len(r.logp_s) == len(r.logp_c) == r.n_tokens == len(r.token_ids)
    again = sample_pair(tiny_pair, PROMPTS, SampleSettings(max_new_tokens=5, samples_per_prompt=2), modes=MODES,
                        prompt_ids=[10, 11, 12, 13, 14], split="discovery")
    assert [r.text for r in again] == [r.text for r in recs]  # seeded


def test_bad_mode_and_settings_are_named(tiny_pair):
    with pytest.raises(ValueError, match="mode 'loud'"):
        sample_pair(tiny_pair, PROMPTS, modes=("loud",))
    with pytest.raises(ValueError, match="alpha=0"):
        SampleSettings.of(alpha=0)
