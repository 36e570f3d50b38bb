"""A few lines saying, in words, what the comparison model does differently, from texts already made.

For the end of a decode run (no extra generation): every sampled token carries both models'
log-probabilities, so the words the comparison model prefers are those with the largest mean
log p_c - log p_s where they occur. It is a description of these texts, not a validated finding
(that is task=analyze); the lines say so.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
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
    return [(w, d) for w, d, _, _ in word_spans(tokens, deltas)]


def word_spans(tokens: Sequence[str], deltas: Sequence[float]) -> list[tuple[str, float, int, int]]:
    """`words_of` with each word's tokens: (word, log-ratio, first token, one past its last token)."""
    out, word, total, first = [], "", 0.0, 0
    for i, (tok, d) in enumerate(zip(tokens, deltas)):
        starts = not tok[:1].isalpha() or not word
        if starts and word:
            out.append((word, total, first, i))
            word, total = "", 0.0
        letters = tok.strip()
        if letters.isalpha():
            first = i if not word else first
            word, total = word + letters.lower(), total + d
        elif word:
            out.append((word, total, first, i))
            word, total = "", 0.0
    if word:
        out.append((word, total, first, len(tokens)))
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


def characteristic_phrase(records: Sequence[dict | SampleRecord], min_texts: int = 3, min_share: float = 0.25,
                          max_words: int = 4, min_delta: float = 1.0,
                          favours: str = "comparison") -> tuple[str, int, int, float] | None:
    """The run of 1 to `max_words` words that these texts hold and the `favours` model favours most:
    (phrase, texts holding it, texts, its mean log p_c - log p_s per occurrence, summed over its
    words, negative when `favours` is "starting"); None when no run of words is in at least
    `min_texts` and `min_share` of the texts with a mean log-ratio of at least `min_delta` that way.

    Words as `words_of` joins them; the phrase is shown as the texts spell it most often (case and
    punctuation between its words kept: "matey, ye"). Of equal log-ratios the shorter run wins, so
    a neutral word is not appended to a favoured one.
    """
    where: dict[str, set[int]] = defaultdict(set)
    deltas: dict[str, list[float]] = defaultdict(list)
    spelt: dict[str, Counter] = defaultdict(Counter)
    for t, r in enumerate(records):
        toks, ls, lc = _token_rows(r)
        words = word_spans(toks, [c - s for s, c in zip(ls, lc)])
        for i in range(len(words)):
            for n in range(1, max_words + 1):
                if i + n > len(words):
                    break
                gram = " ".join(w for w, _, _, _ in words[i:i + n])
                where[gram].add(t)
                deltas[gram].append(sum(d for _, d, _, _ in words[i:i + n]))
                spelt[gram]["".join(toks[words[i][2]:words[i + n - 1][3]]).strip()] += 1
    need = max(min_texts, min_share * len(records))
    rows = [(g, len(ts), float(np.mean(deltas[g]))) for g, ts in where.items() if len(ts) >= need]
    sign = -1.0 if favours == "starting" else 1.0
    rows = [r for r in rows if sign * r[2] >= min_delta]
    if not rows:
        return None
    g, k, d = max(rows, key=lambda r: (round(sign * r[2], 9), -len(r[0].split()), r[1]))
    return spelt[g].most_common(1)[0][0], k, len(records), d


def phrase_line(found: tuple[str, int, int, float], comparison: str) -> str:
    """One sentence: the phrase, in how many of these texts, how much likelier under the model that favours it."""
    g, k, n, d = found
    times = f"{math.exp(abs(d)):.0f}x" if abs(d) < math.log(1000) else "over 1000x"
    who, other = (comparison, "the starting model") if d > 0 else ("the starting model", comparison)
    return (f'{who} writes "{g}": in {k} of these {n} texts, each time {times} as likely under it as '
            f"under {other} (log p_c - log p_s {d:+.1f})")


def quick_summary(records: Sequence[dict], comparison: str = "the comparison model", top: int = 8,
                  min_count: int = 2, min_delta: float = 1.0, shows: str = "comparison") -> list[str]:
    """Plain-language lines: the phrase the side these texts show (`shows`, the decoding rule's:
    "starting" for upstream's p_s - p_c) favours most (`characteristic_phrase`), then the words the
    comparison model favours and avoids in them."""
    rows = word_deltas(records, min_count)
    if not rows:
        return ["No words occur often enough in these texts to say what changed."]
    up = [r for r in rows if r[1] >= min_delta][:top]
    down = [r for r in rows[::-1] if r[1] <= -min_delta][:top]
    fmt = lambda rs: ", ".join(f"'{w}' ({d:+.1f}, {n}x)" for w, d, n in rs)  # noqa: E731
    found = characteristic_phrase(records, min_delta=min_delta, favours="starting" if shows == "starting" else "comparison")
    lines = [phrase_line(found, comparison)] if found else []
    if up:
        lines.append(f"{comparison} favours: {fmt(up)}")
    if down:
        lines.append(f"{comparison} avoids: {fmt(down)}")
    if not lines:
        lines.append(f"no word in these texts is more than {min_delta} nats more or less likely under {comparison}")
    lines.append("(mean log p_c - log p_s per occurrence in these texts: a description of them, not a rate of "
                 "either model; task=analyze tests such differences on fresh samples of both)")
    return lines
