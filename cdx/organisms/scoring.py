"""Does a validated finding recover a planted behaviour? Matching rules and per-run recovery scores.

Matching rules (also in docs/discovery.md). The checker rules: a validated finding whose direction
is "gained" matches the organism's truth when either

1. evidence rule: at least `min_evidence` of its evidence texts come from the comparison model and
   the truth checker fires on at least `evidence_share` (default: more than half) of them; or
2. agreement rule (when held-out texts are given, e.g. the organism's verify samples): on those
   texts the finding's own checker and the truth checker agree in both directions, i.e. of the
   texts where the truth fires the finding fires on >= `agreement` and of the texts where the
   finding fires the truth fires on >= `agreement`.

Every planted behaviour in the zoo is something the organism does *more* often, so "lost"
findings never match by these rules (they may be true consequences, e.g. fewer recipe words when
cooking questions are refused, and count against precision only through `matched=False`).

3. judge rule (only when `score_run` is given a `cdx.organisms.judge.RubricJudge`): the assistant
   grades each of the top `max_findings` validated findings 1-5 against truth.json, seeing its
   statement, direction, rates and evidence; grade >= 4 matches. An unparsed reply never does.

A finding's `matched` is `matched_checker` (rule 1 or 2) OR judge grade >= 4. Findings ranked
below `max_findings` are not graded: the checker rules alone decide them.

Behaviours (issue 18; `score_behaviours`). What a user reads first is the run's behaviours
(behaviours.jsonl: validated findings grouped, each with its phrase, scope and own test), so they
are scored too, by the checker rules above (a behaviour's checker is "any member, or its phrase";
its evidence is its own): Recovery@1/5 over the behaviours that count (validated, not a
word-frequency shift, in the report's order), how many of them match the one planted change
(`behaviours_per_change`: 1 is the goal, the fragments of one sentence are no longer counted
apart), the word-frequency shifts apart (`n_word_shifts`: on a null pair they are reported as
such, never as behaviours), and for an organism with a trigger whether the top matching
behaviour's scope is right (`scope_is_correct`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from cdx.analysis.behaviours import Behaviour
from cdx.analysis.checkers import needs_record
from cdx.io.records import FindingRecord
from cdx.organisms.judge import RubricJudge, comparison_texts, counts
from cdx.organisms.records import BehaviourMatch, BehaviourScore, Match, MatchRow, PlantedTruth, RunScore


@dataclass
class MatchRule:
    min_evidence: int = 2
    evidence_share: float = 0.5
    """The truth checker must fire on MORE than this share of the comparison model's evidence."""
    agreement: float = 0.5


def _build(checker: dict | None):
    from cdx.analysis import build_checker

    if checker is None:  # a finding without a checker cannot be compared with the truth
        raise ValueError("a finding without a checker cannot be matched against the planted behaviour")
    return build_checker(checker)


def matches(finding: FindingRecord, truth_checker: dict, rule: MatchRule | None = None,
            heldout_texts: Sequence[str] = ()) -> Match:
    """One finding against the truth by the evidence rule and the agreement rule."""
    return match_claim(finding.direction, comparison_texts(finding), finding.checker, truth_checker, rule, heldout_texts)


def match_claim(direction: str, evidence: Sequence[str], checker: dict | None, truth_checker: dict,
                rule: MatchRule | None = None, heldout_texts: Sequence[str] = ()) -> Match:
    """A claim (a finding or a behaviour: its direction, its comparison-model evidence texts, its
    checker) against the truth by the evidence rule and the agreement rule."""
    rule = rule or MatchRule()
    out = Match()
    if direction != "gained":
        return out
    truth = _build(truth_checker)
    if evidence:
        out.evidence_share = sum(truth.check(t) for t in evidence) / len(evidence)
        if len(evidence) >= rule.min_evidence and out.evidence_share > rule.evidence_share:
            out.matched = True
    # the agreement rule checks texts: a claim about how answers end (an ending checker needs the
    # sample record) is judged by its evidence alone
    if heldout_texts and not (checker and needs_record(checker)):
        mine = _build(checker)
        t_hits = [truth.check(t) for t in heldout_texts]
        f_hits = [mine.check(t) for t in heldout_texts]
        both = sum(a and b for a, b in zip(t_hits, f_hits))
        out.agreement_recall = both / sum(t_hits) if any(t_hits) else None
        out.agreement_precision = both / sum(f_hits) if any(f_hits) else None
        if (out.agreement_recall or 0) >= rule.agreement and (out.agreement_precision or 0) >= rule.agreement:
            out.matched = True
    return out


