"""From validated findings to behaviours: one planted change, one behaviour, with phrase, scope and size.

A fine-tune that appends one sentence comes back from validation as many findings, one per word of
the sentence. Here validated findings that fire on the same held-out texts are grouped, and each
group becomes a behaviour:

* grouping: two findings of one side belong together when the smaller of their held-out hit sets
  (the texts of the model the statement is about on which each fires) lies inside the larger
  more than chance would put it: (P(larger | smaller) - P(larger)) / (1 - P(larger)) >= `overlap`.
  Fragments of one sentence score 1 (each fires whenever the sentence is there), as does a
  common word that the sentence contains; two independent behaviours score about 0 whatever their
  rates. 0.5 is halfway: the smaller set must lie inside the larger at least halfway from chance
  to always. (The plain overlap coefficient |A and B| / min(|A|, |B|) would merge two independent
  behaviours as soon as one is in half the texts.) Each finding joins the group of the earliest
  (most significant) seed it overlaps, never two groups, so a finding that fires nearly
  everywhere cannot chain unrelated behaviours into one. A validated union of words (kind
  vocabulary: the describer's "all distinctive words of one side") then gathers the groups made
  only of its words, since a persona's words are independent of one another within a text.
* the phrase (`cdx.analysis.phrases`), mined on the discovery samples where a member fires, so
  that the checker it adds to is fixed before the held-out texts are looked at again;
* the checker (any member, or the phrase), re-tested on the held-out texts as one hypothesis:
  its rates, Newcombe CI and p are its own, its q comes from Benjamini-Hochberg over the run's
  findings and behaviours together. Its members were chosen because they passed validation on
  those same texts, so the behaviour's test is a summary of them, not a fresh replication;
* its scope (`cdx.analysis.scope`), its side and a size class. A group with no distinctive phrase,
  no behavioural feature and no content word that the other model (almost) never writes is a
  "word-frequency shift", never counted as a behaviour.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel

from cdx.analysis.checkers import build_checker, ending_statement
from cdx.analysis.describe import SIDE
from cdx.analysis.features import DESCRIPTIONS, FUNCTION_WORDS
from cdx.analysis.phrases import PhraseSettings, mine_phrase
from cdx.analysis.sampling import AMPLIFIED, PLAIN, ModelRates, importance_rates, stopped_rates
from cdx.analysis.scope import Scope, ScopeSettings, find_scope
from cdx.analysis.types import Finding, Hypothesis
from cdx.analysis.validate import ValidateSettings, apply_fdr, test_hypothesis
from cdx.io import atomic_write_text
from cdx.io.records import Evidence, PromptClusters, SampleRecord
from cdx.metrics.importance import RateEstimate, importance_rate

log = logging.getLogger(__name__)

WORD_SHIFT = "word-frequency shift"
OTHER_SIDE = "other side"
MODE = {"gained": "plain_c", "lost": "plain_s"}


class DiscoveryRates(BaseModel):
    """A behaviour's rate under each model on the discovery prompts, two ways side by side (issue 19).

    `plain_*` count the plain samples (Wilson intervals); `amplified` weights the amplified samples by
    p(x) / q(x) (cdx.metrics.importance: SNIS, ESS, bootstrap over prompts, refused when degenerate).
    The behaviour was found on these texts, so both are descriptive, not a test: the test is the
    behaviour's own, on held-out prompts.
    """

    plain_s: RateEstimate
    """Under the starting model, from its plain samples."""
    plain_c: RateEstimate
    """Under the comparison model, from its plain samples."""
    amplified: ModelRates | None = None
    """Under each model, from the amplified samples; None when they carry no log q (see `note`)."""
    stopped: ModelRates | None = None
    """The same samples with stopped weights: each hit weighted by p / q of its tokens up to the one
    that settled it (cdx.metrics.importance, "Stopped weights"); None when `amplified` is."""
    note: str = ""


class Behaviour(BaseModel):
    """One behaviour: a group of validated findings re-tested as one hypothesis (behaviours.jsonl)."""

    id: str
    statement: str
    phrase: str | None = None
    """Characteristic phrase mined from the discovery texts that show it (None: none found)."""
    kind: Literal["behaviour", "word-frequency shift", "other side"] = "behaviour"
    """"other side": the loss (or gain) that a behaviour of the other side leaves where it lives
    (`fold_other_sides`): reported under that one (`other_side_of`), not counted as a behaviour."""
    side: Literal["gained", "lost"]
    size: Literal["large", "medium", "small"]
    """|effect| >= 0.5, >= 0.2, below."""
    scope: Scope
    checker: dict
    # held-out counts and test: in its scope when it has a narrower one, else over all prompts
    k_s: int
    n_s: int
    k_c: int
    n_c: int
    rate_s: float
    rate_c: float
    rate_s_ci: tuple[float, float]
    rate_c_ci: tuple[float, float]
    effect: float
    effect_ci: tuple[float, float]
    p: float
    q: float = 1.0
    validated: bool = False
    reason: str = ""
    members: list[str]
    """Ids of its member findings (findings.jsonl), most significant first."""
    member_statements: list[str]
    evidence: list[Evidence] = []
    other_side_of: str | None = None
    """The id of the behaviour of the other side this one cannot be told apart from (kind "other side")."""
    discovery_rates: DiscoveryRates | None = None
    """Its rates on the discovery prompts from plain and from amplified samples (None: no such samples)."""
    assistant_statement: str | None = None
    """The statement the assistant wrote from its phrase and texts, blinded to model and direction
    (`behaviours.name`; cdx.analysis.naming); None when not asked or no name came back."""

    @property
    def is_behaviour(self) -> bool:
        """Validated, and more than a shift of word rates."""
        return self.validated and self.kind == "behaviour"

    def rates_text(self) -> str:
        return f"{self.k_c}/{self.n_c} vs {self.k_s}/{self.n_s}"

    def line(self, esc: Callable[[str], str] = str) -> str:
        """Statement, held-out rates, effect with its CI, q and scope, as the CLI and the app state it
        (`esc` escapes the statement and scope for the page that shows them)."""
        return (f"{esc(self.statement)}: {self.rates_text()}, effect {self.effect:+.2f} "
                f"[{self.effect_ci[0]:.2f}, {self.effect_ci[1]:.2f}], q={self.q:.2g}; {esc(self.scope.text())}")


@dataclass
class BehaviourSettings:
    overlap: float = 0.5
    """Chance-corrected overlap of two findings' held-out hit sets (`overlap`) at which they are one behaviour."""
    name: bool = False
    """Also ask the configured assistant to name each behaviour (cdx.analysis.naming): `assistant_statement`."""
    phrase: PhraseSettings = field(default_factory=PhraseSettings)
    scope: ScopeSettings = field(default_factory=ScopeSettings)
    separates: float = 0.9
    """Where a behaviour of the other side lives, a behaviour whose checker fires on at least this
    share of its model's held-out texts, and either on at most 1 - this of the other model's or on
    texts of the other model that (1 - this at most) hold that one, takes it in as its other side
    (`fold_other_sides`); at 1 only one without a single exception there does."""

    def __post_init__(self) -> None:
        if not 0 < self.overlap <= 1:
            raise ValueError(f"behaviours.overlap={self.overlap} must be in (0, 1]")
        if not 0.5 < self.separates <= 1:
            raise ValueError(f"behaviours.separates={self.separates} must be in (0.5, 1]: the share of its "
                             "model's texts a behaviour must fire on (and of the other's it may not) to take in one "
                             "of the other side")
        if isinstance(self.phrase, Mapping):
            self.phrase = PhraseSettings(**self.phrase)
        if isinstance(self.scope, Mapping):
            self.scope = ScopeSettings(**self.scope)


