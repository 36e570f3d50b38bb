"""What is at a knowledge-base path, checked in milliseconds before any work: `check_path(path, write=...)`.

A task that records (analyze, pipeline, benchmark) or reads (findings) calls it through the config
check (`check_config`, run by `cdx.config.validate_config` before any model loads) and again when
it opens the file, so a bad path costs a second, not an analysis. It reads, never writes: the file
is opened with SQLite's `mode=ro` (a foreign database is left byte for byte as it was).
"""

from __future__ import annotations

import contextlib
import functools
import os
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote

from pydantic import BaseModel, ConfigDict

from cdx.knowledge._errors import LOCKED, KnowledgeBaseError, KnowledgeBaseMissing, environment_cause
from cdx.knowledge._schema import SCHEMA_VERSION, migrate

SQLITE_MAGIC = b"SQLite format 3\x00"
HEADER_BYTES = 100  # an SQLite file starts with a 100-byte header; anything shorter is no database
OTHER_PATH = "point knowledge.path at another file"
WRITES = ("analyze", "pipeline", "benchmark")
"""Tasks that record into the knowledge base (benchmark through its analysis runs)."""
READS = ("findings",)


class KnowledgeFile(BaseModel):
    """What a knowledge-base path holds, as far as opening it is concerned."""

    model_config = ConfigDict(frozen=True)

    path: Path
    """The path, with ~ expanded."""
    exists: bool
    """A file is there (False: the first write creates it)."""
    version: int = 0
    """Its schema version; 0 for no file, an empty file or an SQLite file without tables."""
    problems: tuple[str, ...] = ()
    """One line per reason it cannot be used as asked; empty when it can."""
    missing: bool = False
    """Reading was asked and there is no database yet (the only problem, when set)."""


def check_path(path: str | Path, *, write: bool) -> KnowledgeFile:
    """The file at `path` if it can be opened (`write`: and written); else raise one line per problem."""
    found = inspect_path(path, write=write)
    if found.problems:
        cls = KnowledgeBaseMissing if found.missing else KnowledgeBaseError
        raise cls("; ".join(found.problems) if len(found.problems) == 1 else
                  f"knowledge base {found.path}:\n  " + "\n  ".join(found.problems))
    return found


def inspect_path(path: str | Path, *, write: bool) -> KnowledgeFile:
    """What is at `path`, with every problem found (nothing is created or changed)."""
    p = Path(path).expanduser()
    if p.is_dir():
        return _bad(p, True, f"knowledge.path={p} is a directory; give a file in it, e.g. {p / 'knowledge.sqlite'}")
    if not p.exists():
        return _absent(p, write)
    problems = _permissions(p, write)
    if problems:
        return _bad(p, True, *problems)
    return _contents(p)


def _bad(p: Path, exists: bool, *problems: str) -> KnowledgeFile:
    return KnowledgeFile(path=p, exists=exists, problems=problems)


def _absent(p: Path, write: bool) -> KnowledgeFile:
    """No file yet: reading finds nothing; writing needs a folder it can create the file in."""
    if p.is_symlink():
        return _bad(p, False, f"knowledge.path={p} is a symbolic link to a missing file ({os.readlink(p)})")
    if not write:
        return KnowledgeFile(path=p, exists=False, missing=True, problems=(
            f"no knowledge base at {p} yet: run task=analyze (or task=pipeline) first, which records its "
            "findings there, or point knowledge.path at an existing one",))
    ancestor = next(a for a in p.parents if a.exists())
    if not ancestor.is_dir():
        return _bad(p, False, f"cannot create the knowledge base {p}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        return _bad(p, False, f"cannot create the knowledge base {p}: the folder {ancestor} is not writable; "
                              f"{OTHER_PATH}")
    return KnowledgeFile(path=p, exists=False)


def _permissions(p: Path, write: bool) -> list[str]:
    if not p.is_file():
        return [f"knowledge.path={p} is not a regular file"]
    if not os.access(p, os.R_OK):
        return [f"the knowledge base {p} is not readable (permissions)"]
    if not write:
        return []
    if not os.access(p, os.W_OK):
        return [f"the knowledge base {p} is read-only, and this task records findings into it: make it "
                f"writable, {OTHER_PATH}, or knowledge.enabled=false"]
    if not os.access(p.parent, os.W_OK | os.X_OK):  # SQLite writes its -wal and -shm files beside the database
        return [f"the folder of the knowledge base {p} is not writable, and SQLite keeps its journal there: "
                f"{OTHER_PATH}"]
    return []


def _contents(p: Path) -> KnowledgeFile:
    """An existing, accessible file: empty, a cdx database of a known version, or why not."""
    with p.open("rb") as f:
        head = f.read(HEADER_BYTES)
    if not head:
        return KnowledgeFile(path=p, exists=True)  # an empty file is an empty SQLite database
    if not head.startswith(SQLITE_MAGIC) or len(head) < HEADER_BYTES:
        return _bad(p, True, f"{p} is not an SQLite database (it starts with {head[:16]!r}), so not a cdx "
                             f"knowledge base; nothing was changed: {OTHER_PATH}")
    size, declared = p.stat().st_size, _declared_size(head)
    if declared and size < declared and not _wal_pending(p):
        return _bad(p, True, f"{p} is a truncated SQLite file ({size} bytes of the {declared} its header declares): "
                             f"restore it from a backup or {OTHER_PATH}")
    try:
        with contextlib.closing(connect_read_only(p)) as conn:
            return _schema_of(p, conn)
    except sqlite3.DatabaseError as e:
        if environment_cause(e) == LOCKED:
            return _bad(p, True, f"the knowledge base {p} cannot be read: {LOCKED} (SQLite: {e}); try again later")
        return _bad(p, True, f"{p} is a damaged SQLite file (SQLite: {e}); restore it from a backup or {OTHER_PATH}")


