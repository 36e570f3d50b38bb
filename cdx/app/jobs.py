"""Background runs: the app starts `python -m cdx.run <overrides>`, the CLI's own command.

One code path: what the app runs is exactly the command it shows (copyable), with an explicit
`hydra.run.dir` so the app knows where the outputs land. Output (stdout + stderr) goes to
`app_job.log` in the run directory. Progress is read from structured data the run writes, never
from its terminal output: a decode's records (texts and tokens), else the typed events its
progress bars append to `progress.jsonl` (`cdx.io.progress`, enabled by `$CDX_PROGRESS_FILE`).
Jobs run in their own process group so Cancel stops the run and any workers it started.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from cdx.app import presets
from cdx.io import progress
from cdx.io.jsonl import atomic_write_json
from cdx.io.rundir import lock_holder, read_run_file

LOG_NAME = "app_job.log"
PROGRESS_NAME = "progress.jsonl"
"""The typed progress events the run's bars write (`cdx.io.progress`), in the run folder."""
_PLAIN = re.compile(r"^[\w./:+@-]+$")


def hydra_value(value) -> str:
    """One override value in Hydra's grammar: null/true/false/numbers bare, other text quoted."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    text = str(value)
    if _PLAIN.match(text) and text.lower() not in ("null", "true", "false") and not _is_number(text):
        return text
    # Hydra's quoted strings: a backslash escapes only a quote or the backslashes right before one
    quoted = re.sub(r"(\\*)'", lambda m: m[1] * 2 + "\\'", text)
    return "'" + re.sub(r"(\\+)$", lambda m: m[1] * 2, quoted) + "'"


def _is_number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


@dataclass
class RunRequest:
    """What the Compare page asks for; `overrides()` turns it into the CLI's Hydra overrides."""

    task: str = "decode"
    model: str = "default"
    """A preset of the `model` group (conf/model/<name>.yaml)."""
    starting_path: str = ""
    comparison_path: str = ""
    adapter: str = ""
    """A PEFT adapter put on the comparison side."""
    system_prompt: str = ""
    """The comparison side's system prompt (empty: the preset's)."""
    interpolation: float | None = None
    decoding: str = "sample"
    params: dict = field(default_factory=dict)
    """decoding.<key> -> value (temperature, max_new_tokens, generations_per_prefix, rule.alpha, ...)."""
    prompt: str = ""
    """One prompt (prompts=single); empty: the builtin set, first `limit` (unless `single` is asked)."""
    single: bool = False
    """The user chose "one prompt": `prompt` is used even when empty (and then refused, not replaced)."""
    limit: int | None = 4
    extra: str = ""
    """More overrides, as typed on a command line."""

    def overrides(self) -> list[str]:
        out = [f"task={self.task}", *self.pair_overrides(), f"decoding={self.decoding}"]
        out += [f"decoding.{k}={hydra_value(v)}" for k, v in self.params.items() if v is not None]
        if self.single or self.prompt.strip():
            out += ["prompts=single", f"prompts.text={hydra_value(self.prompt.strip())}"]
        elif self.limit is not None:
            out.append(f"prompts.limit={int(self.limit)}")
        return out + self.extra_overrides()

    def extra_overrides(self) -> list[str]:
        """The typed extra overrides; ValueError (shlex's own message) when they do not parse."""
        return shlex.split(self.extra)

    def pair_overrides(self) -> list[str]:
        """The overrides that choose the pair (model=<preset> plus the changes asked for)."""
        out = [f"model={self.model}"]
        for side, p in (("starting", self.starting_path), ("comparison", self.comparison_path)):
            if p.strip():  # a new path: drop the preset's display name, which would mislabel it
                out += [f"model.{side}.path={hydra_value(p.strip())}", f"++model.{side}.name=null"]
        if self.adapter.strip():
            out.append(f"++model.comparison.adapter={hydra_value(self.adapter.strip())}")
        if self.system_prompt.strip():
            out.append(f"++model.comparison.system_prompt={hydra_value(self.system_prompt.strip())}")
        if self.interpolation is not None:
            out.append(f"model.interpolation={hydra_value(self.interpolation)}")
        return out

    def argv(self, run_dir: Path) -> list[str]:
        return [sys.executable, "-m", "cdx.run", *self.overrides(), f"hydra.run.dir={hydra_value(str(run_dir))}"]


