"""analysis.json is `cdx.analysis.AnalysisSummary`: its key order, what is written only when measured,
and the numbers task=analyze returns to sweeps."""

from __future__ import annotations

import json

from cdx.analysis import AnalysisSummary
from cdx.analysis.pipeline import JudgeUsage, RunState
from cdx.analysis.report import _cost, summary_line

HEAD = dict(n_validated=0, n_hypotheses=3, n_prompts=20, n_discovery_prompts=5, n_validation_prompts=15,
            n_validation_texts_s=15, n_validation_texts_c=15, fdr=0.05)


def test_cost_fields_are_written_only_when_this_process_timed_the_generation():
    measured = RunState(timings={"sample": 2.0, "describe": 1.0, "validate": 5.0}, validation_sampling_s=4.0)
    assert _cost(measured) == {"generation_s": 6.0, "analysis_s": 8.0, "cost_ratio": round(8.0 / 6.0, 3)}
    resumed = RunState(timings={"sample": 2.0, "validate": 5.0})  # validation drawn before a resume: not timed
    assert _cost(resumed) == {}
    s = AnalysisSummary(**HEAD, mde_80=0.2, timings_s=resumed.timings, **_cost(resumed), judge=None, output_dir="/o")
    d = s.dump()
    assert "cost_ratio" not in d and d["judge"] is None
    assert list(d) == ["n_validated", "n_hypotheses", "n_prompts", "n_discovery_prompts", "n_validation_prompts",
                       "n_validation_texts_s", "n_validation_texts_c", "fdr", "mde_80", "timings_s", "judge",
                       "output_dir"]  # the schema's order; fields never set (n_tokens here) are left out


def test_a_summary_reads_back_equal_and_returns_its_numbers():
    s = AnalysisSummary(n_behaviours=1, **{**HEAD, "n_validated": 2}, mde_80=None, validated=["a", "b"],
                        judge=JudgeUsage(calls=3, unparsed=1), output_dir="/o")
    back = AnalysisSummary.model_validate(json.loads(json.dumps(s.dump())))
    assert back == s and back.judge == JudgeUsage(calls=3, unparsed=1)
    nums = s.numbers()
    assert nums["n_validated"] == 2 and nums["mde_80"] is None and "validated" not in nums and "judge" not in nums
    assert summary_line(s, "/o").startswith("cdx analyze: 1 behaviour(s) from 2 validated finding(s) of 3 hypotheses")
