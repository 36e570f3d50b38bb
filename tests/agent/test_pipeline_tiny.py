"""task=pipeline with its real search and analysis sub-runs on two tiny random models (seconds).

Random models show no behaviour, so nothing is found; what is checked is the wiring: the search
is steered and writes its sub-run, the analysis analyses the bank plus the base and topic prompts,
the events and checkpoint are complete, and resuming a finished pipeline repeats nothing.
"""

from __future__ import annotations

import json

from cdx.io import read_records
from cdx.tasks.pipeline import (
    AnalyzeDone,
    ExperimentsDone,
    KnowledgeDone,
    PipelineEvent,
    ReplicateDone,
    SearchDone,
    run,
)
from tests.conftest import compose

FAST = ["model=tiny_random", "task=pipeline", "task.iterations=1", "assistant=scripted", "report.color=false",
        "prompts.limit=6", "task.analyze.topic_prompts=1", "search.generations_per_prefix=1", "search.max_new_tokens=4",
        "search.n_new_prompts=3", "task.search.cycles=1", "analysis.sample.max_new_tokens=4", "agent.sampler.max_new_tokens=4"]


def test_real_sub_runs_on_tiny_models(tmp_path):
    over = [*FAST, f"knowledge.path={tmp_path / 'kb.sqlite'}"]
    res = run(compose(over, tmp_path / "p"))
    assert res["iterations"] == 1 and res["n_new_findings"] == 0
    out = tmp_path / "p"
    bank = [r["prompt"] for r in read_records(out / "iter0" / "search" / "bank.jsonl")]
    analysed = (out / "iter0" / "prompts.txt").read_text().splitlines()
    assert set(bank) <= set(analysed) and len(analysed) >= len(bank) + 8  # + one prompt per topic (+ base prompts)
    assert (out / "iter0" / "analyze" / "findings.jsonl").is_file()
    ev = read_records(out / "events.jsonl")
    ends = [e["stage"] for e in ev if e["event"] == "end" and e["stage"] in ("knowledge", "replicate", "search", "analyze",
                                                                             "experiments")]
    assert ends == ["knowledge", "replicate", "search", "analyze", "experiments"]
    assert any(e["event"] == "steer" for e in ev)
    assert all("seconds" in e for e in ev if e["event"] == "end" and e["stage"] not in ("pipeline", "iteration"))
    # each stage's end states its typed result, field for field, in the record's order
    done = {"knowledge": KnowledgeDone, "replicate": ReplicateDone, "search": SearchDone, "analyze": AnalyzeDone,
            "experiments": ExperimentsDone}
    for e in ev:
        assert PipelineEvent.model_validate(e).dump() == e
        if e["event"] == "end" and e["stage"] in done:
            assert list(done[e["stage"]].model_validate(e["outputs"]).model_dump().items()) == list(e["outputs"].items())
    state = json.loads((out / "state.json").read_text())
    assert state["iteration"] == 1 and state["used"]["tokens"] > 0
    # the analysis stage charges the tokens its samples hold (analysis.json's n_tokens; it charged 0 before)
    analysis_tokens = json.loads((out / "iter0" / "analyze" / "analysis.json").read_text())["n_tokens"]
    assert next(e["tokens"] for e in ev if e["event"] == "end" and e["stage"] == "analyze") >= analysis_tokens > 0
    again = run(compose([*over, "resume=true"], out))
    ev2 = read_records(out / "events.jsonl")
    assert [e["event"] for e in ev2[len(ev):]] == ["resume", "end"]  # nothing ran again
    assert again["iterations"] == 1


def test_default_agent_sampler_gets_the_loaded_pair(tmp_path):
    from cdx.agent import PairSampler, RecordedSampler
    from cdx.knowledge import KnowledgeBase
    from cdx.tasks.pipeline import Pipeline
    from cdx.tracking.tracker import NullTracker

    cfg = compose(["model=tiny_random", "task=pipeline"], tmp_path / "p")
    with KnowledgeBase(tmp_path / "kb.sqlite") as kb:
        pipe = Pipeline(cfg, tmp_path / "p", kb, NullTracker(), resumed=False)
        pipe._register()
        sampler = pipe.agent.sampler  # kept in the run folder and resumed by id (issue 23)
        assert isinstance(sampler, RecordedSampler) and sampler.records.path.parent == tmp_path / "p"
        assert isinstance(sampler.inner, PairSampler) and sampler.inner.pair is pipe.pair
        assert pipe.agent.sampler.settings.max_new_tokens == cfg.agent.sampler.max_new_tokens
