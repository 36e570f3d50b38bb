"""Typed schemas of the composed config's groups (pydantic v2), checked before any model loads.

Each schema states the valid values of the options it knows and the combinations that would
silently do nothing or degenerate (e.g. beams with sampling, both rule weights zero). Unknown
extra keys are allowed here: whether a key is accepted is decided by the `_target_`'s signature
(see `cdx.config.validate`), so a new option added to a rule or a task needs no schema change.
Every float must be finite (no NaN, no inf).
"""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Probability = float  # in [0, 1]


class Schema(BaseModel):
    """Finite floats, extra keys allowed (checked against the `_target_` elsewhere)."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, populate_by_name=True)


class _Rule(Schema):
    similarity_gating_intensity: float | None = Field(None, ge=0)
    limit_to_starting_model_top_p: float | None = Field(None, gt=0, le=1)


class ProbDiffSchema(_Rule):
    """cdx.decoding.ProbDiff: sample from max(w_s p_s + w_c p_c, 0), renormalised."""

    starting_weight: float = 1.0
    comparison_weight: float = -1.0
    min_positive_mass: float = Field(1e-6, ge=0, lt=1)

    @model_validator(mode="after")
    def _some_positive_weight(self) -> ProbDiffSchema:
        # With no positive weight, max(w_s p_s + w_c p_c, 0) is 0 everywhere: every step falls back to p_s.
        if self.starting_weight <= 0 and self.comparison_weight <= 0:
            raise ValueError(
                f"rule weights ({self.starting_weight:g}, {self.comparison_weight:g}) have no positive weight, so "
                "max(w_s p_s + w_c p_c, 0) is zero everywhere and every step silently falls back to plain sampling "
                "from the starting model; give one side a positive weight, e.g. (1, -1)"
            )
        return self


class LogitDiffSchema(_Rule):
    """cdx.decoding.LogitDiff: softmax(w_s log p_s + w_c log p_c) within the plausibility set."""

    starting_weight: float | None = None
    comparison_weight: float | None = None
    alpha: float | None = None
    amplified: Literal["starting", "comparison"] = "starting"
    plausibility_beta: float = Field(0.1, ge=0, le=1)
    plausibility_from: Literal["auto", "starting", "comparison"] = "auto"

    @model_validator(mode="after")
    def _weights(self) -> LogitDiffSchema:
        if self.alpha is not None and (self.starting_weight is not None or self.comparison_weight is not None):
            raise ValueError("give either alpha or starting_weight/comparison_weight, not both")
        if self.alpha is None and self.starting_weight == 0 and self.comparison_weight == 0:
            raise ValueError(
                "rule weights (0, 0) make every token equally likely (uniform noise); give a non-zero weight, "
                "e.g. alpha=1 or (2, -1)"
            )
        return self


class DecodingSchema(Schema):
    """cdx.decoding.ContrastiveDecoder's options (conf/decoding/*.yaml)."""

    strategy: Literal["sample", "greedy", "beam"] = "sample"
    temperature: float = Field(1.0, gt=0)
    top_p: float | None = Field(None, gt=0, le=1)
    top_k: int | None = Field(None, ge=1)
    num_beams: int = Field(1, ge=1)
    generations_per_prefix: int = Field(1, ge=1)
    max_new_tokens: int = Field(32, ge=1)
    min_new_tokens: int = Field(0, ge=0)
    stop_strings: list[str] = Field(default_factory=list)
    stop_at_eos: bool = True
    batch_size: int = Field(8, ge=1)
    seed: int = Field(0, ge=0)
    include_prefix_in_divergences: bool = False
    parallel: Literal["auto", True, False] = "auto"
    sampler: Literal["inverse_cdf", "multinomial"] = "inverse_cdf"

    @field_validator("stop_strings")
    @classmethod
    def _no_empty_stop(cls, v: list[str]) -> list[str]:
        if any(s == "" for s in v):
            raise ValueError("an empty stop string matches at once and ends every text after one token; remove ''")
        return v

    @model_validator(mode="after")
    def _combinations(self) -> DecodingSchema:
        if self.num_beams > 1 and self.strategy != "beam":
            raise ValueError(
                f"num_beams={self.num_beams} does nothing with strategy={self.strategy}: set strategy=beam "
                "(decoding=beam), or num_beams=1"
            )
        if self.strategy == "beam" and self.num_beams < 2:
            raise ValueError("strategy=beam with num_beams=1 is greedy decoding: set num_beams >= 2 or strategy=greedy")
        if self.strategy == "beam" and self.generations_per_prefix > self.num_beams:
            raise ValueError(f"generations_per_prefix={self.generations_per_prefix} exceeds num_beams={self.num_beams}: "
                             "beam search returns at most num_beams continuations per prompt")
        if self.strategy != "sample" and (self.top_p is not None or self.top_k is not None):
            raise ValueError(f"top_p/top_k do nothing with strategy={self.strategy} (no sampling): set them to null, "
                             "or strategy=sample")
        if self.min_new_tokens > self.max_new_tokens:
            raise ValueError(f"min_new_tokens={self.min_new_tokens} exceeds max_new_tokens={self.max_new_tokens}: "
                             "set min_new_tokens <= max_new_tokens")
        return self


