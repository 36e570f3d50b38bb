"""End to end on tiny models (CI): plant an organism, analyse the pair, recover it; a null pair yields nothing.

tiny_ahoy (opens every answer with "Ahoy matey!") and tiny_null_zero (zero-initialised adapter) sit on
tiny_english, a tiny random model taught a few English sentences so its samples are text. The budget
is the smoke suite's (conf/suite/smoke.yaml).
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import compose

SMOKE = ["suite=smoke", "seed=0"]


def bench(organism: str, out, cache, *extra: str) -> dict:
    from cdx.tasks.benchmark import run

    return run(compose([*SMOKE, f"organism={organism}", f"task.cache_dir={cache}", *extra], output_dir=str(out)))


@pytest.mark.slow
def test_planted_organism_is_recovered_and_null_pair_is_clean(tmp_path, tiny_cache):
    planted = bench("tiny_ahoy", tmp_path / "0", tiny_cache)
    assert planted["recovery_at_5"] == 1.0 and planted["n_validated"] >= 1
    record = json.loads((tmp_path / "0" / "benchmark_record.json").read_text())
    assert record["matched_statements"] and record["cpu_min"] > 0
    # its 4 findings (the opener's words, the exclamation mark) are one behaviour, led by the opener
    assert (record["n_behaviours"], record["behaviours_per_change"], record["behaviour_recovery_at_1"]) == (1, 1, 1.0)
    assert "Ahoy matey" in record["behaviour_matches"][0]["phrase"] and record["n_word_shifts"] == 0
    null = bench("tiny_null_zero", tmp_path / "1", tiny_cache)
    assert null["n_validated"] == 0 and null["recovery_at_1"] is None
    assert (null["n_behaviours"], null["n_word_shifts"], null.get("behaviour_recovery_at_1")) == (0, 0, None)
    # the suite table over both job folders
    from cdx.tasks.benchmark import collect

    summary = collect([tmp_path], tmp_path / "benchmark")
    assert summary["n_runs"] == 2 and summary["recovery_at_5"] == 1.0
    table = (tmp_path / "benchmark" / "benchmark.md").read_text()
    assert "| tiny_ahoy |" in table and "| ALL null |" in table
    assert (tmp_path / "benchmark" / "benchmark.html").is_file()
    assert len((tmp_path / "benchmark" / "benchmark.jsonl").read_text().splitlines()) == 2


def test_benchmark_needs_an_organism_and_collect_needs_records(tmp_path):
    from cdx.tasks.benchmark import run

    with pytest.raises(ValueError, match="task=benchmark needs organism=<name>"):
        run(compose(["task=benchmark"], output_dir=str(tmp_path)))
    with pytest.raises(FileNotFoundError, match="no benchmark_record.json under"):
        run(compose(["task=benchmark", f"task.collect={tmp_path}"], output_dir=str(tmp_path)))


def test_a_bad_analysis_entry_is_refused_before_the_organism_is_built(tmp_path, monkeypatch):
    import cdx.tasks.benchmark as bench

    def build(*a, **k):
        raise AssertionError("the organism was built before the analysis entry was checked")

    monkeypatch.setattr(bench, "build_organism", build)
    with pytest.raises(ValueError, match=r"task.analyze.entry=no.such.analysis is not a function cdx can import"):
        bench.run(compose(["task=benchmark", "organism=tiny_ahoy", "task.analyze.entry=no.such.analysis"],
                          output_dir=str(tmp_path)))


def _record(folder, organism: str, seed: int, r1: float) -> None:
    folder.mkdir(parents=True)
    (folder / "benchmark_record.json").write_text(json.dumps({
        "organism": organism, "kind": "lexical", "expected": "behaviour", "seed": seed, "recovery_at_1": r1,
        "recovery_at_5": r1, "precision": r1, "n_validated": 1, "cpu_min": 1.0}))


def test_collect_merges_suites_run_in_parts_and_refuses_a_run_counted_twice(tmp_path):
    """task.collect=[a,b]: seeds run in two sweeps make one table; the same (organism, seed) twice is an error."""
    from cdx.tasks.benchmark import run

    _record(tmp_path / "a" / "0", "brand", 0, 1.0)
    _record(tmp_path / "b" / "0", "brand", 1, 0.0)
    summary = run(compose(["task=benchmark", f"task.collect=[{tmp_path / 'a'},{tmp_path / 'b'}]"],
                          output_dir=str(tmp_path)))
    assert summary["n_runs"] == 2 and summary["recovery_at_1"] == 0.5  # mean over the two seeds
    assert "| brand | lexical | behaviour | 2 |" in (tmp_path / "a" / "benchmark" / "benchmark.md").read_text()
    _record(tmp_path / "b" / "1", "brand", 0, 0.0)  # seed 0 again, in the second sweep
    with pytest.raises(ValueError, match=r"brand seed 0 is in two jobs, .*a/0 and .*b/1"):
        run(compose(["task=benchmark", f"task.collect='{tmp_path / 'a'},{tmp_path / 'b'}'"], output_dir=str(tmp_path)))


@pytest.mark.slow
def test_behaviours_named_by_the_assistant_keep_the_checkers_numbers(tmp_path, tiny_cache):
    """analysis.validate.behaviours.name=true with an assistant (scripted here; any OpenAI-compatible
    one in use): the behaviour gets the assistant's statement beside its own, the scores stay."""
    bench("tiny_ahoy", tmp_path / "0", tiny_cache, "analysis.validate.behaviours.name=true", "assistant=scripted",
          """+assistant.match.Complete='opens every answer with "Ahoy matey!".'""")
    (b,) = [json.loads(line) for line in (tmp_path / "0" / "analysis" / "behaviours.jsonl").read_text().splitlines()
            if json.loads(line)["validated"]]
    assert b["assistant_statement"] == 'the comparison model opens every answer with "Ahoy matey!" more often'
    assert b["statement"].startswith('the comparison model writes "Ahoy matey') and b["q"] < 0.05
