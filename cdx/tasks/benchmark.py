"""task=benchmark: analyse one organism pair, score whether the planted change was recovered.

One Hydra job per (pair, seed), so `-m`, suites and launchers apply:

    python -m cdx.run task=benchmark organism=refuse_cooking seed=0
    python -m cdx.run suite=zoo                      # every pair x seeds (a multirun)
    python -m cdx.run task=benchmark task.collect=multirun/suite_zoo/<stamp>   # table of a finished suite
    python -m cdx.run task=benchmark task.collect=[<sweep 1>,<sweep 2>]        # merged (written under the first)
    python -m cdx.run task=benchmark organism=brand_zephyrix task.judge=true assistant=openai   # + rubric judge

Each job builds the organism (cached), runs the analysis (`task.analyze.entry`, default
`cdx.analysis.job.analyze`, as task=analyze would with the organism's pair and the benchmark's
prompts and budget) into `<job>/analysis/`, scores its
findings against truth.json (cdx.organisms.scoring; with `task.judge=true` the run's `assistant` also
grades the top findings on a 1-5 rubric, cdx.organisms.judge) and writes `<job>/benchmark_record.json`. In a
multirun every finished job also refreshes the suite table in `<sweep dir>/benchmark/`:
benchmark.jsonl, benchmark.md, benchmark.html (+ .png where kaleido can export it).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import cast

from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from cdx.analysis.behaviours import read_behaviours
from cdx.analysis.job import AnalyzeJob, analysis_identity
from cdx.errors import CdxUserError
from cdx.io import atomic_write_json, atomic_write_text, job_folders, read_records, write_records
from cdx.io.records import FindingRecord, PromptClusters, read_model, read_samples
from cdx.organisms import available, build_organism, load_spec, load_truth
from cdx.organisms.aggregate import JUDGE_METRICS, METRICS, display_rows, table_rows
from cdx.organisms.judge import RubricJudge, RubricSettings
from cdx.organisms.records import TableRow
from cdx.organisms.scoring import MatchRule, ScopeTexts, score_behaviours, score_run
from cdx.tasks.analyze import analysis_assistant, analysis_entry, record_in_knowledge_base
from cdx.tasks.common import build_assistant, output_dir, resolved_config, resume_command, run_meta, seed_everything, tracked
from cdx.tracking.sweep import markdown, parse_override, write_plot

log = logging.getLogger(__name__)
RECORD = "benchmark_record.json"


def run(cfg: DictConfig) -> dict:
    if cfg.task.get("collect"):
        folders = collect_folders(cfg.task.collect)
        return collect(folders, folders[0] / "benchmark", cfg.task.png)
    if cfg.get("organism") is None:
        raise CdxUserError(f"task=benchmark needs organism=<name> (or suite=<name>); organisms: {available()}")
    spec = load_spec(cast(dict, OmegaConf.to_container(cfg.organism, resolve=True)))
    entry_fn = analysis_entry(str(cfg.task.analyze.entry))  # a bad name is refused before the organism is built
    out = output_dir(cfg)
    with tracked(cfg, "benchmark") as tracker:
        c0, t0 = time.process_time(), time.perf_counter()
        entry = build_organism(spec, cfg.task.get("cache_dir"))
        plant_cpu = time.process_time() - c0
        truth = load_truth(entry)
        if plant_cpu < 1:  # built earlier: charge what planting cost when it was built
            plant_cpu = float(truth.build.get("cpu_s") or 0.0)
        c1 = time.process_time()
        seed_everything(int(cfg.seed))  # as task=analyze does before it builds anything
        analysis = entry_fn(analysis_job(cfg, truth.pair, out / "analysis"))
        analysis_cpu = time.process_time() - c1
        findings = [FindingRecord.model_validate(r) for r in read_records(out / "analysis" / "findings.jsonl")]
        rule, held = MatchRule(**cfg.task.match), heldout_texts(entry)
        record = {
            "organism": spec.name, "kind": spec.kind, "seed": int(cfg.seed), "statement": spec.statement,
            **score_run(findings, truth, rule, held, rubric_judge(cfg)).dump(),
            **behaviour_score(out / "analysis", truth, rule, held),
            "n_hypotheses": analysis.n_hypotheses if analysis is not None else None,
            "plant_cpu_min": round(plant_cpu / 60, 2), "analysis_cpu_min": round(analysis_cpu / 60, 2),
            "cpu_min": round((plant_cpu + analysis_cpu) / 60, 2), "wall_min": round((time.perf_counter() - t0) / 60, 2),
        }
        atomic_write_json(out / RECORD, record)
        tracker.log_summary({k: v for k, v in record.items() if isinstance(v, (int, float))})
    sweep_dir = run_meta(cfg, "benchmark").get("sweep_dir")
    if sweep_dir and out.resolve().is_relative_to(Path(sweep_dir).resolve()):  # a job of a suite multirun
        collect([Path(sweep_dir)], Path(sweep_dir) / "benchmark", cfg.task.png)
    judged = (f" (judge alone R@1={record['judge_recovery_at_1']} R@5={record['judge_recovery_at_5']}, "
              f"{record['judge_calls']} assistant calls)") if record.get("judge") else ""
    print(f"cdx benchmark: {spec.name} seed {record['seed']}: {record['n_validated']} validated, "
          f"R@1={record['recovery_at_1']} R@5={record['recovery_at_5']}{judged}; {record['n_behaviours']} behaviours "
          f"(+{record['n_word_shifts']} word shifts), behaviour R@1={record.get('behaviour_recovery_at_1')}, "
          f"{record['cpu_min']} CPU-min -> {out}")
    return {k: v for k, v in record.items() if isinstance(v, (int, float)) or v is None}


def rubric_judge(cfg: DictConfig) -> RubricJudge | None:
    """The 1-5 rubric judge on the run's `assistant` when `task.judge` is true; None (checker rules only) otherwise."""
    if not cfg.task.get("judge"):
        return None
    if cfg.get("assistant") is None:
        raise CdxUserError("task.judge=true grades findings with the run's assistant, and none is configured: "
                         "add assistant=openai (or assistant=local), or set task.judge=false")
    settings = RubricSettings(**cast(dict, OmegaConf.to_container(cfg.task.get("rubric") or {}, resolve=True)))
    return RubricJudge(build_assistant(cfg.assistant), settings)


