"""Run identity, the rerun rules and the directory lock (cdx.io.rundir)."""

import contextlib
import json
import subprocess
import sys

import pytest

from cdx.io import (
    RecordLog,
    RunDirError,
    RunExistsError,
    RunLock,
    RunLockedError,
    RunMismatchError,
    check_rerun,
    differences,
    fingerprint,
    open_run,
    strip_execution_only,
)
from cdx.io.rundir import read_run_file

IDENT = {"task": "decode", "seed": 0, "decoding": {"temperature": 1.0, "rule": {"alpha": 1.0}}}


def test_fingerprint_ignores_key_order_but_not_values():
    assert fingerprint({"a": 1, "b": {"c": 2}}) == fingerprint({"b": {"c": 2}, "a": 1})
    assert fingerprint({"a": 1}) != fingerprint({"a": 1.5})


def test_execution_only_settings_are_dropped_at_any_depth():
    cfg = {"decoding": {"batch_size": 8, "parallel": "auto", "top_p": 0.9}, "assistant": {"timeout": 5, "model": "m"}}
    # batch_size stays: each batch's generator is seeded by its number, so it decides the draws
    assert strip_execution_only(cfg) == {"decoding": {"batch_size": 8, "top_p": 0.9}, "assistant": {"model": "m"}}


def test_differences_name_every_changed_setting():
    now = {"task": "decode", "seed": 1, "decoding": {"temperature": 0.7, "rule": {"alpha": 1.0}}, "new": 3}
    assert differences(IDENT, now) == ["decoding.temperature: 1.0 -> 0.7", "new: <unset> -> 3", "seed: 0 -> 1"]


def test_open_run_writes_run_json_and_finish_marks_it(tmp_path):
    with open_run(tmp_path, "decode", IDENT, resume=False) as rd:
        info = json.loads((tmp_path / "run.json").read_text())
        assert info["status"] == "running" and info["identity"] == IDENT and not rd.resumed
        rd.finish(n_records=3)
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["status"] == "finished" and info["n_records"] == 3 and info["fingerprint"] == fingerprint(IDENT)


def test_run_json_keys_and_their_order_survive_a_resume_and_finish(tmp_path):
    with open_run(tmp_path, "decode", IDENT, resume=False) as rd:
        (tmp_path / "generations.jsonl").write_text("")
    with open_run(tmp_path, "decode", IDENT, resume=True) as rd:
        rd.finish(n_records=3)
    info = json.loads((tmp_path / "run.json").read_text())
    assert list(info) == ["kind", "fingerprint", "identity", "created", "status", "resumed", "finished", "n_records"]
    assert len(info["resumed"]) == 1 and info["created"] <= info["resumed"][0] <= info["finished"]


def test_a_run_json_of_the_wrong_shape_is_named_as_damaged(tmp_path):
    (tmp_path / "run.json").write_text(json.dumps({"kind": "decode", "resumed": "yesterday"}))
    with pytest.raises(RunDirError, match=r"run.json is not a run record \(resumed: .*damaged"):
        read_run_file(tmp_path)


def test_rerun_without_resume_refuses_and_changes_nothing(tmp_path):
    with open_run(tmp_path, "decode", IDENT, resume=False) as rd:
        (tmp_path / "generations.jsonl").write_text('{"id": "p00000-s00"}\n')
        rd.finish()
    before = {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()}
    with pytest.raises(RunExistsError, match="already holds a finished decode run; nothing was changed"):
        check_rerun(tmp_path, resume=False)
    with pytest.raises(RunExistsError, match="resume=true"):
        with open_run(tmp_path, "decode", IDENT, resume=False):
            pass
    assert {p.name: p.read_bytes() for p in tmp_path.iterdir() if p.is_file()} == before


def test_resume_with_other_settings_refuses_naming_them(tmp_path):
    with open_run(tmp_path, "decode", IDENT, resume=False) as rd:
        rd.finish()
    other = {**IDENT, "seed": 1, "decoding": {"temperature": 0.5, "rule": {"alpha": 1.0}}}
    with pytest.raises(RunMismatchError, match=r"decoding.temperature: 1.0 -> 0.5; seed: 0 -> 1"):
        with open_run(tmp_path, "decode", other, resume=True):
            pass
    with pytest.raises(RunMismatchError, match="holds a decode run, not a score run"):
        with open_run(tmp_path, "score", IDENT, resume=True):
            pass
    with open_run(tmp_path, "decode", IDENT, resume=True) as rd:  # same settings: fine
        assert rd.resumed


