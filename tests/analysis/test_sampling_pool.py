"""Texts of several sampling modes pooled into one rate by multiple importance sampling (issue 19):
each text records its log q under every mode of its batch (`pool=True`), and its stopped weight is
p / (the modes' mixture). Checked against hand computations of the tilted and plain distributions
and against the exact rate of two-token texts (a sum over first tokens)."""

import numpy as np
import pytest
import torch

from cdx.analysis.sampling import SampleSettings, pooled_stopped_logw, pooled_stopped_rates, sample_pair, stopped_rates
from tests.analysis.test_sampling_rates import CHECKER, PROMPTS, TWO, exact_two_token_rate, hit_token_ids

POOL = ("tilt_c", "plain_c")


@torch.no_grad()
def next_logp(side, prompt: str, prefix: list[int]) -> torch.Tensor:
    ids = torch.tensor([side.prompt_ids(prompt) + prefix])
    return torch.log_softmax(side.model(input_ids=ids).logits[0, -1].double(), -1)


def test_pooled_samples_record_log_q_under_every_mode(tiny_pair):
    """Every text, whichever mode drew it: log q under plain_c is log p_c, and under tilt_c it is
    log_softmax(log p_c + bonus on the tilted tokens) of its own tokens, by hand, step by step."""
    tokens = hit_token_ids(tiny_pair)[:5]
    s = SampleSettings(max_new_tokens=2, samples_per_prompt=6, tilt_tokens=tokens, tilt_bonus=2.5, batch_size=2, seed=1)
    recs = sample_pair(tiny_pair, PROMPTS[:3], s, modes=POOL, pool=True)
    assert sorted({r.mode for r in recs}) == sorted(POOL) and len(recs) == 3 * 12
    for r in recs:
        assert set(r.logq_modes) == set(POOL) and "logq_modes" in r.dump()
        assert r.logq_modes[r.mode] == pytest.approx(r.logq, abs=1e-5)  # its own mode: what the draw recorded
        assert r.logq_modes["plain_c"] == pytest.approx(r.logp_c, abs=1e-5)
        for t, tok in enumerate(r.token_ids):
            lp = next_logp(tiny_pair.comparison, r.prompt, r.token_ids[:t])
            lp[tokens] += 2.5
            assert r.logq_modes["tilt_c"][t] == pytest.approx(float(torch.log_softmax(lp, -1)[tok]), abs=1e-4)
    plain = sample_pair(tiny_pair, PROMPTS[:3], s, modes=POOL)  # without pool: same texts, no extra field
    assert [r.text for r in plain] == [r.text for r in recs]
    assert all(r.logq_modes is None and "logq_modes" not in r.dump() for r in plain)


def test_pooled_weight_of_one_text_by_hand(tiny_pair):
    """A hit's pooled log-weight is log p_c(x_<=tau) - log(1/2 q_tilt(x_<=tau) + 1/2 p_c(x_<=tau)),
    whichever of the two modes drew it, and so never above log 2."""
    tokens = hit_token_ids(tiny_pair)
    s = SampleSettings(max_new_tokens=1, samples_per_prompt=20, tilt_tokens=tokens, tilt_bonus=3.0, batch_size=2)
    recs = sample_pair(tiny_pair, PROMPTS[:2], s, modes=POOL, pool=True)
    steps = [1 if CHECKER.check(r.text) else None for r in recs]
    hit_logw, group, _ = pooled_stopped_logw(recs, "comparison", steps, {"tilt_c": 0.5, "plain_c": 0.5})
    assert list(group) == [r.prompt_index for r in recs]
    checked = 0
    for r, lw in zip(recs, hit_logw):
        if lw is None:
            continue
        lp = next_logp(tiny_pair.comparison, r.prompt, [])
        lq = torch.log_softmax(lp + 3.0 * torch.isin(torch.arange(len(lp)), torch.tensor(tokens)), -1)
        v = r.token_ids[0]
        expect = float(lp[v]) - float(torch.logaddexp(lq[v], lp[v]) - np.log(2))
        assert lw == pytest.approx(expect, abs=1e-4) and lw <= np.log(2) + 1e-9
        checked += 1
    assert checked >= 5


def test_pooled_rate_from_two_token_samples_covers_the_exact_rate(tiny_pair):
    """tilt_c and plain_c texts pooled: the estimate covers the exact rate under p_c, its weights are
    bounded by 2 (half the texts are plain), and its interval is narrower than the plain one."""
    prompts = PROMPTS[:6]
    s = TWO.but(tilt_tokens=hit_token_ids(tiny_pair), tilt_bonus=3.0, samples_per_prompt=100)
    recs = sample_pair(tiny_pair, prompts, s, modes=POOL, split="discovery", pool=True)
    truth = exact_two_token_rate(tiny_pair, tiny_pair.comparison, prompts)
    est = pooled_stopped_rates(CHECKER, recs, POOL)
    c = est.comparison
    assert est.modes == list(POOL) and c.method == "stopped" and c.n == len(prompts) * 200
    assert c.low <= truth <= c.high and c.rate == pytest.approx(truth, abs=0.03)
    steps = [1 if CHECKER.check(r.token_strs[0]) else (2 if CHECKER.check(r.text) else None) for r in recs]
    hit_logw, _, _ = pooled_stopped_logw(recs, "comparison", steps, {"tilt_c": 0.5, "plain_c": 0.5})
    assert max(w for w in hit_logw if w is not None) <= np.log(2) + 1e-9
    plain = stopped_rates(CHECKER, recs, modes=("plain_c",)).comparison  # half the texts
    assert c.high - c.low < plain.high - plain.low


def test_pooling_refuses_samples_it_cannot_weight(tiny_pair):
    s = SampleSettings(max_new_tokens=1, samples_per_prompt=2, tilt_tokens=hit_token_ids(tiny_pair), batch_size=2)
    unpooled = sample_pair(tiny_pair, PROMPTS[:2], s, modes=POOL)
    with pytest.raises(ValueError, match="draw them together with pool=True"):
        pooled_stopped_rates(CHECKER, unpooled, POOL)
    pooled = sample_pair(tiny_pair, PROMPTS[:2], s, modes=POOL, pool=True)
    uneven = [r for r in pooled if not (r.prompt_index == 0 and r.mode == "plain_c" and r.id.endswith("-1"))]
    with pytest.raises(ValueError, match="different shares of the modes"):
        pooled_stopped_rates(CHECKER, uneven, POOL)
