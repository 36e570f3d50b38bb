"""The knowledge base: one SQLite file (WAL mode) shared by every run and process on the machine.

Every write runs in `BEGIN IMMEDIATE` (the write lock is taken up front, so two writers never
deadlock upgrading a read lock) with SQLite's busy timeout, and a lock still held after it is
retried with backoff. Readers never block writers in WAL mode.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import random
import sqlite3
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cdx.errors import CdxUserError
from cdx.io.records import (
    Evidence,
    FindingRecord,
    KBEvidence,
    KBFinding,
    KBFindingDetail,
    KBHistoryEntry,
    KBHypothesis,
    KBPair,
    KBValidation,
)
from cdx.knowledge._check import check_path, connect_read_only
from cdx.knowledge._errors import LOCKED, KnowledgeBaseBusy, KnowledgeBaseError, UnknownFinding, environment_cause
from cdx.knowledge._schema import FINDING_STATUSES, HYPOTHESIS_STATUSES, SCHEMA_VERSION, current_version, migrate

log = logging.getLogger(__name__)

VALIDATION_FIELDS = ("n_s", "k_s", "n_c", "k_c", "rate_s", "rate_c", "effect", "p", "q")
PURPOSES = ("discovery", "experiment", "replication")


def default_path() -> Path:
    """`$CDX_KNOWLEDGE_PATH`, else `$CDX_CACHE_DIR/knowledge.sqlite` (the cache dir defaults to ~/.cache/cdx)."""
    from cdx.models.gguf_cache import default_cache_dir

    if os.environ.get("CDX_KNOWLEDGE_PATH"):
        return Path(os.environ["CDX_KNOWLEDGE_PATH"])
    return default_cache_dir() / "knowledge.sqlite"


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="microseconds")


class KnowledgeBase:
    """Findings across runs: pairs, runs, hypotheses, validations, findings, status history, evidence."""

    def __init__(self, path: str | Path | None = None, busy_timeout_s: float = 30.0, retries: int = 8, *,
                 readonly: bool = False):
        self.path = Path(path).expanduser() if path else default_path()
        self.busy_timeout_s, self.retries, self.readonly = float(busy_timeout_s), int(retries), bool(readonly)
        if self.busy_timeout_s <= 0 or self.retries < 0:
            raise CdxUserError(f"knowledge.busy_timeout_s must be > 0 and knowledge.retries >= 0; got "
                               f"{busy_timeout_s}, {retries}")
        self._depth = 0  # nesting level of transaction()
        # Before SQLite touches it: a directory, another program's database, a newer schema... are refused here.
        found = check_path(self.path, write=not self.readonly)
        with self._sqlite_errors("open"):
            self.conn = self._connect_read_only(found.version) if self.readonly else self._connect()
        self.conn.row_factory = sqlite3.Row
        self.conn.execute("PRAGMA foreign_keys=ON")
        if not self.readonly and current_version(self.conn) != SCHEMA_VERSION:
            with self.transaction() as c:  # migrate() re-reads the version under the write lock
                migrate(c)

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions; `transaction()` opens them explicitly.
        conn = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None, check_same_thread=False)
        try:
            self._retry(lambda: conn.execute("PRAGMA journal_mode=WAL"))
        except BaseException:
            conn.close()
            raise
        return conn

    def _connect_read_only(self, version: int) -> sqlite3.Connection:
        """The file in SQLite's read-only mode; an older schema is read from a migrated copy in memory."""
        conn = connect_read_only(self.path, self.busy_timeout_s)
        if version == SCHEMA_VERSION:
            return conn
        # Reading must not upgrade the file (another cdx may still use it): upgrade a copy instead.
        copy = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
        conn.backup(copy)
        conn.close()
        copy.execute("BEGIN")
        migrate(copy)
        copy.execute("COMMIT")
        return copy

    # -- plumbing -------------------------------------------------------------------------------

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> KnowledgeBase:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @property
    def version(self) -> int:
        return current_version(self.conn)

    def _retry(self, fn):
        for attempt in range(self.retries + 1):
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) and "busy" not in str(e) or attempt == self.retries:
                    raise
                time.sleep(min(2.0, 0.05 * 2**attempt) * (0.5 + random.random()))
                log.debug("knowledge base %s busy (attempt %d): %s", self.path, attempt + 1, e)

    @contextlib.contextmanager
    def _sqlite_errors(self, doing: str) -> Iterator[None]:
        """SQLite errors that the file or the machine caused (full, read-only, locked) as one-line user errors."""
        try:
            yield
        except sqlite3.Error as e:
            err = self._user_error(e, doing)
            if err is None:
                raise
            raise err from e

    def _user_error(self, e: sqlite3.Error, doing: str, then: str = "") -> KnowledgeBaseError | None:
        cause = environment_cause(e)
        if cause is None:
            return None  # a bad statement is a bug in cdx: keep the traceback
        if cause == LOCKED:
            return KnowledgeBaseBusy(
                f"could not {doing} the knowledge base {self.path}: {cause} past knowledge.busy_timeout_s="
                f"{self.busy_timeout_s:g} and {self.retries} retries (SQLite: {e}){then}")
        return KnowledgeBaseError(f"could not {doing} the knowledge base {self.path}: {cause} (SQLite: {e}){then}")

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: committed when the block ends, rolled back if it raises.

        Nested blocks join the outermost one, so a caller can make several writes (each its own
        transaction when alone) land together or not at all. A failure anywhere, the COMMIT
        included (a full disk), leaves nothing of the block in the file.
        """
        if self.readonly:
            raise RuntimeError(f"{self.path} was opened read-only: writing to it is a bug in the caller")
        if self._depth:
            self._depth += 1
            try:
                yield self.conn
            finally:
                self._depth -= 1
            return
        with self._sqlite_errors("write to"):
            self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))
        self._depth = 1
        try:
            yield self.conn
            self._retry(lambda: self.conn.execute("COMMIT"))
        except BaseException as e:
            if self.conn.in_transaction:  # SQLite may have rolled back already (e.g. on a full disk)
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            err = self._user_error(e, "write to", "; nothing of this write was kept") \
                if isinstance(e, sqlite3.Error) else None
            if err is None:
                raise
            raise err from e
        finally:
            self._depth = 0

    def _one(self, sql: str, args: tuple = ()) -> dict | None:
        with self._sqlite_errors("read"):
            row = self.conn.execute(sql, args).fetchone()
        return dict(row) if row else None

    def _all(self, sql: str, args: tuple = ()) -> list[dict]:
        with self._sqlite_errors("read"):
            return [dict(r) for r in self.conn.execute(sql, args).fetchall()]

    # -- writes ---------------------------------------------------------------------------------

    def upsert_pair(self, fingerprint: str, label: str, description: dict) -> int:
        """The pair's id, adding it on first sight."""
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO pairs (fingerprint, label, description, created_at) VALUES (?, ?, ?, ?)",
                (fingerprint, label, json.dumps(description, sort_keys=True, default=str), now()),
            )
            return c.execute("SELECT id FROM pairs WHERE fingerprint=?", (fingerprint,)).fetchone()[0]

    def add_run(self, kind: str, pair_id: int | None = None, command: str | None = None, config: dict | None = None,
                git_commit: str | None = None, run_dir: str | Path | None = None, record_key: str | None = None) -> int:
        """A run's row; `record_key` (the run folder's identity) makes a second row of the same run impossible."""
        with self.transaction() as c:
            cur = c.execute(
                "INSERT INTO runs (pair_id, kind, command, config, git_commit, run_dir, created_at, record_key) "
                "VALUES (?,?,?,?,?,?,?,?)",
                (pair_id, kind, command, json.dumps(config, default=str) if config is not None else None, git_commit,
                 str(run_dir) if run_dir else None, now(), record_key),
            )
            return _row_id(cur)

    def recorded_run(self, pair_id: int, record_key: str, kind: str, run_dir: str | Path | None = None) -> dict | None:
        """The run recorded before under `record_key` on this pair (or, before keys existed, from `run_dir`)."""
        return self._one("SELECT * FROM runs WHERE pair_id=? AND (record_key=? OR (record_key IS NULL AND kind=? "
                         "AND run_dir=?)) ORDER BY id LIMIT 1",
                         (pair_id, record_key, kind, str(run_dir) if run_dir else None))

    def run_id_for(self, run_dir: str | Path) -> int | None:
        """The id of the run recorded from `run_dir` (the first, if several), or None."""
        row = self._one("SELECT id FROM runs WHERE run_dir=? ORDER BY id LIMIT 1", (str(run_dir),))
        return None if row is None else int(row["id"])

    def runs_under(self, run_id: int | None, folder: str | Path) -> set[int]:
        """Run `run_id` and every run recorded from a folder inside `folder` (a pipeline and its sub-runs)."""
        rows = self._all("SELECT id FROM runs WHERE id=? OR run_dir LIKE ?", (run_id, f"{folder}/%"))
        return {int(r["id"]) for r in rows}

    def findings_touched_by(self, run_ids: set[int]) -> list[int]:
        """Ids of the findings whose status history names one of `run_ids`, oldest first."""
        if not run_ids:
            return []
        marks = ",".join("?" * len(run_ids))
        rows = self._all(f"SELECT DISTINCT finding_id FROM finding_history WHERE run_id IN ({marks}) "
                         "ORDER BY finding_id", tuple(sorted(run_ids)))
        return [int(r["finding_id"]) for r in rows]

    def upsert_hypothesis(self, pair_id: int, key: str, statement: str, kind: str | None = None,
                          direction: str | None = None, cluster: Any = None, checker: dict | None = None,
                          parent_id: int | None = None, run_id: int | None = None) -> int:
        """The hypothesis's id; the same claim (same `key`) on the same pair is one row across runs."""
        t = now()
        with self.transaction() as c:
            c.execute(
                "INSERT OR IGNORE INTO hypotheses (pair_id, key, statement, kind, direction, cluster, checker, parent_id, "
                "run_id, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (pair_id, key, statement, kind, direction, None if cluster is None else str(cluster),
                 json.dumps(checker, sort_keys=True) if checker is not None else None, parent_id, run_id, t, t),
            )
            return c.execute("SELECT id FROM hypotheses WHERE pair_id=? AND key=?", (pair_id, key)).fetchone()[0]

    def set_hypothesis_status(self, hypothesis_id: int, status: str) -> None:
        _check(status, HYPOTHESIS_STATUSES, "hypothesis status")
        with self.transaction() as c:
            c.execute("UPDATE hypotheses SET status=?, updated_at=? WHERE id=?", (status, now(), hypothesis_id))

    def add_validation(self, hypothesis_id: int, result: FindingRecord, purpose: str, run_id: int | None = None,
                       omit: frozenset[str] = frozenset()) -> int:
        """One statistical test of a hypothesis: its counts, rates, CIs, p, q and verdict in columns; the
        rest of the record (statement, checker, reason, ...: the fields it was given, not `omit`) as JSON in `details`."""
        _check(purpose, PURPOSES, "validation purpose")
        r = result
        ci = [_pair(x) for x in (r.rate_s_ci, r.rate_c_ci, r.effect_ci)]
        columns = {*VALIDATION_FIELDS, "rate_s_ci", "rate_c_ci", "effect_ci", "validated", "evidence"}
        details = r.model_dump(exclude=columns | set(omit), exclude_unset=True)  # what the record holds, no defaults
        row = (hypothesis_id, run_id, purpose, r.n_s, r.k_s, r.n_c, r.k_c, r.rate_s, r.rate_c, *ci[0], *ci[1],
               r.effect, *ci[2], r.p, r.q, int(r.validated), json.dumps(details, default=str), now())
        with self.transaction() as c:
            cur = c.execute(f"INSERT INTO validations (hypothesis_id, run_id, purpose, n_s, k_s, n_c, k_c, rate_s, rate_c, "
                            f"rate_s_ci_low, rate_s_ci_high, rate_c_ci_low, rate_c_ci_high, effect, effect_ci_low, "
                            f"effect_ci_high, p, q, validated, details, created_at) VALUES ({','.join('?' * len(row))})", row)
            return _row_id(cur)

    def add_finding(self, hypothesis_id: int, reason: str, run_id: int | None = None, validation_id: int | None = None,
                    evidence: Sequence[Evidence] | None = None, run_dir: str | Path | None = None) -> int:
        """A validated hypothesis becomes a finding (status `validated`); an existing one is returned unchanged."""
        with self.transaction() as c:
            old = c.execute("SELECT id FROM findings WHERE hypothesis_id=?", (hypothesis_id,)).fetchone()
            if old:
                return old[0]
            h = c.execute("SELECT pair_id, statement FROM hypotheses WHERE id=?", (hypothesis_id,)).fetchone()
            if h is None:
                raise KeyError(f"no hypothesis with id {hypothesis_id} in {self.path}")
            t = now()
            fid = _row_id(c.execute("INSERT INTO findings (hypothesis_id, pair_id, statement, status, created_at, "
                                    "updated_at) VALUES (?,?,?,?,?,?)", (hypothesis_id, h[0], h[1], "validated", t, t)))
            self._history(c, fid, "validated", reason, run_id, validation_id, None)
            self._evidence(c, fid, validation_id, evidence or [], run_dir)
            return fid

    def add_status(self, finding_id: int, status: str, reason: str, run_id: int | None = None,
                   validation_id: int | None = None, related_finding_id: int | None = None,
                   evidence: Sequence[Evidence] | None = None, run_dir: str | Path | None = None) -> None:
        """Append to a finding's status history (replicated, not_replicated, refined_into, rejected, validated)."""
        _check(status, FINDING_STATUSES, "finding status")
        if status == "refined_into" and related_finding_id is None:
            raise ValueError("status refined_into needs related_finding_id (the narrower finding)")
        with self.transaction() as c:
            if c.execute("SELECT 1 FROM findings WHERE id=?", (finding_id,)).fetchone() is None:
                raise KeyError(f"no finding with id {finding_id} in {self.path}")
            self._history(c, finding_id, status, reason, run_id, validation_id, related_finding_id)
            c.execute("UPDATE findings SET status=?, updated_at=? WHERE id=?", (status, now(), finding_id))
            self._evidence(c, finding_id, validation_id, evidence or [], run_dir)

    @staticmethod
    def _history(c, fid, status, reason, run_id, validation_id, related) -> None:
        c.execute("INSERT INTO finding_history (finding_id, status, reason, run_id, validation_id, related_finding_id, "
                  "created_at) VALUES (?,?,?,?,?,?,?)", (fid, status, reason, run_id, validation_id, related, now()))

    @staticmethod
    def _evidence(c, fid, validation_id, evidence: Sequence[Evidence], run_dir) -> None:
        c.executemany(
            "INSERT INTO evidence (finding_id, validation_id, run_dir, record_id, model, prompt, text) VALUES (?,?,?,?,?,?,?)",
            [(fid, validation_id, str(run_dir) if run_dir else (e.model_extra or {}).get("run_dir"), e.id, e.model,
              e.prompt, e.text) for e in evidence],
        )

    # -- reads ----------------------------------------------------------------------------------

    def pair(self, fingerprint: str) -> dict | None:
        return self._one("SELECT * FROM pairs WHERE fingerprint=?", (fingerprint,))

    def hypothesis(self, hypothesis_id: int) -> KBHypothesis | None:
        h = self._one("SELECT * FROM hypotheses WHERE id=?", (hypothesis_id,))
        return None if h is None else KBHypothesis.model_validate(h)

    def findings(self, pair: str | int | None = None, status: str | list[str] | None = None,
                 text: str | None = None, limit: int | None = None, pair_id: int | None = None) -> list[KBFinding]:
        """Findings, newest first. `pair`: id, fingerprint (or a prefix of it) or a substring of its label;
        `pair_id`: exactly that pair (for programs)."""
        where: list[str] = []
        args: list[int | str] = []
        if pair_id is not None:
            where.append("p.id = ?")
            args.append(int(pair_id))
        if pair is not None:
            where.append("(p.id = ? OR p.fingerprint LIKE ? OR p.label LIKE ?)")
            args += [_int_or(pair), f"{pair}%", f"%{pair}%"]
        if status:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                _check(s, FINDING_STATUSES, "finding status")
            where.append(f"f.status IN ({','.join('?' * len(statuses))})")
            args += statuses
        if text:
            where.append("(f.statement LIKE ? OR h.cluster LIKE ?)")
            args += [f"%{text}%", f"%{text}%"]
        sql = ("SELECT f.id, f.statement, f.status, f.created_at, f.updated_at, f.hypothesis_id, h.kind, h.direction, "
               "h.cluster, h.checker, p.id AS pair_id, p.fingerprint, p.label AS pair, "
               "(SELECT COUNT(*) FROM finding_history fh WHERE fh.finding_id=f.id) AS n_history "
               "FROM findings f JOIN hypotheses h ON h.id=f.hypothesis_id JOIN pairs p ON p.id=f.pair_id"
               + (" WHERE " + " AND ".join(where) if where else "") + " ORDER BY f.id DESC"
               + (f" LIMIT {int(limit)}" if limit else ""))
        return [KBFinding.model_validate(r) for r in self._all(sql, tuple(args))]

    def finding(self, finding_id: int) -> KBFindingDetail:
        """One finding with its hypothesis, status history (oldest first), validations and evidence."""
        f = self._one("SELECT * FROM findings WHERE id=?", (finding_id,))
        if f is None:
            n = self.conn.execute("SELECT COUNT(*) FROM findings").fetchone()[0]
            raise UnknownFinding(f"no finding with id {finding_id} in {self.path} ({n} findings; list them with "
                                 "task=findings)")
        hid = f["hypothesis_id"]
        pair = self._one("SELECT id, fingerprint, label FROM pairs WHERE id=?", (f["pair_id"],))
        history = self._all("SELECT h.*, r.kind AS run_kind, r.run_dir FROM finding_history h "
                            "LEFT JOIN runs r ON r.id=h.run_id WHERE finding_id=? ORDER BY h.id", (finding_id,))
        validations = self._all("SELECT * FROM validations WHERE hypothesis_id=? ORDER BY id", (hid,))
        evidence = self._all("SELECT * FROM evidence WHERE finding_id=? ORDER BY id", (finding_id,))
        return KBFindingDetail(**f, hypothesis=self.hypothesis(hid), pair=None if pair is None else KBPair(**pair),
                               history=[KBHistoryEntry(**h) for h in history],
                               validations=[KBValidation(**v) for v in validations],
                               evidence=[KBEvidence(**e) for e in evidence])

    def finding_status(self, hypothesis_id: int) -> tuple[int, str] | None:
        """(id, status) of the finding a hypothesis became, or None while it is none."""
        row = self._one("SELECT id, status FROM findings WHERE hypothesis_id=?", (hypothesis_id,))
        return None if row is None else (int(row["id"]), str(row["status"]))

    def counts(self) -> dict:
        """Rows per table (for summaries and the concurrency test)."""
        tables = ("pairs", "runs", "hypotheses", "validations", "findings", "finding_history", "evidence")
        return {t: self.conn.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0] for t in tables}

    def integrity(self) -> str:
        return self.conn.execute("PRAGMA integrity_check").fetchone()[0]

    # -- file-hash cache (used by pair_fingerprint) ----------------------------------------------

    def cached_hash(self, path: str, size: int, mtime_ns: int) -> str | None:
        row = self.conn.execute("SELECT sha256 FROM file_hashes WHERE path=? AND size=? AND mtime_ns=?",
                                (path, size, mtime_ns)).fetchone()
        return row[0] if row else None

    def store_hash(self, path: str, size: int, mtime_ns: int, sha256: str) -> None:
        with self.transaction() as c:
            c.execute("INSERT OR REPLACE INTO file_hashes VALUES (?,?,?,?)", (path, size, mtime_ns, sha256))


