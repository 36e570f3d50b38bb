"""Entry point: `python -m cdx.run [task=decode|score|search|summarize] [overrides]`.

A thin Hydra wrapper: the config is validated (`cdx.config.validate_config`) before any model
loads, then the task, a `_target_` in conf/task/, is called as `task_fn(cfg)`.

Exit statuses and what is printed (`CDX_DEBUG=1` or `hydra.verbose=true` shows the traceback):

- 2, a user error (bad value, missing or malformed input, unreachable assistant, unusable run folder):
  one line `cdx: error: ...` naming the bad value, no traceback. A user error is a `CdxUserError`
  (and the other kinds in `user_error`), or a ValueError that cdx's own code raised about its input;
  a ValueError raised inside a library (numpy, sklearn, transformers) is a bug and keeps its traceback.
- 3, the environment failed during the work (disk full, quota, read-only filesystem, a killed worker
  process): one line naming the cause, what was saved and the exact resume command.
- 130, Ctrl-C: one line saying what was saved and how to resume.
- 1, a bug (traceback), or a sweep in which any job failed: each failed job leaves error.json and one
  log line, and the sweep ends with one line counting the failed jobs (`SweepJobFailed`).
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import sys
from pathlib import Path

import hydra
from hydra.utils import get_method
from omegaconf import DictConfig

from cdx import runtime
from cdx.config import validate_config
from cdx.errors import CdxUserError
from cdx.io.redact import redact
from cdx.io.rundir import RunDirError
from cdx.resources import conf_dir

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
log = logging.getLogger(__name__)

USER_ERROR_EXIT, ENVIRONMENT_EXIT, INTERRUPT_EXIT = 2, 3, 130
# The OSError numbers that mean "the machine ran out of something", not "cdx has a bug".
ENVIRONMENT_ERRNOS = {errno.ENOSPC: "the disk is full", errno.EDQUOT: "the disk quota is exceeded",
                      errno.EROFS: "the filesystem is read-only", errno.EIO: "an input/output error"}


def run(cfg: DictConfig) -> dict:
    """Validate the config, then run the task chosen by `cfg.task` and return its headline metrics."""
    validate_config(cfg)
    runtime.configure(cfg.get("runtime"), jobs=launcher_jobs())
    # The task's own options stay in cfg.task; its _target_ names a function of the whole config.
    return get_method(cfg.task._target_)(cfg)


def launcher_jobs() -> int:
    """How many jobs of this sweep run at once on this machine: joblib's n_jobs (-1: one per CPU), else 1."""
    hc = _hydra_config()
    launcher = hc.launcher if hc is not None and _multirun() else None
    if launcher is None or "joblib" not in str(launcher.get("_target_", "")).lower():
        return 1
    n = launcher.get("n_jobs")
    cpus = max(1, int(runtime.available_cpus()))
    return cpus if n is None or int(n) < 0 else max(1, min(int(n), cpus))


