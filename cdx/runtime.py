"""How many CPU threads a run computes on: the CPUs it may use, shared fairly with whatever runs beside it.

A machine's core count is the wrong budget in three common cases, each measured in
docs/benchmarks.md ("Shared machines"):

- a cluster job or container may run on fewer CPUs than the machine has: the affinity mask
  (`taskset`, SLURM's cpuset) and the cgroup CPU quota (`docker --cpus`, Kubernetes limits) say how
  many, and torch's default (the machine's cores) oversubscribes them;
- a local launcher (`hydra/launcher=joblib`) runs several jobs at once, each of which would take
  every core;
- other processes may keep CPUs busy. An intra-op team then waits at every barrier for a thread
  the scheduler has parked, and a decode step runs hundreds of tiny parallel regions: with
  libgomp's default wait (spin, then sleep) a 2-thread decode beside 2 CPU-bound processes took
  2.4x to 37x its idle time. The cure is the passive wait (cdx/__init__.py), not fewer threads:
  passive, 2 threads took 1.9x (a fair share is 2x) where 1 thread took 2.8x.

`runtime.threads=auto` (the default) takes the CPUs this process may run on and divides them
among the launcher's concurrent jobs. An integer fixes the count. The choice is made once, before
any model loads, logged, and applies to every later forward of the run (two-model pairs run side
by side on half of it, `cdx.decoding.streams`).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdx.errors import CdxUserError

log = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")


class RuntimeSettings(BaseModel):
    """The `runtime` block of the config (execution only: never part of a run's identity)."""

    model_config = ConfigDict(extra="forbid")
    threads: Literal["auto"] | int = Field("auto")
    """Intra-op CPU threads for the run: `auto` or a fixed count >= 1."""
    jobs: Literal["auto"] | int = Field("auto")
    """Concurrent jobs sharing the CPUs: `auto` = the local launcher's n_jobs (joblib), else 1."""

    @field_validator("threads", "jobs")
    @classmethod
    def _at_least_one(cls, v: str | int) -> str | int:
        if v != "auto" and (not isinstance(v, int) or v < 1):
            raise ValueError("must be 'auto' or an integer >= 1")
        return v


@dataclass(frozen=True)
class ThreadBudget:
    """The thread count chosen for a run, with what it was chosen from (logged, and in run summaries)."""

    threads: int
    cpus: float
    """CPUs this process may use: the affinity mask, capped by the cgroup quota."""
    jobs: int

    def describe(self) -> str:
        return (f"{self.threads} CPU thread{'s' * (self.threads != 1)} ({self.cpus:g} CPUs available, "
                f"{self.jobs} concurrent job{'s' * (self.jobs != 1)})")


# ---- what this process may use ----------------------------------------------------------------------


def affinity_cpus() -> int:
    """CPUs in this process's affinity mask (taskset, cpusets); all online CPUs where there is none."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS / Windows
        return os.cpu_count() or 1


def cgroup_quota_cpus(root: Path = CGROUP_ROOT, proc_cgroup: Path = Path("/proc/self/cgroup")) -> float | None:
    """The tightest CPU quota (in CPUs) on this process's cgroup path, or None if there is none.

    cgroup v2: `cpu.max` holds "<quota> <period>" or "max <period>" in each cgroup on the path from
    ours up to the root; v1: `cpu.cfs_quota_us` / `cpu.cfs_period_us` under the cpu controller.
    """
    try:
        lines = proc_cgroup.read_text().splitlines()
    except OSError:
        return None
    quotas = []
    for line in lines:
        _, controllers, path = line.split(":", 2)
        if controllers == "":  # v2 unified hierarchy
            quotas += [_v2_quota(d / "cpu.max") for d in _up_from(root, path)]
        elif "cpu" in controllers.split(","):
            base = root / controllers
            if not base.is_dir():
                base = root / "cpu"
            quotas += [_v1_quota(d) for d in _up_from(base, path)]
    known = [q for q in quotas if q is not None]
    return min(known) if known else None


def _up_from(root: Path, path: str) -> list[Path]:
    parts = [p for p in path.strip("/").split("/") if p]
    return [root.joinpath(*parts[:i]) for i in range(len(parts), -1, -1)]


def _v2_quota(f: Path) -> float | None:
    try:
        quota, period = f.read_text().split()[:2]
    except (OSError, ValueError):
        return None
    return None if quota == "max" else int(quota) / int(period)


def _v1_quota(d: Path) -> float | None:
    try:
        quota, period = int((d / "cpu.cfs_quota_us").read_text()), int((d / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return None if quota <= 0 or period <= 0 else quota / period


def available_cpus() -> float:
    """CPUs this process may run on: the affinity mask, capped by a cgroup quota (which may be fractional)."""
    quota = cgroup_quota_cpus()
    return float(affinity_cpus()) if quota is None else min(float(affinity_cpus()), quota)


# ---- the choice ---------------------------------------------------------------------------------------


def choose(settings: RuntimeSettings, jobs: int = 1) -> ThreadBudget:
    """The run's thread count: fixed, or (auto) this process's share of the CPUs it may use."""
    jobs = jobs if settings.jobs == "auto" else settings.jobs
    cpus = available_cpus()
    threads = settings.threads if settings.threads != "auto" else auto_threads(cpus, jobs)
    return ThreadBudget(threads, cpus, jobs)


def auto_threads(cpus: float, jobs: int) -> int:
    """floor(cpus / jobs), at least 1. Busy neighbours are not subtracted: with the passive OpenMP
    wait (cdx/__init__.py) a 2-thread job beside 2 CPU-bound processes took 1.9x its idle time and a
    1-thread job 2.8x; beside 2 niced ones, 1.1x and 1.8x (docs/benchmarks.md, "Shared machines")."""
    return max(1, math.floor(cpus / max(jobs, 1) + 1e-9))


def configure(block, jobs: int = 1) -> ThreadBudget:
    """Validate the config's `runtime` block, choose the thread count and apply it to torch; log it.

    Called before any model loads and before any side worker starts (their counts derive from it).
    """
    import torch

    from cdx.decoding.streams import set_total_threads

    block = dict(block or {})
    unknown = sorted(set(block) - set(RuntimeSettings.model_fields))
    if unknown:
        raise CdxUserError(f"runtime.{unknown[0]} is not a runtime option (valid: {', '.join(RuntimeSettings.model_fields)})")
    try:
        settings = RuntimeSettings.model_validate(block)
    except ValidationError as e:
        name = str(e.errors()[0]["loc"][0])
        raise CdxUserError(f"runtime.{name}={block.get(name)!r} is not valid: must be 'auto' or an integer >= 1") from None
    budget = choose(settings, jobs)
    torch.set_num_threads(budget.threads)
    set_total_threads(budget.threads)
    log.info("runtime: %s", budget.describe())
    return budget
