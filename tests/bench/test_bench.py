"""The benchmark script runs end to end on tiny models (its logic, not its figures)."""

import re

import pytest

from cdx import bench


def test_bench_all_prints_every_table_with_its_machine(tmp_path, capsys):
    out = tmp_path / "bench.md"
    bench.main(["all", "--model", "tiny-random", "--repeats", "1", "--tokens", "4", "--batch", "2", "--out", str(out)])
    text = out.read_text()
    assert text.count("### ") == len(bench.ALL)
    for title in ("Teacher-forced scoring", "against its floor", "Adapter pair", "Cached vs uncached", "task=analyze"):
        assert title in text
    machines = re.findall(r"^Machine: (.+)$", text, re.M)
    assert len(machines) == len(bench.ALL)
    for fact in ("cores", "torch ", "BLAS ", "torch threads", "load average"):
        assert all(fact in m for m in machines), fact
    assert "parallel mode threads-" in text or "parallel mode sequential" in text
    for row in ("thread-scaling factor", "overhead over the floor", "sampler=multinomial", "model memory of the pair",
                "task=analyze, whole run"):
        assert re.search(rf"{row}.*\| \d+\.\d\dx \|", text), row
    assert "bench all: 5 table(s) printed" in capsys.readouterr().out


def test_machine_facts_are_read_from_this_machine():
    assert bench.blas().split()[0] in bench.torch.__config__.show()
    assert bench.cpu_model()


def test_ratio_is_the_median_of_ratios_within_each_repeat():
    # the machine slows down in repeat 2: paired ratios cancel it, a ratio of medians would say 3.0x
    a, b = bench.Timing("a", [2.0, 10.0, 3.0]), bench.Timing("b", [1.0, 4.0, 1.0])
    r = bench.ratio(a, b)
    assert r == 2.5 and (r.lo, r.hi) == (2.0, 3.0)
    table = bench.to_markdown([bench.Row("a vs b", a, r, "<= 3x")], "t", "m")
    assert "| a vs b | 3.000 | 3 | 0 | 2.50x (2.00-3.00) | <= 3x |" in table
    assert a.median / b.median == 3.0
    with pytest.raises(ValueError):
        bench.ratio(a, bench.Timing("short", [1.0]))


def test_shared_bench_rows_divide_the_right_timings(monkeypatch):
    # The logic of `cdx.bench shared` (its figures need minutes of real jobs): scripted wall times.
    from cdx import bench_shared

    calls = []

    def at_once(cmds, env):
        calls.append((len(cmds), env.get("OMP_WAIT_POLICY"), " ".join(c for c in cmds[0] if c.startswith("runtime"))))
        return {1: 10.0, 2: 12.0, 4: 25.0}[len(cmds)]

    monkeypatch.setattr(bench_shared, "_at_once", at_once)
    rows = bench_shared._k_jobs(bench_shared.Jobs(bench.Path("/tmp/x"), []), {}, repeats=1)
    by_name = {r.name: r for r in rows}
    assert by_name["2 decode jobs at once: throughput vs one after another"].ratio == 20.0 / 12.0
    assert by_name["4 decode jobs at once: throughput vs one after another"].ratio == 40.0 / 25.0
    calls.clear()
    monkeypatch.setattr(bench_shared, "competitors", lambda n: __import__("contextlib").nullcontext())
    rows = bench_shared._beside_competitors(bench_shared.Jobs(bench.Path("/tmp/x"), []), {}, repeats=1)
    policy = bench_shared.os.environ["OMP_WAIT_POLICY"]  # importing cdx set it (PASSIVE) unless the user had
    assert [c[1:] for c in calls] == [(None, ""), (policy, ""), (policy, "runtime.threads=2"),
                                      ("", "runtime.threads=2")]  # "" keeps libgomp's own default
    assert [r.target for r in rows[1:]] == ["<= 2.5x", "(what decided auto)", "(what decided auto)"]


def test_shared_bench_jobs_really_run_and_a_failing_job_is_reported(tmp_path):
    from cdx import bench_shared

    jobs = bench_shared.Jobs(tmp_path, ["model=tiny_random"])
    seconds = bench_shared._at_once([jobs.cmd(["prompts.limit=1", "decoding.max_new_tokens=2"], [])],
                                    bench_shared._env())
    assert seconds > 0 and (tmp_path / "job1" / "generations.jsonl").is_file()
    with pytest.raises(RuntimeError, match="exit 2.*runtime.threads=0 is not valid"):
        bench_shared._at_once([jobs.cmd(["runtime.threads=0"], [])], bench_shared._env())


def test_competitors_run_while_the_block_runs_and_are_gone_after():
    import psutil

    from cdx import bench_shared

    with bench_shared.competitors(2):
        mine = [p for p in psutil.Process().children() if "while True" in " ".join(p.cmdline())]
        assert len(mine) == 2 and all(p.is_running() for p in mine)
    assert not any(p.is_running() and p.status() != psutil.STATUS_ZOMBIE for p in mine)


def test_shared_bench_gives_every_job_its_own_run_folder(monkeypatch, capsys):
    """The analyze jobs used to restart the job numbers in the decode jobs' folder: job1 was refused as a
    finished run, after 11 minutes of measurements. Every command of a whole bench now names a new folder."""
    from cdx import bench, bench_shared

    dirs: list[str] = []

    def at_once(cmds, env):
        dirs.extend(a for c in cmds for a in c if a.startswith("hydra.run.dir="))
        return 1.0

    monkeypatch.setattr(bench_shared, "_at_once", at_once)
    monkeypatch.setattr(bench_shared, "competitors", lambda n: __import__("contextlib").nullcontext())
    rows, _ = bench_shared.bench_shared(bench.Setup(model="tiny-random", repeats=1))
    assert len(dirs) == len(set(dirs)) > 10
    assert any("/analyze/" in d for d in dirs) and len(rows) >= 8
    assert "task=analyze" in capsys.readouterr().err  # each group's rows shown as soon as measured


def test_topk_bench_times_both_sizes_against_none_and_measures_the_bytes(capsys):
    bench.main(["topk", "--model", "tiny-random", "--repeats", "1", "--tokens", "3", "--batch", "2"])
    text = capsys.readouterr().out
    sizes = {int(k): int(b) for k, b in re.findall(r"record_top_k=(\d+): decoding \+ the records' top_next "
                                                   r"\((\d+) bytes a token on disk\) \|.*\| \d+\.\d\dx \|", text)}
    assert set(sizes) == {5, 20} and 0 < sizes[5] < sizes[20]  # more alternatives, more bytes
    assert "record_top_k=0" in text and "bench topk: 1 table(s) printed" in text
