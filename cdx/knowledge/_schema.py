"""The database schema as an ordered list of migrations; `migrate` brings any older file up to date.

Version N of the schema is what migrations 1..N built. A migration never edits an earlier one: a
file written by an older cdx is upgraded in place, inside one transaction, keeping its rows.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable

from cdx.knowledge._errors import KnowledgeBaseError

FINDING_STATUSES = ("validated", "replicated", "not_replicated", "refined_into", "rejected")
"""A finding's status history uses these; the last entry is its current status."""
HYPOTHESIS_STATUSES = ("open", "confirmed", "narrowed", "split", "rejected")
"""open: still being tested; confirmed/narrowed/split/rejected: what the experiment agent decided."""


def _script(conn: sqlite3.Connection, script: str) -> None:
    """Statement by statement: `executescript` would COMMIT the caller's open transaction first."""
    for statement in script.split(";\n"):
        if statement.strip():
            conn.execute(statement)


def _v1(conn: sqlite3.Connection) -> None:
    """Pairs, runs, hypotheses, validations, findings with their status history, file-hash cache."""
    _script(
        conn,
        """
        CREATE TABLE pairs (
            id INTEGER PRIMARY KEY,
            fingerprint TEXT NOT NULL UNIQUE,      -- sha256 of both sides' weights + contexts (cdx.knowledge.pair_fingerprint)
            label TEXT NOT NULL,                   -- "starting vs comparison", for people
            description TEXT NOT NULL,             -- JSON: the fingerprinted fields of both sides
            created_at TEXT NOT NULL
        );
        CREATE TABLE runs (
            id INTEGER PRIMARY KEY,
            pair_id INTEGER REFERENCES pairs(id),
            kind TEXT NOT NULL,                    -- analyze | pipeline | experiment | replication | ...
            command TEXT,                          -- the command line (Hydra overrides)
            config TEXT,                           -- JSON: the resolved config
            git_commit TEXT,
            run_dir TEXT,
            created_at TEXT NOT NULL
        );
        CREATE TABLE hypotheses (
            id INTEGER PRIMARY KEY,
            pair_id INTEGER NOT NULL REFERENCES pairs(id),
            key TEXT NOT NULL,                     -- what makes two hypotheses the same claim (kind, direction, checker, cluster)
            statement TEXT NOT NULL,
            kind TEXT,
            direction TEXT,                        -- gained | lost (in the comparison model)
            cluster TEXT,
            checker TEXT,                          -- JSON dict for cdx.analysis.build_checker
            status TEXT NOT NULL DEFAULT 'open',
            parent_id INTEGER REFERENCES hypotheses(id),  -- the broader hypothesis this one narrows or splits
            run_id INTEGER REFERENCES runs(id),    -- the run that first proposed it
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL,
            UNIQUE (pair_id, key)
        );
        CREATE TABLE validations (
            id INTEGER PRIMARY KEY,
            hypothesis_id INTEGER NOT NULL REFERENCES hypotheses(id),
            run_id INTEGER REFERENCES runs(id),
            purpose TEXT NOT NULL,                 -- discovery | experiment | replication
            n_s INTEGER, k_s INTEGER, n_c INTEGER, k_c INTEGER,
            rate_s REAL, rate_c REAL,
            rate_s_ci_low REAL, rate_s_ci_high REAL, rate_c_ci_low REAL, rate_c_ci_high REAL,
            effect REAL, effect_ci_low REAL, effect_ci_high REAL,
            p REAL, q REAL,
            validated INTEGER NOT NULL,
            details TEXT,                          -- JSON: anything else the test reported (prompt sets, alpha)
            created_at TEXT NOT NULL
        );
        CREATE TABLE findings (
            id INTEGER PRIMARY KEY,
            hypothesis_id INTEGER NOT NULL UNIQUE REFERENCES hypotheses(id),
            pair_id INTEGER NOT NULL REFERENCES pairs(id),
            statement TEXT NOT NULL,
            status TEXT NOT NULL,                  -- the latest entry of finding_history
            created_at TEXT NOT NULL,
            updated_at TEXT NOT NULL
        );
        CREATE TABLE finding_history (
            id INTEGER PRIMARY KEY,
            finding_id INTEGER NOT NULL REFERENCES findings(id),
            status TEXT NOT NULL,
            reason TEXT NOT NULL,
            run_id INTEGER REFERENCES runs(id),
            validation_id INTEGER REFERENCES validations(id),
            related_finding_id INTEGER REFERENCES findings(id),  -- refined_into: the narrower finding
            created_at TEXT NOT NULL
        );
        CREATE TABLE file_hashes (
            path TEXT PRIMARY KEY,
            size INTEGER NOT NULL,
            mtime_ns INTEGER NOT NULL,
            sha256 TEXT NOT NULL
        );
        """
    )


def _v2(conn: sqlite3.Connection) -> None:
    """Evidence pointers (the texts that show a finding) and indexes for the findings queries."""
    _script(
        conn,
        """
        CREATE TABLE evidence (
            id INTEGER PRIMARY KEY,
            finding_id INTEGER NOT NULL REFERENCES findings(id),
            validation_id INTEGER REFERENCES validations(id),
            run_dir TEXT,                          -- where the record lives
            record_id TEXT,                        -- its id in that run's JSONL
            model TEXT,                            -- starting | comparison
            prompt TEXT,
            text TEXT
        );
        CREATE INDEX evidence_finding ON evidence(finding_id);
        CREATE INDEX findings_pair_status ON findings(pair_id, status);
        CREATE INDEX history_finding ON finding_history(finding_id);
        CREATE INDEX validations_hypothesis ON validations(hypothesis_id);
        """
    )


def _v3(conn: sqlite3.Connection) -> None:
    """A run's record key, so one analysis is recorded once however often it is recorded (resume, rerun)."""
    _script(
        conn,
        """
        -- the run folder's identity fingerprint (run.json), else its path; NULL for runs recorded without one
        ALTER TABLE runs ADD COLUMN record_key TEXT;
        CREATE UNIQUE INDEX runs_record_key ON runs(pair_id, record_key);
        """
    )


MIGRATIONS: list[Callable[[sqlite3.Connection], None]] = [_v1, _v2, _v3]
SCHEMA_VERSION = len(MIGRATIONS)


def current_version(conn: sqlite3.Connection) -> int:
    exists = conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name='schema_version'").fetchone()
    if not exists:
        return 0
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    return int(row[0] or 0)


def migrate(conn: sqlite3.Connection, target: int = SCHEMA_VERSION) -> int:
    """Apply the missing migrations up to `target`; the caller holds a write transaction. Returns the version."""
    if not 0 <= target <= SCHEMA_VERSION:
        raise ValueError(f"schema version {target} does not exist; valid: 0..{SCHEMA_VERSION}")
    conn.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
    have = current_version(conn)
    if have > SCHEMA_VERSION:
        raise KnowledgeBaseError(
            f"the knowledge base has schema version {have}, newer than this cdx supports (up to {SCHEMA_VERSION}): "
            "update cdx, or point knowledge.path at another file"
        )
    for version in range(have + 1, target + 1):
        MIGRATIONS[version - 1](conn)
        conn.execute("INSERT INTO schema_version VALUES (?, datetime('now'))", (version,))
    return max(have, target)
