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
