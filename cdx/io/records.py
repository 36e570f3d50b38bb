"""Typed run records: what one line of generations.jsonl / scores.jsonl / bank.jsonl / findings.jsonl holds.

Records are plain JSON on disk; these pydantic models state each one's schema once. Analysis samples,
findings and the other records above the decoder are these models in memory too (files are their
`dump()`, readers validate); `invalid_records` checks raw records against a schema, so a reader can
tell a damaged record from a good one. Unknown extra fields are allowed (older and newer runs differ
in optional fields such as `beam_score` or `prefix_tokens`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer, ValidationError, field_validator, model_serializer

from cdx.io.jsonl import read_records

M = TypeVar("M", bound=BaseModel)


class SetFields(BaseModel):
    """A record whose file holds the fields that were set and no others: `dump()` leaves out a field
    never given (an optional part a run did not make), at any depth, in the declared order."""

    def dump(self) -> dict:
        return self.model_dump(exclude_unset=True)


class TextLogProb(BaseModel):
    """log-probabilities of one whole generated text (sums over its tokens): what importance
    weights need. The rate of a behaviour under p_c is estimated from texts drawn from q with
    weights p_c(x) / q(x) = exp(logp_c - logp_q) (cdx.metrics.importance; docs/analysis.md)."""

    logp_s: float
    """log p_s(x): the starting model's log-probability of the text's tokens after its prompt."""
    logp_c: float
    """log p_c(x): the same under the comparison model (its own context: system prompt, template)."""
    logp_q: float | None
    """log q(x) under the distribution the sampler drew from (rule, fallback, temperature, top-k,
    top-p); 0 for greedy decoding (a point mass); null for beam search (not a sample)."""
    outside_p_s: int = 0
    """Tokens with p_s = 0 (log -inf): the text is kept and its logp_s is -inf."""
    outside_p_c: int = 0
    """Tokens with p_c = 0: its logp_c is -inf, its weight towards p_c is 0."""
    outside_q: int = 0
    """Tokens with q = 0 (only by rounding: the sampler never draws a weight-0 token)."""


class TopNext(BaseModel):
    """At one generated token: each model's most likely next tokens at that step, best first, as
    [token string, log-prob] pairs (`cdx.decoding.Generation.top_next_fields`)."""

    s: list[tuple[str, float]]
    c: list[tuple[str, float]]


def _one_per_token(value: list | None, info) -> list | None:
    ids = info.data.get("token_ids")
    if value is not None and ids is not None and len(value) != len(ids):
        raise ValueError(f"{info.field_name} does not have one value per token ({len(ids)})")
    return value


class TextRecord(BaseModel):
    """One continuation of decode (generations.jsonl) or one scored text (scores.jsonl)."""

    model_config = ConfigDict(extra="allow")

    id: str
    """`p<prompt index>-s<sample index>`, e.g. p00012-s01; resume finds done work by it."""
    prompt_index: int
    sample_index: int
    prompt: str
    continuation: str
    token_ids: list[int]
    token_strs: list[str]
    tokens: dict[str, list[float | None]]
    """Per-token values (kl_sc, kl_cs, js, top1_agree, weighted_kl, logp_s, logp_c), one per token."""
    metrics: dict[str, float | int | None]
    """Per-text summaries (kl_sc_mean, ppl_s, n_tokens, ...)."""
    finish_reason: str
    """eos | stop | length | given (score)."""
    logq: list[float | None] | None = None
    """Per token, log q of the token under the distribution it was drawn from (decode only; null
    for beam search; absent in runs before issue 19). See `TextLogProb.logp_q`."""
    text_logp: TextLogProb | None = None
    """Whole-text log p_s, log p_c, log q (decode only; absent in runs before issue 19)."""
    top_next: list[TopNext] | None = None
    """Per token, both models' most likely next tokens at that step (decoding.record_top_k > 0)."""

    _logq_aligned = field_validator("logq", "top_next")(_one_per_token)

    @field_validator("tokens")
    @classmethod
    def _aligned(cls, tokens: dict, info):
        ids = info.data.get("token_ids")
        if ids is not None:
            bad = [k for k, v in tokens.items() if len(v) != len(ids)]
            if bad:
                raise ValueError(f"per-token values {bad} do not have one value per token ({len(ids)})")
        return tokens


