"""One analysis is recorded once and whole: never a replication of itself, never half (issue 23 item 1)."""

from __future__ import annotations

import json
import os
import re
import shlex
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from cdx.io import write_records
from cdx.io.rundir import fingerprint
from cdx.knowledge import KnowledgeBase, KnowledgeBaseBusy, KnowledgeBaseError, record_analysis
from tests.conftest import patience
from tests.knowledge import kb_files as kf

ROOT = Path(__file__).resolve().parents[2]


def _analysis_folder(folder: Path, records: list[dict], seed: int = 0) -> Path:
    """An analyze run folder as task=analyze leaves it: findings.jsonl, run.json, .hydra/."""
    write_records(folder / "findings.jsonl", records)
    identity = {"task": "analyze", "seed": seed, "model": kf.PAIR}
    (folder / "run.json").write_text(json.dumps({"kind": "analyze", "identity": identity,
                                                 "fingerprint": fingerprint(identity), "status": "finished"}))
    (folder / ".hydra").mkdir()
    (folder / ".hydra" / "config.yaml").write_text(yaml.safe_dump({"model": kf.PAIR}))
    return folder


def _history(kb: KnowledgeBase) -> list[list[str]]:
    return [[h.status for h in kb.finding(f.id).history] for f in reversed(kb.findings())]


def test_recording_the_same_run_again_is_a_no_op_not_a_replication(tmp_path):
    """analyze, then the same command with resume=true: it printed "0 new, 2 replicated"."""
    run = _analysis_folder(tmp_path / "a", [kf.hypothesis(0), kf.hypothesis(1)])
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        first = record_analysis(run, kb)
        counts = kb.counts()
        again = record_analysis(run, kb)
        assert (first.n_findings_new, first.already_recorded) == (2, False)
        assert (again.already_recorded, again.run_id, again.n_replicated) == (True, first.run_id, 0)
        assert again.recorded_from == str(run)
        assert kb.counts() == counts and _history(kb) == [["validated"], ["validated"]]


def test_a_copy_of_the_run_with_the_same_settings_and_seed_is_no_replication_either(tmp_path):
    """Same identity fingerprint = the same draws; another seed is a real replication."""
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        record_analysis(_analysis_folder(tmp_path / "a", [kf.hypothesis(0)]), kb)
        copy = record_analysis(_analysis_folder(tmp_path / "copy", [kf.hypothesis(0)]), kb)
        other = record_analysis(_analysis_folder(tmp_path / "seed1", [kf.hypothesis(0)], seed=1), kb)
        assert copy.already_recorded and copy.recorded_from == str(tmp_path / "a")
        assert not other.already_recorded and other.n_replicated == 1
        assert _history(kb) == [["validated", "replicated"]]


def test_a_failure_mid_record_keeps_nothing_and_the_resume_records_it_once(tmp_path, monkeypatch):
    """A full disk while recording the second hypothesis (injected): nothing half-recorded is left."""
    run = _analysis_folder(tmp_path / "a", [kf.hypothesis(i) for i in range(3)])
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    empty = kb.counts()
    real, calls = KnowledgeBase.add_validation, []

    def full_on_second(self, *a, **k):
        calls.append(1)
        if len(calls) == 2:
            raise sqlite3.OperationalError("database or disk is full")
        return real(self, *a, **k)

    monkeypatch.setattr(KnowledgeBase, "add_validation", full_on_second)
    with pytest.raises(KnowledgeBaseError, match="the disk is full .*; nothing of this write was kept"):
        record_analysis(run, kb)
    assert kb.counts() == empty and kb.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
    monkeypatch.setattr(KnowledgeBase, "add_validation", real)
    resumed = record_analysis(run, kb)  # space freed: the resume records it, whole
    assert (resumed.n_findings_new, resumed.n_replicated) == (3, 0)
    assert record_analysis(run, kb).already_recorded  # and a second resume adds nothing
    assert _history(kb) == [["validated"]] * 3 and kb.counts()["validations"] == 3
    kb.close()


