"""Background jobs (issue 22): a history read from the run folders, resume, progress from the records."""

from __future__ import annotations

import json

import pytest

from cdx.app import jobs as jobs_mod
from cdx.app.jobs import JobManager, Progress, RecordCounter, RunRequest, expected_texts


def _record(n_tokens: int) -> bytes:
    return (json.dumps({"id": "x", "token_strs": ["a"] * n_tokens}) + "\n").encode()


def test_record_counter_reads_texts_and_tokens_incrementally_and_skips_a_half_written_line(tmp_path, monkeypatch):
    path = tmp_path / "generations.jsonl"
    counter = RecordCounter(path)
    counter.update()  # no file yet: nothing, no error
    assert (counter.texts, counter.tokens) == (0, 0)
    clock = iter([100.0, 110.0])
    monkeypatch.setattr(jobs_mod.time, "time", lambda: next(clock))
    path.write_bytes(_record(3) + _record(5) + b'{"id": "half')
    counter.update()
    assert (counter.texts, counter.tokens) == (2, 8)
    with path.open("ab") as f:
        f.write(b'", "token_strs": ["a"]}\n' + _record(2) + _record(2))
    counter.update()
    assert (counter.texts, counter.tokens) == (5, 13)
    # 3 texts in the 10 s between the first and last batch seen: 0.3 texts/s, 5 of 8 left -> 10 s
    assert counter.eta(total=8, started=0.0) == pytest.approx(10.0)
    assert counter.eta(total=5, started=0.0) is None  # done


def test_eta_with_one_batch_counts_from_the_start(tmp_path, monkeypatch):
    path = tmp_path / "generations.jsonl"
    path.write_bytes(_record(1) * 4)
    monkeypatch.setattr(jobs_mod.time, "time", lambda: 20.0)
    counter = RecordCounter(path)
    counter.update()
    assert counter.eta(total=12, started=0.0) == pytest.approx(40.0)  # 4 texts in 20 s, 8 left


def test_progress_line_names_texts_tokens_and_time_left():
    p = Progress(desc="generating", n=12, total=40, tokens=1536, eta_s=130)
    assert p.text() == "generating 12/40 texts · 1,536 tokens · about 2 min left"
    assert p.fraction == pytest.approx(0.3)


def test_expected_texts_is_prompts_times_generations():
    req = RunRequest(model="tiny_random", limit=3, params={"generations_per_prefix": 2})
    assert expected_texts(req.overrides()) == 6
    assert expected_texts(RunRequest(model="tiny_random", task="analyze").overrides()) is None


def test_history_outlives_a_restart_and_a_cancelled_run_resumes_to_the_end(tmp_path):
    req = RunRequest(model="tiny_random", limit=2, params={"max_new_tokens": 4, "generations_per_prefix": 2})
    job = JobManager(tmp_path).start(req)
    job.cancel()
    job.wait(timeout=60)
    restarted = JobManager(tmp_path)  # a new app process: nothing in memory
    [old] = restarted.jobs()
    assert old.id == job.id and old.status == "cancelled" and old.resumable and old.proc is None
    resumed = restarted.resume(old)
    assert resumed.argv[-1] == "resume=true" and resumed.argv[:-1] == job.argv
    assert resumed.wait(timeout=180) == 0, resumed.log_tail()
    assert resumed.status == "finished"
    assert JobManager(tmp_path).jobs()[0].status == "finished"  # and so it reads after another restart
    lines = (job.run_dir / "generations.jsonl").read_text().splitlines()
    assert len(lines) == job.record.expected_texts == 2 * 2  # every text of the uninterrupted run


def test_a_job_without_records_to_count_shows_its_typed_progress_events(tmp_path):
    """An analysis writes no generations.jsonl: the panel reads the events its progress bars wrote
    (cdx.io.progress, switched on by the app), never the terminal output."""
    from cdx.io.progress import ProgressEvent

    req = RunRequest(model="tiny_random", task="analyze", limit=24,
                     extra="analysis.sample.max_new_tokens=4 knowledge.enabled=false logger=none")
    job = JobManager(tmp_path).start(req)
    assert job.wait(timeout=900) == 0, job.log_tail()
    events = [ProgressEvent.model_validate_json(line)
              for line in (job.run_dir / jobs_mod.PROGRESS_NAME).read_text().splitlines()]
    last_of = {e.stage: e for e in events}
    tested = (job.run_dir / "hypotheses.jsonl").read_text().strip() != ""
    want = {"discovery samples", "validation samples"} | ({"validating"} if tested else set())
    assert want <= set(last_of), sorted(last_of)
    for e in last_of.values():  # every bar closed at its total
        assert e.done and e.n == e.total, e
    last = events[-1]
    assert job.progress() == Progress(desc=last.stage, n=last.n, total=last.total, unit=last.unit, eta_s=None)
    assert "%|" not in "".join(e.stage for e in events)  # stage names, not scraped bar text
