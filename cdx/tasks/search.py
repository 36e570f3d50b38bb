"""task=search: find prompts on which the two models disagree most, guided by an assistant LLM.

Outputs in the run folder: bank.jsonl, embeddings.npy, stats.jsonl, state.json (the checkpoint,
see cdx.search.bank) and summary.json. `resume=true` continues a killed run in the same folder.
`cdx.search.job.search(job)` runs one search from objects (a `SearchJob`: the decoder over the
loaded pair, the assistant, the embedder, the settings, the seeds, the run identity) and returns
its `SearchSummary`; `run(cfg)` is the thin Hydra task that builds the job from the config, and
task=pipeline builds its jobs from objects it made once.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cdx.decoding.engine import ContrastiveDecoder
from cdx.io import read_records
from cdx.search import SearchSettings, load_instructions
from cdx.search.instructions import Instructions
from cdx.search.job import SearchJob, search, search_identity
from cdx.tasks.common import build_assistant, output_dir, resolved_config, seed_everything, tracked

log = logging.getLogger(__name__)


def search_decoder(decoding: DictConfig | dict, pair: Any, settings: SearchSettings) -> ContrastiveDecoder:
    """The decoding config's decoder over `pair`, with the search's own generations and length where it sets them."""
    over = {"generations_per_prefix": settings.generations_per_prefix, "max_new_tokens": settings.max_new_tokens}
    return instantiate(decoding, pair=pair, **{k: v for k, v in over.items() if v is not None})


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
