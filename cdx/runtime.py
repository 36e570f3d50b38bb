"""How many CPU threads a run computes on: the CPUs it may use, shared fairly with whatever runs beside it.

A machine's core count is the wrong budget in three common cases, each measured in
docs/benchmarks.md ("Shared machines"):

- a cluster job or container may run on fewer CPUs than the machine has: the affinity mask
  (`taskset`, SLURM's cpuset) and the cgroup CPU quota (`docker --cpus`, Kubernetes limits) say how
  many, and torch's default (the machine's cores) oversubscribes them;
- a local launcher (`hydra/launcher=joblib`) runs several jobs at once, each of which would take
  every core;
- other processes may already keep CPUs busy. An intra-op team of several threads then stalls at
  every barrier whenever the scheduler parks one of its threads: a decode step runs hundreds of
  tiny parallel regions, so a 2-thread job beside 2 CPU-bound processes took ~7x its idle time,
  where one thread took ~4x.

`runtime.threads=auto` (the default) takes the CPUs this process may run on, divides them among
the launcher's concurrent jobs, and leaves out the CPUs other processes keep busy when the run
starts (sampled for 0.2 s). An integer fixes the count. The choice is made once,
before any model loads, logged, and applies to every later forward of the run (two-model pairs
run side by side on half of it, `cdx.decoding.streams`).
"""

from __future__ import annotations

import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import psutil
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cdx.errors import CdxUserError

log = logging.getLogger(__name__)
CGROUP_ROOT = Path("/sys/fs/cgroup")
BUSY_WINDOW_S = 0.2
"""How long the start-up sample of other processes' CPU use lasts."""
BUSY_SLACK = 0.5
"""CPUs busy with others are rounded to the nearest whole CPU: daemons and a terminal (< 0.5 CPU)
cost no thread, a competitor that keeps one CPU busy costs one."""


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
        if v != "auto" and v < 1:
            raise ValueError("must be 'auto' or an integer >= 1")
        return v


@dataclass(frozen=True)
class ThreadBudget:
    """The thread count chosen for a run, with what it was chosen from (logged, and in run summaries)."""

    threads: int
    cpus: float
    """CPUs this process may use: the affinity mask, capped by the cgroup quota."""
    jobs: int
    busy: float
    """CPUs kept busy by other processes when the run started (0 when not sampled)."""

    def describe(self) -> str:
        return (f"{self.threads} CPU thread{'s' * (self.threads != 1)} ({self.cpus:g} CPUs available, "
                f"{self.jobs} concurrent job{'s' * (self.jobs != 1)}, {self.busy:.1f} CPUs busy with other processes)")


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
    quotas = [q for q in quotas if q is not None]
    return min(quotas) if quotas else None


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


def busy_cpus_of_others(window: float = BUSY_WINDOW_S) -> float:
    """CPUs (of those this process may use) kept busy by other processes over `window` seconds.

    Processes at a lower priority (nice > 0) count too: the scheduler still gives them slices, and
    each slice can park one thread of an intra-op team that the others then wait for at a barrier
    (a 2-thread decode beside niced test runs took 140 s where 1 thread took 9 s, docs/benchmarks.md).
    """
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    me = psutil.Process()

    def snapshot():
        per_cpu = psutil.cpu_times(percpu=True)
        chosen = [per_cpu[i] for i in cpus if i < len(per_cpu)] if cpus else per_cpu
        busy = sum(t.user + t.nice + t.system + getattr(t, "irq", 0) + getattr(t, "softirq", 0) for t in chosen)
        own = me.cpu_times()
        return time.perf_counter(), busy, own.user + own.system

    t0, busy0, own0 = snapshot()
    time.sleep(window)
    t1, busy1, own1 = snapshot()
    return max(0.0, (busy1 - busy0) - (own1 - own0)) / max(t1 - t0, 1e-6)


# ---- the choice ---------------------------------------------------------------------------------------


def choose(settings: RuntimeSettings, jobs: int = 1, busy: float | None = None) -> ThreadBudget:
    """The run's thread count: fixed, or (auto) this process's share of the CPUs left by others."""
    jobs = jobs if settings.jobs == "auto" else settings.jobs
    cpus = available_cpus()
    if settings.threads != "auto":
        return ThreadBudget(settings.threads, cpus, jobs, 0.0)
    busy = busy_cpus_of_others() if busy is None else busy
    return ThreadBudget(auto_threads(cpus, jobs, busy), cpus, jobs, busy)


def auto_threads(cpus: float, jobs: int, busy: float) -> int:
    """floor(cpus / jobs), less the CPUs others keep busy (rounded: under half a CPU costs nothing), >= 1."""
    share = math.floor(cpus / max(jobs, 1) + 1e-9)
    free = cpus - math.floor(busy + BUSY_SLACK)
    return max(1, min(share, math.floor(free + 1e-9)))


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
