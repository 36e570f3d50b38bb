"""task=analyze end to end on tiny random pairs: files, schema, resume, refusal to overwrite, a null pair."""

import json

import pytest

from cdx.analysis import build_checker
from cdx.io import RunDirError, read_records
from cdx.tasks.analyze import run
from tests.conftest import compose

FAST = ["task=analyze", "model=tiny_random", "prompts.limit=24", "analysis.sample.max_new_tokens=6",
        "report.color=false"]
FILES = ("run.json", "split.json", "discovery.jsonl", "clusters.json", "description.json", "hypotheses.jsonl",
         "validation.jsonl", "findings.jsonl", "behaviours.jsonl", "analysis.json", "analysis.html", "stages.json")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    out = tmp_path_factory.mktemp("analyze")
    result = run(compose(FAST, output_dir=out))
    return out, result


def test_every_stage_writes_its_file_and_the_summary(finished, capsys):
    out, result = finished
    for name in FILES:
        assert (out / name).is_file(), name
    summary = json.loads((out / "analysis.json").read_text())
    assert result["n_validated"] == summary["n_validated"] and "n_hypotheses" in result
    split = json.loads((out / "split.json").read_text())
    assert len(split["discovery"]) == 6 and len(split["validation"]) == 18
    assert summary["n_validation_texts_s"] == summary["n_validation_texts_c"] == 18
    assert set(summary["timings_s"]) == {"sample", "describe", "hypothesise", "validate"}
    assert summary["analysis_s"] >= summary["generation_s"] > 0 and summary["cost_ratio"] >= 1
    # 6 discovery prompts in up to 4 clusters: the prompts of clusters with fewer than 8 discovery
    # texts a side (2 a prompt: plain and amplified) were sampled again, and only those
    assign = json.loads((out / "clusters.json").read_text())["assignment"]
    small = {i for i in split["discovery"] if 2 * sum(assign[j] == assign[i] for j in split["discovery"]) < 8}
    extra = read_records(out / "cluster_discovery.jsonl")
    assert small and all(r["id"].startswith("cd") for r in extra)
    assert {r["prompt_index"] for r in extra} == small
    drawn = [r for name in ("discovery", "validation", "cluster_discovery", "cluster_validation")
             if (out / f"{name}.jsonl").exists() for r in read_records(out / f"{name}.jsonl")]
    assert summary["n_tokens"] == result["n_tokens"] == sum(len(r["token_ids"]) for r in drawn) > 0
    modes = {r["mode"] for r in read_records(out / "discovery.jsonl")}
    assert modes == {"plain_s", "plain_c", "amp_c", "amp_s"}
    assert {r["prompt_index"] for r in read_records(out / "validation.jsonl")} == set(split["validation"])


def test_findings_follow_the_schema(finished):
    out, _ = finished
    for r in read_records(out / "findings.jsonl"):
        build_checker(r["checker"])  # re-buildable
        assert r["direction"] in ("gained", "lost") and 0 <= r["q"] <= 1
        assert r["n_s"] > 0 and r["rate_s_ci"][0] <= r["rate_s"] <= r["rate_s_ci"][1]


def test_an_existing_analysis_is_not_overwritten(finished):
    out, _ = finished
    with pytest.raises(RunDirError, match="resume=true"):
        run(compose(FAST, output_dir=out))


def test_a_killed_run_resumes_where_it_stopped(finished, tmp_path):
    out, _ = finished
    for name in FILES:  # a copy killed during validation sampling
        (tmp_path / name).write_bytes((out / name).read_bytes())
    status = json.loads((tmp_path / "stages.json").read_text())
    for stage in ("validate", "report"):
        status.pop(stage, None)
    (tmp_path / "stages.json").write_text(json.dumps(status))
    lines = (tmp_path / "validation.jsonl").read_text().splitlines(keepends=True)
    (tmp_path / "validation.jsonl").write_text("".join(lines[:20]) + lines[20][:15])  # a cut-off line too
    for name in ("findings.jsonl", "analysis.json", "analysis.html"):
        (tmp_path / name).unlink()
    run(compose([*FAST, "resume=true"], output_dir=tmp_path))
    assert (tmp_path / "validation.jsonl").read_text() == (out / "validation.jsonl").read_text()
    assert read_records(tmp_path / "findings.jsonl") == read_records(out / "findings.jsonl")


