"""A run directory's identity, lock and rerun rules.

Every run directory holds `run.json`: the run's kind (decode, score, search, ...), its identity
(the settings that decide its results: pair, decoding without execution-only settings, prompts,
seed, task options) with a fingerprint of it, and its status (running | finished). A task opens
its directory with `open_run(...)`, which

- refuses a directory that already holds a run, unless `resume=true` (`RunExistsError`);
- on resume, refuses when the identity differs, naming every setting that differs
  (`RunMismatchError`); execution-only settings are not part of the identity, so they may differ;
- takes a non-blocking lock, so a second process on the same directory refuses at once, naming
  the holder (`RunLockedError`), and holds it until the task ends.

All three errors subclass `RunDirError`, a user error with a message that says what to do.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import hashlib
import json
import os
import socket
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from filelock import FileLock, Timeout
from pydantic import ValidationError

from cdx.errors import CdxUserError
from cdx.io.jsonl import atomic_write_json
from cdx.io.records import RunInfo

RUN_FILE = "run.json"
LOCK_FILE = ".cdx.lock"
HOLDER_FILE = ".cdx.lock.json"

# Files that mean "a run already wrote here" even without run.json (runs made before run.json existed).
RUN_OUTPUTS = ("generations.jsonl", "scores.jsonl", "bank.jsonl", "state.json", "stats.jsonl", "findings.jsonl",
               "analysis.json", "summary.json")

# Settings that change how fast a run goes, never what it produces: they may differ on resume.
# Not batch_size: each decoder batch draws from a generator seeded by (seed, batch number), so
# another batch_size draws other samples; resuming with it would mix two random streams.
EXECUTION_ONLY = frozenset({
    "parallel", "threads", "num_threads", "timeout", "max_retries", "backoff_initial", "backoff_max",
    "cache", "api_key_env", "progress", "cache_dir", "device", "max_failed_cycles", "top_n",
    "fail_after",  # the scripted assistant's simulated kill
})


class RunDirError(CdxUserError):
    """A run directory cannot be used as asked (a user error: the message says what to do)."""


class RunExistsError(RunDirError, FileExistsError):
    pass


class RunMismatchError(RunDirError):
    pass


class RunLockedError(RunDirError):
    pass


# ---- identity ----------------------------------------------------------------------------------


def strip_execution_only(settings, drop: frozenset[str] = EXECUTION_ONLY):
    """`settings` (nested dicts and lists) without the execution-only keys, at any depth."""
    if isinstance(settings, dict):
        return {k: strip_execution_only(v, drop) for k, v in settings.items() if k not in drop}
    if isinstance(settings, list | tuple):
        return [strip_execution_only(v, drop) for v in settings]
    return settings


def fingerprint(identity: dict) -> str:
    """sha256 of the identity's canonical JSON (sorted keys): equal settings, equal fingerprint."""
    canon = json.dumps(identity, sort_keys=True, ensure_ascii=False, default=str, separators=(",", ":"))
    return hashlib.sha256(canon.encode("utf-8")).hexdigest()


def texts_digest(texts: list[str]) -> str:
    """sha256 of a list of texts (e.g. the loaded prompts): a prompts file edited in place changes it."""
    return hashlib.sha256(json.dumps(list(texts), ensure_ascii=False).encode("utf-8")).hexdigest()


