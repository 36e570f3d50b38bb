"""Stage 4: test hypotheses on fresh plain samples of held-out prompts.

Only plain samples count here (each model sampled alone, `plain_s` / `plain_c`): amplified text is
for *finding* candidates, never for estimating how often a model does something. Each hypothesis
is checked on every held-out text (restricted to its prompt cluster, if it has one), its rates
are compared by a one-sided rate test, and Benjamini-Hochberg runs over all hypotheses of a run.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import stats as sst

from cdx.analysis.checkers import build_checker
from cdx.analysis.sampling import SampleSettings, sample_pair
from cdx.analysis.stats import TESTS, benjamini_hochberg, rate_test
from cdx.analysis.types import Finding, Hypothesis
from cdx.io.records import Evidence, LikelihoodCheck, SampleRecord

log = logging.getLogger(__name__)


@dataclass
class ValidateSettings:
    """When a hypothesis counts as a validated finding."""

    fdr: float = 0.05
    """Benjamini-Hochberg false discovery rate over all hypotheses of a run."""
    min_effect: float = 0.1
    """Smallest |rate_c - rate_s| worth reporting, whatever the p-value."""
    test: str = "fisher"
    """fisher | ztest | mcnemar (paired by prompt)."""
    min_texts: int = 10
    """Hypotheses whose cluster has fewer held-out texts per model are reported untestable."""
    n_evidence: int = 3
    sampling: SampleSettings = field(default_factory=SampleSettings)

    def __post_init__(self) -> None:
        if not 0 < self.fdr < 1:
            raise ValueError(f"fdr={self.fdr} must be strictly between 0 and 1")
        if not 0 <= self.min_effect < 1:
            raise ValueError(f"min_effect={self.min_effect} must be in [0, 1)")
        if self.test not in TESTS:
            raise ValueError(f"test={self.test!r} is not valid; use one of {TESTS}")
        if isinstance(self.sampling, Mapping):
            self.sampling = SampleSettings.of(**self.sampling)


def validate(
    pair,
    hypotheses: Sequence[Hypothesis | dict],
    prompts: Sequence[str] | None = None,
    settings: ValidateSettings | None = None,
    judge=None,
    samples: Sequence[SampleRecord] | None = None,
    prompt_clusters: Mapping[int, int] | None = None,
) -> list[Finding]:
    """Findings for `hypotheses`, tested on plain samples of both models on `prompts`.

    Pass `samples` (records of `sample_pair` with modes plain_s, plain_c) to test on texts drawn
    before; otherwise they are drawn here (`pair` may then be None only if samples are given).
    `prompt_clusters` maps a sample's prompt_index to its cluster, for cluster hypotheses.
    `judge` is needed for checkers of type judge.
    """
    s = settings or ValidateSettings()
    hyps = [h if isinstance(h, Hypothesis) else Hypothesis.from_dict(h) for h in hypotheses]
    if samples is None:
        if prompts is None or pair is None:
            raise ValueError("validate needs either samples, or a pair and prompts to sample")
        samples = sample_pair(pair, prompts, s.sampling, modes=("plain_s", "plain_c"))
    plain = [r for r in samples if r.mode in ("plain_s", "plain_c")]
    if not plain:
        raise ValueError("validate got no plain samples (modes plain_s / plain_c) to test on")
    findings = [test_hypothesis(h, plain, s, judge, prompt_clusters) for h in hyps]
    apply_fdr(findings, s)
    return findings


def test_hypothesis(h: Hypothesis, plain: Sequence[SampleRecord], s: ValidateSettings, judge=None,
                    prompt_clusters: Mapping[int, int] | None = None) -> Finding:
    checker = build_checker(h.checker, judge)
    texts = [r for r in plain if h.cluster is None or (prompt_clusters or {}).get(r.prompt_index) == h.cluster]
    # a seeded random order: a judge whose answers drift during a session cannot line up with one model
    order = random.Random(h.id).sample(range(len(texts)), len(texts))
    hits = {texts[i].id: checker.check(texts[i]) for i in order}  # the record: an ending needs it
    by = {m: [r for r in texts if r.mode == m] for m in ("plain_s", "plain_c")}
    k_s, n_s = sum(hits[r.id] for r in by["plain_s"]), len(by["plain_s"])
    k_c, n_c = sum(hits[r.id] for r in by["plain_c"]), len(by["plain_c"])
    pairs = _pairs(by, hits) if s.test == "mcnemar" else None
    t = rate_test(k_s, n_s, k_c, n_c, h.direction, s.test, pairs)
    f = Finding(h, n_s, k_s, n_c, k_c, t.rate_s, t.rate_c, t.rate_s_ci, t.rate_c_ci, t.effect, t.effect_ci, t.p)
    f.evidence = _evidence(h, by, hits, s.n_evidence)
    f.likelihood = likelihood_check(texts, hits, h.direction)
    if min(n_s, n_c) < s.min_texts:
        f.reason = f"too few held-out texts ({n_s} starting, {n_c} comparison; need {s.min_texts})"
        f.p = 1.0
    return f


def apply_fdr(findings: list[Finding], s: ValidateSettings) -> None:
    q = benjamini_hochberg([f.p for f in findings], s.fdr)
    for f, qi in zip(findings, q):
        f.q = float(qi)
        if f.reason:
            continue
        sign_ok = f.effect > 0 if f.hypothesis.direction == "gained" else f.effect < 0
        if f.q > s.fdr:
            f.reason = f"q={f.q:.3g} above the FDR {s.fdr}"
        elif not sign_ok or abs(f.effect) < s.min_effect:
            f.reason = f"effect {f.effect:+.3f} below the minimum {s.min_effect} in the stated direction"
        else:
            f.validated = True


def _pairs(by: dict[str, list[SampleRecord]], hits: dict) -> list[tuple[bool, bool]]:
    """(starting shows it, comparison shows it) per (prompt, repeat) present under both models."""
    # (split prefix and prompt, repeat): a small cluster's extra samples pair among themselves
    key = lambda r: (r.id.split("-", 1)[0], r.id.rsplit("-", 1)[-1])  # noqa: E731
    comp = {key(r): hits[r.id] for r in by["plain_c"]}
    return [(hits[r.id], comp[key(r)]) for r in by["plain_s"] if key(r) in comp]


def _evidence(h: Hypothesis, by: dict[str, list[SampleRecord]], hits: dict, n: int) -> list[Evidence]:
    """Held-out texts of the model the statement is about that show the behaviour (or, for lost, lack it)."""
    mode = "plain_c" if h.direction == "gained" else "plain_s"
    rows = [r for r in by[mode] if hits[r.id]]
    return [Evidence(id=r.id, model=r.model or r.mode, prompt=r.prompt, text=r.text) for r in rows[:n]]


def likelihood_check(texts: Sequence[SampleRecord], hits: Mapping[str, bool], direction: str) -> LikelihoodCheck:
    """Do texts showing the behaviour score higher mean log p_c - log p_s than same-model controls?

    A text drawn from p_c scores higher under p_c whatever it says, so each text's per-token
    delta is centred within its model's samples first; then texts with the behaviour are
    compared with those without by a one-sided Mann-Whitney U test (scipy).
    """
    centred: list[float] = []
    labels: list[bool] = []
    for mode in ("plain_s", "plain_c"):
        rows = [r for r in texts if r.mode == mode and r.n_tokens > 0]
        if not rows:
            continue
        d = np.array([r.delta for r in rows])
        centred.extend(d - d.mean())
        labels.extend(hits[r.id] for r in rows)
    pos = np.array([c for c, lab in zip(centred, labels) if lab])
    neg = np.array([c for c, lab in zip(centred, labels) if not lab])
    if len(pos) < 2 or len(neg) < 2:
        return LikelihoodCheck(n_pos=len(pos), n_neg=len(neg), delta=None, p=None, agrees=None)
    alt = "greater" if direction == "gained" else "less"
    p = float(sst.mannwhitneyu(pos, neg, alternative=alt).pvalue)
    diff = float(pos.mean() - neg.mean())
    return LikelihoodCheck(n_pos=len(pos), n_neg=len(neg), delta=diff, p=p,
                           agrees=bool(diff > 0 if direction == "gained" else diff < 0))
