import math

import pytest
import torch

from cdx.decoding.rules import LogitDiff, ProbDiff, direction_of, log_weights, starting_nucleus
from cdx.io.records import Direction


def _logps(b=4, v=13, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (torch.log_softmax(torch.randn(b, v, generator=g) * 2, -1),
            torch.log_softmax(torch.randn(b, v, generator=g) * 2, -1))


def _naive_probdiff(lp_s, lp_c, ws, wc, g=None, top_p=None, floor=1e-6):
    out = []
    for s, c in zip(lp_s.exp().tolist(), lp_c.exp().tolist()):
        d = [ws * a + wc * b for a, b in zip(s, c)]
        if g is not None:
            dot = sum(a * b for a, b in zip(s, c))
            cos = dot / math.sqrt(sum(a * a for a in s) * sum(b * b for b in c))
            bb = math.exp(-g * (1 - cos))
            d = [(1 - bb) * x + bb * a for x, a in zip(d, s)]
        d = [max(x, 0.0) for x in d]
        if top_p is not None:  # upstream: k = #(cumsum < p) + 1 top tokens of p_s
            order = sorted(range(len(s)), key=lambda i: -s[i])
            cum, k = 0.0, 0
            for i in order:
                cum += s[i]
                k += cum < top_p
            keep = set(order[: k + 1])
            d = [x if i in keep else 0.0 for i, x in enumerate(d)]
            s = [x if i in keep else 0.0 for i, x in enumerate(s)]
        if sum(d) < floor:
            d = s
        tot = sum(d)
        out.append([x / tot for x in d])
    return torch.tensor(out)


@pytest.mark.parametrize("ws,wc", [(1, -1), (-1, 1), (1, -0.5), (2, -1)])
def test_probdiff_matches_naive(ws, wc):
    lp_s, lp_c = _logps()
    got = torch.softmax(ProbDiff(ws, wc)(lp_s, lp_c), -1)
    torch.testing.assert_close(got, _naive_probdiff(lp_s, lp_c, ws, wc), atol=1e-6, rtol=1e-5)


def test_probdiff_gating_and_nucleus_match_naive():
    lp_s, lp_c = _logps(seed=3)
    rule = ProbDiff(1, -1, similarity_gating_intensity=2.0, limit_to_starting_model_top_p=0.8)
    got = torch.softmax(rule(lp_s, lp_c), -1)
    torch.testing.assert_close(got, _naive_probdiff(lp_s, lp_c, 1, -1, g=2.0, top_p=0.8), atol=1e-6, rtol=1e-5)


def test_probdiff_falls_back_to_starting_model_when_models_agree():
    lp_s, _ = _logps()
    got = torch.softmax(ProbDiff(1, -1)(lp_s, lp_s.clone()), -1)
    torch.testing.assert_close(got, lp_s.exp())  # not near-uniform, unlike upstream's 1e-7 floor


def test_nucleus_size_matches_upstream_count():
    lp_s, _ = _logps(b=1, v=50, seed=5)
    p = lp_s.exp()[0]
    sp, _ = p.sort(descending=True)
    k = int((sp.cumsum(0) < 0.9).sum()) + 1
    assert int(starting_nucleus(lp_s, 0.9).sum()) == k


def test_one_zero_is_exactly_plain_sampling():
    lp_s, lp_c = _logps()
    assert torch.equal(ProbDiff(1, 0)(lp_s, lp_c), lp_s)
    assert torch.equal(LogitDiff(starting_weight=1, comparison_weight=0)(lp_s, lp_c), lp_s)
    assert torch.equal(ProbDiff(0, 1)(lp_s, lp_c), lp_c)


def test_logitdiff_matches_naive_with_plausibility():
    lp_s, lp_c = _logps(seed=7)
    alpha, beta = 0.5, 0.2
    rule = LogitDiff(alpha=alpha, amplified="starting", plausibility_beta=beta)
    assert (rule.starting_weight, rule.comparison_weight) == (1.5, -0.5)
    got = rule(lp_s, lp_c)
    for row in range(lp_s.shape[0]):
        ps = lp_s[row].exp()
        for v in range(lp_s.shape[1]):
            if ps[v] >= beta * ps.max():
                expect = 1.5 * lp_s[row, v] - 0.5 * lp_c[row, v]
                assert got[row, v].item() == pytest.approx(expect.item(), rel=1e-5)
            else:
                assert got[row, v].item() == float("-inf")


def test_logitdiff_alpha_amplifies_comparison_and_masks_by_it():
    lp_s, lp_c = _logps(seed=8)
    rule = LogitDiff(alpha=2.0, amplified="comparison", plausibility_beta=0.5)
    assert (rule.starting_weight, rule.comparison_weight) == (-2.0, 3.0)
    got = rule(lp_s, lp_c)
    keep = lp_c.exp() >= 0.5 * lp_c.exp().max(-1, keepdim=True).values
    assert torch.equal(torch.isfinite(got), keep)


def test_bad_rule_options_are_clear():
    with pytest.raises(ValueError, match="plausibility_from='x'"):
        LogitDiff(plausibility_from="x")
    with pytest.raises(ValueError, match="either alpha or"):
        LogitDiff(alpha=1.0, starting_weight=2.0)


def test_precomputed_probs_give_identical_scores_and_are_never_written():
    lp_s, lp_c = _logps(seed=9)
    probs = (lp_s.exp(), lp_c.exp())
    before = (probs[0].clone(), probs[1].clone(), lp_s.clone(), lp_c.clone())
    for rule in (ProbDiff(1, -1), ProbDiff(2, -1, limit_to_starting_model_top_p=0.9),
                 ProbDiff(1, -1, similarity_gating_intensity=1.0), ProbDiff(1, -1, min_positive_mass=0.99),
                 LogitDiff(alpha=1.0)):
        assert torch.equal(rule(lp_s, lp_c, probs=probs), rule(lp_s, lp_c))
    # the decoder shares p_s, p_c and the log-probs with the metrics: rules work on their own buffers
    for a, b in zip(before, (*probs, lp_s, lp_c)):
        assert torch.equal(a, b)


def test_log_weights_is_log_with_minus_inf_for_zero():
    d = torch.rand(6, 1000, generator=torch.Generator().manual_seed(1)) ** 20  # down to ~1e-60 -> 0 in float32
    d[:, ::3] = 0.0
    d[0, 1] = torch.finfo(torch.float32).tiny / 4  # a subnormal weight counts as 0
    d[0, 2] = torch.finfo(torch.float32).tiny  # so does the smallest normal, whatever log rounds it to
    got = log_weights(d.clone())
    normal = d > 1.02 * torch.finfo(torch.float32).tiny  # at most 1% above the smallest normal counts as 0
    torch.testing.assert_close(got[normal], d[normal].double().log().float())
    assert (got[~normal] == float("-inf")).all() and (~normal).sum() > 2000


def _expected_llr_cs(rule, lp_s, lp_c):
    """E_q[log p_c - log p_s] under the distribution q the rule samples, per row: (B,)."""
    q = torch.softmax(rule(lp_s, lp_c), -1)
    return torch.where(q > 0, q * (lp_c - lp_s), torch.zeros(())).sum(-1)


@pytest.mark.parametrize("rule,side", [
    (ProbDiff(1, -1), "starting"), (ProbDiff(-1, 1), "comparison"), (ProbDiff(1, -0.5), "starting"),
    (LogitDiff(alpha=1.0, amplified="comparison"), "comparison"), (LogitDiff(alpha=2.0), "starting"),
    (LogitDiff(starting_weight=2, comparison_weight=-1, similarity_gating_intensity=1.0), "starting"),
    (LogitDiff(alpha=0.5, amplified="comparison", limit_to_starting_model_top_p=0.95), "comparison"),
])
def test_direction_is_the_side_whose_tokens_the_rule_favours(rule, side):
    """Behaviour, not labels: tokens drawn by a rule that 'shows the comparison model' lean further
    towards the comparison model (E_q[log p_c - log p_s]) than the starting model's own tokens do,
    on every row; a rule that 'shows the starting model' leans further away than p_c's own tokens."""
    lp_s, lp_c = _logps(b=64, v=40, seed=11)
    llr = _expected_llr_cs(rule, lp_s, lp_c)
    own = {"starting": (lp_s.exp() * (lp_c - lp_s)).sum(-1), "comparison": (lp_c.exp() * (lp_c - lp_s)).sum(-1)}
    assert rule.direction() == side
    assert bool((llr > own["starting"]).all()) if side == "comparison" else bool((llr < own["comparison"]).all())
    other = "starting" if side == "comparison" else "comparison"
    assert rule.describe().startswith(f"text the {side} model would write and the {other} model would not")


@pytest.mark.parametrize("rule,side,phrase", [
    (ProbDiff(1, 0), "starting", "ordinary text of the starting model"),
    (ProbDiff(0, 1), "comparison", "ordinary text of the comparison model"),
    (LogitDiff(alpha=0.0, amplified="comparison"), "comparison", "ordinary text of the comparison model"),
    (ProbDiff(1, 1), "both", "no contrast"),
    (LogitDiff(starting_weight=-1, comparison_weight=-1), "neither", "no side has a positive weight"),
])
def test_direction_without_contrast(rule, side, phrase):
    assert rule.direction() == side and phrase in rule.describe()
    assert "-0" not in rule.describe()  # alpha=0 gives weight -0.0; reports say 0


def test_describe_names_the_options_that_shape_the_text():
    d = LogitDiff(alpha=1.0, amplified="comparison", plausibility_beta=0.2, similarity_gating_intensity=3.0,
                  limit_to_starting_model_top_p=0.9).describe()
    assert "w_s=-1, w_c=2" in d and "p >= 0.2 max p under the comparison model" in d
    assert "gating 3" in d and "top-p 0.9 nucleus" in d
    assert "no plausibility constraint" in LogitDiff(plausibility_beta=0.0).describe()
    assert direction_of(ProbDiff(-1, 1)) == Direction(shows="comparison", description=ProbDiff(-1, 1).describe())


# --- Tilt: one model's own odds with a bonus on a few tokens (measuring a behaviour's rate) ---

def test_tilt_is_the_model_reweighted_by_e_to_the_bonus_on_its_tokens():
    from cdx.decoding import Tilt

    g = torch.Generator().manual_seed(0)
    logp_s, logp_c = (torch.log_softmax(torch.randn(3, 11, generator=g), -1) for _ in range(2))
    rule = Tilt(tokens=[4, 2, 4], bonus=1.5)
    before = logp_c.clone()
    q = torch.softmax(rule(logp_s, logp_c), -1)
    assert logp_c.equal(before)  # the input is not modified in place
    w = logp_c.exp().clone()
    w[:, [2, 4]] *= math.exp(1.5)  # by hand: p_c(v) e^{b [v in S]} / Z
    assert torch.allclose(q, w / w.sum(-1, keepdim=True), atol=1e-6)
    assert rule.tokens == [2, 4] and rule.direction() == "comparison"
    assert (rule.starting_weight, rule.comparison_weight) == (0, 1)
    on_s = torch.softmax(Tilt(tokens=[0], bonus=0.0, side="starting")(logp_s, logp_c), -1)
    assert torch.allclose(on_s, logp_s.exp(), atol=1e-6)  # bonus 0: the starting model itself
    assert "tilted towards 2 token(s)" in rule.describe()


@pytest.mark.parametrize("kwargs,match", [
    ({"tokens": []}, "at least one token"),
    ({"tokens": [1], "side": "both"}, "side='both' is not valid"),
    ({"tokens": [1], "bonus": float("inf")}, "finite"),
])
def test_tilt_refuses_bad_settings(kwargs, match):
    from cdx.decoding import Tilt

    with pytest.raises(ValueError, match=match):
        Tilt(**kwargs)


def test_tilt_refuses_token_ids_outside_the_vocabulary():
    from cdx.decoding import Tilt

    lp = torch.log_softmax(torch.zeros(1, 5), -1)
    with pytest.raises(ValueError, match=r"outside the vocabulary \(size 5\)"):
        Tilt(tokens=[7])(lp, lp)


def test_phrase_tokens_are_the_first_word_pieces_of_its_spellings_never_a_bare_space(tiny_pair):
    from cdx.decoding import phrase_tokens

    tok = tiny_pair.tokenizer
    ids = phrase_tokens(tok, "Zyx")
    firsts = set()
    for text in ("Zyx", " Zyx", "zyx", " zyx"):
        enc = [t for t in tok.encode(text, add_special_tokens=False)]
        firsts.add(next(t for t in enc if tok.decode([t]).strip()))  # by hand: the first non-space piece
    assert set(ids) == firsts and all(tok.decode([i]).strip() for i in ids)