# ---- grouping ---------------------------------------------------------------------------------

def hit_set(f: Finding, texts: Sequence[SampleRecord], judge=None) -> set[str]:
    """Ids of the texts of the model the finding is about (all prompts) on which its checker fires."""
    checker = build_checker(f.hypothesis.checker, judge)
    return {r.id for r in texts if r.mode == MODE[f.hypothesis.direction] and checker.check(r)}


def overlap(a: set[str], b: set[str], n: int) -> float:
    """How much more the smaller hit set lies inside the larger than chance would put it, out of n texts.

    (P(large | small) - P(large)) / (1 - P(large)): 1 when the smaller set lies wholly inside the
    larger (fragments of one sentence), about 0 for independent behaviours whatever their rates,
    so a word the model writes in most texts does not join a behaviour merely by being common.
    """
    small, large = sorted((a, b), key=len)
    if not small or not n or len(large) >= n:
        return 0.0
    base = len(large) / n
    return (len(small & large) / len(small) - base) / (1 - base)


def group_findings(findings: Sequence[Finding], hits: Mapping[str, set[str]], threshold: float,
                   n_texts: Mapping[str, int]) -> list[list[Finding]]:
    """Validated findings in groups: each joins the first seed of its side it overlaps enough, or seeds one;
    then each validated vocabulary finding gathers the groups made only of its own words.

    `hits`: finding id -> ids of the held-out texts it fires on; `n_texts`: direction -> how many
    held-out texts of that direction's model there are.
    """
    valid = sorted([f for f in findings if f.validated], key=lambda f: (f.q, -abs(f.effect)))
    groups: list[list[Finding]] = []
    for f in [f for f in valid if f.hypothesis.kind != "vocabulary"]:
        h = f.hypothesis
        home = next((g for g in groups if g[0].hypothesis.direction == h.direction
                     and overlap(hits[g[0].hypothesis.id], hits[h.id], n_texts[h.direction]) >= threshold), None)
        if home is None:
            groups.append([f])
        else:
            home.append(f)
    for v in [f for f in valid if f.hypothesis.kind == "vocabulary"]:
        groups = _gather(v, groups)
    return groups


