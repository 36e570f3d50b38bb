"""task=summarize: one table and one plot of a finished sweep, also logged to W&B when enabled.

    python -m cdx.run task=summarize sweep_dir=multirun/2026-01-01/12-00-00

`sweep_dir` is a top-level key (set by conf/task/summarize.yaml). Everything is written to
`<sweep_dir>/summary/`: sweep_summary.csv, sweep_summary.md, sweep_plot.html (and .png where kaleido
can export it). A failed job is a row with status `failed` and its error; a job that never started
(a killed sweep) is a row with status `missing`.

Also here: `WriteJobError`, the Hydra callback that leaves `error.json` in a failed job's folder.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

from hydra.core.utils import JobReturn, JobStatus
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf

from cdx.io import RunDirError, atomic_write_json, atomic_write_text
from cdx.io.redact import format_exception, redact
from cdx.tracking.sweep import SweepTable, collect, figure, markdown, write_csv, write_plot

log = logging.getLogger(__name__)


def run(cfg: DictConfig) -> dict:
    from cdx.tasks.common import output_dir, tracked  # imports torch: not at startup, where WriteJobError loads

    sweep_dir = Path(str(cfg.sweep_dir))
    if not sweep_dir.is_dir():
        raise FileNotFoundError(f"sweep_dir={sweep_dir} is not a folder; give the hydra.sweep.dir of a multirun")
    out = output_dir(cfg)
    with tracked(cfg, "summarize") as tracker:
        table = collect(sweep_dir, dict(cfg.task.columns), expected_jobs(sweep_dir))
        if not table.rows:
            raise FileNotFoundError(f"no multirun jobs (folders with .hydra/hydra.yaml) under {sweep_dir}")
        files = write_outputs(table, out, cfg.task)
        findings = sweep_findings(table)
        if findings:  # analysis jobs: each finding's rates and q against the swept values
            write_csv(findings, out / "sweep_findings.csv")
            atomic_write_text(out / "sweep_findings.md", markdown(findings))
            files += [out / "sweep_findings.csv", out / "sweep_findings.md"]
        tracker.log_summary({"sweep_dir": str(sweep_dir), "swept": ",".join(table.swept), "n_jobs": len(table.rows),
                             **{f"n_{k}": v for k, v in table.counts.items()}})
        tracker.log_records(table.rows, "sweep")
        tracker.log_files([str(f) for f in files], "sweep_summary")
    print(markdown(table.rows, drop=("dir",)))
    if findings:
        print(markdown(findings, drop=("job",)))
    print(f"cdx summarize: {len(table.rows)} jobs {table.counts} -> {out}")
    return {"n_jobs": len(table.rows), **{f"n_{k}": v for k, v in table.counts.items()}}


def sweep_findings(table: SweepTable) -> list[dict]:
    """One row per (analysis job, tested hypothesis), led by the job's swept values; [] without analyses."""
    from cdx.analysis.sweep import finding_rows, is_analysis_dir  # imports torch: not at startup (WriteJobError)

    jobs = [({k: r[k] for k in table.swept}, r["dir"]) for r in table.rows
            if r["status"] == "ok" and r.get("dir") and is_analysis_dir(r["dir"])]
    return finding_rows(jobs)


def write_outputs(table: SweepTable, out: Path, task_cfg: DictConfig) -> list[Path]:
    """CSV, Markdown and plot files of the table."""
    write_csv(table.rows, out / "sweep_summary.csv")
    atomic_write_text(out / "sweep_summary.md", markdown(table.rows))
    panels = {title: list(metrics) for title, metrics in task_cfg.plot.items()}
    plots = write_plot(figure(table, task_cfg.x, panels), out / "sweep_plot.html", task_cfg.png)
    return [out / "sweep_summary.csv", out / "sweep_summary.md", *plots]


def expected_jobs(sweep_dir: Path) -> list[list[str]] | None:
    """Job i -> its overrides, recomputed from the sweep's multirun.yaml as Hydra's BasicSweeper does.

    None for other sweepers (e.g. Optuna picks its trials as it goes) or when the file is unreadable.
    """
    path = sweep_dir / "multirun.yaml"
    if not path.is_file():
        return None
    try:
        return sweep_jobs(OmegaConf.load(path).hydra)
    except Exception as e:  # noqa: BLE001 - the table is still right without the missing rows
        log.warning("cannot list the jobs of %s (%s); jobs that never started are not shown", path, e)
        return None


def sweep_jobs(hydra: DictConfig) -> list[list[str]] | None:
    """Job i -> its overrides, from a sweep's `hydra` config as the BasicSweeper splits them; None for others."""
    from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
    from hydra.core.override_parser.overrides_parser import OverridesParser

    if not str(hydra.sweeper.get("_target_", "")).endswith("BasicSweeper"):
        return None
    params = [f"{k}={v}" for k, v in (hydra.sweeper.get("params") or {}).items()]
    overrides = OverridesParser.create().parse_overrides([*params, *hydra.overrides.task])
    return BasicSweeper.split_arguments(overrides, None)[0]


class WriteJobError(Callback):
    """Hydra callback: a job that raised leaves `error.json` (type, message, traceback) in its folder.

    Hydra 1.3 runs every job of a sweep even when one fails (it raises only after the last job), so
    this file is what tells task=summarize which jobs failed and why. Secrets are redacted from the
    message and the chained traceback (cdx.io.redact). A job refused because its folder already
    holds a run (`cdx.io.RunDirError`: rerun without resume, other settings, locked) writes nothing:
    the folder's run is intact, and an error.json would mark it failed.
    """

    def on_job_end(self, config: DictConfig, job_return: JobReturn, **kwargs) -> None:
        if job_return.status != JobStatus.FAILED:
            return
        err = job_return._return_value  # the exception; `.return_value` would re-raise it
        err = getattr(err, "cause", err)  # cdx.tasks.callbacks.SweepJobFailed: record the job's own error
        assert job_return.hydra_cfg is not None  # Hydra sets it on every job it ran
        folder = Path(job_return.hydra_cfg.hydra.runtime.output_dir)
        if isinstance(err, RunDirError):
            # to the console only: the job's log belongs to the run it refused (GuardRunDir restores it)
            print(f"cdx: job refused: {redact(str(err))}", file=sys.stderr)
            return
        message = redact(str(err))
        atomic_write_json(folder / "error.json", {
            "type": type(err).__name__, "message": message, "overrides": list(job_return.overrides or []),
            "traceback": format_exception(err),
        })
        log.error("job failed (%s: %s); details in %s", type(err).__name__, message, folder / "error.json")

