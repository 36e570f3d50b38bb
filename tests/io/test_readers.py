"""read_run: every kind of run directory, and clear errors for what is not one."""

import json

import pytest

from cdx.io import NotARunError, open_run, read_run, run_kind, write_records


def text_record(rid: str, continuation: str = "") -> dict:
    n = int(rid[1:6])
    return {"id": rid, "prompt_index": n, "sample_index": 0, "prompt": "p", "continuation": continuation,
            "token_ids": [5], "token_strs": [" a"], "tokens": {"kl_sc": [0.5]}, "metrics": {"kl_sc_mean": 0.5},
            "finish_reason": "length"}


def _decode_dir(path, ids):
    with open_run(path, "decode", {"seed": 0}, resume=False) as rd:
        write_records(path / "generations.jsonl", [text_record(i, f"text {i}\u2028") for i in ids])
        (path / "summary.json").write_text(json.dumps({"n_texts": len(ids)}))
        rd.finish()


def test_decode_run_records_in_id_order_with_summary_and_status(tmp_path):
    _decode_dir(tmp_path, ["p00001-s00", "p00000-s00"])  # a resumed run may append a record late
    run = read_run(tmp_path)
    assert run.kind == "decode" and run.status == "finished" and run.summary == {"n_texts": 2}
    assert [r["id"] for r in run.records] == ["p00000-s00", "p00001-s00"]
    assert run.records[0]["continuation"] == "text p00000-s00\u2028"
    assert read_run(tmp_path / "generations.jsonl").path == tmp_path  # a record file means its folder


def test_kind_is_checked_when_asked(tmp_path):
    _decode_dir(tmp_path, ["p00000-s00"])
    assert read_run(tmp_path, kind=("decode", "score")).kind == "decode"
    with pytest.raises(NotARunError, match="holds a decode run, not a search or analyze run"):
        read_run(tmp_path, kind=("search", "analyze"))


def test_missing_path_file_and_empty_folder_are_refused_clearly(tmp_path):
    with pytest.raises(NotARunError, match="does not exist"):
        read_run(tmp_path / "nope")
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(NotARunError, match="is a file, not a run directory"):
        read_run(tmp_path / "notes.txt")
    with pytest.raises(NotARunError, match="holds no cdx run output"):
        run_kind(tmp_path)


def test_search_run_without_run_json_is_recognised_by_its_files(tmp_path):
    entry = {"divergence": 1.0, "sample_divergences": [1.0], "responses": ["r"], "criterion": None, "cycle": 0,
             "repeat": 0}
    write_records(tmp_path / "bank.jsonl", [{**entry, "id": 1, "prompt": "b"}, {**entry, "id": 0, "prompt": "a"}])
    write_records(tmp_path / "stats.jsonl", [{"repeat": 0, "attempt": 1}])
    (tmp_path / "state.json").write_text(json.dumps({"done": True}))
    run = read_run(tmp_path)
    assert run.kind == "search" and [r["prompt"] for r in run.records] == ["a", "b"]
    assert run.files["state.json"] == {"done": True} and len(run.files["stats.jsonl"]) == 1
    assert run.status == "unknown"  # no run.json, no summary.json


def test_corrupt_lines_are_counted_not_fatal(tmp_path):
    lines = [json.dumps(text_record("p00000-s00")), '{"id": "p0000', json.dumps(text_record("p00002-s00"))]
    (tmp_path / "scores.jsonl").write_text("\n".join(lines) + "\n")
    run = read_run(tmp_path)
    assert run.kind == "score" and len(run.records) == 2 and run.n_corrupt == 1


def _job(folder, num, overrides, finished=True, failed=False):
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "hydra.yaml").write_text(
        f"hydra:\n  mode: MULTIRUN\n  job:\n    num: {num}\n  overrides:\n    task: {json.dumps(overrides)}\n")
    if finished:
        _decode_dir(folder, ["p00000-s00"])
    if failed:
        (folder / "error.json").write_text(json.dumps({"type": "ValueError", "message": "bad"}))


def test_sweep_lists_its_jobs_with_status(tmp_path):
    _job(tmp_path / "0", 0, ["seed=0"])
    _job(tmp_path / "1", 1, ["seed=1"], finished=False, failed=True)
    _job(tmp_path / "2", 2, ["seed=2"], finished=False)
    run = read_run(tmp_path)
    assert run.kind == "sweep"
    assert [(j["job"], j["kind"], j["status"]) for j in run.records] == [
        (0, "decode", "finished"), (1, "failed", "failed"), (2, None, "incomplete")]
    assert read_run(tmp_path / "1").status == "failed"


def test_records_that_break_the_schema_are_skipped_and_counted(tmp_path):
    good = {"id": "p00000-s00", "prompt_index": 0, "sample_index": 0, "prompt": "p", "continuation": " a",
            "token_ids": [5], "token_strs": [" a"], "tokens": {"kl_sc": [0.5]}, "metrics": {"kl_sc_mean": 0.5},
            "finish_reason": "length"}
    short = {**good, "id": "p00001-s00", "prompt_index": 1, "tokens": {"kl_sc": []}}  # values of no token
    untyped = {**good, "id": "p00002-s00", "prompt_index": 2, "continuation": None}
    write_records(tmp_path / "generations.jsonl", [good, short, untyped])
    run = read_run(tmp_path)
    assert [r["id"] for r in run.records] == ["p00000-s00"] and run.n_corrupt == 2