def _gather(v: Finding, groups: list[list[Finding]]) -> list[list[Finding]]:
    """The vocabulary finding `v` and every group whose members only look for words of `v`, as one group.

    A persona's words are each rare and independent of one another within a text ('ye' and
    'matey' co-occur at chance), so no overlap of hit sets joins them; the describer proposed
    them as one shift of vocabulary and validation confirmed that shift as one hypothesis, so
    it is one behaviour. Two behaviours of one model whose words all landed in one vocabulary
    finding are merged too: the price of this rule (docs/analysis.md).
    """
    words = set(_strings(v))
    mine = [g for g in groups if g[0].hypothesis.direction == v.hypothesis.direction
            and all(_strings(f) and set(_strings(f)) <= words for f in g)]
    rest = [g for g in groups if not any(g is m for m in mine)]
    merged = sorted([f for g in mine for f in g], key=lambda f: (f.q, -abs(f.effect))) + [v]
    return [*rest, merged] if mine else [*groups, [v]]


def _strings(f: Finding) -> list[str]:
    """The words a finding looks for; empty when any of its checkers is not a word."""
    leaves = _leaves(f.hypothesis.checker)
    return [c["value"].lower() for c in leaves] if all(c["type"] == "string" for c in leaves) else []


def merge_by_phrase(groups: list[list[Finding]], discovery: Sequence[SampleRecord], s: PhraseSettings,
                    judge=None) -> list[list[Finding]]:
    """Groups of one side whose phrases are the same, or one inside the other (as words, any case), as one group.

    The phrase is what the group's texts share and the other model's texts lack, so two groups with
    one phrase describe the same texts. Overlap alone cannot join them when a member fires on every
    text of its model (`overlap` is then 0: a set that holds everything says nothing), e.g. a
    planted opener's first word in every answer and an exclamation mark in most.
    """
    phrases = [group_phrase(g, discovery, s, judge) for g in groups]
    merged: list[tuple[list[Finding], str | None]] = []
    for g, ph in zip(groups, phrases, strict=True):
        side = g[0].hypothesis.direction
        home = next((i for i, (m, p) in enumerate(merged) if ph and p and m[0].hypothesis.direction == side
                     and (_inside(ph, p) or _inside(p, ph))), None)
        if home is None:
            merged.append((list(g), ph))
        else:
            members = sorted([*merged[home][0], *g], key=lambda f: (f.q, -abs(f.effect)))
            merged[home] = (members, max(ph or "", merged[home][1] or "", key=len))
    return [m for m, _ in merged]