def analysis_job(cfg: DictConfig, pair: dict, out: Path) -> AnalyzeJob:
    """The analysis of the organism's pair (cdx.analysis.job.analyze): this config's analysis with the
    benchmark's budget merged in, on the benchmark's prompts, into `out`; tracked and recorded in the
    knowledge base as task=analyze with that config would be."""
    model = {"_target_": "cdx.models.load_pair", "_convert_": "all", **pair, "chat_template": True, "cache_dir": None}
    # resolved before the budget is merged in: a value that follows another (validate.sampling.max_new_tokens
    # follows sample's) keeps the analysis's own, as it always has in the benchmark
    analysis_cfg = cast(DictConfig, OmegaConf.merge(OmegaConf.create(resolved_config(cfg)["analysis"]),
                                                    cfg.task.budget or {}))
    settings = cast(dict, OmegaConf.to_container(analysis_cfg, resolve=True))
    prompts = list(dict.fromkeys(instantiate(cfg.task.prompts).load()))  # a prompt in both splits would leak
    # the config of that task=analyze run: logged by its tracker and kept with its knowledge-base rows
    ran = {**resolved_config(cfg), "task": {"_target_": "cdx.tasks.analyze.run", "name": "analyze"}, "model": model,
           "prompts": OmegaConf.to_container(cfg.task.prompts, resolve=True), "analysis": settings, "output_dir": str(out)}
    return AnalyzeJob(
        out=out, prompts=prompts, analysis=instantiate(settings), load_pair=lambda: instantiate(model),
        identity=analysis_identity(int(cfg.seed), model, settings, prompts), seed=int(cfg.seed),
        resume=bool(cfg.resume), assistant=analysis_assistant(analysis_cfg, cfg.get("assistant")),
        tracking=lambda: tracked(cfg, "analyze", config=ran, out=out),
        before_finish=lambda folder: record_in_knowledge_base(ran.get("knowledge"), model, ran, folder,
                                                              resume_command(cfg)))


