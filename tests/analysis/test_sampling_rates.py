"""Analysis samples carry log q, and a checker's rate under each model is estimated from amplified
samples by importance weighting (issue 19). One-token texts make the exact rate computable: a sum
over the 320-token vocabulary of the model's next-token probabilities."""


import numpy as np
import pytest
import torch

from cdx.analysis.checkers import RegexChecker
from cdx.analysis.sampling import MODES, SampleSettings, importance_rates, mode_rule, sample_pair, stopped_rates
from cdx.io.records import invalid_records

PROMPTS = [f"Tell me about the number {i}." for i in range(12)]
CHECKER = RegexChecker("[0-9]|e")  # a token that is a digit or holds an e: ~7% of the vocabulary


def settings(beta):
    # alpha 0.1: the two tiny random models disagree so much that stronger amplification leaves too few
    # effective samples for a 0.02 tolerance (at 1.0 the estimate is refused: ESS 14 of 1800)
    return SampleSettings(max_new_tokens=1, samples_per_prompt=150, alpha=0.1, plausibility_beta=beta, batch_size=4,
                          seed=0)


@pytest.fixture(scope="module", params=[0.0, 0.1], ids=["full_support", "plausibility_set"])
def one_token_samples(tiny_pair, request):
    s = settings(request.param)
    return s, sample_pair(tiny_pair, PROMPTS, s, modes=MODES, split="discovery")


@torch.no_grad()
def first_token(pair, prompt, settings, mode="amp_c"):
    """log p_s, log p_c of the first generated token, and `mode`'s log q over the vocabulary."""
    lp = [torch.log_softmax(side.model(input_ids=torch.tensor([side.prompt_ids(prompt)])).logits[0, -1].double(), -1)
          for side in (pair.starting, pair.comparison)]
    scores = mode_rule(mode, settings)(lp[0][None].float(), lp[1][None].float())[0].double()
    return lp[0], lp[1], torch.log_softmax(scores, -1)


def exact_rates(pair, settings, mode):
    """Per model: the exact rate (the mean over prompts of sum_v p(v) hit(v)) and the rate on `mode`'s support,
    sum_j p_j(hit and q > 0) / sum_j p_j(q > 0), what SNIS alone converges to."""
    hit = torch.tensor([CHECKER.check(pair.tokenizer.decode([v], skip_special_tokens=True))
                        for v in range(pair.vocab_size)])
    num, den, full = np.zeros(2), np.zeros(2), np.zeros(2)
    for prompt in PROMPTS:
        lp_s, lp_c, lq = first_token(pair, prompt, settings, mode)
        seen = lq > float("-inf")
        for k, lp in enumerate((lp_s, lp_c)):
            num[k] += float(lp.exp()[seen & hit].sum())
            den[k] += float(lp.exp()[seen].sum())
            full[k] += float(lp.exp()[hit].sum()) / len(PROMPTS)
    return full, num / den


def test_samples_record_log_q_of_their_own_mode(tiny_pair, one_token_samples):
    settings, recs = one_token_samples
    assert invalid_records("sample", recs) == []
    by_mode = {m: [r for r in recs if r.mode == m] for m in MODES}
    for r in by_mode["plain_s"]:
        assert r.text_logp.logp_q == pytest.approx(r.text_logp.logp_s, abs=1e-5)
    for r in by_mode["plain_c"]:
        assert r.text_logp.logp_q == pytest.approx(r.text_logp.logp_c, abs=1e-5)
    for r in by_mode["amp_c"][:40]:
        _, _, lq = first_token(tiny_pair, r.prompt, settings)
        assert r.logq == pytest.approx([float(lq[r.token_ids[0]])], abs=1e-4)


def test_importance_rates_from_amplified_samples_cover_the_exact_rates(tiny_pair, one_token_samples):
    """The comparison model's rate from amp_c samples. With full support (no plausibility set) the estimate
    converges to the exact rate; amp_c's plausibility set here leaves out every token that is a hit, so the
    rate on q's support is 0, and the covered mass widens the interval to the exact rate. The starting
    model's rate from the same samples is refused (degenerate weights p_s / q) or left wide open."""
    s, recs = one_token_samples
    full, on_support = exact_rates(tiny_pair, s, "amp_c")
    est = importance_rates(CHECKER, recs, modes=("amp_c",))
    r = est.comparison
    assert est.modes == ["amp_c"] and r.method == "snis"
    assert r.n == len(PROMPTS) * 150 and r.n_groups == len(PROMPTS)
    assert r.rate == pytest.approx(on_support[1], abs=0.02)
    assert r.low <= full[1] <= r.high
    if s.plausibility_beta == 0:
        assert on_support == pytest.approx(full) and r.covered_mass == 1.0 and r.high - r.low < 0.05
        assert r.message == ""
        assert est.starting.degenerate and "lower decoding.rule.alpha or draw more samples" in est.starting.message
    else:
        assert on_support[1] == 0.0 < full[1] and r.covered_mass < 0.8
        assert "lower the plausibility beta" in r.message
        # amp_c's set, taken from p_c, holds almost none of p_s's mass: nothing is known of its rate
        assert est.starting.covered_mass < 0.01 and est.starting.high - est.starting.low > 0.99
    plain = importance_rates(CHECKER, recs, modes=("plain_c",)).comparison
    assert plain.method == "wilson"
    assert plain.rate == np.mean([CHECKER.check(r.text) for r in recs if r.mode == "plain_c"])


