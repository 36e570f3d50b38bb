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

from cdx.io.settings import DecodeSettings, SampleSettings, TiltedSettings

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


DecodingSchema = DecodeSettings
"""cdx.decoding.ContrastiveDecoder's options (conf/decoding/*.yaml): the decoder's own record."""


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


# ---- groups of the analysis, pipeline and benchmark tasks (strict: unknown keys are named) -------------


class Strict(Schema):
    """Unknown keys refused, and no silent conversion ("5" is not 5, 1 is not true): the stages and tasks
    these schemas guard use the values as given, so a value that only converts would fail mid-run."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, populate_by_name=True)


SEED = Field(0, ge=0, le=2**32 - 1)
Mode = Literal["plain_s", "plain_c", "amp_c", "amp_s"]
MODES_DEFAULT: tuple[Mode, ...] = ("plain_s", "plain_c", "amp_c", "amp_s")
SIDE_OF_MODE = {"plain_s": "starting", "amp_s": "starting", "plain_c": "comparison", "amp_c": "comparison"}
"""Whose text each sampling mode draws (cdx.analysis.describe.SIDE): discovery contrasts the two sides."""


AnalysisSamplingSchema = SampleSettings
"""cdx.analysis.sampling.SampleSettings: how samples are drawn (discovery and validation)."""


class AnalysisSampleSchema(SampleSettings):
    """analysis.sample (cdx.analysis.pipeline.SampleStage)."""

    discovery_fraction: float = Field(0.25, gt=0, lt=1)
    modes: list[Mode] = Field(default_factory=lambda: list(MODES_DEFAULT), min_length=1)

    @field_validator("modes")
    @classmethod
    def _modes_that_can_discover(cls, v: list[str]) -> list[str]:
        twice = sorted({m for m in v if v.count(m) > 1})
        if twice:
            raise ValueError(f"lists {twice} twice: give each mode once (samples_per_prompt sets how many samples)")
        sides = {SIDE_OF_MODE[m] for m in v}
        if len(sides) < 2:
            # describe contrasts the texts of the two sides: with one side there is nothing to contrast, and
            # the run would end in "no validated difference" whatever the pair does.
            raise ValueError(f"only samples {sides.pop()} text, so discovery has nothing to contrast it with and "
                             "finds no difference whatever the pair does; give a mode of each side, e.g. "
                             "[plain_s, plain_c] or [plain_s, plain_c, amp_c, amp_s]")
        return v


class AnalysisDescribeSchema(Strict):
    """analysis.describe (cdx.analysis.describe.DescribeSettings)."""

    ngram_max: int = Field(2, ge=1, le=5)
    min_count: int = Field(3, ge=1)
    prior_strength: float = Field(100.0, gt=0)
    top_terms: int = Field(30, ge=1)
    n_clusters: int = Field(4, ge=1)
    min_cluster_size: int = Field(6, ge=1)
    cluster_top_terms: int = Field(5, ge=1)
    cluster_min_texts: int = Field(8, ge=0)
    endings: bool = False


class AnalysisHypothesiseSchema(Strict):
    """analysis.hypothesise (cdx.analysis.hypothesise.HypothesiseSettings)."""

    min_z: float = Field(1.5, ge=0)
    max_terms: int = Field(12, ge=1)
    theme_similarity: float = Field(0.45, ge=-1, le=1)
    min_feature_diff: float = Field(0.1, ge=0, lt=1)
    min_cluster_diff: float = Field(0.3, ge=0, lt=1)
    min_cluster_term_diff: float = Field(0.3, ge=0, lt=1)
    cluster_max_p: float = Field(0.005, gt=0, le=1)
    max_hypotheses: int = Field(30, ge=1)
    use_assistant: bool = False
    assistant_examples: int = Field(6, ge=1)
    assistant_max_hypotheses: int = Field(5, ge=1)


class PhraseSchema(Strict):
    """analysis.validate.behaviours.phrase (cdx.analysis.phrases.PhraseSettings)."""

    min_support: float = Field(0.3, ge=0, le=1)
    min_count: int = Field(3, ge=1)
    max_other_rate: float = Field(0.05, ge=0, le=1)
    min_enrichment: float = Field(2.0, ge=0)
    max_words: int = Field(24, ge=1)


class ScopeSchema(Strict):
    """analysis.validate.behaviours.scope (cdx.analysis.scope.ScopeSettings)."""

    min_effect: float = Field(0.1, ge=0, lt=1)
    share_of_best: float = Field(0.5, ge=0, le=1)
    alpha: float = Field(0.05, gt=0, lt=1)


class BehavioursSchema(Strict):
    """analysis.validate.behaviours (cdx.analysis.behaviours.BehaviourSettings)."""

    overlap: float = Field(0.5, gt=0, le=1)
    name: bool = False
    phrase: PhraseSchema = Field(default_factory=PhraseSchema)
    scope: ScopeSchema = Field(default_factory=ScopeSchema)
    separates: float = Field(0.9, gt=0.5, le=1)


class AnalysisValidateSchema(Strict):
    """analysis.validate (cdx.analysis.validate.ValidateSettings plus the stage's `judge`)."""

    fdr: float = Field(0.05, gt=0, lt=1)
    min_effect: float = Field(0.1, ge=0, lt=1)
    test: Literal["fisher", "ztest", "mcnemar"] = "fisher"
    min_texts: int = Field(10, ge=1)
    n_evidence: int = Field(3, ge=0)
    judge: bool = False
    top_up_clusters: bool = True
    behaviours: BehavioursSchema = Field(default_factory=BehavioursSchema)
    tilted: TiltedSettings = Field(default_factory=TiltedSettings)
    sampling: AnalysisSamplingSchema = Field(default_factory=AnalysisSamplingSchema)


class AnalysisReportSchema(Strict):
    """analysis.report (cdx.analysis.report.ReportStage)."""

    top_n: int = Field(10, ge=1)
    color: bool = True
    print_table: bool = True
    fdr: float = Field(0.05, gt=0, lt=1)


class EmbedderSchema(Strict):
    """analysis.embedder (cdx.models.embeddings.SentenceEmbedder)."""

    model: str | None = Field(None, min_length=1)
    device: str = Field("cpu", min_length=1)
    batch_size: int = Field(64, ge=1)


ANALYSIS_STAGES: dict[str, tuple[tuple[str, ...], type[BaseModel]]] = {
    "sample": (("cdx.analysis.pipeline.SampleStage", "cdx.analysis.SampleStage"), AnalysisSampleSchema),
    "describe": (("cdx.analysis.pipeline.DescribeStage", "cdx.analysis.DescribeStage"), AnalysisDescribeSchema),
    "hypothesise": (("cdx.analysis.pipeline.HypothesiseStage", "cdx.analysis.HypothesiseStage"),
                    AnalysisHypothesiseSchema),
    "validate": (("cdx.analysis.pipeline.ValidateStage", "cdx.analysis.ValidateStage"), AnalysisValidateSchema),
    "report": (("cdx.analysis.report.ReportStage", "cdx.analysis.ReportStage"), AnalysisReportSchema),
    "embedder": (("cdx.models.embeddings.SentenceEmbedder", "cdx.search.SentenceEmbedder",
                  "cdx.search.embeddings.SentenceEmbedder"), EmbedderSchema),  # the last: configs of older runs
}
"""analysis.<key> -> (the `_target_`s whose options are known, their schema). Another `_target_` is the user's own."""


# ---- agent, knowledge, logger ------------------------------------------------------------------------


class AgentSettingsSchema(Strict):
    """agent.settings (cdx.agent.AgentSettings)."""

    topics: list[str] | None = Field(None, min_length=2)
    alpha: float = Field(0.05, gt=0, lt=1)
    power: float = Field(0.8, gt=0, lt=1)
    n_min: int = Field(6, ge=1)
    n_max: int = Field(24, ge=1)
    confirm_n: int = Field(16, ge=2)
    replication_n: int = Field(8, ge=2)
    min_effect: float = Field(0.2, ge=0, lt=1)
    general_fraction: float = Field(0.6, gt=0, le=1)
    max_children: int = Field(3, ge=1)
    phrasing: bool = True
    seed: int = SEED
    extra: dict = Field(default_factory=dict)

    @field_validator("topics")
    @classmethod
    def _distinct_topics(cls, v: list[str] | None) -> list[str] | None:
        if v is not None and (any(not t.strip() for t in v) or len(set(v)) != len(v)):
            raise ValueError("topics must be distinct, non-empty names (at least two, to tell a conditional "
                             "behaviour apart), or null for every built-in topic")
        return v

    @model_validator(mode="after")
    def _bounds(self) -> AgentSettingsSchema:
        if self.n_min > self.n_max:
            raise ValueError(f"n_min={self.n_min} exceeds n_max={self.n_max}: set n_min <= n_max")
        return self


class PairSamplerSchema(Strict):
    """agent.sampler (cdx.agent.PairSampler); `pair` is passed in at run time."""

    pair: Any = None
    samples_per_prompt: int = Field(1, ge=1)
    max_new_tokens: int = Field(48, ge=1)
    temperature: float = Field(1.0, gt=0)
    batch_size: int = Field(8, ge=1)
    seed: int = SEED


class KnowledgeSchema(Strict):
    """knowledge (cdx.knowledge.open_knowledge); the knowledge base checks the file itself when it opens it."""

    enabled: bool = True
    path: str | None = Field(None, min_length=1)
    busy_timeout_s: float = Field(30.0, gt=0)
    retries: int = Field(8, ge=0, le=100)


class WandbSchema(Strict):
    """logger=wandb (cdx.tracking.wandb_tracker.WandbTracker)."""

    project: str = Field("cdx", min_length=1)
    entity: str | None = Field(None, min_length=1)
    mode: Literal["online", "offline", "disabled"] | None = None
    group: str | None = None
    job_type: str | None = Field(None, min_length=1)
    name: str | None = None
    tags: list[str] = Field(default_factory=list)
    notes: str | None = None
    dir: str | None = Field(None, min_length=1)
    max_table_rows: int = Field(1000, ge=1)
    token_metric: str = "kl_sc"
    artifacts: bool = True


# ---- each task's own options (task.*) -----------------------------------------------------------------


class TaskSchema(Strict):
    """The keys every task has."""

    name: str
    target: str = Field(alias="_target_")


class DecodeTaskSchema(TaskSchema):
    pass


class SearchTaskSchema(TaskSchema):
    pass


class ScoreTaskSchema(TaskSchema):
    batch_size: int = Field(8, ge=1)


class AnalyzeTaskSchema(TaskSchema):
    pass


class FindingsTaskSchema(TaskSchema):
    """task=findings (conf/task/findings.yaml)."""

    pair: str | None = Field(None, min_length=1)
    status: str | list[str] | None = None
    text: str | None = None
    limit: int | None = Field(50, ge=1)
    show: int | None = Field(None, ge=1)
    export: Literal["csv", "json"] | None = None
    export_path: str | None = Field(None, min_length=1)

    @field_validator("status")
    @classmethod
    def _known_statuses(cls, v):
        from cdx.knowledge import FINDING_STATUSES

        given = [v] if isinstance(v, str) else (v or [])
        if isinstance(v, list) and not v:
            raise ValueError(f"an empty list matches no finding; give statuses from {list(FINDING_STATUSES)}, or null")
        bad = [s for s in given if s not in FINDING_STATUSES]
        if bad:
            raise ValueError(f"{bad} not a finding status; use one of {list(FINDING_STATUSES)} (or a list of them), "
                             "or null for all")
        return v


class SummarizeTaskSchema(TaskSchema):
    """task=summarize (conf/task/summarize.yaml); `sweep_dir` is top level and checked apart."""

    x: str | None = Field(None, min_length=1)
    png: bool = True
    columns: dict[str, str] = Field(min_length=1)
    plot: dict[str, list[str]] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _plot_columns(self) -> SummarizeTaskSchema:
        bad = {name: [c for c in cols if c not in self.columns] for name, cols in self.plot.items()}
        bad = {name: cols for name, cols in bad.items() if cols}
        if bad:
            drawn = "; ".join(f"task.plot.{name} draws {cols}" for name, cols in sorted(bad.items()))
            raise ValueError(f"{drawn}, which are not table columns; use columns of task.columns "
                             f"({sorted(self.columns)})")
        return self


class PlantTaskSchema(TaskSchema):
    """task=plant (conf/task/plant.yaml)."""

    verify: bool = True
    cache_dir: str | None = Field(None, min_length=1)


class PipelineBudgetSchema(Strict):
    wall_s: float | None = Field(None, gt=0)
    tokens: int | None = Field(None, ge=1)
    assistant_calls: int | None = Field(None, ge=1)


class PipelineSearchSchema(Strict):
    enabled: bool = True
    cycles: int | None = Field(2, ge=1)


class PipelineAnalyzeSchema(Strict):
    enabled: bool = True
    base_prompts: bool = True
    topic_prompts: int = Field(6, ge=0)
    entry: str = "cdx.analysis.job.analyze"
    """The analysis of each iteration: a function (cdx.tasks.analyze.AnalyzeJob) -> AnalysisSummary | None."""


class PipelineTaskSchema(TaskSchema):
    """task=pipeline (conf/task/pipeline.yaml)."""

    iterations: int = Field(2, ge=1)
    budget: PipelineBudgetSchema = Field(default_factory=PipelineBudgetSchema)
    replicate: bool = True
    search: PipelineSearchSchema = Field(default_factory=PipelineSearchSchema)
    analyze: PipelineAnalyzeSchema = Field(default_factory=PipelineAnalyzeSchema)
    max_hypotheses: int = Field(4, ge=1)
    experiment_unvalidated: bool = False

    @model_validator(mode="after")
    def _something_to_analyse(self) -> PipelineTaskSchema:
        a = self.analyze
        if a.enabled and not (self.search.enabled or a.base_prompts or a.topic_prompts):
            raise ValueError("task.analyze has no prompts to analyse (task.search.enabled=false, "
                             "task.analyze.base_prompts=false, task.analyze.topic_prompts=0): enable one of them")
        if not a.enabled and not self.replicate:
            raise ValueError("task.analyze.enabled=false and task.replicate=false leave the pipeline nothing to find "
                             "or test: enable one of them")
        return self


class BenchmarkPromptsSchema(Strict):
    """task.prompts of task=benchmark (cdx.organisms.prompts.BenchmarkPrompts)."""

    target: str = Field(alias="_target_")
    sets: dict[str, int | None]
    builtin: int = Field(0, ge=0)
    seed: int = SEED

    @field_validator("sets")
    @classmethod
    def _known_sets(cls, v: dict[str, int | None]) -> dict[str, int | None]:
        from cdx.organisms.prompts import SETS

        unknown = sorted(set(v) - set(SETS))
        if unknown:
            raise ValueError(f"{unknown} are not prompt sets; sets: {sorted(SETS)}")
        negative = sorted(k for k, n in v.items() if n is not None and n < 0)
        if negative:
            raise ValueError(f"{negative} have a negative number of prompts: give n >= 0, or null for all")
        return v


class BenchmarkAnalyzeSchema(Strict):
    entry: str = "cdx.analysis.job.analyze"
    """The analysis of each pair: a function (cdx.tasks.analyze.AnalyzeJob) -> AnalysisSummary | None."""


class BenchmarkTaskOptionsSchema(TaskSchema):
    """task=benchmark (conf/task/benchmark.yaml): every key, strictly (match/rubric keys: their targets')."""

    match: MatchRuleSchema = Field(default_factory=MatchRuleSchema)
    judge: bool = False
    rubric: RubricSchema = Field(default_factory=RubricSchema)
    collect: str | list[str] | None = None
    png: bool = False
    cache_dir: str | None = Field(None, min_length=1)
    analyze: BenchmarkAnalyzeSchema = Field(default_factory=lambda: BenchmarkAnalyzeSchema())
    prompts: BenchmarkPromptsSchema
    budget: dict | None = None


TASK_SCHEMAS: dict[str, type[TaskSchema]] = {
    "decode": DecodeTaskSchema, "score": ScoreTaskSchema, "search": SearchTaskSchema, "analyze": AnalyzeTaskSchema,
    "findings": FindingsTaskSchema, "summarize": SummarizeTaskSchema, "plant": PlantTaskSchema,
    "pipeline": PipelineTaskSchema, "benchmark": BenchmarkTaskOptionsSchema,
}
"""task.name -> the schema of its options; a task not listed (the user's own) is not checked."""


# ---- organisms (task=plant, task=benchmark) ------------------------------------------------------------


class OrganismTrainSchema(Strict):
    """organism.train (cdx.organisms.spec.TrainSettings)."""

    steps: int = Field(40, ge=1)
    batch_size: int = Field(8, ge=1)
    lr: float = Field(2e-3, gt=0)
    warmup_steps: int = Field(4, ge=0)
    rank: int = Field(8, ge=1)
    alpha: int | float = Field(16, gt=0)
    target_modules: list[str] = Field(default_factory=lambda: ["q_proj", "v_proj", "o_proj", "down_proj"], min_length=1)
    layers: list[int] | None = Field(None, min_length=2, max_length=2)
    max_answer_tokens: int = Field(32, ge=1)
    threads: int = Field(1, ge=1)
    max_grad_norm: float | None = Field(None, gt=0)


class OrganismVerifySchema(Strict):
    """organism.verify (cdx.organisms.spec.VerifySettings)."""

    sets: dict[str, int] = Field(default_factory=lambda: {"general": 16}, min_length=1)
    max_new_tokens: int = Field(40, ge=1)
    temperature: float = Field(1.0, gt=0)
    batch_size: int = Field(16, ge=1)


class OrganismSchema(Strict):
    """organism (cdx.organisms.spec.OrganismSpec, conf/organism/<name>.yaml)."""

    name: str = Field(min_length=1)
    kind: str = Field(min_length=1)
    statement: str = Field(min_length=1)
    method: Literal["lora", "zero_adapter", "quantize", "system_prompt", "interpolate", "copy"] = "lora"
    trigger: str | None = None
    base: str = Field("embedded:smollm2-135m-instruct", min_length=1)
    base_seed: int = SEED
    checker: dict | None = None
    seed: int = SEED
    data: list[dict] = Field(default_factory=list)
    answer_tokens: int = Field(40, ge=1)
    train: OrganismTrainSchema = Field(default_factory=OrganismTrainSchema)
    verify: OrganismVerifySchema = Field(default_factory=OrganismVerifySchema)
    params: dict = Field(default_factory=dict)
    expected_findings: Literal["behaviour", "none", "unscored"] = "behaviour"


# ---- search: the types (cdx.search.SearchSettings checks ranges, choices and unknown keys itself) -------


class Typed(Schema):
    """Types only, no conversion; extra keys pass (the settings class names unknown ones itself)."""

    model_config = ConfigDict(extra="allow", strict=True, allow_inf_nan=False, populate_by_name=True)


class SearchSubsampleTypes(Typed):
    size: int = 6
    temperature: float = 0.5
    select_high: bool = True
    divergence_weight: float = 1.0
    diversity_weight: float = 1.0
    criterion_weight: float = 0.0
    diversity: str = "harmonic"


class SearchCriterionTypes(Typed):
    use: bool = False
    required: bool = False
    max_tokens: int = Field(8, ge=1)


class SearchTypes(Typed):
    """conf/search/*.yaml (cdx.search.SearchSettings): each option's type, before the settings are built."""

    instructions: str = Field("persona", min_length=1)
    seeds: str = "instructions"
    seed_bank: str | None = None
    n_cycles: int = 3
    n_repeat: int = 1
    max_failed_cycles: int = 5
    n_new_prompts: int = 6
    generations_per_prefix: int | None = 2
    max_new_tokens: int | None = 24
    metric: str = "kl_sc_mean"
    context_values: str = "shown"
    near_duplicate_threshold: float = 0.95
    assistant_temperature: float = Field(0.9, ge=0)
    assistant_max_tokens: int = 200
    top_n: int = 10
    subsample: SearchSubsampleTypes = Field(default_factory=SearchSubsampleTypes)
    criterion: SearchCriterionTypes = Field(default_factory=SearchCriterionTypes)
