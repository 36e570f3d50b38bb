"""Rare behaviours tested on tilted held-out samples (issue 19; docs/analysis.md, "Tilted validation").

Plain validation needs a behaviour in a few percent of texts: at a rate of 0.02, 80 texts per
model hold one or two hits and Fisher's test has almost no power. Here a hypothesis the plain test
did not validate, and whose checker is a phrase, is tested again on fresh samples of the same
held-out prompts drawn from each model *tilted* towards its phrase (`cdx.decoding.Tilt`: the
model's own distribution with a logit bonus on the tokens the phrase starts with; sampling modes
tilt_c, tilt_s). The phrase is written far more often, and each hit is weighted back by the
likelihood ratio of its tokens up to the one that settled it (stopped weights,
`cdx.metrics.importance.stopped_rate`), so each side's estimate is of that model's own rate.

The test is `stopped_rate_difference`: per held-out prompt the difference of the two models'
stopped means, a paired t-test over prompts, one-sided in the hypothesis's direction as the plain
test is (its level under the null is checked by simulation in tests/metrics/test_importance_stopped.py
and on a real null pair by experiments/tilted_power.py). Benjamini-Hochberg runs over the tilted tests of a run,
a family of their own: the hypotheses tested here were chosen because the plain test left them
open. A tilted test validates a hypothesis when its q is at most `fdr`, the difference lies on
the side the hypothesis states, and the model said to show it more often shows it on at least
`cdx.metrics.importance.MIN_HIT_PROMPTS` held-out prompts. Its rates may still be refused (too few
effective hits to state a rate with a useful interval: the estimates' rule): the test's level rests
on the paired test over prompts, checked on null pairs, not on the rates' intervals. Written to
tilted.jsonl, one `TiltedTest` per hypothesis.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

import numpy as np
from pydantic import BaseModel

from cdx.analysis.checkers import build_checker, settled_step
from cdx.analysis.sampling import PLAIN, TILTED, pool_shares, pooled_stopped_logw, stopped_logw
from cdx.analysis.stats import benjamini_hochberg
from cdx.analysis.types import Finding
from cdx.decoding import phrase_tokens
from cdx.io.records import SampleRecord
from cdx.io.settings import SampleSettings, TiltedSettings
from cdx.metrics.importance import MIN_HIT_PROMPTS, RateDifference, RateEstimate, stopped_rate, stopped_rate_difference

log = logging.getLogger(__name__)


class TiltedTest(BaseModel):
    """One hypothesis re-tested on tilted held-out samples (a line of tilted.jsonl)."""

    hypothesis_id: str
    statement: str
    direction: str
    """gained: the comparison model shows it more often; lost: less often (the hypothesis's)."""
    phrase: str
    tokens: list[int]
    """The token ids tilted towards (`cdx.decoding.phrase_tokens` of the phrase)."""
    bonus: float
    rate_c: RateEstimate
    """Its rate under the comparison model, from tilt_c samples (stopped weights)."""
    rate_s: RateEstimate
    """Its rate under the starting model, from tilt_s samples."""
    difference: RateDifference
    """rate_c - rate_s, paired over held-out prompts, with its t interval and p."""
    modes: list[str] = list(TILTED)
    """The sampling modes whose texts were weighted: tilt_c and tilt_s, each towards its own model; with
    `pool`, also plain_c and plain_s, every text towards both models against the four modes' mixture."""
    hit_prompts_c: int
    """Held-out prompts with at least one hit among the comparison model's tilted texts."""
    hit_prompts_s: int
    p: float
    """One-sided p of the paired test in the hypothesis's direction (`one_sided_p`)."""
    q: float = 1.0
    validated: bool = False
    reason: str = ""
    """Why it is not validated (empty when it is)."""


def phrase_of(checker: dict) -> str | None:
    """The literal phrase a checker looks for (a string checker's value), else None: a regex, a
    feature or a judge names no tokens to tilt towards."""
    if checker.get("type") == "string" and str(checker.get("value") or "").strip():
        return str(checker["value"])
    return None


def candidates(findings: Sequence[Finding], s: TiltedSettings) -> list[Finding]:
    """The hypotheses worth a tilted test: not validated by the plain test, with a phrase and no
    prompt cluster (a tilted test is over all held-out prompts); the strongest on the discovery
    samples first (|z| of its term), then the smallest plain p."""
    open_ = [f for f in findings if not f.validated and f.hypothesis.cluster is None
             and phrase_of(f.hypothesis.checker) is not None]
    return sorted(open_, key=lambda f: (-_discovery_z(f), f.p))[: s.max_hypotheses]


def _discovery_z(f: Finding) -> float:
    terms = f.hypothesis.discovery.get("terms") or []
    return max((abs(float(t.get("z") or 0.0)) for t in terms), default=0.0)


def tilt_settings(base: SampleSettings, tokens: list[int], s: TiltedSettings, salt: int) -> SampleSettings:
    """The validation sampling settings, tilted towards `tokens`, with their own seed (`salt`: the
    hypothesis's rank), so that no tilted draw repeats the plain validation draws."""
    return base.but(samples_per_prompt=s.samples_per_prompt, tilt_tokens=tuple(tokens), tilt_bonus=s.bonus,
                    seed=base.seed + 1000 * (salt + 1))


def tilted_test(f: Finding, tokens: list[int], samples: Sequence[SampleRecord], s: TiltedSettings,
                seed: int = 0) -> TiltedTest:
    """The finding's hypothesis tested on its tilted samples (tilt_c and tilt_s texts of the same prompts)."""
    h = f.hypothesis
    checker = build_checker(h.checker)
    if s.pool:
        use = [r for r in samples if r.mode in POOLED]
        steps = [settled_step(checker, r.token_strs, r) for r in use]
        share = pool_shares(use, POOLED)
        lw_c, g_c, full_c = pooled_stopped_logw(use, "comparison", steps, share)
        lw_s, g_s, full_s = pooled_stopped_logw(use, "starting", steps, share)
        # each model's hit prompts: those where its own texts (tilted or plain) show the phrase
        own = {side: [None if r.mode[-1] != side or t is None else 0.0 for r, t in zip(use, steps, strict=True)]
               for side in "cs"}
        hit_prompts = {side: _hit_prompts(own[side], g_c) for side in "cs"}
    else:
        by_mode = {m: [r for r in samples if r.mode == m] for m in TILTED}
        lw_c, g_c, full_c = stopped_logw(checker, by_mode["tilt_c"], "comparison")
        lw_s, g_s, full_s = stopped_logw(checker, by_mode["tilt_s"], "starting")
        hit_prompts = {"c": _hit_prompts(lw_c, g_c), "s": _hit_prompts(lw_s, g_s)}
    rate_c = stopped_rate(lw_c, g_c, logw_full=full_c, seed=seed)
    rate_s = stopped_rate(lw_s, g_s, logw_full=full_s, seed=seed)
    diff = stopped_rate_difference(lw_c, g_c, lw_s, g_s)
    return TiltedTest(hypothesis_id=h.id, statement=h.statement, direction=h.direction, phrase=str(phrase_of(h.checker)),
                      tokens=tokens, bonus=s.bonus, rate_c=rate_c, rate_s=rate_s, difference=diff,
                      modes=list(modes_of(s)), hit_prompts_c=hit_prompts["c"], hit_prompts_s=hit_prompts["s"],
                      p=one_sided_p(diff, h.direction))


POOLED = (*TILTED, *PLAIN)
"""The modes of a pooled tilted test (`TiltedSettings.pool`), drawn in the same batches."""


def modes_of(s: TiltedSettings) -> tuple[str, ...]:
    return POOLED if s.pool else TILTED


def _hit_prompts(hit_logw: list[float | None], group: np.ndarray) -> int:
    return len({g for w, g in zip(hit_logw, group, strict=True) if w is not None})


def one_sided_p(d: RateDifference, direction: str) -> float:
    """The paired test's p in the hypothesis's direction (gained: rate_c > rate_s), as the plain test's is:
    half the two-sided p on the stated side, one minus that on the other; 1 when no prompt differs."""
    if d.diff == 0 and d.p == 1.0:  # no spread at all (e.g. no hits on either side): nothing to test
        return 1.0
    stated = d.diff > 0 if direction == "gained" else d.diff < 0
    return d.p / 2 if stated else 1 - d.p / 2


def apply_tilted_fdr(tests: list[TiltedTest], fdr: float) -> None:
    """BH q over the tilted tests; validated when q <= fdr, the difference has the stated sign and the
    model said to show the behaviour more often shows it on at least MIN_HIT_PROMPTS held-out prompts
    (a paired test over prompts that one or two prompts carry says little, however small its p)."""
    if not tests:
        return
    qs = benjamini_hochberg([t.p for t in tests])
    for t, q in zip(tests, qs, strict=True):
        t.q = float(q)
        sign = 1.0 if t.direction == "gained" else -1.0
        prompts, model = (t.hit_prompts_c, "comparison") if t.direction == "gained" else (t.hit_prompts_s, "starting")
        if t.q > fdr:
            t.reason = f"q={t.q:.3g} > {fdr:g}"
        elif sign * t.difference.diff <= 0:
            t.reason = f"the difference {t.difference.diff:+.4f} is on the other side"
        elif prompts < MIN_HIT_PROMPTS:
            t.reason = (f"the {model} model's tilted texts show it on {prompts} prompt(s) (need >= {MIN_HIT_PROMPTS}): "
                        "draw more tilted samples (samples_per_prompt) or use more prompts")
        else:
            t.reason = ""
        t.validated = not t.reason


def run_tilted(findings: Sequence[Finding], tokenizer, base: SampleSettings, s: TiltedSettings,
               draw: Callable[[str, SampleSettings, tuple[str, ...], bool], list[SampleRecord]],
               seed: int = 0) -> list[TiltedTest]:
    """A tilted test of each candidate (`candidates`); `draw(name, settings, modes, pool)` returns the
    samples of `modes` (`modes_of(s)`) of the held-out prompts under `settings`, with every mode's log q
    when `pool` (kept in a file of that name, resumed by id)."""
    tests = []
    for k, f in enumerate(candidates(findings, s)):
        phrase = str(phrase_of(f.hypothesis.checker))
        tokens = phrase_tokens(tokenizer, phrase)
        samples = draw(f"tilted_{k}", tilt_settings(base, tokens, s, k), modes_of(s), s.pool)
        tests.append(tilted_test(f, tokens, samples, s, seed=seed))
        log.info("tilted test of %r: p=%.3g", f.hypothesis.statement, tests[-1].p)
    apply_tilted_fdr(tests, s.fdr)
    return tests
