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


def raised(fn, *args, **kwargs) -> BaseException:
    """The exception `fn(*args, **kwargs)` raises, with its traceback (where it was raised decides its kind)."""
    try:
        fn(*args, **kwargs)
    except Exception as e:  # noqa: BLE001
        return e
    raise AssertionError(f"{fn} raised nothing")


@pytest.mark.parametrize("err", [ConfigError("bad"), FileNotFoundError("x"), AssistantUnreachable("dead port")],
                         ids=lambda e: type(e).__name__)
def test_user_errors_are_recognised(err):
    assert user_error(err) is err


def test_a_value_error_that_cdx_raises_about_its_input_is_a_user_error():
    from cdx.decoding.rules import LogitDiff

    err = raised(LogitDiff, amplified="neither")
    assert type(err) is ValueError and user_error(err) is err


def test_a_value_error_raised_inside_a_library_is_a_bug_with_its_traceback():
    import numpy as np

    err = raised(np.reshape, np.arange(3), (2, 2))
    assert isinstance(err, ValueError) and user_error(err) is None
    assert user_error(ValueError("made, never raised")) is None  # no traceback: not shown to come from cdx


def test_a_pydantic_model_that_cdx_builds_from_the_config_refusing_a_value_is_a_user_error():
    from cdx.search.instructions import Criterion

    cdx_module = {"__name__": "cdx.search.settings", "Criterion": Criterion}  # a function as if written in cdx
    exec("def build(options):\n    return Criterion(**options)\n", cdx_module)
    err = raised(cdx_module["build"], {"no_such_option": 1})
    assert user_error(err) is err
    assert user_error(raised(Criterion, no_such_option=1)) is None  # not built by cdx: a bug in the caller


def test_a_user_error_inside_hydra_instantiate_is_unwrapped():
    from cdx.decoding.rules import LogitDiff

    inner = raised(LogitDiff, amplified="neither")
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
