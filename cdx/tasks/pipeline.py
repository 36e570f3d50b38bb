"""task=pipeline: search -> decode + analysis -> experiments, iterated, starting from the knowledge base.

Each iteration runs five stages, each checkpointed (state.json) and logged (events.jsonl):

    knowledge    query the knowledge base for this pair's known findings
    replicate    re-test each known finding briefly (replicated | not_replicated), once per pipeline run
    search       divergence prompt search, told what is already explained (iter<i>/search)
    analyze      contrastive samples + analysis of the bank and base prompts (iter<i>/analyze), through
                 `task.analyze.entry` (cdx.analysis.job.analyze) with the pair and Analysis built once; new
                 hypotheses go to the knowledge base, ones matching known findings are not rediscovered
    experiments  the experiment agent decides on each open hypothesis (confirm | narrow | split | reject)

The run stops after `iterations` or when a budget (wall time, tokens, assistant calls) is spent;
budgets are checked between stages. `resume=true` continues a killed pipeline: finished stages are
skipped, search and analysis resume their own sub-runs, and decisions already in the knowledge
base are picked up rather than taken twice; experiments resume on the draws kept by id in
experiment_plans.jsonl / experiment_samples.jsonl (cdx.agent.RecordedSampler). Outputs: events.jsonl,
prompts.jsonl (every prompt the agent designed, with its reason, once by id), the experiment files,
state.json, summary.json, iter<i>/{search,analyze}/.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal, cast

import yaml
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from pydantic import BaseModel, ConfigDict, Field, model_serializer

from cdx.agent import ExperimentAgent, PromptDesigner, RecordedSampler
from cdx.agent.agent import Decision, Replication
from cdx.agent.topics import TOPICS, draw, template_prompts
from cdx.analysis.job import AnalyzeJob, analysis_identity
from cdx.analysis.pipeline import Analysis
from cdx.assistant import Assistant
from cdx.decoding.prompts import PromptsFile
from cdx.io import JsonlWriter, RecordLog, atomic_write_json, atomic_write_text, open_run, progress, read_records, strip_execution_only
from cdx.io.records import FindingRecord, KBFindingDetail, KnownFinding, OpenHypothesis, SetFields
from cdx.knowledge import (
    KnowledgeBase,
    KnowledgeBaseError,
    hypothesis_key,
    open_knowledge,
    pair_fingerprint,
    record_hypothesis,
    register_pair,
)
from cdx.models.embeddings import Embedder
from cdx.search import SearchSettings, load_instructions
from cdx.search.bank import BankStore
from cdx.search.job import SearchJob, search, search_identity
from cdx.tasks.analyze import analysis_assistant, analysis_entry
from cdx.tasks.common import (
    build_assistant,
    git_commit,
    output_dir,
    resolved_config,
    resume_command,
    run_meta,
    seed_everything,
    tracked,
)
from cdx.tasks.search import load_seeds, search_decoder

log = logging.getLogger(__name__)

STAGES = ("knowledge", "replicate", "search", "analyze", "experiments")
KNOWN = ("validated", "replicated")
"""Statuses of findings that are re-tested and not rediscovered."""
EXPLAINED = ("validated", "replicated", "refined_into")
"""Statuses whose hypotheses an analysis does not hand to the agent again."""


class Used(BaseModel):
    """What the pipeline has spent, over all its sessions (a resume adds to it); budgets are checked on it."""

    wall_s: float | int = 0.0
    tokens: int | float = 0
    assistant_calls: int = 0


class IterationStats(BaseModel):
    """One iteration's counts in state.json (logged to the tracker at its end); a count is written once
    its stage has set it, in the order the stages run."""

    known: int | None = None
    replicated: int | None = None
    not_replicated: int | None = None
    hypotheses: int | None = None
    validated: int | None = None
    opened: int | None = None
    confirm: int | None = None
    narrow: int | None = None
    split: int | None = None
    reject: int | None = None
    inconclusive: int | None = None

    @model_serializer(mode="wrap")
    def _set_only(self, handler) -> dict:
        return {k: v for k, v in handler(self).items() if k in self.model_fields_set}


class PipelineState(BaseModel):
    """The pipeline's checkpoint (state.json is its model_dump, rewritten after every stage and decision)."""

    model_config = ConfigDict(extra="forbid", validate_assignment=True)

    version: Literal[1] = 1
    iteration: int = 0
    done: list[str] = []
    """Stages finished in this iteration."""
    pair_id: int | None = None
    run_id: int | None = None
    fingerprint: str | None = None
    used: Used = Field(default_factory=Used)
    known: list[KnownFinding] = []
    """The pair's known findings in the knowledge base, re-tested by stage replicate."""
    explained_keys: list[str] = []
    replicated: list[int] = []
    """Known findings this run has re-tested (once each)."""
    open: list[OpenHypothesis] = []
    """This iteration's hypotheses for the experiment agent (with their hypothesis_id)."""
    decided: dict[str, str] = {}
    """hypothesis id -> the agent's action (or the status found in the knowledge base after a kill)."""
    iterations: dict[str, IterationStats] = {}
    """Per iteration: its counts (logged to the tracker at its end)."""
    stop_reason: str | None = None


