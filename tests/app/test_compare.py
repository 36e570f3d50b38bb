"""Compare page and background jobs: the command is the CLI's, runs start, report progress, finish, fail, cancel."""

from __future__ import annotations

import json
import shlex
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cdx.app import presets
from cdx.app.jobs import JobManager, RunRequest, check_request, hydra_value
from tests.app.app_fixtures import view


def compare(**query) -> AppTest:
    at = AppTest.from_file(view("compare.py"), default_timeout=60)
    for k, v in query.items():
        at.query_params[k] = v
    return at.run()


def wait_for(at: AppTest, job_id: str, timeout: float = 120) -> str:
    """Rerun the page until the job's line shows a final status; return that line."""
    end = time.time() + timeout
    while time.time() < end:
        at.run()
        lines = [m.value for m in at.markdown if m.value.startswith(f"**{job_id}**")]
        if lines and any(s in lines[0] for s in ("`finished`", "`failed`", "`cancelled`")):
            return lines[0]
        time.sleep(1)
    raise AssertionError(f"{job_id} did not end within {timeout} s")


@pytest.mark.parametrize("text", ["You are a pirate. Say 'arr'!", "a b\\c", "end\\", "a\\'b", "null", "1.5", "x=y", "plain-word"])
def test_values_survive_hydra_parsing(text):
    cfg = presets.compose(["model=tiny_random", f"++model.comparison.system_prompt={hydra_value(text)}"])
    assert cfg.model.comparison.system_prompt == text


def test_page_shows_the_cli_command_of_the_choices(app_root):
    at = compare(model="tiny_random")
    assert not at.exception
    at.number_input(key="cmp_limit").set_value(2)
    at.number_input(key="cmp_mnt").set_value(8)
    at.selectbox(key="cmp_decoding").set_value("amplify")
    at.run()
    at.number_input(key="cmp_alpha").set_value(2.0).run()
    cmd = at.code[0].value
    argv = shlex.split(cmd)
    assert argv[:3] == ["python", "-m", "cdx.run"]
    assert {"task=decode", "model=tiny_random", "decoding=amplify", "decoding.max_new_tokens=8",
            "decoding.rule.alpha=2.0", "prompts.limit=2"} <= set(argv)
    assert argv[-1].startswith(f"hydra.run.dir={app_root}/outputs/app/")
    cfg = presets.compose(argv[3:-1])  # the shown overrides compose as the CLI composes them
    assert cfg.decoding.rule.alpha == 2.0 and cfg.decoding.max_new_tokens == 8 and cfg.prompts.limit == 2


def test_every_model_and_decoding_preset_composes():
    for model in presets.presets("model"):
        presets.compose(RunRequest(model=model).overrides())
    for dec in presets.presets("decoding"):
        presets.compose(RunRequest(model="tiny_random", decoding=dec).overrides())
    for task in presets.tasks():  # decode, search, analyze, pipeline (those this checkout has)
        assert presets.compose(RunRequest(task=task, model="tiny_random").overrides()).task.name == task


def test_bad_settings_are_refused_with_a_reason(tmp_path):
    not_adapter = tmp_path / "not_an_adapter"
    not_adapter.mkdir()
    assert "not a PEFT adapter folder" in check_request(RunRequest(model="tiny_random", adapter=str(not_adapter)))
    assert "do not parse" in check_request(RunRequest(model="tiny_random", extra="seed='1"))
    assert "decoding.no_such_key" in check_request(RunRequest(model="tiny_random", extra="decoding.no_such_key=1"))
    assert check_request(RunRequest(model="tiny_random")) is None


def test_start_button_refuses_a_bad_adapter_in_the_page(app_root):
    at = compare(model="tiny_random")
    at.text_input(key="cmp_adapter").set_value(str(app_root / "nowhere"))
    at.button(key="cmp_start").click().run()
    assert not at.exception
    assert any("not a PEFT adapter folder" in e.value for e in at.error)


def test_decode_runs_in_the_background_and_its_outputs_open(app_root):
    at = compare(model="tiny_random")
    at.number_input(key="cmp_limit").set_value(2)
    at.number_input(key="cmp_mnt").set_value(8)
    t0 = time.perf_counter()
    at.button(key="cmp_start").click().run()
    assert time.perf_counter() - t0 < 10  # returns at once: the run goes on in its own process
    job_id = at.session_state["cmp_job"]
    assert "`running`" in [m.value for m in at.markdown if m.value.startswith(f"**{job_id}**")][0]
    line = wait_for(at, job_id)
    assert "`finished`" in line, [e.value for e in at.error]
    assert any(s.value.startswith("cdx generations: 4 texts") and " 32 tokens" in s.value for s in at.success)
    assert any("cdx-tok" in m.value for m in at.markdown)  # the top texts, shaded, right under the job
    run_dir = line.split(" · ")[-1]
    assert run_dir.startswith(str(app_root / "outputs" / "app"))
    assert {"generations.jsonl", "summary.json", "report.html", "app_job.log"} <= {p.name for p in Path(run_dir).iterdir()}


