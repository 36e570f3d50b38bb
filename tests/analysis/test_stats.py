"""Validation statistics against hand computations and independent scipy calls."""

import math

import numpy as np
import pytest
from scipy import stats as sst

from cdx.analysis.stats import (
    benjamini_hochberg,
    minimum_detectable_effect,
    newcombe_ci,
    one_sided_p,
    rate_test,
    wilson_ci,
)

Z = 1.959963984540054  # the 97.5% normal quantile


def hand_wilson(k, n, z=Z):
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return centre - half, centre + half


@pytest.mark.parametrize("k,n", [(0, 20), (3, 20), (10, 20), (20, 20), (37, 81)])
def test_wilson_matches_the_formula(k, n):
    assert wilson_ci(k, n) == pytest.approx(hand_wilson(k, n), abs=1e-9)


@pytest.mark.parametrize("k1,n1,k2,n2", [(30, 50, 10, 50), (0, 40, 0, 40), (5, 72, 0, 72), (72, 72, 1, 72)])
def test_newcombe_matches_method_10_by_hand(k1, n1, k2, n2):
    p1, p2 = k1 / n1, k2 / n2
    l1, u1 = hand_wilson(k1, n1)
    l2, u2 = hand_wilson(k2, n2)
    lo = p1 - p2 - math.sqrt((p1 - l1) ** 2 + (u2 - p2) ** 2)
    hi = p1 - p2 + math.sqrt((u1 - p1) ** 2 + (p2 - l2) ** 2)
    assert newcombe_ci(k1, n1, k2, n2) == pytest.approx((lo, hi), abs=1e-9)


@pytest.mark.parametrize("k_c,n_c,k_s,n_s", [(12, 30, 3, 30), (0, 30, 0, 30), (30, 30, 29, 30), (5, 40, 9, 35)])
def test_fisher_one_sided_is_the_hypergeometric_tail(k_c, n_c, k_s, n_s):
    # H0 rate_c <= rate_s: P(X >= k_c) with X the comparison count among all k_c + k_s successes
    tail = sst.hypergeom(n_c + n_s, k_c + k_s, n_c).sf(k_c - 1)
    assert one_sided_p(k_c, n_c, k_s, n_s, "gained") == pytest.approx(tail, rel=1e-9)
    lower = sst.hypergeom(n_c + n_s, k_c + k_s, n_c).cdf(k_c)
    assert one_sided_p(k_c, n_c, k_s, n_s, "lost") == pytest.approx(lower, rel=1e-9)


def test_ztest_matches_the_pooled_formula():
    k_c, n_c, k_s, n_s = 25, 60, 12, 55
    p = (k_c + k_s) / (n_c + n_s)
    z = (k_c / n_c - k_s / n_s) / math.sqrt(p * (1 - p) * (1 / n_c + 1 / n_s))
    assert one_sided_p(k_c, n_c, k_s, n_s, "gained", "ztest") == pytest.approx(sst.norm.sf(z), rel=1e-9)
    assert one_sided_p(k_c, n_c, k_s, n_s, "lost", "ztest") == pytest.approx(sst.norm.cdf(z), rel=1e-9)


def test_mcnemar_one_sided_is_a_binomial_tail_over_discordant_pairs():
    pairs = [(False, True)] * 9 + [(True, False)] * 2 + [(True, True)] * 5 + [(False, False)] * 20
    tail = sum(math.comb(11, k) for k in range(9, 12)) / 2 ** 11
    assert one_sided_p(0, 36, 0, 36, "gained", "mcnemar", pairs) == pytest.approx(tail, rel=1e-12)
    with pytest.raises(ValueError, match="needs the"):
        one_sided_p(1, 2, 1, 2, "gained", "mcnemar")


def test_bad_direction_and_test_are_named():
    with pytest.raises(ValueError, match="direction='up'"):
        one_sided_p(1, 2, 1, 2, "up")
    with pytest.raises(ValueError, match="test='t'"):
        one_sided_p(1, 2, 1, 2, "gained", "t")


def naive_bh(p):
    p = np.asarray(p, float)
    m = len(p)
    order = np.argsort(p)
    q = np.empty(m)
    running = 1.0
    for rank in range(m, 0, -1):  # step-up from the largest p
        i = order[rank - 1]
        running = min(running, p[i] * m / rank)
        q[i] = running
    return q


def test_benjamini_hochberg_matches_a_naive_step_up():
    p = np.random.default_rng(0).uniform(0, 0.2, 25)
    p[:3] = [1e-6, 2e-4, 0.003]
    assert benjamini_hochberg(p) == pytest.approx(naive_bh(p), abs=1e-12)


def test_rate_test_fields():
    t = rate_test(2, 50, 30, 50, "gained")
    assert (t.rate_s, t.rate_c, t.effect) == pytest.approx((0.04, 0.6, 0.56))
    assert t.effect_ci[0] < 0.56 < t.effect_ci[1] and t.p < 1e-6


def test_minimum_detectable_effect_has_80_percent_power_by_simulation():
    n, alpha = 40, 0.05
    mde = minimum_detectable_effect(n, n, alpha=alpha)
    rng = np.random.default_rng(1)

    def power(rate):
        k_c = rng.binomial(n, rate, 1500)
        return np.mean([sst.fisher_exact([[k, n - k], [0, n]], alternative="greater").pvalue <= alpha for k in k_c])

    assert power(mde) >= 0.77  # 80% up to Monte Carlo error (sd ~ 0.01)
    assert power(mde * 0.7) < 0.75
    assert minimum_detectable_effect(n, n, alpha=alpha / 20) > mde  # a stricter level needs a bigger effect