# ---- what the pipeline writes to events.jsonl ------------------------------------------------------------


class Skipped(BaseModel):
    """A stage switched off by an option."""

    skipped: str
    """The option that switched it off, e.g. `task.search.enabled=false`."""


class KnowledgeDone(BaseModel):
    known: list[str]
    """`#<id> <statement> (<status>)` of each known finding of the pair."""
    n_explained: int
    """Hypothesis keys the analysis will not hand to the agent again."""


class ReplicateDone(BaseModel):
    replicated: int
    not_replicated: int
    tested: list[int]
    """Ids of the findings re-tested in this stage."""


class SearchDone(BaseModel):
    bank_size: int
    n_added: int
    assistant_calls: int
    top_divergence_mean: float
    dir: str


class AnalyzeDone(BaseModel):
    n_prompts: int
    n_hypotheses: int
    n_validated: int | None
    """None when the analysis stopped before its report (no prompt left to validate on)."""
    open: list[str]
    """Statements of the hypotheses handed to the agent."""
    not_rediscovered: list[str]
    """Statements matching findings already in the knowledge base."""
    dir: str


class ExperimentsDone(BaseModel):
    decisions: list[str]
    """The agent's action on each hypothesis decided in this stage."""


StageDone = Skipped | KnowledgeDone | ReplicateDone | SearchDone | AnalyzeDone | ExperimentsDone


class ScanRow(BaseModel):
    """One topic's test in a decision's event: the counts and the p and q behind it."""

    k_s: int | None = None
    n_s: int | None = None
    k_c: int | None = None
    n_c: int | None = None
    p: float | None = None
    q: float | None = None


class ChildSummary(BaseModel):
    statement: str
    validated: bool | None
    reason: str | None
    finding_id: int | None


class DecisionSummary(BaseModel):
    """An experiment decision as its event states it (the full `Decision` is in the knowledge base)."""

    hypothesis: str
    action: str
    n_per_topic: int
    significant_topics: list[str]
    scan: dict[str, ScanRow]
    children: list[ChildSummary]

    @classmethod
    def of(cls, d: Decision) -> DecisionSummary:
        return cls(hypothesis=d.statement, action=d.action, n_per_topic=d.n_per_topic,
                   significant_topics=d.significant_topics,
                   scan={t: ScanRow(k_s=v.k_s, n_s=v.n_s, k_c=v.k_c, n_c=v.n_c, p=v.p, q=v.q) for t, v in d.scan.items()},
                   children=[ChildSummary(statement=c.statement, validated=c.validated, reason=c.reason,
                                          finding_id=(c.model_extra or {}).get("finding_id")) for c in d.children])


