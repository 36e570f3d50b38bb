"""A finished sweep as one table and one plot: every job's swept values next to its headline metrics.

A sweep dir (Hydra's `hydra.sweep.dir`) holds one folder per job, each with `.hydra/hydra.yaml`
(its job number and overrides) and, when it finished, `summary.json`. A job that raised leaves
`error.json` (written by `cdx.tasks.summarize.WriteJobError`); a job with neither was killed or is
still running. Each job becomes one row: `job`, `status` (ok | failed | incomplete | missing), the
swept values, the metric columns, `error` and `dir`.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import yaml

from cdx.io import atomic_write_text, job_folders
from cdx.io.rundir import RUN_FILE

log = logging.getLogger(__name__)

STATUS_OK, STATUS_FAILED, STATUS_INCOMPLETE, STATUS_MISSING = "ok", "failed", "incomplete", "missing"


def parse_override(override: str) -> tuple[str, object]:
    """`model.interpolation=0.5` -> ("model.interpolation", 0.5); `+x=1`/`++x=1` -> ("x", 1)."""
    key, _, value = override.partition("=")
    try:
        parsed = yaml.safe_load(value) if value else None
    except yaml.YAMLError:
        parsed = value
    return key.lstrip("+~"), parsed


def job_dirs(sweep_dir: str | Path) -> list[tuple[int, Path, list[str]]]:
    """(job number, folder, overrides) of every multirun job under `sweep_dir`, by job number."""
    return job_folders(sweep_dir)


def dotted(d: dict, path: str):
    """d["a"]["b"]["c"] for "a.b.c"; None when a level is missing."""
    for part in path.split("."):
        if not isinstance(d, dict) or part not in d:
            return None
        d = d[part]
    return d


def job_row(num: int, folder: Path, overrides: list[str], columns: dict[str, str]) -> dict:
    """One job's row: status, overrides, the metric columns read from its summary.json.

    run.json's status decides when the job has one: a finished run stays ok whatever happened
    after it (a refused rerun writes no error.json, but an older cdx's might have).
    """
    row = {"job": num, "status": STATUS_INCOMPLETE, "overrides": dict(parse_override(o) for o in overrides)}
    # an analysis job's headline numbers are its analysis.json
    summary = _json_or_none(folder / "summary.json") or _json_or_none(folder / "analysis.json")
    error = _json_or_none(folder / "error.json")
    info = _json_or_none(folder / RUN_FILE) or {}
    if info:
        finished = info.get("status") == "finished"
    else:  # an older run: an error.json older than summary.json is from an attempt a rerun fixed
        finished = bool(summary) and (error is None or (folder / "summary.json").stat().st_mtime >=
                                      (folder / "error.json").stat().st_mtime)
    if finished and summary:
        row["status"] = STATUS_OK
    elif error is not None:
        row["status"], row["error"] = STATUS_FAILED, f"{error.get('type', 'Error')}: {error.get('message', '')}"
    elif (folder / "summary.json").is_file():
        row["error"] = f"{folder / 'summary.json'} is unreadable (cut off or damaged); resume the job to rewrite it"
    else:
        row["error"] = "no summary.json or error.json: still running, killed, or failed without WriteJobError"
    row.update({name: dotted(summary or {}, path) for name, path in columns.items()})
    row["dir"] = str(folder)
    return row


def _json_or_none(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        log.warning("%s is unreadable (%s); ignored", path, e)
        return None
    return data if isinstance(data, dict) else None


@dataclass
class SweepTable:
    """The rows of a sweep, which override keys were swept, and which columns are metrics."""

    rows: list[dict]
    """One flat dict per job: job, status, swept values, metric columns, error, dir."""
    swept: list[str]
    metrics: list[str]

    @property
    def counts(self) -> dict[str, int]:
        return {s: sum(r["status"] == s for r in self.rows)
                for s in (STATUS_OK, STATUS_FAILED, STATUS_INCOMPLETE, STATUS_MISSING)}


def collect(sweep_dir: str | Path, columns: dict[str, str], expected: list[list[str]] | None = None) -> SweepTable:
    """Every job of the sweep, plus a `missing` row for each expected job that left no folder.

    `expected` is the sweep's job list (job i -> its overrides) when it is known.
    """
    raw = [job_row(num, folder, ov, columns) for num, folder, ov in job_dirs(sweep_dir)]
    seen = {r["job"] for r in raw}
    for num, ov in enumerate(expected or []):
        if num not in seen:
            raw.append(missing_row(num, Path(sweep_dir) / str(num), ov, columns))
            seen.add(num)
    for folder in sorted(p for p in Path(sweep_dir).iterdir() if p.is_dir() and p.name.isdigit()):
        if int(folder.name) not in seen:  # a job folder Hydra's files no longer describe: named, not dropped
            raw.append(missing_row(int(folder.name), folder, [], columns))
    raw.sort(key=lambda r: r["job"])
    swept = swept_keys(raw)
    rows = [{"job": r["job"], "status": r["status"], **{k: r["overrides"].get(k) for k in swept},
             **{c: r.get(c) for c in columns}, "error": r.get("error"), "dir": r.get("dir")} for r in raw]
    return SweepTable(rows, swept, list(columns))


def missing_row(num: int, folder: Path, overrides: list[str], columns: dict[str, str]) -> dict:
    """The row of an expected job without a readable `.hydra/hydra.yaml`: never started, or its files damaged."""
    why = (f"its folder {folder} has no readable .hydra/hydra.yaml (damaged, or written by a refused run)"
           if folder.is_dir() else f"never started: no folder {folder}")
    return {"job": num, "status": STATUS_MISSING, "overrides": dict(parse_override(o) for o in overrides),
            **dict.fromkeys(columns), "error": why, "dir": str(folder) if folder.is_dir() else None}


def swept_keys(rows: list[dict]) -> list[str]:
    """Override keys whose value differs between jobs, in command-line order (all keys for one job)."""
    keys = list(dict.fromkeys(k for r in rows for k in r["overrides"]))
    if len(rows) <= 1:
        return keys
    return [k for k in keys if len({json.dumps(r["overrides"].get(k), default=str) for r in rows}) > 1]


def write_csv(rows: list[dict], path: Path) -> None:
    """The table as CSV, written atomically (a reader never sees half a table)."""
    import io

    columns = list(dict.fromkeys(k for r in rows for k in r))
    buf = io.StringIO(newline="")
    writer = csv.DictWriter(buf, fieldnames=columns)
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(path, buf.getvalue())


def markdown(rows: list[dict], drop: tuple[str, ...] = ("dir",)) -> str:
    """A GitHub Markdown table (hand-written: pandas' to_markdown needs `tabulate`, not a cdx dependency)."""
    columns = [c for c in dict.fromkeys(k for r in rows for k in r) if c not in drop]

    def cell(v) -> str:
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return ""
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        return text.replace("|", "\\|").replace("\n", " ")

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(cell(r.get(c)) for c in columns) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_axis(table: SweepTable, x: str | None = None) -> tuple[str | None, list[str]]:
    """The swept key on the x axis (given, else the first numeric one) and the keys that split lines."""
    if x is not None:
        if x not in table.swept:
            raise ValueError(f"x={x!r} is not a swept key of this sweep; swept keys: {table.swept}")
    else:
        numeric = [k for k in table.swept if all(isinstance(r[k], int | float) and not isinstance(r[k], bool)
                                                 for r in table.rows if r["status"] == STATUS_OK)]
        x = (numeric or table.swept or [None])[0]  # type: ignore[list-item]  # None: no swept key at all
    return x, [k for k in table.swept if k != x]


def figure(table: SweepTable, x: str | None, panels: dict[str, list[str]]):
    """Plotly figure: one panel per entry of `panels` (title -> metric columns), finished jobs only.

    Lines split by the other swept keys; a metric `<m>_mean` with `<m>_ci95_low/high` columns gets
    error bars; a panel titled like "perplexity" uses a log axis.
    """
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    x, split = plot_axis(table, x)
    ok = [r for r in table.rows if r["status"] == STATUS_OK]
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=list(panels))
    groups = sorted({tuple(str(r[k]) for k in split) for r in ok})
    for col, metrics in enumerate(panels.values(), 1):
        for group in groups:
            rows = sorted((r for r in ok if tuple(str(r[k]) for k in split) == group),
                          key=lambda r: (r[x] is None, r[x]) if x else r["job"])
            xs = [r[x] if x else r["job"] for r in rows]
            for m in metrics:
                if not any(r.get(m) is not None for r in rows):
                    continue
                label = " ".join([m, *(f"{k}={v}" for k, v in zip(split, group))])
                fig.add_trace(go.Scatter(x=xs, y=[r.get(m) for r in rows], mode="lines+markers", name=label,
                                         error_y=_error_bars(rows, m)), row=1, col=col)
    for col, title in enumerate(panels, 1):
        fig.update_xaxes(title_text=x or "job", row=1, col=col)
        if "perplexity" in title:
            fig.update_yaxes(type="log", row=1, col=col)
    fig.update_layout(title=f"sweep over {', '.join(table.swept) or 'nothing'}", template="plotly_white")
    return fig


def _error_bars(rows: list[dict], metric: str) -> dict | None:
    if not metric.endswith("_mean"):
        return None
    lo, hi = metric[: -len("_mean")] + "_ci95_low", metric[: -len("_mean")] + "_ci95_high"
    if not all(r.get(lo) is not None and r.get(hi) is not None for r in rows):
        return None
    return {"type": "data", "symmetric": False, "array": [r[hi] - r[metric] for r in rows],
            "arrayminus": [r[metric] - r[lo] for r in rows]}


def write_plot(fig, html_path: Path, png: bool) -> list[Path]:
    """Self-contained HTML (works offline), and a PNG when kaleido can export one (it needs Chrome)."""
    fig.write_html(html_path, include_plotlyjs=True)
    written = [html_path]
    if png:
        png_path = html_path.with_suffix(".png")
        try:
            fig.write_image(png_path)
            written.append(png_path)
        except Exception as e:  # noqa: BLE001 - kaleido missing, no Chrome, ...: the HTML plot is enough
            log.warning("no PNG plot (%s: %s); the HTML plot is at %s", type(e).__name__, " ".join(str(e).split()),
                        html_path)
    return written
