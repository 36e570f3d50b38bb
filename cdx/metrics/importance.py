"""The rate of a behaviour under one model, estimated from texts drawn from another distribution.

Texts x_i are drawn from a proposal q (amplified sampling, say) and a checker says whether each
shows the behaviour, h_i in {0, 1}. The rate under a target p (p_s or p_c) is E_p[h] =
E_q[h p / q], and with the exact log p(x) and log q(x) the decoder records (issue 19) the
self-normalised importance-sampling (SNIS) estimate is

    r = sum_i w_i h_i / sum_i w_i,    w_i = p(x_i) / q(x_i) = exp(logp_target_i - logp_proposal_i).

Self-normalised, so a constant factor in the weights cancels: the same estimate whatever the
prompts' own probabilities, which neither q nor p includes. Its reliability is judged by Kish's
effective sample size ESS = (sum w)^2 / sum w^2 (n for equal weights, 1 when one text carries all
the weight; Kong 1992, Owen 2013 ch. 9). Below `MIN_ESS` the estimate is refused (see there).

The interval is a BCa bootstrap over prompts (docs/analysis.md, "Rates from amplified samples"):
the texts of one prompt are resampled together (they share the prompt and are not independent),
and heavy-tailed weights are carried as they are rather than assumed normal. Where hits were
seen in fewer than `MIN_HIT_PROMPTS` prompts (none included: every resample then says 0) it is
widened to take in the Wilson interval at the effective sample size (Kish's design effect, as
Korn & Graubard 1998 do for weighted survey proportions). Plain samples (target = proposal: all
weights 1) get the plain rate and its Wilson interval, as cdx.analysis.stats gives them.

Two ways texts the target writes can go unseen, and the interval's answer to both. Amplified
sampling's plausibility set takes tokens out of q's support: the target's mass there is never
drawn, and SNIS alone estimates the rate on q's support only. And a proposal that rarely draws a
region of large weight, until it does, shows even weights (a high ESS) and a biased estimate.
In both the unnormalised mean weight, an unbiased estimate of the target's mass on q's support,
falls below 1, and `covered_mass` widens the interval by the mass missing beyond noise. In the
closed-form tests (tests/metrics/test_importance.py) the intervals cover the truth in 0.925 of
simulations with a moderate amplification, 0.91 with a heavy tail (q 20 times below p on one
text; 0.89 without the widening) and 0.96 with a text q cannot draw at all.

Stopped weights (`stopped_rate`). Whole-text weights multiply one ratio p/q per token, and over
32 tokens of real text at alpha 1 a single text carries all the weight (docs/analysis.md). But a
behaviour seen by a phrase is settled the moment its phrase is written: whatever follows, the
text shows it. With tau the token at which the checker's verdict is settled (`hit_steps`) and
W_t = prod_{u <= t} p(x_u | x_<u) / q(x_u | x_<u) the likelihood ratio of the first t tokens,

    P_p(hit) = E_q[ 1{hit} W_tau ]          (optional stopping: W_t is a q-martingale of mean 1)

so each hit carries only the ratio of the tokens up to its phrase, and texts without a hit carry
nothing. The estimate is the plain mean of 1{hit} W_tau, unnormalised: the weights are exact
conditionals given the prompt, so E_q[W] = 1 with no unknown constant, and it needs every token
p can write to be drawable from q (temperature 1 over the full vocabulary: plausibility_beta=0,
no top-p / top-k). Plain samples are the case W = 1 (the plain rate).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel
from scipy.stats import bootstrap, norm
from statsmodels.stats.proportion import proportion_confint

MIN_ESS = 30.0
"""Refuse an estimate whose weights have a Kish ESS below this. An SNIS estimate is at best as
precise as ESS plain samples, and below ~30 a handful of texts carry all the weight: the rate is
one or two texts' hit or miss, and a bootstrap, which can only resample the texts it has, cannot
show how uncertain that is. 30 is also where a normal approximation to a proportion's spread
is conventionally trusted. It guards against visible degeneracy only (see the module's note)."""

MIN_HIT_PROMPTS = 5
"""With hits in fewer prompts than this (none included), the bootstrap over prompts sees too few
distinct hits to know the rate's spread (with none, every resample says 0): the interval then
also takes in the Wilson interval at the ESS, which is wide enough to say how little is known."""

PLAIN_ATOL = 1e-3
"""A text whose |log p - log q| is within this is taken to be drawn from the target itself: the
decoder's log q of a plain sample differs from log p by float rounding (~1e-6 per token)."""


class RateEstimate(BaseModel):
    """The rate of a checker under a target model, from samples of a proposal."""

    rate: float | None
    """The SNIS estimate (the plain rate for plain samples); None when refused."""
    low: float | None
    """Lower end of the interval (at `confidence`); None when refused."""
    high: float | None
    """Upper end of the interval; None when refused."""
    confidence: float
    """Nominal coverage of [low, high], e.g. 0.95."""
    ess: float
    """Kish's effective sample size (sum w)^2 / sum w^2; for `stopped`, the effective hits (the
    same formula over the hits' weights)."""
    n: int
    """Texts used."""
    n_hits: int
    """Texts the checker marked (unweighted count)."""
    n_groups: int
    """Distinct prompts (the bootstrap's units)."""
    method: Literal["wilson", "snis", "stopped", "refused"]
    """wilson: plain samples (all weights 1); snis: importance weighted (whole texts); stopped:
    weights up to the token that settled each hit (`stopped_rate`); refused: see `message`."""
    covered_mass: float = 1.0
    """The target's mass on texts the proposal can draw, as far as the samples show it (the upper
    confidence bound of mean(p/q), capped at 1; see `covered_mass`). Below 1 the interval is
    widened to [low m, high m + 1 - m]: the unseen mass may hold no hits or only hits."""
    degenerate: bool = False
    """True when the weights are too uneven to report a rate (ESS below the threshold)."""
    message: str = ""
    """Why an estimate was refused or widened (covered mass below 1), and what to do about it."""


def kish_ess(log_w: np.ndarray) -> float:
    """(sum w)^2 / sum w^2 from log-weights, computed stably (max subtracted); 0 if all w are 0."""
    if log_w.size == 0 or np.max(log_w) == -np.inf:
        return 0.0
    w = np.exp(log_w - np.max(log_w))
    return float(w.sum() ** 2 / np.square(w).sum())


def importance_rate(
    hit: Sequence[bool] | np.ndarray,
    logp_target: Sequence[float] | np.ndarray,
    logp_proposal: Sequence[float] | np.ndarray | None = None,
    group: Sequence | np.ndarray | None = None,
    *,
    confidence: float = 0.95,
    min_ess: float = MIN_ESS,
    n_resamples: int = 2000,
    seed: int = 0,
) -> RateEstimate:
    """The rate of `hit` under the target, from texts drawn from the proposal.

    `logp_target`, `logp_proposal`: each text's whole-text log-probability under the target and
    under the distribution it was drawn from (`text_logp` of a record); `logp_proposal=None`
    means plain samples of the target. `group`: each text's prompt (default: one per text).
    A target log-prob of -inf (a token the target cannot write) is weight 0, kept in n.
    """
    h, lt, lq, g = _inputs(hit, logp_target, logp_proposal, group)
    log_w = lt - lq
    ess = kish_ess(log_w)
    base: dict[str, Any] = dict(confidence=confidence, ess=ess, n=len(h), n_hits=int(h.sum()), n_groups=len(np.unique(g)))
    if np.all(np.abs(log_w) <= PLAIN_ATOL):
        k, n = int(h.sum()), len(h)
        low, high = proportion_confint(k, n, alpha=1 - confidence, method="wilson")
        return RateEstimate(rate=k / n, low=float(low), high=float(high), method="wilson", **base)
    if ess < min_ess:
        msg = (f"ESS {ess:.1f} of {len(h)} samples is below the threshold {min_ess:g}: the importance weights "
               "are degenerate (a few texts carry all the weight); lower decoding.rule.alpha or draw more samples")
        return RateEstimate(rate=None, low=None, high=None, method="refused", degenerate=True, message=msg, **base)
    w = np.exp(log_w - np.max(log_w))
    rate = float(np.dot(w, h) / w.sum())
    low, high = _interval(h, w, g, rate, ess, confidence, n_resamples, seed)
    m = covered_mass(log_w, g, confidence)
    msg = "" if m == 1.0 else (
        f"the proposal draws at most {m:.3g} of the target's mass (the rest is outside its support, e.g. the "
        "plausibility set, or not drawn yet): the interval allows any rate there; lower the plausibility beta "
        "or draw more samples")
    return RateEstimate(rate=rate, low=low * m, high=min(1.0, high * m + 1 - m), covered_mass=m, method="snis",
                        message=msg, **base)


MIN_EFFECTIVE_HITS = 10.0
"""Refuse a stopped estimate whose hits carry weights so uneven that fewer than this many count:
(sum y)^2 / sum y^2 over y = 1{hit} W_tau. The estimate is then a few hits' weights, and its
relative error about 1 / sqrt(effective hits) at best: 10 keeps that near 30%. Plain samples
have effective hits = hits."""


def stopped_rate(
    hit_logw: Sequence[float | None] | np.ndarray,
    group: Sequence | np.ndarray | None = None,
    *,
    logw_full: Sequence[float] | np.ndarray | None = None,
    confidence: float = 0.95,
    min_effective_hits: float = MIN_EFFECTIVE_HITS,
    n_resamples: int = 2000,
    seed: int = 0,
) -> RateEstimate:
    """The rate under the target from stopped weights (module docstring, "Stopped weights").

    `hit_logw`: per text, log W_tau = sum over its tokens up to the one that settled the hit of
    (log p - log q); None or NaN for a text without a hit. `group`: each text's prompt (the
    bootstrap's unit). `logw_full`: per text, the whole-text log p - log q, for the covered-mass
    check (texts the proposal cannot draw); without it the proposal is taken to cover the target.
    The interval is the hull of the BCa bootstrap of the mean over prompts and Wilson's interval at
    the design effect's sample size (`_wilson_at_design_effect`); `ess` holds the effective hits.
    """
    hit, y = _stopped_values(hit_logw)
    g = np.arange(len(y)) if group is None else np.asarray(group)
    if y.ndim != 1 or g.shape != y.shape or len(y) == 0:
        raise ValueError(f"hit_logw and group need one value per text (at least one); got shapes {y.shape}, {g.shape}")
    ess = float(y.sum() ** 2 / np.square(y).sum()) if y.any() else 0.0
    _, idx = np.unique(g, return_inverse=True)
    y_g, n_g = np.bincount(idx, weights=y), np.bincount(idx).astype(np.float64)
    base: dict[str, Any] = dict(confidence=confidence, ess=ess, n=len(y), n_hits=int(hit.sum()), n_groups=len(n_g))
    hit_prompts = int((y_g > 0).sum())
    if ess < min_effective_hits or hit_prompts < MIN_HIT_PROMPTS:
        msg = (f"{int(hit.sum())} hits in {hit_prompts} prompts weigh as {ess:.1f} effective hits (need >= "
               f"{min_effective_hits:g} in >= {MIN_HIT_PROMPTS} prompts): draw more samples or amplify more "
               "(raise alpha) so that the behaviour is drawn more often")
        return RateEstimate(rate=None, low=None, high=None, method="refused", degenerate=True, message=msg, **base)
    rate = float(y.mean())
    low, high = _bootstrap_ratio(y_g, n_g, confidence, n_resamples, seed)
    w_low, w_high = _wilson_at_design_effect(y_g, n_g, rate, confidence)
    low, high = min(low, w_low), max(high, w_high)
    m = 1.0 if logw_full is None else covered_mass(np.asarray(logw_full, dtype=np.float64), g, confidence)
    msg = "" if m == 1.0 else (
        f"the proposal draws at most {m:.3g} of the target's mass (plausibility set, top-p or top-k): the "
        "interval allows any rate there; sample with plausibility_beta=0 and no top-p / top-k")
    return RateEstimate(rate=rate, low=max(0.0, low) * m, high=min(1.0, high * m + 1 - m), covered_mass=m,
                        method="stopped", message=msg, **base)


def _stopped_values(hit_logw: Sequence[float | None] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hit, y): per text whether it hit, and y = 1{hit} W_tau (0 without a hit, or where the target
    cannot write the hit: log W = -inf). A None or NaN log-weight is a text without a hit."""
    lw = np.array([np.nan if v is None else float(v) for v in hit_logw], dtype=np.float64)
    if (lw == np.inf).any():
        raise ValueError("a hit's log-weight is +inf: the proposal could not have drawn it (wrong log q?)")
    hit = ~np.isnan(lw)
    return hit, np.where(hit, np.exp(np.where(hit, np.minimum(lw, 700.0), 0.0)), 0.0)


class RateDifference(BaseModel):
    """A test of rate under the comparison model = rate under the starting model, from stopped weights."""

    diff: float
    """Estimated rate_c - rate_s (mean over prompts of the per-prompt difference of stopped means)."""
    low: float
    high: float
    """The t interval of `diff` at `confidence`, over prompts."""
    p: float
    """Two-sided p-value of the paired t-test over prompts (H0: equal rates)."""
    confidence: float
    n_prompts: int
    """Prompts with texts on both sides: the test's units."""


def stopped_rate_difference(
    hit_logw_c: Sequence[float | None], group_c: Sequence | np.ndarray,
    hit_logw_s: Sequence[float | None], group_s: Sequence | np.ndarray,
    *, confidence: float = 0.95,
) -> RateDifference:
    """Whether a behaviour's rate differs between the two models, from stopped weights of each
    side's own samples (e.g. tilt_c texts weighted towards p_c, tilt_s texts towards p_s).

    Per prompt, the mean of 1{hit} W_tau on each side is an unbiased estimate of that prompt's rate
    under each model; their difference is tested by a paired t-test over prompts (the texts of one
    prompt are not independent; prompts are). Its level under the null is checked by simulation in
    tests/metrics/test_importance_stopped.py.
    """
    from scipy.stats import ttest_1samp

    def per_prompt(hit_logw, group) -> dict:
        _, y = _stopped_values(hit_logw)
        g = np.asarray(group)
        if g.shape != y.shape:
            raise ValueError(f"hit_logw and group need one value per text; got {y.shape} and {g.shape}")
        return {k: float(y[g == k].mean()) for k in np.unique(g)}

    c, s_ = per_prompt(hit_logw_c, group_c), per_prompt(hit_logw_s, group_s)
    both = sorted(set(c) & set(s_), key=str)
    if len(both) < 2:
        raise ValueError(f"{len(both)} prompt(s) have texts on both sides: the paired test needs at least 2")
    d = np.array([c[k] - s_[k] for k in both])
    if np.all(d == d[0]):  # no spread (e.g. no hits anywhere): the t-test is undefined
        return RateDifference(diff=float(d[0]), low=float(d[0]), high=float(d[0]), p=1.0 if d[0] == 0 else 0.0,
                              confidence=confidence, n_prompts=len(both))
    res = ttest_1samp(d, 0.0)
    ci = res.confidence_interval(confidence)
    return RateDifference(diff=float(d.mean()), low=float(ci.low), high=float(ci.high), p=float(res.pvalue),
                          confidence=confidence, n_prompts=len(both))


def covered_mass(log_w: np.ndarray, group: np.ndarray, confidence: float = 0.95) -> float:
    """An upper confidence bound of p(support of q), capped at 1: mean(w) + z se, w = p/q unnormalised.

    E_q[p/q] = p(support of q) exactly, because log p and log q are conditional on the same prompt
    (no unknown constant in w). Amplified sampling's plausibility set takes tokens out of q's
    support, and p's mass there is never drawn: SNIS alone estimates the rate on q's support only.
    The upper bound (a cluster-robust standard error over prompts) widens the interval only for
    mass that is missing beyond sampling noise; it also drops below 1 when the draws missed a
    region of large weight, the heavy-tail failure that no ESS shows.
    """
    w = np.exp(np.minimum(log_w, 700.0))  # e^700 is finite: an overflow would only mean "more than 1"
    _, idx = np.unique(group, return_inverse=True)
    n, n_g = len(w), int(idx.max()) + 1
    mean = float(w.mean())
    resid = np.bincount(idx, weights=w - mean)  # per prompt: sum of (w - mean)
    se = math.sqrt(n_g / max(n_g - 1, 1) * float(np.square(resid).sum())) / n
    return min(1.0, mean + float(norm.ppf((1 + confidence) / 2)) * se)


def _inputs(hit, logp_target, logp_proposal, group) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    h = np.asarray(hit, dtype=np.float64)
    lt = np.asarray(logp_target, dtype=np.float64)
    lq = lt.copy() if logp_proposal is None else np.asarray(logp_proposal, dtype=np.float64)
    g = np.arange(len(h)) if group is None else np.asarray(group)
    if not (h.ndim == 1 and h.shape == lt.shape == lq.shape == g.shape):
        raise ValueError(f"hit, logp_target, logp_proposal and group need one value per text; got shapes "
                         f"{h.shape}, {lt.shape}, {lq.shape}, {g.shape}")
    if len(h) == 0:
        raise ValueError("no texts: a rate needs at least one sample")
    if not np.isin(h, (0.0, 1.0)).all():
        raise ValueError("hit must be 0/1 (a checker's verdict per text)")
    if np.isnan(lt).any() or np.isnan(lq).any() or (lt == np.inf).any():
        raise ValueError("a log-probability is NaN or +inf")
    if not np.isfinite(lq).all():
        # a text the proposal could not draw (log q = -inf) would have infinite weight: a recording error
        raise ValueError(f"{int((~np.isfinite(lq)).sum())} texts have log q = -inf: they cannot have been "
                         "drawn from this proposal (wrong logp_proposal?)")
    return h, lt, lq, g


def _interval(h: np.ndarray, w: np.ndarray, g: np.ndarray, rate: float, ess: float, confidence: float,
              n_resamples: int, seed: int) -> tuple[float, float]:
    """The BCa bootstrap over prompts; with hits in fewer than `MIN_HIT_PROMPTS` prompts, its hull
    with the Wilson interval at the ESS (a bootstrap cannot resample hits it has not seen)."""
    _, idx = np.unique(g, return_inverse=True)
    wh_g = np.bincount(idx, weights=w * h)  # per prompt: sum of w h, sum of w
    w_g = np.bincount(idx, weights=w)
    few_hits = int((wh_g > 0).sum()) < MIN_HIT_PROMPTS
    low, high = _wilson_at_ess(rate, ess, confidence) if few_hits or len(w_g) < 2 else (1.0, 0.0)
    if len(w_g) > 1:
        b_low, b_high = _bootstrap_ratio(wh_g, w_g, confidence, n_resamples, seed)
        low, high = min(low, b_low), max(high, b_high)
    return float(max(low, 0.0)), float(min(high, 1.0))


def _wilson_at_design_effect(y_g: np.ndarray, n_g: np.ndarray, rate: float, confidence: float) -> tuple[float, float]:
    """Wilson's interval for `rate` at the effective sample size n* = r (1 - r) / Var(r), Var the
    cluster-robust variance over prompts (Korn & Graubard 1998, for weighted survey proportions).

    A mean of heavy-tailed weights is skewed: when the large weights have not been drawn the
    estimate is low, and a bootstrap, which resamples only what was drawn, is too short above it
    (0.87-0.90 coverage at 10-20 effective hits on the tiny_brand testbed, docs/analysis.md). Wilson's
    interval at n* is asymmetric the way a small proportion is: longer above. The stopped estimate's
    interval is the hull of the two. (rate, rate) where the variance is 0 (no hits, or one prompt).
    """
    n, k = float(n_g.sum()), len(n_g)
    var = k / (k - 1) * float(np.square(y_g - rate * n_g).sum()) / n ** 2 if k > 1 else 0.0
    if var <= 0 or not 0 < rate < 1:
        return rate, rate
    return _wilson_at_ess(rate, rate * (1 - rate) / var, confidence)


def _wilson_at_ess(rate: float, ess: float, confidence: float) -> tuple[float, float]:
    """Wilson's interval for `rate` seen in `ess` independent texts (its formula takes real counts)."""
    low, high = proportion_confint(rate * ess, ess, alpha=1 - confidence, method="wilson")
    return float(low), float(high)


def _bootstrap_ratio(wh_g: np.ndarray, w_g: np.ndarray, confidence: float, n_resamples: int,
                     seed: int) -> tuple[float, float]:
    """BCa interval of sum(w h) / sum(w) over prompts resampled with replacement.

    A resample whose prompts carry no weight at all has no estimate; it counts as rate 0 (which
    only widens the interval, towards 0). If every resample gives the same rate (no hits, or
    all hits), BCa is undefined: that rate, both ends (the Wilson part then gives the width).
    """
    def ratio(a, b, axis=-1):
        num, den = a.sum(axis=axis), b.sum(axis=axis)
        return np.divide(num, den, out=np.zeros_like(num, dtype=np.float64), where=den > 0)

    point = float(ratio(wh_g, w_g))
    if np.all(wh_g == 0) or np.allclose(wh_g, w_g):
        return point, point
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # DegenerateDataWarning: handled by the nan check below
        res = bootstrap((wh_g, w_g), ratio, paired=True, vectorized=True, n_resamples=n_resamples,
                        confidence_level=confidence, method="BCa", rng=np.random.default_rng(seed))
    low, high = float(res.confidence_interval.low), float(res.confidence_interval.high)
    if not (math.isfinite(low) and math.isfinite(high)):  # BCa's jackknife failed: the percentile interval
        low, high = (float(x) for x in np.quantile(res.bootstrap_distribution,
                                                   [(1 - confidence) / 2, (1 + confidence) / 2]))
    return low, high
