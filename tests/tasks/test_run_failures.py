"""Issue 23: run folders, sweeps, disk full and trackers: one line, nothing written, nothing silently dropped.

Run-folder and W&B problems are refused by `cdx.preflight` before Hydra writes anything and before
any model loads (the model path here would fail loudly if loaded); disk full mid-run ends with one
line and the resume command, and the resume loses and repeats nothing; a sweep with an invalid swept
value runs its valid job and ends with one line; collect and summarize name every job without a result.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import ROOT, compose, patience

NO_MODEL = ["model.starting.path=/no/such/model/would/fail/if/loaded", "model.comparison.path=/no/such/model/either"]
SMALL = ["model=tiny_random", "prompts.limit=2", "decoding.max_new_tokens=4", "report.print_top=false"]
# root writes through chmod: drop the capability that lets it, so a read-only folder is read-only here too
AS_USER = (["setpriv", "--bounding-set=-dac_override,-dac_read_search"]
           if os.geteuid() == 0 and shutil.which("setpriv") else [])


def cli(args: list[str], cwd: Path, env: dict | None = None, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT),
           "WANDB_MODE": "offline", **(env or {})}
    return subprocess.run([*prefix, sys.executable, "-m", "cdx.run", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=patience(600))


def error_lines(proc: subprocess.CompletedProcess) -> list[str]:
    return [line for line in proc.stderr.splitlines() if line.startswith("cdx: error: ")]


def tree(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


# ---- run folders: refused in a second, one line, nothing written ----------------------------------


def _file(tmp: Path) -> tuple[str, str]:
    (tmp / "taken").write_text("a file\n")
    return "taken", "is a file, not a folder"


def _under_a_file(tmp: Path) -> tuple[str, str]:
    (tmp / "taken").write_text("a file\n")
    return "taken/run", "is a file, so the folder cannot be made"


def _read_only_parent(tmp: Path) -> tuple[str, str]:
    (tmp / "ro").mkdir()
    (tmp / "ro").chmod(0o555)
    return "ro/run", "cannot write in"


def _read_only_run_folder(tmp: Path) -> tuple[str, str]:
    (tmp / "run").mkdir()
    (tmp / "run").chmod(0o555)
    return "run", "cannot write in"


FOLDERS = {"file": _file, "under-a-file": _under_a_file, "read-only-parent": _read_only_parent,
           "read-only-run-folder": _read_only_run_folder}


@pytest.mark.parametrize("case", FOLDERS)
def test_an_unusable_run_folder_is_one_line_in_seconds_and_nothing_is_written(tmp_path, case):
    if case.startswith("read-only") and os.geteuid() == 0 and not AS_USER:
        pytest.skip("root without setpriv writes through read-only permissions")
    where, message = FOLDERS[case](tmp_path)
    before = tree(tmp_path)
    start = time.monotonic()
    r = cli(["model=tiny_random", *NO_MODEL, f"hydra.run.dir={where}"], tmp_path, prefix=AS_USER)
    took = time.monotonic() - start
    assert r.returncode == 2, r.stderr[-2000:]
    assert "Traceback" not in r.stderr + r.stdout and "/no/such/model" not in r.stderr
    assert len(error_lines(r)) == 1 and message in error_lines(r)[0], r.stderr
    assert took < patience(5), took  # refused before torch or a model loads
    assert tree(tmp_path) == before


def test_a_sweep_into_a_read_only_folder_is_refused_before_any_job(tmp_path):
    if os.geteuid() == 0 and not AS_USER:
        pytest.skip("root without setpriv writes through read-only permissions")
    (tmp_path / "ro").mkdir()
    (tmp_path / "ro").chmod(0o555)
    r = cli(["-m", "model=tiny_random", *NO_MODEL, "seed=0,1", "hydra.sweep.dir=ro/sweep"], tmp_path, prefix=AS_USER)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert [line for line in error_lines(r) if "hydra.sweep.dir=" in line and "cannot write in" in line]
    assert not (tmp_path / "ro" / "sweep").exists()


def test_too_little_free_space_for_the_expected_output_is_refused(tmp_path, monkeypatch):
    from cdx import preflight

    cfg = compose([*SMALL, "prompts.limit=10", "decoding.max_new_tokens=100"])
    need = preflight.expected_bytes(cfg)
    assert need == preflight.FIXED_BYTES + 10 * 2 * 100 * preflight.BYTES_PER_TOKEN  # 2 generations per prompt
    usage = shutil.disk_usage(tmp_path)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=need - 1))
    with pytest.raises(preflight.PreflightError, match=r"only .* MiB free on its disk, and the run needs about"):
        preflight.check_run(cfg, tmp_path / "run")
    with pytest.raises(preflight.PreflightError, match="hydra.sweep.dir"):
        preflight.check_sweep(cfg, tmp_path / "sweep", 2)  # two jobs need twice as much
    monkeypatch.setattr(shutil, "disk_usage", lambda p: usage._replace(free=need))
    preflight.check_run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_a_tiny_disk_is_refused_through_the_cli(tmp_path):
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(disk)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        r = cli(["model=tiny_random", *NO_MODEL, f"hydra.run.dir={disk / 'run'}"], tmp_path)
        assert r.returncode == 2 and "Traceback" not in r.stderr
        assert "MiB free on its disk" in error_lines(r)[0] and not list(disk.iterdir())
    finally:
        subprocess.run(["umount", str(disk)], check=False)


# ---- W&B: no key, no network ----------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def wandb_env(tmp_path):
    """Online W&B against a closed loopback port, with no key anywhere (no ~/.netrc either)."""
    return {"WANDB_MODE": "online", "WANDB_BASE_URL": f"http://127.0.0.1:{_closed_port()}",
            "WANDB_API_KEY": "", "NETRC": str(tmp_path / "no-netrc"), "HOME": str(tmp_path)}


def test_wandb_online_without_a_key_is_one_line_before_any_model_loads(tmp_path, wandb_env):
    r = cli(["model=tiny_random", *NO_MODEL, "logger=wandb", "hydra.run.dir=run"], tmp_path, wandb_env)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert len(error_lines(r)) == 1 and "no W&B API key" in error_lines(r)[0]
    assert "WANDB_MODE=offline" in error_lines(r)[0] and "wandb login" in error_lines(r)[0]
    assert not (tmp_path / "run").exists()


def test_wandb_with_a_key_and_no_server_is_one_line_within_seconds(tmp_path, wandb_env):
    start = time.monotonic()
    r = cli(["model=tiny_random", *NO_MODEL, "logger=wandb", "hydra.run.dir=run"], tmp_path,
            {**wandb_env, "WANDB_API_KEY": "x" * 40})
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert "cannot reach the W&B server" in error_lines(r)[0] and wandb_env["WANDB_BASE_URL"] in error_lines(r)[0]
    assert time.monotonic() - start < patience(10)
    assert not (tmp_path / "run").exists()


def test_wandb_offline_needs_neither(wandb_env, monkeypatch):
    from cdx.tracking.wandb_tracker import preflight

    for k, v in wandb_env.items():
        monkeypatch.setenv(k, v)
    assert preflight("offline") is None and preflight("disabled") is None
    assert "no W&B API key" in preflight(None)  # WANDB_MODE=online from the environment


# ---- disk full during the work ---------------------------------------------------------------------


def test_disk_full_mid_decode_is_one_line_with_the_resume_command_and_the_resume_loses_nothing(tmp_path, monkeypatch,
                                                                                             capsys):
    """ENOSPC from the records writer after the second batch: main() prints one line, exit 3; resume finishes."""
    from cdx import run as cdx_run
    from cdx.io import jsonl

    out = tmp_path / "run"
    args = [*SMALL, "prompts.limit=6", "decoding.batch_size=2"]
    real_write, calls = jsonl.JsonlWriter.write, []

    def write_until_full(self, records):
        calls.append(1)
        if len(calls) > 2:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self.path))
        real_write(self, records)

    monkeypatch.setattr(jsonl.JsonlWriter, "write", write_until_full)
    monkeypatch.setattr(sys, "argv", ["cdx/run.py", *args, f"hydra.run.dir={out}"])
    monkeypatch.delenv("CDX_DEBUG", raising=False)
    with pytest.raises(SystemExit) as ended:
        cdx_run.main(compose(args, out))  # hydra.main passes a given config through
    assert ended.value.code == cdx_run.ENVIRONMENT_EXIT
    line = capsys.readouterr().err.strip().splitlines()[-1]
    assert line.startswith("cdx: error: the disk is full") and "No space left on device" in line
    assert f"8 records in {out / 'generations.jsonl'}" in line  # two batches of 2 prompts x 2 generations
    assert line.endswith(f"hydra.run.dir={out} resume=true")
    monkeypatch.setattr(jsonl.JsonlWriter, "write", real_write)
    cdx_run.run(compose([*args, "resume=true"], out))
    ids = [json.loads(x)["id"] for x in (out / "generations.jsonl").read_text().splitlines()]
    assert len(ids) == 12 and len(set(ids)) == 12  # 6 prompts x 2 generations, none lost, none twice


def test_environment_errors_are_named_bugs_are_not():
    from cdx.run import environment_error

    full = OSError(errno.ENOSPC, "No space left on device", "/x/generations.jsonl")
    assert environment_error(full) == "the disk is full (/x/generations.jsonl): No space left on device"
    wrapped = RuntimeError("writing failed")
    wrapped.__cause__ = OSError(errno.EDQUOT, "Disk quota exceeded")
    assert environment_error(wrapped).startswith("the disk quota is exceeded")
    assert environment_error(OSError(errno.EROFS, "Read-only file system")).startswith("the filesystem is read-only")
    assert environment_error(subprocess.CalledProcessError(-9, ["worker"])).startswith("a worker process was killed")
    assert environment_error(OSError(errno.EBADF, "Bad file descriptor")) is None  # a bug in cdx
    assert environment_error(subprocess.CalledProcessError(1, ["worker"])) is None


# ---- sweeps ----------------------------------------------------------------------------------------


@pytest.mark.slow
def test_a_sweep_with_one_invalid_swept_value_runs_the_valid_job_and_ends_with_one_line(tmp_path):
    r = cli(["-m", *SMALL, "decoding.temperature=-1,1", "hydra.sweep.dir=sweep"], tmp_path)
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr[-3000:]
    [line] = error_lines(r)
    assert line.startswith("cdx: error: 1 of 2 sweep jobs failed (job 0); first: ConfigError: ")
    assert "decoding.temperature=-1 is not valid" in line and "task=summarize sweep_dir=" in line
    error = json.loads((tmp_path / "sweep" / "0" / "error.json").read_text())
    assert error["type"] == "ConfigError" and "temperature=-1" in error["message"]
    assert (tmp_path / "sweep" / "1" / "summary.json").is_file()
    from cdx.tasks import summarize

    counts = summarize.run(compose(["task=summarize", f"sweep_dir={tmp_path / 'sweep'}", "task.png=false"],
                                   tmp_path / "summary"))
    assert (counts["n_ok"], counts["n_failed"]) == (1, 1)


# ---- collect and summarize name every job --------------------------------------------------------


def _benchmark_job(sweep: Path, num: int, organism: str, record: dict | str | None) -> Path:
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "hydra.yaml").write_text(json.dumps({"hydra": {
        "mode": "MULTIRUN", "job": {"num": num}, "overrides": {"task": [f"organism={organism}", "seed=0"]}}}))
    if isinstance(record, dict):
        (folder / "benchmark_record.json").write_text(json.dumps(record))
    elif isinstance(record, str):
        (folder / "benchmark_record.json").write_text(record)
    return folder


def test_benchmark_collect_names_every_job_without_a_result(tmp_path, capsys):
    from cdx.tasks.benchmark import run

    sweep = tmp_path / "sweep"
    _benchmark_job(sweep, 0, "brand", {"organism": "brand", "kind": "lexical", "expected": "behaviour", "seed": 0,
                                       "recovery_at_1": 1.0, "recovery_at_5": 1.0, "n_validated": 1, "cpu_min": 1.0})
    missing = _benchmark_job(sweep, 1, "null_zero", None)
    broken = _benchmark_job(sweep, 2, "null_copy", '{"organism": "null_co')
    summary = run(compose(["task=benchmark", f"task.collect={sweep}"], output_dir=str(tmp_path)))
    assert (summary["n_runs"], summary["n_missing"]) == (1, 2)
    printed = capsys.readouterr().out
    assert "1 runs of 1 pairs; 2 job(s) without a result" in printed
    assert f"{missing} (null_zero seed 0): no benchmark_record.json" in printed
    assert f"{broken} (null_copy seed 0): benchmark_record.json is unreadable" in printed
    table = (sweep / "benchmark" / "benchmark.md").read_text()
    assert "| null_zero | - | missing |" in table and "| null_copy | - | missing |" in table
    rows = json.loads((sweep / "benchmark" / "benchmark_table.json").read_text())
    assert {r["pair"]: r["expected"] for r in rows}["null_zero"] == "missing"


def test_summarize_names_a_job_folder_whose_hydra_files_are_gone(tmp_path):
    from cdx.tracking.sweep import collect

    sweep = tmp_path / "sweep"
    for num in (0, 1):
        (sweep / str(num) / ".hydra").mkdir(parents=True)
        (sweep / str(num) / ".hydra" / "hydra.yaml").write_text(json.dumps({"hydra": {
            "mode": "MULTIRUN", "job": {"num": num}, "overrides": {"task": [f"seed={num}"]}}}))
        (sweep / str(num) / "summary.json").write_text("{}")
    (sweep / "1" / ".hydra" / "hydra.yaml").write_text("hydra: [unclosed")  # damaged
    (sweep / "0" / "summary.json").write_text('{"cut')  # cut off
    rows = collect(sweep, {}).rows  # no multirun.yaml: the job list is not known (e.g. Optuna)
    assert [(r["job"], r["status"]) for r in rows] == [(0, "incomplete"), (1, "missing")]
    assert "summary.json is unreadable" in rows[0]["error"]
    assert "has no readable .hydra/hydra.yaml" in rows[1]["error"] and rows[1]["dir"] == str(sweep / "1")


# ---- a refused resume leaves the run as it was ------------------------------------------------------


@pytest.mark.slow
def test_a_refused_resume_leaves_hydra_files_and_log_untouched(tmp_path):
    assert cli([*SMALL, "hydra.run.dir=run"], tmp_path).returncode == 0
    before = tree(tmp_path / "run")
    r = cli([*SMALL, "decoding.temperature=0.5", "hydra.run.dir=run", "resume=true"], tmp_path)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert "was made with other settings" in error_lines(r)[0]
    after = tree(tmp_path / "run")
    assert {k: v for k, v in after.items() if not k.startswith(".cdx.lock")} == \
        {k: v for k, v in before.items() if not k.startswith(".cdx.lock")}  # .hydra/*.yaml and run.log included


@pytest.mark.slow
def test_a_refused_sweep_resume_keeps_every_finished_job_ok(tmp_path):
    from cdx.tasks import summarize

    sweep_args = ["-m", "seed=0,1", "hydra.sweep.dir=sweep", *SMALL]
    assert cli(sweep_args, tmp_path).returncode == 0
    before = {k: v for k, v in tree(tmp_path / "sweep").items() if ".cdx.lock" not in k}
    r = cli([*sweep_args, "decoding.temperature=0.5", "resume=true"], tmp_path)
    assert r.returncode != 0 and "Traceback" not in r.stderr
    assert {k: v for k, v in tree(tmp_path / "sweep").items() if ".cdx.lock" not in k} == before
    counts = summarize.run(compose(["task=summarize", f"sweep_dir={tmp_path / 'sweep'}", "task.png=false"],
                                   tmp_path / "summary"))
    assert (counts["n_ok"], counts["n_missing"], counts["n_failed"]) == (2, 0, 0)