class PipelineEvent(SetFields):
    """One line of events.jsonl: a stage's start or end, a decision, a steer, a budget stop; optional parts
    are written only when given."""

    time: str
    iteration: int
    stage: str
    event: str
    inputs: dict | None = None
    outputs: StageDone | DecisionSummary | Replication | dict | None = None
    """A stage's end: its `StageDone`; a decision: `DecisionSummary`; a replication: `Replication`;
    the iteration's and the pipeline's end: the numbers logged to the tracker; a steer, a known or
    recovered hypothesis, a resume: the few values they name."""
    reason: str | None = None
    seconds: float | None = None
    tokens: int | None = None


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    _check_options(cfg.task)
    identity = strip_execution_only({"model": _plain(cfg.model), "task": _plain(cfg.task), "agent": _plain(cfg.agent),
                                     "search": _plain(cfg.search), "seed": cfg.seed})
    identity["task"].pop("budget", None)  # a resumed run may get more (or less) budget
    with open_run(out, "pipeline", identity, bool(cfg.resume)) as rd, tracked(cfg, "pipeline") as tracker:
        kb = open_knowledge(_plain(cfg.knowledge)) or KnowledgeBase(out / "knowledge.sqlite")
        try:
            pipe = Pipeline(cfg, out, kb, tracker, resumed=rd.resumed)
            result = pipe.run()
            rd.finish(stop_reason=result["stop_reason"])
        except KnowledgeBaseError as e:  # locked or full mid-stage: every finished stage is checkpointed
            raise type(e)(f"{e}. Finished stages are saved in {out}; continue with: {resume_command(cfg)}") from e
        finally:
            kb.close()
    print(pipe.closing_note(result))
    return result