def behaviour_score(folder: Path, truth, rule: MatchRule, held: list[str]) -> dict:
    """The analysis run's behaviours against the planted change (`score_behaviours`), as record fields;
    `scope_correct` as 1.0 / 0.0 so that it averages over seeds."""
    behaviours = read_behaviours(folder / "behaviours.jsonl") if (folder / "behaviours.jsonl").is_file() else []
    score = score_behaviours(behaviours, truth, rule, held, scope_texts(folder)).dump()
    if score.get("scope_correct") is not None:
        score["scope_correct"] = float(score["scope_correct"])
    return score


def scope_texts(folder: Path) -> ScopeTexts | None:
    """The comparison model's held-out texts of the run with their prompts' clusters (None: not written)."""
    if not ((folder / "validation.jsonl").is_file() and (folder / "clusters.json").is_file()):
        return None
    clusters = read_model(folder / "clusters.json", PromptClusters)
    texts = [r for r in read_samples(folder / "validation.jsonl") if r.mode == "plain_c"]
    return ScopeTexts(texts=[r.text for r in texts], clusters=[clusters.assignment[r.prompt_index] for r in texts])


def heldout_texts(entry: Path) -> list[str]:
    """The organism's verification samples (both sides), for the agreement rule; [] if not verified."""
    path = entry / "verify_samples.jsonl"
    return [r["text"] for r in read_records(path)] if path.is_file() else []


def collect_folders(value) -> list[Path]:
    """`task.collect` as folders: one path, a comma-separated list, or a YAML list (suites run in parts)."""
    items = [value] if isinstance(value, (str, Path)) else list(value)
    return [Path(str(p).strip()) for item in items for p in str(item).split(",") if str(p).strip()]


def collect(dirs: list[Path], out: Path, png: bool = False) -> dict:
    """benchmark.jsonl / .md / .html of every job under the sweep folder(s); no job is left out silently.

    Several folders (a suite run in parts, or more seeds added later) are merged; the same
    (organism, seed) in two jobs is refused, naming both, so no result is silently counted twice.
    A job without a readable benchmark_record.json (failed, killed, still running, damaged) is a
    `missing` row of the table, named in the printed line with why.
    """
    records, paths, missing = [], [], []
    for job in benchmark_jobs(dirs):
        if isinstance(job, MissingJob):
            missing.append(job)
        else:
            paths.append(job[0])
            records.append(job[1])
    if not records and not missing:
        where = ", ".join(f"{d}/*/" for d in dirs)
        raise FileNotFoundError(f"no {RECORD} under {where}: is it the folder of a task=benchmark multirun?")
    seen: dict[tuple, Path] = {}
    for path, r in zip(paths, records):
        key = (r["organism"], r["seed"])
        if key in seen:
            raise CdxUserError(f"{r['organism']} seed {r['seed']} is in two jobs, {seen[key].parent} and "
                               f"{path.parent}: remove one of them (or collect the folders apart), so no run is "
                               "counted twice")
        seen[key] = path
    out.mkdir(parents=True, exist_ok=True)
    rows = table_rows(records) + [m.row() for m in missing]
    write_records(out / "benchmark.jsonl", records)
    atomic_write_json(out / "benchmark_table.json", [r.dump() for r in rows])
    atomic_write_text(out / "benchmark.md", markdown_table(rows))
    plot(rows, out / "benchmark.html", png)
    planted = next((r for r in rows if r.pair == "ALL planted"), TableRow(pair="ALL planted", kind="-",
                                                                             expected="behaviour", n_seeds=0))
    lacking = f"; {len(missing)} job(s) without a result: " + "; ".join(map(str, missing)) if missing else ""
    print(f"cdx benchmark: {len(records)} runs of {len({r['organism'] for r in records})} pairs{lacking}; "
          f"Recovery@1 {planted.recovery_at_1}, Recovery@5 {planted.recovery_at_5} -> {out}")
    return {"n_runs": len(records), "n_missing": len(missing), "recovery_at_1": planted.recovery_at_1,
            "recovery_at_5": planted.recovery_at_5}


