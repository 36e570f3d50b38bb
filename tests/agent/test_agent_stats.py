"""The agent's statistics against hand computations and scipy's own distributions."""

from __future__ import annotations

import math

import pytest
from scipy import stats

from cdx.agent import bh, interaction_p, rate_test, sample_size
from cdx.agent.stats import Counts, pool_counts


def test_sample_size_matches_the_normal_approximation_formula():
    # Per group n = 2 ((z_{1-alpha} + z_{power}) / h)^2, Cohen's h = 2 asin(sqrt(p1)) - 2 asin(sqrt(p2)) (each
    # arcsine-transformed rate has variance 1/n, their difference 2/n), one-sided.
    h = 2 * math.asin(math.sqrt(0.3)) - 2 * math.asin(math.sqrt(0.05))
    n = 2 * ((stats.norm.ppf(0.95) + stats.norm.ppf(0.8)) / h) ** 2
    assert sample_size(0.05, 0.3, n_max=1000) == math.ceil(n) == 25
    assert sample_size(0.05, 0.9) == 4  # huge effect: clamped to n_min
    assert sample_size(0.2, 0.2, n_max=30) == 30  # no effect seen: spend the most allowed


def test_rate_test_fisher_p_is_the_hypergeometric_tail():
    r = rate_test(k_s=1, n_s=20, k_c=15, n_c=20, direction="gained")
    # P(X >= 15) for X ~ hypergeom(M=40, n=16 successes, N=20 drawn from the comparison row)
    assert r.p == pytest.approx(stats.hypergeom.sf(14, 40, 16, 20), rel=1e-9)
    assert (r.rate_s, r.rate_c, r.effect) == (0.05, 0.75, pytest.approx(0.7))
    lo, hi = r.rate_c_ci
    assert lo < 0.75 < hi and r.effect_ci[0] < 0.7 < r.effect_ci[1]
    lost = rate_test(k_s=15, n_s=20, k_c=1, n_c=20, direction="lost")
    assert lost.p == pytest.approx(r.p)
    assert rate_test(k_s=15, n_s=20, k_c=1, n_c=20, direction="gained").p > 0.99


def test_interaction_by_hand():
    inside, outside = Counts(n_s=18, k_s=0, n_c=18, k_c=16), Counts(n_s=18, k_s=1, n_c=18, k_c=1)
    ps_i, pc_i, ps_o, pc_o = 1 / 20, 17 / 20, 2 / 20, 2 / 20
    var = ps_i * (1 - ps_i) / 20 + pc_i * (1 - pc_i) / 20 + ps_o * (1 - ps_o) / 20 + pc_o * (1 - pc_o) / 20
    z = ((pc_i - ps_i) - (pc_o - ps_o)) / math.sqrt(var)
    assert interaction_p(inside, outside) == pytest.approx(stats.norm.sf(z))
    assert interaction_p(inside, outside, "lost") == pytest.approx(stats.norm.cdf(z))
    assert pool_counts([inside, outside, Counts(k_s=0, n_s=0, k_c=2, n_c=3)]) == Counts(k_s=1, n_s=36, k_c=19, n_c=39)


def test_bh_by_hand():
    assert bh([0.01, 0.04, 0.03]) == pytest.approx([0.03, 0.04, 0.04])
    assert bh([]) == []


@pytest.mark.parametrize("call, match", [
    (lambda: sample_size(1.5, 0.2), "rates must lie in \\[0, 1\\]"),
    (lambda: sample_size(0.1, 0.2, n_min=10, n_max=5), "need 1 <= n_min <= n_max"),
    (lambda: rate_test(3, 2, 1, 2), "counts must satisfy"),
    (lambda: rate_test(1, 2, 1, 2, direction="up"), "direction 'up' is not valid"),
], ids=["rate-out-of-range", "n-bounds", "k-above-n", "bad-direction"])
def test_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()
