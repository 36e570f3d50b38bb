"""One search as a library call: `search(SearchJob)` runs a divergence prompt search in a run folder
from objects (the decoder over a loaded pair, the assistant, the embedder, the settings, the seeds,
the run identity) and returns its `SearchSummary`. task=search (cdx.tasks.search) and task=pipeline
build the job; a notebook can too, without Hydra.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path

from rich.console import Console

from cdx.assistant import Assistant
from cdx.decoding import ContrastiveDecoder
from cdx.decoding.rules import direction_of
from cdx.io import atomic_write_json, open_run, strip_execution_only, texts_digest
from cdx.models.embeddings import Embedder
from cdx.search.bank import BankStore
from cdx.search.finder import DivergenceFinder
from cdx.search.instructions import Instructions
from cdx.search.report import SearchSummary, print_tables, summary
from cdx.search.scoring import PromptScorer
from cdx.search.settings import SearchSettings
from cdx.tracking.tracker import NullTracker


@dataclass
class SearchJob:
    """One search run, as objects: what `search` needs."""

    out: Path
    """The run folder (run.json, bank.jsonl, ...)."""
    seeds: list[str]
    """The prompts the bank starts from (cycle 0)."""
    settings: SearchSettings
    instructions: Instructions
    decoder: ContrastiveDecoder
    """Scores prompts: its pair is the one searched (`cdx.tasks.search.search_decoder` applies the search's own budget)."""
    assistant: Assistant
    embedder: Embedder
    identity: dict
    """The settings that decide the bank (run.json; a resume must match them): `search_identity`."""
    seed: int = 0
    resume: bool = False
    tracking: Callable[[], AbstractContextManager] | None = None
    """Starts the run's tracker once the folder is open (task=search: `tracked(cfg)`); None: none."""
    print_top: bool = False
    color: bool = True


def search_identity(seed: int, model: dict | None, decoding: dict | None, search: dict | None, assistant: dict | None,
                    seeds: list[str], instructions: Instructions) -> dict:
    """run.json's identity of a search (task=search's and the pipeline's): the seed, the pair's, decoding's,
    search's and assistant's settings, the seeds' and the instructions' digests (`cdx.tasks.common.run_identity`'s
    shape, task options none)."""
    return strip_execution_only({"task": "search", "seed": seed, "task_options": {}, "model": model,
                                 "decoding": decoding, "search": search, "assistant": assistant,
                                 "inputs": {"n": len(seeds), "sha256": texts_digest(seeds)},
                                 "instructions": texts_digest([instructions.model_dump_json()])})


def search(job: SearchJob) -> SearchSummary:
    """Run (or, with job.resume, continue) one search in job.out; its summary."""
    store = BankStore(job.out)
    # one run per folder (lock); resume only with the settings that decide the bank (run.json)
    with (open_run(job.out, "search", job.identity, job.resume) as rundir,
          (job.tracking or (lambda: nullcontext(NullTracker())))() as tracker):
        s = job.settings
        finder = DivergenceFinder(
            PromptScorer(job.decoder, s.metric), job.assistant, job.embedder, job.instructions, s, store,
            seed=job.seed, on_cycle=lambda rec, step: tracker.log_step(_flat(rec.dump()), step),
        )
        bank, _ = finder.run(job.seeds, resume=rundir.resumed)
        direction = direction_of(job.decoder.rule)
        result = summary(bank, store.stats(), s.top_n, direction=direction)
        if job.print_top:
            print_tables(bank, s.top_n, Console(highlight=False, no_color=not job.color), direction=direction)
        atomic_write_json(job.out / "summary.json", {**result.dump(), "models": job.decoder.pair.describe(),
                                                     "instructions": job.instructions.name,
                                                     "assistant": job.assistant.cache_id, "metric": s.metric})
        tracker.log_summary(result.dump())
        tracker.log_records([asdict(e) for e in bank.entries], "bank")
        tracker.log_files([str(job.out / f) for f in ("bank.jsonl", "embeddings.npy", "stats.jsonl", "summary.json")],
                          "search")
        rundir.finish(bank_size=result.bank_size)
    return result


def _flat(record: dict, prefix: str = "") -> dict:
    """Numbers of a stats record as {"subsample/divergence/mean": ...} for a tracker."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(_flat(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
        elif isinstance(v, bool):
            out[f"{prefix}{k}"] = int(v)
    return out
