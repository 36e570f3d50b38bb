"""Fuzzed knowledge-base files: opening one to read or to write works correctly or raises one KnowledgeBaseError.

Never another exception, and a refused file is left byte for byte as it was. Seeded
(`derandomize=True`), so a failure reproduces; each test asserts how many cases it generated
(about 330 in all, some 10 s of CPU).
"""

from __future__ import annotations

import shutil
import sqlite3
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cdx.knowledge import SCHEMA_VERSION, KnowledgeBase, KnowledgeBaseError, record_analysis
from cdx.knowledge._check import SQLITE_MAGIC, expected_columns
from tests.knowledge import kb_files as kf

SEEDED = settings(derandomize=True, deadline=None, database=None)
NAMES = st.from_regex(r"[a-z_][a-z0-9_]{0,12}", fullmatch=True)


@pytest.fixture(scope="module")
def base(tmp_path_factory) -> tuple[bytes, dict]:
    """A cdx knowledge base with 40 hypotheses (no -wal file): its bytes and its row counts."""
    path = kf.cdx_file(tmp_path_factory.mktemp("base") / "kb.sqlite", n=40)
    with KnowledgeBase(path, readonly=True) as kb:
        return path.read_bytes(), kb.counts()


def _open_both_ways(data: bytes, counts: dict | None = None) -> str:
    """Open a file holding `data` to read, then (a fresh copy) to write; 'ok' or 'refused'. Fails on anything else."""
    outcomes = {_open(data, write, counts) for write in (False, True)}
    return "ok" if outcomes == {"ok"} else "refused"


def _open(data: bytes, write: bool, counts: dict | None) -> str:
    folder = Path(tempfile.mkdtemp(prefix="kbfuzz"))
    try:
        path = folder / "kb.sqlite"
        path.write_bytes(data)
        before = kf.digest(folder)
        try:
            kb = KnowledgeBase(path, busy_timeout_s=1.0, retries=0, readonly=not write)
        except KnowledgeBaseError as e:
            assert str(path) in str(e)
            assert kf.digest(folder) == before  # refused: nothing written
            return "refused"
        with kb:
            _use(kb, write, counts)
        return "ok"
    finally:
        shutil.rmtree(folder)


def _use(kb: KnowledgeBase, write: bool, counts: dict | None) -> None:
    """What the tasks do with an opened file, checked against what it holds."""
    rows = kb.findings()
    for r in rows[:3]:
        assert kb.finding(r.id).statement == r.statement
    if counts is not None:  # an intact copy of the base file must read back exactly
        assert kb.counts() == counts
    if write:
        before = kb.counts()["validations"]
        record_analysis([kf.hypothesis(999)], kb, model=kf.PAIR)
        assert kb.counts()["validations"] == before + 1 and kb.integrity() == "ok"


def test_truncated_cdx_files(base):
    data, counts = base
    seen: list[str] = []

    @settings(SEEDED, max_examples=120)
    @given(cut=st.integers(0, len(data)))
    def check(cut):
        # Cut anywhere: the whole file reads back exactly; any real cut is refused or (an empty file) is fresh.
        seen.append(_open_both_ways(data[:cut], counts if cut == len(data) else None))
        if 0 < cut < len(data):
            assert seen[-1] == "refused", f"a cdx file cut at byte {cut} of {len(data)} was accepted"

    check()
    assert len(seen) >= 100 and "refused" in seen, seen


def test_random_bytes(base):
    seen: list[str] = []

    @settings(SEEDED, max_examples=80)
    @given(blob=st.binary(min_size=1, max_size=8192), magic=st.booleans())
    def check(blob, magic):
        data = SQLITE_MAGIC + blob if magic else blob  # also past the first check: "SQLite format 3" then noise
        seen.append(_open_both_ways(data))
        assert seen[-1] == "refused" or data.startswith(SQLITE_MAGIC)

    check()
    assert len(seen) >= 60 and set(seen) <= {"ok", "refused"}


def _foreign(tables: dict[str, list[str]]) -> bytes:
    with tempfile.TemporaryDirectory() as d:
        conn = sqlite3.connect(Path(d) / "f.sqlite")
        for name, cols in tables.items():
            conn.execute(f'CREATE TABLE "{name}" ({", ".join(f"{c!r} TEXT" for c in cols)})')
            conn.execute(f'INSERT INTO "{name}" VALUES ({", ".join("?" * len(cols))})', ["x"] * len(cols))
        conn.commit()
        conn.close()
        return (Path(d) / "f.sqlite").read_bytes()


def test_foreign_schemas():
    seen: list[str] = []
    ours = st.sampled_from(sorted(expected_columns(SCHEMA_VERSION)))  # names that clash with cdx's tables

    @settings(SEEDED, max_examples=50)
    @given(tables=st.dictionaries(st.one_of(NAMES, ours).filter(lambda n: not n.startswith("sqlite_")),
                                  st.lists(NAMES, min_size=1, max_size=4, unique=True), min_size=1, max_size=5))
    def check(tables):
        seen.append(_open_both_ways(_foreign(tables)))
        # Only a file with cdx's own schema_version table is taken for a cdx database (then: refused as damaged).
        assert seen[-1] == "refused"

    check()
    assert len(seen) >= 40


def test_newer_schema_versions(base):
    data, _ = base
    seen: list[str] = []

    @settings(SEEDED, max_examples=25)
    @given(version=st.integers(SCHEMA_VERSION + 1, 2**62))
    def check(version):
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "kb.sqlite"
            path.write_bytes(data)
            with sqlite3.connect(path) as conn:
                conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (version,))
            conn.close()
            newer = path.read_bytes()
        seen.append(_open_both_ways(newer))
        assert seen[-1] == "refused"

    check()
    assert len(seen) >= 20


def test_cdx_files_with_a_table_or_column_missing(base):
    data, _ = base
    seen: list[str] = []
    parts = [(t, c) for t, cols in sorted(expected_columns(SCHEMA_VERSION).items()) for c in [None, *sorted(cols)]
             if t != "schema_version" or c is None]

    @settings(SEEDED, max_examples=40)
    @given(part=st.sampled_from(parts))
    def check(part):
        table, column = part
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "kb.sqlite"
            path.write_bytes(data)
            conn = sqlite3.connect(path, isolation_level=None)
            conn.execute("PRAGMA foreign_keys=OFF")
            if column is None:
                conn.execute(f"DROP TABLE {table}")
            else:  # rebuild the table without that column (DROP COLUMN refuses keys and indexed columns)
                keep = sorted(expected_columns(SCHEMA_VERSION)[table] - {column})
                conn.execute(f"CREATE TABLE t_new AS SELECT {', '.join(keep)} FROM {table}")
                conn.execute(f"DROP TABLE {table}")
                conn.execute(f"ALTER TABLE t_new RENAME TO {table}")
            conn.close()
            damaged = path.read_bytes()
        seen.append(_open_both_ways(damaged))
        assert seen[-1] == "refused", f"{part} missing was accepted"

    check()
    assert len(seen) >= 40


@pytest.mark.parametrize("version", range(1, SCHEMA_VERSION))
def test_older_versions_are_read_as_they_are_and_upgraded_when_written(tmp_path, version):
    data = kf.older_file(tmp_path / "old.sqlite", version=version).read_bytes()
    assert _open_both_ways(data) == "ok"
