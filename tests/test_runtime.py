"""The thread budget: CPUs this process may use, shared among concurrent jobs."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from cdx import runtime
from cdx.decoding import streams
from cdx.errors import CdxUserError


@pytest.fixture
def restore_threads():
    before, total = torch.get_num_threads(), streams.total_threads()
    yield
    torch.set_num_threads(before)
    streams.set_total_threads(total)


@pytest.mark.parametrize(("cpus", "jobs", "expected"), [
    (2, 1, 2),    # every CPU this process may use
    (2, 2, 1),    # two jobs of a local launcher share two CPUs
    (2, 4, 1),    # never zero
    (8, 4, 2),
    (8, 3, 2),    # floor(8 / 3)
    (1.5, 1, 1),  # a fractional cgroup quota: never more threads than whole CPUs
    (64, 1, 64),
])
def test_auto_threads_against_a_hand_table(cpus, jobs, expected):
    assert runtime.auto_threads(cpus, jobs) == expected


def _cgroup_v2(tmp_path, quotas: dict[str, str]):
    root = tmp_path / "cgroup"
    for path, text in quotas.items():
        (root / path).mkdir(parents=True, exist_ok=True)
        (root / path / "cpu.max").write_text(text)
    proc = tmp_path / "proc_cgroup"
    proc.write_text("0::/job/step\n")
    return root, proc


def test_cgroup_v2_takes_the_tightest_quota_on_the_path(tmp_path):
    root, proc = _cgroup_v2(tmp_path, {"": "max 100000", "job": "150000 100000", "job/step": "max 100000"})
    assert runtime.cgroup_quota_cpus(root, proc) == 1.5
    root, proc = _cgroup_v2(tmp_path / "none", {"": "max 100000", "job/step": "max 100000"})
    assert runtime.cgroup_quota_cpus(root, proc) is None


def test_cgroup_v1_quota_and_no_cgroup_file(tmp_path):
    d = tmp_path / "cgroup" / "cpu,cpuacct" / "slurm" / "job_7"
    d.mkdir(parents=True)
    (d / "cpu.cfs_quota_us").write_text("300000\n")
    (d / "cpu.cfs_period_us").write_text("100000\n")
    (d.parent / "cpu.cfs_quota_us").write_text("-1\n")  # no limit above
    (d.parent / "cpu.cfs_period_us").write_text("100000\n")
    proc = tmp_path / "proc_cgroup"
    proc.write_text("4:cpu,cpuacct:/slurm/job_7\n3:memory:/slurm/job_7\n")
    assert runtime.cgroup_quota_cpus(tmp_path / "cgroup", proc) == 3.0
    assert runtime.cgroup_quota_cpus(tmp_path / "cgroup", tmp_path / "missing") is None


def test_available_cpus_is_the_affinity_mask_capped_by_the_quota(monkeypatch):
    assert runtime.affinity_cpus() == len(os.sched_getaffinity(0))
    monkeypatch.setattr(runtime, "cgroup_quota_cpus", lambda: 0.5)
    assert runtime.available_cpus() == 0.5
    monkeypatch.setattr(runtime, "cgroup_quota_cpus", lambda: None)
    assert runtime.available_cpus() == runtime.affinity_cpus()


def test_importing_cdx_asks_for_the_passive_openmp_wait_unless_the_user_chose():
    code = "import cdx, os; print(os.environ['OMP_WAIT_POLICY'])"
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "PASSIVE"
    out = subprocess.run([sys.executable, "-c", code], env={**env, "OMP_WAIT_POLICY": "ACTIVE"},
                         capture_output=True, text=True, timeout=120)
    assert out.stdout.strip() == "ACTIVE"


def test_fixed_threads_are_applied_to_torch_and_the_pair_streams(restore_threads):
    budget = runtime.configure({"threads": 1, "jobs": "auto"})
    assert (budget.threads, torch.get_num_threads(), streams.total_threads()) == (1, 1, 1)
    assert "1 CPU thread" in budget.describe()


def test_auto_never_exceeds_the_cpus_this_process_may_use(restore_threads):
    budget = runtime.configure({"threads": "auto", "jobs": 4})
    assert 1 <= budget.threads <= max(1, int(runtime.available_cpus() // 4))
    assert torch.get_num_threads() == budget.threads


@pytest.mark.parametrize(("block", "message"), [
    ({"threads": 0}, "runtime.threads=0 is not valid: must be 'auto' or an integer >= 1"),
    ({"threads": "many"}, "runtime.threads='many' is not valid"),
    ({"threads": 1.5}, "runtime.threads=1.5 is not valid"),
    ({"jobs": -2}, "runtime.jobs=-2 is not valid"),
    ({"thread": 2}, "runtime.thread is not a runtime option (valid: threads, jobs)"),
])
def test_bad_runtime_settings_are_one_clear_error(block, message, restore_threads):
    with pytest.raises(CdxUserError) as e:
        runtime.configure(block)
    assert message in str(e.value)


def test_the_cli_refuses_a_bad_thread_count_in_one_line(tmp_path):
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    r = subprocess.run([sys.executable, "-m", "cdx.run", "model=tiny_random", "runtime.threads=0",
                        f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 2, r.stderr
    assert "runtime.threads=0 is not valid" in r.stderr and "Traceback" not in r.stderr