def check_request(req: RunRequest) -> str | None:
    """Why this request cannot run (the first problem of `cdx.app.checks.request_problems`), or None."""
    from cdx.app.checks import request_problems

    problems = request_problems(req)
    return problems[0].message if problems else None


def shown_command(argv: list[str]) -> str:
    """The command as a user would type it (python instead of the venv's full path)."""
    return shlex.join(["python", *argv[1:]])


def new_run_dir(root: Path, task: str) -> Path:
    """outputs/app/<date>/<time>-<task>: Hydra's layout, under app/ so app runs are easy to find."""
    now = datetime.now()
    base = root / "outputs" / "app" / now.strftime("%Y-%m-%d") / f"{now.strftime('%H-%M-%S')}-{task}"
    path, i = base, 1
    while path.exists():
        path, i = base.with_name(f"{base.name}-{i}"), i + 1
    return path


class JobRecord(BaseModel):
    """What the app knows of a run it started, kept in the run folder (`app_job.json`) so the history
    survives a restart of the app."""

    argv: list[str]
    """The command as started (the last start, for a resumed run)."""
    task: str
    started: float
    """Unix time of the (last) start."""
    expected_texts: int | None = None
    """Texts the run will write (prompts x generations_per_prefix) when known before it starts (decode)."""
    cancelled: bool = False


class Progress(BaseModel):
    """Where a running job stands: texts (or batches) done of the total, tokens, and a time estimate."""

    desc: str
    n: int
    total: int
    unit: str = "texts"
    tokens: int | None = None
    eta_s: float | None = None

    @property
    def fraction(self) -> float:
        return min(self.n / self.total, 1.0) if self.total else 0.0

    def text(self) -> str:
        parts = [f"{self.desc} {self.n}/{self.total} {self.unit}"]
        if self.tokens is not None:
            parts.append(f"{self.tokens:,} tokens")
        if self.eta_s is not None:
            parts.append(f"about {_duration(self.eta_s)} left")
        return " · ".join(parts)


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"


class RecordCounter:
    """Texts and tokens a task has written to its records file so far, read incrementally.

    The decode task writes its records batch by batch and no separate event file, so the records
    themselves are the structured progress: each line is one finished text with its tokens.
    """

    def __init__(self, path: Path):
        self.path, self.offset, self.texts, self.tokens = path, 0, 0, 0
        self.seen: list[tuple[float, int]] = []  # (time, texts) when the count first reached each value

    def update(self) -> None:
        try:
            if self.path.stat().st_size < self.offset:  # rewritten (a resume that started over)
                self.offset, self.texts, self.tokens, self.seen = 0, 0, 0, []
            with self.path.open("rb") as f:
                f.seek(self.offset)
                chunk = f.read()
        except OSError:
            return
        complete = chunk[: chunk.rfind(b"\n") + 1]  # a line still being written is read next time
        self.offset += len(complete)
        lines = [ln for ln in complete.splitlines() if ln.strip()]
        for line in lines:
            self.texts += 1
            self.tokens += len(json.loads(line).get("token_strs") or [])
        if lines:
            self.seen.append((time.time(), self.texts))

    def eta(self, total: int, started: float) -> float | None:
        """Seconds left at the rate between the first and last batch seen (model loading excluded);
        with one batch seen, at the rate since the start (loading included, so an overestimate)."""
        if not self.seen or self.texts >= total:
            return None
        (t0, n0), (t1, n1) = self.seen[0], self.seen[-1]
        rate = (n1 - n0) / (t1 - t0) if n1 > n0 and t1 > t0 else n1 / max(t1 - started, 1e-3)
        return (total - self.texts) / rate if rate > 0 else None


JOB_FILE = "app_job.json"