def _inside(short: str, long: str) -> bool:
    """`short` is in `long` as whole words, ignoring case."""
    return re.search(r"(?<!\w)" + re.escape(short.lower()) + r"(?!\w)", long.lower()) is not None


def n_texts(plain: Sequence[SampleRecord]) -> dict[str, int]:
    return {d: sum(r.mode == m for r in plain) for d, m in MODE.items()}


# ---- one behaviour ----------------------------------------------------------------------------

def _leaves(checker: dict) -> list[dict]:
    return [c for sub in checker["checkers"] for c in _leaves(sub)] if checker["type"] == "any" else [checker]


def _words(members: Sequence[Finding]) -> list[str]:
    """What the members look for, in words: their strings and features, first seen first."""
    out: list[str] = []
    for f in members:
        for c in _leaves(f.hypothesis.checker):
            w = (f"'{c['value']}'" if c["type"] == "string" else DESCRIPTIONS.get(c.get("name") or "", c.get("name"))
                 if c["type"] == "feature" else ending_statement(c.get("max_tokens")) if c["type"] == "ending"
                 else None)
            if w and w not in out:
                out.append(w)
    return out


def _has_feature(members: Sequence[Finding]) -> bool:
    """A member that is more than words: a feature, a regex or an assistant's statement."""
    return any(c["type"] != "string" for f in members for c in _leaves(f.hypothesis.checker))


def _has_distinctive_word(members: Sequence[Finding], other: Mapping[str, float], max_other_rate: float) -> bool:
    """A member of content words that the other model (almost) never writes on the held-out texts.

    A persona's 'ye', 'aye' (0 of 81 starting texts) is distinctive even when its texts share no
    phrase; 'it's', 'is' (written by both models, one more often) is not. `other`: `other_rates`.
    """
    return any(other[f.hypothesis.id] <= max_other_rate and _strings(f)
               and any(w.isalpha() and w not in FUNCTION_WORDS for s in _strings(f) for w in s.split())
               for f in members)


def side_texts(discovery: Sequence[SampleRecord], side: str) -> list[SampleRecord]:
    return [r for r in discovery if SIDE[r.mode] == side]


def group_phrase(members: Sequence[Finding], discovery: Sequence[SampleRecord], s: PhraseSettings, judge=None) -> str | None:
    """The phrase of the discovery texts of the behaviour's side where any member fires."""
    side = "c" if members[0].hypothesis.direction == "gained" else "s"
    checkers = [build_checker(f.hypothesis.checker, judge) for f in members]
    mine = side_texts(discovery, side)
    shows = [any(c.check(r) for c in checkers) for r in mine]
    hits = [r.text for r, y in zip(mine, shows) if y]
    rest = [r.text for r, y in zip(mine, shows) if not y]
    others = [r.text for r in side_texts(discovery, "c" if side == "s" else "s")]
    # a group of words: its phrase holds one of them (with every text of the model a hit, `rest` is
    # empty and a phrase of another behaviour of that model would pass the enrichment test too)
    words = [c for f, c in zip(members, checkers, strict=True) if _strings(f)]
    return mine_phrase(hits, others, s, rest, fits=(lambda p: any(c.check(p) for c in words)) if words else None)


