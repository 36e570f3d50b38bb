"""task=pipeline end to end, with the analysis and the agent's sampler swapped for exact stand-ins.

1. the first run narrows "refuses more" to "refuses on cooking prompts only" (knowledge base history);
2. a second run on the same pair replicates that finding and does not rediscover it (event log);
3. a run killed mid-experiment (or just after a decision was committed) and resumed ends with the
   same knowledge base as an uninterrupted run: nothing lost, nothing repeated.
"""

from __future__ import annotations

import json

import pytest

from cdx.io import read_records
from cdx.io.records import CycleRecord
from cdx.knowledge import KnowledgeBase
from cdx.search.bank import BankStore
from cdx.tasks.pipeline import Pipeline, _search_calls, run
from tests.agent import pipeline_toys
from tests.conftest import compose

TOY = [
    "model=tiny_random", "task=pipeline", "task.iterations=1", "task.search.enabled=false", "report.color=false",
    "task.analyze.entry=tests.agent.pipeline_toys.toy_analyze",
    "~agent.sampler", "+agent.sampler._target_=tests.agent.pipeline_toys.ToySampler",
    "+agent.sampler.comparison={cooking: 0.9}",
    "agent.settings.topics=[cooking,travel,weather,mathematics]",
]


def _run(tmp_path, kb, name, *over, resume=False):
    cfg = compose([*TOY, f"knowledge.path={kb}", *over, *(["resume=true"] if resume else [])], tmp_path / name)
    return run(cfg)


def _events(tmp_path, name):
    return read_records(tmp_path / name / "events.jsonl")


def _kb_state(path) -> dict:
    with KnowledgeBase(path) as kb:
        findings = [(f.statement, f.status, [h.status for h in kb.finding(f.id).history])
                    for f in kb.findings()]
        return {"counts": kb.counts(), "findings": sorted(findings)}


@pytest.fixture(autouse=True)
def _no_kill():
    pipeline_toys.KILL.update(after=None, calls=0)
    yield
    pipeline_toys.KILL.update(after=None, calls=0)


def test_first_run_narrows_second_run_replicates(tmp_path, capsys):
    kb = tmp_path / "kb.sqlite"
    first = _run(tmp_path, kb, "run1")
    assert (first["n_new_findings"], first["n_refined"], first["stop_reason"]) == (2, 1, "1 iteration(s) done")
    with KnowledgeBase(kb) as base:
        broad, = base.findings(status="refined_into")
        narrow = base.finding(base.finding(broad.id).history[-1].related_finding_id)
        assert narrow.statement == "On cooking prompts only (not on other topics): The comparison model refuses more often"
        assert narrow.hypothesis is not None and narrow.hypothesis.cluster == "cooking" and narrow.status == "validated"
    decisions = [e for e in _events(tmp_path, "run1") if e["event"] == "decision"]
    assert [d["outputs"]["action"] for d in decisions] == ["narrow"] and "only on cooking" in decisions[0]["reason"]
    analysed = (tmp_path / "run1" / "iter0" / "prompts.txt").read_text().splitlines()
    assert len(analysed) == 16 + 8 * 6  # builtin prompts (limit 16) + task.analyze.topic_prompts per built-in topic
    assert sum(pipeline_toys.TOPIC_OF.get(p) == "cooking" for p in analysed) == 6
    prompts = read_records(tmp_path / "run1" / "prompts.jsonl")
    assert {p["source"] for p in prompts} == {"template"} and all(p["reason"] and p["hypothesis"] for p in prompts)
    note = capsys.readouterr().out
    assert "validated -> refined_into(#" in note and "cdx pipeline: 1 iteration(s)" in note

    second = _run(tmp_path, kb, "run2")
    ev = _events(tmp_path, "run2")
    known = next(e for e in ev if e["stage"] == "knowledge" and e["event"] == "end")["outputs"]["known"]
    assert known == [f"#{narrow.id} {narrow.statement} (validated)"]
    rep = [e for e in ev if e["stage"] == "replicate" and e["event"] == "decision"]
    assert [(r["outputs"]["finding_id"], r["outputs"]["status"]) for r in rep] == [(narrow.id, "replicated")]
    assert [e["outputs"]["hypothesis"] for e in ev if e["event"] == "known"] == [pipeline_toys.BROAD["statement"]]
    assert not [e for e in ev if e["stage"] == "experiments" and e["event"] == "decision"]  # nothing rediscovered
    assert (second["n_new_findings"], second["n_replicated"]) == (0, 1)
    with KnowledgeBase(kb) as base:
        assert [h.status for h in base.finding(narrow.id).history] == ["validated", "replicated"]
        assert base.counts()["findings"] == 2