class Job:
    """One run of `python -m cdx.run` started by the app: live (a process of this app) or from the history."""

    def __init__(self, run_dir: Path, record: JobRecord, proc: subprocess.Popen | None = None, job_id: str = ""):
        self.run_dir, self.record, self.proc = run_dir, record, proc
        self.id = job_id or run_dir.name
        self.log_path = run_dir / LOG_NAME
        self._counter = RecordCounter(run_dir / "generations.jsonl")

    @classmethod
    def launch(cls, argv: list[str], run_dir: Path, task: str, cwd: Path, job_id: str = "",
               expected_texts: int | None = None, append_log: bool = False) -> Job:
        run_dir.mkdir(parents=True, exist_ok=True)
        record = JobRecord(argv=argv, task=task, started=time.time(), expected_texts=expected_texts)
        # the run's progress bars also write typed events there (cdx.io.progress): the jobs panel reads them
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0",
               progress.ENV: str(run_dir / PROGRESS_NAME)}
        with (run_dir / LOG_NAME).open("ab" if append_log else "wb") as log:
            proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    cwd=cwd, env=env, start_new_session=True)
        job = cls(run_dir, record, proc, job_id)
        job._save()
        return job

    @classmethod
    def load(cls, run_dir: Path, job_id: str = "") -> Job | None:
        """A job of the history from its folder's app_job.json (None when unreadable)."""
        try:
            return cls(run_dir, JobRecord.model_validate_json((run_dir / JOB_FILE).read_text(encoding="utf-8")),
                       job_id=job_id)
        except (OSError, ValueError):
            return None

    def _save(self) -> None:
        atomic_write_json(self.run_dir / JOB_FILE, self.record.model_dump())

    @property
    def argv(self) -> list[str]:
        return self.record.argv

    @property
    def task(self) -> str:
        return self.record.task

    @property
    def started(self) -> float:
        return self.record.started

    @property
    def cancelled(self) -> bool:
        return self.record.cancelled

    @property
    def command(self) -> str:
        return shown_command(self.argv)

    @property
    def status(self) -> str:
        if self.proc is None:
            return self._status_from_folder()
        rc = self.proc.poll()
        if rc is None:
            return "running"
        if self.cancelled:
            return "cancelled"
        return "finished" if rc == 0 else "failed"

    def _status_from_folder(self) -> str:
        """A run of an earlier app process: what its folder says (lock held, run.json finished)."""
        if lock_holder(self.run_dir) is not None:
            return "running"
        info = read_run_file(self.run_dir)
        if info is not None and info.status == "finished":
            return "finished"
        return "cancelled" if self.cancelled else "failed"

    @property
    def resumable(self) -> bool:
        return self.status in ("failed", "cancelled")

    def cancel(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.record.cancelled = True
            self._save()
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        assert self.proc is not None, "wait() on a job that was never started"
        return self.proc.wait(timeout)

    def log_tail(self, n_bytes: int = 6000) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - n_bytes))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def progress(self) -> Progress | None:
        """Texts and tokens written of those expected, with an ETA; else the run's newest progress event."""
        total = self.record.expected_texts
        if total:
            self._counter.update()
            if self._counter.texts:
                c = self._counter
                return Progress(desc="generating", n=c.texts, total=total, tokens=c.tokens,
                                eta_s=c.eta(total, self.started))
        return self._event_progress()

    def _event_progress(self) -> Progress | None:
        """The newest event of the run's progress bars (`cdx.io.progress`), with an ETA at the rate
        since its stage's first event of this session."""
        path = self.run_dir / PROGRESS_NAME
        last = progress.last_event(path)
        if last is None or not last.total:
            return None
        first = progress.first_event(path, last.stage, since=self.started)
        eta = None
        if first is not None and last.n > first.n and last.time > first.time and last.n < last.total:
            eta = (last.total - last.n) * (last.time - first.time) / (last.n - first.n)
        return Progress(desc=last.stage, n=last.n, total=last.total, unit=last.unit, eta_s=eta)

    def last_line(self) -> str:
        lines = [ln for ln in re.split(r"[\r\n]+", self.log_tail()) if ln.strip()]
        return lines[-1].strip() if lines else ""

    def error_message(self) -> str:
        """Why a failed run failed: its `error.json` (written by cdx's Hydra callback), else the log's
        exception line (Hydra prints the traceback, then `Type: message`)."""
        try:
            err = json.loads((self.run_dir / "error.json").read_text(encoding="utf-8"))
            lines = [ln.strip() for ln in str(err.get("message", "")).splitlines()
                     if ln.strip() and not ln.startswith("full_key:")]
            if lines:
                return f"{err.get('type', 'Error')}: {' '.join(lines)}"
        except (OSError, ValueError, AttributeError):
            pass
        lines = [ln.strip() for ln in re.split(r"[\r\n]+", self.log_tail(20000)) if ln.strip()]
        for ln in reversed(lines):
            if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*:", ln) or ln.startswith(("Error ", "cdx: error:")):
                return ln
        if self.proc is None:
            return lines[-1] if lines else "the run stopped before it finished (no log)"
        return lines[-1] if lines else f"exit code {self.proc.returncode}"


