"""The app benchmarks' logic (the timings themselves are the lead's to run: docs/benchmarks.md)."""

from __future__ import annotations

import pytest

from cdx.app.runs import load_text_run
from cdx.bench_app import open_explorer, replicate_run, sbs_ratio
from tests.app.app_fixtures import write_text_run


def test_ratio_is_the_median_of_paired_ratios():
    assert sbs_ratio([2.0, 3.0, 30.0], [1.0, 2.0, 10.0]) == pytest.approx(2.0)  # ratios 2, 1.5, 3


def test_replicated_run_reads_back_whole_with_unique_ids(tmp_path):
    src = write_text_run(tmp_path / "src", 3)
    run = load_text_run(replicate_run(src, tmp_path / "big", 250))
    assert len(run.records) == 250 and run.n_corrupt == 0
    assert len({r["id"] for r in run.records}) == 250
    assert open_explorer(tmp_path / "big") > 0
