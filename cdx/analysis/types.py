"""The records the analysis passes between its stages: hypotheses and findings."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field, fields

from cdx.io.records import Evidence, FindingRecord, LikelihoodCheck

DIRECTIONS = ("gained", "lost")


@dataclass
class Hypothesis:
    """A testable statement about how the comparison model differs from the starting model.

    `direction` "gained": the comparison model shows the behaviour more often; "lost": less often.
    `checker` is a JSON dict for `build_checker` deciding, per text, whether it shows the behaviour.
    `cluster` restricts the test to prompts of one prompt cluster (None: all prompts).
    """

    statement: str
    checker: dict
    direction: str = "gained"
    kind: str = "given"
    """Where it came from: ngram, feature, cluster_feature, assistant, or given (by a caller)."""
    cluster: int | None = None
    cluster_label: str | None = None
    discovery: dict = field(default_factory=dict)
    """Counts and scores on the discovery split that suggested it."""
    id: str = ""

    def __post_init__(self) -> None:
        if self.direction not in DIRECTIONS:
            raise ValueError(f"hypothesis {self.statement!r}: direction={self.direction!r} is not valid; "
                             f"use one of {DIRECTIONS}")
        if not isinstance(self.checker, dict) or "type" not in self.checker:
            raise ValueError(f"hypothesis {self.statement!r}: checker must be a dict with a 'type'; got {self.checker!r}")
        if not self.id:
            key = json.dumps([self.checker, self.direction, self.cluster], sort_keys=True)
            self.id = "h" + hashlib.sha1(key.encode()).hexdigest()[:10]

    @classmethod
    def from_dict(cls, d: dict) -> Hypothesis:
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in names})

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Finding:
    """One tested hypothesis: rates under both models on held-out plain samples, effect, p, q."""

    hypothesis: Hypothesis
    n_s: int
    k_s: int
    n_c: int
    k_c: int
    rate_s: float
    rate_c: float
    rate_s_ci: tuple[float, float]
    rate_c_ci: tuple[float, float]
    effect: float
    """rate_c - rate_s."""
    effect_ci: tuple[float, float]
    p: float
    q: float = 1.0
    validated: bool = False
    reason: str = ""
    """Why it is not validated (empty when it is)."""
    evidence: list[Evidence] = field(default_factory=list)
    """Held-out texts that show it: {id, model, prompt, text}."""
    likelihood: LikelihoodCheck = field(default_factory=LikelihoodCheck)
    """Mean per-token log p_c - log p_s of texts showing it vs same-model controls, with a p-value."""

    def record(self) -> FindingRecord:
        """The typed findings record (`FindingRecord`, cdx.io.records) of the hypothesis and the test."""
        own = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "hypothesis"}
        return FindingRecord(**asdict(self.hypothesis), **own)

    def to_record(self) -> dict:
        """The findings.jsonl record: `record()`'s model_dump."""
        return self.record().model_dump()

    @classmethod
    def from_record(cls, r: dict | FindingRecord) -> Finding:
        """A finding from its record, checked by `FindingRecord` (a ValueError names a bad field)."""
        rec = r if isinstance(r, FindingRecord) else FindingRecord.model_validate(r)
        h = Hypothesis(**{f.name: getattr(rec, f.name) for f in fields(Hypothesis)})
        return cls(h, **{f.name: getattr(rec, f.name) for f in fields(cls) if f.name != "hypothesis"})
