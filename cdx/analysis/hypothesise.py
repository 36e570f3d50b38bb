"""Stage 3: turn the description into testable hypotheses, each with a checker.

Templated hypotheses come from the describer: distinctive terms (grouped into themes by their
embeddings, so 'arr', 'matey' and 'ahoy' become one hypothesis, not three near-duplicates),
feature rates, and feature rates within one prompt cluster. With an assistant, natural-language
hypotheses written from contrasting discovery examples are added, checked by the assistant as
a blinded judge. Nothing here decides what is true: validation does, on other prompts.
"""

from __future__ import annotations

import json
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from pydantic import BaseModel, Field, ValidationError

from cdx.analysis.checkers import ending_statement
from cdx.analysis.describe import SIDE, artefact
from cdx.analysis.features import DESCRIPTIONS
from cdx.analysis.types import Hypothesis
from cdx.assistant.replies import parse_prompts
from cdx.io.records import Description, SampleRecord, TermRow

T = TypeVar("T", bound=TermRow)

log = logging.getLogger(__name__)


@dataclass
class HypothesiseSettings:
    min_z: float = 1.5
    """Terms need |z| of the log-odds ratio at least this large."""
    max_terms: int = 12
    """Most distinctive terms per direction considered."""
    theme_similarity: float = 0.45
    """Terms whose embeddings have at least this cosine similarity form one theme hypothesis."""
    min_feature_diff: float = 0.1
    """|rate_c - rate_s| on discovery texts for a feature hypothesis."""
    min_cluster_diff: float = 0.3
    """|rate_c - rate_s| within a cluster, and this much above the global difference."""
    min_cluster_term_diff: float = 0.3
    """A term distinctive within one prompt cluster needs |rate_c - rate_s| there at least this large,
    and this much above its difference over all prompts (so a global word is not tested again per topic)."""
    cluster_max_p: float = 0.005
    """... and a one-sided Fisher p within its cluster's discovery texts at most this (a candidate
    only: validation decides; 6 of 14 texts against 0 passes, 5 against 0 does not)."""
    max_hypotheses: int = 30
    use_assistant: bool = False
    """Also ask the configured assistant for natural-language hypotheses (checked by it as judge)."""
    assistant_examples: int = 6
    assistant_max_hypotheses: int = 5


# ---- templated ------------------------------------------------------------------------------

_TERM_KEYS = ("term", "z", "k_c", "k_s", "n_c", "n_s")
"""What a term hypothesis keeps of its terms' discovery numbers (hypotheses.jsonl)."""


def _pick(row: TermRow, keys: tuple[str, ...]) -> dict:
    """Some fields of a term row, in the order given (the order of the discovery record on disk)."""
    return {k: getattr(row, k) for k in keys}


def term_hypotheses(description: Description, s: HypothesiseSettings, embedder=None) -> list[Hypothesis]:
    out = []
    for direction, sign in (("gained", 1), ("lost", -1)):
        rows = [r for r in description.terms if sign * r.z >= s.min_z][: s.max_terms]
        rows = _drop_contained(rows)
        for group in _themes([r.term for r in rows], embedder, s.theme_similarity):
            members = [r for r in rows if r.term in group]
            words = ", ".join(f"'{r.term}'" for r in members[:5])
            more = "far more often" if direction == "gained" else "far less often"
            checker = ({"type": "string", "value": members[0].term, "case": False, "word": True}
                       if len(members) == 1 else
                       {"type": "any", "checkers": [{"type": "string", "value": r.term, "case": False, "word": True}
                                                    for r in members]})
            disc = {"terms": [_pick(r, _TERM_KEYS) for r in members]}
            out.append(Hypothesis(f"the comparison model says {words} {more} than the starting model",
                                  checker, direction, "ngram", discovery=disc))
        if len(rows) > 1:
            out.append(vocabulary_hypothesis(rows, direction))
    return out