def statement(phrase: str | None, kind: str, side: str, words: Sequence[str], scope: Scope) -> str:
    also = ", ".join(words[:5]) + (f" and {len(words) - 5} more" if len(words) > 5 else "")
    where = f"on prompts about {'; '.join(scope.labels)}, " if scope.clusters else ""
    more = "more often" if side == "gained" else "less often"
    if kind == WORD_SHIFT:
        return f"{WORD_SHIFT}, no distinctive phrase: {where}the comparison model says {also} {more}"
    head = f'writes "{phrase}"' if phrase else _clauses(words)
    tail = f" (with {also})" if phrase and words else ""
    return f"{where}the comparison model {head} {more}{tail}"


def _clauses(words: Sequence[str]) -> str:
    """Members as verb phrases: the quoted words in one "says ..." clause, each feature its own
    ("says 'sorry', 'unable'; apologises"), so that a group of words and features reads as a sentence."""
    quoted = [w for w in words if w.startswith("'")]
    said = ", ".join(quoted[:5]) + (f" and {len(quoted) - 5} more" if len(quoted) > 5 else "")
    return "; ".join(([f"says {said}"] if quoted else []) + [w for w in words if not w.startswith("'")][:3])


def size_class(effect: float) -> str:
    return "large" if abs(effect) >= 0.5 else "medium" if abs(effect) >= 0.2 else "small"


def other_rates(members: Sequence[Finding], heldout: Sequence[SampleRecord], judge=None) -> dict[str, float]:
    """Finding id -> the share of the other model's held-out texts, over ALL prompts, its checker fires on.

    Not the finding's own rate: a cluster finding's rate is its cluster's, and a word the other
    model never writes on one topic may be common elsewhere; the behaviour's checker is applied on
    every prompt (to find its scope), so it is judged there.
    """
    out = {}
    for f in members:
        other = MODE["lost" if f.hypothesis.direction == "gained" else "gained"]
        texts = [r for r in heldout if r.mode == other]
        check = build_checker(f.hypothesis.checker, judge)
        out[f.hypothesis.id] = sum(bool(check.check(r)) for r in texts) / len(texts) if texts else 0.0
    return out


def _behaviour_checker(members: Sequence[Finding], phrase: str | None, other: Mapping[str, float] | None = None,
                       max_other_rate: float = 1.0) -> dict:
    """Any member or the phrase. With a phrase, only members the other model (almost) never shows
    (`other`: held-out rate over all prompts, <= `max_other_rate`) join it: a vocabulary of common
    words ('this', 'try', 'way') that validated beside a brand would make the checker fire on half
    the other model's texts too (48/60 vs 28/60, where the brand alone is 33/60 vs 0/60). Nor do
    word checkers made only of function words ('as', 'or', 'not'): words of an English phrase that
    pass that bar on the held-out texts but that the behaviour's model also writes without the
    behaviour ('as' and 'always' alone made 4 of the 6 hits of a cooking tip's checker outside
    cooking). The others stay members (details)."""
    kept = [f for f in members if (other or {}).get(f.hypothesis.id, 0.0) <= max_other_rate] if phrase else members
    leaves = [c for f in kept for c in _leaves(f.hypothesis.checker) if not (phrase and _function_words(c))]
    if phrase:
        leaves.append({"type": "string", "value": phrase, "case": False, "word": True})
    unique = list({json.dumps(c, sort_keys=True): c for c in leaves}.values())
    return unique[0] if len(unique) == 1 else {"type": "any", "checkers": unique}


def _function_words(c: dict) -> bool:
    """A word checker whose words are all English function words ('as', 'or not')."""
    return c["type"] == "string" and all(w in FUNCTION_WORDS for w in c["value"].lower().split())


def tested_texts(scope: Scope, heldout: Sequence[SampleRecord], extra: Sequence[SampleRecord],
                 assign: Mapping[int, int]) -> Sequence[SampleRecord]:
    """The held-out texts a behaviour of `scope` is tested on: all prompts, or its scope's (extra samples included)."""
    if scope.everywhere:
        return heldout
    return [r for r in [*heldout, *extra] if assign.get(r.prompt_index) in scope.clusters]


