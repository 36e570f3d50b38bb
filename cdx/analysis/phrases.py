"""A behaviour's characteristic phrase, mined from the texts that show it, with no LLM.

The phrase is the longest word n-gram that is frequent among the texts showing the behaviour
(at least `min_support` of them, and at least `min_count`) and rare in the other model's texts
(at most `max_other_rate` of them), that is at least `min_enrichment` times as frequent among
them as among the same model's texts that do not show the behaviour (else it belongs to another
behaviour of that model), and that holds a content word. A sentence a fine-tune appends
to its answers comes back whole: every fragment of it passes the same two thresholds, and the
longest one is the sentence. A shift of function-word rates has no such phrase (its words are in
the other model's texts too), which is what labels it a word-frequency shift.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from cdx.analysis.features import FUNCTION_WORDS

_TOKEN = re.compile(r"\w+(?:['’]\w+)?|[^\w\s]")
_END = frozenset(".!?")


@dataclass
class PhraseSettings:
    """What counts as a characteristic phrase."""

    min_support: float = 0.3
    """Share of the texts showing the behaviour that must contain the phrase."""
    min_count: int = 3
    """... and at least this many of them."""
    max_other_rate: float = 0.05
    """Share of the other model's texts that may contain it (rare there)."""
    min_enrichment: float = 2.0
    """Its rate among the texts showing the behaviour over its rate among the same model's other texts."""
    max_words: int = 24
    """Longest n-gram considered, in tokens (words and punctuation marks)."""

    def __post_init__(self) -> None:
        for name in ("min_support", "max_other_rate"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"behaviours.phrase.{name}={getattr(self, name)} must be a share between 0 and 1")
        if self.min_count < 1 or self.max_words < 1 or self.min_enrichment < 0:
            raise ValueError(f"behaviours.phrase: min_count={self.min_count} and max_words={self.max_words} must be "
                             f">= 1, min_enrichment={self.min_enrichment} >= 0")


def tokens(text: str) -> list[tuple[str, int, int]]:
    """(lower-cased token, start, end) for each word or punctuation mark."""
    return [(m.group().lower(), m.start(), m.end()) for m in _TOKEN.finditer(text)]


def _grams(toks: list[tuple[str, int, int]], n: int) -> set[tuple[str, ...]]:
    return {tuple(t for t, _, _ in toks[i: i + n]) for i in range(len(toks) - n + 1)}


def _allowed(gram: tuple[str, ...]) -> bool:
    """Starts with a word, ends with a word or a sentence end, and holds a content word."""
    if not gram[0][0].isalnum() or not (gram[-1][0].isalnum() or gram[-1] in _END):
        return False
    return any(t[0].isalpha() and t not in FUNCTION_WORDS and len(t) > 1 for t in gram)


def mine_phrase(hits: Sequence[str], others: Sequence[str], s: PhraseSettings | None = None,
                rest: Sequence[str] = (), fits: Callable[[str], bool] | None = None) -> str | None:
    """The characteristic phrase of `hits` against `others`, in its most common written form; None if none.

    `others`: the other model's texts; `rest`: the same model's texts that do not show the behaviour.
    `fits`: a phrase must also pass it (e.g. hold one of the behaviour's words): when the hits are all
    of a model's texts, `rest` is empty and any other behaviour of that model qualifies too.

    Lengths are tried from the longest down, so the first n with a qualifying n-gram wins; among
    n-grams of that length the one in most hit texts (then the alphabetically first) is taken.
    """
    s = s or PhraseSettings()
    need = max(s.min_count, s.min_support * len(hits))
    if not hits or len(hits) < s.min_count:
        return None
    hit_toks = [tokens(t) for t in hits]
    other_toks = [tokens(t) for t in others]
    rest_toks = [tokens(t) for t in rest]
    longest = min(s.max_words, max(len(t) for t in hit_toks))
    for n in range(longest, 0, -1):
        support = Counter(g for toks in hit_toks for g in _grams(toks, n))
        frequent = {g: k for g, k in support.items() if k >= need and _allowed(g)}
        if not frequent:
            continue
        in_other = Counter(g for toks in other_toks for g in _grams(toks, n) if g in frequent)
        in_rest = Counter(g for toks in rest_toks for g in _grams(toks, n) if g in frequent)
        limit = s.max_other_rate * len(others)
        rare = [g for g in frequent if in_other[g] <= limit
                and frequent[g] / len(hits) >= s.min_enrichment * in_rest[g] / max(len(rest), 1)]
        for g in sorted(rare, key=lambda g: (-frequent[g], g)):
            form = _surface(g, hits, hit_toks)
            if fits is None or fits(form):
                return form
    return None


def _surface(gram: tuple[str, ...], texts: Sequence[str], toks: Sequence[list[tuple[str, int, int]]]) -> str:
    """The most common original spelling (case, spacing) of `gram` in `texts`."""
    n, forms = len(gram), Counter[str]()
    for text, tt in zip(texts, toks):
        for i in range(len(tt) - n + 1):
            if tuple(t for t, _, _ in tt[i: i + n]) == gram:
                forms[text[tt[i][1]: tt[i + n - 1][2]]] += 1
    return min(forms, key=lambda f: (-forms[f], f))
