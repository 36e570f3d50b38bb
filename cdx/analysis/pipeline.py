"""The analysis as five stages, each a `_target_` object that writes its output into the run folder.

`Analysis.run(ctx)` runs the stages in order and records each one's completion and wall time in
`stages.json`; a killed run started again with resume=true skips finished stages and the
sampling stages make exactly the record ids still missing (`draw`: each batch is seeded from the
run seed and its number, and batch_size is part of the run identity, so the resumed samples are
the ones the uninterrupted run would have drawn).
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from pydantic import BaseModel

from cdx.analysis.behaviours import BehaviourSettings, find_behaviours, with_discovery_rates, write_behaviours
from cdx.analysis.describe import SIDE, DescribeSettings, clean_corpus, cluster_prompts, describe
from cdx.analysis.hypothesise import HypothesiseSettings, hypothesise
from cdx.analysis.judge import Judge
from cdx.analysis.naming import name_behaviours
from cdx.analysis.sampling import MODES, PLAIN, SampleSettings, batch_ids, make_decoder, sample_batch, split_prompts
from cdx.analysis.tilted import run_tilted
from cdx.analysis.types import Finding, Hypothesis
from cdx.analysis.validate import ValidateSettings, apply_fdr, test_hypothesis
from cdx.io import RecordLog, atomic_write_json, progress, read_records, write_records
from cdx.io.records import Description, PromptClusters, SampleRecord, Split, read_model, read_samples, samples_of
from cdx.io.settings import TiltedSettings
from cdx.models.embeddings import SentenceEmbedder

if TYPE_CHECKING:  # the report stage builds it (cdx.analysis.report imports this module)
    from cdx.analysis.report import AnalysisSummary

log = logging.getLogger(__name__)


class JudgeUsage(BaseModel):
    """Requests the validation's LLM judge made, and replies it could not parse."""

    calls: int
    unparsed: int


@dataclass
class RunState:
    """What the stages of one analysis hand on besides their files: timings, costs and the summary."""

    timings: dict[str, float | None] = field(default_factory=dict)
    """Stage name -> seconds, summed over resumes (None: done by a run that did not time it)."""
    validation_sampling_s: float | None = None
    """Seconds the validation samples took in this process (None: drawn before a resume)."""
    judge: JudgeUsage | None = None
    result: AnalysisSummary | None = None
    """analysis.json, once the report stage wrote it."""


@dataclass
class Context:
    """What the stages share: the run folder, lazily loaded pair, prompts, helpers and results."""

    out: Path
    prompts: list[str]
    load_pair: Callable[[], Any]
    seed: int = 0
    resume: bool = False
    embedder: Any = None
    assistant: Any = None
    tracker: Any = None
    pair_info: dict = field(default_factory=dict)
    state: RunState = field(default_factory=lambda: RunState())
    discovery_draw: tuple[tuple[str, ...], SampleSettings] | None = None
    """The discovery's modes and sampling settings (set by `Analysis.run` from its sample stage), for
    the small clusters' extra discovery samples."""
    _pair: Any = None

    @property
    def pair(self):
        if self._pair is None:
            self._pair = self.load_pair()
            self.pair_info = self._pair.describe()
        return self._pair


class Stage(Protocol):
    name: str

    def run(self, ctx: Context) -> None:
        """Do the stage's work, reading earlier stages' files from ctx.out and writing its own."""


# ---- stage 1: sample -------------------------------------------------------------------------

class SampleStage:
    """Split the prompts (seeded) and draw every discovery mode on the discovery prompts."""

    name = "sample"

    def __init__(self, discovery_fraction: float = 0.25, modes: tuple[str, ...] = MODES, **sampling):
        self.discovery_fraction = discovery_fraction
        self.modes = tuple(modes)
        self.sampling = SampleSettings.of(**sampling)

    def run(self, ctx: Context) -> None:
        disc, val = split_prompts(ctx.prompts, self.discovery_fraction, ctx.seed)
        split = Split(seed=ctx.seed, discovery=disc, validation=val, prompts=ctx.prompts, pair=ctx.pair.describe())
        atomic_write_json(ctx.out / "split.json", split.model_dump())
        draw(ctx, "discovery", disc, self.modes, self.sampling)


