"""`logger=wandb`: one W&B run per Hydra job, through the real `wandb` library.

What a run holds:
- config: the resolved Hydra config, plus `hydra.{choices, overrides, job_num, sweep_dir}` and
  `git_commit` (filterable columns on the dashboard).
- group: the sweep (so each multirun is one W&B group); job_type: the task; name: the job's overrides.
- summary: the run summary flattened with "/" (`token/kl_sc/mean`, `ppl_s`, `ppl_ratio_c_over_s`, ...).
- `<kind>/table`: a `wandb.Table` of per-text records (prompt, continuation, per-text metrics and the
  token-coloured HTML); `<kind>/hist/<metric>`: histograms of per-text divergence.
- `<task>/<name>` time series against `<task>/step` (e.g. search cycles).
- the run's output files as one artifact; HTML files also as `wandb.Html` panels.

`finish()` always closes the run (marked failed on errors), and every run is created with
`reinit="create_new"`, so the jobs of a sequential multirun never log into each other's runs.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from cdx.tracking.report import colour_scale, render_text_html

log = logging.getLogger(__name__)

_GROUP_MAX = 128  # W&B's limit on group and run-name length
_LIST_FIELDS = {"token_ids", "token_strs", "tokens", "prefix_tokens"}  # per-token data: shown as HTML only


class WandbTracker:
    """A `cdx.tracking.tracker.Tracker` backed by one W&B run per `start()`/`finish()`.

    Args (conf/logger/wandb.yaml documents each):
        project, entity, mode, notes: passed to `wandb.init` (None: W&B's own default / env var).
        dir: parent of the `wandb/` folder (None: $WANDB_DIR, else the run directory).
        group, job_type, name: None derives them from the run metadata (sweep dir, task, overrides).
        tags: extra tags, before the derived `model=...`, `decoding=...`, `sweep=...`.
        max_table_rows: rows kept in each `<kind>/table`.
        token_metric: per-token metric that shades the table's HTML column.
        artifacts: upload `log_files` paths as an artifact.
    """

    def __init__(
        self,
        project: str = "cdx",
        entity: str | None = None,
        mode: str | None = None,
        group: str | None = None,
        job_type: str | None = None,
        name: str | None = None,
        tags: Sequence[str] = (),
        notes: str | None = None,
        dir: str | None = None,
        max_table_rows: int = 1000,
        token_metric: str = "kl_sc",
        artifacts: bool = True,
    ) -> None:
        self.init_args: dict[str, Any] = {"project": project, "entity": entity, "mode": mode, "notes": notes, "dir": dir}
        self.group, self.job_type, self.name, self.tags = group, job_type, name, list(tags)
        self.max_table_rows, self.token_metric, self.artifacts = max_table_rows, token_metric, artifacts
        self.run: Any = None
        """The wandb Run, from `start()` on."""
        self.task = "run"

    def start(self, config: dict, meta: dict) -> None:
        import wandb

        self.task = meta.get("task") or "run"
        # W&B's files go under the run directory (never ./wandb), unless `dir` or $WANDB_DIR names a place.
        where = self.init_args["dir"] or os.environ.get("WANDB_DIR") or meta.get("output_dir")
        if where:
            Path(where).mkdir(parents=True, exist_ok=True)
        full = {**config, "git_commit": meta.get("git_commit"),
                "hydra": {k: meta.get(k) for k in ("choices", "overrides", "job_num", "sweep_dir")}}
        # $WANDB_MODE read now, at each run's start: W&B's process-wide settings keep the mode of the
        # first run of a process, so a later run (a sweep job in-process, the tests) could go online
        mode = self.init_args["mode"] or os.environ.get("WANDB_MODE")
        self.run = wandb.init(
            **{**self.init_args, "dir": where, "mode": mode}, config=full, group=self.group or sweep_group(meta, config),
            job_type=self.job_type or self.task, name=self.name or job_name(meta),
            tags=self.tags + choice_tags(meta), reinit="create_new",
        )
        # Time series get their own x-axis, so they never fight with the steps of table/histogram logs.
        self.run.define_metric(f"{self.task}/*", step_metric=f"{self.task}/step")

    def log_summary(self, summary: dict) -> None:
        self.run.summary.update(flatten(summary))

    def log_records(self, records: list[dict], kind: str) -> None:
        import wandb

        if not records:
            return
        if len(records) > self.max_table_rows:
            log.warning("W&B table %s: keeping the first %d of %d records (all are in the artifact)",
                        kind, self.max_table_rows, len(records))
        shown = records[: self.max_table_rows]
        rows = [table_row(r) for r in shown]
        columns = list(dict.fromkeys(k for row in rows for k in row))
        data = [[row.get(c) for c in columns] for row in rows]
        if all("token_strs" in r and "tokens" in r for r in shown):
            scale = colour_scale(shown, self.token_metric)
            columns.append("html")
            for row, r in zip(data, shown):
                row.append(wandb.Html(token_html(r, self.token_metric, scale), data_is_not_path=True))
        table = wandb.Table(columns=columns, data=data, allow_mixed_types=True)
        hists = {f"{kind}/hist/{k}": wandb.Histogram(v) for k, v in per_text_values(records).items()}
        self.run.log({f"{kind}/table": table, **hists})

    def log_step(self, values: dict, step: int) -> None:
        flat = flatten(values)
        self.run.log({f"{self.task}/step": step, **{f"{self.task}/{k}": v for k, v in flat.items()}})

    def log_files(self, paths: list[str], name: str) -> None:
        import wandb

        existing = [Path(p) for p in paths if Path(p).is_file()]
        for p in existing:
            if p.suffix == ".html":
                self.run.log({f"{name}/{p.stem}": wandb.Html(p.read_text(encoding="utf-8"), data_is_not_path=True)})
        if self.artifacts and existing:
            art = wandb.Artifact(name=f"{name}-{self.run.id}", type=name,
                                 metadata={"task": self.task, "files": [p.name for p in existing]})
            for p in existing:
                art.add_file(str(p))
            self.run.log_artifact(art)

    def finish(self, failed: bool = False) -> None:
        if self.run is not None:
            self.run.finish(exit_code=1 if failed else 0)
            self.run = None


REACH_TIMEOUT_S = 3.0
"""How long the preflight waits for the W&B server to accept a connection (wandb itself retries for minutes)."""
DEFAULT_BASE_URL = "https://api.wandb.ai"


def preflight(mode: str | None, timeout: float = REACH_TIMEOUT_S) -> str | None:
    """Why an online W&B run cannot start (no API key, server unreachable), or None when it can.

    Checked before any model loads, so a missing login costs a second, not a run. Offline and
    disabled runs need neither. The server is the configured one ($WANDB_BASE_URL, else W&B's),
    and the check is one TCP connection with a short timeout.
    """
    mode = mode or os.environ.get("WANDB_MODE") or "online"
    if mode in ("offline", "disabled", "dryrun"):
        return None
    url = os.environ.get("WANDB_BASE_URL") or DEFAULT_BASE_URL
    host, port = _host_port(url)
    if not (os.environ.get("WANDB_API_KEY") or _netrc_key(host)):
        return (f"logger=wandb runs online (mode={mode}) but no W&B API key is set for {url}: run `wandb login` "
                f"(or set WANDB_API_KEY), or log offline with WANDB_MODE=offline and `wandb sync` later")
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as e:
        return (f"logger=wandb cannot reach the W&B server {url} within {timeout:g} s ({e}); check the network "
                f"and WANDB_BASE_URL, or log offline with WANDB_MODE=offline and `wandb sync` later")
    return None


def _host_port(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "", parts.port or (443 if parts.scheme == "https" else 80)


def _netrc_key(host: str) -> str | None:
    """The key `wandb login` stored in ~/.netrc ($NETRC) for `host`, if any."""
    import netrc

    try:
        entry = netrc.netrc(os.environ.get("NETRC")).authenticators(host)
    except (OSError, netrc.NetrcParseError):
        return None
    return entry[2] if entry else None


def sweep_group(meta: dict, config: dict) -> str | None:
    """One group per sweep: the multirun's sweep dir, or the `sweep_dir` a summarize run reads.

    The path is made absolute, then relative to the current directory when inside it, so the jobs
    and the later `task=summarize` run name the same group.
    """
    where = meta.get("sweep_dir") or config.get("sweep_dir")
    if not where:
        return None
    path = Path(str(where)).expanduser().resolve()
    try:
        path = path.relative_to(Path.cwd().resolve())
    except ValueError:
        pass
    return str(path)[-_GROUP_MAX:]


def job_name(meta: dict) -> str | None:
    """The job's overrides (like Hydra's override_dirname), e.g. `model.interpolation=0.5,seed=1`."""
    overrides = [o for o in meta.get("overrides") or [] if not o.startswith(("hydra.", "logger"))]
    return ",".join(overrides)[:_GROUP_MAX] or None


def choice_tags(meta: dict) -> list[str]:
    choices = meta.get("choices") or {}
    return [f"{g}={choices[g]}"[:64] for g in ("model", "decoding", "sweep", "experiment") if choices.get(g)]


def flatten(d: dict, prefix: str = "") -> dict:
    """Nested dict -> {"a/b/c": scalar}; lists (e.g. the summary's top texts) are left out."""
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, f"{key}/"))
        elif v is None or isinstance(v, str | int | float | bool):
            out[key] = v
    return out


def table_row(record: dict) -> dict:
    """Fields of a record as table cells, with its per-text `metrics` as plain columns.

    Per-token lists are left out (the HTML column shows them); other lists become one text cell
    (e.g. a bank entry's responses, one per paragraph).
    """
    cells = {k: _cell(v) for k, v in record.items() if k not in _LIST_FIELDS | {"metrics"}}
    row = flatten(cells)
    row.update(flatten(record.get("metrics") or {}))
    return row


def _cell(value):
    if isinstance(value, list | tuple):
        if all(isinstance(v, str) for v in value):
            return "\n\n---\n\n".join(value)
        return json.dumps(value, default=str)
    return value


def per_text_values(records: list[dict]) -> dict[str, list[float]]:
    """Per-text divergence means (one value per text) for the histograms."""
    out: dict[str, list[float]] = {}
    for k in ("kl_sc_mean", "kl_cs_mean", "js_mean"):
        vals = [r["metrics"][k] for r in records if (r.get("metrics") or {}).get(k) is not None]
        if vals:
            out[k] = vals
    return out


def token_html(record: dict, metric: str, scale: float) -> str:
    """Prompt, then the continuation with each token shaded by `metric` (value on hover): the shared renderer."""
    return render_text_html(record, metric, scale)

