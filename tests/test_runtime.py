"""The thread budget: CPUs this process may use, shared with concurrent jobs and busy neighbours."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import psutil
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


@pytest.mark.parametrize(("cpus", "jobs", "busy", "expected"), [
    (2, 1, 0.0, 2),    # idle machine: every CPU
    (2, 1, 0.3, 2),    # a terminal and daemons cost no thread
    (2, 1, 1.0, 1),    # one CPU-bound neighbour: one thread
    (2, 1, 2.0, 1),    # both CPUs busy: one thread, never zero
    (2, 2, 0.0, 1),    # two jobs of a local launcher share two CPUs
    (8, 4, 0.0, 2),
    (8, 3, 0.0, 2),    # floor(8 / 3)
    (8, 1, 2.6, 5),    # 2.6 busy rounds to 3
    (1.5, 1, 0.0, 1),  # a fractional cgroup quota: never more threads than whole CPUs
    (64, 1, 0.0, 64),
])
def test_auto_threads_against_a_hand_table(cpus, jobs, busy, expected):
    assert runtime.auto_threads(cpus, jobs, busy) == expected


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


def test_a_cpu_bound_neighbour_is_seen_as_busy():
    # Reference: the neighbour's own CPU time over the same window (holds however busy the machine is).
    child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        time.sleep(0.3)
        proc = psutil.Process(child.pid)
        before, t0 = sum(proc.cpu_times()[:2]), time.perf_counter()
        busy = runtime.busy_cpus_of_others(window=0.5)
        neighbour = (sum(proc.cpu_times()[:2]) - before) / (time.perf_counter() - t0)
    finally:
        child.kill()
        child.wait()
    assert busy >= neighbour - 0.15, (busy, neighbour)


def test_busy_counts_user_nice_and_system_time_of_others_not_our_own(monkeypatch):
    from collections import namedtuple

    cpu = namedtuple("cpu", "user nice system idle irq softirq")
    own = namedtuple("own", "user system")
    # two CPUs over a 0.5 s window: others ran 0.4 s user + 0.1 s system, niced work 0.5 s (counted:
    # its slices stall a thread team too), and this process 0.2 s (in the totals too; it must come out)
    snaps = iter([[cpu(10, 5, 2, 50, 0, 0), cpu(10, 5, 2, 50, 0, 0)],
                  [cpu(10.4, 5.5, 2.1, 50, 0, 0), cpu(10.2, 5, 2.0, 50, 0, 0)]])
    owns = iter([own(1.0, 0.0), own(1.2, 0.0)])
    clock = iter([100.0, 100.5])
    monkeypatch.setattr(runtime.psutil, "cpu_times", lambda percpu: next(snaps))
    monkeypatch.setattr(runtime.psutil, "Process", lambda: type("P", (), {"cpu_times": lambda self: next(owns)})())
    monkeypatch.setattr(runtime.time, "perf_counter", lambda: next(clock))
    monkeypatch.setattr(runtime.time, "sleep", lambda s: None)
    monkeypatch.setattr(runtime.os, "sched_getaffinity", lambda pid: {0, 1})
    assert runtime.busy_cpus_of_others(window=0.5) == pytest.approx((0.4 + 0.5 + 0.1 + 0.2 - 0.2) / 0.5)


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