class BankRecord(BaseModel):
    """One prompt of a search bank (bank.jsonl); see cdx.search.bank.BankEntry."""

    model_config = ConfigDict(extra="allow")

    id: int
    prompt: str
    divergence: float
    sample_divergences: list[float]
    responses: list[str]
    criterion: float | None
    cycle: int
    repeat: int
    diversity: float = 0.0


class SampleRecord(SetFields):
    """One analysis sample (discovery.jsonl, validation.jsonl, experiment_samples.jsonl), in memory and
    on disk: `cdx.analysis.sampling.sample_record` makes it, its `dump()` is the file's line (the
    fields in this order; optional ones only when set), readers validate each line back.

    Fields a sample of an older run lacks have defaults (token_strs, kl_sc, delta: empty / 0)."""

    model_config = ConfigDict(extra="allow")

    id: str
    """`<split initial><prompt index>-<mode>-<repeat>`, e.g. v00012-plain_c-0; resume finds done work by it."""
    split: str
    """discovery | validation | experiment."""
    mode: str
    """The sampling mode (cdx.analysis.sampling.MODES): plain_s, plain_c, amp_c, amp_s, tilt_c, ..."""
    model: str | None = None
    """The model the mode draws from (cdx.analysis.sampling.MODEL_OF: starting, comparison+, ...)."""
    prompt_index: int
    """The prompt's index in the run's full prompt list."""
    prompt: str
    text: str
    token_ids: list[int]
    token_strs: list[str] = []
    logp_s: list[float]
    logp_c: list[float]
    kl_sc: list[float] = []
    """Per token KL(p_s || p_c) (as decode's tokens.kl_sc); [] where not recorded."""
    delta: float = 0.0
    """Mean per-token log p_c - log p_s: > 0 where the comparison model favours the text."""
    n_tokens: int
    finish_reason: str | None = None
    """eos | stop | length."""
    logq: list[float | None] | None = None
    """Per token, log q under the mode's sampling distribution (absent in samples before issue 19)."""
    text_logp: TextLogProb | None = None
    """Whole-text log p_s, log p_c, log q: the sample's importance weight towards either model."""
    top_next: list[TopNext] | None = None
    """Per token, both models' most likely next tokens at that step (record_top_k > 0)."""
    logq_modes: dict[str, list[float]] | None = None
    """Per sampling mode of the batch the sample was drawn in, per token: log q of its tokens under
    that mode's distribution (samples drawn with `pool=True`; cdx.analysis.sampling.pooled_stopped_rates)."""

    _logq_aligned = field_validator("logq", "top_next")(_one_per_token)

    @field_validator("logq_modes")
    @classmethod
    def _modes_aligned(cls, value, info):
        ids = info.data.get("token_ids")
        if value is not None and ids is not None:
            bad = [m for m, v in value.items() if len(v) != len(ids)]
            if bad:
                raise ValueError(f"logq_modes {bad} do not match the {len(ids)} tokens")
        return value

    @field_validator("logp_s", "logp_c", "n_tokens")
    @classmethod
    def _aligned(cls, value, info):
        ids = info.data.get("token_ids")
        n = len(value) if isinstance(value, list) else value
        if ids is not None and n != len(ids):
            raise ValueError(f"{info.field_name} does not match the {len(ids)} tokens")
        return value


SCHEMAS: dict[str, type[BaseModel]] = {"decode": TextRecord, "score": TextRecord, "search": BankRecord,
                                       "sample": SampleRecord}
"""Run kind (or `sample`: the analysis samples) -> its record model (kinds without one are not checked)."""


def invalid_records(kind: str, records: list[dict]) -> list[tuple[int, str]]:
    """(index, reason) of each record that does not fit the schema of `kind` ([] for unchecked kinds)."""
    model = SCHEMAS.get(kind)
    if model is None:
        return []
    out = []
    for i, rec in enumerate(records):
        try:
            model.model_validate(rec)
        except ValidationError as e:
            first = e.errors()[0]
            out.append((i, f"{'.'.join(str(x) for x in first['loc'])}: {first['msg']}"))
    return out


