"""Entry point: `python -m cdx.run [task=decode|score|search|summarize] [overrides]`.

A thin Hydra wrapper: the config is validated (`cdx.config.validate_config`) before any model
loads, then the task, a `_target_` in conf/task/, is called as `task_fn(cfg)`.

A user error (bad value, missing or malformed input, unreachable assistant) ends with one line on
stderr naming the bad value, exit status 2 and no traceback; `CDX_DEBUG=1` or `hydra.verbose=true`
shows the traceback. Ctrl-C ends with one line saying what was saved and how to resume (status 130).
"""

from __future__ import annotations

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
from cdx.resources import conf_dir

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
log = logging.getLogger(__name__)

USER_ERROR_EXIT, INTERRUPT_EXIT = 2, 130


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
        if cause is None or _debug() or _multirun():
            raise  # a bug (or a sweep job: Hydra records it in error.json and runs the other jobs)
        _record_failure(cause)
        print(redact(f"cdx: error: {cause} (CDX_DEBUG=1 shows the traceback)"), file=sys.stderr)
        sys.exit(USER_ERROR_EXIT)
    objective = cfg.get("optimized_metric")
    return metrics.get(objective) if objective else None


def user_error(e: BaseException) -> BaseException | None:
    """The user error behind `e` (unwrapping Hydra's instantiation wrapper), or None for a bug."""
    from hydra.errors import InstantiationException

    from cdx.assistant import AssistantError

    kinds: tuple[type[BaseException], ...] = (CdxUserError, ValueError, FileNotFoundError, FileExistsError,
                                              IsADirectoryError, NotADirectoryError, AssistantError)
    try:
        from cdx.search import SearchFailed

        kinds += (SearchFailed,)
    except ImportError:  # pragma: no cover - search is part of cdx; guard only against a broken install
        pass
    while isinstance(e, InstantiationException) and e.__cause__ is not None:
        e = e.__cause__
    return e if isinstance(e, kinds) else None


def interrupted_line(out: Path, multirun: bool = False) -> str:
    """`interrupted: <what is saved>; resume with: python -m cdx.run ... resume=true`."""
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