def draw(ctx: Context, split: str, ids: list[int], modes: tuple[str, ...], s: SampleSettings,
         pool: bool = False) -> list[SampleRecord]:
    """Samples of `ids` in <split>.jsonl, resumed by record id through `cdx.io.RecordLog`.

    Only the batches that miss a record are made again, and only their missing records are written:
    a killed run, a cut-off or damaged line (copied to <split>.jsonl.corrupt) or a duplicate ends
    with the file of the uninterrupted run. Batch b is seeded by (seed, b), so its draws depend on
    the batch it belongs to, never on how many batches this process made before.
    """
    s = s.but(seed=s.seed + (0 if split == "discovery" else 1))
    decoder = make_decoder(ctx.pair, s, modes, pool)  # pool: every mode's log q too (pooled tilted tests)
    prompts = [ctx.prompts[i] for i in ids]
    batches = [batch_ids(decoder, ids, b, modes, split) for b in range(decoder.n_batches(len(prompts)))]
    records = RecordLog(ctx.out / f"{split}.jsonl", kind="sample")
    done = records.load()
    todo = [b for b, expected in enumerate(batches) if any(i not in done for i in expected)]
    if done:
        log.info("%s samples: %d on disk, %d of %d batches to make", split, len(done), len(todo), len(batches))
    with records.writer() as writer:
        for b in progress.bar(todo, total=len(batches), initial=len(batches) - len(todo), desc=f"{split} samples",
                      unit="batch"):
            writer.write([r.dump() for r in sample_batch(decoder, prompts, ids, b, modes, split) if r.id not in done])
    return samples_of(records.finalize([i for expected in batches for i in expected]))


EXTRA_SEED = 1000
"""Seed offset of the small clusters' extra samples (their own stream, apart from discovery's and validation's)."""


def cluster_repeats(ids: Sequence[int], assignment: Sequence[int], texts_per_prompt: int, need: int,
                    clusters: Collection[int] | None = None) -> tuple[list[int], int]:
    """The prompts of `ids` in clusters with fewer than `need` texts a side (`texts_per_prompt` each),
    and how many times their present sampling reaches `need` in the smallest of them: (prompt ids, factor).
    `clusters` limits the clusters considered (None: all). ([], 1) when every cluster has enough."""
    by: dict[int, list[int]] = {}
    for i in ids:
        by.setdefault(assignment[i], []).append(i)
    small = {c: p for c, p in by.items() if (clusters is None or c in clusters) and len(p) * texts_per_prompt < need}
    if not small:
        return [], 1
    factor = max(math.ceil(need / (len(p) * texts_per_prompt)) for p in small.values())
    return sorted(i for p in small.values() for i in p), factor


# ---- stage 2: describe -----------------------------------------------------------------------

class DescribeStage:
    """Cluster all prompts, then describe the discovery samples (no LLM)."""

    name = "describe"

    def __init__(self, **settings):
        self.settings = DescribeSettings(**settings)

    def run(self, ctx: Context) -> None:
        s = self.settings
        clusters = cluster_prompts(ctx.prompts, ctx.embedder, s.n_clusters, s.min_cluster_size, ctx.seed)
        atomic_write_json(ctx.out / "clusters.json", clusters.model_dump())
        samples = read_samples(ctx.out / "discovery.jsonl")
        extra = self.small_clusters(ctx, clusters) if s.cluster_min_texts and ctx.discovery_draw else []
        atomic_write_json(ctx.out / "description.json", describe(samples, clusters, s, extra).dump())

    def small_clusters(self, ctx: Context, clusters: PromptClusters) -> list[SampleRecord]:
        """More discovery samples of the clusters with fewer than `cluster_min_texts` texts a side
        (cluster_discovery.jsonl). Two prompts of a topic give 4 texts a side, where no term can reach
        the cluster hypotheses' p bar (4 of 4 against 0 of 4 is p 0.014): a change confined to a few
        prompts (one edited fact) could never be proposed. Their prompts are sampled again until the
        cluster has the texts; only the cluster describers see these samples."""
        modes, s = ctx.discovery_draw  # type: ignore[misc]
        split = read_model(ctx.out / "split.json", Split)
        per_side = s.samples_per_prompt * max(1, sum(SIDE[m] == "c" for m in modes))
        ids, reps = cluster_repeats(split.discovery, clusters.assignment, per_side, self.settings.cluster_min_texts)
        if not ids:
            return []
        total = s.samples_per_prompt * reps
        log.info("small clusters: %d discovery prompts sampled %d times more", len(ids), total - s.samples_per_prompt)
        return draw(ctx, "cluster_discovery", ids, modes, s.but(samples_per_prompt=total - s.samples_per_prompt,
                                                                  seed=s.seed + EXTRA_SEED))


