"""task=summarize on hand-built sweep folders (laid out as Hydra writes them), and the error callback."""

from __future__ import annotations

import csv
import json
import logging
import math

import pytest
import yaml
from hydra.core.utils import JobReturn, JobStatus
from omegaconf import OmegaConf

from cdx.tasks import summarize
from cdx.tasks.summarize import WriteJobError, expected_jobs
from cdx.tracking.recording import RecordingTracker
from cdx.tracking.sweep import collect, figure, markdown, parse_override, plot_axis, write_plot
from tests.conftest import compose

COLUMNS = {"kl_sc_mean": "token.kl_sc.mean", "kl_sc_ci95_low": "token.kl_sc.ci95_low",
           "kl_sc_ci95_high": "token.kl_sc.ci95_high", "ppl_s": "ppl_s", "ppl_c": "ppl_c"}
PANELS = {"divergence": ["kl_sc_mean"], "perplexity": ["ppl_s", "ppl_c"]}


def fake_summary(kl: float) -> dict:
    return {"token": {"kl_sc": {"mean": kl, "ci95_low": kl * 0.9, "ci95_high": kl * 1.1, "q99": 2 * kl},
                      "kl_cs": {"mean": kl}, "js": {"mean": kl / 10}},
            "top1_agreement": 1 - kl / 10, "ppl_s": 10.0, "ppl_c": 10.0 + kl, "ppl_ratio_c_over_s": 1 + kl / 10,
            "n_texts": 4, "n_tokens": 16, "top": [{"id": "x"}]}


def make_job(sweep, num, overrides, kl=None, error=None, mode="MULTIRUN", folder=None):
    d = sweep / (folder or str(num))
    (d / ".hydra").mkdir(parents=True)
    hydra = {"mode": mode, "job": {"num": num if mode == "MULTIRUN" else None}, "overrides": {"task": overrides}}
    (d / ".hydra" / "hydra.yaml").write_text(yaml.safe_dump({"hydra": hydra}))
    if kl is not None:
        (d / "summary.json").write_text(json.dumps(fake_summary(kl)))
    if error is not None:
        (d / "error.json").write_text(json.dumps({"type": "ValueError", "message": error}))
    return d


def write_multirun_yaml(sweep, params: dict, task: list[str], sweeper="basic_sweeper.BasicSweeper"):
    hydra = {"sweeper": {"_target_": f"hydra._internal.core_plugins.{sweeper}", "params": params},
             "overrides": {"task": task}}
    OmegaConf.save(OmegaConf.create({"hydra": hydra, "seed": 0}), sweep / "multirun.yaml")


@pytest.fixture
def sweep(tmp_path):
    """A 2x2 sweep over interpolation x temperature: job 2 failed, job 3 was killed mid-run."""
    s = tmp_path / "sweep"
    grid = [("0", "0.7"), ("0", "1.0"), ("0.5", "0.7"), ("0.5", "1.0")]
    for num, (lam, t) in enumerate(grid):
        ov = ["model=tiny_random", f"model.interpolation={lam}", f"decoding.temperature={t}"]
        make_job(s, num, ov, kl={0: 0.0, 1: 1.0}.get(num), error="boom" if num == 2 else None)
    make_job(s, 0, ["task=summarize"], mode="RUN", folder="summary")  # a summarize run's own folder
    make_job(s, 9, ["x=1"], folder=".submitit/123/fake")  # submitit's bookkeeping is never a job
    write_multirun_yaml(s, {"model.interpolation": "0,0.5"}, ["model=tiny_random", "decoding.temperature=0.7,1.0"])
    return s


def test_one_row_per_job_with_swept_values_and_status(sweep):
    table = collect(sweep, COLUMNS)
    assert table.swept == ["model.interpolation", "decoding.temperature"]  # model=tiny_random is constant
    assert [(r["job"], r["status"], r["model.interpolation"], r["decoding.temperature"]) for r in table.rows] == [
        (0, "ok", 0, 0.7), (1, "ok", 0, 1.0), (2, "failed", 0.5, 0.7), (3, "incomplete", 0.5, 1.0)]
    assert table.rows[0]["kl_sc_mean"] == 0.0 and table.rows[1]["ppl_c"] == 11.0
    assert table.rows[2]["error"] == "ValueError: boom" and table.rows[2]["kl_sc_mean"] is None
    assert "summary.json" in table.rows[3]["error"]
    assert table.counts == {"ok": 2, "failed": 1, "incomplete": 1, "missing": 0}
    assert list(table.rows[0]) == ["job", "status", "model.interpolation", "decoding.temperature", *COLUMNS,
                                   "error", "dir"]


