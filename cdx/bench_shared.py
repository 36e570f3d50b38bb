"""Shared machines: `python -m cdx.bench shared [--repeats N]`.

What a researcher sees when cdx is not alone on the machine, each figure a ratio of wall times
measured side by side in one run (the reference is timed next to the case it divides):

- k identical decode jobs (whole CLI runs) started at once, against the same k run one after
  another: total throughput (target >= 0.9x for k = 2, 4);
- one decode job beside 2 CPU-bound competitor processes, against the same job on an idle
  machine (target <= 2.5x; a fair share of 2 cores among 2 competitors and a 2-thread job is 2x),
  under the default `runtime.threads=auto` and, to show what decided it, under a fixed 2 threads
  (torch's default) with cdx's passive OpenMP wait and with libgomp's own default (cdx before);
- `task=analyze` on a base + LoRA adapter pair beside 2 competitors against idle (target <= 3x).

Every job is a real `python -m cdx.run` process (start-up and model load included), so the
ratios are what a user's wall clock shows.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from cdx.bench import Row, Setup, Timing, machine, random_lora, ratio

DECODE = ["prompts.limit=16", "decoding.max_new_tokens=48", "decoding.min_new_tokens=48", "report.print_top=false"]
ANALYZE = ["task=analyze", "prompts.limit=24", "analysis.sample.max_new_tokens=32", "report.print_top=false",
           "analysis.report.print_table=false", "knowledge.enabled=false"]
COMPETITOR = [sys.executable, "-c", "while True: pass"]


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "WANDB_MODE": "offline",
           "PYTHONUNBUFFERED": "1"}
    return {**env, **(extra or {})}


def _at_once(jobs: list[list[str]], env: dict[str, str]) -> float:
    """Start every command together; wall seconds until the last one ends (each must succeed)."""
    t = time.perf_counter()
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for cmd in jobs]
    for p in procs:
        _, err = p.communicate()
        if p.returncode != 0:
            raise RuntimeError(f"a benchmark job failed (exit {p.returncode}): {err[-2000:]}")
    return time.perf_counter() - t


@contextlib.contextmanager
def competitors(n: int) -> Iterator[None]:
    """n CPU-bound processes (a busy Python loop each) for the duration of the block."""
    procs = [subprocess.Popen(COMPETITOR) for _ in range(n)]
    try:
        time.sleep(0.5)  # running before the job starts, as a neighbour's work would be
        yield
    finally:
        for p in procs:
            p.kill()
            p.wait()


class Jobs:
    """Fresh run folders for CLI jobs under one temporary directory."""

    def __init__(self, root: Path, model: list[str]):
        self.root, self.model, self.n = root, model, 0

    def cmd(self, overrides: list[str], workload: list[str] = DECODE) -> list[str]:
        self.n += 1
        out = self.root / f"job{self.n}"
        return [sys.executable, "-m", "cdx.run", *self.model, *workload, *overrides, f"hydra.run.dir={out}"]


def _model_args(setup: Setup) -> list[str]:
    return ["model=tiny_random"] if setup.model == "tiny-random" else []


def bench_shared(setup: Setup) -> tuple[list[Row], str]:
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as tmp:
        jobs = Jobs(Path(tmp) / "decode", _model_args(setup))
        env = _env()
        _at_once([jobs.cmd([])], env)  # warm-up: the GGUF cache and the OS file cache
        for group in (lambda: _k_jobs(jobs, env, setup.repeats), lambda: _beside_competitors(jobs, env, setup.repeats),
                      lambda: _analyze_beside_competitors(jobs, env, setup, Path(tmp))):
            rows += _shown(group())
    return rows, machine("whole CLI jobs; runtime.threads=auto unless named")


def _shown(rows: list[Row]) -> list[Row]:
    """Each group's rows on stderr as soon as they are measured: a later failure keeps them."""
    for r in rows:
        secs = "" if r.timing is None or not r.timing.seconds else f"{r.timing.median:.1f} s"
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x"
        print(f"  {r.name}: {secs} {ratio} ({r.target})", file=sys.stderr, flush=True)
    return rows


def _k_jobs(jobs: Jobs, env: dict[str, str], repeats: int) -> list[Row]:
    rows = []
    for k in (1, 2, 4):
        seq, par = Timing(f"{k} one after another"), Timing(f"{k} at once")
        for _ in range(repeats):
            seq.seconds.append(sum(_at_once([jobs.cmd([])], env) for _ in range(k)))
            par.seconds.append(_at_once([jobs.cmd([]) for _ in range(k)], env))
        if k == 1:
            rows.append(Row("one decode job alone (16 prompts x 2 samples x 48 tokens, default pair)", seq, 1.0,
                            "reference"))
            continue
        rows.append(Row(f"{k} decode jobs one after another", seq, None, "(reference)"))
        rows.append(Row(f"{k} decode jobs at once: throughput vs one after another", par,
                        ratio(seq, par), ">= 0.9x"))
    return rows


CONTENDED = {
    "runtime.threads=auto (default)": ([], {}),
    "runtime.threads=2, passive OpenMP wait (cdx's default policy)": (["runtime.threads=2"], {}),
    # cdx before: 2 threads and libgomp's own default wait (spin, then sleep). cdx sets PASSIVE unless
    # OMP_WAIT_POLICY is set; an empty value keeps libgomp's default (libgomp warns about it on stderr).
    "runtime.threads=2, libgomp's default wait (cdx before)": (["runtime.threads=2"], {"OMP_WAIT_POLICY": ""}),
}


def _beside_competitors(jobs: Jobs, env: dict[str, str], repeats: int) -> list[Row]:
    idle = Timing("idle")
    loaded = {name: Timing(name) for name in CONTENDED}
    for _ in range(repeats):
        idle.seconds.append(_at_once([jobs.cmd([])], env))
        with competitors(2):
            for name, (overrides, extra) in CONTENDED.items():
                loaded[name].seconds.append(_at_once([jobs.cmd(overrides)], _env(extra)))
    rows = [Row("one decode job, idle machine", idle, 1.0, "reference")]
    for name, t in loaded.items():
        target = "<= 2.5x" if name.endswith("(default)") else "(what decided auto)"
        rows.append(Row(f"one decode job beside 2 CPU-bound processes, {name}", t, ratio(t, idle),
                        target))
    return rows


def _analyze_beside_competitors(jobs: Jobs, env: dict[str, str], setup: Setup, tmp: Path) -> list[Row]:
    if setup.model == "tiny-random":
        pair = ["model=tiny_random"]
    else:
        from cdx.models import load_pair

        base = load_pair({"path": setup.model}, {"path": setup.model}).starting.model
        adapter = random_lora(base, tmp / "adapter", rank=8)
        pair = ["model=smollm2_lora", f"model.comparison.adapter={adapter}"]
    analyze = Jobs(jobs.root.parent / "analyze", pair)  # its own folders: job numbers restart at 1
    idle, loaded = Timing("idle"), Timing("loaded")
    for _ in range(max(1, setup.repeats - 1)):  # minutes each: one repeat fewer than the decode rows
        idle.seconds.append(_at_once([analyze.cmd([], ANALYZE)], env))
        with competitors(2):
            loaded.seconds.append(_at_once([analyze.cmd([], ANALYZE)], env))
    return [Row("task=analyze, adapter pair (random rank-8 LoRA), idle machine", idle, 1.0, "reference"),
            Row("task=analyze, adapter pair, beside 2 CPU-bound processes", loaded,
                ratio(loaded, idle), "<= 3x")]
