"""Rare behaviours tested on tilted held-out samples (issue 19, cdx.analysis.tilted): each model's
stopped rate against its exact rate on two-token texts of the tiny pair, BH and the side rule by
hand, which hypotheses are tested, and the validate stage writing tilted.jsonl and its samples."""

from __future__ import annotations

import json

import numpy as np
import pytest

from cdx.analysis import build_checker
from cdx.analysis.pipeline import Analysis, Context, DescribeStage, SampleStage, ValidateStage
from cdx.analysis.report import ReportStage
from cdx.analysis.sampling import TILTED, SampleSettings, sample_pair
from cdx.analysis.tilted import (
    POOLED,
    TiltedTest,
    apply_tilted_fdr,
    candidates,
    one_sided_p,
    phrase_of,
    tilt_settings,
    tilted_test,
)
from cdx.analysis.types import Finding, Hypothesis
from cdx.io import read_records, write_records
from cdx.io.settings import TiltedSettings
from cdx.metrics.importance import RateDifference, RateEstimate
from tests.analysis.test_sampling_rates import PROMPTS, exact_two_token_rate

E = {"type": "string", "value": "e", "case": True, "word": False}
"""A text hits when one of its tokens holds an 'e' (a one-character pattern cannot span two tokens)."""


def finding(checker: dict, validated: bool = False, p: float = 0.5, z: float = 1.0, cluster: int | None = None,
            direction: str = "gained") -> Finding:
    h = Hypothesis(f"says {checker.get('value') or checker.get('pattern')!r} (z {z})", checker, direction,
                   "ngram", cluster=cluster, discovery={"terms": [{"term": "x", "z": z}]})
    return Finding(h, n_s=80, k_s=1, n_c=80, k_c=3, rate_s=1 / 80, rate_c=3 / 80, rate_s_ci=(0.0, 0.1),
                   rate_c_ci=(0.0, 0.1), effect=2 / 80, effect_ci=(-0.03, 0.08), p=p, validated=validated)


@pytest.mark.parametrize("pool", [False, True], ids=["tilted", "pooled"])
def test_each_side_is_measured_at_its_exact_rate(tiny_pair, pool):
    """tilt_c texts weighted towards p_c and tilt_s texts towards p_s: each stopped estimate covers its
    model's exact rate, and the paired interval the exact difference (6 prompts x 200 texts a side).
    Pooled: 100 texts per prompt of each of tilt_c, tilt_s, plain_c, plain_s, every one weighted
    towards both models against the four modes' mixture."""
    prompts = PROMPTS[:6]
    checker = build_checker(E)
    tok = tiny_pair.tokenizer
    tokens = [v for v in range(tiny_pair.vocab_size) if checker.check(tok.decode([v], skip_special_tokens=True))]
    per = 100 if pool else 200
    s = TiltedSettings(enabled=True, samples_per_prompt=per, bonus=3.0, pool=pool)
    st = tilt_settings(SampleSettings(max_new_tokens=2, batch_size=4, seed=3), tokens, s, salt=0)
    assert (st.tilt_tokens, st.tilt_bonus, st.samples_per_prompt, st.seed) == (tuple(tokens), 3.0, per, 1003)
    modes = POOLED if pool else TILTED
    recs = sample_pair(tiny_pair, prompts, st, modes=modes, split="tilted_0", pool=pool)
    t = tilted_test(finding(E), tokens, recs, s)
    assert t.modes == list(modes)
    truth = {side: exact_two_token_rate(tiny_pair, getattr(tiny_pair, side), prompts, checker)
             for side in ("starting", "comparison")}
    for est, side in ((t.rate_c, "comparison"), (t.rate_s, "starting")):
        assert est.method == "stopped" and est.n == 1200 * (2 if pool else 1) and est.n_groups == 6
        assert est.low <= truth[side] <= est.high and est.rate == pytest.approx(truth[side], abs=0.03)
        drawn = np.mean([checker.check(r.text) for r in recs if r.mode == ("tilt_c" if side == "comparison" else
                                                                            "tilt_s")])
        assert drawn > 1.5 * truth[side]  # tilted: the behaviour is drawn more often than the model writes it
    d = t.difference
    assert d.n_prompts == 6 and d.low <= truth["comparison"] - truth["starting"] <= d.high
    assert t.p == (d.p / 2 if d.diff > 0 else 1 - d.p / 2) and t.phrase == "e" and t.tokens == tokens
    hit = {side: {r.prompt_index for r in recs if r.mode[-1] == side and checker.check(r.text)} for side in "cs"}
    assert (t.hit_prompts_c, t.hit_prompts_s) == (len(hit["c"]), len(hit["s"]))