def samples_of(records) -> list[SampleRecord]:
    """Sample records read from a file (dicts), validated: a damaged one raises ValueError naming its id."""
    out = []
    for r in records:
        try:
            out.append(SampleRecord.model_validate(r))
        except ValidationError as e:
            first = e.errors()[0]
            rid = r.get("id") if isinstance(r, dict) else None
            raise ValueError(f"sample {rid!r} is not a sample record "
                             f"({'.'.join(str(x) for x in first['loc'])}: {first['msg']})") from e
    return out


def read_samples(path: str | Path) -> list[SampleRecord]:
    """discovery.jsonl / validation.jsonl / experiment_samples.jsonl as typed samples."""
    return samples_of(read_records(path))


def _id_text(v):
    """A finding's id as text (findings of older runs have int ids)."""
    return str(v) if isinstance(v, int) and not isinstance(v, bool) else v


Interval = Annotated[tuple[float, float], PlainSerializer(list, return_type=list)]
"""(low, high), written as a JSON list."""


class LikelihoodCheck(BaseModel):
    """Do held-out texts showing a behaviour score a higher mean log p_c - log p_s than same-model
    controls (cdx.analysis.validate.likelihood_check)? `delta` is the difference of the centred means,
    `p` a one-sided Mann-Whitney U test's, `agrees` whether the sign matches the finding's direction;
    all None when either group has fewer than 2 texts. A finding not checked has none of the fields
    (written `{}`): only the fields set are written."""

    n_pos: int = 0
    n_neg: int = 0
    delta: float | None = None
    p: float | None = None
    agrees: bool | None = None

    @model_serializer(mode="wrap")
    def _only_set(self, handler):
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}


class Evidence(BaseModel):
    """A held-out text that shows a finding: the sample's id, which model wrote it, its prompt and text.

    For a lost behaviour the texts are the starting model's (they show what the comparison model
    stopped doing). Other keys an entry holds are kept (a knowledge base may add `run_dir`)."""

    model_config = ConfigDict(extra="allow")

    id: str
    model: str | None = None
    """starting or comparison; absent in some older records (then it is the comparison model's)."""
    prompt: str = ""
    text: str


class FindingRecord(BaseModel):
    """One tested hypothesis (findings.jsonl): the statement, where it came from, both models' rates on
    held-out texts with Wilson CIs, the effect rate_c - rate_s with its Newcombe CI, p, BH q, and the
    verdict. The one statement of the record's fields: the analysis writes `model_dump()` of it
    (`cdx.analysis.Finding.to_record`, fields in this order) and every reader validates with it.

    Numbers may be null (a record of an older run, or an untestable hypothesis); other keys a
    record holds are kept (extra fields are allowed, so an older reader can read a newer file).
    """

    model_config = ConfigDict(extra="allow")

    id: str
    statement: str
    kind: str = "given"
    """Where the hypothesis came from: ngram, feature, cluster_feature, assistant, agent or given."""
    direction: Literal["gained", "lost"] = "gained"
    cluster: int | str | None = None
    """The prompt cluster the test is restricted to (None: all prompts); the experiment agent's
    narrowed hypotheses name a topic instead."""
    cluster_label: str | None = None
    checker: dict | None = None
    """`cdx.analysis.build_checker`'s JSON: decides, per text, whether it shows the behaviour."""
    n_s: int | None = None
    k_s: int | None = None
    n_c: int | None = None
    k_c: int | None = None
    rate_s: float | None = None
    rate_c: float | None = None
    rate_s_ci: Interval | None = None
    rate_c_ci: Interval | None = None
    effect: float | None = None
    effect_ci: Interval | None = None
    p: float | None = None
    q: float | None = None
    validated: bool = False
    reason: str | None = ""
    """Why it is not validated (empty when it is)."""
    evidence: list[Evidence] = Field(default_factory=list)
    """Held-out texts that show it."""
    likelihood: LikelihoodCheck = Field(default_factory=LikelihoodCheck)
    discovery: dict = Field(default_factory=dict)

    _id = field_validator("id", mode="before")(_id_text)

    @field_validator("evidence", "likelihood", "discovery", mode="before")
    @classmethod
    def _none_is_empty(cls, v, info):
        return ([] if info.field_name == "evidence" else {}) if v is None else v



