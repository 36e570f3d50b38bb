"""task=analyze on the embedded SmolLM2 pairs: the pirate persona is found, a null pair yields nothing."""

import re

import pytest

from cdx.analysis import build_checker
from cdx.analysis.behaviours import read_behaviours
from cdx.io import read_records
from cdx.tasks.analyze import run
from tests.conftest import compose

pytestmark = pytest.mark.slow

# 60 prompts x 32 tokens: the pirate finding validated in each of seeds 0-3 (best q 1e-5 to 0.027); at 40 x 24
# it missed seed 0 (q 0.10 on 8/30 vs 1/30 texts): too small a run to test the finding, not the analysis
SMALL = ["task=analyze", "prompts.limit=60", "analysis.sample.max_new_tokens=32", "report.color=false"]
PIRATE = re.compile(r"\b(arr+|ahoy|matey|ye|aye|treasure|ship|sea|crew|captain|pirate)\b", re.I)


def test_the_pirate_persona_is_a_validated_finding(tmp_path):
    result = run(compose(SMALL, output_dir=tmp_path))
    findings = read_records(tmp_path / "findings.jsonl")
    pirate = [f for f in findings if f["validated"] and f["direction"] == "gained"
              and PIRATE.search(f["statement"])]
    assert result["n_validated"] >= 1 and pirate, [(f["statement"], f["q"]) for f in findings]
    best = pirate[0]
    assert best["rate_c"] > best["rate_s"] and best["q"] <= 0.05 and best["effect_ci"][0] > 0
    assert all(build_checker(best["checker"]).check(e["text"]) for e in best["evidence"])
    assert "pirate" in (tmp_path / "analysis.html").read_text().lower()
    # the report leads with one pirate behaviour: its phrase, its own rates, the pirate findings as members
    lead = read_behaviours(tmp_path / "behaviours.jsonl")[0]
    assert lead.is_behaviour and lead.side == "gained" and lead.phrase and PIRATE.search(lead.statement)
    assert lead.q <= 0.05 and lead.effect_ci[0] > 0 and best["id"] in lead.members
    assert result["n_behaviours"] >= 1


def test_the_model_against_itself_has_no_validated_finding(tmp_path):
    result = run(compose([*SMALL, "model.comparison.system_prompt=null"], output_dir=tmp_path))
    assert result["n_validated"] == 0 and result["n_behaviours"] == 0
