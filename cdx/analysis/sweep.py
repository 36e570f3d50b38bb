"""Findings across the jobs of a sweep (for task=summarize): one row per (job, tested hypothesis).

A hypothesis id hashes its checker, direction and cluster, so the same behaviour found by several
jobs (e.g. at several amplification strengths) shares one id and its rates line up across jobs.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from cdx.io import read_records
from cdx.io.records import FindingRecord

ROW_FIELDS = ("id", "statement", "direction", "rate_s", "rate_c", "effect", "effect_lo", "effect_hi", "q", "validated")
"""A row's finding columns, in order (the sweep table's CSV keeps them so)."""


def is_analysis_dir(job_dir: str | Path) -> bool:
    return (Path(job_dir) / "findings.jsonl").is_file() and (Path(job_dir) / "analysis.json").is_file()


def finding_rows(jobs: Sequence[tuple[dict, str | Path]]) -> list[dict]:
    """Rows {**swept values, job, id, statement, direction, rate_s, rate_c, effect, effect_lo, effect_hi, q,
    validated} for every (swept values, job folder) whose folder holds an analysis."""
    rows = []
    for swept, job in jobs:
        job = Path(job)
        if not is_analysis_dir(job):
            continue
        for raw in read_records(job / "findings.jsonl"):
            f = FindingRecord.model_validate(raw)
            lo, hi = f.effect_ci or (None, None)
            d = {**f.model_dump(include=set(ROW_FIELDS)), "effect_lo": lo, "effect_hi": hi}
            rows.append({**swept, "job": job.name, **{k: d[k] for k in ROW_FIELDS}})
    return rows


def job_summary(job_dir: str | Path) -> dict:
    """The headline numbers of one analysis job (n_validated, n_hypotheses, sample sizes, mde_80)."""
    s = json.loads((Path(job_dir) / "analysis.json").read_text())
    keys = ("n_validated", "n_hypotheses", "n_validation_texts_s", "n_validation_texts_c", "mde_80")
    return {k: s.get(k) for k in keys}