# ---- the knowledge base's rows and the experiment agent's inputs --------------------------------


def _json_field(v):
    """A JSON column (the checker) as stored in SQLite: text, parsed here; '' and NULL are None."""
    if isinstance(v, str):
        return json.loads(v) if v else None
    return v


class KnownFinding(BaseModel):
    """A finding of the knowledge base with the claim it makes: what the pipeline re-tests (stage
    replicate) and keeps in its checkpoint (`PipelineState.known`)."""

    model_config = ConfigDict(extra="ignore")

    id: int
    hypothesis_id: int
    statement: str
    status: str
    kind: str | None = None
    direction: Literal["gained", "lost"] | None = None
    cluster: str | None = None
    """The topic or prompt cluster the claim is restricted to (None: all prompts)."""
    checker: dict | None = None

    _checker = field_validator("checker", mode="before")(_json_field)


class KBFinding(KnownFinding):
    """One row of `KnowledgeBase.findings`: the finding, its claim, its pair and how many status changes it had."""

    created_at: str
    updated_at: str
    pair_id: int
    fingerprint: str
    pair: str
    """The pair's label ("starting vs comparison")."""
    n_history: int = 0


class KBHypothesis(BaseModel):
    """One row of the knowledge base's hypotheses table."""

    model_config = ConfigDict(extra="allow")

    id: int
    pair_id: int
    key: str
    statement: str
    kind: str | None = None
    direction: str | None = None
    cluster: str | None = None
    checker: dict | None = None
    status: str = "open"
    parent_id: int | None = None
    run_id: int | None = None
    created_at: str = ""
    updated_at: str = ""

    _checker = field_validator("checker", mode="before")(_json_field)


class KBPair(BaseModel):
    model_config = ConfigDict(extra="allow")

    id: int
    fingerprint: str
    label: str


class KBHistoryEntry(BaseModel):
    """One status change of a finding, with the run that made it."""

    model_config = ConfigDict(extra="allow")

    id: int
    finding_id: int
    status: str
    reason: str
    run_id: int | None = None
    validation_id: int | None = None
    related_finding_id: int | None = None
    """refined_into: the narrower finding."""
    created_at: str = ""
    run_kind: str | None = None
    run_dir: str | None = None


class KBValidation(BaseModel):
    """One test of a hypothesis (discovery, experiment or replication) as the knowledge base holds it."""

    model_config = ConfigDict(extra="allow")

    id: int
    hypothesis_id: int
    run_id: int | None = None
    purpose: str
    n_s: int | None = None
    k_s: int | None = None
    n_c: int | None = None
    k_c: int | None = None
    rate_s: float | None = None
    rate_c: float | None = None
    rate_s_ci_low: float | None = None
    rate_s_ci_high: float | None = None
    rate_c_ci_low: float | None = None
    rate_c_ci_high: float | None = None
    effect: float | None = None
    effect_ci_low: float | None = None
    effect_ci_high: float | None = None
    p: float | None = None
    q: float | None = None
    validated: bool = False
    details: str | None = None
    """JSON: anything else the test reported."""
    created_at: str = ""


class KBEvidence(BaseModel):
    """A text that shows a finding, with where its record lives."""

    model_config = ConfigDict(extra="allow")

    id: int
    finding_id: int
    validation_id: int | None = None
    run_dir: str | None = None
    record_id: str | None = None
    model: str | None = None
    prompt: str | None = None
    text: str | None = None


class KBFindingDetail(BaseModel):
    """`KnowledgeBase.finding`: one finding with its hypothesis, pair, status history (oldest first),
    validations and evidence."""

    model_config = ConfigDict(extra="allow")

    id: int
    hypothesis_id: int
    pair_id: int
    statement: str
    status: str
    created_at: str = ""
    updated_at: str = ""
    hypothesis: KBHypothesis | None = None
    pair: KBPair | None = None
    history: list[KBHistoryEntry] = []
    validations: list[KBValidation] = []
    evidence: list[KBEvidence] = []