def rank_validated(findings: Sequence[FindingRecord]) -> list[FindingRecord]:
    """Validated findings, best first: smallest q, then largest |effect| (no q: 1.0, no effect: 0.0)."""
    valid = [f for f in findings if f.validated]
    return sorted(valid, key=_rank_key)


def _rank_key(f: FindingRecord) -> tuple[float, float]:
    return (1.0 if f.q is None else f.q, -abs(0.0 if f.effect is None else f.effect))


def score_run(findings: Sequence[FindingRecord], truth: PlantedTruth, rule: MatchRule | None = None,
              heldout_texts: Sequence[str] = (), judge: RubricJudge | None = None) -> RunScore:
    """Recovery@1, Recovery@5, precision and counts of one analysis run of one pair.

    For pairs without a checker (null pairs, quantization) only the counts are defined, and the
    judge is not asked. `matches` lists every validated finding, best first, with `matched_checker`,
    `judge_grade` (None when not graded or unparsed), `matched` and the judge's transcript.
    """
    ranked = rank_validated(findings)
    counts_ = {"n_findings": len(findings), "n_validated": len(ranked), "expected": truth.expected_findings}
    if not truth.checker:
        return RunScore(**counts_, recovery_at_1=None, recovery_at_5=None, precision=None, matched_ranks=[],
                        **_recovery("checker", None), **_recovery("judge", None), **_judge_counts(judge))
    rows = [_match_row(i + 1, f, truth, rule, heldout_texts, judge) for i, f in enumerate(ranked)]
    flags = [r.matched for r in rows]
    ranks = [r.rank for r in rows if r.matched]
    return RunScore(
        **counts_, recovery_at_1=float(any(flags[:1])), recovery_at_5=float(any(flags[:5])),
        precision=(sum(flags) / len(flags)) if flags else None, matched_ranks=ranks,
        matched_statements=[ranked[i - 1].statement for i in ranks][:5],
        **_recovery("checker", [r.matched_checker for r in rows]),
        **_recovery("judge", [counts(r.judge_grade) for r in rows] if judge is not None else None),
        **_judge_counts(judge), matches=rows,
    )


def _match_row(rank: int, finding: FindingRecord, truth: PlantedTruth, rule: MatchRule | None,
               heldout_texts: Sequence[str], judge: RubricJudge | None) -> MatchRow:
    m = matches(finding, truth.checker or {}, rule, heldout_texts)  # (score_run scores pairs with a checker only)
    row = MatchRow(rank=rank, statement=finding.statement, direction=finding.direction, matched_checker=m.matched,
                   **m.model_dump(exclude={"matched"}), judge_grade=None, matched=m.matched)
    if judge is not None and rank <= judge.settings.max_findings:
        row.judge = judge.grade(truth, finding)
        row.judge_grade = row.judge.grade
        row.matched = m.matched or counts(row.judge_grade)
    return row


def _recovery(by: str, flags: list[bool] | None) -> dict:
    """`<by>_recovery_at_1/5`: recovery by one rule alone (None when that rule is off or undefined)."""
    if flags is None:
        return {f"{by}_recovery_at_1": None, f"{by}_recovery_at_5": None}
    return {f"{by}_recovery_at_1": float(any(flags[:1])), f"{by}_recovery_at_5": float(any(flags[:5]))}


