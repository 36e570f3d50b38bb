"""`GuardRunDir`: the Hydra callback that protects run directories and keeps secrets out of logs.

Hydra writes `<run dir>/.hydra/` before the task starts, so a rerun refused by the task itself
would already have overwritten the old run's `.hydra/config.yaml`. This callback checks first:

- `on_run_start`: a run directory that holds a run (or is locked by a running one) is refused
  unless `resume=true`, before anything is written (`cdx.io.check_rerun`).
- `on_multirun_start`: a sweep directory whose jobs hold runs is refused unless `resume=true`,
  so a rerun sweep never overwrites a finished job or turns it into "failed".
- `on_job_start` / `on_job_end`: registers the secrets the config points to (API key variables),
  redacts them in every log handler, and scrubs a failed job's exception chain in place before
  Hydra or `WriteJobError` print or store it.

- before all that, `cdx.preflight` checks the run or sweep folder (a folder, writable, room for the
  output) and the tracker (W&B key and server), one line a problem;
- a resume into a held run (or sweep) keeps its `.hydra/*.yaml`, `run.log` (and `multirun.yaml`)
  in memory: the task checks the settings only after Hydra has rewritten them, so a refused resume
  puts them back byte for byte (`hold_files` / `restore_files`).

`task=summarize` is exempt from the rerun rule: its folder is a view of the sweep, rebuilt on purpose.
A refusal prints one line (`cdx: error: ...`) and exits with status 2 (CDX_DEBUG=1: the exception).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.errors import CompactHydraException
from hydra.experimental.callback import Callback
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from cdx import preflight
from cdx.io import RunDirError, check_rerun, job_folders
from cdx.io.redact import add_secrets_from_config, install_log_filter, redact, scrub_exception
from cdx.io.rundir import RunExistsError, holds_run

REBUILT_TASKS = ("summarize",)
USER_ERROR_EXIT = 2


class GuardRunDir(Callback):
    def on_run_start(self, config: DictConfig, **kwargs) -> None:
        _register_secrets(config)
        folder = _select(config, "hydra.run.dir")
        if not folder:
            return
        _refuse_on_error(lambda: preflight.check_run(config, Path(folder).absolute()))
        if _task(config) not in REBUILT_TASKS:
            _refuse_on_error(lambda: check_rerun(Path(folder).absolute(), bool(config.get("resume"))))
            if config.get("resume") and holds_run(folder):
                hold_files(Path(folder))

    def on_multirun_start(self, config: DictConfig, **kwargs) -> None:
        _register_secrets(config)
        sweep = _select(config, "hydra.sweep.dir")
        if not sweep:
            return
        _refuse_on_error(lambda: preflight.check_sweep(config, Path(sweep).absolute(), sweep_size(config.hydra)))
        if _task(config) not in REBUILT_TASKS and not config.get("resume"):
            _refuse_on_error(lambda: check_sweep_rerun(Path(sweep).absolute()))
        elif _task(config) not in REBUILT_TASKS and Path(sweep).is_dir():
            hold_files(Path(sweep), ("multirun.yaml",))  # the sweeper rewrites it before the jobs are checked
            for _, job, _ in job_folders(Path(sweep)):
                hold_files(job)

    def on_job_start(self, config: DictConfig, **kwargs) -> None:
        _register_secrets(config)
        install_log_filter()

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        hydra_cfg = job_return.hydra_cfg
        assert hydra_cfg is not None  # Hydra sets it on every job it ran
        folder = Path(hydra_cfg.hydra.runtime.output_dir)
        if job_return.status == JobStatus.FAILED:
            err = job_return._return_value  # `.return_value` would re-raise it
            scrub_exception(err)
            if isinstance(getattr(err, "cause", err), RunDirError):
                restore_files(folder)
                if hydra_cfg.hydra.mode == RunMode.MULTIRUN:  # refused settings: not the sweep's
                    restore_files(Path(hydra_cfg.hydra.sweep.dir))
        _HELD.pop(folder.resolve(), None)


# A resume is checked against run.json by the task, after Hydra has rewritten .hydra/ and opened the
# log: so the files a refused resume would change are read first and put back byte for byte.
HELD_FILES = (".hydra/config.yaml", ".hydra/hydra.yaml", ".hydra/overrides.yaml", "run.log")
_HELD: dict[Path, dict[Path, bytes | None]] = {}


def hold_files(folder: Path, names: tuple[str, ...] = HELD_FILES) -> None:
    """Remember `folder`'s Hydra files and log (None: absent), for `restore_files` after a refused resume."""
    folder = folder.absolute()
    _HELD[folder.resolve()] = {folder / n: (folder / n).read_bytes() if (folder / n).is_file() else None
                               for n in names}


