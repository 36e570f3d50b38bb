"""Reading any cdx run directory: `read_run(path)` -> `Run` (kind, records, summary, config, ...).

    from cdx.io import read_run
    run = read_run("outputs/2026-01-01/12-00-00")            # any kind
    run = read_run(path, kind="decode")                       # refuses a directory of another kind
    run.kind, run.records, run.summary, run.config, run.status

Kinds, and what `records` holds for each (the record file, and extra files in `run.files`):

| kind          | marked by                        | records                         | extra                         |
|---------------|----------------------------------|---------------------------------|-------------------------------|
| analyze       | findings.jsonl / analysis.json   | findings.jsonl (one hypothesis) | analysis.json                 |
| search        | bank.jsonl / state.json          | bank.jsonl (one bank prompt)    | stats.jsonl, state.json       |
| decode        | generations.jsonl                | generations.jsonl (one text)    |                               |
| score         | scores.jsonl                     | scores.jsonl (one text)         |                               |
| sweep_summary | sweep_summary.csv                | one row per job (CSV as dicts)  |                               |
| sweep         | multirun.yaml or job folders     | one per job: job, dir, overrides, kind, status |                |
| failed        | error.json only                  | []                              | error.json                    |

`run.json` (written by every task since cdx.io.rundir) names the kind directly; older runs are
recognised by their files. Records are sorted by id where they have one (a resumed run may have
appended a regenerated record after later ones); corrupt lines are skipped and counted.
"""

from __future__ import annotations

import csv
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from cdx.io.jsonl import scan_records
from cdx.io.records import RunInfo, invalid_records
from cdx.io.rundir import RUN_FILE, RunDirError, read_run_file

log = logging.getLogger(__name__)

KIND_FILES: dict[str, tuple[str, ...]] = {
    "analyze": ("findings.jsonl", "analysis.json"),
    "search": ("bank.jsonl", "state.json"),
    "decode": ("generations.jsonl",),
    "score": ("scores.jsonl",),
    "sweep_summary": ("sweep_summary.csv",),
    "sweep": ("multirun.yaml",),
    "failed": ("error.json",),
}
"""kind -> files whose presence marks it; first match wins (an analysis may also keep generations)."""

RECORD_FILES = {"analyze": "findings.jsonl", "search": "bank.jsonl", "decode": "generations.jsonl",
                "score": "scores.jsonl"}
TASK_KINDS = {"decode": "decode", "score": "score", "search": "search", "analyze": "analyze",
              "summarize": "sweep_summary"}
"""run.json's kind (the task) -> the reader's kind."""


class NotARunError(RunDirError, FileNotFoundError):
    """The path does not exist, or holds no cdx run (of the asked kind)."""


@dataclass
class Run:
    """What a run directory holds."""

    path: Path
    kind: str
    records: list[dict]
    summary: dict | None = None
    """summary.json (decode, score, search), analysis.json (analyze), else None."""
    config: dict | None = None
    """The resolved Hydra config of the run (.hydra/config.yaml), when there is one."""
    info: RunInfo | None = None
    """run.json: kind, identity, fingerprint, status, created/finished times."""
    files: dict = field(default_factory=dict)
    """Extra parsed files by name (stats.jsonl, state.json, error.json, ...)."""
    n_corrupt: int = 0
    """Lines of the record file that were not records, or not of the kind's schema (skipped)."""

    @property
    def status(self) -> str:
        """finished | running (or killed) | failed | unknown (a run made before run.json)."""
        if self.info and self.info.status == "finished":
            return "finished"
        if "error.json" in self.files:
            return "failed"
        if self.info:
            return self.info.status or "unknown"
        return "finished" if self.summary is not None else "unknown"


def run_kind(path: str | Path) -> str:
    """The kind of run stored in the folder `path` (a key of KIND_FILES); NotARunError otherwise."""
    path = _folder(path)
    info = _safe_run_file(path)
    if info and TASK_KINDS.get(str(info.kind)):
        return TASK_KINDS[str(info.kind)]
    for kind, files in KIND_FILES.items():
        if any((path / f).is_file() for f in files):
            return kind
    if _job_folders(path):
        return "sweep"
    known = ", ".join(sorted({f for fs in KIND_FILES.values() for f in fs}))
    raise NotARunError(f"{path} holds no cdx run output (none of {RUN_FILE}, {known}, nor sweep job folders)")


