"""What can go wrong with the knowledge-base file: user errors (`cdx: error: ...`, exit 2), never tracebacks."""

from __future__ import annotations

import sqlite3

from cdx.errors import CdxUserError

LOCKED = "it is locked by another process"


class KnowledgeBaseError(CdxUserError):
    """The knowledge base cannot be used as asked: a bad path, not a cdx database, read-only, full, damaged."""


class KnowledgeBaseMissing(KnowledgeBaseError):
    """A read-only command was pointed at a path that holds no knowledge base (nothing is created)."""


class KnowledgeBaseBusy(KnowledgeBaseError):
    """Another process held the write lock past the busy timeout and every retry; nothing was written."""


class UnknownFinding(KnowledgeBaseError, KeyError):
    """No finding with that id. A KeyError too, for callers that look findings up by id."""

    __str__ = Exception.__str__  # KeyError would quote the message


def environment_cause(e: sqlite3.Error) -> str | None:
    """What SQLite's error says about the file or the machine (full, read-only, locked, damaged), or None.

    None means the error is not the environment's doing (a bad statement: a bug in cdx).
    """
    msg = str(e).lower()
    causes = (("locked", LOCKED), ("busy", LOCKED),
              ("disk is full", "the disk is full"), ("readonly", "it is read-only"),
              ("unable to open", "the file cannot be opened"), ("disk i/o", "a disk I/O error"),
              ("not a database", "it is not an SQLite database"), ("malformed", "the file is damaged"))
    return next((cause for key, cause in causes if key in msg), None)
