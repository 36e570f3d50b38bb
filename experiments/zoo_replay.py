"""Replay the validate and report stages of finished task=benchmark jobs on their own samples.

    python experiments/zoo_replay.py multirun/zoo_round7_s1 multirun/zoo_replay_s1

Each job folder of the sweep is copied into the new sweep folder with its samples (discovery,
validation, the small clusters' extra samples) and its discovery-side outputs (split, clusters,
description, hypotheses); the validate and report stages then run again at this checkout's code,
and the job is scored again against its organism's truth (benchmark_record.json, then the sweep's
benchmark table, as the benchmark's own jobs write them).

No text is generated again: the sampling stages resume by record id (cdx.analysis.pipeline.draw),
every batch of the copied files is complete, so the decoder is built (the pair is loaded) only to
number the batches. So the output is what a fresh `task=benchmark` run of the same job gives
whenever the code changed only after the hypothesise stage (grouping, checkers, scopes, behaviour
statements, scoring). A change to sampling, description or hypotheses needs fresh runs.

The copy is refused if the new sweep folder exists (nothing is overwritten). Each replayed record
says where it came from (`replayed_from`); its CPU and wall minutes are the original run's.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import cast

from hydra.utils import instantiate
from omegaconf import OmegaConf

from cdx.analysis.pipeline import Context
from cdx.io import atomic_write_json, read_records
from cdx.io.records import FindingRecord
from cdx.organisms import build_organism, load_spec, load_truth
from cdx.organisms.scoring import MatchRule, score_run
from cdx.tasks.benchmark import RECORD, behaviour_score, collect, heldout_texts
from cdx.tasks.common import seed_everything

REDONE = ("findings.jsonl", "behaviours.jsonl", "analysis.json", "analysis.html", "tilted.jsonl")
"""Outputs of the stages that run again (removed from the copy so that none is read stale)."""


def copy_job(job: Path, dest: Path) -> None:
    """The job's config and analysis folder, without the outputs of validate and report."""
    dest.mkdir(parents=True)
    shutil.copytree(job / ".hydra", dest / ".hydra")
    shutil.copytree(job / "analysis", dest / "analysis", ignore=shutil.ignore_patterns(*REDONE, ".cdx.lock"))
    stages = dest / "analysis" / "stages.json"
    status = json.loads(stages.read_text())
    atomic_write_json(stages, {k: v for k, v in status.items() if k not in ("validate", "report")})


def replay(job: Path, dest: Path) -> dict:
    """Validate and report again in `dest` (a copy of `job`), then its benchmark record."""
    cfg = OmegaConf.load(job / ".hydra" / "config.yaml")
    identity = json.loads((job / "analysis" / "run.json").read_text())["identity"]
    copy_job(job, dest)
    out = dest / "analysis"
    prompts = list(dict.fromkeys(instantiate(cfg.task.prompts).load()))
    seed = int(cfg.seed)
    seed_everything(seed)
    ctx = Context(out=out, prompts=prompts, load_pair=lambda: instantiate(identity["model"]), seed=seed, resume=True)
    instantiate(identity["analysis"]).run(ctx)
    spec = load_spec(cast(dict, OmegaConf.to_container(cfg.organism, resolve=True)))
    entry = build_organism(spec, cfg.task.get("cache_dir"))  # cached: the truth and the held-out checks only
    truth = load_truth(entry)
    findings = [FindingRecord.model_validate(r) for r in read_records(out / "findings.jsonl")]
    rule, held = MatchRule(**cfg.task.match), heldout_texts(entry)
    old = json.loads((job / RECORD).read_text())
    record = {**old, **score_run(findings, truth, rule, held, None).dump(), **behaviour_score(out, truth, rule, held),
              "replayed_from": str(job)}
    atomic_write_json(dest / RECORD, record)
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("sweep", type=Path, help="a finished task=benchmark sweep folder")
    ap.add_argument("out", type=Path, help="the new sweep folder (must not exist)")
    ap.add_argument("--only", nargs="*", default=None, help="organism names to replay (default: all)")
    a = ap.parse_args(argv)
    if a.out.exists():
        raise SystemExit(f"{a.out} exists: give a new folder, so that no replay overwrites another")
    jobs = sorted((p.parent for p in a.sweep.glob(f"*/{RECORD}")), key=lambda p: int(p.name))
    for job in jobs:
        organism = json.loads((job / RECORD).read_text())["organism"]
        if a.only is not None and organism not in a.only:
            continue
        r = replay(job, a.out / job.name)
        print(f"replayed {organism} seed {r['seed']}: {r['n_behaviours']} behaviours (+{r['n_word_shifts']} word "
              f"shifts), behaviour R@1={r.get('behaviour_recovery_at_1')} -> {a.out / job.name}", flush=True)
    collect([a.out], a.out / "benchmark", False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
