"""task=findings: list, query, show and export the knowledge base of findings (conf/task/findings.yaml)."""

from __future__ import annotations

import csv
import io
import json
import logging
from pathlib import Path

from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from cdx.errors import CdxUserError
from cdx.io import atomic_write_json, atomic_write_text
from cdx.io.records import KBFinding, KBFindingDetail
from cdx.knowledge import KnowledgeBase, open_knowledge, pair_fingerprint

log = logging.getLogger(__name__)

EXPORTS = ("csv", "json")
CSV_COLUMNS = ("id", "status", "statement", "kind", "direction", "cluster", "pair", "fingerprint", "n_history",
               "created_at", "updated_at")


def run(cfg: DictConfig) -> dict:
    t = cfg.task
    if t.get("export") not in (None, *EXPORTS):
        raise CdxUserError(f"task.export={t.export!r} is not valid; use one of {EXPORTS} or null")
    if not cfg.knowledge.get("enabled", True):
        raise CdxUserError("task=findings reads the knowledge base, but knowledge.enabled=false; enable it")
    show = _finding_id(t.get("show"))
    console = Console(highlight=False, no_color=not cfg.report.color)
    # Read-only (SQLite mode=ro): a query creates no file, changes no file, and refuses another program's database.
    opened = open_knowledge(OmegaConf.to_container(cfg.knowledge, resolve=True), readonly=True)
    assert opened is not None  # knowledge.enabled was checked above
    with opened as kb:
        if show is not None:
            finding = kb.finding(show)
            print_finding(finding, console)
            result = {"n_findings": 1, "finding_id": finding.id, "status": finding.status}
            rows: list[KBFinding] | list[KBFindingDetail] = [finding]
        else:
            rows = kb.findings(_pair_query(cfg, kb), _statuses(t.get("status")), t.get("text"), t.get("limit"))
            print_table(rows, console)
            result = {"n_findings": len(rows)}
        if t.get("export"):
            result["export"] = str(export(kb, rows, t.export, _export_path(cfg)))
        result["database"] = str(kb.path)
    print(f"cdx findings: {result['n_findings']} finding(s) from {result['database']}"
          + (f" -> {result['export']}" if "export" in result else ""))
    return result


def _finding_id(show) -> int | None:
    if show is None:
        return None
    if isinstance(show, bool) or not isinstance(show, int | str) or not str(show).strip().lstrip("-").isdigit():
        raise CdxUserError(f"task.show={show!r} is not valid: give a finding id (an integer; list them with "
                           "task=findings)")
    return int(show)


def _pair_query(cfg: DictConfig, kb: KnowledgeBase):
    """task.pair as given, or the fingerprint of the configured pair for `current`."""
    pair = cfg.task.get("pair")
    if pair != "current":
        return pair
    fp, _ = pair_fingerprint(OmegaConf.to_container(cfg.model, resolve=True))
    return fp


def _statuses(status) -> list[str] | None:
    if status is None:
        return None
    return [status] if isinstance(status, str) else list(status)


def _export_path(cfg: DictConfig) -> Path:
    if cfg.task.get("export_path"):
        return Path(cfg.task.export_path).expanduser()
    return Path(cfg.output_dir) / f"findings.{cfg.task.export}"


def export(kb: KnowledgeBase, rows: list[KBFinding] | list[KBFindingDetail], fmt: str, path: Path) -> Path:
    """CSV: one row per finding. JSON: every finding in full (hypothesis, history, validations, evidence)."""
    if fmt == "json":
        atomic_write_json(path, [kb.finding(r.id).model_dump() for r in rows])
    else:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=CSV_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows({k: getattr(r, k, None) for k in CSV_COLUMNS} for r in rows)
        atomic_write_text(path, buf.getvalue())
    return path


def print_table(rows: list[KBFinding], console: Console) -> None:
    table = Table(title=f"{len(rows)} finding(s)", show_lines=False)
    for col in ("id", "status", "statement", "cluster", "pair", "updated"):
        table.add_column(col, overflow="fold")
    for r in rows:
        table.add_row(str(r.id), r.status, r.statement, str(r.cluster or ""), r.pair, r.updated_at[:19])
    console.print(table)


def print_finding(f: KBFindingDetail, console: Console) -> None:
    h, pair = f.hypothesis, f.pair
    console.print(f"[bold]finding {f.id}[/bold] ({f.status}): {f.statement}")
    if pair is not None and h is not None:
        console.print(f"pair {pair.label} ({pair.fingerprint[:12]}); kind={h.kind} "
                      f"direction={h.direction} cluster={h.cluster} checker={json.dumps(h.checker)}")
    console.print("[bold]history[/bold]")
    for e in f.history:
        to = f" -> finding {e.related_finding_id}" if e.related_finding_id else ""
        console.print(f"  {e.created_at[:19]}  {e.status}{to}: {e.reason}"
                      + (f"  [{e.run_kind} run {e.run_dir}]" if e.run_kind else ""))
    console.print("[bold]validations[/bold]")
    for v in f.validations:
        console.print(f"  #{v.id} {v.purpose}: starting {v.k_s}/{v.n_s} vs comparison {v.k_c}/{v.n_c}, "
                      f"effect {_f(v.effect)} [{_f(v.effect_ci_low)}, {_f(v.effect_ci_high)}], p={_f(v.p)} "
                      f"q={_f(v.q)} -> {'validated' if v.validated else 'not validated'}")
    console.print(f"[bold]evidence[/bold] ({len(f.evidence)})")
    for ev in f.evidence[:10]:
        console.print(f"  [{ev.model}] {ev.prompt!r} -> {(ev.text or '')[:160]!r}")


def _f(x) -> str:
    return "NA" if x is None else f"{x:.3g}"
