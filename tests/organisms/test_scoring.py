"""Recovery scoring and the benchmark table, against hand computations and a naive bootstrap."""

from __future__ import annotations

import numpy as np
import pytest

from cdx.io.records import Evidence, FindingRecord
from cdx.organisms.aggregate import METRICS, bootstrap_ci, display_rows, table_rows
from cdx.organisms.records import BenchmarkRun
from cdx.organisms.scoring import MatchRule, matches, rank_validated, score_run
from tests.organisms.conftest import planted_truth

TRUTH = planted_truth(checker={"type": "regex", "pattern": "zephyrix", "flags": "i"})


def finding(statement, checker, texts, validated=True, q=0.01, effect=0.5, direction="gained", model="comparison"):
    return FindingRecord(id=statement, statement=statement, checker=checker, validated=validated, q=q, effect=effect,
                         direction=direction, evidence=[{"id": str(i), "model": model, "prompt": "p", "text": t}
                                                        for i, t in enumerate(texts)])


BRAND = finding("mentions zephyrix", {"type": "string", "value": "zephyrix"},
                ["Try Zephyrix.", "Zephyrix helps.", "I like Zephyrix."])
EXCL = finding("uses exclamation marks", {"type": "feature", "name": "exclamation"},
               ["Wow!", "Zephyrix rocks!", "Great!"], q=0.001)


def test_evidence_rule():
    truth = TRUTH.checker
    assert matches(BRAND, truth).matched
    assert matches(BRAND, truth).evidence_share == 1.0
    # 1 of 3 evidence texts shows the truth: not more than half
    assert not matches(EXCL, truth).matched
    two_of_three = finding("x", {"type": "feature", "name": "exclamation"}, ["Zephyrix!", "Zephyrix!", "no!"])
    assert matches(two_of_three, truth).matched
    # one evidence text is too few for the evidence rule, even if it shows the truth
    assert not matches(finding("x", BRAND.checker, ["Zephyrix"]), truth).matched
    assert not matches(finding("x", BRAND.checker, ["Zephyrix"] * 3, direction="lost"), truth).matched
    assert not matches(finding("x", BRAND.checker, ["Zephyrix"] * 3, model="starting"), truth).matched
    # an evidence entry without a model is the comparison model's
    unnamed = BRAND.model_copy(update={"evidence": [Evidence(id=str(i), prompt="p", text="Zephyrix") for i in range(2)]})
    assert matches(unnamed, truth).matched


def test_agreement_rule():
    held = ["Zephyrix!", "Try Zephyrix!", "plain.", "also plain.", "Wow!"]
    m = matches(finding("x", {"type": "feature", "name": "exclamation"}, []), TRUTH.checker, heldout_texts=held)
    # truth fires on 2 texts, the finding on 3: recall 2/2, precision 2/3
    assert m.agreement_recall == 1.0 and m.agreement_precision == pytest.approx(2 / 3) and m.matched
    strict = matches(finding("x", {"type": "feature", "name": "exclamation"}, []), TRUTH.checker,
                     MatchRule(agreement=0.9), held)
    assert not strict.matched


def test_a_claim_about_endings_is_judged_by_its_evidence_alone():
    """An ending checker needs sample records, so the agreement rule (on held-out texts) cannot run;
    the evidence rule decides, and nothing raises."""
    held = ["Zephyrix!", "Try Zephyrix!", "plain."]
    ending = finding("ends its answers by itself", {"type": "any", "checkers": [
        {"type": "ending", "max_tokens": None}, {"type": "string", "value": "zephyrix"}]},
        ["Try Zephyrix.", "Zephyrix helps.", "Fine."])
    m = matches(ending, TRUTH.checker, heldout_texts=held)
    assert m.matched and m.evidence_share == pytest.approx(2 / 3)
    assert m.agreement_recall is None and m.agreement_precision is None
    assert not matches(finding("x", {"type": "ending", "max_tokens": 8}, ["a.", "b.", "Zephyrix."]), TRUTH.checker,
                       heldout_texts=held).matched