def test_a_rerun_that_succeeded_clears_an_old_error(sweep):
    import os

    (sweep / "2" / "summary.json").write_text(json.dumps(fake_summary(0.5)))
    os.utime(sweep / "2" / "summary.json", (0, 0))
    assert collect(sweep, COLUMNS).rows[2]["status"] == "failed"  # the error came after that summary
    os.utime(sweep / "2" / "error.json", (0, 0))
    row = collect(sweep, COLUMNS).rows[2]
    assert row["status"] == "ok" and row["kl_sc_mean"] == 0.5 and row["error"] is None


def test_jobs_that_never_started_are_missing_rows(sweep):
    import shutil

    shutil.rmtree(sweep / "3")
    expected = expected_jobs(sweep)
    assert expected == [["model.interpolation=0", "model=tiny_random", "decoding.temperature=0.7"],
                        ["model.interpolation=0", "model=tiny_random", "decoding.temperature=1.0"],
                        ["model.interpolation=0.5", "model=tiny_random", "decoding.temperature=0.7"],
                        ["model.interpolation=0.5", "model=tiny_random", "decoding.temperature=1.0"]]
    row = collect(sweep, COLUMNS, expected).rows[3]
    assert (row["status"], row["model.interpolation"], row["decoding.temperature"]) == ("missing", 0.5, 1.0)


def test_expected_jobs_only_for_the_basic_sweeper(tmp_path):
    assert expected_jobs(tmp_path) is None  # no multirun.yaml
    write_multirun_yaml(tmp_path, {}, ["a=1,2"], sweeper="x.OptunaSweeper")
    assert expected_jobs(tmp_path) is None
    write_multirun_yaml(tmp_path, {}, ["a=1,2", "b=x"])
    assert expected_jobs(tmp_path) == [["a=1", "b=x"], ["a=2", "b=x"]]
    write_multirun_yaml(tmp_path, {"a": "1,2"}, ["a=3,4"])  # the command line wins, as in Hydra
    assert expected_jobs(tmp_path) == [["a=3"], ["a=4"]]


def test_parse_override():
    assert parse_override("model.interpolation=0.5") == ("model.interpolation", 0.5)
    assert parse_override("+x.y=true") == ("x.y", True)
    assert parse_override("~z") == ("z", None)
    assert parse_override("name=a:b") == ("name", "a:b")
    assert parse_override("v=[1,2") == ("v", "[1,2")


def test_markdown_table():
    md = markdown([{"job": 0, "a": 0.123456, "b": None, "e": "x|y\nz", "dir": "/d"},
                   {"job": 1, "a": math.nan, "b": True, "e": "", "dir": "/d"}])
    assert md.splitlines() == ["| job | a | b | e |", "|---|---|---|---|", "| 0 | 0.1235 |  | x\\|y z |",
                               "| 1 |  | True |  |"]


def test_plot_axis(sweep):
    table = collect(sweep, COLUMNS)
    assert plot_axis(table) == ("model.interpolation", ["decoding.temperature"])
    assert plot_axis(table, "decoding.temperature") == ("decoding.temperature", ["model.interpolation"])
    with pytest.raises(ValueError, match="not a swept key"):
        plot_axis(table, "seed")
    for r in table.rows:
        r["model.interpolation"] = f"pair{r['job']}"  # a categorical sweep (e.g. model=a,b) still plots
    assert plot_axis(table)[0] == "decoding.temperature"


def test_figure_plots_finished_jobs_with_error_bars(sweep):
    fig = figure(collect(sweep, COLUMNS), None, PANELS)
    names = [t.name for t in fig.data]
    assert names == ["kl_sc_mean decoding.temperature=0.7", "kl_sc_mean decoding.temperature=1.0",
                     "ppl_s decoding.temperature=0.7", "ppl_c decoding.temperature=0.7",
                     "ppl_s decoding.temperature=1.0", "ppl_c decoding.temperature=1.0"]
    assert list(fig.data[0].x) == [0] and fig.data[0].error_y.array is not None  # job 2 failed: not plotted
    assert fig.data[2].error_y.array is None
    assert fig.layout.yaxis2.type == "log" and fig.layout.xaxis.title.text == "model.interpolation"


