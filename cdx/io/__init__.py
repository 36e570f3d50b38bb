"""The bottom layer for run data: JSONL records, atomic writes, run identity, lock, resume, readers.

Every task, the analysis and the app read and write run directories through this package:

- `JsonlWriter`, `read_records`, `scan_records`, `write_records`, `dumps_line`: JSONL that survives
  any text (lines split on b"\\n" only; see cdx.io.jsonl).
- `atomic_write_text/json/bytes`, `atomic_save_npy`: whole files replaced atomically.
- `open_run`, `check_rerun`, `RunLock`: run.json identity, the no-rerun and same-settings rules, the
  directory lock (cdx.io.rundir); errors subclass `RunDirError`.
- `RecordLog`: resume by record id (cdx.io.resume).
- `read_run(path, kind=None) -> Run`, `run_kind(path)`: read any run directory (cdx.io.readers).
- `Redactor`: remove secrets from text written or printed (cdx.io.redact).
"""

from cdx.io.jsonl import (
    JsonlWriter,
    RecordScan,
    atomic_save_npy,
    atomic_write_bytes,
    atomic_write_json,
    atomic_write_text,
    dumps_line,
    read_records,
    scan_records,
    write_records,
)
from cdx.io.readers import KIND_FILES, NotARunError, Run, job_folders, read_run, run_kind
from cdx.io.resume import RecordLog
from cdx.io.rundir import (
    EXECUTION_ONLY,
    RunDir,
    RunDirError,
    RunExistsError,
    RunLock,
    RunLockedError,
    RunMismatchError,
    check_rerun,
    differences,
    fingerprint,
    open_run,
    strip_execution_only,
    texts_digest,
)

__all__ = [
    "EXECUTION_ONLY", "KIND_FILES", "JsonlWriter", "NotARunError", "RecordLog", "RecordScan", "Run", "RunDir",
    "RunDirError", "RunExistsError", "RunLock", "RunLockedError", "RunMismatchError", "atomic_save_npy",
    "atomic_write_bytes", "atomic_write_json", "atomic_write_text", "check_rerun", "differences", "dumps_line",
    "fingerprint", "job_folders", "open_run", "read_records", "read_run", "run_kind", "scan_records",
    "strip_execution_only", "texts_digest", "write_records",
]
