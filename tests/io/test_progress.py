"""Progress bars as typed events (cdx.io.progress): what is written, when, and what a reader sees."""

from __future__ import annotations

import json

import pytest

from cdx.io import progress
from cdx.io.progress import ProgressEvent, bar, first_event, last_event


def _events(path) -> list[ProgressEvent]:
    return [ProgressEvent.model_validate_json(line) for line in path.read_text().splitlines()]


@pytest.fixture
def events_file(tmp_path, monkeypatch):
    path = tmp_path / "progress.jsonl"
    monkeypatch.setenv(progress.ENV, str(path))
    return path


def test_an_iterated_bar_reports_its_start_every_item_and_its_end(events_file, monkeypatch):
    monkeypatch.setattr(progress, "EVERY_S", 0.0)  # no throttling: one event per item
    seen = [i for i in bar(range(5), desc="validating", unit="hypothesis", mininterval=0)]
    assert seen == list(range(5))  # the bar yields what it wraps
    ev = _events(events_file)
    assert {(e.stage, e.total, e.unit) for e in ev} == {("validating", 5, "hypothesis")}
    assert ev[0].n == 0 and not ev[0].done
    assert ev[-1].n == 5 and ev[-1].done and sum(e.done for e in ev) == 1  # one closing event
    assert [e.n for e in ev] == sorted(e.n for e in ev)  # never backwards
    assert [e.time for e in ev] == sorted(e.time for e in ev)


def test_a_bar_updated_by_hand_with_an_initial_count_reports_it(events_file, monkeypatch):
    monkeypatch.setattr(progress, "EVERY_S", 0.0)
    with bar(total=10, initial=4, desc="contrastive decoding", unit="batch") as b:  # a resumed run
        b.update(3)
        b.update(3)
    assert [(e.n, e.done) for e in _events(events_file)] == [(4, False), (7, False), (10, False), (10, True)]


def test_events_are_throttled_but_the_first_and_last_always_written(events_file, monkeypatch):
    monkeypatch.setattr(progress, "EVERY_S", 3600.0)
    list(bar(range(1000), desc="samples"))
    assert [(e.n, e.done) for e in _events(events_file)] == [(0, False), (1000, True)]


def test_without_the_variable_nothing_is_written(tmp_path, monkeypatch):
    monkeypatch.delenv(progress.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    assert sum(bar(range(3))) == 3
    assert list(tmp_path.iterdir()) == []


def test_an_unwritable_events_file_never_fails_the_run(tmp_path, monkeypatch):
    monkeypatch.setenv(progress.ENV, str(tmp_path / "missing-folder" / "progress.jsonl"))
    assert sum(bar(range(3))) == 3


def test_readers_take_the_newest_complete_event_and_a_stage_s_first_since_a_time(tmp_path):
    path = tmp_path / "progress.jsonl"
    rows = [ProgressEvent(time=t, stage=s, n=n, total=8) for t, s, n in
            [(1.0, "samples", 0), (2.0, "samples", 4), (10.0, "samples", 4), (12.0, "samples", 6)]]
    path.write_text("".join(json.dumps(r.model_dump()) + "\n" for r in rows) + '{"time": 13.0, "sta')
    assert last_event(path) == rows[-1]  # the half-written line is skipped
    assert first_event(path, "samples") == rows[0]
    assert first_event(path, "samples", since=5.0) == rows[2]  # a resumed session's own start
    assert first_event(path, "validating") is None
    assert last_event(tmp_path / "none.jsonl") is None