@pytest.mark.parametrize("kill", ["mid-experiment", "after-commit"])
def test_kill_and_resume_loses_and_repeats_nothing(tmp_path, monkeypatch, kill):
    reference = _run(tmp_path, tmp_path / "ref.sqlite", "ref")
    kb = tmp_path / "kb.sqlite"
    if kill == "mid-experiment":
        pipeline_toys.KILL.update(after=2, calls=0)  # the scan samples, the child's confirmation is killed
    else:  # the decision is in the knowledge base, the checkpoint not yet written
        real_event = Pipeline.event

        def event(self, stage, ev, *a, **k):
            real_event(self, stage, ev, *a, **k)
            if ev == "decision" and stage == "experiments":
                raise KeyboardInterrupt("simulated kill")
        monkeypatch.setattr(Pipeline, "event", event)
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, kb, "killed")
    state = json.loads((tmp_path / "killed" / "state.json").read_text())
    assert state["done"] == ["knowledge", "replicate", "search", "analyze"]
    monkeypatch.undo()
    resumed = _run(tmp_path, kb, "killed", resume=True)
    assert _kb_state(kb) == _kb_state(tmp_path / "ref.sqlite")
    assert (resumed["n_new_findings"], resumed["n_refined"]) == (reference["n_new_findings"], reference["n_refined"])
    ev = _events(tmp_path, "killed")
    assert [e["event"] for e in ev if e["stage"] == "pipeline"][:1] == ["resume"]
    assert sum(e["stage"] == "analyze" and e["event"] == "end" for e in ev) == 1  # not run twice
    decided = [e for e in ev if e["stage"] == "experiments" and e["event"] in ("decision", "recovered")]
    assert [e["event"] for e in decided] == (["decision"] if kill == "mid-experiment" else ["decision", "recovered"])


def test_budget_stops_between_stages(tmp_path):
    res = _run(tmp_path, tmp_path / "kb.sqlite", "b", "task.iterations=3", "task.budget.tokens=50")
    assert res["stop_reason"].startswith("budget spent: tokens") and res["iterations"] == 0
    ev = _events(tmp_path, "b")
    assert [e["stage"] for e in ev if e["event"] == "budget"] == ["experiments"]  # the analysis reported 100 tokens


@pytest.mark.parametrize("over, match", [
    (["task.iterations=0"], "task.iterations=0 must be >= 1"),
    (["task.budget.wall_s=-1"], "task.budget.wall_s=-1 must be > 0"),
    (["+task.budget.money=5"], "task.budget.money is not a budget"),
], ids=["iterations", "negative-budget", "unknown-budget"])
def test_bad_options(tmp_path, over, match):
    with pytest.raises(ValueError, match=match):
        _run(tmp_path, tmp_path / "kb.sqlite", "bad", *over)


def test_wall_time_adds_up_over_a_resume(tmp_path):
    pipeline_toys.KILL.update(after=1, calls=0)  # killed in the first experiment
    with pytest.raises(KeyboardInterrupt):
        _run(tmp_path, tmp_path / "kb.sqlite", "w")
    before = json.loads((tmp_path / "w" / "state.json").read_text())["used"]["wall_s"]
    assert before > 0
    res = _run(tmp_path, tmp_path / "kb.sqlite", "w", resume=True)
    assert res["used_wall_s"] > before


def test_search_calls_count_every_request_a_cycle_made(tmp_path):
    zero = {"mean": 0.0, "std": 0.0, "max": 0.0, "min": 0.0}

    def cycle(attempt: int, replies: list[str], **kw) -> CycleRecord:
        return CycleRecord(subsample={"ids": [], "divergence": zero, "diversity": zero}, repeat=0, attempt=attempt,
                           seed=attempt, replies=replies, **kw)

    store = BankStore(tmp_path)
    for c in (cycle(1, ["1. a"]),  # one request
              cycle(2, ["no list", "1. b"]),  # a reply that parsed to nothing, then the repair request
              cycle(3, []),  # the request failed: no reply, still one request
              cycle(4, ["1. c"], n_judged=3)):  # and three criterion judgements
        store.append_stats(c)
    assert _search_calls(tmp_path) == 1 + 2 + 1 + (1 + 3)
