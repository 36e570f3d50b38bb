"""Finding and reading cdx run directories for the app.

Every run is read with `cdx.io.read_run` (the readers the CLI shares: kind detection, schema
checks, records sorted by id) and shown as written; nothing here recomputes a metric. This module
only adds what pages need on top: which page shows which kind, discovery under the app's roots,
and the tables the pages draw. Two things are derived, each with the CLI's own function and no
model: the words each model favours (`cdx.analysis.quick`, as the decode task's `what_changed`),
and which held-out texts a finding's checker matches (`cdx.analysis.checkers`, as validation counted).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import yaml
from pydantic import BaseModel, ValidationError

from cdx.analysis.behaviours import Behaviour
from cdx.analysis.checkers import AnyChecker, Checker, build_checker, needs_record
from cdx.analysis.quick import word_deltas
from cdx.io import KIND_FILES, NotARunError, read_run, scan_records
from cdx.io import run_kind as io_run_kind
from cdx.io.records import DecodeSummary, FindingRecord, SampleRecord, invalid_records

RECORD_FILES = {"decode": "generations.jsonl", "score": "scores.jsonl"}
PAGE_OF_KIND = {"decode": "Run explorer", "score": "Run explorer", "analyze": "Findings",
                "search": "Search and sweeps", "sweep": "Search and sweeps", "sweep_summary": "Search and sweeps"}
_MARKERS = {"run.json", ".hydra", *(f for fs in KIND_FILES.values() for f in fs)}
_MAX_DEPTH = 5  # outputs/<date>/<time>, multirun/<name>/<stamp>/<job>/<sub>


class RunError(ValueError):
    """A path the app cannot show; the message says why and what would work."""


def run_kind(path: str | Path) -> str:
    """The kind of run stored in `path` (cdx.io's reader), or a RunError saying why there is none."""
    try:
        return io_run_kind(Path(path).expanduser())
    except NotARunError as e:
        raise RunError(str(e)) from None


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
    found: list[RunInfo] = []
    for root in roots:
        if root.is_dir():
            _walk(root, 0, found)
    if kinds:
        found = [r for r in found if r.kind in kinds]
    return sorted(found, key=lambda r: r.mtime, reverse=True)


def _walk(folder: Path, depth: int, found: list[RunInfo]) -> None:
    try:
        names = {e.name: e for e in os.scandir(folder)}
    except OSError:
        return
    if _MARKERS & names.keys():  # cheap test first: cdx.io's run_kind may glob a whole tree
        try:
            kind = run_kind(folder)
            found.append(RunInfo(folder, kind, folder.stat().st_mtime))
            if kind not in ("sweep", "failed"):
                return  # a run's own subfolders are not runs; a sweep's jobs are
        except RunError:
            pass
    if depth >= _MAX_DEPTH:
        return
    for name, e in names.items():
        if not name.startswith(".") and e.is_dir():
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
    summary: DecodeSummary | None = None
    """summary.json; None while the run is going (or when it was killed before it finished)."""
    config: str | None = None
    """The run's resolved Hydra config (.hydra/config.yaml), as YAML text."""
    n_corrupt: int = 0
    """Lines of the records file that were skipped (not JSON, or not of the record schema)."""


def file_stamp(path: Path) -> tuple[int, int]:
    """(mtime_ns, size): changes whenever a growing run appends, so caches reload it."""
    st = path.stat()
    return st.st_mtime_ns, st.st_size


def load_text_run(path: str | Path) -> TextRun:
    path = Path(path).expanduser()
    require_kind(path, ("decode", "score"))
    run = _read(path, ("decode", "score"))
    config = yaml.safe_dump(run.config, sort_keys=False) if run.config else None
    summary = DecodeSummary.model_validate(run.summary) if run.summary else None
    return TextRun(run.path, run.kind, run.records, metrics_table(run.records), summary, config,
                   run.n_corrupt)


def _read(path: Path, kinds: tuple[str, ...]):
    try:
        return read_run(path, kinds)
    except NotARunError as e:
        raise RunError(str(e)) from None


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


def summary_rows(summary: DecodeSummary) -> tuple[pd.DataFrame, pd.DataFrame, dict]:
    """(per-token table, per-text table with CIs, headline numbers) of a summary.json."""
    token = pd.DataFrame({k: v.model_dump() for k, v in summary.token.items()}).T
    text = pd.DataFrame({k: v.model_dump() for k, v in summary.text.items()}).T
    heads = summary.model_dump(include={"n_texts", "n_tokens", "top1_agreement", "ppl_s", "ppl_c", "ppl_ratio_c_over_s"},
                               exclude_unset=True)
    return token, text, heads


# ---- analysis, search and sweep runs --------------------------------------------------------------

def load_search(path: str | Path) -> tuple[list[dict], list[dict], dict]:
    """(bank.jsonl entries, stats.jsonl cycle records, summary.json) of a search run."""
    path = Path(path).expanduser()
    require_kind(path, ("search",))
    run = _read(path, ("search",))
    return run.records, run.files.get("stats.jsonl", []), run.summary or {}


def sweep_summary_dir(path: str | Path) -> Path | None:
    """Where `task=summarize` wrote (or would write) the sweep's table: <sweep>/summary/."""
    path = Path(path).expanduser()
    if run_kind(path) == "sweep_summary":
        return path
    out = path / "summary"
    return out if (out / "sweep_summary.csv").is_file() else None


def load_sweep_table(folder: Path) -> pd.DataFrame:
    """The sweep_summary.csv that task=summarize wrote (numbers parsed back by pandas)."""
    table = pd.DataFrame(_read(folder, ("sweep_summary",)).records)
    for col in table.columns:
        try:
            table[col] = pd.to_numeric(table[col].replace("", None))
        except (ValueError, TypeError):
            pass  # a text column (status, dir, error)
    return table


def flat_numbers(record: dict, prefix: str = "") -> dict:
    """Numbers of a nested stats record as {"new/divergence/mean": ...} (for per-cycle charts)."""
    out = {}
    for k, v in record.items():
        if isinstance(v, dict):
            out.update(flat_numbers(v, f"{prefix}{k}/"))
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            out[f"{prefix}{k}"] = v
    return out


# ---- what changed: words, findings and paired samples of an analysis or decode run ---------------

class WordShift(BaseModel):
    """A word and how much more (delta > 0) or less likely the comparison model makes it, in nats."""

    word: str
    delta: float
    """Mean over occurrences of the word's summed log p_c - log p_s (cdx.analysis.quick.word_deltas)."""
    count: int


class PairedSample(BaseModel):
    """One held-out prompt with a plain sample of each model (the analysis' validation.jsonl)."""

    prompt_index: int
    prompt: str
    cluster: str | None = None
    """The prompt cluster's label (clusters.json), when the analysis clustered its prompts."""
    cluster_id: int | None = None
    """Its cluster number (a finding's `cluster` when the finding is restricted to one cluster)."""
    text_s: str
    text_c: str
    id_s: str
    id_c: str


def checked_findings(records: list[dict]) -> tuple[list[FindingRecord], int]:
    """(the records that fit `FindingRecord`, the findings.jsonl schema; how many did not: a record without
    an id or a statement, or with a field of the wrong type, is left out and counted)."""
    good = []
    for r in records:
        try:
            good.append(FindingRecord.model_validate(r))
        except ValidationError:
            continue
    return good, len(records) - len(good)


class AnalysisRun(BaseModel):
    """An analysis run as the app shows it: findings (best first), its summary and paired samples."""

    path: Path
    findings: list[FindingRecord]
    """findings.jsonl records, validated first, then by q, then by |effect| (see `rank_findings`)."""
    analysis: dict
    samples: list[SampleRecord]
    """validation.jsonl: the held-out plain samples of both models, with both log-probs per token."""
    pairs: list[PairedSample]
    behaviours: list[Behaviour] = []
    """behaviours.jsonl in its order (behaviours first, then other sides and word shifts); empty when absent."""
    n_corrupt: int = 0


def rank_findings(findings: list[FindingRecord]) -> list[FindingRecord]:
    """Validated first, then by q (smallest first), then by |effect| (largest first)."""
    return sorted(findings, key=lambda f: (not f.validated, _num(f.q, 1.0), -abs(_num(f.effect, 0.0))))


def _num(v, default: float) -> float:
    return float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else default


def load_analysis(path: str | Path) -> AnalysisRun:
    """An analysis run with its held-out samples paired by prompt; files it lacks are empty, not errors."""
    path = Path(path).expanduser()
    require_kind(path, ("analyze",))
    run = _read(path, ("analyze",))
    samples, n_bad_samples = _samples_if(path / "validation.jsonl")
    findings, n_bad = checked_findings(run.records)
    behaviours, n_bad_behaviours = _behaviours_if(path / "behaviours.jsonl")
    return AnalysisRun(path=run.path, findings=rank_findings(findings), analysis=run.summary or {},
                       samples=samples, pairs=pair_samples(samples, _clusters(path)), behaviours=behaviours,
                       n_corrupt=run.n_corrupt + n_bad + n_bad_samples + n_bad_behaviours)


def _behaviours_if(path: Path) -> tuple[list[Behaviour], int]:
    """(the lines of behaviours.jsonl that are behaviours, how many were not): a damaged line is
    skipped and counted, as read_run's are."""
    if not path.is_file():
        return [], 0
    good, bad = [], 0
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        if not line.strip():
            continue
        try:
            good.append(Behaviour.model_validate_json(line))
        except ValidationError:
            bad += 1
    return good, bad


def _samples_if(path: Path) -> tuple[list[SampleRecord], int]:
    """(the samples that fit `SampleRecord`, how many lines did not): a damaged line is skipped and
    counted, like read_run's."""
    if not path.is_file():
        return [], 0
    scan = scan_records(path)
    bad = {i for i, _ in invalid_records("sample", scan.records)}
    good = [SampleRecord.model_validate(r) for i, r in enumerate(scan.records) if i not in bad]
    return good, len(bad) + len(scan.corrupt)


def _clusters(path: Path) -> dict[int, tuple[int, str]]:
    """prompt index -> (its cluster, the cluster's label), from clusters.json (empty when absent or unreadable)."""
    try:
        clusters = json.loads((path / "clusters.json").read_text())
        labels = clusters.get("labels", {})
        return {i: (int(c), str(labels.get(str(c), c))) for i, c in enumerate(clusters.get("assignment", []))}
    except (OSError, ValueError, TypeError, AttributeError):
        return {}


def pair_samples(samples: list[SampleRecord], clusters: dict[int, tuple[int, str]] | None = None) -> list[PairedSample]:
    """The k-th starting and k-th comparison plain sample of each held-out prompt, side by side."""
    by_prompt: dict[int, dict[str, list[SampleRecord]]] = {}
    for r in samples:
        if r.mode in ("plain_s", "plain_c"):
            by_prompt.setdefault(r.prompt_index, {"plain_s": [], "plain_c": []})[r.mode].append(r)
    pairs = []
    for i in sorted(by_prompt):
        for s, c in zip(by_prompt[i]["plain_s"], by_prompt[i]["plain_c"]):
            cid, label = (clusters or {}).get(i, (None, None))
            pairs.append(PairedSample(prompt_index=i, prompt=s.prompt, cluster=label, cluster_id=cid,
                                      text_s=s.text, text_c=c.text, id_s=s.id, id_c=c.id))
    return pairs


def word_shifts(records: Sequence[dict | SampleRecord], top: int = 10, min_count: int = 2) -> list[WordShift]:
    """The `top` most favoured and `top` most avoided words of these texts (no model is run)."""
    rows = word_deltas(records, min_count)
    up = [r for r in rows if r[1] > 0][:top]
    down = [r for r in rows[::-1] if r[1] < 0][:top]
    return [WordShift(word=w, delta=d, count=n) for w, d, n in up + down[::-1]]


# ---- which held-out texts show a finding, and where ----------------------------------------------

def finding_checkers(findings: list[FindingRecord]) -> dict[str, Checker]:
    """finding id -> its checker, rebuilt from findings.jsonl; judge checkers (they need an assistant) and
    ending checkers (they need the sample records; the views tag texts) are left out."""
    out = {}
    for f in findings:
        if f.checker and needs_record(f.checker):
            continue  # shown untagged
        try:
            out[f.id] = build_checker(f.checker or {})
        except (ValueError, KeyError, TypeError):
            continue  # a judge checker, or a spec this version cannot build: shown untagged
    return out


def match_spans(checker: Checker, text: str) -> list[tuple[int, int]]:
    """(start, end) of the words a string or regex checker matched in `text` (features match the whole text)."""
    if isinstance(checker, AnyChecker):
        return sorted({s for c in checker.checkers for s in match_spans(c, text)})
    pattern = getattr(checker, "_re", None)  # string and regex checkers compile one; reuse it, not a copy
    if pattern is not None:
        return [m.span() for m in pattern.finditer(text) if m.end() > m.start()]
    return []


def slice_rates(pairs: list[PairedSample], checker: Checker) -> tuple[int, int, int]:
    """(texts, starting texts showing it, comparison texts showing it) over these pairs."""
    return len(pairs), sum(checker.check(p.text_s) for p in pairs), sum(checker.check(p.text_c) for p in pairs)
