"""Issue 23: pipeline experiments killed with kill -9 resume on the same prompts with the same draws.

The real experiment sampler (PairSampler on two tiny random models) and the real agent; only the
analysis is a stand-in that reports two hypotheses whose checkers fire on random text. The
pipeline is killed (SIGKILL, in a subprocess) while the second hypothesis's texts are drawn, after
the first was decided; the resumed run must make the decisions, on the same numbers, and keep
the same samples as a run that was never killed.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cdx.agent import RecordedSampler
from cdx.io import read_records
from cdx.tasks.pipeline import run
from tests.agent import pipeline_toys
from tests.conftest import ROOT, compose, patience

ANALYZED = [  # two validated hypotheses with other rates, hence other sample sizes: their prompts overlap in part
    {**pipeline_toys.BROAD, "id": "h0", "statement": "The comparison model writes more digits",
     "checker": {"type": "regex", "pattern": "[0-9]"}, "rate_s": 0.1, "rate_c": 0.6, "effect": 0.5},
    {**pipeline_toys.BROAD, "id": "h1", "statement": "The comparison model writes more capitals",
     "checker": {"type": "regex", "pattern": "[A-Z]"}, "rate_s": 0.25, "rate_c": 0.5, "effect": 0.25},
]
ARGS = ["model=tiny_random", "task=pipeline", "task.iterations=1", "task.search.enabled=false", "report.color=false",
        "task.analyze.entry=tests.agent.pipeline_toys.toy_analyze", "agent.sampler.max_new_tokens=4",
        "agent.sampler.batch_size=4", "agent.settings.topics=[cooking,travel,weather,mathematics]"]

# kill -9 at the first batch drawn after the first experiment decision: the second hypothesis's texts
KILLER = """
import os, runpy, signal
import cdx.analysis.sampling as sampling
import cdx.tasks.pipeline as pipeline
from tests.agent import pipeline_toys
from tests.agent.test_pipeline_resume import ANALYZED
pipeline_toys.ANALYZED = ANALYZED
decided, real_event, real_batch = [], pipeline.Pipeline.event, sampling.sample_batch
def event(self, stage, ev, *a, **k):
    real_event(self, stage, ev, *a, **k)
    decided.extend([1] if (stage, ev) == ("experiments", "decision") else [])
def sample_batch(*a, **k):
    if decided:
        os.kill(os.getpid(), signal.SIGKILL)
    return real_batch(*a, **k)
pipeline.Pipeline.event, sampling.sample_batch = event, sample_batch
runpy.run_module("cdx.run", run_name="__main__")
"""


def _decisions(folder: Path) -> list[dict]:
    return [e["outputs"] for e in read_records(folder / "events.jsonl") if e["event"] == "decision"]


@pytest.mark.slow
def test_experiments_killed_with_kill_9_resume_on_the_same_prompts_and_draws(tmp_path, monkeypatch):
    monkeypatch.setattr(pipeline_toys, "ANALYZED", ANALYZED)
    ref = tmp_path / "ref"
    run(compose([*ARGS, f"knowledge.path={tmp_path / 'ref.sqlite'}"], ref))
    assert len(_decisions(ref)) == 2

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": str(ROOT)}
    kb = f"knowledge.path={tmp_path / 'kb.sqlite'}"
    killed = subprocess.run([sys.executable, "-c", KILLER, *ARGS, kb, "hydra.run.dir=killed"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=patience(600))
    assert killed.returncode == -9, killed.stderr[-3000:]
    out = tmp_path / "killed"
    assert len(_decisions(out)) == 1  # killed in the second hypothesis's experiment

    run(compose([*ARGS, kb, "resume=true"], out))
    # the same decisions on the same numbers (per-topic counts, p and q of every scan and child) ...
    assert _decisions(out) == _decisions(ref)
    # ... because every experiment text is the one the uninterrupted run drew, once
    for name in ("experiment_samples.jsonl", "experiment_plans.jsonl"):
        assert (out / name).read_bytes() == (ref / name).read_bytes(), name
    designed = [(p["prompt"], p["reason"]) for p in read_records(out / "prompts.jsonl")]
    assert designed == [(p["prompt"], p["reason"]) for p in read_records(ref / "prompts.jsonl")]


def test_recorded_sampler_resumes_a_cut_plan_and_a_damaged_line_by_id(tmp_path, monkeypatch):
    cooking = sorted(p for p, t in pipeline_toys.TOPIC_OF.items() if t == "cooking")
    calls = [cooking[0:3], cooking[1:5], cooking[4:7]]  # each call repeats prompts of the one before

    def sampler(folder: str) -> RecordedSampler:
        return RecordedSampler(pipeline_toys.ToySampler({"cooking": 0.5}), tmp_path / folder)

    ref = sampler("ref")
    drawn = [ref.sample(c) for c in calls]
    monkeypatch.setitem(pipeline_toys.KILL, "after", 3)  # killed in the third call, after its plan was written
    monkeypatch.setitem(pipeline_toys.KILL, "calls", 0)
    killed = sampler("killed")
    with pytest.raises(KeyboardInterrupt):
        for c in calls:
            killed.sample(c)
    path = tmp_path / "killed" / RecordedSampler.SAMPLES
    lines = path.read_bytes().split(b"\n")
    bad = lines[2][:30] + b"\x00garbage"
    path.write_bytes(b"\n".join([*lines[:2], bad, *lines[3:]]))  # and a damaged middle line

    resumed = sampler("killed")
    assert [resumed.sample(c) for c in calls] == drawn  # the same records for every call
    for name in (RecordedSampler.SAMPLES, RecordedSampler.PLANS):
        assert (tmp_path / "killed" / name).read_bytes() == (tmp_path / "ref" / name).read_bytes(), name
    assert (tmp_path / "killed" / f"{RecordedSampler.SAMPLES}.corrupt").read_bytes() == bad + b"\n"
    assert resumed.n_tokens == 7 * 2 * (3 + 2)  # plan 0 drawn again (its damaged record), plan 2 drawn: not plan 1


def test_a_fresh_run_draws_what_it_drew_before_the_records_were_kept(tiny_pair, tmp_path):
    """The kept sampler hands PairSampler the same prompts, ids and calls as before: fixed-seed draws are unchanged."""
    from cdx.agent import PairSampler

    cooking = sorted(p for p, t in pipeline_toys.TOPIC_OF.items() if t == "cooking")
    calls = [cooking[0:5], cooking[3:9], cooking[0:2]]
    plain = PairSampler(tiny_pair, max_new_tokens=4, batch_size=2, seed=5)
    kept = RecordedSampler(PairSampler(tiny_pair, max_new_tokens=4, batch_size=2, seed=5), tmp_path)
    assert [kept.sample(c) for c in calls] == [plain.sample(c) for c in calls]
