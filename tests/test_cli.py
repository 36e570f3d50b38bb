"""The real Hydra CLI, as a user runs it."""

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time

import pytest
import yaml
from omegaconf import OmegaConf

from tests.conftest import ROOT, compose, patience, sigint_default


def _cli(*args, cwd=None, env=None):
    return subprocess.run([sys.executable, "-m", "cdx.run", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          timeout=patience(300), env={**os.environ, **(env or {})})


def test_cfg_job_prints_the_composed_default():
    r = _cli("--cfg", "job")
    assert r.returncode == 0, r.stderr
    printed = yaml.safe_load(r.stdout)
    composed = compose()
    assert printed["model"]["comparison"]["system_prompt"] == composed.model.comparison.system_prompt
    assert printed["decoding"]["rule"] == OmegaConf.to_container(composed.decoding.rule)
    assert printed["model"]["starting"]["path"].startswith("embedded:")  # the default needs no download


def test_help_lists_the_groups():
    r = _cli("--help")
    assert r.returncode == 0
    for group in ("model:", "decoding:", "search:", "assistant:", "logger:", "task:"):
        assert group in r.stdout, group


def test_tiny_random_run_writes_into_the_hydra_dir_only(tmp_path):
    run_dir = tmp_path / "run"
    r = _cli("model=tiny_random", "prompts.limit=2", "decoding.max_new_tokens=4", f"hydra.run.dir={run_dir}",
             cwd=tmp_path)
    assert r.returncode == 0, r.stderr[-2000:]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # nothing relative to the cwd
    assert {"generations.jsonl", "summary.json", "report.html", ".hydra"} <= {p.name for p in run_dir.iterdir()}
    assert f"-> {run_dir}" in r.stdout


def test_bad_override_is_a_clear_error(tmp_path):
    r = _cli("model=tiny_random", "decoding.strategy=nucleus", f"hydra.run.dir={tmp_path}")
    assert r.returncode != 0 and "strategy='nucleus' is not valid" in r.stderr


def _dead_url() -> str:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/v1"


CLI_USER_ERRORS = [
    ("top_p>1", ["decoding.top_p=1.5"], "decoding.top_p=1.5 is not valid: must be in (0, 1]"),
    ("prompts-file-missing", ["prompts=file", "prompts.path=/no/such/prompts.txt"],
     "prompts file '/no/such/prompts.txt' does not exist"),
    ("dead-assistant-port", ["task=search", "assistant=openai", "assistant.api_key_env=null",
                             f"assistant.base_url={_dead_url()}"], "is the server running at that URL?"),
]


@pytest.mark.parametrize(("args", "message"), [c[1:] for c in CLI_USER_ERRORS], ids=[c[0] for c in CLI_USER_ERRORS])
def test_user_error_is_one_line_exit_2_no_traceback(tmp_path, args, message):
    start = time.monotonic()
    r = _cli("model=tiny_random", *args, f"hydra.run.dir={tmp_path / 'run'}")
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("cdx: error: ") and message in lines[-1]
    assert sum("error" in line.lower() for line in lines) == 1, r.stderr
    assert json.loads((tmp_path / "run" / "error.json").read_text())["type"] == "ConfigError"
    assert time.monotonic() - start < patience(60)  # refused before any model work (a dead port costs no retries)


def test_cdx_debug_shows_the_traceback(tmp_path):
    r = _cli("model=tiny_random", "decoding.top_k=0", f"hydra.run.dir={tmp_path}", env={"CDX_DEBUG": "1"})
    assert r.returncode != 0 and "Traceback" in r.stderr and "decoding.top_k=0 is not valid" in r.stderr


def test_ctrl_c_says_what_was_saved_and_the_resume_command_finishes_the_run(tmp_path):
    run_dir = tmp_path / "run"
    args = ["model=tiny_random", "prompts.limit=6", "decoding.batch_size=1", "decoding.max_new_tokens=128",
            "decoding.stop_at_eos=false", "report.print_top=false"]
    proc = subprocess.Popen([sys.executable, "-m", "cdx.run", *args, f"hydra.run.dir={run_dir}"], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=sigint_default)
    records = run_dir / "generations.jsonl"
    deadline = time.monotonic() + patience(240)
    while not (records.is_file() and records.read_text().count("\n") >= 2) and proc.poll() is None:
        assert time.monotonic() < deadline, "no record written in 240 s"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=patience(120))
    assert proc.returncode == 130, err[-2000:]
    assert "Traceback" not in out + err
    last = [line for line in err.splitlines() if line.strip()][-1]
    match = re.fullmatch(r"interrupted: (\d+) records in (\S+); resume with: python -m cdx\.run (.*)", last)
    assert match, last
    saved = len(records.read_text().splitlines())
    assert int(match[1]) == saved and 2 <= saved < 12 and match[2] == str(records)
    command = shlex.split(match[3])
    assert command[-2:] == [f"hydra.run.dir={run_dir}", "resume=true"]
    r = _cli(*command)
    assert r.returncode == 0, r.stderr[-2000:]
    ids = [json.loads(line)["id"] for line in records.read_text().splitlines()]
    assert len(ids) == 12 and len(set(ids)) == 12  # 6 prompts x 2 samples, none lost or repeated


def test_sweep_with_a_bad_shared_value_is_refused_before_any_job(tmp_path):
    sweep = tmp_path / "sweep"
    r = _cli("-m", "model=tiny_random", "decoding.top_p=1.5", "decoding.temperature=0.5,1.0", f"hydra.sweep.dir={sweep}",
             "++hydra.callbacks.validate_sweep._target_=cdx.config.callbacks.ValidateSweep")
    assert r.returncode == 2 and "Traceback" not in r.stderr + r.stdout
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert lines[-1].startswith("cdx: error: invalid config: decoding.top_p=1.5 is not valid")
    assert "the sweep was not started" in lines[-1]
    assert not sweep.exists()  # no job folder, no multirun.yaml