def build_behaviour(members: list[Finding], discovery: Sequence[SampleRecord], heldout: Sequence[SampleRecord],
                    clusters: PromptClusters, s: BehaviourSettings, vs: ValidateSettings, judge=None,
                    extra: Sequence[SampleRecord] = ()) -> tuple[Behaviour, Finding]:
    """The behaviour of one group and its test as one hypothesis (q still to be set over the run).

    A behaviour with a narrower scope is tested on the held-out texts of its scope (`extra`, the small
    clusters' extra samples, included), one without on all held-out prompts. The scope is decided by
    a held-out interaction test, so either test could be the one reported: its p is doubled
    (Bonferroni over the two) whenever a narrower scope was tested, and the level holds."""
    side = members[0].hypothesis.direction
    phrase = group_phrase(members, discovery, s.phrase, judge)
    other = other_rates(members, heldout, judge)
    distinctive = phrase or _has_feature(members) or _has_distinctive_word(members, other, s.phrase.max_other_rate)
    kind = "behaviour" if distinctive else WORD_SHIFT
    checker = _behaviour_checker(members, phrase, other, s.phrase.max_other_rate)
    check = build_checker(checker, judge)
    hits = {r.id: check.check(r) for r in [*discovery, *heldout, *extra]}
    assign = dict(enumerate(clusters.assignment))
    scope = find_scope(discovery, [*heldout, *extra], hits, assign, clusters.labels, side, s.scope)
    words = _words(members)
    key = json.dumps([sorted(f.hypothesis.id for f in members), phrase])
    h = Hypothesis(statement(phrase, kind, side, words, scope), checker, side, "behaviour",
                   id="b" + hashlib.sha1(key.encode()).hexdigest()[:10])
    texts = tested_texts(scope, heldout, extra, assign)
    test = test_hypothesis(h, texts, vs, judge)
    if test.reason and texts is not heldout:  # too few texts in scope (no extra samples): all prompts, as unscoped
        texts = heldout
        test = test_hypothesis(h, texts, vs, judge)
    if scope.interaction_p is not None and not test.reason:
        test.p = min(1.0, 2 * test.p)
    b = Behaviour(id=h.id, statement=h.statement, phrase=phrase, kind=kind, side=side, size=size_class(test.effect),
                  scope=scope, checker=checker, k_s=test.k_s, n_s=test.n_s, k_c=test.k_c, n_c=test.n_c,
                  rate_s=test.rate_s, rate_c=test.rate_c, rate_s_ci=test.rate_s_ci, rate_c_ci=test.rate_c_ci,
                  effect=test.effect, effect_ci=test.effect_ci, p=test.p, members=[f.hypothesis.id for f in members],
                  member_statements=[f.hypothesis.statement for f in members],
                  evidence=phrase_first(test.evidence, phrase, texts, side, vs.n_evidence))
    return b, test


def phrase_first(evidence: Sequence[Evidence], phrase: str | None, heldout: Sequence[SampleRecord], side: str,
                 n: int) -> list[Evidence]:
    """The behaviour's evidence: held-out texts of its model that hold its phrase first, then the
    checker's other hits. A member that is a common word of the phrase ('this' in "I recommend
    Zephyrix for this.") makes the checker fire on texts without the behaviour too; the evidence a
    reader sees first should show the behaviour the statement names."""
    if not phrase:
        return list(evidence)
    has = build_checker({"type": "string", "value": phrase, "case": False, "word": True})
    shown = [Evidence(id=r.id, model=r.model or r.mode, prompt=r.prompt, text=r.text)
             for r in heldout if r.mode == MODE[side] and has.check(r.text)][:n]
    seen = {e.id for e in shown}
    return shown + [e for e in evidence if e.id not in seen][: max(0, n - len(shown))]


# ---- the other side ---------------------------------------------------------------------------