class OpenHypothesis(BaseModel):
    """A hypothesis handed to the experiment agent: the claim and its discovery numbers (a
    findings.jsonl record's, `FindingRecord`) with its knowledge-base id. `PipelineState.open` holds these."""

    model_config = ConfigDict(extra="ignore")

    id: str | None = None
    statement: str
    kind: str | None = None
    direction: Literal["gained", "lost"] | None = None
    cluster: int | str | None = None
    cluster_label: str | None = None
    checker: dict | None = None
    n_s: int | None = None
    k_s: int | None = None
    n_c: int | None = None
    k_c: int | None = None
    rate_s: float | None = None
    rate_c: float | None = None
    effect: float | None = None
    p: float | None = None
    q: float | None = None
    validated: bool | None = None
    hypothesis_id: int | None = None

    _id = field_validator("id", mode="before")(_id_text)


# ---- the analysis's description (description.json, clusters.json, split.json) -------------------

class TermRow(BaseModel):
    """A distinctive term of the discovery texts (cdx.analysis.describe.distinctive_terms): texts
    holding it per side (k_c of n_c comparison-side texts, k_s of n_s starting-side ones), its
    log-odds ratio c vs s with an informative Dirichlet prior, that ratio's z, and the mean
    log p_c - log p_s of the texts holding it."""

    term: str
    log_odds: float
    z: float
    k_c: int
    k_s: int
    n_c: int
    n_s: int
    mean_text_delta: float


class ClusterTermRow(TermRow):
    """A term distinctive within one prompt cluster: its rate difference c - s there (`diff`), over
    all prompts (`global_diff`), and the one-sided Fisher p of the difference there."""

    diff: float
    p: float
    global_diff: float


class ClusterTerms(BaseModel):
    """One prompt cluster's distinctive terms (description.json's `cluster_terms`)."""

    cluster: int
    label: str
    terms: list[ClusterTermRow]


class Rate(BaseModel):
    """k of n texts (a feature's rate on one side or mode)."""

    k: int
    n: int
    rate: float


class ClusterRow(BaseModel):
    """One prompt cluster: its label, size, mean KL(s||c) per token and each side's feature rates."""

    cluster: int
    label: str
    n_prompts: int
    n_texts: int
    kl_sc_mean: float
    features: dict[str, dict[Literal["c", "s"], Rate]]


class TokenDelta(BaseModel):
    token: str
    mean_delta: float
    """Mean log p_c - log p_s where the token was sampled."""
    count: int


class EndingRow(BaseModel):
    """How many discovery texts of each side ended by themselves (end of sequence or a stop string),
    within `max_tokens` tokens (None: anywhere within the budget)."""

    max_tokens: int | None
    k_c: int
    n_c: int
    k_s: int
    n_s: int


class Description(SetFields):
    """How the two models' discovery samples differ, with no LLM (description.json is its
    model_dump with the cluster fields left out when the prompts were not clustered)."""

    n_samples: int
    n_kept: int
    dropped: dict[str, int]
    """Why samples were dropped as artefacts -> how many."""
    terms: list[TermRow]
    tokens: dict[Literal["comparison", "starting"], list[TokenDelta]]
    features: dict[str, dict[str, Rate | float]]
    """mode -> feature -> its rate, and mode -> `mean_tokens`."""
    side_features: dict[str, dict[Literal["c", "s"], tuple[int, int]]]
    """feature -> side -> (k, n) over plain and amplified samples together."""
    clusters: list[ClusterRow] | None = None
    cluster_terms: list[ClusterTerms] | None = None
    endings: list[EndingRow] | None = None
    """How often answers end by themselves, per side (`analysis.describe.endings`; absent when off)."""


class PromptClusters(BaseModel):
    """k-means clusters of all prompts (clusters.json): the cluster of each prompt and each cluster's label."""

    assignment: list[int]
    labels: dict[int, str]


class Split(BaseModel):
    """The seeded split of the prompts (split.json): indices into `prompts` for discovery and validation."""

    model_config = ConfigDict(extra="allow")

    seed: int
    discovery: list[int]
    validation: list[int]
    prompts: list[str]
    pair: dict = {}


class Stats(BaseModel):
    """mean, std, max, min of a list of numbers (`cdx.search.subsample.stats`)."""

    mean: float
    std: float
    max: float
    min: float


