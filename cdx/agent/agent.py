"""The experiment agent: for each open hypothesis, design the next experiment, run it, decide.

One step on a hypothesis ("the comparison model refuses more"):

1. **Scan**: prompts from every candidate topic (templates, the run's clusters, assistant
   prompts), as many per topic as a power calculation asks for the effect seen so far; both
   models answer; a one-sided rate test per topic, Benjamini-Hochberg across topics.
2. **Decide**: significant on most topics -> *confirm* (it is general); on one topic and clearly
   less elsewhere (interaction test) -> *narrow* to that topic; on a few -> *split* into one
   hypothesis per topic; nowhere, not even pooled -> *reject*.
3. **Confirm the narrower claim** on fresh held-out prompts of the topic against their
   counterfactual variants (same template, other topic): the child is validated only if the topic
   shows the behaviour and shows it more than its counterfactuals. The parent finding is then
   `refined_into` the child's.

Every prompt goes to the designer's log, every decision is returned (and recorded in the
knowledge base when one is given) with its reason and numbers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal

from pydantic import BaseModel, ValidationError

from cdx.agent.design import PromptDesigner
from cdx.agent.sampler import Sampler
from cdx.agent.stats import Counted, interaction_p, pool_counts, pooled_test, sample_size
from cdx.agent.topics import PHRASING, TOPICS, TopicPrompt, counterfactuals, draw, phrasing_of, phrasing_template, rephrase
from cdx.analysis import Hypothesis, SampleSettings, ValidateSettings, validate
from cdx.analysis.checkers import build_checker as default_checker
from cdx.io.records import FindingRecord, KnownFinding, OpenHypothesis, SampleRecord
from cdx.knowledge import record_hypothesis

log = logging.getLogger(__name__)

ACTIONS = ("confirm", "narrow", "split", "reject", "inconclusive")
OMIT = frozenset({"likelihood", "discovery"})
"""Fields of a test record the knowledge base's validation details leave out (the group's test has none of its own)."""
HYPOTHESIS_STATUS = {"confirm": "confirmed", "narrow": "narrowed", "split": "split", "reject": "rejected",
                     "inconclusive": "open"}


@dataclass
class AgentSettings:
    """How the agent designs and judges experiments."""

    topics: list[str] | None = None
    """Topics scanned (None: every built-in topic plus the run's clusters)."""
    alpha: float = 0.05
    """Significance level of every test (per topic after Benjamini-Hochberg)."""
    power: float = 0.8
    """Power the sample size is computed for."""
    n_min: int = 6
    """Fewest prompts per topic in a scan."""
    n_max: int = 24
    """Most prompts per topic in a scan (the power calculation is clamped to [n_min, n_max])."""
    confirm_n: int = 16
    """Held-out prompts of a topic (and as many counterfactuals) to confirm a narrowed hypothesis."""
    replication_n: int = 8
    """Prompts (and counterfactuals) in a brief replication of a known finding."""
    min_effect: float = 0.2
    """Smallest rate difference (in the hypothesis's direction) that counts as the behaviour."""
    general_fraction: float = 0.6
    """Significant on at least this fraction of topics: the hypothesis is general (confirm)."""
    max_children: int = 3
    """Most topics a hypothesis is split into."""
    phrasing: bool = True
    """Also look for a phrasing condition: regroup the scan's template prompts by template (no extra samples)."""
    seed: int = 0
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not 0 < self.alpha < 1 or not 0 < self.power < 1:
            raise ValueError(f"alpha={self.alpha} and power={self.power} must lie strictly between 0 and 1")
        if not 1 <= self.n_min <= self.n_max or self.confirm_n < 2 or self.replication_n < 2:
            raise ValueError(f"need 1 <= n_min <= n_max, confirm_n >= 2, replication_n >= 2; got n_min={self.n_min}, "
                             f"n_max={self.n_max}, confirm_n={self.confirm_n}, replication_n={self.replication_n}")
        if not 0 < self.general_fraction <= 1:
            raise ValueError(f"general_fraction={self.general_fraction} must lie in (0, 1]")


class Decision(BaseModel):
    """What one step decided about one hypothesis, with the tests behind it."""

    hypothesis_id: int | None
    statement: str
    action: Literal["confirm", "narrow", "split", "reject", "inconclusive"]
    reason: str
    n_per_topic: int
    scan: dict[str, FindingRecord]
    """Per topic (and per phrasing, when grouped so): the hypothesis tested on that group's texts."""
    significant_topics: list[str]
    children: list[FindingRecord] = []
    """The narrower hypotheses ("on <topic> only"), each tested on held-out prompts against counterfactuals."""


class Replication(BaseModel):
    """What a brief re-test of a known finding found (stage replicate's event)."""

    finding_id: int
    statement: str
    status: Literal["replicated", "not_replicated"]
    reason: str
    test: dict
    """The test record (`FindingRecord` fields, evidence left out)."""


class ExperimentAgent:
    """Tests, narrows, splits or rejects hypotheses; records what it did in the knowledge base."""

    def __init__(self, sampler: Sampler, designer: PromptDesigner, settings: AgentSettings, kb=None,
                 pair_id: int | None = None, run_id: int | None = None, build_checker: Callable | None = None):
        if kb is not None and pair_id is None:
            raise ValueError("an agent that records in a knowledge base needs pair_id")
        self.sampler, self.designer, self.s = sampler, designer, settings
        self.kb, self.pair_id, self.run_id = kb, pair_id, run_id
        self.build_checker: Callable = build_checker or default_checker

    # -- one hypothesis ---------------------------------------------------------------------------

    def step(self, hypothesis: OpenHypothesis | FindingRecord | dict, salt: int = 0) -> Decision:
        """Scan topics, decide, confirm narrower children; returns the decision (see module doc).

        `hypothesis`: an `OpenHypothesis` (a findings record with its knowledge-base id); a findings
        record or its dict is read as one."""
        h = _open_hypothesis(hypothesis)
        direction = _direction(h)
        self.build_checker(h.checker)  # a bad checker fails before anything is sampled
        n = sample_size(h.rate_s or 0.0, h.rate_c or 0.0, self.s.alpha, self.s.power, self.s.n_min, self.s.n_max)
        topics = self._topics()
        groups = {t: self.designer.prompts(t, n, f"scan: does {h.statement!r} hold on {t} prompts? "
                                              f"({n} per topic from power {self.s.power} for the effect seen so far)", salt=salt)
                  for t in topics}
        records = self.sampler.sample([p.text for ps in groups.values() for p in ps])
        tests = self._test_groups(h, groups, records, direction)  # q: Benjamini-Hochberg across the topics
        sig = self._significant(tests, direction)
        action, reason = self._decide(tests, sig, direction, "topics")
        others = [t for t in topics if t not in sig]
        if action not in ("narrow", "split") and self.s.phrasing:
            # Same texts, grouped by template instead of topic: a behaviour tied to how a request is
            # phrased ("How do I ...?") shows here and not in the topic scan.
            by_phrase = _by_phrasing(groups)
            if len(by_phrase) >= 2:
                p_tests = self._test_groups(h, by_phrase, records, direction)
                p_sig = self._significant(p_tests, direction)
                p_action, p_reason = self._decide(p_tests, p_sig, direction, "phrasings")
                tests.update(p_tests)
                if p_action in ("narrow", "split"):
                    action, reason = p_action, f"{p_reason} (by topic: {reason})"
                    sig, others = p_sig, [c for c in by_phrase if c not in p_sig]
        decision = Decision(hypothesis_id=h.hypothesis_id, statement=h.statement, action=action,
                            reason=reason, n_per_topic=n, scan=tests, significant_topics=sig)
        used = {p.text for ps in groups.values() for p in ps}
        if action in ("narrow", "split"):
            decision.children = [self._child(h, t, others, used, direction, salt) for t in sig[: self.s.max_children]]
            if not any(c.validated for c in decision.children):
                decision.action = "inconclusive"
                decision.reason = reason + "; but no narrower hypothesis held on held-out prompts, so it stays open"
        self._record(h, decision, tests)
        log.info("agent: %s %r: %s", decision.action, h.statement, decision.reason)
        return decision

    def _topics(self) -> list[str]:
        topics = list(self.s.topics) if self.s.topics else self.designer.topics()
        if len(topics) < 2:
            raise ValueError(f"the agent needs at least two topics to tell a conditional behaviour apart; got {topics}")
        return topics

    def _significant(self, tests: dict[str, FindingRecord], direction: str) -> list[str]:
        """Conditions with q < alpha and at least min_effect in the stated direction, largest effect first."""
        sig = [t for t, r in tests.items() if _q(r) < self.s.alpha and _directed(_eff(r), direction) >= self.s.min_effect]
        return sorted(sig, key=lambda t: -_directed(_eff(tests[t]), direction))

    def _decide(self, tests: dict[str, FindingRecord], sig: list[str], direction: str,
                noun: str = "topics") -> tuple[str, str]:
        topics = list(tests)
        pooled = pooled_test(pool_counts(tests.values()), direction)
        if len(sig) >= self.s.general_fraction * len(topics):
            return "confirm", f"holds on {len(sig)} of {len(topics)} {noun} ({_fmt(pooled)} pooled): general"
        if sig:
            inside = pool_counts(tests[t] for t in sig)
            outside = pool_counts(tests[t] for t in topics if t not in sig)
            p_int = interaction_p(inside, outside, direction)
            rest = pooled_test(outside, direction)
            where = ", ".join(f"{t} ({_fmt(tests[t])})" for t in sig)
            if p_int < self.s.alpha and _directed(rest.effect, direction) < self.s.min_effect:
                # larger on these, and below min_effect on the rest: the statement "not on other ..." is true
                action = "narrow" if len(sig) == 1 else "split"
                return action, (f"only on {where}; other {noun} {_fmt(rest)}; the effect is larger on "
                                f"{'/'.join(sig)} than elsewhere (interaction p={p_int:.2g})")
            return "confirm", (f"significant on {where}, and present elsewhere too ({_fmt(rest)} on the other {noun}, "
                               f"interaction p={p_int:.2g})")
        if pooled.p < self.s.alpha and _directed(pooled.effect, direction) >= self.s.min_effect / 2:
            return "confirm", f"no single one of the {noun} is significant but all together are ({_fmt(pooled)}): diffuse"
        best = min(topics, key=lambda t: _q(tests[t]))
        return "reject", (f"none of the {noun} shows it (best {best}: {_fmt(tests[best])}, q={_q(tests[best]):.2g}); "
                          f"pooled {_fmt(pooled)}")

    def _child(self, h: OpenHypothesis, topic: str, others: list[str], used: set[str], direction: str,
               salt: int) -> FindingRecord:
        """The narrower hypothesis "on `topic` only", tested on held-out prompts against counterfactuals."""
        if topic.startswith(PHRASING):
            phrase = phrasing_template(topic).format(x="...")
            statement = f"On requests phrased {phrase!r} only (not other phrasings): {h.statement}"
        else:
            statement = f"On {topic} prompts only (not on other topics): {h.statement}"
        test = self.contrast(h, topic, others, self.s.confirm_n, used, salt + 1, f"confirm {statement!r} on held-out prompts")
        return _with(test, statement=statement, kind="experiment", direction=direction, cluster=topic, cluster_label=topic,
                     checker=h.checker, parent_statement=h.statement)

    # -- a topic against its counterfactuals (confirmation and replication) ----------------------

    def contrast(self, h: OpenHypothesis | KnownFinding, topic: str, others: list[str], n: int, exclude: set[str], salt: int,
                 reason: str) -> FindingRecord:
        """`h` on `n` prompts of `topic` against their counterfactual variants in `others`.

        Holds when the topic shows the behaviour (one-sided p < alpha, effect >= min_effect) and
        shows it more than the counterfactuals do (interaction p < alpha).
        """
        direction = _direction(h)
        inside = self.designer.prompts(topic, n, reason, exclude=exclude, salt=salt)
        if topic.startswith(PHRASING):  # the same requests in another phrasing
            outside = [q for k, p in enumerate(inside) if (q := rephrase(p, k)) is not None]
        else:
            outside = self._counterfactuals(inside, others, exclude, salt)
        self.designer.log_prompts(outside, f"counterfactual variants for: {reason}")
        records = self.sampler.sample([p.text for p in inside + outside])
        tests = self._test_groups(h, {topic: inside, "counterfactuals": outside}, records, direction)
        t_in, t_out = tests[topic], tests["counterfactuals"]
        p_int = interaction_p(t_in, t_out, direction)
        ok = _p(t_in) < self.s.alpha and p_int < self.s.alpha and _directed(_eff(t_in), direction) >= self.s.min_effect
        return _with(t_in, q=t_in.p, validated=bool(ok), outside=_counts(t_out), interaction_p=p_int,
                     reason=(f"{topic}: {_fmt(t_in)}; counterfactuals ({_where(topic, outside)}): "
                             f"{_fmt(t_out)}; interaction p={p_int:.2g} -> {'holds' if ok else 'does not hold'}"))

    def _test_groups(self, h: OpenHypothesis | KnownFinding, groups: dict[str, list[TopicPrompt]],
                     records: list[SampleRecord], direction: str) -> dict[str, FindingRecord]:
        """findings.jsonl records of `h` restricted to each prompt group, from the validation stage's `validate`."""
        names = list(groups)
        group_of = {p.text: i for i, name in enumerate(names) for p in groups[name]}
        mine = [r for r in records if r.prompt in group_of]
        clusters = {r.prompt_index: group_of[r.prompt] for r in mine}
        hyps = [Hypothesis(f"{h.statement} [{name}]", h.checker or {}, direction, kind="experiment", cluster=i,
                           cluster_label=name) for i, name in enumerate(names)]
        settings = ValidateSettings(fdr=self.s.alpha, min_effect=self.s.min_effect, min_texts=1, n_evidence=5,
                                    sampling=getattr(self.sampler, "settings", None) or SampleSettings())
        found = validate(None, hyps, samples=mine, settings=settings, prompt_clusters=clusters)
        return {name: FindingRecord.model_validate(f.to_record()) for name, f in zip(names, found)}

    def _counterfactuals(self, inside: list[TopicPrompt], others: list[str], exclude: set[str], salt: int) -> list[TopicPrompt]:
        """Per prompt, the same template in another topic (rotating); prompts without a template get a random one."""
        if not others:
            raise ValueError("counterfactual prompts need at least one other topic")
        out: list[TopicPrompt] = []
        for i, p in enumerate(inside):
            other = others[i % len(others)]
            cf = counterfactuals([p], other) if other in TOPICS and p.variant else []
            out += cf or draw(self.designer.pool(other), 1, self.s.seed * 1000 + salt + i, exclude | {q.text for q in out})
        return out

    # -- replication of a known finding ----------------------------------------------------------

    def replicate(self, finding: KnownFinding, salt: int = 0) -> Replication:
        """A brief re-test of a known finding (a row of KnowledgeBase.findings); records replicated/not_replicated."""
        h = finding
        direction = _direction(h)
        self.build_checker(h.checker)
        topics, topic = self._topics(), finding.cluster
        reason = f"replicate finding {finding.id} {finding.statement!r}"
        if topic and (topic in self.designer.topics() or topic.startswith(PHRASING)):
            test = self.contrast(h, topic, [t for t in topics if t != topic], self.s.replication_n, set(), salt, reason)
        else:
            per = max(1, self.s.replication_n // len(topics))
            prompts = [p for t in topics for p in self.designer.prompts(t, per, reason, salt=salt)]
            records = self.sampler.sample([p.text for p in prompts])
            test = self._test_groups(h, {"all topics": prompts}, records, direction)["all topics"]
            ok = _p(test) < self.s.alpha and _directed(_eff(test), direction) >= self.s.min_effect
            test = _with(test, validated=bool(ok), reason=f"all topics: {_fmt(test)} -> {'holds' if ok else 'does not hold'}")
        status = "replicated" if test.validated else "not_replicated"
        if self.kb is not None:
            with self.kb.transaction():  # the validation and the status land together or not at all
                vid = self.kb.add_validation(finding.hypothesis_id, test, "replication", self.run_id, OMIT)
                self.kb.add_status(finding.id, status, f"replication: {test.reason}", self.run_id, vid,
                                   evidence=test.evidence if test.validated else [])
        return Replication(finding_id=finding.id, statement=finding.statement, status=status, reason=test.reason or "",
                           test=test.model_dump(exclude={"evidence"}))

    # -- knowledge base --------------------------------------------------------------------------

    def _record(self, h: OpenHypothesis, decision: Decision, tests: dict[str, FindingRecord]) -> None:
        """Everything the decision changes, in one transaction (a kill leaves all of it or none)."""
        if self.kb is None:
            return
        hid = h.hypothesis_id
        if hid is None:
            raise ValueError(f"hypothesis {h.statement!r} has no hypothesis_id: record it in the knowledge base first")
        with self.kb.transaction():
            self._record_in(hid, decision, tests)

    def _record_in(self, hid: int, decision: Decision, tests: dict[str, FindingRecord]) -> None:
        for t, test in tests.items():
            self.kb.add_validation(hid, _with(test, group=t, validated=t in decision.significant_topics),
                                   "experiment", self.run_id, OMIT)
        known = self.kb.finding_status(hid)
        parent = None if known is None else known[0]  # the finding this hypothesis already is, if any
        for k, child in enumerate(decision.children):
            assert self.pair_id is not None  # checked in __init__ when a knowledge base is given
            res = record_hypothesis(self.kb, self.pair_id, child, self.run_id, "experiment", parent_id=hid, omit=OMIT)
            child = decision.children[k] = _with(child, hypothesis_id=res.hypothesis_id, finding_id=res.finding_id)
            self.kb.set_hypothesis_status(res.hypothesis_id, "confirmed" if child.validated else "rejected")
            if child.validated and parent is not None:
                self.kb.add_status(parent, "refined_into", f"experiment: {decision.reason}; {child.reason}",
                                   self.run_id, related_finding_id=res.finding_id)
        self.kb.set_hypothesis_status(hid, HYPOTHESIS_STATUS[decision.action])
        if decision.action == "reject" and parent is not None:
            self.kb.add_status(parent, "rejected", f"experiment: {decision.reason}", self.run_id)
        elif decision.action == "confirm":
            ev = [e for t in decision.significant_topics for e in tests[t].evidence][:5]
            if parent is None:
                self.kb.add_finding(hid, f"experiment: {decision.reason}", self.run_id, evidence=ev)
            else:
                self.kb.add_status(parent, "replicated", f"experiment: {decision.reason}", self.run_id, evidence=ev)


def _by_phrasing(groups: dict[str, list[TopicPrompt]]) -> dict[str, list[TopicPrompt]]:
    out: dict[str, list[TopicPrompt]] = {}
    for ps in groups.values():
        for p in ps:
            if (name := phrasing_of(p)) is not None:
                out.setdefault(name, []).append(p)
    return dict(sorted(out.items()))


def _where(condition: str, outside: list[TopicPrompt]) -> str:
    if condition.startswith(PHRASING):
        return "the same requests phrased otherwise"
    return "same templates on " + "/".join(sorted({p.topic for p in outside}))


def _open_hypothesis(h: OpenHypothesis | FindingRecord | dict) -> OpenHypothesis:
    """The agent's input as its record: a findings record (or its dict) keeps its fields, ids and numbers."""
    if isinstance(h, OpenHypothesis):
        return h
    data = h.model_dump() if isinstance(h, FindingRecord) else dict(h)
    try:
        return OpenHypothesis.model_validate(data)
    except ValidationError as e:
        err = e.errors()[0]
        field = ".".join(str(x) for x in err["loc"])
        raise ValueError(f"the hypothesis's {field} {err['input']!r} is not valid: {err['msg']}") from None


def _direction(h: OpenHypothesis | KnownFinding) -> str:
    return h.direction or "gained"


def _directed(effect: float, direction: str) -> float:
    return effect if direction == "gained" else -effect


def _fmt(t: Counted) -> str:
    p = getattr(t, "p", None)
    return f"comparison {t.k_c}/{t.n_c} vs starting {t.k_s}/{t.n_s}, p={float('nan') if p is None else p:.2g}"


def _counts(t: FindingRecord) -> dict:
    return t.model_dump(include={"n_s", "k_s", "n_c", "k_c", "rate_s", "rate_c", "effect", "p"})


def _with(test: FindingRecord, **changes) -> FindingRecord:
    """A copy of `test` with `changes` (fields, or the agent's own extra keys) applied and checked."""
    return FindingRecord.model_validate({**test.model_dump(), **changes})


def _p(t: FindingRecord) -> float:
    return float("nan") if t.p is None else t.p


def _q(t: FindingRecord) -> float:
    return 1.0 if t.q is None else t.q


def _eff(t: FindingRecord) -> float:
    return 0.0 if t.effect is None else t.effect