def test_resume_of_outputs_without_run_json_refuses(tmp_path):
    (tmp_path / "generations.jsonl").write_text('{"id": "p00000-s00"}\n')
    with pytest.raises(RunMismatchError, match="no run.json"):
        with open_run(tmp_path, "decode", IDENT, resume=True):
            pass


HOLD = """
import sys, time
from cdx.io import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


@contextlib.contextmanager
def _holder(script: str, folder):
    """A process running `script` on `folder`, once it has printed that it holds the lock."""
    holder = subprocess.Popen([sys.executable, "-c", script, str(folder)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder
    finally:
        holder.kill()
        holder.wait()


def test_a_second_process_on_a_locked_directory_refuses_naming_the_holder(tmp_path):
    with _holder(HOLD, tmp_path) as holder:
        with pytest.raises(RunLockedError, match=rf"in use by process {holder.pid} on .*two runs must not write"):
            with open_run(tmp_path, "decode", IDENT, resume=False):
                pass
        assert not (tmp_path / "run.json").exists()
        (tmp_path / "generations.jsonl").write_text("")
        with pytest.raises(RunLockedError, match=str(holder.pid)):  # also the early check (before Hydra writes)
            check_rerun(tmp_path, resume=True)
    with RunLock(tmp_path):  # the lock dies with its process (kill -9 leaves no stale lock)
        pass


SLOW_HOLDER = """
import json, os, sys, time
from filelock import FileLock
from cdx.io.rundir import HOLDER_FILE, LOCK_FILE
folder = sys.argv[1]
with FileLock(os.path.join(folder, LOCK_FILE), is_singleton=False):
    print("locked", flush=True)
    time.sleep(0.2)  # the instant between taking the lock and writing the holder's note
    with open(os.path.join(folder, HOLDER_FILE), "w") as f:
        json.dump({"pid": os.getpid(), "host": "h", "since": "s", "command": "c"}, f)
    time.sleep(60)
"""


def test_a_run_refused_before_the_holder_note_is_written_still_names_the_holder(tmp_path):
    with _holder(SLOW_HOLDER, tmp_path) as holder:
        with pytest.raises(RunLockedError, match=rf"in use by process {holder.pid} on h"):
            RunLock(tmp_path).acquire()


def test_lock_is_released_after_an_error(tmp_path):
    with pytest.raises(RuntimeError, match="task failed"):
        with open_run(tmp_path, "decode", IDENT, resume=False):
            raise RuntimeError("task failed")
    with open_run(tmp_path, "decode", IDENT, resume=True):
        pass


def test_record_log_resumes_by_id_and_sets_corrupt_lines_aside(tmp_path):
    p = tmp_path / "g.jsonl"
    good = [{"id": f"r{i}", "v": i} for i in range(5)]
    lines = [json.dumps(r) + "\n" for r in good]
    lines[2] = '{"id": "r2", "v": 2, "broken\n'  # a corrupt line in the middle
    p.write_text("".join(lines) + lines[1] + '{"id": "r5"')  # a duplicate, then a cut-off line
    log = RecordLog(p)
    done = log.load()
    assert sorted(done) == ["r0", "r1", "r3", "r4"]
    assert log.missing([f"r{i}" for i in range(6)]) == ["r2", "r5"]
    assert (tmp_path / "g.jsonl.corrupt").read_text() == lines[2]
    with log.writer() as w:
        w.write([{"id": "r5", "v": 5}, {"id": "r2", "v": 2}])
    out = log.finalize([f"r{i}" for i in range(6)])
    assert out == [*good, {"id": "r5", "v": 5}]
    assert [json.loads(x) for x in p.read_text().splitlines()] == out  # rewritten in order, each id once


def test_record_log_treats_a_record_that_breaks_its_schema_as_missing(tmp_path):
    p = tmp_path / "g.jsonl"
    rec = {"id": "p00000-s00", "prompt_index": 0, "sample_index": 0, "prompt": "p", "continuation": " a",
           "token_ids": [5, 6], "token_strs": [" a", " b"], "tokens": {"kl_sc": [0.5]}, "metrics": {},
           "finish_reason": "length"}  # one value for two tokens: a damaged record
    p.write_text(json.dumps(rec) + "\n")
    log = RecordLog(p, kind="decode")
    assert log.load() == {} and log.missing(["p00000-s00"]) == ["p00000-s00"]
    assert json.loads((tmp_path / "g.jsonl.corrupt").read_text()) == rec
