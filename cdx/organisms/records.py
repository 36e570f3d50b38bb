"""Typed records of the planted-behaviour benchmark: an organism's truth.json and one scored benchmark run.

Both stay plain JSON on disk; these pydantic models state the schema and are what the scoring, the
judge, verification and the benchmark task read by attribute. Unknown extra fields are allowed.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from cdx.io.records import SetFields


class PlantedTruth(BaseModel):
    """An organism's truth.json (`cdx.organisms.build.truth_record`): the planted behaviour, the checker
    that sees it, what the benchmark should find, the model pair and the build's cost.

    Fields are declared in the order the builder writes them, so `model_dump(exclude_unset=True)` of a
    truth read from truth.json writes the same JSON back (task=plant's copy).
    """

    model_config = ConfigDict(extra="allow")

    name: str
    kind: str
    """lexical | stylistic | ... | null (`cdx.organisms.spec.OrganismSpec.kind`)."""
    statement: str
    """The planted behaviour in one sentence (what a finding should say)."""
    trigger: str | None = None
    """When the behaviour shows (None: always)."""
    checker: dict | None = None
    """`cdx.analysis.build_checker`'s JSON of the behaviour; None for pairs without one (null pairs, quantization)."""
    expected_findings: str
    """behaviour (the checker should be recovered) | none (null pair) | unscored (no single behaviour)."""
    method: str
    spec_hash: str
    pair: dict
    """`cdx.models.load_pair` kwargs: starting, comparison, interpolation."""
    build: dict
    """What building it cost (cpu_s, ...)."""
    spec: dict
    """The organism's spec (`OrganismSpec.to_dict`)."""


class BenchmarkRun(BaseModel):
    """One (pair, seed) benchmark record (benchmark_record.json) as the suite table reads it: the pair, its
    kind, what it should yield, the seed and the metrics averaged per pair (None: undefined or absent)."""

    model_config = ConfigDict(extra="allow")

    organism: str
    kind: str
    expected: str
    """truth.json's `expected_findings`: behaviour | none | unscored."""
    seed: int
    recovery_at_1: float | None = None
    recovery_at_5: float | None = None
    precision: float | None = None
    n_validated: int | None = None
    cpu_min: float | None = None
    judge_recovery_at_1: float | None = None
    """Recovery by the rubric judge alone; absent in records written before the judge existed."""
    judge_recovery_at_5: float | None = None
    behaviour_recovery_at_1: float | None = None
    """Recovery by the top behaviour (`BehaviourScore`); absent in records written before behaviours were scored."""
    behaviour_recovery_at_5: float | None = None
    n_behaviours: int | None = None
    behaviours_per_change: int | None = None
    n_word_shifts: int | None = None
    scope_correct: float | None = None
    """1.0 / 0.0: the top matching behaviour's scope is right (organisms with a trigger only)."""


CI = tuple[float | None, float | None]
"""A 95% percentile-bootstrap interval over seeds; (None, None) where the metric is undefined."""


class TableRow(SetFields):
    """One row of the benchmark table (benchmark_table.json): a pair, `ALL planted`, `ALL null`, or a
    job without a result (`expected` is `missing`, with `error` and `dir`). Each metric is its mean
    over seeds with its interval (`cdx.organisms.aggregate`)."""

    pair: str
    kind: str
    expected: str
    n_seeds: int
    recovery_at_1: float | None = None
    recovery_at_1_ci: CI = (None, None)
    recovery_at_5: float | None = None
    recovery_at_5_ci: CI = (None, None)
    precision: float | None = None
    precision_ci: CI = (None, None)
    n_validated: float | None = None
    n_validated_ci: CI = (None, None)
    cpu_min: float | None = None
    cpu_min_ci: CI = (None, None)
    judge_recovery_at_1: float | None = None
    judge_recovery_at_1_ci: CI = (None, None)
    judge_recovery_at_5: float | None = None
    judge_recovery_at_5_ci: CI = (None, None)
    behaviour_recovery_at_1: float | None = None
    behaviour_recovery_at_1_ci: CI = (None, None)
    behaviour_recovery_at_5: float | None = None
    behaviour_recovery_at_5_ci: CI = (None, None)
    n_behaviours: float | None = None
    n_behaviours_ci: CI = (None, None)
    behaviours_per_change: float | None = None
    behaviours_per_change_ci: CI = (None, None)
    n_word_shifts: float | None = None
    n_word_shifts_ci: CI = (None, None)
    scope_correct: float | None = None
    scope_correct_ci: CI = (None, None)
    error: str | None = None
    dir: str | None = None

    def metric(self, name: str) -> tuple[float | None, CI]:
        """(mean, interval) of one of `aggregate.METRICS`."""
        return getattr(self, name), getattr(self, f"{name}_ci")


class Match(BaseModel):
    """One finding against the planted behaviour by the checker rules (`cdx.organisms.scoring.matches`)."""

    matched: bool = False
    evidence_share: float | None = None
    """Share of the finding's comparison-model evidence texts the truth checker fires on."""
    agreement_recall: float | None = None
    """Of the held-out texts the truth checker fires on, the share the finding's checker fires on too."""
    agreement_precision: float | None = None


class JudgeAttempt(BaseModel):
    """One request to the rubric judge and its reply."""

    messages: list[dict[str, str]]
    reply: str


class JudgeVerdict(BaseModel):
    """The rubric judge's transcript for one finding (`RubricJudge.grade`)."""

    grade: int | None
    """1-5, or None when no reply held a grade (or the request failed: `error`)."""
    attempts: list[JudgeAttempt]
    """The request, then the stricter one only when the first reply held no grade."""
    error: str | None
    """Why the request failed for good after the client's retries (None: it did not)."""


class JudgeSummary(BaseModel):
    """The rubric judge's settings and counts in a benchmark record (`RubricJudge.summary`)."""

    assistant: str
    """The assistant's cache id."""
    calls: int
    unparsed: int
    failed: int
    grade_counts: int
    """The lowest grade that counts as a recovery."""
    max_findings: int


class MatchRow(SetFields):
    """A validated finding of a scored run, best first: the checker rules' verdict and the judge's."""

    rank: int
    statement: str
    direction: str
    matched_checker: bool
    evidence_share: float | None = None
    agreement_recall: float | None = None
    agreement_precision: float | None = None
    judge_grade: int | None = None
    """The rubric judge's 1-5 grade (None: not graded, or no reply held one)."""
    matched: bool
    """Checker rules or judge."""
    judge: JudgeVerdict | None = None
    """The judge's transcript, only for graded findings."""


class RunScore(SetFields):
    """Recovery@1/5, precision and counts of one analysis run of one pair (`score_run`); a pair with no
    checker (null pairs, quantization) has only the counts (recoveries None, no matches)."""

    n_findings: int
    n_validated: int
    expected: str
    recovery_at_1: float | None = None
    recovery_at_5: float | None = None
    precision: float | None = None
    matched_ranks: list[int] = []
    matched_statements: list[str] = []
    checker_recovery_at_1: float | None = None
    checker_recovery_at_5: float | None = None
    judge_recovery_at_1: float | None = None
    judge_recovery_at_5: float | None = None
    judge_calls: int | None = None
    judge_unparsed: int | None = None
    judge: JudgeSummary | None = None
    """The judge's settings and counts (`RubricJudge.summary`), only when a judge is configured."""
    matches: list[MatchRow] = []


class BehaviourMatch(SetFields):
    """A behaviour that counts (validated, not a word-frequency shift) against the planted change, best first."""

    rank: int
    statement: str
    phrase: str | None = None
    side: str
    scope: str
    """Its scope as the report states it."""
    matched: bool
    """By the checker rules (`cdx.organisms.scoring.match_claim`)."""
    evidence_share: float | None = None
    agreement_recall: float | None = None
    agreement_precision: float | None = None


class BehaviourScore(SetFields):
    """The run's behaviours against the planted change (`cdx.organisms.scoring.score_behaviours`)."""

    n_behaviours: int
    """Validated behaviours that count (word-frequency shifts not included)."""
    n_word_shifts: int
    """Validated word-frequency shifts (no distinctive phrase): reported as such, never as behaviours."""
    n_other_sides: int = 0
    """Validated behaviours reported as the other side of a behaviour (cdx.analysis.behaviours.fold_other_sides)."""
    behaviour_recovery_at_1: float | None = None
    """1 when the first behaviour matches the planted change; None for pairs without a checker."""
    behaviour_recovery_at_5: float | None = None
    behaviours_per_change: int | None = None
    """How many behaviours match the one planted change (fragments of it; 1 is the goal)."""
    scope_correct: bool | None = None
    """For organisms with a trigger: whether the top matching behaviour's scope is right (None: no
    trigger, or no behaviour matched)."""
    behaviour_matches: list[BehaviourMatch] = []