# ---- stage 3: hypothesise --------------------------------------------------------------------

class HypothesiseStage:
    """Candidates from the description (and the assistant, if enabled), fixed before validation."""

    name = "hypothesise"

    def __init__(self, **settings):
        self.settings = HypothesiseSettings(**settings)

    def run(self, ctx: Context) -> None:
        desc = read_model(ctx.out / "description.json", Description)
        samples = read_samples(ctx.out / "discovery.jsonl") if self.settings.use_assistant else []
        hyps = hypothesise(desc, self.settings, ctx.embedder, ctx.assistant, samples, ctx.seed)
        write_records(ctx.out / "hypotheses.jsonl", (h.to_dict() for h in hyps))


# ---- stage 4: validate -----------------------------------------------------------------------

class ValidateStage:
    """Fresh plain samples on the held-out prompts, every hypothesis tested and BH-corrected, then
    the validated findings grouped into behaviours (behaviours.jsonl; cdx.analysis.behaviours)."""

    name = "validate"

    def __init__(self, judge: bool = False, sampling: dict | None = None, behaviours: dict | None = None,
                 tilted: dict | None = None, top_up_clusters: bool = True, **settings):
        self.judge = judge
        self.top_up_clusters = top_up_clusters
        """Sample small clusters' held-out prompts again for their cluster hypotheses (`small_clusters`)."""
        self.settings = ValidateSettings(sampling=SampleSettings.of(**(sampling or {})), **settings)
        self.behaviours = BehaviourSettings(**(behaviours or {}))
        self.tilted = TiltedSettings(**(tilted or {}))
        """Hypotheses the plain test left open, tested again on samples tilted towards their phrase."""

    def small_clusters(self, ctx: Context, split: Split, hyps: Sequence[Hypothesis],
                       clusters: PromptClusters) -> list[SampleRecord]:
        """More plain samples of the held-out prompts of clusters that a cluster hypothesis is about and
        that hold fewer than `min_texts` held-out texts a model (cluster_validation.jsonl): six prompts
        of a topic leave four held-out texts, and the hypothesis would be untestable. The extra texts
        count only for hypotheses and behaviours confined to those clusters; a test over all prompts
        keeps one sample set per prompt, so no prompt weighs more than another there."""
        s = self.settings.sampling
        wanted = {h.cluster for h in hyps if h.cluster is not None}
        if not (self.top_up_clusters and wanted):
            return []
        ids, reps = cluster_repeats(split.validation, clusters.assignment, s.samples_per_prompt,
                                    self.settings.min_texts, wanted)
        if not ids:
            return []
        log.info("small clusters: %d held-out prompts sampled %d times more", len(ids), s.samples_per_prompt * (reps - 1))
        return draw(ctx, "cluster_validation", ids, PLAIN,
                    s.but(samples_per_prompt=s.samples_per_prompt * (reps - 1), seed=s.seed + EXTRA_SEED))

    def run(self, ctx: Context) -> None:
        split = read_model(ctx.out / "split.json", Split)
        hyps = [Hypothesis.from_dict(d) for d in read_records(ctx.out / "hypotheses.jsonl")]
        t0 = time.perf_counter()
        samples = draw(ctx, "validation", split.validation, PLAIN, self.settings.sampling)
        clusters = read_model(ctx.out / "clusters.json", PromptClusters)
        assign = dict(enumerate(clusters.assignment))
        extra = self.small_clusters(ctx, split, hyps, clusters)
        ctx.state.validation_sampling_s = round(time.perf_counter() - t0, 2)
        judge = Judge(ctx.assistant, ctx.seed) if (self.judge and ctx.assistant is not None) else None
        # a cluster hypothesis is tested on its cluster's texts, the small clusters' extra samples included
        findings = [test_hypothesis(h, [*samples, *extra] if h.cluster is not None else samples, self.settings,
                                    judge, assign)
                    for h in progress.bar(hyps, desc="validating", unit="hypothesis")] if hyps else []
        apply_fdr(findings, self.settings)
        findings.sort(key=lambda f: (not f.validated, f.q, -abs(f.effect)))
        # cdx.io's writer: a text holding U+2028 or U+0085 stays on its line (a line splitter would cut it)
        write_records(ctx.out / "findings.jsonl", (f.to_record() for f in findings))
        raw = read_samples(ctx.out / "discovery.jsonl")
        more = ctx.out / "cluster_discovery.jsonl"
        discovery, _ = clean_corpus([*raw, *(read_samples(more) if more.exists() else [])])
        behaviours = find_behaviours(findings, discovery, samples, clusters, self.behaviours, self.settings, judge,
                                     extra=extra)
        behaviours = with_discovery_rates(behaviours, raw, judge)
        if self.behaviours.name and ctx.assistant is not None:  # the statistics stay the checker's
            behaviours = name_behaviours(behaviours, ctx.assistant, ctx.seed)
        write_behaviours(ctx.out / "behaviours.jsonl", behaviours)
        ctx.state.judge = JudgeUsage(calls=judge.calls, unparsed=judge.unparsed) if judge else None
        if self.tilted.enabled:  # tilted_<k>.jsonl: each tested phrase's samples, resumed by id like validation's
            t0 = time.perf_counter()
            tests = run_tilted(findings, ctx.pair.tokenizer, self.settings.sampling, self.tilted,
                               lambda name, st, modes, pool: draw(ctx, name, split.validation, modes, st, pool),
                               seed=ctx.seed)
            write_records(ctx.out / "tilted.jsonl", (t.model_dump(mode="json") for t in tests))
            # generation, as the plain validation samples'
            ctx.state.validation_sampling_s = (ctx.state.validation_sampling_s or 0.0) + round(time.perf_counter() - t0, 2)


