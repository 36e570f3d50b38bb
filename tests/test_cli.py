"""The real Hydra CLI, as a user runs it."""

import subprocess
import sys

from tests.conftest import ROOT


def _cli(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "cdx.run", *args], capture_output=True, text=True, cwd=cwd or ROOT,
                          timeout=300)


def test_cfg_job_prints_the_composed_default():
    r = _cli("--cfg", "job")
    assert r.returncode == 0, r.stderr
    assert "embedded:smollm2-135m-instruct" in r.stdout and "pirate" in r.stdout and "ProbDiff" in r.stdout


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
