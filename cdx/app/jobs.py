"""Background runs: the app starts `python -m cdx.run <overrides>`, the CLI's own command.

One code path: what the app runs is exactly the command it shows (copyable), with an explicit
`hydra.run.dir` so the app knows where the outputs land. Output (stdout + stderr, where tqdm
draws its bar) goes to `app_job.log` in the run directory; progress is read back from it. Jobs
run in their own process group so Cancel stops the run and any workers it started.
"""

from __future__ import annotations

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

from cdx.app import presets

LOG_NAME = "app_job.log"
_BAR = re.compile(r"(?:(?P<desc>[^\r\n:|]+):)?\s*(?P<pct>\d+)%\|[^|]*\|\s*(?P<n>\d+)/(?P<total>\d+)")
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
    """One prompt (prompts=single); empty: the builtin set, first `limit`."""
    limit: int | None = 4
    extra: str = ""
    """More overrides, as typed on a command line."""

    def overrides(self) -> list[str]:
        out = [f"task={self.task}", *self.pair_overrides(), f"decoding={self.decoding}"]
        out += [f"decoding.{k}={hydra_value(v)}" for k, v in self.params.items() if v is not None]
        if self.prompt.strip():
            out += ["prompts=single", f"prompts.text={hydra_value(self.prompt.strip())}"]
        elif self.limit is not None:
            out.append(f"prompts.limit={int(self.limit)}")
        return out + shlex.split(self.extra)

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
    """Why this request cannot run (a clear sentence), or None. Composes it as the CLI would."""
    adapter = req.adapter.strip()
    if adapter and (adapter.startswith(("/", ".", "~")) or Path(adapter).expanduser().exists()):
        folder = Path(adapter).expanduser()
        if not (folder / "adapter_config.json").is_file():
            return (f"adapter {adapter!r} is not a PEFT adapter folder (no adapter_config.json there); give the "
                    "folder a LoRA training saved, or a hub id")
    try:
        shlex.split(req.extra)
    except ValueError as e:
        return f"the extra overrides {req.extra!r} do not parse as a command line: {e}"
    try:
        presets.compose(req.overrides())
    except Exception as e:  # noqa: BLE001 - Hydra's own message names the bad key or value
        return f"the CLI would reject these settings: {type(e).__name__}: {e}"
    return None


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


@dataclass
class Progress:
    desc: str
    n: int
    total: int

    @property
    def fraction(self) -> float:
        return self.n / self.total if self.total else 0.0


class Job:
    """One background run of `python -m cdx.run`."""

    def __init__(self, job_id: str, argv: list[str], run_dir: Path, task: str, cwd: Path):
        self.id, self.argv, self.run_dir, self.task = job_id, argv, run_dir, task
        self.started = time.time()
        self.cancelled = False
        run_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = run_dir / LOG_NAME
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "HYDRA_FULL_ERROR": "0"}
        with self.log_path.open("wb") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         cwd=cwd, env=env, start_new_session=True)

    @property
    def command(self) -> str:
        return shown_command(self.argv)

    @property
    def status(self) -> str:
        rc = self.proc.poll()
        if rc is None:
            return "running"
        if self.cancelled:
            return "cancelled"
        return "finished" if rc == 0 else "failed"

    def cancel(self) -> None:
        if self.proc.poll() is None:
            self.cancelled = True
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout)

    def log_tail(self, n_bytes: int = 6000) -> str:
        try:
            with self.log_path.open("rb") as f:
                f.seek(max(0, f.seek(0, os.SEEK_END) - n_bytes))
                return f.read().decode("utf-8", errors="replace")
        except OSError:
            return ""

    def progress(self) -> Progress | None:
        """The last progress bar state in the log (tqdm redraws with carriage returns)."""
        last = None
        for m in _BAR.finditer(self.log_tail()):
            last = m
        if last is None:
            return None
        return Progress((last["desc"] or "").strip(), int(last["n"]), int(last["total"]))

    def last_line(self) -> str:
        lines = [ln for ln in re.split(r"[\r\n]+", self.log_tail()) if ln.strip()]
        return lines[-1].strip() if lines else ""

    def error_message(self) -> str:
        """The exception line of a failed run (Hydra prints the traceback, then `Type: message`)."""
        lines = [ln.strip() for ln in re.split(r"[\r\n]+", self.log_tail(20000)) if ln.strip()]
        for ln in reversed(lines):
            if re.match(r"^[\w.]*(Error|Exception|Interrupt)\b.*:", ln) or ln.startswith("Error "):
                return ln
        return lines[-1] if lines else f"exit code {self.proc.returncode}"


class JobManager:
    """Process-wide registry of background jobs (shared by every browser session; thread-safe)."""

    def __init__(self, root: Path):
        self.root = root
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self._count = 0

    def start(self, request: RunRequest) -> Job:
        run_dir = new_run_dir(self.root, request.task)
        return self._start(request.argv(run_dir), run_dir, request.task)

    def start_overrides(self, overrides: list[str], run_dir: Path, task: str) -> Job:
        """`python -m cdx.run <overrides> hydra.run.dir=<run_dir>` (e.g. task=summarize of a sweep)."""
        argv = [sys.executable, "-m", "cdx.run", *overrides, f"hydra.run.dir={hydra_value(str(run_dir))}"]
        return self._start(argv, run_dir, task)

    def _start(self, argv: list[str], run_dir: Path, task: str) -> Job:
        with self._lock:
            self._count += 1
            job = Job(f"job{self._count}", argv, run_dir, task, self.root)
            self._jobs[job.id] = job
            return job

    def jobs(self) -> list[Job]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda j: j.started, reverse=True)

    def get(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def cancel_all(self) -> None:
        for job in self.jobs():
            job.cancel()
