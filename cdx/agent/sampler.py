"""Where experiment texts come from: both models' plain samples for a list of prompts.

`PairSampler` draws them from a loaded pair through the analysis's one-pass sampler, so the
records are exactly what `cdx.analysis.validate` tests on (modes plain_s / plain_c). Texts are
cached by prompt for the life of the sampler, so hypotheses tested on one prompt share its samples,
and every distinct prompt keeps one `prompt_index` (record ids stay unique across calls).

`RecordedSampler` keeps a sampler's draws in a run folder and resumes them by id, so a pipeline
killed mid-experiment and resumed draws what the uninterrupted run drew (see its docstring).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel

from cdx.analysis.sampling import PLAIN, SampleSettings, sample_pair
from cdx.io import RecordLog
from cdx.io.records import SampleRecord, samples_of


class Sampler(Protocol):
    @property
    def n_tokens(self) -> int:
        """Tokens generated so far (for the pipeline's budget)."""
        ...

    def sample(self, prompts: Sequence[str], prompt_ids: Sequence[int] | None = None) -> list[SampleRecord]:
        """sample_pair's records of `prompts` (modes plain_s and plain_c).

        With `prompt_ids` (one per prompt, all new to the sampler) the prompts take these indices and
        are drawn as one call: what is drawn then depends on these prompts and ids only.
        """
        ...


class PairSampler:
    """Plain samples of both sides of a pair, `samples_per_prompt` each."""

    def __init__(self, pair, samples_per_prompt: int = 1, max_new_tokens: int = 48, temperature: float = 1.0,
                 batch_size: int = 8, seed: int = 0):
        self.pair = pair
        self.settings = SampleSettings(samples_per_prompt=samples_per_prompt, max_new_tokens=max_new_tokens,
                                       temperature=temperature, batch_size=batch_size, seed=seed)
        self._cache: dict[str, list[SampleRecord]] = {}
        self._index: dict[str, int] = {}
        self.n_tokens = 0

    def sample(self, prompts: Sequence[str], prompt_ids: Sequence[int] | None = None) -> list[SampleRecord]:
        if prompt_ids is not None:  # the caller numbers the prompts and decides what is drawn together
            self._index.update(zip(prompts, prompt_ids, strict=True))
            for p in prompts:
                self._cache.pop(p, None)
        todo = [p for p in dict.fromkeys(prompts) if p not in self._cache]
        for p in todo:
            self._index.setdefault(p, len(self._index))
        if todo:
            ids = [self._index[p] for p in todo]
            for r in sample_pair(self.pair, todo, self.settings, modes=PLAIN, prompt_ids=ids, split="experiment"):
                self._cache.setdefault(r.prompt, []).append(r)
                self.n_tokens += r.n_tokens
        return [r for p in dict.fromkeys(prompts) for r in self._cache.get(p, [])]


class Plan(BaseModel):
    """One line of experiment_plans.jsonl: prompts drawn together, with the indices they take."""

    id: str
    prompts: list[str]
    prompt_ids: list[int]


class PlanDone(BaseModel):
    """The line `<plan>-done` of experiment_plans.jsonl: the ids of the records its plan drew, in order."""

    id: str
    ids: list[str]


class RecordedSampler:
    """A `Sampler` whose draws are kept in `folder` and resumed by record id (cdx.io.RecordLog).

    Each call's prompts that this run has not drawn yet form a *plan*: they take the next prompt
    indices and are written to experiment_plans.jsonl *before* they are drawn; the inner sampler
    then draws the plan as one call (PairSampler: its batches seeded by the run seed and their
    number), so what is drawn depends on the plan alone, never on what this process drew before.
    Records go to experiment_samples.jsonl, then a `<plan>-done` line lists their ids.

    A resumed run finds every plan on disk: prompts drawn before the kill keep their index and
    texts (served from disk, not drawn again); a plan the kill cut short, or whose records were
    damaged (copied to `.corrupt`), is drawn again whole and only its missing records written, so
    the experiments see the samples of the uninterrupted run and reach its decisions.
    """

    PLANS, SAMPLES = "experiment_plans.jsonl", "experiment_samples.jsonl"

    def __init__(self, inner: Sampler, folder: str | Path):
        self.inner = inner
        self.plans = RecordLog(Path(folder) / self.PLANS)
        self.records = RecordLog(Path(folder) / self.SAMPLES, kind="sample")
        self.plans.load()
        self.records.load()
        self._plan_of: dict[str, str] = {}
        """Prompt -> the id of the plan that drew it."""
        self._index: dict[str, int] = {}
        self._typed: dict[str, SampleRecord] = {}
        """Records read from disk, validated once by id."""
        self._resumed = {plan.id for plan in self._plan_list()}
        """Plans an earlier process wrote (a killed run): one drawn again is put back in order."""
        for plan in self._plan_list():
            for p, i in zip(plan.prompts, plan.prompt_ids, strict=True):
                self._plan_of[p], self._index[p] = plan.id, i

    @property
    def n_tokens(self) -> int:
        """Tokens the inner sampler generated in this process (records read from disk cost none)."""
        return self.inner.n_tokens

    @property
    def settings(self):
        """The inner sampler's SampleSettings (the agent's validation reads them), if it has any."""
        return getattr(self.inner, "settings", None)

    def sample(self, prompts: Sequence[str], prompt_ids: Sequence[int] | None = None) -> list[SampleRecord]:
        wanted = list(dict.fromkeys(prompts))
        new = [p for p in wanted if p not in self._plan_of]
        if new:
            self._add_plan(new)
        plan_ids = list(dict.fromkeys(self._plan_of[p] for p in wanted))
        redrawn = [self._complete(Plan.model_validate(self.plans.done[plan_id])) for plan_id in plan_ids]
        if any(redrawn):  # a plan cut short by a kill: its records back in the uninterrupted order
            self.records.finalize(self._drawn_ids())
        return [r for p in wanted for r in self._records_of(p)]

    def _records_of(self, prompt: str) -> list[SampleRecord]:
        """The records its plan drew for `prompt`, in the order drawn (a stray older record is not one)."""
        done = self._done_of(self._plan_of[prompt])
        assert done is not None  # sample() completed the plan first
        return [r for r in map(self._sample, done.ids) if r.prompt == prompt]

    def _sample(self, rid: str) -> SampleRecord:
        if rid not in self._typed:
            self._typed[rid] = samples_of([self.records.done[rid]])[0]
        return self._typed[rid]

    def _done_of(self, plan_id: str) -> PlanDone | None:
        line = self.plans.done.get(f"{plan_id}-done")
        return None if line is None else PlanDone.model_validate(line)

    def _drawn_ids(self) -> list[str]:
        return [i for plan in self._plan_list() for i in getattr(self._done_of(plan.id), "ids", [])]

    def _plan_list(self) -> list[Plan]:
        """The plans on disk (not their done lines), in the order they were made."""
        plans = [Plan.model_validate(r) for r in self.plans.done.values() if "prompts" in r]
        return sorted(plans, key=lambda plan: int(plan.id))

    def _add_plan(self, prompts: list[str]) -> None:
        start = max(self._index.values(), default=-1) + 1
        plan = Plan(id=str(max((int(p.id) + 1 for p in self._plan_list()), default=0)), prompts=prompts,
                    prompt_ids=list(range(start, start + len(prompts))))
        with self.plans.writer() as w:  # on disk before anything is drawn
            w.write([plan.model_dump()])
        for p, i in zip(plan.prompts, plan.prompt_ids, strict=True):
            self._plan_of[p], self._index[p] = plan.id, i

    def _complete(self, plan: Plan) -> bool:
        """Draw `plan` unless all its records are on disk; write only the missing ones, then its done line.

        True when a plan of an earlier process was drawn again (a resume), False otherwise.
        """
        done = self._done_of(plan.id)
        if done is not None and all(i in self.records.done for i in done.ids):
            return False
        drawn = self.inner.sample(plan.prompts, prompt_ids=plan.prompt_ids)
        with self.records.writer() as w:
            w.write([r.dump() for r in drawn if r.id not in self.records.done])
        if done is None:
            with self.plans.writer() as w:
                w.write([PlanDone(id=f"{plan.id}-done", ids=[r.id for r in drawn]).model_dump()])
        return plan.id in self._resumed