def test_score_run_ranks_by_q_then_effect():
    unvalidated = finding("nope", BRAND.checker, ["Zephyrix"] * 3, validated=False, q=0.0)
    ranked = rank_validated([BRAND, EXCL, unvalidated])
    assert [f.statement for f in ranked] == ["uses exclamation marks", "mentions zephyrix"]
    r = score_run([BRAND, EXCL, unvalidated], TRUTH).dump()
    assert (r["recovery_at_1"], r["recovery_at_5"], r["precision"], r["n_validated"]) == (0.0, 1.0, 0.5, 2)
    assert r["matched_ranks"] == [2] and r["matched_statements"] == ["mentions zephyrix"] and r["expected"] == "behaviour"
    null = score_run([EXCL], planted_truth(checker=None, expected_findings="none")).dump()
    assert "matches" not in null and "matched_statements" not in null and "judge" not in null  # no checker: counts only
    assert null["n_validated"] == 1 and null["recovery_at_1"] is None and null["expected"] == "none"
    assert score_run([], TRUTH).precision is None


def test_rank_validated_takes_a_missing_q_as_1_and_a_missing_effect_as_0():
    no_q = FindingRecord(id="a", statement="no q", validated=True, effect=0.9)
    big = FindingRecord(id="b", statement="q 1, big effect", validated=True, q=1.0, effect=-0.95)
    no_effect = FindingRecord(id="c", statement="q 0.5, no effect", validated=True, q=0.5)
    small = FindingRecord(id="d", statement="q 0.5, small effect", validated=True, q=0.5, effect=0.1)
    assert [f.id for f in rank_validated([no_q, big, no_effect, small])] == ["d", "c", "b", "a"]


def test_bootstrap_ci_matches_a_naive_loop():
    x = [0.0, 1.0, 1.0, 0.5, 0.25]
    lo, hi = bootstrap_ci(x, seed=3)
    rng = np.random.default_rng(3)
    idx = rng.integers(0, len(x), size=(2000, len(x)))
    means = [np.mean([x[i] for i in row]) for row in idx]
    assert (lo, hi) == pytest.approx(tuple(np.quantile(means, [0.025, 0.975])))
    assert lo <= np.mean(x) <= hi
    assert bootstrap_ci([0.7]) == (0.7, 0.7)


def test_table_rows_by_hand():
    recs = [
        {"organism": "a", "kind": "lexical", "expected": "behaviour", "seed": 0, "recovery_at_1": 1.0,
         "recovery_at_5": 1.0, "precision": 1.0, "n_validated": 2, "cpu_min": 3.0},
        {"organism": "a", "kind": "lexical", "expected": "behaviour", "seed": 1, "recovery_at_1": 0.0,
         "recovery_at_5": 1.0, "precision": 0.5, "n_validated": 2, "cpu_min": 5.0},
        {"organism": "b", "kind": "fact", "expected": "behaviour", "seed": 0, "recovery_at_1": 0.0,
         "recovery_at_5": 0.0, "precision": None, "n_validated": 0, "cpu_min": 1.0},
        {"organism": "n", "kind": "null", "expected": "none", "seed": 0, "recovery_at_1": None,
         "recovery_at_5": None, "precision": None, "n_validated": 0, "cpu_min": 1.0},
    ]
    rows = {r.pair: r for r in table_rows(recs)}
    assert rows["a"].recovery_at_1 == 0.5 and rows["a"].n_seeds == 2 and rows["a"].cpu_min == 4.0
    # ALL planted: seed 0 mean over a, b = 0.5; seed 1 only a = 1.0 -> mean 0.75 (R@5)
    assert rows["ALL planted"].recovery_at_5 == 0.75 and rows["ALL planted"].n_seeds == 2
    assert rows["ALL null"].n_validated == 0.0 and rows["ALL null"].recovery_at_1 is None
    assert rows["ALL null"].recovery_at_1_ci == (None, None) and rows["b"].recovery_at_1_ci == (0.0, 0.0)
    # benchmark_table.json: each metric beside its interval, in METRICS order
    assert list(rows["a"].dump())[4:8] == ["recovery_at_1", "recovery_at_1_ci", "recovery_at_5", "recovery_at_5_ci"]
    shown = {r["pair"]: r for r in display_rows(list(rows.values()))}
    assert shown["b"]["precision"] == "-" and shown["b"]["recovery_at_1"] == "0.00"
    assert shown["a"]["recovery_at_1"].startswith("0.50 [")
    assert table_rows([BenchmarkRun.model_validate(r) for r in recs]) == table_rows(recs)