@hydra.main(version_base="1.3", config_path=str(conf_dir()), config_name="config")
def main(cfg: DictConfig) -> float | None:
    try:
        metrics = run(cfg)
    except KeyboardInterrupt:
        print(redact(interrupted_line(Path(str(cfg.output_dir)), _multirun())), file=sys.stderr)
        sys.exit(INTERRUPT_EXIT)
    except Exception as e:
        cause = user_error(e)
        environment = environment_error(e) if cause is None else None
        if (cause is None and environment is None) or _debug():
            raise  # a bug: its traceback
        if _multirun():  # Hydra records it in error.json, runs the other jobs, then prints this one line
            from cdx.tasks.callbacks import SweepJobFailed

            raise SweepJobFailed(cause or e, _hydra_config().sweep.dir) from e
        if environment is not None:
            print(redact(f"cdx: error: {environment}; {interrupted_line(Path(str(cfg.output_dir)))}"),
                  file=sys.stderr)
            sys.exit(ENVIRONMENT_EXIT)
        assert cause is not None  # neither a bug nor the environment: a user error
        if isinstance(cause, RunDirError):  # refused: the run folder goes back to what it held
            from cdx.tasks.callbacks import restore_files

            restore_files(Path(str(cfg.output_dir)))
        _record_failure(cause)
        print(redact(f"cdx: error: {cause} (CDX_DEBUG=1 shows the traceback)"), file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    objective = cfg.get("optimized_metric")
    return metrics.get(objective) if objective else None


def user_error(e: BaseException) -> BaseException | None:
    """The user error behind `e` (unwrapping Hydra's instantiation wrapper), or None for a bug."""
    from hydra.errors import InstantiationException

    from cdx.assistant import AssistantError

    kinds: tuple[type[BaseException], ...] = (CdxUserError, FileNotFoundError, FileExistsError,
                                              IsADirectoryError, NotADirectoryError, AssistantError)
    try:
        from cdx.search import SearchFailed

        kinds += (SearchFailed,)
    except ImportError:  # pragma: no cover - search is part of cdx; guard only against a broken install
        pass
    while isinstance(e, InstantiationException) and e.__cause__ is not None:
        e = e.__cause__
    if isinstance(e, kinds) or (isinstance(e, ValueError) and raised_by_cdx(e)):
        return e
    return None


def raised_by_cdx(e: BaseException) -> bool:
    """True when cdx's own code raised `e`, or a pydantic model that cdx built from the config refused it.

    A `raise ValueError(...)` written in cdx checks its input on purpose; the same error raised deep
    inside numpy or transformers is a bug to report, with its traceback.
    """
    frames = [tb.tb_frame.f_globals.get("__name__", "") for tb in _tb_frames(e.__traceback__)]
    if not frames:
        return False
    after_cdx = frames[max((i for i, m in enumerate(frames) if _is_cdx(m)), default=-1) + 1:]
    if not after_cdx:
        return _is_cdx(frames[-1])
    from pydantic import ValidationError

    return isinstance(e, ValidationError) and all(m.split(".")[0] == "pydantic" for m in after_cdx)


def _is_cdx(module: str) -> bool:
    return module == "cdx" or (module.startswith("cdx.") and module != "cdx.run")


def _tb_frames(tb):
    while tb is not None:
        yield tb
        tb = tb.tb_next


def environment_error(e: BaseException) -> str | None:
    """What ran out (disk, quota, a worker process) when `e`, or an error it was raised from, says so."""
    from concurrent.futures.process import BrokenProcessPool
    from subprocess import CalledProcessError

    seen = set()
    cur: BaseException | None = e
    while cur is not None and id(cur) not in seen:
        seen.add(id(cur))
        if isinstance(cur, OSError) and cur.errno in ENVIRONMENT_ERRNOS:
            where = f" ({cur.filename})" if cur.filename else ""
            return f"{ENVIRONMENT_ERRNOS[cur.errno]}{where}: {cur.strerror or cur}"
        if isinstance(cur, BrokenProcessPool) or (isinstance(cur, CalledProcessError) and cur.returncode < 0):
            return f"a worker process was killed ({cur})"
        cur = cur.__cause__ or cur.__context__
    return None


def interrupted_line(out: Path, multirun: bool = False) -> str:
    """`interrupted: <what is saved>; resume with: python -m cdx.run ... resume=true`.

    Every record on disk is complete (a line cut by the failure is dropped on resume), so the
    command continues the run where it stopped, with nothing lost or written twice.
    """
    from cdx.io import read_records

    saved = []
    for f in sorted(out.glob("*.jsonl")) if out.is_dir() else []:
        try:
            saved.append(f"{len(read_records(f))} records in {f}")
        except (OSError, ValueError):
            continue
    what = ", ".join(saved) if saved else f"nothing saved yet in {out}"
    args = [a for a in sys.argv[1:] if not a.startswith(("hydra.run.dir=", "hydra.sweep.dir=", "resume="))]
    if multirun:
        where = f"hydra.sweep.dir={shlex.quote(str(out.parent))}"
        args = [a for a in args if a not in ("-m", "--multirun")] + ["-m"]
    else:
        where = f"hydra.run.dir={shlex.quote(str(out))}"
    command = " ".join(["python -m cdx.run", *map(shlex.quote, args), where, "resume=true"])
    return f"interrupted: {what}; resume with: {command}"


def _debug() -> bool:
    if os.environ.get("CDX_DEBUG", "").strip() not in ("", "0", "false"):
        return True
    hc = _hydra_config()
    return bool(hc is not None and hc.verbose)


def _multirun() -> bool:
    hc = _hydra_config()
    return hc is not None and hc.mode is not None and hc.mode.name == "MULTIRUN"


def _hydra_config():
    from hydra.core.hydra_config import HydraConfig

    return HydraConfig.get() if HydraConfig.initialized() else None


def _record_failure(err: BaseException) -> None:
    """Leave error.json in the run folder as a failed sweep job would (the `job_errors` callback)."""
    from hydra.core.utils import JobReturn, JobStatus
    from hydra.utils import instantiate
    from omegaconf import OmegaConf

    hc = _hydra_config()
    spec = hc.callbacks.get("job_errors") if hc is not None and hc.callbacks else None
    if spec is None:
        return
    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": hc.runtime.output_dir}}})
    ret = JobReturn(overrides=list(hc.overrides.task), hydra_cfg=hydra_cfg, status=JobStatus.FAILED)
    ret.return_value = err
    callback = instantiate(spec)
    quiet = logging.getLogger(type(callback).__module__)  # its own log line would repeat the error line
    level, quiet.level = quiet.level, logging.CRITICAL
    try:
        callback.on_job_end(config=None, job_return=ret)
    except Exception as e:  # noqa: BLE001 - the error line matters more than its copy on disk
        log.debug("could not write error.json: %s", e)
    finally:
        quiet.level = level


if __name__ == "__main__":
    main()
