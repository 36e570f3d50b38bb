"""Schema versions and migrations: a fresh file is current; a v1 file is upgraded in place with its rows kept."""

from __future__ import annotations

import sqlite3

import pytest

from cdx.io.records import Evidence
from cdx.knowledge import MIGRATIONS, SCHEMA_VERSION, KnowledgeBase, KnowledgeBaseError, migrate

V3_TABLES = {"pairs", "runs", "hypotheses", "validations", "findings", "finding_history", "file_hashes", "evidence",
             "schema_version"}  # v3 adds a column (runs.record_key) and an index, no table


def _tables(conn) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}


def test_fresh_file_is_current_and_in_wal_mode(tmp_path):
    kb = KnowledgeBase(tmp_path / "kb.sqlite")
    assert kb.version == SCHEMA_VERSION == len(MIGRATIONS) == 3
    assert _tables(kb.conn) == V3_TABLES
    assert kb.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [r[0] for r in kb.conn.execute("SELECT version FROM schema_version ORDER BY version")]
    assert versions == [1, 2, 3]
    kb.close()
    assert KnowledgeBase(tmp_path / "kb.sqlite").version == 3  # reopening migrates nothing


def _v1_file(path) -> None:
    """A knowledge base as the first schema version wrote it, with one finding in it."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    assert migrate(conn, target=1) == 1
    conn.execute("INSERT INTO pairs VALUES (1, 'fp1', 'a vs b', '{}', 't0')")
    conn.execute("INSERT INTO hypotheses (id, pair_id, key, statement, status, created_at, updated_at) "
                 "VALUES (1, 1, 'k1', 'refuses more', 'open', 't0', 't0')")
    conn.execute("INSERT INTO findings VALUES (1, 1, 1, 'refuses more', 'validated', 't0', 't0')")
    conn.execute("INSERT INTO finding_history (finding_id, status, reason, created_at) VALUES (1, 'validated', 'v1 run', 't0')")
    conn.execute("COMMIT")
    assert "evidence" not in _tables(conn)
    conn.close()


def test_upgrade_from_v1_keeps_rows_and_adds_evidence(tmp_path):
    _v1_file(tmp_path / "old.sqlite")
    kb = KnowledgeBase(tmp_path / "old.sqlite")
    assert kb.version == 3 and _tables(kb.conn) == V3_TABLES
    f = kb.finding(1)
    assert (f.statement, f.status, [h.reason for h in f.history]) == ("refuses more", "validated", ["v1 run"])
    kb.add_status(1, "replicated", "after upgrade", evidence=[Evidence(id="p1-s0", model="comparison", prompt="q", text="no")])
    f = kb.finding(1)
    assert [h.status for h in f.history] == ["validated", "replicated"]
    assert [(e.record_id, e.text) for e in f.evidence] == [("p1-s0", "no")]


def test_newer_file_than_code_is_refused(tmp_path):
    KnowledgeBase(tmp_path / "kb.sqlite").close()
    conn = sqlite3.connect(tmp_path / "kb.sqlite")
    conn.execute("INSERT INTO schema_version VALUES (99, 'later')")
    conn.commit()
    conn.close()
    with pytest.raises(KnowledgeBaseError, match="schema version 99, newer than this cdx supports \\(up to 3\\)"):
        KnowledgeBase(tmp_path / "kb.sqlite")


def test_migrate_to_unknown_version_is_an_error(tmp_path):
    conn = sqlite3.connect(tmp_path / "x.sqlite")
    with pytest.raises(ValueError, match="schema version 7 does not exist; valid: 0..3"):
        migrate(conn, target=7)
