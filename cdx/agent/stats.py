"""The statistics the agent decides with: sample size from power, a rate test per prompt group, BH, interaction.

The rate test and BH are the validation stage's own (cdx.analysis.stats), so an experiment's
numbers mean what an analysis run's mean; power for a sample size and the interaction test are added here.

Rates are "texts showing the behaviour / texts" per model. The one-sided direction follows the
hypothesis: `gained` means the comparison model shows it more, `lost` less.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Protocol

from statsmodels.stats.power import NormalIndPower
from statsmodels.stats.proportion import proportion_effectsize

from cdx.analysis import scope
from cdx.analysis import stats as analysis_stats
from cdx.analysis.scope import Counts
from cdx.analysis.stats import RateTest

DIRECTIONS = ("gained", "lost")


def sample_size(rate_s: float, rate_c: float, alpha: float = 0.05, power: float = 0.8, n_min: int = 4,
                n_max: int = 64) -> int:
    """Texts per model needed to detect rate_s vs rate_c (Cohen's h, one-sided z-test), clamped to [n_min, n_max].

    With no effect seen (h ~ 0) the answer is n_max: the experiment spends the most it may.
    """
    if not (0 <= rate_s <= 1 and 0 <= rate_c <= 1):
        raise ValueError(f"rates must lie in [0, 1]; got rate_s={rate_s}, rate_c={rate_c}")
    if not 1 <= n_min <= n_max:
        raise ValueError(f"need 1 <= n_min <= n_max; got n_min={n_min}, n_max={n_max}")
    h = abs(proportion_effectsize(rate_c, rate_s))
    if h < 1e-6:
        return n_max
    n = NormalIndPower().solve_power(effect_size=h, alpha=alpha, power=power, ratio=1.0, alternative="larger")
    return int(min(n_max, max(n_min, math.ceil(n))))


class Counted(Protocol):
    """Anything holding both models' counts: `Counts`, a `RateTest`, a `FindingRecord` (read-only here)."""

    @property
    def k_s(self) -> int | None: ...
    @property
    def n_s(self) -> int | None: ...
    @property
    def k_c(self) -> int | None: ...
    @property
    def n_c(self) -> int | None: ...


def pool_counts(tests: Iterable[Counted]) -> Counts:
    """The pooled counts of several tests (a missing count is 0)."""
    k_s = n_s = k_c = n_c = 0
    for t in tests:
        k_s, n_s, k_c, n_c = k_s + (t.k_s or 0), n_s + (t.n_s or 0), k_c + (t.k_c or 0), n_c + (t.n_c or 0)
    return Counts(k_s=k_s, n_s=n_s, k_c=k_c, n_c=n_c)


def rate_test(k_s: int, n_s: int, k_c: int, n_c: int, direction: str = "gained", alpha: float = 0.05) -> RateTest:
    """The validation stage's test (cdx.analysis.stats: Wilson CIs, Newcombe effect CI, one-sided Fisher p)."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction {direction!r} is not valid; use one of {DIRECTIONS}")
    if min(n_s, n_c) < 1 or not (0 <= k_s <= n_s and 0 <= k_c <= n_c):
        raise ValueError(f"counts must satisfy 0 <= k <= n, n >= 1; got k_s={k_s}, n_s={n_s}, k_c={k_c}, n_c={n_c}")
    return analysis_stats.rate_test(k_s, n_s, k_c, n_c, direction, test="fisher", alpha=alpha)


def pooled_test(counts: Counts, direction: str = "gained", alpha: float = 0.05) -> RateTest:
    return rate_test(counts.k_s, counts.n_s, counts.k_c, counts.n_c, direction, alpha)


def bh(pvalues: list[float]) -> list[float]:
    """Benjamini-Hochberg q-values (the validation stage's)."""
    return [float(q) for q in analysis_stats.benjamini_hochberg(pvalues)]


def interaction_p(inside: Counted, outside: Counted, direction: str = "gained") -> float:
    """One-sided p that the effect inside a group exceeds the effect outside it (difference of differences):
    the behaviour stage's test (`cdx.analysis.scope.interaction_p`, a Wald z-test on Agresti-Caffo
    adjusted rates, so zero counts do not give zero variance)."""
    return scope.interaction_p(pool_counts([inside]), pool_counts([outside]), direction)
