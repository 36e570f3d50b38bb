"""Finding and reading cdx run directories for the app.

Everything read from disk goes through `cdx.io.read_records` (JSONL) or plain JSON/CSV loads of
files the tasks wrote atomically; nothing here recomputes a metric. The run-kind detection and
`load_run` below are readers the CLI could share: they are kept apart in this module so that
they can move into `cdx.io` (as `read_run`) without touching the pages.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from cdx.io import read_records

# kind -> the file whose presence marks it (first match wins, so analysis before decode:
# an analysis run may also keep the generations it analysed).
KIND_FILES: dict[str, tuple[str, ...]] = {
    "analyze": ("findings.jsonl", "analysis.json"),
    "search": ("bank.jsonl", "state.json"),
    "decode": ("generations.jsonl",),
    "score": ("scores.jsonl",),
    "sweep_summary": ("sweep_summary.csv",),
    "sweep": ("multirun.yaml",),
    "failed": ("error.json",),
}
RECORD_FILES = {"decode": "generations.jsonl", "score": "scores.jsonl"}
PAGE_OF_KIND = {"decode": "Run explorer", "score": "Run explorer", "analyze": "Findings",
                "search": "Search and sweeps", "sweep": "Search and sweeps", "sweep_summary": "Search and sweeps"}
_MAX_DEPTH = 5  # outputs/<date>/<time>, multirun/<name>/<stamp>/<job>/<sub>


class RunError(ValueError):
    """A path the app cannot show; the message says why and what would work."""


def run_kind(path: str | Path) -> str:
    """The kind of run stored in `path` (a key of KIND_FILES)."""
    path = Path(path).expanduser()
    if not path.exists():
        raise RunError(f"{path} does not exist; give a run directory under outputs/ or multirun/")
    if not path.is_dir():
        raise RunError(f"{path} is a file, not a run directory; give the folder that holds it ({path.parent})")
    for kind, files in KIND_FILES.items():
        if any((path / f).is_file() for f in files):
            return kind
    known = ", ".join(sorted({f for fs in KIND_FILES.values() for f in fs}))
    raise RunError(f"{path} holds no cdx run output (none of {known})")


def require_kind(path: str | Path, kinds: tuple[str, ...]) -> str:
    """`run_kind(path)`, or a RunError naming the page that shows that kind instead."""
    kind = run_kind(path)
    if kind not in kinds:
        where = PAGE_OF_KIND.get(kind)
        hint = f"; open it in {where}" if where else ""
        raise RunError(f"{path} is a {kind} run, and this page shows {' or '.join(kinds)} runs{hint}")
    return kind


@dataclass
class RunInfo:
    """One run directory found under the app's roots."""

    path: Path
    kind: str
    mtime: float

    @property
    def label(self) -> str:
        return f"{self.kind:<13} {self.path}"


def discover_runs(roots: list[Path], kinds: tuple[str, ...] | None = None) -> list[RunInfo]:
    """Every run directory under `roots` (newest first), walking at most a few levels deep."""
    found = []
    for root in roots:
        if root.is_dir():
            _walk(root, 0, found)
    if kinds:
        found = [r for r in found if r.kind in kinds]
    return sorted(found, key=lambda r: r.mtime, reverse=True)


def _walk(folder: Path, depth: int, found: list[RunInfo]) -> None:
    try:
        kind = run_kind(folder)
        found.append(RunInfo(folder, kind, folder.stat().st_mtime))
        if kind not in ("sweep", "failed"):
            return  # a run's own subfolders are not runs; a sweep's jobs are
    except RunError:
        pass
    if depth >= _MAX_DEPTH:
        return
    try:
        subs = [e for e in os.scandir(folder) if e.is_dir() and not e.name.startswith(".")]
    except OSError:
        return
    for e in subs:
        _walk(Path(e.path), depth + 1, found)


# ---- decode / score runs ------------------------------------------------------------------------

@dataclass
class TextRun:
    """A decode or score run: its records, a table of per-text metrics and the summary."""

    path: Path
    kind: str
    records: list[dict]
    table: pd.DataFrame
    """One row per record: id, prompt, continuation, finish_reason and every per-text metric."""
    summary: dict = field(default_factory=dict)
    config: str | None = None
    """The run's resolved Hydra config (.hydra/config.yaml), as text."""


def file_stamp(path: Path) -> tuple[int, int]:
    """(mtime_ns, size): changes whenever a growing run appends, so caches reload it."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def load_text_run(path: str | Path) -> TextRun:
    path = Path(path).expanduser()
    kind = require_kind(path, ("decode", "score"))
    records = read_records(path / RECORD_FILES[kind])
    summary = _read_json(path / "summary.json") or {}
    cfg = path / ".hydra" / "config.yaml"
    return TextRun(path, kind, records, metrics_table(records), summary,
                   cfg.read_text(encoding="utf-8") if cfg.is_file() else None)


def metrics_table(records: list[dict]) -> pd.DataFrame:
    """The per-text metrics the task wrote (record['metrics']), one row per record."""
    if not records:
        return pd.DataFrame(columns=["id", "prompt", "continuation", "finish_reason"])
    base = pd.DataFrame({
        "id": [r.get("id") for r in records],
        "prompt": [r.get("prompt", "") for r in records],
        "continuation": [r.get("continuation", "") for r in records],
        "finish_reason": [r.get("finish_reason") for r in records],
    })
    metrics = pd.DataFrame([r.get("metrics", {}) for r in records])
    return pd.concat([base, metrics], axis=1)


def summary_rows(summary: dict) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(per-token table, per-text table with CIs, headline numbers) of a summary.json."""
    token = pd.DataFrame(summary.get("token", {})).T
    text = pd.DataFrame(summary.get("text", {})).T
    heads = {k: summary[k] for k in ("n_texts", "n_tokens", "top1_agreement", "ppl_s", "ppl_c",
                                     "ppl_ratio_c_over_s") if k in summary}
    return token, text, heads


# ---- analysis, search and sweep runs --------------------------------------------------------------

def load_findings(path: str | Path) -> tuple[list[dict], dict]:
    """(findings.jsonl records, analysis.json) of an analysis run."""
    path = Path(path).expanduser()
    require_kind(path, ("analyze",))
    f = path / "findings.jsonl"
    return (read_records(f) if f.is_file() else []), (_read_json(path / "analysis.json") or {})


def load_search(path: str | Path) -> tuple[list[dict], list[dict], dict]:
    """(bank.jsonl entries, stats.jsonl cycle records, summary.json) of a search run."""
    path = Path(path).expanduser()
    require_kind(path, ("search",))
    bank = path / "bank.jsonl"
    stats = path / "stats.jsonl"
    return (read_records(bank) if bank.is_file() else [], read_records(stats) if stats.is_file() else [],
            _read_json(path / "summary.json") or {})


def sweep_summary_dir(path: str | Path) -> Path | None:
    """Where `task=summarize` wrote (or would write) the sweep's table: <sweep>/summary/."""
    path = Path(path).expanduser()
    if run_kind(path) == "sweep_summary":
        return path
    out = path / "summary"
    return out if (out / "sweep_summary.csv").is_file() else None


def load_sweep_table(folder: Path) -> pd.DataFrame:
    return pd.read_csv(folder / "sweep_summary.csv")


def flat_numbers(record: dict, prefix: str = "") -> dict:
    """Numbers of a nested stats record as {"new/divergence/mean": ...} (for per-cycle charts)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(flat_numbers(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


def _read_json(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as e:
        raise RunError(f"{path} is not valid JSON ({e}); was the run killed while writing it?") from e
