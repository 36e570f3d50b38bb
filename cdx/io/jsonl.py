"""JSONL records and atomic files: the only code in cdx that writes or parses run records.

A record is one JSON object on one line. Lines are split on b"\\n" only: `str.splitlines()` also
splits on U+2028, U+2029, U+0085, \\x1c-\\x1e, \\r and \\v, which may appear raw inside JSON strings,
and would cut a record in two (it then vanishes as "corrupt"). As a second guard, the writer
escapes U+2028, U+2029 and U+0085 (JSON's `\\uXXXX`), so other tools that split on them (editors,
JavaScript, pandas) read the same records. Control characters are escaped by `json.dumps` itself.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

log = logging.getLogger(__name__)

# Characters some line splitters treat as line ends; json.dumps(ensure_ascii=False) leaves them raw.
_LINE_BREAKS = {"\u2028": "\\u2028", "\u2029": "\\u2029", "\u0085": "\\u0085"}


def dumps_line(record: dict) -> bytes:
    """One record as one UTF-8 line ending in b"\\n", with no other line-break character in it."""
    text = json.dumps(record, ensure_ascii=False, default=str)
    for raw, escaped in _LINE_BREAKS.items():
        if raw in text:  # only possible inside a JSON string, where the escape means the same
            text = text.replace(raw, escaped)
    return text.encode("utf-8") + b"\n"


@dataclass
class RecordScan:
    """What a JSONL file holds: its records, and the lines that are not records."""

    records: list[dict]
    corrupt: list[tuple[int, bytes]] = field(default_factory=list)
    """(1-based line number, raw bytes) of complete lines that are not a JSON object."""
    partial_tail: bytes = b""
    """A last line without its newline (a kill mid-write); never counted as a record."""


def scan_records(path: str | Path) -> RecordScan:
    """Parse every line of `path`; keep what is not a record aside instead of failing."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path} does not exist")
    data = path.read_bytes()
    lines = data.split(b"\n")
    tail = lines.pop()  # b"" when the file ends with a newline
    scan = RecordScan([], partial_tail=tail)
    for n, raw in enumerate(lines, 1):
        if not raw.strip():
            continue
        try:
            rec = json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            # not UTF-8, not JSON, an integer of more digits than Python converts (ValueError), or
            # nesting deeper than the parser's stack (RecursionError): not a record, set aside
            rec = None
        if isinstance(rec, dict):
            scan.records.append(rec)
        else:
            scan.corrupt.append((n, raw))
    return scan


def read_records(path: str | Path) -> list[dict]:
    """All complete records of a JSONL file; a corrupt line or a cut-off last line is skipped with a warning."""
    scan = scan_records(path)
    if scan.corrupt:
        log.warning("%s: skipping %d corrupt line(s) (line %s)", path, len(scan.corrupt),
                    ", ".join(str(n) for n, _ in scan.corrupt[:10]))
    if scan.partial_tail.strip():
        log.warning("%s: ignoring an incomplete last line (%d bytes)", path, len(scan.partial_tail))
    return scan.records


class JsonlWriter:
    """Appends one JSON record per line and flushes it to disk, so a killed run keeps every record."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        _drop_partial_last_line(self.path)
        self._f = self.path.open("ab")

    def write(self, records: Iterable[dict]) -> None:
        for r in records:
            self._f.write(dumps_line(r))
        self._f.flush()
        os.fsync(self._f.fileno())

    def close(self) -> None:
        self._f.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def write_records(path: str | Path, records: Iterable[dict]) -> None:
    """Replace `path` with exactly these records, atomically."""
    atomic_write_bytes(path, b"".join(dumps_line(r) for r in records))


def _drop_partial_last_line(path: Path) -> None:
    """A kill mid-write can leave a line without its newline: cut it before appending."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if not data.endswith(b"\n"):
        path.write_bytes(data[: data.rfind(b"\n") + 1])


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write to a temporary file in the same folder, fsync, then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: str | Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def atomic_save_npy(path: str | Path, array) -> None:
    """`numpy.save`, atomically."""
    import io

    import numpy as np

    buf = io.BytesIO()
    np.save(buf, array)
    atomic_write_bytes(path, buf.getvalue())
