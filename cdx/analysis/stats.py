"""The statistics of validation: rate tests, confidence intervals, FDR control, power.

Everything delegates to scipy / statsmodels; this module only fixes the conventions:
  * a rate is k texts showing the behaviour out of n held-out plain samples of one model;
  * the effect is rate_c - rate_s (comparison minus starting), its 95% CI Newcombe's hybrid
    score interval (statsmodels `confint_proportions_2indep(method="newcomb")`), each rate's CI
    Wilson's;
  * the test is one-sided in the direction the hypothesis states ("gained": rate_c > rate_s),
    because the direction was fixed on the discovery split before these samples existed;
  * Benjamini-Hochberg over all hypotheses of a run controls the false discovery rate.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats as sst
from statsmodels.stats.multitest import multipletests
from statsmodels.stats.proportion import confint_proportions_2indep, proportion_confint, proportions_ztest

TESTS = ("fisher", "ztest", "mcnemar")


@dataclass
class RateTest:
    """Counts, rates with Wilson CIs, the effect with its Newcombe CI, and the one-sided p-value."""

    k_s: int
    n_s: int
    k_c: int
    n_c: int
    rate_s: float
    rate_c: float
    rate_s_ci: tuple[float, float]
    rate_c_ci: tuple[float, float]
    effect: float
    effect_ci: tuple[float, float]
    p: float


def wilson_ci(k: int, n: int, alpha: float = 0.05) -> tuple[float, float]:
    if n == 0:
        return (0.0, 1.0)
    lo, hi = proportion_confint(k, n, alpha=alpha, method="wilson")
    return float(lo), float(hi)


def newcombe_ci(k_c: int, n_c: int, k_s: int, n_s: int, alpha: float = 0.05) -> tuple[float, float]:
    """95% CI of rate_c - rate_s (Newcombe's method 10, from the two Wilson intervals)."""
    if n_c == 0 or n_s == 0:
        return (-1.0, 1.0)
    lo, hi = confint_proportions_2indep(k_c, n_c, k_s, n_s, method="newcomb", compare="diff", alpha=alpha)
    return float(lo), float(hi)


def one_sided_p(k_c: int, n_c: int, k_s: int, n_s: int, direction: str, test: str = "fisher",
                pairs: Sequence[tuple[bool, bool]] | None = None) -> float:
    """p-value of H0 "rate_c <= rate_s" (direction gained) or "rate_c >= rate_s" (lost).

    fisher: Fisher's exact test on the 2x2 table; ztest: the pooled two-proportion z-test;
    mcnemar: the exact McNemar test on (starting, comparison) outcomes paired by prompt, halved
    for one side (`pairs` required).
    """
    if direction not in ("gained", "lost"):
        raise ValueError(f"direction={direction!r} is not valid; use gained or lost")
    if test not in TESTS:
        raise ValueError(f"test={test!r} is not valid; use one of {TESTS}")
    if n_c == 0 or n_s == 0:
        return 1.0
    alt = "greater" if direction == "gained" else "less"
    if test == "fisher":
        table = [[k_c, n_c - k_c], [k_s, n_s - k_s]]
        return float(sst.fisher_exact(table, alternative=alt).pvalue)
    if test == "ztest":
        if k_c + k_s in (0, n_c + n_s):  # no variance: no evidence either way
            return 1.0
        larger = "larger" if alt == "greater" else "smaller"
        return float(proportions_ztest([k_c, k_s], [n_c, n_s], alternative=larger)[1])
    return _mcnemar_one_sided(pairs, direction)


def _mcnemar_one_sided(pairs: Sequence[tuple[bool, bool]] | None, direction: str) -> float:
    """Exact one-sided McNemar: the discordant pairs' wins under a fair coin (a binomial test)."""
    if not pairs:
        raise ValueError("test=mcnemar needs the (starting, comparison) outcome pairs of each prompt")
    only_c = sum(1 for s, c in pairs if c and not s)
    only_s = sum(1 for s, c in pairs if s and not c)
    if only_c + only_s == 0:
        return 1.0
    wins = only_c if direction == "gained" else only_s
    return float(sst.binomtest(wins, only_c + only_s, 0.5, alternative="greater").pvalue)


def rate_test(k_s: int, n_s: int, k_c: int, n_c: int, direction: str, test: str = "fisher",
              pairs: Sequence[tuple[bool, bool]] | None = None, alpha: float = 0.05) -> RateTest:
    rate_s = k_s / n_s if n_s else 0.0
    rate_c = k_c / n_c if n_c else 0.0
    return RateTest(k_s, n_s, k_c, n_c, rate_s, rate_c, wilson_ci(k_s, n_s, alpha), wilson_ci(k_c, n_c, alpha),
                    rate_c - rate_s, newcombe_ci(k_c, n_c, k_s, n_s, alpha),
                    one_sided_p(k_c, n_c, k_s, n_s, direction, test, pairs))


def benjamini_hochberg(pvalues: Sequence[float], fdr: float = 0.05) -> np.ndarray:
    """BH-adjusted p-values (q), in the input order."""
    if not len(pvalues):
        return np.zeros(0)
    return multipletests(np.asarray(pvalues, dtype=float), alpha=fdr, method="fdr_bh")[1]


def minimum_detectable_effect(n_s: int, n_c: int, alpha: float = 0.05, power: float = 0.8,
                              base_rate: float = 0.0) -> float:
    """Smallest rate_c - rate_s that the one-sided Fisher test at `alpha` detects with `power`.

    Exact, not a normal approximation (which is far too optimistic near rate 0): for every
    starting count k_s the smallest comparison count that rejects is found once, the power at a
    candidate rate is the binomial probability of the rejection region, and the rate is bisected.
    `base_rate` is the starting model's rate (0: a behaviour it never shows).
    """
    if n_s < 1 or n_c < 1:
        return 1.0
    crit = [_critical_count(k, n_s, n_c, alpha) for k in range(n_s + 1)]
    w_s = sst.binom.pmf(np.arange(n_s + 1), n_s, base_rate)

    def power_at(rate_c: float) -> float:
        return float(sum(w * sst.binom.sf(c - 1, n_c, rate_c) for w, c in zip(w_s, crit) if c <= n_c))

    if power_at(1.0) < power:
        return 1.0 - base_rate
    lo, hi = base_rate, 1.0
    for _ in range(30):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if power_at(mid) >= power else (mid, hi)
    return hi - base_rate


def _critical_count(k_s: int, n_s: int, n_c: int, alpha: float) -> int:
    """Smallest k_c whose one-sided Fisher p-value against k_s is <= alpha (n_c + 1 if none)."""
    lo, hi = 0, n_c + 1  # p decreases as k_c grows, so bisect
    while lo < hi:
        mid = (lo + hi) // 2
        if one_sided_p(mid, n_c, k_s, n_s, "gained") <= alpha:
            hi = mid
        else:
            lo = mid + 1
    return lo