class SubsampleStats(BaseModel):
    """The bank prompts a search cycle showed the assistant: their bank ids and their spread."""

    ids: list[int]
    divergence: Stats
    diversity: Stats


class NewStats(BaseModel):
    size: int
    divergence: Stats


class BankStats(NewStats):
    diversity: Stats


class CycleRecord(SetFields):
    """One attempted search cycle (a line of stats.jsonl), failed ones included.

    Fields are declared in the order a cycle fills them; `dump()` writes only those it set, so a
    failed cycle's line has its `reason` and no `new`, a successful one the reverse.
    """

    subsample: SubsampleStats
    repeat: int
    attempt: int
    seed: int
    shown_values: list[float] | None = None
    replies: list[str] = []
    n_parsed: int = 0
    n_exact_duplicates: int = 0
    n_near_duplicates: int = 0
    n_judged: int = 0
    """Criterion requests the cycle made (one per scored prompt; set only when the criterion is used)."""
    n_rejected_by_criterion: int = 0
    reason: str | None = None
    """Why the cycle failed; None when it added prompts."""
    new: NewStats | None = None
    ok: bool = False
    cycle: int | None = None
    """The successful cycle's number within its repeat; None for a failed attempt."""
    failed_cycles: int = 0
    bank: BankStats | None = None


class Direction(BaseModel):
    """Which side a set of texts shows: given by the decoding rule that wrote them, or measured."""

    shows: Literal["starting", "comparison", "both", "neither"]
    description: str
    source: Literal["rule", "measured"] = "rule"


class TokenStats(BaseModel):
    """A pooled per-token statistic: mean with its cluster-bootstrap 95% interval, and quantiles."""

    mean: float
    ci95_low: float
    ci95_high: float
    q90: float
    q95: float
    q99: float
    max: float


class TextStats(BaseModel):
    """A per-text statistic: mean over texts with its Student-t 95% interval (NaN below 2 texts)."""

    mean: float
    ci95_low: float
    ci95_high: float


class TopText(BaseModel):
    """One of the best texts by the summary's `sort_key`, with that key's value as an extra field."""

    model_config = ConfigDict(extra="allow")

    id: str
    prompt: str
    continuation: str
    copies: int
    """How many times this (prompt, continuation) was sampled."""


class DecodeSummary(SetFields):
    """summary.json of a decode or score run (`cdx.metrics.summarize`); the task adds its models
    and settings as extra fields. A run with no scored token has only `n_texts` and `n_tokens`."""

    model_config = ConfigDict(extra="allow")

    n_texts: int
    n_tokens: int
    sort_key: str | None = None
    direction: Direction | None = None
    token: dict[str, TokenStats] = {}
    """Divergence (kl_sc, kl_cs, js) -> pooled per-token statistics."""
    ci_method: dict[str, str] = {}
    top1_agreement: float | None = None
    ppl_s: float | None = None
    ppl_c: float | None = None
    ppl_ratio_c_over_s: float | None = None
    ppl_ratio_note: str | None = None
    text: dict[str, TextStats] = {}
    top: list[TopText] = []
    what_changed: list[str] | None = None
    """The decode's quick summary in words (`cdx.analysis.quick_summary`)."""


class RunInfo(SetFields):
    """run.json: what a run directory holds and where it stands (`cdx.io.rundir`).

    Extra keys are a task's own headline numbers, written by `RunDir.finish(**extra)`.
    """

    model_config = ConfigDict(extra="allow")

    kind: str | None = None
    """The task that wrote the run (decode, score, search, analyze, ...)."""
    fingerprint: str | None = None
    """Digest of `identity`: two runs with the same fingerprint drew the same samples."""
    identity: dict = {}
    created: str | None = None
    status: str | None = None
    """running or finished (a killed run stays running)."""
    resumed: list[str] = []
    """When the run was resumed, one timestamp each."""
    finished: str | None = None


def read_model(path: str | Path, model: type[M]) -> M:
    """One JSON file read as `model`; a damaged or foreign file raises ValueError naming the file and field."""
    path = Path(path)
    try:
        return model.model_validate_json(path.read_bytes())
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(x) for x in first["loc"]) or "the file"
        raise ValueError(f"{path} is not a {model.__name__} record ({where}: {first['msg']})") from e