def vocabulary_hypothesis(rows: list[TermRow], direction: str) -> Hypothesis:
    """All distinctive terms of one direction as one shift of vocabulary (e.g. a persona's words).

    Single words of a style are each rare in a short text, and word embeddings group them poorly
    ('ye' and 'ship' are not near each other), so their union is also tested: it has the power
    the single words lack.
    """
    terms = [r.term for r in rows]
    shown = ", ".join(f"'{t}'" for t in terms[:6]) + (f" and {len(terms) - 6} more" if len(terms) > 6 else "")
    more = "far more often" if direction == "gained" else "far less often"
    checker = {"type": "any", "checkers": [{"type": "string", "value": t, "case": False, "word": True} for t in terms]}
    disc = {"terms": [_pick(r, _TERM_KEYS) for r in rows]}
    return Hypothesis(f"the comparison model uses the words {shown} (any of them) {more} than the starting model",
                      checker, direction, "vocabulary", discovery=disc)


def _drop_contained(rows: list[T]) -> list[T]:
    """A bigram whose word is already a candidate adds nothing ('ye' and 'ye be')."""
    words = {r.term for r in rows if " " not in r.term}
    return [r for r in rows if " " not in r.term or not any(w in words for w in r.term.split())]


def _themes(words: list[str], embedder, threshold: float) -> list[list[str]]:
    """Group words by average-linkage clustering of their embeddings (cosine distance)."""
    if len(words) <= 1 or embedder is None:
        return [[w] for w in words]
    from sklearn.cluster import AgglomerativeClustering

    emb = embedder.embed(words)  # (W, D), unit rows
    labels = AgglomerativeClustering(n_clusters=None, metric="cosine", linkage="average",
                                     distance_threshold=1 - threshold).fit_predict(emb)
    groups: dict[int, list[str]] = {}
    for w, lab in zip(words, labels):
        groups.setdefault(int(lab), []).append(w)
    return list(groups.values())


def feature_hypotheses(description: Description, s: HypothesiseSettings) -> list[Hypothesis]:
    out = []
    for name, sides in description.side_features.items():
        (k_c, n_c), (k_s, n_s) = sides["c"], sides["s"]
        if not n_c or not n_s or name not in DESCRIPTIONS:  # a feature since unregistered: no checker
            continue
        diff = k_c / n_c - k_s / n_s
        if abs(diff) < s.min_feature_diff or max(k_c, k_s) < 3:
            continue
        direction = "gained" if diff > 0 else "lost"
        more = "more often" if diff > 0 else "less often"
        out.append(Hypothesis(f"the comparison model {DESCRIPTIONS[name]} {more} than the starting model",
                              {"type": "feature", "name": name}, direction, "feature",
                              discovery={"k_c": k_c, "n_c": n_c, "k_s": k_s, "n_s": n_s}))
    return out


def ending_hypotheses(description: Description, s: HypothesiseSettings) -> list[Hypothesis]:
    """Answers that end by themselves more or less often (`description.endings`, when described), by
    the feature hypotheses' rule: a difference of at least `min_feature_diff`, 3 texts at least."""
    out = []
    for row in description.endings or []:
        if not row.n_c or not row.n_s:
            continue
        diff = row.k_c / row.n_c - row.k_s / row.n_s
        if abs(diff) < s.min_feature_diff or max(row.k_c, row.k_s) < 3:
            continue
        direction, more = ("gained", "more often") if diff > 0 else ("lost", "less often")
        out.append(Hypothesis(f"the comparison model {ending_statement(row.max_tokens)} {more} than the starting model",
                              {"type": "ending", "max_tokens": row.max_tokens}, direction, "feature",
                              discovery={"k_c": row.k_c, "n_c": row.n_c, "k_s": row.k_s, "n_s": row.n_s}))
    return out


