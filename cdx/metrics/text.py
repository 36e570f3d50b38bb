"""Per-text metrics from per-token values over the scored span, and a degeneracy check of a text."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence

from cdx.metrics.divergence import METRICS

CONTRAST_KEYS = {"starting": "contrast_s", "comparison": "contrast_c"}
"""The coherence-aware ranking key of each side (see `text_metrics`)."""


def text_metrics(tokens: Mapping[str, Sequence[float]]) -> dict[str, float]:
    """Mean and max of each divergence over the span, each model's perplexity, and contrast scores.

    `tokens` holds per-token lists of equal length: the metrics in `METRICS` plus `logp_s`,
    `logp_c` (log-probability of the actual token under each model). Padding is never in them.

    `llr_cs_mean` = mean(log p_c - log p_s): how much more likely the comparison model is to write
    this text than the starting model (log of ppl_s / ppl_c). `contrast_c` = mean log p_c +
    llr_cs_mean (= log ppl_s - 2 log ppl_c) adds the comparison model's own fluency, so a text
    ranks high when the comparison model writes it fluently AND the starting model would not:
    byte soup, where both models are lost, has a low mean log p_c and sinks, while a divergence
    such as KL ranks it first (both next-token distributions are flat and far apart). It is the
    text's mean score under contrastive decoding with alpha = 1, (1 + a) log p_c - a log p_s.
    `contrast_s` is the same with the sides swapped.
    """
    n = len(tokens["kl_sc"])
    if n == 0:
        return {"n_tokens": 0}
    out: dict[str, float] = {"n_tokens": n}
    for name in METRICS:
        vals = tokens[name]
        out[f"{name}_mean"] = sum(vals) / n
        if name != "top1_agree":
            out[f"{name}_max"] = max(vals)
    mean_s, mean_c = sum(tokens["logp_s"]) / n, sum(tokens["logp_c"]) / n
    out["ppl_s"] = math.exp(-mean_s)
    out["ppl_c"] = math.exp(-mean_c)
    out.update(contrast_scores(mean_s, mean_c))
    return out


def contrast_scores(mean_logp_s: float, mean_logp_c: float) -> dict[str, float]:
    """`llr_cs_mean`, `contrast_c`, `contrast_s` from each model's mean token log-probability."""
    llr = mean_logp_c - mean_logp_s
    return {"llr_cs_mean": llr, "contrast_c": mean_logp_c + llr, "contrast_s": mean_logp_s - llr}


def text_value(record: Mapping, key: str) -> float:
    """A record's per-text metric `key`; contrast scores of records written before they existed
    are rebuilt from the stored perplexities (exact: they are functions of the two mean log-probs)."""
    m = record.get("metrics", {})
    if key in m:
        return float(m[key])
    if key in ("llr_cs_mean", "contrast_c", "contrast_s") and "ppl_s" in m and "ppl_c" in m:
        return contrast_scores(-math.log(m["ppl_s"]), -math.log(m["ppl_c"]))[key]
    return float("-inf")


_WORD = re.compile(r"(?:[A-Za-z][a-z]{0,14}|[A-Z]{1,5}|\d{1,4}(?:[.,:]\d+)?)(?:['\u2019-][A-Za-z]{1,14})*'?s?")
_STRIP = ".,;:!?'\"()[]*#_-\u2019\u2018\u201c\u201d\u2013\u2014"
_JUNK = re.compile("[\ufffd\u200b-\u200d\ufe0f]|[\U0001F000-\U0001FAFF\u2190-\u2BFF]")


def is_degenerate(text: str, window: int = 8, max_bad: int = 2, min_distinct: float = 0.5) -> bool:
    """True when a text is not readable prose: the yardstick of the README's before/after figures.

    A text is degenerate if it is empty, holds a replacement character (broken bytes), has a run
    of `window` consecutive whitespace-separated chunks with `max_bad` or more that are not plain
    words, or loops. A plain word is letters (one capital at most at the start, or a short
    acronym), a number, or an apostrophe/hyphen compound of those, once surrounding punctuation
    and markdown are stripped: glued or mixed-case junk ("Spain.aringenseadAD", "SmolLIT") and
    emoji/symbol debris fail, and debris glued to letters (an emoji, a zero-width joiner, "http")
    counts twice. Windows, not the whole text, because sampling often turns to soup half-way
    through. It loops when under `min_distinct` of its word trigrams are distinct (one
    phrase over and over). A heuristic set by hand on samples of the embedded pair, not a
    language model's judgement.
    """
    chunks = text.split()
    if not chunks or "\ufffd" in text:
        return True
    bad = [_badness(c) for c in chunks]
    if any(sum(bad[i:i + window]) >= max_bad for i in range(max(1, len(bad) - window + 1))):
        return True
    words = [c.strip(_STRIP).lower() for c in chunks]
    trigrams = list(zip(words, words[1:], words[2:]))
    return len(trigrams) >= 10 and len(set(trigrams)) < min_distinct * len(trigrams)


def _badness(chunk: str) -> int:
    """0 for a plain word, 1 for a non-word chunk, 2 for symbol debris glued to letters."""
    if _JUNK.search(chunk):
        return 2 if re.search(r"[^\W\d_]", chunk) else 1
    return 0 if _WORD.fullmatch(chunk.strip(_STRIP)) else 1
