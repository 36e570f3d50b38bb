"""Resume by record id: what is done is the set of valid record ids on disk, never a line count.

    log = RecordLog(out / "generations.jsonl")
    done = log.load()                        # id -> record; corrupt lines moved aside, duplicates dropped
    todo = log.missing(expected_ids)         # exactly the ids still to make
    with log.writer() as w: w.write(...)     # append the new records
    log.finalize(expected_ids)               # rewrite in canonical order when needed

A corrupt line in the middle is copied to `<file>.corrupt` (nothing is silently dropped) and its
record is made again, so the file ends with every expected id exactly once, in order.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

from cdx.io.jsonl import JsonlWriter, atomic_write_bytes, dumps_line, scan_records, write_records
from cdx.io.records import invalid_records

log = logging.getLogger(__name__)


class RecordLog:
    """One JSONL records file of a run, keyed by `key` (default "id")."""

    def __init__(self, path: str | Path, key: str = "id", kind: str | None = None):
        self.path, self.key, self.kind = Path(path), key, kind
        """`kind` (decode, score, search): records that do not fit its schema count as corrupt."""
        self.done: dict[str | int, dict] = {}
        self._order: list = []
        """Ids in file order, as last loaded."""
        self._clean = True
        """The file holds each id once, no corrupt line: finalize may skip its rewrite."""

    def load(self, set_aside: bool = True) -> dict[str | int, dict]:
        """Valid records on disk by id (the first of duplicates kept); corrupt lines copied aside."""
        self.done, self._clean, self._order = {}, True, []
        if not self.path.is_file():
            return self.done
        scan = scan_records(self.path)
        if self.kind:
            bad = {i for i, _ in invalid_records(self.kind, scan.records)}
            if bad:  # valid JSON, damaged record: set aside and made again like a broken line
                scan.corrupt += [(0, dumps_line(r)[:-1]) for i, r in enumerate(scan.records) if i in bad]
                scan.records = [r for i, r in enumerate(scan.records) if i not in bad]
        if scan.corrupt and set_aside:
            self._set_aside([raw for _, raw in scan.corrupt])
            log.warning("%s: %d corrupt line(s) (line %s) copied to %s; their records are made again",
                        self.path, len(scan.corrupt), ", ".join(str(n) if n else "?" for n, _ in scan.corrupt[:10]),
                        self.corrupt_path)
        dups = 0
        for rec in scan.records:
            rid = rec.get(self.key)
            self._order.append(rid)
            if not isinstance(rid, str | int) or rid in self.done:
                dups += 1
                continue
            self.done[rid] = rec
        if dups:
            log.warning("%s: %d duplicate or id-less record(s) dropped", self.path, dups)
        self._clean = not scan.corrupt and not dups and not scan.partial_tail.strip()
        return self.done

    @property
    def corrupt_path(self) -> Path:
        return self.path.with_name(self.path.name + ".corrupt")

    def _set_aside(self, lines: list[bytes]) -> None:
        old = self.corrupt_path.read_bytes() if self.corrupt_path.is_file() else b""
        atomic_write_bytes(self.corrupt_path, old + b"".join(raw + b"\n" for raw in lines))

    def missing(self, expected: Sequence[str]) -> list[str]:
        return [i for i in expected if i not in self.done]

    def writer(self) -> JsonlWriter:
        """Appends to the file (after cutting a partial last line); records written are added to `done`."""
        return _TrackingWriter(self)

    def finalize(self, expected: Sequence[str]) -> list[dict]:
        """The records in `expected` order (unexpected ids after them); the file rewritten if not already so."""
        self.load(set_aside=False)  # load() already copied them; the rewrite below drops them
        order = {rid: n for n, rid in enumerate(expected)}
        records = sorted(self.done.values(), key=lambda r: (order.get(r[self.key], len(order)), str(r[self.key])))
        extra = [r[self.key] for r in records if r[self.key] not in order]
        if extra:
            log.warning("%s: %d record(s) with ids this run does not expect (e.g. %s) kept at the end",
                        self.path, len(extra), extra[0])
        if not self._clean or self._order != [r[self.key] for r in records]:
            write_records(self.path, records)
        return records


class _TrackingWriter(JsonlWriter):
    def __init__(self, log_: RecordLog):
        super().__init__(log_.path)
        self._log = log_

    def write(self, records) -> None:
        records = list(records)
        super().write(records)
        for r in records:
            self._log.done.setdefault(r[self._log.key], r)