class Pipeline:
    """The iteration loop; one instance per (possibly resumed) process."""

    def __init__(self, cfg: DictConfig, out: Path, kb: KnowledgeBase, tracker, resumed: bool):
        self.cfg, self.t, self.out, self.kb, self.tracker = cfg, cfg.task, out, kb, tracker
        self.state_path = out / "state.json"
        self.state = _load_state(self.state_path) if resumed and self.state_path.is_file() else PipelineState()
        self.events = JsonlWriter(out / "events.jsonl")
        # every designed prompt once, by id: a hypothesis designed again after a kill logs nothing twice
        self.prompt_log = RecordLog(out / "prompts.jsonl")
        self.prompt_log.load()
        self._prompt_writer = self.prompt_log.writer()
        self._designing: tuple[str, str | None] = ("", None)
        """(stage, hypothesis statement) the designer is writing prompts for; ids count within it."""
        self._n_designed: dict[tuple, int] = {}
        self._pair = None
        self._analysis: Analysis | None = None
        self._analysis_assistant = False
        """The analysis's assistant once built (False: not yet; None: the analysis asks none)."""
        self._agent: ExperimentAgent | None = None
        self._search_assistant: Assistant | None = None
        self._embedder: Embedder | None = None
        self._started = time.monotonic()
        self._wall_before = self.state.used.wall_s
        if resumed:
            self.event("pipeline", "resume", outputs={"iteration": self.state.iteration, "done": self.state.done})

    # -- loop ---------------------------------------------------------------------------------

    def run(self) -> dict:
        self._register()
        stages = {"knowledge": self.stage_knowledge, "replicate": self.stage_replicate, "search": self.stage_search,
                  "analyze": self.stage_analyze, "experiments": self.stage_experiments}
        bar = progress.bar(total=int(self.t.iterations) * len(STAGES), desc="pipeline", unit="stage",
                   initial=self.state.iteration * len(STAGES) + len(self.state.done))
        while self.state.iteration < int(self.t.iterations) and not self.state.stop_reason:
            for name in STAGES:
                if name in self.state.done:
                    continue
                over = self.over_budget()
                if over:
                    self.state.stop_reason = over
                    self.event(name, "budget", reason=over)
                    break
                bar.set_postfix_str(f"iteration {self.state.iteration} {name}")
                self.run_stage(name, stages[name])
                bar.update(1)
            else:
                self.end_iteration()
        bar.close()
        self.state.stop_reason = self.state.stop_reason or f"{self.t.iterations} iteration(s) done"
        self._update_wall()
        self.save()
        return self.finish()

    def run_stage(self, name: str, fn: Callable[[int], tuple[StageDone, int]]) -> None:
        """Runs one stage; `fn(i)` returns what it did and the tokens it generated outside the agent's sampler."""
        i = self.state.iteration
        t0, tokens0 = time.monotonic(), self._tokens()
        self.event(name, "start")
        outputs, tokens = fn(i)
        spent = self._tokens() - tokens0 + tokens
        self.state.used.tokens += spent
        self._update_wall()
        self.state.done.append(name)
        self.event(name, "end", outputs=outputs, seconds=time.monotonic() - t0, tokens=spent)
        self.save()

    def end_iteration(self) -> None:
        i = self.state.iteration
        it = self.iteration_stats(i).model_dump()
        step = {"iteration": i, **{k: v for k, v in it.items() if isinstance(v, int | float)},
                **{f"used/{k}": v for k, v in self.state.used.model_dump().items()}}
        self.tracker.log_step(step, i)
        self.event("iteration", "end", outputs=step)
        self.state.iteration += 1
        self.state.done = []
        self.save()

    def _update_wall(self) -> None:
        """Wall time of this session added to that of the sessions before a resume."""
        self.state.used.wall_s = self._wall_before + time.monotonic() - self._started

    def over_budget(self) -> str | None:
        b = self.t.budget
        self._update_wall()
        for key, name in (("wall_s", "wall time (s)"), ("tokens", "tokens"), ("assistant_calls", "assistant calls")):
            spent = getattr(self.state.used, key)
            if b.get(key) is not None and spent >= b[key]:
                return f"budget spent: {name} {spent:.0f} >= {b[key]}"
        return None

    # -- stages -------------------------------------------------------------------------------

    def stage_knowledge(self, i: int) -> tuple[KnowledgeDone, int]:
        known = self.kb.findings(pair_id=self.state.pair_id, status=list(KNOWN))
        explained = self.kb.findings(pair_id=self.state.pair_id, status=list(EXPLAINED))
        self.state.known = [KnownFinding.model_validate(f.model_dump()) for f in known]
        self.state.explained_keys = sorted({self._hypothesis(f.hypothesis_id).key for f in explained})
        self.iteration_stats(i).known = len(known)
        return KnowledgeDone(known=[f"#{f.id} {f.statement} ({f.status})" for f in known],
                             n_explained=len(self.state.explained_keys)), 0

    def stage_replicate(self, i: int) -> tuple[ReplicateDone | Skipped, int]:
        if not self.t.replicate:
            return Skipped(skipped="task.replicate=false"), 0
        results = []
        for f in self.state.known:
            if f.id in self.state.replicated or self._touched_by_this_run(f.id):
                continue  # found or already re-tested by this pipeline run (also: done just before a kill)
            self._designing = ("replicate", f.statement)
            res = self.agent.replicate(f, salt=1000 + i)
            self.state.replicated.append(f.id)
            self.event("replicate", "decision", outputs=res, reason=res.reason)
            self.save()
            results.append(res)
        n_ok = sum(r.status == "replicated" for r in results)
        stats = self.iteration_stats(i)
        stats.replicated, stats.not_replicated = n_ok, len(results) - n_ok
        return ReplicateDone(replicated=n_ok, not_replicated=len(results) - n_ok,
                             tested=[r.finding_id for r in results]), 0

    def stage_search(self, i: int) -> tuple[SearchDone | Skipped, int]:
        if not self.t.search.enabled:
            return Skipped(skipped="task.search.enabled=false"), 0
        folder = self.out / f"iter{i}" / "search"
        # the search as a library: the pair, assistant and embedder built once; this iteration's settings
        # name its steered instructions and the pipeline's number of cycles
        settings_dict = _plain(self.cfg.search)
        if self.t.search.cycles is not None:
            settings_dict["n_cycles"] = int(self.t.search.cycles)
        settings_dict["instructions"] = str(self.steered_instructions(folder.parent))
        settings = SearchSettings.from_dict(settings_dict)
        instructions = load_instructions(settings.instructions)
        seeds = load_seeds(self.cfg.prompts, settings, instructions)
        seed_everything(int(self.cfg.seed))
        identity = search_identity(int(self.cfg.seed), _plain(self.cfg.model), _plain(self.cfg.decoding), settings_dict,
                                   _plain(self.cfg.assistant) if self.cfg.get("assistant") else None, seeds, instructions)
        result = search(SearchJob(
            out=folder, seeds=seeds, settings=settings, instructions=instructions,
            decoder=search_decoder(self.cfg.decoding, self.pair, settings), assistant=self.search_assistant,
            embedder=self.embedder, identity=identity, seed=int(self.cfg.seed), resume=(folder / "run.json").is_file()))
        calls = _search_calls(folder)
        self.state.used.assistant_calls += calls
        gens = settings.generations_per_prefix or 1
        return (SearchDone(bank_size=result.bank_size, n_added=result.n_added, assistant_calls=calls,
                           top_divergence_mean=result.top_divergence_mean, dir=str(folder)),
                result.bank_size * gens * int(settings.max_new_tokens or 0))

    def stage_analyze(self, i: int) -> tuple[AnalyzeDone | Skipped, int]:
        if not self.t.analyze.enabled:
            return Skipped(skipped="task.analyze.enabled=false"), 0
        folder = self.out / f"iter{i}" / "analyze"
        prompts = self.analysis_prompts(i)
        path = self.out / f"iter{i}" / "prompts.txt"
        atomic_write_text(path, "".join(p.replace("\n", " ") + "\n" for p in prompts))
        analyzed = list(dict.fromkeys(PromptsFile(path=str(path), limit=None).load()))  # as written, one a line
        seed_everything(int(self.cfg.seed))
        # the analysis as a library: objects built once (pair, analysis, assistant), no sub-config; the
        # pipeline records the hypotheses in the knowledge base itself, with their ids
        job = AnalyzeJob(out=folder, prompts=analyzed, analysis=self.analysis, load_pair=lambda: self.pair,
                         identity=analysis_identity(int(self.cfg.seed), _plain(self.cfg.model),
                                                    self.analysis_settings, analyzed),
                         seed=int(self.cfg.seed), resume=(folder / "run.json").is_file(),
                         assistant=self.analysis_assistant)
        result = analysis_entry(str(self.t.analyze.entry))(job)
        records = [FindingRecord.model_validate(r) for r in read_records(folder / "findings.jsonl")]
        opened, known = self.record_hypotheses(records, folder)
        n_validated = result.n_validated if result is not None else None
        stats = self.iteration_stats(i)
        stats.hypotheses, stats.validated = len(records), n_validated or 0
        stats.opened, stats.known = len(opened), len(known)
        return (AnalyzeDone(n_prompts=len(prompts), n_hypotheses=len(records), n_validated=n_validated,
                            open=[h.statement for h in opened], not_rediscovered=known, dir=str(folder)),
                result.n_tokens if result is not None else 0)

    def stage_experiments(self, i: int) -> tuple[ExperimentsDone, int]:
        actions = []
        for h in self.state.open:
            assert h.hypothesis_id is not None  # set by record_hypotheses
            hid = str(h.hypothesis_id)
            if hid in self.state.decided:
                continue
            status = self._hypothesis(h.hypothesis_id).status
            if status != "open":  # decided and committed just before a kill: do not decide twice
                self.state.decided[hid] = status
                self.event("experiments", "recovered", outputs={"hypothesis": h.statement, "status": status},
                           reason="the knowledge base already holds this decision")
                continue
            self._designing = ("experiments", h.statement)
            d = self.agent.step(h, salt=i)
            self.state.decided[hid] = d.action
            self.event("experiments", "decision", reason=d.reason, outputs=DecisionSummary.of(d))
            self.save()
            actions.append(d.action)
        stats = self.iteration_stats(i)
        for a in ("confirm", "narrow", "split", "reject", "inconclusive"):
            setattr(stats, a, actions.count(a))
        self.state.open = []
        return ExperimentsDone(decisions=actions), 0

    # -- pieces ---------------------------------------------------------------------------------

    @property
    def pair(self):
        if self._pair is None:
            self._pair = instantiate(self.cfg.model)
        return self._pair

    @property
    def analysis_settings(self) -> dict:
        """conf/analysis as the pipeline runs it: without the analysis's own findings table (the pipeline
        prints its summary at the end); part of each analysis's run identity."""
        settings = _plain(self.cfg.analysis)
        settings["report"]["print_table"] = False
        return settings

    @property
    def analysis(self) -> Analysis:
        """The analysis of every iteration, built once."""
        if self._analysis is None:
            self._analysis = instantiate(self.analysis_settings)
        return self._analysis

    @property
    def analysis_assistant(self):
        """The analysis's assistant (only when its hypothesise or validate stage asks one), built once."""
        if self._analysis_assistant is False:
            self._analysis_assistant = analysis_assistant(self.cfg.analysis, self.cfg.get("assistant"))
        return self._analysis_assistant

    @property
    def search_assistant(self) -> Assistant:
        """The search's assistant (conf/assistant), built once."""
        if self._search_assistant is None:
            self._search_assistant = build_assistant(self.cfg.assistant)
        return self._search_assistant

    @property
    def embedder(self) -> Embedder:
        """The search's embedder (search.embedder), built once."""
        if self._embedder is None:
            self._embedder = instantiate(self.cfg.search.embedder)
        return self._embedder

    @property
    def agent(self) -> ExperimentAgent:
        if self._agent is None:
            a = self.cfg.agent
            assistant = None
            if int(a.assistant_prompts) > 0:
                assistant = build_assistant(self.cfg.assistant)
            designer = PromptDesigner(assistant, n_assistant=int(a.assistant_prompts), seed=int(self.cfg.seed),
                                      on_prompt=self.log_prompt, on_assistant_call=self._count_assistant_call,
                                      asked_path=self.out / "assistant_prompts.jsonl")
            # `in` is False for a ??? value, hence keys(): the pair is passed only to samplers that take one
            sampler = instantiate(a.sampler, **({"pair": self.pair} if "pair" in list(a.sampler.keys()) else {}))
            # its prompts and texts on disk, resumed by id: a resumed run experiments on the same draws
            sampler = RecordedSampler(sampler, self.out)
            self._agent = ExperimentAgent(sampler, designer, instantiate(a.settings), self.kb, self.state.pair_id,
                                          self.state.run_id)
        return self._agent

    def steered_instructions(self, folder: Path) -> Path:
        """The search instructions plus what is already explained, so the assistant looks elsewhere."""
        base = load_instructions(str(self.cfg.search.instructions))
        known = [f.statement for f in self.state.known]
        data = base.model_dump(exclude_none=True)
        if known:
            note = ("\n\nAlready known differences (look for other ones): " + "; ".join(known)).replace("{", "{{").replace("}", "}}")
            data["system"] = data["system"] + note
        path = folder / "instructions.yaml"
        atomic_write_text(path, yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
        self.event("search", "steer", outputs={"known": known, "instructions": str(path)},
                   reason="known findings are named so the search looks for what is unexplained")
        return path

    def analysis_prompts(self, i: int) -> list[str]:
        """The search bank of this iteration, the base prompts (the `prompts` group) and a few prompts per topic."""
        bank = self.out / f"iter{i}" / "search" / "bank.jsonl"
        prompts = [r["prompt"] for r in read_records(bank)] if bank.is_file() else []
        if self.t.analyze.base_prompts:
            prompts += instantiate(self.cfg.prompts).load()
        per = int(self.t.analyze.topic_prompts or 0)
        if per:  # a broad sample over every topic, so a topic-bound behaviour is among what is analysed
            prompts += [p.text for t in sorted(TOPICS) for p in draw(template_prompts(t), per, int(self.cfg.seed) + 7919 * i)]
        prompts = list(dict.fromkeys(p for p in prompts if p.strip()))
        if len(prompts) < 4:
            raise ValueError(f"iteration {i}: only {len(prompts)} prompts to analyse; enable task.search or "
                             "task.analyze.base_prompts, or give more prompts (prompts.limit)")
        return prompts

    def record_hypotheses(self, records: list[FindingRecord], folder: Path) -> tuple[list[OpenHypothesis], list[str]]:
        """New hypotheses into the knowledge base (once, even across a resume); returns (open ones, known ones)."""
        explained = set(self.state.explained_keys)
        new = [r for r in records if hypothesis_key(r) not in explained]
        known = [r.statement for r in records if hypothesis_key(r) in explained]
        with self.kb.transaction():
            already = self.kb.run_id_for(folder)
            run_id = already if already is not None else self.kb.add_run("pipeline-analyze", self.state.pair_id, None,
                                                                        None, git_commit(), folder)
            ids = [self._record_one(r, run_id, folder, already is not None) for r in new]
        take = [r for r in new if r.validated or self.t.experiment_unvalidated]
        take.sort(key=lambda r: -abs(r.effect or 0.0))
        opened = [OpenHypothesis.model_validate({**r.model_dump(), "hypothesis_id": hid})
                  for r, hid in zip(new, ids) if r in take][: int(self.t.max_hypotheses)]
        self.state.open = opened
        for s in known:
            self.event("analyze", "known", outputs={"hypothesis": s},
                       reason="matches a finding already in the knowledge base: replicated, not rediscovered")
        return opened, known

    def _record_one(self, r: FindingRecord, run_id: int, folder: Path, already: bool) -> int:
        assert self.state.pair_id is not None  # registered in stage knowledge
        if already:  # recorded before a kill: only look the id up
            return self.kb.upsert_hypothesis(self.state.pair_id, hypothesis_key(r), r.statement)
        return record_hypothesis(self.kb, self.state.pair_id, r, run_id, "discovery", folder).hypothesis_id

    def _hypothesis(self, hypothesis_id: int):
        h = self.kb.hypothesis(hypothesis_id)
        if h is None:
            raise KnowledgeBaseError(f"hypothesis {hypothesis_id} is missing from {self.kb.path}: was the file replaced "
                                     "during the run?")
        return h

    def _register(self) -> None:
        if self.state.pair_id is not None:
            return
        model = _plain(self.cfg.model)
        self.state.pair_id = register_pair(self.kb, model)
        self.state.fingerprint = pair_fingerprint(model)[0]
        meta = run_meta(self.cfg, "pipeline")
        self.state.run_id = self.kb.add_run("pipeline", self.state.pair_id, " ".join(meta.get("overrides") or []),
                                               resolved_config(self.cfg), meta["git_commit"], self.out)
        self.save()

    def _touched_by_this_run(self, finding_id: int) -> bool:
        return any(h.run_id == self.state.run_id for h in self.kb.finding(finding_id).history)

    # -- logs, state, summary -----------------------------------------------------------------------

    def event(self, stage: str, event: str, inputs: dict | None = None,
              outputs: StageDone | DecisionSummary | Replication | dict | None = None, reason: str | None = None,
              seconds: float | None = None, tokens: int | None = None) -> None:
        given = {k: v for k, v in (("inputs", inputs), ("outputs", outputs), ("reason", reason), ("seconds", seconds),
                                   ("tokens", tokens)) if v is not None}
        rec = PipelineEvent(time=datetime.now(UTC).isoformat(timespec="milliseconds"), iteration=self.state.iteration,
                            stage=stage, event=event, **given)
        self.events.write([rec.dump()])

    def log_prompt(self, rec: dict) -> None:
        """Logs a designed prompt as `<iteration>-<stage>-<hypothesis hash>-<n>`: the n-th for that hypothesis.

        The designer is seeded, so a step taken again after a kill designs the same prompts in the
        same order; their ids are on disk already and nothing is written twice.
        """
        stage, statement = self._designing
        scope = (self.state.iteration, stage, statement)
        n = self._n_designed[scope] = self._n_designed.get(scope, -1) + 1
        digest = hashlib.sha256(str(statement).encode()).hexdigest()[:10]
        rid = f"i{scope[0]}-{stage}-{digest}-{n:05d}"
        if rid not in self.prompt_log.done:
            self._prompt_writer.write([{"id": rid, "iteration": scope[0], "hypothesis": statement, **rec}])

    def _count_assistant_call(self) -> None:
        self.state.used.assistant_calls += 1

    def _tokens(self) -> int:
        return self._agent.sampler.n_tokens if self._agent is not None else 0

    def iteration_stats(self, i: int) -> IterationStats:
        return self.state.iterations.setdefault(str(i), IterationStats())

    def save(self) -> None:
        atomic_write_json(self.state_path, self.state.model_dump())

    def finish(self) -> dict:
        findings = [self.kb.finding(fid) for fid in self.kb.findings_touched_by(self._run_ids())]
        result = {"iterations": self.state.iteration, "stop_reason": self.state.stop_reason,
                  **{f"used_{k}": v for k, v in self.state.used.model_dump().items()},
                  "n_findings_touched": len(findings),
                  "n_new_findings": sum(f.history[0].run_id in self._run_ids() for f in findings),
                  "n_replicated": sum(any(h.status == "replicated" and h.run_id == self.state.run_id
                                          for h in f.history) for f in findings),
                  "n_refined": sum(f.status == "refined_into" for f in findings),
                  "database": str(self.kb.path), "pair_id": self.state.pair_id, "run_id": self.state.run_id}
        atomic_write_json(self.out / "summary.json", {**result, "findings": [_history_line(f) for f in findings]})
        self.tracker.log_summary(result)
        self.tracker.log_files([str(self.out / f) for f in ("events.jsonl", "prompts.jsonl", "state.json", "summary.json")],
                               "pipeline")
        self.event("pipeline", "end", outputs=result)
        self._findings = findings
        return result

    def _run_ids(self) -> set[int]:
        return self.kb.runs_under(self.state.run_id, self.out)

    def closing_note(self, result: dict) -> str:
        lines = ["Knowledge base history of the findings this run touched:"]
        lines += [f"  {_history_line(f)}" for f in getattr(self, "_findings", [])]
        lines.append(f"cdx pipeline: {result['iterations']} iteration(s) ({result['stop_reason']}); "
                     f"{result['n_new_findings']} new finding(s), {result['n_replicated']} replicated, "
                     f"{result['n_refined']} refined; {result['used_tokens']} tokens, {result['used_wall_s']:.0f} s "
                     f"-> {self.out}")
        return "\n".join(lines)


def _load_state(path: Path) -> PipelineState:
    import json

    state = json.loads(path.read_text(encoding="utf-8"))
    if state.get("version") != 1:
        raise ValueError(f"{path} is a pipeline checkpoint of version {state.get('version')}; this cdx reads version 1")
    return PipelineState.model_validate(state)


def _check_options(t: DictConfig) -> None:
    if int(t.iterations) < 1:
        raise ValueError(f"task.iterations={t.iterations} must be >= 1")
    for k, v in t.budget.items():
        if k not in ("wall_s", "tokens", "assistant_calls"):
            raise ValueError(f"task.budget.{k} is not a budget; use wall_s, tokens or assistant_calls")
        if v is not None and v <= 0:
            raise ValueError(f"task.budget.{k}={v} must be > 0 (or null for no limit)")
    if t.analyze.enabled:
        analysis_entry(str(t.analyze.entry))


def _search_calls(folder: Path) -> int:
    """Assistant requests of a search run (stats.jsonl): each cycle's prompt requests, one per reply it
    got (two when the first parsed to nothing and it asked again) and one for a request that failed
    (no reply), plus its criterion judgements."""
    return sum(max(1, len(r.replies)) + r.n_judged for r in BankStore(folder).stats())


def _plain(node) -> dict:
    return cast(dict, OmegaConf.to_container(node, resolve=True)) if isinstance(node, DictConfig) else dict(node or {})


def _history_line(f: KBFindingDetail) -> str:
    chain = " -> ".join(h.status + (f"(#{h.related_finding_id})" if h.related_finding_id else "") for h in f.history)
    return f"#{f.id} [{f.status}] {f.statement}: {chain}"