def test_a_failing_run_shows_its_error_not_a_trace(app_root):
    at = compare(model="tiny_random")
    at.text_input(key="cmp_adapter").set_value("no-such-org/no-such-adapter")  # a hub id: found missing at load
    at.number_input(key="cmp_limit").set_value(1)
    at.button(key="cmp_start").click().run()
    line = wait_for(at, at.session_state["cmp_job"])
    assert "`failed`" in line
    msgs = [e.value for e in at.error]
    assert msgs and msgs[0].startswith("The run failed: ") and "Traceback" not in msgs[0]
    assert "no-such-org/no-such-adapter" in msgs[0]


def test_cancel_stops_the_process(tmp_path):
    manager = JobManager(tmp_path)
    job = manager.start(RunRequest(model="tiny_random", limit=1))
    assert job.status == "running"
    job.cancel()
    job.wait(timeout=30)
    assert job.status == "cancelled" and job.proc.returncode != 0


def test_page_defaults_are_the_cli_defaults(app_root):
    at = compare()
    cli = presets.compose([])
    assert at.selectbox(key="cmp_model").value == presets.default_choice("model")
    assert at.selectbox(key="cmp_decoding").value == presets.default_choice("decoding")
    shown = presets.compose(shlex.split(at.code[0].value)[3:-1])  # the command with the page untouched
    assert shown.model == cli.model and shown.decoding == cli.decoding


# ---- issue 22: the form checks before launch; Start is disabled while anything is wrong ----------------


def _errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def test_unclosed_quote_in_overrides_is_a_message_and_the_jobs_panel_stays(app_root):
    past = app_root / "outputs" / "app" / "2026-01-01" / "10-00-00-decode"
    past.mkdir(parents=True)
    (past / "app_job.json").write_text(json.dumps({"argv": ["python", "-m", "cdx.run", "task=decode"],
                                                   "task": "decode", "started": 1.0}))
    at = compare(model="tiny_random")
    at.text_input(key="cmp_extra").set_value("seed='1").run()
    assert not at.exception
    assert any("do not parse as a command line" in e and "No closing quotation" in e for e in _errors(at))
    assert at.button(key="cmp_start").disabled
    assert any(s.value == "Runs started from the app" for s in at.subheader)  # the jobs panel is still drawn


def test_empty_one_prompt_is_refused_in_the_page(app_root):
    at = compare(model="tiny_random")
    at.radio(key="cmp_psrc").set_value("one prompt").run()
    at.text_input(key="cmp_prompt").set_value("   ").run()
    assert not at.exception
    assert any("prompts.text='' is not valid: give a non-empty prompt" in e for e in _errors(at))
    assert at.button(key="cmp_start").disabled
    assert "prompts.limit" not in at.code[0].value  # never silently the builtin prompts


@pytest.mark.parametrize("key, value, says", [("cmp_mnt", 999999, "max_new_tokens=999999 is out of range: give 1 to 4096"),
                                              ("cmp_temp", 0.0, "decoding.temperature=0.0 is not valid: must be > 0")])
def test_out_of_range_numbers_disable_start_and_are_never_replaced(app_root, key, value, says):
    at = compare(model="tiny_random")
    at.number_input(key=key).set_value(value).run()
    assert not at.exception
    assert any(says in e for e in _errors(at)), _errors(at)
    assert at.button(key="cmp_start").disabled
    flag = {"cmp_mnt": "decoding.max_new_tokens=999999", "cmp_temp": "decoding.temperature=0.0"}[key]
    assert flag in shlex.split(at.code[0].value)  # the shown command has the value typed, not an older one


def test_a_decoding_option_typed_as_an_override_is_checked_like_the_form_fields(app_root):
    """Any field of DecodeSettings (here repetition_penalty, added in one place) reaches the form's
    command and its check: a bad value is named beside the form and Start is disabled."""
    at = compare(model="tiny_random")
    at.text_input(key="cmp_extra").set_value("decoding.repetition_penalty=0").run()
    assert not at.exception
    assert any("decoding.repetition_penalty=0 is not valid: must be > 0" in e for e in _errors(at)), \
        _errors(at)
    assert at.button(key="cmp_start").disabled
    at.text_input(key="cmp_extra").set_value("decoding.repetition_penalty=1.3").run()
    assert _errors(at) == [] and not at.button(key="cmp_start").disabled
    assert "decoding.repetition_penalty=1.3" in shlex.split(at.code[0].value)


def test_a_missing_prompt_file_is_flagged_before_launch(app_root):
    at = compare(model="tiny_random")
    at.text_input(key="cmp_extra").set_value(f"prompts=file prompts.path={app_root}/nope.txt").run()
    assert not at.exception
    assert any("nope.txt" in e for e in _errors(at)), _errors(at)
    assert at.button(key="cmp_start").disabled


def test_a_run_of_an_earlier_app_process_is_listed_with_its_error_and_a_resume_button(app_root):
    past = app_root / "outputs" / "app" / "2026-01-01" / "10-00-00-decode"
    past.mkdir(parents=True)
    (past / "app_job.json").write_text(json.dumps({"argv": ["python", "-m", "cdx.run", "task=decode"],
                                                   "task": "decode", "started": 1.0}))
    (past / "error.json").write_text(json.dumps({"type": "ValueError", "message": "bad thing\nfull_key: model"}))
    at = compare(model="tiny_random")
    assert not at.exception
    assert any(m.value.startswith("**2026-01-01/10-00-00-decode** · decode · `failed`") for m in at.markdown)
    assert "The run failed: ValueError: bad thing" in [e.value for e in at.error]
    assert at.button(key="resume_2026-01-01/10-00-00-decode")
