"""Where a behaviour lives: all prompts, or some prompt clusters, with a test of model x in-scope.

The clusters are chosen on the discovery samples (where the behaviour's rate difference between
the two sides is at least `min_effect` and at least half of the largest cluster's), so the
held-out texts that test the scope played no part in choosing it (they pick among nested
candidates of those clusters, at a Bonferroni price: `find_scope`). The test is of the interaction:
is the difference between the models larger inside the scope than outside it? Its statistic is
the difference of the two rate differences, each rate with the Agresti-Caffo adjustment (one
success and one failure added, so that rates of 0/65 have a variance), compared with its
standard error by a one-sided z-test. A scope that fails the test is reported as all prompts,
with the test beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pydantic import BaseModel
from scipy import stats as sst

from cdx.analysis.describe import SIDE
from cdx.io.records import SampleRecord


class Counts(BaseModel):
    """k of n texts of each model show the behaviour."""

    k_s: int
    n_s: int
    k_c: int
    n_c: int

    @property
    def rate_s(self) -> float:
        return self.k_s / self.n_s if self.n_s else 0.0

    @property
    def rate_c(self) -> float:
        return self.k_c / self.n_c if self.n_c else 0.0

    def text(self) -> str:
        return f"{self.k_c}/{self.n_c} vs {self.k_s}/{self.n_s}"


class Scope(BaseModel):
    """All prompts (`clusters` empty) or the prompt clusters where the behaviour lives."""

    clusters: list[int] = []
    labels: list[str] = []
    inside: Counts | None = None
    """Held-out counts on prompts of the scope's clusters (comparison, starting)."""
    outside: Counts | None = None
    """... and on all other prompts."""
    interaction_p: float | None = None
    """One-sided p of "the difference is larger inside than outside" (None: not tested)."""
    note: str = ""

    @property
    def everywhere(self) -> bool:
        return not self.clusters

    def text(self) -> str:
        if self.everywhere:
            return "all prompts" + (f" ({self.note})" if self.note else "")
        assert self.inside is not None and self.outside is not None  # a scope is tested inside and out
        return (f"on prompts about {'; '.join(self.labels)}: {self.inside.text()}; elsewhere "
                f"{self.outside.text()} (interaction p={self.interaction_p:.2g})")


@dataclass
class ScopeSettings:
    min_effect: float = 0.1
    """A cluster is in scope when its discovery rate difference is at least this ..."""
    share_of_best: float = 0.5
    """... and at least this share of the largest cluster's difference."""
    alpha: float = 0.05
    """Level of the interaction test on held-out prompts."""

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1:
            raise ValueError(f"behaviours.scope.alpha={self.alpha} must be strictly between 0 and 1")
        if not 0 <= self.share_of_best <= 1 or not 0 <= self.min_effect < 1:
            raise ValueError(f"behaviours.scope: share_of_best={self.share_of_best} must be in [0, 1] and "
                             f"min_effect={self.min_effect} in [0, 1)")


def count(rows: Sequence[SampleRecord], hits: Mapping[str, bool]) -> Counts:
    """Counts over plain (or, for discovery, plain and amplified) texts of both sides."""
    by = {"s": [r for r in rows if SIDE[r.mode] == "s"], "c": [r for r in rows if SIDE[r.mode] == "c"]}
    return Counts(k_s=sum(hits[r.id] for r in by["s"]), n_s=len(by["s"]),
                  k_c=sum(hits[r.id] for r in by["c"]), n_c=len(by["c"]))


def choose_clusters(discovery: Sequence[SampleRecord], hits: Mapping[str, bool], assign: Mapping[int, int],
                    direction: str, s: ScopeSettings) -> list[int]:
    """Clusters whose discovery difference (in `direction`) is large, the largest first; all clusters
    when every one is."""
    sign = 1 if direction == "gained" else -1
    diffs = {}
    for c in sorted(set(assign.values())):
        n = count([r for r in discovery if assign.get(r.prompt_index) == c], hits)
        if n.n_s and n.n_c:
            diffs[c] = sign * (n.rate_c - n.rate_s)
    if not diffs:
        return []
    best = max(diffs.values())
    ranked = sorted(diffs, key=lambda c: (-diffs[c], c))
    return [c for c in ranked if diffs[c] >= max(s.min_effect, s.share_of_best * best)]


def interaction_p(inside: Counts, outside: Counts, direction: str) -> float:
    """One-sided p that (rate_c - rate_s) is larger inside than outside (Agresti-Caffo adjusted rates)."""
    def adj(k: int, n: int) -> tuple[float, float]:
        p = (k + 1) / (n + 2)
        return p, p * (1 - p) / (n + 2)

    parts = [adj(inside.k_c, inside.n_c), adj(inside.k_s, inside.n_s),
             adj(outside.k_c, outside.n_c), adj(outside.k_s, outside.n_s)]
    contrast = (parts[0][0] - parts[1][0]) - (parts[2][0] - parts[3][0])
    if direction == "lost":
        contrast = -contrast
    z = contrast / math.sqrt(sum(v for _, v in parts))
    return float(sst.norm.sf(z))


def find_scope(discovery: Sequence[SampleRecord], heldout: Sequence[SampleRecord], hits: Mapping[str, bool],
               assign: Mapping[int, int], labels: Mapping[int, str], direction: str,
               s: ScopeSettings | None = None) -> Scope:
    """The behaviour's scope: clusters chosen on discovery, the interaction tested on held-out texts.

    The chosen clusters, largest discovery difference first, give nested candidates (the first
    cluster, the first two, ...): a cluster of two discovery prompts can pass the discovery rule on
    one prompt's repeated samples, and a scope that takes it in is diluted by texts without the
    behaviour. Each candidate is tested on the held-out texts; the one with the smallest p is the
    scope, its p multiplied by the number of candidates tested (Bonferroni), so the level holds.
    """
    s = s or ScopeSettings()
    n_clusters = len(set(assign.values()))
    chosen = choose_clusters(discovery, hits, assign, direction, s)
    if n_clusters < 2 or not chosen or len(chosen) == n_clusters:
        return Scope()
    tested = []
    for k in range(1, len(chosen) + 1):
        within = set(chosen[:k])
        inside = count([r for r in heldout if assign.get(r.prompt_index) in within], hits)
        outside = count([r for r in heldout if assign.get(r.prompt_index) not in within], hits)
        if inside.n_s and inside.n_c and outside.n_s and outside.n_c:
            tested.append((interaction_p(inside, outside, direction), chosen[:k], inside, outside))
    if not tested:
        return Scope(note="the narrower scope has no held-out texts to test it")
    p, clusters, inside, outside = min(tested, key=lambda t: t[0])
    p = min(1.0, p * len(tested))
    names = [str(labels.get(c, f"cluster {c}")) for c in clusters]
    if p > s.alpha:
        return Scope(inside=inside, outside=outside, interaction_p=p,
                     note=f"not narrower: on {'; '.join(names)} {inside.text()}, elsewhere {outside.text()}, "
                          f"interaction p={p:.2g}" + (f" ({len(tested)} nested scopes tested)" if len(tested) > 1 else ""))
    return Scope(clusters=clusters, labels=names, inside=inside, outside=outside, interaction_p=p)