def read_run(path: str | Path, kind: str | tuple[str, ...] | None = None) -> Run:
    """Read the run in folder `path` (a record file's path means its folder). See the module doc.

    `kind` (one or several): refuse, with NotARunError naming what the folder holds, any other kind.
    """
    path = Path(path).expanduser()
    if path.is_file() and path.name in {*RECORD_FILES.values(), RUN_FILE, "summary.json"}:
        path = path.parent
    folder = _folder(path)
    found = run_kind(folder)
    wanted = (kind,) if isinstance(kind, str) else kind
    if wanted and found not in wanted:
        raise NotARunError(f"{folder} holds a {found} run, not a {' or '.join(wanted)} run")
    run = Run(folder, found, [], info=_safe_run_file(folder), config=_hydra_config(folder))
    if found in RECORD_FILES and (folder / RECORD_FILES[found]).is_file():
        scan = scan_records(folder / RECORD_FILES[found])
        bad = {i for i, _ in invalid_records(found, scan.records)}
        run.records = _sorted([r for i, r in enumerate(scan.records) if i not in bad])
        run.n_corrupt = len(scan.corrupt) + len(bad)
        if run.n_corrupt:
            log.warning("%s: %d corrupt line(s) skipped (%d not JSON objects, %d not %s records)",
                        folder / RECORD_FILES[found], run.n_corrupt, len(scan.corrupt), len(bad), found)
    summary_name = "analysis.json" if found == "analyze" else "summary.json"
    run.summary = _json(folder / summary_name)
    for name in ("state.json", "error.json"):
        if (folder / name).is_file():
            run.files[name] = _json(folder / name)
    if (folder / "stats.jsonl").is_file():
        run.files["stats.jsonl"] = scan_records(folder / "stats.jsonl").records
    if found == "sweep_summary":
        run.records = _csv(folder / "sweep_summary.csv")
    elif found == "sweep":
        run.records = [_job_record(num, d, ov) for num, d, ov in _job_folders(folder)]
    return run


def job_folders(sweep_dir: str | Path) -> list[tuple[int, Path, list[str]]]:
    """(job number, folder, overrides) of every multirun job under `sweep_dir`, by job number."""
    return _job_folders(Path(sweep_dir))


# ---- helpers -----------------------------------------------------------------------------------


def _folder(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise NotARunError(f"{path} does not exist; give a run directory (e.g. outputs/<date>/<time>)")
    if not path.is_dir():
        raise NotARunError(f"{path} is a file, not a run directory; give the folder that holds it ({path.parent})")
    return path


def _safe_run_file(folder: Path) -> RunInfo | None:
    try:
        return read_run_file(folder)
    except (RunDirError, RecursionError) as e:  # RecursionError: a run.json nested deeper than the parser's stack
        log.warning("%s", e)
        return None


def _json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as e:
        log.warning("%s is unreadable (%s); ignored", path, e)
        return None


def _csv(path: Path) -> list[dict]:
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def _hydra_config(folder: Path) -> dict | None:
    path = folder / ".hydra" / "config.yaml"
    if not path.is_file():
        return None
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as e:
        log.warning("%s is unreadable (%s); ignored", path, e)
        return None


def _sorted(records: list[dict]) -> list[dict]:
    """By id when every record has one (resume may append a regenerated record late); else file order."""
    if records and all("id" in r for r in records):
        ids = [r["id"] for r in records]
        # ids of one orderable kind only: a damaged record's id (null, a list, an int among strings) keeps file order
        if all(type(i) is str for i in ids) or all(type(i) in (int, float) and i == i for i in ids):
            return sorted(records, key=lambda r: r["id"])
    return records


def _job_folders(sweep_dir: Path) -> list[tuple[int, Path, list[str]]]:
    jobs = []
    for hydra_yaml in sweep_dir.glob("**/.hydra/hydra.yaml"):
        rel = hydra_yaml.relative_to(sweep_dir).parts
        if ".submitit" in rel or len(rel) > 6 or len(rel) == 2:  # len 2: the folder itself is a job, not a sweep
            continue
        try:
            hydra = (yaml.safe_load(hydra_yaml.read_text(encoding="utf-8")) or {}).get("hydra", {})
        except (OSError, yaml.YAMLError):
            continue
        num = (hydra.get("job") or {}).get("num")
        if hydra.get("mode") != "MULTIRUN" or num is None:
            continue  # e.g. the summarize run's own folder
        jobs.append((int(num), hydra_yaml.parent.parent, list((hydra.get("overrides") or {}).get("task") or [])))
    return sorted(jobs, key=lambda j: j[0])


def _job_record(num: int, folder: Path, overrides: list[str]) -> dict:
    try:
        kind = run_kind(folder)
    except NotARunError:
        kind = None
    info = _safe_run_file(folder) or RunInfo()
    status = ("failed" if (folder / "error.json").is_file() and info.status != "finished"
              else info.status or ("finished" if (folder / "summary.json").is_file() else "incomplete"))
    return {"job": num, "dir": str(folder), "overrides": overrides, "kind": kind, "status": status}
