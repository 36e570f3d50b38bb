"""The recording fake: the Tracker contract, `tracked()`'s lifetime, and what decode logs through it."""

from __future__ import annotations

import pytest
from omegaconf import OmegaConf

from cdx.tasks.common import tracked
from cdx.tracking.recording import RecordingTracker
from cdx.tracking.tracker import NullTracker, Tracker
from tests.conftest import compose

RECORDING = {"_target_": "cdx.tracking.recording.RecordingTracker"}


def _cfg(tmp_path, logger=RECORDING):
    return OmegaConf.create({"logger": logger, "output_dir": str(tmp_path), "seed": 0})


def test_records_every_call_in_order():
    t: Tracker = RecordingTracker()
    t.start({"a": 1}, {"task": "decode"})
    t.log_summary({"n_tokens": 3})
    t.log_records([{"id": "x"}], "generations")
    t.log_records([{"id": "y"}], "generations")
    t.log_step({"best": 0.5}, 2)
    t.log_files(["/a/summary.json"], "generations")
    t.finish()
    assert t.calls == ["start", "log_summary", "log_records", "log_records", "log_step", "log_files", "finish"]
    assert t.config == {"a": 1} and t.meta == {"task": "decode"}
    assert t.summaries == [{"n_tokens": 3}] and t.records == {"generations": [[{"id": "x"}], [{"id": "y"}]]}
    assert t.steps == [(2, {"best": 0.5})] and t.files == [("generations", ["/a/summary.json"])]
    assert t.finished is False


def test_keeps_copies_not_references():
    t = RecordingTracker()
    t.start({}, {})
    summary = {"n": 1}
    t.log_summary(summary)
    summary["n"] = 2
    assert t.summaries == [{"n": 1}]


@pytest.mark.parametrize("call", ["log_summary", "finish"])
def test_refuses_calls_outside_a_run(call):
    t = RecordingTracker()
    args = ({},) if call == "log_summary" else ()
    with pytest.raises(RuntimeError, match="before start"):
        getattr(t, call)(*args)
    t.start({}, {})
    t.finish()
    with pytest.raises(RuntimeError, match="after finish"):
        t.log_step({}, 0)


def test_tracked_starts_and_finishes(tmp_path):
    with tracked(_cfg(tmp_path), "decode") as t:
        assert isinstance(t, RecordingTracker) and t is RecordingTracker.last
        assert t.finished is None
    assert t.finished is False
    assert t.meta["task"] == "decode" and t.meta["output_dir"] == str(tmp_path)
    assert t.config["output_dir"] == str(tmp_path)


def test_tracked_finishes_a_failed_run_and_reraises(tmp_path):
    with pytest.raises(ZeroDivisionError), tracked(_cfg(tmp_path), "decode") as t:
        raise ZeroDivisionError
    assert t.finished is True and t.calls == ["start", "finish"]


def test_logger_none_is_the_null_tracker(tmp_path):
    with tracked(_cfg(tmp_path, {"_target_": "cdx.tracking.tracker.NullTracker"}), "decode") as t:
        assert isinstance(t, NullTracker)


def test_decode_logs_summary_records_and_files(tmp_path):
    from cdx.tasks import decode

    cfg = compose(["model=tiny_random", "prompts.limit=2", "decoding.max_new_tokens=3", "report.print_top=false"],
                  output_dir=tmp_path)
    cfg.logger = RECORDING
    decode.run(cfg)
    t = RecordingTracker.last
    assert t.calls == ["start", "log_summary", "log_records", "log_files", "finish"] and t.finished is False
    assert t.meta["task"] == "decode" and t.config["model"]["starting"]["path"] == "tiny-random"
    assert t.summaries[0]["n_tokens"] == 2 * 2 * 3  # prompts x generations x tokens
    (records,) = t.records["generations"]
    assert len(records) == 4 and {"prompt", "continuation", "token_strs", "tokens", "metrics"} <= set(records[0])
    name, paths = t.files[0]
    assert name == "generations" and {p.rsplit("/", 1)[1] for p in paths} == {"generations.jsonl", "summary.json",
                                                                              "report.html"}