def _flat(d, prefix: str = "") -> dict:
    if isinstance(d, dict) and d:
        out = {}
        for k, v in d.items():
            out.update(_flat(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: d}


def differences(before: dict, now: dict) -> list[str]:
    """`key: before -> now` for every dotted setting that differs (missing on one side: `<unset>`)."""
    a, b = _flat(before), _flat(now)
    out = []
    for key in sorted(set(a) | set(b)):
        va, vb = a.get(key, "<unset>"), b.get(key, "<unset>")
        if json.dumps(va, sort_keys=True, default=str) != json.dumps(vb, sort_keys=True, default=str):
            out.append(f"{key}: {_short(va)} -> {_short(vb)}")
    return out


def _short(v, n: int = 60) -> str:
    s = v if isinstance(v, str) and v == "<unset>" else json.dumps(v, ensure_ascii=False, default=str)
    return s if len(s) <= n else s[: n - 3] + "..."


# ---- what a directory holds --------------------------------------------------------------------


def read_run_file(folder: str | Path) -> RunInfo | None:
    """The parsed run.json of `folder`, or None when there is none."""
    path = Path(folder) / RUN_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise RunDirError(f"{path} is unreadable ({e}); the run directory is damaged") from e
    if not isinstance(data, dict):
        raise RunDirError(f"{path} is not a JSON object; the run directory is damaged")
    try:
        return RunInfo.model_validate(data)
    except ValidationError as e:
        first = e.errors()[0]
        raise RunDirError(f"{path} is not a run record ({'.'.join(map(str, first['loc']))}: {first['msg']}); "
                          f"the run directory is damaged") from e


def holds_run(folder: str | Path) -> bool:
    """True when `folder` holds (part of) a run: run.json or a known output file."""
    folder = Path(folder)
    return folder.is_dir() and ((folder / RUN_FILE).is_file() or any((folder / f).exists() for f in RUN_OUTPUTS))


def check_rerun(folder: str | Path, resume: bool) -> None:
    """Refuse to start in `folder` when that would mix two runs. Writes nothing.

    Called by the tasks (through `open_run`) and, before Hydra writes `.hydra/`, by the
    `cdx.tasks.callbacks.GuardRunDir` callback, so a refused rerun leaves the folder untouched.
    """
    folder = Path(folder)
    if not holds_run(folder):
        return
    holder = lock_holder(folder)
    if holder is not None:
        raise RunLockedError(_locked_message(folder, holder))
    if not resume:
        _refuse_existing(folder)


def _refuse_existing(folder: Path) -> None:
    info = read_run_file(folder) or RunInfo()
    state = {"finished": "a finished", "running": "an unfinished (killed?)"}.get(str(info.status), "a")
    raise RunExistsError(
        f"{folder} already holds {state} {info.kind or 'cdx'} run; nothing was changed. Pass resume=true to "
        f"continue it (same settings), or choose a new output directory (hydra.run.dir=...)")


# ---- lock --------------------------------------------------------------------------------------


class RunLock:
    """A non-blocking lock on a run directory, with a note of who holds it (pid, host, command)."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        self._lock = FileLock(str(self.folder / LOCK_FILE), timeout=0, is_singleton=False, preserve_lock_file=True)

    def acquire(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            raise RunLockedError(_locked_message(self.folder, _wait_for_holder(self.folder))) from None
        atomic_write_json(self.folder / HOLDER_FILE, {
            "pid": os.getpid(), "host": socket.gethostname(), "since": _now(), "command": " ".join(sys.argv)})

    def release(self) -> None:
        if self._lock.is_locked:
            with contextlib.suppress(OSError):
                (self.folder / HOLDER_FILE).unlink()
            self._lock.release()

    def __enter__(self):
        self.acquire()
        return self

    def __exit__(self, *exc):
        self.release()


def lock_holder(folder: str | Path) -> dict | None:
    """Who holds `folder`'s lock right now ({} when unknown), or None when it is free."""
    folder = Path(folder)
    if not (folder / LOCK_FILE).exists():
        return None
    probe = FileLock(str(folder / LOCK_FILE), timeout=0, is_singleton=False, preserve_lock_file=True)
    try:
        probe.acquire(timeout=0)
    except Timeout:
        return _read_holder(folder)
    probe.release()
    return None


def _read_holder(folder: Path) -> dict:
    try:
        return json.loads((folder / HOLDER_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def _wait_for_holder(folder: Path, patience_s: float = 0.5) -> dict:
    """The holder's note; a holder that has just taken the lock writes it a moment later, so wait briefly."""
    deadline = time.monotonic() + patience_s
    while not (holder := _read_holder(folder)) and time.monotonic() < deadline:
        time.sleep(0.02)
    return holder


def _locked_message(folder: Path, holder: dict) -> str:
    who = (f"process {holder.get('pid')} on {holder.get('host')} since {holder.get('since')} "
           f"({holder.get('command', '')})") if holder else "another process"
    return (f"{folder} is in use by {who}; two runs must not write one directory. Wait for it to end, "
            f"or choose another output directory")


def _now() -> str:
    return _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")


# ---- opening a run -----------------------------------------------------------------------------


@dataclass
class RunDir:
    """An open run directory: locked, with run.json written. `finish()` marks it finished."""

    path: Path
    kind: str
    identity: dict
    resumed: bool
    """True when the directory held this run already (resume=true)."""

    def finish(self, **extra) -> None:
        info = read_run_file(self.path) or RunInfo()
        atomic_write_json(self.path / RUN_FILE, {**info.dump(), "status": "finished", "finished": _now(), **extra})


@contextlib.contextmanager
def open_run(folder: str | Path, kind: str, identity: dict, resume: bool) -> Iterator[RunDir]:
    """Lock `folder`, check it against `identity` (see module doc), write run.json; unlock at the end."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with RunLock(folder):
        existed = holds_run(folder)
        if existed and not resume:
            _refuse_existing(folder)
        info = read_run_file(folder)
        if existed:
            _check_same_run(folder, info, kind, identity)
        before = info or RunInfo()
        record = RunInfo(kind=kind, fingerprint=fingerprint(identity), identity=identity,
                         created=before.created or _now(), status="running",
                         resumed=[*before.resumed, *([_now()] if existed else [])])
        atomic_write_json(folder / RUN_FILE, record.dump())
        yield RunDir(folder, kind, identity, existed)


def _check_same_run(folder: Path, info: RunInfo | None, kind: str, identity: dict) -> None:
    if info is None:
        raise RunMismatchError(
            f"resume=true: {folder} holds outputs but no {RUN_FILE}, so it cannot be shown to come from the same "
            f"settings; resume only runs made by this version of cdx, or start a new output directory")
    if info.kind != kind:
        raise RunMismatchError(f"resume=true: {folder} holds a {info.kind} run, not a {kind} run; "
                               f"choose the matching task or a new output directory")
    if info.fingerprint != fingerprint(identity):
        diff = differences(info.identity, identity)
        raise RunMismatchError(
            f"resume=true: {folder} was made with other settings, so resuming would mix two runs. Differs "
            f"(there -> now): {'; '.join(diff) or 'the fingerprint'}. Resume with the same settings "
            f"(execution-only ones such as parallel or threads may differ), or choose a new output directory")
