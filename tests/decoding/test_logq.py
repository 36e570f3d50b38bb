"""log q(x), the log-probability of each sampled text under the distribution it was drawn from
(issue 19), against a naive recomputation: uncached full forwards of both models, the rule, and
temperature / top-k / top-p written out by hand in float64."""

import json
import math

import pytest
import torch

from cdx.decoding import ContrastiveDecoder, LogitDiff, ProbDiff
from cdx.io.jsonl import dumps_line
from cdx.io.records import TextRecord, invalid_records

PROMPTS = ["Hello there", "What is the capital of France? Tell me now.", "Ahoy", "I think that people should"]


def _all(dec, prompts):
    return [g for batch in dec.generate(prompts) for g in batch]


def _warp(scores: torch.Tensor, temperature: float, top_k: int | None, top_p: float | None) -> torch.Tensor:
    """Temperature, then top-k, then top-p (the decoder's order), by hand, on a float64 row (V,)."""
    x = scores.double() / temperature
    if top_k:
        x = torch.where(x >= x.topk(top_k).values[-1], x, float("-inf"))
    if top_p is not None:
        p = torch.softmax(x, -1)
        order = p.argsort(descending=True)
        mass_before = p[order].cumsum(0) - p[order]
        cut = order[mass_before >= top_p]  # the fewest top tokens with mass >= top_p stay
        x = x.clone()
        x[cut] = float("-inf")
    return x


@torch.no_grad()
def naive_logq(pair, rule, prompt, tokens, temperature=1.0, top_k=None, top_p=None,
               repetition_penalty=1.0) -> list[float]:
    """log q of each token of `tokens`: both models re-run over the whole sequence at every step."""
    s = torch.tensor([pair.starting.prompt_ids(prompt)])
    c = torch.tensor([pair.comparison.prompt_ids(prompt)])
    out = []
    for tok in tokens:
        lp_s = torch.log_softmax(pair.starting.model(input_ids=s).logits[0, -1].float(), -1)
        lp_c = torch.log_softmax(pair.comparison.model(input_ids=c).logits[0, -1].float(), -1)
        scores = rule(lp_s[None], lp_c[None])[0]
        if scores.max() == float("-inf"):  # the decoder's fallback for a rule that leaves no token
            scores = lp_s
        for t in set(tokens[: len(out)]):  # the repetition penalty, on the tokens generated so far
            scores = scores.clone()
            scores[t] = scores[t] / repetition_penalty if scores[t] > 0 else scores[t] * repetition_penalty
        out.append(float(torch.log_softmax(_warp(scores, temperature, top_k, top_p), -1)[tok]))
        s = torch.cat([s, torch.tensor([[tok]])], 1)
        c = torch.cat([c, torch.tensor([[tok]])], 1)
    return out


CASES = {
    "probdiff": (ProbDiff(1, -1), dict()),
    "logitdiff_plausibility": (LogitDiff(alpha=1.0, plausibility_beta=0.1), dict()),
    "logitdiff_comparison_temperature_top_k": (LogitDiff(alpha=0.5, amplified="comparison"),
                                               dict(temperature=0.7, top_k=20)),
    "probdiff_top_p_multinomial": (ProbDiff(1, -1), dict(temperature=1.3, top_p=0.8, sampler="multinomial")),
    "logitdiff_top_p_gating": (LogitDiff(alpha=2.0, similarity_gating_intensity=3.0), dict(top_p=0.9)),
    "probdiff_repetition_penalty_top_k": (ProbDiff(1, -1), dict(repetition_penalty=1.5, top_k=30)),
}


@pytest.mark.parametrize("case", list(CASES))
def test_recorded_logq_equals_a_naive_recomputation_of_the_sampling_distribution(tiny_pair, case):
    rule, kw = CASES[case]
    dec = ContrastiveDecoder(tiny_pair, rule, strategy="sample", max_new_tokens=8, batch_size=4, seed=2,
                             generations_per_prefix=2, stop_at_eos=False, **kw)
    gens = _all(dec, PROMPTS)
    assert len(gens) == 2 * len(PROMPTS)
    warp = {k: kw[k] for k in ("temperature", "top_k", "top_p", "repetition_penalty") if k in kw}
    for g in gens:
        ref = naive_logq(tiny_pair, rule, g.prompt, g.token_ids, **warp)
        assert g.logq == pytest.approx(ref, abs=1e-4)
        assert g.text_logp().logp_q == pytest.approx(math.fsum(ref), abs=1e-4)
        assert g.text_logp().logp_s == pytest.approx(math.fsum(g.tokens["logp_s"]))
    # not a trivial comparison: the drawn tokens' log q are far from 0 and differ from log p_s
    all_q = [v for g in gens for v in g.logq]
    assert min(all_q) < -1.0
    assert max(abs(a - b) for g in gens for a, b in zip(g.logq, g.tokens["logp_s"])) > 0.1


