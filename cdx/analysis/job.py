"""One analysis as a library call: `analyze(AnalyzeJob)` runs the analysis stages in a run folder from
objects (the `Analysis`, the prompts, a pair loader, the run identity) and returns its
`AnalysisSummary`. task=analyze (cdx.tasks.analyze), task=pipeline and task=benchmark build the job;
a notebook can too, without Hydra.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdx.analysis.pipeline import Analysis, Context
from cdx.analysis.report import AnalysisSummary
from cdx.io import open_run, strip_execution_only, texts_digest


@dataclass
class AnalyzeJob:
    """One analysis run, as objects: what `analyze` needs."""

    out: Path
    """The run folder (run.json, the stages' files)."""
    prompts: list[str]
    """Distinct prompts (a prompt in both splits would leak discovery into validation)."""
    analysis: Analysis
    load_pair: Callable[[], Any]
    """Returns the loaded pair; called once, when the first stage that needs it runs."""
    identity: dict
    """The settings that decide the findings (run.json; a resume must match them): `analysis_identity`."""
    seed: int = 0
    resume: bool = False
    assistant: Any = None
    tracking: Callable[[], AbstractContextManager] | None = None
    """Starts the run's tracker once the folder is open (task=analyze: `tracked(cfg)`); None: none."""
    before_finish: Callable[[Path], None] | None = None
    """Runs after the report, before the run counts as finished (task=analyze: the knowledge base)."""


def analysis_identity(seed: int, model: dict, analysis: dict, prompts: list[str]) -> dict:
    """run.json's identity of an analysis (task=analyze's and the pipeline's): the seed, the pair's and the
    analysis's settings, the prompts' digest (`cdx.tasks.common.run_identity`'s shape, task options none)."""
    return strip_execution_only({"task": "analyze", "seed": seed, "task_options": {}, "model": model,
                                 "analysis": analysis, "inputs": {"n": len(prompts), "sha256": texts_digest(prompts)}})


def analyze(job: AnalyzeJob) -> AnalysisSummary | None:
    """Run (or, with job.resume, continue) one analysis in job.out; its analysis.json record."""
    # One run per folder (lock); resume only with the settings that decide the findings (run.json).
    with (open_run(job.out, "analyze", job.identity, job.resume) as rundir,
          (job.tracking or nullcontext)() as tracker):
        ctx = Context(out=job.out, prompts=job.prompts, load_pair=job.load_pair, seed=job.seed, resume=job.resume,
                      assistant=job.assistant, tracker=tracker)
        result = job.analysis.run(ctx)
        if job.before_finish is not None:
            job.before_finish(job.out)
        rundir.finish(n_validated=result.n_validated if result else None)
    return result


