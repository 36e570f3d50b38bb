"""task=analyze: what changed in behaviour between the two models, as validated findings.

The stages live in cdx/analysis (built from conf/analysis/). `cdx.analysis.job.analyze(job)` runs
one analysis in its run folder from objects (an `AnalyzeJob`: the Analysis, the prompts, the pair,
the run identity) and returns its `AnalysisSummary`; `run(cfg)` is the thin Hydra
task that builds the job from the config, and task=pipeline builds its jobs from objects it made
once. Returns analysis.json's numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from hydra.utils import get_method, instantiate
from omegaconf import DictConfig

from cdx.analysis.job import AnalyzeJob, analysis_identity, analyze
from cdx.analysis.report import AnalysisSummary
from cdx.knowledge import KnowledgeBaseError, record_analysis
from cdx.tasks.common import (
    build_assistant,
    output_dir,
    resolved_config,
    resume_command,
    seed_everything,
    tracked,
)

log = logging.getLogger(__name__)


def analysis_entry(name: str, option: str = "task.analyze.entry") -> Callable[[AnalyzeJob], AnalysisSummary | None]:
    """The analysis function named by `option` (task=pipeline's and task=benchmark's), or a ValueError naming it."""
    try:
        return get_method(name)
    except Exception as e:  # Hydra's message names the module or attribute it could not find
        raise ValueError(f"{option}={name} is not a function cdx can import ({e}); the default is "
                         "cdx.analysis.job.analyze") from e


def run(cfg: DictConfig) -> dict:
    out = output_dir(cfg)
    seed_everything(cfg.seed)
    prompts = list(dict.fromkeys(instantiate(cfg.prompts).load()))  # a prompt in both splits would leak
    c = resolved_config(cfg)
    identity = analysis_identity(c["seed"], c["model"], c["analysis"], prompts)
    result = analyze(AnalyzeJob(
        out=out, prompts=prompts, analysis=instantiate(cfg.analysis), load_pair=lambda: instantiate(cfg.model),
        identity=identity, seed=int(cfg.seed), resume=bool(cfg.resume),
        assistant=analysis_assistant(cfg.analysis, cfg.get("assistant")), tracking=lambda: tracked(cfg, "analyze"),
        before_finish=lambda folder: record_in_knowledge_base(c.get("knowledge"), c["model"], c, folder,
                                                              resume_command(cfg))))
    return result.numbers() if result else {}


def record_in_knowledge_base(knowledge: dict | None, model: dict, config: dict, out: Path, resume: str) -> None:
    """Every tested hypothesis of the analysis in `out` into the findings database (conf/knowledge's settings
    `knowledge`; nothing when None or enabled=false), with the pair and the config it ran with; `resume` is
    the command that records it after a failure."""
    if not knowledge:
        return
    try:
        rec = record_analysis(out, kb=knowledge, model=model, config=config)
    except KnowledgeBaseError as e:  # locked, full, read-only: the run stays unfinished, so resume records it
        raise type(e)(f"{e}. The analysis itself is saved in {out}; record it with: {resume}") from e
    if rec is None:
        return
    if rec.already_recorded:
        log.info("knowledge base: this analysis was recorded before (run %d, from %s); nothing recorded again",
                 rec.run_id, rec.recorded_from)
    else:
        log.info("knowledge base: %d new finding(s), %d replicated, %d not replicated (python -m cdx.run "
                 "task=findings)", rec.n_findings_new, rec.n_replicated, rec.n_not_replicated)


def analysis_assistant(analysis: DictConfig, assistant: DictConfig | None):
    """The assistant (conf/assistant) when the analysis settings ask one (hypothesise.use_assistant,
    validate.judge, validate.behaviours.name), else None."""
    asks = (analysis.hypothesise.get("use_assistant") or analysis.validate.get("judge")
            or (analysis.validate.get("behaviours") or {}).get("name"))
    if not asks or not assistant:
        return None
    return build_assistant(assistant)
