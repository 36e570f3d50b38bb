"""task=search: find prompts on which the two models disagree most, guided by an assistant LLM.

Outputs in the run folder: bank.jsonl, embeddings.npy, stats.jsonl, state.json (the checkpoint,
see cdx.search.bank) and summary.json. `resume=true` continues a killed run in the same folder.
`search(job)` runs one search from objects (a `SearchJob`: the decoder over the loaded pair, the
assistant, the embedder, the settings, the seeds, the run identity) and returns its
`SearchSummary`; `run(cfg)` is the thin Hydra task that builds the job from the config, and
task=pipeline builds its jobs from objects it made once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from cdx.assistant import Assistant
from cdx.decoding.engine import ContrastiveDecoder
from cdx.decoding.rules import direction_of
from cdx.io import atomic_write_json, open_run, read_records, strip_execution_only, texts_digest
from cdx.models.embeddings import Embedder
from cdx.search import BankStore, DivergenceFinder, PromptScorer, SearchSettings, load_instructions
from cdx.search.instructions import Instructions
from cdx.search.report import SearchSummary, print_tables, summary
from cdx.tasks.common import build_assistant, output_dir, resolved_config, seed_everything, tracked
from cdx.tracking.tracker import NullTracker

log = logging.getLogger(__name__)


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
    """Scores prompts: its pair is the one searched (`search_decoder` applies the search's own budget)."""
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


def search_decoder(decoding: DictConfig | dict, pair: Any, settings: SearchSettings) -> ContrastiveDecoder:
    """The decoding config's decoder over `pair`, with the search's own generations and length where it sets them."""
    over = {"generations_per_prefix": settings.generations_per_prefix, "max_new_tokens": settings.max_new_tokens}
    return instantiate(decoding, pair=pair, **{k: v for k, v in over.items() if v is not None})


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


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    settings = SearchSettings.from_dict(cast(dict, OmegaConf.to_container(cfg.search, resolve=True)))
    instructions = load_instructions(settings.instructions)
    seeds = load_seeds(cfg.prompts, settings, instructions)
    c = resolved_config(cfg)
    identity = search_identity(c["seed"], c.get("model"), c.get("decoding"), c.get("search"), c.get("assistant"),
                               seeds, instructions)
    result = search(SearchJob(
        out=out, seeds=seeds, settings=settings, instructions=instructions,
        decoder=search_decoder(cfg.decoding, instantiate(cfg.model), settings), assistant=build_assistant(cfg.assistant),
        embedder=instantiate(cfg.search.embedder), identity=identity, seed=int(cfg.seed), resume=bool(cfg.resume),
        tracking=lambda: tracked(cfg, "search"), print_top=bool(cfg.report.print_top), color=bool(cfg.report.color)))
    print(f"cdx search: {result.bank_size} prompts ({result.n_added} found in {result.cycles} cycles, "
          f"{result.failed_cycles} failed); mean {settings.metric}: seeds {result.seed_divergence_mean:.4f}, "
          f"top {settings.top_n} {result.top_divergence_mean:.4f} -> {out}")
    return result.dump()


def load_seeds(prompts: DictConfig, settings: SearchSettings, instructions: Instructions) -> list[str]:
    """The search's first prompts: the `prompts` group's (`prompts`, its config), a bank's, or the instructions' seeds."""
    if settings.seeds == "prompts":
        return instantiate(prompts).load()
    if settings.seeds == "bank":
        assert settings.seed_bank  # SearchSettings refuses seeds=bank without it
        path = Path(settings.seed_bank).expanduser()
        path = path / "bank.jsonl" if path.is_dir() else path
        return list(dict.fromkeys(r["prompt"] for r in read_records(path)))
    return list(instructions.seeds)


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
