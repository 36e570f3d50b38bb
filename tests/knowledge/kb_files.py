"""Knowledge-base files of every kind a user can point knowledge.path at, for the path and fuzz tests."""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import shutil
import sqlite3
import subprocess
from pathlib import Path

from cdx.knowledge import KnowledgeBase, migrate, record_analysis

PAIR = {"starting": {"path": "tiny-random", "seed": 0}, "comparison": {"path": "tiny-random", "seed": 1}}


def hypothesis(i: int, validated: bool = True, text: str = "I can't.") -> dict:
    """One tested hypothesis as findings.jsonl holds it (each i a different claim: its own cluster)."""
    return {"id": f"h{i}", "statement": f"refuses more on topic {i}", "kind": "refusal", "direction": "gained",
            "cluster": f"topic{i}", "checker": {"type": "feature", "name": "refusal"}, "n_s": 30, "k_s": 2, "n_c": 30,
            "k_c": 20 if validated else 3, "rate_s": 2 / 30, "rate_c": (20 if validated else 3) / 30, "p": 1e-5,
            "q": 1e-5, "validated": validated,
            "evidence": [{"id": f"p{i:05d}-s00", "model": "comparison", "prompt": "Bake?", "text": text}]}


def cdx_file(path: Path, n: int = 3) -> Path:
    """A current cdx knowledge base holding one recorded analysis, everything in the main file (no -wal)."""
    with KnowledgeBase(path) as kb:
        record_analysis([hypothesis(i) for i in range(n)], kb, model=PAIR)
        kb.conn.execute("PRAGMA journal_mode=DELETE")  # checkpoints the WAL into the file and removes it
    return path


def foreign_file(path: Path, clash: bool = True) -> Path:
    """Another program's SQLite database (`clash`: with a table named like one of ours)."""
    conn = sqlite3.connect(path)
    conn.execute(f"CREATE TABLE {'runs' if clash else 'orders'} (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, email TEXT)")
    conn.execute("INSERT INTO customers (email) VALUES ('a@example.org')")
    conn.commit()
    conn.close()
    return path


def newer_file(path: Path, version: int = 99) -> Path:
    cdx_file(path)
    conn = sqlite3.connect(path)
    conn.execute("INSERT INTO schema_version VALUES (?, 'later')", (version,))
    conn.commit()
    conn.close()
    return path


def older_file(path: Path, version: int = 1) -> Path:
    """A knowledge base as schema `version` left it, with one finding."""
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("BEGIN IMMEDIATE")
    migrate(conn, target=version)
    conn.execute("INSERT INTO pairs VALUES (1, 'fp1', 'a vs b', '{}', 't0')")
    conn.execute("INSERT INTO hypotheses (id, pair_id, key, statement, status, created_at, updated_at) "
                 "VALUES (1, 1, 'k1', 'refuses more', 'open', 't0', 't0')")
    conn.execute("INSERT INTO findings VALUES (1, 1, 1, 'refuses more', 'validated', 't0', 't0')")
    conn.execute("COMMIT")
    conn.close()
    return path


def without_table(path: Path, table: str = "evidence") -> Path:
    cdx_file(path)
    conn = sqlite3.connect(path)
    conn.execute(f"DROP TABLE {table}")
    conn.commit()
    conn.close()
    return path


def random_bytes(path: Path, n: int = 4096, seed: int = 0) -> Path:
    path.write_bytes(random.Random(seed).randbytes(n))
    return path


def truncated(path: Path, keep: float = 0.5) -> Path:
    cdx_file(path, n=40)
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path


def digest(folder: Path) -> dict[str, str]:
    """sha256 of every file under `folder`: equal before and after means nothing was written."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@contextlib.contextmanager
def read_only(path: Path):
    """`path` unwritable for this process, also as root (chattr +i; chmod for other users)."""
    if os.geteuid() != 0:
        path.chmod(0o444)
        try:
            yield path
        finally:
            path.chmod(0o644)
        return
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode:
        import pytest

        pytest.skip("running as root without chattr +i: no way to make a file read-only for this process")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)