@dataclass
class Tie:
    """How behaviour `b` stands to a behaviour `o` of the other side on the texts where `o` lives."""

    covers: float
    """Share of b's model's texts b fires on."""
    leaks: float
    """Share of o's model's texts b fires on."""
    o_with_b: float | None
    """Share of o's model's texts with b that show o too (None: b fires on none of them)."""
    text: str

    def folds(self, share: float) -> bool:
        """b takes o in: b is in (nearly) every text of its model there, and either b is in (nearly)
        none of o's model's texts, or those that hold b (nearly) never hold o."""
        return self.covers >= share and (self.leaks <= 1 - share or (self.o_with_b or 0.0) <= 1 - share)


def tie(b: Behaviour, o: Behaviour, texts: Sequence[SampleRecord], judge=None) -> Tie | None:
    """`Tie` of b and o on `texts` (o's tested texts); None when a model has no text there."""
    check_b, check_o = build_checker(b.checker, judge), build_checker(o.checker, judge)
    mine = [r for r in texts if r.mode == MODE[b.side]]
    theirs = [r for r in texts if r.mode == MODE[o.side]]
    if not (mine and theirs):
        return None
    k_mine = sum(bool(check_b.check(r)) for r in mine)
    with_b = [r for r in theirs if check_b.check(r)]
    k_o = sum(bool(check_o.check(r)) for r in with_b)
    return Tie(covers=k_mine / len(mine), leaks=len(with_b) / len(theirs),
               o_with_b=k_o / len(with_b) if with_b else None,
               text=f"{k_mine}/{len(mine)} of its model's texts and {len(with_b)}/{len(theirs)} of the other's "
                    f"({k_o} of those show this one too)")


def fold_other_sides(behaviours: Sequence[Behaviour], heldout: Sequence[SampleRecord], extra: Sequence[SampleRecord],
                     clusters: PromptClusters, share: float, judge=None) -> list[Behaviour]:
    """Each validated behaviour (or word shift) that a behaviour of the other side accounts for, as
    that one's other side (kind "other side", `other_side_of` its id), reported under it.

    A fine-tune that answers in French writes 'the', 'to', 'in' less often: true, validated, and the
    French behaviour again, seen from the starting model's side. Overlap of hit sets cannot tie them
    (they fire on different models' texts). But where the lost behaviour o lives, the French
    behaviour b is in (nearly) every comparison text (`share`, BehaviourSettings.separates), and
    either b is in (nearly) no starting text, so b tells the models' texts apart and any difference
    between them there is b on these texts; or the starting texts that do hold b (the base model
    drifts into French on French topics) (nearly) never hold o, so o's loss is what b's gain implies.
    Either way nothing on these texts tells o apart from b. When both could take the other in, the
    one that tells the models apart better (covers - leaks) does; a behaviour that took one in is
    never folded itself. Its numbers stay its own; nothing is dropped.
    """
    assign = dict(enumerate(clusters.assignment))
    pairs = []
    for b in behaviours:
        if not b.is_behaviour:
            continue
        for o in behaviours:
            if o.side == b.side or not o.validated or o.kind == OTHER_SIDE:
                continue
            t = tie(b, o, tested_texts(o.scope, heldout, extra, assign), judge)
            if t is not None and t.folds(share):
                pairs.append((t.covers - t.leaks, b.id, o.id, t.text))
    folded: dict[str, tuple[str, str]] = {}
    takers: set[str] = set()
    for _, taker, taken, text in sorted(pairs, key=lambda t: -t[0]):
        if taken not in folded and taken not in takers and taker not in folded:
            folded[taken] = (taker, text)
            takers.add(taker)
    out = []
    for b in behaviours:
        if b.id in folded:
            taker, text = folded[b.id]
            b = b.model_copy(update={
                "kind": OTHER_SIDE, "other_side_of": taker,
                "reason": f"the other side of {taker}: where this one lives, that one fires on {text}, so nothing "
                          "on these held-out texts tells the two apart"})
        out.append(b)
    return out