def test_samples_without_log_q_are_refused_with_what_to_do(one_token_samples):
    _, recs = one_token_samples
    old = [r.model_copy(update={"logq": None, "text_logp": None}) for r in recs]
    with pytest.raises(ValueError, match="draw the samples again"):
        importance_rates(CHECKER, old)


# --- stopped weights on real two-token samples: the exact rate is a sum over first tokens ---

# alpha 0.1 as above: at 0.5 amp_c draws the hits of these two random models less often, not more
TWO = SampleSettings(max_new_tokens=2, samples_per_prompt=200, alpha=0.1, plausibility_beta=0.0, batch_size=4, seed=3)


@torch.no_grad()
def exact_two_token_rate(pair, side, prompts, checker=CHECKER):
    """P(the two-token text hits) under one model, averaged over prompts: a hit in the first token, or
    none there (and no end of text) and one in the second. A single-character pattern of ASCII cannot
    span two tokens, so a text hits exactly when one of its tokens does."""
    tok = pair.tokenizer
    hit = torch.tensor([checker.check(tok.decode([v], skip_special_tokens=True)) for v in range(pair.vocab_size)])
    go_on = ~hit
    go_on[tok.eos_token_id] = False  # the text ends there, without a hit
    total = 0.0
    for prompt in prompts:
        ids = torch.tensor([side.prompt_ids(prompt)])
        p1 = torch.softmax(side.model(input_ids=ids).logits[0, -1].double(), -1)
        firsts = torch.nonzero(go_on).flatten()
        rows = torch.cat([ids.expand(len(firsts), -1), firsts[:, None]], 1)
        p2 = torch.softmax(side.model(input_ids=rows).logits[:, -1].double(), -1)  # (firsts, V)
        total += float(p1[hit].sum() + (p1[firsts] * p2[:, hit].sum(1)).sum())
    return total / len(prompts)


def hit_token_ids(pair) -> list[int]:
    return [v for v in range(pair.vocab_size) if CHECKER.check(pair.tokenizer.decode([v], skip_special_tokens=True))]


@pytest.mark.parametrize("mode", ["amp_c", "tilt_c"])
def test_stopped_rates_from_two_token_samples_cover_the_exact_rate(tiny_pair, mode):
    """amp_c: the models' ratio on every token; tilt_c: p_c with 3 nats on the tokens that hit, so the
    behaviour is drawn about 5x as often and every other token keeps p_c's odds."""
    prompts = PROMPTS[:6]
    s = TWO.but(tilt_tokens=hit_token_ids(tiny_pair), tilt_bonus=3.0)
    recs = sample_pair(tiny_pair, prompts, s, modes=(mode, "plain_c"), split="discovery")
    truth = exact_two_token_rate(tiny_pair, tiny_pair.comparison, prompts)
    est = stopped_rates(CHECKER, recs, modes=(mode,)).comparison
    assert est.method == "stopped" and est.covered_mass == 1.0 and est.n == len(prompts) * 200
    assert est.low <= truth <= est.high and est.rate == pytest.approx(truth, abs=0.03)
    plain = stopped_rates(CHECKER, recs, modes=("plain_c",)).comparison  # weights 1 (up to float rounding)
    assert plain.rate == pytest.approx(np.mean([CHECKER.check(r.text) for r in recs if r.mode == "plain_c"]),
                                       rel=1e-5)
    assert plain.low <= truth <= plain.high
    if mode == "tilt_c":
        drawn = np.mean([CHECKER.check(r.text) for r in recs if r.mode == mode])
        assert drawn > 3 * truth  # tilted: the behaviour is drawn far more often
        assert est.high - est.low < 0.8 * (plain.high - plain.low)  # and more precisely (0.64x the width, measured)


def test_tilt_samples_record_log_q_of_the_tilted_distribution(tiny_pair):
    """log q of one-token tilt_c samples against log_softmax(log p_c + bonus on the tilted tokens), by hand."""
    tokens = hit_token_ids(tiny_pair)[:5]
    s = SampleSettings(max_new_tokens=1, samples_per_prompt=30, tilt_tokens=tokens, tilt_bonus=2.5, batch_size=4)
    recs = sample_pair(tiny_pair, PROMPTS[:4], s, modes=("tilt_c",), split="discovery")
    mass_p, mass_q = [], []
    for r in recs:
        with torch.no_grad():
            side = tiny_pair.comparison
            lp = torch.log_softmax(side.model(input_ids=torch.tensor([side.prompt_ids(r.prompt)])).logits[0, -1]
                                   .double(), -1)
        mass_p.append(float(lp[tokens].exp().sum()))
        lp[tokens] += 2.5
        lq = torch.log_softmax(lp, -1)
        mass_q.append(float(lq[tokens].exp().sum()))
        assert r.logq == pytest.approx([float(lq[r.token_ids[0]])], abs=1e-4)
    assert np.mean(mass_q) > 5 * np.mean(mass_p)  # e^2.5 = 12x the odds of the tilted tokens
    drawn = np.mean([r.token_ids[0] in tokens for r in recs])
    assert drawn == pytest.approx(np.mean(mass_q), abs=4 * np.sqrt(np.mean(mass_q) / len(recs)))
    with pytest.raises(ValueError, match="needs tilt_tokens"):
        sample_pair(tiny_pair, PROMPTS[:4], SampleSettings(max_new_tokens=1), modes=("tilt_c",))