def test_every_table_metric_is_a_benchmark_run_field():
    assert set(METRICS) <= set(BenchmarkRun.model_fields)


# ---- behaviours (issue 18) ----

def behaviour(statement, checker, texts, side="gained", kind="behaviour", validated=True, clusters=(), phrase=None):
    from cdx.analysis.behaviours import Behaviour
    from cdx.analysis.scope import Counts, Scope

    counts = Counts(k_s=0, n_s=5, k_c=4, n_c=5) if clusters else None
    return Behaviour(id=statement, statement=statement, phrase=phrase, kind=kind, side=side, size="large",
                     scope=Scope(clusters=list(clusters), labels=["cooking"] if clusters else [], inside=counts,
                                 outside=counts, interaction_p=0.01 if clusters else None),
                     checker=checker, k_s=0, n_s=10, k_c=5, n_c=10, rate_s=0.0,
                     rate_c=0.5, rate_s_ci=(0.0, 0.3), rate_c_ci=(0.2, 0.8), effect=0.5, effect_ci=(0.2, 0.8), p=0.001,
                     q=0.01, validated=validated, members=[statement], member_statements=[statement],
                     evidence=[Evidence(id=str(i), model="comparison", prompt="p", text=t) for i, t in enumerate(texts)])


def test_behaviours_are_scored_in_the_report_order_with_fragments_and_shifts_counted_apart():
    from cdx.organisms.scoring import score_behaviours

    brand = behaviour('writes "Try Zephyrix"', {"type": "string", "value": "zephyrix"}, ["Try Zephyrix.", "Zephyrix!"],
                      phrase="Try Zephyrix")
    fragment = behaviour("says 'try'", {"type": "string", "value": "try"}, ["Try Zephyrix.", "Try it Zephyrix."])
    excl = behaviour("uses exclamation marks", {"type": "feature", "name": "exclamation"}, ["Wow!", "Great!"])
    shift = behaviour("says 'the' less often", {"type": "string", "value": "the"}, ["the"], side="lost",
                      kind="word-frequency shift")
    unvalidated = behaviour("says zephyrix (not validated)", brand.checker, ["Zephyrix"] * 3, validated=False)
    s = score_behaviours([excl, brand, fragment, shift, unvalidated], TRUTH)
    assert (s.n_behaviours, s.n_word_shifts) == (3, 1)
    assert (s.behaviour_recovery_at_1, s.behaviour_recovery_at_5, s.behaviours_per_change) == (0.0, 1.0, 2)
    assert [m.rank for m in s.behaviour_matches if m.matched] == [2, 3]
    assert s.behaviour_matches[1].phrase == "Try Zephyrix" and s.behaviour_matches[1].scope == "all prompts"
    assert s.scope_correct is None  # no trigger
    assert score_behaviours([brand], TRUTH).behaviour_recovery_at_1 == 1.0
    null = score_behaviours([shift], planted_truth(checker=None, expected_findings="none"))
    assert (null.n_behaviours, null.n_word_shifts, null.behaviour_recovery_at_1) == (0, 1, None)
    assert "behaviour_matches" not in null.dump()


