"""resume=true after a kill: nothing lost, nothing duplicated, the same bank as an uninterrupted run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from omegaconf import open_dict

import cdx.tasks.search as search_task
from cdx.io import RunDirError, RunMismatchError, read_records
from cdx.run import run
from cdx.search.bank import BankStore

CYCLES = "search.n_cycles=4"


def outputs(folder) -> tuple[list[dict], np.ndarray, list[dict]]:
    return (read_records(f"{folder}/bank.jsonl"), np.load(f"{folder}/embeddings.npy"),
            read_records(f"{folder}/stats.jsonl"))


def assert_same_run(a, b):
    bank_a, emb_a, stats_a = outputs(a)
    bank_b, emb_b, stats_b = outputs(b)
    assert [x["prompt"] for x in bank_b] == [x["prompt"] for x in bank_a]
    assert [x["cycle"] for x in bank_b] == [x["cycle"] for x in bank_a]
    assert [x["divergence"] for x in bank_b] == pytest.approx([x["divergence"] for x in bank_a])
    assert emb_b == pytest.approx(emb_a, abs=1e-5)
    assert [(s["attempt"], s["subsample"]["ids"]) for s in stats_b] == [(s["attempt"], s["subsample"]["ids"])
                                                                         for s in stats_a]
    assert len({x["prompt"] for x in bank_b}) == len(bank_b)


@pytest.fixture
def uninterrupted(make_cfg):
    cfg = make_cfg(CYCLES, out="full")
    run(cfg)
    return cfg.output_dir


def test_resume_after_a_kill_inside_a_cycle(make_cfg, uninterrupted):
    killed = make_cfg(CYCLES, out="killed")
    with open_dict(killed):
        killed.assistant.fail_after = 2  # the third request (cycle 3) dies
    with pytest.raises(KeyboardInterrupt):
        run(killed)
    state = json.loads(open(f"{killed.output_dir}/state.json").read())
    assert (state["cycle"], state["n_entries"], state["n_stats"]) == (2, 8 + 3 + 3, 2)
    resumed = make_cfg(CYCLES, "resume=true", out="killed")
    result = run(resumed)
    assert_same_run(uninterrupted, resumed.output_dir)
    assert (result["cycles"], result["bank_size"]) == (4, len(read_records(f"{uninterrupted}/bank.jsonl")))


def test_resume_after_a_kill_between_checkpoint_files(make_cfg, uninterrupted, monkeypatch):
    """Killed after stats.jsonl, bank.jsonl and embeddings.npy of cycle 3 were written, before state.json."""
    real_save, calls = BankStore.save, []

    def dying_save(self, bank, state):
        calls.append(1)
        if len(calls) == 4:  # seeds, cycle 1, cycle 2, then cycle 3
            from cdx.search import bank as bank_module

            real_json = bank_module.atomic_write_json
            monkeypatch.setattr(bank_module, "atomic_write_json", _raise_kill)
            try:
                real_save(self, bank, state)
            finally:
                monkeypatch.setattr(bank_module, "atomic_write_json", real_json)
        return real_save(self, bank, state)

    monkeypatch.setattr(BankStore, "save", dying_save)
    killed = make_cfg(CYCLES, out="killed")
    with pytest.raises(KeyboardInterrupt):
        run(killed)
    monkeypatch.setattr(BankStore, "save", real_save)
    assert len(read_records(f"{killed.output_dir}/bank.jsonl")) == 8 + 3 * 3  # cycle 3 is on disk ...
    assert json.loads(open(f"{killed.output_dir}/state.json").read())["n_entries"] == 8 + 2 * 3  # ... not in state
    assert len(read_records(f"{killed.output_dir}/stats.jsonl")) == 3
    run(make_cfg(CYCLES, "resume=true", out="killed"))
    assert_same_run(uninterrupted, killed.output_dir)


def test_resume_before_the_seeds_were_saved_and_of_a_finished_run(make_cfg, uninterrupted, monkeypatch):
    killed = make_cfg(CYCLES, out="killed")
    with open_dict(killed):
        killed.assistant.fail_after = 0
    with pytest.raises(KeyboardInterrupt):
        run(killed)
    run(make_cfg(CYCLES, "resume=true", out="killed"))
    assert_same_run(uninterrupted, killed.output_dir)
    made = []
    original = search_task.build_assistant
    monkeypatch.setattr(search_task, "build_assistant", lambda spec: made.append(original(spec)) or made[-1])
    before = outputs(uninterrupted)
    again = make_cfg(CYCLES, "resume=true", out="full")
    result = run(again)
    assert made[0].calls == [] and result["bank_size"] == len(before[0])  # nothing left to do
    assert_same_run(uninterrupted, again.output_dir)


def test_a_resumed_run_may_raise_the_failure_limit(make_cfg, monkeypatch):
    from cdx.assistant import ScriptedAssistant

    # The assistant fails (useless replies) in the first run only, as a flaky server would.
    monkeypatch.setattr(search_task, "build_assistant", lambda spec: ScriptedAssistant(["nothing useful"], loop=True))
    cfg = make_cfg("search.n_cycles=1", "search.max_failed_cycles=1")
    with pytest.raises(Exception, match="failed cycles"):
        run(cfg)
    monkeypatch.undo()
    resumed = make_cfg("search.n_cycles=1", "search.max_failed_cycles=3", "resume=true")
    result = run(resumed)
    assert (result["cycles"], result["failed_cycles"]) == (1, 1)
    assert [s["attempt"] for s in read_records(f"{resumed.output_dir}/stats.jsonl")] == [1, 2]


def test_resume_of_a_search_with_other_settings_refuses(make_cfg, uninterrupted):
    before = outputs(uninterrupted)
    with pytest.raises(RunMismatchError, match=r"search.n_new_prompts: 6 -> 5"):
        run(make_cfg(CYCLES, "search.n_new_prompts=5", "resume=true", out="full"))
    after = outputs(uninterrupted)
    assert after[0] == before[0] and after[2] == before[2]


def test_a_corrupt_bank_line_refuses_resume_instead_of_shifting_entries(make_cfg, uninterrupted):
    bank = Path(uninterrupted) / "bank.jsonl"
    lines = bank.read_bytes().split(b"\n")
    lines[3] = lines[3][:20]
    bank.write_bytes(b"\n".join(lines))
    with pytest.raises(RunDirError, match=r"lacks id\(s\) \[3\].*checkpoint is damaged"):
        run(make_cfg(CYCLES, "resume=true", out="full"))


def test_stats_are_cut_back_by_cycle_key_not_by_count(make_cfg, uninterrupted):
    stats = Path(uninterrupted) / "stats.jsonl"
    lines = stats.read_bytes().split(b"\n")
    n = len([x for x in lines if x])
    # A damaged middle line and the last cycle logged twice (a kill after logging, before the checkpoint).
    stats.write_bytes(b"\n".join([lines[0], b"{broken", *lines[2:n], lines[n - 1], b""]))
    store = BankStore(uninterrupted)
    store.load()
    kept = read_records(stats)
    assert [s["attempt"] for s in kept] == [s["attempt"] for s in before_stats(lines, n) if s["attempt"] != 2]


def before_stats(lines, n):
    return [json.loads(x) for x in lines[:n]]


def _raise_kill(*_a, **_k):
    raise KeyboardInterrupt("simulated kill before state.json")