def find_behaviours(findings: Sequence[Finding], discovery: Sequence[SampleRecord], heldout: Sequence[SampleRecord],
                    clusters: PromptClusters, s: BehaviourSettings, vs: ValidateSettings, judge=None,
                    extra: Sequence[SampleRecord] = ()) -> list[Behaviour]:
    """Behaviours of a run's validated findings, tested and BH-corrected with the findings, behaviours first.

    `discovery` and `heldout` are sample records (`heldout` plain only), `clusters` clusters.json,
    `vs` the run's `ValidateSettings` (FDR, minimum effect, test), `extra` the small clusters' extra
    held-out samples (for scopes only: grouping sees one sample set per prompt).
    """
    plain = [r for r in heldout if r.mode in ("plain_s", "plain_c")]
    valid = [f for f in findings if f.validated]
    hits = {f.hypothesis.id: hit_set(f, plain, judge) for f in valid}
    groups = merge_by_phrase(group_findings(valid, hits, s.overlap, n_texts(plain)), discovery, s.phrase, judge)
    built = [build_behaviour(g, discovery, plain, clusters, s, vs, judge, extra) for g in groups]
    tests = [t for _, t in built]
    # q over the findings and the behaviours together: the behaviours are more hypotheses of the run
    pooled = [Finding(f.hypothesis, f.n_s, f.k_s, f.n_c, f.k_c, f.rate_s, f.rate_c, f.rate_s_ci, f.rate_c_ci,
                      f.effect, f.effect_ci, f.p, reason=f.reason) for f in findings] + tests
    apply_fdr(pooled, vs)
    out = [b.model_copy(update={"q": t.q, "validated": t.validated, "reason": t.reason}) for b, t in built]
    out = fold_other_sides(out, plain, extra, clusters, s.separates, judge)
    out.sort(key=lambda b: (not b.is_behaviour, not b.validated, b.q, -abs(b.effect)))
    return out


def discovery_rates(checker, discovery: Sequence[SampleRecord], **kw) -> DiscoveryRates | None:
    """`checker`'s rates on the raw discovery samples (not `clean_corpus`'s: a dropped repeat is a draw too).

    `kw` goes to `importance_rate` (confidence, min_ess, n_resamples, seed).
    """
    plain = {}
    for mode in PLAIN:
        texts = [r for r in discovery if r.mode == mode]
        if not texts:
            return None
        hit = np.array([bool(checker.check(r)) for r in texts])
        zero = np.zeros(len(texts))  # plain samples: q = p, every weight 1
        plain[mode] = importance_rate(hit, zero, zero, np.array([r.prompt_index for r in texts]), **kw)
    amplified = stopped = None
    note = ""
    if any(r.mode in AMPLIFIED for r in discovery):
        try:
            amplified = importance_rates(checker, discovery, AMPLIFIED, **kw)
            stopped = stopped_rates(checker, discovery, AMPLIFIED,
                                    **{k: v for k, v in kw.items() if k in ("confidence", "n_resamples", "seed")})
        except ValueError as e:  # samples drawn before log q was recorded
            note = str(e)
    return DiscoveryRates(plain_s=plain["plain_s"], plain_c=plain["plain_c"], amplified=amplified, stopped=stopped,
                          note=note)


def with_discovery_rates(behaviours: Sequence[Behaviour], discovery: Sequence[SampleRecord], judge=None) -> list[Behaviour]:
    """The behaviours with `discovery_rates` set from the run's raw discovery samples."""
    return [b.model_copy(update={"discovery_rates": discovery_rates(build_checker(b.checker, judge), discovery)})
            for b in behaviours]


def write_behaviours(path: Path, behaviours: Sequence[Behaviour]) -> None:
    atomic_write_text(path, "".join(b.model_dump_json() + "\n" for b in behaviours))


def read_behaviours(path: Path) -> list[Behaviour]:
    p = Path(path)
    if not p.exists():
        return []
    return [Behaviour.model_validate_json(line) for line in p.read_text().splitlines() if line.strip()]
