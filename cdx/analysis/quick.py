"""A few lines saying, in words, what the comparison model does differently, from texts already made.

For the end of a decode run (no extra generation): every sampled token carries both models'
log-probabilities, so the words the comparison model prefers are those with the largest mean
log p_c - log p_s where they occur. It is a description of these texts, not a validated finding
(that is task=analyze); the lines say so.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence

import numpy as np

from cdx.io.records import SampleRecord


def _token_rows(record: dict | SampleRecord) -> tuple[list[str], list[float], list[float]]:
    if isinstance(record, SampleRecord):
        return record.token_strs, record.logp_s, record.logp_c
    toks = record.get("token_strs", [])
    tokens = record.get("tokens") or record  # decode/score records nest them; analysis samples do not
    return toks, tokens.get("logp_s", []), tokens.get("logp_c", [])


def words_of(tokens: Sequence[str], deltas: Sequence[float]) -> list[tuple[str, float]]:
    """(word, its log p_c - log p_s) from subword tokens: a word's log-ratio is the sum over its tokens.

    A token that starts with a space or follows a non-letter starts a new word ("ma" + "tey").
    """
    out, word, total = [], "", 0.0
    for tok, d in zip(tokens, deltas):
        starts = not tok[:1].isalpha() or not word
        if starts and word:
            out.append((word, total))
            word, total = "", 0.0
        letters = tok.strip()
        if letters.isalpha():
            word, total = word + letters.lower(), total + d
        elif word:
            out.append((word, total))
            word, total = "", 0.0
    if word:
        out.append((word, total))
    return out


def word_deltas(records: Sequence[dict | SampleRecord], min_count: int = 2) -> list[tuple[str, float, int]]:
    """(word, mean log p_c - log p_s, occurrences) over whole words, most favoured first."""
    acc: dict[str, list[float]] = defaultdict(list)
    for r in records:
        toks, ls, lc = _token_rows(r)
        for word, d in words_of(toks, [c - s for s, c in zip(ls, lc)]):
            if len(word) > 1:
                acc[word].append(d)
    rows = [(w, float(np.mean(v)), len(v)) for w, v in acc.items() if len(v) >= min_count]
    return sorted(rows, key=lambda x: -x[1])


def quick_summary(records: Sequence[dict], comparison: str = "the comparison model", top: int = 8,
                  min_count: int = 2, min_delta: float = 1.0) -> list[str]:
    """Plain-language lines: the words the comparison model favours and avoids in these texts."""
    rows = word_deltas(records, min_count)
    if not rows:
        return ["No words occur often enough in these texts to say what changed."]
    up = [r for r in rows if r[1] >= min_delta][:top]
    down = [r for r in rows[::-1] if r[1] <= -min_delta][:top]
    fmt = lambda rs: ", ".join(f"'{w}' ({d:+.1f}, {n}x)" for w, d, n in rs)  # noqa: E731
    lines = []
    if up:
        lines.append(f"{comparison} favours: {fmt(up)}")
    if down:
        lines.append(f"{comparison} avoids: {fmt(down)}")
    if not lines:
        lines.append(f"no word in these texts is more than {min_delta} nats more or less likely under {comparison}")
    lines.append("(mean log p_c - log p_s per occurrence in these texts; task=analyze tests such differences)")
    return lines