def expected_texts(overrides: list[str]) -> int | None:
    """How many records a decode run of these overrides writes (prompts x generations), or None."""
    from hydra.utils import instantiate

    try:
        cfg = presets.compose(overrides)
        if cfg.task.name != "decode":
            return None
        return len(instantiate(cfg.prompts).load()) * int(cfg.decoding.generations_per_prefix)
    except Exception:  # noqa: BLE001 - only a progress estimate: without it the log's bar is shown
        return None


class JobManager:
    """Jobs the app started: live ones of this process, and the history read from `outputs/app/*/*`.

    Shared by every browser session (thread-safe). The history is the run folders themselves
    (`app_job.json`), so it survives a restart and shows every run, not only the last few.
    """

    def __init__(self, root: Path):
        self.root = root
        self._jobs: dict[Path, Job] = {}
        self._lock = threading.Lock()

    def start(self, request: RunRequest) -> Job:
        run_dir = new_run_dir(self.root, request.task)
        return self._start(request.argv(run_dir), run_dir, request.task, expected_texts(request.overrides()))

    def start_overrides(self, overrides: list[str], run_dir: Path, task: str) -> Job:
        """`python -m cdx.run <overrides> hydra.run.dir=<run_dir>` (e.g. task=summarize of a sweep)."""
        argv = [sys.executable, "-m", "cdx.run", *overrides, f"hydra.run.dir={hydra_value(str(run_dir))}"]
        return self._start(argv, run_dir, task, expected_texts(overrides))

    def resume(self, job: Job) -> Job:
        """The same command with `resume=true` in the same folder: the run continues where it stopped."""
        argv = [a for a in job.argv if not a.startswith(("resume=", "+resume=", "++resume="))] + ["resume=true"]
        return self._start(argv, job.run_dir, job.task, job.record.expected_texts, append_log=True)

    def _start(self, argv: list[str], run_dir: Path, task: str, expected: int | None, append_log: bool = False) -> Job:
        with self._lock:
            job = Job.launch(argv, run_dir, task, self.root, self._id(run_dir), expected, append_log)
            self._jobs[run_dir.resolve()] = job
            return job

    def _id(self, run_dir: Path) -> str:
        try:
            return str(run_dir.resolve().relative_to((self.root / "outputs" / "app").resolve()))
        except ValueError:
            return run_dir.name

    def history(self) -> list[Job]:
        """Jobs of earlier app processes (or other sessions' restarts), from their folders."""
        found = []
        for path in sorted((self.root / "outputs" / "app").glob(f"*/*/{JOB_FILE}")):
            folder = path.parent.resolve()
            if folder not in self._jobs:
                job = Job.load(folder, self._id(folder))
                if job is not None:
                    found.append(job)
        return found

    def jobs(self) -> list[Job]:
        with self._lock:
            live = list(self._jobs.values())
        return sorted(live + self.history(), key=lambda j: j.started, reverse=True)

    def get(self, job_id: str) -> Job | None:
        return next((j for j in self.jobs() if j.id == job_id), None)

    def cancel_all(self) -> None:
        for job in self.jobs():
            job.cancel()