def open_knowledge(settings, *, readonly: bool = False) -> KnowledgeBase | None:
    """The knowledge base conf/knowledge describes (`enabled`, `path`, `busy_timeout_s`, `retries`), or None if disabled.

    `readonly`: for commands that only read (task=findings): nothing is created or changed.
    """
    d = dict(settings or {})
    unknown = set(d) - {"enabled", "path", "busy_timeout_s", "retries"}
    if unknown:
        raise CdxUserError(f"unknown knowledge option(s) {sorted(unknown)}; valid: enabled, path, busy_timeout_s, "
                           "retries")
    if not d.get("enabled", True):
        return None
    return KnowledgeBase(d.get("path"), d.get("busy_timeout_s", 30.0), d.get("retries", 8), readonly=readonly)


def _check(value: str, valid: tuple, what: str) -> None:
    if value not in valid:
        raise CdxUserError(f"{what} {value!r} is not valid; use one of {valid}")


def _pair(ci) -> tuple:
    if ci is None:
        return (None, None)
    if not isinstance(ci, (list, tuple)) or len(ci) != 2:
        raise ValueError(f"a confidence interval must be [low, high]; got {ci!r}")
    return (ci[0], ci[1])


def _row_id(cur: sqlite3.Cursor) -> int:
    """The id SQLite gave the row an INSERT just added."""
    assert cur.lastrowid is not None  # set by every successful INSERT
    return cur.lastrowid


def _int_or(x) -> int:
    try:
        return int(x)
    except (TypeError, ValueError):
        return -1


__all__ = ["KnowledgeBase", "SCHEMA_VERSION", "default_path", "open_knowledge"]