class ModelSideSchema(Schema):
    """One side of a pair (cdx.models.ModelSpec); ModelSpec itself checks dtype and quantization names."""

    path: str = Field(min_length=1)
    quantization: Literal["4bit", "8bit"] | None = None
    device: str = "cpu"
    seed: int = Field(0, ge=0)


class ModelPairSchema(Schema):
    """cdx.models.load_pair's options (conf/model/*.yaml)."""

    starting: ModelSideSchema
    comparison: ModelSideSchema
    interpolation: float | None = None
    chat_template: bool = True
    cache_dir: str | None = None


class ReportSchema(Schema):
    """The top-level `report:` block: which per-text metric ranks, which per-token metric colours."""

    top_n: int = Field(5, ge=1)
    sort_key: str = "kl_sc_mean"
    token_metric: str = "kl_sc"
    color: bool = True
    print_top: bool = True


class OpenAIAssistantSchema(Schema):
    model: str = Field(min_length=1)
    base_url: str | None = Field(None, pattern=r"^https?://[^/\s]+")
    api_key_env: str | None = None
    timeout: float = Field(60.0, gt=0)
    max_retries: int = Field(5, ge=0)
    backoff_initial: float = Field(1.0, ge=0)
    backoff_max: float = Field(30.0, ge=0)


class LocalAssistantSchema(Schema):
    model_path: str = Field(min_length=1)
    top_p: float = Field(0.95, gt=0, le=1)


class ScriptedAssistantSchema(Schema):
    replies: list[str] = Field(min_length=1)
    fail_after: int | None = Field(None, ge=0)


class MatchRuleSchema(Schema):
    """task=benchmark's checker rules (cdx.organisms.scoring.MatchRule)."""

    min_evidence: int = Field(2, ge=1)
    evidence_share: float = Field(0.5, ge=0, lt=1)
    agreement: float = Field(0.5, ge=0, le=1)


class RubricSchema(Schema):
    """task=benchmark's rubric judge (cdx.organisms.judge.RubricSettings)."""

    max_findings: int = 10
    max_evidence: int = Field(3, ge=1)
    evidence_chars: int = Field(400, ge=1)
    max_tokens: int = Field(64, ge=1)

    @field_validator("max_findings")
    @classmethod
    def _top_five_graded(cls, v: int) -> int:
        if v < 5:
            raise ValueError("must be >= 5: Recovery@5 needs the top 5 validated findings graded")
        return v


class BenchmarkTaskSchema(Schema):
    """task=benchmark's scoring options (conf/task/benchmark.yaml)."""

    match: MatchRuleSchema = Field(default_factory=MatchRuleSchema)
    judge: bool = False
    rubric: RubricSchema = Field(default_factory=RubricSchema)


class TopLevelSchema(Schema):
    """Top-level keys cdx itself defines; other keys (new groups of other tasks) pass."""

    seed: int = Field(0, ge=0, le=2**32 - 1)  # NumPy's seed range
    resume: bool = False
    optimized_metric: str | None = None


RULE_SCHEMAS: dict[str, type[Schema]] = {
    "cdx.decoding.ProbDiff": ProbDiffSchema,
    "cdx.decoding.rules.ProbDiff": ProbDiffSchema,
    "cdx.decoding.LogitDiff": LogitDiffSchema,
    "cdx.decoding.rules.LogitDiff": LogitDiffSchema,
}
ASSISTANT_SCHEMAS: dict[str, type[Schema]] = {
    "cdx.assistant.OpenAIAssistant": OpenAIAssistantSchema,
    "cdx.assistant.LocalAssistant": LocalAssistantSchema,
    "cdx.assistant.ScriptedAssistant": ScriptedAssistantSchema,
}


def is_finite_number(x: Any) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