def test_a_null_pair_has_no_validated_finding(tmp_path, capsys):
    result = run(compose([*FAST, "model.comparison.seed=0"], output_dir=tmp_path))
    assert result["n_validated"] == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith("cdx analyze: no validated difference") and str(tmp_path) in last
    assert "80% power" in last


def test_tracker_gets_summary_findings_and_files_and_the_assistant_options_work(tmp_path):
    from cdx.tracking.recording import RecordingTracker

    reply = '[{"statement": "B answers with the word zzyzx", "direction": "gained", "keywords": []}]'
    cfg = compose([*FAST, "logger._target_=cdx.tracking.recording.RecordingTracker", "assistant=scripted",
                   "analysis.hypothesise.use_assistant=true", "analysis.validate.judge=true",
                   "analysis.validate.test=mcnemar"], output_dir=tmp_path)
    cfg.assistant.replies = [reply]
    cfg.assistant.match = {"Answer yes or no": "no"}
    run(cfg)
    t = RecordingTracker.last
    assert t.finished is False and "n_validated" in t.summaries[0]
    found = t.records["findings"][0]
    judged = [r for r in found if r["kind"] == "assistant"]
    assert judged and json.loads(judged[0]["checker"])["type"] == "judge" and not judged[0]["validated"]
    assert any(name == "analysis" for name, _ in t.files)
    summary = json.loads((tmp_path / "analysis.json").read_text())
    assert summary["judge"]["calls"] == 36 and summary["judge"]["unparsed"] == 0


def test_wandb_offline_run_holds_the_findings_table(tmp_path, monkeypatch):
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    cfg = compose([*FAST, "logger=wandb", f"logger.dir={tmp_path}", "assistant=scripted",
                   "analysis.hypothesise.use_assistant=true"], output_dir=tmp_path / "run")
    cfg.assistant.replies = ['[{"statement": "B says zzyzx", "direction": "gained", "keywords": ["zzyzx"]}]']
    run(cfg)
    tables = list((tmp_path / "wandb").glob("offline-run-*/files/media/table/findings/table_*.table.json"))
    assert tables, sorted(p.name for p in (tmp_path / "wandb").rglob("*"))[:30]


def test_sweep_rows_line_up_findings_across_jobs(finished, tmp_path):
    from cdx.analysis.sweep import finding_rows, job_summary

    out, result = finished
    rows = finding_rows([({"alpha": 1.0}, out), ({"alpha": 2.0}, out), ({"alpha": 3.0}, tmp_path)])
    n = len(read_records(out / "findings.jsonl"))
    assert len(rows) == 2 * n and {r["alpha"] for r in rows} == ({1.0, 2.0} if n else set())
    assert job_summary(out)["n_validated"] == result["n_validated"]


def test_an_analysis_records_every_tested_hypothesis_in_the_knowledge_base(tmp_path):
    from cdx.knowledge import KnowledgeBase

    kb_path = tmp_path / "kb.sqlite"
    run(compose([*FAST, f"knowledge.path={kb_path}"], output_dir=tmp_path / "run"))
    tested = read_records(tmp_path / "run" / "findings.jsonl")
    kb = KnowledgeBase(kb_path)
    validated = [f for f in kb.findings() if f.status == "validated"]
    assert len(validated) == sum(r["validated"] for r in tested)
    counts = kb.counts()
    assert counts["hypotheses"] == len(tested) and counts["validations"] == len(tested) and counts["runs"] == 1
    run(compose([*FAST, f"knowledge.path={kb_path}", "knowledge.enabled=false"], output_dir=tmp_path / "off"))
    assert KnowledgeBase(kb_path).counts() == counts  # disabled: nothing recorded
