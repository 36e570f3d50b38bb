"""task=search: find prompts on which the two models disagree most, guided by an assistant LLM.

Outputs in the run folder: bank.jsonl, embeddings.npy, stats.jsonl, state.json (the checkpoint,
see cdx.search.bank) and summary.json. `resume=true` continues a killed run in the same folder.
"""

from __future__ import annotations

import logging
from dataclasses import asdict
from pathlib import Path
from typing import cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf
from rich.console import Console

from cdx.decoding.rules import direction_of
from cdx.io import atomic_write_json, open_run, read_records, texts_digest
from cdx.search import BankStore, DivergenceFinder, PromptScorer, SearchSettings, load_instructions
from cdx.search.instructions import Instructions
from cdx.search.report import print_tables, summary
from cdx.tasks.common import build_assistant, output_dir, run_identity, seed_everything, tracked

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    settings = SearchSettings.from_dict(cast(dict, OmegaConf.to_container(cfg.search, resolve=True)))
    instructions = load_instructions(settings.instructions)
    seeds = load_seeds(cfg, settings, instructions)
    identity = run_identity(cfg, "search", seeds, groups=("model", "decoding", "search", "assistant"),
                            instructions=texts_digest([instructions.model_dump_json()]))
    store = BankStore(out)
    with open_run(out, "search", identity, bool(cfg.resume)) as rundir, tracked(cfg, "search") as tracker:
        assistant = build_assistant(cfg.assistant)
        pair = instantiate(cfg.model)
        decoder = instantiate(cfg.decoding, pair=pair, **_decoder_overrides(settings))
        finder = DivergenceFinder(
            PromptScorer(decoder, settings.metric), assistant, instantiate(cfg.search.embedder), instructions,
            settings, store, seed=cfg.seed, on_cycle=lambda rec, step: tracker.log_step(_flat(rec.dump()), step),
        )
        bank, _ = finder.run(seeds, resume=rundir.resumed)
        direction = direction_of(decoder.rule)
        result = summary(bank, store.stats(), settings.top_n, direction=direction)
        if cfg.report.print_top:
            print_tables(bank, settings.top_n, Console(highlight=False, no_color=not cfg.report.color),
                         direction=direction)
        atomic_write_json(out / "summary.json", {**result, "models": pair.describe(), "instructions": instructions.name,
                                                 "assistant": assistant.cache_id, "metric": settings.metric})
        tracker.log_summary(result)
        tracker.log_records([asdict(e) for e in bank.entries], "bank")
        tracker.log_files([str(out / f) for f in ("bank.jsonl", "embeddings.npy", "stats.jsonl", "summary.json")],
                          "search")
        rundir.finish(bank_size=result["bank_size"])
    print(f"cdx search: {result['bank_size']} prompts ({result['n_added']} found in {result['cycles']} cycles, "
          f"{result['failed_cycles']} failed); mean {settings.metric}: seeds {result['seed_divergence_mean']:.4f}, "
          f"top {settings.top_n} {result['top_divergence_mean']:.4f} -> {out}")
    return result


def load_seeds(cfg: DictConfig, settings: SearchSettings, instructions: Instructions) -> list[str]:
    if settings.seeds == "prompts":
        return instantiate(cfg.prompts).load()
    if settings.seeds == "bank":
        assert settings.seed_bank  # SearchSettings refuses seeds=bank without it
        path = Path(settings.seed_bank).expanduser()
        path = path / "bank.jsonl" if path.is_dir() else path
        return list(dict.fromkeys(r["prompt"] for r in read_records(path)))
    return list(instructions.seeds)


def _decoder_overrides(s: SearchSettings) -> dict:
    over = {"generations_per_prefix": s.generations_per_prefix, "max_new_tokens": s.max_new_tokens}
    return {k: v for k, v in over.items() if v is not None}


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