def _declared_size(head: bytes) -> int | None:
    """Bytes the SQLite header says the file holds (None when the header's page count is not valid).

    SQLite reads pages past the end of a truncated file as zeros, and its quick_check misses a cut
    inside an index page, so a cut file is caught by its size.
    """
    page_size = int.from_bytes(head[16:18], "big")
    pages = int.from_bytes(head[28:32], "big")
    valid = head[24:28] == head[92:96] and pages > 0  # "in-header database size" is valid only then
    return pages * (65536 if page_size == 1 else page_size) if valid else None


def _wal_pending(p: Path) -> bool:
    """A write-ahead log with frames: the file may lag behind its header until the next checkpoint."""
    wal = p.with_name(p.name + "-wal")
    return wal.is_file() and wal.stat().st_size > 0


def connect_read_only(p: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """SQLite's read-only mode: the file is never written, and a missing file is an error, not created.

    A WAL-mode file in a folder nobody may write to cannot get its shared-memory file, so it is read
    as immutable there (no process can be writing to it: a writer needs that folder too).
    """
    uri = f"file:{quote(str(p.resolve()))}?mode=ro"
    conn = sqlite3.connect(uri, uri=True, timeout=timeout, isolation_level=None, check_same_thread=False)
    if os.access(p.parent, os.W_OK):
        return conn
    try:
        conn.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()
        return conn
    except sqlite3.OperationalError:
        conn.close()
        return sqlite3.connect(uri + "&immutable=1", uri=True, timeout=timeout, isolation_level=None,
                               check_same_thread=False)


def _schema_of(p: Path, conn: sqlite3.Connection) -> KnowledgeFile:
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")}
    if not tables:
        return KnowledgeFile(path=p, exists=True)
    if "schema_version" not in tables:
        shown = ", ".join(sorted(tables)[:6]) + (", ..." if len(tables) > 6 else "")
        return _bad(p, True, f"{p} is an SQLite database of another program (tables: {shown}), not a cdx knowledge "
                             f"base; nothing was changed: {OTHER_PATH}")
    version = _version(conn)
    if version > SCHEMA_VERSION:
        return _bad(p, True, f"{p} has knowledge-base schema version {version}, newer than this cdx supports "
                             f"(up to {SCHEMA_VERSION}): update cdx, or {OTHER_PATH}")
    absent = _missing_parts(conn, version, tables)
    if absent:
        return _bad(p, True, f"{p} is a damaged cdx knowledge base (schema version {version}; missing: "
                             f"{', '.join(absent)}): restore it from a backup or {OTHER_PATH}")
    check = conn.execute("PRAGMA quick_check(1)").fetchone()[0]
    if check != "ok":
        return _bad(p, True, f"{p} is a damaged cdx knowledge base (SQLite quick_check: {check}): restore it from a "
                             f"backup or {OTHER_PATH}")
    return KnowledgeFile(path=p, exists=True, version=version)


def _version(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT MAX(version) FROM schema_version").fetchone()
    if row[0] is not None and not isinstance(row[0], int):
        raise sqlite3.DatabaseError(f"schema_version holds {row[0]!r}, not a version number")
    return int(row[0] or 0)


def _missing_parts(conn: sqlite3.Connection, version: int, tables: set[str]) -> list[str]:
    """Tables and columns that version `version` of the schema has and this file lacks."""
    expected = expected_columns(version)
    if version == 0 and tables - {"schema_version"}:  # versions are written with the tables they describe
        return ["its schema version"]
    out = [f"table {t}" for t in sorted(set(expected) - tables)]
    for t in sorted(set(expected) & tables):
        have = {r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')}
        out += [f"column {t}.{c}" for c in sorted(expected[t] - have)]
    return out


@functools.cache
def expected_columns(version: int) -> dict[str, frozenset[str]]:
    """{table: columns} of schema `version`, read from a database the migrations build in memory."""
    conn = sqlite3.connect(":memory:", isolation_level=None)
    try:
        migrate(conn, target=version)
        names = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        return {t: frozenset(r[1] for r in conn.execute(f'PRAGMA table_info("{t}")')) for t in names}
    finally:
        conn.close()


def check_config(cfg: Mapping, problems: list[str]) -> None:
    """The config check (cdx.config.validate_config): the file the task will open, checked before any work."""
    task = cfg.get("task")
    name = task.get("name") if isinstance(task, Mapping) else None
    knowledge = cfg.get("knowledge")
    if name not in (*WRITES, *READS) or not isinstance(knowledge, Mapping) or not knowledge.get("enabled", True):
        return
    try:
        path = knowledge.get("path")
    except Exception:  # noqa: BLE001 - an unresolvable interpolation is the options check's to report
        return
    if path is not None and not isinstance(path, str):
        return  # a wrong type is the options check's to report
    from cdx.knowledge._db import default_path

    found = inspect_path(path if path else default_path(), write=name in WRITES)
    if not found.missing:  # no database yet is no config error: task=findings says so when it opens the file
        problems.extend(found.problems)