@pytest.mark.parametrize("rule", [ProbDiff(1, 0), LogitDiff(starting_weight=1.0, comparison_weight=0.0)])
def test_weights_one_zero_give_log_q_equal_to_log_p_s(tiny_pair, rule):
    dec = ContrastiveDecoder(tiny_pair, rule, strategy="sample", max_new_tokens=10, batch_size=4, seed=5,
                             stop_at_eos=False)
    for g in _all(dec, PROMPTS):
        assert g.logq == pytest.approx(g.tokens["logp_s"], abs=1e-5)
        tl = g.text_logp()
        assert tl.logp_q == pytest.approx(tl.logp_s, abs=1e-4)


def test_greedy_is_a_point_mass_and_beam_is_not_a_sample(tiny_pair):
    greedy = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), strategy="greedy", max_new_tokens=6, batch_size=4,
                                     stop_at_eos=False), PROMPTS)
    assert all(g.logq == [0.0] * 6 and g.text_logp().logp_q == 0.0 for g in greedy)
    beam = _all(ContrastiveDecoder(tiny_pair, ProbDiff(), strategy="beam", num_beams=2, max_new_tokens=6,
                                   batch_size=4, stop_at_eos=False), PROMPTS)
    assert all(g.logq is None and g.text_logp().logp_q is None for g in beam)
    fields = beam[0].logprob_fields()
    assert fields["logq"] is None and fields["text_logp"]["logp_q"] is None


@pytest.fixture
def comparison_without_half_the_vocabulary(tiny_pair):
    """The comparison model puts probability 0 (a -inf logit) on every odd token id."""

    def hook(_module, _args, out):
        out.logits[..., 1::2] = float("-inf")
        return out

    handle = tiny_pair.comparison.model.register_forward_hook(hook)
    yield tiny_pair
    handle.remove()


def test_tokens_outside_p_c_are_kept_counted_and_recorded(comparison_without_half_the_vocabulary):
    """Sampling p_s draws tokens p_c cannot write: each text is kept, its log p_c is -inf, the count says why,
    and the record (with -Infinity in it) reads back valid."""
    from cdx.tasks.common import to_record

    pair = comparison_without_half_the_vocabulary
    dec = ContrastiveDecoder(pair, ProbDiff(1, 0), strategy="sample", max_new_tokens=8, batch_size=4, seed=0,
                             stop_at_eos=False)
    gens = _all(dec, PROMPTS)
    assert len(gens) == len(PROMPTS) and all(len(g.token_ids) == 8 for g in gens)  # nothing dropped
    odd = [sum(t % 2 for t in g.token_ids) for g in gens]
    assert sum(odd) > 0  # the situation really arises
    for g, n_odd in zip(gens, odd):
        tl = g.text_logp()
        assert tl.outside_p_c == n_odd and tl.outside_p_s == 0 and tl.outside_q == 0
        assert (tl.logp_c == float("-inf")) == (n_odd > 0)
        assert math.isfinite(tl.logp_q) and math.isfinite(tl.logp_s)
    records = [to_record(g, pair.tokenizer, {}) for g in gens]
    back = [json.loads(dumps_line(r)) for r in records]
    assert invalid_records("decode", back) == []
    assert [TextRecord.model_validate(r).text_logp.outside_p_c for r in back] == odd


def test_decode_records_carry_log_q_and_scored_texts_do_not(tiny_pair):
    from cdx.decoding.engine import Generation
    from cdx.tasks.common import to_record

    g = _all(ContrastiveDecoder(tiny_pair, LogitDiff(alpha=1.0), max_new_tokens=5, batch_size=4, seed=1,
                                stop_at_eos=False), PROMPTS[:1])[0]
    rec = to_record(g, tiny_pair.tokenizer, {})
    assert rec["logq"] == g.logq and len(rec["logq"]) == len(rec["token_ids"])
    assert rec["text_logp"]["logp_q"] == pytest.approx(sum(g.logq))
    assert rec["text_logp"]["logp_c"] == pytest.approx(sum(g.tokens["logp_c"]))
    given = Generation(0, 0, "p", g.token_ids, g.tokens, "given")  # a scored text: no q, no new fields
    assert "logq" not in to_record(given, tiny_pair.tokenizer, {})
    assert "text_logp" not in to_record(given, tiny_pair.tokenizer, {})