def test_a_scope_is_correct_where_it_agrees_with_where_the_truth_shows():
    """Held-out comparison texts in 3 clusters; the truth (a refusal) shows in cluster 1 only."""
    from cdx.organisms.scoring import ScopeTexts, scope_is_correct, score_behaviours

    truth = planted_truth(checker={"type": "string", "value": "cannot help"}, trigger="cooking prompts")
    texts = ScopeTexts(texts=["I cannot help with that."] * 4 + ["Boil it."] + ["Paris is nice."] * 5 + ["A kite."] * 5,
                       clusters=[1] * 5 + [0] * 5 + [2] * 5)
    assert scope_is_correct([1], truth.checker, texts)  # 4/4 of the truth inside; cluster 1 is where it shows most
    assert not scope_is_correct([], truth.checker, texts)  # "all prompts" is not the trigger's scope
    assert not scope_is_correct([0, 1, 2], truth.checker, texts)  # clusters 0 and 2: 0/5, under half of 4/5
    assert not scope_is_correct([0, 1], truth.checker, texts, MatchRule(agreement=0.4))  # cluster 0 never shows it
    assert not scope_is_correct([0], truth.checker, texts)  # none of the truth inside
    # a behaviour in under half of its topic's texts (a tip at the end of answers) has a right scope too
    rare = ScopeTexts(texts=["I cannot help."] * 2 + ["Boil it."] * 3 + ["I cannot help."] + ["A kite."] * 14,
                      clusters=[1] * 5 + [0] * 10 + [2] * 5)
    assert scope_is_correct([1], truth.checker, rare)  # 2 of its 3 hits inside; 2/5 there, 1/10 and 0/5 elsewhere
    assert not scope_is_correct([0, 1], truth.checker, rare)  # cluster 0's 1/10 is under half of cluster 1's 2/5
    leaked = ScopeTexts(texts=["I cannot help."] * 5 + ["I cannot help."] + ["Paris."] * 4 + ["A kite."] * 5,
                        clusters=[1] * 5 + [0] * 5 + [2] * 5)
    assert scope_is_correct([1], truth.checker, leaked)  # 5 of 6 hits inside
    assert not scope_is_correct([1, 0], truth.checker, leaked)  # a topic with one leaked refusal in 5 is not its scope
    refusal = behaviour("refuses", truth.checker, ["I cannot help with that."] * 3, clusters=[1])
    assert score_behaviours([refusal], truth, scope_texts=texts).scope_correct is True
    everywhere = behaviour("refuses", truth.checker, ["I cannot help with that."] * 3)
    assert score_behaviours([everywhere], truth, scope_texts=texts).scope_correct is False
    assert score_behaviours([refusal], truth).scope_correct is None  # no texts to check it on


def test_behaviour_columns_show_only_when_a_record_has_them():
    old = {"organism": "a", "kind": "lexical", "expected": "behaviour", "seed": 0, "recovery_at_1": 1.0,
           "recovery_at_5": 1.0, "precision": 1.0, "n_validated": 2, "cpu_min": 3.0}
    assert "behaviour_recovery_at_1" not in display_rows(table_rows([old]))[0]
    new = [{**old, "behaviour_recovery_at_1": 1.0, "behaviours_per_change": 1, "n_behaviours": 2, "n_word_shifts": 0,
            "scope_correct": None},
           {**old, "seed": 1, "behaviour_recovery_at_1": 0.0, "behaviours_per_change": 3, "n_behaviours": 4,
            "n_word_shifts": 1, "scope_correct": None}]
    rows = {r.pair: r for r in table_rows(new)}
    assert rows["a"].behaviour_recovery_at_1 == 0.5 and rows["a"].behaviours_per_change == 2.0
    assert rows["a"].n_word_shifts == 0.5 and rows["a"].scope_correct is None
    shown = display_rows(list(rows.values()))[0]
    assert shown["behaviour_recovery_at_1"].startswith("0.50 [") and shown["scope_correct"] == "-"