def cluster_hypotheses(description: Description, s: HypothesiseSettings) -> list[Hypothesis]:
    """A feature whose difference within one prompt cluster is large and well above the global one."""
    out: list[Hypothesis] = []
    clusters = description.clusters or []
    if len(clusters) < 2:
        return out
    for name, sides in description.side_features.items():
        (k_c, n_c), (k_s, n_s) = sides["c"], sides["s"]
        if name not in DESCRIPTIONS:
            continue
        overall = (k_c / n_c - k_s / n_s) if n_c and n_s else 0.0
        for cl in clusters:
            rc, rs = cl.features[name]["c"], cl.features[name]["s"]
            if not rc.n or not rs.n:
                continue
            diff = rc.rate - rs.rate
            if abs(diff) < s.min_cluster_diff or abs(diff - overall) < 0.2 or max(rc.k, rs.k) < 2:
                continue
            direction = "gained" if diff > 0 else "lost"
            more = "more often" if diff > 0 else "less often"
            out.append(Hypothesis(
                f"on prompts about {cl.label}, the comparison model {DESCRIPTIONS[name]} {more}",
                {"type": "feature", "name": name}, direction, "cluster_feature", cluster=cl.cluster,
                cluster_label=cl.label, discovery={"cluster": {"c": rc.model_dump(), "s": rs.model_dump()},
                                                   "overall_diff": overall}))
    return out


def cluster_term_hypotheses(description: Description, s: HypothesiseSettings) -> list[Hypothesis]:
    """Words that mark one prompt cluster: e.g. a refusal naming its topic, or an edited fact."""
    out = []
    for cl in description.cluster_terms or []:
        rows = [r for r in cl.terms if r.p <= s.cluster_max_p and abs(r.diff) >= s.min_cluster_term_diff
                and abs(r.diff - r.global_diff) >= s.min_cluster_term_diff and max(r.k_c, r.k_s) >= 3]
        for r in _drop_contained(rows):
            direction = "gained" if r.diff > 0 else "lost"
            more = "far more often" if direction == "gained" else "far less often"
            out.append(Hypothesis(
                f"on prompts about {cl.label}, the comparison model says '{r.term}' {more}",
                {"type": "string", "value": r.term, "case": False, "word": True}, direction, "cluster_ngram",
                cluster=cl.cluster, cluster_label=cl.label,
                discovery={"terms": [_pick(r, ("term", "z", "p", "k_c", "k_s", "n_c", "n_s", "diff", "global_diff"))]}))
    return out


# ---- assistant-written ----------------------------------------------------------------------

class AssistantHypothesis(BaseModel):
    """What the assistant is asked to return, one object per hypothesis."""

    statement: str = Field(min_length=8, max_length=300)
    direction: Literal["gained", "lost"] = "gained"
    keywords: list[str] = Field(default_factory=list)


_SYSTEM = ("You compare two anonymous text generators, A and B. You state concrete, checkable differences in "
           "behaviour (style, content, refusals, format, language), never guesses about why.")


def assistant_messages(samples: Sequence[SampleRecord], s: HypothesiseSettings, seed: int) -> list[dict]:
    """A blinded contrast: B's texts (comparison side) against A's (starting side), shuffled."""
    rng = random.Random(seed)
    side = {"c": [r for r in samples if SIDE[r.mode] == "c" and not artefact(r.text)],
            "s": [r for r in samples if SIDE[r.mode] == "s" and not artefact(r.text)]}
    show = {k: rng.sample(v, min(len(v), s.assistant_examples)) for k, v in side.items()}
    fmt = lambda rows: "\n".join(f"- [{r.prompt[:80]}] {r.text[:300]}" for r in rows)  # noqa: E731
    user = (f"Texts from generator A:\n{fmt(show['s'])}\n\nTexts from generator B:\n{fmt(show['c'])}\n\n"
            f"List up to {s.assistant_max_hypotheses} ways B behaves differently from A, as a JSON list of objects "
            '{"statement": "B ...", "direction": "gained" (B does it more) or "lost" (B does it less), '
            '"keywords": [words that mark the behaviour, or empty]}.')
    return [{"role": "system", "content": _SYSTEM}, {"role": "user", "content": user}]


