"""The search loop: seeds -> (subsample, ask, parse, dedupe, score, judge, add) per cycle, checkpointed.

Every cycle draws its randomness from one seed, `cycle_seed(seed, repeat, attempt)`: the
subsample, the assistant's sampling (its request carries the seed) and the contrastive
generations. A cycle that a kill interrupted therefore runs again exactly as it would have.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from cdx.assistant import Assistant, AssistantError, AssistantFatalError
from cdx.assistant.replies import parse_prompts, parse_yes_no
from cdx.io.records import BankStats, CycleRecord, NewStats, SubsampleStats
from cdx.models.embeddings import Embedder
from cdx.search.bank import Bank, BankEntry, BankStore, SearchState
from cdx.search.dedup import novel
from cdx.search.instructions import Instructions
from cdx.search.prompting import judge_messages, repair_messages, request_messages, shown_values
from cdx.search.scoring import PromptScorer
from cdx.search.settings import SearchSettings
from cdx.search.subsample import divergence_weighted_subsample, diversity_scores, stats

log = logging.getLogger(__name__)


class SearchFailed(RuntimeError):
    """Too many failed cycles in one repeat (the bank so far is saved)."""


def cycle_seed(seed: int, repeat: int, attempt: int) -> int:
    """One 32-bit seed per (run seed, repeat, attempt); attempt 0 scores the seeds."""
    return int(np.random.SeedSequence([seed, repeat, attempt]).generate_state(1)[0])


@dataclass
class _Cycle:
    entries: list[BankEntry]
    embeddings: np.ndarray
    record: CycleRecord


class DivergenceFinder:
    def __init__(
        self,
        scorer: PromptScorer,
        assistant: Assistant,
        embedder: Embedder,
        instructions: Instructions,
        settings: SearchSettings,
        store: BankStore,
        seed: int = 0,
        on_cycle: Callable[[CycleRecord, int], None] | None = None,
    ):
        if settings.criterion.use and instructions.criterion is None:
            raise ValueError(f"search.criterion.use/required is set, but the instructions "
                             f"{instructions.name!r} define no criterion")
        self.scorer, self.assistant, self.embedder = scorer, assistant, embedder
        self.instr, self.s, self.store, self.seed = instructions, settings, store, seed
        self.on_cycle = on_cycle

    # ---- the loop ---------------------------------------------------------------------------

    def run(self, seeds: list[str], resume: bool = False) -> tuple[Bank, SearchState]:
        bank, state = self.store.load() if resume else (Bank(), SearchState())
        if resume and state.n_entries:
            log.info("resuming: repeat %d, %d cycles done, %d failed, %d bank entries",
                     state.repeat + 1, state.cycle, state.failed, len(bank))
        while not state.done:
            if not state.seeded:
                self._add_seeds(bank, state, seeds)
            elif state.cycle >= self.s.n_cycles:
                state.repeat, state.seeded, state.cycle, state.attempt, state.failed = state.repeat + 1, False, 0, 0, 0
                state.done = state.repeat >= self.s.n_repeat
                self._checkpoint(bank, state)
            else:
                self._check_failures(state)
                self._run_cycle(bank, state)
        return bank, state

    def _check_failures(self, state: SearchState) -> None:
        if state.failed >= self.s.max_failed_cycles:
            raise SearchFailed(
                f"repeat {state.repeat + 1}: {state.failed} failed cycles (search.max_failed_cycles="
                f"{self.s.max_failed_cycles}) with {state.cycle}/{self.s.n_cycles} done; the bank so far is in "
                f"{self.store.folder}. See the replies in stats.jsonl; raise the limit and resume=true to go on"
            )

    def _add_seeds(self, bank: Bank, state: SearchState, seeds: list[str]) -> None:
        prompts = list(dict.fromkeys(p.strip() for p in seeds if p.strip()))
        if not prompts:
            raise ValueError("the search has no seed prompts: give seeds in the instructions, or search.seeds=prompts")
        seed = cycle_seed(self.seed, state.repeat, 0)
        emb = self.embedder.embed(prompts)
        entries = self._entries(prompts, self.scorer.score(prompts, seed), 0, state.repeat)
        bank.add(entries, emb)
        state.seeded = True
        d = np.array([e.divergence for e in entries])
        log.info("repeat %d: %d seeds, mean divergence %.4f", state.repeat + 1, len(entries), d.mean())
        self._checkpoint(bank, state)

    def _run_cycle(self, bank: Bank, state: SearchState) -> None:
        state.attempt += 1
        out = self._cycle(bank, state.repeat, state.attempt, state.cycle + 1)
        ok = bool(out.entries)
        if ok:
            bank.add(out.entries, out.embeddings)
            state.cycle += 1
        else:
            state.failed += 1
        idx = bank.of_repeat(state.repeat)
        h = diversity_scores(bank.embeddings[idx], self.s.subsample.diversity)
        rec = out.record
        rec.ok, rec.cycle, rec.failed_cycles = ok, state.cycle if ok else None, state.failed
        rec.bank = BankStats(size=len(idx), divergence=stats([bank.entries[i].divergence for i in idx]),
                             diversity=stats(h))
        self.store.append_stats(rec)
        if ok:
            log.info("repeat %d cycle %d/%d: %d new prompts (mean divergence %.4f), bank %d, bank mean %.4f",
                     state.repeat + 1, state.cycle, self.s.n_cycles, len(out.entries),
                     rec.new.divergence.mean if rec.new else 0.0, len(idx), rec.bank.divergence.mean)
        else:
            log.warning("repeat %d: cycle failed (%s), %d/%d failed cycles", state.repeat + 1,
                        rec.reason, state.failed, self.s.max_failed_cycles)
        self._checkpoint(bank, state)
        if self.on_cycle:
            self.on_cycle(rec, state.n_stats)

    # ---- one cycle ----------------------------------------------------------------------------

    def _cycle(self, bank: Bank, repeat: int, attempt: int, cycle: int) -> _Cycle:
        seed = cycle_seed(self.seed, repeat, attempt)
        rng = np.random.default_rng(seed)
        idx = bank.of_repeat(repeat)
        sub_ids, sub = self._subsample(bank, idx, rng)
        record = CycleRecord(subsample=sub, repeat=repeat, attempt=attempt, seed=seed)
        sub_div = np.array([bank.entries[i].divergence for i in sub_ids])
        order, values = shown_values(sub_div, self.s.context_values, rng)
        shown = [bank.entries[i].prompt for i in sub_ids[order]]
        record.shown_values = None if values is None else values.tolist()
        messages = request_messages(self.instr, shown, values, self.s.n_new_prompts)
        prompts, replies = self._ask(messages, seed)
        record.replies, record.n_parsed = replies, len(prompts)
        empty = _Cycle([], np.zeros((0, 0)), record)
        if not prompts:
            record.reason = "no prompts in the reply" if replies else "the assistant request failed"
            return empty
        emb = self.embedder.embed(prompts)
        keep, exact, near = novel(prompts, emb, [bank.entries[i].prompt for i in idx], bank.embeddings[idx],
                                  self.s.near_duplicate_threshold)
        record.n_exact_duplicates, record.n_near_duplicates = exact, near
        prompts, emb = [prompts[i] for i in keep], emb[keep]
        if not prompts:
            record.reason = "only duplicates"
            return empty
        entries = self._entries(prompts, self.scorer.score(prompts, seed), cycle, repeat)
        if self.s.criterion.use:
            record.n_judged = len(entries)
        if self.s.criterion.required:
            passed = [i for i, e in enumerate(entries) if e.criterion == 1.0]
            record.n_rejected_by_criterion = len(entries) - len(passed)
            entries, emb = [entries[i] for i in passed], emb[passed]
            if not entries:
                record.reason = "no prompt met the criterion"
                return empty
        record.new = NewStats(size=len(entries), divergence=stats([e.divergence for e in entries]))
        return _Cycle(entries, emb, record)

    def _subsample(self, bank: Bank, idx: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, SubsampleStats]:
        sub = self.s.subsample
        div = np.array([bank.entries[i].divergence for i in idx])
        crit = np.array([bank.entries[i].criterion or 0.0 for i in idx])
        res = divergence_weighted_subsample(div, bank.embeddings[idx], crit, sub.size, sub.temperature, sub.weights,
                                            rng, sub.select_high, sub.diversity)
        sub_stats = SubsampleStats(ids=idx[res.indices].tolist(), divergence=stats(div[res.indices]),
                                   diversity=stats(res.diversity[res.indices]))
        return idx[res.indices], sub_stats

    def _ask(self, messages: list, seed: int) -> tuple[list[str], list[str]]:
        """(parsed prompts, raw replies): one request, and one repair request if nothing parsed."""
        replies: list[str] = []
        for _ in range(2):
            try:
                reply = self.assistant.complete(messages, temperature=self.s.assistant_temperature,
                                                max_tokens=self.s.assistant_max_tokens, seed=seed)
            except AssistantFatalError:
                raise
            except AssistantError as e:
                log.warning("assistant request failed: %s", e)
                return [], replies
            replies.append(reply if isinstance(reply, str) else repr(reply))
            prompts = parse_prompts(reply, limit=self.s.n_new_prompts)
            if prompts:
                return prompts, replies
            messages = repair_messages(self.instr, messages, replies[-1])
        return [], replies

    def _entries(self, prompts: list[str], scored, cycle: int, repeat: int) -> list[BankEntry]:
        entries = [BankEntry(p, s.divergence, s.sample_divergences, s.responses, None, cycle, repeat)
                   for p, s in zip(prompts, scored)]
        if self.s.criterion.use:
            for e in entries:
                e.criterion = self._judge(e.prompt, e.responses[0] if e.responses else "")
        return entries

    def _judge(self, prompt: str, response: str) -> float | None:
        crit = self.instr.criterion
        assert crit is not None  # __init__ refuses criterion.use without one
        try:
            reply = self.assistant.complete(judge_messages(crit, prompt, response), temperature=0.0,
                                            max_tokens=self.s.criterion.max_tokens, seed=None)
        except AssistantFatalError:
            raise
        except AssistantError as e:
            log.warning("criterion request failed: %s", e)
            return None
        verdict = parse_yes_no(reply, crit.yes, crit.no)
        return None if verdict is None else float(verdict)

    def _checkpoint(self, bank: Bank, state: SearchState) -> None:
        for r in sorted({e.repeat for e in bank.entries}):  # diversity is relative to the repeat's bank
            idx = bank.of_repeat(r)
            for i, h in zip(idx, diversity_scores(bank.embeddings[idx], self.s.subsample.diversity)):
                bank.entries[i].diversity = float(h)
        self.store.save(bank, state)