@dataclass
class MissingJob:
    """A benchmark job folder without a usable record: where it is, what it was asked to run, why."""

    folder: Path
    organism: str | None
    seed: int | None
    why: str

    def __str__(self) -> str:
        return f"{self.folder} ({self.organism or '?'} seed {self.seed if self.seed is not None else '?'}): {self.why}"

    def row(self) -> TableRow:
        """A table row: `expected` is `missing`, every metric None, `error` says why."""
        none = {k: v for m in METRICS for k, v in ((m, None), (f"{m}_ci", (None, None)))}
        return TableRow(pair=self.organism or str(self.folder), kind="-", expected="missing", n_seeds=0, **none,
                        error=self.why, dir=str(self.folder))


def benchmark_jobs(dirs: list[Path]) -> list[tuple[Path, dict] | MissingJob]:
    """(record path, record) of every job folder under `dirs`, or a `MissingJob` saying why there is none."""
    jobs: list[tuple[Path, dict] | MissingJob] = []
    for d in dirs:
        listed = {folder.resolve(): overrides for _, folder, overrides in job_folders(d)}
        folders = set(listed) | {p.parent.resolve() for p in d.glob(f"*/{RECORD}")}
        folders |= {p.resolve() for p in (d.iterdir() if d.is_dir() else []) if p.is_dir() and p.name.isdigit()}
        for folder in sorted(folders, key=lambda f: (len(f.name), f.name)):
            jobs.append(_job(folder, listed.get(folder, [])))
    return jobs


def _job(folder: Path, overrides: list[str]) -> tuple[Path, dict] | MissingJob:
    asked = dict(parse_override(o) for o in overrides)
    organism = None if asked.get("organism") is None else str(asked["organism"])
    given = asked.get("seed")
    seed = given if isinstance(given, int) else None
    path = folder / RECORD
    if not path.is_file():
        error = folder / "error.json"
        why = f"no {RECORD}"
        if error.is_file():
            try:
                e = json.loads(error.read_text(encoding="utf-8"))
                why += f"; it failed ({e.get('type')}: {e.get('message')})"
            except (OSError, ValueError):
                why += "; its error.json is unreadable"
        else:
            why += " (still running, killed, or its folder was copied in part)"
        return MissingJob(folder, organism, seed, why)
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        if not isinstance(record, dict) or not {"organism", "seed", "expected"} <= set(record):
            raise ValueError("not a benchmark record (organism, seed, expected)")
    except (OSError, ValueError) as e:
        return MissingJob(folder, organism, seed, f"{RECORD} is unreadable ({e}); rerun the job with resume=true")
    return path, record


def markdown_table(rows: list[TableRow]) -> str:
    return markdown(display_rows(rows), drop=())


def plot(rows: list[TableRow], path: Path, png: bool) -> list[Path]:
    """Recovery@1 / @5 per planted pair and validated findings per null pair, with CI error bars."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("recovery (planted pairs)", "validated findings (null pairs)"))
    planted = [r for r in rows if r.expected == "behaviour"]
    judged = [m for m in JUDGE_METRICS if any(r.metric(m)[0] is not None for r in planted)]
    for m in ("recovery_at_1", "recovery_at_5", *judged):
        fig.add_bar(x=[r.pair for r in planted], y=[r.metric(m)[0] for r in planted], name=m, row=1, col=1,
                    error_y=_err(planted, m))
    nulls = [r for r in rows if r.expected == "none"]
    fig.add_bar(x=[r.pair for r in nulls], y=[r.n_validated for r in nulls], name="n_validated",
                row=1, col=2, error_y=_err(nulls, "n_validated"))
    fig.update_layout(barmode="group", height=450)
    return write_plot(fig, path, png)


def _err(rows: list[TableRow], m: str) -> dict:
    """Plotly error bars of metric `m`: the distances from the mean to the ends of its interval (0 where none)."""
    lo, hi = [], []
    for v, (a, b) in (r.metric(m) for r in rows):
        lo.append(v - a if v is not None and a is not None else 0)
        hi.append(b - v if v is not None and b is not None else 0)
    return {"type": "data", "symmetric": False, "array": hi, "arrayminus": lo}