def parse_assistant_hypotheses(reply: str) -> list[AssistantHypothesis]:
    """Objects that match the schema; plain lines (via the assistant's robust reply parser) as statements."""
    out = []
    for body in _json_candidates(reply):
        for item in body if isinstance(body, list) else [body]:
            try:
                out.append(AssistantHypothesis.model_validate(item))
            except ValidationError:
                continue
        if out:
            return out
    for line in parse_prompts(reply):
        try:
            out.append(AssistantHypothesis(statement=line))
        except ValidationError:
            continue
    return out


def _json_candidates(reply: str) -> list:
    dec = json.JSONDecoder()
    found: list = []
    for i, ch in enumerate(reply):
        if ch in "[{" and len(found) < 3:
            try:
                obj, _ = dec.raw_decode(reply[i:])
            except ValueError:
                continue
            found.append(obj)
            if isinstance(obj, list):
                break
    return found


def assistant_hypotheses(assistant, samples: Sequence[SampleRecord], s: HypothesiseSettings, seed: int) -> list[Hypothesis]:
    reply = assistant.complete(assistant_messages(samples, s, seed), temperature=0.0, max_tokens=600, seed=seed)
    out = []
    for a in parse_assistant_hypotheses(reply)[: s.assistant_max_hypotheses]:
        statement = a.statement.replace("B ", "the comparison model ", 1) if a.statement.startswith("B ") else a.statement
        keywords = [k for k in a.keywords if isinstance(k, str) and k.strip()]
        checker = ({"type": "any", "checkers": [{"type": "string", "value": k.strip(), "case": False, "word": True}
                                                for k in keywords]}
                   if keywords else {"type": "judge", "question": f"Does this text show the following: {a.statement}?"})
        out.append(Hypothesis(statement, checker, a.direction, "assistant", discovery={"reply": reply[:2000]}))
    return out


# ---- all together ---------------------------------------------------------------------------

def hypothesise(description: Description, settings: HypothesiseSettings | None = None, embedder=None,
                assistant=None, samples: Sequence[SampleRecord] = (), seed: int = 0) -> list[Hypothesis]:
    """Candidates from every source, without duplicate checkers, at most `max_hypotheses`."""
    s = settings or HypothesiseSettings()
    hyps = term_hypotheses(description, s, embedder) + feature_hypotheses(description, s)
    hyps += ending_hypotheses(description, s)
    hyps += cluster_hypotheses(description, s) + cluster_term_hypotheses(description, s)
    if s.use_assistant and assistant is not None:
        try:
            hyps += assistant_hypotheses(assistant, samples, s, seed)
        except Exception as e:  # noqa: BLE001 - an assistant failure must not lose the templated ones
            log.warning("assistant hypotheses skipped: %s", e)
    hyps = merge_near_duplicates(hyps, embedder)
    unique = list({h.id: h for h in hyps}.values())
    return unique[: s.max_hypotheses]


def merge_near_duplicates(hyps: list[Hypothesis], embedder, threshold: float = 0.9) -> list[Hypothesis]:
    """Drop assistant statements whose embedding is within `threshold` cosine of an earlier one."""
    free = [h for h in hyps if h.kind == "assistant"]
    if embedder is None or len(free) < 2:
        return hyps
    emb = embedder.embed([h.statement for h in free])  # (H, D), unit rows
    drop = set()
    for i in range(len(free)):
        if i in drop:
            continue
        for j in range(i + 1, len(free)):
            if float(emb[i] @ emb[j]) >= threshold and free[i].direction == free[j].direction:
                drop.add(j)
    gone = {id(free[j]) for j in drop}
    return [h for h in hyps if id(h) not in gone]