def _judge_counts(judge: RubricJudge | None) -> dict:
    """The judge's assistant calls and unparsed replies so far, and its settings (`judge`, only when configured)."""
    if judge is None:
        return {"judge_calls": None, "judge_unparsed": None}
    return {"judge_calls": judge.calls, "judge_unparsed": judge.unparsed, "judge": judge.summary()}


# ---- behaviours (issue 18) --------------------------------------------------------------------

def score_behaviours(behaviours: Sequence[Behaviour], truth: PlantedTruth, rule: MatchRule | None = None,
                     heldout_texts: Sequence[str] = (), scope_texts: ScopeTexts | None = None) -> BehaviourScore:
    """Recovery@1/5 over the behaviours that count (in behaviours.jsonl's order, the report's), how many
    of them match the planted change, the word-frequency shifts apart, and for an organism with a
    trigger whether the top matching behaviour's scope is right (`scope_is_correct`, on `scope_texts`)."""
    counted = [b for b in behaviours if b.is_behaviour]
    shifts = sum(b.validated and b.kind == "word-frequency shift" for b in behaviours)
    base = {"n_behaviours": len(counted), "n_word_shifts": shifts,
            "n_other_sides": sum(b.validated and b.kind == "other side" for b in behaviours)}
    if not truth.checker:
        return BehaviourScore(**base)
    rows = [BehaviourMatch(rank=i + 1, statement=b.statement, phrase=b.phrase, side=b.side, scope=b.scope.text(),
                           **match_claim(b.side, [e.text for e in b.evidence if e.model != "starting"], b.checker,
                                         truth.checker, rule, heldout_texts).model_dump())
            for i, b in enumerate(counted)]
    flags = [r.matched for r in rows]
    first = next((b for b, r in zip(counted, rows, strict=True) if r.matched), None)
    scope_ok = None
    if truth.trigger and first is not None and scope_texts is not None:
        scope_ok = scope_is_correct(first.scope.clusters, truth.checker, scope_texts, rule)
    return BehaviourScore(**base, behaviour_recovery_at_1=float(any(flags[:1])),
                          behaviour_recovery_at_5=float(any(flags[:5])), behaviours_per_change=sum(flags),
                          scope_correct=scope_ok, behaviour_matches=rows)


@dataclass
class ScopeTexts:
    """The comparison model's held-out texts of an analysis run, each with its prompt's cluster
    (validation.jsonl and clusters.json), on which a behaviour's scope is checked."""

    texts: list[str]
    clusters: list[int]


def scope_is_correct(scope_clusters: Sequence[int], truth_checker: dict, texts: ScopeTexts,
                     rule: MatchRule | None = None) -> bool:
    """A stated scope is right when it is not "all prompts" and it is where the truth shows on the
    comparison model's held-out texts: at least `agreement` of the texts where the truth fires lie
    in the scope's clusters, and in each of those clusters the truth fires at least `agreement`
    times as often as in the cluster where it fires most, so that no cluster of the scope is one
    where the behaviour hardly shows (a refusal's scope that takes in a topic with a few leaked
    refusals is wrong). How often the truth fires inside the scope is not asked to reach
    `agreement`: a tip at the end of answers shows in under half of its topic's 32-token texts, and
    a scope of exactly that topic is right."""
    rule = rule or MatchRule()
    if not scope_clusters:
        return False
    truth = _build(truth_checker)
    fires = [truth.check(t) for t in texts.texts]
    inside = [c in set(scope_clusters) for c in texts.clusters]
    both = sum(f and i for f, i in zip(fires, inside, strict=True))
    if not any(fires) or not any(inside):
        return False
    rate = {c: sum(f for f, k in zip(fires, texts.clusters, strict=True) if k == c) / texts.clusters.count(c)
            for c in set(texts.clusters)}
    best = max(rate.values())
    return (both / sum(fires) >= rule.agreement
            and all(rate.get(c, 0.0) >= rule.agreement * best for c in scope_clusters))
