"""Run summary in the style of llama.cpp's KL-divergence report, with honest intervals.

Token-level statistics pool every scored token of every text: mean, q90/q95/q99/max, top-1
agreement, and each model's perplexity over all tokens with their ratio. Tokens of one text (and
texts of one prompt) are not independent, so the 95% interval of a pooled token mean is a cluster
bootstrap over prompts: whole prompts, with all their texts and tokens, are resampled. Text-level
statistics use one value per text (the mean over its span) with a Student-t interval.

The summary also says which direction its texts show (`direction`): given by the decoding rule
when the caller passes it, otherwise measured (the side whose model finds the texts more likely),
and ranks by `sort_key`, where `auto` picks that side's coherence-aware contrast score
(`contrast_c` or `contrast_s`, see `cdx.metrics.text.text_metrics`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from scipy import stats

from cdx.io.records import DecodeSummary, Direction, TextStats, TokenStats, TopText
from cdx.metrics.text import CONTRAST_KEYS, text_value

DIVERGENCES = ("kl_sc", "kl_cs", "js")
AUTO = "auto"
"""`sort_key` that ranks by the contrast score of the side the texts show."""
N_BOOT = 2000
CI_METHOD = f"cluster bootstrap over prompts ({N_BOOT} resamples, percentile)"
_PPL_NOTE = ("ppl_ratio_c_over_s = perplexity of these texts under the comparison model / under the starting "
             "model; below 1 the comparison model finds them more likely. It depends on who wrote the texts: {}")


def cluster_bootstrap_ci(sums: np.ndarray, counts: np.ndarray, n_boot: int = N_BOOT, seed: int = 0,
                         level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of a pooled mean sum(sums)/sum(counts) when whole clusters are resampled.

    sums, counts: (P,) per-cluster total of the values and number of values. Draws P clusters
    with replacement `n_boot` times (multinomial counts, (n_boot, P)), so correlation inside a
    cluster (tokens of one text, texts of one prompt) widens the interval as it should.
    """
    p = sums.size
    if p < 2:
        return float("nan"), float("nan")
    rng = np.random.default_rng(seed)
    w = rng.multinomial(p, np.full(p, 1.0 / p), size=n_boot).astype(np.float64)  # (n_boot, P)
    means = (w @ sums) / (w @ counts)
    lo, hi = np.quantile(means, [(1 - level) / 2, (1 + level) / 2])
    return float(lo), float(hi)


def _dist(values: np.ndarray, clusters: np.ndarray) -> TokenStats:
    """Pooled mean with its cluster-bootstrap interval, and quantiles. clusters: (N,) int ids."""
    counts = np.bincount(clusters).astype(np.float64)
    sums = np.bincount(clusters, weights=values)
    lo, hi = cluster_bootstrap_ci(sums[counts > 0], counts[counts > 0])
    return TokenStats(mean=float(values.mean()), ci95_low=lo, ci95_high=hi, q90=float(np.quantile(values, 0.90)),
                      q95=float(np.quantile(values, 0.95)), q99=float(np.quantile(values, 0.99)),
                      max=float(values.max()))


def _text_ci(values: np.ndarray) -> TextStats:
    n = values.size
    mean = float(values.mean())
    if n < 2:
        return TextStats(mean=mean, ci95_low=float("nan"), ci95_high=float("nan"))
    lo, hi = stats.t.interval(0.95, n - 1, loc=mean, scale=stats.sem(values))
    return TextStats(mean=mean, ci95_low=float(lo), ci95_high=float(hi))


def measured_direction(ppl_s: float, ppl_c: float) -> Direction:
    """The direction of texts no rule wrote (scored texts): the side whose model likes them more."""
    side = "comparison" if ppl_c < ppl_s else "starting"
    other = "starting" if side == "comparison" else "comparison"
    return Direction(shows=side, source="measured",
                     description=f"texts the {side} model finds more likely than the {other} model does "
                                 f"(measured: ppl_s={ppl_s:.3g}, ppl_c={ppl_c:.3g})")


def resolve_sort_key(sort_key: str, shows: str) -> str:
    """`auto` -> the contrast score of the shown side (`contrast_c` for both/neither, the usual case)."""
    return CONTRAST_KEYS.get(shows, "contrast_c") if sort_key == AUTO else sort_key


def shown(records: Sequence[Mapping], sort_key: str, n: int | None = None) -> list[tuple[Mapping, int]]:
    """Records best first by `sort_key`, identical (prompt, continuation) pairs once, with their count.

    Sampling can return one text several times (greedy, beam, or a peaked distribution); a report
    that lists it in several top slots shows less than it seems to. Returns (record, copies).
    """
    groups: dict[tuple, list] = {}
    for r in sorted(records, key=lambda r: text_value(r, sort_key), reverse=True):
        key = (r.get("prompt"), r.get("continuation"))
        if key in groups:
            groups[key][1] += 1
        else:
            groups[key] = [r, 1]
    out = [(r, k) for r, k in groups.values()]
    return out if n is None else out[:n]


def summarize(records: Sequence[Mapping], sort_key: str = AUTO, top_n: int = 5,
              direction: Direction | None = None) -> DecodeSummary:
    """Summary of generation/score records (each with `tokens` and `metrics`).

    `direction`: what the decoding rule samples (`cdx.decoding.rules.direction_of`); None for
    texts no rule wrote (then it is measured).
    """
    scored = [r for r in records if r["metrics"].get("n_tokens", 0) > 0]
    if not scored:
        return DecodeSummary(n_texts=len(records), n_tokens=0)
    cat = {k: np.concatenate([np.asarray(r["tokens"][k], dtype=np.float64) for r in scored])
           for k in (*DIVERGENCES, "top1_agree", "logp_s", "logp_c")}
    ppl_s = math.exp(-cat["logp_s"].mean())
    ppl_c = math.exp(-cat["logp_c"].mean())
    d = direction or measured_direction(ppl_s, ppl_c)
    direction = Direction(shows=d.shows, description=d.description, source=d.source)  # `source` always written
    key = resolve_sort_key(sort_key, direction.shows)
    return DecodeSummary(
        n_texts=len(records), n_tokens=int(cat["kl_sc"].size), sort_key=key, direction=direction,
        token={k: _dist(cat[k], _prompt_clusters(scored)) for k in DIVERGENCES},
        ci_method={"token": CI_METHOD, "text": "Student-t over per-text means"},
        top1_agreement=float(cat["top1_agree"].mean()), ppl_s=ppl_s, ppl_c=ppl_c, ppl_ratio_c_over_s=ppl_c / ppl_s,
        ppl_ratio_note=_PPL_NOTE.format(direction.description),
        text={k: _text_ci(np.array([r["metrics"][f"{k}_mean"] for r in scored])) for k in DIVERGENCES},
        top=[TopText(id=r["id"], prompt=r["prompt"], continuation=r["continuation"], copies=copies,
                     **{key: text_value(r, key)}) for r, copies in shown(scored, key, top_n)])


def _prompt_clusters(scored: Sequence[Mapping]) -> np.ndarray:
    """(N_tokens,) cluster id of every pooled token: its record's prompt (or the record if none)."""
    ids: dict = {}
    per_record = [ids.setdefault(r.get("prompt_index", r.get("id")), len(ids)) for r in scored]
    return np.repeat(np.array(per_record, dtype=np.int64), [len(r["tokens"]["kl_sc"]) for r in scored])