def test_write_plot_png_is_optional(tmp_path, caplog, monkeypatch):
    import plotly.graph_objects as go

    fig = go.Figure()
    monkeypatch.setattr(go.Figure, "write_image", lambda self, path: (_ for _ in ()).throw(RuntimeError("no Chrome")))
    with caplog.at_level(logging.WARNING):
        assert write_plot(fig, tmp_path / "p.html", png=True) == [tmp_path / "p.html"]
    assert "no PNG plot (RuntimeError: no Chrome)" in caplog.text
    assert "plotly" in (tmp_path / "p.html").read_text()[:5000].lower()
    monkeypatch.setattr(go.Figure, "write_image", lambda self, path: path.write_bytes(b"png"))
    assert write_plot(fig, tmp_path / "p.html", png=True) == [tmp_path / "p.html", tmp_path / "p.png"]
    assert write_plot(fig, tmp_path / "q.html", png=False) == [tmp_path / "q.html"]


def test_run_writes_table_plot_and_logs(sweep, tmp_path, capsys):
    out = tmp_path / "out"
    cfg = compose(["task=summarize", f"sweep_dir={sweep}", "task.png=false", "task.x=decoding.temperature"],
                  output_dir=out)
    cfg.task.columns = {"kl_sc_mean": "token.kl_sc.mean", "ppl_c": "ppl_c"}
    cfg.task.plot = {"div": ["kl_sc_mean"]}
    cfg.logger = {"_target_": "cdx.tracking.recording.RecordingTracker"}
    assert summarize.run(cfg) == {"n_jobs": 4, "n_ok": 2, "n_failed": 1, "n_incomplete": 1, "n_missing": 0}
    with (out / "sweep_summary.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["model.interpolation"] for r in rows] == ["0", "0", "0.5", "0.5"]
    assert list(rows[0]) == ["job", "status", "model.interpolation", "decoding.temperature", "kl_sc_mean", "ppl_c",
                             "error", "dir"]
    assert (out / "sweep_summary.md").read_text() in capsys.readouterr().out
    html = (out / "sweep_plot.html").read_text()
    assert '"title":{"text":"decoding.temperature"}' in html and '"text":"div"' in html  # task.x, task.plot
    assert not (out / "sweep_plot.png").exists()
    t = RecordingTracker.last
    assert t.meta["task"] == "summarize" and t.config["sweep_dir"] == str(sweep) and t.finished is False
    assert t.summaries[0]["n_failed"] == 1 and t.summaries[0]["swept"] == "model.interpolation,decoding.temperature"
    assert len(t.records["sweep"][0]) == 4
    assert [p.rsplit("/", 1)[1] for p in t.files[0][1]] == ["sweep_summary.csv", "sweep_summary.md", "sweep_plot.html"]


def test_run_refuses_what_is_not_a_sweep(tmp_path):
    cfg = compose(["task=summarize", f"sweep_dir={tmp_path / 'nope'}"], output_dir=tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="not a folder"):
        summarize.run(cfg)
    cfg = compose(["task=summarize", f"sweep_dir={tmp_path}"], output_dir=tmp_path / "out")
    with pytest.raises(FileNotFoundError, match="no multirun jobs"):
        summarize.run(cfg)


def _raise():
    raise ValueError("bad lambda")


def test_write_job_error_callback(tmp_path):
    try:
        _raise()
    except ValueError as e:
        err = e
    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    WriteJobError().on_job_end(None, JobReturn(overrides=["a=1"], hydra_cfg=hydra_cfg, status=JobStatus.COMPLETED))
    assert not (tmp_path / "error.json").exists()
    WriteJobError().on_job_end(None, JobReturn(overrides=["a=1"], hydra_cfg=hydra_cfg, status=JobStatus.FAILED,
                                               _return_value=err))
    saved = json.loads((tmp_path / "error.json").read_text())
    assert saved["type"] == "ValueError" and saved["message"] == "bad lambda" and saved["overrides"] == ["a=1"]
    assert "in _raise" in saved["traceback"]


def test_write_job_error_redacts_secrets_from_message_and_chained_traceback(tmp_path, monkeypatch):
    from cdx.io.redact import add_secrets_from_config

    key = "sk-live-7Hq2Lm9Pz4Rt8Wv1"
    monkeypatch.setenv("CDX_TEST_SERVICE_KEY", key)
    add_secrets_from_config({"assistant": {"api_key_env": "CDX_TEST_SERVICE_KEY"}})
    try:
        try:
            raise PermissionError(f"401 from server: invalid key Bearer {key}")
        except PermissionError as inner:
            raise RuntimeError(f"assistant refused {key}") from inner
    except RuntimeError as e:
        err = e
    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    WriteJobError().on_job_end(None, JobReturn(overrides=[], hydra_cfg=hydra_cfg, status=JobStatus.FAILED,
                                               _return_value=err))
    text = (tmp_path / "error.json").read_text()
    assert key[:8] not in text and "invalid key Bearer [REDACTED]" in text  # the chained cause is there, clean


def test_a_refused_rerun_leaves_no_error_json(tmp_path):
    from cdx.io import RunExistsError

    hydra_cfg = OmegaConf.create({"hydra": {"runtime": {"output_dir": str(tmp_path)}}})
    WriteJobError().on_job_end(None, JobReturn(overrides=[], hydra_cfg=hydra_cfg, status=JobStatus.FAILED,
                                               _return_value=RunExistsError("holds a finished run")))
    assert not (tmp_path / "error.json").exists()


def test_a_finished_run_stays_ok_despite_a_later_error_json(sweep):
    (sweep / "0" / "run.json").write_text(json.dumps({"kind": "decode", "status": "finished"}))
    (sweep / "0" / "error.json").write_text(json.dumps({"type": "RunExistsError", "message": "refused"}))
    (sweep / "1" / "run.json").write_text(json.dumps({"kind": "decode", "status": "running"}))
    rows = collect(sweep, COLUMNS).rows
    assert rows[0]["status"] == "ok" and rows[0]["kl_sc_mean"] == 0.0
    assert rows[1]["status"] == "incomplete"  # a resumed run that has not finished again


def _analysis_job(sweep, num, alpha, rate_c, validated):
    d = make_job(sweep, num, ["task=analyze", f"decoding.rule.alpha={alpha}"])
    finding = {"id": "h-ye", "statement": "says 'ye' far more often", "direction": "gained", "rate_s": 0.0,
               "rate_c": rate_c, "effect": rate_c, "effect_ci": [rate_c / 2, rate_c * 1.5], "q": 0.01 if validated else 0.5,
               "validated": validated}
    (d / "findings.jsonl").write_text(json.dumps(finding) + "\n")
    (d / "analysis.json").write_text(json.dumps({"n_validated": int(validated), "n_hypotheses": 1, "mde_80": 0.2}))
    (d / "run.json").write_text(json.dumps({"kind": "analyze", "status": "finished"}))


def test_a_sweep_of_analyses_tabulates_each_finding_against_the_swept_value(tmp_path, capsys):
    sweep, out = tmp_path / "sweep", tmp_path / "out"
    for num, (alpha, rate, ok) in enumerate([(0, 0.05, False), (1, 0.2, True), (2, 0.4, True)]):
        _analysis_job(sweep, num, alpha, rate, ok)
    cfg = compose(["task=summarize", f"sweep_dir={sweep}", "task.png=false"], output_dir=out)
    cfg.task.columns = {"n_validated": "n_validated"}
    cfg.task.plot = {"findings": ["n_validated"]}
    cfg.task.x = "decoding.rule.alpha"
    assert summarize.run(cfg)["n_ok"] == 3  # analysis.json counts as the job's summary
    with (out / "sweep_findings.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [(r["decoding.rule.alpha"], r["id"], float(r["rate_c"]), r["validated"]) for r in rows] == [
        ("0", "h-ye", 0.05, "False"), ("1", "h-ye", 0.2, "True"), ("2", "h-ye", 0.4, "True")]
    assert (out / "sweep_findings.md").read_text().count("h-ye") == 3