# ---- the pipeline ----------------------------------------------------------------------------

class Analysis:
    """sample -> describe -> hypothesise -> validate -> report, resumable stage by stage."""

    def __init__(self, sample: Stage, describe: Stage, hypothesise: Stage, validate: Stage, report: Stage,
                 embedder: Any = None):
        self.stages = [sample, describe, hypothesise, validate, report]
        self.embedder = embedder
        """Sentence embedder for prompt clusters and theme grouping (cdx.models.embeddings)."""

    def run(self, ctx: Context) -> AnalysisSummary | None:
        """Run (or resume) every stage; analysis.json's record (None if the stages include no report)."""
        path = ctx.out / "stages.json"
        status = json.loads(path.read_text()) if path.exists() else {}
        if status and not ctx.resume:
            raise FileExistsError(f"{ctx.out} already holds an analysis; pass resume=true to continue it, "
                                  "or use a new output directory")
        ctx.state.timings = {k: v.get("seconds") for k, v in status.items()}
        first = self.stages[0]
        if isinstance(first, SampleStage):  # the describe stage samples small clusters as discovery did
            ctx.discovery_draw = (first.modes, first.sampling)
        if ctx.embedder is None:  # the config's (analysis.embedder), else the packaged MiniLM, as the config's default
            ctx.embedder = self.embedder if self.embedder is not None else SentenceEmbedder()
        for stage in self.stages:
            if status.get(stage.name, {}).get("done") and stage.name != "report":
                log.info("stage %s: done earlier, skipped", stage.name)
                continue
            t0 = time.perf_counter()
            stage.run(ctx)
            seconds = time.perf_counter() - t0 + (status.get(stage.name, {}).get("seconds") or 0.0)
            status[stage.name] = {"done": True, "seconds": round(seconds, 2)}
            ctx.state.timings[stage.name] = status[stage.name]["seconds"]
            atomic_write_json(path, status)
        return ctx.state.result


def load_findings(out: Path) -> list[Finding]:
    return [Finding.from_record(r) for r in read_records(Path(out) / "findings.jsonl")]