def restore_files(folder: Path) -> None:
    """Put back what `hold_files` saw in `folder`: a refused resume leaves the run as it was."""
    from cdx.io import atomic_write_bytes

    for path, data in _HELD.pop(Path(folder).resolve(), {}).items():
        if data is None:
            path.unlink(missing_ok=True)
        elif not path.is_file() or path.read_bytes() != data:
            atomic_write_bytes(path, data)


class SweepJobFailed(CompactHydraException):
    """A sweep job's user or environment error, raised by `cdx.run.main` in place of the error itself.

    Hydra runs every job, then re-raises the first failed job's exception and prints it with a
    traceback, unless it is a `CompactHydraException`, which it prints as `str(e)` alone (exit 1).
    So the sweep ends with one line; it is worked out when printed, after the last job, and counts
    the failed jobs of the whole sweep (each has error.json). `cause` is the job's own error, which
    `WriteJobError` records.
    """

    def __init__(self, cause: BaseException, sweep_dir: str | Path):
        super().__init__(str(cause))
        self.cause, self.sweep_dir = cause, Path(sweep_dir).absolute()

    def __str__(self) -> str:
        try:
            failed, total = _failed_jobs(self.sweep_dir)
        except Exception:  # noqa: BLE001 - the line must print even if the sweep folder cannot be read
            failed, total = [], 0
        first = f"{type(self.cause).__name__}: {self.cause}"
        head = f"{len(failed)} of {total} sweep jobs failed ({', '.join(failed)})" if failed else "a sweep job failed"
        return redact(f"cdx: error: {head}; first: {first}. The other jobs ran; error.json in each failed job's "
                      f"folder says why; table: python -m cdx.run task=summarize sweep_dir={self.sweep_dir}")


def _failed_jobs(sweep_dir: Path) -> tuple[list[str], int]:
    """(`job <n>` of every failed job, number of jobs) of the sweep, as task=summarize counts them."""
    from cdx.tasks.summarize import expected_jobs
    from cdx.tracking.sweep import STATUS_FAILED, collect

    rows = collect(sweep_dir, {}, expected_jobs(sweep_dir)).rows
    return [f"job {r['job']}" for r in rows if r["status"] == STATUS_FAILED], len(rows)


def check_sweep_rerun(sweep_dir: Path) -> None:
    """Refuse a sweep into `sweep_dir` when any of its job folders holds a run (without resume)."""
    used = [d for _, d, _ in job_folders(sweep_dir) if holds_run(d)] if sweep_dir.is_dir() else []
    if used:
        raise RunExistsError(
            f"{sweep_dir} already holds a sweep ({len(used)} job folder(s) with runs, e.g. {used[0]}); nothing was "
            f"changed. Pass resume=true to finish it (same settings), or choose a new hydra.sweep.dir")


def sweep_size(hydra: DictConfig) -> int:
    """How many jobs the sweep will run: Optuna's n_trials, else the basic sweeper's job list (1 if unknown)."""
    from cdx.tasks.summarize import sweep_jobs

    trials = OmegaConf.select(hydra, "sweeper.n_trials", default=None)
    return int(trials) if trials else len(sweep_jobs(hydra) or [None])


def _refuse_on_error(check) -> None:
    try:
        check()
    except (RunDirError, preflight.PreflightError) as e:
        if os.environ.get("CDX_DEBUG", "").strip() not in ("", "0", "false"):
            raise
        for line in str(e).splitlines():  # one line a problem
            print(f"cdx: error: {redact(line)}", file=sys.stderr)
        raise SystemExit(USER_ERROR_EXIT) from None


def _register_secrets(config: DictConfig) -> None:
    add_secrets_from_config(OmegaConf.to_container(config, resolve=False))


def _task(config: DictConfig) -> str | None:
    return OmegaConf.select(config, "task.name", default=None)


def _select(config: DictConfig, key: str) -> str | None:
    from hydra.core.hydra_config import HydraConfig

    HydraConfig.instance().set_config(config)  # run_job does the same next; ${hydra:...} needs it
    value = OmegaConf.select(config, key, default=None)
    return None if value is None else str(value)
