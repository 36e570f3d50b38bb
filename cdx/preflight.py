"""Checks made before anything is written and before any model loads: the run folder and the tracker.

`cdx.tasks.callbacks.GuardRunDir` calls `check_run(config)` (a single run) and `check_sweep(config,
n_jobs)` (a multirun) before Hydra writes `.hydra/` or opens its log file, so a run that could not
save its work is refused in a second, with one line per problem and exit status 2, not after
minutes of model loading with a traceback:

- the run folder (or the sweep folder and its job folders) must be a folder, or creatable: no
  path part may be a file;
- it must be writable (probed with an unnamed temporary file, so the probe leaves nothing behind;
  `os.access` says yes to root on a read-only mount);
- its disk must have room for the expected output, `expected_bytes`: a documented estimate with
  a margin, not a promise; a run that still fills the disk stops with the resume command
  (`cdx.run.environment_error`);
- `logger=wandb` online needs an API key and a reachable server (`cdx.tracking.wandb_tracker.preflight`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from cdx.errors import CdxUserError

FIXED_BYTES = 8 * 2**20
"""Per run: run.json, summary.json, report.html, .hydra/, the log, a W&B offline folder (measured 2-6 MB)."""
BYTES_PER_TOKEN = 1024
"""Per generated token of a decode record: measured about 390 bytes (token string, id, per-token
metrics of both sides, the text itself), kept at 2.5 times that as a margin."""
UNKNOWN_PROMPTS = 1000
"""Prompts assumed when `prompts.limit` is null (the file is not read before the run starts)."""


class PreflightError(CdxUserError):
    """One or more problems found before the run started; `problems` holds one line each."""

    def __init__(self, problems: list[str]):
        super().__init__("\n".join(problems))
        self.problems = problems


def expected_bytes(cfg: DictConfig) -> int:
    """Disk a run needs: FIXED_BYTES + texts x max_new_tokens x BYTES_PER_TOKEN (when it decodes)."""
    decoding = OmegaConf.select(cfg, "decoding", default=None)
    if decoding is None:
        return FIXED_BYTES
    prompts = OmegaConf.select(cfg, "prompts.limit", default=None) or UNKNOWN_PROMPTS
    per_prompt = int(decoding.get("generations_per_prefix") or 1)
    tokens = int(decoding.get("max_new_tokens") or 0)
    return FIXED_BYTES + int(prompts) * per_prompt * tokens * BYTES_PER_TOKEN


def folder_problems(folder: Path, need: int, what: str) -> list[str]:
    """Why `folder` cannot hold a run's `need` bytes ([] when it can); `what` names it (`hydra.run.dir=...`)."""
    existing = _nearest_existing(folder)
    if existing != folder and not existing.is_dir():
        return [f"{what}: {existing} is a file, so the folder cannot be made; choose another output folder"]
    if not folder.is_dir() and folder.exists():
        return [f"{what} is a file, not a folder; remove it or choose another output folder"]
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as e:
        return [f"{what}: cannot write in {existing} ({e.strerror or e}); make it writable or choose another "
                f"output folder"]
    free = shutil.disk_usage(existing).free
    if free < need:
        return [f"{what}: only {_mib(free)} free on its disk, and the run needs about {_mib(need)} "
                f"(cdx.preflight.expected_bytes: prompts x generations x max_new_tokens x "
                f"{BYTES_PER_TOKEN} bytes + {_mib(FIXED_BYTES)}); free space or choose another output folder"]
    return []


def check_run(config: DictConfig, folder: Path) -> None:
    """Refuse a single run whose `folder` or tracker cannot work (`PreflightError`, one line a problem)."""
    problems = folder_problems(folder, expected_bytes(config), f"hydra.run.dir={folder}")
    problems += tracker_problems(config)
    if problems:
        raise PreflightError(problems)


def check_sweep(config: DictConfig, sweep_dir: Path, n_jobs: int) -> None:
    """The same for a sweep: its folder must hold `n_jobs` runs; existing job folders must be usable."""
    what = f"hydra.sweep.dir={sweep_dir}"
    problems = folder_problems(sweep_dir, n_jobs * expected_bytes(config), what)
    if not problems and sweep_dir.is_dir():
        for job in sorted(p for p in sweep_dir.iterdir() if p.name.isdigit()):
            problems += folder_problems(job, 0, f"sweep job folder {job}")
    problems += tracker_problems(config)
    if problems:
        raise PreflightError(problems)


def tracker_problems(config: DictConfig) -> list[str]:
    """What keeps the configured tracker from starting (a W&B run online without a key or a network)."""
    target = str(OmegaConf.select(config, "logger._target_", default="") or "")
    if not target.endswith("WandbTracker"):
        return []
    from cdx.tracking.wandb_tracker import preflight

    problem = preflight(OmegaConf.select(config, "logger.mode", default=None))
    return [problem] if problem else []


def _nearest_existing(folder: Path) -> Path:
    """`folder`, or its nearest ancestor that exists (a file counts: it blocks the path)."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder


def _mib(n: int) -> str:
    return f"{n / 2**20:.1f} MiB"
