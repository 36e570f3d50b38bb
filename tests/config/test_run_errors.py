"""cdx.run's error handling, unit by unit: what counts as a user error, when tracebacks show, the Ctrl-C line."""

from __future__ import annotations

import json
import shlex

import pytest
from hydra.errors import InstantiationException

from cdx.assistant import AssistantUnreachable
from cdx.config import ConfigError
from cdx.run import _debug, interrupted_line, user_error
from tests.conftest import compose


@pytest.mark.parametrize("err", [ConfigError("bad"), ValueError("bad"), FileNotFoundError("x"),
                                 AssistantUnreachable("dead port")], ids=lambda e: type(e).__name__)
def test_user_errors_are_recognised(err):
    assert user_error(err) is err


def test_a_user_error_inside_hydra_instantiate_is_unwrapped():
    inner = ValueError("strategy='nucleus' is not valid")
    wrapped = InstantiationException("Error in call to target 'cdx.decoding.ContrastiveDecoder'")
    wrapped.__cause__ = inner
    assert user_error(wrapped) is inner


@pytest.mark.parametrize("err", [AttributeError("x"), KeyError("k"), TypeError("t"), RuntimeError("r")],
                         ids=lambda e: type(e).__name__)
def test_bugs_keep_their_traceback(err):
    assert user_error(err) is None


def test_traceback_on_request_only(monkeypatch):
    monkeypatch.delenv("CDX_DEBUG", raising=False)
    compose([])
    assert not _debug()
    compose(["hydra.verbose=true"])
    assert _debug()
    compose([])
    monkeypatch.setenv("CDX_DEBUG", "1")
    assert _debug()
    monkeypatch.setenv("CDX_DEBUG", "0")
    assert not _debug()


def test_interrupt_line_counts_saved_records_and_gives_the_resume_command(tmp_path, monkeypatch):
    run = tmp_path / "my run"
    run.mkdir()
    (run / "generations.jsonl").write_text("".join(json.dumps({"id": f"p{i:05d}-s00"}) + "\n" for i in range(3)))
    monkeypatch.setattr("sys.argv", ["cdx/run.py", "model=tiny_random", "prompts.text=two words", "resume=false",
                                     f"hydra.run.dir={run}"])
    line = interrupted_line(run)
    head, command = line.split("; resume with: ")
    assert head == f"interrupted: 3 records in {run / 'generations.jsonl'}"
    assert shlex.split(command) == ["python", "-m", "cdx.run", "model=tiny_random", "prompts.text=two words",
                                    f"hydra.run.dir={run}", "resume=true"]
    empty = tmp_path / "empty"
    assert interrupted_line(empty).startswith(f"interrupted: nothing saved yet in {empty}; resume with: ")
    sweep_job = tmp_path / "sweep" / "0"
    sweep_job.mkdir(parents=True)
    monkeypatch.setattr("sys.argv", ["cdx/run.py", "-m", "decoding.temperature=0.5,1.0"])
    assert shlex.split(interrupted_line(sweep_job, multirun=True).split("; resume with: ")[1]) == [
        "python", "-m", "cdx.run", "decoding.temperature=0.5,1.0", "-m", f"hydra.sweep.dir={tmp_path / 'sweep'}",
        "resume=true"]