def test_a_really_full_database_twice_then_space_ends_with_one_whole_record(tmp_path):
    """SQLite's own SQLITE_FULL (max_page_count), resumed twice as space frees: one run, one validation each."""
    run = _analysis_folder(tmp_path / "a", [kf.hypothesis(i, text="x" * 3000) for i in range(12)])
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    pages = kb.conn.execute("PRAGMA page_count").fetchone()[0]
    for room in (4, 8):  # the disk fills part-way through the record, twice
        kb.conn.execute(f"PRAGMA max_page_count={pages + room}")
        with pytest.raises(KnowledgeBaseError, match="the disk is full"):
            record_analysis(run, kb)
        assert kb.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 0
        assert kb.counts()["validations"] == 0
    kb.conn.execute("PRAGMA max_page_count=1073741823")
    assert record_analysis(run, kb).n_findings_new == 12
    assert record_analysis(run, kb).already_recorded
    per_hypothesis = kb.conn.execute("SELECT COUNT(*) FROM validations GROUP BY hypothesis_id").fetchall()
    assert [n for (n,) in per_hypothesis] == [1] * 12 and kb.integrity() == "ok"
    kb.close()


def test_a_knowledge_base_locked_past_its_timeout_is_a_user_error_and_nothing_is_kept(tmp_path):
    path = kf.cdx_file(tmp_path / "kb.sqlite")
    run = _analysis_folder(tmp_path / "a", [kf.hypothesis(7)])
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process's write in progress
    try:
        with pytest.raises(KnowledgeBaseBusy, match="locked by another process past knowledge.busy_timeout_s=0.1 "
                                                    "and 1 retries"):
            record_analysis(run, {"path": str(path), "busy_timeout_s": 0.1, "retries": 1})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    res = record_analysis(run, {"path": str(path)})
    assert res.n_findings_new == 1 and not res.already_recorded


FAST = ["task=analyze", "model=tiny_random", "prompts.limit=24", "analysis.sample.max_new_tokens=6", "report.color=false"]


def _cli(args: list[str]) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline"}
    env.pop("CDX_DEBUG", None)
    return subprocess.run([sys.executable, "-m", "cdx.run", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=patience(600))


def test_cli_locked_knowledge_base_says_how_to_resume_and_the_resume_records_once(tmp_path):
    """The real CLI: a lock held past the timeout, then the printed command, then that command again."""
    kb_path, out = kf.cdx_file(tmp_path / "kb.sqlite", n=1), tmp_path / "run"
    holder = sqlite3.connect(kb_path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        proc = _cli([*FAST, f"knowledge.path={kb_path}", "knowledge.busy_timeout_s=0.2", "knowledge.retries=0",
                     f"hydra.run.dir={out}"])
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr[-3000:]
    (line,) = [ln for ln in proc.stderr.splitlines() if ln.startswith("cdx: error:")]
    assert "locked by another process" in line and f"the analysis itself is saved in {out}" in line.lower()
    command = line.split("record it with: ", 1)[1].split(" (CDX_DEBUG=1")[0]
    assert command.startswith("python -m cdx.run ") and f"hydra.run.dir={out}" in command and "resume=true" in command
    with KnowledgeBase(kb_path, readonly=True) as kb:
        assert kb.counts()["runs"] == 1  # only the file's own record: nothing of this run
    for _ in range(2):  # the printed command, then once more: recorded once
        again = _cli(shlex.split(command)[3:])
        assert again.returncode == 0, again.stderr[-3000:]
    with KnowledgeBase(kb_path, readonly=True) as kb:
        runs = kb.conn.execute("SELECT run_dir FROM runs WHERE run_dir IS NOT NULL").fetchall()
        assert [r[0] for r in runs] == [str(out)]
        assert not kb.conn.execute("SELECT 1 FROM finding_history WHERE status='replicated'").fetchall()


def test_pipeline_with_a_locked_knowledge_base_says_how_to_continue(tmp_path):
    from cdx.tasks.pipeline import run as pipeline
    from tests.agent.test_pipeline import TOY
    from tests.conftest import compose

    path = tmp_path / "kb.sqlite"
    KnowledgeBase(path).close()  # as cdx leaves it: WAL mode, so opening needs no lock; the first write does
    over = [*TOY, f"knowledge.path={path}", "knowledge.busy_timeout_s=0.1", "knowledge.retries=0"]
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        out = re.escape(str(tmp_path / "p"))
        with pytest.raises(KnowledgeBaseBusy, match=f"locked by another process.* Finished stages are saved in {out}; "
                                                    f"continue with: python -m cdx.run .*hydra.run.dir={out} resume=true"):
            pipeline(compose(over, tmp_path / "p"))
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert pipeline(compose([*over, "resume=true"], tmp_path / "p"))["n_new_findings"] >= 1