def _test(p: float, diff: float, direction: str = "gained", hit_prompts_c: int = 8) -> TiltedTest:
    est = RateEstimate(rate=0.1, low=0.0, high=0.2, confidence=0.95, ess=20, n=100, n_hits=10, n_groups=10,
                       method="stopped")
    return TiltedTest(hypothesis_id="h", statement="s", direction=direction, phrase="x", tokens=[1], bonus=3.0,
                      rate_c=est, rate_s=est, p=p, hit_prompts_c=hit_prompts_c, hit_prompts_s=6,
                      difference=RateDifference(diff=diff, low=diff - 0.01, high=diff + 0.01, p=p, confidence=0.95,
                                                n_prompts=10))


def test_benjamini_hochberg_the_stated_side_and_enough_prompts_by_hand():
    tests = [_test(0.01, 0.05), _test(0.02, -0.05), _test(0.5, 0.05), _test(0.001, -0.02, direction="lost"),
             _test(0.001, 0.05, hit_prompts_c=4)]
    apply_tilted_fdr(tests, 0.05)
    # sorted p 0.001, 0.001, 0.01, 0.02, 0.5 -> BH q = min over ranks >= i of p_(j) m / j:
    # 0.0025, 0.0025, 0.0167, 0.025, 0.5
    assert [round(t.q, 4) for t in tests] == [0.0167, 0.025, 0.5, 0.0025, 0.0025]
    assert [t.validated for t in tests] == [True, False, False, True, False]
    assert "other side" in tests[1].reason and "q=0.5 > 0.05" in tests[2].reason and tests[0].reason == ""
    # significant, but the comparison model's hits come from 4 prompts: too few for a test over prompts
    assert "comparison model's tilted texts show it on 4 prompt(s) (need >= 5)" in tests[4].reason


def test_the_p_value_is_one_sided_in_the_stated_direction():
    d = RateDifference(diff=0.02, low=0.001, high=0.039, p=0.04, confidence=0.95, n_prompts=10)
    assert one_sided_p(d, "gained") == pytest.approx(0.02) and one_sided_p(d, "lost") == pytest.approx(0.98)
    flat = RateDifference(diff=0.0, low=0.0, high=0.0, p=1.0, confidence=0.95, n_prompts=10)
    assert one_sided_p(flat, "gained") == one_sided_p(flat, "lost") == 1.0  # no hits anywhere: nothing shown


def test_only_open_phrase_hypotheses_over_all_prompts_are_tested_strongest_first():
    word = {"type": "string", "value": "Zyx", "case": False, "word": True}
    regex = {"type": "regex", "pattern": "Zyx", "flags": "i"}
    fs = [finding(word, z=2.0), finding(word, validated=True, z=9.0), finding(regex, z=8.0),
          finding(word, cluster=1, z=7.0), finding(word, z=5.0), finding(word, z=5.0, p=0.1), finding(word, z=1.0)]
    picked = candidates(fs, TiltedSettings(max_hypotheses=3))
    assert picked == [fs[5], fs[4], fs[0]]  # z 5 (p 0.1 before p 0.5), then z 2
    assert phrase_of(word) == "Zyx" and phrase_of(regex) is None and phrase_of({"type": "feature", "name": "x"}) is None
    assert phrase_of({"type": "string", "value": " "}) is None


class GivenHypotheses:
    """Stands in for the hypothesise stage: the hypotheses a test names."""

    name = "hypothesise"

    def __init__(self, hypotheses: list[Hypothesis]):
        self.hypotheses = hypotheses

    def run(self, ctx: Context) -> None:
        write_records(ctx.out / "hypotheses.jsonl", [h.to_dict() for h in self.hypotheses])


