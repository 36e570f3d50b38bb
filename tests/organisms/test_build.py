"""The organism cache: built once, reused, atomic when a build fails; plant task on the tiny test base."""

from __future__ import annotations

import json

import pytest

from cdx.organisms import build_organism, entry_dir, load_spec, load_truth, organism_pair
from cdx.organisms import train as train_mod
from cdx.organisms.spec import OrganismSpec
from tests.conftest import compose


def test_zero_adapter_builds_once_and_records_the_pair(tiny_cache):
    tmp_path = tiny_cache
    entry = build_organism("tiny_null_zero", tmp_path)
    assert entry == entry_dir(load_spec("tiny_null_zero"), tmp_path)
    truth = load_truth(entry)
    assert truth.expected_findings == "none" and truth.checker is None
    assert (entry / "adapter_config.json").is_file()
    base = entry_dir(load_spec("tiny_english"), tmp_path)  # its base organism was built first
    assert (base / "config.json").is_file() and (base / "truth.json").is_file()
    assert truth.pair["starting"]["path"] == str(base) and truth.pair["comparison"]["adapter"] == str(entry)
    stamp = (entry / "truth.json").stat().st_mtime_ns
    assert build_organism("tiny_null_zero", tmp_path) == entry  # cache hit: nothing rebuilt
    assert (entry / "truth.json").stat().st_mtime_ns == stamp
    assert organism_pair("tiny_null_zero", tmp_path) == truth.pair


def test_failed_build_leaves_no_entry(tiny_cache, monkeypatch):
    spec = OrganismSpec(**dict(load_spec("tiny_ahoy").to_dict(), seed=99))  # never built by another test

    def boom(*a, **k):
        raise RuntimeError("killed")

    monkeypatch.setattr(train_mod, "train_lora", boom)
    with pytest.raises(RuntimeError, match="killed"):
        build_organism(spec, tiny_cache)
    assert not entry_dir(spec, tiny_cache).exists()
    assert not [p for p in (tiny_cache / "organisms").iterdir() if p.name.startswith(".tmp-")]


def test_plant_task_needs_an_organism(tmp_path):
    from cdx.tasks.plant import run

    with pytest.raises(ValueError, match="task=plant needs organism=<name>; organisms: .*refuse_cooking"):
        run(compose(["task=plant"], output_dir=str(tmp_path)))


@pytest.mark.slow
def test_plant_task_builds_and_verifies_tiny_ahoy(tmp_path, tiny_cache):
    from cdx.tasks.plant import run

    cfg = compose(["task=plant", "organism=tiny_ahoy", f"task.cache_dir={tiny_cache}"],
                  output_dir=str(tmp_path / "run"))
    metrics = run(cfg)
    verify = json.loads((tmp_path / "run" / "verify.json").read_text())
    assert verify["sets"]["general"]["base"] == metrics["rate_base_general"] == 0.0
    assert metrics["rate_organism_general"] >= 0.5  # planted: most held-out answers say ahoy
    copied = tmp_path / "run" / "truth.json"  # the cached entry's truth.json, byte for byte
    assert copied.read_bytes() == (entry_dir(load_spec("tiny_ahoy"), tiny_cache) / "truth.json").read_bytes()


def test_plant_prints_the_command_that_analyses_an_adapter_organism():
    """The hint names the adapter over the embedded base; other pairs (tiny seeds, merged models) get none."""
    from cdx.tasks.plant import analyse_hint

    embedded = {"path": "embedded:smollm2-135m-instruct", "seed": 0}
    pair = {"starting": embedded, "comparison": {**embedded, "adapter": "/c/o-1"}}
    assert analyse_hint(pair) == "model=smollm2_lora model.comparison.adapter=/c/o-1"
    other = {"path": "/m/base"}
    assert analyse_hint({"starting": other, "comparison": {**other, "adapter": "/a"}}) == (
        "model=smollm2_lora model.starting.path=/m/base model.comparison.path=/m/base model.comparison.adapter=/a")
    tiny = {"path": "tiny-random", "seed": 3}
    assert analyse_hint({"starting": tiny, "comparison": {**tiny, "adapter": "/a"}}) is None
    assert analyse_hint({"starting": embedded, "comparison": {"path": "/quantized"}}) is None


def test_load_truth_reads_truth_json_into_a_record_that_writes_it_back_unchanged(tmp_path):
    from pydantic import ValidationError

    from cdx.io import atomic_write_json
    from tests.organisms.conftest import planted_truth

    written = {**planted_truth(pair={"starting": {"path": "b"}, "comparison": {"path": "b", "adapter": "é"}},
                               build={"cpu_s": 61.5, "steps": 40}).model_dump(), "added_later": [1, None]}
    atomic_write_json(tmp_path / "truth.json", written)
    truth = load_truth(tmp_path)
    assert truth.build["cpu_s"] == 61.5 and truth.trigger is None and truth.added_later == [1, None]
    atomic_write_json(tmp_path / "copy.json", truth.model_dump(exclude_unset=True))
    assert (tmp_path / "copy.json").read_bytes() == (tmp_path / "truth.json").read_bytes()
    (tmp_path / "truth.json").write_text('{"statement": "no checker, no pair"}')
    with pytest.raises(ValidationError, match="expected_findings"):
        load_truth(tmp_path)
