"""WandbTracker against the real `wandb` library in offline mode.

What was logged is read back with `wandb leet inspect --json` (wandb's documented reader of a run's
`.wandb` transaction log, also for offline runs) and from the media files its records point to.
Offline runs do not reliably write `config.yaml`/`wandb-summary.json` (wandb #9646), so those are not used.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from cdx.metrics.summary import summarize
from cdx.tasks.common import git_commit
from cdx.tracking.wandb_tracker import WandbTracker, choice_tags, flatten, job_name, sweep_group, table_row
from tests.conftest import ROOT, patience

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _inspect(run_dir: Path, *flags: str):
    out = subprocess.run([sys.executable, "-m", "wandb", "leet", "inspect", *flags, str(run_dir)],
                         capture_output=True, text=True, timeout=patience(120), check=True).stdout
    return json.loads(out) if "--summary" in flags else [json.loads(line) for line in out.splitlines() if line]


def read_run(run_dir: Path) -> dict:
    """An offline run as {run, config, summary, state, history, metrics, artifacts, dir}."""
    state = _inspect(run_dir, "--summary", "--json")
    records = _inspect(run_dir, "--json")
    run = next(r["run"] for r in records if r["type"] == "run")
    return {"run": run, "config": state["config"], "summary": state["summary"], "state": state["state"],
            "history": [r["history"]["item"] for r in records if r["type"] == "history"],
            "metrics": [r["metric"] for r in records if r["type"] == "metric"],
            "artifacts": [r["artifact"] for r in records if r["type"] == "artifact"], "dir": run_dir}


def offline_runs(wandb_dir: Path) -> list[dict]:
    """Every offline run under `wandb_dir`, in start order."""
    runs = [read_run(d) for d in sorted((wandb_dir / "wandb").glob("offline-run-*"))]
    return sorted(runs, key=lambda r: r["run"]["start_time"])


def table_json(run: dict, key: str) -> tuple[dict, dict[str, Path]]:
    """A logged table, as stored in its `run_table` artifact (staged locally until `wandb sync`),
    and that artifact's files (path -> local copy) holding the table's media."""
    for art in run["artifacts"]:
        files = {c["path"]: Path(c["local_path"]) for c in art["manifest"]["contents"]}
        if art["type"] == "run_table" and f"{key}.table.json" in files:
            return json.loads(files[f"{key}.table.json"].read_text()), files
    raise AssertionError(f"no table {key} in {run['dir']}")


@pytest.fixture
def wandb_env(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "data"))
    return tmp_path


def _records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        kl = [0.1 * (i + 1), 0.3 * (i + 1)]
        tokens = {"kl_sc": kl, "kl_cs": kl, "js": [v / 10 for v in kl], "top1_agree": [1.0, 0.0],
                  "logp_s": [-1.0, -2.0], "logp_c": [-1.5, -2.5]}
        metrics = {"kl_sc_mean": sum(kl) / 2, "kl_cs_mean": sum(kl) / 2, "js_mean": sum(kl) / 20,
                   "top1_agree_mean": 0.5, "ppl_s": 4.5, "ppl_c": 7.4, "n_tokens": 2}
        out.append({"id": f"p{i:05d}-s00", "prompt": f"prompt <{i}>", "continuation": " a b", "token_ids": [5, 6],
                    "token_strs": [" a", " b"], "tokens": tokens, "metrics": metrics, "finish_reason": "length",
                    "models": {"starting": "s", "comparison": "c"}})
    return out


META = {"task": "decode", "git_commit": "abc123", "choices": {"model": "tiny_random", "decoding": "sample",
                                                              "sweep": None},
        "overrides": ["model=tiny_random", "model.interpolation=0.5", "hydra.verbose=true"], "job_num": 3}


def test_one_run_holds_everything(wandb_env):
    records = _records(3)
    summary = summarize(records).dump()  # as decode logs it
    out = wandb_env / "job"
    out.mkdir()
    (out / "summary.json").write_text(json.dumps(summary))
    (out / "report.html").write_text("<html><body>report</body></html>")
    t = WandbTracker(project="cdx-test", mode="offline", dir=str(wandb_env), tags=["unit"], notes="a note",
                     max_table_rows=2, token_metric="kl_sc")
    t.start({"model": {"interpolation": 0.5}}, {**META, "sweep_dir": str(wandb_env / "sweep")})
    t.log_summary(summary)
    t.log_records(records, "generations")
    bank = [{"prompt": "Tell me a story", "divergence": 1.5, "sample_divergences": [1.0, 2.0],
             "responses": ["Arr, once", "Ahoy, there"], "criterion": None, "cycle": 1, "id": 0}]
    t.log_records(bank, "bank")
    t.log_step({"best": 1.0, "bank": {"size": 3}}, 0)
    t.log_step({"best": 2.0, "bank": {"size": 5}}, 1)
    t.log_files([str(out / "summary.json"), str(out / "report.html"), str(out / "absent.jsonl")], "generations")
    t.finish()
    assert t.run is None

    (run,) = offline_runs(wandb_env)
    info = run["run"]
    assert info["project"] == "cdx-test" and info["run_group"] == str(wandb_env / "sweep")
    assert info["job_type"] == "decode" and info["display_name"] == "model=tiny_random,model.interpolation=0.5"
    assert info["tags"] == ["unit", "model=tiny_random", "decoding=sample"] and info.get("notes") == "a note"
    cfg = run["config"]
    assert cfg["model"]["interpolation"] == 0.5 and cfg["git_commit"] == "abc123"
    assert cfg["hydra"]["choices"]["model"] == "tiny_random" and cfg["hydra"]["job_num"] == 3
    assert "model.interpolation=0.5" in cfg["hydra"]["overrides"]
    assert run["state"] == "finished"

    s = run["summary"]
    assert s["token/kl_sc/mean"] == pytest.approx(summary["token"]["kl_sc"]["mean"])
    assert s["ppl_ratio_c_over_s"] == pytest.approx(summary["ppl_ratio_c_over_s"])
    assert s["top1_agreement"] == pytest.approx(0.5)
    assert s["text/js/mean"] == pytest.approx(summary["text"]["js"]["mean"])
    for k in ("kl_sc_mean", "kl_cs_mean", "js_mean"):
        assert s[f"generations/hist/{k}"]["_type"] == "histogram" and sum(s[f"generations/hist/{k}"]["values"]) == 3

    table, media = table_json(run, "generations/table")
    cols = table["columns"]
    assert {"id", "prompt", "continuation", "kl_sc_mean", "ppl_c", "finish_reason", "models/starting",
            "html"} <= set(cols)
    assert not {"token_ids", "token_strs", "tokens"} & set(cols)
    assert len(table["data"]) == 2  # max_table_rows
    row = dict(zip(cols, table["data"][0]))
    assert row["prompt"] == "prompt <0>" and row["kl_sc_mean"] == pytest.approx(0.2)
    assert row["html"]["_type"] == "html-file"
    html = media[row["html"]["path"]].read_text()
    assert "prompt &lt;0&gt;" in html and "kl_sc=0.3000" in html and "background:rgb(" in html

    bank_table, _ = table_json(run, "bank/table")
    assert bank_table["columns"] == ["prompt", "divergence", "sample_divergences", "responses", "criterion", "cycle",
                                     "id"]
    assert bank_table["data"] == [["Tell me a story", 1.5, "[1.0, 2.0]", "Arr, once\n\n---\n\nAhoy, there", None, 1, 0]]

    steps = [h for h in run["history"] if "decode/step" in h]
    assert [(h["decode/step"], h["decode/best"], h["decode/bank/size"]) for h in steps] == [(0, 1, 3), (1, 2, 5)]
    assert {"glob_name": "decode/*", "step_metric": "decode/step"}.items() <= run["metrics"][0].items()
    assert s["generations/report"]["_type"] == "html-file"

    art = next(a for a in run["artifacts"] if a["type"] == "generations")
    assert art["name"] == f"generations-{info['run_id']}"
    assert {c["path"] for c in art["manifest"]["contents"]} == {"summary.json", "report.html"}


def test_runs_never_leak_and_failures_show(wandb_env):
    first = WandbTracker(mode="offline", dir=str(wandb_env), artifacts=False)
    first.start({"lam": 0}, {"task": "decode"})
    first.log_summary({"only_in_first": 1})
    first.finish(failed=True)
    second = WandbTracker(mode="offline", dir=str(wandb_env), group="explicit", job_type="custom", name="second")
    second.start({"lam": 1}, {**META, "sweep_dir": "ignored-because-group-is-set"})
    second.log_summary({"only_in_second": 2})
    second.log_files([], "nothing")
    second.finish()
    a, b = offline_runs(wandb_env)
    assert a["state"] == "failed" and b["state"] == "finished"
    assert a["run"]["run_id"] != b["run"]["run_id"]
    assert "only_in_first" in a["summary"] and "only_in_second" not in a["summary"]
    assert "only_in_first" not in b["summary"] and b["config"]["lam"] == 1
    assert (b["run"]["run_group"], b["run"]["job_type"], b["run"]["display_name"]) == ("explicit", "custom", "second")
    assert not a["run"].get("run_group") and a["run"]["project"] == "cdx"
    assert a["artifacts"] == [] and b["artifacts"] == []


def test_helpers(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert sweep_group({"sweep_dir": "multirun/x"}, {}) == "multirun/x"
    assert sweep_group({}, {"sweep_dir": str(tmp_path / "multirun" / "x")}) == "multirun/x"  # same group both ways
    assert sweep_group({}, {}) is None
    assert len(sweep_group({"sweep_dir": "/" + "d" * 300}, {})) == 128
    assert job_name({"overrides": ["a=1", "hydra.verbose=true", "logger=wandb", "b=x"]}) == "a=1,b=x"
    assert job_name({"overrides": []}) is None
    assert choice_tags({"choices": {"model": "m", "decoding": None, "sweep": "s"}}) == ["model=m", "sweep=s"]
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": "x"}) == {"a/b": 1, "d": "x"}
    assert table_row({"id": "x", "tokens": {"kl": [1]}, "metrics": {"m": 2.0}, "meta": {"k": 1}}) == \
        {"id": "x", "meta/k": 1, "m": 2.0}
    assert table_row({"responses": ["a", "b"], "sample_divergences": [0.5, 1]}) == \
        {"responses": "a\n\n---\n\nb", "sample_divergences": "[0.5, 1]"}


@pytest.mark.slow
def test_named_sweep_and_its_summary_are_one_wandb_group(tmp_path):
    """The real CLI: `sweep=interpolation` with logger=wandb, then task=summarize, in offline mode."""
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path), "WANDB_SILENT": "true",
           "WANDB_CACHE_DIR": str(tmp_path / "cache"), "WANDB_DATA_DIR": str(tmp_path / "data"),
           "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    small = ["model=tiny_random", "prompts.limit=2", "decoding.max_new_tokens=4", "report.print_top=false"]
    sweep = [sys.executable, "-m", "cdx.run", "sweep=interpolation", "model.interpolation=0,1", "logger=wandb",
             "hydra.sweep.dir=sweep", *small]
    before = git_commit()  # others may commit while the sweep runs: the recorded commit lies in between
    subprocess.run(sweep, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=patience(600))
    summarize_cmd = [sys.executable, "-m", "cdx.run", "task=summarize", f"sweep_dir={tmp_path / 'sweep'}",
                     "logger=wandb", "task.png=false"]
    subprocess.run(summarize_cmd, cwd=tmp_path, env=env, check=True, capture_output=True, timeout=patience(600))

    runs = offline_runs(tmp_path)
    assert [r["run"]["job_type"] for r in runs] == ["decode", "decode", "summarize"]
    assert {r["run"]["run_group"] for r in runs} == {"sweep"}
    assert all(r["state"] == "finished" for r in runs)
    lam0, lam1, summary_run = runs
    assert [lam0["config"]["model"]["interpolation"], lam1["config"]["model"]["interpolation"]] == [0, 1]
    assert lam0["config"]["hydra"]["choices"]["sweep"] == "interpolation"
    recorded = lam0["config"]["git_commit"]
    assert re.fullmatch(r"[0-9a-f]{40}", recorded) and _is_ancestor(before, recorded) and _is_ancestor(recorded, "HEAD")
    assert "sweep=interpolation" in lam0["run"]["tags"]
    assert lam0["run"]["display_name"].startswith("model.interpolation=0,")
    assert lam0["summary"]["token/kl_sc/mean"] == 0 < lam1["summary"]["token/kl_sc/mean"]
    assert lam0["summary"]["generations/table"]["nrows"] == 4
    assert summary_run["summary"]["n_ok"] == 2 and summary_run["summary"]["swept"] == "model.interpolation"
    table, _ = table_json(summary_run, "sweep/table")
    assert [dict(zip(table["columns"], row))["model.interpolation"] for row in table["data"]] == [0, 1]
    files = {c["path"] for a in summary_run["artifacts"] for c in a["manifest"]["contents"]}
    assert {"sweep_summary.csv", "sweep_summary.md", "sweep_plot.html"} <= files


def test_logger_none_never_imports_wandb():
    code = ("import sys, cdx.tasks.decode, cdx.tasks.summarize, cdx.tracking.wandb_tracker; "
            "from cdx.tasks.common import tracked; from omegaconf import OmegaConf; "
            "cfg = OmegaConf.create({'logger': {'_target_': 'cdx.tracking.tracker.NullTracker'}, 'output_dir': '.'}); "
            "t = tracked(cfg, 'decode'); t.__enter__(); t.__exit__(None, None, None); "
            "assert 'wandb' not in sys.modules, 'wandb was imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=patience(300), cwd=ROOT)


def _is_ancestor(older: str, newer: str) -> bool:
    return subprocess.run(["git", "-C", str(ROOT), "merge-base", "--is-ancestor", older, newer]).returncode == 0