@pytest.mark.parametrize("pool", [False, True], ids=["tilted", "pooled"])
def test_the_validate_stage_writes_the_tilted_tests_their_samples_and_the_summary(tiny_pair, tmp_path, capsys, pool):
    """Two phrase hypotheses no plain test validates on random models: each gets tilt_c and tilt_s samples of
    every held-out prompt (its own file, its own seed), a line of tilted.jsonl, and a place in analysis.json
    and the summary line; a resume remakes nothing. Pooled: plain_c and plain_s samples too, each sample
    with its log q under all four modes."""
    hyps = [Hypothesis("says 'e'", E, "gained", "ngram", discovery={"terms": [{"term": "e", "z": 3.0}]}),
            Hypothesis("says 'a'", {**E, "value": "a"}, "lost", "ngram", discovery={"terms": [{"term": "a", "z": 2.0}]})]
    stages = dict(sample=SampleStage(max_new_tokens=3, batch_size=8), describe=DescribeStage(),
                  hypothesise=GivenHypotheses(hyps),
                  validate=ValidateStage(sampling={"max_new_tokens": 3, "batch_size": 8},
                                         tilted={"enabled": True, "samples_per_prompt": 4, "pool": pool}),
                  report=ReportStage(print_table=True, color=False))
    prompts = [f"Tell me about the number {i}." for i in range(16)]
    result = Analysis(**stages).run(Context(out=tmp_path, prompts=prompts, load_pair=lambda: tiny_pair))
    tests = [TiltedTest.model_validate(r) for r in read_records(tmp_path / "tilted.jsonl")]
    findings = {r["statement"]: r for r in read_records(tmp_path / "findings.jsonl")}
    assert not any(f["validated"] for f in findings.values())
    assert [t.statement for t in tests] == ["says 'e'", "says 'a'"] and [t.direction for t in tests] == ["gained", "lost"]
    split = json.loads((tmp_path / "split.json").read_text())
    for k, t in enumerate(tests):
        recs = read_records(tmp_path / f"tilted_{k}.jsonl")
        assert sorted({r["mode"] for r in recs}) == sorted(POOLED if pool else TILTED)
        assert len(recs) == (4 if pool else 2) * 4 * len(split["validation"])
        assert all(sorted(r["logq_modes"]) == sorted(POOLED) if pool else "logq_modes" not in r for r in recs)
        assert {r["prompt_index"] for r in recs} == set(split["validation"])
        assert t.difference.n_prompts == len(split["validation"]) and 0 <= t.p <= t.q <= 1
    first = {r["id"]: r["text"] for r in read_records(tmp_path / "tilted_0.jsonl")}
    second = {r["id"]: r["text"] for r in read_records(tmp_path / "tilted_1.jsonl")}
    assert first.keys() == second.keys() and first != second  # own seed per tested hypothesis
    summary = json.loads((tmp_path / "analysis.json").read_text())
    assert summary["n_tilted_validated"] == sum(t.validated for t in tests) == result.n_tilted_validated
    assert [t["statement"] for t in summary["tilted"]] == ["says 'e'", "says 'a'"]
    drawn = sum(len(r["token_ids"]) for name in ("discovery", "validation", "tilted_0", "tilted_1")
                for r in read_records(tmp_path / f"{name}.jsonl"))
    assert summary["n_tokens"] == drawn  # the tilted samples' tokens are charged too
    out = capsys.readouterr().out
    assert "rare behaviours, tested on samples tilted towards their phrase" in out
    assert f"tilted tests: {result.n_tilted_validated} of 2 validated" in out
    before = (tmp_path / "tilted.jsonl").read_text()
    (tmp_path / "stages.json").write_text(json.dumps({k: v for k, v in json.loads(
        (tmp_path / "stages.json").read_text()).items() if k not in ("validate", "report")}))
    Analysis(**stages).run(Context(out=tmp_path, prompts=prompts, load_pair=lambda: tiny_pair, resume=True))
    assert (tmp_path / "tilted.jsonl").read_text() == before
