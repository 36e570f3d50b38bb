"""Issue 12, items 1-7: the data-loss cases replayed on tiny-random runs; each is refused or handled.

1. resume with other settings; 2. a corrupt middle line; 3. texts with U+2028/U+0085; 4. two runs
on one directory; 5. reruns into a finished run or sweep; 6. task=score reruns and decoding=amplify;
7. secrets in errors, logs and error.json; W&B files under the run directory.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from omegaconf import open_dict

from cdx.io import RunExistsError, RunLockedError, RunMismatchError, read_records, read_run
from cdx.run import run
from tests.conftest import ROOT, compose, patience

FAST = ["model=tiny_random", "prompts.limit=5", "decoding.max_new_tokens=6", "decoding.batch_size=2",
        "report.print_top=false"]
SCORE = ["model=tiny_random", "task=score", "prompts.limit=5", "task.batch_size=2", "report.print_top=false"]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under `folder` (the lock files aside) -> its bytes."""
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and not p.name.startswith(".cdx.lock")}


def cli(args: list[str], cwd: Path, env: dict | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT),
           **(env or {})}
    return subprocess.run([sys.executable, "-m", "cdx.run", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=patience(600))


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 10-record decode run (5 prompts x 2 samples)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    run(compose(FAST, out))
    return out


def copy_run(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns(".cdx.lock*"))
    return dst


# ---- 1. resume checks the settings -------------------------------------------------------------


def test_resume_with_other_settings_refuses_naming_them_and_changes_nothing(finished, tmp_path):
    out = copy_run(finished, tmp_path / "run")
    before = files(out)
    with pytest.raises(RunMismatchError) as err:
        run(compose([*FAST, "resume=true", "seed=1", "decoding.temperature=0.7"], out))
    assert "decoding.temperature: 1.0 -> 0.7" in str(err.value) and "seed: 0 -> 1" in str(err.value)
    with pytest.raises(RunMismatchError, match=r"inputs.n: 5 -> 4"):  # other prompts
        run(compose([*FAST, "resume=true", "prompts.limit=4"], out))
    assert files(out) == before


def test_execution_only_settings_may_differ_on_resume(finished, tmp_path):
    out = copy_run(finished, tmp_path / "run")
    lines = (out / "generations.jsonl").read_bytes().split(b"\n")
    (out / "generations.jsonl").write_bytes(b"\n".join(lines[:3]) + b"\n")  # a kill after 3 records
    run(compose([*FAST, "resume=true", "decoding.parallel=false"], out))
    # parallel changes how fast, and how many threads run each model: a float32 matmul sums in another
    # order on another thread count (on some CPUs, not all), so values may differ in their last bits.
    # The resumed file holds the uninterrupted run's records: the same ids, tokens, texts and order,
    # each number equal to float32 rounding.
    resumed, whole = read_records(out / "generations.jsonl"), read_records(finished / "generations.jsonl")
    assert [(r["id"], r["token_ids"], r["continuation"], r["finish_reason"]) for r in resumed] == \
        [(r["id"], r["token_ids"], r["continuation"], r["finish_reason"]) for r in whole]
    assert _numbers(resumed) == pytest.approx(_numbers(whole), rel=1e-5, abs=1e-5, nan_ok=True)
    assert resumed[:3] == whole[:3]  # the records kept from before the kill are untouched


def _numbers(node) -> list[float]:
    """Every number in a record tree, in order (None as nan, so that positions line up)."""
    if isinstance(node, dict):
        return [x for k in sorted(node) for x in _numbers(node[k])]
    if isinstance(node, list):
        return [x for v in node for x in _numbers(v)]
    if isinstance(node, bool) or isinstance(node, str):
        return []
    return [float("nan") if node is None else float(node)]


def test_resume_with_another_batch_size_is_refused_naming_it(finished, tmp_path):
    """Issue 23: each batch draws from a generator seeded by its number; another batch_size draws other texts."""
    out = copy_run(finished, tmp_path / "run")
    lines = (out / "generations.jsonl").read_bytes().split(b"\n")
    (out / "generations.jsonl").write_bytes(b"\n".join(lines[:3]) + b"\n")  # a kill after 3 records
    before = files(out)
    with pytest.raises(RunMismatchError, match=r"decoding.batch_size: 2 -> 3"):
        run(compose([*FAST, "resume=true", "decoding.batch_size=3", "decoding.parallel=false"], out))
    assert files(out) == before


# ---- 2. resume by record id --------------------------------------------------------------------


def test_a_corrupt_middle_line_is_regenerated_exactly_nothing_lost_nothing_duplicated(finished, tmp_path):
    out = copy_run(finished, tmp_path / "run")
    lines = (out / "generations.jsonl").read_bytes().split(b"\n")
    bad = lines[3][:40] + b"\x00garbage"
    (out / "generations.jsonl").write_bytes(b"\n".join([*lines[:3], bad, *lines[4:]]))
    assert len(read_records(out / "generations.jsonl")) == 9
    run(compose([*FAST, "resume=true"], out))
    # exactly the lost record was made again (same batch, same seed): the file equals the uninterrupted one
    assert (out / "generations.jsonl").read_bytes() == (finished / "generations.jsonl").read_bytes()
    assert (out / "generations.jsonl.corrupt").read_bytes() == bad + b"\n"  # the damaged line is kept aside
    assert json.loads((out / "summary.json").read_text())["n_texts"] == 10


# ---- 3. records survive any text ---------------------------------------------------------------


NASTY = "Line\u2028sep, next\u0085line, para\u2029, cr\r, fs\x1c gs\x1d rs\x1e vt\x0b ff\x0c, nul\x00 end"


ONE = [o for o in FAST if not o.startswith("prompts.")] + ["prompts=single", "decoding.generations_per_prefix=6"]


def test_texts_with_any_line_break_character_are_never_lost(tmp_path):
    cfg = compose(ONE, tmp_path)
    with open_dict(cfg):
        cfg.prompts.text = NASTY
    metrics = run(cfg)
    recs = read_records(tmp_path / "generations.jsonl")
    assert len(recs) == 6 and metrics["n_texts"] == 6 and all(r["prompt"] == NASTY for r in recs)
    assert len((tmp_path / "generations.jsonl").read_text().splitlines()) == 6  # safe for other readers too
    before = files(tmp_path)
    cfg2 = compose([*ONE, "resume=true"], tmp_path)
    with open_dict(cfg2):
        cfg2.prompts.text = NASTY
    run(cfg2)  # resume finds all six done: nothing is made twice
    assert files(tmp_path)["generations.jsonl"] == before["generations.jsonl"]
    assert [r["prompt"] for r in read_run(tmp_path).records] == [NASTY] * 6


# ---- 4. one directory, one run -----------------------------------------------------------------

HOLD = """
import sys, time
from cdx.io import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_run_on_a_directory_in_use_refuses_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(out)], stdout=subprocess.PIPE, text=True,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(RunLockedError, match=rf"in use by process {holder.pid} on "):
            run(compose(FAST, out))
        with pytest.raises(RunLockedError, match=str(holder.pid)):
            run(compose([*FAST, "resume=true"], out))
    finally:
        holder.kill()
        holder.wait()
    assert not (out / "generations.jsonl").exists() and not (out / "run.json").exists()


@pytest.mark.slow
def test_two_cli_runs_started_together_on_one_directory_write_each_record_once(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "cdx.run", "model=tiny_random", "prompts.limit=12", "decoding.max_new_tokens=12",
            "report.print_top=false", "hydra.run.dir=run"]
    procs = [subprocess.Popen(args, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    results = [(p.wait(timeout=patience(600)), p.stderr.read()) for p in procs]
    for p in procs:
        p.stdout.close()
        p.stderr.close()
    assert sorted(code for code, _ in results) == [0, 2]
    refused = next(err for code, err in results if code == 2)
    # The holder note is written just after the lock is taken, so a run refused in that instant names
    # "another process" rather than a pid: both are the lock's refusal.
    assert " is in use by " in refused or "already holds a finished decode run" in refused
    ids = [r["id"] for r in read_records(tmp_path / "run" / "generations.jsonl")]
    assert len(ids) == 24 == len(set(ids))
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["n_texts"] == 24


# ---- 5. reruns into a finished run or sweep ----------------------------------------------------

SMALL = ["model=tiny_random", "prompts.limit=2", "decoding.max_new_tokens=4", "report.print_top=false"]


@pytest.mark.slow
def test_cli_rerun_into_a_finished_run_refuses_before_hydra_writes_anything(tmp_path):
    first = cli([*SMALL, "hydra.run.dir=run"], tmp_path)
    assert first.returncode == 0, first.stderr
    before = files(tmp_path / "run")
    assert ".hydra/config.yaml" in before
    again = cli([*SMALL, "decoding.temperature=0.5", "hydra.run.dir=run"], tmp_path)
    assert again.returncode == 2
    assert "already holds a finished decode run; nothing was changed" in again.stderr
    assert "Traceback" not in again.stderr
    assert files(tmp_path / "run") == before  # .hydra/ included


@pytest.mark.slow
def test_a_rerun_sweep_is_refused_and_finished_jobs_stay_ok(tmp_path):
    from cdx.tasks import summarize

    sweep_args = ["-m", "seed=0,1", "hydra.sweep.dir=sweep", *SMALL]
    assert cli(sweep_args, tmp_path).returncode == 0
    before = files(tmp_path / "sweep")
    again = cli(sweep_args, tmp_path)
    assert again.returncode == 2 and "already holds a sweep" in again.stderr
    assert files(tmp_path / "sweep") == before
    counts = summarize.run(compose(["task=summarize", f"sweep_dir={tmp_path / 'sweep'}", "task.png=false"],
                                   tmp_path / "summary"))
    assert (counts["n_ok"], counts["n_failed"]) == (2, 0)
    resumed = cli([*sweep_args, "resume=true"], tmp_path)  # allowed: nothing left to make, nothing duplicated
    assert resumed.returncode == 0, resumed.stderr
    for job in ("0", "1"):
        assert files(tmp_path / "sweep" / job)["generations.jsonl"] == before[f"{job}/generations.jsonl"]


# ---- 6. task=score ------------------------------------------------------------------------------


def test_score_rerun_honours_resume_and_never_appends_duplicates(tmp_path):
    out = tmp_path / "score"
    run(compose(SCORE, out))
    full = (out / "scores.jsonl").read_bytes()
    with pytest.raises(RunExistsError, match="already holds a finished score run"):
        run(compose(SCORE, out))
    run(compose([*SCORE, "resume=true"], out))
    assert (out / "scores.jsonl").read_bytes() == full
    (out / "scores.jsonl").write_bytes(b"\n".join(full.split(b"\n")[:2]) + b"\n")  # killed after 2 of 5
    run(compose([*SCORE, "resume=true"], out))
    assert (out / "scores.jsonl").read_bytes() == full


def test_score_with_amplify_takes_the_weights_of_the_built_rule(tmp_path):
    metrics = run(compose([*SCORE, "decoding=amplify", "decoding.rule.alpha=1.5"], tmp_path))
    assert metrics["n_texts"] == 5
    # LogitDiff amplifying the comparison side: w_c = 1 + alpha, w_s = -alpha.
    assert read_run(tmp_path).info.identity["weights"] == [-1.5, 2.5]
    with pytest.raises(RunMismatchError, match=r"weights: \[-1.5, 2.5\] -> \[-1.0, 2.0\]"):
        run(compose([*SCORE, "decoding=amplify", "decoding.rule.alpha=1.0", "resume=true"], tmp_path))


# ---- 7. secrets and W&B ------------------------------------------------------------------------

SECRET = "sk-test-Gh7Kq2Vn9Xw4Pz8Rt1Lm"


class EchoKey(BaseHTTPRequestHandler):
    """An OpenAI-compatible endpoint that answers 401 and quotes the key it was sent."""

    def do_POST(self):  # noqa: N802 - http.server's name
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        body = json.dumps({"error": {"message": f"Incorrect API key: {self.headers.get('Authorization')}"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def echo_server():
    srv = ThreadingHTTPServer(("127.0.0.1", 0), EchoKey)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{srv.server_address[1]}/v1"
    srv.shutdown()
    srv.server_close()


@pytest.mark.slow
@pytest.mark.parametrize("mode", ["multirun"])  # a single run's one-line error: tests/test_cli.py
def test_a_server_that_echoes_the_key_leaks_it_nowhere(tmp_path, echo_server, mode):
    args = ["-m"] if mode == "multirun" else []
    args += ["task=search", "model=tiny_random", "assistant=openai", f"assistant.base_url={echo_server}",
            "assistant.api_key_env=CDX_SAFETY_TEST_KEY", "assistant.max_retries=0", "assistant.cache.enabled=false",
            "search.max_new_tokens=4", "search.generations_per_prefix=1", "search.n_cycles=1", "report.print_top=false"]
    args += ["hydra.sweep.dir=out"] if mode == "multirun" else ["hydra.run.dir=out"]
    proc = cli(args, tmp_path, env={"CDX_SAFETY_TEST_KEY": SECRET, "CDX_DEBUG": "1"})  # tracebacks on: worst case
    assert proc.returncode != 0
    assert "401" in proc.stdout + proc.stderr  # it did fail on the server's reply
    leaks = [name for name, data in files(tmp_path / "out").items() if SECRET[:8].encode() in data]
    assert SECRET[:8] not in proc.stdout + proc.stderr and leaks == []
    if mode == "multirun":
        assert "401" in (tmp_path / "out" / "0" / "error.json").read_text()  # the failure is recorded, clean


@pytest.mark.slow
def test_wandb_writes_under_the_run_directory_not_the_current_one(tmp_path, monkeypatch):
    pytest.importorskip("wandb")
    for var in ("WANDB_DIR", "WANDB_MODE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("WANDB_DATA_DIR", str(tmp_path / "data"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    out = tmp_path / "run"
    run(compose([*SMALL, "logger=wandb", "logger.mode=offline"], out))
    assert list((out / "wandb").glob("offline-run-*")) and not (cwd / "wandb").exists()
