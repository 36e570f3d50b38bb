"""task=analyze: what changed in behaviour between the two models, as validated findings.

The stages live in cdx/analysis (built from conf/analysis/); this task only wires the run:
output folder, pair, prompts, assistant and tracker. Returns analysis.json's numbers.
"""

from __future__ import annotations

import logging
from typing import cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cdx.analysis.pipeline import Context
from cdx.io import open_run
from cdx.knowledge import KnowledgeBaseError, record_analysis
from cdx.tasks.common import (
    build_assistant,
    output_dir,
    resolved_config,
    resume_command,
    run_identity,
    seed_everything,
    tracked,
)

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    prompts = list(dict.fromkeys(instantiate(cfg.prompts).load()))  # a prompt in both splits would leak
    # One run per folder (lock); resume only with the settings that decide the findings (run.json).
    identity = run_identity(cfg, "analyze", prompts, groups=("model", "analysis"))
    with open_run(out, "analyze", identity, bool(cfg.resume)) as rundir, tracked(cfg, "analyze") as tracker:
        analysis = instantiate(cfg.analysis)
        ctx = Context(out=out, prompts=prompts, load_pair=lambda: instantiate(cfg.model), seed=int(cfg.seed),
                      resume=bool(cfg.resume), assistant=_assistant(cfg), tracker=tracker)
        result = analysis.run(ctx)
        _record_in_knowledge_base(cfg, out)
        rundir.finish(n_validated=result.n_validated if result else None)
    return result.numbers() if result else {}


def _record_in_knowledge_base(cfg: DictConfig, out) -> None:
    """Every tested hypothesis into the findings database (unless knowledge.enabled=false)."""
    if not cfg.get("knowledge"):
        return
    try:
        rec = record_analysis(out, kb=cast(dict, OmegaConf.to_container(cfg.knowledge, resolve=True)),
                              model=OmegaConf.to_container(cfg.model, resolve=True), config=resolved_config(cfg))
    except KnowledgeBaseError as e:  # locked, full, read-only: the run stays unfinished, so resume records it
        raise type(e)(f"{e}. The analysis itself is saved in {out}; record it with: {resume_command(cfg)}") from e
    if rec is None:
        return
    if rec.already_recorded:
        log.info("knowledge base: this analysis was recorded before (run %d, from %s); nothing recorded again",
                 rec.run_id, rec.recorded_from)
    else:
        log.info("knowledge base: %d new finding(s), %d replicated, %d not replicated (python -m cdx.run "
                 "task=findings)", rec.n_findings_new, rec.n_replicated, rec.n_not_replicated)


def _assistant(cfg: DictConfig):
    a = cfg.analysis
    if not (a.hypothesise.get("use_assistant") or a.validate.get("judge")) or not cfg.get("assistant"):
        return None
    return build_assistant(cfg.assistant)
